"""Training curves of a race of plain and residual networks (``cnnviz.race``).

- ``race_figure(log)``: the recorded race as an animated plotly figure, in the style of Figure 6 of
  He et al. 2016 (plain nets left, residual nets right, error in % against epochs). A play button
  and a slider replay the run: every frame is precomputed, so it works with no kernel.
- ``race_svg(log)``: the same curves as a light SVG line chart, for the live widget (an HTML
  widget redrawn in a few milliseconds; works on Colab's ipywidgets 7).
- ``gradient_figure(profiles)``: gradient norms per block at initialisation (``cnnviz.race.gradient_norms``).
- ``race_table(log)``: the final numbers of a race as a Markdown table.

Training error is drawn solid and test error dashed (the paper does the opposite: here the solid
line is the one that shows the degradation).
"""
from html import escape

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.plot import style

__all__ = ["race_figure", "race_svg", "gradient_figure", "race_table", "net_label", "DEPTH_COLOURS"]

#: One colour per depth, shallow to deep (Okabe–Ito: distinguishable with colour-blindness).
DEPTH_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_PANELS = {"plain": "plain networks", "resnet": "residual networks (ResNets)"}


def net_label(name: str) -> str:
    """``"resnet-56"`` → ``"ResNet-56"``, ``"plain-20"`` → ``"plain-20"``."""
    kind, depth = name.split("-")
    return f"{'ResNet' if kind == 'resnet' else 'plain'}-{depth}"


def _pct(values):
    """Fractions as percentages to 0.01 (finer is invisible, and the page stays small)."""
    return [None if v is None else round(100 * v, 2) for v in values]


def _colour(config: dict, name: str) -> str:
    depth = int(name.split("-")[1])
    return DEPTH_COLOURS[sorted(config["depths"]).index(depth) % len(DEPTH_COLOURS)]


def _settings_text(log) -> str:
    d, m = log.dataset, log.machine
    data = (f"{d['train']:,} training and {d['test']:,} test images" if d else "")
    where = m.get("device", "?")
    secs = m.get("wall_seconds")
    took = f", {secs:.0f} s on {where}" if secs else f", on {where}"
    return f"{log.race_config.describe()}; {data}{took}"


def _wrap(text: str, width: int = 110) -> str:
    words, lines, line = text.split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "<br>".join(lines)


def _status(log, k: int) -> str:
    """The line above the panels at log point ``k``: the epoch and each net's training error."""
    epochs = log.race_config.epochs
    parts = []
    for name in log.nets:
        v = log.series[name]["train_error"][k]
        parts.append(f"{net_label(name)} {'—' if v is None else f'{100 * v:.1f} %'}")
    return f"<b>epoch {log.points['epoch'][k]:.1f} of {epochs}</b> · training error " + ", ".join(parts)


