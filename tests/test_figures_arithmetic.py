"""cnnviz.figures.arithmetic: the explorer's pictures and its static twin, checked against cnnviz.layers."""
import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from cnnviz.figures import arithmetic as ar
from cnnviz.figures.arithmetic import (EXPLORER_SETTINGS, PALETTE, conv_arithmetic_text, conv_explorer_figure,
                                       conv_frame_pngs, conv_frames)
from cnnviz.layers import conv_macs, conv_output_shape, conv_params, conv_trace, same_padding

SETTINGS = [{k: v for k, v in e.items() if k != "label"} for e in EXPLORER_SETTINGS] + [
    dict(n=6, f=2, p=0, s=2),                       # even kernel, stride = kernel
    dict(n=4, f=3, p=2, s=1),                       # padding larger than needed: the output grows
    dict(n=6, f=3, p="same", d=2),                  # 'same' with dilation: p = 2
    dict(n=5, f=1, c_in=2, c_out=5),                # 1×1 convolution, many filters
    dict(n=7, f=3, p=1, s=3, d=2, c_in=5, c_out=3),  # everything at once, more channels than drawn
]
COLOURS = {name: tuple(PALETTE[i]) for name, i in ar._INDEX.items()}
WHITE = tuple(PALETTE[ar.WHITE])


def _rgb(name):
    return WHITE if name == "white" else COLOURS[name]


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _decode_uri(uri: str) -> np.ndarray:
    head, payload = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return _decode(base64.b64decode(payload))


def _shape(kw):
    p = kw.get("p", 0)
    return conv_output_shape(kw.get("c_in", 1), kw["n"], kw["n"], kw.get("c_out", 1), kw["f"], p,
                             kw.get("s", 1), kw.get("d", 1))


def _p(kw):
    p = kw.get("p", 0)
    return {"valid": 0, "same": same_padding(kw["f"], kw.get("d", 1))}.get(p, p) if isinstance(p, str) else p


def _centre(x0, y0, cell, line, row, col):
    """A pixel in the middle of a cell (away from grid lines and outlines), as (y, x)."""
    return y0 + row * cell + line + (cell - line) // 2, x0 + col * cell + line + (cell - line) // 2


# ----------------------------------------------------------------------------- frames

@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_one_frame_per_output_position(kw):
    _, h_out, w_out = _shape(kw)
    frames = conv_frames(**kw)
    assert len(frames) == h_out * w_out
    assert all(fr.dtype == np.uint8 and fr.ndim == 3 and fr.shape[2] == 3 for fr in frames)
    assert len({fr.shape for fr in frames}) == 1  # every frame the same size: the page only swaps them
    assert len({fr.tobytes() for fr in frames}) == len(frames)  # and each one different


@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_frames_colour_the_cells_conv_trace_names(kw):
    """Every frame against the oracle cnnviz.layers.conv_trace: taps blue, padding grey, output filling in."""
    cell = 20
    lay = ar._layout(**kw, cell=cell)
    frames = conv_frames(**kw, cell=cell)
    c_in, c_out, f, n, p = kw.get("c_in", 1), kw.get("c_out", 1), kw["f"], kw["n"], _p(kw)
    side = n + 2 * p
    assert lay.p == p and lay.cell == cell
    assert [ch for ch, _, _ in lay.inputs] == (list(range(c_in)) if c_in <= 3 else [0, 1, c_in - 1])
    assert len(lay.back) == min(c_out, 4) - 1
    for k, frame in enumerate(frames):
        i, j = divmod(k, lay.w_out)
        trace = conv_trace((c_in, n, n), (c_out, c_in, f, f), (0, i, j), p, kw.get("s", 1), kw.get("d", 1))
        taps = {(r, q) for _, r, q in trace.padded}
        for _, x0, y0 in lay.inputs:
            for r in range(side):
                for q in range(side):
                    y, x = _centre(x0, y0, cell, lay.line, r, q)
                    padding = not (p <= r < p + n and p <= q < p + n)
                    if (r, q) in taps:
                        allowed = ("tap_pad", "tap_hatch") if padding else ("tap",)
                    else:
                        allowed = ("pad", "hatch") if padding else ("white",)
                    assert tuple(frame[y, x]) in {_rgb(a) for a in allowed}, (k, r, q, allowed)
        ox, oy = lay.output
        for r in range(lay.h_out):
            for q in range(lay.w_out):
                y, x = _centre(ox, oy, cell, lay.line, r, q)
                m = r * lay.w_out + q
                expected = "done" if m < k else "current" if m == k else "white"
                assert tuple(frame[y, x]) == _rgb(expected), (k, r, q)


