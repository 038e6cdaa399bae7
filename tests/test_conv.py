"""cnnviz.conv against its oracles: torch's own convolution and the lecture's hand-worked examples."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz import conv
from cnnviz.conv import conv2d, output_size

from lecture_examples import LECTURE_IMAGE, LECTURE_RESULT, VERTICAL_EDGE  # (cross-correlation, p = 0, s = 1)


def _torch_size(n, f, p, s, d):
    """The oracle: the width F.conv2d actually produces, or None when torch refuses."""
    x = torch.zeros(1, 1, n, n)
    w = torch.zeros(1, 1, f, f)
    try:
        return F.conv2d(x, w, padding=p, stride=s, dilation=d).shape[-1]
    except RuntimeError:
        return None


def _torch_conv(image, kernel, padding, stride):
    """F.conv2d in float64 on an (H, W) or (H, W, C) array with an (f, f) or (f, f, C) kernel."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float64))
    w = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    if x.ndim == 2:
        x, w = x[:, :, None], w[:, :, None]
    x = x.permute(2, 0, 1)[None]  # (1, C, H, W)
    w = w.permute(2, 0, 1)[None]  # (1, C, f, f)
    return F.conv2d(x, w, padding=padding, stride=stride)[0, 0].numpy()


# ----------------------------------------------------------------------------- output_size

@pytest.mark.parametrize("d", [1, 2, 3])
def test_output_size_matches_torch_and_floor_formula(d):
    checked = refused = 0
    for n in range(1, 10):
        for f in range(1, 6):
            for p in range(0, 3):
                for s in range(1, 4):
                    expected = _torch_size(n, f, p, s, d)
                    if expected is None:  # torch refuses: so must output_size, with the numbers
                        with pytest.raises(ValueError, match="does not fit"):
                            output_size(n, f, p, s, d)
                        refused += 1
                        continue
                    got = output_size(n, f, p, s, d)
                    assert got == expected, (n, f, p, s, d)
                    assert got == math.floor((n + 2 * p - d * (f - 1) - 1) / s) + 1, (n, f, p, s, d)
                    checked += 1
    assert checked > 100 and refused > 10  # the grid covers both cases


