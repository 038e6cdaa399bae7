"""ConvExplorer driven from Python: set the sliders, check the picture, the arithmetic and the messages.

tests/test_ipywidgets7.py runs the kernel-editor tests under ipywidgets 7 (Colab);
``test_works_with_ipywidgets_7`` below does the same for this file.
"""
import html
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
from PIL import Image

import cnnviz.widgets.conv_explorer as cx
from cnnviz.figures.arithmetic import conv_arithmetic_text
from cnnviz.layers import conv_output_shape
from cnnviz.widgets.conv_explorer import ConvExplorer

ROOT = Path(__file__).resolve().parents[1]
IPYW7 = ROOT / ".venv" / "ipywidgets7"


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def positions(settings) -> int:
    """H_out·W_out from cnnviz.layers: how many frames the explorer must draw."""
    kw = dict(settings)
    _, h_out, w_out = conv_output_shape(kw.get("c_in", 1), kw["n"], kw["n"], kw.get("c_out", 1), kw["f"],
                                        kw.get("p", 0), kw.get("s", 1), kw.get("d", 1))
    return h_out * w_out


def message(ex) -> str:
    return html.unescape(ex.message.value)


def assert_consistent(ex):
    """What every settled state must satisfy: frames for the shown setting, slider ranges, picture, text."""
    shown = ex.shown
    n_frames = positions(shown)
    assert len(ex.frames) == n_frames
    assert ex.position.max == n_frames - 1 and ex.play.max == n_frames - 1
    assert 0 <= ex.position.value <= n_frames - 1 and ex.play.value == ex.position.value
    assert ex.view.value == ex.frames[ex.position.value]
    assert conv_arithmetic_text(**shown) in ex.arithmetic.value


@pytest.fixture
def ex():
    return ConvExplorer(threaded=False)


# ----------------------------------------------------------------------------- initial state and scrubbing

def test_initial_state(ex):
    assert ex.settings == dict(n=5, f=3, p=0, s=1, d=1, c_in=1, c_out=1)
    assert ex.shown == ex.settings
    assert_consistent(ex)
    assert len(ex.frames) == 9 and ex.position.value == 0
    assert ex.message.value == "" and ex.last_error is None
    assert "<b>3</b>" in ex.arithmetic.value and "multiply–accumulates (MACs)" in ex.arithmetic.value
    assert "output cell (row 0, col 0): 1 of 9" in ex.where.value
    first = decode(ex.view.value)
    assert first.ndim == 3 and first.shape[2] == 3 and first.shape[1] > first.shape[0]


def test_position_swaps_the_precomputed_frame(ex):
    frames = ex.frames
    assert len({bytes(f) for f in frames}) == len(frames)  # every position its own picture
    for k in (4, 8, 0, 7):
        ex.position.value = k
        assert ex.view.value == frames[k]
        i, j = divmod(k, 3)
        assert f"output cell (row {i}, col {j}): {k + 1} of 9" in ex.where.value
    assert ex.frames == frames  # scrubbing never recomputes


def test_play_is_linked_to_the_position(ex):
    ex.play.value = 5  # what the Play widget does on each tick (widgets.link, not jslink)
    assert ex.position.value == 5 and ex.view.value == ex.frames[5]
    ex.position.value = 2
    assert ex.play.value == 2


# ----------------------------------------------------------------------------- settings

@pytest.mark.parametrize("name, value, expected", [
    ("n", 7, 25), ("f", 1, 25), ("p", 2, 49), ("s", 2, 4), ("d", 2, 1), ("c_in", 3, 9), ("c_out", 4, 9),
])
def test_each_slider_redraws(ex, name, value, expected):
    before = ex.view.value
    ex.sliders[name].value = value
    assert ex.shown[name] == value
    assert len(ex.frames) == expected == positions(ex.shown)
    assert ex.view.value != before
    assert_consistent(ex)
    assert ex.message.value == ""


def test_channels_change_the_counts(ex):
    ex.set(n=8, f=3, c_in=3, c_out=10)
    text = ex.arithmetic.value
    assert "<b>280</b>" in text  # parameters 10·(3·3·3 + 1), independent of n
    assert "<b>10 × 6 × 6</b>" in text and "<b>9,720</b>" in text  # MACs 6·6·10·27


