"""The receptive field of a stack of convolution and pooling layers: theory, brute force, and ERF.

Coordinates: input pixel centres sit at integers 0 .. n-1 along each axis
(row, column), so pixel (0, 0) is the top-left one. Layer index 0 is the input
itself; layer index k is the output of ``layers[k-1]``.

The theoretical receptive field follows the standard recurrence (Dumoulin and
Visin 2016; Araujo et al. 2019, "Computing receptive fields of CNNs")::

    j_out     = j_in · s                          # jump: input pixels between neighbouring units
    r_out     = r_in + d(f-1) · j_in              # size: input pixels one unit can see
    start_out = start_in + (d(f-1)/2 - p) · j_in  # centre of unit 0, in input pixels

from the input row r = 1, j = 1, start = 0. ``gradient_support`` checks it
by brute force (autograd), and ``effective_receptive_field`` measures the part
of the window a randomly initialised network really uses (Luo et al. 2016,
"Understanding the effective receptive field in deep convolutional neural networks").
"""
from dataclasses import dataclass
from numbers import Real
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from cnnviz.conv import _check_int, output_size
from cnnviz.layers import same_padding
from cnnviz.runtime import on_cpu

__all__ = [
    "Layer", "PRESETS", "RFRow", "receptive_field", "layer_sizes", "input_rect",
    "input_support", "as_torch", "gradient_support", "effective_receptive_field",
    "ERFStats", "erf_stats",
]

_KINDS = ("conv", "maxpool", "avgpool")


@dataclass(frozen=True)
class Layer:
    """One layer of a stack: ``kind`` "conv", "maxpool" or "avgpool", window ``f``×``f``,
    stride ``s``, padding ``p`` on each side, dilation ``d`` (convolutions only).

    Pooling padding may be at most f/2, as in PyTorch. Channel counts do not
    change the receptive field, so a layer does not store them.
    """
    kind: str
    f: int
    s: int = 1
    p: int = 0
    d: int = 1
    name: str = ""

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"A layer's kind must be 'conv', 'maxpool' or 'avgpool', got {self.kind!r}.")
        # store plain ints (numpy integers are accepted) so rows and labels print cleanly
        object.__setattr__(self, "f", _check_int("f (kernel size)", self.f, 1))
        object.__setattr__(self, "s", _check_int("s (stride)", self.s, 1))
        object.__setattr__(self, "p", _check_int("p (padding)", self.p, 0))
        object.__setattr__(self, "d", _check_int("d (dilation)", self.d, 1))
        if not isinstance(self.name, str):
            raise ValueError(f"A layer's name must be a string, got {self.name!r}.")
        if self.kind != "conv":
            if self.d != 1:
                raise ValueError(f"Pooling layers have no dilation here: d must be 1 for a {self.kind} layer, got {self.d}.")
            if 2 * self.p > self.f:
                raise ValueError(
                    f"Pooling padding p = {self.p} must be at most half the window, f/2 = {self.f / 2} "
                    "(as in PyTorch); otherwise a window could lie entirely in the padding."
                )

    @property
    def label(self) -> str:
        """The name, or a description such as "conv 3×3 s2 p1 d2"."""
        if self.name:
            return self.name
        text = f"{self.kind} {self.f}×{self.f}"
        for key, value, default in (("s", self.s, 1), ("p", self.p, 0), ("d", self.d, 1)):
            if value != default:
                text += f" {key}{value}"
        return text


def _convs(n, f=3):
    """n "same" convolutions f×f, stride 1, named conv1 .. convn."""
    return tuple(Layer("conv", f, 1, same_padding(f), name=f"conv{k + 1}") for k in range(n))


