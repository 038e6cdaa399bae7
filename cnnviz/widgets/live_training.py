"""LiveTraining: watch plain and residual networks race, and see the degradation problem happen.

A thin view over ``cnnviz.race`` (the training) and ``cnnviz.figures.training.race_svg`` (the
chart), with core ipywidgets only, so it runs on Colab's ipywidgets 7 without a custom widget
manager, and on ipywidgets 8.

The race trains on a background thread, so the notebook stays responsive and Stop works (it ends
the race after the current round of steps). After every log point the thread hands a snapshot of
the log to a ``LatestOnly`` renderer, at most one every ``min_interval`` seconds; the renderer
redraws the SVG chart (a few milliseconds) and the status line. Errors are shown as sentences.
"""
import time

import ipywidgets as widgets

from cnnviz.figures.training import net_label, race_svg
from cnnviz.race import EMBEDDED, Race, RaceConfig, RaceLog, net_names
from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, View, Worker, error_html, guarded, info_html, lecture_frame,
                                  lecture_settings, scoped_style)

__all__ = ["LiveTraining", "SHALLOW_DEPTHS", "DEEP_DEPTHS", "WIDTHS", "MAX_EPOCHS"]

SHALLOW_DEPTHS = (8, 14, 20, 26, 32)
DEEP_DEPTHS = (20, 32, 44, 56, 110)
WIDTHS = (4, 8, 16, 32)
MAX_EPOCHS = 200


