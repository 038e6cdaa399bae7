"""KernelEditor driven from Python: set control values, check the output against the pure functions."""
import datetime
import io
import itertools
import threading

import ipywidgets
import numpy as np
import pytest
from PIL import Image

import cnnviz.widgets.kernel_editor as ke
from cnnviz.data import load_image
from cnnviz.imaging import to_gray
from cnnviz.kernels import PRESETS, filter_image, for_display, parse_entry
from cnnviz.widgets import KernelEditor
from cnnviz.widgets._base import LatestOnly, upload_bytes

NAMES = list(PRESETS)
SIDE = 64
PHOTO = load_image("astronaut", max_side=SIDE)  # (64, 64, 3) uint8: small, so every render is quick


def oracle(image, kernel, mode="abs", colour=False):
    """What the editor must show: the pure functions, on the editor's default device (cnnviz.device())."""
    source = image if colour else to_gray(image)
    return for_display(filter_image(source, kernel), mode)


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im)


def assert_shows(view, expected):
    """The input view is a JPEG (fast to encode, slightly lossy): same shape, nearly the same pixels."""
    assert view.format == "jpeg"
    shown = decode(view.value).astype(float)
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).mean() < 4  # JPEG quality 90; a different photo differs by ~50


def png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def v8_upload(data: bytes, name="photo.png"):
    """FileUpload.value as ipywidgets 8 holds it: a tuple of dicts, content a memoryview."""
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)


def v7_upload(data: bytes, name="photo.png"):
    """FileUpload.value as ipywidgets 7 held it: {name: {"metadata": ..., "content": bytes}}."""
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(data), "lastModified": 0},
                   "content": data}}


def upload_value(data: bytes):
    """FileUpload.value in the format of the installed ipywidgets (7 on Colab, 8 elsewhere);
    tests/test_ipywidgets7.py runs this file under ipywidgets 7 too."""
    return v8_upload(data) if int(ipywidgets.__version__.split(".")[0]) >= 8 else v7_upload(data)


def set_upload(upload, data: bytes):
    """What the browser does when a file is chosen (set_trait: the trait is read-only in ipywidgets 7)."""
    upload.set_trait("value", upload_value(data))


def cells(editor):
    f = editor.kernel.shape[0]
    return [[editor.cells[r][c].value for c in range(f)] for r in range(f)]


@pytest.fixture
def editor():
    return KernelEditor(PHOTO, threaded=False, max_side=SIDE)


# ----------------------------------------------------------------------------- initial state and presets

def test_initial_output(editor):
    assert editor.preset.value == "sobel x"
    assert editor.size.value == "3×3" and editor.mode.value == "abs" and editor.color.value == "grayscale"
    np.testing.assert_array_equal(editor.kernel, PRESETS["sobel x"])
    expected = oracle(PHOTO, PRESETS["sobel x"], "abs")
    assert editor.output.shape == (SIDE, SIDE) and editor.output.dtype == np.uint8
    np.testing.assert_array_equal(editor.output, expected)
    np.testing.assert_array_equal(decode(editor.output_view.value), expected)
    assert_shows(editor.input_view, to_gray(PHOTO))
    assert cells(editor) == [["1", "0", "-1"], ["2", "0", "-2"], ["1", "0", "-1"]]
    assert len(editor.grid.children) == 9
    assert editor.message.value == "" and editor.last_error is None
    assert "sobel x" in editor.explain.value


@pytest.mark.parametrize("name", NAMES)
def test_choosing_a_preset(editor, name):
    k = PRESETS[name]
    f = k.shape[0]
    if name == editor.preset.value:
        editor.preset.value = "laplacian"  # so that choosing it is a change
    editor.preset.value = name
    assert editor.size.value == f"{f}×{f}"
    assert len(editor.grid.children) == f * f
    np.testing.assert_array_equal(editor.kernel, k)
    shown = np.array([[parse_entry(t) for t in row] for row in cells(editor)])
    np.testing.assert_allclose(shown, k, rtol=1e-3)  # the cells show the kernel (to 4 significant digits)
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, k))
    assert name in editor.explain.value


