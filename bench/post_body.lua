-- wrk script for bench_mirror.py: POST the JSON body in $BENCH_BODY_FILE on every
-- request, and print one machine-readable line of results at the end.
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

-- the shared result line, from the folder this script is in
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_result.lua")
