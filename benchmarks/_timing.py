"""What every benchmark here needs: the median wall time of a few runs of one thing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], runs: int, before: Callable[[], object] | None = None) -> float:
    """Median of *runs* timings of ``fn()``; ``before()`` (not timed) runs ahead of each one."""
    samples = []
    for _ in range(runs):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
