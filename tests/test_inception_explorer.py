"""InceptionCostExplorer driven from Python: move the sliders and switches, check the numbers against
``inception_cost`` and the lecture's worked example.

The lecture (28×28×256 input; 1×1 128, 3×3 192, 5×5 96): naive 854 M MACs and
672 output maps; with 64-wide 1×1 reductions and a 64-wide pool projection
271 M and 480 maps (the slide prints 358 M, but its own six terms add up to
271 M). tests/test_ipywidgets7.py runs this file again under ipywidgets 7.
"""
import html
import re

import pytest

import cnnviz.widgets.inception_explorer as ie
from cnnviz.figures.architecture import human, inception_cost_svg, inception_presets
from cnnviz.models.googlenet import INCEPTION_WIDTHS, inception_cost
from cnnviz.widgets import InceptionCostExplorer

ORDER = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")


def text(widget) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", widget.value.replace("<br>", " "))).split())


def oracle(kw):
    args = [kw[k] for k in ORDER]
    naive = inception_cost(kw["in_channels"], kw["size"], kw["size"], kw["ch1x1"], None, kw["ch3x3"], None,
                           kw["ch5x5"], None)
    return naive, inception_cost(args[0], kw["size"], kw["size"], *args[1:])


def assert_consistent(e):
    kw = e.shown
    assert kw == e.settings
    naive, this = oracle(kw)
    assert e.costs == (naive, this)
    assert e.view.value == inception_cost_svg(kw["in_channels"], kw["size"], *[kw[k] for k in ORDER[1:]])
    summary = text(e.summary)
    assert f"naive: {human(naive.total.macs)} MACs ({naive.total.macs:,})" in summary
    assert f"this module: {human(this.total.macs)} MACs ({this.total.macs:,})" in summary
    assert f"×{naive.out_channels}" in summary and f"×{this.out_channels}" in summary
    for name, switch in e.switches.items():
        assert e.sliders[name].disabled == (not switch.value)


@pytest.fixture
def explorer():
    return InceptionCostExplorer(threaded=False)


def test_the_lecture_example(explorer):
    assert explorer.preset.value == ie.LECTURE
    assert explorer.settings == dict(size=28, in_channels=256, ch1x1=128, ch3x3red=64, ch3x3=192, ch5x5red=64,
                                     ch5x5=96, pool_proj=64)
    naive, this = explorer.costs
    assert round(naive.total.macs / 1e6) == 854 and naive.out_channels == 672
    assert this.total.macs == 271_351_808 and this.out_channels == 480
    summary = text(explorer.summary)
    assert "naive: 854 M MACs" in summary and "this module: 271 M MACs" in summary and "32% of naive" in summary
    assert "358" in summary  # the note on the slide's misprint
    assert explorer.message.value == ""
    assert_consistent(explorer)


def test_switching_every_reduction_off_gives_the_naive_module(explorer):
    for name in ("ch3x3red", "ch5x5red", "pool_proj"):
        explorer.switches[name].value = False
        assert explorer.shown[name] is None and explorer.sliders[name].disabled
        assert_consistent(explorer)
    naive, this = explorer.costs
    assert this == naive and "this module (also naive)" in explorer.view.value
    assert explorer.preset.value == ie.CUSTOM
    explorer.all_reduced.click()
    assert explorer.shown == explorer.settings and explorer.costs[1].out_channels == 480
    assert explorer.preset.value == ie.LECTURE  # back to the lecture's module
    explorer.all_naive.click()
    assert explorer.costs[1] == explorer.costs[0]


def test_pool_projection_sets_the_depth(explorer):
    explorer.switches["pool_proj"].value = False  # the pool passes all 256 maps through
    assert explorer.costs[1].out_channels == 128 + 192 + 96 + 256
    explorer.switches["pool_proj"].value = True
    explorer.sliders["pool_proj"].value = 32
    assert explorer.costs[1].out_channels == 128 + 192 + 96 + 32
    assert_consistent(explorer)


@pytest.mark.parametrize("name, value", [("size", 14), ("in_channels", 512), ("ch1x1", 64), ("ch3x3", 256),
                                         ("ch5x5", 32), ("ch3x3red", 16), ("ch5x5red", 128), ("pool_proj", 128)])
def test_each_slider_redraws(explorer, name, value):
    before = explorer.view.value
    explorer.sliders[name].value = value
    assert explorer.shown[name] == value
    assert explorer.view.value != before and explorer.preset.value == ie.CUSTOM
    assert_consistent(explorer)


def test_macs_scale_with_the_area_and_the_widths(explorer):
    _, at28 = explorer.costs
    explorer.sliders["size"].value = 14
    _, at14 = explorer.costs
    assert at28.total.macs == 4 * at14.total.macs and at28.total.params == at14.total.params
    explorer.sliders["ch3x3red"].value = 32  # halving the 3×3 reduction halves its 1×1 and its 3×3 cost
    _, half = explorer.costs
    assert at14.branches["branch2"].macs == 2 * half.branches["branch2"].macs


@pytest.mark.parametrize("name", list(INCEPTION_WIDTHS))
def test_googlenet_presets(explorer, name):
    explorer.preset.value = name
    kw = explorer.shown
    assert tuple(kw[k] for k in ORDER) == INCEPTION_WIDTHS[name]
    assert kw["size"] == inception_presets()[name]["size"]
    assert all(s.value for s in explorer.switches.values())
    assert_consistent(explorer)
    assert explorer.costs[1].out_channels == sum(INCEPTION_WIDTHS[name][k] for k in (1, 3, 5, 6))


def test_set_and_its_checks(explorer):
    explorer.set(size=7, in_channels=832, ch3x3red=None)
    assert explorer.shown["size"] == 7 and explorer.shown["ch3x3red"] is None
    assert not explorer.switches["ch3x3red"].value
    assert_consistent(explorer)
    before = explorer.view.value
    explorer.set(ch1x1=5000)
    assert "between 8 and 512" in text(explorer.message) and explorer.view.value == before
    explorer.set(width=3)
    assert "Unknown setting ['width']" in text(explorer.message)
    explorer.set(ch1x1=64)
    assert explorer.message.value == ""


def test_constructor_arguments():
    e = InceptionCostExplorer("inception4a", threaded=False)
    assert e.preset.value == "inception4a" and e.shown["size"] == 14
    e = InceptionCostExplorer(ch3x3red=None, ch5x5red=None, pool_proj=None, threaded=False)
    assert e.preset.value == ie.CUSTOM and e.costs[0] == e.costs[1]
    assert e.sliders["ch3x3red"].value == 64 and e.sliders["ch3x3red"].disabled
    with pytest.raises(ValueError, match="No preset"):
        InceptionCostExplorer("inception6a")
    with pytest.raises(ValueError, match="between"):
        InceptionCostExplorer(size=0)


def test_threaded_rapid_changes_render_the_last_request():
    e = InceptionCostExplorer()
    assert e.wait()
    for v in range(8, 264, 8):
        e.sliders["ch3x3red"].value = v
    e.preset.value = "inception5b"
    e.sliders["ch5x5"].value = 64
    assert e.wait()
    assert e.shown == dict(inception_presets()["inception5b"], ch5x5=64)
    assert_consistent(e)


def test_unexpected_errors_become_a_sentence(monkeypatch, explorer):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ie, "inception_cost_svg", broken)
    explorer.sliders["ch1x1"].value = 64
    assert "Unexpected error (RuntimeError: boom)" in explorer.message.value
