"""LiveTraining driven from Python: set the controls, press Start (synchronously, or on the background
thread and then Stop), and check the chart, the status line and the messages against the race's log.

test_works_with_ipywidgets_7 runs this file again under ipywidgets 7 (Colab's).
"""
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnnviz.data import digits_tensors
from cnnviz.race import EMBEDDED
from cnnviz.train import TensorData, TrainingDiverged
from cnnviz.widgets.live_training import LiveTraining
from test_lab_browser import SHOTS, _check_offline_and_quiet, _notebook

ROOT = Path(__file__).resolve().parents[1]
IPYW7 = ROOT / ".venv" / "ipywidgets7"
TINY = EMBEDDED.replace(depths=(8, 14), width=4, epochs=2, batch_size=64, logs_per_epoch=2, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def small():
    return TensorData.from_arrays(**digits_tensors()).take(256, 64)


def polylines(svg):
    return [el for el in ET.fromstring(svg).iter() if el.tag.endswith("polyline")]


def no_traceback(w):
    return "Traceback" not in w.message.value + w.status.value


def test_controls_start_from_the_config():
    w = LiveTraining(threaded=False)
    assert (w.shallow.value, w.deep.value, w.width.value, w.epochs.value, w.seed.value) == (20, 56, 8, 20, 0)
    assert w.read_config() == EMBEDDED
    assert not w.start.disabled and w.stop_button.disabled and w.log is None
    w = LiveTraining(TINY, threaded=False)
    assert (w.shallow.value, w.deep.value, w.width.value) == (8, 14, 4)  # values outside the menus are added


def test_start_trains_the_race_and_draws_it(small):
    w = LiveTraining(TINY, data=small, threaded=False)
    w.seed.value = 3
    w.start.click()
    log = w.log
    assert log.status == "finished" and len(log) == 4 and log.race_config.seed == 3
    assert log.machine["threads"] == 1
    lines = polylines(w.chart.value)
    assert len(lines) == 8
    assert sorted(len(p.get("points").split()) for p in lines) == [2] * 4 + [4] * 4
    assert "finished" in w.status.value and "epoch 2.00 of 2" in w.status.value
    assert "ResNet-14" in w.status.value and w.message.value == ""
    assert not w.start.disabled and w.stop_button.disabled and not w.epochs.disabled


def test_controls_change_the_race(small):
    w = LiveTraining(TINY, data=small, threaded=False)
    w.shallow.value, w.deep.value, w.width.value, w.epochs.value = 14, 20, 8, 1
    w.start.click()
    cfg = w.log.race_config
    assert cfg.depths == (14, 20) and cfg.width == 8 and cfg.epochs == 1
    assert cfg.warmup_epochs == 0.5  # at most half the run
    assert w.log.nets == ["plain-14", "plain-20", "resnet-14", "resnet-20"]


def test_bad_depths_give_a_sentence_and_train_nothing(small):
    w = LiveTraining(TINY, data=small, threaded=False)
    w.shallow.value, w.deep.value = 20, 20
    w.start.click()
    assert "deep depth larger than the shallow" in w.message.value and w.log is None and no_traceback(w)
    w.deep.value = 32  # fixed: the next start clears the message
    w.epochs.value = 1
    w.start.click()
    assert w.message.value == "" and w.log.status == "finished"


def test_an_error_while_building_is_a_message(small):
    tiny_data = small.take(32, 16)  # fewer images than one batch of 64
    w = LiveTraining(TINY, data=tiny_data, threaded=False)
    w.start.click()
    assert "batch_size=64" in w.message.value and no_traceback(w)
    assert not w.start.disabled and w.stop_button.disabled  # ready for another try


def test_a_diverged_network_is_named(small, monkeypatch):
    import cnnviz.race as race_module

    real_step = race_module.Trainer.step

    def step(self):  # the plain nets (no shortcuts) blow up at their third step
        plain = all(m.shortcut is None for m in self.model.modules() if hasattr(m, "shortcut"))
        if plain and self.step_count == 2:
            raise TrainingDiverged("Training diverged at step 3: the loss became nan.", history=self.history, step=3)
        return real_step(self)

    monkeypatch.setattr(race_module.Trainer, "step", step)
    w = LiveTraining(TINY, data=small, threaded=False)
    w.start.click()
    assert "plain-8, plain-14 diverged" in w.message.value and "the others go on" in w.message.value
    assert w.log.status == "finished" and no_traceback(w)


def test_training_runs_in_the_background_and_stop_ends_it(small):
    w = LiveTraining(TINY.replace(epochs=200), data=small, threaded=True, min_interval=0.0)
    main = threading.current_thread()
    t0 = time.perf_counter()
    w.start.click()
    assert time.perf_counter() - t0 < 10  # the click returns while the race trains
    assert w.running and w.start.disabled and not w.stop_button.disabled and w.epochs.disabled
    assert w._thread is not main
    deadline = time.time() + 60
    while len(w.log) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(w.log) >= 3
    w.stop_button.click()
    assert w.wait(60)
    log = w.log
    assert log.status == "stopped" and log.points["epoch"][-1] < 200
    assert len({t.step_count for t in w.race.trainers.values()}) == 1  # stopped between rounds
    assert "stopped" in w.status.value and len(polylines(w.chart.value)) == 8
    assert not w.start.disabled and w.stop_button.disabled
    # start again: a fresh race
    w.epochs.value = 1
    w.start.click()
    assert w.wait(60) and w.log.status == "finished" and len(w.log) == 2


def test_chart_updates_are_throttled(small):
    w = LiveTraining(TINY.replace(epochs=4), data=small, threaded=False, min_interval=3600)
    drawn = []
    real = w._render
    w._renderer._render = lambda log: (drawn.append(len(log)), real(log))
    w.start.click()
    assert drawn == [1, 8]  # the first point, then only the final state


def test_scale_for_a_projector():
    w = LiveTraining(scale=1.4, threaded=False)
    assert w._chart_size[2] == round(14 * 1.4)


def test_works_with_ipywidgets_7():
    if not (IPYW7 / "ipywidgets").is_dir():
        pytest.fail(f"ipywidgets 7 is not installed in {IPYW7}: run `make test`, which installs it.")
    env = dict(os.environ, PYTHONPATH=str(IPYW7))
    probe = "import ipywidgets, cnnviz.widgets.live_training; print(ipywidgets.__version__)"
    version = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert version.startswith("7."), version
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                          "-k", "not test_works_with_ipywidgets_7", "-m", "not browser"],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "passed" in run.stdout


