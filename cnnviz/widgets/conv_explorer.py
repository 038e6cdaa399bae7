"""ConvExplorer: move n, f, p, s, d, C_in and C_out and watch the kernel slide over the padded input.

A thin view over ``cnnviz.figures.arithmetic`` (``conv_frame_pngs``,
``conv_arithmetic_text``), which draws with ``cnnviz.layers``. Core ipywidgets
only, so it runs on Colab's ipywidgets 7 without a custom widget manager, and
on ipywidgets 8. Each setting's frames are computed once (on a worker thread,
newest request only); the play button and the position slider then only swap
precomputed PNGs, so scrubbing is instant.
"""

import ipywidgets as widgets

from cnnviz.figures.arithmetic import conv_arithmetic_text, conv_frame_pngs
from cnnviz.layers import conv_macs, conv_output_shape, conv_params, same_padding
from cnnviz.widgets._base import (LatestOnly, View, guarded, info_html, lecture_frame, lecture_settings, scoped_style,
                                  set_tooltip, step_buttons)

__all__ = ["ConvExplorer", "LIMITS"]

#: Slider ranges (inclusive): small enough to see every cell. Larger settings are refused with a message.
LIMITS = {"n": (1, 16), "f": (1, 7), "p": (0, 12), "s": (1, 4), "d": (1, 4), "c_in": (1, 64), "c_out": (1, 64)}
_NAMES = {"n": "n (input)", "f": "f (kernel)", "p": "p (padding)", "s": "s (stride)", "d": "d (dilation)",
          "c_in": "C_in", "c_out": "C_out"}
_WHAT = {"n": "input size", "f": "kernel size", "p": "padding", "s": "stride", "d": "dilation",
         "c_in": "number of input channels", "c_out": "number of filters"}
_MODES = [("number", "number"), ("valid", "valid"), ("same", "same")]
_MODE_TIPS = ["p as the slider sets it", "valid: p = 0, no padding", "same: p = d(f−1)/2 keeps the size (stride 1)"]


def _check_setting(name, value):
    """``value`` as an int inside ``LIMITS[name]``, else ValueError with a sentence (never a freeze)."""
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} ({_WHAT[name]}) must be a whole number, got {value!r}.")
    if value < lo:
        raise ValueError(f"{name} ({_WHAT[name]}) must be at least {lo}, got {value}.")
    if value > hi:
        raise ValueError(
            f"{name} = {value:,} is more than this explorer draws ({name} ≤ {hi}): the picture would have too "
            "many cells to follow. For the sizes of a real layer use cnnviz.layers (conv_output_shape, "
            "conv_params, conv_macs).")
    return value


