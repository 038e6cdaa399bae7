"""Images and datasets: embedded ones that work offline, and the real ones when online.

Embedded images are the photos that ship inside scikit-image; the embedded
dataset is scikit-learn's 8×8 handwritten digits. Online datasets come from
torchvision into ``cache_dir()``; when one cannot be had, the error (or the
warning, with ``fallback=True``) names the embedded replacement.
"""
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnviz.imaging import downscale, to_gray, to_rgb

__all__ = [
    "EMBEDDED_IMAGES", "image_names", "load_image", "ImageError",
    "cache_dir", "load_dataset", "digits", "DatasetUnavailable", "ONLINE_DATASETS",
]

#: Photos bundled with scikit-image (no download needed), by name.
EMBEDDED_IMAGES = (
    "astronaut", "camera", "coffee", "chelsea", "brick", "coins", "rocket", "horse", "moon",
    "page", "text", "clock", "immunohistochemistry", "hubble_deep_field", "retina", "grass",
    "gravel", "logo", "colorwheel",
)

class ImageError(ValueError):
    """An image could not be read or understood; the message says what to do."""


def image_names():
    """The names accepted by ``load_image`` for embedded photos."""
    return list(EMBEDDED_IMAGES)


def _embedded(name):
    import skimage.data

    return getattr(skimage.data, name)()


def _decode(raw: bytes, what: str) -> np.ndarray:
    formats = "PNG, JPEG, GIF, BMP, TIFF and WebP work"
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.draft("RGB", (2048, 2048))  # JPEG: decode at reduced size when huge
            if im.mode in ("P", "PA", "LA", "CMYK", "YCbCr", "1"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            return np.asarray(im)
    except Image.DecompressionBombError:  # PIL's guard against absurd sizes (~179 megapixels)
        raise ImageError(f"{what} is too large to open (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
                         "megapixels); make it smaller first.") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image that can be read ({formats}).") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{what} could not be decoded ({err}); is it a complete image file? {formats}.") from None


