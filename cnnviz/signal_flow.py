"""Signal flow at initialisation: how activations and gradients grow or shrink layer by layer.

``signal_flow(model, x, y)`` runs one forward and one backward pass of a real batch (in training mode, as the
first step of training would) and returns, for every layer, the distribution of its outputs and of the loss's
gradient with respect to them: mean, standard deviation, the share of units that are inactive (a ReLU at 0,
a tanh or sigmoid saturated), and a histogram of log10|value| on one axis shared by all layers. It also gives
the update-to-weight ratio ``lr·‖∇W‖/‖W‖`` of every weighted layer. Hooks are scoped, no ``.grad`` is left on
the model, its train/eval flags are restored, and denormal floats are flushed while it runs.

``deep_mlp`` builds the deep fully connected network the chapter experiments on (as Glorot & Bengio 2010 and
He et al. 2015 did), and ``digits_batch`` a batch of the embedded digits for it.
"""
import math
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.initialisation import ACTIVATIONS, InitError, initialisable_layers, is_finite_number
from cnnviz.probe import capture, get_layer, train_mode
from cnnviz.runtime import flush_denormals

__all__ = ["MAX_DEPTH", "MAX_WIDTH", "LOG_EDGES", "DeepMLP", "deep_mlp", "digits_batch", "LayerStats",
           "WeightStats", "SignalFlow", "signal_flow"]

MAX_DEPTH = 200
MAX_WIDTH = 4096
#: bin edges of log10|value| shared by every histogram: half a decade each, from 1e-40 (float32's smallest
#: normal number is 1.2e-38) to 1e40 (its largest is 3.4e38)
LOG_EDGES = np.arange(-40.0, 40.01, 0.5)

_TINY = torch.finfo(torch.float32).tiny                                   # 1.2e-38
_TINY_BIN = int((math.log10(_TINY) - LOG_EDGES[0]) // (LOG_EDGES[1] - LOG_EDGES[0]))
_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}
_SATURATION = 0.99  # a tanh beyond ±0.99, or a sigmoid below 0.01 or above 0.99, passes < 2 % of its gradient


class DeepMLP(nn.Sequential):
    """``depth`` hidden layers ``fc{k}`` → (``bn{k}``) → ``act{k}`` and a classifier ``out``.
    ``signal_layers`` names the activations, the layers ``signal_flow`` describes by default."""

    def __init__(self, layers: "OrderedDict", signal_layers: tuple, activation: str):
        super().__init__(layers)
        self.signal_layers, self.activation = signal_layers, activation

    def set_activation_(self, activation: str) -> "DeepMLP":
        """Put ``activation`` in place of every activation module, weights untouched (in place; returns the
        network): what ``deep_mlp`` with that activation builds, without drawing its default weights again."""
        if activation not in _MODULES:
            raise InitError(f"Unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}.")
        if activation == self.activation:
            return self
        for name in self.signal_layers:
            setattr(self, name, _MODULES[activation]())
        self.activation = activation
        return self


