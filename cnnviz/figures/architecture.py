"""Pictures of whole architectures and of one Inception module's cost.

``diagram_units`` picks the blocks worth drawing from a ``cnnviz.summary``;
``architecture_svg`` draws them as an SVG block diagram (no JavaScript: any
page, any widget); ``architecture_figure`` is the static twin of the
architecture explorer (a menu of models, panels over depth);
``inception_cost_figure`` is the static twin of the Inception cost explorer
(naive vs bottleneck module, a slider over the reduction width).

Units are rows with ``name``, ``kind``, ``output_shape`` (C, H, W) or (F,),
``params``, ``macs`` and ``receptive_field`` (input pixels, or None), such as
the rows of a ``cnnviz.summary`` or the grouped units of ``diagram_units``.
MACs are multiply–accumulates of convolution and linear layers (FLOPs ≈ 2 × MACs).
"""
import html
import math
from collections import OrderedDict
from functools import lru_cache
from typing import Dict, Optional, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.plot import style

__all__ = ["KIND_COLOURS", "SIZE_BY", "ELEMENTWISE", "kind_colour", "diagram_units", "architecture_svg",
           "architecture_figure", "model_zoo_figure", "human", "unit_label", "layer_label", "block_svg", "LECTURE_INCEPTION", "inception_presets",
           "inception_branches", "inception_cost_svg", "inception_cost_figure"]

#: Colours by the family of a layer's kind (the same in the SVG diagram, the twin and the widgets).
KIND_COLOURS = {"conv": "#3b75af", "pool": "#ef8636", "linear": "#8d69b8", "block": "#2a9d8f",
                "norm": "#9e9e9e", "other": "#bdbdbd"}
#: What a block's height can show.
SIZE_BY = {"activations": "activations (output values per image)", "params": "parameters", "macs": "MACs"}

#: Layer kinds that keep the shape and hold few or no weights: left out of diagrams (still in the tables).
ELEMENTWISE = frozenset({"ReLU", "ReLU6", "Tanh", "ScaledTanh", "Sigmoid", "Dropout", "Dropout2d", "BatchNorm2d",
                         "BatchNorm1d", "LocalResponseNorm", "Flatten", "Identity", "Softmax", "LogSoftmax"})

_RF_COLOUR = "#d62728"
_FONT = "Helvetica,Arial,sans-serif"


# ----------------------------------------------------------------------------- which blocks to draw

class _Node:
    """A row of ``summary.group(depth)`` and the rows of ``group(depth + 1)`` inside it."""

    def __init__(self, row, depth):
        self.row, self.depth, self.children = row, depth, []

    def parts(self):
        return [c for c in self.children if c.row.kind not in ELEMENTWISE]


def _tree(summary):
    """The module tree as seen through ``Summary.group``: one level of nodes per depth of the dotted names."""
    level = [_Node(r, 1) for r in summary.group(1).rows]
    top, depth = level, 1
    while True:
        rows = summary.group(depth + 1).rows
        if [r.name for r in rows] == [n.row.name for n in level]:
            return top
        nxt, k = [], 0
        for r in rows:  # each group's calls are nested in one call of the level above, in the same order
            while k < len(level) - 1 and not _inside(r.name, level[k].row.name):
                k += 1
            node = _Node(r, depth + 1)
            if r.name != level[k].row.name:
                level[k].children.append(node)
            nxt.append(node if r.name != level[k].row.name else level[k])
        level, depth = nxt, depth + 1


def _inside(name, parent):
    return name == parent or name.startswith(parent + ".")


def _side(field):
    return None if field is None else (max(field) if isinstance(field, tuple) else field)


def _is_chain(node):
    """True if the node's parts run one after the other (a ``Sequential``): the last part made the output,
    and the receptive field never shrinks from one part to the next. Parallel branches (Inception,
    a dense block's concatenation) and shortcuts (a residual block) fail the test."""
    parts = node.parts()
    last = parts[-1].row
    if last.activations != node.row.activations or _side(last.receptive_field) != _side(node.row.receptive_field):
        return False
    fields = [_side(p.row.receptive_field) for p in parts]
    seen_none, previous = False, 0
    for f in fields:
        if f is None:
            seen_none = True
        elif seen_none or f < previous:
            return False
        else:
            previous = f
    return True


def diagram_units(summary, max_units: int = 64):
    """The rows of ``summary`` worth a block each: as fine-grained as fits in ``max_units``.

    Starting from the model's own children, containers are opened level by
    level while everything still fits in ``max_units``, but only containers
    whose parts run one after another (``nn.Sequential``-like: VGG's
    ``features``, ResNet's stages, DenseNet's transitions). Modules whose
    parts run side by side stay one block each, with their totals and
    receptive field: an Inception module, a residual block, a dense block. A
    container kind is opened only where every one of its calls is such a
    chain, so all of a model's residual blocks look alike. Element-wise layers
    (``ELEMENTWISE``: ReLU, batch norm, dropout, ...) are left out (they stay
    in the summary's tables). So VGG-16 gives its 13 convolutions, 5 pools and
    3 linear layers; ResNet-50 its stem, 16 bottleneck blocks and head;
    GoogLeNet its stem and 9 Inception modules.
    """
    top = _tree(summary)
    by_kind = {}
    stack = list(top)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if len(node.parts()) >= 2:
            by_kind.setdefault(node.row.kind, []).append(node)
    opens = {kind: all(_is_chain(n) for n in nodes) for kind, nodes in by_kind.items()}

    def finer(node):
        parts = node.parts()
        if not parts or not opens.get(node.row.kind, len(parts) == 1):
            return None
        if len(parts) == 1:  # a wrapper (conv + ReLU, conv + BN + ReLU): draw what it wraps
            return finer(parts[0]) or parts
        return parts

    units = [n for n in top if n.row.kind not in ELEMENTWISE]
    while True:
        new, changed = [], False
        for node in units:
            parts = finer(node)
            new.extend(parts or [node])
            changed |= bool(parts)
        if not changed or len(new) > max_units:
            break
        units = new
    return [n.row for n in units]


# ----------------------------------------------------------------------------- labels and numbers

