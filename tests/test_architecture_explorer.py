"""ArchitectureExplorer driven from Python: set the controls, check the diagram, table and messages
against ``cnnviz.summary`` and ``figures.architecture``.

tests/test_ipywidgets7.py runs this file again under ipywidgets 7 (Colab's);
tests/test_lab_browser.py drives the instructor's notebook in JupyterLab.
"""
import html
import re

import pytest
import torch

import cnnviz.widgets.architecture_explorer as ae
from cnnviz import models, summary
from cnnviz.figures.architecture import architecture_svg, diagram_units, human, unit_label
from cnnviz.summaries import InputTooSmall
from cnnviz.widgets import ArchitectureExplorer


def reference(name, side=None):
    """The oracle: the summary and units built here, independently of the explorer's cache."""
    spec = models.info(name)
    side = spec.input_size[1] if side is None else side
    with torch.device("meta"):
        model = models.get(name)
    s = summary(model, (spec.input_size[0], side, side))
    return s, diagram_units(s)


def text(widget) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", widget.value.replace("<br>", " "))).split())


def assert_consistent(e):
    """What every settled view satisfies: diagram, slider, details and table describe the same block."""
    shown = e.shown
    s, units = reference(shown["model"], shown["input_size"])
    assert e.summary == s and list(e.units) == units
    k = shown["unit"]
    assert e.unit.value == k and e.unit.max == len(units) - 1
    expected = architecture_svg(units, size_by=shown["size_by"], highlight=k, input_size=shown["input_size"],
                                height=ae.DIAGRAM_HEIGHT, width=e._svg_width,
                                title=f"{shown['model']} on a {s.input_size[0]}×{shown['input_size']}×"
                                      f"{shown['input_size']} input: {len(units)} blocks")
    assert e.diagram.value == expected
    assert units[k].name in e.details.value
    assert e.table.value.count("<tr") == len(units) + 2  # header, one row per block, totals
    assert e.table.value.count("cnnviz-chosen") == 1
    assert "Traceback" not in e.message.value + e.details.value + e.table.value


@pytest.fixture
def explorer():
    return ArchitectureExplorer(threaded=False)


# ----------------------------------------------------------------------------- initial state

def test_initial_state(explorer):
    assert explorer.shown == dict(model="vgg16", input_size=224, size_by="activations", unit=18)
    assert explorer.model.value == "vgg16" and explorer.size.value == 224
    assert explorer.message.value == "" and explorer.last_error is None
    assert_consistent(explorer)
    # the default block: the last one with a receptive field (VGG-16's adaptive pool, 212 px)
    assert explorer.units[18].kind == "AdaptiveAvgPool2d"
    assert "receptive field <b>212 px</b> of the 224×224 image" in explorer.details.value


def test_model_menu_lists_the_zoo_by_family(explorer):
    options = dict(explorer.model.options)
    assert list(options.values()) == models.available()
    assert options["VGG: vgg16"] == "vgg16" and options["GoogLeNet: googlenet"] == "googlenet"


def test_table_totals_are_the_summarys(explorer):
    s = explorer.summary
    foot = explorer.table.value.split("<tfoot>")[1]
    assert f"{s.total_params:,}" in foot and f"{s.total_macs:,}" in foot and f"{s.total_activations:,}" in foot
    assert s.total_params == 138_357_544  # VGG-16 (Simonyan & Zisserman), as torchvision counts it
    totals = text(explorer.totals)
    assert "138 M parameters (553.4 MB)" in totals and "15.5 G MACs" in totals
    assert f"{s.activation_bytes / 1e6:,.1f} MB per image" in totals
    for u in explorer.units:  # every block's row, with the summary's numbers (exact ones on hover)
        assert f'{unit_label(u)} <span class="cnnviz-name">{u.name}</span>' in explorer.table.value
        assert f'<span title="{u.macs:,}">{human(u.macs)}</span>' in explorer.table.value


# ----------------------------------------------------------------------------- controls

@pytest.mark.parametrize("name", ["alexnet", "googlenet", "resnet50", "densenet121", "resnet20", "lenet5"])
def test_choosing_a_model(explorer, name):
    before = explorer.diagram.value
    explorer.model.value = name
    default = models.info(name).input_size[1]
    assert explorer.size.value == default  # a new model starts at its paper's input size
    assert explorer.shown["model"] == name and explorer.shown["input_size"] == default
    assert explorer.diagram.value != before
    assert_consistent(explorer)


def test_input_size(explorer):
    explorer.model.value = "resnet50"
    explorer.size.value = 448
    assert explorer.shown["input_size"] == 448
    s, _ = reference("resnet50", 448)
    fc = 2048 * 1000  # the classifier costs the same at any size; every convolution costs 4× at twice the side
    assert explorer.summary.total_macs - fc == s.total_macs - fc == 4 * (reference("resnet50")[0].total_macs - fc)
    assert_consistent(explorer)
    explorer.default.click()
    assert explorer.size.value == 224 and explorer.shown["input_size"] == 224


def test_size_by_changes_the_diagram_only(explorer):
    before = (explorer.diagram.value, explorer.table.value, explorer.summary)
    for value in ("params", "macs", "activations"):
        explorer.size_by.value = value
        assert explorer.shown["size_by"] == value
        assert_consistent(explorer)
    explorer.size_by.value = "params"
    assert explorer.diagram.value != before[0] and "√parameters" in explorer.diagram.value
    assert explorer.table.value == before[1] and explorer.summary is before[2]