def _count(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InitError(f"The {name} must be a whole number from {low} to {high}; got {value!r}.")
    return int(value)


def deep_mlp(depth: int, width: int, *, activation: str = "relu", batch_norm: bool = False, in_features: int = 64,
             num_classes: int = 10, empty: bool = False) -> DeepMLP:
    """A fully connected network of ``depth`` hidden layers of ``width`` units, each followed by batch
    normalisation (``batch_norm=True``) and ``activation`` ("relu", "tanh", "sigmoid" or "linear"), then a
    linear classifier. Input ``(B, in_features)``, output ``(B, num_classes)``. Weights are torch's defaults:
    initialise them with ``cnnviz.initialisation.initialise_``. ``empty=True``: the linear layers' weights and
    biases are left uninitialised (allocated, nothing drawn, torch's random state untouched; batch norm at its
    defaults), for a caller that writes them all, as ``initialise_`` does."""
    depth = _count(depth, "depth (number of hidden layers)", 1, MAX_DEPTH)
    width = _count(width, "width (units per layer)", 1, MAX_WIDTH)
    if activation not in _MODULES:
        raise InitError(f"Unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}.")
    device = "meta" if empty else None
    layers, names, n_in = OrderedDict(), [], in_features
    for k in range(1, depth + 1):
        layers[f"fc{k}"] = nn.Linear(n_in, width, bias=not batch_norm, device=device)  # BN's β replaces the bias
        if batch_norm:
            layers[f"bn{k}"] = nn.BatchNorm1d(width, device=device)
        layers[f"act{k}"] = _MODULES[activation]()
        names.append(f"act{k}")
        n_in = width
    layers["out"] = nn.Linear(n_in, num_classes, device=device)
    net = DeepMLP(layers, tuple(names), activation)
    if empty:
        net.to_empty(device="cpu")
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()       # γ = 1, β = 0, running mean 0, variance 1, no batch counted
    return net


def deep_mlp_weight_shapes(depth: int, width: int, *, in_features: int = 64, num_classes: int = 10,
                           dtype: torch.dtype = None) -> list:
    """``[(shape, dtype)]`` of the weights of ``deep_mlp(depth, width, ...)`` in layer order (with or without
    batch normalisation), without building it; ``dtype``: torch's default unless given."""
    dtype = dtype or torch.get_default_dtype()
    depth = _count(depth, "depth (number of hidden layers)", 1, MAX_DEPTH)
    width = _count(width, "width (units per layer)", 1, MAX_WIDTH)
    return ([((width, in_features), dtype)] + [((width, width), dtype)] * (depth - 1)
            + [((num_classes, width), dtype)])


def digits_batch(n: int = 256, *, seed: int = 0):
    """``(x, y)``: ``n`` of scikit-learn's embedded digits as (n, 64) float32 features standardised to mean 0
    and standard deviation 1 per pixel (over all 1,797 images), and their labels (n,). Drawn without
    replacement by ``seed``; ``n`` above 1,797 repeats the set."""
    from cnnviz.data import digits_tensors

    d = digits_tensors()
    images = torch.cat([d["train_images"], d["test_images"]]).flatten(1).float()   # (1797, 64)
    labels = torch.cat([d["train_labels"], d["test_labels"]])
    images = (images - images.mean(0)) / images.std(0).clamp_min(1e-6)                # the corner pixels are 0
    n = _count(n, "batch size", 1, 100_000)
    g = torch.Generator().manual_seed(seed)
    rounds = math.ceil(n / len(labels))
    idx = torch.cat([torch.randperm(len(labels), generator=g, device=g.device) for _ in range(rounds)])[:n]
    return images[idx], labels[idx]


@dataclass(frozen=True)
class LayerStats:
    """One layer's outputs (or the gradients with respect to them) over the batch.

    ``inactive``: the share of values where the activation passes (almost) no gradient: a ReLU's zeros, a
    tanh or sigmoid in saturation; ``dead``: the share of units inactive for *every* example of the batch;
    ``zeros``: the share of exact zeros; ``hist``: counts of log10|value| in the bins of ``LOG_EDGES``
    (values beyond the ends go to the end bins, zeros and non-finite values are not counted); ``finite``:
    False once a value overflowed to inf or NaN.
    """
    name: str
    mean: float
    std: float
    rms: float
    inactive: float
    dead: float
    zeros: float
    finite: bool
    hist: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class WeightStats:
    """A weighted layer: the standard deviation of its weights and of their gradient, and the ratio of one
    SGD update to the weights, ``lr·‖∇W‖ / ‖W‖`` (a healthy layer moves by about 1e-3 of itself per step)."""
    name: str
    weight_std: float
    grad_std: float
    update_ratio: float


@dataclass(frozen=True)
class SignalFlow:
    """What ``signal_flow`` measured. ``activations`` and ``gradients`` have one ``LayerStats`` per layer, input
    side first (``gradients`` is empty when the loss is not finite); ``diverged_at`` is the 1-based index of
    the first layer whose outputs are not finite (``None`` when all are)."""
    activations: list
    gradients: list
    weights: list
    loss: float
    lr: float
    diverged_at: Optional[int]

    @property
    def layers(self) -> list:
        return [s.name for s in self.activations]

    def summary(self) -> str:
        """One sentence: the standard deviation of the last layer's outputs and gradients, or where it diverged."""
        if self.diverged_at is not None:
            return (f"Diverged at layer {self.diverged_at}: its outputs overflowed to infinity, so the loss and "
                    "every gradient are undefined.")
        first, last = self.activations[0], self.activations[-1]
        text = (f"Activations: std {first.std:.3g} at layer 1, {last.std:.3g} at layer {len(self.activations)}"
                f" (inactive {100 * last.inactive:.0f} %, dead units {100 * last.dead:.0f} %).")
        if self.gradients:
            text += (f" Gradients: std {self.gradients[-1].std:.3g} at the last layer, "
                     f"{self.gradients[0].std:.3g} at layer 1.")
        return text


def _inactive(module: nn.Module, v: torch.Tensor) -> Optional[torch.Tensor]:
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return v == 0
    if isinstance(module, nn.Tanh):
        return v.abs() > _SATURATION
    if isinstance(module, nn.Sigmoid):
        return (v < 1 - _SATURATION) | (v > _SATURATION)
    return None


def _slow_stats(name: str, v: torch.Tensor, inactive: Optional[torch.Tensor]) -> LayerStats:
    """One layer's statistics in float64 over its finite values: for a layer that overflowed."""
    v = v.detach().to("cpu", torch.float64)
    finite = bool(torch.isfinite(v).all())
    ok = v[torch.isfinite(v)]
    mean = float(ok.mean()) if ok.numel() else math.nan
    std = float(ok.std(unbiased=False)) if ok.numel() else math.nan
    rms = float(ok.square().mean().sqrt()) if ok.numel() else math.nan
    logs = ok[ok != 0].abs().log10().clamp(LOG_EDGES[0], LOG_EDGES[-1] - 1e-9)
    hist = torch.histc(logs, bins=len(LOG_EDGES) - 1, min=LOG_EDGES[0], max=LOG_EDGES[-1]).numpy()
    share, dead = _shares(inactive[None] if inactive is not None else None)
    return LayerStats(name, mean, std, rms, share[0], dead[0], float((v == 0).double().mean()), finite, hist)


def _shares(inactive: Optional[torch.Tensor]):
    """(share of inactive values, share of units inactive for every example) per row of ``inactive`` (L, B, ...)."""
    if inactive is None:
        return [0.0], [0.0]
    flat = inactive.detach().cpu().reshape(inactive.shape[0], inactive.shape[1], -1)  # (L, B, units·positions)
    share = flat.float().mean((1, 2)).tolist()
    return share, _dead(flat, share)


def _dead(flat: torch.Tensor, share: list) -> list:
    """Per row of ``flat`` (L, B, units·positions) bool: the share of units inactive for every example (with
    one example, the share of inactive values ``share``)."""
    return flat.all(1).float().mean(1).tolist() if flat.shape[1] > 1 else list(share)


def _moments(rows: torch.Tensor):
    """Per row of ``rows`` (L, n): the mean and the root mean square, summed in float64 (squares of 3e38 do not
    overflow), in two passes: far faster than ``std``, which makes several."""
    n = rows.shape[1]
    wide = rows.double()                  # converted once: asking each reduction for float64 converts twice
    return wide.sum(1) / n, torch.linalg.vector_norm(wide, dim=1) / n ** 0.5


def _layer_stats(names, tensors, modules) -> list:
    """``LayerStats`` for every tensor; tensors of one shape are stacked and measured together (a deep network's
    fifty layers in a dozen operations instead of a few hundred)."""
    stats = {}
    bins = len(LOG_EDGES) - 1
    groups = {}
    for k, t in enumerate(tensors):
        groups.setdefault((tuple(t.shape), type(modules[k]) if modules else None), []).append(k)
    for (shape, _), idx in groups.items():
        v = torch.stack([tensors[k].detach() for k in idx]).float().cpu()          # (L, B, ...)
        rows = v.flatten(1)                                                          # (L, n)
        s1, rms = _moments(rows)
        s2 = rms.square()
        var = (s2 - s1.square()).clamp_min(0)
        finite = (torch.isfinite(s1) & torch.isfinite(s2)).tolist()
        std, mean, rms = var.sqrt().tolist(), s1.tolist(), s2.sqrt().tolist()
        zero = rows == 0
        n_zero = zero.sum(1)                                                         # (L,)
        # every value's bin of log10|value|; log10 of 0 is slow (and -inf), so zeros (and denormals, which
        # cost as much) are lifted to float32's smallest normal number, and the zeros taken out of its bin again
        width = float(LOG_EDGES[1] - LOG_EDGES[0])
        where = (rows.abs().clamp_min_(_TINY).log10_().nan_to_num_(nan=float(LOG_EDGES[0]))
                 .sub_(float(LOG_EDGES[0])).div_(width).clamp_(0, bins - 1).to(torch.int32))  # floor: all ≥ 0
        where += (bins * torch.arange(len(idx), dtype=torch.int32))[:, None]
        hist = torch.bincount(where.flatten(), minlength=bins * len(idx)).reshape(len(idx), bins)
        hist[:, _TINY_BIN] -= n_zero
        hist = hist.numpy()
        zeros = (n_zero / rows.shape[1]).tolist()
        module = modules[idx[0]] if modules else None
        if isinstance(module, (nn.ReLU, nn.ReLU6)):   # inactive means exactly 0: counted already
            share, dead = zeros, _dead(zero.view(v.shape[0], v.shape[1], -1), zeros)
        else:
            kinds = _inactive(module, v) if module is not None else None
            share, dead = _shares(kinds) if kinds is not None else ([0.0] * len(idx), [0.0] * len(idx))
        for r, k in enumerate(idx):
            if not finite[r]:
                stats[k] = _slow_stats(names[k], tensors[k], _inactive(modules[k], tensors[k]) if modules else None)
            else:
                stats[k] = LayerStats(names[k], mean[r], std[r], rms[r], share[r], dead[r], zeros[r], True,
                                      hist[r].astype(float))
    return [stats[k] for k in range(len(tensors))]


def signal_flow(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, layers=None, lr: float = 0.01,
                loss_fn=F.cross_entropy) -> SignalFlow:
    """Measure activations and gradients of ``layers`` in one forward and backward pass of ``(x, y)``.

    ``x`` (B, ...) is the input, ``y`` (B,) the class labels; ``layers``: dotted module names, input side
    first (default: ``model.signal_layers`` if it has them, else every activation module, else every linear
    and convolutional layer); ``lr``: the learning rate of the update-to-weight ratio. The pass runs in
    training mode (batch norm on the batch's statistics), with gradients taken by ``torch.autograd.grad``, so
    the model is left exactly as it was (batch norm's running statistics included). The statistics use two
    threads, each running torch single-threaded with denormals flushed: the activations' are measured during
    the backward pass, the gradients' half on each thread; both are joined before it returns.
    """
    if not is_finite_number(lr) or lr <= 0:
        raise InitError(f"The learning rate must be a finite number above 0, such as 0.01; got {lr!r}.")
    names = list(layers) if layers is not None else _default_layers(model)
    modules = [get_layer(model, n) for n in names]
    with _buffers_kept(model):  # restored after the backward pass too: it reads the statistics' versions
        return _measure(model, x, y, names, modules, lr, loss_fn)


def _measure(model, x, y, names, modules, lr, loss_fn) -> SignalFlow:
    weighted = initialisable_layers(model)
    with flush_denormals(), train_mode(model), capture(model, names, detach=False) as outputs:
        loss = loss_fn(model(x), y)
    tensors = [outputs[n] for n in names]
    if not math.isfinite(loss.item()):
        acts = _layer_stats(names, tensors, modules)
        diverged = next((k + 1 for k, s in enumerate(acts) if not s.finite), len(acts) + 1)  # else the loss
        return SignalFlow(acts, [], [], loss.item(), float(lr), diverged)
    params = [m.weight for _, m in weighted]
    # the activations' statistics on a second thread while this one runs the backward pass (two cores: the
    # statistics are a third of the work); each thread flushes its own denormals
    with _beside(_layer_stats, names, [t.detach() for t in tensors], modules) as measured:
        with flush_denormals():
            g = torch.autograd.grad(loss, tensors + params, allow_unused=True)
    acts = measured.result()
    diverged = next((k + 1 for k, s in enumerate(acts) if not s.finite), None)
    if diverged is not None:  # a layer overflowed yet the loss came out finite: its gradients mean nothing
        return SignalFlow(acts, [], [], loss.item(), float(lr), diverged)
    grads = _in_two_halves(names, [gi if gi is not None else torch.zeros_like(t)
                                   for t, gi in zip(tensors, g[:len(names)])])
    weights = _weight_stats([n for n, _ in weighted], params, g[len(names):], lr)
    return SignalFlow(acts, grads, weights, loss.item(), float(lr), diverged)


def _in_two_halves(names, tensors) -> list:
    """``_layer_stats`` (no activation modules) of the first half of the layers on another thread and of the
    second half on this one: both cores at work once the backward pass is done."""
    half = len(tensors) // 2
    if half == 0:
        return _layer_stats(names, tensors, None)
    with _beside(_layer_stats, names[:half], tensors[:half], None) as first:
        with flush_denormals():
            second = _layer_stats(names[half:], tensors[half:], None)
    return first.result() + second


@contextmanager
def _beside(fn, *args):
    """Run ``fn(*args)`` on another thread (denormals flushed there too) while the ``with`` block runs on this
    one; the block gets its ``Future``. The thread is joined before the block is left: none outlives the call."""
    def work():
        with flush_denormals():
            return fn(*args)

    with ThreadPoolExecutor(1, thread_name_prefix="cnnviz-signal-flow-statistics") as pool:
        yield pool.submit(work)


def _weight_stats(names, weights, grads, lr) -> list:
    """``WeightStats`` of every weight and its gradient; weights of one shape are measured together."""
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]
    out, groups = {}, {}
    for k, w in enumerate(weights):
        groups.setdefault(tuple(w.shape), []).append(k)
    for idx in groups.values():
        w = torch.stack([weights[k].detach() for k in idx]).flatten(1).float().cpu()   # (L, n); float64 sums on
        g = torch.stack([grads[k].detach() for k in idx]).flatten(1).float().cpu()     # the CPU: MPS has none
        (w_mean, w_rms), (g_mean, g_rms) = _moments(w), _moments(g)
        many = w.shape[1] > 1
        w_std = ((w_rms.square() - w_mean.square()).clamp_min(0).sqrt().tolist() if many else [0.0] * len(idx))
        g_std = ((g_rms.square() - g_mean.square()).clamp_min(0).sqrt().tolist() if many else [0.0] * len(idx))
        n = w.shape[1]
        w_norm, g_norm = (w_rms * n ** 0.5).tolist(), (g_rms * n ** 0.5).tolist()
        for r, k in enumerate(idx):
            ratio = lr * g_norm[r] / w_norm[r] if w_norm[r] > 0 else math.inf
            out[k] = WeightStats(names[k], w_std[r], g_std[r], ratio)
    return [out[k] for k in range(len(weights))]


