"""Batch normalisation as a computation, and the other normalisations beside it.

Batch norm (Ioffe & Szegedy 2015) normalises each channel with the mean and variance of the mini-batch,
then scales and shifts it by learned γ and β; layer norm (Ba et al. 2016), instance norm (Ulyanov et al.
2016) and group norm (Wu & He 2018) take their statistics over other axes of the (N, C, H, W) tensor.
The functions here state each formula and are tested against ``torch.nn.functional`` and ``torch.nn``.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["NORMS", "batch_norm_formula", "norm_axes", "normalise", "norm_layer", "running_average",
           "keras_momentum", "batch_dependence", "BatchDependence", "fold_batch_norm", "layer_rescaling"]

#: kind → what its statistics are taken over, for an (N, C, H, W) tensor
NORMS = {
    "batch": "every image of the batch and every position, per channel: (N, H, W)",
    "layer": "every channel and position of one image: (C, H, W)",
    "instance": "every position of one channel of one image: (H, W)",
    "group": "every position of a group of channels of one image: (C/G, H, W)",
}


def batch_norm_formula(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5):
    """Batch norm in training mode written out: ``y = γ (x − μ_B) / √(σ²_B + ε) + β``.

    ``x`` (N, C, ...) ; μ_B and σ²_B are the mean and the *biased* variance (divided by the number of values)
    of each channel over the batch and all positions; ``gamma``, ``beta`` (C,). Returns ``(y, mean, var)``.
    """
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dims)                                      # (C,)
    var = x.var(dims, unbiased=False)                        # (C,)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = gamma.view(shape) * (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) + beta.view(shape)
    return y, mean, var


def norm_axes(kind: str, groups: int = 2) -> tuple:
    """The axes of an (N, C, H, W) tensor that one statistic of ``kind`` pools, as in Wu & He 2018, Figure 2:
    batch (0, 2, 3), layer (1, 2, 3), instance (2, 3), group (1, 2, 3) within each group of channels."""
    if kind not in NORMS:
        raise ValueError(f"Unknown normalisation {kind!r}: choose one of {', '.join(NORMS)}.")
    return {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (1, 2, 3)}[kind]


def normalise(x: torch.Tensor, kind: str, *, groups: int = 2, eps: float = 1e-5) -> torch.Tensor:
    """``(x − mean) / √(var + ε)`` over the axes ``norm_axes(kind)`` of ``x`` (N, C, H, W), without γ and β.
    Group norm splits the C channels into ``groups`` groups of consecutive channels."""
    if x.dim() != 4:
        raise ValueError(f"normalise takes an (N, C, H, W) tensor; got shape {tuple(x.shape)}.")
    n, c, h, w = x.shape
    if kind == "group":
        if c % groups:
            raise ValueError(f"Group norm needs the channels ({c}) to split evenly into {groups} groups.")
        return normalise(x.reshape(n * groups, c // groups, h, w), "layer", eps=eps).reshape(n, c, h, w)
    dims = norm_axes(kind)
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def norm_layer(kind: str, channels: int, *, groups: int = 2) -> nn.Module:
    """torch's own module for ``kind`` (γ = 1, β = 0 at the start): ``BatchNorm2d``, ``GroupNorm(1, C)`` for
    layer norm over (C, H, W) (``LayerNorm([C, H, W])`` is the same statistics but with one γ per value),
    ``InstanceNorm2d(affine=True)``, ``GroupNorm(groups, C)``."""
    if kind not in NORMS:
        raise ValueError(f"Unknown normalisation {kind!r}: choose one of {', '.join(NORMS)}.")
    return {"batch": lambda: nn.BatchNorm2d(channels),
            "layer": lambda: nn.GroupNorm(1, channels),
            "instance": lambda: nn.InstanceNorm2d(channels, affine=True),
            "group": lambda: nn.GroupNorm(groups, channels)}[kind]()


def running_average(batch_values, momentum: float, *, start: float = 0.0, convention: str = "pytorch") -> list:
    """The running statistic after each of ``batch_values``, updated as PyTorch does
    (``r ← (1 − m)·r + m·b``, m = 0.1 by default) or as Keras does (``r ← m·r + (1 − m)·b``, m = 0.99 by
    default). The same rule: a Keras momentum of m equals a PyTorch momentum of 1 − m."""
    if convention not in ("pytorch", "keras"):
        raise ValueError(f"convention is 'pytorch' or 'keras', got {convention!r}.")
    if not 0 <= momentum <= 1:
        raise ValueError(f"A momentum is between 0 and 1; got {momentum!r}.")
    keep = 1 - momentum if convention == "pytorch" else momentum
    r, out = start, []
    for b in batch_values:
        r = keep * r + (1 - keep) * float(b)
        out.append(r)
    return out


def keras_momentum(pytorch_momentum: float) -> float:
    """The Keras ``BatchNormalization(momentum=...)`` that equals PyTorch's ``BatchNorm2d(momentum=...)``."""
    return 1 - pytorch_momentum


