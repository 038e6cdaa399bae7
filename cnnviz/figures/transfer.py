"""Figures of chapter 14: the measured two-by-two table, the curves behind it, which layers transfer, and 2-D maps
of each layer's features. Each takes a ``cnnviz.transfer_study.TransferTable`` (or ``projections``' dict) and
returns a styled ``go.Figure``; ``transfer_svg`` and ``table_html`` draw the live explorer's chart and table."""
import html
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.plot import style

__all__ = ["STRATEGY_COLOURS", "transfer_table_figure", "learning_curves_figure", "layer_probe_figure",
           "manifold_figure", "transfer_explorer_figure", "transfer_svg", "table_html", "layer_label"]

#: One colour per strategy, the same in every figure and in the explorer.
STRATEGY_COLOURS = {"scratch": "#7f7f7f", "probe": "#1f77b4", "finetune_top": "#ff7f0e", "finetune_all": "#d62728",
                    "pixels": "#bcbd22", "random_probe": "#9467bd", "stage": "#1f77b4", "random_stage": "#9467bd"}
_SHORT = {"scratch": "from scratch", "probe": "linear probe (top)", "finetune_top": "fine-tune top block",
          "finetune_all": "fine-tune all", "pixels": "linear on pixels", "random_probe": "probe of random net"}
_TINY = {"scratch": "scratch", "probe": "probe (top)", "finetune_top": "fine-tune top", "finetune_all": "fine-tune all",
         "pixels": "pixels", "random_probe": "random net"}
_VERDICT_COLOUR = {"agrees": "#2e7d32", "within noise": "#8d6e00", "partly": "#8d6e00", "disagrees": "#b00020"}


def layer_label(name: str) -> str:
    """A short name for a probed layer: ``features.relu2`` → ``relu2``, ``classifier.flatten`` → ``top``."""
    if name in ("pixels",):
        return "pixels"
    if name.startswith("classifier") or name in ("avgpool", "flatten"):
        return "top"
    return name.split(".")[-1] if name.startswith("features.") else name


def _order(table):
    from cnnviz.transfer_study import BASELINES, STRATEGIES

    return list(STRATEGIES) + list(BASELINES)


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, joined by <br> (plotly's line break)."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width))


def transfer_table_figure(table, *, title: str = None, height: int = 820) -> go.Figure:
    """The lecture's two-by-two table, measured: one panel per cell (rows: very little / quite a lot of data;
    columns: similar / different target), each with the four strategies and the two baselines (mean test
    accuracy over the seeds, a bar per strategy, the standard error as a whisker, every seed on hover), the
    lecture's rule over it with whether the measurement agrees, and chance as a dotted line. The lecture's
    choice is outlined."""
    from cnnviz.transfer_study import STRATEGY_NAMES

    cells = table.cells()
    titles = []
    for c in cells:
        colour = _VERDICT_COLOUR.get(c.verdict, "#333")
        amount = "very little data" if c.data == "little" else "quite a lot of data"
        titles.append(f"<b>{amount} ({c.size}/class), {c.similarity}</b> "
                      f"<span style='color:{colour}'><b>[{c.verdict}]</b></span><br>"
                      f"<span style='font-size:13px'>{_wrap('lecture: ' + c.rule, 46)}</span>")
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.24)
    names = _order(table)
    for k, c in enumerate(cells):
        r, col = 1 + k // 2, 1 + k % 2
        means, errs, hover, colours, lines = [], [], [], [], []
        for s in names:
            m, e = table.mean(c.similarity, c.size, s)
            seeds = table.accuracies(c.similarity, c.size, s)
            means.append(100 * m)
            errs.append(100 * e)
            hover.append(f"{STRATEGY_NAMES[s]}<br>mean {100 * m:.1f} % ± {100 * e:.1f} (standard error)<br>seeds: "
                         + ", ".join(f"{100 * v:.1f}" for v in seeds))
            colours.append(STRATEGY_COLOURS[s])
            lines.append(3 if s in c.recommended else 0)
        fig.add_trace(go.Bar(y=[_TINY[s] for s in names], x=means, orientation="h", marker_color=colours,
                             marker_line=dict(color="#111", width=lines), error_x=dict(array=errs, thickness=1.5),
                             text=[f"{m:.0f}" for m in means], textposition="inside", insidetextanchor="start",
                             customdata=hover, hovertemplate="%{customdata}<extra></extra>", showlegend=False),
                      row=r, col=col)
        chance = 100 * table.chance[c.similarity]
        fig.add_vline(x=chance, line_dash="dot", line_color="#555", row=r, col=col)
        fig.update_xaxes(range=[0, 100], title_text="test accuracy %" if r == 2 else None, row=r, col=col)
        fig.update_yaxes(autorange="reversed", row=r, col=col)
    fig.update_annotations(font_size=14)
    fig = style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=150 if title else 110))
    return fig


