"""InceptionCostExplorer: what the 1×1 bottlenecks of an Inception module save, branch by branch.

A thin view over ``cnnviz.models.googlenet.inception_cost`` (MACs and
parameters per branch, output depth) and ``cnnviz.figures.architecture``
(``inception_cost_svg``: the naive module beside the chosen one, drawn as in
the lecture, with per-branch bars on one scale). Core ipywidgets only (an
HTML view), so it runs on Colab's ipywidgets 7 and on ipywidgets 8; one
update costs a few milliseconds and goes through a renderer that keeps only
the newest request.
"""
import ipywidgets as widgets

from cnnviz.figures.architecture import (LECTURE_INCEPTION, human, inception_cost_svg, inception_module_svg,
                                         inception_presets)
from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, View, guarded, info_html, lecture_frame, lecture_settings,
                                  scoped_style, widget_style)

__all__ = ["InceptionCostExplorer", "LIMITS", "LECTURE", "CUSTOM"]

#: Slider ranges (inclusive) and steps: every width of GoogLeNet's Table 1 is a multiple of 8.
LIMITS = {"size": (1, 112, 1), "in_channels": (8, 1024, 8), "ch1x1": (8, 512, 8), "ch3x3red": (8, 512, 8),
          "ch3x3": (8, 512, 8), "ch5x5red": (8, 512, 8), "ch5x5": (8, 512, 8), "pool_proj": (8, 512, 8)}
_LABELS = {"size": "input H = W", "in_channels": "input depth", "ch1x1": "1×1 conv", "ch3x3": "3×3 conv",
           "ch5x5": "5×5 conv", "ch3x3red": "3×3 reduce", "ch5x5red": "5×5 reduce", "pool_proj": "pool proj"}
#: The widths that ``None`` can switch off (naive branch), and the words on their switches.
OPTIONAL = {"ch3x3red": "3×3 reduce", "ch5x5red": "5×5 reduce", "pool_proj": "pool proj"}
LECTURE = "lecture example (28×28×256)"
CUSTOM = "(custom)"
_SLIDE_NOTE = ("The lecture slide prints “Total: 358M ops” for this module, but its own six terms add up to "
               "271 M: 358 M is what one gets by counting the 3×3 term (86.7 M) twice.")


def _check(name, value):
    lo, hi, step = LIMITS[name]
    if value is None and name in OPTIONAL:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} ({_LABELS[name]}) must be a whole number, got {value!r}.")
    if not lo <= value <= hi:
        raise ValueError(f"{name} ({_LABELS[name]}) must be between {lo} and {hi} here, not {value:,}.")
    return value


