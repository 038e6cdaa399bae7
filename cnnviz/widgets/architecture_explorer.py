"""ArchitectureExplorer: any model of the zoo as a block diagram, its receptive field and its table.

A thin view over ``cnnviz.models`` (the zoo), ``cnnviz.summary`` (shapes,
parameters, MACs, receptive fields) and ``cnnviz.figures.architecture`` (the
SVG diagram), with core ipywidgets only (HTML views), so it runs on Colab's
ipywidgets 7 and on ipywidgets 8. Models are built on the meta device and
their summaries cached per (model, input size): a ResNet-152 takes well
under a second once, and nothing after. Every change goes through one
renderer that keeps only the newest request.
"""
import html
import threading
from collections import OrderedDict

import ipywidgets as widgets

from cnnviz.figures.architecture import architecture_svg, diagram_units, human, unit_label
from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, View, guarded, info_html, lecture_frame, lecture_settings,
                                  scoped_style, step_buttons, widget_style)

__all__ = ["ArchitectureExplorer", "analyse", "MIN_INPUT", "MAX_INPUT", "FAMILY_NAMES"]

#: The input sides the explorer accepts, in pixels (square inputs).
MIN_INPUT, MAX_INPUT = 8, 1024
#: How the model menu names each family.
FAMILY_NAMES = {"lenet": "LeNet", "alexnet": "AlexNet", "vgg": "VGG", "nin": "NiN", "googlenet": "GoogLeNet",
                "resnet": "ResNet", "densenet": "DenseNet", "shapesnet": "ShapesNet"}
SIZE_BY = (("activations", "activations"), ("parameters", "params"), ("MACs", "macs"))
DIAGRAM_HEIGHT = 440

_CACHE = OrderedDict()  # (name, side) -> (Summary, units) or the InputTooSmall it raised
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def analyse(name: str, side: int):
    """``(summary, units)`` of model ``name`` on a square ``side``×``side`` input, cached.

    Built on the meta device (shapes only, no memory); ``units`` are
    ``figures.architecture.diagram_units`` of the summary. Raises
    ``InputTooSmall`` (a ValueError) for an input the model cannot take, and
    remembers that too, so asking again is free.
    """
    import torch

    from cnnviz import models
    from cnnviz.summaries import summary

    key = (name, int(side))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            hit = _CACHE[key]
            if isinstance(hit, Exception):
                raise hit
            return hit
    channels = models.info(name).input_size[0]
    try:
        with torch.device("meta"):
            model = models.get(name)
        s = summary(model, (channels, side, side))
        result = (s, tuple(diagram_units(s)))
    except ValueError as err:  # InputTooSmall, InputSizeMismatch: remembered, so a second look is free
        result = err
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    if isinstance(result, Exception):
        raise result
    return result


def _side_of(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"The input size must be a whole number of pixels, not {value!r}.")
    if not MIN_INPUT <= value <= MAX_INPUT:
        raise ValueError(f"The input size must be between {MIN_INPUT} and {MAX_INPUT} pixels, not {value}.")
    return value


def _default_unit(units):
    """The last unit with a receptive field: the end of the feature extractor, where the field is largest."""
    with_field = [k for k, u in enumerate(units) if u.receptive_field is not None]
    return with_field[-1] if with_field else len(units) - 1


def _field(v):
    if v is None:
        return ""
    if isinstance(v, tuple):
        return "×".join(f"{x:g}" for x in v)
    return f"{v:g}"


def _side(v):
    return None if v is None else (max(v) if isinstance(v, tuple) else v)


