"""Data augmentation: every transformation with explicit parameters, in a deterministic and a random form.

The transformations go through ``torchvision.transforms.v2`` as its authors intend (the same call works on
one image (C, H, W), a batch (B, C, H, W) and a batch on the GPU); written here are only the two it lacks:
AlexNet's **PCA colour augmentation** (Krizhevsky et al. 2012, §4.1) and **lens distortion** (barrel and
pincushion, through ``grid_sample``), and the lecture's per-channel **colour shift**. Images are float
tensors in [0, 1].

``augment(image, key, **params)`` applies one transformation with the parameters given (the sliders of the
explorer; each has an identity setting that returns the image unchanged), ``random_transform(key, **params)``
the random form for training (a ``v2`` transform that draws its parameters up to the given magnitudes), and
``code(key, **params)`` the ``torchvision.transforms.v2`` line to paste into a training script.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ["Param", "Augmentation", "AUGMENTATIONS", "AugmentationError", "check_params", "augment",
           "random_transform", "code", "pipeline_code", "PCABasis", "pca_basis", "pca_colour", "RandomPCAColour",
           "lens_distortion", "RandomLensDistortion", "channel_shift", "RandomChannelShift", "checkerboard",
           "as_image_tensor"]


class AugmentationError(ValueError):
    """A transformation or parameter that cannot be used; the message says what is allowed."""


@dataclass(frozen=True)
class Param:
    """One parameter: its range, the value that changes nothing, and what it means."""
    name: str
    low: float
    high: float
    identity: float
    label: str


@dataclass(frozen=True)
class Augmentation:
    """One transformation: its key, name, family ("flip", "crop", "colour" or "geometry"), parameters, and
    whether it moves pixels (then the explorer draws a warped checkerboard beside it)."""
    key: str
    label: str
    family: str
    params: tuple
    geometric: bool

    def identity(self) -> dict:
        return {p.name: p.identity for p in self.params}


def _p(name, low, high, identity, label):
    return Param(name, float(low), float(high), float(identity), label)


AUGMENTATIONS = {a.key: a for a in [
    Augmentation("hflip", "horizontal flip (mirror)", "flip", (_p("p", 0, 1, 0, "flip it (1) or not (0)"),), True),
    Augmentation("vflip", "vertical flip", "flip", (_p("p", 0, 1, 0, "flip it (1) or not (0)"),), True),
    Augmentation("crop", "random crop and rescale", "crop",
                 (_p("scale", 0.08, 1, 1, "share of the area kept"), _p("x", -1, 1, 0, "horizontal position"),
                  _p("y", -1, 1, 0, "vertical position")), True),
    Augmentation("translate", "translation", "geometry",
                 (_p("dx", -0.5, 0.5, 0, "shift right (share of the width)"),
                  _p("dy", -0.5, 0.5, 0, "shift down (share of the height)")), True),
    Augmentation("rotate", "rotation", "geometry", (_p("angle", -180, 180, 0, "degrees, anticlockwise"),), True),
    Augmentation("shear", "shear", "geometry", (_p("angle", -45, 45, 0, "degrees"),), True),
    Augmentation("stretch", "stretching", "geometry",
                 (_p("sx", 0.5, 2, 1, "horizontal scale"), _p("sy", 0.5, 2, 1, "vertical scale")), True),
    Augmentation("perspective", "perspective", "geometry", (_p("distortion", 0, 0.8, 0, "how far corners move"),),
                 True),
    Augmentation("lens", "lens distortion", "geometry",
                 (_p("k", -0.5, 0.5, 0, "barrel (< 0) or pincushion (> 0)"),), True),
    Augmentation("brightness", "brightness", "colour", (_p("factor", 0.2, 2, 1, "multiply every pixel"),), False),
    Augmentation("contrast", "contrast", "colour", (_p("factor", 0.2, 2, 1, "stretch around the mean grey"),), False),
    Augmentation("saturation", "saturation", "colour", (_p("factor", 0, 2, 1, "0: grey, 1: as is"),), False),
    Augmentation("hue", "hue", "colour", (_p("shift", -0.5, 0.5, 0, "turn of the colour wheel"),), False),
    Augmentation("shift", "colour shift (per channel)", "colour",
                 (_p("r", -60, 60, 0, "added to red (0–255 levels)"), _p("g", -60, 60, 0, "added to green"),
                  _p("b", -60, 60, 0, "added to blue")), False),
    Augmentation("pca", "PCA colour (AlexNet)", "colour",
                 (_p("a1", -3, 3, 0, "α along the 1st principal axis"), _p("a2", -3, 3, 0, "α along the 2nd"),
                  _p("a3", -3, 3, 0, "α along the 3rd")), False),
]}


def check_params(key: str, **params) -> dict:
    """The full parameters of ``key`` (missing ones at their identity), or ``AugmentationError`` naming what is
    wrong and the allowed range."""
    if key not in AUGMENTATIONS:
        raise AugmentationError(f"Unknown transformation {key!r}: choose one of {', '.join(AUGMENTATIONS)}.")
    aug = AUGMENTATIONS[key]
    names = {p.name for p in aug.params}
    unknown = set(params) - names
    if unknown:
        raise AugmentationError(f"{aug.label} has no parameter {', '.join(sorted(unknown))}; its parameters are "
                                f"{', '.join(sorted(names))}.")
    out = aug.identity()
    for p in aug.params:
        if p.name not in params:
            continue
        v = params[p.name]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise AugmentationError(f"{aug.label}: {p.name} must be a number from {p.low:g} to {p.high:g}; got {v!r}.")
        if not p.low <= v <= p.high:
            raise AugmentationError(f"{aug.label}: {p.name} = {v:g} is outside its range, {p.low:g} to {p.high:g} "
                                    f"({p.label}).")
        out[p.name] = float(v)
    if aug.family == "flip" and out["p"] not in (0.0, 1.0):
        raise AugmentationError(f"A flip is done (p = 1) or not (p = 0); got p = {out['p']:g}.")
    return out


def as_image_tensor(image) -> tuple:
    """``(tensor, note)``: an image as a float (C, H, W) or (B, C, H, W) tensor in [0, 1]. Takes a uint8 or
    float array (H, W), (H, W, 3) or (H, W, 4) (RGBA is composited on white, grey made RGB, 16-bit scaled: the
    note says which), or a tensor already in that layout."""
    note = ""
    if isinstance(image, torch.Tensor):
        t = image
        if t.dtype == torch.uint8:
            t = t.float() / 255
        elif not t.is_floating_point():
            raise AugmentationError(f"An image tensor must be uint8 or float, not {t.dtype}.")
        if t.dim() not in (3, 4) or t.shape[-3] not in (1, 3):
            raise AugmentationError(f"An image tensor is (C, H, W) or (B, C, H, W) with 1 or 3 channels; got "
                                    f"shape {tuple(t.shape)}.")
        return t, note
    arr = np.asarray(image)
    if arr.dtype == np.uint16:
        arr, note = (arr / 257).round().astype(np.uint8), "16-bit image scaled to 8 bits. "
    from cnnviz.imaging import to_rgb

    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 4)):
        note += "Grey image shown as RGB. " if arr.ndim == 2 or arr.shape[2] == 1 else "Transparency composited on white. "
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise AugmentationError(f"Not an image: an array of shape {arr.shape}.")
    try:
        rgb = to_rgb(arr)                                                    # (H, W, 3) uint8
    except ValueError as err:
        raise AugmentationError(f"Not an image this can show: {err}") from err
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255, note.strip()


# ----------------------------------------------------------------------------- the transformations written here


@dataclass(frozen=True)
class PCABasis:
    """The principal axes of a set of RGB pixels: ``eigenvalues`` (3,) largest first, ``eigenvectors`` (3, 3) one
    per column, the ``covariance`` (3, 3) and ``mean`` (3,) they come from, and ``pixels`` (how many)."""
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    covariance: torch.Tensor
    mean: torch.Tensor
    pixels: int


def pca_basis(images) -> PCABasis:
    """AlexNet's PCA over a whole data set: the 3×3 covariance of *all* RGB pixels of ``images`` ((N, 3, H, W)
    floats in [0, 1], or a list of such (3, H, W) images of any sizes), and its eigen-decomposition
    (``torch.linalg.eigh``, sorted largest first)."""
    tensors = [images] if isinstance(images, torch.Tensor) and images.dim() == 4 else \
        [as_image_tensor(im)[0] for im in images]
    if not tensors or any(t.shape[-3] != 3 for t in tensors):
        raise AugmentationError("PCA colour augmentation needs RGB images (3 channels): give (N, 3, H, W) or a list "
                                "of (3, H, W) images.")
    pixels = torch.cat([t.transpose(0, -3).reshape(3, -1) for t in tensors], 1)             # (3, P)
    x = pixels.cpu().double()                                                # (3, P); MPS has no float64
    mean = x.mean(1)
    cov = torch.cov(x)                                                       # (3, 3), divided by P − 1
    values, vectors = torch.linalg.eigh(cov)                                  # ascending
    order = values.argsort(descending=True)
    return PCABasis(values[order].float(), vectors[:, order].float(), cov.float(), mean.float(), x.shape[1])


def pca_colour(image: torch.Tensor, alphas, basis: PCABasis) -> torch.Tensor:
    """Add ``Σ_i α_i λ_i p_i`` to every pixel of ``image`` (Krizhevsky et al. 2012, §4.1: p_i, λ_i the
    eigenvectors and eigenvalues of ``basis``; one α per image), then clip to [0, 1]. ``alphas``: (3,) for one
    image or a batch sharing them, or (B, 3), one row per image of a batch."""
    a = torch.as_tensor(alphas, dtype=image.dtype, device=image.device)
    offset = (a * basis.eigenvalues.to(image)) @ basis.eigenvectors.to(image).T   # (..., 3)
    return (image + offset[..., :, None, None]).clamp(0, 1)


class RandomPCAColour(torch.nn.Module):
    """PCA colour augmentation at random: α ~ N(0, ``std``²) drawn per image (AlexNet: std 0.1). Works on a
    (C, H, W) image or a (B, C, H, W) batch, on any device, with one draw per image of the batch."""

    def __init__(self, basis: PCABasis, std: float = 0.1):
        super().__init__()
        self.basis, self.std = basis, float(std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-3] != 3:
            return image  # a grey image has no colour to shift, as in ``augment``
        shape = image.shape[:-3] + (3,)
        alphas = torch.randn(shape, device=image.device) * self.std
        return pca_colour(image, alphas, self.basis)


def channel_shift(image: torch.Tensor, offsets) -> torch.Tensor:
    """Add ``offsets`` (r, g, b, in 0–255 levels, like the lecture's +20, −20, +20) to the three channels;
    clip to [0, 1]."""
    o = torch.as_tensor(offsets, dtype=image.dtype, device=image.device) / 255
    return (image + o[..., :, None, None]).clamp(0, 1)


class RandomChannelShift(torch.nn.Module):
    """A colour shift drawn per image, each channel's offset uniform in ±``max_offset`` levels."""

    def __init__(self, max_offset: float = 20):
        super().__init__()
        self.max_offset = float(max_offset)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-3] != 3:
            return image  # a grey image has no colour to shift, as in ``augment``
        o = (torch.rand(image.shape[:-3] + (3,), device=image.device) * 2 - 1) * self.max_offset
        return channel_shift(image, o)


