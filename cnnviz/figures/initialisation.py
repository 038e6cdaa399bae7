"""Figures of chapter 9: signal flow through deep networks, the trainability map, and normalisation axes.

Every figure is interactive with no kernel: menus and sliders switch between precomputed states.
``signal_flow_svg`` is the live widget's picture (plain SVG with an embedded PNG: no script, so it shows in
an ``ipywidgets.HTML`` on Colab too).
"""
import base64
import io
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.plot import SEQUENTIAL, style
from cnnviz.signal_flow import LOG_EDGES

__all__ = ["signal_flow_figure", "signal_flow_svg", "std_by_layer_figure", "trainability_figure",
           "norm_axes_figure", "batch_dependence_figure"]

_PANELS = ("activations, without BN", "gradients, without BN", "activations, with BN", "gradients, with BN")


def _shares(stats, group: int = 1) -> np.ndarray:
    """(layers, bins) share of each layer's values per bin (``group`` of ``LOG_EDGES``' bins merged into one),
    square-rooted so that small shares stay visible."""
    h = np.array([s.hist for s in stats], dtype=float)
    h = h.reshape(len(stats), -1, group).sum(2)
    total = h.sum(1, keepdims=True)
    return np.sqrt(np.divide(h, total, out=np.zeros_like(h), where=total > 0))


def _log_std(stats) -> list:
    return [round(math.log10(s.std), 2) if s.finite and s.std > 0 else None for s in stats]


def _panel_title(name: str, flow, which: str) -> str:
    if flow.diverged_at is not None and which == "gradients":
        return f"{name}: none (diverged at layer {flow.diverged_at})"
    stats = flow.activations if which == "activations" else flow.gradients
    last = stats[-1]
    if not last.finite:
        return f"{name}: diverged at layer {flow.diverged_at}"
    return f"{name}: std at layer {len(stats)} = {last.std:.2g}"


_BINS = 4  # the static figure bins two decades (four of LOG_EDGES' half decades): a light page


