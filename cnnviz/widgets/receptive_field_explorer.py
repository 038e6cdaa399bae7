"""ReceptiveFieldExplorer: build a stack of layers and see what one unit sees on a real photo.

A thin view over ``cnnviz.receptive_field`` (the exact window, sizes and
jumps, the effective receptive field) and ``cnnviz.figures.receptive`` (the
pictures), with core ipywidgets only, so it runs on Colab's ipywidgets 7
without a custom widget manager, and on ipywidgets 8.

Two renderers keep only the newest request each: the overlay (a cheap draw on
prepared bases, redone for every unit or layer change) and the effective
receptive field (up to about a second of autograd, redone only when the stack
changes, with a "computing…" note meanwhile).
"""
import math
import time

import ipywidgets as widgets

from cnnviz.data import ImageError, image_names, load_image
from cnnviz.figures.receptive import (overlay_bases, draw_overlay, unit_geometry, erf_image, growth_chart, input_photo,
                                      input_size_for, unit_note)
from cnnviz.imaging import jpeg_bytes, png_bytes
from cnnviz.receptive_field import (PRESETS, Layer, effective_receptive_field, erf_stats, input_rect, layer_sizes,
                                    receptive_field)
from cnnviz.widgets._base import (LatestOnly, View, error_html, guarded, info_html, lecture_frame, lecture_settings,
                                  scoped_style, step_buttons)

__all__ = ["ReceptiveFieldExplorer", "MAX_LAYERS", "MAX_INPUT"]

#: The deepest stack the explorer accepts (each layer is a row of controls, and the ERF grows with depth).
MAX_LAYERS = 20
#: The largest input side in pixels (the overlay and the ERF stay quick up to this).
MAX_INPUT = 1024
#: Largest side any layer's output may have (huge paddings would make the ERF network enormous).
MAX_LAYER_SIDE = 4096
CUSTOM = "(custom)"
KINDS = ("conv", "maxpool", "avgpool")
DISPLAY = 640  # the overlay is drawn about this many pixels wide (input pixels as blocks)
ERF_MACS = 1e8  # multiply-accumulates per ERF computation: more trials for small stacks, one for huge ones

WIDTHS = {"#": 28, "kind": 104, "f": 48, "remove": 40}  # the columns of a layer row, in px at scale 1

_FIELDS = (("f", "kernel size f", 1), ("s", "stride s", 1), ("p", "padding p", 0), ("d", "dilation d", 1))


def _parse_whole(text, subject, minimum, maximum=None):
    """A whole number ≥ minimum from a text box, or ValueError starting with ``subject``
    (e.g. "Layer 3: the stride s", "The input size")."""
    t = str(text).strip().replace("−", "-")
    try:
        value = int(t)
    except ValueError:
        try:
            number = float(t)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number) and number.is_integer():
            value = int(number)  # "3.0" is a whole number
        else:
            raise ValueError(f"{subject} must be a whole number, not {t!r}.") from None
    if value < minimum:
        raise ValueError(f"{subject} must be at least {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{subject} can be at most {maximum} here, not {value}.")
    return value


