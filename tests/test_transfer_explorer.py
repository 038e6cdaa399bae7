"""TransferExplorer driven from Python: every strategy trains and lands in the two-by-two table, the curve
updates while it trains, Stop ends a run, the cut-layer menu follows the strategy, and errors are sentences."""
import threading

import pytest

from cnnviz import transfer_study as ts

widgets_mod = pytest.importorskip("cnnviz.widgets")
TransferExplorer = widgets_mod.TransferExplorer


@pytest.fixture(scope="module")
def table():
    return ts.cached_transfer_table(progress=False)


def test_the_cut_layer_menu_follows_the_strategy(table):
    w = TransferExplorer(table=table, threaded=False)
    assert w.strategy.value == "finetune" and w.layer.value == 1 and not w.layer.disabled
    assert [v for _, v in w.layer.options] == [4, 3, 2, 1, 0]
    w.strategy.value = "probe"
    assert [v for _, v in w.layer.options] == ts.stage_layers(w.source) and w.layer.value == ts.top_layer(w.source)
    w.strategy.value = "scratch"
    assert w.layer.disabled and w.layer.value is None
    assert "your run" not in w.grid.value and "Use a linear classifier on the top layer." in w.grid.value


@pytest.mark.parametrize("strategy, layer", [("finetune", 1), ("finetune", 0), ("probe", "features.relu2"),
                                             ("scratch", None), ("pixels", None)])
def test_every_strategy_trains_and_lands_in_its_cell(table, strategy, layer):
    w = TransferExplorer(table=table, threaded=False, epochs=2)
    w.target.value, w.size.value = "different", 2
    w.strategy.value = strategy
    if layer is not None:
        w.layer.value = layer
    w.start.click()
    assert w.wait(60) and w.message.value == ""
    r = w.result
    assert r is not None and 0 <= r.accuracy <= 1 and not r.stopped
    assert w.cell() == "little"
    assert "your run" in w.grid.value and f"{100 * r.accuracy:.1f} %" in w.grid.value
    assert "finished" in w.status.value and f"{100 * r.accuracy:.1f} %" in w.status.value
    if strategy in ("finetune", "scratch"):
        assert r.curve and "<polyline" in w.chart.value
        assert r.curve[-1]["images"] == ts.Recipe().schedule(12, 2)[1]
    if strategy == "probe":
        assert r.layer == "features.relu2"
    assert not w.start.disabled and w.stop_button.disabled


def test_sizes_map_to_the_rows_of_the_table(table):
    w = TransferExplorer(table=table, threaded=False)
    w.size.value = 5
    assert w.cell() == "little"
    w.size.value = 150
    assert w.cell() == "lots"


def test_the_curve_updates_while_it_trains_and_stop_ends_the_run(table):
    w = TransferExplorer(table=table, threaded=True, epochs=4, min_interval=0.0)
    w.size.value = 25
    w.strategy.value = "finetune"
    w.layer.value = 4
    seen, enough = [], threading.Event()

    def on_chart(change):
        seen.append(change["new"])
        if sum("<polyline" in v for v in seen) >= 3:
            enough.set()

    w.chart.observe(on_chart, names="value")
    w.start.click()
    assert w.running and w.start.disabled and not w.stop_button.disabled
    assert enough.wait(60)
    w.stop_button.click()
    assert w.wait(60)
    assert w.result is not None and w.result.stopped
    total = ts.Recipe().schedule(150, 4)[1]
    assert w.result.curve[-1]["images"] < total
    assert "stopped" in w.status.value and w.message.value == ""
    assert not w.running and not w.start.disabled


def test_an_error_is_a_sentence_and_the_widget_recovers(table, monkeypatch):
    w = TransferExplorer(table=table, threaded=False)

    def broken(*args, **kwargs):
        raise ts.TransferError("per_class=900 is more than the data has: use at most 150.")

    monkeypatch.setattr(ts, "run_strategy", broken)
    w.start.click()
    assert "more than the data has" in w.message.value and "Traceback" not in w.message.value
    assert not w.start.disabled and w.result is None
    monkeypatch.undo()
    w.strategy.value = "probe"
    w.start.click()
    assert w.message.value == "" and w.result is not None
