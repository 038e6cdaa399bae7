"""What every benchmark script shares: timing a call, and naming the machine it ran on."""
import platform
import statistics
import tempfile
import time

import numpy as np


def time_ms(fn, reps, warmup=2):
    """Median and 90th percentile, in milliseconds, of ``reps`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ms), float(np.percentile(ms, 90))


def cpu_name():
    """The processor's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def first_then_cached(cached_fn):
    """``(result, first, again)``: ``cached_fn(cache=folder)`` run into an empty temporary cache (computed, in
    ``first`` seconds), then once more (read back, in ``again`` seconds)."""
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        result = cached_fn(cache=cache)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_fn(cache=cache)
        again = time.perf_counter() - t0
    return result, first, again
