"""cnnviz.layers against its oracles: torch's conv2d, max/avg pooling and nn.Conv2d, and the lecture's numbers."""
import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz import layers
from cnnviz.layers import (check_budget, conv_macs, conv_output_shape, conv_params, conv_trace,
                           conv_trace_values, conv_volume, dense_params, pool2d, pool_trace, same_padding)


def _torch_conv(x, w, b, padding, stride, dilation):
    """The oracle: F.conv2d in float64 on one (C_in, H, W) volume."""
    t = lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float64))
    return F.conv2d(t(x)[None], t(w), t(b), stride=stride, padding=padding, dilation=dilation)[0].numpy()


def _torch_pool(x, f, s, p, mode):
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    t = t[None] if t.ndim == 3 else t[None, None]
    out = (F.max_pool2d if mode == "max" else F.avg_pool2d)(t, f, s, p)
    return out[0].numpy() if np.ndim(x) == 3 else out[0, 0].numpy()


# ----------------------------------------------------------------------------- the lecture's numbers, exactly

def test_lecture_parameter_counts():
    assert conv_params(3, 10, 3) == 280  # 10 filters of 3×3×3: 10·(27 + 1)
    assert conv_params(3, 6, 5) == 456  # 6 filters of 5×5×3: 6·(75 + 1)
    # the same 32×32×3 → 28×28×6 mapping as a fully connected layer
    assert conv_output_shape(3, 32, 32, 6, 5) == (6, 28, 28)
    assert 32 * 32 * 3 == 3072 and 28 * 28 * 6 == 4704
    assert dense_params(32 * 32 * 3, 28 * 28 * 6, bias=False) == 14_450_688
    assert dense_params(3072, 4704) == 14_450_688 + 4704
    assert dense_params(3072, 4704, bias=False) // conv_params(3, 6, 5) == 31_690  # ~32,000 times more


def test_lecture_same_padding():
    assert same_padding(3) == 1
    assert same_padding(5) == 2
    assert same_padding(3, d=2) == 2
    assert same_padding(1) == 0 and same_padding(7) == 3


def test_lecture_macs():
    # 6 filters 5×5×3 on 32×32×3: 28·28 positions · 6 filters · 75 weights
    assert conv_macs(3, 32, 32, 6, 5) == 28 * 28 * 6 * 75 == 352_800


# ----------------------------------------------------------------------------- arithmetic vs torch

@pytest.mark.parametrize("d", [1, 2, 3])
def test_same_padding_matches_torch_same(d):
    for f in range(1, 8):
        x, w = torch.zeros(1, 1, 11, 11), torch.zeros(1, 1, f, f)
        if d * (f - 1) % 2:
            with pytest.raises(ValueError, match=r"p = d\(f-1\)/2 = .* to be a whole number") as err:
                same_padding(f, d)
            assert "odd kernel size" in str(err.value)
            continue
        p = same_padding(f, d)
        out = F.conv2d(x, w, padding=p, dilation=d)
        assert out.shape == F.conv2d(x, w, padding="same", dilation=d).shape == (1, 1, 11, 11)
        assert conv_output_shape(1, 11, 11, 1, f, "same", 1, d) == (1, 11, 11)


def test_conv_output_shape_matches_torch():
    checked = refused = 0
    for c_in, c_out, h, w, f, p, s, d in itertools.product(
            [1, 3], [2], [5, 8], [6, 9], [1, 2, 3, 5], [0, 1, 2, "valid"], [1, 2, 3], [1, 2]):
        x, k = torch.zeros(1, c_in, h, w), torch.zeros(c_out, c_in, f, f)
        try:
            expected = tuple(F.conv2d(x, k, stride=s, padding=p, dilation=d).shape[1:])
        except RuntimeError:
            with pytest.raises(ValueError, match="does not fit"):
                conv_output_shape(c_in, h, w, c_out, f, p, s, d)
            refused += 1
            continue
        assert conv_output_shape(c_in, h, w, c_out, f, p, s, d) == expected, (c_in, h, w, c_out, f, p, s, d)
        checked += 1
    assert checked > 300 and refused > 20


