"""SignalFlowExplorer and chapter 9's figures: set the controls, check the picture and numbers against
cnnviz.signal_flow; bad settings are sentences; clicking a map cell shows that cell's network."""
import math
import re

import numpy as np
import pytest
import torch

from cnnviz.figures.initialisation import (batch_dependence_figure, norm_axes_figure, signal_flow_figure,
                                           signal_flow_svg, std_by_layer_figure, trainability_figure)
from cnnviz.initialisation import InitError, initialisable_layers, initialise_
from cnnviz.normalisation import NORMS, batch_dependence, norm_axes
from cnnviz.signal_flow import LOG_EDGES, deep_mlp, deep_mlp_weight_shapes, digits_batch, flow_grid, signal_flow
from cnnviz.trainability import MapConfig, trainability_map

widgets_mod = pytest.importorskip("cnnviz.widgets")
SignalFlowExplorer = widgets_mod.SignalFlowExplorer

TINY_MAP = MapConfig(sigmas=(0.05, 0.4, 3.0), lrs=(0.01, 0.1), depth=3, width=8, epochs=1, batch_size=64)


def _explorer(**kw):
    kw.setdefault("trainability", False)
    return SignalFlowExplorer(threaded=False, depth=kw.pop("depth", 12), width=kw.pop("width", 64), **kw)


def test_the_picture_is_the_signal_flow_of_the_controls():
    w = _explorer(scheme="normal", sigma=0.01, activation="tanh")
    x, y = digits_batch(256)
    ref = signal_flow(initialise_(deep_mlp(12, 64, activation="tanh"), "normal", activation="tanh", sigma=0.01,
                                  seed=0), x, y)
    assert [s.std for s in w.flow.activations] == pytest.approx([s.std for s in ref.activations], rel=1e-5)
    assert w.picture.value.startswith("<svg") and "data:image/png;base64," in w.picture.value
    assert f"{ref.activations[-1].std:.3g}" in w.numbers.value


def test_changing_a_control_updates_the_picture_and_numbers():
    w = _explorer()
    he = w.flow.activations[-1].std
    w.scheme.value = "normal"  # σ = 0.01 by default: the ReLU signal shrinks
    assert w.flow.activations[-1].std < he / 100
    assert w.sigma.layout.display is None and w.value.layout.display == "none"
    w.batch_norm.value = True
    assert 0.3 < w.flow.activations[-1].std < 1.0     # batch norm rescales every layer: ReLU of N(0, 1)
    before = w.picture.value
    w.depth.value = 5
    assert len(w.flow.activations) == 5 and w.picture.value != before


def test_an_exploding_network_says_where_it_diverged():
    w = _explorer(scheme="normal", sigma=1.0, depth=50, width=256)
    assert w.flow.diverged_at is not None
    assert f"Diverged at layer {w.flow.diverged_at}" in w.numbers.value
    assert "no gradients" in w.picture.value and "nan" not in w.numbers.value.lower()


@pytest.mark.parametrize("settings, words", [
    (dict(sigma=0.0), "finite number above 0"), (dict(sigma=-1.0), "finite number above 0"),
    (dict(sigma=math.nan), "finite number above 0"), (dict(sigma=math.inf), "finite number above 0"),
    (dict(depth=0), "from 1 to 50"), (dict(depth=10_000), "from 1 to 50"),
    (dict(scheme="glorot"), "Unknown initialisation scheme"), (dict(activation="swish"), "Unknown activation"),
    (dict(lr=0.0), "learning rate must be"), (dict(lr=-0.1), "learning rate must be"),
    (dict(width=3), "width must be one of"), (dict(colour="red"), "Unknown setting"),
])
def test_bad_settings_are_sentences_and_the_last_picture_stays(settings, words):
    w = _explorer()
    picture, flow = w.picture.value, w.flow
    w.set(**settings)
    assert words in w.message.value and "Traceback" not in w.message.value
    assert w.picture.value == picture and w.flow is flow
    w.set(depth=6)                    # a good setting clears the message
    assert w.message.value == "" and len(w.flow.activations) == 6


def test_bad_constructor_arguments_are_a_sentence():
    with pytest.raises(InitError, match="finite number above 0"):
        SignalFlowExplorer(sigma=-2.0, threaded=False, trainability=False)
    with pytest.raises(InitError, match="from 1 to 50"):
        SignalFlowExplorer(depth=0, threaded=False, trainability=False)