def test_block_slider_moves_the_highlight_and_the_receptive_field(explorer):
    fields = []
    for k in (0, 1, 7, 12, 21):
        explorer.unit.value = k
        assert explorer.shown["unit"] == k
        assert_consistent(explorer)
        fields.append(explorer.units[k].receptive_field)
    assert fields == [3, 5, 32, 92, None]  # conv1_1, conv1_2, conv3_2, conv4_3, fc8 (chapter 3's recurrence)
    assert "fully connected layer sees the <b>whole image</b>" in explorer.details.value
    explorer.unit.value = 7
    assert "receptive field <b>32 px</b>" in explorer.details.value and "jump <b>4 px</b>" in explorer.details.value
    assert "receptive field 32×32 px, jump 4" in explorer.diagram.value


def test_a_field_larger_than_the_image_is_said(explorer):
    explorer.model.value = "resnet152"
    assert explorer.units[explorer.unit.value].receptive_field > 224
    assert "larger than the image" in explorer.details.value


def test_set_changes_several_at_once(explorer):
    explorer.set(model="googlenet", size_by="macs", unit=5)
    assert explorer.shown == dict(model="googlenet", input_size=224, size_by="macs", unit=5)
    assert explorer.units[5].name == "inception3a"
    assert_consistent(explorer)
    explorer.set(input_size=320)
    assert explorer.shown == dict(model="googlenet", input_size=320, size_by="macs", unit=5)


# ----------------------------------------------------------------------------- errors keep the last view

def test_too_small_input_shows_the_sentence_and_keeps_the_view(explorer):
    explorer.model.value = "alexnet"
    before = (explorer.diagram.value, explorer.table.value, explorer.shown)
    explorer.size.value = 32
    message = text(explorer.message)
    assert "too small" in message and "features.pool2" in message and "67×67" in message
    assert "The diagram still shows alexnet at 227×227." in message
    assert "Traceback" not in explorer.message.value and isinstance(explorer.last_error, InputTooSmall)
    assert (explorer.diagram.value, explorer.table.value, explorer.shown) == before
    # the block slider and the height buttons still work on the last good view
    explorer.unit.value = 2
    assert explorer.shown["unit"] == 2 and explorer.shown["input_size"] == 227
    assert "too small" in text(explorer.message)
    explorer.size.value = 227  # a good size clears the message
    assert explorer.message.value == "" and explorer.last_error is None
    assert_consistent(explorer)


def test_a_fixed_size_classifier_is_explained(explorer):
    explorer.model.value = "alexnet"
    explorer.size.value = 100
    message = text(explorer.message)
    assert "A 3×100×100 input does not fit this model" in message and "classifier.fc6" in message
    assert "3×227×227" in message
    assert "Unexpected" not in message and explorer.shown["input_size"] == 227


@pytest.mark.parametrize("side", [0, 7, 5000])
def test_sizes_outside_the_range_are_refused(explorer, side):
    explorer.size.value = side
    assert f"between {ae.MIN_INPUT} and {ae.MAX_INPUT} pixels" in text(explorer.message)
    assert explorer.shown["input_size"] == 224


def test_constructor_checks_its_arguments():
    with pytest.raises(ValueError, match="no model called 'vgg17'.*vgg16"):
        ArchitectureExplorer("vgg17", threaded=False)
    with pytest.raises(InputTooSmall, match="67×67"):
        ArchitectureExplorer("alexnet", 32, threaded=False)
    with pytest.raises(ValueError, match="size_by"):
        ArchitectureExplorer(size_by="flops", threaded=False)
    e = ArchitectureExplorer("resnet20", 64, size_by="params", threaded=False)
    assert e.shown["input_size"] == 64 and e.shown["size_by"] == "params"


def test_unexpected_errors_become_a_sentence(monkeypatch, explorer):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ae, "architecture_svg", broken)
    explorer.unit.value = 3
    assert "Unexpected error (RuntimeError: boom)" in explorer.message.value


# ----------------------------------------------------------------------------- cache and threads

def test_summaries_are_cached_per_model_and_size(monkeypatch):
    calls = []
    real = ae.diagram_units

    def counting(s, *args, **kwargs):
        calls.append(s.input_size)
        return real(s, *args, **kwargs)

    monkeypatch.setattr(ae, "diagram_units", counting)
    ae._CACHE.clear()
    e = ArchitectureExplorer("resnet18", threaded=False)
    for value in ("params", "macs", "activations"):
        e.size_by.value = value
    for k in range(5):
        e.unit.value = k
    e.size.value = 160
    e.size.value = 224
    e.model.value = "vgg11"
    e.model.value = "resnet18"
    assert calls == [(3, 224, 224), (3, 160, 160), (3, 224, 224)]  # resnet18 at 224, 160; vgg11 at 224
    ae._CACHE.clear()
    with pytest.raises(InputTooSmall):
        ae.analyse("alexnet", 32)
    with pytest.raises(InputTooSmall):  # remembered: no second search for the smallest size
        ae.analyse("alexnet", 32)
    assert isinstance(ae._CACHE[("alexnet", 32)], InputTooSmall)


def test_threaded_rapid_changes_render_the_last_request():
    e = ArchitectureExplorer("vgg11")  # threaded (the default)
    assert e.wait()
    for name in ("alexnet", "resnet34", "googlenet", "vgg13", "resnet18"):
        e.model.value = name
    for k in range(12):
        e.unit.value = k % 8
    e.size_by.value = "macs"
    assert e.wait()
    assert e.shown == dict(model="resnet18", input_size=224, size_by="macs", unit=3)
    assert_consistent(e)