def test_same_needs_stride_one():
    with pytest.raises(ValueError, match="'same' keeps the size only with stride 1") as err:
        conv_output_shape(3, 32, 32, 8, 3, "same", 2)
    assert "s = 2" in str(err.value) and "give the padding as a number" in str(err.value)
    with pytest.raises(ValueError, match="'same' padding needs"):
        conv_output_shape(3, 32, 32, 8, 4, "same")


@pytest.mark.parametrize("bad", ["full", "SAME", None, 1.5, -1])
def test_bad_padding(bad):
    with pytest.raises(ValueError, match="padding"):
        conv_output_shape(3, 32, 32, 8, 3, bad)


@pytest.mark.parametrize("bias", [True, False])
def test_conv_params_match_nn_conv2d(bias):
    for c_in, c_out, f in itertools.product([1, 3, 16], [1, 6, 64], [1, 3, 5, 7]):
        layer = nn.Conv2d(c_in, c_out, f, bias=bias, device="meta")  # shapes only, no memory, no RNG
        assert conv_params(c_in, c_out, f, bias) == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("bias", [True, False])
def test_conv_params_rectangular_and_grouped_match_nn_conv2d(bias):
    for c_in, c_out, f, groups in itertools.product([4, 12], [8, 24], [(1, 7), (3, 5), [2, 1], 3], [1, 2, 4]):
        layer = nn.Conv2d(c_in, c_out, tuple(f) if isinstance(f, list) else f, bias=bias, groups=groups,
                          device="meta")
        assert conv_params(c_in, c_out, f, bias, groups) == sum(p.numel() for p in layer.parameters())
    # AlexNet's conv2 on two GPUs (Krizhevsky et al. 2012): 256 filters of 5×5×48, half the weights of 5×5×96
    assert conv_params(96, 256, 5, groups=2) == 256 * (5 * 5 * 48 + 1)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_params_match_nn_linear(bias):
    for n_in, n_out in [(1, 1), (3072, 4704), (4096, 1000), (84, 10)]:
        layer = nn.Linear(n_in, n_out, bias=bias, device="meta")
        assert dense_params(n_in, n_out, bias) == sum(p.numel() for p in layer.parameters())


def test_conv_macs_is_outputs_times_weights_per_filter():
    for c_in, h, c_out, f, p, s, d in itertools.product([1, 3], [7, 12], [1, 4], [1, 3], [0, 1], [1, 2], [1, 2]):
        out = F.conv2d(torch.zeros(1, c_in, h, h + 1), torch.zeros(c_out, c_in, f, f), stride=s, padding=p, dilation=d)
        assert conv_macs(c_in, h, h + 1, c_out, f, p, s, d) == out.numel() * c_in * f * f
    # a real layer far beyond the explorer's limit is still just arithmetic: VGG-16's conv1_2
    assert conv_macs(64, 224, 224, 64, 3, "same") == 224 * 224 * 64 * 9 * 64 == 1_849_688_064


