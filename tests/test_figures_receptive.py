"""cnnviz.figures.receptive: the pictures are drawn exactly where cnnviz.receptive_field says.

The oracle for every rectangle is ``input_rect``; for every number,
``receptive_field``, ``layer_sizes`` and ``erf_stats``. One browser test
drives the static figures in Debian's chromium (no kernel): the menu shows the
right slider and the slider changes the picture.
"""
import base64
import io
import re
from pathlib import Path

import numpy as np
import plotly
import plotly.graph_objects as go
import pytest
from PIL import Image

from cnnviz.data import load_image
from cnnviz.figures import receptive as fr
from cnnviz.plot import as_html
from cnnviz.receptive_field import (PRESETS, Layer, effective_receptive_field, erf_stats, input_rect, layer_sizes,
                                    receptive_field)
from browser import chromium

NAMES = list(PRESETS)
OUTLINE = np.array(fr.OUTLINE, dtype=np.uint8)
MASS = np.array(fr.MASS, dtype=np.uint8)


def _decode(source: str) -> np.ndarray:
    head, payload = source.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im.convert("RGB"))


def _photo(h=40, w=48, seed=0):
    """Random pixels in 100..250: never equal to their dimmed copy, nor to the amber outline."""
    rng = np.random.default_rng(seed)
    a = rng.integers(100, 251, size=(h, w, 3), dtype=np.uint8)
    a[..., 2] = np.minimum(a[..., 2], 180)  # blue ≤ 180: never amber's (255, 200, 0)
    return a


def _dim(a):
    return (a * np.float32(fr._DIM)).astype(np.uint8)


def _marker_zone(layers, k, i, j, size, zoom, radius=12):
    """Display pixels near the unit's marker (a red dot is drawn there)."""
    t, l, b, r = input_rect(layers, k, i, j, size, clip=False)
    cy, cx = ((t + b) / 2 + 0.5) * zoom, ((l + r) / 2 + 0.5) * zoom
    yy, xx = np.mgrid[0:size[0] * zoom, 0:size[1] * zoom]
    return np.hypot(yy + 0.5 - cy, xx + 0.5 - cx) <= radius


# ----------------------------------------------------------------------------- rf_overlay

CASES = [  # (stack, layer, i, j, input size): interior, clipped at borders, strided, dilated
    (PRESETS["3×[3×3]"], 3, 20, 24, (40, 48)),
    (PRESETS["3×[3×3]"], 3, 0, 0, (40, 48)),  # top-left: the window reaches 3 px into the padding
    (PRESETS["3×[3×3]"], 2, 39, 47, (40, 48)),  # bottom-right
    (PRESETS["AlexNet conv1–pool2"], 1, 3, 5, (40, 48)),
    (PRESETS["AlexNet conv1–pool2"], 2, 1, 2, (40, 48)),
    (PRESETS["dilated 3×[3×3], d=1,2,4"], 3, 17, 30, (40, 48)),
    (PRESETS["ResNet stem"], 2, 4, 6, (40, 48)),
    ((), 0, 7, 9, (40, 48)),  # the input itself: one pixel
]


@pytest.mark.parametrize("zoom", [1, 3])
@pytest.mark.parametrize("layers, k, i, j, size", CASES)
def test_overlay_bright_exactly_inside_input_rect(layers, k, i, j, size, zoom):
    photo = _photo(*size)
    out = fr.rf_overlay(photo, layers, k, i, j, zoom=zoom, line=2)
    assert out.shape == (size[0] * zoom, size[1] * zoom, 3) and out.dtype == np.uint8
    t, l, b, r = input_rect(layers, k, i, j, size)  # clipped to the image
    big = np.repeat(np.repeat(photo, zoom, 0), zoom, 1)
    inside = np.zeros(out.shape[:2], dtype=bool)
    inside[t * zoom:(b + 1) * zoom, l * zoom:(r + 1) * zoom] = True
    free = ~_marker_zone(layers, k, i, j, size, zoom)
    np.testing.assert_array_equal(out[inside & free], big[inside & free])  # the field: the photo itself
    outside = ~inside
    is_outline = (out == OUTLINE).all(axis=2)
    is_dim = (out == _dim(big)).all(axis=2)
    assert (is_outline | is_dim)[outside & free].all()  # outside: dimmed or the frame, never bright
    assert not is_outline[inside & free].any()  # the frame never covers the field