def table_html(summary, units, highlight=None) -> str:
    """The diagram's units as an HTML table (one row per block, the chosen one highlighted), with the
    whole model's totals from ``summary`` underneath."""
    head = ("#", "block", "output", "params", "MACs", "activations", "RF", "jump")
    right = ' style="text-align:right"'

    def count(n):  # compact on screen, exact on hover
        return f'<span title="{n:,}">{human(n)}</span>'

    rows = []
    for k, u in enumerate(units):
        mark = ' class="cnnviz-chosen"' if k == highlight else ""
        # the summary's name (to find the row there), and the class of a block whose label is its name
        small = u.name if unit_label(u) != u.name else u.kind
        label = f'{html.escape(unit_label(u))} <span class="cnnviz-name">{html.escape(small)}</span>'
        cells = (str(k), label, "×".join(map(str, u.output_shape)), count(u.params), count(u.macs),
                 count(u.activations), _field(u.receptive_field), _field(u.jump))
        rows.append(f"<tr{mark}>" + "".join(f"<td{right if i >= 3 else ''}>{c}</td>" for i, c in enumerate(cells))
                    + "</tr>")
    th = "".join(f"<th{right if i >= 3 else ''}>{h}</th>" for i, h in enumerate(head))
    foot = (f"<tr><th colspan='3' style='text-align:left'>whole model (batch norm, ReLU, ... included)</th>"
            f"<th{right}>{summary.total_params:,}</th><th{right}>{summary.total_macs:,}</th>"
            f"<th{right}>{summary.total_activations:,}</th><th></th><th></th></tr>")
    return (f'<div class="cnnviz-table"><table><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f"<tfoot>{foot}</tfoot></table></div>")


def totals_html(summary) -> str:
    """The whole model's totals in one line: parameters, MACs, activations and their memory."""
    return info_html(
        f"<b>{human(summary.total_params)}</b> parameters ({summary.param_bytes / 1e6:,.1f} MB) · "
        f"<b>{human(summary.total_macs)}</b> MACs per image · <b>{human(summary.total_activations)}</b> "
        f"activation values, forward memory <b>{summary.activation_bytes / 1e6:,.1f} MB</b> per image"
        f"<br><small>MACs: multiply–accumulates of convolutions and linear layers (FLOPs ≈ 2 × MACs); "
        f"memory in float32.</small>")


def field_svg(rf, side, px=150) -> str:
    """The image (grey square, ``side`` px) and a receptive field of ``rf`` px centred on it (red), to scale."""
    big = max(rf, side)
    s = px / big
    img, r = side * s, rf * s
    c = px / 2 + 4
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{px + 8}" height="{px + 8}" '
            f'viewBox="0 0 {px + 8} {px + 8}">'
            f'<rect x="{c - img / 2:.1f}" y="{c - img / 2:.1f}" width="{img:.1f}" height="{img:.1f}" fill="#cfd8e3"/>'
            f'<rect x="{c - r / 2:.1f}" y="{c - r / 2:.1f}" width="{r:.1f}" height="{r:.1f}" fill="#d62728" '
            f'fill-opacity="0.18" stroke="#d62728" stroke-width="3"/></svg>')


def unit_html(units, k, side) -> str:
    """What the chosen block is and how far it sees, with the field drawn on the image to scale."""
    u = units[k]
    rf = _side(u.receptive_field)
    what = (f"<b>{k}: {html.escape(unit_label(u))}</b> &nbsp;<code>{html.escape(u.name)}</code> "
            f"({html.escape(u.kind)})<br>output <b>{'×'.join(map(str, u.output_shape))}</b> · "
            f"{u.params:,} parameters · {u.macs:,} MACs")
    if rf is None:
        sees = ("no receptive field of its own: a fully connected layer sees the <b>whole image</b> "
                "(every input pixel)")
        picture = ""
    else:
        share = "larger than the image: it reaches into the padding" if rf > side else f"{rf / side:.0%} of its side"
        sees = (f"receptive field <b>{_field(u.receptive_field)} px</b> of the {side}×{side} image ({share}); "
                f"jump <b>{_field(u.jump)} px</b>: neighbouring units of this block look at windows "
                f"{_field(u.jump)} px apart")
        picture = field_svg(rf, side)
    return (f'<div style="display:flex;gap:14px;align-items:center">{picture}'
            f'<div style="color:#222">{what}<br>{sees}</div></div>')


