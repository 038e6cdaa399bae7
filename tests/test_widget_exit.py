"""A script that creates a widget and ends must exit cleanly (status 0, nothing on stderr), also while a render
or a training run is in flight: every thread a widget starts is stopped and joined at exit
(``cnnviz.widgets._base.close_all``), never left inside torch while the interpreter finalises."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
widgets_mod = pytest.importorskip("cnnviz.widgets")

# what each script does after ``from cnnviz import widgets``: create the widget, then leave work in flight
IN_FLIGHT = {
    "KernelEditor": "w = widgets.KernelEditor(color=True); w.set_kernel('sharpen')",
    "ReceptiveFieldExplorer": "w = widgets.ReceptiveFieldExplorer(); w.set_unit(1, 3, 3)",
    "OcclusionExplorer": "w = widgets.OcclusionExplorer(); w.set(patch=8, stride=2)",
    "LiveTraining": "w = widgets.LiveTraining(); w.start.click()",
    "TransferExplorer": "w = widgets.TransferExplorer(); w.size.value = 150; w.start.click()",
}


def _run(code: str):
    script = "from cnnviz import widgets\n" + code + "\n"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", widgets_mod.__all__)
def test_creating_a_widget_and_exiting_is_clean(name):
    run = _run(f"w = widgets.{name}()")
    assert (run.returncode, run.stderr) == (0, ""), f"{name}: exit status {run.returncode}\n{run.stderr[-2000:]}"


@pytest.mark.parametrize("name", sorted(IN_FLIGHT))
def test_exiting_with_work_in_flight_is_clean(name):
    run = _run(IN_FLIGHT[name] + "\nassert any(t.name.startswith('cnnviz') for t in __import__('threading').enumerate())")
    assert (run.returncode, run.stderr) == (0, ""), f"{name}: exit status {run.returncode}\n{run.stderr[-2000:]}"


def test_close_all_waits_for_a_render_that_asks_another_renderer_to_start(monkeypatch):
    """The race behind an intermittent abort at exit: a render still in flight when the process exits finishes
    and requests another renderer (as FeatureMapExplorer's grid does). That renderer must not start a thread once
    exit has begun, and every thread started before must be joined."""
    import threading

    from cnnviz.widgets import _base
    monkeypatch.setattr(_base, "_EXITING", threading.Event())
    monkeypatch.setattr(_base, "_LIVE", __import__("weakref").WeakSet())
    started, release = threading.Event(), threading.Event()
    second = _base.LatestOnly(lambda req: None, print)

    def render(req):
        started.set()
        release.wait(10)
        second.request("next")

    first = _base.LatestOnly(render, print)
    first.request("go")
    assert started.wait(10)
    threading.Timer(0.2, release.set).start()
    _base.close_all(timeout=10)
    assert not first._thread.is_alive()
    assert second._thread is None          # refused: exit had begun
