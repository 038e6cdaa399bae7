"""cnnviz.kernels against its oracles: per-channel F.conv2d and the educational cnnviz.conv.conv2d."""
import builtins
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnviz
from cnnviz.conv import conv2d
from cnnviz.kernels import (DESCRIPTIONS, DISPLAY_MODES, PRESETS, filter_image, for_display, gaussian,
                            parse_entry, preset)

NAMES = list(PRESETS)
rng = np.random.default_rng(0)
GRAY = rng.integers(0, 256, size=(13, 17), dtype=np.uint8)  # (H, W)
RGB = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)  # (H, W, 3)


def _oracle(image, kernel):
    """Each channel through F.conv2d separately, zero padding f // 2, float32 as filter_image computes."""
    img = np.asarray(image, dtype=np.float32)
    chans = img[:, :, None] if img.ndim == 2 else img
    f = kernel.shape[0]
    w = torch.from_numpy(kernel.astype(np.float32))[None, None]  # (1, 1, f, f)
    outs = [F.conv2d(torch.from_numpy(np.ascontiguousarray(chans[:, :, c]))[None, None], w, padding=f // 2)[0, 0]
            for c in range(chans.shape[2])]
    out = torch.stack(outs, dim=-1).numpy()  # (H, W, C)
    return out[:, :, 0] if img.ndim == 2 else out


# ----------------------------------------------------------------------------- presets

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("image", [GRAY, RGB], ids=["gray", "rgb"])
def test_filter_image_matches_torch_per_channel(name, image):
    k = PRESETS[name]
    got = filter_image(image, k, device="cpu")
    assert got.dtype == np.float32
    assert got.shape == image.shape  # "same" padding keeps the size
    np.testing.assert_allclose(got, _oracle(image, k), rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_filter_image_matches_educational_conv2d(name):
    k = PRESETS[name]
    f = k.shape[0]
    np.testing.assert_allclose(filter_image(GRAY, k, device="cpu"), conv2d(GRAY, k, padding=f // 2),
                               rtol=1e-5, atol=1e-3)
    for c in range(3):
        np.testing.assert_allclose(filter_image(RGB, k, device="cpu")[:, :, c], conv2d(RGB[:, :, c], k, padding=f // 2),
                                   rtol=1e-5, atol=1e-3)


def test_filter_image_default_device_and_input_untouched():
    image = RGB.copy()
    out = filter_image(image, PRESETS["sharpen"])  # default device: cnnviz.device()
    np.testing.assert_array_equal(image, RGB)
    # on a GPU, cuDNN may use TF32 (about 3 significant digits); on the CPU the sums are float32
    atol = 1e-3 if cnnviz.device().type == "cpu" else 2.0
    np.testing.assert_allclose(out, _oracle(RGB, PRESETS["sharpen"]), rtol=1e-6, atol=atol)


def test_filter_image_read_only_and_strided_input():
    ro = RGB.copy()
    ro.flags.writeable = False
    strided = np.asfortranarray(GRAY)[:, ::-1]
    np.testing.assert_allclose(filter_image(ro, PRESETS["sobel x"], device="cpu"), _oracle(RGB, PRESETS["sobel x"]),
                               atol=1e-3)
    np.testing.assert_allclose(filter_image(strided, PRESETS["sobel x"], device="cpu"),
                               _oracle(np.ascontiguousarray(strided), PRESETS["sobel x"]), atol=1e-3)


def test_vertical_edge_on_the_lecture_step_image():
    # bright on the left, dark on the right: the [1 0 -1] kernel answers +30 at the edge (not flipped)
    step = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=np.uint8)
    out = filter_image(step, PRESETS["vertical edge"], device="cpu")
    np.testing.assert_array_equal(out[1:-1, 1:-1], np.array([[0, 30, 30, 0]] * 4, dtype=np.float32))


@pytest.mark.parametrize("kernel, match", [
    (np.ones((2, 2)), "square with an odd size"),
    (np.ones((3, 5)), "square with an odd size"),
    (np.ones((3, 3, 3)), "square with an odd size"),
    ([[1, np.nan, 1]] * 3, "NaN or infinite"),
])
def test_filter_image_bad_kernels(kernel, match):
    with pytest.raises(ValueError, match=match):
        filter_image(GRAY, kernel, device="cpu")


@pytest.mark.parametrize("image", [np.zeros((0, 4)), np.zeros(5), np.zeros((2, 2, 2, 2))])
def test_filter_image_bad_images(image):
    with pytest.raises(ValueError, match=r"non-empty \(H, W\) or \(H, W, C\) array"):
        filter_image(image, PRESETS["identity"], device="cpu")


def test_identity_copies():
    np.testing.assert_array_equal(filter_image(RGB, PRESETS["identity"], device="cpu"), RGB.astype(np.float32))


@pytest.mark.parametrize("name", [n for n in NAMES if "blur" in n])
def test_blurs_sum_to_one(name):
    assert PRESETS[name].sum() == pytest.approx(1.0, abs=1e-12)
    assert (PRESETS[name] > 0).all()


@pytest.mark.parametrize("name", [n for n in NAMES if any(w in n for w in ("edge", "sobel", "scharr", "laplacian"))])
def test_edge_kernels_sum_to_zero(name):
    assert PRESETS[name].sum() == 0


def test_every_kind_of_preset_is_there():
    assert any("blur" in n for n in NAMES) and any("edge" in n for n in NAMES)
    assert all(k.dtype == np.float64 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
               for k in PRESETS.values())
    assert set(DESCRIPTIONS) == set(PRESETS)


def test_preset_returns_a_copy():
    k = preset("sobel x")
    k[0, 0] = 99
    assert PRESETS["sobel x"][0, 0] == 1
    with pytest.raises(ValueError, match="No preset named 'sobel z'; choose one of: identity"):
        preset("sobel z")


# ----------------------------------------------------------------------------- gaussian

@pytest.mark.parametrize("size, sigma", [(1, 1.0), (3, 0.5), (5, 1.0), (7, 2.0)])
def test_gaussian(size, sigma):
    k = gaussian(size, sigma)
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k.T, atol=0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=0)
    c = size // 2
    assert k[c, c] == k.max()
    if size > 1:  # neighbours fall off as exp(-1 / (2σ²))
        assert k[c, c + 1] / k[c, c] == pytest.approx(np.exp(-1 / (2 * sigma**2)))


@pytest.mark.parametrize("size", [0, 2, 4, -3])
def test_gaussian_rejects_even_or_small_sizes(size):
    with pytest.raises(ValueError, match="odd size"):
        gaussian(size)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan")])
def test_gaussian_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be positive"):
        gaussian(3, sigma)


# ----------------------------------------------------------------------------- for_display

def test_for_display_clip():
    v = np.array([-10.0, 0.4, 100.6, 254.7, 300.0], dtype=np.float32)
    out = for_display(v, "clip")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [0, 0, 101, 255, 255])
    np.testing.assert_array_equal(for_display(v), out)  # clip is the default


def test_for_display_abs():
    v = np.array([-300.0, -100.4, -0.4, 50.0, 300.0])
    np.testing.assert_array_equal(for_display(v, "abs"), [255, 100, 0, 50, 255])


def test_for_display_normalise():
    v = np.array([[0.0, 1.0], [2.0, 4.0]])
    np.testing.assert_array_equal(for_display(v, "normalise"), [[0, 64], [128, 255]])  # 255·(v - 0)/4
    # all channels share one min..max, so the colour balance is kept
    rgb = np.zeros((1, 2, 3))
    rgb[0, 1] = [-10.0, 0.0, 10.0]
    np.testing.assert_array_equal(for_display(rgb, "normalise")[0, 1], [0, 128, 255])
    np.testing.assert_array_equal(for_display(rgb, "normalise")[0, 0], [128, 128, 128])


@pytest.mark.parametrize("mode, expected", [("clip", 7), ("abs", 7), ("normalise", 0)])
def test_for_display_constant_input(mode, expected):
    v = np.full((4, 5, 3), 7.0 if mode != "abs" else -7.0)
    out = for_display(v, mode)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out == expected).all()