class ConvExplorer(View):
    """Sliders for a convolution layer's n, f, p, s, d, C_in, C_out; an animation of the kernel sliding.

    Parameters: the layer (``n`` input size, ``f`` kernel size, ``p`` padding:
    a number, ``"valid"`` or ``"same"``, ``s`` stride, ``d`` dilation,
    ``c_in`` input channels, ``c_out`` filters), ``scale`` (1.0 in a notebook,
    1.4 for a projector), ``threaded`` (draw on a worker thread keeping only
    the newest request; ``False`` draws synchronously, for tests and scripts).

    Settings outside ``LIMITS`` are refused (``ValueError`` from the
    constructor, a message from ``set``). A combination that does not work
    (``f = 7 > n + 2p = 5``, "same" with stride 2, ...) is explained in words
    and the last good picture stays.
    """

    _kept = "picture"

    def _error_suffix(self, err, source):
        return " The picture shows the last setting that worked." if isinstance(err, ValueError) else ""

    def __init__(self, n=5, f=3, p=0, s=1, d=1, c_in=1, c_out=1, *, scale=None, lecture=None, threaded=True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        mode = p if isinstance(p, str) else "number"
        if mode not in ("number", "valid", "same"):
            raise ValueError(f"p must be a whole number, 'valid' or 'same'; got {p!r}.")
        start = {"n": n, "f": f, "p": 0 if isinstance(p, str) else p, "s": s, "d": d, "c_in": c_in, "c_out": c_out}
        for name, value in start.items():
            _check_setting(name, value)
        self._shown = ((), 1, None)  # (PNG frames, W_out, settings) of the picture on screen, swapped at once
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        self._scale = scale
        px = lambda v: f"{round(v * scale)}px"  # noqa: E731  sizes grow with scale (projector)
        self._font = round(18 * scale)
        self._max_size = (round(560 * scale), round(1100 * scale))  # the picture's (height, width) at most
        self._cell = round(28 * scale)
        if self.lecture:  # larger cells, and at most the size the picture has beside (or under) the controls
            self._cell, self._max_size = round(44 * scale), (round(330 * scale), round(560 * scale))

        style = {"description_width": px(22 if self.lecture else 105)}
        self.sliders = {}
        for name, value in start.items():
            lo, hi = LIMITS[name]
            slider = widgets.IntSlider(value=value, min=lo, max=hi,
                                       description=name.replace("_", " ") if self.lecture else _NAMES[name],
                                       continuous_update=True, style=style,
                                       layout=widgets.Layout(width=px(140 if self.lecture else 360)))
            slider.observe(guarded(self._on_p if name == "p" else self._on_setting, self._show_error),
                           names=["value"])
            self.sliders[name] = slider
        self.padding = widgets.ToggleButtons(options=_MODES, value=mode, tooltips=_MODE_TIPS,
                                             style={"button_width": px(78)}, layout=widgets.Layout(width="auto"))
        self.padding.observe(guarded(self._on_setting, self._show_error), names=["value"])

        self.play = widgets.Play(value=0, min=0, max=0, step=1, interval=600, description="play")
        self.position = widgets.IntSlider(value=0, min=0, max=0, description="position", continuous_update=True,
                                          style=style, layout=widgets.Layout(width=px(420)))
        widgets.link((self.play, "value"), (self.position, "value"))  # not jslink: it breaks on Colab
        self.position.observe(guarded(self._on_position, self._show_error), names=["value"])
        self.where = widgets.HTML()
        # natural size (cells keep their size whatever n is), shrunk only to fit a narrow page
        self.view = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                       align_self="flex-start"))
        self.arithmetic = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.message = widgets.HTML()
        self.counts = widgets.HTML()  # the lecture layout's numbers in large type

        title = widgets.HTML('<span class="cnnviz-title">Convolution explorer: padding, stride, dilation, '
                             'channels</span>')
        sl = self.sliders
        shortcut = widgets.HBox([widgets.HTML('<div style="text-align:right;padding-right:8px">padding</div>',
                                              layout=widgets.Layout(width=px(105), min_width=px(105))), self.padding],
                                layout=widgets.Layout(align_items="center"))  # a label beside, not above, the buttons
        self.add_class("cnnviz-cx")
        if self.lecture:  # the hall watches the kernel slide; the instructor steps it and moves n, f, p, s
            self.view.layout = widgets.Layout(max_width="100%", height="auto", margin="0")
            self.view.add_class("cnnviz-cx-frame")
            self.arithmetic.layout.width = "auto"
            title.value = '<span class="cnnviz-title">Convolution explorer</span>'
            self.position.layout.width = px(165)
            self.position.description = "cell"
            self.position.style.description_width = px(40)
            prev, nxt = step_buttons(self.step, self._show_error, what="output cell")
            shortcut.children[0].layout = widgets.Layout(width="auto")
            for name in ("n", "f", "p", "s"):  # one letter beside the picture, the full name on hover
                set_tooltip(sl[name], _NAMES[name])
            for name in ("d", "c_in", "c_out"):  # under the picture: room for their names
                sl[name].style.description_width = px(50)
                sl[name].layout.width = px(190)
            self.children = lecture_frame(
                self, "cnnviz-cx", scale, title=title, picture=self.view,
                primary=[sl["n"], sl["f"], sl["p"], sl["s"], widgets.HBox([prev, self.play, nxt]), self.position,
                         self.where],
                side=[self.counts, self.message],
                below=[widgets.HBox([sl["d"], sl["c_in"], sl["c_out"], shortcut],
                                    layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(12))),
                       self.arithmetic],
                side_width=235, picture_basis=620, picture_grows=False,
                css="& .cnnviz-counts { display: flex; flex-flow: row wrap; gap: 0 24px; }",
                narrow_css=f"& .cnnviz-cx-frame {{ max-height: {px(285)}; width: auto; }}")
        else:
            left = widgets.VBox([sl["n"], sl["f"], sl["p"], shortcut])
            right = widgets.VBox([sl["s"], sl["d"], sl["c_in"], sl["c_out"]])
            self.children = [scoped_style(self, "cnnviz-cx", scale), title,
                             widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(16))),
                             self.message, self.arithmetic,
                             widgets.HBox([self.play, self.position, self.where],
                                          layout=widgets.Layout(align_items="center", grid_gap=px(8))),
                             self.view]

        conv_arithmetic_text(**self.settings)  # a start that does not work is refused here, with the sentence
        self._sync_padding()
        self._request()

    # ------------------------------------------------------------------ public API
    @property
    def settings(self) -> dict:
        """The controls' setting: n, f, p (a number, ``"valid"`` or ``"same"``), s, d, c_in, c_out."""
        kw = {name: slider.value for name, slider in self.sliders.items()}
        if self.padding.value != "number":
            kw["p"] = self.padding.value
        return kw

    @property
    def shown(self):
        """The setting of the picture on screen (the last one that worked), or ``None`` before the first."""
        return None if self._shown[2] is None else dict(self._shown[2])

    @property
    def frames(self) -> list:
        """The PNG frames (bytes) of the picture on screen, one per output position."""
        return list(self._shown[0])

    def set(self, **settings):
        """Change several settings at once (``n=7, f=3, p="same"``); one new picture, not one per slider.

        A value outside ``LIMITS`` (e.g. ``n=10_000``) is refused with a message and nothing changes.
        """
        unknown = set(settings) - set(LIMITS)
        if unknown:
            self._show_error(ValueError(f"Unknown setting {sorted(unknown)}; use {', '.join(LIMITS)}."))
            return
        mode = settings.get("p") if isinstance(settings.get("p"), str) else None
        if mode is not None and mode not in ("valid", "same"):
            self._show_error(ValueError(f"p must be a whole number, 'valid' or 'same'; got {mode!r}."))
            return
        numbers = {k: v for k, v in settings.items() if not (k == "p" and mode)}
        try:
            for name, value in numbers.items():
                _check_setting(name, value)
        except ValueError as err:
            self._show_error(err)
            return
        with self._quietly():
            for name, value in numbers.items():
                self.sliders[name].value = value
            if mode is not None:
                self.padding.value = mode
            elif "p" in settings:
                self.padding.value = "number"
        self._sync_padding()
        self._request()

    def wait(self, timeout=10.0) -> bool:
        """Block until the newest request is drawn (for scripts and tests)."""
        return self._renderer.wait(timeout)

    def step(self, delta: int = 1):
        """Move the kernel ``delta`` output cells on (back where negative), wrapping around at the ends."""
        count = self.position.max + 1
        self.position.value = (self.position.value + int(delta)) % count

    # ------------------------------------------------------------------ callbacks

    def _sync_padding(self):
        """In "valid"/"same" mode the p slider follows f and d (left alone where "same" is impossible)."""
        mode = self.padding.value
        if mode == "number":
            return
        try:
            target = 0 if mode == "valid" else same_padding(self.sliders["f"].value, self.sliders["d"].value)
        except ValueError:
            return  # the drawing explains why (even kernel); the slider keeps its value
        if target <= LIMITS["p"][1]:
            with self._quietly():
                self.sliders["p"].value = target

    def _on_p(self, change):
        if self._quiet:
            return
        if self.padding.value != "number":  # a person moved p: the padding is a number again
            with self._quietly():
                self.padding.value = "number"
        self._request()

    def _on_setting(self, change):
        if self._quiet:
            return
        self._sync_padding()
        self._request()

    def _on_position(self, change):
        self._show_frame(change["new"])

    # ------------------------------------------------------------------ drawing
    def _request(self):
        self._renderer.request(self.settings)

    def _render(self, kw):
        """Every frame of setting ``kw``, computed once; the picture changes only if it all worked."""
        text = conv_arithmetic_text(**kw)  # raises the sentence ("f = 7 > n + 2p = 5 ...") if it does not fit
        _, h_out, w_out = conv_output_shape(kw["c_in"], kw["n"], kw["n"], kw["c_out"], kw["f"], kw["p"], kw["s"],
                                            kw["d"])
        if h_out * w_out > 150:  # about a second or more: say so while the old picture stays
            self.where.value = f"drawing {h_out * w_out} frames…"
        try:
            pngs = conv_frame_pngs(**kw, cell=self._cell, font_size=self._font,
                                   max_size=self._max_size)
        except Exception:
            self._show_frame(self.position.value)  # the label names the frame on screen again
            raise
        self._shown = (tuple(pngs), w_out, kw)
        last = len(pngs) - 1
        for control in (self.play, self.position):  # max first: a smaller range clamps the value
            if control.value > last:
                control.value = last
            control.max = last
        self.arithmetic.value = info_html(text)
        macs = conv_macs(kw["c_in"], kw["n"], kw["n"], kw["c_out"], kw["f"], kw["p"], kw["s"], kw["d"])
        self.counts.value = (
            '<div class="cnnviz-counts">'
            f'<div class="cnnviz-big">output {kw["c_out"]}×{h_out}×{w_out}</div>'
            f'<div class="cnnviz-big">{conv_params(kw["c_in"], kw["c_out"], kw["f"]):,} parameters</div>'
            f'<div class="cnnviz-big">{macs:,} MACs</div></div>')
        self._show_frame(self.position.value)
        self.message.value = ""
        self.last_error = None

    def _show_frame(self, k):
        pngs, w_out, _ = self._shown  # one tuple: frames and their geometry always match
        if not pngs:
            return
        k = min(max(int(k), 0), len(pngs) - 1)
        self.view.value = pngs[k]
        i, j = divmod(k, w_out)
        self.where.value = f"output cell (row {i}, col {j}): {k + 1} of {len(pngs)}"