def _state(flows_bn: dict):
    """The data of the four heatmaps (uint8, square-root shares) and four std lines for one network and depth."""
    n = len(flows_bn[False].activations)
    zs, xs, titles = [], [], []
    for bn in (False, True):
        flow = flows_bn[bn]
        for which in ("activations", "gradients"):
            stats = getattr(flow, which)
            if stats:
                zs.append(np.round(255 * _shares(stats, _BINS)).astype(np.uint8))
                xs.append(_log_std(stats))
            else:  # no gradients: the loss was not finite
                zs.append(np.zeros((n, (len(LOG_EDGES) - 1) // _BINS), dtype=np.uint8))
                xs.append([None] * n)
            titles.append(_panel_title(("without BN" if not bn else "with BN") + f", {which}", flow, which))
    return zs, xs, list(range(1, n + 1)), titles


def signal_flow_figure(flows: dict, *, title: str = None, height: int = 760) -> go.Figure:
    """The static signal-flow explorer: for a network chosen in a menu (initialisation · activation) and a
    depth chosen on a slider, the distribution of every layer's activations and gradients (colour: share of
    the layer's values at each magnitude, square-root scale), without batch norm (top) and with it (bottom);
    the white line marks each layer's standard deviation. ``flows``: ``cnnviz.signal_flow.flow_grid``'s result.

    Each (network, depth) is one plotly frame; a frame also carries the slider of its network, so choosing a
    network in the menu swaps the depth slider's steps too, with no script of our own.
    """
    labels = list(dict.fromkeys(k[0] for k in flows))
    depths = sorted({k[1] for k in flows})
    edges = LOG_EDGES[::_BINS]
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.14, horizontal_spacing=0.06,
                        subplot_titles=_PANELS)
    titles_layout = [dict(a.to_plotly_json()) for a in fig.layout.annotations]

    def traces(state, full=False):
        zs, xs, ys, _ = state
        if not full:  # a frame only carries what changes; the rest stays from the figure's own traces
            return [go.Heatmap(z=z, y=ys) for z in zs] + [go.Scatter(x=x, y=ys) for x in xs]
        heat = [go.Heatmap(x=centres, y=ys, z=z, zmin=0, zmax=255, colorscale=SEQUENTIAL, showscale=False,
                           hovertemplate="layer %{y}, |value| ≈ 10^%{x:.1f}<extra></extra>") for z in zs]
        lines = [go.Scatter(x=x, y=ys, mode="lines", line=dict(color="white", width=2), showlegend=False,
                            hovertemplate="layer %{y}: std 10^%{x:.1f}<extra></extra>") for x in xs]
        return heat + lines

    def annotations(state):
        return [dict(a, text=t) for a, t in zip(titles_layout, state[3])]

    def slider(label, active):
        steps = [dict(method="animate", label=str(d), args=[[f"{label}|{d}"], _JUMP]) for d in depths]
        return dict(active=active, steps=steps, currentvalue=dict(prefix="depth: "), pad=dict(t=60), x=0.0, len=1.0)

    frames = []
    for label in labels:
        for k, d in enumerate(depths):
            state = _state({bn: flows[(label, d, bn)] for bn in (False, True)})
            frames.append(go.Frame(name=f"{label}|{d}", data=traces(state), traces=list(range(8)),
                                   layout=dict(annotations=annotations(state), sliders=[slider(label, k)])))
    first = _state({bn: flows[(labels[0], depths[-1], bn)] for bn in (False, True)})
    for k, t in enumerate(traces(first, full=True)):
        fig.add_trace(t, row=k % 4 // 2 + 1, col=k % 2 + 1)
    fig.frames = frames
    buttons = [dict(method="animate", label=label, args=[[f"{label}|{depths[-1]}"], _JUMP]) for label in labels]
    fig.update_layout(annotations=annotations(first), sliders=[slider(labels[0], len(depths) - 1)],
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.1,
                                        yanchor="bottom", showactive=True)])
    fig.update_xaxes(range=[edges[0], edges[-1]], dtick=20, tickprefix="1e", showticklabels=True)
    fig.update_xaxes(title_text="|value|", row=2)
    fig.update_yaxes(range=[depths[-1] + 0.5, 0.5])  # fixed: a shallower network fills the top rows only
    fig.update_yaxes(title_text="layer", col=1)
    style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=140 if title else 110, b=20))
    return fig


_JUMP = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))


def std_by_layer_figure(profiles: dict, *, which: str = "activations", title: str = None,
                        height: int = 460) -> go.Figure:
    """The standard deviation of each layer's activations (or gradients) on a log scale; ``profiles`` maps a
    label to a ``SignalFlow``. Layers past an overflow are left out, and the legend says where it happened."""
    fig = go.Figure()
    for label, flow in profiles.items():
        stats = getattr(flow, which)
        y = [s.std if s.finite and s.std > 0 else None for s in stats]
        name = label + (f" (diverged at layer {flow.diverged_at})" if flow.diverged_at else "")
        fig.add_trace(go.Scatter(x=list(range(1, len(stats) + 1)), y=y, mode="lines+markers", name=name,
                                 marker=dict(size=5), line=dict(width=3),
                                 hovertemplate=f"{label}, layer %{{x}}: std %{{y:.3g}}<extra></extra>"))
    fig.update_yaxes(type="log", exponentformat="power", title_text=f"std of the {which}")
    fig.update_xaxes(title_text="layer")
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return style(fig, title=title, height=height)


