"""ReceptiveFieldExplorer driven from Python: set control values, check the pictures against the pure functions.

tests/test_receptive_field_explorer.py::test_works_with_ipywidgets_7 runs this
file again under ipywidgets 7 (Colab's), as tests/test_ipywidgets7.py does for the kernel editor.
"""
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
from PIL import Image

import cnnviz.widgets.receptive_field_explorer as rfe
from cnnviz.data import load_image
from cnnviz.figures.receptive import input_photo, input_size_for, rf_overlay, unit_note
from cnnviz.receptive_field import PRESETS, Layer, input_rect, layer_sizes, receptive_field
from cnnviz.widgets.receptive_field_explorer import MAX_LAYERS, ReceptiveFieldExplorer
from browser import WAIT_MS, chromium

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(PRESETS)
PHOTO = load_image("astronaut", max_side=128)  # (128, 128, 3): small, quick to crop and resize


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def key(layers):
    return [(la.kind, la.f, la.s, la.p, la.d) for la in layers]


def oracle(e, layer_index=None, i=None, j=None):
    """What the overlay must be: rf_overlay on the photo cropped and resized to the input size."""
    k, ri, rj = e.unit
    k = k if layer_index is None else layer_index
    n = e.input_size
    zoom = max(1, round(rfe.DISPLAY / n))
    return rf_overlay(input_photo(PHOTO, n), e.layers, k, ri if i is None else i, rj if j is None else j,
                      zoom=zoom, line=max(2, round(n * zoom / 200)))


def assert_shows(e):
    """The overlay array, its JPEG and the note all describe the current unit."""
    np.testing.assert_array_equal(e.overlay, oracle(e))
    shown = decode(e.overlay_view.value).astype(float)
    assert shown.shape == e.overlay.shape
    assert np.abs(shown - e.overlay).mean() < 4  # JPEG quality 88
    k, i, j = e.unit
    n = e.input_size
    assert unit_note(e.layers, k, i, j, (n, n)) in e.note.value


@pytest.fixture
def explorer():
    return ReceptiveFieldExplorer(image=PHOTO, input_size=64, threaded=False)


@pytest.fixture
def counted(monkeypatch):
    """Count the ERF computations the explorer asks for."""
    calls = []
    real = rfe.effective_receptive_field

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(rfe, "effective_receptive_field", counting)
    return calls


# ----------------------------------------------------------------------------- initial state

def test_initial_state(explorer):
    e = explorer
    assert e.preset.value == "3×[3×3]" and e.input_size == 64 and e.size.value == "64"
    assert key(e.layers) == key(PRESETS["3×[3×3]"])
    assert len(e.rows) == 3 and len(e.stack.children) == 3
    assert e.unit == (3, 32, 32)  # the centre unit of the last layer
    assert (e.row.max, e.col.max) == (63, 63)
    assert e.message.value == "" and e.last_error is None
    assert_shows(e)
    assert e.overlay.shape == (640, 640, 3)  # 64 px, each shown as a 10 × 10 block
    assert decode(e.growth_view.value).shape[1] >= 800
    assert decode(e.erf_view.value).ndim == 3
    assert "theoretical field <b>7×7</b>" in e.erf_note.value
    assert e.erf is not None and e.erf.max() == 1.0
    assert [o[1] for o in e.layer.options] == [0, 1, 2, 3]
    assert e.layer.options[3][0] == "3: conv3 → 64×64"


def test_default_sizes_follow_the_preset():
    e = ReceptiveFieldExplorer("AlexNet conv1–pool2", image=PHOTO, threaded=False)
    assert e.input_size == 227 and e.unit == (4, 6, 6)
    assert e.overlay.shape == (681, 681, 3)  # 227 px × 3
    assert_shows(e)
    rows = receptive_field(PRESETS["AlexNet conv1–pool2"])
    assert "theoretical field <b>67×67</b>" in e.erf_note.value and rows[-1].r == 67


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="No preset named 'VGG-99'"):
        ReceptiveFieldExplorer("VGG-99", threaded=False)
    with pytest.raises(ValueError, match="too deep"):
        ReceptiveFieldExplorer([Layer("conv", 3, 1, 1)] * (MAX_LAYERS + 1), threaded=False)
    with pytest.raises(ValueError, match="between 1 and 1024"):
        ReceptiveFieldExplorer(input_size=2048, threaded=False)
    with pytest.raises(ValueError, match="Layer 1 .* empty output"):
        ReceptiveFieldExplorer([Layer("conv", 11, 4)], input_size=8, threaded=False)