# ----------------------------------------------------------------------------- once in a real browser

_CHART = """() => [...document.querySelectorAll('.cnnviz-training svg polyline')]
                  .map(p => p.getAttribute('points').split(' ').length).join(',')"""


@pytest.mark.browser
def test_live_training_in_jupyterlab(lab, browser):
    """widgets/live_training.ipynb: run all, press Start, watch the chart grow while the kernel trains,
    press Stop. Screenshots go to /tmp/lab_live_training_*.png."""
    notebook = "widgets/live_training.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        widget = page.locator(".cnnviz-training").first
        widget.get_by_text("Press Start").wait_for(state="visible")
        widget.scroll_into_view_if_needed()
        widget.locator("button", has_text="Start").click()
        page.wait_for_function(f"() => ({_CHART})().split(',').length === 8")  # the first points are drawn
        first = page.evaluate(_CHART)
        page.wait_for_function(f"before => ({_CHART})() !== before", arg=first)  # and the curves grow
        assert widget.locator("button", has_text="Start").is_disabled()
        widget.screenshot(path=str(SHOTS / "lab_live_training_1_running.png"))
        widget.locator("button", has_text="Stop").click()
        page.wait_for_function("() => document.querySelector('.cnnviz-training').innerText.includes('stopped:')")
        assert not widget.locator("button", has_text="Start").is_disabled()
        assert "Traceback" not in widget.inner_text()
        widget.screenshot(path=str(SHOTS / "lab_live_training_2_stopped.png"))
        _check_offline_and_quiet(errors, outside)
