"""Convolution-layer and pooling arithmetic: shapes, parameters, MACs, and traced cells.

Chapter 2 ("Padding, stride, channels and pooling") calls these functions for
every number it prints and for the explorer's animation. Like
``torch.nn.functional.conv2d``, the convolutions here are cross-correlations
(the kernel is not flipped), so ``conv_volume`` matches torch exactly.

Shapes follow PyTorch without the batch axis: an input volume is
(C_in, H, W), a bank of filters is (C_out, C_in, f, f), an output volume is
(C_out, H_out, W_out). Work is counted in MACs (multiply–accumulates), never
in FLOPs: one MAC is one multiplication plus one addition.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from cnnviz.conv import _as_array, _check_int, output_size

__all__ = [
    "same_padding", "conv_output_shape", "conv_params", "conv_macs", "dense_params",
    "check_budget", "conv_volume", "ConvTrace", "conv_trace", "ConvTraceValues",
    "conv_trace_values", "pool2d", "PoolTrace", "pool_trace", "MAX_MACS", "MAX_SIDE", "MAX_TRACE",
]

#: The educational functions below refuse layers needing more multiply–accumulates than this.
MAX_MACS = 50_000_000
#: ... and inputs with a side longer than this (explorers must refuse n = 10,000, not freeze).
MAX_SIDE = 2048
#: ``conv_trace`` lists at most this many products (C_in·f·f) for one output cell.
MAX_TRACE = 100_000

_POOL_MODES = ("max", "avg")


# ----------------------------------------------------------------------------- arithmetic

def same_padding(f, d=1) -> int:
    """The padding ``p = d(f-1)/2`` that keeps the size with stride 1 ("same" convolution).

    ``f``: kernel size, ``d``: dilation. ``same_padding(3) == 1``,
    ``same_padding(5) == 2``, ``same_padding(3, d=2) == 2``. Raises
    ``ValueError`` when ``d(f-1)`` is odd (an even kernel with ``d = 1``):
    equal padding on both sides cannot keep the size then.
    """
    f = _check_int("f (kernel size)", f, 1)
    d = _check_int("d (dilation)", d, 1)
    extra = d * (f - 1)  # the dilated kernel is this much wider than one pixel
    if extra % 2:
        raise ValueError(
            f"'same' padding needs p = d(f-1)/2 = {d}·{f - 1}/2 = {extra / 2} to be a whole number; "
            f"with f = {f} it is not. Use an odd kernel size (or an even dilation)."
        )
    return extra // 2


def _resolve_padding(p, f, s, d):
    """An int padding from an int, "valid" (0) or "same" (``same_padding``, stride 1 only)."""
    if isinstance(p, str):
        if p == "valid":
            return 0
        if p == "same":
            s = _check_int("s (stride)", s, 1)
            if s != 1:
                raise ValueError(
                    f"padding='same' keeps the size only with stride 1 (as in PyTorch), got s = {s}; "
                    "give the padding as a number instead."
                )
            return same_padding(f, d)
        raise ValueError(f"padding must be a whole number, 'valid' or 'same'; got {p!r}.")
    return _check_int("p (padding)", p, 0)


def conv_output_shape(c_in, h, w, c_out, f, p=0, s=1, d=1) -> Tuple[int, int, int]:
    """Shape (C_out, H_out, W_out) of a convolution layer on a (C_in, H, W) volume.

    ``c_out`` filters of size ``f`` × ``f`` × ``c_in``, padding ``p`` (a number
    of pixels on each side, ``"valid"`` = 0, or ``"same"`` = ``same_padding(f, d)``,
    stride 1 only), stride ``s``, dilation ``d``. The number of input channels
    does not change the output shape; it is checked and must be at least 1.
    """
    _check_int("c_in (input channels)", c_in, 1)
    c_out = _check_int("c_out (number of filters)", c_out, 1)
    p = _resolve_padding(p, f, s, d)
    return c_out, output_size(h, f, p, s, d), output_size(w, f, p, s, d)


def _check_bias(bias):
    if not isinstance(bias, (bool, np.bool_)):
        raise ValueError(f"bias must be True or False, got {bias!r}.")
    return int(bias)


def conv_params(c_in, c_out, f, bias=True, groups=1) -> int:
    """Learned parameters of a convolution layer: ``c_out·(f·f·c_in + 1)`` with a bias.

    Each of the ``c_out`` filters has ``f·f·c_in`` weights and one bias, shared
    by every output position (so the count is independent of the image size).
    ``f`` is the side of a square kernel, or a pair ``(f_h, f_w)`` for a
    rectangular one. With ``groups`` > 1 (AlexNet's two-GPU layers, depthwise
    convolutions) each filter sees only ``c_in / groups`` input channels:
    ``c_out·(f_h·f_w·c_in/groups + 1)``. Equals
    ``sum(p.numel() for p in nn.Conv2d(c_in, c_out, f, bias=bias, groups=groups).parameters())``.
    """
    c_in = _check_int("c_in (input channels)", c_in, 1)
    c_out = _check_int("c_out (number of filters)", c_out, 1)
    if isinstance(f, (tuple, list)):
        if len(f) != 2:
            raise ValueError(f"f (kernel size) is one number or a pair (f_h, f_w), got {f!r}.")
        f_h, f_w = (_check_int("f (kernel size)", v, 1) for v in f)
    else:
        f_h = f_w = _check_int("f (kernel size)", f, 1)
    groups = _check_int("groups", groups, 1)
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both c_in ({c_in}) and c_out ({c_out}): each group "
                         f"takes c_in / groups input channels and makes c_out / groups of the outputs.")
    return c_out * (f_h * f_w * (c_in // groups) + _check_bias(bias))


def dense_params(n_in, n_out, bias=True) -> int:
    """Learned parameters of a fully connected layer: ``n_out·(n_in + 1)`` with a bias."""
    n_in = _check_int("n_in (input units)", n_in, 1)
    n_out = _check_int("n_out (output units)", n_out, 1)
    return n_out * (n_in + _check_bias(bias))


def conv_macs(c_in, h, w, c_out, f, p=0, s=1, d=1) -> int:
    """Multiply–accumulates (MACs) of one convolution layer on one (C_in, H, W) input.

    ``H_out·W_out·C_out·f·f·C_in``: one MAC per weight per output position,
    padded zeros included (the hardware multiplies them too). Bias additions
    (``H_out·W_out·C_out`` of them) are not counted. These are MACs, not FLOPs;
    one MAC is about two floating-point operations.
    """
    c_in = _check_int("c_in (input channels)", c_in, 1)
    f = _check_int("f (kernel size)", f, 1)
    c_out, h_out, w_out = conv_output_shape(c_in, h, w, c_out, f, p, s, d)
    return h_out * w_out * c_out * f * f * c_in


def _check_side(what, shape):
    """Refuse inputs with a side over MAX_SIDE before any work or copy."""
    for n in shape:
        if n > MAX_SIDE:
            raise ValueError(
                f"{what} has a side of {n:,} pixels, more than the {MAX_SIDE:,} these educational "
                "functions accept; choose a smaller input (this is an explorer, not a framework)."
            )


def check_budget(c_in, h, w, c_out, f, p=0, s=1, d=1) -> int:
    """The layer's MACs (``conv_macs``) if an explorer may compute it, else ``ValueError``.

    Refuses an input side over ``MAX_SIDE`` or more than ``MAX_MACS``
    multiply–accumulates, with a sentence saying to choose smaller sizes, so a
    widget shows an error instead of freezing on n = 10,000.
    """
    _check_side("The input", (_check_int("h (input height)", h, 1), _check_int("w (input width)", w, 1)))
    macs = conv_macs(c_in, h, w, c_out, f, p, s, d)
    if macs > MAX_MACS:
        raise ValueError(
            f"This layer needs {macs:,} multiply–accumulates, more than the {MAX_MACS:,} this "
            "educational code computes; choose a smaller input, fewer channels or a smaller kernel."
        )
    return macs


# ----------------------------------------------------------------------------- the multi-channel convolution

def _volume_and_filters(x, w, b):
    """Validated float64 arrays x (C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,)."""
    for name, value, ndim in (("The input x", x, 3), ("The filters w", w, 4)):
        if isinstance(value, np.ndarray) and value.ndim == ndim:
            _check_side(name, value.shape[-2:])  # refuse before copying a huge array
    x = _as_array("The input x", x)
    w = _as_array("The filters w", w)
    if x.ndim != 3:
        raise ValueError(
            f"The input x must be 3-D (C_in, H, W); got shape {x.shape}. "
            "For a single-channel (H, W) image pass x[None]."
        )
    if w.ndim != 4:
        raise ValueError(
            f"The filters w must be 4-D (C_out, C_in, f, f); got shape {w.shape}. "
            "For one filter pass w[None]."
        )
    if w.shape[1] != x.shape[0]:
        raise ValueError(
            f"Each filter has {w.shape[1]} channels but the input has {x.shape[0]}; "
            "a filter must span every input channel (w.shape[1] == x.shape[0])."
        )
    _check_side("The input x", x.shape[1:])
    if b is not None:
        b = _as_array("The bias b", b)
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"The bias b must hold one number per filter, shape ({w.shape[0]},); got shape {b.shape}."
            )
    return x, w, b


def _geometry(x_shape, w_shape, padding, stride, dilation):
    """(p, s, d, h_out, w_out) with the output_size error when the kernel does not fit."""
    kh, kw = w_shape[2], w_shape[3]
    if kh != kw and isinstance(padding, str) and padding == "same":
        raise ValueError(f"padding='same' needs a square kernel here; got {kh}×{kw}.")
    p = _resolve_padding(padding, kh, stride, dilation)
    s = _check_int("stride", stride, 1)
    d = _check_int("dilation", dilation, 1)
    return p, s, d, output_size(x_shape[1], kh, p, s, d), output_size(x_shape[2], kw, p, s, d)


def conv_volume(x, w, b=None, padding=0, stride=1, dilation=1) -> np.ndarray:
    """A convolution layer on one volume: x (C_in, H, W), w (C_out, C_in, f, f), b (C_out,) → (C_out, H_out, W_out).

    ``out[o, i, j] = b[o] + sum_{c,u,v} padded[c, i*s + u*d, j*s + v*d] * w[o, c, u, v]``
    (cross-correlation, zero padding ``padding`` on each side, or ``"valid"``/``"same"``),
    exactly ``F.conv2d(x[None], w, b, stride, padding, dilation)[0]`` in float64.
    Rectangular (kh, kw) kernels work too. Raises ``ValueError`` for ragged,
    empty or non-finite arrays, mismatched channels, a kernel larger than the
    padded input, or more work than ``MAX_MACS``.
    """
    x, w, b = _volume_and_filters(x, w, b)
    p, s, d, h_out, w_out = _geometry(x.shape, w.shape, padding, stride, dilation)
    c_out, c_in, kh, kw = w.shape
    macs = h_out * w_out * c_out * c_in * kh * kw
    if macs > MAX_MACS:
        raise ValueError(
            f"This layer needs {macs:,} multiply–accumulates, more than the {MAX_MACS:,} this "
            "educational code computes; choose a smaller input, fewer channels or a smaller kernel."
        )
    padded = np.pad(x, ((0, 0), (p, p), (p, p)))  # (C_in, H + 2p, W + 2p), zeros around
    out = np.zeros((c_out, h_out, w_out))
    if kh * kw <= h_out * w_out:
        # one kernel tap (u, v) at a time: it meets a strided, shifted copy of the input
        for u in range(kh):
            for v in range(kw):
                rows = slice(u * d, u * d + s * (h_out - 1) + 1, s)
                cols = slice(v * d, v * d + s * (w_out - 1) + 1, s)
                out += np.tensordot(w[:, :, u, v], padded[:, rows, cols], axes=(1, 0))  # (C_out, H_out, W_out)
    else:
        # a kernel nearly as large as the input: fewer output cells than taps, loop over cells
        for i in range(h_out):
            for j in range(w_out):
                window = padded[:, i * s: i * s + d * (kh - 1) + 1: d, j * s: j * s + d * (kw - 1) + 1: d]
                out[:, i, j] = np.tensordot(w, window, axes=3)  # (C_out,)
    if b is not None:
        out += b[:, None, None]
    return out


# ----------------------------------------------------------------------------- tracing one output cell

@dataclass(frozen=True)
class ConvTrace:
    """Which input cells and kernel taps make output cell ``out_index = (o, i, j)``.

    The three position tuples are parallel, one entry per product, in the order
    channel, kernel row, kernel column (the order of ``ConvTraceValues.products``):

    - ``padded``: (c, row, col) in the zero-padded input of shape ``padded_shape``;
    - ``original``: the same cell as (c, row, col) in the unpadded input, or
      ``None`` where it falls in the padding;
    - ``kernel``: the tap (c, u, v) of filter ``o`` it is multiplied by.

    ``window`` is the (top, left, bottom, right) inclusive bounds of the
    (dilated) window in padded coordinates, for highlighting.
    """
    out_index: Tuple[int, int, int]
    output_shape: Tuple[int, int, int]
    padded_shape: Tuple[int, int, int]
    padding: int
    stride: int
    dilation: int
    window: Tuple[int, int, int, int]
    padded: Tuple[Tuple[int, int, int], ...]
    original: Tuple[Optional[Tuple[int, int, int]], ...]
    kernel: Tuple[Tuple[int, int, int], ...]


def _check_shape(name, shape, ndim, axes):
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{name} must be a tuple of {ndim} sizes {axes}, got {shape!r}.") from None
    if len(shape) != ndim:
        raise ValueError(f"{name} must be a tuple of {ndim} sizes {axes}, got {shape!r}.")
    return tuple(_check_int(f"{name}[{k}]", n, 1) for k, n in enumerate(shape))


def _check_index(name, index, shape, axes):
    """A valid tuple index into ``shape``, or a sentence naming the axis that is out of range."""
    try:
        index = tuple(index)
    except TypeError:
        raise ValueError(f"{name} must be a tuple {axes}, got {index!r}.") from None
    if len(index) != len(shape):
        raise ValueError(f"{name} must be a tuple {axes} of {len(shape)} numbers, got {index!r}.")
    axis_names = axes.strip("()").split(", ")
    out = []
    for a, k, n in zip(axis_names, index, shape):
        k = _check_int(f"{name} {a}", k, 0)
        if k >= n:
            raise ValueError(
                f"{name} {index} is outside the output of shape {tuple(shape)}: "
                f"{a} = {k} must be at most {n - 1}."
            )
        out.append(k)
    return tuple(out)


def conv_trace(x_shape, w_shape, out_index, padding=0, stride=1, dilation=1) -> ConvTrace:
    """The input cells and kernel taps behind one output cell, from shapes only (for animations).

    ``x_shape`` (C_in, H, W), ``w_shape`` (C_out, C_in, f, f), ``out_index``
    (o, i, j). Returns a ``ConvTrace``; ``conv_trace_values`` adds the numbers.
    """
    c_in, h, w = _check_shape("x_shape", x_shape, 3, "(C_in, H, W)")
    w_shape = _check_shape("w_shape", w_shape, 4, "(C_out, C_in, f, f)")
    c_out, wc, kh, kw = w_shape
    if wc != c_in:
        raise ValueError(
            f"Each filter has {wc} channels but the input has {c_in}; "
            "a filter must span every input channel (w_shape[1] == x_shape[0])."
        )
    _check_side("The input", (h, w))
    p, s, d, h_out, w_out = _geometry((c_in, h, w), w_shape, padding, stride, dilation)
    taps = c_in * kh * kw
    if taps > MAX_TRACE:
        raise ValueError(
            f"One output cell needs {taps:,} products, more than the {MAX_TRACE:,} this educational "
            "code traces; choose fewer channels or a smaller kernel."
        )
    o, i, j = _check_index("out_index", out_index, (c_out, h_out, w_out), "(o, i, j)")
    padded, original, kernel = [], [], []
    for c in range(c_in):
        for u in range(kh):
            for v in range(kw):
                r, q = i * s + u * d, j * s + v * d  # padded coordinates
                padded.append((c, r, q))
                inside = p <= r < p + h and p <= q < p + w
                original.append((c, r - p, q - p) if inside else None)
                kernel.append((c, u, v))
    window = (i * s, j * s, i * s + d * (kh - 1), j * s + d * (kw - 1))
    return ConvTrace((o, i, j), (c_out, h_out, w_out), (c_in, h + 2 * p, w + 2 * p), p, s, d,
                     window, tuple(padded), tuple(original), tuple(kernel))


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not traces
class ConvTraceValues:
    """The arithmetic of one output cell: ``total = channel_sums.sum() + bias``.

    ``inputs``, ``weights`` and ``products`` are (C_in, f, f) arrays (padded
    cells hold 0); ``channel_sums`` (C_in,) sums each channel's products.
    ``total`` equals ``conv_volume(...)[trace.out_index]`` up to rounding.
    """
    trace: ConvTrace
    inputs: np.ndarray
    weights: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray
    bias: float
    total: float


def conv_trace_values(x, w, b, out_index, padding=0, stride=1, dilation=1) -> ConvTraceValues:
    """``conv_trace`` with the numbers: the products per input channel, their sums, the bias, the total.

    ``x`` (C_in, H, W), ``w`` (C_out, C_in, f, f), ``b`` (C_out,) or ``None``
    (no bias, 0), ``out_index`` (o, i, j). Only this cell is computed, so any
    input the explorer accepts is fast.
    """
    x, w, b = _volume_and_filters(x, w, b)
    trace = conv_trace(x.shape, w.shape, out_index, padding, stride, dilation)
    o, i, j = trace.out_index
    p, s, d = trace.padding, trace.stride, trace.dilation
    kh, kw = w.shape[2:]
    rows = i * s + d * np.arange(kh) - p  # the window's rows and columns in unpadded coordinates
    cols = j * s + d * np.arange(kw) - p
    u = np.flatnonzero((rows >= 0) & (rows < x.shape[1]))[:, None]  # kernel rows on real pixels
    v = np.flatnonzero((cols >= 0) & (cols < x.shape[2]))[None, :]
    inputs = np.zeros((x.shape[0], kh, kw))  # (C_in, kh, kw); cells in the padding stay 0
    inputs[:, u, v] = x[:, rows[u], cols[v]]
    weights = w[o]  # (C_in, kh, kw)
    products = inputs * weights
    channel_sums = products.sum(axis=(1, 2))  # (C_in,)
    bias = 0.0 if b is None else float(b[o])
    return ConvTraceValues(trace, inputs, weights.copy(), products, channel_sums,
                           bias, float(channel_sums.sum() + bias))


# ----------------------------------------------------------------------------- pooling

def _pool_setup(x, f, s, p, mode):
    """Validated (array as (C, H, W), was_2d, f, s, p, h_out, w_out)."""
    if mode not in _POOL_MODES:
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}.")
    if isinstance(x, np.ndarray):
        _check_side("The input x", x.shape[-2:])  # refuse before copying a huge array
    x = _as_array("The input x", x)
    if x.ndim not in (2, 3):
        raise ValueError(f"The input x must be 2-D (H, W) or 3-D (C, H, W); got shape {x.shape}.")
    was_2d = x.ndim == 2
    if was_2d:
        x = x[None]
    _check_side("The input x", x.shape[1:])
    f = _check_int("f (window size)", f, 1)
    s = f if s is None else _check_int("s (stride)", s, 1)
    p = _check_int("p (padding)", p, 0)
    if 2 * p > f:
        raise ValueError(
            f"Pooling padding p = {p} must be at most half the window, f/2 = {f / 2} (as in PyTorch); "
            "otherwise a window could lie entirely in the padding."
        )
    h_out, w_out = output_size(x.shape[1], f, p, s), output_size(x.shape[2], f, p, s)
    work = x.shape[0] * h_out * w_out * f * f
    if work > MAX_MACS:
        raise ValueError(
            f"This pooling reads {work:,} window cells, more than the {MAX_MACS:,} this educational "
            "code computes; choose a smaller input or window."
        )
    return x, was_2d, f, s, p, h_out, w_out


def _pad_for(x, p, mode):
    # max pooling pads with -inf (padding never wins); average pooling pads with zeros that
    # count in the denominator f·f, PyTorch's default (count_include_pad=True)
    fill = -np.inf if mode == "max" else 0.0
    return np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=fill)


def pool2d(x, f, s=None, p=0, mode="max") -> np.ndarray:
    """Max or average pooling of x (C, H, W) or (H, W) with an f × f window, stride s (default f).

    Returns (C, H_out, W_out) or (H_out, W_out), ``H_out = floor((H + 2p - f)/s) + 1``,
    float64. Matches ``F.max_pool2d`` / ``F.avg_pool2d`` with their defaults:
    max pooling pads with -inf, average pooling pads with zeros and always
    divides by f·f; padding may be at most f/2. No learned parameters.
    """
    x, was_2d, f, s, p, h_out, w_out = _pool_setup(x, f, s, p, mode)
    padded = _pad_for(x, p, mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (f, f), axis=(1, 2))
    windows = windows[:, ::s, ::s][:, :h_out, :w_out]  # (C, H_out, W_out, f, f)
    out = windows.max(axis=(3, 4)) if mode == "max" else windows.mean(axis=(3, 4))
    return out[0] if was_2d else out


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not traces
class PoolTrace:
    """One pooled cell: its window, the values there, the result and (max) the winning cell.

    ``padded``/``original``: the window's cells as (row, col) in padded and
    unpadded coordinates (``None`` in the padding), in reading order; ``values``
    (f, f) the window as pooled (-inf or 0 in the padding, see ``pool2d``);
    ``argmax``: for max pooling the (row, col) in the unpadded input that won,
    the "switch" the backward pass routes the gradient through (first in
    reading order on ties); ``None`` for average pooling.
    """
    out_index: tuple
    mode: str
    padded: Tuple[Tuple[int, int], ...]
    original: Tuple[Optional[Tuple[int, int]], ...]
    values: np.ndarray
    value: float
    argmax: Optional[Tuple[int, int]]


def pool_trace(x, f, s, out_index, mode="max", p=0) -> PoolTrace:
    """The window behind one pooled cell and, for max pooling, its argmax cell (the switch).

    ``x`` (C, H, W) with ``out_index`` (c, i, j), or (H, W) with (i, j);
    ``s=None`` means stride f. ``value`` equals ``pool2d(x, f, s, p, mode)[out_index]``.
    """
    arr, was_2d, f, s, p, h_out, w_out = _pool_setup(x, f, s, p, mode)
    if was_2d:
        i, j = _check_index("out_index", out_index, (h_out, w_out), "(i, j)")
        c = 0
    else:
        c, i, j = _check_index("out_index", out_index, (arr.shape[0], h_out, w_out), "(c, i, j)")
    h, w = arr.shape[1:]
    values = _pad_for(arr[c:c + 1], p, mode)[0, i * s: i * s + f, j * s: j * s + f]  # (f, f)
    padded, original = [], []
    for u in range(f):
        for v in range(f):
            r, q = i * s + u, j * s + v
            padded.append((r, q))
            original.append((r - p, q - p) if p <= r < p + h and p <= q < p + w else None)
    if mode == "max":
        u, v = np.unravel_index(np.argmax(values), values.shape)  # first maximum in reading order
        argmax = (int(i * s + u - p), int(j * s + v - p))
        value = float(values[u, v])
    else:
        argmax, value = None, float(values.mean())
    index = (i, j) if was_2d else (c, i, j)
    return PoolTrace(index, mode, tuple(padded), tuple(original), values.copy(), value, argmax)
