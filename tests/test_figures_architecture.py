"""cnnviz.figures.architecture: which blocks a diagram draws, what the SVG and the plotly twins contain.

The oracles: ``cnnviz.summary`` (every number of a block is its row),
``cnnviz.models.googlenet.inception_cost`` and the lecture's Inception example
(854 M MACs and 672 maps naive, 271 M and 480 maps with 64-wide bottlenecks),
and GoogLeNet's Table 1 widths. One browser test drives the static twins in
Debian's chromium (no kernel): the slider and the menu change the picture.
"""
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import plotly
import pytest
import torch

from cnnviz import figures, models, summary
from cnnviz.figures import architecture as fa
from cnnviz.layers import conv_macs
from cnnviz.models.googlenet import INCEPTION_WIDTHS, inception_cost
from cnnviz.plot import as_html
from browser import chromium

SVG = "{http://www.w3.org/2000/svg}"


def summarise(name, side=None):
    spec = models.info(name)
    with torch.device("meta"):
        model = models.get(name)
    size = spec.input_size if side is None else (spec.input_size[0], side, side)
    return summary(model, size)


@pytest.fixture(scope="module")
def vgg16():
    return summarise("vgg16")


# ----------------------------------------------------------------------------- diagram_units

def test_vgg16_keeps_every_layer_that_computes(vgg16):
    units = fa.diagram_units(vgg16)
    kinds = [u.kind for u in units]
    assert kinds.count("Conv2d") == 13 and kinds.count("MaxPool2d") == 5 and kinds.count("Linear") == 3
    assert not set(kinds) & fa.ELEMENTWISE
    rows = {r.name: r for r in vgg16.rows}
    for u in units:  # every block is the summary's own row
        assert rows[u.name] == u
    assert [fa.unit_label(u) for u in units][:3] == ["conv 64", "conv 64", "max pool"]
    assert fa.unit_label(units[-1]) == "fc 1000"


@pytest.mark.parametrize("name, kind, count", [
    ("googlenet", "Inception", 9), ("resnet50", "BottleneckV1", 16), ("resnet50_tv", "Bottleneck", 16),
    ("resnet18", "BasicBlock", 8),
    ("resnet152", "BottleneckV1", 50), ("densenet121", "_DenseBlock", 4), ("resnet20", "BasicBlockCifar", 9)])
def test_modules_with_parallel_paths_stay_one_block(name, kind, count):
    """Branches that run side by side (Inception), shortcuts (residual blocks) and concatenations
    (dense blocks) are never drawn as a sequence of their parts."""
    s = summarise(name)
    units = fa.diagram_units(s)
    assert [u.kind for u in units].count(kind) == count
    assert not any(".branch" in u.name or ".downsample" in u.name or ".denselayer" in u.name for u in units)
    groups = {r.name: r for d in (1, 2, 3) for r in s.group(d).rows}
    for u in units:
        if u.kind == kind:  # the block's numbers are its group's: totals over all its layers
            assert groups[u.name] == u


def test_chains_are_opened_and_wrappers_show_what_they_wrap():
    units = fa.diagram_units(summarise("googlenet"))
    labels = [fa.unit_label(u) for u in units]
    assert labels[:5] == ["conv 64", "max pool", "conv 64", "conv 192", "max pool"]  # conv1 = conv + ReLU
    assert [u.name for u in units if u.kind == "Inception"] == list(INCEPTION_WIDTHS)
    plain = fa.diagram_units(summarise("plain20"))  # no shortcuts: its blocks are plain chains of convolutions
    assert [u.kind for u in plain].count("Conv2d") == 19


