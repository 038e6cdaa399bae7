"""cnnviz.figures: what the static figures contain, checked against the numbers they are built from."""
import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnviz import figures
from cnnviz.conv import conv2d, output_size
from cnnviz.data import load_image
from cnnviz.imaging import downscale, to_gray
from cnnviz.kernels import PRESETS, filter_image, for_display
from lecture_examples import LECTURE_IMAGE, LECTURE_RESULT, VERTICAL_EDGE

NAMES = list(PRESETS)
LECTURE_RESULT = np.array(LECTURE_RESULT, dtype=float)


def _decode(source: str) -> np.ndarray:
    """The pixels of a ``data:image/png;base64,...`` URI."""
    head, payload = source.split(",", 1)
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im)


def _z(trace) -> np.ndarray:
    return np.asarray(trace.z, dtype=float)  # None (plotly's NaN) becomes nan


# ----------------------------------------------------------------------------- kernel_gallery

@pytest.fixture(scope="module")
def photo():
    return load_image("astronaut")  # (512, 512, 3)


@pytest.fixture(scope="module")
def gallery(photo):
    return figures.kernel_gallery(photo)


def test_gallery_has_one_slider_step_per_preset(gallery):
    assert len(gallery.layout.sliders) == 1
    steps = gallery.layout.sliders[0].steps
    assert [s.label for s in steps] == NAMES
    assert len(gallery.data) == 1 + 2 * len(NAMES)  # input, one kernel per preset, one output per preset


def test_gallery_each_step_shows_input_kernel_and_output(gallery):
    n = len(NAMES)
    for i, step in enumerate(gallery.layout.sliders[0].steps):
        assert step.method == "restyle"
        visible = step.args[0]["visible"]
        assert len(visible) == len(gallery.data)
        shown = [gallery.data[t] for t, v in enumerate(visible) if v]
        assert len(shown) == 3
        assert shown[0] is gallery.data[0] and isinstance(shown[0], go.Image)  # the input
        assert isinstance(shown[1], go.Heatmap) and shown[1].name == NAMES[i]  # its kernel
        assert isinstance(shown[2], go.Image) and shown[2].name == NAMES[i]  # its output
        assert visible[1 + i] and visible[1 + n + i]


def test_gallery_initial_state_is_the_first_step(gallery):
    visible = [t.visible is not False for t in gallery.data]
    assert visible == gallery.layout.sliders[0].steps[0].args[0]["visible"]


def test_gallery_kernels_are_the_presets(gallery):
    for i, name in enumerate(NAMES):
        np.testing.assert_array_equal(_z(gallery.data[1 + i]), PRESETS[name])


def test_gallery_display_modes():
    # zero-sum (edge) kernels are shown by magnitude, the others clipped
    for name, k in PRESETS.items():
        assert figures.DISPLAY_FOR_PRESET[name] == ("abs" if k.sum() == 0 else "clip")
    assert figures.DISPLAY_FOR_PRESET["sobel x"] == "abs"
    assert figures.DISPLAY_FOR_PRESET["box blur 3×3"] == "clip"


def test_gallery_outputs_are_the_filtered_photo(gallery, photo):
    gray = downscale(to_gray(photo), 320)
    assert gray.shape == (320, 320)
    np.testing.assert_array_equal(_decode(gallery.data[0].source), gray)
    n = len(NAMES)
    for i, name in enumerate(NAMES):
        expected = for_display(filter_image(gray, PRESETS[name], device="cpu"), figures.DISPLAY_FOR_PRESET[name])
        got = _decode(gallery.data[1 + n + i].source)
        assert got.shape == gray.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_gallery_output_matches_torch_on_a_small_image():
    # independent oracle: F.conv2d with "same" padding, then the display mapping by hand
    img = np.random.default_rng(0).integers(0, 256, size=(12, 20), dtype=np.uint8)
    fig = figures.kernel_gallery(img, names=["sobel x", "box blur 3×3"])
    assert len(fig.data) == 5 and len(fig.layout.sliders[0].steps) == 2
    x = torch.from_numpy(img.astype(np.float32))[None, None]
    sobel = torch.from_numpy(PRESETS["sobel x"].astype(np.float32))[None, None]
    blur = torch.from_numpy(PRESETS["box blur 3×3"].astype(np.float32))[None, None]
    expected_sobel = np.clip(np.abs(F.conv2d(x, sobel, padding=1)[0, 0].numpy()), 0, 255).round().astype(np.uint8)
    expected_blur = np.clip(F.conv2d(x, blur, padding=1)[0, 0].numpy(), 0, 255).round().astype(np.uint8)
    np.testing.assert_array_equal(_decode(fig.data[3].source), expected_sobel)
    np.testing.assert_array_equal(_decode(fig.data[4].source), expected_blur)


def test_gallery_images_are_upright_with_square_pixels(gallery):
    for axis, anchor in (("yaxis", "x"), ("yaxis2", "x2"), ("yaxis3", "x3")):
        y = gallery.layout[axis]
        assert y.autorange == "reversed", axis  # row 0 at the top
        assert y.scaleanchor == anchor, axis  # one data unit is as tall as it is wide
    for i, trace in enumerate(gallery.data):
        assert trace.yaxis == ("y" if i == 0 else ("y2" if i <= len(NAMES) else "y3"))


