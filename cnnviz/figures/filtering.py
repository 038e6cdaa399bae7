"""Figures of chapter 1 (convolution as filtering).

Every figure here is interactive with no kernel (sliders and buttons switch
between precomputed states), so the static book keeps what the live widgets do.
"""
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.conv import conv2d
from cnnviz.figures._common import _fmt, _heatmap, _square_axes
from cnnviz.imaging import data_uri, downscale, to_gray
from cnnviz.kernels import PRESETS, filter_image, for_display
from cnnviz.plot import style

__all__ = ["matrix", "matrices", "heatmap", "rgb_channels", "conv_steps", "kernel_gallery", "DISPLAY_FOR_PRESET"]


def matrix(values, *, title=None, signed=None, colorscale=None) -> go.Figure:
    """A small matrix drawn as coloured cells with its numbers (row 0 at the top)."""
    v = np.asarray(values, dtype=float)
    signed = bool((v < 0).any()) if signed is None else signed
    fig = go.Figure(_heatmap(v, signed=signed, colorscale=colorscale))
    _square_axes(fig)
    side = 60 * max(v.shape) + 80
    return style(fig, title=title, height=side + (50 if title else 0)).update_layout(width=side)


def matrices(named, *, title=None, signed=None) -> go.Figure:
    """Several matrices side by side, e.g. image, kernel and result. ``named``: list of (label, array)."""
    arrays = [np.asarray(a, dtype=float) for _, a in named]
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=[n for n, _ in named],
                        column_widths=[a.shape[1] for a in arrays], horizontal_spacing=0.06)
    for i, a in enumerate(arrays, start=1):
        s = bool((a < 0).any()) if signed is None else signed
        fig.add_trace(_heatmap(a, signed=s), row=1, col=i)
        _square_axes(fig, row=1, col=i)
        fig.update_yaxes(scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    rows = max(a.shape[0] for a in arrays)
    return style(fig, title=title, height=55 * rows + 130)


def heatmap(values, *, title=None, signed=True, width=520) -> go.Figure:
    """A map of values (e.g. a filter's signed output) as colours, upright and with square pixels.

    Signed maps use the diverging scale centred on 0 (blue < 0 < red), so the
    sign of an edge response stays visible; hover shows each value.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D array, got shape {v.shape}.")
    trace = _heatmap(v, signed=signed, colorscale=None if signed else "Viridis", showscale=True, text=False)
    trace.update(xgap=0, ygap=0)
    fig = go.Figure(trace)
    _square_axes(fig)
    h = int(width * v.shape[0] / v.shape[1])
    return style(fig, title=title, height=h + (70 if title else 30)).update_layout(width=width + 90)


def rgb_channels(image, *, title=None) -> go.Figure:
    """An RGB image and its three channels as grayscale grids: three grids of numbers make a colour photo."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_channels needs an (H, W, 3) image, got shape {img.shape}.")
    fig = make_subplots(rows=1, cols=4, subplot_titles=["photo", "red", "green", "blue"], horizontal_spacing=0.02)
    fig.add_trace(go.Image(source=data_uri(img), hoverinfo="skip"), row=1, col=1)
    for c, name in enumerate(["red", "green", "blue"]):
        fig.add_trace(go.Image(source=data_uri(img[:, :, c]), name=name, hoverinfo="skip"), row=1, col=c + 2)
    for c in range(1, 5):
        _square_axes(fig, row=1, col=c)
        fig.update_yaxes(scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c)
    h, w = img.shape[:2]
    return style(fig, title=title, height=int(190 * h / w) + 100)


