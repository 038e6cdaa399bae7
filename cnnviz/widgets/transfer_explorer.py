"""TransferExplorer: pick a target, a training-set size, a strategy and a cut layer; train it live and see where
the result lands in the lecture's two-by-two table, beside the book's measured values.

A thin view over ``cnnviz.transfer_study.run_strategy`` (the package's trainer: checkpoints, NaN guard, Stop)
and ``cnnviz.figures.transfer`` (``transfer_svg``: the curve; ``table_html``: the table), with core ipywidgets
only, so it runs on Colab's ipywidgets 7. Training runs on a background thread; after each log point the thread
hands a snapshot of the curve to a ``LatestOnly`` renderer, at most one every ``min_interval`` seconds.
"""
import time

import ipywidgets as widgets

from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, View, Worker, error_html, guarded, info_html,
                                  lecture_frame, lecture_settings, scoped_style)

__all__ = ["TransferExplorer", "SIZES", "STRATEGY_CHOICES"]

#: Training images per class the size slider offers.
SIZES = (1, 2, 5, 10, 25, 50, 100, 150)
#: The strategy menu: label → key.
STRATEGY_CHOICES = (("linear probe on a layer's features", "probe"), ("fine-tune from a layer up", "finetune"),
                    ("train from scratch", "scratch"), ("linear model on the pixels", "pixels"))