@pytest.mark.parametrize("n", [5, 6, 7, 28])
@pytest.mark.parametrize("f", [1, 3, 5])
def test_valid_and_same(n, f):
    x, w = torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f)
    assert output_size(n, f, 0) == F.conv2d(x, w, padding="valid").shape[-1] == n - f + 1
    # "same" for an odd kernel: p = (f - 1) / 2 keeps the size
    assert output_size(n, f, (f - 1) // 2) == F.conv2d(x, w, padding="same").shape[-1] == n


def test_lecture_formula_examples():
    assert output_size(6, 3) == 4  # 6×6 image, 3×3 kernel → 4×4
    assert output_size(7, 3, 0, 2) == 3  # floor((7 - 3)/2) + 1
    assert output_size(32, 5, 2, 1) == 32
    assert output_size(39, 3, 0, 1) == 37
    assert output_size(37, 5, 0, 2) == 17


def test_kernel_too_large_message_has_the_numbers():
    with pytest.raises(ValueError) as err:
        output_size(5, 7)
    msg = str(err.value)
    assert "f = 7 > n + 2p = 5" in msg
    assert "smaller kernel or more padding" in msg

    with pytest.raises(ValueError) as err:
        output_size(3, 7, 1)
    msg = str(err.value)
    assert "f = 7 > n + 2p = 3 + 2·1 = 5" in msg

    with pytest.raises(ValueError) as err:
        output_size(5, 3, 0, 1, 3)  # dilated extent 3·2 + 1 = 7
    assert "d(f-1)+1 = 7 > n + 2p = 5" in str(err.value)


def test_kernel_that_exactly_fits():
    assert output_size(5, 5) == 1
    assert output_size(3, 5, 1) == 1
    assert output_size(5, 3, 0, 1, 2) == 1


@pytest.mark.parametrize("args, name", [
    ((5.5, 3), "n (input size)"),
    ((5, 3.0), "f (kernel size)"),
    ((5, 3, 0.5), "p (padding)"),
    ((5, 3, 0, 1.0), "s (stride)"),
    ((5, 3, 0, 1, 1.5), "d (dilation)"),
    (("5", 3), "n (input size)"),
    ((5, None), "f (kernel size)"),
    ((True, 3), "n (input size)"),  # a bool is not a size
])
def test_non_integer_arguments(args, name):
    with pytest.raises(ValueError, match="must be a whole number") as err:
        output_size(*args)
    assert str(err.value).startswith(name)


@pytest.mark.parametrize("args, expected", [
    ((0, 1), "n (input size) must be at least 1, got 0"),
    ((-4, 3), "n (input size) must be at least 1, got -4"),
    ((5, 0), "f (kernel size) must be at least 1, got 0"),
    ((5, 3, -1), "p (padding) must be at least 0, got -1"),
    ((5, 3, 0, 0), "s (stride) must be at least 1, got 0"),
    ((5, 3, 0, 1, 0), "d (dilation) must be at least 1, got 0"),
])
def test_negative_or_zero_arguments(args, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        output_size(*args)


def test_numpy_integers_are_accepted():
    assert output_size(np.int64(6), np.int32(3), np.uint8(1), np.int16(1)) == 6


# ----------------------------------------------------------------------------- conv2d vs torch

@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kshape", [(3, 3), (5, 5), (1, 1), (2, 3)])
def test_conv2d_2d_matches_torch(padding, stride, kshape):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(9, 11))
    kernel = rng.normal(size=kshape)
    got = conv2d(image, kernel, padding=padding, stride=stride)
    expected = _torch_conv(image, kernel, padding, stride)
    assert got.dtype == np.float64
    assert got.shape == expected.shape == (output_size(9, kshape[0], padding, stride),
                                           output_size(11, kshape[1], padding, stride))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_conv2d_3d_matches_torch(padding, stride, channels):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(10, 8, channels)).astype(np.uint8)  # an RGB-like (H, W, C) photo
    kernel = rng.normal(size=(3, 3, channels))
    got = conv2d(image, kernel, padding=padding, stride=stride)
    expected = _torch_conv(image, kernel, padding, stride)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


def test_conv2d_sums_channels():
    # an (f, f, C) kernel sums the per-channel cross-correlations into one map
    rng = np.random.default_rng(2)
    image = rng.normal(size=(6, 7, 3))
    kernel = rng.normal(size=(3, 3, 3))
    per_channel = sum(conv2d(image[:, :, c], kernel[:, :, c]) for c in range(3))
    np.testing.assert_allclose(conv2d(image, kernel), per_channel, rtol=1e-12, atol=1e-12)


def test_conv2d_does_not_mutate_or_flip():
    image = np.arange(16.0).reshape(4, 4)
    kernel = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 0]])  # picks the right neighbour (no flip)
    image_before, kernel_before = image.copy(), kernel.copy()
    out = conv2d(image, kernel)
    np.testing.assert_array_equal(out, image[1:3, 2:4])
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(kernel, kernel_before)


# ----------------------------------------------------------------------------- the lecture's examples, exactly

def test_lecture_6x6_vertical_edge():
    out = conv2d(LECTURE_IMAGE, VERTICAL_EDGE)
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out, np.array(LECTURE_RESULT, dtype=float))


def test_lecture_step_image():
    step = [[10, 10, 10, 0, 0, 0]] * 6
    out = conv2d(step, VERTICAL_EDGE)
    np.testing.assert_array_equal(out, np.array([[0, 30, 30, 0]] * 4, dtype=float))


def test_lecture_5x5_binary():
    image = [[1, 1, 1, 0, 0],
             [0, 1, 1, 1, 0],
             [0, 0, 1, 1, 1],
             [0, 0, 1, 1, 0],
             [0, 1, 1, 0, 0]]
    kernel = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    np.testing.assert_array_equal(conv2d(image, kernel), np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]], dtype=float))