def lens_distortion(image: torch.Tensor, k) -> torch.Tensor:
    """Radial lens distortion with coefficient ``k`` (one number, or (B,) one per image): the output pixel at
    radius r (1 at the middle of each side) takes the input at r / (1 + k·r²), by bilinear ``grid_sample``. With
    k < 0 the magnification falls towards the edges (barrel: straight lines bow outwards, the corners show
    more of the scene, black beyond it); with k > 0 it grows (pincushion: lines bow inwards); 0 is the
    identity. For |k| ≤ 0.5 the mapping keeps growing out to the corners (r = √2): it never folds back."""
    squeeze = image.dim() == 3
    x = image[None] if squeeze else image
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype),
                            torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype), indexing="ij")
    r2 = (xs.square() + ys.square())[None]                                  # (1, H, W)
    kk = torch.as_tensor(k, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    factor = 1 / (1 + kk * r2).clamp_min(1e-6)  # (B or 1, H, W); at k = −0.5 the corners sample far outside: black
    grid = torch.stack([xs[None] * factor, ys[None] * factor], -1).expand(b, h, w, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0] if squeeze else out


class RandomLensDistortion(torch.nn.Module):
    """Lens distortion drawn per image, k uniform in ±``max_k``."""

    def __init__(self, max_k: float = 0.2):
        super().__init__()
        self.max_k = float(max_k)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n = image.shape[0] if image.dim() == 4 else 1
        return lens_distortion(image, (torch.rand(n, device=image.device) * 2 - 1) * self.max_k)


# ----------------------------------------------------------------------------- deterministic forms


def _crop_box(h, w, scale, x, y):
    side_h, side_w = max(1, round(h * math.sqrt(scale))), max(1, round(w * math.sqrt(scale)))
    top = round((h - side_h) * (y + 1) / 2)
    left = round((w - side_w) * (x + 1) / 2)
    return top, left, side_h, side_w


def _stretch(image, sx, sy):
    h, w = image.shape[-2:]
    # an affine map with a different scale per axis: v2's affine takes one scale, so go through its matrix
    theta = torch.tensor([[1 / sx, 0, 0], [0, 1 / sy, 0]], dtype=image.dtype, device=image.device)
    x = image[None] if image.dim() == 3 else image
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0] if image.dim() == 3 else out


