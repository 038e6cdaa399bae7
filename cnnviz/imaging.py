"""Small conversions between arrays, PIL images and PNG bytes (for widgets and figures)."""
import base64
import io
import zlib

import numpy as np
from PIL import Image

__all__ = ["to_uint8", "to_rgb", "to_gray", "downscale", "png_bytes", "jpeg_bytes", "data_uri"]


def to_uint8(arr) -> np.ndarray:
    """Any image array (bool, uint8, uint16, int, float in [0, 1] or [0, 255]) as uint8."""
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16 or (np.issubdtype(a.dtype, np.integer) and a.max(initial=0) > 255):
        scaled = a.astype(np.float64) * (255.0 / max(float(a.max()), 1.0))
        return np.clip(scaled, 0, 255).round().astype(np.uint8)  # negative values are black, never wrapped
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64))
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] are common
        return np.clip(a * scale, 0, 255).round().astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)


def to_rgb(arr) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) → uint8 (H, W, 3); alpha is composited on white."""
    a = to_uint8(arr)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 3:
        return a
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        return (a[:, :, :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    raise ValueError(f"Not an image: expected (H, W) or (H, W, 1|3|4), got shape {a.shape}.")


def to_gray(arr) -> np.ndarray:
    """uint8 (H, W) luminance (ITU-R 601-2 weights, as PIL's 'L' mode)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        return to_uint8(a)
    rgb = to_rgb(a).astype(np.float32)
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).round().astype(np.uint8)


def downscale(arr, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side`` (aspect ratio kept); never enlarges."""
    a = np.asarray(arr)
    h, w = a.shape[:2]
    if max(h, w) <= max_side:
        return a
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (W, H)
    return np.array(Image.fromarray(a).resize(size, Image.Resampling.LANCZOS))  # writable copy


def png_bytes(arr, compress_level: int = 1, strategy: int = zlib.Z_RLE) -> bytes:
    """PNG-encode a uint8 (H, W) or (H, W, 3) array, lossless, quickly (for widgets).

    Level 1 is ~5× faster than zlib's default; the run-length strategy
    (``zlib.Z_RLE``) is ~30 % faster again on a 512×512 colour photo and the
    file no larger (bench/kernel_editor.py). Figures that are built once and
    kept in a page use ``data_uri``, which favours size.
    """
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, format="PNG", compress_level=compress_level, compress_type=strategy)
    return buf.getvalue()


def jpeg_bytes(arr, quality: int = 90) -> bytes:
    """JPEG-encode a uint8 (H, W) or (H, W, 3) array: ~15× faster than PNG for photos, slightly lossy."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, format="JPEG", quality=quality, subsampling=0)  # full-resolution colour
    return buf.getvalue()


def data_uri(arr, compress_level: int = 6) -> str:
    """A ``data:image/png;base64,...`` URI, for images embedded in static figures."""
    png = png_bytes(arr, compress_level, strategy=zlib.Z_DEFAULT_STRATEGY)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