#: Named stacks for the chapter and the explorer (tuples: presets are shared and must not change).
PRESETS: Dict[str, Tuple[Layer, ...]] = {
    "1×[7×7]": _convs(1, 7),
    "2×[3×3]": _convs(2),
    "3×[3×3]": _convs(3),
    "10×[3×3]": _convs(10),
    "dilated 3×[3×3], d=1,2,4": tuple(
        Layer("conv", 3, 1, same_padding(3, d), d, f"conv{k + 1} d={d}") for k, d in enumerate((1, 2, 4))
    ),
    "VGG block": (Layer("conv", 3, 1, 1, name="conv1"), Layer("conv", 3, 1, 1, name="conv2"),
                  Layer("maxpool", 2, 2, name="pool")),
    # conv1 without padding needs a 227×227 input for its 55×55 output (the paper says 224, which
    # gives 54×54); torchvision pads 2 on 224 instead. Padding moves the field, not its size.
    "AlexNet conv1–pool2": (Layer("conv", 11, 4, 0, name="conv1"), Layer("maxpool", 3, 2, name="pool1"),
                            Layer("conv", 5, 1, 2, name="conv2"), Layer("maxpool", 3, 2, name="pool2")),
    "LeNet-5 conv–pool": (Layer("conv", 5, name="C1"), Layer("avgpool", 2, 2, name="S2"),
                          Layer("conv", 5, name="C3"), Layer("avgpool", 2, 2, name="S4")),
    "ResNet stem": (Layer("conv", 7, 2, 3, name="conv1"), Layer("maxpool", 3, 2, 1, name="maxpool")),
}


def _check_layers(layers) -> Tuple[Layer, ...]:
    try:
        layers = tuple(layers)
    except TypeError:
        raise ValueError(f"layers must be a list of Layer objects, got {layers!r}.") from None
    for k, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"layers[{k}] must be a Layer, e.g. Layer('conv', 3, p=1); got {layer!r}.")
    return layers


# ----------------------------------------------------------------------------- the recurrence

@dataclass(frozen=True)
class RFRow:
    """Receptive field after one layer: size ``r`` and jump ``j`` in input pixels, and ``start``,
    the centre of unit 0 in input pixel coordinates (negative or half-integer values are normal:
    the window may begin in the padding; even windows centre between pixels).
    ``layer`` is ``None`` for the input row."""
    name: str
    r: int
    j: int
    start: float
    layer: Optional[Layer]


def _integers(layers):
    """Per row (input first): (r, j, a) with a the first input pixel seen by unit 0 (an integer)."""
    r, j, a = 1, 1, 0
    rows = [(r, j, a)]
    for layer in layers:
        a -= layer.p * j
        r += layer.d * (layer.f - 1) * j
        j *= layer.s
        rows.append((r, j, a))
    return rows


def receptive_field(layers) -> List[RFRow]:
    """The receptive field size, jump and start of every layer of a stack, input row first.

    ``receptive_field(PRESETS["3×[3×3]"])`` gives r = 1, 3, 5, 7: three 3×3
    convolutions see as far as one 7×7 (with 27 instead of 49 weights per channel pair).
    """
    layers = _check_layers(layers)
    rows = []
    for k, (r, j, a) in enumerate(_integers(layers)):
        layer = layers[k - 1] if k else None
        rows.append(RFRow("input" if layer is None else layer.label, r, j, a + (r - 1) / 2, layer))
    return rows


def _check_input_size(input_size):
    try:
        h, w = input_size
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (H, W), got {input_size!r}.") from None
    return _check_int("H (input height)", h, 1), _check_int("W (input width)", w, 1)


def layer_sizes(layers, input_size) -> List[Tuple[int, int]]:
    """Spatial size (H, W) of every layer's output for an ``input_size`` = (H, W) input, input first.

    Raises ``ValueError`` naming the first layer whose window does not fit its input.
    """
    layers = _check_layers(layers)
    size = _check_input_size(input_size)
    sizes = [size]
    for k, layer in enumerate(layers, start=1):
        try:
            size = tuple(output_size(n, layer.f, layer.p, layer.s, layer.d) for n in size)
        except ValueError as err:
            raise ValueError(
                f"Layer {k} ({layer.label}) would have an empty output on its {size[0]}×{size[1]} "
                f"input: {err}"
            ) from None
        sizes.append(size)
    return sizes