class _LayerRow:
    """The controls of one layer: kind, f, s, p, d and a remove button."""

    def __init__(self, layer, px, on_change, on_remove):
        self.name = layer.name  # kept while the row is edited: "conv1" stays conv1
        self.number = widgets.HTML(layout=widgets.Layout(width=px(WIDTHS["#"]), align_self="center"))
        self.kind = widgets.Dropdown(options=list(KINDS), value=layer.kind,
                                     layout=widgets.Layout(width=px(WIDTHS["kind"])))
        self.fields = {}
        for key, label, _ in _FIELDS:
            box = widgets.Text(value=str(getattr(layer, key)), continuous_update=False,
                               layout=widgets.Layout(width=px(WIDTHS["f"])))
            box.add_class("cnnviz-cell")
            self.fields[key] = box
        self.remove = widgets.Button(description="✕", tooltip="remove this layer",
                                     layout=widgets.Layout(width=px(WIDTHS["remove"])))
        self.kind.observe(on_change, names=["value"])
        for box in self.fields.values():
            box.observe(on_change, names=["value"])
        self.remove.on_click(lambda _button: on_remove(self))
        self.box = widgets.HBox([self.number, self.kind] + list(self.fields.values()) + [self.remove])

    def set(self, layer):
        self.name = layer.name
        self.kind.value = layer.kind
        for key, _, _ in _FIELDS:
            self.fields[key].value = str(getattr(layer, key))

    def read(self, k) -> Layer:
        values = {key: _parse_whole(self.fields[key].value, f"Layer {k}: the {label}", minimum, MAX_LAYER_SIDE)
                  for key, label, minimum in _FIELDS}
        try:
            return Layer(self.kind.value, values["f"], values["s"], values["p"], values["d"], name=self.name)
        except ValueError as err:
            raise ValueError(f"Layer {k}: {err}") from None


def _key(layers):
    return tuple((layer.kind, layer.f, layer.s, layer.p, layer.d) for layer in layers)


