"""cnnviz.figures.training: the race as an animated figure (frames and slider replay the log exactly),
as an SVG chart for the live widget, and the gradient and summary views.

One test opens the figure in Debian's chromium (marked browser) and checks that the slider and the
play button change the picture with no kernel, as tests/test_book_pages.py does on the built book.
"""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import plotly
import pytest

from cnnviz.data import digits_tensors
from cnnviz.figures.training import gradient_figure, net_label, race_figure, race_svg, race_table
from cnnviz.race import EMBEDDED, Gradients, Race, RaceLog
from cnnviz.train import TensorData
from browser import chromium

TINY = EMBEDDED.replace(depths=(8, 14), width=4, epochs=3, batch_size=64, logs_per_epoch=2, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def log():
    data = TensorData.from_arrays(**digits_tensors()).take(256, 64)
    return Race(TINY, data=data, device="cpu").run()


def _pct(values):
    return [None if v is None else round(100 * v, 2) for v in values]


def test_net_label():
    assert net_label("resnet-56") == "ResNet-56" and net_label("plain-20") == "plain-20"


def _curve(log, name, key):
    """The measured points of one curve: (x, y in %)."""
    pts = [(round(e, 3), v) for e, v in zip(log.points["epoch"], log.series[name][key]) if v is not None]
    return [e for e, _ in pts], _pct([v for _, v in pts])


def test_race_figure_draws_every_curve_in_the_papers_style(log):
    fig = race_figure(log)
    assert len(fig.data) == 4 * 2  # four networks, training and test error
    names = [(t.name, t.line.dash, t.xaxis) for t in fig.data]
    assert names[:2] == [("plain-8", "solid", "x"), ("plain-8", "dash", "x")]
    assert ("ResNet-14", "dash", "x2") in names  # residual nets in the right panel
    for trace, (name, key) in zip(fig.data, [(n, k) for n in log.nets for k in ("train_error", "test_error")]):
        x, y = _curve(log, name, key)
        assert list(trace.x) == x and list(trace.y) == y  # in %, the log's values to 0.01
    assert len(fig.data[0].x) == len(log) and len(fig.data[1].x) == 3  # test error: at the ends of epochs
    train_colours = {t.name: t.line.color for t in fig.data if t.line.dash == "solid"}
    assert train_colours["plain-8"] == train_colours["ResNet-8"] != train_colours["plain-14"]  # colour = depth
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "width 4" in texts and "batch 64" in texts and "no augmentation" in texts  # the settings are stated
    assert "plain networks" in texts and "residual networks" in texts


def test_frames_replay_the_log_and_the_slider_reaches_every_frame(log):
    fig = race_figure(log)
    n = len(log)
    assert len(fig.frames) == n
    steps = fig.layout.sliders[0].steps
    assert [list(s.args[0]) for s in steps] == [[f.name] for f in fig.frames]
    assert fig.layout.sliders[0].active == n - 1  # opens at the end of the run
    for k, frame in enumerate(fig.frames):
        assert list(frame.traces) == list(range(8))
        # the curves grow frame by frame: training error one point per moment, test error one per epoch
        assert [len(d.y) for d in frame.data] == [k + 1, (k + 1) // 2] * 4
        assert list(frame.data[0].y) == _curve(log, "plain-8", "train_error")[1][:k + 1]
        assert frame.data[0].x is None  # plotly draws min(len(x), len(y)) points: x stays in the trace
    # every frame states its moment (subtitle) and marks it with a line in both panels
    statuses = [frame.layout.title.subtitle.text for frame in fig.frames]
    assert len(set(statuses)) == n and statuses[-1] == fig.layout.title.subtitle.text
    assert statuses[0].startswith("<b>epoch 0.5 of 3</b>")
    lines = [[(sh.x0, sh.xref) for sh in frame.layout.shapes] for frame in fig.frames]
    assert lines[0] == [(0.5, "x"), (0.5, "x2")] and len({tuple(li) for li in lines}) == n
    assert fig.layout.shapes == fig.frames[-1].layout.shapes
    # the annotations (panel titles, settings) never change, so the frames leave them alone
    assert all(f.layout.annotations == () for f in fig.frames)
    play = fig.layout.updatemenus[0].buttons[0]
    assert play.method == "animate" and play.args[0] is None and play.args[1]["fromcurrent"] is False


def test_long_runs_keep_at_most_max_frames(log):
    fig = race_figure(log, max_frames=3)
    assert [f.name for f in fig.frames] == ["0", "2", "5"]  # evenly spread, the last moment included
    assert len(fig.layout.sliders[0].steps) == 3


def test_race_figure_with_one_kind_and_errors():
    empty = RaceLog(config=TINY.to_dict(), nets=["plain-8"])
    with pytest.raises(ValueError, match="no log points"):
        race_figure(empty)


def test_race_figure_leaves_out_unmeasured_points(log):
    """Test errors between epochs and everything after a divergence are None in the log: no gaps, no NaN."""
    broken = log.snapshot()
    broken.series["plain-14"]["train_error"][3:] = [None] * (len(log) - 3)
    fig = race_figure(broken)
    assert len(fig.data[2].x) == 3 and None not in fig.data[2].y
    assert "NaN" not in fig.to_json()


def test_race_svg_is_valid_and_draws_every_curve(log):
    svg = race_svg(log, width=800, height=360, font_size=14)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("width") == "800" and root.get("height") == "360"
    polylines = [el for el in root.iter() if el.tag.endswith("polyline")]
    assert len(polylines) == 8
    dashed = [p for p in polylines if p.get("stroke-dasharray")]
    assert len(dashed) == 4
    # training curves: one vertex per log point; test curves: one per epoch
    counts = sorted(len(p.get("points").split()) for p in polylines)
    assert counts == [3] * 4 + [len(log)] * 4
    assert "plain networks" in svg and "residual networks" in svg and "training error" in svg


def test_race_svg_of_a_race_that_has_not_started_yet():
    svg = race_svg(RaceLog(config=TINY.to_dict(), nets=["plain-8", "plain-14", "resnet-8", "resnet-14"]))
    root = ET.fromstring(svg)
    assert not [el for el in root.iter() if el.tag.endswith("polyline")]


def test_race_table(log):
    table = race_table(log)
    lines = table.splitlines()
    assert len(lines) == 2 + 4 and lines[2].startswith("| plain-8 |")
    assert f"{log.params['resnet-14']:,}" in table
    assert f"{100 * log.final('resnet-14', 'test_error'):.1f} %" in table


def test_gradient_figure_is_log_scaled():
    g = Gradients(("stem", "layer1.0"), (5.0, 0.5), 1.0)
    fig = gradient_figure({"plain-56": g, "ResNet-56": g})
    assert fig.layout.yaxis.type == "log" and [t.name for t in fig.data] == ["plain-56", "ResNet-56"]
    assert list(fig.data[0].y) == [5.0, 0.5]


# ----------------------------------------------------------------------------- in a real browser

STATE = """(gd) => JSON.stringify([gd._fullData.map(t => t._length), gd._fullLayout.title.subtitle.text,
                                   JSON.stringify(gd.layout.shapes)])"""


@pytest.mark.browser
def test_slider_and_play_change_the_figure_with_no_kernel(log, tmp_path):
    from cnnviz.plot import as_html

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    page_file = tmp_path / "race.html"
    page_file.write_text(f"<html><head><meta charset='utf-8'><script src='{js.as_uri()}'></script></head>"
                         f"<body>{as_html(race_figure(log))}</body></html>", encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        page.wait_for_function("() => document.querySelector('div.js-plotly-plot') !== null")
        gd = page.locator("div.js-plotly-plot").first
        lengths, status, shapes = json.loads(gd.evaluate(STATE))
        assert lengths == [len(log), 3] * 4 and "epoch 3.0 of 3" in status  # opens at the end
        rail = gd.locator(".slider-rail-rect").first
        box = rail.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.02, box["y"] + box["height"] / 2)
        page.wait_for_timeout(400)
        lengths0, status0, shapes0 = json.loads(gd.evaluate(STATE))
        assert lengths0 == [1, 0] * 4 and "epoch 0.5 of 3" in status0 and shapes0 != shapes
        title = gd.evaluate("gd => gd._fullLayout.title.text")
        assert title.startswith("Plain vs residual")  # a frame changes the subtitle only
        page.get_by_text("▶ replay").click()
        page.wait_for_timeout(150 * len(log) + 1500)
        assert json.loads(gd.evaluate(STATE)) == [lengths, status, shapes]
        assert errors == []