def kind_colour(kind: str) -> str:
    """The colour of a layer kind: convolutions blue, pooling orange, linear purple, modules/blocks teal."""
    k = kind.lower()
    if "conv" in k:
        return KIND_COLOURS["conv"]
    if "pool" in k or k == "subsampling":
        return KIND_COLOURS["pool"]
    if k in ("linear", "rbf", "rbfoutput"):
        return KIND_COLOURS["linear"]
    if "norm" in k:
        return KIND_COLOURS["norm"]
    if k in ("relu", "tanh", "dropout", "flatten", "identity", "scaledtanh", "softmax", "sigmoid", "shortcuta"):
        return KIND_COLOURS["other"]
    return KIND_COLOURS["block"]  # Inception, BasicBlock, Bottleneck, _DenseBlock, ... (grouped modules)


def _legend_name(colour):
    return next(k for k, c in KIND_COLOURS.items() if c == colour)


def human(n: float) -> str:
    """A count the way tables print it: 61.1 M, 13.3 K, 1.14 G, 96."""
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f}"


_LEAF_LABELS = {"Conv2d": "conv", "Linear": "fc", "MaxPool2d": "max pool", "AvgPool2d": "avg pool",
                "AdaptiveAvgPool2d": "avg pool", "AdaptiveMaxPool2d": "max pool", "Subsampling": "subsample",
                "RBFOutput": "RBF", "ShortcutA": "shortcut"}
_PREFIXES = ("features.", "classifier.", "model.")


def unit_label(unit) -> str:
    """A short label for a diagram block: ``conv 64``, ``fc 4096``, ``max pool``, ``global pool`` for a
    single layer, the (shortened) module name for a block: ``inception3a``, ``layer2.0``, ``denseblock1``."""
    kind, shape = unit.kind, tuple(unit.output_shape)
    if kind in _LEAF_LABELS:
        word = _LEAF_LABELS[kind]
        if kind.startswith("Adaptive") and shape[1:] == (1, 1):
            return "global pool"
        if word in ("conv", "fc") and shape:
            return f"{word} {shape[0]}"
        return word
    name = unit.name
    for prefix in _PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
            break
    return name


def _activations(unit) -> int:
    value = getattr(unit, "activations", None)
    if value is None:
        value = math.prod(unit.output_shape)
    return int(value)


def _metric(unit, size_by: str) -> float:
    if size_by == "activations":
        return _activations(unit)
    return float(getattr(unit, size_by))


def _rf(unit):
    """The receptive field as one number (the larger side when rows and columns differ)."""
    return _side(unit.receptive_field)


def _jump(unit):
    return _side(getattr(unit, "jump", None))


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def _number(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _tooltip(unit) -> str:
    rf, jump = _rf(unit), _jump(unit)
    return (f"{unit.name} ({unit.kind})\noutput {_shape(unit.output_shape)}\nparameters {unit.params:,}\n"
            f"MACs {unit.macs:,}\nactivations {_activations(unit):,}"
            + (f"\nreceptive field {_number(rf)}×{_number(rf)} px" if rf else "")
            + (f", jump {_number(jump)} px" if jump else ""))


def _resolution(unit):
    shape = tuple(unit.output_shape)
    return shape[1:] if len(shape) == 3 else None


def _runs(units):
    """Consecutive units with the same spatial size: [(first, last, (H, W) or None)]."""
    runs = []
    for i, u in enumerate(units):
        res = _resolution(u)
        if runs and runs[-1][2] == res:
            runs[-1][1] = i
        else:
            runs.append([i, i, res])
    return [tuple(r) for r in runs]


# ----------------------------------------------------------------------------- the SVG block diagram

def _text(x, y, text, size, *, anchor="start", weight=None, fill="#222", extra=""):
    w = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{w}{extra}>'
            f'{html.escape(str(text))}</text>')