def _erf_input_size(layers, n):
    """A side m ≤ n on which the ERF of the centre unit is the same as on n × n: its whole
    theoretical field (plus a margin) fits inside, so no padding is involved. Smaller is faster."""
    rows = receptive_field(layers)
    r, jump = rows[-1].r, rows[-1].j
    margin = max(8, r // 4)
    start = r + 2 * margin + 2 * jump
    for m in range(start, min(start + 2 * jump + 2, n)):
        try:
            h, w = layer_sizes(layers, (m, m))[-1]
            t, l, b, rr = input_rect(layers, len(layers), h // 2, w // 2, (m, m), clip=False)
        except ValueError:
            continue
        if min(t, l) >= margin and max(b, rr) <= m - 1 - margin:
            return m
    return n


def _erf_macs(layers, m, channels):
    """Multiply-accumulates of one forward pass of the ERF network on an m × m input (convolutions only)."""
    total, c_in = 0, 1
    for layer, (h, w) in zip(layers, layer_sizes(layers, (m, m))[1:]):
        if layer.kind == "conv":
            total += h * w * layer.f * layer.f * c_in * channels
            c_in = channels
    return total


class ReceptiveFieldExplorer(View):
    """Build a stack of layers (or pick a preset), choose a unit, and see its receptive field.

    Parameters: ``preset`` (a name from ``cnnviz.receptive_field.PRESETS`` or
    a list of ``Layer``), ``image`` (an embedded photo's name, a path, bytes
    or an array), ``input_size`` (side of the square input; default the
    preset's own, e.g. 227 for AlexNet, else 224), ``scale`` (1.0 in a
    notebook, 1.4 for a projector), ``threaded`` (render on worker threads
    keeping only the newest request; ``False`` renders synchronously),
    ``channels``, ``seed`` (for the ERF's random network).

    Left: one row per layer (kind, kernel f, stride s, padding p, dilation d);
    right: the photo as the network gets it (centre-cropped, resized to the
    input size) with the chosen unit's field bright and framed; below: the
    field size and jump per layer, and the effective receptive field of the
    last layer's centre unit beside its theoretical square. Bad entries show
    a sentence naming the layer and keep the last good pictures.
    """

    def __init__(self, preset="3×[3×3]", image="astronaut", *, input_size=None, scale=None, lecture=None,
                 threaded=True, channels=8, seed=0):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ValueError(f"No preset named {preset!r}; choose one of: {', '.join(PRESETS)}.")
            layers, start = tuple(PRESETS[preset]), preset
        else:
            layers, start = tuple(preset), CUSTOM
        n = input_size_for(start) if input_size is None else input_size
        self._check(layers, n)  # a bad start is an error for the caller, not a message
        self.channels, self.seed = int(channels), int(seed)
        self._scale = scale
        self._erf_token = 0
        self._growth_key = None
        self.overlay = self.erf = self.erf_stats = None  # the last good pictures' data
        self._overlay_renderer = LatestOnly(self._render_overlay, self._show_error, threaded=threaded)
        self._erf_renderer = LatestOnly(self._render_erf, self._show_erf_error, threaded=threaded)

        px = self._px
        g = lambda callback: guarded(callback, self._show_error)  # noqa: E731
        self.preset = widgets.Dropdown(options=[CUSTOM] + list(PRESETS), value=start, description="preset",
                                       layout=widgets.Layout(width=px(330)))
        names = image_names()
        self.photo = widgets.Dropdown(options=names, value=image if isinstance(image, str) and image in names else None,
                                      description="photo", layout=widgets.Layout(width=px(250)))
        wide = {"description_width": "initial"}  # labels in full, never "input…"
        self.size = widgets.Text(value=str(n), description="input size (px)", continuous_update=False,
                                 style=wide, layout=widgets.Layout(width=px(200)))
        self.size.add_class("cnnviz-cell")
        self.rows = []
        self.stack = widgets.VBox()
        self.add = widgets.Button(description="+ add layer", tooltip="append a layer (a copy of the last one)",
                                  layout=widgets.Layout(width=px(150)))
        aligned = {"description_width": px(64)}  # the three unit controls line up
        self.layer = widgets.Dropdown(description="layer", style=aligned, layout=widgets.Layout(width=px(390)))
        self.row = widgets.IntSlider(description="row", min=0, max=0, continuous_update=True, style=aligned,
                                     layout=widgets.Layout(width=px(390)))
        self.col = widgets.IntSlider(description="column", min=0, max=0, continuous_update=True, style=aligned,
                                     layout=widgets.Layout(width=px(390)))
        self.centre = widgets.Button(description="centre unit", layout=widgets.Layout(width=px(150)))
        self.message = widgets.HTML(layout=widgets.Layout(width=px(390)))
        self.overlay_view = widgets.Image(format="jpeg", layout=widgets.Layout(width="100%", max_width=px(DISPLAY)))
        self.note = widgets.HTML()
        self.growth_view = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=px(800)))
        self.erf_view = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=px(480)))
        self.erf_note = widgets.HTML()

        self.preset.observe(g(self._on_preset), names=["value"])
        self.photo.observe(g(self._on_photo), names=["value"])
        self.size.observe(g(self._on_edit), names=["value"])
        self.add.on_click(g(self._on_add))
        self.layer.observe(g(self._on_layer), names=["value"])
        self.row.observe(g(self._on_unit), names=["value"])
        self.col.observe(g(self._on_unit), names=["value"])
        self.centre.on_click(g(lambda _button: self.set_unit(self.layer.value)))

        header = widgets.HBox([widgets.HTML(f"<b>{text}</b>",
                                            layout=widgets.Layout(width=px(WIDTHS.get(text, WIDTHS["f"]))))
                               for text in ("#", "kind", "f", "s", "p", "d")])
        title = widgets.HTML('<span class="cnnviz-title">Receptive field explorer: which input pixels can one '
                             'unit see?</span>')
        left = widgets.VBox([widgets.HTML("<b>the stack</b>: kernel f, stride s, padding p, dilation d"), header,
                             self.stack, self.add, self.message,
                             widgets.HTML("<b>the unit</b> (default: the centre one)"), self.layer, self.row,
                             self.col, self.centre],
                            layout=widgets.Layout(width=px(400), min_width=px(400)))
        right = widgets.VBox([self.overlay_view, self.note], layout=widgets.Layout(flex="1 1 0", min_width="0"))
        growth = widgets.VBox([widgets.HTML("<b>receptive field per layer</b>"), self.growth_view],
                              layout=widgets.Layout(flex="3 1 0", min_width=px(360)))
        erf = widgets.VBox([widgets.HTML("<b>effective receptive field</b> of the last layer's centre unit"),
                            self.erf_view, self.erf_note], layout=widgets.Layout(flex="2 1 0", min_width=px(300)))
        self.big = widgets.HTML()  # the lecture layout's numbers in large type
        self.add_class("cnnviz-rf")
        if self.lecture:  # the hall looks at the photo and its field; the instructor steps through the layers
            title.value = '<span class="cnnviz-title">Receptive field: what one unit sees</span>'
            self.overlay_view.layout = widgets.Layout(width="100%", max_width=px(400), margin="0")
            self.growth_view.layout.margin = self.erf_view.layout.margin = "0"
            narrow = {"description_width": px(42)}
            self.preset.description = ""
            self.layer.description = ""
            for control in (self.preset, self.layer):
                control.layout.width = px(182)
            for slider, name in ((self.row, "row"), (self.col, "col")):
                slider.description, slider.style = name, narrow
                slider.layout.width = px(182)
            self.centre.layout.width = "auto"
            self.message.layout.width = "auto"
            prev, nxt = step_buttons(self.step, self._show_error, what="layer")
            stack = widgets.VBox([widgets.HBox([self.photo, self.size], layout=widgets.Layout(flex_flow="row wrap")),
                                  widgets.HTML("<b>the stack</b>: kernel f, stride s, padding p, dilation d"), header,
                                  self.stack, self.add])
            self.children = lecture_frame(
                self, "cnnviz-rf", scale, title=title, picture=self.overlay_view,
                primary=[self.preset, widgets.HBox([prev, widgets.HTML("<b>layer</b>"), nxt],
                                                   layout=widgets.Layout(align_items="center", grid_gap=px(6))),
                         self.layer, self.row, self.col, self.centre],
                side=[self.big, self.message],
                below=[self.note, stack,
                       widgets.HBox([growth, erf], layout=widgets.Layout(grid_gap=px(16), flex_flow="row wrap"))],
                side_width=255, picture_basis=540)
        else:
            self.children = [scoped_style(self, "cnnviz-rf", scale), title,
                             widgets.HBox([self.preset, self.photo, self.size],
                                          layout=widgets.Layout(flex_flow="row wrap")),
                             widgets.HBox([left, right], layout=widgets.Layout(grid_gap=px(16))),
                             widgets.HBox([growth, erf], layout=widgets.Layout(grid_gap=px(16), flex_flow="row wrap"))]

        self._photo = load_image(image, max_side=2 * MAX_INPUT)  # uint8 (H, W, 3): cropped, resized per input size
        self._n = None
        self._layers = ()
        self._fill_rows(layers)
        self._apply(layers, n, keep_layer=False)

    # ------------------------------------------------------------------ public API
    @property
    def layers(self):
        """The last valid stack: a tuple of ``Layer``."""
        return self._layers

    @property
    def input_size(self) -> int:
        """Side of the square input, in pixels."""
        return self._n

    @property
    def unit(self):
        """(layer index, row, column) of the unit shown; layer index 0 is the input."""
        return self.layer.value, self.row.value, self.col.value

    @property
    def image(self):
        """The photo as the network gets it: uint8 (n, n, 3)."""
        return self._input.copy()

    def set_layers(self, layers, input_size=None):
        """Show a stack (a list of ``Layer``) on an ``input_size`` input (default: keep the current one)."""
        layers = tuple(layers)
        n = self._n if input_size is None else input_size
        try:
            self._check(layers, n)
        except ValueError as err:
            self._show_error(err, source="stack")
            return
        self._fill_rows(layers)
        with self._quietly():
            self.size.value = str(n)
            self.preset.value = self._matching_preset(layers)
        self._apply(layers, n, keep_layer=False)

    def step(self, delta: int = 1):
        """Show the centre unit ``delta`` layers deeper (shallower where negative), stopping at the ends."""
        self.set_unit(min(max(self.layer.value + int(delta), 0), len(self._layers)))

    def set_unit(self, layer_index, i=None, j=None):
        """Show unit (i, j) of a layer (0 = the input); ``None`` means the centre row or column."""
        sizes = layer_sizes(self._layers, (self._n, self._n))
        if not (isinstance(layer_index, int) and 0 <= layer_index < len(sizes)):
            raise ValueError(f"layer_index must be 0 (the input) to {len(sizes) - 1}, got {layer_index!r}.")
        h, w = sizes[layer_index]
        i = h // 2 if i is None else i
        j = w // 2 if j is None else j
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"Unit ({i}, {j}) is outside layer {layer_index}, whose output is {h}×{w}.")
        with self._quietly():
            self.layer.value = layer_index
            self.row.max, self.col.max = h - 1, w - 1
            self.row.value, self.col.value = i, j
        self._request_overlay()

    def set_image(self, source):
        """Use a new photo: an embedded name, a path, image bytes or an array."""
        try:
            self._photo = load_image(source, max_side=2 * MAX_INPUT)
        except ImageError as err:
            self._show_error(err)
            return
        self._clear_message("other")
        if not (isinstance(source, str) and source == self.photo.value):
            with self._quietly():
                self.photo.value = source if isinstance(source, str) and source in image_names() else None
        self._prepare_photo()
        self._request_overlay()

    def wait(self, timeout=30.0) -> bool:
        """Block until the newest overlay and ERF are drawn (for scripts and tests)."""
        return self._overlay_renderer.wait(timeout) and self._erf_renderer.wait(timeout)

    # ------------------------------------------------------------------ helpers
    def _px(self, v):
        return f"{round(v * self._scale)}px"


    @staticmethod
    def _check(layers, n):
        """ValueError with a sentence if the stack or input size cannot be shown."""
        for k, layer in enumerate(layers, start=1):
            if not isinstance(layer, Layer):
                raise ValueError(f"Layer {k} must be a cnnviz.receptive_field.Layer, got {layer!r}.")
        if len(layers) > MAX_LAYERS:
            raise ValueError(f"A stack of {len(layers)} layers is too deep for the explorer: at most {MAX_LAYERS}.")
        if len(layers) == 0:
            raise ValueError("The stack needs at least one layer.")
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"The input size must be a whole number of pixels, not {n!r}.")
        if not 1 <= n <= MAX_INPUT:
            raise ValueError(f"The input size must be between 1 and {MAX_INPUT} pixels, not {n} "
                             "(larger inputs would make the pictures slow).")
        sizes = layer_sizes(layers, (n, n))  # names the first layer whose output would be empty
        for k, (h, w) in enumerate(sizes[1:], start=1):
            if max(h, w) > MAX_LAYER_SIDE:
                raise ValueError(f"Layer {k}'s output would be {h}×{w}, larger than {MAX_LAYER_SIDE}: "
                                 "reduce its padding.")

    def _matching_preset(self, layers):
        return next((name for name, p in PRESETS.items() if _key(p) == _key(layers)), CUSTOM)

    def _fill_rows(self, layers):
        """Rows of controls showing ``layers``; rows are reused, so their observers stay in place."""
        with self._quietly():
            while len(self.rows) < len(layers):
                self.rows.append(_LayerRow(layers[len(self.rows)], self._px, guarded(self._on_edit, self._show_error),
                                           guarded(self._on_remove, self._show_error)))
            del self.rows[len(layers):]
            for k, (row, layer) in enumerate(zip(self.rows, layers), start=1):
                row.set(layer)
                row.number.value = f"<b>{k}</b>"
                self._sync_dilation(row)
            self.stack.children = [row.box for row in self.rows]

    def _sync_dilation(self, row):
        pooling = row.kind.value != "conv"
        row.fields["d"].disabled = pooling  # pooling has no dilation here
        if pooling and row.fields["d"].value.strip() != "1":
            with self._quietly():
                row.fields["d"].value = "1"

    def _read(self):
        """The stack and input size the controls describe, or ValueError with a sentence."""
        if not self.size.value.strip():
            raise ValueError("The input size is empty: type a whole number of pixels, e.g. 224.")
        n = _parse_whole(self.size.value, "The input size", 1)
        layers = tuple(row.read(k) for k, row in enumerate(self.rows, start=1))
        self._check(layers, n)
        return layers, n

    # ------------------------------------------------------------------ callbacks
    def _on_preset(self, change):
        if change["new"] == CUSTOM or self._quiet:
            return
        layers = tuple(PRESETS[change["new"]])
        self._fill_rows(layers)
        n = input_size_for(change["new"])
        with self._quietly():
            self.size.value = str(n)
        self._clear_message("stack")
        self._apply(layers, n, keep_layer=False)

    def _on_edit(self, change):
        if self._quiet:
            return
        for row in self.rows:
            self._sync_dilation(row)
        try:
            layers, n = self._read()
        except ValueError as err:
            self._show_error(err, source="stack")
            return
        with self._quietly():
            self.preset.value = self._matching_preset(layers)
        self._clear_message("stack")
        self._apply(layers, n)

    def _on_add(self, _button=None):
        if len(self.rows) >= MAX_LAYERS:
            self._show_error(ValueError(f"A stack of more than {MAX_LAYERS} layers is too deep for the explorer; "
                                        "remove one first."), source="stack")
            return
        try:
            last = self.rows[-1].read(len(self.rows)) if self.rows else Layer("conv", 3, 1, 1)
        except ValueError:
            last = Layer("conv", 3, 1, 1)
        new = Layer(last.kind, last.f, last.s, last.p, last.d)  # a copy, without the name
        with self._quietly():
            self.rows.append(_LayerRow(new, self._px, guarded(self._on_edit, self._show_error),
                                       guarded(self._on_remove, self._show_error)))
            self.rows[-1].number.value = f"<b>{len(self.rows)}</b>"
            self._sync_dilation(self.rows[-1])
            self.stack.children = [row.box for row in self.rows]
        self._on_edit(None)

    def _on_remove(self, row):
        if len(self.rows) <= 1:
            self._show_error(ValueError("The stack needs at least one layer."), source="stack")
            return
        self.rows.remove(row)
        with self._quietly():
            for k, r in enumerate(self.rows, start=1):
                r.number.value = f"<b>{k}</b>"
            self.stack.children = [r.box for r in self.rows]
        self._on_edit(None)

    def _on_photo(self, change):
        if change["new"] is not None and not self._quiet:
            self.set_image(change["new"])

    def _on_layer(self, change):
        if self._quiet or change["new"] is None:
            return
        self.set_unit(change["new"])

    def _on_unit(self, change):
        if not self._quiet:
            self._request_overlay()

    # ------------------------------------------------------------------ state changes
    def _apply(self, layers, n, keep_layer=True):
        """Make (layers, n) the current stack: unit controls, photo, overlay, and a new ERF.
        The chosen layer is kept if it still exists (``keep_layer``), else the last one is shown."""
        stack_changed = _key(layers) != _key(self._layers) or n != self._n
        old_layer = self.layer.value
        self._layers, photo_changed = tuple(layers), n != self._n
        self._n = n
        if photo_changed:
            self._prepare_photo()
        sizes = layer_sizes(layers, (n, n))
        options = [(f"{k}: {'input' if k == 0 else rows.name} → {h}×{w}", k)
                   for k, (rows, (h, w)) in enumerate(zip(receptive_field(layers), sizes))]
        keep = old_layer if keep_layer and isinstance(old_layer, int) and 0 <= old_layer < len(sizes) else None
        with self._quietly():
            self.layer.options = options
            self.layer.value = len(layers) if keep is None else keep
        self.set_unit(self.layer.value)  # the centre unit: sizes may have changed
        if stack_changed:
            self._request_erf()

    def _prepare_photo(self):
        self._input = input_photo(self._photo, self._n)  # (n, n, 3)
        self._zoom = max(1, round(DISPLAY / self._n))
        self._line = max(2, round(self._n * self._zoom / 200))
        self._bright, self._dim = overlay_bases(self._input, self._zoom)

    def _request_overlay(self):
        k, i, j = self.unit
        self._overlay_renderer.request((self._bright, self._dim, self._zoom, self._line,  # a snapshot: the
                                        self._layers, self._n, k, i, j))  # worker never reads changing state

    def _request_erf(self):
        self._erf_token += 1
        self.erf_note.value = info_html("<i>computing the effective receptive field…</i>")
        self._erf_renderer.request((self._layers, self._n, self._erf_token))

    # ------------------------------------------------------------------ rendering (worker threads)
    def _render_overlay(self, req):
        bright, dim, zoom, line, layers, n, k, i, j = req
        rect, centre = unit_geometry(layers, k, i, j, (n, n))
        out = draw_overlay(bright, dim, zoom, rect, centre, line)
        self.overlay_view.value = jpeg_bytes(out, quality=88)
        self.overlay = out
        self.note.value = info_html(unit_note(layers, k, i, j, (n, n)))
        row = receptive_field(layers)[k]
        self.big.value = (f'<div class="cnnviz-big">r = {row.r} px</div>'
                          f'<div class="cnnviz-big">jump {row.j} px</div>')
        if self._growth_key != (_key(layers), n, k):  # the chart changes with the stack and the layer only
            self.growth_view.value = png_bytes(growth_chart(layers, input_size=n, highlight=k,
                                                            font_size=22))
            self._growth_key = (_key(layers), n, k)
        self._clear_message("other")

    def _render_erf(self, req):
        layers, n, token = req
        if token != self._erf_token:
            return  # a newer stack is waiting
        t0 = time.perf_counter()
        m = _erf_input_size(layers, n)
        trials = int(min(16, max(1, ERF_MACS // max(_erf_macs(layers, m, self.channels), 1))))
        erf = effective_receptive_field(layers, (m, m), channels=self.channels, seed=self.seed, trials=trials)
        picture = erf_image(erf, layers, display=480)
        h, w = layer_sizes(layers, (m, m))[-1]
        t, l, b, r = input_rect(layers, len(layers), h // 2, w // 2, (m, m), clip=False)
        centre = (min(max(round((t + b) / 2), 0), m - 1), min(max(round((l + r) / 2), 0), m - 1))
        stats = erf_stats(erf, 0.95, centre=centre)
        if token != self._erf_token:
            return  # the stack changed while this one was computed: its result is not shown
        rf = receptive_field(layers)[-1].r
        width = 2 * stats.radius + 1
        self.erf_view.value = png_bytes(picture)
        self.erf, self.erf_stats = erf, stats
        self.erf_note.value = info_html(
            f"theoretical field <b>{rf}×{rf}</b> px (amber frame); 95 % of the gradient within "
            f"<b>{width}×{width}</b> px (dashed red); std {stats.std[0]:.1f} px<br>"
            f"random weights, ReLU, {self.channels} channels, mean of {trials} draw{'s' if trials > 1 else ''}, "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms")

    # ------------------------------------------------------------------ messages
    _kept = "picture"

    def _error_suffix(self, err, source):
        return " The pictures still show the last valid stack." if source == "stack" else ""

    def _show_erf_error(self, err):
        self.last_error = err
        self.erf_note.value = error_html(str(err) if isinstance(err, ValueError) else
                                         f"The effective receptive field failed ({type(err).__name__}: {err}).")
