"""Coloured shapes on cluttered backgrounds: an image dataset cnnviz generates itself, offline, in seconds.

The visualisation chapter needs a model whose filters and feature maps mean
something on a machine without internet. ``make_shapes`` draws labelled
images of six shapes (``CLASSES``) at random positions, sizes, rotations and
colours, on backgrounds that carry no information about the class: random
crops of scikit-image's photos (recoloured), smooth colour gradients, and
blotchy noise. A network can only tell the classes apart by the shape's
outline: its edges, corners, holes and arms, and the colour contrast that
makes them. So the first layer has to learn edge and colour-contrast
detectors, and an occluder over the background changes little while one
over the shape changes the answer (Zeiler & Fergus 2014, §4.2).

Everything is drawn with batched torch operations (no loop over images):
a few thousand 64×64 images a second on a laptop CPU.
"""
import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from cnnviz.runtime import on_cpu

__all__ = ["CLASSES", "NEW_CLASSES", "SHAPES", "TEXTURES", "BACKGROUND_PHOTOS", "make_shapes", "make_textures",
           "shape_distance"]

#: The class names, in the order of the labels.
CLASSES = ("disc", "square", "triangle", "ring", "cross", "star")

#: Six further shapes, drawn the same way: the *similar* target of the transfer-learning chapter (chapter 14),
#: classes a network trained on ``CLASSES`` has never seen.
NEW_CLASSES = ("hexagon", "half-disc", "crescent", "ellipse", "bar", "ell")

#: Every shape ``make_shapes`` can draw.
SHAPES = CLASSES + NEW_CLASSES

#: scikit-image photos whose crops are the classes of ``make_textures``: the *different* target of chapter 14
#: (which material is this?), where the shape a network learnt to look for is absent.
TEXTURES = ("brick", "grass", "gravel", "text", "hubble_deep_field", "immunohistochemistry")

#: scikit-image photos whose random crops serve as backgrounds (not ``horse``: a silhouette is a shape).
BACKGROUND_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "brick", "coins", "rocket", "moon", "page",
                     "text", "clock", "immunohistochemistry", "hubble_deep_field", "retina", "grass", "gravel")

_PHOTO_SIDE = 160     # photos are kept as (P, 3, 160, 160) in [0, 1]: crops of it are resized to the image


# ----------------------------------------------------------------------------- shapes


def _box(a, b, cx, cy, hx, hy):
    """Signed distance (exact along the sides) to the rectangle centred at (cx, cy) with half-sides hx, hy."""
    return torch.maximum((a - cx).abs() - hx, (b - cy).abs() - hy)


def shape_distance(labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor, classes=CLASSES) -> torch.Tensor:
    """How far outside each image's shape every point lies, in the shape's own coordinates.

    ``labels`` (N,) class indices into ``classes`` (names from ``SHAPES``); ``u``, ``v`` (N, H, W):
    coordinates centred on the shape, rotated with it and divided by its
    radius, so every shape reaches about 1 from its centre. Returns (N, H, W):
    negative inside, positive outside, and near the outline the distance to
    it (in radius units; exact along straight edges and circles, which is
    what antialiasing needs). Disc: radius 1; square: half-side 0.8;
    triangle: equilateral, corners at 1.1; ring: radii 0.55 to 1; cross: arms
    1 long and 0.56 wide; star: five points at 1.1, inner corners at 0.5. The new shapes: hexagon: corners at
    1; half-disc: radius 1.1, centred so its middle is at the origin; crescent: a disc of radius 1 less one of
    0.8 shifted by 0.45; ellipse: semi-axes 1 and 0.55 (the distance is approximate: the radius-scaled level
    set, enough for antialiasing); bar: 2 by 0.7; ell: an L of two bars 0.42 wide, centred on its centroid.
    """
    rho = torch.sqrt(u * u + v * v)                                             # (N, H, W)
    out = torch.empty_like(u)
    for k, name in enumerate(classes):
        idx = (labels == k).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        a, b, r = u[idx], v[idx], rho[idx]
        if name == "disc":
            d = r - 1
        elif name == "square":
            d = torch.maximum(a.abs(), b.abs()) - 0.8
        elif name == "triangle":  # three half-planes with normals 120° apart: inradius 0.55, corners at 1.1
            d = torch.stack([a * math.cos(t) + b * math.sin(t) - 0.55
                             for t in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]).amax(0)
        elif name == "ring":
            d = torch.maximum(r - 1, 0.55 - r)
        elif name == "cross":  # the union of two bars
            d = torch.minimum(torch.maximum(a.abs() - 0.28, b.abs() - 1), torch.maximum(b.abs() - 0.28, a.abs() - 1))
        elif name == "star":  # fold the angle into [0, 36°]; then the side of the edge from a point to an inner corner
            sector = 2 * math.pi / 5
            phi = torch.remainder(torch.atan2(b, a), sector)
            phi = torch.minimum(phi, sector - phi)
            px, py = r * torch.cos(phi), r * torch.sin(phi)
            ox, ix, iy = 1.1, 0.5 * math.cos(sector / 2), 0.5 * math.sin(sector / 2)
            d = (iy * (px - ox) - (ix - ox) * py) / math.hypot(ix - ox, iy)      # signed distance to that line
        elif name == "hexagon":  # six half-planes, apothem cos 30°
            d = torch.stack([a * math.cos(t) + b * math.sin(t) - math.cos(math.pi / 6)
                             for t in (j * math.pi / 3 for j in range(6))]).amax(0)
        elif name == "half-disc":
            bb = b + 0.45
            d = torch.maximum(torch.sqrt(a * a + bb * bb) - 1.1, -bb)
        elif name == "crescent":
            d = torch.maximum(r - 1, 0.8 - torch.sqrt((a - 0.45) ** 2 + b * b))
        elif name == "ellipse":
            d = (torch.sqrt(a * a + (b / 0.55) ** 2) - 1) * 0.55
        elif name == "bar":
            d = _box(a, b, 0, 0, 1.0, 0.35)
        elif name == "ell":
            d = torch.minimum(_box(a, b, -0.19, -0.26, 0.21, 0.81), _box(a, b, 0.24, 0.33, 0.64, 0.21))
        else:
            raise ValueError(f"There is no shape called {name!r}; make_shapes draws {', '.join(SHAPES)}.")
        out[idx] = d
    return out


