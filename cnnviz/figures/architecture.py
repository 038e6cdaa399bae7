"""Pictures of whole architectures: a block diagram (SVG) and the interactive static twin (plotly).

Both take *units*: rows with ``name``, ``kind``, ``output_shape`` (C, H, W) or (F,),
``params``, ``macs`` and ``receptive_field`` (input pixels, or None), such as
the rows of a ``cnnviz.summary`` or the grouped units of ``diagram_units``.
MACs are multiply–accumulates of convolution and linear layers (FLOPs / 2).
"""
import html
import math
from typing import Dict, Optional, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.plot import style

__all__ = ["KIND_COLOURS", "SIZE_BY", "ELEMENTWISE", "kind_colour", "diagram_units", "architecture_svg",
           "architecture_figure", "human"]

#: Colours by the family of a layer's kind (the same in the SVG diagram, the twin and the widget).
KIND_COLOURS = {"conv": "#3b75af", "pool": "#ef8636", "linear": "#8d69b8", "block": "#2a9d8f",
                "norm": "#9e9e9e", "other": "#bdbdbd"}
#: What a block's height can show.
SIZE_BY = {"activations": "activations (output values per image)", "params": "parameters", "macs": "MACs"}


#: Layer kinds that keep the shape and hold few or no weights: left out of diagrams (still in the tables).
ELEMENTWISE = frozenset({"ReLU", "ReLU6", "Tanh", "ScaledTanh", "Sigmoid", "Dropout", "Dropout2d", "BatchNorm2d",
                         "BatchNorm1d", "LocalResponseNorm", "Flatten", "Identity", "Softmax", "LogSoftmax"})


def diagram_units(summary, max_units: int = 64):
    """The rows of ``summary`` worth a block each: as fine-grained as fits in ``max_units``.

    Layers are grouped by the first components of their dotted names
    (``Summary.group``): VGG keeps every convolution, ResNet one block per
    residual block, DenseNet one per dense block and transition. Element-wise
    layers (``ELEMENTWISE``: ReLU, batch norm, dropout, ...) are left out.
    """
    best, previous, depth = None, None, 1
    while True:
        rows = [r for r in summary.group(depth).rows if r.kind not in ELEMENTWISE]
        names = [r.name for r in rows]
        if names == previous or (best is not None and len(rows) > max_units):
            break
        best, previous, depth = rows, names, depth + 1
    return best


def kind_colour(kind: str) -> str:
    """The colour of a layer kind: convolutions blue, pooling orange, linear purple, modules/blocks teal."""
    k = kind.lower()
    if "conv" in k:
        return KIND_COLOURS["conv"]
    if "pool" in k:
        return KIND_COLOURS["pool"]
    if k in ("linear", "rbf", "rbfoutput"):
        return KIND_COLOURS["linear"]
    if "norm" in k:
        return KIND_COLOURS["norm"]
    if k in ("relu", "tanh", "dropout", "flatten", "identity", "scaledtanh", "softmax", "sigmoid"):
        return KIND_COLOURS["other"]
    return KIND_COLOURS["block"]  # Inception, BasicBlock, Bottleneck, _DenseBlock, ... (grouped modules)


def human(n: float) -> str:
    """A count the way tables print it: 61.1 M, 13.3 K, 1.14 G, 96."""
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f}"


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
    rf = unit.receptive_field
    if rf is None:
        return None
    return max(rf) if isinstance(rf, tuple) else rf


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def _tooltip(unit) -> str:
    rf = _rf(unit)
    return (f"{unit.name} ({unit.kind})\noutput {_shape(unit.output_shape)}\nparameters {unit.params:,}\n"
            f"MACs {unit.macs:,}\nactivations {_activations(unit):,}"
            + (f"\nreceptive field {rf}×{rf} px" if rf else ""))