@dataclass(frozen=True)
class BatchDependence:
    """How much one image's normalised output changes when its batch-mates change: for each batch size, the
    largest absolute difference between its outputs over ``trials`` draws of batch-mates, relative to the
    output's standard deviation."""
    kind: str
    batch_sizes: tuple
    change: tuple


def batch_dependence(kind: str, images: torch.Tensor, batch_sizes=(2, 4, 8, 16, 32, 64), *, trials: int = 8,
                     groups: int = 2, seed: int = 0) -> BatchDependence:
    """For ``kind`` of normalisation in training mode: image 0 of ``images`` (N, C, H, W) put in batches with
    other images drawn at random (``seed``), and how much its output moves (see ``BatchDependence``)."""
    layer = norm_layer(kind, images.shape[1], groups=groups).train()
    g = torch.Generator().manual_seed(seed)
    changes = []
    for b in batch_sizes:
        if b > len(images):
            raise ValueError(f"A batch of {b} needs at least {b} images; got {len(images)}.")
        outs = []
        for _ in range(trials):
            mates = 1 + torch.randperm(len(images) - 1, generator=g, device=g.device)[:b - 1]
            batch = torch.cat([images[:1], images[mates]])
            with torch.no_grad():
                outs.append(layer(batch)[0])
        outs = torch.stack(outs)
        changes.append(float((outs.max(0).values - outs.min(0).values).max() / outs.std().clamp_min(1e-12)))
    return BatchDependence(kind, tuple(batch_sizes), tuple(changes))


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution that computes ``bn(conv(x))`` of eval mode: batch norm with its running statistics is
    a per-channel affine map, so ``w' = w·γ/σ`` and ``b' = (b − μ)·γ/σ + β`` with ``σ = √(var + ε)``
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``; neither module is changed)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if conv.training or bn.training:
        raise ValueError("Folding is for inference: put the convolution and the batch norm in eval mode first "
                         "(model.eval()); in training mode batch norm uses each batch's own statistics.")
    return fuse_conv_bn_eval(conv, bn)


def layer_rescaling(model: nn.Module, layer: str, factor: float, x: torch.Tensor, probe: str) -> float:
    """How much the standard deviation of ``probe``'s output (in training mode) changes when the weights of
    ``layer`` are multiplied by ``factor``: the ratio after / before. Without normalisation between them, a
    ReLU network passes the factor straight on; batch norm after ``layer`` undoes it. ``model`` is unchanged."""
    import copy

    from cnnviz.probe import capture, get_layer, train_mode

    original, scaled = copy.deepcopy(model), copy.deepcopy(model)  # training mode would move running statistics
    with torch.no_grad():
        get_layer(scaled, layer).weight.mul_(factor)
    stds = []
    for m in (original, scaled):
        with train_mode(m), capture(m, probe) as out, torch.no_grad():
            m(x)
        stds.append(float(out[probe].std()))
    return stds[1] / stds[0] if stds[0] > 0 else math.inf