def test_for_display_unknown_mode():
    assert DISPLAY_MODES == ("clip", "abs", "normalise")
    with pytest.raises(ValueError, match="Unknown display mode 'log'; choose one of"):
        for_display(np.zeros(3), "log")


# ----------------------------------------------------------------------------- parse_entry

@pytest.mark.parametrize("text, value", [
    ("2", 2.0), (" -0.5 ", -0.5), ("1e-3", 1e-3), ("1/9", 1 / 9), ("−1", -1.0), ("-1/4", -0.25),
    ("0", 0.0), ("+3", 3.0), (" 2 / 8 ", 0.25), (5, 5.0), (0.25, 0.25),
])
def test_parse_entry_accepts(text, value):
    assert parse_entry(text) == value


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("abc", "is not a number"),
    ("nan", "not a finite number"),
    ("inf", "not a finite number"),
    ("-inf", "not a finite number"),
    ("1e400", "not a finite number"),
    ("1/0", "divides by zero"),
    ("__import__('os')", "is not a number"),
    ("2*3", "is not a number"),
    ("1/2/3", "is not a number"),
])
def test_parse_entry_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        parse_entry(text)


@pytest.mark.parametrize("text", ["", "abc", "__import__('os')", "nan", "inf", "1/0"])
def test_parse_entry_messages_say_what_to_type(text):
    # a person reads this beside the kernel grid: it must say what a valid entry looks like
    with pytest.raises(ValueError) as err:
        parse_entry(text)
    assert re.search(r"such as|e\.g\.|for example|type a", str(err.value)), f"{text!r}: {err.value}"


def test_parse_entry_never_evaluates_code(monkeypatch, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("parse_entry must not evaluate code")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    marker = tmp_path / "evaluated"
    for text in [f"__import__('pathlib').Path({str(marker)!r}).touch()", "(lambda: 1)()", "2**3", "[1][0]"]:
        with pytest.raises(ValueError, match="is not a number"):
            parse_entry(text)
    assert not marker.exists()
    assert parse_entry("1/9") == 1 / 9  # fractions still work without eval