def test_position_max_follows_every_change(ex):
    changes = [("n", 9), ("s", 2), ("f", 5), ("p", 3), ("d", 2), ("s", 1), ("n", 4), ("f", 1), ("p", 0), ("n", 16)]
    ex.position.value = ex.position.max
    for name, value in changes:
        ex.sliders[name].value = value
        assert_consistent(ex)
        assert ex.position.max == positions(ex.settings) - 1


def test_set_changes_several_at_once(ex):
    ex.set(n=7, f=3, p=1, s=2, d=1, c_in=2, c_out=3)
    assert ex.shown == dict(n=7, f=3, p=1, s=2, d=1, c_in=2, c_out=3)
    assert len(ex.frames) == 16
    assert_consistent(ex)


# ----------------------------------------------------------------------------- padding shortcuts

def test_same_follows_the_kernel(ex):
    ex.padding.value = "same"
    assert ex.sliders["p"].value == 1 and ex.shown["p"] == "same"
    assert len(ex.frames) == 25  # n × n: the size is kept
    ex.sliders["f"].value = 5
    assert ex.sliders["p"].value == 2 and len(ex.frames) == 25
    ex.sliders["d"].value = 2
    assert ex.sliders["p"].value == 4 and len(ex.frames) == 25
    assert "padding 'same': p = d(f−1)/2 = 2·(5−1)/2 = <b>4</b>" in ex.arithmetic.value
    assert_consistent(ex)


def test_valid_sets_zero(ex):
    ex.sliders["p"].value = 2
    ex.padding.value = "valid"
    assert ex.sliders["p"].value == 0 and ex.shown["p"] == "valid" and len(ex.frames) == 9


def test_moving_p_leaves_the_shortcut(ex):
    ex.padding.value = "same"
    ex.sliders["p"].value = 3
    assert ex.padding.value == "number" and ex.shown["p"] == 3
    assert len(ex.frames) == positions(dict(n=5, f=3, p=3))


def test_same_with_an_even_kernel_is_explained(ex):
    ex.padding.value = "same"
    last = ex.view.value
    ex.sliders["f"].value = 4
    assert "odd kernel size" in message(ex)
    assert ex.view.value == last and ex.shown["f"] == 3  # the last good picture stays
    ex.sliders["f"].value = 5
    assert message(ex) == "" and ex.shown == dict(n=5, f=5, p="same", s=1, d=1, c_in=1, c_out=1)


def test_same_with_stride_is_explained(ex):
    ex.padding.value = "same"
    ex.sliders["s"].value = 2
    assert "stride 1" in message(ex) and "last setting that worked" in message(ex)
    assert ex.shown["s"] == 1


# ----------------------------------------------------------------------------- invalid and oversized

def test_kernel_too_large_keeps_the_last_picture(ex):
    ex.position.value = 4
    before_png, before_frames, before_max = ex.view.value, ex.frames, ex.position.max
    ex.sliders["f"].value = 7
    assert "f = 7 > n + 2p = 5" in message(ex)
    assert "last setting that worked" in message(ex)
    assert isinstance(ex.last_error, ValueError)
    assert ex.view.value == before_png and ex.frames == before_frames and ex.position.max == before_max
    assert ex.shown["f"] == 3
    ex.position.value = 6  # the last good frames still scrub
    assert ex.view.value == before_frames[6]
    ex.sliders["p"].value = 1  # 7 = 5 + 2·1: it fits again
    assert message(ex) == "" and ex.last_error is None
    assert ex.shown == dict(n=5, f=7, p=1, s=1, d=1, c_in=1, c_out=1) and len(ex.frames) == 1
    assert_consistent(ex)


def test_dilated_kernel_too_large(ex):
    ex.sliders["d"].value = 3
    assert "the dilated kernel d(f-1)+1 = 7 > n + 2p = 5" in message(ex)


