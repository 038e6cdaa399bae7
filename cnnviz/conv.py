"""Convolution arithmetic and an educational convolution on NumPy arrays.

Deep-learning libraries compute *cross-correlation* and call it convolution:
the kernel is slid over the image without being flipped. ``conv2d`` does the
same, so its results match ``torch.nn.functional.conv2d`` exactly.
"""
import math
from numbers import Integral

import numpy as np

__all__ = ["output_size", "conv2d", "MAX_ELEMENTS"]

#: The educational ``conv2d`` refuses inputs with more elements than this
#: (a 4096×4096 RGB image); ``cnnviz.kernels.filter_image`` handles large photos.
MAX_ELEMENTS = 4096 * 4096 * 3


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def output_size(n, f, p=0, s=1, d=1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(f-1) - 1)/s) + 1``.

    With dilation ``d = 1`` this is the lecture's ``floor((n + 2p - f)/s) + 1``.
    ``n``: input size, ``f``: kernel size, ``p``: padding on each side,
    ``s``: stride, ``d``: dilation. Raises ``ValueError`` with the numbers
    when the (dilated) kernel does not fit in the padded input.
    """
    n = _check_int("n (input size)", n, 1)
    f = _check_int("f (kernel size)", f, 1)
    p = _check_int("p (padding)", p, 0)
    s = _check_int("s (stride)", s, 1)
    d = _check_int("d (dilation)", d, 1)
    span = d * (f - 1) + 1  # the dilated kernel's extent
    if span > n + 2 * p:
        what = f"f = {f}" if d == 1 else f"the dilated kernel d(f-1)+1 = {span}"
        raise ValueError(
            f"The kernel does not fit: {what} > n + 2p = {n} + 2·{p} = {n + 2 * p}, "
            f"so floor((n + 2p - f)/s) + 1 = floor(({n + 2 * p} - {span})/{s}) + 1 "
            f"= {math.floor((n + 2 * p - span) / s) + 1} output positions. "
            "Use a smaller kernel or more padding."
        )
    return (n + 2 * p - span) // s + 1


def _as_array(name, value):
    """A finite float64 array from nested lists or an array, with clear errors."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name} must be a rectangular grid of numbers (every row the same length); {err}."
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty: give at least one row and one column of numbers.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; use finite numbers only.")
    return arr


def _check_size(arr):
    if arr.size > MAX_ELEMENTS:
        raise ValueError(
            f"The image has {arr.size:,} values, more than this educational conv2d accepts "
            f"({MAX_ELEMENTS:,}); downscale it or use cnnviz.kernels.filter_image."
        )


def conv2d(image, kernel, padding=0, stride=1) -> np.ndarray:
    """Cross-correlate ``image`` with ``kernel``, as deep-learning libraries do.

    Shapes: ``image`` is (H, W) with ``kernel`` (f, f), or (H, W, C) with
    ``kernel`` (f, f, C): the per-channel products are summed, giving one
    output map (the "RGB convolution" of the lecture). Zero padding of
    ``padding`` cells on each side, step ``stride``. Returns a float64 array of
    shape (H_out, W_out) with ``H_out = output_size(H, f, padding, stride)``.

    ``out[i, j] = sum_{u,v,c} padded[i*s + u, j*s + v, c] * kernel[u, v, c]``
    """
    if isinstance(image, np.ndarray):
        _check_size(image)  # refuse before copying a huge array to float64
    img = _as_array("The image", image)
    ker = _as_array("The kernel", kernel)
    if img.ndim not in (2, 3):
        raise ValueError(f"The image must be 2-D (H, W) or 3-D (H, W, C); got shape {img.shape}.")
    if ker.ndim != img.ndim:
        raise ValueError(
            f"The kernel must have the same number of dimensions as the image: image {img.shape}, "
            f"kernel {ker.shape}. A (H, W, C) image needs an (f, f, C) kernel."
        )
    if img.ndim == 3 and ker.shape[2] != img.shape[2]:
        raise ValueError(
            f"The kernel has {ker.shape[2]} channels but the image has {img.shape[2]}; they must match."
        )
    _check_size(img)
    p = _check_int("padding", padding, 0)
    s = _check_int("stride", stride, 1)
    # output_size raises the formula-with-numbers error for a kernel that does not fit
    h_out = output_size(img.shape[0], ker.shape[0], p, s)
    w_out = output_size(img.shape[1], ker.shape[1], p, s)
    if img.ndim == 2:
        img, ker = img[:, :, None], ker[:, :, None]
    padded = np.pad(img, ((p, p), (p, p), (0, 0)))  # zeros around the border
    windows = np.lib.stride_tricks.sliding_window_view(padded, ker.shape[:2], axis=(0, 1))
    windows = windows[::s, ::s][:h_out, :w_out]  # (H_out, W_out, C, f, f)
    return np.einsum("ijcuv,uvc->ij", windows, ker)