def _corners(h, w, d):
    """The perspective's start and end corners: each corner moves inward by ``d`` of half the side (top corners
    inward horizontally, as a picture tilted away from the viewer)."""
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    dx = round(d * (w - 1) / 2)
    end = [[dx, 0], [w - 1 - dx, 0], [w - 1, h - 1], [0, h - 1]]
    return start, end


_BASIS = {}


def default_basis() -> PCABasis:
    """The PCA basis of the embedded colour photos (all their pixels, at up to 256 pixels a side)."""
    if "photos" not in _BASIS:
        from cnnviz.data import load_image
        from cnnviz.shapes import BACKGROUND_PHOTOS

        photos = [load_image(name, max_side=256) for name in BACKGROUND_PHOTOS if name != "page"]
        _BASIS["photos"] = pca_basis([p for p in photos if p.ndim == 3 and not np.all(p[..., 0] == p[..., 1])])
    return _BASIS["photos"]


__all__ += ["default_basis"]


def augment(image: torch.Tensor, key: str, *, basis: Optional[PCABasis] = None, **params) -> torch.Tensor:
    """``image`` ((C, H, W) or (B, C, H, W), float in [0, 1]) transformed by ``key`` with ``params`` (see
    ``AUGMENTATIONS``; missing ones at their identity). Same size out as in. ``basis``: the PCA basis for "pca"
    (default: the embedded photos')."""
    p = check_params(key, **params)
    if p == AUGMENTATIONS[key].identity():
        return image  # exactly: interpolating at the identity would still blur by a rounding error
    h, w = image.shape[-2:]
    if key in ("hflip", "vflip"):
        return (TF.horizontal_flip if key == "hflip" else TF.vertical_flip)(image) if p["p"] else image
    if key == "crop":
        top, left, ch, cw = _crop_box(h, w, p["scale"], p["x"], p["y"])
        return TF.resized_crop(image, top, left, ch, cw, [h, w], antialias=True)
    if key == "translate":
        return TF.affine(image, angle=0.0, translate=[p["dx"] * w, p["dy"] * h], scale=1.0, shear=[0.0, 0.0],
                         interpolation=v2.InterpolationMode.BILINEAR)
    if key == "rotate":
        return TF.rotate(image, p["angle"], interpolation=v2.InterpolationMode.BILINEAR)
    if key == "shear":
        return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=[p["angle"], 0.0],
                         interpolation=v2.InterpolationMode.BILINEAR)
    if key == "stretch":
        return image if p["sx"] == p["sy"] == 1 else _stretch(image, p["sx"], p["sy"])
    if key == "perspective":
        if p["distortion"] == 0:
            return image
        start, end = _corners(h, w, p["distortion"])
        return TF.perspective(image, start, end, interpolation=v2.InterpolationMode.BILINEAR)
    if key == "lens":
        return image if p["k"] == 0 else lens_distortion(image, p["k"])
    if key == "brightness":
        return TF.adjust_brightness(image, p["factor"])
    if key == "contrast":
        return TF.adjust_contrast(image, p["factor"])
    if key in ("saturation", "hue") and image.shape[-3] != 3:
        return image  # a grey image has no saturation or hue to change
    if key == "saturation":
        return TF.adjust_saturation(image, p["factor"])
    if key == "hue":
        return TF.adjust_hue(image, p["shift"])
    if key == "shift":
        return channel_shift(image, [p["r"], p["g"], p["b"]]) if image.shape[-3] == 3 else image
    if image.shape[-3] != 3:
        return image
    return pca_colour(image, [p["a1"], p["a2"], p["a3"]], basis or default_basis())