def load_image(source="astronaut", *, gray: bool = False, max_side=None) -> np.ndarray:
    """An image as a uint8 array: (H, W, 3) RGB, or (H, W) with ``gray=True``.

    ``source``: an embedded photo's name (``image_names()``), a file path, or
    the bytes of an image file (e.g. an upload). RGBA is composited on white;
    grayscale, palette and 16-bit images are converted. ``max_side`` shrinks
    the image (aspect ratio kept) so its longer side is at most that.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        arr = _decode(bytes(source), "The uploaded file")
    elif isinstance(source, str) and source in EMBEDDED_IMAGES:
        arr = _embedded(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(
                f"{str(source)!r} is neither an embedded photo ({', '.join(EMBEDDED_IMAGES)}) nor an existing file."
            )
        arr = _decode(path.read_bytes(), f"The file {path.name!r}")
    elif isinstance(source, np.ndarray):
        arr = source
    else:
        raise ImageError(f"Cannot load an image from a {type(source).__name__}; give a name, a path or bytes.")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"Unsupported image shape {arr.shape}: expected 1, 3 or 4 channels.")
    out = to_gray(arr) if gray else to_rgb(arr)
    if max_side is not None:
        out = downscale(out, int(max_side))
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------- datasets

#: torchvision datasets cnnviz knows, with the embedded dataset to use offline.
ONLINE_DATASETS = {
    "mnist": ("MNIST", "digits"),
    "fashion_mnist": ("FashionMNIST", "digits"),
    "cifar10": ("CIFAR10", "digits"),
    "cifar100": ("CIFAR100", "digits"),
}


class DatasetUnavailable(RuntimeError):
    """A dataset is neither in the cache nor downloadable; the message names the embedded fallback."""


def cache_dir() -> Path:
    """Where datasets are stored: ``$CNNVIZ_DATA`` if set, else ``~/.cache/cnnviz``."""
    return Path(os.environ.get("CNNVIZ_DATA") or Path.home() / ".cache" / "cnnviz")


def digits():
    """scikit-learn's 1,797 handwritten digits (8×8, embedded: no download).

    Returns a ``TensorDataset`` of images (N, 1, 8, 8) float32 in [0, 1] and labels (N,) int64.
    """
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    return torch.utils.data.TensorDataset(x, y)


def load_dataset(name: str, *, root=None, train: bool = True, download: bool = True,
                 transform=None, fallback: bool = True):
    """A torchvision dataset by name (``ONLINE_DATASETS``), or ``"digits"`` (embedded).

    Files are kept in ``root`` (default ``cache_dir()``). When the dataset is
    not there and cannot be downloaded (no internet), ``fallback=True`` warns
    and returns the embedded ``digits()`` instead; ``fallback=False`` raises
    ``DatasetUnavailable`` with the same explanation.
    """
    key = name.lower().replace("-", "_")
    if key == "digits":
        return digits()
    if key not in ONLINE_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of: digits, {', '.join(ONLINE_DATASETS)}.")
    import torchvision.datasets as tvd

    cls_name, embedded = ONLINE_DATASETS[key]
    root = Path(root) if root is not None else cache_dir()
    try:
        return getattr(tvd, cls_name)(str(root), train=train, download=download, transform=transform)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision raises RuntimeError
        message = (
            f"{cls_name} is not in {root} and could not be downloaded ({type(err).__name__}: {err}). "
            f"Connect to the internet, or copy the dataset files into {root}, "
            f"or use the embedded dataset: cnnviz.data.load_dataset({embedded!r})."
        )
        if not fallback:
            raise DatasetUnavailable(message) from err
        warnings.warn(message + f" Using the embedded {embedded!r} dataset instead.", stacklevel=2)
        return load_dataset(embedded)


# ----------------------------------------------------------------------------- datasets as uint8 tensors in memory

__all__ += ["cifar10_tensors", "digits_tensors"]


def digits_tensors(*, test_fraction: float = 0.2) -> dict:
    """scikit-learn's digits as uint8 tensors: the embedded stand-in for ``cifar10_tensors`` (no download).

    Returns the same dict as ``cifar10_tensors``: ``train_images`` and ``test_images``
    (N, 1, 8, 8) uint8 (the 17 grey levels 0..16 scaled to 0..255), ``train_labels``
    and ``test_labels`` (N,) int64, ``classes`` ("0" ... "9"). The last
    ``test_fraction`` of the 1,797 images (in scikit-learn's order) is the test set.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction is the share of images kept for testing, between 0 and 1; "
                         f"got {test_fraction!r}.")
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255 / 16)).astype(np.uint8))[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(d.target.astype(np.int64))                                  # (1797,)
    n_train = len(labels) - int(round(test_fraction * len(labels)))
    return dict(train_images=images[:n_train], train_labels=labels[:n_train], test_images=images[n_train:],
                test_labels=labels[n_train:], classes=tuple(str(k) for k in range(10)))


def cifar10_tensors(*, root=None, download: bool = True, fallback=None) -> dict:
    """CIFAR-10 (Krizhevsky 2009) in memory as uint8 tensors, read once through torchvision.

    Returns a dict ready for ``cnnviz.train.TensorData.from_arrays(**d)``:
    ``train_images`` (50000, 3, 32, 32) and ``test_images`` (10000, 3, 32, 32)
    uint8, ``train_labels`` and ``test_labels`` int64, ``classes`` (10 names).
    About 180 MB; no PIL image is made per sample.

    When CIFAR-10 is not in ``root`` (default ``cache_dir()``) and cannot be
    downloaded, ``fallback=None`` raises ``DatasetUnavailable`` saying what to
    do; ``fallback="digits"`` warns and returns ``digits_tensors()`` instead
    (1 channel, 8×8: build the model for that, e.g. ``cifar_resnet(20, in_channels=1)``).
    """
    if fallback not in (None, "digits"):
        raise ValueError(f"fallback is None (raise when CIFAR-10 cannot be had) or 'digits'; got {fallback!r}.")
    import torch

    try:
        sets = [load_dataset("cifar10", root=root, train=train, download=download, fallback=False)
                for train in (True, False)]
    except DatasetUnavailable as err:
        cause = err.__cause__
        where = Path(root) if root is not None else cache_dir()
        message = (f"CIFAR-10 is not in {where} and could not be downloaded ({type(cause).__name__}: {cause}). "
                   f"Connect to the internet (download=True), or copy the folder cifar-10-batches-py into {where}")
        if fallback is None:
            raise DatasetUnavailable(message + ", or pass fallback='digits' to use the embedded digits "
                                     "instead.") from cause
        warnings.warn(message + ". Using the embedded digits (1 channel, 8x8) instead.", stacklevel=2)
        return digits_tensors()
    out = {}
    for split, ds in zip(("train", "test"), sets):
        out[f"{split}_images"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        out[f"{split}_labels"] = torch.as_tensor(ds.targets, dtype=torch.int64)              # (N,)
    out["classes"] = tuple(sets[0].classes)
    return out