def architecture_svg(units: Sequence, *, size_by: str = "activations", title: Optional[str] = None,
                     width: int = 1100, height: int = 330, highlight: Optional[int] = None) -> str:
    """A block diagram of the layers ``units`` as an SVG string (works in any page, no JavaScript).

    Each unit is a block, left to right; its height is proportional to the square
    root of ``size_by`` (``"activations"``, ``"params"`` or ``"macs"``), so areas
    compare honestly across orders of magnitude, and its colour tells its kind.
    Under each block: its output shape; above the axis line: the receptive field
    (input pixels) where defined. Hovering a block shows its full row.
    """
    if size_by not in SIZE_BY:
        raise ValueError(f"size_by must be one of {', '.join(SIZE_BY)}, not {size_by!r}.")
    units = list(units)
    if not units:
        raise ValueError("There are no layers to draw.")
    n = len(units)
    top, bottom, left, right = (44 if title else 12), 92, 12, 12
    body = height - top - bottom
    slot = (width - left - right) / n
    bar = max(2.0, min(slot * 0.72, 60.0))
    values = [_metric(u, size_by) for u in units]
    peak = max(values) or 1.0
    base_y = top + body
    font = max(9, min(15, int(slot * 0.55)))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px;font-family:Helvetica,Arial,sans-serif" role="img">']
    if title:
        parts.append(f'<text x="{left}" y="26" font-size="20" font-weight="bold">{html.escape(title)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{base_y}" y2="{base_y}" stroke="#444" stroke-width="1"/>')
    label_every = max(1, math.ceil(n / max(1, (width - left - right) // 34)))
    for i, (u, v) in enumerate(zip(units, values)):
        x = left + i * slot + (slot - bar) / 2
        h = max(2.0, body * math.sqrt(v / peak)) if v > 0 else 2.0
        stroke = ' stroke="#d62728" stroke-width="3"' if highlight == i else ""
        parts.append(f'<g><title>{html.escape(_tooltip(u))}</title>'
                     f'<rect x="{x:.1f}" y="{base_y - h:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="2" '
                     f'fill="{kind_colour(u.kind)}"{stroke}/></g>')
        if i % label_every == 0 or highlight == i:
            cx = left + (i + 0.5) * slot
            parts.append(f'<text x="{cx:.1f}" y="{base_y + 12}" font-size="{font}" text-anchor="end" '
                         f'transform="rotate(-55 {cx:.1f} {base_y + 12})">{html.escape(_short(u.name))}</text>')
    legend = [(k, c) for k, c in KIND_COLOURS.items() if any(kind_colour(u.kind) == c for u in units)]
    lx = width - right
    for name, colour in reversed(legend):
        lx -= 12 + 7 * len(name) + 22
        parts.append(f'<rect x="{lx}" y="{height - 18}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="{height - 8}" font-size="13">{name}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="13">block height ∝ √{html.escape(SIZE_BY[size_by])}'
                 f' · peak {human(peak)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(name: str, limit: int = 16) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def architecture_figure(models: Dict[str, Sequence], *, title: Optional[str] = None,
                        notes: Optional[Dict[str, str]] = None) -> go.Figure:
    """The static twin of the architecture explorer: a menu of models, three panels over depth.

    ``models`` maps a label (e.g. "VGG-16 @ 224×224") to its units. For the
    chosen model the panels show, per unit, the activations it stores, its
    parameters (both as bars coloured by kind) and its receptive field in input
    pixels (a line: how far each layer sees). Hover a bar for the full row;
    ``notes`` (same keys) adds a line of totals under the title.
    """
    if not models:
        raise ValueError("Give at least one model.")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=False, vertical_spacing=0.07,
                        subplot_titles=("activations per image (output values)", "parameters",
                                        "receptive field (input pixels)"))
    per_model = 3
    labels = list(models)
    annotations = list(fig.layout.annotations)
    for k, label in enumerate(labels):
        units = list(models[label])
        x = [f"{i}·{u.name}" for i, u in enumerate(units)]
        colours = [kind_colour(u.kind) for u in units]
        hover = [html.escape(_tooltip(u)).replace("\n", "<br>") for u in units]
        common = dict(x=x, visible=k == 0, hovertext=hover, hoverinfo="text")
        fig.add_trace(go.Bar(y=[_activations(u) for u in units], marker_color=colours, name="activations",
                             **common), row=1, col=1)
        fig.add_trace(go.Bar(y=[u.params for u in units], marker_color=colours, name="parameters", **common),
                      row=2, col=1)
        rf = [_rf(u) for u in units]
        fig.add_trace(go.Scatter(y=rf, mode="lines+markers", connectgaps=True, name="receptive field",
                                 line=dict(color="#d62728", width=3), **common), row=3, col=1)
    buttons = []
    note_index = len(annotations)
    for k, label in enumerate(labels):
        visible = [t // per_model == k for t in range(len(fig.data))]
        text = (notes or {}).get(label, "")
        buttons.append(dict(method="update", label=label, args=[{"visible": visible},
                                                               {f"annotations[{note_index}].text": text}]))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(title_text="values", row=1, col=1)
    fig.update_yaxes(title_text="parameters", row=2, col=1)
    fig.update_yaxes(title_text="pixels", row=3, col=1)
    fig.add_annotation(text=(notes or {}).get(labels[0], ""), xref="paper", yref="paper", x=0, y=1.08,
                       xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=15), align="left")
    fig.update_layout(showlegend=False, bargap=0.15, updatemenus=[dict(
        type="dropdown", buttons=buttons, active=0, x=1, y=1.16, xanchor="right", yanchor="bottom",
        direction="down", showactive=True, font=dict(size=15))])
    style(fig, title=title, height=760)
    return fig.update_layout(margin=dict(l=20, r=20, t=140 if title else 110, b=20))