def architecture_svg(units: Sequence, *, size_by: str = "activations", title: Optional[str] = None,
                     width: int = 720, height: int = 330, highlight: Optional[int] = None,
                     input_size: Optional[int] = None, labels: Optional[Sequence[str]] = None,
                     peak: Optional[float] = None, receptive_field: bool = True, callout: bool = True,
                     label: Optional[str] = None) -> str:
    """A block diagram of the layers ``units`` as an SVG string (works in any page, no JavaScript).

    Each unit is a block, left to right; its height is proportional to the square
    root of ``size_by`` (``"activations"``, ``"params"`` or ``"macs"``), so areas
    compare honestly across orders of magnitude, and its colour tells its kind.
    Shaded bands mark the spatial size (224×224, 112×112, ...). Under the blocks,
    a red track shows the receptive field of each unit in input pixels (log
    scale; dashed: the ``input_size`` side of the image, when given). Under
    that, short labels (``conv 64``, ``inception3a``). ``highlight`` (a unit
    index) frames one block and states its numbers above the diagram (``callout=False``: framed only, for a
    page that states them beside it).
    Hovering a block shows its full row. The picture scales down to narrower pages
    (its text with it): ``width`` (px) is drawn at full size, 720 fits a book's column. Where the
    colour keys do not fit beside the caption they take a second row, 22 px under ``height``.
    ``labels`` (one per unit) replace ``unit_label``'s. ``peak`` is the value drawn at full height (default:
    the largest unit's; give the same one to diagrams meant to be compared). ``receptive_field=False`` leaves
    out the receptive-field track. ``label``: the picture's accessible name (default: ``title``; for a page
    that prints the title beside the picture).
    """
    if size_by not in SIZE_BY:
        raise ValueError(f"size_by must be one of {', '.join(SIZE_BY)}, not {size_by!r}.")
    units = list(units)
    if not units:
        raise ValueError("There are no layers to draw.")
    if highlight is not None and not (isinstance(highlight, int) and 0 <= highlight < len(units)):
        raise ValueError(f"highlight must be a unit index from 0 to {len(units) - 1}, not {highlight!r}.")
    n = len(units)
    if labels is None:
        labels = [unit_label(u) for u in units]
    elif len(labels) != n:
        raise ValueError(f"Give one label per unit: {len(labels)} labels for {n} units.")
    labels = [str(label) for label in labels]
    label_font = 14
    longest = max(len(s) for s in labels) * label_font * 0.52  # px, roughly (Helvetica, mostly lower case)
    upright = longest + 6 <= (width - 28) / n  # room for horizontal labels
    rotated = min(longest, 14 * label_font * 0.52)  # rotated labels are cut to 14 characters
    # every k-th label, tilted just enough that neighbours stay 17 px apart (flatter labels take less height)
    label_every = 1 if upright else max(1, math.ceil(n * 20 / (width - 28)))
    spacing = (width - 28) / n * label_every
    angle = math.pi / 2 if upright else max(math.radians(30), math.asin(min(1.0, 17 / spacing)))
    sin, cos = math.sin(angle), math.cos(angle)
    left = 14 if upright else max(14, round(rotated * cos - (width - 28) / n / 2 + 6))
    right = 14
    slot = (width - left - right) / n
    bar = max(2.0, min(slot * 0.74, 64.0))
    label_h = 24 if upright else 8 + rotated * sin + label_font * cos
    fields = [_rf(u) for u in units]
    has_rf = receptive_field and any(f for f in fields)

    y = 10
    parts = []
    if title:
        parts.append(_text(left, y + 22, title, 22, weight="bold"))
        y += 34
    if highlight is not None and callout:
        text = _callout(units[highlight], left, y + 18, highlight, width - left - right)
        parts.append(text)
        y += 28 if text.count("<text") == 1 else 48
    band_top = y
    y += 22  # resolution labels
    legend = [c for c in KIND_COLOURS.values() if any(kind_colour(u.kind) == c for u in units)]
    largest = max(_metric(u, size_by) for u in units)
    if peak is not None and not (isinstance(peak, (int, float)) and peak > 0 and peak >= largest):
        raise ValueError(f"peak={peak!r} must be a positive number at least the largest unit's {human(largest)}: "
                         "it is the value drawn at full height.")
    tallest = (peak if peak is not None else largest) or 1.0
    caption = (f"block height ∝ √{SIZE_BY[size_by].split(' (')[0]} · "
               + (f"full height {human(tallest)}" if peak is not None else f"tallest {human(tallest)}"))
    keys_w = sum(16 + 8 * len(_legend_name(c)) + 20 for c in legend) + (150 if has_rf else 0)
    two_rows = len(caption) * 6.8 + 24 + keys_w > width - left - right  # caption above the colour keys
    legend_h = 48 if two_rows else 26
    height += legend_h - 26  # a second legend row adds to the picture, not taken from the blocks
    free = height - y - legend_h - label_h - 8  # blocks + receptive-field track
    rf_h = min(120.0, max(54.0, free * 0.34)) if has_rf else 0.0
    base_y = height - legend_h - label_h - rf_h - 8
    body = max(30.0, base_y - y - (16 if slot >= 46 else 2))  # room above the tallest block for its value
    x_of = lambda i: left + (i + 0.5) * slot  # noqa: E731

    # spatial-size bands behind the blocks and the receptive-field track
    band_bottom = base_y + rf_h
    for k, (first, last, res) in enumerate(_runs(units)):
        x0, x1 = left + first * slot, left + (last + 1) * slot
        fill = "#eef2f7" if k % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="{x0:.1f}" y="{band_top:.1f}" width="{x1 - x0:.1f}" '
                     f'height="{band_bottom - band_top:.1f}" fill="{fill}"/>')
        if res is not None:
            text = f"{res[0]}×{res[1]}"
            if res[0] == res[1] and (x1 - x0) < len(text) * 8.2 + 6:
                text = f"{res[0]}²"
            if (x1 - x0) >= len(text) * 8.2 + 2:
                parts.append(_text((x0 + x1) / 2, band_top + 15, text, 14, anchor="middle", fill="#555"))
    if highlight is not None:
        cx = x_of(highlight)
        parts.append(f'<rect x="{cx - slot / 2:.1f}" y="{band_top:.1f}" width="{slot:.1f}" '
                     f'height="{band_bottom - band_top:.1f}" fill="#ffd54f" opacity="0.45"/>')

    values = [_metric(u, size_by) for u in units]
    peak = tallest
    show_values = slot >= 46
    for i, (u, v) in enumerate(zip(units, values)):
        x = x_of(i) - bar / 2
        h = max(2.0, body * math.sqrt(v / peak)) if v > 0 else 2.0
        stroke = ' stroke="#111" stroke-width="3"' if highlight == i else ""
        parts.append(f'<g><title>{html.escape(_tooltip(u))}</title>'
                     f'<rect x="{x:.1f}" y="{base_y - h:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="2" '
                     f'fill="{kind_colour(u.kind)}"{stroke}/></g>')
        if show_values and v > 0:
            parts.append(_text(x_of(i), base_y - h - 4, human(v), 13, anchor="middle", fill="#444"))
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{base_y}" y2="{base_y}" stroke="#444"/>')

    if has_rf:
        parts.extend(_rf_track(units, fields, x_of, base_y, rf_h, left, width - right, highlight, input_size))

    ly = base_y + rf_h + 6
    for i, text in enumerate(labels):
        if i % label_every and highlight != i:
            continue
        weight = "bold" if highlight == i else None
        if upright:
            parts.append(_text(x_of(i), ly + 15, text, label_font, anchor="middle", weight=weight))
        else:
            cx = x_of(i)
            tilt = math.degrees(angle)
            parts.append(_text(cx + 4, ly + 8, _short(text, 14), label_font, anchor="end", weight=weight,
                               extra=f' transform="rotate(-{tilt:.0f} {cx + 4:.1f} {ly + 8:.1f})"'))

    lx = width - right
    fy = height - 9
    for colour in reversed(legend):
        name = _legend_name(colour)
        lx -= 16 + 8 * len(name) + 20
        parts.append(f'<rect x="{lx}" y="{fy - 12}" width="13" height="13" rx="2" fill="{colour}"/>'
                     + _text(lx + 18, fy, name, 14))
    if has_rf:
        lx -= 150
        parts.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{fy - 5}" y2="{fy - 5}" stroke="{_RF_COLOUR}" '
                     f'stroke-width="3"/>' + _text(lx + 27, fy, "receptive field", 14))
    parts.append(_text(left, fy - 22 if two_rows else fy, caption, 14))
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'style="max-width:{width}px;height:auto;font-family:{_FONT}" role="img" '
            f'aria-label="{html.escape(label or title or "architecture diagram")}">')
    return head + "".join(parts) + "</svg>"


def layer_label(module) -> str:
    """A layer (a ``torch.nn.Module``) described for a block diagram: ``3×3 conv, 128, 32 groups``,
    ``1×1 conv, 256``, ``SE gate``; other modules by their class name."""
    import torch.nn as nn
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        groups = f", {module.groups} groups" if module.groups > 1 else ""
        return f"{k[0]}×{k[1]} conv, {module.out_channels}{groups}"
    if type(module).__name__ == "SqueezeExcitation":
        return "SE gate"
    return type(module).__name__