class ArchitectureExplorer(View):
    """Pick a model and an input size; see its blocks, the receptive field growing with depth, and its table.

    Parameters: ``model`` (a name from ``cnnviz.models.available()``),
    ``input_size`` (side of the square input; default the model's own, e.g.
    227 for AlexNet), ``size_by`` (``"activations"``, ``"params"`` or
    ``"macs"``: what a block's height shows), ``scale`` (1.0 in a notebook,
    1.4 for a projector), ``threaded`` (render on a worker thread keeping only
    the newest request; ``False`` renders synchronously, for tests and scripts).

    The block slider chooses one block: the diagram frames it, and the line
    under the diagram gives its receptive field and jump, drawn to scale on
    the image. An input the model cannot take (AlexNet at 32×32) is explained
    in a sentence and the last good view stays.
    """

    _kept = "diagram"

    def __init__(self, model="vgg16", input_size=None, *, size_by="activations", scale=None, lecture=None,
                 threaded=True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        from cnnviz import models

        names = models.available()
        if model not in names:
            models.info(model)  # the registry's own sentence (with a "did you mean")
        if size_by not in dict((v, v) for _, v in SIZE_BY):
            raise ValueError(f"size_by must be 'activations', 'params' or 'macs', not {size_by!r}.")
        side = models.info(model).input_size[1] if input_size is None else _side_of(input_size)
        analyse(model, side)  # a start that cannot be shown is the caller's error (InputTooSmall), not a message
        self._scale = scale
        # the SVG fills the widget's width: a narrower drawing is shown larger (scale 1.4: type about 1.3× larger)
        self._svg_width = round(1100 / max(scale, 1.0) ** 0.6)
        self._svg_height = DIAGRAM_HEIGHT
        if self.lecture:  # drawn small and shown 1.5× larger: its smallest text (12) at 18 px on screen
            self._svg_width, self._svg_height = round(550 * scale / LECTURE_SCALE), 255
        self._shown = None  # (name, side, size_by, unit) on screen
        self._summary, self._units = None, ()
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        px = lambda v: f"{round(v * scale)}px"  # noqa: E731
        g = lambda callback: guarded(callback, self._show_error)  # noqa: E731
        wide = {"description_width": "initial"}

        self.model = widgets.Dropdown(
            options=[(f"{FAMILY_NAMES.get(models.info(n).family, models.info(n).family)}: {n}", n) for n in names],
            value=model, description="model", style=wide, layout=widgets.Layout(width=px(290)))
        self.size = widgets.IntText(value=side, description="input (px)", style=wide,
                                    layout=widgets.Layout(width=px(170)))
        self.size.add_class("cnnviz-cell")
        self.default = widgets.Button(description="default size", tooltip="the input size of the model's paper",
                                      layout=widgets.Layout(width=px(130)))
        self.size_by = widgets.ToggleButtons(options=list(SIZE_BY), value=size_by,
                                             tooltips=["values each block outputs per image (memory)",
                                                       "learned weights and biases", "multiply–accumulates"],
                                             style={"button_width": px(110)}, layout=widgets.Layout(width="auto"))
        self.unit = widgets.IntSlider(value=0, min=0, max=0, description="block", continuous_update=True,
                                      style={"description_width": px(60)}, layout=widgets.Layout(width="100%"))
        self.message = widgets.HTML()
        self.diagram = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.diagram.add_class("cnnviz-diagram")
        self.details = widgets.HTML()
        self.totals = widgets.HTML()
        self.table = widgets.HTML(layout=widgets.Layout(width="100%"))

        self.model.observe(g(self._on_model), names=["value"])
        self.size.observe(g(self._on_change), names=["value"])
        self.size_by.observe(g(self._on_change), names=["value"])
        self.unit.observe(g(self._on_change), names=["value"])
        self.default.on_click(g(self._on_default))

        title = widgets.HTML('<span class="cnnviz-title">Architecture explorer: blocks, receptive field, '
                             'parameters and MACs</span>')
        height_label = widgets.HTML("block height:", layout=widgets.Layout(width="auto"))
        controls = widgets.HBox([self.model, self.size, self.default,
                                 widgets.HBox([height_label, self.size_by], layout=widgets.Layout(
                                     align_items="center", grid_gap=px(6)))],
                                layout=widgets.Layout(flex_flow="row wrap", align_items="center", grid_gap=px(10)))
        fs = round(15 * scale)
        style = widget_style(self, "cnnviz-arch", scale, f"""
& .cnnviz-diagram svg {{ max-width: 100% !important; }}
& .cnnviz-table {{ max-height: {round(430 * scale)}px; overflow: auto; border: 1px solid #ddd; }}
& .cnnviz-table table {{ border-collapse: collapse; font-size: {round(fs * 0.95)}px; width: 100%; }}
& .cnnviz-table th, & .cnnviz-table td {{ padding: 3px 8px; border-bottom: 1px solid #eee;
  white-space: nowrap; }}
& .cnnviz-table thead th {{ position: sticky; top: 0; background: #f4f6f8; }}
& .cnnviz-table tfoot th {{ background: #f4f6f8; border-top: 2px solid #999; }}
& .cnnviz-table tr.cnnviz-chosen td {{ background: #ffe38a; font-weight: 600; }}
& .cnnviz-table .cnnviz-name {{ font-size: 0.8em; color: #555; }}
""")
        self.big = widgets.HTML()  # the lecture layout's numbers in large type
        self.add_class("cnnviz-arch")
        if self.lecture:  # the hall looks at the blocks; the instructor picks the model and steps the block
            title.value = '<span class="cnnviz-title">Architecture explorer</span>'
            shown = round(self._svg_width * 1.5)
            self.diagram.layout = widgets.Layout(width=f"{shown}px", max_width="100%")
            self.model.description, self.model.layout.width = "", px(220)
            self.unit.layout.width = px(260)
            self.unit.style.description_width = px(50)
            prev, nxt = step_buttons(self.step, self._show_error, what="block")
            self.children = lecture_frame(
                self, "cnnviz-arch", scale, title=title, picture=self.diagram,
                primary=[self.model, widgets.HBox([prev, nxt]), self.unit, self.big],
                side=[self.message],
                below=[style, widgets.HBox([self.size, self.default, controls.children[-1]], layout=widgets.Layout(
                           flex_flow="row wrap", align_items="center", grid_gap=px(10))),
                       self.details, self.totals, self.table],
                side_width=400, picture_basis=2000,
                css="& .cnnviz-diagram svg { max-width: none !important; width: 100%; }"
                    "& .cnnviz-table th, & .cnnviz-table td { white-space: normal; overflow-wrap: anywhere; "
                    "padding: 3px 4px; }"
                    "& .widget-html-content { max-width: 100%; }")
            self.table.layout.width = "auto"
        else:
            self.children = [scoped_style(self, "cnnviz-arch", scale), style, title, controls, self.message,
                             self.diagram, self.unit, self.details, self.totals, self.table]
        self._request(unit=None)

    # ------------------------------------------------------------------ public API
    @property
    def summary(self):
        """The ``cnnviz.summary`` of the model on screen."""
        return self._summary

    @property
    def units(self):
        """The diagram's blocks (rows of the summary, grouped by ``diagram_units``)."""
        return self._units

    @property
    def shown(self):
        """``dict(model, input_size, size_by, unit)`` of the view on screen (the last one that worked)."""
        if self._shown is None:
            return None
        return dict(zip(("model", "input_size", "size_by", "unit"), self._shown))

    def set(self, model=None, input_size=None, size_by=None, unit=None):
        """Change several settings at once; one new view. A new ``model`` starts at its own input size
        unless ``input_size`` is given; ``unit`` is a block index."""
        with self._quietly():
            if model is not None:
                self.model.value = model
                if input_size is None:
                    self.size.value = self._default_side(model)
            if input_size is not None:
                self.size.value = input_size
            if size_by is not None:
                self.size_by.value = size_by
            if unit is not None:
                self.unit.value = min(max(int(unit), self.unit.min), self.unit.max)
        self._request(unit=unit if unit is not None else (None if model is not None else self.unit.value))

    def step(self, delta: int = 1):
        """Choose the block ``delta`` blocks deeper (shallower where negative), stopping at the ends."""
        self.unit.value = min(max(self.unit.value + int(delta), self.unit.min), self.unit.max)

    def wait(self, timeout=30.0) -> bool:
        """Block until the newest request is drawn (for scripts and tests)."""
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ callbacks
    @staticmethod
    def _default_side(name):
        from cnnviz import models
        return models.info(name).input_size[1]

    def _on_model(self, change):
        if self._quiet:
            return
        with self._quietly():
            self.size.value = self._default_side(change["new"])
        self._request(unit=None)

    def _on_default(self, _button=None):
        with self._quietly():
            self.size.value = self._default_side(self.model.value)
        self._request(unit=self.unit.value)

    def _on_change(self, change):
        if not self._quiet:
            self._request(unit=self.unit.value)

    def _request(self, unit):
        self._renderer.request((self.model.value, self.size.value, self.size_by.value, unit))

    # ------------------------------------------------------------------ rendering (worker thread)
    def _render(self, req):
        name, side, size_by, unit = req
        try:
            side = _side_of(side)
            s, units = analyse(name, side)
        except ValueError:
            # InputTooSmall or a bad size: the sentence is shown (on_error), and the last good model and
            # size stay on screen, still following the block slider and the height buttons
            if self._shown is not None:
                shown_name, shown_side = self._shown[:2]
                self._draw(shown_name, shown_side, *analyse(shown_name, shown_side), size_by, unit)
            raise
        self._draw(name, side, s, units, size_by, unit)
        self.message.value = ""
        self.last_error = None

    def _draw(self, name, side, s, units, size_by, requested):
        unit = _default_unit(units) if requested is None else min(max(int(requested), 0), len(units) - 1)
        title = f"{name} on a {s.input_size[0]}×{side}×{side} input: {len(units)} blocks"
        svg = architecture_svg(units, size_by=size_by, highlight=unit, input_size=side, width=self._svg_width,
                               height=self._svg_height, title=None if self.lecture else title, label=title,
                               callout=not self.lecture)  # the lecture layout states both beside the diagram
        with self._quietly():  # the slider is set only where it must change: never under a dragging hand
            if self.unit.max != len(units) - 1:
                self.unit.max = len(units) - 1
            if requested != unit:
                self.unit.value = unit
        self.diagram.value = svg
        self.details.value = unit_html(units, unit, side)
        u, rf = units[unit], _side(units[unit].receptive_field)
        self.big.value = (f'<span class="cnnviz-big">{unit}: {html.escape(unit_label(u))} → '
                          f'{"×".join(map(str, u.output_shape))}, field '
                          f'{"the whole image" if rf is None else f"{_field(u.receptive_field)} px"}</span>')
        if self._shown is None or self._shown[:2] != (name, side):
            self.totals.value = (f"<b>{html.escape(title)}</b><br>" if self.lecture else "") + totals_html(s)
        self.table.value = table_html(s, units, highlight=unit)
        self._summary, self._units = s, units
        self._shown = (name, side, size_by, unit)

    def _error_suffix(self, err, source):
        if self._shown is None:
            return ""
        return f" The diagram still shows {self._shown[0]} at {self._shown[1]}×{self._shown[1]}."