@pytest.mark.parametrize("zoom", [1, 2, 4])
@pytest.mark.parametrize("layers, k, i, j, size", CASES[:7])
def test_overlay_frame_hugs_the_rectangle(layers, k, i, j, size, zoom):
    """The amber frame is exactly `line` display pixels wide, just outside input_rect's bounds."""
    line = 2
    photo = _photo(*size)
    out = fr.rf_overlay(photo, layers, k, i, j, zoom=zoom, line=line)
    t, l, b, r = input_rect(layers, k, i, j, size)
    T, L, B, R = t * zoom, l * zoom, (b + 1) * zoom - 1, (r + 1) * zoom - 1  # display bounds, inclusive
    H, W = out.shape[:2]
    amber = lambda y, x: bool((out[y, x] == OUTLINE).all())  # noqa: E731
    mid_y, mid_x = (T + B) // 2, (L + R) // 2
    for y, x, dy, dx, edge in [(T, mid_x, -1, 0, T > 0), (B, mid_x, 1, 0, B < H - 1),
                               (mid_y, L, 0, -1, L > 0), (mid_y, R, 0, 1, R < W - 1)]:
        if _marker_zone(layers, k, i, j, size, zoom)[y, x]:
            continue  # a one-pixel field: the marker covers its border
        assert not amber(y, x)  # the field's own border pixel is the photo
        if not edge:
            continue  # the field reaches the image border: no frame on this side
        for step in range(1, line + 1):
            assert amber(y + dy * step, x + dx * step), (y, x, step)
        y2, x2 = y + dy * (line + 1), x + dx * (line + 1)
        if 0 <= y2 < H and 0 <= x2 < W:
            assert not amber(y2, x2)


def test_overlay_marks_the_unit_centre_in_red():
    layers = PRESETS["AlexNet conv1–pool2"]
    out = fr.rf_overlay(_photo(227, 227), layers, 4, 6, 6, zoom=2)
    t, l, b, r = input_rect(layers, 4, 6, 6, (227, 227), clip=False)
    cy, cx = round(((t + b) / 2 + 0.5) * 2), round(((l + r) / 2 + 0.5) * 2)
    np.testing.assert_array_equal(out[cy, cx], [230, 30, 30])


def test_overlay_is_upright():
    photo = np.zeros((30, 30, 3), dtype=np.uint8)
    photo[:15] = (200, 0, 0)  # red on top
    photo[15:] = (0, 0, 200)
    out = fr.rf_overlay(photo, PRESETS["2×[3×3]"], 2, 15, 15)
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]


def test_overlay_of_a_unit_that_sees_only_padding():
    layers = (Layer("conv", 3, 1, 5),)  # unit 0 of a 3×3 with padding 5 sees rows -5..-3
    assert input_rect(layers, 1, 0, 0, (20, 20)) is None
    photo = _photo(20, 20)
    out = fr.rf_overlay(photo, layers, 1, 0, 0)
    np.testing.assert_array_equal(out, _dim(photo))  # all dim, no frame, the marker lies outside the image
    assert "only padding" in fr.unit_note(layers, 1, 0, 0, (20, 20))


def test_overlay_explains_a_bad_unit():
    with pytest.raises(ValueError, match="outside layer 3"):
        fr.rf_overlay(_photo(), PRESETS["3×[3×3]"], 3, 40, 0)
    with pytest.raises(ValueError, match="zoom"):
        fr.rf_overlay(_photo(), PRESETS["3×[3×3]"], 3, 0, 0, zoom=0)


def test_overlay_leaves_its_input_alone():
    photo = _photo()
    before = photo.copy()
    fr.rf_overlay(photo, PRESETS["3×[3×3]"], 3, 10, 10, zoom=2)
    np.testing.assert_array_equal(photo, before)


# ----------------------------------------------------------------------------- input_photo, labels