def test_editing_a_cell(editor):
    editor.cells[1][1].value = "2"
    expected_k = PRESETS["sobel x"].copy()
    expected_k[1, 1] = 2
    np.testing.assert_array_equal(editor.kernel, expected_k)
    assert editor.preset.value == "(custom)"
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, expected_k))
    assert "your own kernel" in editor.explain.value

    editor.cells[1][1].value = "0"  # back to Sobel
    assert editor.preset.value == "sobel x"
    editor.cells[1][0].value = "1"
    editor.cells[1][2].value = "−1"  # typographic minus: the [1 0 -1] kernel of the lecture
    assert editor.preset.value == "vertical edge"
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, PRESETS["vertical edge"]))


def test_fractional_preset_survives_an_edit(editor):
    # choose the box blur, change one weight, then type the original 1/9 back:
    # the other eight weights must still be exactly 1/9 and the preset recognised again
    editor.preset.value = "box blur 3×3"
    editor.cells[1][1].value = "2"
    assert editor.preset.value == "(custom)"
    editor.cells[1][1].value = "1/9"
    np.testing.assert_allclose(editor.kernel, np.full((3, 3), 1 / 9), rtol=1e-9)
    assert editor.preset.value == "box blur 3×3"


@pytest.mark.parametrize("bad", ["", "abc", "nan", "inf", "1/0", "__import__('os')"])
def test_bad_entry_keeps_the_last_output(editor, bad):
    before_output, before_png, before_kernel = editor.output, editor.output_view.value, editor.kernel
    editor.cells[0][2].value = bad
    assert "Row 1, column 3" in editor.message.value
    assert "last valid kernel" in editor.message.value
    assert isinstance(editor.last_error, ValueError)
    assert editor.output is before_output  # the same array: nothing was rendered
    assert editor.output_view.value == before_png
    np.testing.assert_array_equal(editor.kernel, before_kernel)

    editor.cells[0][2].value = "-1"  # fixed: the message goes, the output follows the kernel again
    assert editor.message.value == "" and editor.last_error is None
    assert editor.output is not before_output  # rendered again
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, PRESETS["sobel x"]))


def test_message_is_escaped(editor):
    editor.cells[0][0].value = "<b>x</b>"
    assert "<b>x</b>" not in editor.message.value and "&lt;b&gt;x&lt;/b&gt;" in editor.message.value


def test_size_3_to_5_embeds_in_the_centre(editor):
    editor.size.value = "5×5"
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = PRESETS["sobel x"]
    np.testing.assert_array_equal(editor.kernel, expected)
    assert len(editor.grid.children) == 25
    assert [c.value for c in editor.grid.children[:5]] == ["0"] * 5
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, expected))
    assert editor.preset.value == "(custom)"


def test_size_5_to_3_keeps_the_centre(editor):
    k5 = np.arange(25.0).reshape(5, 5) - 12
    editor.set_kernel(k5)
    assert editor.size.value == "5×5"
    np.testing.assert_array_equal(editor.kernel, k5)
    editor.size.value = "3×3"
    np.testing.assert_array_equal(editor.kernel, k5[1:4, 1:4])
    assert len(editor.grid.children) == 9
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, k5[1:4, 1:4]))


def test_size_round_trip_restores_the_preset(editor):
    editor.size.value = "5×5"
    editor.size.value = "3×3"
    np.testing.assert_array_equal(editor.kernel, PRESETS["sobel x"])
    assert editor.preset.value == "sobel x"


def test_colour_mode(editor):
    editor.color.value = "colour"
    assert editor.output.shape == (SIDE, SIDE, 3)
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, PRESETS["sobel x"], "abs", colour=True))
    assert_shows(editor.input_view, PHOTO)
    editor.color.value = "grayscale"
    assert_shows(editor.input_view, to_gray(PHOTO))


@pytest.mark.parametrize("mode", ["clip", "normalise"])
def test_display_modes(editor, mode):
    editor.mode.value = mode
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, PRESETS["sobel x"], mode))


def test_set_kernel_and_constructor_arguments():
    e = KernelEditor(PHOTO, kernel="laplacian", mode="clip", color=True, threaded=False, max_side=SIDE)
    np.testing.assert_array_equal(e.output, oracle(PHOTO, PRESETS["laplacian"], "clip", colour=True))
    e.set_kernel("emboss")
    assert e.preset.value == "emboss"
    np.testing.assert_array_equal(e.output, oracle(PHOTO, PRESETS["emboss"], "clip", colour=True))
    with pytest.raises(ValueError, match="3×3 or 5×5"):
        e.set_kernel(np.ones((4, 4)))
    with pytest.raises(ValueError, match="3×3 or 5×5"):
        KernelEditor(PHOTO, kernel=np.ones((7, 7)), threaded=False)
    with pytest.raises(ValueError, match="Unknown display mode"):
        KernelEditor(PHOTO, mode="log", threaded=False)