def _geometry(n: int, size: int, g: torch.Generator):
    """Random centre (cy, cx), radius and angle per image, in pixels and radians: the shape stays inside."""
    radius = size * (0.16 + 0.18 * torch.rand(n, generator=g, device=g.device))                  # 10 to 22 px at 64
    margin = radius * 1.1 + 1
    cy = margin + (size - 2 * margin) * torch.rand(n, generator=g, device=g.device)
    cx = margin + (size - 2 * margin) * torch.rand(n, generator=g, device=g.device)
    angle = 2 * math.pi * torch.rand(n, generator=g, device=g.device)
    return cy, cx, radius, angle


def _coverage(labels, cy, cx, radius, angle, size: int, classes=CLASSES) -> torch.Tensor:
    """(N, 1, size, size) float in [0, 1]: how much of each pixel the shape covers (a one-pixel ramp at the
    outline, so edges are antialiased)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5                       # pixel centres
    y = coords.view(1, size, 1) - cy.view(-1, 1, 1)                              # (N, size, 1)
    x = coords.view(1, 1, size) - cx.view(-1, 1, 1)                              # (N, 1, size)
    c, sn = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    r = radius.view(-1, 1, 1)
    u = (c * x + sn * y) / r                                                     # (N, size, size)
    v = (-sn * x + c * y) / r
    d = shape_distance(labels, u, v, classes) * r                                # in pixels
    return (0.5 - d).clamp_(0, 1).unsqueeze(1)                                   # (N, 1, size, size)


# ----------------------------------------------------------------------------- backgrounds


@lru_cache(maxsize=1)
def _photos() -> torch.Tensor:
    """The background photos, centre-cropped and resized: (P, 3, 160, 160) float in [0, 1]."""
    from cnnviz.data import load_image

    stack = []
    for name in BACKGROUND_PHOTOS:
        arr = load_image(name)                                                   # (H, W, 3) uint8
        h, w = arr.shape[:2]
        s = min(h, w)
        t = torch.from_numpy(arr[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].copy())
        t = t.permute(2, 0, 1).unsqueeze(0).float() / 255                        # (1, 3, s, s)
        stack.append(F.interpolate(t, size=(_PHOTO_SIDE, _PHOTO_SIDE), mode="bilinear", antialias=True,
                                   align_corners=False))
    return torch.cat(stack).clamp(0, 1)                                          # (P, 3, 160, 160)


def _photo_backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Random crops (a quarter to two thirds of the side), mirrored at random and recoloured: (n, 3, size, size)."""
    photos = _photos()
    which = torch.randint(0, len(photos), (n,), generator=g, device=g.device)
    scale = 0.25 + 0.42 * torch.rand(n, generator=g, device=g.device)                      # crop side / photo side
    shift = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=g, device=g.device) - 1)   # crop centre, [-1, 1] units
    flip = torch.where(torch.rand(n, generator=g, device=g.device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    return _recolour(_crops(photos, which, theta, size), g)


def _crops(photos: torch.Tensor, which: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Sample ``photos[which[i]]`` through the affine map ``theta[i]`` (normalised coordinates, as
    ``F.affine_grid`` takes them), one photo at a time for all its crops: (n, 3, size, size)."""
    n = len(which)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)        # (n, size, size, 2)
    out = torch.empty(n, 3, size, size)
    for p in which.unique().tolist():
        idx = (which == p).nonzero().squeeze(1)
        out[idx] = F.grid_sample(photos[p:p + 1].expand(len(idx), -1, -1, -1), grid[idx], mode="bilinear",
                                 padding_mode="reflection", align_corners=False)
    return out


def _recolour(out: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Recolour (n, 3, size, size) images with one 3×3 matrix each: towards a tinted grey (grey photos get a
    colour), then a random contrast around the image's mean colour."""
    n, _, size, _ = out.shape
    tint = 0.4 + 0.6 * torch.rand(n, 3, 1, generator=g, device=g.device)
    mix = torch.rand(n, 1, 1, generator=g, device=g.device)
    contrast = 0.4 + 0.6 * torch.rand(n, 1, 1, generator=g, device=g.device)
    colour = mix * 1.4 * tint * torch.full((1, 1, 3), 1 / 3) + (1 - mix) * torch.eye(3)   # (n, 3, 3)
    mean = out.mean((2, 3)).unsqueeze(2)                                         # (n, 3, 1)
    bias = (1 - contrast) * colour @ mean                                        # (n, 3, 1)
    out = torch.baddbmm(bias, contrast * colour, out.view(n, 3, -1))             # (n, 3, size²)
    return out.view(n, 3, size, size).clamp_(0, 1)


def _ramps(n: int, size: int, channels: int, g: torch.Generator) -> torch.Tensor:
    """Linear ramps from 0 to 1 across the image in a random direction: (n, channels, size, size)."""
    angle = 2 * math.pi * torch.rand(n, 1, 1, generator=g, device=g.device)
    coords = torch.linspace(-1, 1, size)
    t = torch.cos(angle) * coords.view(1, 1, size) + torch.sin(angle) * coords.view(1, size, 1)  # (n, size, size)
    return ((t + 1.42) / 2.84).unsqueeze(1).expand(n, channels, size, size)


def _gradient_backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Linear colour ramps between two random colours in a random direction: (n, 3, size, size)."""
    c0, c1 = torch.rand(n, 3, 1, 1, generator=g, device=g.device), torch.rand(n, 3, 1, 1, generator=g, device=g.device)
    return torch.lerp(c0.expand(n, 3, size, size), c1.expand(n, 3, size, size), _ramps(n, size, 3, g))


def _noise_backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Blotchy colour noise: a random 8×8 colour grid, of which a random 3 to 7 cells across are smoothly
    enlarged to the image: (n, 3, size, size)."""
    base = torch.rand(n, 3, 8, 8, generator=g, device=g.device)
    base = 0.5 + 0.6 * (base - base.mean((2, 3), keepdim=True))                 # less saturated than uniform
    scale = (3 + 4 * torch.rand(n, generator=g, device=g.device)) / 8                              # cells shown / 8
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=g, device=g.device) - 1)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(base, grid, mode="bicubic", padding_mode="border", align_corners=False).clamp_(0, 1)


def _backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Half photo crops, a quarter gradients, a quarter blotchy noise: (n, 3, size, size) in [0, 1]."""
    kind = torch.rand(n, generator=g, device=g.device)
    out = torch.empty(n, 3, size, size)
    for lo, hi, make in ((0.0, 0.5, _photo_backgrounds), (0.5, 0.75, _gradient_backgrounds),
                         (0.75, 1.01, _noise_backgrounds)):
        idx = ((kind >= lo) & (kind < hi)).nonzero().squeeze(1)
        if len(idx):
            out[idx] = make(len(idx), size, g)
    return out


# ----------------------------------------------------------------------------- the dataset


def _check_names(names, known, what: str, maker: str) -> tuple:
    names = tuple(names)
    unknown = [c for c in names if c not in known]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"{maker} needs at least two different {what} from {', '.join(known)}; got {names!r}.")
    return names


@on_cpu
def make_shapes(n: int, *, size: int = 64, seed: int = 0, return_geometry: bool = False, classes=CLASSES):
    """``n`` labelled images of coloured shapes on cluttered backgrounds, generated from ``seed``.

    Returns ``images`` (n, 3, size, size) uint8 and ``labels`` (n,) int64
    (indices into ``classes``, by default ``CLASSES``; any names from ``SHAPES``, drawn uniformly), and with
    ``return_geometry=True`` also ``geometry`` (n, 4) float: the shape's
    centre row, centre column, radius (pixels) and rotation (radians). The
    same ``seed`` gives the same images. Each shape has a solid colour, far
    enough from the background beneath it to be seen, with a gentle shading
    ramp; the whole image gets a little pixel noise. Backgrounds: ``_backgrounds``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n is the number of images to make, a whole number of at least 1; got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size is the side of the images in pixels, at least 16; got {size!r}.")
    classes = _check_names(classes, SHAPES, "shapes", "make_shapes")
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.randint(0, len(classes), (n,), generator=g, device=g.device)
    cy, cx, radius, angle = _geometry(n, size, g)
    background = _backgrounds(n, size, g)                                        # (n, 3, size, size)
    mask = _coverage(labels, cy, cx, radius, angle, size, classes)               # (n, 1, size, size)
    # the shape's colour: random, but moved away from the mean colour of the background it covers
    under = (background * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1e-6)   # (n, 3)
    colour = torch.rand(n, 3, generator=g, device=g.device)
    complement = (1 - under) * 0.8 + 0.2 * colour                                # when too close, the opposite colour
    dark_or_light = torch.where(under.mean(1, keepdim=True) > 0.5, 0.2 * colour, 0.8 + 0.2 * colour)
    for fallback in (complement, dark_or_light):                                 # (the last one is always far)
        colour = torch.where((colour - under).norm(dim=1, keepdim=True) < 0.45, fallback, colour)
    shading = 0.85 + 0.3 * _ramps(n, size, 1, g)                                 # (n, 1, size, size), 0.85 to 1.15
    foreground = (colour.view(n, 3, 1, 1) * shading).clamp_(0, 1)                # (n, 3, size, size)
    image = torch.lerp(background, foreground, mask)
    sigma = 0.03 * torch.rand(n, 1, 1, 1, generator=g, device=g.device)
    image.add_(sigma * torch.randn(image.shape, generator=g, device=g.device))
    images = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8)               # (n, 3, size, size)
    if return_geometry:
        return images, labels, torch.stack([cy, cx, radius, angle], dim=1)
    return images, labels


