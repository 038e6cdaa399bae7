"""SignalFlowExplorer: choose an initialisation, an activation, a depth and batch norm, and watch the
activations and gradients of a deep network vanish, explode or stay healthy, layer by layer.

A thin view over ``cnnviz.signal_flow`` (one forward and backward pass of a batch of the embedded digits)
and ``cnnviz.figures.initialisation.signal_flow_svg`` (the picture). Below it, the trainability map
(``cnnviz.trainability``) as two grids of buttons, without and with batch norm: clicking a cell shows that
cell's network in the picture. Core ipywidgets only (Colab's ipywidgets 7 and ipywidgets 8); each update
runs on a worker thread that always takes the newest request.
"""
import math
import threading
from collections import OrderedDict

import ipywidgets as widgets
import torch

from cnnviz.figures.initialisation import signal_flow_svg
from cnnviz.initialisation import (ACTIVATIONS, SCALED_SCHEMES, SCHEMES, InitError, SeededDraws,
                                   initialisable_layers, initialise_, is_finite_number)
from cnnviz.signal_flow import deep_mlp, deep_mlp_weight_shapes, digits_batch, signal_flow
from cnnviz.trainability import EMBEDDED_MAP, cached_trainability_map, is_cached
from cnnviz.widgets._base import (LatestOnly, View, Worker, guarded, info_html, lecture_frame, lecture_settings,
                                  scoped_style)

__all__ = ["SignalFlowExplorer", "LIMITS"]

#: what the controls allow (the functions themselves allow more: cnnviz.signal_flow.MAX_DEPTH)
LIMITS = {"depth": (1, 50), "sigma": (1e-3, 10.0), "lr": (1e-4, 10.0)}
WIDTHS = (8, 16, 32, 64, 128, 256, 512)
_KEEP_BUILT = 3  # networks kept besides the one on screen: the two neighbouring widths and the last one shown
#: the schemes whose weights depend on the activation (through its gain)
_USES_GAIN = ("xavier_uniform", "xavier_normal", "kaiming_fan_in", "kaiming_fan_out", "orthogonal")
_ACCURACY_COLOURS = ((0.9, "#2e7d32", "white"), (0.5, "#9ccc65", "black"), (0.2, "#fff59d", "black"),
                     (0.0, "#eeeeee", "black"))


def _check(settings: dict) -> dict:
    """The settings if the controls can show them, else InitError with a sentence saying what is allowed."""
    s = dict(settings)
    if s["scheme"] not in SCHEMES:
        raise InitError(f"Unknown initialisation scheme {s['scheme']!r}: choose one of {', '.join(SCHEMES)}.")
    if s["activation"] not in ACTIVATIONS:
        raise InitError(f"Unknown activation {s['activation']!r}: choose one of {', '.join(ACTIVATIONS)}.")
    for name, what in (("depth", "depth (hidden layers)"),):
        lo, hi = LIMITS[name]
        v = s[name]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InitError(f"The {what} must be a whole number from {lo} to {hi} here; got {v!r}. "
                            "For deeper networks call cnnviz.signal_flow.signal_flow directly.")
    if s["width"] not in WIDTHS:
        raise InitError(f"The width must be one of {', '.join(map(str, WIDTHS))}; got {s['width']!r}.")
    for name, what in (("sigma", "σ of the normal scheme"), ("lr", "learning rate")):
        lo, hi = LIMITS[name]
        v = s[name]
        if not is_finite_number(v) or v <= 0:
            raise InitError(f"The {what} must be a finite number above 0; got {v!r}.")
        if not lo <= v <= hi:
            raise InitError(f"The {what} must be between {lo:g} and {hi:g} here; got {v!r}.")
    if not is_finite_number(s["value"]):
        raise InitError(f"The constant c must be a finite number; got {s['value']!r}.")
    return s



class _Cancelled(Exception):
    """Raised from the map's progress callback to end its computation early (at exit)."""

