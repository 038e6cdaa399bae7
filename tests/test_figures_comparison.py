"""cnnviz.figures.comparison against its oracles: model_costs is cnnviz.summary of the untouched model,
pytorch_flops is torch's FlopCounterMode (2 per MAC), depth is the layer count in the model's name; the
chart has one marker per result, and its menus switch to the right precomputed values (also in chromium)."""
import html
import json
from pathlib import Path

import plotly
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cnnviz import accuracy, models, summary
from cnnviz.figures import comparison as cmp
from cnnviz.plot import as_html
from browser import chromium

# the models of the chart, and a few others (CIFAR, LeNet, the one-tower AlexNet)
CHART_RESULTS = [r for r in accuracy.imagenet_results() if r.single_model and r.crops in (1, 10, None)]
NAMES = sorted({r.model for r in CHART_RESULTS} | {"lenet5", "lenet5_1998", "alexnet", "nin", "resnet20",
                                                   "preact_resnet20", "densenet_bc_100"})


def _meta(name):
    with torch.device("meta"):
        return models.get(name)


@pytest.fixture(scope="module")
def costs():
    return cmp.model_costs(NAMES)


@pytest.fixture(scope="module")
def fig(costs):
    return cmp.accuracy_chart(CHART_RESULTS, costs, title="test")


# ----------------------------------------------------------------------------- costs

@pytest.mark.parametrize("name", NAMES)
def test_model_costs_are_the_summary_of_the_untouched_model(name, costs):
    s = summary(_meta(name), models.info(name).input_size)  # the registry's model, as built
    c = costs[name]
    assert (c.macs, c.activation_bytes) == (s.total_macs, s.activation_bytes)
    assert c.params == sum(row.params for row in s.rows)
    net = _meta(name)
    aux = [m for m in (getattr(net, k, None) for k in ("aux1", "aux2", "AuxLogits")) if m is not None]
    # the auxiliary classifiers (GoogLeNet's two, Inception-v3's one) only run in training
    assert c.params == s.total_params - sum(p.numel() for m in aux for p in m.parameters())
    assert bool(aux) == (name in ("googlenet", "inception_v3"))


def test_model_costs_at_another_input_size():
    c = cmp.model_costs(["resnet50_tv"], input_size=(3, 320, 320))["resnet50_tv"]
    s = summary(_meta("resnet50_tv"), (3, 320, 320))
    assert c == (s.total_params, s.total_macs, s.activation_bytes)
    assert c.params == cmp.model_costs("resnet50_tv")["resnet50_tv"].params  # a single name works too


def test_model_costs_are_cached_and_errors_are_not():
    first = cmp.model_costs(["vgg16"])
    assert cmp.model_costs(["vgg16"])["vgg16"] is first["vgg16"]
    with pytest.raises(ValueError):
        cmp.model_costs(["vgg16"], input_size=(3, 224))
    with pytest.raises(ValueError, match="no model"):
        cmp.model_costs(["vgg61"])


def test_building_on_meta_leaves_initialisation_alone():
    cmp.model_costs(["resnet18"])
    torch.manual_seed(0)
    layer = nn.Linear(4, 4)  # built after the meta models: initialised as usual
    assert layer.weight.abs().sum() > 0
    assert not torch.overrides._get_current_function_mode_stack()


@pytest.mark.parametrize("name", ["alexnet_tv", "vgg16", "googlenet", "resnet50", "densenet121", "lenet5"])
def test_pytorch_flops_are_twice_the_macs(name, costs):
    flops = cmp.pytorch_flops(name)
    assert flops == 2 * costs[name].macs
    net = _meta(name).eval()  # the oracle on the untouched model
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *models.info(name).input_size, device="meta"))
    assert counter.get_total_flops() == flops


def test_torchvision_documents_macs_as_gflops(costs):
    for name in ("alexnet_tv", "vgg16", "resnet50_tv", "densenet121"):
        assert costs[name].macs / 1e9 == pytest.approx(models.info(name).weights.meta["_ops"], abs=1e-3)


@pytest.mark.parametrize("name, path, total", [("lenet5", 5, 5), ("alexnet", 8, 8), ("vgg16", 16, 16),
                                               ("vgg19_bn", 19, 19), ("googlenet", 22, 58), ("resnet18", 18, 21),
                                               ("resnet50", 50, 54), ("resnet152", 152, 156),
                                               ("densenet121", 121, 121), ("densenet201", 201, 201),
                                               ("resnet20", 20, 20)])
def test_depth_counts_the_weight_layers_of_the_name(name, path, total):
    assert cmp.depth(name) == (path, total)


