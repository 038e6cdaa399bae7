"""Where computation runs, how randomness is seeded (explicitly, never at import), and the CPU settings
an experiment changes for its duration only (threads, denormal floats)."""
import random
import threading
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["device", "seed", "cpu_threads", "flush_denormals", "flushing_denormals"]


def device() -> torch.device:
    """The best available device: CUDA, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) with ``n``; return a CPU generator seeded with it.

    cnnviz never seeds on its own: call this where a result must be repeatable.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"seed must be an integer, got {n!r}.")
    n = int(n)
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)  # also seeds CUDA and MPS generators
    return torch.Generator().manual_seed(n)


_THREADS = {"lock": threading.Lock(), "depth": 0, "saved": None}


@contextmanager
def cpu_threads(threads):
    """Run the ``with`` block with torch using ``threads`` CPU threads, then restore the number it had
    (``None``: leave it as it is). Small networks train faster on one thread than on two busy ones.

    torch's thread count belongs to the whole process, and widgets enter this from their own threads: the
    first block in saves the count and the last one out restores it, so blocks that overlap (on one thread
    or several) cannot leave torch on the wrong number."""
    if threads is None:
        yield
        return
    with _THREADS["lock"]:
        if _THREADS["depth"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
        _THREADS["depth"] += 1
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        with _THREADS["lock"]:
            _THREADS["depth"] -= 1
            if _THREADS["depth"] == 0:
                torch.set_num_threads(_THREADS["saved"])


def flushing_denormals() -> bool:
    """Whether the CPU now flushes denormal floats to zero (torch can set this but has no getter, so it is
    measured: a product that should be denormal comes out as zero)."""
    tiny = torch.tensor([1e-37], dtype=torch.float32)
    return bool((tiny * 1e-3).item() == 0.0)


@contextmanager
def flush_denormals():
    """Flush denormal floats to zero inside the ``with`` block, then restore the previous setting; torch runs
    on one CPU thread meanwhile, and gets its number of threads back after.

    A vanishing signal (a deep tanh network with tiny weights, say) fills tensors with numbers below 1e-38,
    which a CPU handles tens of times slower than ordinary ones; flushed, they become exact zeros. The
    setting belongs to the thread that makes it: torch's other CPU threads would go on producing denormals
    (measured: a 50-layer tanh network's last layer came out at 5e-41 with two threads, 0 with one), hence
    the single thread.
    """
    before = flushing_denormals()
    with cpu_threads(1):
        supported = torch.set_flush_denormal(True)  # False where the CPU cannot (then nothing changes)
        try:
            yield supported
        finally:
            if supported:
                torch.set_flush_denormal(before)