@pytest.mark.parametrize("fn, args, match", [
    (conv_params, (0, 6, 5), "c_in (input channels) must be at least 1, got 0"),
    (conv_params, (3, -1, 5), "c_out (number of filters) must be at least 1, got -1"),
    (conv_params, (3, 6, 2.5), "f (kernel size) must be a whole number"),
    (conv_params, (3, 6, 5, "yes"), "bias must be True or False"),
    (conv_params, (3, 6, (3, 3, 3)), "one number or a pair"),
    (conv_params, (3, 6, (3, 0)), "f (kernel size) must be at least 1"),
    (conv_params, (3, 6, 3, True, 2), "groups=2 must divide both c_in (3)"),
    (conv_params, (4, 6, 3, True, 0), "groups must be at least 1"),
    (dense_params, (0, 10), "n_in (input units) must be at least 1"),
    (dense_params, (10, 0), "n_out (output units) must be at least 1"),
    (dense_params, (10, 1.0), "n_out (output units) must be a whole number"),
    (conv_output_shape, (3, 5, 5, 8, 7), "f = 7 > n + 2p = 5"),
    (conv_output_shape, (3, 5, 5, 8, 3, 0, 1, 3), "d(f-1)+1 = 7 > n + 2p = 5"),
    (conv_output_shape, (3, 5, 5, 8, 3, 0, 0), "s (stride) must be at least 1, got 0"),
    (conv_output_shape, (3, 0, 5, 8, 3), "n (input size) must be at least 1, got 0"),
    (conv_output_shape, (3, 5, 5, 0, 3), "c_out (number of filters) must be at least 1"),
    (conv_output_shape, (3.0, 5, 5, 8, 3), "c_in (input channels) must be a whole number"),
    (conv_macs, (3, 5, 5, 8, 3, 0, 1, 0), "d (dilation) must be at least 1, got 0"),
    (same_padding, (4,), "p = d(f-1)/2 = 1·3/2 = 1.5"),
    (same_padding, (0,), "f (kernel size) must be at least 1"),
    (same_padding, (3, 0), "d (dilation) must be at least 1"),
])
def test_arithmetic_errors(fn, args, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        fn(*args)


# ----------------------------------------------------------------------------- conv_volume vs F.conv2d

@pytest.mark.parametrize("c_in, c_out", [(1, 1), (3, 4), (2, 1)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_volume_matches_torch(c_in, c_out, with_bias):
    rng = np.random.default_rng(c_in * 10 + c_out)
    x = rng.normal(size=(c_in, 9, 11))
    checked = 0
    for f, p, s, d in itertools.product([1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2]):
        if d * (f - 1) + 1 > 9 + 2 * p:
            continue
        w = rng.normal(size=(c_out, c_in, f, f))
        b = rng.normal(size=c_out) if with_bias else None
        got = conv_volume(x, w, b, padding=p, stride=s, dilation=d)
        expected = _torch_conv(x, w, b, p, s, d)
        assert got.dtype == np.float64
        assert got.shape == expected.shape == conv_output_shape(c_in, 9, 11, c_out, f, p, s, d)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked > 60


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_volume_string_padding(padding):
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(3, 8, 7)), rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5)
    for d in (1, 2):
        expected = F.conv2d(torch.as_tensor(x)[None], torch.as_tensor(w), torch.as_tensor(b), padding=padding, dilation=d)[0]
        np.testing.assert_allclose(conv_volume(x, w, b, padding=padding, dilation=d), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_conv_volume_rectangular_and_large_kernels():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 10, 12))
    for kshape, p, s, d in [((2, 3), 1, 1, 1), ((3, 1), 0, 2, 2), ((9, 11), 0, 1, 1), ((10, 12), 1, 1, 1), ((5, 5), 2, 3, 2)]:
        # (9, 11) and (10, 12) have more taps than output cells: the cell-by-cell path
        w = rng.normal(size=(3, 2) + kshape)
        np.testing.assert_allclose(conv_volume(x, w, padding=p, stride=s, dilation=d),
                                   _torch_conv(x, w, None, p, s, d), rtol=1e-12, atol=1e-12)


def test_conv_volume_integer_input_and_lists():
    x = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    w = [[[[1, 0], [0, -1]], [[0, 2], [0, 0]]]]  # nested lists: (1, 2, 2, 2)
    np.testing.assert_allclose(conv_volume(x, w, [0.5]), _torch_conv(x, w, [0.5], 0, 1, 1), atol=1e-12)