def test_unknown_preset_name_is_explained():
    # the constructor must say which presets exist, not "could not convert string to float"
    with pytest.raises(ValueError, match="No preset named 'sobel z'; choose one of: identity"):
        KernelEditor(PHOTO, kernel="sobel z", threaded=False)


def test_photo_dropdown(editor):
    editor.photo.value = "camera"
    expected = load_image("camera", max_side=SIDE)
    np.testing.assert_array_equal(editor.image, expected)
    np.testing.assert_array_equal(editor.output, oracle(expected, PRESETS["sobel x"]))
    assert_shows(editor.input_view, to_gray(expected))


# ----------------------------------------------------------------------------- uploads

def test_upload_bytes_formats():
    data = b"\x89PNG fake bytes"
    assert upload_bytes(v7_upload(data)) == data
    assert upload_bytes(v8_upload(data)) == data
    assert isinstance(upload_bytes(v8_upload(data)), bytes)
    for empty in ({}, (), None):
        assert upload_bytes(empty) is None


def _picture(h=30, w=40):
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2] = (200, 30, 10)
    a[:, w // 2:] = (10, 30, 200)
    return a


def test_upload(editor):
    a = _picture()
    set_upload(editor.upload, png(Image.fromarray(a)))
    np.testing.assert_array_equal(editor.image, a)
    np.testing.assert_array_equal(editor.output, oracle(a, PRESETS["sobel x"]))
    assert_shows(editor.input_view, to_gray(a))


@pytest.mark.parametrize("fmt", [v7_upload, v8_upload])
def test_upload_event_of_either_ipywidgets_version(editor, fmt):
    # send the other version's change event straight to the editor's observer
    a = _picture()
    editor._on_upload({"name": "value", "old": {}, "new": fmt(png(Image.fromarray(a))), "owner": editor.upload})
    np.testing.assert_array_equal(editor.image, a)
    np.testing.assert_array_equal(editor.output, oracle(a, PRESETS["sobel x"]))


def test_set_image_bytes(editor):
    a = _picture()
    editor.set_image(png(Image.fromarray(a)))
    np.testing.assert_array_equal(editor.image, a)


@pytest.mark.parametrize("raw", [b"this is not a picture", b"\0\0\0", b"\x89PNG\r\n\x1a\n"])
def test_non_image_upload_keeps_the_old_image(editor, raw):
    before_image, before_output = editor.image, editor.output
    set_upload(editor.upload, raw)
    assert "not an image" in editor.message.value
    np.testing.assert_array_equal(editor.image, before_image)
    assert editor.output is before_output


def test_huge_upload_is_downscaled():
    e = KernelEditor(PHOTO, threaded=False, max_side=256)
    a = np.zeros((3000, 4000, 3), dtype=np.uint8)
    a[:, :2000] = 255  # left half white, right half black
    set_upload(e.upload, png(Image.fromarray(a), compress_level=1))
    assert e.image.shape == (192, 256, 3)  # 4000×3000 → 256×192: aspect ratio kept
    assert (e.image[:, :120] == 255).all() and (e.image[:, 136:] == 0).all()
    assert e.output.shape == (192, 256)
    assert e.message.value == ""


def test_rgba_upload(editor):
    a = np.zeros((8, 10, 4), dtype=np.uint8)
    a[..., :3] = (0, 0, 255)
    a[:4, :, 3] = 255  # top half opaque blue, bottom half transparent
    editor.set_image(png(Image.fromarray(a, "RGBA")))
    img = editor.image
    assert img.shape == (8, 10, 3)
    assert (img[:4] == [0, 0, 255]).all() and (img[4:] == 255).all()  # composited on white


def test_palette_upload(editor):
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    im.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    set_upload(editor.upload, png(im))
    img = editor.image
    assert img.shape == (2, 4, 3)
    np.testing.assert_array_equal(img[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(img[0, 1], [0, 255, 0])


def test_16_bit_upload(editor):
    a = (np.arange(60).reshape(6, 10) * 1000).astype(np.uint16)  # a 16-bit grayscale PNG
    a[-1, -1] = 65535  # full range, so the expected 8-bit values are a·255/65535
    set_upload(editor.upload, png(Image.fromarray(a)))
    img = editor.image
    assert img.shape == (6, 10, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, :, 0], np.round(a / 65535 * 255).astype(np.uint8))
    np.testing.assert_array_equal(editor.output, oracle(img, PRESETS["sobel x"]))


# ----------------------------------------------------------------------------- errors while rendering

def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_render_error_is_shown(editor, monkeypatch):
    before = editor.output
    monkeypatch.setattr(ke, "filter_image", _boom)
    editor.mode.value = "clip"
    assert "boom" in editor.message.value
    assert isinstance(editor.last_error, RuntimeError)
    assert editor.output is before


def test_render_error_is_shown_threaded(monkeypatch):
    e = KernelEditor(PHOTO, max_side=SIDE)  # threaded (the default)
    assert e.wait()
    before = e.output
    monkeypatch.setattr(ke, "filter_image", _boom)
    e.mode.value = "clip"
    assert e.wait()
    assert "boom" in e.message.value and isinstance(e.last_error, RuntimeError)
    assert e.output is before
    monkeypatch.undo()  # the worker survived the error and renders the next request
    e.mode.value = "normalise"
    assert e.wait()
    np.testing.assert_array_equal(e.output, oracle(PHOTO, PRESETS["sobel x"], "normalise"))


def test_successful_render_clears_a_render_error(editor, monkeypatch):
    monkeypatch.setattr(ke, "filter_image", _boom)
    editor.mode.value = "clip"
    assert "boom" in editor.message.value
    monkeypatch.undo()
    editor.mode.value = "normalise"  # renders fine now
    assert editor.last_error is None
    np.testing.assert_array_equal(editor.output, oracle(PHOTO, PRESETS["sobel x"], "normalise"))
    assert "boom" not in editor.message.value  # the message must agree with last_error


def test_new_photo_clears_an_upload_error(editor):
    editor.set_image(b"not a picture")
    assert "not an image" in editor.message.value
    editor.photo.value = "camera"  # a good photo replaces the one that failed
    np.testing.assert_array_equal(editor.image, load_image("camera", max_side=SIDE))
    assert editor.message.value == ""


# ----------------------------------------------------------------------------- threaded rendering

def test_threaded_rapid_changes_render_the_last_request():
    e = KernelEditor(PHOTO, max_side=SIDE)
    assert e.wait()
    renders = []
    inner = e._renderer._render

    def counting(req):
        renders.append(req[4])
        inner(req)

    e._renderer._render = counting
    requested = list(itertools.islice(itertools.cycle(NAMES[1:] + NAMES[:1]), 30))  # consecutive names differ
    for name in requested:
        e.preset.value = name
    assert e.wait()
    last = requested[-1]
    np.testing.assert_array_equal(e.output, oracle(PHOTO, PRESETS[last]))
    np.testing.assert_array_equal(decode(e.output_view.value), oracle(PHOTO, PRESETS[last]))
    assert 1 <= len(renders) <= 30
    assert renders[-1] == last
    assert last in e.explain.value and e.message.value == ""


def test_latest_only_drops_the_backlog():
    # deterministic: the worker is held inside request 0 while 1..30 are posted
    started, release = threading.Event(), threading.Event()
    rendered, errors = [], []

    def render(req):
        if req == 0:
            started.set()
            assert release.wait(10)
        rendered.append(req)

    lo = LatestOnly(render, errors.append)
    lo.request(0)
    assert started.wait(10)
    for i in range(1, 31):
        lo.request(i)
    assert lo.wait(timeout=0.05) is False  # still busy with request 0
    release.set()
    assert lo.wait(10)
    assert rendered == [0, 30] and errors == []


def test_latest_only_errors_go_to_on_error_and_the_worker_survives():
    rendered, errors = [], []

    def render(req):
        if req == "bad":
            raise KeyError("bad request")
        rendered.append(req)

    lo = LatestOnly(render, errors.append)
    lo.request("bad")
    assert lo.wait(10)
    assert len(errors) == 1 and isinstance(errors[0], KeyError)
    lo.request("good")
    assert lo.wait(10)
    assert rendered == ["good"]


def test_latest_only_synchronous():
    rendered, errors = [], []
    lo = LatestOnly(lambda r: rendered.append(1 / r), errors.append, threaded=False)
    lo.request(2)
    assert rendered == [0.5]  # rendered before request returned
    lo.request(0)
    assert isinstance(errors[0], ZeroDivisionError)
    assert lo.wait(0) is True
