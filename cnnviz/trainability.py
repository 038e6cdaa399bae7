"""The trainability map: which initial weight scales and learning rates let a deep plain network learn.

Each cell of the map trains a ``deep_mlp`` (20 hidden ReLU layers by default) whose weights are drawn from
N(0, σ²), with SGD at one learning rate, for a few epochs on the embedded digits, and records the test
accuracy. The map is computed without and with batch normalisation. A run whose loss becomes NaN or infinite
has *diverged*: that is a result (the step is recorded), not an error. Cells run one after the other on one
CPU thread with denormal floats flushed (``cnnviz.runtime.flush_denormals``); ``cached_trainability_map``
stores the result as JSON, keyed on the settings, so the book trains it once.
"""
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.initialisation import InitError, initialise_, is_finite_number
from cnnviz.runtime import flush_denormals
from cnnviz.signal_flow import deep_mlp

__all__ = ["MapConfig", "EMBEDDED_MAP", "Cell", "TrainabilityMap", "digits_features", "train_cell", "train_steps",
           "step_seconds",
           "trainability_map", "cached_trainability_map", "he_sigma"]

_FORMAT = "trainability-1"


def he_sigma(width: int) -> float:
    """He et al.'s standard deviation for a ReLU layer of fan-in ``width``: √(2 / width)."""
    return math.sqrt(2 / width)


@dataclass(frozen=True)
class MapConfig:
    """The settings of a trainability map: the network (``depth`` hidden layers of ``width`` units, with
    ``activation``), the grid (``sigmas``: standard deviations of the initial weights; ``lrs``: SGD learning
    rates), and the training (``epochs``, ``batch_size``, ``momentum``, ``seed``: initial weights and batch
    order)."""
    sigmas: tuple
    lrs: tuple
    depth: int = 20
    width: int = 64
    activation: str = "relu"
    epochs: int = 15
    batch_size: int = 64
    momentum: float = 0.9
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "lrs", tuple(float(v) for v in self.lrs))
        for s in self.sigmas:
            if not math.isfinite(s) or s <= 0:
                raise InitError(f"Every σ of the map must be a finite number above 0; got {s!r}.")
        for v in self.lrs:
            if not math.isfinite(v) or v <= 0:
                raise InitError(f"Every learning rate of the map must be a finite number above 0; got {v!r}.")
        if not self.sigmas or not self.lrs:
            raise InitError("A trainability map needs at least one σ and one learning rate.")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InitError(f"{name} must be a whole number of at least 1; got {v!r}.")

    def replace(self, **changes) -> "MapConfig":
        return replace(self, **changes)


#: The book's map: σ from He's value / 16 to He's value × 2 (width 64: He's σ = 0.177), six learning rates;
#: 72 runs of 15 epochs, about 50 s on one core of this CPU.
EMBEDDED_MAP = MapConfig(sigmas=tuple(he_sigma(64) * 2.0 ** k for k in range(-4, 2)),
                         lrs=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0), epochs=15)


@dataclass(frozen=True)
class Cell:
    """One training run: its test ``accuracy`` after training (NaN if it diverged), ``diverged_step`` (the
    1-based step whose loss was not finite, or None), the test accuracy after each epoch, and the mean
    training loss of each epoch."""
    sigma: float
    lr: float
    batch_norm: bool
    accuracy: float
    diverged_step: Optional[int]
    test_accuracy: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    def describe(self) -> str:
        head = f"σ = {self.sigma:.3g}, learning rate {self.lr:g}, {'with' if self.batch_norm else 'without'} BN"
        if self.diverged:
            return f"{head}: diverged at step {self.diverged_step} (the loss became infinite or NaN)."
        return f"{head}: {100 * self.accuracy:.1f} % test accuracy after {len(self.test_accuracy)} epochs."


def digits_features():
    """The embedded digits as flat features for ``deep_mlp``: ``(train_x, train_y, test_x, test_y)``, x of
    shape (N, 64) float32 standardised per pixel with the training set's mean and standard deviation."""
    from cnnviz.data import digits_tensors

    d = digits_tensors()
    train, test = d["train_images"].flatten(1).float(), d["test_images"].flatten(1).float()
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)  # the corner pixels are always 0
    return (train - mean) / std, d["train_labels"], (test - mean) / std, d["test_labels"]


