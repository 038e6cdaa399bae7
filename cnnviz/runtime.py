"""Where computation runs, how randomness is seeded (explicitly, never at import), and the CPU settings
an experiment changes for its duration only (threads, denormal floats)."""
import ctypes
import functools
import random
import sys
import threading
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["device", "seed", "synchronize", "full_float32", "on_cpu", "cpu_threads", "flush_denormals",
           "flushing_denormals", "keep_freed_memory"]


def device() -> torch.device:
    """The best available device: CUDA, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device) -> None:
    """Wait for the work queued on ``device`` (CUDA, MPS); nothing to wait for on the CPU. Time a device
    computation only after this: kernels are queued and the call returns before they ran."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def full_float32():
    """Within the block, float32 convolutions and matrix products on NVIDIA GPUs use full float32, not TF32.

    From Ampere on, cuDNN's float32 convolutions use TF32 by default (a 10-bit
    mantissa, about 1e-3 relative), so a GPU result agrees with the CPU's only
    to about that. Comparisons meant to be exact to float32 rounding (a test, an
    incremental pass against a full one) run inside this block. Restores both
    settings after; changes nothing on the CPU, which never uses TF32.
    """
    matmul = torch.backends.cuda.matmul
    saved = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved


def on_cpu(fn):
    """Decorate a function that computes on the CPU by design (embedded data made from seeded CPU generators,
    a small fit): the tensors it creates stay there even where the user has called
    ``torch.set_default_device("cuda")``, whose random draws with a CPU generator would otherwise fail and
    whose other tensors would land on another device than the draws."""
    @functools.wraps(fn)
    def on_the_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return fn(*args, **kwargs)
    return on_the_cpu


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


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20
_ALLOCATOR = {"lock": threading.Lock(), "set": None}


def keep_freed_memory(trim_threshold_mb: int = 128) -> bool:
    """Ask glibc to keep freed memory in the process instead of handing it back to the OS at once.

    A widget that redraws a photo allocates and frees a few megabytes per update
    (float planes, torch's and oneDNN's buffers, the PNG). glibc's default hands
    such blocks back to the kernel on free (``mmap``/trim) and the next update
    page-faults them in again: on this project's 2-core VM, 8,400 faults per
    colour ``filter_image`` turned 3 ms into 17 ms (bench/kernel_editor.py).
    This sets glibc's mmap threshold to its maximum (32 MiB) and its trim
    threshold to ``trim_threshold_mb``: the process keeps up to that much
    freed memory for reuse (the resident size grows by at most that much),
    which is what PyTorch's CPU tuning guide gets by swapping in
    jemalloc/tcmalloc. Process-wide, applied once; the live widgets call it
    when they start rendering, nothing calls it at import. Returns True where
    it took effect (glibc on Linux), False elsewhere (macOS, Windows, musl),
    where it does nothing.
    """
    with _ALLOCATOR["lock"]:
        if _ALLOCATOR["set"] is None:
            _ALLOCATOR["set"] = _mallopt(trim_threshold_mb)
        return _ALLOCATOR["set"]


def _mallopt(trim_threshold_mb) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # another C library: its allocator has other knobs
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_mb) * 2**20))
