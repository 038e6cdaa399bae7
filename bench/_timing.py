"""What every benchmark script shares: timing a call, and naming the machine it ran on."""
import platform
import statistics
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