def block_svg(block, input_shape: Sequence[int], *, title: Optional[str] = None, size_by: str = "params",
              peak: Optional[float] = None, width: int = 720, height: int = 220) -> str:
    """One block of a network (a residual block, an Inception module) drawn as ``architecture_svg`` draws a
    network: its layers left to right (batch norm and activations left out), sized by ``size_by``, each
    labelled with its kernel, channels and groups (``layer_label``), with no receptive-field track.
    ``input_shape`` = (C, H, W) of the block's input; ``peak`` as in ``architecture_svg`` (the same for
    blocks drawn to be compared). An identity shortcut is not drawn (say so in the title); a projection
    shortcut (``downsample``) is drawn as one more block."""
    from cnnviz.summaries import summary
    units = diagram_units(summary(block, tuple(input_shape)))
    labels = [layer_label(block.get_submodule(u.name)) for u in units]
    return architecture_svg(units, size_by=size_by, title=title, width=width, height=height, labels=labels,
                            peak=peak, receptive_field=False)


def _callout(u, x, y, index, room=None):
    """The highlighted unit's numbers: one line of text, or two (name, then numbers) when one would be
    longer than ``room`` px."""
    rf, jump = _rf(u), _jump(u)
    bits = [f"output {_shape(u.output_shape)}", f"{human(u.params)} params", f"{human(u.macs)} MACs"]
    if rf:
        bits.append(f"receptive field {_number(rf)}×{_number(rf)} px, jump {_number(jump)}")
    head = (f'<tspan font-weight="bold">{index}: {html.escape(u.name)}</tspan> ({html.escape(u.kind)})')
    numbers = html.escape(" · ".join(bits))
    length = len(f"{index}: {u.name} ({u.kind}) · ") + len(numbers)
    if room is None or length * 8.4 <= room:
        return f'<text x="{x}" y="{y:.1f}" font-size="16" fill="#222">{head} · {numbers}</text>'
    return (f'<text x="{x}" y="{y:.1f}" font-size="16" fill="#222">{head}</text>'
            f'<text x="{x}" y="{y + 20:.1f}" font-size="15" fill="#222">{numbers}</text>')


def _rf_track(units, fields, x_of, base_y, rf_h, x_left, x_right, highlight, input_size):
    """The receptive field of each unit as a red line on a log scale, under the blocks."""
    top, bottom = base_y + 14, base_y + rf_h - 8
    largest = max(max(f for f in fields if f), input_size or 1) * 1.15
    smallest = min(min(f for f in fields if f), input_size or largest) * 0.8
    lo, span = math.log(smallest), (math.log(largest) - math.log(smallest)) or 1.0
    y_of = lambda f: bottom - (bottom - top) * (math.log(max(f, smallest)) - lo) / span  # noqa: E731
    out = []
    decade, taken = 10, [y_of(input_size)] if input_size else []
    while decade <= largest:  # faint lines at 10, 100, 1000 px, labelled at the right edge when there is room
        yd = y_of(decade)
        if decade >= smallest:
            out.append(f'<line x1="{x_left}" x2="{x_right}" y1="{yd:.1f}" y2="{yd:.1f}" stroke="#d0d5dc"/>')
            if all(abs(yd - t) >= 13 for t in taken):
                out.append(_text(x_right - 2, yd - 3, f"{decade} px", 12, anchor="end", fill="#777"))
                taken.append(yd)
        decade *= 10
    if input_size:
        yi = y_of(input_size)
        out.append(f'<line x1="{x_left}" x2="{x_right}" y1="{yi:.1f}" y2="{yi:.1f}" stroke="#555" '
                   f'stroke-dasharray="6 4" stroke-width="1.5"/>')
        out.append(_text(x_left + 4, yi + 14, f"image side {input_size} px", 13, fill="#333",
                         extra=' stroke="#fff" stroke-width="3" paint-order="stroke"'))
    points = [(x_of(i), y_of(f)) for i, f in enumerate(fields) if f]
    out.append('<polyline fill="none" stroke="{}" stroke-width="3" points="{}"/>'.format(
        _RF_COLOUR, " ".join(f"{x:.1f},{y:.1f}" for x, y in points)))
    radius = 3.5 if len(units) <= 40 else 2.5
    for i, f in enumerate(fields):
        if f:
            r = radius + 3 if i == highlight else radius
            out.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(f):.1f}" r="{r}" fill="{_RF_COLOUR}">'
                       f'<title>{html.escape(units[i].name)}: receptive field {_number(f)} px</title></circle>')
    last = max(i for i, f in enumerate(fields) if f)
    marks = {last} | ({highlight} if highlight is not None and fields[highlight] else set())
    for i in sorted(marks):
        x = x_of(i)
        anchor = "end" if x > (x_left + x_right) / 2 else "start"
        dx = -9 if anchor == "end" else 9
        out.append(_text(x + dx, y_of(fields[i]) - 7, f"{_number(fields[i])} px", 15, anchor=anchor,
                         weight="bold", fill=_RF_COLOUR, extra=' stroke="#fff" stroke-width="3" paint-order="stroke"'))
    return out


def _short(name: str, limit: int = 16) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


# ----------------------------------------------------------------------------- the architecture twin

_PANELS = (("activations", "activations per image (output values)", "values"),
           ("params", "parameters", "parameters"),
           ("macs", "multiply–accumulates (MACs)", "MACs"))


