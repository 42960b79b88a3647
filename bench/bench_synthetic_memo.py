"""The synthetic store's value memo: a 30-day aggregated query with and without it.

``python bench/bench_synthetic_memo.py`` answers the 30-day queries of
bench_mirror.py (259,200 points of a-host/cpu.user into 720 one-hour buckets) in
this process, no HTTP, through ``service.answer`` -- the mirror's whole work for a
request minus HTTP and JSON -- on three sources in the same run, interleaved so
machine noise hits them alike:

* ``no memo``: ``SyntheticSource(memo_bytes=0)``, every value generated again
  (the code before the memo);
* ``memo, cold``: a fresh source per query (its first query fills the memo);
* ``memo, warm``: one source asked again (StackState's next poll of the same days).

It checks the three answer alike (byte for byte, as JSON) and prints median
milliseconds and the ratios. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from bench_mirror import DAY, HOUR, T0, metrics_body

from mirror_kit import service
from mirror_kit.protocol import Aggregation, AggregationMethod, MetricsRequest
from mirror_kit.sources import SyntheticSource


def request(method: AggregationMethod) -> MetricsRequest:
    return MetricsRequest.from_json(metrics_body(T0 - 30 * DAY, T0, Aggregation(method, HOUR)))


async def timed(source: SyntheticSource, query: MetricsRequest) -> tuple[float, bytes]:
    limits = service.Limits()
    started = time.perf_counter()
    response = await service.answer(query, source, limits)
    return (time.perf_counter() - started) * 1000, response.to_bytes()


async def compare(method: AggregationMethod, repetitions: int) -> dict[str, float]:
    query = request(method)
    plain, warm = SyntheticSource(memo_bytes=0), SyntheticSource()
    makers: dict[str, Callable[[], SyntheticSource]] = {
        "no memo": lambda: plain,
        "memo, cold": SyntheticSource,
        "memo, warm": lambda: warm,
    }
    for make in makers.values():  # numpy's first-call paths; fills the warm memo
        await timed(make(), query)
    times: dict[str, list[float]] = {name: [] for name in makers}
    answers: dict[str, set[bytes]] = {name: set() for name in makers}
    for _ in range(repetitions):
        for name, make in makers.items():
            ms, body = await timed(make(), query)
            times[name].append(ms)
            answers[name].add(body)
    bodies = set().union(*answers.values())
    assert len(bodies) == 1, f"{method.value}: the sources answered differently"
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=30)
    args = parser.parse_args()
    print(f"30-day query, 1 h buckets, median of {args.repetitions} (ms, in-process)")
    print(f"{'method':<14}{'no memo':>10}{'memo cold':>11}{'memo warm':>11}{'warm/no':>9}")
    for method in (AggregationMethod.MEAN, AggregationMethod.MAX, AggregationMethod.PERCENTILE_99):
        m = asyncio.run(compare(method, args.repetitions))
        ratio = m["memo, warm"] / m["no memo"]
        print(
            f"{method.value:<14}{m['no memo']:>10.2f}{m['memo, cold']:>11.2f}"
            f"{m['memo, warm']:>11.2f}{ratio:>9.2f}"
        )
    print("answers: identical bytes from all three sources")


if __name__ == "__main__":
    main()