def test_frame_size_grows_with_the_grid():
    small, big = conv_frames(5, 3)[0], conv_frames(9, 3)[0]
    assert big.shape[0] > small.shape[0] and big.shape[1] > small.shape[1]
    lay = ar._layout(9, 3, cell=28)
    assert big.shape[:2] == (lay.height, lay.width)
    for _, x0, y0 in lay.inputs:  # the 9×9 input grid lies inside the picture
        assert x0 >= 0 and y0 >= 0 and x0 + 9 * 28 < lay.width and y0 + 9 * 28 < lay.height


def test_more_channels_than_drawn_are_said():
    lay = ar._layout(5, 3, c_in=8, c_out=16)
    texts = [label[0] for label in lay.labels]
    assert "3 of 8 input channels drawn" in texts
    assert "channel 8" in texts and "+ … +" in texts
    assert "16 output maps" in texts and "16 maps of 3×3" in texts


def test_pngs_decode_to_the_frames():
    frames = conv_frames(6, 3, 1, 2, c_in=2, c_out=3)
    pngs = conv_frame_pngs(6, 3, 1, 2, c_in=2, c_out=3)
    assert len(pngs) == len(frames) == 9
    for data, frame in zip(pngs, frames):
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(_decode(data), frame)


def test_max_size_shrinks_the_cells_not_the_text():
    kw = dict(n=16, f=3, p=1, s=4, c_in=3, cell=28, font_size=18)  # stride 4: few frames, same picture size
    big = conv_frames(**kw)[0]
    fitted = conv_frames(**kw, max_size=(500, 1000))[0]
    assert big.shape[1] > 1000
    assert fitted.shape[0] <= 500 and fitted.shape[1] <= 1000


def test_valid_and_same_strings():
    assert len(conv_frames(5, 3, "valid")) == 9
    assert len(conv_frames(5, 3, "same")) == 25
    assert len(conv_frames(7, 3, "same", d=3)) == 49  # p = d(f-1)/2 = 3


@pytest.mark.parametrize("kw, words", [
    (dict(n=5, f=7), r"f = 7 > n \+ 2p = 5"),
    (dict(n=5, f=3, d=3), r"the dilated kernel d\(f-1\)\+1 = 7 > n \+ 2p = 5"),
    (dict(n=5, f=4, p="same"), r"odd kernel size"),
    (dict(n=5, f=3, p="same", s=2), r"stride 1"),
    (dict(n=5, f=3, c_in=0), r"c_in \(input channels\) must be at least 1"),
    (dict(n=5, f=3, p=-1), r"p \(padding\) must be at least 0"),
    (dict(n=5.5, f=3), r"whole number"),
])
def test_invalid_settings_are_explained(kw, words):
    for fn in (conv_frames, conv_frame_pngs, conv_arithmetic_text):
        with pytest.raises(ValueError, match=words):
            fn(**kw)


@pytest.mark.parametrize("kw, words", [
    (dict(n=10_000, f=3), r"padded input would be 10000×10000 cells.*at most 48×48"),
    (dict(n=40, f=1, p=0), r"1,600 output positions \(40×40\).*at most 1,024"),
])
def test_too_big_is_refused_at_once(kw, words):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=words):
        conv_frames(**kw)
    assert time.perf_counter() - t0 < 1.0  # refused before any drawing


# ----------------------------------------------------------------------------- the arithmetic text

def test_text_lecture_numbers():
    text = conv_arithmetic_text(32, 3, c_in=3, c_out=10)
    assert f"<b>{conv_params(3, 10, 3)}</b>" in text and "<b>280</b>" in text  # 10·(3·3·3 + 1)
    assert "C_out·(f·f·C_in + 1) = 10·(3·3·3 + 1)" in text
    assert f"<b>{conv_macs(3, 32, 32, 10, 3):,}</b>" in text  # 30·30·10·27 = 243,000
    assert "<b>243,000</b>" in text
    assert "<b>10 × 30 × 30</b>" in text
    assert "multiply–accumulates (MACs)" in text and "FLOP" not in text.upper()


def test_text_spells_out_the_formula():
    text = conv_arithmetic_text(5, 3, 1, 2)
    assert ("floor((n + 2p − d(f−1) − 1)/s) + 1 = floor((5 + 2·1 − 1·(3−1) − 1)/2) + 1 = floor(4/2) + 1 "
            "= <b>3</b>") in text
    assert "padding 'same': p = d(f−1)/2 = 2·(3−1)/2 = <b>2</b>" in conv_arithmetic_text(6, 3, "same", d=2)
    assert "padding 'valid'" in conv_arithmetic_text(6, 3, "valid")


@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_text_numbers_come_from_layers(kw):
    c_out, h_out, w_out = _shape(kw)
    c_in, f, n = kw.get("c_in", 1), kw["f"], kw["n"]
    text = conv_arithmetic_text(**kw)
    assert f"= <b>{h_out}</b>" in text
    assert f"<b>{c_out} × {h_out} × {w_out}</b>" in text
    assert f"<b>{conv_params(c_in, c_out, f):,}</b>" in text
    assert f"<b>{conv_macs(c_in, n, n, c_out, f, _p(kw), kw.get('s', 1), kw.get('d', 1)):,}</b>" in text
    # only markup that both ipywidgets.HTML and plotly annotations render
    assert set(text.replace("<br>", "").replace("<b>", "").replace("</b>", "")) & set("<>") == set()