def test_input_photo_crops_the_middle_and_keeps_the_aspect():
    a = np.zeros((100, 200, 3), dtype=np.uint8)
    a[:, 50:150] = (0, 200, 0)  # a green square in the middle, red bands left and right
    a[:, :50] = a[:, 150:] = (200, 0, 0)
    out = fr.input_photo(a, 40)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert (out[..., 1] > 150).all() and (out[..., 0] < 50).all()
    tall = fr.input_photo(a.transpose(1, 0, 2), (20, 10))  # (200, 100) → (20, 10): no crop needed
    assert tall.shape == (20, 10, 3)
    np.testing.assert_array_equal(fr.input_photo(a[:, 50:150], 100), a[:, 50:150])  # same size: unchanged
    with pytest.raises(ValueError, match="at least 1×1"):
        fr.input_photo(a, 0)


def test_input_sizes():
    assert fr.input_size_for("AlexNet conv1–pool2") == 227  # the paper's input
    assert fr.input_size_for("LeNet-5 conv–pool") == 32
    assert fr.input_size_for("3×[3×3]") == 224
    for name in fr.INPUT_SIZES:
        assert name in PRESETS, name  # the table follows the presets' names


def test_layer_spec():
    assert fr.layer_spec(Layer("conv", 3, 1, 1)) == "3×3 p1"
    assert fr.layer_spec(Layer("conv", 11, 4)) == "11×11 s4"
    assert fr.layer_spec(Layer("conv", 3, 1, 2, 2)) == "3×3 p2 d2"
    assert fr.layer_spec(Layer("maxpool", 2, 2)) == "2×2 s2"


# ----------------------------------------------------------------------------- growth chart

@pytest.mark.parametrize("name", NAMES)
def test_growth_chart_one_row_per_layer(name):
    layers = PRESETS[name]
    plain = fr.growth_chart(layers, input_size=224)
    assert plain.dtype == np.uint8 and plain.ndim == 3 and plain.shape[1] >= 800
    one_more = fr.growth_chart(tuple(layers) + (Layer("conv", 3, 1, 1),), input_size=224)
    assert one_more.shape[1] == plain.shape[1] or one_more.shape[0] > plain.shape[0]
    assert one_more.shape[0] > plain.shape[0]  # rows are stacked: a layer more, a row more


def test_growth_chart_highlights_one_row():
    layers = PRESETS["AlexNet conv1–pool2"]
    bar_on = (fr.growth_chart(layers, input_size=227, highlight=2) == np.array(fr.BAR_ON, np.uint8)).all(axis=2)
    none = (fr.growth_chart(layers, input_size=227) == np.array(fr.BAR_ON, np.uint8)).all(axis=2)
    assert bar_on.sum() > 100 and none.sum() == 0
    rows = np.flatnonzero(bar_on.any(axis=1))
    assert rows.max() - rows.min() < 40  # one bar, one row


def test_growth_chart_bars_grow_with_the_field():
    layers = PRESETS["10×[3×3]"]
    chart = fr.growth_chart(layers, input_size=64)
    blue = (chart == np.array(fr.BAR, np.uint8)).all(axis=2)
    ys = np.flatnonzero(blue.any(axis=1))
    runs = np.split(ys, np.flatnonzero(np.diff(ys) > 1) + 1)  # one run of pixel rows per bar, top to bottom
    widths = [int(blue[run].sum(axis=1).max()) for run in runs]
    assert len(widths) == len(layers) + 1
    assert widths == sorted(widths) and widths[-1] > 5 * widths[0]


def test_growth_chart_without_input_size():
    chart = fr.growth_chart(PRESETS["VGG block"])
    assert chart.ndim == 3 and chart.shape[0] > 100


# ----------------------------------------------------------------------------- ERF image