def _check_unit(layers, layer_index, i, j, input_size):
    sizes = layer_sizes(layers, input_size)
    k = _check_int("layer_index", layer_index, 0)
    if k > len(layers):
        raise ValueError(
            f"layer_index = {k} is past the last layer: use 0 (the input) to {len(layers)}."
        )
    h, w = sizes[k]
    i = _check_int("i (unit row)", i, 0)
    j = _check_int("j (unit column)", j, 0)
    if i >= h or j >= w:
        raise ValueError(
            f"Unit (i, j) = ({i}, {j}) is outside layer {k}, whose output is {h}×{w}: "
            f"use 0 ≤ i ≤ {h - 1} and 0 ≤ j ≤ {w - 1}."
        )
    return sizes, k, i, j


def input_rect(layers, layer_index, i, j, input_size, clip=True) -> Optional[Tuple[int, int, int, int]]:
    """The input window (top, left, bottom, right), inclusive pixel bounds, of unit (i, j) of a layer.

    ``clip=False`` gives the theoretical r × r window, which may reach into the
    padding (negative or ≥ H/W bounds); ``clip=True`` (default) intersects it
    with the H × W image, and returns ``None`` if the unit sees only padding.
    The rectangle is the window's extent: with dilation or a stride larger than
    the kernel the unit may skip pixels inside it, and border pixels that a
    strided layer drops are inside it too; ``input_support`` gives the exact set.
    """
    layers = _check_layers(layers)
    sizes, k, i, j = _check_unit(layers, layer_index, i, j, input_size)
    r, jump, a = _integers(layers)[k]
    top, left = a + i * jump, a + j * jump
    rect = (top, left, top + r - 1, left + r - 1)
    if not clip:
        return rect
    h, w = sizes[0]
    top, left, bottom, right = max(rect[0], 0), max(rect[1], 0), min(rect[2], h - 1), min(rect[3], w - 1)
    if top > bottom or left > right:
        return None
    return top, left, bottom, right


def _support_1d(layers, sizes, k, i):
    """Boolean (n,) mask of the input positions that unit i of layer k reads, along one axis."""
    mask = np.zeros(sizes[k], dtype=bool)
    mask[i] = True
    for layer, n_in in zip(layers[:k][::-1], sizes[:k][::-1]):
        units = np.flatnonzero(mask)
        taps = units[:, None] * layer.s - layer.p + layer.d * np.arange(layer.f)[None, :]  # (units, f)
        taps = taps[(taps >= 0) & (taps < n_in)]  # positions in the padding read zeros
        mask = np.zeros(n_in, dtype=bool)
        mask[taps] = True
    return mask


def input_support(layers, layer_index, i, j, input_size) -> np.ndarray:
    """Boolean (H, W) mask of the input pixels that can change unit (i, j) of a layer: the exact set.

    Walks the layers down from the unit, keeping only positions that exist
    (not padding), so it accounts for holes (dilation, stride > window),
    padding, and pixels that a strided layer never reads. Max pooling counts
    every pixel of its window (any one of them can win).
    """
    layers = _check_layers(layers)
    sizes, k, i, j = _check_unit(layers, layer_index, i, j, input_size)
    rows = _support_1d(layers, [s[0] for s in sizes], k, i)
    cols = _support_1d(layers, [s[1] for s in sizes], k, j)
    return np.outer(rows, cols)


# ----------------------------------------------------------------------------- torch models and brute force