def test_clicking_a_map_cell_shows_that_network(tmp_path, monkeypatch):
    import cnnviz.widgets.signal_flow_explorer as sfe
    from cnnviz.trainability import cached_trainability_map

    monkeypatch.setattr(sfe, "EMBEDDED_MAP", TINY_MAP)
    monkeypatch.setattr(sfe, "is_cached", lambda cfg: False)
    monkeypatch.setattr(sfe, "cached_trainability_map",
                        lambda cfg, **kw: cached_trainability_map(cfg, cache=tmp_path, **kw))
    w = SignalFlowExplorer(threaded=False, depth=10, width=64)
    assert w.map is None and w.compute_map in w.map_box.children
    w.compute_map.click()
    assert w.map is not None and w.map.config == TINY_MAP
    buttons = [b for b in _walk(w.map_box) if isinstance(b, widgets_mod._base.widgets.Button)]
    assert len(buttons) == 2 * len(TINY_MAP.sigmas) * len(TINY_MAP.lrs)
    cell = w.map.cell(2, 1, True)
    target = [b for b in buttons if b.tooltip == cell.describe()][0]
    target.click()
    assert w.settings["scheme"] == "normal" and w.settings["batch_norm"] is True
    assert w.settings["sigma"] == pytest.approx(3.0) and w.settings["lr"] == pytest.approx(0.1)
    assert w.settings["depth"] == TINY_MAP.depth and w.settings["width"] == TINY_MAP.width
    assert len(w.flow.activations) == TINY_MAP.depth and "Selected cell" in w.map_status.value
    diverged = [b for b in buttons if b.description == "×"]
    assert all("diverged at step" in b.tooltip for b in diverged)


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_select_cell_before_the_map_is_loaded_is_a_sentence():
    w = _explorer()
    w.select_cell(0, 0, False)
    assert "not loaded yet" in w.message.value


def test_a_threaded_explorer_renders_the_newest_request():
    w = SignalFlowExplorer(depth=8, width=32, trainability=False)
    for d in (3, 4, 5, 6):
        w.depth.value = d
    assert w.wait(30)
    assert len(w.flow.activations) == 6



def test_an_idle_explorer_draws_the_orthogonal_weights_ahead_and_they_are_initialise_s():
    """Threaded, the explorer uses its idle time to make the unit draws of the other kinds of scheme; choosing
    orthogonal weights then draws no layer, and the network shown still has initialise_'s weights."""
    w = SignalFlowExplorer(depth=8, width=32, trainability=False)    # He: the normal draws made for the render
    assert w.wait(30)
    # 9 layers, normal and orthogonal, at every width up to 256 (32 first, then 64 and 16, then the others)
    assert w._draws.drawn == 6 * 2 * 9
    w.scheme.value = "orthogonal"
    assert w.wait(30) and w._draws.drawn == 6 * 2 * 9
    s = w.settings
    fresh = initialise_(deep_mlp(8, 32, activation=s["activation"]), "orthogonal", activation=s["activation"], seed=0)
    model = w._model[1]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(model.modules(), fresh.modules())
               if isinstance(a, torch.nn.Linear))


def test_an_idle_explorer_draws_the_neighbouring_widths_ahead():
    """After the network on screen, the idle explorer makes the draws of the widths one step narrower and
    wider: another width with orthogonal weights then draws no layer, and its weights are initialise_'s."""
    w = SignalFlowExplorer("orthogonal", activation="tanh", depth=6, width=32, trainability=False)
    assert w.wait(30)
    first = w._model[1]
    assert w._draws.drawn == 6 * 2 * 7                   # widths 8-256; orthogonal and normal; 7 layers
    w.width.value = 256                                     # a jump
    assert w.wait(30)
    assert w._draws.drawn == 6 * 2 * 7 + 2 * 7              # only width 512's draws, ahead
    w.width.value = 64
    assert w.wait(30)
    model = w._model[1]
    fresh = initialise_(deep_mlp(6, 64, activation="tanh"), "orthogonal", activation="tanh", seed=0)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(model.modules(), fresh.modules())
               if isinstance(a, torch.nn.Linear))
    assert w._draws.drawn == 6 * 2 * 7 + 2 * 7            # nothing drawn
    w.set(width=32, activation="relu")                     # back: the network built for width 32 is reused
    assert w.wait(30) and w._model[1] is first and w._model[1].activation == "relu"
    fresh = initialise_(deep_mlp(6, 32), "orthogonal", seed=0)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(first.modules(), fresh.modules())
               if isinstance(a, torch.nn.Linear))


def test_deep_mlp_weight_shapes_are_those_of_the_network():
    for depth, width, bn in ((1, 8, False), (5, 32, True), (50, 256, False)):
        net = deep_mlp(depth, width, batch_norm=bn)
        assert deep_mlp_weight_shapes(depth, width) == [(tuple(m.weight.shape), m.weight.dtype)
                                                        for _, m in initialisable_layers(net)]


def test_drawing_ahead_stops_when_a_new_setting_waits():
    w = SignalFlowExplorer(depth=8, width=32, trainability=False, threaded=False)
    calls = iter([False, False, True])                # two layers drawn, then a request arrives
    assert not w._draws.prefetch(w._model[1], "orthogonal", stop=lambda: next(calls))
    drawn = w._draws.drawn
    assert w._draws.prefetch(w._model[1], "orthogonal")                # the other 7 layers
    assert w._draws.drawn == drawn + 7
    assert not w._draws.prefetch(w._model[1], "xavier_uniform")      # not a scaled draw: nothing to make


# ----------------------------------------------------------------------------- figures