def architecture_figure(models: Dict[str, Sequence], *, title: Optional[str] = None,
                        notes: Optional[Dict[str, str]] = None,
                        input_sizes: Optional[Dict[str, int]] = None) -> go.Figure:
    """The static twin of the architecture explorer: a menu of models, four panels over depth.

    ``models`` maps a label (e.g. "VGG-16 @ 224×224") to its units. For the
    chosen model the panels show, per unit (same x in every panel), the
    activations it stores, its parameters and its MACs (bars coloured by
    kind) and its receptive field in input pixels (a line: how far each layer
    sees; dashed, the image side from ``input_sizes`` when given). Hover a bar
    for the full row; ``notes`` (same keys) adds a line of totals above the panels. The menu has a
    row of its own under the title, so a long title or label never runs into it on a narrow page.
    """
    if not models:
        raise ValueError("Give at least one model.")
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.045,
                        row_heights=[0.25, 0.22, 0.22, 0.31],
                        subplot_titles=[p[1] for p in _PANELS] + ["receptive field (input pixels)"])
    per_model = 4
    labels = list(models)
    annotations = list(fig.layout.annotations)
    ticks = {}
    for k, label in enumerate(labels):
        units = list(models[label])
        x = list(range(len(units)))
        colours = [kind_colour(u.kind) for u in units]
        hover = [html.escape(_tooltip(u)).replace("\n", "<br>") for u in units]
        common = dict(x=x, visible=k == 0, hovertext=hover, hoverinfo="text")
        for row, (key, _, _) in enumerate(_PANELS, start=1):
            fig.add_trace(go.Bar(y=[_metric(u, key) for u in units], marker_color=colours, name=key, **common),
                          row=row, col=1)
        rf = [_rf(u) for u in units]
        fig.add_trace(go.Scatter(y=rf, mode="lines+markers", connectgaps=True, name="receptive field",
                                 line=dict(color=_RF_COLOUR, width=3), marker=dict(size=7), **common), row=4, col=1)
        ticks[label] = (x, [unit_label(u) for u in units])

    def axis_layout(label):
        x, text = ticks[label]
        every = max(1, math.ceil(len(x) / 30))  # tilted labels need about 20 px each on a 700 px page
        lay = {"xaxis4.tickvals": x[::every], "xaxis4.ticktext": text[::every]}
        size = (input_sizes or {}).get(label)
        fields = [_rf(u) for u in models[label] if _rf(u)]
        if fields or size:  # room above the highest field and the image side, and for the line's label
            lay["yaxis4.range"] = [0, max(fields + [size or 0]) * 1.16]
        lay["shapes"] = [dict(type="line", xref="x4 domain", x0=0, x1=1, yref="y4", y0=size, y1=size,
                              line=dict(color="#666", dash="dash", width=2),
                              label=dict(text=f"image side {size} px", textposition="end",
                                         yanchor="bottom", font=dict(size=14, color="#444")))] if size else []
        return lay

    buttons = []
    note_index = len(annotations)
    for k, label in enumerate(labels):
        visible = [t // per_model == k for t in range(len(fig.data))]
        layout = {f"annotations[{note_index}].text": (notes or {}).get(label, ""), **axis_layout(label)}
        buttons.append(dict(method="update", label=label, args=[{"visible": visible}, layout]))
    for row, (_, _, unit) in enumerate(_PANELS, start=1):
        fig.update_yaxes(title_text=unit, row=row, col=1)
    fig.update_yaxes(title_text="pixels", rangemode="tozero", row=4, col=1)
    fig.update_xaxes(showticklabels=False)
    first = axis_layout(labels[0])
    fig.update_xaxes(showticklabels=True, tickmode="array", tickvals=first["xaxis4.tickvals"],
                     ticktext=first["xaxis4.ticktext"], tickangle=-50, tickfont=dict(size=13), automargin=True,
                     row=4, col=1)
    if "yaxis4.range" in first:
        fig.update_yaxes(range=first["yaxis4.range"], row=4, col=1)
    fig.update_layout(shapes=first["shapes"])
    # from the top: the title, the menu (its own row, so that a long title or label never runs into it),
    # the note, then the first panel's title; placed in px above the panels, which hold at any width
    menu = len(labels) > 1
    fig.add_annotation(text=(notes or {}).get(labels[0], ""), xref="paper", yref="paper", x=0, y=1, yshift=28,
                       xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=15), align="left")
    fig.update_layout(showlegend=False, bargap=0.15, hovermode="x", updatemenus=[dict(
        type="dropdown", buttons=buttons, active=0, x=0, y=1, xanchor="left", yanchor="bottom", pad=dict(b=58),
        direction="down", showactive=True, font=dict(size=15))] if menu else [])
    style(fig, title=title, height=980)
    if title:
        fig.update_layout(title=dict(yref="container", y=1, yanchor="top", pad=dict(t=14)))
    top = 58 + (40 if menu else 0) + (44 if title else 6)
    return fig.update_layout(margin=dict(l=20, r=20, t=top, b=30))


def model_zoo_figure(names: Sequence[str] = ("vgg16", "googlenet", "resnet50", "densenet121"), *,
                     title: Optional[str] = None) -> go.Figure:
    """``architecture_figure`` for models of ``cnnviz.models`` by name, each on its paper's input size:
    built on the meta device (no memory), summarised with ``cnnviz.summary``, drawn with
    ``diagram_units``, with each model's totals (parameters, MACs, activation memory) as its note."""
    from cnnviz import models
    from cnnviz.summaries import summary

    units, notes, sizes = {}, {}, {}
    for name in names:
        c, h, w = models.info(name).input_size
        s = summary(models.get(name, device="meta"), (c, h, w))
        label = f"{name} ({c}×{h}×{w})"
        units[label], sizes[label] = diagram_units(s), h
        notes[label] = (f"<b>{name}</b>: {human(s.total_params)} parameters · {human(s.total_macs)} MACs · "
                        f"{s.activation_bytes / 1e6:,.1f} MB of activations per image")
    return architecture_figure(units, title=title, notes=notes, input_sizes=sizes)


# ----------------------------------------------------------------------------- Inception module costs

#: The lecture's worked example (a 28×28×256 input; 1×1 128, 3×3 192, 5×5 96; 64-wide bottlenecks).
LECTURE_INCEPTION = dict(in_channels=256, size=28, ch1x1=128, ch3x3red=64, ch3x3=192, ch5x5red=64, ch5x5=96,
                         pool_proj=64)
_WIDTH_NAMES = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")


@lru_cache(maxsize=1)
def _googlenet_sizes():
    import torch

    from cnnviz.models.googlenet import INCEPTION_WIDTHS, GoogLeNet
    from cnnviz.summaries import summary
    with torch.device("meta"):
        model = GoogLeNet(aux_logits=False)
    rows = summary(model, model.default_input_size).group(1).rows
    return tuple((r.name, r.output_shape[1]) for r in rows if r.name in INCEPTION_WIDTHS)


def inception_presets() -> "OrderedDict[str, dict]":
    """GoogLeNet's nine Inception modules (Table 1), each as the keyword arguments of
    ``inception_cost`` (``in_channels``, ``size`` = H = W of its input, ``ch1x1`` …
    ``pool_proj``): the widths from ``cnnviz.models.googlenet.INCEPTION_WIDTHS``, the
    input sizes from a summary of the model itself (28, 28, 14, …, 7)."""
    from cnnviz.models.googlenet import INCEPTION_WIDTHS
    out = OrderedDict()
    for name, size in _googlenet_sizes():
        widths = dict(zip(_WIDTH_NAMES, INCEPTION_WIDTHS[name]))
        out[name] = dict(in_channels=widths.pop("in_channels"), size=size, **widths)
    return out