class LiveTraining(View):
    """Train plain and residual networks of two depths side by side and watch their error curves.

    Parameters: ``config`` (a ``cnnviz.race.RaceConfig``; default ``EMBEDDED``: the digits, in about
    a minute on a CPU; its depths, width, epochs and seed fill the controls), ``data`` (a
    ``cnnviz.train.TensorData``, default the config's data set), ``device`` (default
    ``cnnviz.device()``), ``threads`` (torch's CPU threads while training; 1 keeps a core free for
    the notebook), ``scale`` (1.0 in a notebook, 1.4 for a projector), ``threaded`` (train on a
    background thread; ``False`` trains synchronously when Start is clicked: tests, scripts),
    ``min_interval`` (seconds between chart redraws at most).

    Controls: the two depths, the width, the epochs and the seed; Start and Stop. ``race`` is the
    ``cnnviz.race.Race`` of the last start, ``log`` its ``RaceLog``.
    """

    def __init__(self, config: RaceConfig = EMBEDDED, *, data=None, device=None, threads=1, scale=None,
                 lecture=None, threaded=True, min_interval=0.5):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        if not isinstance(config, RaceConfig):
            raise TypeError(f"config must be a cnnviz.race.RaceConfig, got {type(config).__name__}.")
        self.config, self.data, self.device, self.threads = config, data, device, threads
        self.threaded, self.min_interval = threaded, float(min_interval)
        self._scale = scale
        self.race = None
        self._thread = None
        self._last_post = float("-inf")
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)

        px = lambda v: f"{round(v * scale)}px"  # noqa: E731
        wide = {"description_width": "initial"}
        shallow, deep = min(config.depths), max(config.depths)
        self.shallow = widgets.Dropdown(options=sorted(set(SHALLOW_DEPTHS) | {shallow}), value=shallow,
                                        description="shallow depth", style=wide, layout=widgets.Layout(width=px(190)))
        self.deep = widgets.Dropdown(options=sorted(set(DEEP_DEPTHS) | {deep}), value=deep, description="deep depth",
                                     style=wide, layout=widgets.Layout(width=px(180)))
        self.width = widgets.Dropdown(options=sorted(set(WIDTHS) | {config.width}), value=config.width,
                                      description="width", style=wide, layout=widgets.Layout(width=px(130)))
        self.epochs = widgets.IntSlider(value=config.epochs, min=1, max=max(MAX_EPOCHS, config.epochs),
                                        description="epochs", style=wide, continuous_update=False,
                                        layout=widgets.Layout(width=px(320)))
        self.seed = widgets.BoundedIntText(value=config.seed, min=0, max=10**6, description="seed", style=wide,
                                           layout=widgets.Layout(width=px(140)))
        self.start = widgets.Button(description="Start", button_style="success", icon="play",
                                    layout=widgets.Layout(width=px(110)))
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                          layout=widgets.Layout(width=px(110)))
        self.status = widgets.HTML(info_html("Press <b>Start</b> to train the four networks side by side."))
        self.chart = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.message = widgets.HTML()
        self.start.on_click(guarded(self._on_start, self._show_error))
        self.stop_button.on_click(guarded(self._on_stop, self._show_error))

        title = widgets.HTML('<span class="cnnviz-title">Live training: plain vs residual networks</span>')
        self.add_class("cnnviz-training")
        self._chart_size = (round(900 * scale ** 0.5), round(380 * scale ** 0.5), round(14 * scale))
        if self.lecture:  # the hall watches the curves; the instructor presses Start and Stop
            k = scale / LECTURE_SCALE
            self._chart_size = (760, 470, 20)  # drawn at this size, shown at k× (and smaller where the page is narrow)
            self.chart.layout = widgets.Layout(width=f"{round(760 * k)}px", max_width="100%")
            self.chart.add_class("cnnviz-training-chart")
            self.chart.value = race_svg(RaceLog(config=config.to_dict(), nets=net_names(config)),
                                        width=760, height=470, font_size=20)  # the empty axes until Start
            self.children = lecture_frame(
                self, "cnnviz-training", scale, title=title, picture=self.chart,
                primary=[self.start, self.stop_button], side=[self.status, self.message],
                below=[widgets.HBox([self.shallow, self.deep, self.width, self.seed, self.epochs],
                                    layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(12)))],
                side_width=300, picture_basis=760, picture_grows=False,
                css="& .cnnviz-training-chart svg { width: 100%; height: auto; }",
                narrow_css=f"& .cnnviz-training-chart {{ max-width: {round(700 * k)}px !important; }}")
        else:
            self.children = [
                scoped_style(self, "cnnviz-training", scale), title,
                widgets.HBox([self.shallow, self.deep, self.width, self.seed]),
                widgets.HBox([self.epochs, self.start, self.stop_button]),
                self.message, self.status, self.chart,
            ]

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def log(self):
        return self.race.log if self.race is not None else None

    def read_config(self) -> RaceConfig:
        """The race the controls describe, or ValueError with a sentence."""
        if self.shallow.value >= self.deep.value:
            raise ValueError(f"Choose a deep depth larger than the shallow one (now {self.shallow.value} and "
                             f"{self.deep.value} layers).")
        return self.config.replace(depths=(self.shallow.value, self.deep.value), width=self.width.value,
                                   epochs=self.epochs.value, seed=self.seed.value,
                                   warmup_epochs=min(self.config.warmup_epochs, self.epochs.value / 2))

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the training thread and the renderer are done; False on timeout (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ callbacks
    def _on_start(self, _button=None):
        if self.running:
            return
        try:
            config = self.read_config()
        except ValueError as err:
            self._show_error(err, source="controls")
            return
        self._clear_message("controls")
        self._clear_message("other")
        self._set_running(True)
        self.status.value = info_html("<i>building the networks…</i>")
        try:
            self.race = Race(config, data=self.data, device=self.device, threads=self.threads,
                             on_log=self._on_log)
        except Exception:
            self._set_running(False)
            raise
        self._last_post = float("-inf")
        self.chart.value = race_svg(self.race.log, width=self._chart_size[0], height=self._chart_size[1],
                                    font_size=self._chart_size[2])
        if self.threaded:
            self._thread = Worker(self._train, name="cnnviz-live-training", stop=self._on_stop).start()
        else:
            self._train()

    def _on_stop(self, _button=None):
        if self.race is not None:
            self.race.stop()
            self.status.value = info_html("<i>stopping after the current step…</i>")

    # ------------------------------------------------------------------ training (background thread)
    def _train(self):
        race = self.race
        try:
            race.run()
        except Exception as err:  # shown as a sentence; the chart keeps what was trained
            self._show_error(err)
        finally:
            self._renderer.request(race.log.snapshot())  # the final state, always drawn
            self._set_running(False)

    def _on_log(self, race):
        now = time.perf_counter()
        if now - self._last_post >= self.min_interval:
            self._last_post = now
            self._renderer.request(race.log.snapshot())  # a copy: the renderer never reads changing state

    def _set_running(self, running: bool):
        self.start.disabled = running
        self.stop_button.disabled = not running
        for control in (self.shallow, self.deep, self.width, self.epochs, self.seed):
            control.disabled = running

    # ------------------------------------------------------------------ rendering (worker thread)
    def _render(self, log):
        w, h, fs = self._chart_size
        self.chart.value = race_svg(log, width=w, height=h, font_size=fs)
        self.status.value = info_html(self._status_text(log))
        if log.diverged:
            names = ", ".join(net_label(n) for n in log.diverged)
            first = next(iter(log.diverged.values()))
            self.message.value = error_html(f"{names} diverged and stopped; the others go on. {first}")
            self._message_source = "diverged"

    def _status_text(self, log) -> str:
        config = log.race_config
        if not len(log):
            return "<i>training… the first points appear after a quarter of an epoch.</i>"
        epoch, secs = log.points["epoch"][-1], log.points["seconds"][-1]
        state = {"running": "training", "finished": "finished", "stopped": "stopped",
                 "failed": "failed"}[log.status]
        errors = []
        for name in log.nets:
            values = [v for v in log.series[name]["train_error"] if v is not None]
            errors.append(f"{net_label(name)} <b>{100 * values[-1]:.1f} %</b>" if values else
                          f"{net_label(name)} —")
        return (f"<b>{state}</b>: epoch {epoch:.2f} of {config.epochs}, {secs:.0f} s on {log.machine['device']} · "
                f"training error now: " + ", ".join(errors))