@pytest.mark.parametrize("name", ["alexnet_2gpu", "googlenet", "resnet50_tv", "densenet169", "nin"])
def test_depth_counts_every_convolution_and_linear_call(name):
    rows = summary(_meta(name), models.info(name).input_size).rows
    assert cmp.depth(name).weight_layers == sum(row.kind in ("Conv2d", "Linear") for row in rows)


def test_model_label():
    assert [cmp.model_label(n) for n in ("vgg16_bn", "resnet50_tv", "alexnet_2gpu", "zfnet_wide", "googlenet",
                                         "densenet264", "lenet5_1998", "preact_resnet20")] == [
        "VGG-16 BN", "ResNet-50 tv", "AlexNet", "ZFNet wide", "GoogLeNet", "DenseNet-264", "LeNet-5 (1998)",
        "preact_resnet20"]
    assert [cmp.model_label(n) for n in ("resnext50_32x4d", "mobilenet_v2", "squeezenet1_1")] == [
        "ResNeXt-50 32×4d", "MobileNet v2", "SqueezeNet 1.1"]


def test_every_family_has_a_legend_label():
    assert set(models.families()) - {"shapesnet"} <= set(cmp._FAMILY_LABELS)


# ----------------------------------------------------------------------------- the chart

def _data(fig):
    return [t for t in fig.data if t.meta is not None]


def test_one_marker_per_result(fig):
    data = _data(fig)
    assert sum(len(t.x) for t in data) == len(CHART_RESULTS)
    assert sorted(m for t in data for m in t.meta["models"]) == sorted(r.model for r in CHART_RESULTS)
    assert all(x is None for t in fig.data if t.meta is None for x in t.x)  # legend entries only
    assert list(fig.data[:len(data)]) == data  # data traces first: the menus address them by index


def test_markers_are_computed_costs_and_published_accuracies(fig, costs):
    for t in _data(fig):
        rs = [r for r in CHART_RESULTS if r.model in t.meta["models"] and cmp._origin(r) == t.meta["origin"]]
        assert [r.model for r in rs] == t.meta["models"]
        assert list(t.x) == [costs[r.model].macs / 1e9 for r in rs]
        assert list(t.y) == [r.top1 for r in rs]
        assert list(t.marker.size) == [costs[r.model].params for r in rs]  # area ∝ parameters
        assert all(models.info(m).family == t.meta["family"] for m in t.meta["models"])
        for r, hover in zip(rs, t.hovertext):
            assert html.escape(r.protocol[:30]) in hover and html.escape(r.where) in hover
            assert accuracy.source_label(r.source) in hover
            # a paper names its key in the book's bibliography; torchvision and Keras are named in full
            assert (f"[{r.source}]" in hover) == (r.source not in ("torchvision", "kerasapplications")), hover
        assert set(t.textposition) <= set(cmp._LABEL_PLACES)


def test_x_menu_switches_to_each_cost(fig, costs):
    data = _data(fig)
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == [v[0] for v in cmp.X_AXES.values()]
    for button, (key, (_, axis, value, note)) in zip(menu.buttons, cmp.X_AXES.items()):
        restyle, relayout, traces = button.args
        assert list(traces) == list(range(len(data)))
        for t, xs in zip(data, restyle["x"]):
            assert list(xs) == [value(costs[m]) for m in t.meta["models"]]
        assert relayout["xaxis.title.text"] == axis and relayout["annotations[0].text"] == note
        assert len(restyle["textposition"]) == len(data)
        assert min(relayout["xaxis.tickvals"]) <= min(min(xs) for xs in restyle["x"])
    xs = [b.args[0]["x"] for b in menu.buttons]
    assert len({json.dumps(x) for x in xs}) == len(xs)  # each option moves the markers


def test_y_menu_switches_between_top1_and_top5(fig):
    data = _data(fig)
    menu = fig.layout.updatemenus[1]
    tops = {}
    for button, key in zip(menu.buttons, cmp.Y_AXES):
        ys = button.args[0]["y"]
        tops[key] = ys
        for t, y in zip(data, ys):
            rs = [r for r in CHART_RESULTS if r.model in t.meta["models"] and cmp._origin(r) == t.meta["origin"]]
            assert list(y) == [getattr(r, key) for r in rs]
    k = next(k for k, t in enumerate(data) if "googlenet" in t.meta["models"])
    points = [i for i, m in enumerate(data[k].meta["models"]) if m == "googlenet"]   # its trace has Inception too
    assert points and all(tops["top1"][k][i] is None for i in points) and all(tops["top5"][k][i] for i in points)


def test_show_menu_filters_by_origin(fig):
    data = _data(fig)
    menu = fig.layout.updatemenus[2]
    for button, (label, origins) in zip(menu.buttons, cmp.SHOW.values()):
        assert button.label == label
        assert list(button.args[0]["visible"]) == [t.meta["origin"] in origins for t in data]
    assert all(t.visible in (None, True) for t in data)  # everything shown at first