def test_max_units_limits_the_detail():
    s = summarise("resnet152")
    assert len(fa.diagram_units(s)) == 54  # stem, 50 blocks, pool, fc
    coarse = fa.diagram_units(s, max_units=20)
    assert [u.name for u in coarse if u.name.startswith("layer")] == ["layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("name", models.available())
def test_every_model_has_a_diagram(name):
    s = summarise(name)
    units = fa.diagram_units(s)
    assert 1 <= len(units) <= 64
    assert sum(u.macs for u in units) == s.total_macs  # elementwise layers have no MACs: nothing is lost
    svg = fa.architecture_svg(units, input_size=s.input_size[1], highlight=len(units) - 1)
    ET.fromstring(svg)  # well-formed


# ----------------------------------------------------------------------------- architecture_svg

def _blocks(svg):
    root = ET.fromstring(svg)
    return [g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")]


def test_svg_heights_follow_the_chosen_quantity(vgg16):
    units = fa.diagram_units(vgg16)
    for size_by in ("activations", "params", "macs"):
        svg = fa.architecture_svg(units, size_by=size_by)
        heights = [float(r.get("height")) for r in _blocks(svg)]
        values = [fa._metric(u, size_by) for u in units]
        top = max(range(len(units)), key=values.__getitem__)
        assert heights[top] == max(heights)
        for h, v in zip(heights, values):  # area-honest: height ∝ √value (2 px stubs for zeros)
            if v > 0 and h > 2:
                assert h == pytest.approx(heights[top] * (v / values[top]) ** 0.5, rel=1e-2, abs=0.06)
    assert fa.architecture_svg(units, size_by="params") != fa.architecture_svg(units, size_by="macs")


def test_block_svg_labels_layers_and_shares_a_scale():
    """Oracle: the block's own modules (kernel, channels, groups) and its summary (every block's height ∝ √params,
    on the common ``peak``)."""
    with torch.device("meta"):
        plain = models.get("resnet50_tv").layer1[1]
        grouped = models.get("resnext50_32x4d").layer1[1]
        gated = models.get("se_resnet50").layer1[1]
    assert fa.layer_label(grouped.conv2) == "3×3 conv, 128, 32 groups"
    assert fa.layer_label(plain.conv3) == "1×1 conv, 256"
    assert fa.layer_label(gated.se) == "SE gate" and fa.layer_label(torch.nn.ReLU()) == "ReLU"
    peak = 4 * plain.conv2.weight.numel()
    heights = {}
    for name, block in (("plain", plain), ("grouped", grouped), ("gated", gated)):
        svg = fa.block_svg(block, (256, 56, 56), peak=peak, title=name)
        texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
        heights[name] = [float(r.get("height")) for r in _blocks(svg)]
        assert "receptive field" not in texts
        units = fa.diagram_units(summary(block, (256, 56, 56)))
        expected = [fa.layer_label(block.get_submodule(u.name)) for u in units]
        assert [t for t in texts if t in expected] == expected and ("SE gate" in expected) == (name == "gated")
        for h, u in zip(heights[name], units):
            assert h == pytest.approx(heights["plain"][1] * (u.params / plain.conv2.weight.numel()) ** 0.5, rel=1e-2)
    assert len(heights["gated"]) == 4 and heights["grouped"][1] < heights["plain"][1]
    with pytest.raises(ValueError, match="at least the largest unit"):
        fa.block_svg(plain, (256, 56, 56), peak=plain.conv2.weight.numel() - 1)
    with pytest.raises(ValueError, match="one label per unit"):
        fa.architecture_svg(fa.diagram_units(summary(plain, (256, 56, 56))), labels=["a"])


def test_svg_highlight_receptive_field_and_colours(vgg16):
    units = fa.diagram_units(vgg16)
    k = 7  # conv3_2: receptive field 32, jump 4
    svg = fa.architecture_svg(units, highlight=k, input_size=224, title="VGG-16")
    rects = _blocks(svg)
    assert rects[k].get("stroke") == "#111" and all(r.get("stroke") is None for i, r in enumerate(rects) if i != k)
    assert [r.get("fill") for r in rects] == [fa.kind_colour(u.kind) for u in units]
    assert "receptive field 32×32 px, jump 4" in svg and "image side 224 px" in svg
    assert "212 px" in svg  # the last convolution's field, labelled on the track
    circles = ET.fromstring(svg).findall(f".//{SVG}circle")
    assert len(circles) == sum(u.receptive_field is not None for u in units)
    assert "VGG-16" in svg and "224×224" in svg and "7×7" in svg  # the title and the resolution bands


def test_svg_refuses_bad_arguments(vgg16):
    units = fa.diagram_units(vgg16)
    with pytest.raises(ValueError, match="size_by"):
        fa.architecture_svg(units, size_by="flops")
    with pytest.raises(ValueError, match="no layers"):
        fa.architecture_svg([])
    with pytest.raises(ValueError, match="highlight"):
        fa.architecture_svg(units, highlight=len(units))


def test_human():
    assert [fa.human(n) for n in (96, 13_300, 61_100_000, 1_140_000_000, 138_357_544)] == [
        "96", "13.3 K", "61.1 M", "1.14 G", "138 M"]


# ----------------------------------------------------------------------------- architecture_figure

def test_architecture_figure_menu_switches_models(vgg16):
    resnet = summarise("resnet18")
    units = {"VGG-16": fa.diagram_units(vgg16), "ResNet-18": fa.diagram_units(resnet)}
    fig = fa.architecture_figure(units, title="two models", notes={"VGG-16": "138 M", "ResNet-18": "11.7 M"},
                                 input_sizes={"VGG-16": 224, "ResNet-18": 224})
    assert len(fig.data) == 8 and [t.visible for t in fig.data] == [True] * 4 + [False] * 4
    bars = fig.data[:3]
    assert list(bars[0].y) == [u.activations for u in units["VGG-16"]]
    assert list(bars[1].y) == [u.params for u in units["VGG-16"]]
    assert list(bars[2].y) == [u.macs for u in units["VGG-16"]]
    assert list(fig.data[3].y)[:3] == [3, 5, 6]  # receptive fields of conv1_1, conv1_2, pool1
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["VGG-16", "ResNet-18"]
    assert buttons[1].args[0]["visible"] == [False] * 4 + [True] * 4
    assert "11.7 M" in buttons[1].args[1].values() and fig.layout.shapes[0].y0 == 224
    assert buttons[1].args[1]["xaxis4.ticktext"][0] == "conv 64"


# ----------------------------------------------------------------------------- Inception costs

def test_inception_presets_are_table_1():
    presets = fa.inception_presets()
    assert list(presets) == list(INCEPTION_WIDTHS)
    assert [p["size"] for p in presets.values()] == [28, 28, 14, 14, 14, 14, 14, 7, 7]
    names = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
    for name, p in presets.items():
        assert tuple(p[k] for k in names) == INCEPTION_WIDTHS[name]


@pytest.mark.parametrize("widths", [(None, None, None), (64, 64, 64), (96, None, 32), (None, 16, None)])
def test_inception_branches_add_up_to_inception_cost(widths):
    r3, r5, proj = widths
    layers = fa.inception_branches(256, 28, 128, r3, 192, r5, 96, proj)
    cost = inception_cost(256, 28, 28, 128, r3, 192, r5, 96, proj)
    for key, stack in layers.items():
        assert sum(layer[3] for layer in stack) == cost.branches[key].macs
        assert sum(layer[4] for layer in stack) == cost.branches[key].params
    assert len(layers["branch2"]) == (1 if r3 is None else 2)
    assert layers["branch4"][0][:3] == ("pool", "3×3 max pool", 256)


def test_inception_svg_shows_the_lecture_example():
    svg = fa.inception_cost_svg(256, 28, 128, 64, 192, 64, 96, 64)
    ET.fromstring(svg)
    assert "854 M MACs" in svg and "output depth 672" in svg  # naive
    assert "271 M MACs" in svg and "output depth 480" in svg  # with bottlenecks
    assert "concatenation 28×28×672" in svg and "concatenation 28×28×480" in svg
    assert f"{fa.human(conv_macs(64, 28, 28, 192, 3, p=1))} MACs" in svg  # the 3×3 after its reduction: 86.7 M
    assert "this module (also naive)" in fa.inception_cost_svg(256, 28, 128, None, 192, None, 96, None)


def _annotation(fig):
    return fig.layout.annotations[-1].text


def test_inception_cost_figure_defaults_are_the_lecture_example():
    fig = figures.inception_cost_figure()
    text = _annotation(fig)
    assert "naive: <b>854 M</b> MACs" in text and "output depth <b>672</b>" in text
    assert "with bottlenecks: <b>271 M</b> MACs (32%)" in text and "output depth <b>480</b>" in text
    visible = [t for t in fig.data if t.visible]
    assert [t.name for t in visible] == ["naive", "naive", "with 1×1 bottlenecks", "with 1×1 bottlenecks"]
    naive = inception_cost(256, 28, 28, 128, None, 192, None, 96, None)
    slim = inception_cost(256, 28, 28, 128, 64, 192, 64, 96, 64)
    keys = ("branch1", "branch2", "branch3", "branch4")
    assert list(visible[0].y) == [naive.branches[k].macs for k in keys]
    assert list(visible[2].y) == [slim.branches[k].macs for k in keys]
    assert list(visible[3].y) == [slim.branches[k].params for k in keys]
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["16", "32", "48", "64", "96", "128", "192"]
    assert slider.active == 3 and slider.visible is not False


def test_inception_cost_figure_slider_steps_change_the_picture():
    fig = figures.inception_cost_figure(googlenet=False)
    steps = fig.layout.sliders[0].steps
    seen = set()
    for r, step in zip((16, 32, 48, 64, 96, 128, 192), steps):
        visible = step.args[0]["visible"]
        shown = [t for t, v in zip(fig.data, visible) if v]
        cost = inception_cost(256, 28, 28, 128, r, 192, r, 96, 64)
        assert shown[2].y[1] == cost.branches["branch2"].macs
        text = next(v for k, v in step.args[1].items() if k.startswith("annotations"))
        assert f"<b>{fa.human(cost.total.macs)}</b> MACs" in text
        seen.add(tuple(visible))
    assert len(seen) == len(steps) and not fig.layout.updatemenus


def test_inception_cost_figure_menu_has_googlenets_modules():
    fig = figures.inception_cost_figure()
    menu = fig.layout.updatemenus[0].buttons
    assert len(menu) == 10 and menu[1].label.startswith("GoogLeNet inception3a: 28×28×192")
    assert len(fig.layout.sliders) == 10 and [s.visible for s in fig.layout.sliders][:2] == [True, False]
    five_b = fig.layout.sliders[9]
    assert five_b.steps[-1].label == "Table 1" and five_b.active == len(five_b.steps) - 1
    text = next(v for k, v in five_b.steps[-1].args[1].items() if k.startswith("annotations"))
    assert "reductions 192 and 48" in text  # Table 1's #3×3 reduce and #5×5 reduce of 5b
    cost = inception_cost(*INCEPTION_WIDTHS["inception5b"][:1], 7, 7, *INCEPTION_WIDTHS["inception5b"][1:])
    assert f"<b>{fa.human(cost.total.macs)}</b> MACs" in text and f"<b>{cost.out_channels}</b>" in text


def test_inception_cost_figure_refuses_bad_reductions():
    with pytest.raises(ValueError, match="reductions"):
        figures.inception_cost_figure(reductions=())


# ----------------------------------------------------------------------------- in a browser, no kernel

@pytest.mark.browser
def test_static_twins_respond_in_a_browser(tmp_path):
    """Both twins in chromium with the local plotly.js: the menu and the slider change what is drawn."""
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    arch = fa.architecture_figure({n: fa.diagram_units(summarise(n)) for n in ("vgg16", "resnet50")},
                                  title="architectures", input_sizes={"vgg16": 224, "resnet50": 224})
    page_html = (f"<html><head><script src='{js.as_uri()}'></script></head><body>"
                 f"{as_html(figures.inception_cost_figure())}{as_html(arch)}</body></html>")
    (tmp_path / "twins.html").write_text(page_html, encoding="utf-8")
    state = ("(gd) => JSON.stringify([gd._fullData.map(t => t.visible), "
             "(gd.layout.annotations || []).map(a => a.text), gd.layout.shapes])")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "twins.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('div.js-plotly-plot').length == 2")
        inception, architecture = page.locator("div.js-plotly-plot").nth(0), page.locator("div.js-plotly-plot").nth(1)
        before = inception.evaluate(state)
        rail = inception.locator(".slider-rail-rect").first
        box = rail.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.02, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
        after = inception.evaluate(state)
        assert after != before
        assert re.search(r"r = |reductions 16 and 16", after)
        inception.locator(".updatemenu-header-group").first.click()
        inception.locator(".updatemenu-dropdown-button").last.click()
        page.wait_for_timeout(300)
        assert "inception5b" in inception.evaluate(state)
        assert len([r for r in inception.locator(".slider-rail-rect").all() if r.is_visible()]) == 1
        before = architecture.evaluate(state)
        architecture.locator(".updatemenu-header-group").first.click()
        architecture.locator(".updatemenu-dropdown-button").last.click()
        page.wait_for_timeout(300)
        assert architecture.evaluate(state) != before
        inception.screenshot(path="/tmp/cnnviz_inception_cost_figure.png")
        architecture.screenshot(path="/tmp/cnnviz_architecture_figure.png")
    assert errors == []
