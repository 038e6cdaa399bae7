"""cnnviz.receptive_field against hand-worked values and against brute force (autograd on the real stack)."""
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

from cnnviz import receptive_field as rf
from cnnviz.layers import conv_params
from cnnviz.receptive_field import (PRESETS, ERFStats, Layer, as_torch, effective_receptive_field, erf_stats,
                                    gradient_support, input_rect, input_support, layer_sizes, receptive_field)

# an input size per preset on which every layer tiles its input exactly (AlexNet's 227×227)
PRESET_INPUT = {"AlexNet conv1–pool2": (227, 227), "LeNet-5 conv–pool": (32, 32)}


def _rect_mask(rect, size):
    mask = np.zeros(size, dtype=bool)
    if rect is not None:
        top, left, bottom, right = rect
        mask[top:bottom + 1, left:right + 1] = True
    return mask


def _bbox(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def _units(h, w, rng=None):
    """Corners, edge midpoints, the centre and (optionally) one random unit of an h × w layer."""
    units = {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w // 2), (h // 2, w - 1)}
    if rng is not None:
        units.add((rng.randrange(h), rng.randrange(w)))
    return sorted(units)


# ----------------------------------------------------------------------------- Layer

@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="pool", f=2), "kind must be 'conv', 'maxpool' or 'avgpool', got 'pool'"),
    (dict(kind="conv", f=0), r"f \(kernel size\) must be at least 1, got 0"),
    (dict(kind="conv", f=3.0), r"f \(kernel size\) must be a whole number"),
    (dict(kind="conv", f=3, s=0), r"s \(stride\) must be at least 1, got 0"),
    (dict(kind="conv", f=3, p=-1), r"p \(padding\) must be at least 0, got -1"),
    (dict(kind="conv", f=3, d=0), r"d \(dilation\) must be at least 1, got 0"),
    (dict(kind="conv", f=3, name=3), "name must be a string"),
    (dict(kind="maxpool", f=2, s=2, d=2), "Pooling layers have no dilation here: d must be 1 for a maxpool layer, got 2"),
    (dict(kind="avgpool", f=3, p=2), r"Pooling padding p = 2 must be at most half the window, f/2 = 1.5"),
])
def test_layer_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Layer(**kwargs)


def test_layer_labels_and_numpy_ints():
    assert Layer("conv", 3).label == "conv 3×3"
    assert Layer("conv", 3, 2, 1, 2).label == "conv 3×3 s2 p1 d2"
    assert Layer("maxpool", 2, 2, name="pool1").label == "pool1"
    layer = Layer("conv", np.int64(5), np.int32(2))
    assert type(layer.f) is int and type(layer.s) is int and layer == Layer("conv", 5, 2)
    with pytest.raises(Exception):
        layer.f = 7  # frozen


# ----------------------------------------------------------------------------- the recurrence, hand-worked

def test_stacks_of_3x3():
    rows = receptive_field(PRESETS["3×[3×3]"])
    assert [r.r for r in rows] == [1, 3, 5, 7]
    assert [r.j for r in rows] == [1, 1, 1, 1]
    assert [r.start for r in rows] == [0, 0, 0, 0]  # "same" padding keeps unit 0 centred on pixel 0
    assert rows[0].name == "input" and rows[0].layer is None and rows[1].name == "conv1"
    assert receptive_field(PRESETS["2×[3×3]"])[-1].r == 5
    assert receptive_field(PRESETS["1×[7×7]"])[-1].r == 7 == rows[-1].r
    assert [r.r for r in receptive_field(PRESETS["10×[3×3]"])] == list(range(1, 22, 2))
    # three 3×3 convolutions see as far as one 7×7, with 27 weights per channel pair instead of 49
    c = 64
    assert 3 * conv_params(c, c, 3, bias=False) == 27 * c * c < conv_params(c, c, 7, bias=False) == 49 * c * c


def test_alexnet():
    rows = receptive_field(PRESETS["AlexNet conv1–pool2"])
    assert [(r.name, r.r, r.j) for r in rows] == [
        ("input", 1, 1), ("conv1", 11, 4), ("pool1", 19, 8), ("conv2", 51, 8), ("pool2", 67, 16)]
    assert [r.start for r in rows] == [0, 5, 9, 9, 17]
    assert layer_sizes(PRESETS["AlexNet conv1–pool2"], (227, 227)) == [(227, 227), (55, 55), (27, 27), (27, 27), (13, 13)]