def race_figure(log, *, title: str = "Plain vs residual networks, trained side by side", height: int = 640,
                frame_ms: int = 120, max_frames: int = 40) -> go.Figure:
    """The race of ``log`` (a ``cnnviz.race.RaceLog``) as an animated figure.

    Left panel: the plain networks; right panel: the residual ones (when both ran); one colour per
    depth; training error solid, test error dashed, in %. The slider picks a moment of the run (its
    status line gives each network's training error then); the play button replays it from the start.
    The run's settings are stated under the title. The figure opens at the end of the run. At most
    ``max_frames`` moments are stored (evenly spread, the last one included), which bounds the page size.
    """
    if len(log) == 0:
        raise ValueError("This race has no log points yet: nothing to draw.")
    config = log.race_config
    kinds = list(config.kinds)
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[_PANELS[k] for k in kinds])
    x = [round(e, 3) for e in log.points["epoch"]]
    # each curve keeps only its measured points (the test error exists at the ends of epochs only;
    # nothing after a network diverged): (indices into the log, x, y in %)
    curves = {}
    for name in log.nets:
        for key in ("train_error", "test_error"):
            idx = [k for k, v in enumerate(log.series[name][key]) if v is not None]
            curves[name, key] = (idx, [x[k] for k in idx], _pct([log.series[name][key][k] for k in idx]))
    traces = []  # (name, key) in trace order
    for col, kind in enumerate(kinds, start=1):
        for depth in config.depths:
            name = f"{kind}-{depth}"
            colour = _colour(log.config, name)
            for key, dash, width, label in (("train_error", "solid", 3.5, "training"),
                                            ("test_error", "dash", 2, "test")):
                _, cx, cy = curves[name, key]
                fig.add_trace(go.Scatter(
                    x=cx, y=cy, mode="lines", name=net_label(name),
                    line=dict(color=colour, dash=dash, width=width), legendgroup=name, showlegend=key == "train_error",
                    hovertemplate=f"{net_label(name)} {label} error: %{{y:.1f}} % at epoch %{{x:.2f}}<extra></extra>"),
                    row=1, col=col)
                traces.append((name, key))
    top = max((v for name, key in traces for v in curves[name, key][2]), default=100)
    fig.update_yaxes(range=[0, min(100, top * 1.04) or 1], title_text="error (%)", row=1, col=1)
    fig.update_xaxes(range=[0, config.epochs], title_text="epochs")
    fig.update_yaxes(range=[0, min(100, top * 1.04) or 1])

    last = len(log) - 1
    settings = _wrap(_settings_text(log), 95)  # fits the book's ~700 px column at 13 px
    n_lines = settings.count("<br>") + 1
    fig.add_annotation(xref="paper", yref="paper", x=0, y=1, yshift=34, xanchor="left", yanchor="bottom",
                       showarrow=False, align="left", text=settings, font=dict(size=13, color="#444"))

    def now(k):  # the moment shown: its status line (the subtitle) and a thin line at it in every panel
        line = dict(type="line", yref="paper", y0=0, y1=1, x0=x[k], x1=x[k], line=dict(color="#999", width=1))
        return dict(title=dict(subtitle=dict(text=_status(log, k))),
                    shapes=[dict(line, xref=f"x{'' if c == 1 else c}") for c in range(1, len(kinds) + 1)])

    n = len(log)
    moments = sorted({round(i * (n - 1) / (max_frames - 1)) for i in range(max_frames)}) if n > max_frames \
        else list(range(n))
    frames = []
    for k in moments:
        # a frame sends only y, cut at moment k: plotly draws min(len(x), len(y)) points, and the
        # full x of each curve stays in its trace (half the data on the page). The panel titles and
        # the settings (annotations) are not in the frames: they never change.
        data = [go.Scatter(y=curves[name, key][2][:sum(i <= k for i in curves[name, key][0])]) for name, key in traces]
        frames.append(go.Frame(name=str(k), data=data, traces=list(range(len(traces))), layout=now(k)))
    fig.frames = frames
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    play = dict(mode="immediate", frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0),
                fromcurrent=False)
    steps = [dict(method="animate", label=f"{x[k]:.2f}", args=[[str(k)], still]) for k in moments]
    top, bottom = 110 + 17 * n_lines, 170
    plot_h = height - top - bottom
    fig.update_layout(
        shapes=now(last)["shapes"],
        sliders=[dict(active=len(moments) - 1, steps=steps, x=0.16, len=0.84, y=0, yanchor="top", pad=dict(t=82, b=0),
                      currentvalue=dict(prefix="epoch ", font=dict(size=15, color="#222")),
                      font=dict(color="rgba(0,0,0,0)"))],  # one tick label per point would overlap
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0, y=0, xanchor="left",
                          yanchor="top", pad=dict(t=112), font=dict(size=15),
                          buttons=[dict(label="▶ replay", method="animate", args=[None, play]),
                                   dict(label="❚❚", method="animate", args=[[None], still])])],
        legend=dict(orientation="h", x=0, y=-52 / plot_h, xanchor="left", yanchor="top", font=dict(size=14),
                    title=dict(text="solid: training error, dashed: test error ·  ", font=dict(size=13))),
    )
    style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=top, b=bottom, l=60, r=20),
                      title=dict(yref="container", y=1 - 10 / height, yanchor="top",
                                 subtitle=dict(text=_status(log, last), font=dict(size=14, color="#222"))))
    return fig