def test_conv_volume_matches_single_channel_conv2d_sum():
    # the lecture's picture: a filter is one kernel per input channel, summed, plus one bias
    from cnnviz.conv import conv2d
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(3, 7, 7)), rng.normal(size=(2, 3, 3, 3))
    out = conv_volume(x, w, [1.0, -2.0], padding=1)
    for o, bias in enumerate([1.0, -2.0]):
        per_channel = sum(conv2d(x[c], w[o, c], padding=1) for c in range(3))
        np.testing.assert_allclose(out[o], per_channel + bias, rtol=1e-12, atol=1e-12)


def test_conv_volume_does_not_mutate():
    rng = np.random.default_rng(6)
    x, w, b = rng.normal(size=(2, 6, 6)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    before = x.copy(), w.copy(), b.copy()
    conv_volume(x, w, b, padding=2, stride=2)
    for a, a0 in zip((x, w, b), before):
        np.testing.assert_array_equal(a, a0)


# ----------------------------------------------------------------------------- conv_volume errors

def test_conv_volume_ragged_empty_nan():
    w = np.ones((1, 1, 1, 1))
    with pytest.raises(ValueError, match="The input x must be a rectangular grid of numbers"):
        conv_volume([[[1, 2], [3]]], w)
    with pytest.raises(ValueError, match="The filters w must be a rectangular grid"):
        conv_volume(np.ones((1, 3, 3)), [[[[1, 2], [3]]]])
    with pytest.raises(ValueError, match="The input x is empty"):
        conv_volume(np.zeros((1, 0, 3)), w)
    with pytest.raises(ValueError, match="The filters w is empty"):
        conv_volume(np.ones((1, 3, 3)), np.zeros((0, 1, 1, 1)))
    x = np.ones((1, 3, 3))
    x[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="The input x contains NaN or infinite values"):
        conv_volume(x, w)
    with pytest.raises(ValueError, match="The bias b contains NaN"):
        conv_volume(np.ones((1, 3, 3)), w, [np.inf])


def test_conv_volume_shape_errors():
    with pytest.raises(ValueError, match=r"must be 3-D \(C_in, H, W\).*pass x\[None\]"):
        conv_volume(np.ones((5, 5)), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"must be 4-D \(C_out, C_in, f, f\).*pass w\[None\]"):
        conv_volume(np.ones((1, 5, 5)), np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="Each filter has 2 channels but the input has 3"):
        conv_volume(np.ones((3, 5, 5)), np.ones((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"one number per filter, shape \(4,\); got shape \(3,\)"):
        conv_volume(np.ones((3, 5, 5)), np.ones((4, 3, 3, 3)), np.ones(3))


def test_conv_volume_kernel_too_large():
    with pytest.raises(ValueError, match=r"The kernel does not fit: f = 7 > n \+ 2p = 5"):
        conv_volume(np.ones((1, 5, 5)), np.ones((1, 1, 7, 7)))
    with pytest.raises(ValueError, match=r"d\(f-1\)\+1 = 7 > n \+ 2p = 5"):  # dilation makes it too large
        conv_volume(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), dilation=3)
    conv_volume(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), dilation=2)  # exactly fits


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=0), "stride must be at least 1, got 0"),
    (dict(stride=1.5), "stride must be a whole number"),
    (dict(dilation=0), "dilation must be at least 1, got 0"),
    (dict(padding=-1), r"p \(padding\) must be at least 0"),
    (dict(padding="same", stride=2), "only with stride 1"),
])
def test_conv_volume_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_volume(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), **kwargs)


def test_budget(monkeypatch):
    assert layers.MAX_MACS == 50_000_000 and layers.MAX_SIDE == 2048
    assert check_budget(3, 32, 32, 6, 5) == 352_800
    with pytest.raises(ValueError, match="side of 10,000 pixels.*choose a smaller input"):
        check_budget(3, 10_000, 10_000, 16, 3)  # refused before any arithmetic on the sizes
    with pytest.raises(ValueError, match="1,849,688,064 multiply–accumulates.*choose a smaller input"):
        check_budget(64, 224, 224, 64, 3, 1)
    monkeypatch.setattr(layers, "MAX_MACS", 28 * 28 * 6 * 75)
    assert check_budget(3, 32, 32, 6, 5) == 352_800  # exactly the limit: accepted
    with pytest.raises(ValueError, match="352,800"):
        check_budget(3, 32, 32, 6, 5, 1)
    x, w = np.ones((3, 32, 32)), np.ones((6, 3, 5, 5))
    conv_volume(x, w)
    with pytest.raises(ValueError, match="more than the 352,800 this educational code computes"):
        conv_volume(x, w, padding=1)