def test_other_presets():
    assert [(r.r, r.j) for r in receptive_field(PRESETS["dilated 3×[3×3], d=1,2,4"])] == [(1, 1), (3, 1), (7, 1), (15, 1)]
    vgg = receptive_field(PRESETS["VGG block"])
    assert [(r.r, r.j, r.start) for r in vgg] == [(1, 1, 0), (3, 1, 0), (5, 1, 0), (6, 2, 0.5)]
    assert [(r.r, r.j) for r in receptive_field(PRESETS["LeNet-5 conv–pool"])] == [(1, 1), (5, 1), (6, 2), (14, 2), (16, 4)]
    assert [(r.r, r.j, r.start) for r in receptive_field(PRESETS["ResNet stem"])] == [(1, 1, 0), (7, 2, 0), (11, 4, 0)]
    assert receptive_field([]) == [rf.RFRow("input", 1, 1, 0.0, None)]
    for name, stack in PRESETS.items():
        assert isinstance(stack, tuple) and all(isinstance(layer, Layer) for layer in stack), name


def _recurrence(layers):
    """The textbook recurrence, written independently with exact fractions."""
    r, j, start = 1, 1, Fraction(0)
    rows = [(r, j, start)]
    for L in layers:
        start += (Fraction(L.d * (L.f - 1), 2) - L.p) * j
        r += L.d * (L.f - 1) * j
        j *= L.s
        rows.append((r, j, start))
    return rows