def test_signal_flow_svg_shapes_and_labels():
    x, y = digits_batch(64)
    flow = signal_flow(initialise_(deep_mlp(7, 32), "kaiming_fan_in", seed=0), x, y)
    svg = signal_flow_svg(flow, width=800, height=400, font_size=14)
    assert svg.count("<image") == 2 and svg.count("<polyline") == 2
    assert 'width="800"' in svg and "1e-40" in svg and "1e40" in svg
    assert f"std at layer 7 = {flow.activations[-1].std:.2g}" in svg


def test_signal_flow_figure_has_a_frame_per_setting_and_its_slider():
    combos = [("He · relu", "kaiming_fan_in", "relu", None), ("tiny · tanh", "normal", "tanh", 0.01)]
    flows = flow_grid(combos, depths=(4, 8), width=32, batch=64)
    fig = signal_flow_figure(flows)
    names = [f.name for f in fig.frames]
    assert names == ["He · relu|4", "He · relu|8", "tiny · tanh|4", "tiny · tanh|8"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["He · relu", "tiny · tanh"]
    for frame in fig.frames:  # each frame carries the slider of its own network, pointing at its own frames
        label = frame.name.split("|")[0]
        assert [s.args[0][0] for s in frame.layout.sliders[0].steps] == [f"{label}|4", f"{label}|8"]
        assert len(frame.data) == 8
    # the heat maps are the layers' histograms, merged into two-decade bins, as square-rooted shares
    tiny = flows[("tiny · tanh", 8, False)]
    z = np.asarray(fig.frames[3].data[0].z, dtype=float)
    assert z.shape == (8, (len(LOG_EDGES) - 1) // 4)
    share = tiny.activations[5].hist.reshape(-1, 4).sum(1) / tiny.activations[5].hist.sum()
    assert np.allclose(z[5], np.round(255 * np.sqrt(share)))
    titles = [a["text"] for a in fig.frames[3].layout.annotations]
    assert titles[0] == f"without BN, activations: std at layer 8 = {tiny.activations[-1].std:.2g}"


def test_trainability_figure_marks_diverged_runs():
    tmap = trainability_map(TINY_MAP)
    fig = trainability_figure(tmap, threshold=0.5)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 and len(heat[0].z) == len(TINY_MAP.sigmas)
    crosses = sum(len(t.x) for t in fig.data if t.type == "scatter")
    diverged = sum(c.diverged for rows in tmap.cells.values() for row in rows for c in row)
    assert crosses == diverged
    assert re.search(r"\d+ % of the runs reach 50 %", fig.layout.annotations[0].text)


def test_norm_axes_figure_follows_norm_axes():
    fig = norm_axes_figure(n=4, c=6, groups=2)
    blue = [np.asarray(t.z) for t in fig.data]
    assert blue[0][:, 0].all() and blue[0].sum() == 4          # batch: one channel, every image
    assert blue[1][0].all() and blue[1].sum() == 6             # layer: one image, every channel
    assert blue[2].sum() == 1                                  # instance: one image, one channel
    assert blue[3][0, :3].all() and blue[3].sum() == 3         # group: one image, one group of channels
    assert norm_axes("batch") == (0, 2, 3)


def test_std_and_batch_dependence_figures():
    import torch

    x, y = digits_batch(64)
    boom = signal_flow(initialise_(deep_mlp(50, 256), "normal", sigma=1.0, seed=0), x, y)
    fig = std_by_layer_figure({"boom": boom})
    assert "diverged at layer" in fig.data[0].name and fig.layout.yaxis.type == "log"
    results = [batch_dependence(k, torch.randn(16, 4, 3, 3), batch_sizes=(2, 4)) for k in NORMS]
    fig = batch_dependence_figure(results)
    assert len(fig.data) == 4 and min(fig.data[1].y) > 0     # exact zeros drawn at the floor of the log axis


def test_kept_weights_equal_fresh_ones():
    """The explorer keeps the last network and weights; what it shows must equal a fresh initialisation."""
    x, y = digits_batch(256)
    w = _explorer(scheme="orthogonal", activation="tanh")
    for change in (dict(lr=0.1), dict(batch_norm=True), dict(batch_norm=False), dict(depth=7), dict(sigma=0.5),
                   dict(activation="relu"), dict(scheme="kaiming_fan_in"), dict(depth=10), dict(scheme="orthogonal"),
                   dict(scheme="xavier_uniform"), dict(scheme="lecun", activation="tanh"), dict(scheme="normal"),
                   dict(sigma=0.05), dict(depth=4, scheme="xavier_normal")):
        w.set(**change)
        s = w.settings
        fresh = initialise_(deep_mlp(s["depth"], s["width"], activation=s["activation"], batch_norm=s["batch_norm"]),
                            s["scheme"], activation=s["activation"], sigma=s["sigma"], seed=0)
        ref = signal_flow(fresh, x, y, lr=s["lr"])
        assert [a.std for a in w.flow.activations] == [a.std for a in ref.activations], change
        assert [g.update_ratio for g in w.flow.weights] == [g.update_ratio for g in ref.weights], change