def test_legend_has_one_entry_per_family_and_crop_symbol(fig):
    legend = [t for t in fig.data if t.meta is None]
    families = {t.meta["family"] for t in _data(fig)}
    assert {t.legendgroup for t in legend} == families | {"crops"}
    assert all(t.showlegend is False for t in _data(fig))


def test_chart_rejects_ensembles_and_missing_costs(costs):
    ensemble = [r for r in accuracy.imagenet_results() if not r.single_model]
    with pytest.raises(ValueError, match="ensemble"):
        cmp.accuracy_chart(CHART_RESULTS + ensemble[:1], costs)
    with pytest.raises(ValueError, match="vgg16"):
        cmp.accuracy_chart(CHART_RESULTS, {k: v for k, v in costs.items() if k != "vgg16"})
    with pytest.raises(ValueError):
        cmp.accuracy_chart([], costs)


def test_chart_is_small_enough_for_a_book_page(fig):
    assert len(as_html(fig)) < 200_000


# ----------------------------------------------------------------------------- in a real browser

_STATE = """(gd) => JSON.stringify({x: gd._fullData.map(t => t.x), y: gd._fullData.map(t => t.y),
    visible: gd._fullData.map(t => t.visible), notes: gd._fullLayout.annotations.map(a => a.text),
    xtitle: gd._fullLayout.xaxis.title.text})"""


@pytest.mark.browser
def test_menus_work_in_chromium_with_no_kernel(tmp_path, fig):
    (tmp_path / "plotly.min.js").write_bytes((Path(plotly.__file__).parent / "package_data" / "plotly.min.js")
                                             .read_bytes())
    (tmp_path / "page.html").write_text("<html><head><meta charset='utf-8'><script src='plotly.min.js'></script>"
                                        "</head><body>" + as_html(fig) + "</body></html>", encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "page.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('div.js-plotly-plot').length == 1")
        gd = page.locator("div.js-plotly-plot").first
        state = lambda: json.loads(gd.evaluate(_STATE))  # noqa: E731
        before = state()
        for k, label in ((0, cmp.X_AXES["params"][0]), (1, cmp.Y_AXES["top5"][0]), (2, cmp.SHOW["paper"][0])):
            gd.locator(".updatemenu-header-group").nth(k).click()
            gd.locator(".updatemenu-item-text", has_text=label).click()
            page.wait_for_timeout(400)
            after = state()
            assert after != before, f"menu {k} changed nothing"
            before = after
        assert after["xtitle"] == cmp.X_AXES["params"][1]
        assert after["notes"][:2] == [cmp.X_AXES["params"][3], cmp.Y_AXES["top5"][3]]
        data = _data(fig)
        assert after["visible"][:len(data)] == [t.meta["origin"] == "paper" for t in data]
        assert errors == []


@pytest.mark.browser
def test_legend_and_notes_do_not_overlap_on_a_book_page(tmp_path, fig):
    """On a 700 px page (the book's column), the legend of every family and crop symbol ends above the notes."""
    (tmp_path / "plotly.min.js").write_bytes((Path(plotly.__file__).parent / "package_data" / "plotly.min.js")
                                             .read_bytes())
    (tmp_path / "page.html").write_text("<html><head><meta charset='utf-8'><script src='plotly.min.js'></script>"
                                        "</head><body><div style='width:700px'>" + as_html(fig) + "</div></body></html>",
                                        encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 1200})
        page.goto((tmp_path / "page.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('div.js-plotly-plot .legend').length == 1")
        boxes = page.evaluate("""() => {
            const r = e => e.getBoundingClientRect();
            return {legend: r(document.querySelector('.legend')),
                    notes: [...document.querySelectorAll('.annotation')].map(a => r(a)),
                    plot: r(document.querySelector('.js-plotly-plot'))}; }""")
        assert boxes["notes"], "no notes drawn"
        first_note = min(n["top"] for n in boxes["notes"])
        assert boxes["legend"]["bottom"] <= first_note + 1, boxes
        assert max(n["bottom"] for n in boxes["notes"]) <= boxes["plot"]["bottom"] + 1    # nothing cut off


def test_each_family_on_the_chart_has_its_own_colour(fig):
    """Families without a result (LeNet, NiN, FractalNet, ShapesNet) take no colour, so the ones shown never share."""
    colours = {}
    for t in fig.data:
        meta = t.meta or {}
        if "family" in meta:
            colours.setdefault(meta["family"], set()).add(t.marker.color)
    assert all(len(c) == 1 for c in colours.values())
    shown = {f: c.pop() for f, c in colours.items()}
    assert len(set(shown.values())) == len(shown) >= 10, shown