_BRANCH_KEYS = ("branch1", "branch2", "branch3", "branch4")


def inception_branches(in_channels: int, size: int, ch1x1: int, ch3x3red: Optional[int], ch3x3: int,
                       ch5x5red: Optional[int], ch5x5: int, pool_proj: Optional[int]):
    """The layers of each branch of ``Inception(in_channels, ...)`` on a ``size``×``size`` input, for drawing.

    ``{"branch1": [(kind, label, out_channels, macs, params), ...], ...}`` in
    order, ``kind`` one of ``"conv"``, ``"reduce"`` (a 1×1 reduction or
    projection) and ``"pool"``; MACs and parameters from ``cnnviz.layers``
    (pooling is free). ``None`` widths (naive branches) have no 1×1 layer.
    """
    from cnnviz.layers import conv_macs, conv_params

    def conv(kind, c_in, c_out, f):
        return (kind, f"{f}×{f} conv, {c_out}", c_out, conv_macs(c_in, size, size, c_out, f, p=f // 2),
                conv_params(c_in, c_out, f))

    def reduce_then(reduced, c_out, f):
        first = [] if reduced is None else [conv("reduce", in_channels, reduced, 1)]
        return first + [conv("conv", in_channels if reduced is None else reduced, c_out, f)]

    pool = ("pool", "3×3 max pool", in_channels, 0, 0)
    return OrderedDict([
        ("branch1", [conv("conv", in_channels, ch1x1, 1)]),
        ("branch2", reduce_then(ch3x3red, ch3x3, 3)),
        ("branch3", reduce_then(ch5x5red, ch5x5, 5)),
        ("branch4", [pool] + ([] if pool_proj is None else [conv("reduce", in_channels, pool_proj, 1)])),
    ])


_BOX_COLOURS = {"conv": ("#3b75af", "#fff"), "reduce": ("#9cc3e4", "#111"), "pool": ("#ef8636", "#111")}


def inception_cost_svg(in_channels: int, size: int, ch1x1: int, ch3x3red: Optional[int], ch3x3: int,
                       ch5x5red: Optional[int], ch5x5: int, pool_proj: Optional[int], *, width: int = 1100,
                       height: int = 560) -> str:
    """The naive Inception module beside this one, as an SVG string: both drawn as in the lecture (input,
    four branches, concatenation), every layer with its MACs, and under each branch a bar of its MACs on
    one scale for both modules, then each module's total. The naive module has the same branch widths
    and no 1×1 reductions or pool projection (Szegedy et al. 2015, Figure 2a vs 2b)."""
    naive = (in_channels, size, ch1x1, None, ch3x3, None, ch5x5, None)
    this = (in_channels, size, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
    costs = [_costs(*naive), _costs(*this)]
    branches = [inception_branches(*naive), inception_branches(*this)]
    peak_branch = max(c.branches[b].macs for c in costs for b in _BRANCH_KEYS) or 1
    peak_total = max(c.total.macs for c in costs) or 1
    gap = 30
    panel = (width - gap) / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px;height:auto;font-family:{_FONT}" role="img" '
             f'aria-label="naive and bottleneck Inception modules">']
    titles = ("naive module", "this module" if (ch3x3red, ch5x5red, pool_proj) != (None, None, None) else
              "this module (also naive)")
    for k, (cost, layers, title) in enumerate(zip(costs, branches, titles)):
        x0 = k * (panel + gap)
        parts.extend(_module_panel(x0, panel, height, title, cost, layers, in_channels, size, peak_branch,
                                   peak_total))
    parts.append(f'<line x1="{panel + gap / 2:.1f}" x2="{panel + gap / 2:.1f}" y1="8" y2="{height - 8}" '
                 'stroke="#ccc"/>')
    return "".join(parts) + "</svg>"


def _module_panel(x0, w, height, title, cost, layers, c_in, size, peak_branch, peak_total, compact=False):
    """One module's drawing; ``compact``: no title, totals line or per-branch bars (a page states them)."""
    out = [] if compact else [
        _text(x0 + 4, 26, title, 21, weight="bold"),
        _text(x0 + 4, 52, f"{human(cost.total.macs)} MACs · {human(cost.total.params)} params · output depth "
                          f"{cost.out_channels}", 17)]
    box_h, col = 48, w / 4

    def box(cx, y, bw, text, sub, fill, ink):
        lines = [_text(cx, y + (19 if sub else 30), text, 15, anchor="middle", fill=ink, weight="bold")]
        if sub:
            lines.append(_text(cx, y + 38, sub, 14, anchor="middle", fill=ink))
        return [f'<rect x="{cx - bw / 2:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{box_h}" rx="6" fill="{fill}" '
                'stroke="#333" stroke-width="1"/>'] + lines

    def arrow(x, y1, y2):
        return (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1:.1f}" y2="{y2 - 6:.1f}" stroke="#555" stroke-width="1.5"/>'
                f'<path d="M{x - 5:.1f},{y2 - 8:.1f} L{x + 5:.1f},{y2 - 8:.1f} L{x:.1f},{y2:.1f} z" fill="#555"/>')

    top = 8 if compact else 66
    out += box(x0 + w / 2, top, w * 0.8, f"input {size}×{size}×{c_in}", None, "#eceff3", "#111")
    rows_y = (top + box_h + 30, top + 2 * box_h + 48)
    concat_y = rows_y[1] + box_h + 30
    for b, key in enumerate(_BRANCH_KEYS):
        cx = x0 + (b + 0.5) * col
        stack = layers[key]
        ys = rows_y[-len(stack):]  # a single layer sits next to the concatenation
        out.append(arrow(cx, top + box_h, ys[0]))
        for (kind, label, out_c, macs, _), y in zip(stack, ys):
            fill, ink = _BOX_COLOURS[kind]
            sub = f"{human(macs)} MACs" if kind != "pool" else f"free, {out_c} maps"
            out += box(cx, y, col - 10, label, sub, fill, ink)
        for y_from, y_to in zip(ys, ys[1:]):
            out.append(arrow(cx, y_from + box_h, y_to))
        out.append(arrow(cx, ys[-1] + box_h, concat_y))
    out += box(x0 + w / 2, concat_y, w * 0.8, f"concatenation {size}×{size}×{cost.out_channels}", None,
               "#eceff3", "#111")
    if compact:
        return out + _total_bar(x0, w, height, cost, peak_total)
    # per-branch MACs on one scale for both modules
    label_y = concat_y + box_h + 26
    out.append(_text(x0 + 4, label_y, "MACs per branch", 15, fill="#444"))
    bar_top, bar_bottom = label_y + 26, height - 86
    for b, key in enumerate(_BRANCH_KEYS):
        cx = x0 + (b + 0.5) * col
        c = cost.branches[key]
        h = max(1.5, (bar_bottom - bar_top) * c.macs / peak_branch)
        out.append(f'<rect x="{cx - col * 0.3:.1f}" y="{bar_bottom - h:.1f}" width="{col * 0.6:.1f}" height="{h:.1f}" '
                   f'fill="{KIND_COLOURS["conv"]}"><title>{_BRANCH_NAMES[b]} branch: {c.macs:,} MACs, '
                   f'{c.params:,} parameters</title></rect>')
        out.append(_text(cx, bar_bottom - h - 5, human(c.macs), 15, anchor="middle", weight="bold"))
        out.append(_text(cx, bar_bottom + 18, f"{_BRANCH_NAMES[b]} · {human(c.params)} params", 13,
                         anchor="middle", fill="#444"))
    out.append(f'<line x1="{x0:.1f}" x2="{x0 + w:.1f}" y1="{bar_bottom}" y2="{bar_bottom}" stroke="#444"/>')
    return out + _total_bar(x0, w, height, cost, peak_total)