def random_transform(key: str, *, basis: Optional[PCABasis] = None, **params) -> torch.nn.Module:
    """The random form of ``key`` for training: a ``torchvision.transforms.v2`` transform (or one of this
    module's, for what v2 lacks) that draws each parameter between its identity and the value given, on
    either side where that makes sense (rotation by ±angle, say). A value at the identity gives ``v2.Identity``."""
    p = check_params(key, **params)
    ident = AUGMENTATIONS[key].identity()
    if p == ident:
        return v2.Identity()
    if key == "hflip":
        return v2.RandomHorizontalFlip(0.5)
    if key == "vflip":
        return v2.RandomVerticalFlip(0.5)
    if key == "crop":
        return _SameSizeCrop(p["scale"])
    bilinear = v2.InterpolationMode.BILINEAR  # as ``augment`` does (v2's default is nearest)
    if key == "translate":
        return v2.RandomAffine(degrees=0, translate=(abs(p["dx"]), abs(p["dy"])), interpolation=bilinear)
    if key == "rotate":
        return v2.RandomRotation(abs(p["angle"]), interpolation=bilinear)
    if key == "shear":
        return v2.RandomAffine(degrees=0, shear=abs(p["angle"]), interpolation=bilinear)
    if key == "stretch":
        lo = min(p["sx"], p["sy"], 1 / p["sx"], 1 / p["sy"])
        return _RandomStretch(lo)
    if key == "perspective":
        return v2.RandomPerspective(distortion_scale=p["distortion"], p=1.0)
    if key == "lens":
        return RandomLensDistortion(abs(p["k"]))
    if key in ("brightness", "contrast", "saturation"):
        d = abs(p["factor"] - 1)
        return v2.ColorJitter(**{key: (max(0.0, 1 - d), 1 + d)})
    if key == "hue":
        return v2.ColorJitter(hue=abs(p["shift"]))
    if key == "shift":
        return RandomChannelShift(max(abs(p["r"]), abs(p["g"]), abs(p["b"])))
    return RandomPCAColour(basis or default_basis(), std=max(abs(p["a1"]), abs(p["a2"]), abs(p["a3"])) / 3)