def test_lecture_padding_and_stride():
    # padding 1 keeps the 6×6 size ("same"); stride 2 gives floor((6 + 2 - 3)/2) + 1 = 3
    assert conv2d(LECTURE_IMAGE, VERTICAL_EDGE, padding=1).shape == (6, 6)
    out = conv2d(LECTURE_IMAGE, VERTICAL_EDGE, stride=2)
    np.testing.assert_array_equal(out, np.array(LECTURE_RESULT, dtype=float)[::2, ::2])


# ----------------------------------------------------------------------------- conv2d errors

def test_ragged_rows():
    with pytest.raises(ValueError, match="rectangular grid of numbers") as err:
        conv2d([[1, 2, 3], [4, 5]], [[1]])
    assert "every row the same length" in str(err.value)
    with pytest.raises(ValueError, match="The kernel must be a rectangular grid"):
        conv2d(np.ones((4, 4)), [[1, 0], [1]])


def test_non_numeric():
    with pytest.raises(ValueError, match="The image must be a rectangular grid of numbers"):
        conv2d([["a", "b"], ["c", "d"]], [[1]])


@pytest.mark.parametrize("empty", [[], [[]], np.zeros((0, 3)), np.zeros((3, 3, 0))])
def test_empty_image(empty):
    with pytest.raises(ValueError, match="The image is empty: give at least one row and one column"):
        conv2d(empty, [[1]])


def test_empty_kernel():
    with pytest.raises(ValueError, match="The kernel is empty"):
        conv2d(np.ones((3, 3)), [])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(bad):
    image = np.ones((4, 4))
    image[1, 2] = bad
    with pytest.raises(ValueError, match="The image contains NaN or infinite values; use finite numbers only"):
        conv2d(image, np.ones((3, 3)))
    kernel = np.ones((3, 3))
    kernel[0, 0] = bad
    with pytest.raises(ValueError, match="The kernel contains NaN or infinite values"):
        conv2d(np.ones((4, 4)), kernel)


def test_mismatched_channels():
    with pytest.raises(ValueError, match="The kernel has 2 channels but the image has 3; they must match"):
        conv2d(np.ones((5, 5, 3)), np.ones((3, 3, 2)))


def test_mismatched_dimensions():
    with pytest.raises(ValueError, match=r"same number of dimensions.*\(f, f, C\) kernel"):
        conv2d(np.ones((5, 5, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="same number of dimensions"):
        conv2d(np.ones((5, 5)), np.ones((3, 3, 1)))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 3, 3)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match=r"The image must be 2-D \(H, W\) or 3-D \(H, W, C\)"):
        conv2d(np.ones(shape), np.ones(shape))


def test_oversized_input(monkeypatch):
    assert conv.MAX_ELEMENTS == 4096 * 4096 * 3
    monkeypatch.setattr(conv, "MAX_ELEMENTS", 300)  # so the test needs no 400 MB array
    conv2d(np.ones((10, 10, 3)), np.ones((3, 3, 3)))  # exactly the limit: accepted
    with pytest.raises(ValueError, match="more than this educational conv2d accepts") as err:
        conv2d(np.ones((11, 10, 3)), np.ones((3, 3, 3)))
    assert "cnnviz.kernels.filter_image" in str(err.value)
    assert "330 values" in str(err.value) and "(300)" in str(err.value)


def test_kernel_larger_than_padded_image():
    with pytest.raises(ValueError, match=r"The kernel does not fit: f = 7 > n \+ 2p = 5"):
        conv2d(np.ones((5, 5)), np.ones((7, 7)))
    with pytest.raises(ValueError, match=r"f = 5 > n \+ 2p = 2 \+ 2·1 = 4"):
        conv2d(np.ones((2, 2)), np.ones((5, 5)), padding=1)
    conv2d(np.ones((3, 3)), np.ones((5, 5)), padding=1)  # with padding it fits


@pytest.mark.parametrize("kwargs, match", [
    (dict(padding=-1), "padding must be at least 0"),
    (dict(padding=0.5), "padding must be a whole number"),
    (dict(stride=0), "stride must be at least 1"),
    (dict(stride=1.5), "stride must be a whole number"),
    (dict(stride=True), "stride must be a whole number"),
])
def test_bad_padding_and_stride(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv2d(np.ones((5, 5)), np.ones((3, 3)), **kwargs)