def conv_steps(image, kernel, *, padding=0, stride=1, title=None) -> go.Figure:
    """The kernel sliding over ``image``: one animation frame per output cell.

    Left: the (padded) input with the kernel's window outlined; right: the
    output filling in; below: the sum of products for the current cell. All
    numbers come from ``cnnviz.conv.conv2d``. Slider and play button work with no kernel.
    """
    img = np.asarray(image, dtype=float)
    ker = np.asarray(kernel, dtype=float)
    out = conv2d(img, ker, padding=padding, stride=stride)  # raises the formula error if it does not fit
    p, f = padding, ker.shape[0]
    padded = np.pad(img, p)
    h_out, w_out = out.shape
    fig = make_subplots(rows=1, cols=2, column_widths=[padded.shape[1], w_out], horizontal_spacing=0.08,
                        subplot_titles=[f"input {img.shape[0]}×{img.shape[1]}" + (f", padding {p}" if p else ""),
                                        f"output {h_out}×{w_out}"])
    fig.add_trace(_heatmap(padded, signed=False, colorscale="Greys", zmin=padded.max() * 1.6, zmax=padded.min()),
                  row=1, col=1)
    empty = np.full(out.shape, np.nan)
    fig.add_trace(_heatmap(empty, signed=True), row=1, col=2)
    for c in (1, 2):
        _square_axes(fig, row=1, col=c)
        fig.update_yaxes(scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c)

    def state(k):
        i, j = divmod(k, w_out)
        r, c = i * stride, j * stride
        window = padded[r:r + f, c:c + f]
        terms = " + ".join(f"({_fmt(a)})({_fmt(b)})" for a, b in zip(window.ravel(), ker.ravel()))
        shown = np.where(np.arange(out.size).reshape(out.shape) <= k, out, np.nan)
        shapes = [dict(type="rect", xref="x", yref="y", x0=c - 0.5, x1=c + f - 0.5, y0=r - 0.5, y1=r + f - 0.5,
                       line=dict(color="#d62728", width=4)),
                  dict(type="rect", xref="x2", yref="y2", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                       line=dict(color="#d62728", width=4))]
        note = dict(text=f"out[{i},{j}] = {terms} = <b>{_fmt(out[i, j])}</b>", showarrow=False,
                    xref="paper", yref="paper", x=0, y=-0.04, xanchor="left", yanchor="top", font=dict(size=13))
        data = _heatmap(shown, signed=True)
        data.update(zmin=-np.abs(out).max() or -1, zmax=np.abs(out).max() or 1)
        return data, dict(shapes=shapes, annotations=list(fig.layout.annotations[:2]) + [note])

    frames = []
    for k in range(out.size):
        data, layout = state(k)
        frames.append(go.Frame(data=[data], traces=[1], layout=layout, name=str(k)))
    fig.frames = frames
    data0, layout0 = state(0)
    fig.data[1].update(z=data0.z, text=data0.text, zmin=data0.zmin, zmax=data0.zmax)
    fig.update_layout(**layout0)
    slider_steps = [dict(method="animate", label=f"{k // w_out},{k % w_out}",
                         args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                              transition=dict(duration=0))]) for k in range(out.size)]
    fig.update_layout(
        sliders=[dict(steps=slider_steps, active=0, currentvalue=dict(prefix="output cell (row, col): "),
                      pad=dict(t=60), x=0.12, len=0.88)],
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.12, xanchor="left", yanchor="top",
                          pad=dict(t=60), buttons=[dict(label="▶ play", method="animate",
                                                        args=[None, dict(frame=dict(duration=500, redraw=True),
                                                                         fromcurrent=True, transition=dict(duration=0))])])],
    )
    rows = padded.shape[0]
    return style(fig, title=title, height=55 * rows + 260).update_layout(margin=dict(b=140))


#: How each preset's output is best shown: signed edge maps by their magnitude.
DISPLAY_FOR_PRESET = {name: ("abs" if abs(k.sum()) < 1e-9 else "clip") for name, k in PRESETS.items()}


def kernel_gallery(image, names=None, *, max_side=320, title=None) -> go.Figure:
    """The static twin of the kernel editor: a photo filtered by each preset, chosen with a slider.

    Left: the grayscale input; middle: the kernel's numbers; right: the
    output (zero-sum kernels shown as absolute values, the others clipped to
    0..255: ``DISPLAY_FOR_PRESET``). Every output is computed here with
    ``filter_image``; the page only switches between them.
    """
    names = list(PRESETS) if names is None else list(names)
    gray = downscale(to_gray(image), max_side)
    fig = make_subplots(rows=1, cols=3, column_widths=[0.42, 0.16, 0.42], horizontal_spacing=0.03,
                        subplot_titles=["input", "kernel", "output"])
    fig.add_trace(go.Image(source=data_uri(gray), hoverinfo="skip", name="input"), row=1, col=1)
    for n, name in enumerate(names):
        k = PRESETS[name]
        fig.add_trace(_heatmap(k, signed=True, text=True).update(name=name, visible=n == 0), row=1, col=2)
    for n, name in enumerate(names):
        shown = for_display(filter_image(gray, PRESETS[name], device="cpu"), DISPLAY_FOR_PRESET[name])
        fig.add_trace(go.Image(source=data_uri(shown), hoverinfo="skip", name=name, visible=n == 0), row=1, col=3)
    for c in (1, 2, 3):
        _square_axes(fig, row=1, col=c)
        fig.update_yaxes(scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c)
    steps = []
    for n, name in enumerate(names):
        visible = [True] + [m == n for m in range(len(names))] * 2  # input, kernels..., outputs...
        steps.append(dict(method="restyle", label=name, name=name, args=[{"visible": visible}]))
    fig.update_layout(sliders=[dict(steps=steps, active=0, currentvalue=dict(prefix="kernel: ", font=dict(size=18)),
                                    pad=dict(t=20))])
    h, w = gray.shape
    return style(fig, title=title, height=int(300 * h / w) + 190)