class TransferExplorer(View):
    """Transfer ShapesNet (trained offline on six shapes) to a new task and watch it learn.

    Parameters: ``table`` (a ``TransferTable``; default the book's, ``cached_transfer_table()``, measured the first
    time: two to three minutes), ``source`` (the pretrained network; default the offline ShapesNet),
    ``recipe`` (a ``transfer_study.Recipe``; default the table's), ``epochs`` (test-set evaluations per run: points
    of the curve's story), ``threads`` (torch's CPU threads while training; 1 keeps a core free for the notebook),
    ``scale`` (1.0 in a notebook, 1.4 for a projector), ``threaded`` (``False`` trains synchronously when Start is
    clicked: tests, scripts), ``min_interval`` (seconds between chart redraws at most).

    Controls: the target (similar: new shapes; different: textures), the training images per class, the strategy,
    the cut layer (for a probe, the layer whose features it reads; for fine-tuning, the first layer that trains,
    everything above it training too), the seed; Start and Stop. ``result`` is the last run's
    ``transfer_study.RunResult``.
    """

    def __init__(self, *, table=None, source=None, recipe=None, epochs: int = 6, threads=1, scale=None,
                 lecture=None, threaded=True, min_interval=0.25):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        from cnnviz import transfer_study as ts

        self._ts = ts
        self.table = table if table is not None else ts.cached_transfer_table(progress=False)
        self.source = source if source is not None else ts._shapes_source()
        self.recipe = recipe if recipe is not None else self.table.config.recipe
        self.epochs, self.threads, self.threaded = int(epochs), threads, threaded
        self.min_interval = float(min_interval)
        self.result = None
        self._trainer = None
        self._thread = None
        self._stop_requested = False
        self._last_post = float("-inf")
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        self._stages = ts.stage_layers(self.source)
        self._blocks = ts.blocks(self.source)
        self._warm_up()

        px = lambda v: f"{round(v * scale)}px"  # noqa: E731
        wide = {"description_width": "initial"}
        self.target = widgets.Dropdown(options=[("similar: new shapes", "similar"), ("different: textures",
                                                                                     "different")],
                                       value="similar", description="target", style=wide,
                                       layout=widgets.Layout(width=px(270)))
        self.size = widgets.SelectionSlider(options=list(SIZES), value=5, description="images per class",
                                            style=wide, continuous_update=False, layout=widgets.Layout(width=px(330)))
        self.strategy = widgets.Dropdown(options=list(STRATEGY_CHOICES), value="finetune", description="strategy",
                                         style=wide, layout=widgets.Layout(width=px(330)))
        self.layer = widgets.Dropdown(description="cut layer", style=wide, layout=widgets.Layout(width=px(330)))
        self.seed = widgets.BoundedIntText(value=0, min=0, max=10**6, description="seed", style=wide,
                                           layout=widgets.Layout(width=px(140)))
        self.start = widgets.Button(description="Start", button_style="success", icon="play",
                                    layout=widgets.Layout(width=px(110)))
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                          layout=widgets.Layout(width=px(110)))
        self.status = widgets.HTML(info_html("Choose a cell and press <b>Start</b>."))
        self.chart = widgets.HTML(layout=widgets.Layout(flex="0 0 auto"))
        self.grid = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width=px(420)))
        self.message = widgets.HTML()
        self.strategy.observe(guarded(self._on_strategy, self._show_error), names="value")
        self.start.on_click(guarded(self._on_start, self._show_error))
        self.stop_button.on_click(guarded(self._on_stop, self._show_error))
        self._fill_layers()

        self._chart_size = (round(620 * scale ** 0.5), round(300 * scale ** 0.5), round(14 * scale))
        self._font = round(15 * scale)
        if self.lecture:
            self._chart_size = (760, 420, 20)  # drawn at this size, shown at scale / 1.4 of it (less where narrow)
        self.grid.value = self._table_html(None)
        self.chart.value = self._svg([], 1, "")
        title = widgets.HTML('<span class="cnnviz-title">Transfer explorer: which strategy for which cell?</span>')
        self.add_class("cnnviz-transfer")
        if self.lecture:  # the hall watches the run's curve; the instructor picks the cell and the strategy
            k = scale / LECTURE_SCALE
            self.chart.layout = widgets.Layout(width=f"{round(760 * k)}px", max_width="100%")
            self.chart.add_class("cnnviz-transfer-chart")
            for control, width in ((self.target, 170), (self.strategy, 200), (self.layer, 220)):
                control.description, control.layout.width = "", px(width)
            self.size.description, self.size.layout.width = "images", px(200)
            self.grid.layout = widgets.Layout(width="auto")
            self.children = lecture_frame(
                self, "cnnviz-transfer", scale, title=title, picture=self.chart,
                primary=[self.target, self.size, self.strategy, self.layer,
                         widgets.HBox([self.start, self.stop_button])],
                side=[self.status, self.message], below=[self.seed, self.grid],
                side_width=300, picture_basis=760, picture_grows=False,
                css="& .cnnviz-transfer-chart svg { width: 100%; height: auto; }",
                narrow_css=f"& .cnnviz-transfer-chart {{ max-width: {round(700 * k)}px !important; }}")
        else:
            self.children = [
                scoped_style(self, "cnnviz-transfer", scale), title,
                widgets.HBox([self.target, self.size]),
                widgets.HBox([self.strategy, self.layer]),
                widgets.HBox([self.seed, self.start, self.stop_button]),
                self.message, self.status,
                widgets.HBox([self.chart, self.grid], layout=widgets.Layout(flex_flow="row wrap")),
            ]

    def _warm_up(self):
        """Load what the first run needs (scikit-learn, the network's first passes) now, so that the first
        Start shows its curve as soon as later ones do."""
        import importlib

        import torch

        from cnnviz.transfer import extract_features

        importlib.import_module("sklearn.linear_model")  # its import is most of the first probe's time
        side = getattr(getattr(self.source, "cnnviz_preprocess", None), "size", 64)
        extract_features(self.source, torch.zeros(2, 3, side, side, dtype=torch.uint8), self._stages[-1])

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _fill_layers(self):
        from cnnviz.figures.transfer import layer_label

        with self._quietly():
            if self.strategy.value == "probe":
                options = [(f"{layer_label(s)} ({s})", s) for s in self._stages]
                value = self._stages[-1]
            elif self.strategy.value == "finetune":
                trainable = self._blocks[:-1]
                options = [(f"{b[0]} and above ({len(trainable) - i} + head)", len(trainable) - i)
                           for i, b in enumerate(trainable)] + [("head only", 0)]
                value = 1
            else:
                options, value = [("(not used)", None)], None
            self.layer.options = options
            self.layer.value = value
            self.layer.disabled = self.strategy.value in ("scratch", "pixels")

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the training thread and the renderer are done; False on timeout (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        return self._renderer.wait(timeout)

    def cell(self, size: int = None) -> str:
        """Which row of the table ``size`` images per class (default: the slider's) belongs to: "little" (nearer
        the book's smallest size, on a log scale) or "lots"."""
        import math

        size = self.size.value if size is None else size
        lo, hi = min(self.table.config.sizes), max(self.table.config.sizes)
        return "little" if math.log(size) <= (math.log(lo) + math.log(hi)) / 2 else "lots"

    # ------------------------------------------------------------------ callbacks
    def _on_strategy(self, _change=None):
        if self._quiet:
            return
        self._fill_layers()

    def _on_start(self, _button=None):
        if self.running:
            return
        self._clear_message("controls")
        self._clear_message("other")
        self._clear_message("diverged")
        self._stop_requested = False
        self._set_running(True)
        self.status.value = info_html("<i>making the training images…</i>")
        request = dict(target=self.target.value, size=self.size.value, strategy=self.strategy.value,
                       layer=self.layer.value, seed=self.seed.value)
        if self.threaded:
            self._thread = Worker(lambda: self._train(request), name="cnnviz-transfer", stop=self._on_stop).start()
        else:
            self._train(request)

    def _on_stop(self, _button=None):
        self._stop_requested = True
        trainer = self._trainer  # read once: the training thread may clear it meanwhile
        if trainer is not None:
            trainer.stop()
        self.status.value = info_html("<i>stopping after the current step…</i>")

    # ------------------------------------------------------------------ training (background thread)
    def _train(self, req):
        from cnnviz.runtime import cpu_threads

        ts = self._ts
        try:
            pre = self.source.cnnviz_preprocess
            data = ts.target_data(req["target"], per_class=req["size"], seed=req["seed"], mean=pre.mean,
                                  std=pre.std, test_per_class=self.table.config.test_per_class)
            strategy, kwargs = req["strategy"], {}
            if strategy == "probe":
                kwargs["layer"] = req["layer"]
            elif strategy == "finetune":
                kwargs["trainable"] = req["layer"]
                if req["layer"] == 0:
                    kwargs["trainable"] = "head"
            epochs = self.epochs if strategy in ("finetune", "scratch") else 1
            total = self.recipe.schedule(len(data.train_images), epochs)[1]
            req = {**req, "n_test": len(data.test_images)}
            label = self._label(req)
            self._renderer.request(([], total, label, None, req))
            with cpu_threads(self.threads):
                result = ts.run_strategy(strategy, self.source, data, recipe=self.recipe, seed=req["seed"],
                                         epochs=epochs,
                                         on_log=lambda tr: self._on_log(tr, total, label, req),
                                         trainer_hook=self._keep_trainer, **kwargs)
            self.result = result
            self._renderer.request((result.curve, total, label, result, req))
        except Exception as err:  # shown as a sentence; the chart keeps what was trained
            self._show_error(err)
        finally:
            self._trainer = None
            self._set_running(False)

    def _keep_trainer(self, trainer):
        self._trainer = trainer
        if self._stop_requested:
            trainer.stop()

    def _on_log(self, trainer, total, label, req):
        now = time.perf_counter()
        if now - self._last_post >= self.min_interval:
            self._last_post = now
            bs = trainer.batch_size
            curve = [{"images": r["step"] * bs, "loss": r["loss"], "acc": r["acc"]} for r in trainer.history.steps]
            self._renderer.request((curve, total, label, None, req))

    def _set_running(self, running: bool):
        self.start.disabled = running
        self.stop_button.disabled = not running
        for control in (self.target, self.size, self.strategy, self.seed):
            control.disabled = running
        self.layer.disabled = running or self.strategy.value in ("scratch", "pixels")

    # ------------------------------------------------------------------ rendering (worker thread)
    def _label(self, req) -> str:
        from cnnviz.figures.transfer import layer_label

        s = req["strategy"]
        if s == "probe":
            return f"linear probe on {layer_label(req['layer'])}"
        if s == "finetune":
            k = req["layer"]
            if k == 0:
                return "fine-tune the head only"
            return "fine-tune the last block + head" if k == 1 else f"fine-tune the last {k} blocks + head"
        return {"scratch": "from scratch", "pixels": "linear model on the pixels"}[s]

    def _svg(self, curve, total, label):
        from cnnviz.figures.transfer import transfer_svg

        w, h, fs = self._chart_size
        return transfer_svg(curve, total=total, width=w, height=h, font_size=fs, label=label)

    def _table_html(self, live):
        from cnnviz.figures.transfer import table_html

        return table_html(self.table, live=live, font_size=self._font)

    def _render(self, snapshot):
        curve, total, label, result, req = snapshot
        if result is None or curve:
            self.chart.value = self._svg(curve, total, label)
        if result is None:
            seen = curve[-1]["images"] if curve else 0
            self.status.value = info_html(f"<b>training</b>: {seen:,} of {total:,} images seen"
                                          if curve or req["strategy"] not in ("probe", "pixels")
                                          else "<b>fitting the linear classifier…</b>")
            return
        state = "stopped" if result.stopped else ("diverged" if result.diverged else "finished")
        if result.diverged:
            self.message.value = error_html(result.diverged.split(" What was recorded")[0] + " The accuracy below "
                                            "is the network's when training stopped.")
            self._message_source = "diverged"
        live = {"data": self.cell(req["size"]), "similarity": req["target"], "strategy": label,
                "accuracy": result.accuracy, "size": req["size"]}
        self.grid.value = self._table_html(live)
        self.status.value = info_html(f"<b>{state}</b> in {result.seconds:.1f} s: test accuracy "
                                      f"<b>{100 * result.accuracy:.1f} %</b> on {req['n_test']:,} unseen "
                                      f"images (chance {100 * self.table.chance.get(req['target'], 1 / 6):.0f} %). "
                                      f"It is placed in the “{self.cell(req['size'])} data, {req['target']}” cell "
                                      "below.")