class SignalFlowExplorer(View):
    """Per-layer activations and gradients of a deep fully connected network at initialisation.

    Parameters: ``scheme`` (a key of ``cnnviz.initialisation.SCHEMES``), ``sigma`` (the normal scheme's σ),
    ``value`` (the constant scheme's c), ``activation`` ("relu", "tanh", "sigmoid", "linear"), ``depth``
    (1–50 hidden layers), ``width`` (units per layer, one of ``WIDTHS``), ``batch_norm``, ``lr`` (for the
    update-to-weight ratio), ``batch`` (images of the embedded digits per pass), ``seed`` (initial weights),
    ``trainability`` (show the trainability map: ``True`` loads it at once when it is cached and offers a
    button to compute it otherwise; ``False`` leaves it out), ``scale`` (1.0 in a notebook, 1.4 for a
    projector), ``threaded`` (compute on a worker thread, newest request only; ``False``: synchronously, for
    tests and scripts).

    ``flow`` is the ``SignalFlow`` on screen, ``map`` the ``TrainabilityMap`` once loaded; ``set(**settings)``
    changes several controls with one update; ``select_cell(i, j, batch_norm)`` does what clicking a cell of
    the map does.
    """

    _kept = "picture"

    def _error_suffix(self, err, source):
        return " The picture shows the last setting that worked." if isinstance(err, ValueError) else ""

    def __init__(self, scheme="kaiming_fan_in", *, sigma=0.01, value=0.5, activation="relu", depth=50, width=256,
                 batch_norm=False, lr=0.01, batch=256, seed=0, trainability=True, scale=None, lecture=None,
                 threaded=True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        start = _check(dict(scheme=scheme, sigma=sigma, value=value, activation=activation, depth=depth,
                            width=width, batch_norm=bool(batch_norm), lr=lr))
        self.seed, self.threaded, self._scale = seed, threaded, scale
        self.flow, self.map, self._map_config = None, None, EMBEDDED_MAP
        self._x, self._y = digits_batch(batch, seed=seed)
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        self._map_thread = None
        self._model = None    # (shape, the DeepMLP on screen, the settings its weights were drawn with)
        self._built = OrderedDict()  # (depth, width, BN) → (DeepMLP, its draw settings) of the last networks before
        self._weights = None  # (settings, the weights last drawn) of the schemes SeededDraws does not keep
        self._draws = SeededDraws(seed, keep=2 * len(WIDTHS))  # both kinds at every width
        px = lambda v: f"{round(v * scale)}px"  # noqa: E731
        wide = {"description_width": px(110)}

        self.scheme = widgets.Dropdown(options=[(label, key) for key, (label, _) in SCHEMES.items()],
                                       value=start["scheme"], description="scheme", style=wide,
                                       layout=widgets.Layout(width=px(360)))
        self.sigma = widgets.FloatLogSlider(value=start["sigma"], base=10, min=-3, max=1, step=0.05,
                                            description="σ (normal)", readout_format=".3g", style=wide,
                                            continuous_update=False, layout=widgets.Layout(width=px(360)))
        self.value = widgets.FloatText(value=start["value"], description="c (constant)", style=wide,
                                       layout=widgets.Layout(width=px(240)))
        self.activation = widgets.Dropdown(options=list(ACTIVATIONS), value=start["activation"],
                                           description="activation", style=wide, layout=widgets.Layout(width=px(260)))
        self.depth = widgets.IntSlider(value=start["depth"], min=LIMITS["depth"][0], max=LIMITS["depth"][1],
                                       description="depth", style=wide, continuous_update=False,
                                       layout=widgets.Layout(width=px(360)))
        self.width = widgets.Dropdown(options=list(WIDTHS), value=start["width"], description="width", style=wide,
                                      layout=widgets.Layout(width=px(220)))
        self.batch_norm = widgets.Checkbox(value=start["batch_norm"], description="batch norm after each layer",
                                           indent=False, layout=widgets.Layout(width=px(300)))
        self.lr = widgets.FloatLogSlider(value=start["lr"], base=10, min=-4, max=1, step=0.25,
                                         description="learning rate", readout_format=".3g", style=wide,
                                         continuous_update=False, layout=widgets.Layout(width=px(360)))
        self._controls = dict(scheme=self.scheme, sigma=self.sigma, value=self.value, activation=self.activation,
                              depth=self.depth, width=self.width, batch_norm=self.batch_norm, lr=self.lr)
        for control in self._controls.values():
            control.observe(guarded(self._on_change, self._show_error), names=["value"])

        self.picture = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.numbers = widgets.HTML()
        self.message = widgets.HTML()
        self.map_status = widgets.HTML()
        self.map_box = widgets.VBox()
        self.compute_map = widgets.Button(description="Compute the trainability map", icon="play",
                                          button_style="info", layout=widgets.Layout(width=px(320)))
        self.compute_map.on_click(guarded(self._on_compute_map, self._show_error))

        title = widgets.HTML('<span class="cnnviz-title">Signal flow: initialisation, depth and batch norm</span>')
        controls = widgets.HBox([
            widgets.VBox([self.scheme, self.sigma, self.value, self.activation]),
            widgets.VBox([self.depth, self.width, self.batch_norm, self.lr]),
        ], layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(12)))
        self.add_class("cnnviz-sf")
        self._svg_size = (round(960 * scale ** 0.5), round(520 * scale ** 0.5), round(15 * scale))
        self.more_numbers = widgets.HTML()  # the lecture layout: the numbers that do not fit beside the picture
        if self.lecture:  # the hall looks at the layers' distributions; the instructor changes the initialisation
            k = scale / 1.4
            self._svg_size = (round(780 * k), round(405 * k), round(20 * k))
            title.value = '<span class="cnnviz-title">Signal flow: initialisation, depth, batch norm</span>'
            narrow = {"description_width": px(62)}
            self.scheme.description, self.scheme.layout.width = "", px(195)
            self.activation.description, self.activation.layout.width = "", px(110)
            self.depth.style, self.depth.layout.width = narrow, px(195)
            self.sigma.style, self.sigma.layout.width = narrow, px(195)
            self.sigma.description = "σ"
            self.value.style, self.value.layout.width = narrow, px(160)
            self.value.description = "c"
            self.batch_norm.description, self.batch_norm.layout.width = "batch norm", px(150)
            below = [widgets.HBox([self.width, self.lr], layout=widgets.Layout(flex_flow="row wrap")),
                     self.more_numbers]
            self.children = lecture_frame(
                self, "cnnviz-sf", scale, title=title, picture=self.picture,
                primary=[self.scheme, self.sigma, self.value, self.activation, self.depth, self.batch_norm],
                side=[self.numbers, self.message],
                below=below + ([self.map_status, self.map_box] if trainability else []),
                side_width=280, picture_basis=780, picture_grows=False,
                css="& .cnnviz-sf-picture svg { width: 100%; height: auto; }",
                narrow_css=f"& .cnnviz-sf-picture {{ max-width: {round(740 * k)}px !important; }}")
            self.picture.layout = widgets.Layout(width=f"{self._svg_size[0]}px", max_width="100%")
            self.picture.add_class("cnnviz-sf-picture")
        else:
            children = [scoped_style(self, "cnnviz-sf", scale), title, controls, self.message, self.numbers,
                        self.picture]
            if trainability:
                children += [self.map_status, self.map_box]
            self.children = children
        self._sync_visibility()
        if trainability:
            if is_cached(self._map_config):
                self._load_map()
            else:
                self.map_status.value = info_html(
                    "<b>Trainability map</b>: not computed on this machine yet (about a minute on one CPU "
                    "core; a GPU does not help such small networks).")
                self.map_box.children = [self.compute_map]
        self._request()

    # ------------------------------------------------------------------ public API
    @property
    def settings(self) -> dict:
        return {name: c.value for name, c in self._controls.items()}

    def set(self, **settings) -> None:
        """Change several controls at once (one update); an impossible setting is a message, never a traceback."""
        unknown = set(settings) - set(self._controls)
        try:
            if unknown:
                raise InitError(f"Unknown setting {', '.join(sorted(unknown))}: the explorer has "
                                f"{', '.join(self._controls)}.")
            new = _check({**self.settings, **settings})
        except InitError as err:
            self._show_error(err, "settings")
            return
        with self._quietly():
            for name, v in new.items():
                self._controls[name].value = v
        self._sync_visibility()
        self._request()

    def select_cell(self, sigma_index: int, lr_index: int, batch_norm: bool) -> None:
        """Show the network of one cell of the trainability map (what clicking its button does)."""
        if self.map is None:
            self._show_error(InitError("The trainability map is not loaded yet: press 'Compute the trainability "
                                       "map' first."), "map")
            return
        cfg = self.map.config
        cell = self.map.cell(sigma_index, lr_index, batch_norm)
        self.set(scheme="normal", sigma=min(max(cell.sigma, LIMITS["sigma"][0]), LIMITS["sigma"][1]),
                 activation=cfg.activation, depth=min(cfg.depth, LIMITS["depth"][1]),
                 width=cfg.width if cfg.width in WIDTHS else self.width.value, batch_norm=batch_norm, lr=cell.lr)
        self.map_status.value = info_html(f"<b>Selected cell</b>: {cell.describe()} The picture shows this "
                                          "network at initialisation.")

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until the picture (and a map being computed) are done; False on timeout."""
        if self._map_thread is not None:
            self._map_thread.join(timeout)
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ callbacks and drawing
    def _on_change(self, _change=None):
        if self._quiet:
            return
        self._sync_visibility()
        self._request()

    def _sync_visibility(self):
        self.sigma.layout.display = None if self.scheme.value == "normal" else "none"
        self.value.layout.display = None if self.scheme.value == "constant" else "none"

    def _request(self):
        try:
            settings = _check(self.settings)
        except InitError as err:
            self._show_error(err, "settings")
            return
        self._renderer.request(settings)

    def _render(self, s):
        model = self._network(s)
        flow = signal_flow(model, self._x, self._y, lr=s["lr"])
        w, h, fs = self._svg_size
        svg = signal_flow_svg(flow, width=w, height=h, font_size=fs)
        self.flow = flow
        self.picture.value = svg
        if self.lecture:  # three numbers in large type beside the picture, the others under it
            self.numbers.value = self._numbers_html(flow, which=[1, 2, 4])
            self.more_numbers.value = self._numbers_html(flow)
        else:
            self.numbers.value = self._numbers_html(flow)
        self._clear_message("settings")
        self._clear_message("other")
        if self.threaded:
            self._draw_ahead(model)

    def _draw_ahead(self, model):
        """While no new setting waits, make the unit draws of the network on screen for the other kinds of
        scheme, then those of the networks one width step narrower and wider, then of the other widths, a
        layer (about 2 ms at width 256) at a time: choosing orthogonal weights, or another width with
        orthogonal weights, then costs a multiplication per layer instead of 50 QR decompositions (about 90 ms
        at width 256) on top of the update. The two neighbouring networks are built too."""
        kinds = ("kaiming_fan_in", "orthogonal")  # the normal draws and the orthogonal ones
        if SCALED_SCHEMES.get(self._model[2][0]) == "orthogonal":
            kinds = kinds[::-1]                    # the kind on screen first
        (depth, _, _, bn), i = self._model[0], WIDTHS.index(self._model[0][1])
        near = [WIDTHS[j] for j in (i + 1, i - 1) if 0 <= j < len(WIDTHS)]
        # every other width up to 256 too (a menu jumps), the nearest first: 0.1 s more at most, 30 MB in all
        others = sorted((w for w in WIDTHS if w <= 256 and w not in near and w != WIDTHS[i]),
                        key=lambda w: abs(WIDTHS.index(w) - i))
        for net in [model] + [deep_mlp_weight_shapes(depth, w) for w in near + others]:
            for scheme in kinds:
                if not self._draws.prefetch(net, scheme, stop=self._renderer.has_pending):
                    return
        # then build those networks (about 10 ms at width 256; not at 512, whose update takes half a second)
        for w in near:
            if w <= 256 and (depth, w, bn) not in self._built:
                if self._renderer.has_pending():
                    return
                self._keep_built((depth, w, bn), (deep_mlp(depth, w, activation=model.activation, batch_norm=bn,
                                                           empty=True), None))

    def _keep_built(self, size, entry):
        """Keep ``entry`` = (network, its draw settings) for ``size`` = (depth, width, BN); forget the oldest beyond
        ``_KEEP_BUILT``."""
        self._built[size] = entry
        while len(self._built) > _KEEP_BUILT:
            self._built.popitem(last=False)

    def _network(self, s):
        """The network of settings ``s`` with its initial weights, bit for bit those of ``initialise_`` with the
        widget's seed. The last network built is kept (a new learning rate reuses it and its weights), and the
        normal, Xavier-normal, He, LeCun and orthogonal weights come from ``SeededDraws``: another σ, gain,
        scheme among those or depth costs a multiplication per layer and the new layers' draws instead of a
        whole new draw (an orthogonal one is 50 QR decompositions at depth 50)."""
        shape = (s["depth"], s["width"], s["activation"], s["batch_norm"])
        scheme = s["scheme"]
        draw = (scheme, s["sigma"] if scheme == "normal" else None, s["value"] if scheme == "constant" else None,
                s["activation"] if scheme in _USES_GAIN else None, s["depth"], s["width"], self.seed)
        kept = self._model[0] if self._model is not None else None
        if kept != shape:
            model, drawn = self._built.pop((shape[0], shape[1], shape[3]), (None, None))
            if kept is not None:
                self._keep_built((kept[0], kept[1], kept[3]), self._model[1:])
            if model is None:   # a network not among the last few built (another activation costs nothing)
                model = deep_mlp(*shape[:2], activation=shape[2], batch_norm=shape[3], empty=True)
            self._model = (shape, model.set_activation_(shape[2]), drawn)
        _, model, drawn = self._model
        if drawn == draw:
            return model
        layers = [m for _, m in initialisable_layers(model)]
        if scheme in SCALED_SCHEMES:
            weights = self._draws.weights(model, scheme, activation=s["activation"], sigma=s["sigma"])
        elif self._weights is not None and self._weights[0] == draw:
            weights = self._weights[1]
        else:
            initialise_(model, scheme, activation=s["activation"], sigma=s["sigma"], value=s["value"], seed=self.seed)
            weights = None
            self._weights = (draw, [m.weight.detach().clone() for m in layers])
        if weights is not None:
            with torch.no_grad():
                for m, w in zip(layers, weights):
                    m.weight.copy_(w)
                    if m.bias is not None:
                        m.bias.zero_()
        self._model = (shape, model, draw)
        return model

    def _numbers_html(self, flow, which=slice(None)) -> str:
        big = round(22 * self._scale)
        if flow.diverged_at is not None:
            return (f'<div style="font-size:{big}px;color:#b00020;font-weight:600">Diverged at layer '
                    f'{flow.diverged_at}: the activations overflowed, so there is no loss and no gradient.</div>')
        last, n = flow.activations[-1], len(flow.activations)
        g_first = flow.gradients[0].std if flow.gradients else math.nan
        g_last = flow.gradients[-1].std if flow.gradients else math.nan
        ratio = [w.update_ratio for w in flow.weights]
        cells = [("std of the activations, layer 1", f"{flow.activations[0].std:.3g}"),
                 (f"… at layer {n}", f"{last.std:.3g}"),
                 (f"inactive at layer {n}", f"{100 * last.inactive:.0f} %"),
                 (f"dead units at layer {n}", f"{100 * last.dead:.0f} %"),
                 ("gradient std, last → first layer", f"{g_last:.2g} → {g_first:.2g}"),
                 ("update / weight, first layer", f"{ratio[0]:.2g}" if ratio else "–")]
        if not isinstance(which, slice):  # picked out of their row, beside the picture: short labels
            short = {f"… at layer {n}": f"std at layer {n}", f"inactive at layer {n}": "inactive",
                     "gradient std, last → first layer": "gradient std, last → first"}
            cells = [(short.get(k, k), v) for k, v in cells]
        items = "".join(f'<div style="margin-right:{big}px"><div style="color:#555">{k}</div>'
                        f'<div style="font-size:{big}px;font-weight:600">{v}</div></div>' for k, v in
                        (cells[which] if isinstance(which, slice) else [cells[i] for i in which]))
        return f'<div style="display:flex;flex-wrap:wrap;row-gap:6px">{items}</div>'

    # ------------------------------------------------------------------ the trainability map
    def _on_compute_map(self, _button=None):
        if self._map_thread is not None and self._map_thread.is_alive():
            return
        self.compute_map.disabled = True

        cancel = threading.Event()

        def progress(cell, done, total):
            if cancel.is_set():  # the process is exiting: end after this run, without a cache file
                raise _Cancelled
            self.map_status.value = info_html(f"<b>Trainability map</b>: {done} of {total} runs trained "
                                              f"(last: {cell.describe()})")

        def work():
            try:
                cached_trainability_map(self._map_config, on_cell=progress)
                self._load_map()
            except _Cancelled:
                pass
            except Exception as err:  # shown as a sentence, never lost on the thread
                self._show_error(err, "map")
            finally:
                self.compute_map.disabled = False

        if self.threaded:
            self._map_thread = Worker(work, name="cnnviz-trainability", stop=cancel.set).start()
        else:
            work()

    def _load_map(self):
        self.map = cached_trainability_map(self._map_config)
        cfg, px = self.map.config, lambda v: f"{round(v * self._scale)}px"
        grids = []
        for bn in (False, True):
            header = [widgets.HTML(f"<b>{'with' if bn else 'without'} batch norm</b>",
                                   layout=widgets.Layout(width=px(92)))]
            header += [widgets.HTML(f'<div style="text-align:center">{lr:g}</div>',
                                    layout=widgets.Layout(width=px(54))) for lr in cfg.lrs]
            rows = [widgets.HBox(header)]
            for i, sigma in enumerate(cfg.sigmas):
                row = [widgets.HTML(f"σ = {sigma:.3g}", layout=widgets.Layout(width=px(92)))]
                for j in range(len(cfg.lrs)):
                    row.append(self._cell_button(i, j, bn, px))
                rows.append(widgets.HBox(row))
            grids.append(widgets.VBox(rows))
        self.map_status.value = info_html(
            f"<b>Trainability map</b>: test accuracy (%) of a {cfg.depth}-layer {cfg.activation} network after "
            f"{cfg.epochs} epochs on the digits, for each initial σ (rows) and learning rate (columns); × = "
            "diverged. Click a cell to see its network at initialisation above.")
        self.map_box.children = [widgets.HBox(grids, layout=widgets.Layout(flex_flow="row wrap",
                                                                           grid_gap=px(24)))]

    def _cell_button(self, i, j, bn, px):
        cell = self.map.cell(i, j, bn)
        if cell.diverged:
            text, colour, ink = "×", "#d9d9d9", "#b00020"
        else:
            colour, ink = next((c, k) for t, c, k in _ACCURACY_COLOURS if cell.accuracy >= t)
            text = f"{100 * cell.accuracy:.0f}"
        b = widgets.Button(description=text, tooltip=cell.describe(), layout=widgets.Layout(width=px(54),
                                                                                            height=px(32)))
        b.style.button_color = colour
        b.style.text_color = ink  # ipywidgets 8; on 7 a plain attribute that changes nothing
        b.on_click(guarded(lambda _b: self.select_cell(i, j, bn), self._show_error))
        return b