def learning_curves_figure(table, *, title: str = None, height: int = 460) -> go.Figure:
    """Test accuracy against the number of training images per class (log axis), one line per strategy and
    baseline, a panel per target: the curves the table's cells are cut from."""
    from cnnviz.transfer_study import STRATEGY_NAMES, TARGETS

    targets = list(table.config.targets)
    fig = make_subplots(rows=1, cols=len(targets), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"{t} target: {TARGETS[t].title}" for t in targets])
    sizes = list(table.config.sizes)
    for j, t in enumerate(targets):
        for s in _order(table):
            stats = [table.mean(t, n, s) for n in sizes]
            fig.add_trace(go.Scatter(x=sizes, y=[100 * m for m, _ in stats], mode="lines+markers", name=_SHORT[s],
                                     legendgroup=s, showlegend=j == 0, line=dict(color=STRATEGY_COLOURS[s],
                                                                                   dash="dot" if s in ("pixels",
                                                                                   "random_probe") else "solid"),
                                     error_y=dict(array=[100 * e for _, e in stats], thickness=1),
                                     hovertemplate=f"{STRATEGY_NAMES[s]}<br>%{{x}} per class: %{{y:.1f}} %"
                                                   "<extra></extra>"),
                          row=1, col=j + 1)
        fig.add_hline(y=100 * table.chance[t], line_dash="dot", line_color="#999", row=1, col=j + 1)
        fig.update_xaxes(type="log", tickvals=sizes, title_text="training images per class", row=1, col=j + 1)
    fig.update_yaxes(range=[0, 100], title_text="test accuracy %", row=1, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return style(fig, title=title, height=height)


def layer_probe_figure(table, *, title: str = None, height: int = 470) -> go.Figure:
    """Which layers transfer (Yosinski et al. 2014): a linear probe's test accuracy on each stage's features,
    pretrained (solid) and with random weights (dotted), a panel per target; the slider picks the training-set
    size. The pixels baseline is the first point."""
    from cnnviz.transfer_study import TARGETS

    targets = list(table.config.targets)
    sizes = list(table.config.sizes)
    labels = ["pixels"] + [layer_label(s) for s in table.stages]
    fig = make_subplots(rows=1, cols=len(targets), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"{t} target: {TARGETS[t].title}" for t in targets])
    per_size = 0
    for i, n in enumerate(sizes):
        for j, t in enumerate(targets):
            pixels = table.mean(t, n, "pixels")[0]
            for kind, dash, name in (("stage", "solid", "pretrained"), ("random_stage", "dot", "random weights")):
                ys = [pixels] + [table.mean(t, n, kind, layer)[0] for layer in table.stages]
                fig.add_trace(go.Scatter(x=labels, y=[100 * v for v in ys], mode="lines+markers", name=name,
                                         legendgroup=kind, showlegend=j == 0, visible=i == len(sizes) - 1,
                                         line=dict(color=STRATEGY_COLOURS[kind], dash=dash, width=3),
                                         marker=dict(size=9),
                                         hovertemplate=f"{name}, %{{x}}: %{{y:.1f}} %<extra></extra>"),
                              row=1, col=j + 1)
            if i == 0:
                fig.add_hline(y=100 * table.chance[t], line_dash="dot", line_color="#999", row=1, col=j + 1)
        per_size = 2 * len(targets)
    steps = []
    for i, n in enumerate(sizes):
        visible = [k // per_size == i for k in range(per_size * len(sizes))]
        steps.append(dict(method="update", label=f"{n} per class", args=[{"visible": visible}]))
    fig.update_layout(sliders=[dict(active=len(sizes) - 1, steps=steps, currentvalue=dict(prefix="training set: "),
                                    pad=dict(t=60))],
                      legend=dict(orientation="h", yanchor="bottom", y=1.1, x=1, xanchor="right"))
    fig.update_yaxes(range=[0, 100], title_text="probe accuracy %", row=1, col=1)
    fig.update_xaxes(title_text="layer (early → late)")
    fig = style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=120))
    return fig