def test_trace_limit():
    assert layers.MAX_TRACE == 100_000
    conv_trace((11_111, 5, 5), (1, 11_111, 3, 3), (0, 0, 0))  # 99,999 products: traced
    with pytest.raises(ValueError, match="One output cell needs 100,008 products, more than the 100,000.*fewer channels"):
        conv_trace((11_112, 5, 5), (1, 11_112, 3, 3), (0, 0, 0))


def test_side_limit_refuses_before_work():
    with pytest.raises(ValueError, match="side of 2,049 pixels, more than the 2,048"):
        conv_volume(np.ones((1, 2049, 1)), np.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="side of 10,000 pixels"):
        conv_trace((3, 10_000, 10_000), (8, 3, 3, 3), (0, 0, 0))
    with pytest.raises(ValueError, match="side of 2,049 pixels"):
        pool2d(np.ones((2049, 2)), 2)


# ----------------------------------------------------------------------------- tracing one cell

SETTINGS = [(3, 1, 1, 1), (3, 1, 2, 1), (5, 2, 2, 1), (3, 2, 1, 2), (2, 0, 1, 1), (1, 1, 3, 1), (3, 3, 2, 2)]


@pytest.mark.parametrize("f, p, s, d", SETTINGS)
def test_conv_trace_positions_reproduce_torch(f, p, s, d):
    rng = np.random.default_rng(f * 100 + p * 10 + s + d)
    x, w, b = rng.normal(size=(3, 7, 8)), rng.normal(size=(2, 3, f, f)), rng.normal(size=2)
    expected = _torch_conv(x, w, b, p, s, d)
    padded_x = np.pad(x, ((0, 0), (p, p), (p, p)))
    for o, i, j in itertools.product(range(2), range(expected.shape[1]), range(expected.shape[2])):
        t = conv_trace(x.shape, w.shape, (o, i, j), p, s, d)
        assert t.output_shape == expected.shape and t.padded_shape == padded_x.shape
        assert len(t.padded) == len(t.original) == len(t.kernel) == 3 * f * f
        total = b[o] + sum(padded_x[q] * w[(o,) + k] for q, k in zip(t.padded, t.kernel))
        assert total == pytest.approx(expected[o, i, j], rel=1e-12, abs=1e-12)
        for (c, r, q), orig in zip(t.padded, t.original):
            inside = p <= r < p + 7 and p <= q < p + 8
            assert (orig == (c, r - p, q - p)) if inside else orig is None
            assert t.window[0] <= r <= t.window[2] and t.window[1] <= q <= t.window[3]
        top, left, bottom, right = t.window
        assert (bottom - top, right - left) == (d * (f - 1), d * (f - 1))


@pytest.mark.parametrize("f, p, s, d", SETTINGS)
def test_conv_trace_values_total_equals_conv_volume(f, p, s, d):
    rng = np.random.default_rng(7 + f + p + s + d)
    for with_bias in (True, False):
        x, w = rng.normal(size=(2, 6, 9)), rng.normal(size=(3, 2, f, f))
        b = rng.normal(size=3) if with_bias else None
        out = conv_volume(x, w, b, p, s, d)
        for index in itertools.product(range(3), range(out.shape[1]), range(out.shape[2])):
            v = conv_trace_values(x, w, b, index, p, s, d)
            assert v.total == pytest.approx(out[index], rel=1e-12, abs=1e-12)
            assert v.inputs.shape == v.weights.shape == v.products.shape == (2, f, f)
            np.testing.assert_allclose(v.products, v.inputs * v.weights)
            np.testing.assert_allclose(v.channel_sums, v.products.sum(axis=(1, 2)))
            assert v.bias == (b[index[0]] if with_bias else 0.0)
            # the inputs are the traced cells (zeros in the padding)
            flat = [x[o] if o is not None else 0.0 for o in v.trace.original]
            np.testing.assert_array_equal(v.inputs.ravel(), flat)