def test_viridis_matches_plotly():
    lut = fr.viridis(np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(lut[0], [68, 1, 84])
    np.testing.assert_array_equal(lut[2], [253, 231, 37])
    assert fr.viridis(np.zeros((2, 3))).shape == (2, 3, 3)


@pytest.mark.parametrize("name", ["3×[3×3]", "AlexNet conv1–pool2", "VGG block", "dilated 3×[3×3], d=1,2,4"])
def test_erf_image_frames_the_theoretical_field(name):
    layers = PRESETS[name]
    n = 101 if name != "AlexNet conv1–pool2" else 227
    erf = effective_receptive_field(layers, (n, n), trials=1)
    side = 41 if name != "AlexNet conv1–pool2" else 101
    out = fr.erf_image(erf, layers, side=side, display=400, fraction=None)
    zoom = 400 // side
    assert out.shape == (side * zoom, side * zoom, 3)
    top, left, bottom, right = fr.erf_view(layers, (n, n), side)
    assert (bottom - top + 1, right - left + 1) == (side, side)
    h, w = layer_sizes(layers, (n, n))[-1]
    t, l, b, r = input_rect(layers, len(layers), h // 2, w // 2, (n, n))
    T, L = (t - top) * zoom, (l - left) * zoom
    B, R = (b - top + 1) * zoom, (r - left + 1) * zoom  # exclusive
    amber = (out == OUTLINE).all(axis=2)
    assert amber[T - 3:T, L - 3:R + 3].all() and amber[B:B + 3, L - 3:R + 3].all()  # line = 3, outside
    assert amber[T:B, L - 3:L].all() and amber[T:B, R:R + 3].all()
    assert not amber[T:B, L:R].any()
    # the map itself: viridis of the ERF, sampled at block centres inside the field
    crop = erf[top:bottom + 1, left:right + 1]
    colours = fr.viridis(crop, vmax=erf.max())
    np.testing.assert_array_equal(out[T + zoom // 2, L + zoom // 2], colours[t - top, l - left])


def test_erf_image_mass_square_is_from_erf_stats():
    layers = PRESETS["10×[3×3]"]
    erf = effective_receptive_field(layers, (64, 64), trials=2)
    out = fr.erf_image(erf, layers, side=41, display=410, fraction=0.5)
    radius = erf_stats(erf, 0.5, centre=(32, 32)).radius
    top, left, _, _ = fr.erf_view(layers, (64, 64), 41)
    zoom = 10
    red = (out == MASS).all(axis=2)
    rows = np.flatnonzero(red.any(axis=1))
    # dashed frame 3 px thick just outside rows 32 - radius .. 32 + radius
    assert rows.min() == (32 - radius - top) * zoom - 3
    assert rows.max() == (32 + radius - top + 1) * zoom + 2


def test_erf_image_rejects_a_bad_map():
    with pytest.raises(ValueError, match="2-D"):
        fr.erf_image(np.zeros(5), PRESETS["3×[3×3]"])


# ----------------------------------------------------------------------------- receptive_field_figure

@pytest.fixture(scope="module")
def photo():
    return load_image("astronaut")


@pytest.fixture(scope="module")
def rf_fig(photo):
    return fr.receptive_field_figure(photo, title="receptive fields")


def test_rf_figure_has_a_menu_and_one_slider_per_preset(rf_fig):
    assert len(rf_fig.layout.updatemenus) == 1
    buttons = rf_fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == NAMES
    assert len(rf_fig.layout.sliders) == len(NAMES)
    for slider, name in zip(rf_fig.layout.sliders, NAMES):
        labels = [s.label for s in slider.steps]
        assert labels == ["input"] + [layer.label for layer in PRESETS[name]]
        assert slider.active == len(PRESETS[name])  # opens on the last layer
    assert [s.visible for s in rf_fig.layout.sliders] == [True] + [False] * (len(NAMES) - 1)
    assert isinstance(rf_fig.data[0], go.Image)
    assert len(rf_fig.data) == 1 + 2 * len(NAMES)  # the photo; per preset its bars and input-width line


def test_rf_figure_menu_shows_only_its_own_slider(rf_fig):
    for k, button in enumerate(rf_fig.layout.updatemenus[0].buttons):
        restyle, layout = button.args
        assert button.method == "update"
        assert [layout[f"sliders[{m}].visible"] for m in range(len(NAMES))] == [m == k for m in range(len(NAMES))]
        assert [layout[f"annotations[{m}].visible"] for m in range(len(NAMES))] == [m == k for m in range(len(NAMES))]
        assert restyle["visible"] == [True] + [t // 2 == k for t in range(2 * len(NAMES))]
        n = fr.input_size_for(NAMES[k])
        assert layout["yaxis.range"] == [n - 0.5, -0.5]  # upright: row 0 at the top
        assert _decode(restyle["source"][0]).shape[0] == n * max(1, 320 // n)
        assert layout[f"sliders[{k}].active"] == len(PRESETS[NAMES[k]])


def test_rf_figure_steps_show_the_centre_unit_of_each_layer(rf_fig, photo):
    for k, (name, slider) in enumerate(zip(NAMES, rf_fig.layout.sliders)):
        layers = PRESETS[name]
        n = fr.input_size_for(name)
        zoom = max(1, 320 // n)
        sizes = layer_sizes(layers, (n, n))
        rows = receptive_field(layers)
        base = fr.input_photo(photo, n)
        for li, step in enumerate(slider.steps):
            restyle, layout, traces = step.args
            assert step.method == "update" and list(traces) == [0, 1 + 2 * k]
            h, w = sizes[li]
            shown = _decode(restyle["source"][0])
            expected = fr.rf_overlay(base, layers, li, h // 2, w // 2, zoom=zoom, line=max(2, round(n * zoom / 160)))
            assert shown.shape == expected.shape == (n * zoom, n * zoom, 3)
            assert np.abs(shown.astype(float) - expected).mean() < 4, (name, li)  # JPEG, nearly exact
            colours = restyle["marker.color"][1]
            assert [c == "rgb(%d,%d,%d)" % fr.BAR_ON for c in colours] == [m == li for m in range(len(rows))]
            text = layout[f"annotations[{k}].text"]
            assert f"r = {rows[li].r} px" in text and f"jump <b>{rows[li].j} px</b>" in text
            t, l, b, r = input_rect(layers, li, h // 2, w // 2, (n, n))
            assert f"rows {t}–{b}, columns {l}–{r}" in text
            assert f"unit ({h // 2}, {w // 2})" in text


def test_rf_figure_bars_are_the_receptive_field_rows(rf_fig):
    for k, name in enumerate(NAMES):
        bars, line = rf_fig.data[1 + 2 * k], rf_fig.data[2 + 2 * k]
        rows = receptive_field(PRESETS[name])
        assert list(bars.x) == [row.r for row in rows]
        assert list(bars.text) == [f"r {row.r} · jump {row.j}" for row in rows]
        assert list(line.x) == [fr.input_size_for(name)] * 2
        assert bars.visible == line.visible == (k == 0)


def test_rf_figure_is_small_enough_for_a_book_page(rf_fig):
    assert len(as_html(rf_fig)) < 2_000_000


def test_rf_figure_rejects_unknown_presets(photo):
    with pytest.raises(ValueError, match="No preset named 'VGG-99'"):
        fr.receptive_field_figure(photo, ["VGG-99"])
    fig = fr.receptive_field_figure(photo, {"mine": [Layer("conv", 5, 2)]})
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["mine"]


# ----------------------------------------------------------------------------- erf_figure

STACKS = {f"{n}×[3×3]": tuple(Layer("conv", 3, 1, 1) for _ in range(n)) for n in (1, 3, 6)}


@pytest.fixture(scope="module")
def erf_fig():
    return fr.erf_figure(STACKS, 40, trials=2, seed=1, title="ERF")


def test_erf_figure_one_step_per_stack(erf_fig):
    (slider,) = erf_fig.layout.sliders
    assert [s.label for s in slider.steps] == list(STACKS)
    assert slider.active == len(STACKS) - 1
    shapes = {_decode(s.args[0]["source"][0]).shape for s in slider.steps}
    assert len(shapes) == 1  # every map at the same scale
    assert erf_fig.layout.yaxis.range == (shapes.pop()[0] - 0.5, -0.5)  # upright


def test_erf_figure_numbers_come_from_erf_stats(erf_fig):
    r = [receptive_field(layers)[-1].r for layers in STACKS.values()]
    assert list(erf_fig.data[1].y) == r == [3, 7, 13]
    for n, (name, layers) in enumerate(STACKS.items()):
        erf = effective_receptive_field(layers, (40, 40), trials=2, seed=1)
        w95 = 2 * erf_stats(erf, 0.95, centre=(20, 20)).radius + 1
        w50 = 2 * erf_stats(erf, 0.5, centre=(20, 20)).radius + 1
        assert erf_fig.data[2].y[n] == w95 and erf_fig.data[3].y[n] == w50
        step = erf_fig.layout.sliders[0].steps[n]
        text = step.args[1]["annotations[0].text"]
        assert f"<b>{r[n]}×{r[n]}</b>" in text and f"<b>{w95}×{w95}</b>" in text and f"{w50}×{w50}" in text
        assert list(step.args[0]["y"][1]) == [r[n], w95, w50]  # the ringed markers move to this stack
        assert w95 <= r[n]


def test_erf_figure_default_is_ten_stacks_of_3x3():
    fig = fr.erf_figure(trials=1)
    assert [s.label for s in fig.layout.sliders[0].steps] == [f"{n}×[3×3]" for n in range(1, 11)]
    assert list(fig.data[1].y) == [2 * n + 1 for n in range(1, 11)]


# ----------------------------------------------------------------------------- in a real browser

_HASH = "(s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; }"
_SRC = f"(gd) => ({_HASH})(gd._fullData[0].source)"
_STATE = """(gd) => JSON.stringify({src: (""" + _HASH + """)(gd._fullData[0].source),
    sliders: gd._fullLayout.sliders.map(s => s.visible), range: gd._fullLayout.yaxis.range,
    note: gd._fullLayout.annotations.filter(a => a.visible !== false).map(a => a.text)})"""


@pytest.mark.browser
def test_figures_work_in_chromium_with_no_kernel(tmp_path, photo):
    (tmp_path / "plotly.min.js").write_bytes((Path(plotly.__file__).parent / "package_data" / "plotly.min.js")
                                             .read_bytes())
    names = ["3×[3×3]", "AlexNet conv1–pool2", "LeNet-5 conv–pool"]
    figs = [fr.receptive_field_figure(photo, names), fr.erf_figure(STACKS, 40, trials=1)]
    (tmp_path / "page.html").write_text("<html><head><meta charset='utf-8'><script src='plotly.min.js'></script>"
                                        "</head><body>" + "".join(as_html(f) for f in figs) + "</body></html>",
                                        encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "page.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('div.js-plotly-plot').length == 2")
        gd = page.locator("div.js-plotly-plot").nth(0)
        state = lambda g=gd: __import__("json").loads(g.evaluate(_STATE))  # noqa: E731
        start = state()
        assert start["sliders"] == [True, False, False] and start["range"][0] > start["range"][1]
        assert "3×[3×3]" in start["note"][0]

        gd.locator(".updatemenu-header-group").click()
        gd.locator(".updatemenu-item-text", has_text="AlexNet").click()
        page.wait_for_timeout(400)
        alex = state()
        assert alex["sliders"] == [False, True, False] and alex["src"] != start["src"]
        assert "AlexNet" in alex["note"][0] and "layer 4 (pool2)" in alex["note"][0]
        assert alex["range"] == [226.5, -0.5]  # 227×227, row 0 on top
        rails = gd.locator(".slider-rail-rect")
        visible = [k for k in range(rails.count()) if rails.nth(k).is_visible()]
        assert len(visible) == 1  # only AlexNet's slider
        box = rails.nth(visible[0]).bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)  # layer 1
        page.wait_for_timeout(400)
        conv1 = state()
        assert conv1["src"] != alex["src"] and "layer 1 (conv1)" in conv1["note"][0]
        assert "r = 11 px" in conv1["note"][0] and conv1["range"] == [226.5, -0.5]

        erf = page.locator("div.js-plotly-plot").nth(1)
        before = erf.evaluate(_SRC)
        rail = erf.locator(".slider-rail-rect").nth(0)
        rail.scroll_into_view_if_needed()
        box = rail.bounding_box()
        page.mouse.click(box["x"] + 3, box["y"] + box["height"] / 2)
        page.wait_for_timeout(400)
        assert erf.evaluate(_SRC) != before
        assert re.search(r"1×\[3×3\]", erf.evaluate("(gd) => gd._fullLayout.annotations[0].text"))
        assert errors == []