def test_custom_stack_in_the_constructor():
    layers = [Layer("conv", 5, 2, 2), Layer("maxpool", 2, 2)]
    e = ReceptiveFieldExplorer(layers, image=PHOTO, input_size=96, threaded=False)
    assert e.preset.value == "(custom)" and key(e.layers) == key(layers)
    assert e.unit == (2, 12, 12)
    assert_shows(e)
    assert e.rows[1].fields["d"].disabled  # pooling: no dilation


# ----------------------------------------------------------------------------- presets, layers, units

@pytest.mark.parametrize("name", NAMES)
def test_choosing_a_preset(explorer, name):
    e = explorer
    if name == e.preset.value:
        e.preset.value = "VGG block"
    e.preset.value = name
    layers = PRESETS[name]
    assert key(e.layers) == key(layers)
    assert len(e.rows) == len(layers)
    assert [r.kind.value for r in e.rows] == [la.kind for la in layers]
    assert [r.fields["s"].value for r in e.rows] == [str(la.s) for la in layers]
    assert e.input_size == input_size_for(name) and e.size.value == str(input_size_for(name))
    h, w = layer_sizes(layers, (e.input_size, e.input_size))[-1]
    assert e.unit == (len(layers), h // 2, w // 2)
    assert_shows(e)
    r = receptive_field(layers)[-1].r
    assert f"theoretical field <b>{r}×{r}</b>" in e.erf_note.value
    assert e.message.value == ""


def test_choosing_a_layer_shows_its_centre_unit(explorer):
    e = explorer
    e.preset.value = "AlexNet conv1–pool2"
    for k, (h, w) in enumerate(layer_sizes(e.layers, (227, 227))):
        e.layer.value = k
        assert e.unit == (k, h // 2, w // 2)
        assert (e.row.max, e.col.max) == (h - 1, w - 1)
        assert_shows(e)


def test_moving_the_unit(explorer):
    e = explorer
    e.preset.value = "AlexNet conv1–pool2"
    e.layer.value = 1  # conv1: 55×55, jump 4, r = 11
    e.row.value = 0
    e.col.value = 54
    assert e.unit == (1, 0, 54)
    assert_shows(e)
    t, l, b, r = input_rect(e.layers, 1, 0, 54, (227, 227))
    assert (t, l, b, r) == (0, 216, 10, 226)
    assert "sees input rows 0–10, columns 216–226" in e.note.value
    e.set_unit(2, 0, 0)
    assert e.unit == (2, 0, 0)
    assert_shows(e)
    e.centre.click()
    assert e.unit == (2, 13, 13)


def test_set_unit_checks_its_arguments(explorer):
    with pytest.raises(ValueError, match="outside layer 3"):
        explorer.set_unit(3, 64, 0)
    with pytest.raises(ValueError, match="layer_index must be 0"):
        explorer.set_unit(4)


def test_unit_layer_and_photo_changes_never_recompute_the_erf(explorer, counted):
    e = explorer
    erf_png = e.erf_view.value
    e.layer.value = 1
    e.row.value = 3
    e.col.value = 60
    e.set_unit(2)
    e.photo.value = "camera"
    assert counted == []
    assert e.erf_view.value == erf_png
    e.rows[0].fields["f"].value = "5"  # the stack changed: one new ERF
    assert len(counted) == 1


def test_photo_dropdown(explorer):
    e = explorer
    e.photo.value = "coffee"
    expected = input_photo(load_image("coffee"), 64)
    np.testing.assert_array_equal(e.image, expected)
    zoom = 10
    np.testing.assert_array_equal(
        e.overlay, rf_overlay(expected, e.layers, *e.unit, zoom=zoom, line=max(2, round(64 * zoom / 200))))
    e.set_image(b"not an image")
    assert "not an image" in e.message.value
    np.testing.assert_array_equal(e.image, expected)  # the last good photo stays


# ----------------------------------------------------------------------------- editing the stack

def test_editing_a_layer(explorer):
    e = explorer
    e.layer.value = 2
    e.rows[1].fields["s"].value = "2"  # conv2 with stride 2
    assert key(e.layers)[1] == ("conv", 3, 2, 1, 1)
    assert e.layers[1].name == "conv2"  # the row keeps its name
    assert e.preset.value == "(custom)"
    assert e.unit == (2, 16, 16)  # layer 2 is still shown, at its new centre (32×32)
    assert_shows(e)
    assert "r = 5 px</b>, jump <b>2 px" in e.note.value
    e.rows[1].fields["s"].value = "1"
    assert e.preset.value == "3×[3×3]"  # recognised again


def test_changing_the_kind_to_pooling(explorer):
    e = explorer
    e.rows[1].fields["d"].value = "2"
    e.rows[1].fields["p"].value = "2"
    assert key(e.layers)[1] == ("conv", 3, 1, 2, 2)
    e.rows[1].fields["p"].value = "1"  # a pooling window 3 may pad at most 1
    e.rows[1].kind.value = "maxpool"
    assert e.rows[1].fields["d"].disabled and e.rows[1].fields["d"].value == "1"
    assert key(e.layers)[1] == ("maxpool", 3, 1, 1, 1)
    assert e.message.value == ""
    assert_shows(e)


def test_adding_and_removing_layers(explorer, counted):
    e = explorer
    e.add.click()
    assert len(e.rows) == 4 and len(e.stack.children) == 4
    assert key(e.layers)[3] == ("conv", 3, 1, 1, 1) and e.layers[3].name == ""
    assert e.unit[0] == 3  # the layer shown stays where it was
    assert "4" in e.rows[3].number.value
    e.layer.value = 4
    assert_shows(e)
    e.rows[1].remove.click()
    assert len(e.rows) == 3 and [la.name for la in e.layers] == ["conv1", "conv3", ""]
    assert [r.number.value for r in e.rows] == ["<b>1</b>", "<b>2</b>", "<b>3</b>"]
    assert e.preset.value == "3×[3×3]"  # same windows as the preset again
    assert_shows(e)
    assert len(counted) == 2  # one ERF per stack change


def test_removing_the_last_layer_is_refused(explorer):
    e = explorer
    e.rows[2].remove.click()
    e.rows[1].remove.click()
    assert len(e.layers) == 1
    before = e.overlay_view.value
    e.rows[0].remove.click()
    assert "at least one layer" in e.message.value
    assert len(e.rows) == 1 and len(e.layers) == 1 and e.overlay_view.value == before


def test_a_too_deep_stack_is_refused(explorer):
    e = explorer
    for _ in range(MAX_LAYERS - 3):
        e.add.click()
    assert len(e.layers) == MAX_LAYERS and e.message.value == ""
    before, layers = e.overlay_view.value, e.layers
    e.add.click()
    assert "too deep" in e.message.value and f"{MAX_LAYERS}" in e.message.value
    assert len(e.rows) == MAX_LAYERS and e.layers == layers and e.overlay_view.value == before
    e.set_layers([Layer("conv", 3, 1, 1)] * (MAX_LAYERS + 5))
    assert "25 layers is too deep" in e.message.value
    assert e.layers == layers and len(e.rows) == MAX_LAYERS


BAD_FIELDS = [
    (0, "f", "0", "Layer 1: the kernel size f must be at least 1, not 0."),
    (1, "s", "0", "Layer 2: the stride s must be at least 1, not 0."),
    (1, "s", "-2", "Layer 2: the stride s must be at least 1, not -2."),
    (2, "p", "-1", "Layer 3: the padding p must be at least 0, not -1."),
    (2, "d", "0", "Layer 3: the dilation d must be at least 1, not 0."),
    (0, "f", "2.5", "Layer 1: the kernel size f must be a whole number, not '2.5'."),
    (1, "f", "three", "Layer 2: the kernel size f must be a whole number, not 'three'."),
    (1, "f", "", "Layer 2: the kernel size f must be a whole number, not ''."),
    (2, "f", "99", "Layer 3 (conv3) would have an empty output on its 64×64 input"),  # 99 > 64 + 2
    (1, "p", "5000", "Layer 2: the padding p can be at most 4096 here, not 5000."),
]


@pytest.mark.parametrize("row, field, text, sentence", BAD_FIELDS)
def test_bad_entries_keep_the_last_picture(explorer, counted, row, field, text, sentence):
    e = explorer
    before = (e.overlay, e.overlay_view.value, e.growth_view.value, e.erf_view.value, e.layers, e.unit)
    e.rows[row].fields[field].value = text
    assert sentence in e.message.value.replace("&#x27;", "'")
    assert "last valid stack" in e.message.value
    assert isinstance(e.last_error, ValueError)
    after = (e.overlay, e.overlay_view.value, e.growth_view.value, e.erf_view.value, e.layers, e.unit)
    assert after[0] is before[0] and after[1:] == before[1:]  # nothing was redrawn
    assert counted == []
    e.rows[row].fields[field].value = str(getattr(PRESETS["3×[3×3]"][row], field))  # fixed: the message goes
    assert e.message.value == "" and e.last_error is None


@pytest.mark.parametrize("text, sentence", [
    ("0", "The input size must be at least 1, not 0."),
    ("-5", "The input size must be at least 1, not -5."),
    ("2000", "The input size must be between 1 and 1024 pixels, not 2000"),
    ("abc", "The input size must be a whole number, not 'abc'."),
    ("", "The input size is empty"),
])
def test_bad_input_size(explorer, text, sentence):
    e = explorer
    before = e.overlay_view.value
    e.size.value = text
    assert sentence in e.message.value.replace("&#x27;", "'")
    assert e.input_size == 64 and e.overlay_view.value == before
    e.size.value = "100"
    assert e.message.value == "" and e.input_size == 100
    assert_shows(e)


def test_empty_output_names_the_layer(explorer):
    e = explorer
    e.preset.value = "AlexNet conv1–pool2"
    before = e.overlay_view.value
    e.size.value = "30"  # conv1 → 5, pool1 → 2, conv2 → 2, pool2: 3 > 2
    assert "Layer 4 (pool2) would have an empty output on its 2×2 input" in e.message.value
    assert e.input_size == 227 and e.overlay_view.value == before


def test_pooling_padding_too_large_names_the_layer(explorer):
    e = explorer
    e.preset.value = "VGG block"
    e.rows[2].fields["p"].value = "2"
    assert "Layer 3: Pooling padding p = 2 must be at most half the window" in e.message.value


def test_set_layers(explorer):
    e = explorer
    layers = [Layer("conv", 7, 2, 3), Layer("maxpool", 3, 2, 1)]
    e.set_layers(layers, input_size=128)
    assert key(e.layers) == key(layers) and e.input_size == 128 and e.preset.value == "ResNet stem"
    assert e.unit == (2, 16, 16)
    assert_shows(e)
    e.set_layers([Layer("conv", 3)], input_size=2000)
    assert "between 1 and 1024" in e.message.value and e.input_size == 128


def test_a_unit_that_sees_only_padding(explorer):
    e = explorer
    e.set_layers([Layer("conv", 3, 1, 5)], input_size=20)
    e.set_unit(1, 0, 0)
    assert "sees only padding" in e.note.value
    assert_shows(e)


# ----------------------------------------------------------------------------- threads

def test_threaded_rapid_changes_render_the_last_request():
    e = ReceptiveFieldExplorer(image=PHOTO, input_size=64)  # threaded (the default)
    assert e.wait()
    for name in ["VGG block", "AlexNet conv1–pool2", "ResNet stem", "LeNet-5 conv–pool", "10×[3×3]"]:
        e.preset.value = name
    for v in range(0, 224, 7):
        e.row.value = v
        e.col.value = 223 - v
    assert e.wait()
    assert e.preset.value == "10×[3×3]" and e.unit == (10, 217, 6)
    assert_shows(e)
    sync = ReceptiveFieldExplorer("10×[3×3]", image=PHOTO, threaded=False)
    np.testing.assert_array_equal(e.erf, sync.erf)  # the ERF of the final stack, not of a skipped one
    assert e.erf_note.value.split("<br>")[0] == sync.erf_note.value.split("<br>")[0]


def test_threaded_erf_says_computing_and_overlay_stays_live(monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = rfe.effective_receptive_field

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    e = ReceptiveFieldExplorer(image=PHOTO, input_size=64)
    assert e.wait()
    monkeypatch.setattr(rfe, "effective_receptive_field", slow)
    e.preset.value = "VGG block"
    assert started.wait(10)
    assert "computing" in e.erf_note.value
    e.set_unit(3, 0, 0)  # the overlay does not wait for the ERF
    assert e._overlay_renderer.wait(10)
    assert e.unit == (3, 0, 0)
    np.testing.assert_array_equal(e.overlay, oracle(e))
    release.set()
    assert e.wait()
    assert "theoretical field <b>6×6</b>" in e.erf_note.value


def test_an_erf_error_is_shown_not_raised(monkeypatch, explorer):
    def fail(*args, **kwargs):
        raise ValueError("Every gradient is zero (all ReLUs on the paths are off).")

    monkeypatch.setattr(rfe, "effective_receptive_field", fail)
    before = explorer.erf_view.value
    explorer.rows[0].fields["f"].value = "5"
    assert "Every gradient is zero" in explorer.erf_note.value
    assert explorer.erf_view.value == before


def test_unexpected_errors_become_a_sentence(monkeypatch, explorer):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(rfe, "draw_overlay", broken)
    explorer.row.value = 3
    assert "Unexpected error (RuntimeError: boom)" in explorer.message.value


# ----------------------------------------------------------------------------- Colab's ipywidgets 7

IPYW7 = ROOT / ".venv" / "ipywidgets7"


@pytest.mark.skipif(int(ipywidgets.__version__.split(".")[0]) < 8, reason="already running under ipywidgets 7")
def test_works_with_ipywidgets_7():
    if not (IPYW7 / "ipywidgets").is_dir():
        pytest.fail(f"ipywidgets 7 is not installed in {IPYW7}: run `make test`, which installs it.")
    env = dict(os.environ, PYTHONPATH=str(IPYW7))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                          "-k", "not test_works_with_ipywidgets_7", "-m", "not browser"],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "passed" in run.stdout


# ----------------------------------------------------------------------------- once in a real browser

@pytest.mark.browser
def test_explorer_in_jupyterlab(lab):
    """The instructor's notebook in JupyterLab (the lab fixture of tests/conftest.py): run all, choose
    AlexNet, type a bad stride. Screenshots go to /tmp/lab_receptive_field_*.png."""
    base, token = lab
    notebook = "widgets/receptive_field_explorer.ipynb"
    original = (ROOT / notebook).read_bytes()
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.set_default_timeout(WAIT_MS)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset")
            page.wait_for_function("""() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return k && k.status === 'idle' && w.context.path.endsWith('receptive_field_explorer.ipynb');
            }""")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function("""() => { const imgs = document.querySelectorAll('.cnnviz-rf img.widget-image');
                return imgs.length == 3 && [...imgs].every(i => i.naturalWidth > 0); }""")
            widget = page.locator(".cnnviz-rf").first
            widget.scroll_into_view_if_needed()
            overlay = page.locator(".cnnviz-rf img.widget-image").first
            assert overlay.bounding_box()["width"] >= 480  # shown large
            widget.screenshot(path="/tmp/lab_receptive_field_1.png")

            before = overlay.get_attribute("src")
            page.locator(".cnnviz-rf select").first.select_option("AlexNet conv1–pool2")
            page.wait_for_function("b => document.querySelector('.cnnviz-rf img.widget-image').src !== b", arg=before)
            page.get_by_text("unit (6, 6) of layer 4 (pool2)").wait_for(state="visible")
            widget.screenshot(path="/tmp/lab_receptive_field_2_alexnet.png")

            shown = overlay.get_attribute("src")
            stride = page.locator(".cnnviz-rf .cnnviz-cell input").nth(6)  # input size, then f s p d per layer
            stride.fill("0")
            stride.press("Enter")
            page.get_by_text("Layer 2: the stride s must be at least 1, not 0.").wait_for(state="visible")
            page.wait_for_timeout(1000)
            assert overlay.get_attribute("src") == shown  # the last good picture stays
            widget.screenshot(path="/tmp/lab_receptive_field_3_bad_stride.png")
            assert errors == []
    finally:
        assert (ROOT / notebook).read_bytes() == original, "JupyterLab saved the notebook during the test"