def test_conv_trace_lecture_corner_in_padding():
    # 3×3 kernel, padding 1: output (0, 0) reads a 3×3 window whose top row and left column are padding
    t = conv_trace((1, 6, 6), (1, 1, 3, 3), (0, 0, 0), padding=1)
    assert t.window == (0, 0, 2, 2) and t.output_shape == (1, 6, 6)
    assert sum(o is None for o in t.original) == 5
    assert t.original[4] == (0, 0, 0) and t.kernel[4] == (0, 1, 1)  # the kernel centre sits on pixel (0, 0)


@pytest.mark.parametrize("index, match", [
    ((0, 4, 0), r"out_index \(0, 4, 0\) is outside the output of shape \(2, 4, 4\): i = 4 must be at most 3"),
    ((2, 0, 0), "o = 2 must be at most 1"),
    ((0, 0, -1), "out_index j must be at least 0"),
    ((0, 0), r"must be a tuple \(o, i, j\) of 3 numbers"),
    (5, r"must be a tuple \(o, i, j\)"),
    ((0, 1.5, 0), "out_index i must be a whole number"),
])
def test_conv_trace_bad_index(index, match):
    with pytest.raises(ValueError, match=match):
        conv_trace((3, 6, 6), (2, 3, 3, 3), index)


def test_conv_trace_bad_shapes():
    with pytest.raises(ValueError, match=r"x_shape must be a tuple of 3 sizes \(C_in, H, W\)"):
        conv_trace((6, 6), (2, 3, 3, 3), (0, 0, 0))
    with pytest.raises(ValueError, match=r"x_shape\[1\] must be at least 1, got 0"):
        conv_trace((3, 0, 6), (2, 3, 3, 3), (0, 0, 0))
    with pytest.raises(ValueError, match="Each filter has 2 channels but the input has 3"):
        conv_trace((3, 6, 6), (2, 2, 3, 3), (0, 0, 0))
    with pytest.raises(ValueError, match=r"f = 7 > n \+ 2p = 6"):
        conv_trace((3, 6, 6), (2, 3, 7, 7), (0, 0, 0))
    with pytest.raises(ValueError, match="stride must be at least 1"):
        conv_trace((3, 6, 6), (2, 3, 3, 3), (0, 0, 0), stride=0)
    with pytest.raises(ValueError, match="The input x contains NaN"):
        conv_trace_values(np.full((3, 6, 6), np.nan), np.ones((2, 3, 3, 3)), None, (0, 0, 0))


# ----------------------------------------------------------------------------- pooling vs torch

@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("channels", [None, 1, 3])
def test_pool2d_matches_torch(mode, channels):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(9, 10) if channels is None else (channels, 9, 10))
    checked = 0
    for f, s, p in itertools.product([1, 2, 3, 4], [None, 1, 2, 3], [0, 1, 2]):
        if 2 * p > f:
            with pytest.raises(ValueError, match="at most half the window"):
                pool2d(x, f, s, p, mode)
            with pytest.raises(RuntimeError, match="pad should be"):  # torch refuses it too
                _torch_pool(x, f, f if s is None else s, p, mode)
            continue
        got = pool2d(x, f, s, p, mode)
        expected = _torch_pool(x, f, f if s is None else s, p, mode)
        assert got.shape == expected.shape, (f, s, p)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked == 32