class _SameSizeCrop(torch.nn.Module):
    """``v2.RandomResizedCrop`` back to the input's own size, keeping between ``scale`` and all of the area."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def forward(self, image):
        return v2.RandomResizedCrop(list(image.shape[-2:]), scale=(self.scale, 1.0), antialias=True)(image)


class _RandomStretch(torch.nn.Module):
    """Each axis scaled by a factor drawn log-uniformly between ``low`` and 1/``low``."""

    def __init__(self, low: float):
        super().__init__()
        self.low = float(low)

    def forward(self, image):
        s = torch.exp((torch.rand(2) * 2 - 1) * math.log(1 / self.low)).tolist()
        return _stretch(image, s[0], s[1])


def code(key: str, **params) -> str:
    """The ``torchvision.transforms.v2`` expression of the random form of ``key`` at ``params`` (for what v2
    lacks, the ``cnnviz.augmentation`` class that does it)."""
    p = check_params(key, **params)
    if p == AUGMENTATIONS[key].identity():
        return "v2.Identity()"
    return {
        "hflip": lambda: "v2.RandomHorizontalFlip(p=0.5)",
        "vflip": lambda: "v2.RandomVerticalFlip(p=0.5)",
        "crop": lambda: f"v2.RandomResizedCrop(size, scale=({p['scale']:.2f}, 1.0))",
        "translate": lambda: (f"v2.RandomAffine(degrees=0, translate=({abs(p['dx']):.3g}, {abs(p['dy']):.3g}), "
                              "interpolation=v2.InterpolationMode.BILINEAR)"),
        "rotate": lambda: (f"v2.RandomRotation(degrees={abs(p['angle']):g}, "
                           "interpolation=v2.InterpolationMode.BILINEAR)"),
        "shear": lambda: (f"v2.RandomAffine(degrees=0, shear={abs(p['angle']):g}, "
                          "interpolation=v2.InterpolationMode.BILINEAR)"),
        "stretch": lambda: f"cnnviz.augmentation.random_transform('stretch', sx={p['sx']:.2f}, sy={p['sy']:.2f})",
        "perspective": lambda: f"v2.RandomPerspective(distortion_scale={p['distortion']:.2f}, p=1.0)",
        "lens": lambda: f"cnnviz.augmentation.RandomLensDistortion(max_k={abs(p['k']):.2f})",
        "brightness": lambda: f"v2.ColorJitter(brightness={abs(p['factor'] - 1):.2f})",
        "contrast": lambda: f"v2.ColorJitter(contrast={abs(p['factor'] - 1):.2f})",
        "saturation": lambda: f"v2.ColorJitter(saturation={abs(p['factor'] - 1):.2f})",
        "hue": lambda: f"v2.ColorJitter(hue={abs(p['shift']):.2f})",
        "shift": lambda: f"cnnviz.augmentation.RandomChannelShift(max_offset={max(abs(p['r']), abs(p['g']), abs(p['b'])):g})",
        "pca": lambda: (f"cnnviz.augmentation.RandomPCAColour(basis, std="
                        f"{max(abs(p['a1']), abs(p['a2']), abs(p['a3'])) / 3:.3g})"),
    }[key]()


def pipeline_code(steps) -> str:
    """``v2.Compose([...])`` of ``steps`` (a list of ``(key, params)``), one transformation per line."""
    lines = [f"    {code(k, **p)}," for k, p in steps] or ["    v2.Identity(),"]
    return "from torchvision.transforms import v2\n\ntrain_transform = v2.Compose([\n" + "\n".join(lines) + "\n])"


def checkerboard(size: int = 128, squares: int = 8) -> torch.Tensor:
    """A (3, size, size) black-and-white checkerboard with a red centre line across and a blue one down: what
    a geometric transformation does to straight lines shows on it."""
    idx = torch.arange(size) * squares // size
    board = ((idx[:, None] + idx[None, :]) % 2).float()
    img = board.expand(3, size, size).clone() * 0.85 + 0.1
    mid = size // 2
    img[:, mid - 1:mid + 1, :] = torch.tensor([0.85, 0.1, 0.1])[:, None, None]
    img[:, :, mid - 1:mid + 1] = torch.tensor([0.1, 0.2, 0.85])[:, None, None]
    return img
