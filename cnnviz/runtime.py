"""Where computation runs and how randomness is seeded (explicitly, never at import)."""
import random

import numpy as np
import torch

__all__ = ["device", "seed"]


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