# ----------------------------------------------------------------------------- conv_steps

@pytest.fixture(scope="module")
def steps():
    return figures.conv_steps(LECTURE_IMAGE, VERTICAL_EDGE)


def test_conv_steps_one_frame_per_output_cell(steps):
    assert len(steps.frames) == 16
    assert [f.name for f in steps.frames] == [str(k) for k in range(16)]
    assert len(steps.layout.sliders[0].steps) == 16


def test_conv_steps_last_frame_is_the_lecture_result(steps):
    last = steps.frames[-1]
    assert list(last.traces) == [1]  # it updates the output heatmap
    np.testing.assert_array_equal(_z(last.data[0]), LECTURE_RESULT)


def test_conv_steps_fills_the_output_cell_by_cell(steps):
    for k, frame in enumerate(steps.frames):
        z = _z(frame.data[0])
        filled = ~np.isnan(z)
        assert filled.sum() == k + 1
        assert filled.ravel()[: k + 1].all()
        np.testing.assert_array_equal(z[filled], LECTURE_RESULT[filled])


def test_conv_steps_annotation_spells_out_the_sum(steps):
    note = steps.frames[0].layout.annotations[-1].text
    assert note.endswith("= <b>-5</b>")
    assert note == ("out[0,0] = (3)(1) + (0)(0) + (1)(-1) + (1)(1) + (5)(0) + (8)(-1) "
                    "+ (2)(1) + (7)(0) + (2)(-1) = <b>-5</b>")
    assert steps.frames[15].layout.annotations[-1].text.endswith("= <b>-16</b>")
    # the figure opens on frame 0
    assert steps.layout.annotations[-1].text == note
    np.testing.assert_array_equal(np.isnan(_z(steps.data[1])), np.arange(16).reshape(4, 4) > 0)
    np.testing.assert_array_equal(_z(steps.data[0]), np.array(LECTURE_IMAGE, dtype=float))


def test_conv_steps_every_annotation_adds_up(steps):
    for k, frame in enumerate(steps.frames):
        text = frame.layout.annotations[-1].text
        terms = text.split(" = ")[1].split(" + ")
        total = sum(float(a) * float(b) for a, b in (t.strip("()").split(")(") for t in terms))
        assert total == LECTURE_RESULT.ravel()[k]


def test_conv_steps_padding_and_stride_match_torch():
    img = np.arange(25, dtype=float).reshape(5, 5)
    ker = np.array([[1.0, 2, 0], [0, -1, 0], [1, 0, 3]])
    fig = figures.conv_steps(img, ker, padding=1, stride=2)
    n = output_size(5, 3, 1, 2)
    assert n == 3 and len(fig.frames) == n * n
    expected = F.conv2d(torch.from_numpy(img)[None, None], torch.from_numpy(ker)[None, None],
                        padding=1, stride=2)[0, 0].numpy()
    np.testing.assert_array_equal(_z(fig.frames[-1].data[0]), expected)
    np.testing.assert_array_equal(_z(fig.data[0]), np.pad(img, 1))  # the padded input is drawn


def test_conv_steps_kernel_too_large():
    with pytest.raises(ValueError, match=r"f = 5 > n \+ 2p = 3"):
        figures.conv_steps(np.ones((3, 3)), np.ones((5, 5)))


# ----------------------------------------------------------------------------- matrix / matrices

def test_matrix_shows_the_values():
    values = np.array([[1.0, -2.5], [3.0, 0.0]])
    fig = figures.matrix(values, title="k")
    assert len(fig.data) == 1
    np.testing.assert_array_equal(_z(fig.data[0]), values)
    assert [list(r) for r in fig.data[0].text] == [["1", "-2.50"], ["3", "0"]]
    assert fig.data[0].zmid == 0  # negative values: the diverging scale centred on 0
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 on top, as written
    assert fig.layout.title.text == "k"


def test_matrix_unsigned():
    fig = figures.matrix(LECTURE_IMAGE)
    np.testing.assert_array_equal(_z(fig.data[0]), np.array(LECTURE_IMAGE, dtype=float))
    assert fig.data[0].zmid is None


def test_matrices_show_each_array():
    out = conv2d(LECTURE_IMAGE, VERTICAL_EDGE)
    named = [("image", LECTURE_IMAGE), ("kernel", VERTICAL_EDGE), ("result", out)]
    fig = figures.matrices(named, title="the lecture's example")
    assert len(fig.data) == 3
    for trace, (_, a) in zip(fig.data, named):
        np.testing.assert_array_equal(_z(trace), np.asarray(a, dtype=float))
    assert [a.text for a in fig.layout.annotations] == ["image", "kernel", "result"]
    for axis in ("yaxis", "yaxis2", "yaxis3"):
        assert fig.layout[axis].autorange == "reversed"
