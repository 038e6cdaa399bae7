"""The generated shapes dataset: geometry against closed-form areas and hand-placed points, determinism,
and images in which the shape is really there and visible."""
import math

import pytest
import torch

from cnnviz import shapes
from cnnviz.shapes import CLASSES, make_shapes, shape_distance

# (class, point (u, v), inside?) in the shape's own coordinates: radius 1, unrotated
POINTS = [
    ("disc", (0.0, 0.0), True), ("disc", (0.99, 0.0), True), ("disc", (0.72, 0.72), False),
    ("square", (0.79, 0.79), True), ("square", (0.81, 0.0), False),
    ("triangle", (0.0, 0.0), True), ("triangle", (0.0, -1.09), True), ("triangle", (0.0, 0.56), False),
    ("triangle", (0.0, -1.12), False),
    ("ring", (0.0, 0.0), False), ("ring", (0.0, 0.5), False), ("ring", (0.0, 0.8), True), ("ring", (0.0, 1.02), False),
    ("cross", (0.95, 0.0), True), ("cross", (0.0, -0.95), True), ("cross", (0.5, 0.5), False),
    ("cross", (0.27, 0.9), True), ("cross", (0.3, 0.9), False),
    ("star", (1.08, 0.0), True), ("star", (1.12, 0.0), False), ("star", (0.0, 0.0), True),
    ("star", (0.6 * math.cos(math.pi / 5), 0.6 * math.sin(math.pi / 5)), False),  # beyond an inner corner (0.5)
    ("star", (0.45 * math.cos(math.pi / 5), 0.45 * math.sin(math.pi / 5)), True),
]


@pytest.mark.parametrize("name, point, inside", POINTS)
def test_hand_placed_points(name, point, inside):
    label = torch.tensor([CLASSES.index(name)])
    d = shape_distance(label, torch.tensor([[[point[0]]]]), torch.tensor([[[point[1]]]]))
    assert (float(d) < 0) == inside


AREAS = {  # in units of radius², from the sizes in shape_distance's docstring
    "disc": math.pi, "square": 1.6 ** 2,
    "triangle": 3 * math.sqrt(3) * 0.55 ** 2,                       # equilateral, inradius 0.55
    "ring": math.pi * (1 - 0.55 ** 2), "cross": 2 * (2 * 0.56) - 0.56 ** 2,
    "star": 10 * 0.5 * 1.1 * 0.5 * math.sin(math.pi / 5),           # ten triangles centre-point-inner corner
}


@pytest.mark.parametrize("name", CLASSES)
def test_antialiased_coverage_has_the_closed_form_area(name):
    """The sum of a shape's pixel coverage is its area: πr² for the disc, 5·R·r·sin 36° for the star, …"""
    n, size, radius = 4, 128, 40.0
    labels = torch.full((n,), CLASSES.index(name))
    angle = torch.tensor([0.0, 0.3, 1.1, 2.5])
    centre = torch.full((n,), size / 2 + 0.25)
    coverage = shapes._coverage(labels, centre, centre, torch.full((n,), radius), angle, size)  # (n, 1, S, S)
    area = coverage.sum((1, 2, 3)) / radius ** 2
    assert torch.allclose(area, torch.full((n,), AREAS[name]), rtol=0.01)
    assert ((coverage > 0) & (coverage < 1)).any()  # antialiased: partial pixels along the outline


def test_images_labels_and_geometry():
    images, labels, geometry = make_shapes(240, seed=3, return_geometry=True)
    assert images.shape == (240, 3, 64, 64) and images.dtype == torch.uint8
    assert labels.shape == (240,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(len(CLASSES)))
    assert labels.bincount().min() >= 20  # roughly balanced
    cy, cx, radius, _ = geometry.T
    assert ((radius >= 0.16 * 64) & (radius <= 0.34 * 64)).all()
    margin = 1.1 * radius
    assert ((cy - margin >= 0) & (cy + margin <= 64) & (cx - margin >= 0) & (cx + margin <= 64)).all()


def test_same_seed_same_images_other_seed_other_images():
    a, la = make_shapes(16, seed=5)
    b, lb = make_shapes(16, seed=5)
    c, _ = make_shapes(16, seed=6)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    small, _ = make_shapes(3, size=32, seed=5)
    assert small.shape == (3, 3, 32, 32)


def test_the_shape_stands_out_from_its_surroundings():
    """Inside the outline the colour differs from just outside it: the outline is there to be seen."""
    images, labels, geometry = make_shapes(300, seed=11, return_geometry=True)
    cy, cx, radius, angle = geometry.T
    size = images.shape[-1]
    coords = torch.arange(size) + 0.5
    y, x = coords.view(1, size, 1) - cy.view(-1, 1, 1), coords.view(1, 1, size) - cx.view(-1, 1, 1)
    c, s = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    r = radius.view(-1, 1, 1)
    d = shape_distance(labels, (c * x + s * y) / r, (-s * x + c * y) / r) * r     # (N, S, S) pixels
    inside, outside = (d < -1.5) & (d > -3.5), (d > 1.5) & (d < 3.5)              # bands along the outline
    img = images.float() / 255
    mean_in = (img * inside[:, None]).sum((2, 3)) / inside.sum((1, 2))[:, None]
    mean_out = (img * outside[:, None]).sum((2, 3)) / outside.sum((1, 2))[:, None]
    contrast = (mean_in - mean_out).norm(dim=1)
    assert contrast.median() > 0.3 and (contrast > 0.1).float().mean() > 0.9


def test_backgrounds_say_nothing_about_the_class():
    """Far from the shape, the mean colour of the images is the same for every class (up to sampling noise)."""
    images, labels, geometry = make_shapes(1200, seed=12, return_geometry=True)
    corner = images[:, :, :6, :6].float().mean((1, 2, 3)) / 255                  # mostly background
    per_class = torch.stack([corner[labels == k].mean() for k in range(len(CLASSES))])
    assert (per_class.max() - per_class.min()) < 0.06


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=2.5), dict(n=4, size=8), dict(n=True)])
def test_bad_arguments(kwargs):
    n = kwargs.pop("n")
    with pytest.raises(ValueError):
        make_shapes(n, **kwargs)