def race_table(log) -> str:
    """A Markdown table: each network's parameters and, over its last epoch, training loss, training
    error and test error."""
    rows = ["| network | parameters | training loss | training error | test error |", "|---|---:|---:|---:|---:|"]
    for name in log.nets:
        loss, err, test = (log.final(name, k) for k in ("train_loss", "train_error", "test_error"))
        cells = ["—" if v is None else f"{v:.4f}" if k == 0 else f"{100 * v:.1f} %"
                 for k, v in enumerate((loss, err, test))]
        note = " (diverged)" if name in log.diverged else ""
        rows.append(f"| {net_label(name)}{note} | {log.params.get(name, 0):,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def gradient_figure(profiles: dict, *, title: str = None, height: int = 460) -> go.Figure:
    """Gradient norms per block, input side first, on a log scale: ``profiles`` maps a label (e.g.
    "plain-56") to a ``cnnviz.race.Gradients``."""
    fig = go.Figure()
    for k, (label, g) in enumerate(profiles.items()):
        colour = DEPTH_COLOURS[k % len(DEPTH_COLOURS)]
        fig.add_trace(go.Scatter(x=list(range(len(g.names))), y=list(g.norms), mode="lines+markers", name=label,
                                 line=dict(color=colour, width=3), marker=dict(size=6), customdata=list(g.names),
                                 hovertemplate=f"{label}, %{{customdata}}: %{{y:.3g}}<extra></extra>"))
    fig.update_yaxes(type="log", title_text="gradient norm at the block's output", exponentformat="power")
    fig.update_xaxes(title_text="block (0 = the first convolution; the loss is to the right)")
    fig.update_layout(legend=dict(x=0.98, y=0.98, xanchor="right", yanchor="top"))
    return style(fig, title=title, height=height)


# ----------------------------------------------------------------------------- SVG for the live widget


def race_svg(log, *, width: int = 900, height: int = 380, font_size: int = 14) -> str:
    """The curves of ``log`` (possibly a race still running) as an SVG line chart: one panel per kind
    of network, error in % against epochs, training error solid, test error dashed, with a legend.
    Plain SVG (no script): an ``ipywidgets.HTML`` shows it, on Colab too."""
    config = log.race_config
    kinds = list(config.kinds)
    fs = font_size
    legend_h = 2 * fs + 14
    top, bottom, left, right, gap = fs * 2 + 8, fs * 2 + 16 + legend_h, fs * 3 + 10, 12, fs * 2
    pw = (width - left - right - gap * (len(kinds) - 1)) / len(kinds)
    ph = height - top - bottom
    x_max = config.epochs
    values = [v for s in log.series.values() for key in ("train_error", "test_error") for v in s[key] if v is not None]
    y_max = 100.0 if not values else min(100.0, max(10.0, 100 * max(values) * 1.05))
    step = next(s for s in (5, 10, 20, 25, 50) if y_max / s <= 6)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="font-family:Helvetica,Arial,sans-serif;font-size:{fs}px">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    x_step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100) if x_max / s <= 8)
    for p, kind in enumerate(kinds):
        x0 = left + p * (pw + gap)
        sx = lambda e, x0=x0: x0 + pw * e / x_max  # noqa: E731
        sy = lambda v: top + ph * (1 - min(v, y_max) / y_max)  # noqa: E731
        out.append(f'<text x="{x0 + pw / 2:.1f}" y="{top - 10}" text-anchor="middle" font-weight="600">'
                   f'{escape(_PANELS[kind])}</text>')
        for t in range(0, int(y_max) + 1, step):
            y = sy(t)
            out.append(f'<line x1="{x0:.1f}" x2="{x0 + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
            if p == 0:
                out.append(f'<text x="{x0 - 6:.1f}" y="{y + fs / 3:.1f}" text-anchor="end">{t}</text>')
        for e in range(0, x_max + 1, x_step):
            out.append(f'<text x="{sx(e):.1f}" y="{top + ph + fs + 4:.1f}" text-anchor="middle">{e}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{top}" width="{pw:.1f}" height="{ph:.1f}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0 + pw / 2:.1f}" y="{top + ph + 2 * fs + 8:.1f}" text-anchor="middle">epochs</text>')
        for depth in config.depths:
            name = f"{kind}-{depth}"
            colour = _colour(log.config, name)
            for key, dash, w in (("train_error", "", 3), ("test_error", ' stroke-dasharray="7 5"', 1.8)):
                # None: not measured at that point (test error between epochs), or diverged
                pts = [f"{sx(e):.1f},{sy(100 * v):.1f}" for e, v in zip(log.points["epoch"], log.series[name][key])
                       if v is not None]
                if pts:
                    out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{w}"{dash} '
                               f'stroke-linejoin="round" points="{" ".join(pts)}"/>')
    out.append(f'<text x="{fs}" y="{top + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 {fs} {top + ph / 2:.1f})">error (%)</text>')
    # legend: one colour per depth, and the two line styles
    ly = height - legend_h + fs
    x = left
    for depth in config.depths:
        colour = _colour(log.config, f"plain-{depth}")
        out.append(f'<line x1="{x}" x2="{x + 28}" y1="{ly - fs / 3:.1f}" y2="{ly - fs / 3:.1f}" stroke="{colour}" '
                   f'stroke-width="4"/><text x="{x + 34}" y="{ly}">{depth} layers</text>')
        x += 34 + fs * 6
    out.append(f'<line x1="{x}" x2="{x + 28}" y1="{ly - fs / 3:.1f}" y2="{ly - fs / 3:.1f}" stroke="#333" '
               f'stroke-width="3"/><text x="{x + 34}" y="{ly}">training error</text>')
    x += 34 + fs * 8
    out.append(f'<line x1="{x}" x2="{x + 28}" y1="{ly - fs / 3:.1f}" y2="{ly - fs / 3:.1f}" stroke="#333" '
               f'stroke-width="1.8" stroke-dasharray="7 5"/><text x="{x + 34}" y="{ly}">test error</text>')
    out.append("</svg>")
    return "".join(out)