def as_torch(layers, channels=1, *, in_channels=None, weight=None, generator=None, relu=False,
             max_as_avg=False, dtype=torch.float32) -> nn.Sequential:
    """The stack as an ``nn.Sequential`` on the CPU: ``nn.Conv2d`` (with bias) and pooling modules.

    Every convolution outputs ``channels`` maps; the first one reads
    ``in_channels`` (default ``channels``). Weights are all equal to ``weight``,
    or, with ``weight=None``, Kaiming-normal (std sqrt(2 / fan_in), He et al.
    2015) drawn from ``generator`` (a ``torch.Generator``, default one seeded
    with 0; torch's global RNG is never touched). Biases are zero. ``relu=True`` puts an ``nn.ReLU`` after
    every convolution except a final one. ``max_as_avg=True`` replaces max by
    average pooling (same window, but every pixel of it gets gradient).
    """
    layers = _check_layers(layers)
    channels = _check_int("channels", channels, 1)
    c = channels if in_channels is None else _check_int("in_channels", in_channels, 1)
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, Real) or not np.isfinite(weight)):
        raise ValueError(f"weight must be a finite number or None (random), got {weight!r}.")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    modules = []
    for k, layer in enumerate(layers):
        if layer.kind == "conv":
            # skip_init: nn.Conv2d's own initialisation would draw from the global RNG
            conv = nn.utils.skip_init(nn.Conv2d, c, channels, layer.f, stride=layer.s, padding=layer.p,
                                      dilation=layer.d, dtype=dtype)
            with torch.no_grad():
                if weight is None:
                    std = (2.0 / (c * layer.f * layer.f)) ** 0.5
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator, dtype=dtype,
                                                       device=generator.device) * std)
                else:
                    conv.weight.fill_(weight)
                conv.bias.zero_()
            modules.append(conv)
            c = channels
            if relu and k < len(layers) - 1:
                modules.append(nn.ReLU())
        elif layer.kind == "avgpool" or max_as_avg:
            modules.append(nn.AvgPool2d(layer.f, layer.s, layer.p))
        else:
            modules.append(nn.MaxPool2d(layer.f, layer.s, layer.p))
    return nn.Sequential(*modules)