def _random_stack(rng, max_layers=5):
    stack = []
    for _ in range(rng.randint(1, max_layers)):
        kind = rng.choice(["conv", "conv", "conv", "maxpool", "avgpool"])
        f, s = rng.randint(1, 5), rng.randint(1, 3)
        if kind == "conv":
            stack.append(Layer(kind, f, s, rng.randint(0, 3), rng.randint(1, 3)))
        else:
            stack.append(Layer(kind, f, s, rng.randint(0, f // 2)))
    return stack


def test_recurrence_matches_textbook_formula_on_random_stacks():
    rng = random.Random(0)
    for _ in range(200):
        stack = _random_stack(rng, 8)
        assert [(row.r, row.j, row.start) for row in receptive_field(stack)] == _recurrence(stack)


# ----------------------------------------------------------------------------- brute force: presets

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_brute_force(name):
    """Autograd on the real stack: the unit's gradient support is the clipped rectangle, and its
    extent and spacing are exactly r and j, for every layer and for corner, edge and centre units."""
    stack = PRESETS[name]
    size = PRESET_INPUT.get(name, (48, 40))
    sizes = layer_sizes(stack, size)
    rows = receptive_field(stack)
    for k, (h, w) in enumerate(sizes):
        for i, j in _units(h, w):
            grad = gradient_support(stack, size, k, i, j)
            np.testing.assert_array_equal(grad, input_support(stack, k, i, j, size))
            np.testing.assert_array_equal(grad, _rect_mask(input_rect(stack, k, i, j, size), size), err_msg=f"{name} {k} {(i, j)}")
        # an interior unit: its support is exactly r × r, centred on start + i·j
        i, j = h // 2, w // 2
        top, left, bottom, right = input_rect(stack, k, i, j, size, clip=False)
        if top >= 0 and left >= 0 and bottom < size[0] and right < size[1]:
            box = _bbox(gradient_support(stack, size, k, i, j))
            assert box == (top, left, bottom, right)
            assert box[2] - box[0] + 1 == rows[k].r
            assert (box[0] + box[2]) / 2 == rows[k].start + i * rows[k].j
            if i + 1 < h:  # the next unit's window is j pixels further down
                assert _bbox(gradient_support(stack, size, k, i + 1, j))[0] - box[0] == rows[k].j


def test_alexnet_brute_force_numbers():
    """The lecture's AlexNet numbers, read off autograd rather than the formula."""
    stack, size = PRESETS["AlexNet conv1–pool2"], (227, 227)
    found = []
    for k in range(1, 5):
        h, _ = layer_sizes(stack, size)[k]
        c = h // 2
        a, b = _bbox(gradient_support(stack, size, k, c, c)), _bbox(gradient_support(stack, size, k, c + 1, c))
        found.append((a[2] - a[0] + 1, b[0] - a[0]))  # (r, j)
    assert found == [(11, 4), (19, 8), (51, 8), (67, 16)]


# ----------------------------------------------------------------------------- brute force: random stacks

def _hole_free(stack):
    # a window's taps are d·j_in input pixels apart and each sees r_in pixels: no gap iff d·j_in ≤ r_in
    rows = receptive_field(stack)
    return all(L.f == 1 or L.d * rows[k].j <= rows[k].r for k, L in enumerate(stack))


def _tiles(stack, size):
    # every layer's windows end exactly at its padded input's last cell: no input cell is skipped
    return all((n + 2 * L.p - L.d * (L.f - 1) - 1) % L.s == 0
               for L, shape in zip(stack, layer_sizes(stack, size)) for n in shape)


def test_random_stacks_brute_force():
    """Seeded random stacks (kernel, stride, padding, dilation, pools; empty outputs skipped):
    autograd's support is exactly ``input_support``, always inside the clipped rectangle,
    equal to it when the stack has no gaps, and exactly the r × r window away from the border."""
    rng = random.Random(1)
    stacks = equal = interior = 0
    while stacks < 40:
        stack = _random_stack(rng)
        size = (rng.randint(6, 40), rng.randint(6, 40))
        try:
            sizes = layer_sizes(stack, size)
        except ValueError as err:
            assert "would have an empty output" in str(err)
            continue
        stacks += 1
        # no gaps: no holes, no window entirely in the padding, no skipped border cell
        gapless = _hole_free(stack) and all(L.p <= L.d * (L.f - 1) for L in stack) and _tiles(stack, size)
        for k in {len(stack), rng.randint(1, len(stack))}:
            for i, j in _units(*sizes[k], rng):
                grad = gradient_support(stack, size, k, i, j)
                exact = input_support(stack, k, i, j, size)
                np.testing.assert_array_equal(grad, exact, err_msg=f"{stack} {size} {k} {(i, j)}")
                rect = _rect_mask(input_rect(stack, k, i, j, size), size)
                assert not (exact & ~rect).any()
                if gapless:
                    np.testing.assert_array_equal(exact, rect, err_msg=f"{stack} {size} {k} {(i, j)}")
                    equal += 1
                top, left, bottom, right = input_rect(stack, k, i, j, size, clip=False)
                if top >= 0 and left >= 0 and bottom < size[0] and right < size[1]:
                    assert _bbox(exact) == (top, left, bottom, right)
                    interior += 1
    assert equal > 20 and interior > 20  # both statements were exercised


def test_where_the_rectangle_is_only_an_outline():
    """The three ways a unit's real support is smaller than its clipped rectangle."""
    # holes: a dilated kernel skips pixels
    stack = [Layer("conv", 3, d=2)]
    assert input_rect(stack, 1, 2, 2, (9, 9)) == (2, 2, 6, 6)
    support = input_support(stack, 1, 2, 2, (9, 9))
    assert np.array_equal(np.flatnonzero(support.any(axis=1)), [2, 4, 6])
    # a strided layer never reads the last row/column of a 7×7 input, but the window covers it
    stack = [Layer("conv", 2, 2), Layer("conv", 3, p=1)]
    assert input_rect(stack, 2, 2, 2, (7, 7)) == (2, 2, 6, 6)
    assert _bbox(input_support(stack, 2, 2, 2, (7, 7))) == (2, 2, 5, 5)
    # a window entirely in the padding of a hidden layer: the unit is a constant
    stack = [Layer("conv", 3, p=1), Layer("conv", 3, p=3)]
    assert input_rect(stack, 2, 0, 0, (5, 5)) == (0, 0, 0, 0)
    assert input_rect(stack, 2, 0, 0, (5, 5), clip=False) == (-4, -4, 0, 0)
    assert not input_support(stack, 2, 0, 0, (5, 5)).any()
    assert not gradient_support(stack, (5, 5), 2, 0, 0).any()
    # a unit that sees only the padding of the input itself has no clipped rectangle
    assert input_rect([Layer("conv", 1, p=2)], 1, 0, 0, (4, 4)) is None


def test_input_rect_clipping_and_layer_zero():
    stack = PRESETS["3×[3×3]"]
    assert input_rect(stack, 3, 0, 0, (10, 10), clip=False) == (-3, -3, 3, 3)
    assert input_rect(stack, 3, 0, 0, (10, 10)) == (0, 0, 3, 3)
    assert input_rect(stack, 3, 9, 5, (10, 12)) == (6, 2, 9, 8)
    assert input_rect(stack, 0, 4, 7, (10, 10)) == (4, 7, 4, 7)  # layer 0 is the input: one pixel


@pytest.mark.parametrize("call, match", [
    (lambda: input_rect(PRESETS["3×[3×3]"], 4, 0, 0, (8, 8)), r"layer_index = 4 is past the last layer: use 0 \(the input\) to 3"),
    (lambda: input_rect(PRESETS["3×[3×3]"], 3, 8, 0, (8, 8)), r"Unit \(i, j\) = \(8, 0\) is outside layer 3, whose output is 8×8"),
    (lambda: input_rect(PRESETS["3×[3×3]"], 3, 0, -1, (8, 8)), r"j \(unit column\) must be at least 0"),
    (lambda: input_rect(PRESETS["3×[3×3]"], -1, 0, 0, (8, 8)), "layer_index must be at least 0"),
    (lambda: input_rect(PRESETS["3×[3×3]"], 1, 0, 0, 8), r"input_size must be \(H, W\), got 8"),
    (lambda: input_rect(PRESETS["3×[3×3]"], 1, 0, 0, (0, 8)), r"H \(input height\) must be at least 1"),
    (lambda: input_rect(["conv"], 1, 0, 0, (8, 8)), r"layers\[0\] must be a Layer"),
    (lambda: layer_sizes(PRESETS["AlexNet conv1–pool2"], (31, 31)),
     r"Layer 4 \(pool2\) would have an empty output on its 2×2 input: The kernel does not fit: f = 3 > n \+ 2p = 2"),
    (lambda: layer_sizes([Layer("conv", 11, 4), Layer("maxpool", 3, 2, name="pool1")], (11, 11)),
     r"Layer 2 \(pool1\) would have an empty output on its 1×1 input: The kernel does not fit: f = 3 > n \+ 2p = 1"),
    (lambda: gradient_support(PRESETS["VGG block"], (8, 8), 3, 4, 0), r"outside layer 3, whose output is 4×4"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_layer_sizes():
    assert layer_sizes(PRESETS["VGG block"], (33, 20)) == [(33, 20), (33, 20), (33, 20), (16, 10)]
    assert layer_sizes([], (5, 6)) == [(5, 6)]
    assert layer_sizes(PRESETS["AlexNet conv1–pool2"], (224, 224))[1:] == [(54, 54), (26, 26), (26, 26), (12, 12)]


# ----------------------------------------------------------------------------- as_torch

def test_as_torch_matches_the_stack():
    stack = PRESETS["AlexNet conv1–pool2"]
    before = torch.get_rng_state()
    model = as_torch(stack, 4, in_channels=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), before)  # nn.Conv2d's own init would draw from it
    assert sum(p.numel() for p in model.parameters()) == conv_params(3, 4, 11) + conv_params(4, 4, 5)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 227, 227))
    assert out.shape == (1, 4, 13, 13)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d"]
    assert [type(m).__name__ for m in as_torch(stack, relu=True, max_as_avg=True)] == \
        ["Conv2d", "ReLU", "AvgPool2d", "Conv2d", "ReLU", "AvgPool2d"]
    assert [type(m).__name__ for m in as_torch(PRESETS["3×[3×3]"], relu=True)] == \
        ["Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d"]  # no ReLU after the final layer
    again = as_torch(stack, 4, in_channels=3, generator=torch.Generator().manual_seed(1))
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)
    conv = model[0]
    assert torch.all(conv.bias == 0)
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (3 * 121)) ** 0.5, rel=0.1)  # Kaiming normal
    ones = as_torch(stack, 2, weight=1.0, dtype=torch.float64)
    assert all(torch.all(m.weight == 1) and m.weight.dtype == torch.float64 for m in ones if hasattr(m, "weight"))
    with pytest.raises(ValueError, match="weight must be a finite number or None"):
        as_torch(stack, weight=float("nan"))
    with pytest.raises(ValueError, match="channels must be at least 1"):
        as_torch(stack, 0)


