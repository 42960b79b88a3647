"""The benchmark's ceiling: the least an aiohttp server can do per Test Connection.

One route, a constant body, no middleware, no parsing: whatever the mirror's
requests/s on ``/api/connection`` falls short of this is the cost of its own code
(request guard, JSON parsing, request log), not of aiohttp or the machine.
"""

from __future__ import annotations

import argparse

from aiohttp import web

BODY = {"status": "OK", "_type": "TestConnectionResponse"}
HEADERS = {"X-MIRROR-API-KEY": "api_key"}


async def connection(request: web.Request) -> web.Response:
    return web.json_response(BODY, headers=HEADERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/api/connection", connection)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