def trainability_figure(tmap, *, title: str = None, threshold: float = 0.9, height: int = 820) -> go.Figure:
    """The trainability map without batch norm (top) and with it (bottom): test accuracy (colour and number, in
    %) for each initial σ (rows) and learning rate (columns); × marks a run that diverged. Stacked, so that each
    map has the page's whole width."""
    from cnnviz.trainability import he_sigma

    cfg = tmap.config
    he = he_sigma(cfg.width)
    rows = [f"{s:.3g}" + (" (He)" if math.isclose(s, he, rel_tol=1e-6) else "") for s in cfg.sigmas]
    cols = [f"{v:g}" for v in cfg.lrs]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.14, subplot_titles=[
        f"without batch norm: {100 * tmap.trainable_share(False, threshold):.0f} % of the runs reach "
        f"{100 * threshold:.0f} %",
        f"with batch norm: {100 * tmap.trainable_share(True, threshold):.0f} % of the runs reach "
        f"{100 * threshold:.0f} %"])
    for k, bn in enumerate((False, True)):
        acc = tmap.accuracy(bn)
        text = [[("" if tmap.cell(i, j, bn).diverged else f"{100 * a:.0f}") for j, a in enumerate(row)]
                for i, row in enumerate(acc)]
        hover = [[tmap.cell(i, j, bn).describe() for j in range(len(cols))] for i in range(len(rows))]
        fig.add_trace(go.Heatmap(x=cols, y=rows, z=(acc * 100).tolist(), zmin=0, zmax=100, colorscale=SEQUENTIAL,
                                 text=text, texttemplate="%{text}", textfont=dict(size=15), customdata=hover,
                                 hovertemplate="%{customdata}<extra></extra>", xgap=2, ygap=2,
                                 showscale=k == 0, colorbar=dict(title="test<br>accuracy %", len=1.0, y=0.5)),
                      row=k + 1, col=1)
        gone = [(cols[j], rows[i], hover[i][j]) for i in range(len(rows)) for j in range(len(cols))
                if tmap.cell(i, j, bn).diverged]
        if gone:  # a diverged run has no accuracy: an empty cell with a red cross
            fig.add_trace(go.Scatter(x=[g[0] for g in gone], y=[g[1] for g in gone], mode="text", text="×",
                                     textfont=dict(size=22, color="#b00020"), customdata=[g[2] for g in gone],
                                     showlegend=False, hovertemplate="%{customdata}<extra></extra>"),
                          row=k + 1, col=1)
        fig.update_xaxes(title_text="learning rate", type="category", showgrid=False, row=k + 1, col=1)
        fig.update_yaxes(title_text="σ of the initial weights", type="category", showgrid=False, row=k + 1, col=1)
    return style(fig, title=title, height=height)


def norm_axes_figure(*, n: int = 4, c: int = 6, groups: int = 2, title: str = None, height: int = 330) -> go.Figure:
    """Wu & He's picture of the four normalisations, flattened: each square is one (image, channel) pair with
    its H×W values; the blue squares are the values one statistic (mean and variance) is computed over, for
    image 0 and channel 0. Derived from ``cnnviz.normalisation.norm_axes``."""
    from cnnviz.normalisation import norm_axes

    kinds = ("batch", "layer", "instance", "group")
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.04,
                        subplot_titles=[f"{k} norm" for k in kinds])
    for k, kind in enumerate(kinds):
        axes = norm_axes(kind, groups)
        z = np.zeros((n, c))
        for i in range(n):
            for j in range(c):
                same_image = i == 0 or 0 in axes
                same_channel = j == 0 or 1 in axes
                if kind == "group":
                    same_channel = j // (c // groups) == 0
                z[i, j] = 1.0 if same_image and same_channel else 0.0
        fig.add_trace(go.Heatmap(z=z, x=list(range(c)), y=list(range(n)), zmin=0, zmax=1, showscale=False, xgap=3,
                                 ygap=3, colorscale=[[0, "#e8e8e8"], [1, "#2c6fbb"]],
                                 hovertemplate="image %{y}, channel %{x}<extra></extra>"), row=1, col=k + 1)
        fig.update_xaxes(title_text="channel C", showgrid=False, zeroline=False, dtick=1, row=1, col=k + 1)
        fig.update_yaxes(title_text="image N" if k == 0 else None, autorange="reversed", showgrid=False,
                         zeroline=False, dtick=1, scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1)
    return style(fig, title=title, height=height)