def _accuracy(model, x, y) -> float:
    from cnnviz.probe import eval_mode

    with eval_mode(model), torch.no_grad():
        out = model(x)
    if not torch.isfinite(out).all():
        return math.nan
    return float((out.argmax(1) == y).float().mean())


def train_cell(sigma: float, lr: float, *, batch_norm: bool, config: MapConfig = EMBEDDED_MAP,
               data=None) -> Cell:
    """Train one cell of the map: ``deep_mlp(config.depth, config.width, batch_norm=...)`` with every weight
    drawn from N(0, σ²) (seed ``config.seed``; biases 0), plain SGD with momentum at ``lr`` on shuffled
    batches (the order drawn from a generator seeded with ``config.seed``; the last incomplete batch of an
    epoch is dropped), for ``config.epochs`` epochs. ``data``: ``digits_features()`` or the same four tensors
    of your own. Runs under ``flush_denormals`` (one CPU thread)."""
    if not is_finite_number(lr) or lr <= 0:
        raise InitError(f"The learning rate must be a finite number above 0, such as 0.01; got {lr!r}.")
    train_x, train_y, test_x, test_y = data if data is not None else digits_features()
    n, bs = len(train_y), config.batch_size
    if bs > n:
        raise InitError(f"The batch size ({bs}) is larger than the training set ({n} images).")
    model = deep_mlp(config.depth, config.width, activation=config.activation, batch_norm=batch_norm,
                     in_features=train_x.shape[1], num_classes=int(max(train_y.max(), test_y.max())) + 1)
    initialise_(model, "normal", sigma=sigma, seed=config.seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
    order = torch.Generator().manual_seed(config.seed)
    accs, losses, step = [], [], 0
    with flush_denormals():
        model.train()
        for _ in range(config.epochs):
            perm = torch.randperm(n, generator=order, device=order.device)
            total = 0.0
            for i in range(0, n - bs + 1, bs):
                idx = perm[i:i + bs]
                loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
                step += 1
                if not torch.isfinite(loss):
                    return Cell(sigma, lr, batch_norm, math.nan, step, accs, losses)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
            losses.append(total / (n // bs))
            accs.append(_accuracy(model, test_x, test_y))
            if math.isnan(accs[-1]):  # the weights overflowed in the last update
                return Cell(sigma, lr, batch_norm, math.nan, step, accs, losses)
    return Cell(sigma, lr, batch_norm, accs[-1], None, accs, losses)


def train_steps(model, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float, momentum: float = 0.9):
    """A copy of ``model`` after ``steps`` steps of SGD (with ``momentum``) on the batch ``(x, y)`` with the
    cross-entropy loss, under ``flush_denormals``; ``model`` itself is not changed. For seeing what a few
    updates do (the symmetry of constant weights, say), not for training a model well."""
    import copy

    if not is_finite_number(lr) or lr <= 0:
        raise InitError(f"The learning rate must be a finite number above 0, such as 0.01; got {lr!r}.")
    model = copy.deepcopy(model).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    with flush_denormals():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model


def step_seconds(config: MapConfig = EMBEDDED_MAP, *, batch_norm: bool, steps: int = 30, repeats: int = 3,
                 data=None) -> float:
    """Seconds per SGD step of the map's network (``config.depth`` layers of ``config.width``, He's weights) on
    one batch of ``config.batch_size`` digits, the best of ``repeats`` runs of ``steps`` steps, on one CPU thread
    with denormals flushed: what batch normalisation costs per step."""
    train_x, train_y, _, _ = data if data is not None else digits_features()
    xb, yb = train_x[:config.batch_size], train_y[:config.batch_size]
    model = initialise_(deep_mlp(config.depth, config.width, activation=config.activation, batch_norm=batch_norm,
                                 in_features=train_x.shape[1]), "kaiming_fan_in", activation=config.activation,
                        seed=config.seed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    best = math.inf
    with flush_denormals():
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            best = min(best, (time.perf_counter() - start) / steps)
    return best


@dataclass
class TrainabilityMap:
    """The whole map: ``cells[batch_norm][i][j]`` for ``config.sigmas[i]`` and ``config.lrs[j]``
    (``batch_norm`` False, then True), and the seconds it took to compute."""
    config: MapConfig
    cells: dict
    seconds: float = 0.0

    def accuracy(self, batch_norm: bool) -> np.ndarray:
        """(sigmas, lrs) test accuracies; NaN where the run diverged."""
        return np.array([[c.accuracy for c in row] for row in self.cells[batch_norm]])

    def cell(self, sigma_index: int, lr_index: int, batch_norm: bool) -> Cell:
        return self.cells[batch_norm][sigma_index][lr_index]

    def trainable_share(self, batch_norm: bool, threshold: float = 0.9) -> float:
        """The share of cells that reach ``threshold`` test accuracy."""
        acc = self.accuracy(batch_norm)
        return float(np.mean(np.nan_to_num(acc, nan=0.0) >= threshold))

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "config": asdict(self.config), "seconds": self.seconds,
                "cells": {str(bn): [[asdict(c) for c in row] for row in rows] for bn, rows in self.cells.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainabilityMap":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError("not a trainability map of this version")
        cells = {bn == "True": [[Cell(**c) for c in row] for row in rows] for bn, rows in d["cells"].items()}
        return cls(MapConfig(**d["config"]), cells, d.get("seconds", 0.0))


def trainability_map(config: MapConfig = EMBEDDED_MAP, *, data=None, on_cell=None) -> TrainabilityMap:
    """Train every cell of ``config``'s grid, without and with batch normalisation. ``on_cell(cell, done,
    total)`` is called after each run (a progress bar, a widget)."""
    data = data if data is not None else digits_features()
    total, done, start = 2 * len(config.sigmas) * len(config.lrs), 0, time.perf_counter()
    cells = {}
    for bn in (False, True):
        cells[bn] = []
        for sigma in config.sigmas:
            row = []
            for lr in config.lrs:
                row.append(train_cell(sigma, lr, batch_norm=bn, config=config, data=data))
                done += 1
                if on_cell is not None:
                    on_cell(row[-1], done, total)
            cells[bn].append(row)
    return TrainabilityMap(config, cells, time.perf_counter() - start)


def _cache_path(config: MapConfig, cache) -> Path:
    from cnnviz.data import cache_dir

    key = hashlib.sha256((json.dumps(asdict(config), sort_keys=True) + _FORMAT).encode()).hexdigest()[:16]
    return (Path(cache) if cache is not None else cache_dir() / "trainability") / f"map-{key}.json"


def cached_trainability_map(config: MapConfig = EMBEDDED_MAP, *, cache=None, refresh: bool = False,
                            on_cell=None) -> TrainabilityMap:
    """``trainability_map(config)`` from ``cache`` (default ``cnnviz.data.cache_dir() / "trainability"``),
    keyed on the settings; computed and stored first when it is not there, is damaged, or ``refresh``."""
    path = _cache_path(config, cache)
    if path.exists() and not refresh:
        try:
            result = TrainabilityMap.from_dict(json.loads(path.read_text()))
            if result.config == config:
                return result
        except (ValueError, KeyError, TypeError):
            pass  # damaged or outdated: compute again and overwrite
    result = trainability_map(config, on_cell=on_cell)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(result.to_dict(), f)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as err:
        warnings.warn(f"Could not store the trainability map in {path.parent} ({err}); it will be computed "
                      "again next time.", stacklevel=2)
    return result


def is_cached(config: MapConfig = EMBEDDED_MAP, *, cache=None) -> bool:
    """Whether ``cached_trainability_map(config)`` would read the map instead of computing it."""
    path = _cache_path(config, cache)
    try:
        return TrainabilityMap.from_dict(json.loads(path.read_text())).config == config
    except (OSError, ValueError, KeyError, TypeError):
        return False


__all__ += ["is_cached"]