def _total_bar(x0, w, height, cost, peak_total):
    """The module's total MACs as a bar on the scale of the larger module, at the bottom."""
    out = []
    ty = height - 40
    tw = (w - 8) * cost.total.macs / peak_total
    out.append(f'<rect x="{x0 + 4:.1f}" y="{ty:.1f}" width="{max(tw, 2):.1f}" height="26" rx="3" '
               f'fill="{KIND_COLOURS["conv"]}" opacity="0.85"/>')
    inside = tw > 170
    out.append(_text(x0 + 12 if inside else x0 + tw + 12, ty + 19, f"total {human(cost.total.macs)} MACs", 16,
                     weight="bold", fill="#fff" if inside else "#111"))
    return out


def inception_module_svg(in_channels: int, size: int, ch1x1: int, ch3x3red: Optional[int], ch3x3: int,
                         ch5x5red: Optional[int], ch5x5: int, pool_proj: Optional[int], *, naive: bool = False,
                         width: int = 540) -> str:
    """One of ``inception_cost_svg``'s two modules alone (``naive=True``: without the 1×1 reductions), for a
    projector: the layers with their MACs and the total as a bar on the naive module's scale, no title, totals
    line or per-branch bars (the page states them beside it, in large type)."""
    args = (in_channels, size, ch1x1, None, ch3x3, None, ch5x5, None)
    naive_cost = _costs(*args)
    if not naive:
        args = (in_channels, size, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
    cost = _costs(*args)
    peak_total = max(naive_cost.total.macs, cost.total.macs) or 1
    height = 330
    what = ("naive Inception module" if naive else "Inception module with 1×1 reductions"
            if (ch3x3red, ch5x5red, pool_proj) != (None, None, None) else "Inception module (all 1×1 reductions off)")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px;height:auto;font-family:{_FONT}" role="img" aria-label="{what}">']
    parts.extend(_module_panel(0, width, height, what, cost, inception_branches(*args), in_channels, size, 1,
                               peak_total, compact=True))
    return "".join(parts) + "</svg>"


_BRANCH_NAMES = ("1×1", "3×3", "5×5", "pool")
_NAIVE_COLOUR, _BOTTLENECK_COLOUR = "#b0b7c0", KIND_COLOURS["conv"]


def _costs(in_channels, size, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
    from cnnviz.models.googlenet import inception_cost
    return inception_cost(in_channels, size, size, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)


def inception_cost_figure(in_channels: int = 256, size: int = 28, ch1x1: int = 128, ch3x3: int = 192,
                          ch5x5: int = 96, pool_proj: int = 64,
                          reductions: Sequence[int] = (16, 32, 48, 64, 96, 128, 192), *,
                          start: int = 64, googlenet: bool = True, title: Optional[str] = None) -> go.Figure:
    """The static twin of the Inception cost explorer: naive vs bottleneck module, a slider over r.

    The naive module (Figure 2a of Szegedy et al. 2015: 1×1 ``ch1x1``, 3×3
    ``ch3x3`` and 5×5 ``ch5x5`` convolutions and a 3×3 max-pool, all on the
    ``size``×``size``×``in_channels`` input) against the module with
    dimension reductions (Figure 2b): 1×1 convolutions to ``r`` maps before
    the 3×3 and 5×5 filters (``ch3x3red = ch5x5red = r``) and a 1×1
    projection to ``pool_proj`` maps after the pool. The slider moves ``r``
    over ``reductions`` (starting at ``start``); the upper panel shows MACs per
    branch, the lower one parameters, grey for naive and blue with
    bottlenecks, and the lines above state totals and output depths. The
    defaults are the lecture's example: 854 M MACs and 672 output maps naive,
    271 M and 480 maps at r = 64. With ``googlenet=True`` a menu adds
    GoogLeNet's nine modules (Table 1 widths and input sizes), each with the
    same slider plus a "Table 1" step for the paper's own reductions (``ch3x3red``, ``ch5x5red``).
    """
    reductions = [int(r) for r in reductions]
    if not reductions or any(r < 1 for r in reductions):
        raise ValueError("reductions must be positive whole numbers of maps, e.g. (16, 32, 64).")
    modules = OrderedDict()
    modules[f"lecture example: {size}×{size}×{in_channels}"] = (
        dict(in_channels=in_channels, size=size, ch1x1=ch1x1, ch3x3=ch3x3, ch5x5=ch5x5, pool_proj=pool_proj), None)
    if googlenet:
        for name, kw in inception_presets().items():
            paper = (kw.pop("ch3x3red"), kw.pop("ch5x5red"))
            modules[f"GoogLeNet {name}: {kw['size']}×{kw['size']}×{kw['in_channels']}"] = (kw, paper)

    # the two panels one above the other: side by side, a 700 px page leaves each bar too narrow for its value
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.13,
                        subplot_titles=("multiply–accumulates (MACs) per branch", "parameters per branch"))
    note = len(fig.layout.annotations)  # after the two panel titles
    sliders, menu = [], []
    groups = []  # per module: (naive trace indices, [step trace indices], texts, ranges)
    for m, (label, (kw, paper)) in enumerate(modules.items()):
        steps = [(f"r = {r}", r, r) for r in reductions]
        if paper is not None:
            steps.append(("Table 1", paper[0], paper[1]))  # the paper's own (ch3x3red, ch5x5red)
        active = next((k for k, s in enumerate(steps) if s[1] == s[2] == start), 0) if paper is None else len(steps) - 1
        naive = _costs(kw["in_channels"], kw["size"], kw["ch1x1"], None, kw["ch3x3"], None, kw["ch5x5"], None)
        naive_idx = []
        for col, key in ((1, "macs"), (2, "params")):
            ys = [getattr(naive.branches[b], key) for b in _BRANCH_KEYS]
            fig.add_trace(go.Bar(x=list(_BRANCH_NAMES), y=ys, name="naive", marker_color=_NAIVE_COLOUR,
                                 text=[human(v) for v in ys], textposition="outside", visible=m == 0,
                                 legendgroup="naive", showlegend=col == 1,
                                 hovertemplate="naive, %{x} branch: %{y:,}<extra></extra>"), row=col, col=1)
            naive_idx.append(len(fig.data) - 1)
        step_idx, texts = [], []
        peak = [max(getattr(naive.branches[b], "macs") for b in _BRANCH_KEYS),
                max(getattr(naive.branches[b], "params") for b in _BRANCH_KEYS)]
        for k, (step_label, r3, r5) in enumerate(steps):
            cost = _costs(kw["in_channels"], kw["size"], kw["ch1x1"], r3, kw["ch3x3"], r5, kw["ch5x5"],
                          kw["pool_proj"])
            idx = []
            for col, key in ((1, "macs"), (2, "params")):
                ys = [getattr(cost.branches[b], key) for b in _BRANCH_KEYS]
                peak[col - 1] = max(peak[col - 1], max(ys))
                fig.add_trace(go.Bar(x=list(_BRANCH_NAMES), y=ys, name="with 1×1 bottlenecks",
                                     marker_color=_BOTTLENECK_COLOUR, text=[human(v) for v in ys],
                                     textposition="outside", visible=m == 0 and k == active,
                                     legendgroup="bottleneck", showlegend=col == 1,
                                     hovertemplate="bottleneck, %{x} branch: %{y:,}<extra></extra>"), row=col, col=1)
                idx.append(len(fig.data) - 1)
            step_idx.append(idx)
            share = cost.total.macs / naive.total.macs
            texts.append(f"<b>{label}</b><br>3×3 and 5×5 reductions {r3} and {r5}, pool projection "
                         f"{kw['pool_proj']}<br>naive: <b>{human(naive.total.macs)}</b> MACs, "
                         f"{human(naive.total.params)} params, output depth <b>{naive.out_channels}</b>"
                         f"<br>with bottlenecks: <b>{human(cost.total.macs)}</b> MACs ({share:.0%}), "
                         f"{human(cost.total.params)} params, output depth <b>{cost.out_channels}</b>")
        groups.append((naive_idx, step_idx, texts, peak, steps, active))
    total = len(fig.data)

    for m, (naive_idx, step_idx, texts, peak, steps, active) in enumerate(groups):
        slider_steps = []
        for k, (step_label, _, _) in enumerate(steps):
            visible = [False] * total
            for t in naive_idx + step_idx[k]:
                visible[t] = True
            slider_steps.append(dict(method="update", label=step_label.replace("r = ", ""),
                                     args=[{"visible": visible}, {f"annotations[{note}].text": texts[k]}]))
        sliders.append(dict(steps=slider_steps, active=active, visible=m == 0, x=0.0, len=1.0, pad=dict(t=60),
                            currentvalue=dict(prefix="1×1 reduction width r: ", font=dict(size=16)),
                            font=dict(size=14)))
        visible = [False] * total
        for t in naive_idx + step_idx[active]:
            visible[t] = True
        layout = {f"sliders[{j}].visible": j == m for j in range(len(groups))}
        layout.update({f"sliders[{m}].active": active, f"annotations[{note}].text": texts[active],
                       "yaxis.range": [0, peak[0] * 1.18], "yaxis2.range": [0, peak[1] * 1.18]})
        menu.append(dict(method="update", label=list(modules)[m], args=[{"visible": visible}, layout]))

    # from the top, in px (the same at any width): the title; the menu and the legend on one row, the menu
    # on the left, clear of plotly's toolbar; the four lines of the note; then the panels. The margins
    # are set, not grown by plotly to fit what lies outside the panels (which would move the panels
    # down by the heights of the legend and the menu once more).
    first = groups[0]
    height, row = 860, 48 if title else 10  # row: the top of the legend and the menu
    top = row + 154
    fig.add_annotation(text=first[2][first[5]], xref="paper", yref="paper", x=0, y=1, yshift=30, xanchor="left",
                       yanchor="bottom", showarrow=False, align="left", font=dict(size=15))
    fig.update_yaxes(range=[0, first[3][0] * 1.18], row=1, col=1, title_text="MACs")
    fig.update_yaxes(range=[0, first[3][1] * 1.18], row=2, col=1, title_text="parameters")
    fig.update_xaxes(tickfont=dict(size=16))
    fig.update_traces(textfont=dict(size=14), cliponaxis=False, constraintext="none")
    fig.update_layout(barmode="group", bargap=0.22, bargroupgap=0.06, sliders=sliders,
                      uniformtext=dict(minsize=13, mode="show"),
                      legend=dict(orientation="h", x=1, xanchor="right", yref="container", y=1 - row / height,
                                  yanchor="top", font=dict(size=15)),
                      updatemenus=[dict(type="dropdown", buttons=menu, active=0, x=0, y=1, xanchor="left",
                                        yanchor="bottom", pad=dict(b=top - row - 34), direction="down",
                                        showactive=True, font=dict(size=15))] if len(menu) > 1 else [])
    style(fig, title=title, height=height)
    if title:
        fig.update_layout(title=dict(yref="container", y=1, yanchor="top", pad=dict(t=14)))
    return fig.update_layout(margin=dict(l=84, r=20, t=top, b=142, autoexpand=False))