def batch_dependence_figure(results, *, title: str = None, height: int = 420) -> go.Figure:
    """How far one image's normalised output moves when its batch-mates change, against the batch size, for
    each normalisation (``cnnviz.normalisation.BatchDependence`` results). Exactly 0 is drawn at the bottom."""
    fig = go.Figure()
    floor = 1e-8
    for r in results:
        fig.add_trace(go.Scatter(x=list(r.batch_sizes), y=[max(v, floor) for v in r.change],
                                 mode="lines+markers", name=f"{r.kind} norm", line=dict(width=3),
                                 customdata=list(r.change),
                                 hovertemplate=f"{r.kind} norm, batch %{{x}}: %{{customdata:.3g}}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="batch size", tickvals=list(results[0].batch_sizes))
    fig.update_yaxes(type="log", exponentformat="power",
                     title_text="change of one image's output (std)")
    return style(fig, title=title, height=height)


# ----------------------------------------------------------------------------- SVG for the live widget

def _viridis(share: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours of ``share`` in [0, 1] on plotly's Viridis scale."""
    from plotly.colors import hex_to_rgb, sequential

    stops = np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=float)       # (K, 3)
    pos = np.clip(share, 0, 1) * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    t = (pos - lo)[..., None]
    return np.round(stops[lo] * (1 - t) + stops[lo + 1] * t).astype(np.uint8)


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode()


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def signal_flow_svg(flow, *, width: int = 960, height: int = 520, font_size: int = 15) -> str:
    """Two heat maps side by side, activations and gradients: one row per layer (layer 1 at the top), one
    column per half decade of |value| from 1e-40 to 1e40; colour: the share of the layer's values there
    (square-root scale); the white line: each layer's standard deviation. Plain SVG with an embedded PNG."""
    fs = font_size
    top, bottom, left, right, gap = 2 * fs + 10, 2 * fs + 18, 3 * fs + 8, 2 * fs, 3 * fs
    pw, ph = (width - left - right - gap) / 2, height - top - bottom
    lo, hi = LOG_EDGES[0], LOG_EDGES[-1]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" '
             f'font-family="Helvetica, Arial, sans-serif" font-size="{fs}">']
    n_layers = len(flow.activations)
    for k, which in enumerate(("activations", "gradients")):
        x0 = left + k * (pw + gap)
        stats = getattr(flow, which)
        head = _esc(_panel_title(which, flow, which))
        parts.append(f'<text x="{x0:.1f}" y="{fs + 4}" font-weight="600">{head}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{pw:.1f}" height="{ph:.1f}" fill="#440154"/>')
        if stats:
            png = _png(_viridis(_shares(stats)))
            parts.append(f'<image x="{x0:.1f}" y="{top}" width="{pw:.1f}" height="{ph:.1f}" '
                         f'preserveAspectRatio="none" style="image-rendering:pixelated" '
                         f'href="data:image/png;base64,{png}"/>')
            pts = [(x0 + (v - lo) / (hi - lo) * pw, top + (i + 0.5) / n_layers * ph)
                   for i, v in enumerate(_log_std(stats)) if v is not None]
            if pts:
                parts.append('<polyline fill="none" stroke="white" stroke-width="2.5" points="'
                             + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        else:
            parts.append(f'<text x="{x0 + pw / 2:.1f}" y="{top + ph / 2:.1f}" fill="white" text-anchor="middle">'
                         'no gradients: the loss is not finite</text>')
        for e in range(int(lo), int(hi) + 1, 20):
            x = x0 + (e - lo) / (hi - lo) * pw
            parts.append(f'<text x="{x:.1f}" y="{top + ph + fs + 4:.1f}" text-anchor="middle">1e{e}</text>')
        parts.append(f'<text x="{x0 + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">|value|</text>')
    for layer in sorted({1, n_layers} | set(range(10, n_layers, 10))):
        y = top + (layer - 0.5) / n_layers * ph
        parts.append(f'<text x="{left - 6}" y="{y + fs / 3:.1f}" text-anchor="end">{layer}</text>')
    parts.append(f'<text x="{fs}" y="{top + ph / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 {fs} {top + ph / 2:.1f})">layer</text>')
    parts.append("</svg>")
    return "".join(parts)