def manifold_figure(proj: dict, *, title: str = None, height: int = 560) -> go.Figure:
    """``transfer_study.projections``: the test images of a target as points in the plane of each layer's first
    two principal components, coloured by class; the slider walks from the pixels to the top layer (the share of
    variance the plane keeps in each step's label)."""
    import plotly.express as px

    labels = np.asarray(proj["labels"])
    classes = proj["classes"]
    palette = px.colors.qualitative.D3
    fig = go.Figure()
    layers = proj["layers"]
    for i, layer in enumerate(layers):
        pts = np.asarray(proj["points"][layer])
        span = float(np.percentile(np.abs(pts), 95)) or 1.0   # 95 % of the coordinates inside ±1
        pts = pts / span
        for k, name in enumerate(classes):
            sel = labels == k
            fig.add_trace(go.Scatter(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=name, legendgroup=name,
                                     visible=i == len(layers) - 1,
                                     marker=dict(size=8, color=palette[k % len(palette)], opacity=0.8),
                                     hovertemplate=f"{name}<extra>{layer_label(layer)}</extra>"))
    n = len(classes)
    steps = [dict(method="update", label=f"{layer_label(layer)} ({100 * proj['variance'][layer]:.0f} %)",
                  args=[{"visible": [j // n == i for j in range(n * len(layers))]}]) for i, layer in enumerate(layers)]
    fig.update_layout(sliders=[dict(active=len(layers) - 1, steps=steps, pad=dict(t=40),
                                    currentvalue=dict(prefix="features of: "))])
    fig.update_xaxes(range=[-1.6, 1.6], title_text="first principal component", zeroline=False)
    fig.update_yaxes(range=[-1.6, 1.6], title_text="second", zeroline=False, scaleanchor="x")
    return style(fig, title=title, height=height)


def _mean_curve(table, target, size, strategy):
    curves = [table.curves.get(f"{target}/{size}/{seed}/{strategy}") for seed in table.config.seeds]
    curves = [c for c in curves if c]
    if not curves:
        return [], []
    n = min(len(c) for c in curves)
    xs = [curves[0][i]["images"] for i in range(n)]
    ys = [sum(c[i]["loss"] for c in curves) / len(curves) for i in range(n)]
    return xs, ys


def transfer_explorer_figure(table, *, title: str = None, height: int = 520) -> go.Figure:
    """The static twin of ``TransferExplorer``: for each target and training-set size (the slider), the training
    loss of the trained strategies (mean over seeds) as training goes on, and the test accuracy every strategy,
    baseline and stage probe reached."""
    from cnnviz.transfer_study import STRATEGY_NAMES

    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.2,
                        subplot_titles=["training loss as it trains", "test accuracy %"])
    combos = [(t, n) for t in table.config.targets for n in table.config.sizes]
    trained = ("scratch", "finetune_top", "finetune_all")
    bars = _order(table)
    per = 0
    last = len(combos) - 1
    for i, (t, n) in enumerate(combos):
        count = 0
        for s in trained:
            xs, ys = _mean_curve(table, t, n, s)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=_SHORT[s], legendgroup=s,
                                     visible=i == last, line=dict(color=STRATEGY_COLOURS[s], width=3),
                                     hovertemplate=f"{STRATEGY_NAMES[s]}<br>%{{x}} images: loss %{{y:.3f}}"
                                                   "<extra></extra>"), row=1, col=1)
            count += 1
        names = bars + [f"probe {layer_label(l)}" for l in table.stages[:-1]]
        means = [100 * table.mean(t, n, s)[0] for s in bars] + \
                [100 * table.mean(t, n, "stage", l)[0] for l in table.stages[:-1]]
        colours = [STRATEGY_COLOURS[s] for s in bars] + ["#8fb8de"] * (len(table.stages) - 1)
        fig.add_trace(go.Bar(y=[_SHORT.get(s, s) for s in bars] + names[len(bars):], x=means, orientation="h",
                             marker_color=colours, text=[f"{m:.1f}" for m in means], textposition="outside",
                             visible=i == last, showlegend=False, cliponaxis=False,
                             hovertemplate="%{y}: %{x:.1f} %<extra></extra>"), row=1, col=2)
        count += 1
        per = count
    steps = [dict(method="update", label=f"{t}, {n}",
                  args=[{"visible": [k // per == i for k in range(per * len(combos))]}])
             for i, (t, n) in enumerate(combos)]
    fig.update_layout(sliders=[dict(active=last, steps=steps, pad=dict(t=50, l=30, r=30),
                                    currentvalue=dict(prefix="target, training images per class: "))],
                      legend=dict(orientation="h", yanchor="bottom", y=1.1, x=0))
    fig.update_xaxes(title_text="training images seen", row=1, col=1)
    fig.update_yaxes(title_text="cross-entropy", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(range=[0, 112], row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig = style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=120))
    return fig


# ----------------------------------------------------------------------------- the live explorer's drawings


def _nice_ticks(total: float, most: int = 5) -> list:
    """Ticks at 0, s, 2s, … up to ``total`` with s one of 1, 2, 5 × 10^k: at most ``most`` of them."""
    if total <= 0:
        return [0]
    raw = total / (most - 1)
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return [k * step for k in range(int(total // step) + 1)]


def transfer_svg(curve, *, total: int, width: int = 620, height: int = 300, font_size: int = 14,
                 colour: str = "#d62728", label: str = "") -> str:
    """A small SVG chart of a run's training loss (line) and training accuracy (dashed, right axis) against
    the images seen so far, the x axis fixed at ``total`` images so the line grows as it trains."""
    left, right, top, bottom = 3.6 * font_size, 3.6 * font_size, 1.6 * font_size, 2.6 * font_size
    w, h = width - left - right, height - top - bottom
    pts = [(p["images"], p["loss"], p["acc"]) for p in curve if math.isfinite(p["loss"])]
    ymax = max([2.0] + [p[1] for p in pts]) if pts else 2.0
    ymax = math.ceil(ymax * 2) / 2

    def x(v):
        return left + w * v / max(total, 1)

    def yl(v):
        return top + h * (1 - min(v, ymax) / ymax)

    def ya(v):
        return top + h * (1 - v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="{font_size}">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>']
    for k in range(5):
        v = ymax * k / 4
        parts.append(f'<text x="{left - 6}" y="{yl(v) + font_size / 3:.1f}" text-anchor="end">{v:.1f}</text>')
        parts.append(f'<text x="{left + w + 6}" y="{ya(k / 4) + font_size / 3:.1f}">{25 * k}%</text>')
    for v in _nice_ticks(total):
        parts.append(f'<text x="{x(v):.1f}" y="{top + h + 1.3 * font_size:.1f}" text-anchor="middle">{v:,.0f}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height - 4}" text-anchor="middle">training images seen</text>')
    parts.append(f'<text x="{left}" y="{top - 6}">loss (line)</text>')
    parts.append(f'<text x="{left + w}" y="{top - 6}" text-anchor="end">training accuracy (dashed)</text>')
    if pts:
        line = " ".join(f"{x(p[0]):.1f},{yl(p[1]):.1f}" for p in pts)
        acc = " ".join(f"{x(p[0]):.1f},{ya(p[2]):.1f}" for p in pts)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="3"/>')
        parts.append(f'<polyline points="{acc}" fill="none" stroke="{colour}" stroke-width="2" '
                     'stroke-dasharray="6 4" opacity="0.7"/>')
    if label:
        parts.append(f'<text x="{left + 8}" y="{top + font_size + 4}" font-weight="600">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table_html(table, *, live: dict = None, font_size: int = 15) -> str:
    """The two-by-two table as HTML: in each cell the lecture's rule and the book's measured accuracies (mean over
    seeds); ``live`` ({"data": "little"/"lots", "similarity", "strategy", "accuracy", "size"}) adds the
    explorer's own run to its cell, in bold."""
    from cnnviz.transfer_study import RULES, STRATEGIES

    sizes = {"little": min(table.config.sizes), "lots": max(table.config.sizes)}
    fs = font_size
    out = [f'<table style="border-collapse:collapse;font-size:{fs}px;width:100%">',
           '<tr><th></th><th style="padding:4px 8px">similar data set</th>'
           '<th style="padding:4px 8px">different data set</th></tr>']
    for data in ("little", "lots"):
        label = "very little data" if data == "little" else "quite a lot of data"
        out.append(f'<tr><th style="padding:4px 8px;text-align:left">{label}<br>'
                   f'<span style="font-weight:400">(book: {sizes[data]}/class)</span></th>')
        for sim in ("similar", "different"):
            rule, recommended = RULES[(data, sim)]
            lines = [f'<i>{html.escape(rule)}</i>']
            for s in STRATEGIES:
                m = table.mean(sim, sizes[data], s)[0]
                mark = "★ " if s in recommended else ""
                lines.append(f'{mark}{_SHORT[s]}: {100 * m:.1f} %')
            if "stages" in recommended:
                layer, m = table.best_stage(sim, sizes[data])
                lines.append(f'★ best stage, probe on {layer_label(layer)}: {100 * m:.1f} %')
            if live and live.get("data") == data and live.get("similarity") == sim:
                lines.append(f'<b style="color:#b00020">your run ({html.escape(str(live["strategy"]))}, '
                             f'{live["size"]}/class): {100 * live["accuracy"]:.1f} %</b>')
            out.append('<td style="border:1px solid #bbb;padding:6px 8px;vertical-align:top">'
                       + "<br>".join(lines) + "</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)