class InceptionCostExplorer(View):
    """Sliders for one Inception module; the naive module beside it with MACs and parameters per branch.

    Parameters: a preset (``LECTURE``, the lecture's 28×28×256 example, or a
    GoogLeNet module name such as ``"inception3a"``), or the module's own
    settings as keywords: ``size`` (H = W of the input), ``in_channels``
    (its depth), ``ch1x1``, ``ch3x3red``, ``ch3x3``, ``ch5x5red``, ``ch5x5``,
    ``pool_proj`` (``None`` for a reduction or projection means none: that
    branch is naive). ``scale`` (1.0 in a notebook, 1.4 for a projector),
    ``threaded`` (``False`` renders synchronously, for tests and scripts).

    Left of the picture: the naive module with the same branch widths (no 1×1
    reductions, the pool passing every input map through); right: the module
    the controls describe. Every convolution shows its MACs; bars under each
    branch compare branches on one scale; the totals and output depths head
    each module.
    """

    _kept = "picture"

    def __init__(self, preset=LECTURE, *, scale=None, lecture=None, threaded=True, **settings):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        self._presets = {LECTURE: dict(LECTURE_INCEPTION), **inception_presets()}
        if preset not in self._presets:
            raise ValueError(f"No preset named {preset!r}; choose one of: {', '.join(self._presets)}.")
        start = dict(self._presets[preset])
        unknown = set(settings) - set(LIMITS)
        if unknown:
            raise ValueError(f"Unknown setting {sorted(unknown)}; use {', '.join(LIMITS)}.")
        start.update(settings)
        for name, value in start.items():
            _check(name, value)
        self._shown = None
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        px = lambda v: f"{round(v * scale)}px"  # noqa: E731
        g = lambda callback: guarded(callback, self._show_error)  # noqa: E731

        labels = [(LECTURE, LECTURE)] + [(f"GoogLeNet {n} ({kw['size']}×{kw['size']}×{kw['in_channels']})", n)
                                         for n, kw in self._presets.items() if n != LECTURE] + [(CUSTOM, CUSTOM)]
        self.preset = widgets.Dropdown(options=labels, value=preset if not settings else self._matching(start),
                                       description="module", style={"description_width": "initial"},
                                       layout=widgets.Layout(width=px(430)))
        style = {"description_width": px(100)}
        self.sliders = {}
        for name, (lo, hi, step) in LIMITS.items():
            value = start[name] if start[name] is not None else self._fallback(name, start)
            slider = widgets.IntSlider(value=value, min=lo, max=hi, step=step, description=_LABELS[name],
                                       continuous_update=True, style=style, layout=widgets.Layout(width=px(370)))
            slider.observe(g(self._on_setting), names=["value"])
            self.sliders[name] = slider
        self.switches = {}
        for name, words in OPTIONAL.items():
            switch = widgets.Checkbox(value=start[name] is not None, description=words, indent=False,
                                      layout=widgets.Layout(width=px(125)))
            switch.observe(g(self._on_setting), names=["value"])
            self.switches[name] = switch
        self.all_naive = widgets.Button(description="all naive", tooltip="no 1×1 reductions, no pool projection",
                                        layout=widgets.Layout(width=px(120)))
        self.all_reduced = widgets.Button(description="all 1×1 on", tooltip="every reduction and projection on",
                                          layout=widgets.Layout(width=px(120)))
        self.all_naive.on_click(g(lambda _b: self._switch_all(False)))
        self.all_reduced.on_click(g(lambda _b: self._switch_all(True)))
        self.preset.observe(g(self._on_preset), names=["value"])
        self.message = widgets.HTML()
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.view.add_class("cnnviz-inception-view")
        self.summary = widgets.HTML()

        sl, sw = self.sliders, self.switches
        title = widgets.HTML('<span class="cnnviz-title">Inception module: what do the 1×1 bottlenecks save?'
                             '</span>')
        column = lambda *rows: widgets.VBox(list(rows), layout=widgets.Layout(min_width=px(375)))  # noqa: E731
        inputs = column(widgets.HTML("<b>input</b>"), sl["size"], sl["in_channels"],
                        widgets.HTML("<b>branch widths</b> (output maps)"), sl["ch1x1"], sl["ch3x3"], sl["ch5x5"])
        reductions = column(widgets.HTML("<b>1×1 reductions</b> (untick: that branch is naive)"),
                            *[widgets.HBox([sw[n], sl[n]], layout=widgets.Layout(align_items="center"))
                              for n in OPTIONAL],
                            widgets.HBox([self.all_naive, self.all_reduced], layout=widgets.Layout(grid_gap=px(8))))
        for n in OPTIONAL:
            sl[n].description = ""  # the checkbox beside it names it
            sl[n].layout.width = px(250)
            sl[n].style.description_width = "0px"
        css = widget_style(self, "cnnviz-inc", scale, "& .cnnviz-inception-view svg { max-width: 100% !important; }"
                           "& input[type=checkbox] { transform: scale(1.5); margin-right: 8px; }")
        # the lecture layout shows one module at a time, large (both side by side would put its labels under 18 px)
        self.which = widgets.ToggleButtons(options=[("naive", "naive"), ("with 1×1 reductions", "this")],
                                           value="this", style={"button_width": "auto"})
        self.which.observe(g(lambda _change: self._request()), names=["value"])
        self.big = widgets.HTML()
        self.add_class("cnnviz-inc")
        if self.lecture:
            k = scale / LECTURE_SCALE
            title.value = '<span class="cnnviz-title">Inception module: what do the 1×1 convolutions save?</span>'
            self.view.layout = widgets.Layout(width=f"{round(700 * k)}px", max_width="100%")
            self.preset.description, self.preset.layout.width = "", px(230)
            for n, words in zip(OPTIONAL, ("3×3", "5×5", "pool")):
                sl[n].layout.width = px(110)
                sw[n].description, sw[n].layout.width = words, px(72)
            self.children = lecture_frame(
                self, "cnnviz-inc", scale, title=title, picture=self.view,
                primary=[self.preset, self.which, self.big,
                         *[widgets.HBox([sw[n], sl[n]], layout=widgets.Layout(align_items="center"))
                           for n in OPTIONAL]],
                side=[self.message],
                below=[css, widgets.HBox([inputs, widgets.HBox([self.all_naive, self.all_reduced])],
                                         layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(24))),
                       self.summary],
                side_width=300, picture_basis=650, picture_grows=False,
                css="& .cnnviz-inc-big { display: flex; flex-flow: row wrap; align-items: baseline; "
                    "gap: 0 18px; }",
                # where the controls wrap above the module: no title (the notebook's heading says it), the module
                # shown 1.3× (its smallest label, 14, at 18 px)
                narrow_css=f"& .cnnviz-inception-view {{ max-width: {round(650 * k)}px !important; }}"
                           "& .cnnviz-lecture-side .cnnviz-title { display: none; }")
        else:
            self.children = [scoped_style(self, "cnnviz-inc", scale), css, title, self.preset,
                             widgets.HBox([inputs, reductions], layout=widgets.Layout(flex_flow="row wrap",
                                                                                      grid_gap=px(24))),
                             self.message, self.summary, self.view]
        self._sync_switches()
        self._request()

    # ------------------------------------------------------------------ public API
    @property
    def settings(self) -> dict:
        """The module the controls describe: ``size``, ``in_channels``, ``ch1x1`` … ``pool_proj``
        (``None`` where a reduction or projection is switched off)."""
        kw = {name: slider.value for name, slider in self.sliders.items()}
        for name, switch in self.switches.items():
            if not switch.value:
                kw[name] = None
        return kw

    @property
    def shown(self):
        """The settings of the picture on screen (the last one that worked)."""
        return None if self._shown is None else dict(self._shown[0])

    @property
    def costs(self):
        """``(naive, this)``: the ``InceptionCost`` of the naive module and of the one on screen."""
        return None if self._shown is None else self._shown[1]

    def set(self, **settings):
        """Change several settings at once (``ch3x3red=None`` switches that reduction off); one new picture.

        A value outside ``LIMITS`` is refused with a message and nothing changes.
        """
        unknown = set(settings) - set(LIMITS)
        try:
            if unknown:
                raise ValueError(f"Unknown setting {sorted(unknown)}; use {', '.join(LIMITS)}.")
            for name, value in settings.items():
                _check(name, value)
        except ValueError as err:
            self._show_error(err)
            return
        with self._quietly():
            for name, value in settings.items():
                if name in self.switches:
                    self.switches[name].value = value is not None
                if value is not None:
                    self.sliders[name].value = value
            self.preset.value = self._matching(self.settings)
        self._sync_switches()
        self._request()

    def wait(self, timeout=10.0) -> bool:
        """Block until the newest request is drawn (for scripts and tests)."""
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ helpers and callbacks
    def _fallback(self, name, start):
        """A slider value for a width that starts switched off: the lecture's 64, or the preset's."""
        return 64

    def _matching(self, kw):
        return next((name for name, p in self._presets.items() if p == kw), CUSTOM)

    def _sync_switches(self):
        for name, switch in self.switches.items():
            self.sliders[name].disabled = not switch.value

    def _switch_all(self, on):
        with self._quietly():
            for switch in self.switches.values():
                switch.value = on
        self._on_setting(None)

    def _on_preset(self, change):
        if self._quiet or change["new"] == CUSTOM:
            return
        kw = self._presets[change["new"]]
        with self._quietly():
            for name, value in kw.items():
                self.sliders[name].value = value
            for switch in self.switches.values():
                switch.value = True
        self._sync_switches()
        self._request()

    def _on_setting(self, change):
        if self._quiet:
            return
        self._sync_switches()
        with self._quietly():
            self.preset.value = self._matching(self.settings)
        self._request()

    def _request(self):
        self._renderer.request(self.settings)

    # ------------------------------------------------------------------ rendering (worker thread)
    def _render(self, kw):
        from cnnviz.models.googlenet import inception_cost

        for name, value in kw.items():
            _check(name, value)
        order = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
        args = [kw[k] for k in order]
        naive_args = [kw["in_channels"], kw["ch1x1"], None, kw["ch3x3"], None, kw["ch5x5"], None]
        naive = inception_cost(naive_args[0], kw["size"], kw["size"], *naive_args[1:])
        this = inception_cost(args[0], kw["size"], kw["size"], *args[1:])
        if self.lecture:
            svg = inception_module_svg(kw["in_channels"], kw["size"], *args[1:], naive=self.which.value == "naive",
                                       width=500)
        else:
            svg = inception_cost_svg(kw["in_channels"], kw["size"], *args[1:])
        share = this.total.macs / naive.total.macs
        self.big.value = (f'<div class="cnnviz-inc-big"><span class="cnnviz-big">{human(naive.total.macs)} → '
                          f'{human(this.total.macs)} MACs ({share:.0%})</span><span>output depth '
                          f'{naive.out_channels} → {this.out_channels}</span></div>')
        text = (f"naive: <b>{human(naive.total.macs)}</b> MACs ({naive.total.macs:,}), "
                f"{human(naive.total.params)} parameters, output {kw['size']}×{kw['size']}×<b>"
                f"{naive.out_channels}</b> &nbsp;·&nbsp; this module: <b>{human(this.total.macs)}</b> MACs "
                f"({this.total.macs:,}), <b>{share:.0%}</b> of naive, {human(this.total.params)} parameters, "
                f"output {kw['size']}×{kw['size']}×<b>{this.out_channels}</b>")
        if kw == LECTURE_INCEPTION:
            text += f"<br><small>{_SLIDE_NOTE}</small>"
        self.view.value = svg
        self.summary.value = info_html(text)
        self._shown = (dict(kw), (naive, this))
        self.message.value = ""
        self.last_error = None