def test_pool2d_lecture_example():
    x = [[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]]
    np.testing.assert_array_equal(pool2d(x, 2), [[9, 2], [6, 3]])  # 2×2 max pooling, stride 2
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg"), [[3.75, 1.25], [3.75, 2.0]])


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_trace(mode):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 7, 8))
    for f, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1), (4, 3, 2)]:
        out = pool2d(x, f, s, p, mode)
        tx = torch.as_tensor(x)[None]
        _, idx = F.max_pool2d(tx, f, s, p, return_indices=True)  # torch's switches: flat indices into (H, W)
        for index in itertools.product(range(2), range(out.shape[1]), range(out.shape[2])):
            t = pool_trace(x, f, s, index, mode, p)
            assert t.value == pytest.approx(out[index], rel=1e-12, abs=1e-15)  # exact for max, below
            assert t.out_index == index and t.values.shape == (f, f)
            real = [x[(index[0],) + o] for o in t.original if o is not None]
            if mode == "max":
                c, i, j = index
                assert x[c][t.argmax] == t.value == max(real) == out[index]
                assert t.argmax in t.original
                assert np.ravel_multi_index(t.argmax, (7, 8)) == idx[0, c, i, j].item()
            else:
                assert t.argmax is None
                assert t.value == pytest.approx(sum(real) / f**2, rel=1e-12)
            for (r, q), o in zip(t.padded, t.original):
                assert (o is None) == (not (p <= r < p + 7 and p <= q < p + 8))


def test_pool_trace_2d_and_ties():
    x = np.array([[1.0, 5.0, 5.0], [5.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    t = pool_trace(x, 2, 1, (0, 0))
    assert t.out_index == (0, 0) and t.argmax == (0, 1)  # the first maximum in reading order
    assert t.padded == ((0, 0), (0, 1), (1, 0), (1, 1)) == t.original
    t = pool_trace(x, 2, None, (0, 0), "max", p=1)  # window (-1..0, -1..0): three padded cells
    assert t.original == (None, None, None, (0, 0)) and t.argmax == (0, 0) and t.value == 1.0
    assert np.isneginf(t.values[0, 0])


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.ones((4, 4)), 2), dict(mode="min"), "mode must be 'max' or 'avg', got 'min'"),
    ((np.ones((4, 4)), 5), {}, "f = 5 > n + 2p = 4"),
    ((np.ones((4, 4)), 2, 0), {}, "s (stride) must be at least 1, got 0"),
    ((np.ones((4, 4)), 0), {}, "f (window size) must be at least 1, got 0"),
    ((np.ones((4, 4)), 2.5), {}, "f (window size) must be a whole number"),
    ((np.ones((4, 4)), 3, 1, 2), {}, "Pooling padding p = 2 must be at most half the window, f/2 = 1.5"),
    ((np.ones((4, 4)), 3, 1, -1), {}, "p (padding) must be at least 0"),
    ((np.ones(4), 2), {}, "must be 2-D (H, W) or 3-D (C, H, W)"),
    (([[1, 2], [3]], 2), {}, "The input x must be a rectangular grid of numbers"),
    (([[np.nan, 2], [3, 4]], 2), {}, "The input x contains NaN"),
    ((np.zeros((0, 4)), 2), {}, "The input x is empty"),
])
def test_pool_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        pool2d(*args, **kwargs)


def test_pool_budget_and_trace_errors(monkeypatch):
    monkeypatch.setattr(layers, "MAX_MACS", 100)
    pool2d(np.ones((10, 10)), 2)  # 25 windows of 4 cells: 100, exactly the limit
    with pytest.raises(ValueError, match="reads 144 window cells, more than the 100"):
        pool2d(np.ones((12, 12)), 2)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"out_index \(2, 0\) is outside the output of shape \(2, 2\): i = 2 must be at most 1"):
        pool_trace(np.ones((4, 4)), 2, 2, (2, 0))
    with pytest.raises(ValueError, match=r"must be a tuple \(c, i, j\) of 3 numbers"):
        pool_trace(np.ones((1, 4, 4)), 2, 2, (0, 0))