@contextmanager
def _buffers_kept(model: nn.Module):
    """Restore every buffer (batch norm's running statistics and its batch counter) after the block: a forward
    pass in training mode would otherwise move them."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def _default_layers(model: nn.Module) -> list:
    named = getattr(model, "signal_layers", None)
    if named:
        return list(named)
    acts = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.GELU,
                                                                  nn.SiLU, nn.LeakyReLU, nn.ELU))]
    if acts:
        return acts
    layers = [n for n, _ in initialisable_layers(model)]
    if not layers:
        raise InitError(f"{type(model).__name__} has no activation, linear or convolutional layer to follow; "
                        "name the layers to measure with layers=[...].")
    return layers


def flow_grid(combos, depths, *, width: int = 256, batch: int = 256, lr: float = 0.01, seed: int = 0) -> dict:
    """Signal flow for every ``(label, scheme, activation, sigma)`` or ``(label, scheme, activation, sigma, gain)``
    of ``combos``, every depth of ``depths`` and batch norm off and on: ``{(label, depth, batch_norm):
    SignalFlow}``. The precomputed states of the book's static explorer; the weights of each network are
    drawn with ``seed``."""
    from cnnviz.initialisation import initialise_

    x, y = digits_batch(batch, seed=seed)
    out = {}
    for label, scheme, activation, sigma, *gain in combos:
        for depth in depths:
            for bn in (False, True):
                model = deep_mlp(depth, width, activation=activation, batch_norm=bn)
                initialise_(model, scheme, activation=activation, sigma=sigma, gain=gain[0] if gain else None,
                            seed=seed)
                out[(label, depth, bn)] = signal_flow(model, x, y, lr=lr)
    return out


__all__ += ["flow_grid"]