@on_cpu
def make_textures(n: int, *, size: int = 64, seed: int = 0, classes=TEXTURES, half: str = None):
    """``n`` labelled close-ups of materials: which photo of ``classes`` (names from ``BACKGROUND_PHOTOS``, by
    default ``TEXTURES``: brick, grass, gravel, handwriting on paper, a star field, stained cells) a crop comes
    from.

    Each crop takes a random sixth to a half of the photo's side (at most a third with ``half``), at a random
    place, rotation and mirroring, recoloured by a random tint and contrast (as ``make_shapes``'s photo
    backgrounds are), with a little pixel noise: colour says nothing about the class, the texture does.
    ``half``: ``"top"`` or ``"bottom"`` keeps every crop, rotated, inside that half of each photo, so that
    training images (one half) and test images (the other) never share a pixel of the photo. Returns ``images``
    (n, 3, size, size) uint8 and ``labels`` (n,) int64 (indices into ``classes``, drawn uniformly).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n is the number of images to make, a whole number of at least 1; got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size is the side of the images in pixels, at least 16; got {size!r}.")
    if half not in (None, "top", "bottom"):
        raise ValueError(f"half is None (the whole photo), 'top' or 'bottom'; got {half!r}.")
    classes = _check_names(classes, BACKGROUND_PHOTOS, "photos", "make_textures")
    photos = _photos()[[BACKGROUND_PHOTOS.index(c) for c in classes]]          # (K, 3, 160, 160)
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.randint(0, len(classes), (n,), generator=g, device=g.device)
    largest = 0.5 if half is None else 1 / 3
    scale = 0.17 + (largest - 0.17) * torch.rand(n, generator=g, device=g.device)          # crop side / photo side
    reach = scale * math.sqrt(2)                                                 # half the rotated crop's diagonal
    u = torch.rand(n, 2, generator=g, device=g.device)                                     # where the centre lies, 0 … 1
    x = (1 - reach) * (2 * u[:, 0] - 1)                                          # [-1 + reach, 1 - reach]
    if half is None:
        y = (1 - reach).clamp_min(0) * (2 * u[:, 1] - 1)
    else:                                                                        # top: y in [-1 + reach, -reach]
        y = -1 + reach + (1 - 2 * reach) * u[:, 1]
        y = y if half == "top" else -y
    flip = torch.where(torch.rand(n, generator=g, device=g.device) < 0.5, -1.0, 1.0)
    angle = 2 * math.pi * torch.rand(n, generator=g, device=g.device)
    c, s = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = scale * c * flip, -scale * s
    theta[:, 1, 0], theta[:, 1, 1] = scale * s * flip, scale * c
    theta[:, 0, 2], theta[:, 1, 2] = x, y
    out = _recolour(_crops(photos, labels, theta, size), g)
    sigma = 0.03 * torch.rand(n, 1, 1, 1, generator=g, device=g.device)
    out.add_(sigma * torch.randn(out.shape, generator=g, device=g.device))
    return out.clamp_(0, 1).mul_(255).round_().to(torch.uint8), labels