# ----------------------------------------------------------------------------- the static figure

@pytest.fixture(scope="module")
def fig():
    return conv_explorer_figure()


def _frames_of(fig, k):
    """The frames the k-th setting's slider steps animate to, in order."""
    by_name = {fr.name: fr for fr in fig.frames}
    return [by_name[step.args[0][0]] for step in fig.layout.sliders[k].steps]


def test_figure_one_image_slider_and_play_button_per_setting(fig):
    n = len(EXPLORER_SETTINGS)
    assert len(fig.data) == n and all(t.type == "image" for t in fig.data)
    assert [t.visible for t in fig.data] == [True] + [False] * (n - 1)
    assert len(fig.layout.sliders) == n
    assert [s.visible for s in fig.layout.sliders] == [True] + [False] * (n - 1)
    menus = fig.layout.updatemenus
    assert len(menus) == 1 + n and menus[0].type == "dropdown"
    assert [m.visible for m in menus[1:]] == [True] + [False] * (n - 1)
    assert [b.label for b in menus[0].buttons] == [e["label"] for e in EXPLORER_SETTINGS]


def test_figure_dropdown_shows_one_setting(fig):
    n = len(EXPLORER_SETTINGS)
    for k, button in enumerate(fig.layout.updatemenus[0].buttons):
        assert button.method == "update"
        restyle, relayout = button.args
        assert restyle["visible"] == [m == k for m in range(n)]
        assert all(relayout[f"sliders[{m}].visible"] == (m == k) for m in range(n))
        assert all(relayout[f"updatemenus[{m + 1}].visible"] == (m == k) for m in range(n))
        kw = {key: v for key, v in EXPLORER_SETTINGS[k].items() if key != "label"}
        assert relayout["annotations[0].text"] == conv_arithmetic_text(**kw)
    assert fig.layout.annotations[0].text == conv_arithmetic_text(5, 3)


def test_figure_slider_steps_are_the_output_positions(fig):
    for k, entry in enumerate(EXPLORER_SETTINGS):
        kw = {key: v for key, v in entry.items() if key != "label"}
        _, h_out, w_out = _shape(kw)
        steps = fig.layout.sliders[k].steps
        assert len(steps) == h_out * w_out
        assert [s.label for s in steps] == [f"({i}, {j})" for i in range(h_out) for j in range(w_out)]
        frames = _frames_of(fig, k)
        assert all(fr.traces == (k,) for fr in frames)  # each setting's frames change its own image only
        play = fig.layout.updatemenus[k + 1].buttons[0]
        assert play.method == "animate" and list(play.args[0]) == [fr.name for fr in frames]


def test_figure_images_are_the_frames(fig):
    """Each embedded image is conv_frames' picture (on a common canvas), first frame = the trace's source."""
    shapes = set()
    for k, entry in enumerate(EXPLORER_SETTINGS):
        kw = {key: v for key, v in entry.items() if key != "label"}
        expected = conv_frames(**kw, cell=22, font_size=15)
        frames = _frames_of(fig, k)
        assert fig.data[k].source == frames[0].data[0].source
        for pos in (0, len(frames) // 2, len(frames) - 1):
            shown = _decode_uri(frames[pos].data[0].source)
            h, w = expected[pos].shape[:2]
            np.testing.assert_array_equal(shown[:h, :w], expected[pos])
            assert (shown[h:] == 255).all() and (shown[:, w:] == 255).all()  # white around it
            shapes.add(shown.shape)
    assert len(shapes) == 1  # one canvas size: the axes never jump


def test_figure_upright_square_pixels_and_small(fig):
    assert fig.layout.yaxis.scaleanchor == "x"
    y0, y1 = fig.layout.yaxis.range
    assert y0 > y1  # row 0 at the top
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert len(html) < 1_500_000


def test_figure_custom_settings():
    fig = conv_explorer_figure([dict(n=4, f=2, s=2), dict(n=6, f=3, p="same", label="same 6")], title="Two")
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["n = 4, f = 2, s = 2", "same 6"]
    assert [len(s.steps) for s in fig.layout.sliders] == [4, 36]
    assert fig.layout.title.text == "Two"


@pytest.mark.parametrize("settings, words", [
    ([dict(n=5)], "needs at least n and f"),
    ([dict(n=5, f=3, k=2)], "Unknown setting"),
    ([dict(n=5, f=7)], r"f = 7 > n \+ 2p = 5"),
    ([], "at least one setting"),
])
def test_figure_bad_settings(settings, words):
    with pytest.raises(ValueError, match=words):
        conv_explorer_figure(settings)