def test_gradients_leave_no_trace(monkeypatch):
    """No parameter .grad, no global RNG draw, the caller's grad mode kept, works under no_grad."""
    made = []
    original = rf.as_torch

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(rf, "as_torch", recording)
    rng_before, np_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    with torch.no_grad():
        erf = effective_receptive_field(PRESETS["VGG block"], (24, 24), channels=4, trials=2)
        support = gradient_support(PRESETS["VGG block"], (24, 24), 3, 5, 5)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert len(made) == 3 and support.any() and erf.max() == 1
    for model in made:
        assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert np.array_equal(np.random.get_state()[1], np_before)


# ----------------------------------------------------------------------------- the effective receptive field

def test_erf_is_concentrated_inside_the_theoretical_field():
    stack, size = PRESETS["10×[3×3]"], (41, 41)
    erf = effective_receptive_field(stack, size, trials=8)
    assert erf.shape == size and erf.dtype == np.float64 and erf.max() == 1 and erf.min() >= 0
    r = receptive_field(stack)[-1].r  # 21
    rect = input_rect(stack, 10, 20, 20, size)
    assert rect == (10, 10, 30, 30)
    assert not erf[~_rect_mask(rect, size)].any()  # nothing outside the theoretical field
    # the central square of half the side (11×11 of 21×21) holds most of the mass; a uniform
    # field would put (11/21)² = 27% there
    inner = erf[15:26, 15:26].sum() / erf.sum()
    uniform = (11 / r) ** 2
    assert inner > 0.6 > 2 * uniform
    stats = erf_stats(erf, 0.95, centre=(20, 20))
    assert 2 * stats.radius + 1 < r  # 95% of the mass within a square narrower than the field
    assert max(stats.std) < 0.7 * r / 12 ** 0.5  # a uniform r-pixel window has std r/√12 ≈ 6.1 px
    # roughly symmetric: centred on the unit, same spread along rows and columns
    assert abs(stats.centroid[0] - 20) < 0.75 and abs(stats.centroid[1] - 20) < 0.75
    assert stats.std[0] == pytest.approx(stats.std[1], rel=0.1)
    rows, cols = erf.sum(axis=1), erf.sum(axis=0)
    for marginal in (rows, cols):
        assert np.abs(marginal - marginal[::-1]).sum() / marginal.sum() < 0.15