@pytest.mark.parametrize("kw, words", [
    (dict(n=10_000), "n = 10,000 is more than this explorer draws (n ≤ 16)"),
    (dict(c_in=1_000), "c_in = 1,000 is more than this explorer draws"),
    (dict(f=0), "f (kernel size) must be at least 1"),
    (dict(n=5.5), "must be a whole number"),
    (dict(p="full"), "p must be a whole number, 'valid' or 'same'"),
])
def test_constructor_refuses_oversized_or_bad_settings(kw, words):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        ConvExplorer(**kw, threaded=False)
    assert words in str(err.value)
    assert time.perf_counter() - t0 < 1.0  # refused, not computed


def test_constructor_refuses_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError, match=r"f = 7 > n \+ 2p = 5"):
        ConvExplorer(n=5, f=7, threaded=False)


def test_set_refuses_oversized_with_a_message(ex):
    before = ex.view.value
    t0 = time.perf_counter()
    ex.set(n=10_000)
    assert time.perf_counter() - t0 < 1.0
    assert "n = 10,000 is more than this explorer draws" in message(ex)
    assert ex.sliders["n"].value == 5 and ex.view.value == before
    ex.set(k=3)
    assert "Unknown setting ['k']" in message(ex)


def test_too_many_positions_within_the_slider_ranges(ex):
    before = ex.view.value
    ex.set(n=16, f=1, p=12)  # 40 × 40 = 1,600 output positions
    assert "1,600 output positions" in message(ex) and "at most 1,024" in message(ex)
    assert ex.view.value == before and ex.shown["n"] == 5


def test_unexpected_errors_are_shown_not_raised(ex, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(cx, "conv_frame_pngs", broken)
    ex.sliders["n"].value = 6  # must not raise
    assert "Unexpected error (RuntimeError: boom)" in message(ex)
    assert ex.shown["n"] == 5


def test_projector_scale_draws_larger():
    small = decode(ConvExplorer(threaded=False).view.value)
    large = decode(ConvExplorer(scale=1.4, threaded=False).view.value)
    assert large.shape[0] > small.shape[0] and large.shape[1] > small.shape[1]
    big = ConvExplorer(n=16, f=3, p=1, c_in=3, c_out=4, scale=1.4, threaded=False)
    h, w = decode(big.view.value).shape[:2]
    assert h <= round(560 * 1.4) and w <= round(1100 * 1.4)  # shrunk to fit a projected page


# ----------------------------------------------------------------------------- threaded

def test_threaded_rapid_changes_settle_on_the_last():
    ex = ConvExplorer(threaded=True)
    assert ex.wait(20)
    for k in range(20):  # a dragged slider: 20 values faster than they can be drawn
        ex.sliders["n"].value = 4 + k % 12
        ex.sliders["c_out"].value = 1 + k % 5
    ex.sliders["s"].value = 2
    assert ex.wait(30)
    assert ex.shown == dict(n=4 + 19 % 12, f=3, p=0, s=2, d=1, c_in=1, c_out=5)
    assert ex.message.value == ""
    assert_consistent(ex)


def test_threaded_last_change_invalid_keeps_a_good_picture():
    ex = ConvExplorer(threaded=True)
    for k in range(20):
        ex.sliders["n"].value = 5 + k % 8
    ex.sliders["n"].value = 6
    assert ex.wait(30)
    ex.sliders["f"].value = 7  # 7 > 6: the newest request is invalid
    assert ex.wait(30)
    assert "f = 7 > n + 2p = 6" in message(ex)
    assert ex.shown == dict(n=6, f=3, p=0, s=1, d=1, c_in=1, c_out=1)
    assert_consistent(ex)


# ----------------------------------------------------------------------------- Colab's ipywidgets 7

def test_works_with_ipywidgets_7():
    """Run this file again under ipywidgets 7 (what Colab ships), as tests/test_ipywidgets7.py does for the editor."""
    if int(ipywidgets.__version__.split(".")[0]) < 8:
        pytest.skip("already running under ipywidgets 7")
    if not (IPYW7 / "ipywidgets").is_dir():
        pytest.fail(f"ipywidgets 7 is not installed in {IPYW7}: run `make test`, which installs it.")
    env = dict(os.environ, PYTHONPATH=str(IPYW7))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                          "-k", "not test_works_with_ipywidgets_7"],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("7."), version