def _input_gradient(model, x, i, j):
    """d(sum over channels of model(x)[:, :, i, j]) / dx, without touching any parameter's .grad."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = model(x)  # (B, C, H_k, W_k)
        (grad,) = torch.autograd.grad(y[:, :, i, j].sum(), x)
    return grad  # (B, C_in, H, W)


@on_cpu
def gradient_support(layers, input_size, layer_index, i, j) -> np.ndarray:
    """Brute force: boolean (H, W) mask of the input pixels with a nonzero gradient for unit (i, j).

    Builds ``as_torch`` of the first ``layer_index`` layers with every weight
    1.0, zero biases and no ReLU, so all paths add up and nothing cancels, in
    float64, and backpropagates from the unit. Max pooling is replaced by
    average pooling: max pooling routes the gradient through its argmax only,
    while the receptive field counts every pixel that could win (the windows,
    and so the field, are the same). Equals ``input_support``.
    """
    layers = _check_layers(layers)
    sizes, k, i, j = _check_unit(layers, layer_index, i, j, input_size)
    model = as_torch(layers[:k], 1, weight=1.0, max_as_avg=True, dtype=torch.float64)
    x = torch.zeros(1, 1, *sizes[0], dtype=torch.float64)
    return (_input_gradient(model, x, i, j)[0, 0] != 0).numpy()


@on_cpu
def effective_receptive_field(layers, input_size, *, channels=8, seed=0, relu=True, trials=1) -> np.ndarray:
    """The effective receptive field (Luo et al. 2016): |d y_centre / d x|, float64 (H, W), max 1.

    ``y_centre`` is the sum over channels of the last layer's unit
    (H_L // 2, W_L // 2). Each of ``trials`` draws new Kaiming-normal weights
    (``channels`` maps per convolution, one-channel input, zero biases, ReLU
    between convolutions if ``relu``, real max pooling) and a standard-normal
    input; the absolute gradients are averaged and scaled to a maximum of 1.
    Seeded by ``seed`` through a local ``torch.Generator``: torch's global RNG
    and every parameter's ``.grad`` are left alone. Nonzero only inside the
    theoretical field of the centre unit.
    """
    layers = _check_layers(layers)
    sizes = layer_sizes(layers, input_size)
    trials = _check_int("trials", trials, 1)
    seed = _check_int("seed", seed, 0)
    (h, w), (h_l, w_l) = sizes[0], sizes[-1]
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(h, w, dtype=torch.float64)
    for _ in range(trials):
        model = as_torch(layers, channels, in_channels=1, generator=generator, relu=relu)
        model.requires_grad_(False)  # only the input gradient is needed: no weight gradients computed
        x = torch.randn(1, 1, h, w, generator=generator, device=generator.device)
        total += _input_gradient(model, x, h_l // 2, w_l // 2)[0, 0].abs().double()
    peak = total.max()
    if peak == 0:
        raise ValueError(
            "Every gradient is zero (all ReLUs on the paths are off); try another seed, "
            "more channels or more trials."
        )
    return (total / peak).numpy()


@dataclass(frozen=True)
class ERFStats:
    """Summary of an ERF map, in input pixels.

    ``centroid`` and ``std``: (row, col) mean and standard deviation of the map
    read as a distribution (its "mass" is the sum of its values); ``peak``:
    (row, col) of the largest value; ``radius``: the smallest half-width h such
    that the (2h+1) × (2h+1) square centred on ``centre`` holds at least
    ``fraction`` of the mass.
    """
    centroid: Tuple[float, float]
    std: Tuple[float, float]
    peak: Tuple[int, int]
    centre: Tuple[int, int]
    radius: int
    fraction: float


def erf_stats(erf, fraction=0.95, centre=None) -> ERFStats:
    """Centroid, standard deviation, peak and mass radius of a non-negative (H, W) map.

    ``centre`` (row, col) defaults to the rounded centroid (steadier than the
    peak of a noisy map); pass the unit's theoretical centre to measure around it.
    The chapter compares ``2·radius + 1`` and ``std`` with the theoretical
    receptive field ``r`` (a uniform window of r pixels has std r/√12).
    """
    erf = np.asarray(erf, dtype=np.float64)
    if erf.ndim != 2 or erf.size == 0:
        raise ValueError(f"erf must be a non-empty 2-D (H, W) array, got shape {erf.shape}.")
    if not np.all(np.isfinite(erf)) or erf.min() < 0:
        raise ValueError("erf must hold finite, non-negative values (gradient magnitudes).")
    mass = erf.sum()
    if mass == 0:
        raise ValueError("erf is all zeros: there is no gradient mass to describe.")
    if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}.")
    rows, cols = np.indices(erf.shape)
    mr, mc = (erf * rows).sum() / mass, (erf * cols).sum() / mass
    sr = np.sqrt((erf * (rows - mr) ** 2).sum() / mass)
    sc = np.sqrt((erf * (cols - mc) ** 2).sum() / mass)
    pr, pc = np.unravel_index(np.argmax(erf), erf.shape)
    if centre is None:
        cr, cc = int(round(mr)), int(round(mc))
    else:
        try:
            cr, cc = (_check_int(name, v, 0) for name, v in zip(("centre row", "centre column"), centre))
        except (TypeError, ValueError) as err:
            raise ValueError(f"centre must be (row, col) inside the map; {err}") from None
        if cr >= erf.shape[0] or cc >= erf.shape[1]:
            raise ValueError(f"centre {tuple(centre)} is outside the {erf.shape[0]}×{erf.shape[1]} map.")
    ring = np.maximum(np.abs(rows - cr), np.abs(cols - cc))  # Chebyshev distance to the centre
    inside = np.cumsum(np.bincount(ring.ravel(), weights=erf.ravel()))  # mass within half-width h
    radius = int(np.searchsorted(inside, fraction * mass * (1 - 1e-12)))
    return ERFStats((float(mr), float(mc)), (float(sr), float(sc)), (int(pr), int(pc)), (cr, cc),
                    radius, float(fraction))