def test_erf_seeding_and_options():
    stack, size = PRESETS["3×[3×3]"], (15, 15)
    a = effective_receptive_field(stack, size, seed=3)
    np.testing.assert_array_equal(a, effective_receptive_field(stack, size, seed=3))
    assert not np.array_equal(a, effective_receptive_field(stack, size, seed=4))
    linear = effective_receptive_field(stack, size, relu=False, channels=1)
    assert linear.shape == size and linear[4:11, 4:11].all() and not linear[:4].any()
    # with pooling and an even-sized last layer: the centre unit is (H_L // 2, W_L // 2)
    vgg = effective_receptive_field(PRESETS["VGG block"], (16, 16), channels=4)
    rect = input_rect(PRESETS["VGG block"], 3, 4, 4, (16, 16))
    assert not vgg[~_rect_mask(rect, (16, 16))].any() and vgg.max() == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(trials=0), "trials must be at least 1"),
    (dict(seed=-1), "seed must be at least 0"),
    (dict(channels=0), "channels must be at least 1"),
])
def test_erf_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        effective_receptive_field(PRESETS["3×[3×3]"], (15, 15), **kwargs)
    with pytest.raises(ValueError, match=r"Layer 1 \(big\) would have an empty output .* f = 7 > n \+ 2p = 5"):
        effective_receptive_field([Layer("conv", 7, name="big")], (5, 5))


def test_erf_stats_on_known_maps():
    delta = np.zeros((9, 9))
    delta[4, 4] = 1
    s = erf_stats(delta)
    assert s == ERFStats((4.0, 4.0), (0.0, 0.0), (4, 4), (4, 4), 0, 0.95)
    box = np.zeros((9, 9))
    box[2:7, 2:7] = 1  # uniform 5×5: std √((5² - 1)/12) = √2, the whole mass within half-width 2
    s = erf_stats(box, 1.0)
    assert s.centroid == (4.0, 4.0) and s.std == pytest.approx((2 ** 0.5, 2 ** 0.5))
    assert s.radius == 2 and erf_stats(box, 9 / 25).radius == 1 and erf_stats(box, 9 / 25 + 1e-3).radius == 2
    assert erf_stats(box, 1.0, centre=(2, 2)).radius == 4


@pytest.mark.parametrize("erf, kwargs, match", [
    (np.zeros((3, 3)), {}, "all zeros"),
    (-np.ones((3, 3)), {}, "non-negative"),
    (np.full((3, 3), np.nan), {}, "finite"),
    (np.ones(3), {}, r"2-D \(H, W\)"),
    (np.ones((3, 3)), dict(fraction=0), r"fraction must be a number in \(0, 1\]"),
    (np.ones((3, 3)), dict(fraction=1.5), "fraction must be"),
    (np.ones((3, 3)), dict(centre=(3, 0)), r"centre \(3, 0\) is outside the 3×3 map"),
    (np.ones((3, 3)), dict(centre=(1.5, 0)), "centre must be"),
])
def test_erf_stats_errors(erf, kwargs, match):
    with pytest.raises(ValueError, match=match):
        erf_stats(erf, **kwargs)
