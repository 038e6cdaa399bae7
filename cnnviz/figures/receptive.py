"""Pictures of receptive fields: a unit's window on a real photo, growth per layer, and the ERF.

Pure functions that return uint8 RGB arrays (drawn with NumPy and PIL, so the
widget can redraw them in a few milliseconds and Colab needs nothing but
``ipywidgets.Image``), and the two static figures of the chapter, whose
sliders and menu switch between precomputed pictures with no kernel.

Every number comes from ``cnnviz.receptive_field``: ``input_rect`` for the
rectangle, ``receptive_field`` for sizes and jumps, ``effective_receptive_field``
and ``erf_stats`` for the effective receptive field (Luo et al. 2016).
"""
import base64
import functools
import io
import math

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.colors import sample_colorscale

from cnnviz.imaging import data_uri, to_rgb
from cnnviz.plot import style
from cnnviz.receptive_field import (PRESETS, Layer, effective_receptive_field, erf_stats, input_rect, layer_sizes,
                                    receptive_field)

__all__ = ["INPUT_SIZES", "overlay_bases", "unit_geometry", "draw_overlay", "input_size_for", "input_photo", "rf_overlay", "growth_chart", "viridis", "erf_view",
           "erf_image", "layer_spec", "unit_note", "receptive_field_figure", "erf_figure"]

#: The input each preset was designed for (AlexNet: the paper's 227×227, LeNet-5: 32×32 digits); others 224.
INPUT_SIZES = {"AlexNet conv1–pool2": 227, "LeNet-5 conv–pool": 32}
DEFAULT_INPUT_SIZE = 224

OUTLINE = (255, 200, 0)  # amber: visible on the dimmed photo and on viridis' purple
MASS = (255, 80, 80)  # the ERF's mass square: red, dashed
BAR, BAR_ON, ROW_ON = (76, 120, 168), (230, 150, 0), (255, 243, 205)
INK, GREY = (30, 30, 30), (110, 110, 110)
_DIM = 0.3  # outside the receptive field the photo keeps 30 % of its brightness


def input_size_for(preset: str) -> int:
    """The side of the square input a preset is drawn on (``INPUT_SIZES``, else 224)."""
    return INPUT_SIZES.get(preset, DEFAULT_INPUT_SIZE)


def input_photo(photo, size) -> np.ndarray:
    """The photo as a network would get it: centre-cropped to the aspect of ``size`` and resized.

    ``size``: the side of a square input, or (H, W). Returns uint8 (H, W, 3);
    the content keeps its aspect ratio (cropped, never stretched).
    """
    h, w = (size, size) if np.isscalar(size) else size
    h, w = int(h), int(w)
    if h < 1 or w < 1:
        raise ValueError(f"The input size must be at least 1×1 pixels, got {h}×{w}.")
    a = to_rgb(photo)
    ph, pw = a.shape[:2]
    if ph * w > pw * h:  # too tall: keep the middle rows
        ch = max(1, round(pw * h / w))
        a = a[(ph - ch) // 2:(ph - ch) // 2 + ch]
    else:
        cw = max(1, round(ph * w / h))
        a = a[:, (pw - cw) // 2:(pw - cw) // 2 + cw]
    if a.shape[:2] == (h, w):
        return np.ascontiguousarray(a)
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS))


def layer_spec(layer: Layer) -> str:
    """The window of a layer in compact form: "3×3", "11×11 s4", "3×3 p2 d2"."""
    text = f"{layer.f}×{layer.f}"
    for key, value, default in (("s", layer.s, 1), ("p", layer.p, 0), ("d", layer.d, 1)):
        if value != default:
            text += f" {key}{value}"
    return text


# ----------------------------------------------------------------------------- the photo with one unit's field

def _zoom(a, zoom):
    """Nearest-neighbour enlargement: every input pixel becomes a zoom × zoom block (pixels stay visible)."""
    if zoom == 1:
        return a
    h, w = a.shape[:2]
    return np.array(Image.fromarray(a).resize((w * zoom, h * zoom), Image.Resampling.NEAREST))  # writable


def overlay_bases(photo, zoom):
    """(bright, dim): the photo enlarged, and a darkened copy for everything outside the field."""
    bright = np.ascontiguousarray(_zoom(to_rgb(photo), zoom))
    dim = (bright * np.float32(_DIM)).astype(np.uint8)
    return bright, dim


def _frame(out, rect, zoom, line, colour, dash=0):
    """Outline input-pixel rectangle ``rect`` (top, left, bottom, right, inclusive) just *outside* its
    pixels, ``line`` display pixels thick, so the field itself stays uncovered. Parts beyond ``out`` are skipped."""
    h, w = out.shape[:2]
    t, l, b, r = rect[0] * zoom, rect[1] * zoom, (rect[2] + 1) * zoom, (rect[3] + 1) * zoom  # display px, end excl.
    bands = [(t - line, t, l - line, r + line), (b, b + line, l - line, r + line),  # top, bottom
             (t, b, l - line, l), (t, b, r, r + line)]  # left, right
    for y0, y1, x0, x1 in bands:
        y0, y1, x0, x1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        if not dash:
            out[y0:y1, x0:x1] = colour
            continue
        along_x = (x1 - x0) >= (y1 - y0)
        idx = np.arange(x0, x1) if along_x else np.arange(y0, y1)
        on = (idx // dash) % 2 == 0
        if along_x:
            out[y0:y1, x0:x1][:, on] = colour
        else:
            out[y0:y1, x0:x1][on, :] = colour


def _disk(out, cy, cx, radius, fill, ring=(255, 255, 255), ring_width=2):
    """A filled disk centred at display coordinates (cy, cx), with a white ring for contrast."""
    h, w = out.shape[:2]
    outer = radius + ring_width
    y0, y1 = max(int(math.floor(cy - outer)), 0), min(int(math.ceil(cy + outer)) + 1, h)
    x0, x1 = max(int(math.floor(cx - outer)), 0), min(int(math.ceil(cx + outer)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(yy + 0.5 - cy, xx + 0.5 - cx)
    patch = out[y0:y1, x0:x1]
    patch[d <= outer] = ring
    patch[d <= radius] = fill


def unit_geometry(layers, layer_index, i, j, input_size):
    """(clipped rect or None, (centre row, centre col) in input pixels) of one unit."""
    rect = input_rect(layers, layer_index, i, j, input_size, clip=False)  # raises a sentence if (i, j) is wrong
    clipped = input_rect(layers, layer_index, i, j, input_size, clip=True)
    return clipped, ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)


def draw_overlay(bright, dim, zoom, rect, centre, line=3):
    """The overlay from prepared bases: bright inside ``rect``, dim outside, amber frame, unit marker."""
    out = dim.copy()
    if rect is not None:
        t, l, b, r = rect[0] * zoom, rect[1] * zoom, (rect[2] + 1) * zoom, (rect[3] + 1) * zoom
        out[t:b, l:r] = bright[t:b, l:r]
        _frame(out, rect, zoom, line, OUTLINE)
    cy, cx = (centre[0] + 0.5) * zoom, (centre[1] + 0.5) * zoom  # pixel p spans [p·zoom, (p+1)·zoom)
    side = 3 * zoom if rect is None else min(rect[2] - rect[0] + 1, rect[3] - rect[1] + 1) * zoom
    radius = min(max(0.12 * side, 1.5, 0.3 * zoom), max(5.0, 1.5 * line))  # small enough to leave the field visible
    _disk(out, cy, cx, radius, (230, 30, 30), ring_width=1.5 if radius < 3 else 2)
    return out


def rf_overlay(photo, layers, layer_index, i, j, *, zoom=1, line=3) -> np.ndarray:
    """The photo with the receptive field of unit (i, j) of layer ``layer_index`` drawn on it.

    ``photo`` is the network's input itself, (H, W, 3) or (H, W) (see
    ``input_photo``); its size is the input size. Inside the field
    (``input_rect``, clipped to the image) the photo is unchanged; outside it
    is dimmed; an amber frame ``line`` display pixels thick runs just outside
    the field, and a red dot marks the unit's centre. ``zoom`` enlarges every
    input pixel to a zoom × zoom block first (nearest neighbour), so input
    pixel (r, c) covers display rows r·zoom .. (r+1)·zoom-1.

    Returns uint8 (H·zoom, W·zoom, 3).
    """
    a = to_rgb(photo)
    zoom, line = int(zoom), int(line)
    if zoom < 1 or line < 0:
        raise ValueError(f"zoom must be ≥ 1 and line ≥ 0, got zoom={zoom}, line={line}.")
    rect, centre = unit_geometry(layers, layer_index, i, j, a.shape[:2])
    bright, dim = overlay_bases(a, zoom)
    return draw_overlay(bright, dim, zoom, rect, centre, line)


# ----------------------------------------------------------------------------- growth per layer

@functools.lru_cache(maxsize=16)
def _font(size, bold=False):
    """(font, times sign): a system sans-serif if there is one (DejaVu, Liberation: they have "×"),
    else Pillow's own scalable font (Pillow ≥ 10.1), whose missing "×" is written "x"."""
    for name in (("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold else ()) + (
            "DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size), "×"
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size), "x"
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: a small bitmap font
        return ImageFont.load_default(), "x"


def growth_chart(layers, *, input_size=None, highlight=None, width=800, font_size=22) -> np.ndarray:
    """A table-like bar chart of the receptive field per layer, drawn with PIL: uint8 (H, width, 3).

    One row per layer, input first: index, name, window ("3×3 s2 p1"),
    output size (when ``input_size`` = side or (H, W) is given), and a bar as
    long as the receptive field ``r`` with "r … · jump …" written beside it.
    A dashed line marks the input width, so the bars read as "how much of the
    image one unit sees" (when the input is over 4 times the largest field, the
    bars are scaled to that field instead, and the footer says so). Row ``highlight`` (a layer index, 0 = input) is
    drawn in amber and bold. The height follows from the number of layers.
    """
    rows = receptive_field(layers)
    sizes = None
    if input_size is not None:
        sizes = layer_sizes(layers, (input_size, input_size) if np.isscalar(input_size) else input_size)
    (font, times), (bold, _) = _font(font_size), _font(font_size, bold=True)
    small, _ = _font(max(12, round(font_size * 0.8)))
    small_bold, _ = _font(max(12, round(font_size * 0.8)), bold=True)
    pad, row_h, head_h = round(font_size * 0.7), round(font_size * 1.75), round(font_size * 1.6)
    gap = round(font_size * 0.9)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    cells = []
    for k, row in enumerate(rows):
        layer = row.layer
        name = "input" if layer is None else (layer.name or layer.kind)
        spec = "" if layer is None else layer_spec(layer).replace("×", times)
        if layer is not None and layer.name and layer.kind != "conv":
            spec = f"{layer.kind[:3]} {spec}"  # a named pooling layer says that it pools
        out = "" if sizes is None else f"{sizes[k][0]}{times}{sizes[k][1]}"
        cells.append((str(k), name, spec, out, f"r {row.r} · jump {row.j}"))
    heads = ("#", "layer", "window", "output" if sizes is not None else "", "receptive field (input pixels)")
    col_w = [max(probe.textlength(c[n], font=bold) for c in cells + [heads]) for n in range(4)]
    x = [pad]
    for n in range(4):
        x.append(x[-1] + col_w[n] + (gap if col_w[n] else 0))
    bar_x0 = x[4]
    note_w = max(probe.textlength(c[4], font=small_bold) for c in cells)
    bar_w = max(width - bar_x0 - pad - note_w - gap // 2, 120)
    width = max(width, int(bar_x0 + bar_w + note_w + gap // 2 + pad))
    n_in = None if sizes is None else sizes[0][1]
    r_max = max(row.r for row in rows)
    on_scale = bool(n_in) and n_in <= 4 * r_max  # else the bars would be slivers: scale to the largest field
    scale = bar_w / (max(r_max, n_in) if on_scale else r_max)

    top = pad + head_h
    bottom = top + row_h * len(rows)
    height = bottom + (row_h if n_in else 0) + pad
    im = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for n, text in enumerate(heads):
        if text:
            d.text((x[n], pad + head_h // 2), text, fill=GREY, font=small, anchor="lm")
    d.line([(pad, top - 2), (width - pad, top - 2)], fill=(200, 200, 200), width=2)
    for k in range(len(rows)):
        if highlight is not None and k == highlight:
            d.rectangle([pad // 2, top + k * row_h + 1, width - pad // 2, top + (k + 1) * row_h - 2], fill=ROW_ON)
    if n_in:  # the input width, for scale: a dashed line (drawn first: the numbers cover it), labelled below
        label = f"input width {n_in}"
        tw = d.textlength(label, font=small)
        if on_scale:
            xi = bar_x0 + round(n_in * scale)
            for y in range(top, bottom, 12):
                d.line([(xi, y), (xi, min(y + 6, bottom))], fill=(120, 120, 120), width=2)
            lx = max(bar_x0, min(xi - tw / 2, width - pad - tw))
        else:
            label = f"input width {n_in}: far beyond this scale"
            lx = bar_x0
        d.text((lx, bottom + row_h // 2), label, fill=GREY, font=small, anchor="lm")
    for k, (row, c) in enumerate(zip(rows, cells)):
        y0 = top + k * row_h
        yc = y0 + row_h // 2
        on = highlight is not None and k == highlight
        for n in range(4):
            if c[n]:
                d.text((x[n], yc), c[n], fill=INK if n else GREY, font=bold if on else font, anchor="lm")
        length = max(3, round(row.r * scale))
        d.rectangle([bar_x0, round(y0 + row_h * 0.18), bar_x0 + length, round(y0 + row_h * 0.82)],
                    fill=BAR_ON if on else BAR)
        f = small_bold if on else small
        tx = bar_x0 + length + gap // 2
        box = d.textbbox((tx, yc), c[4], font=f, anchor="lm")
        d.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=ROW_ON if on else (255, 255, 255))
        d.text((tx, yc), c[4], fill=INK, font=f, anchor="lm")
    return np.asarray(im)


# ----------------------------------------------------------------------------- effective receptive field

@functools.lru_cache(maxsize=1)
def _viridis_lut():
    colours = sample_colorscale("Viridis", list(np.linspace(0.0, 1.0, 256)))  # "rgb(68, 1, 84)", ...
    return np.array([[round(float(v)) for v in c[c.index("(") + 1:-1].split(",")] for c in colours],
                    dtype=np.uint8)  # (256, 3)


def viridis(values, vmax=None) -> np.ndarray:
    """Non-negative values (any shape) as viridis colours, uint8 (..., 3); ``vmax`` (default the maximum) is yellow."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    top = float(v.max(initial=0.0)) if vmax is None else float(vmax)
    idx = np.clip(np.rint(v / (top or 1.0) * 255), 0, 255).astype(np.intp)
    return _viridis_lut()[idx]


def _centre_unit(layers, input_size):
    """(layer index, i, j) of the unit ``effective_receptive_field`` measures: the centre of the last layer."""
    h, w = layer_sizes(layers, input_size)[-1]
    return len(layers), h // 2, w // 2


def erf_view(layers, input_size, side=None):
    """The square window (top, left, bottom, right), inclusive, that ``erf_image`` shows: the centre unit's
    theoretical field plus a margin, or ``side`` pixels centred on it; clipped to the input."""
    k, i, j = _centre_unit(layers, input_size)
    t, l, b, r = input_rect(layers, k, i, j, input_size, clip=False)
    size = b - t + 1
    side = size + 2 * max(3, math.ceil(size / 4)) if side is None else int(side)
    cy, cx = (t + b) / 2, (l + r) / 2
    top, left = math.floor(cy - (side - 1) / 2), math.floor(cx - (side - 1) / 2)
    h, w = input_size
    return max(top, 0), max(left, 0), min(top + side - 1, h - 1), min(left + side - 1, w - 1)


def erf_image(erf, layers, *, side=None, display=480, fraction=0.95, line=3) -> np.ndarray:
    """The effective receptive field as a viridis heat map with the theoretical field outlined.

    ``erf``: the (H, W) map of ``effective_receptive_field(layers, (H, W))``
    (gradient magnitude of the last layer's centre unit, max 1). Shows the
    window ``erf_view(layers, (H, W), side)``, enlarged (nearest neighbour) to
    about ``display`` pixels; the theoretical field of that unit is framed in
    amber, and the smallest square around its centre holding ``fraction`` of
    the gradient (``erf_stats``) is framed in dashed red. Returns uint8 (h, w, 3).
    """
    erf = np.asarray(erf, dtype=np.float64)
    if erf.ndim != 2:
        raise ValueError(f"erf must be a 2-D (H, W) map, got shape {erf.shape}.")
    shape = erf.shape
    k, i, j = _centre_unit(layers, shape)
    theo = input_rect(layers, k, i, j, shape, clip=True)
    full = input_rect(layers, k, i, j, shape, clip=False)
    top, left, bottom, right = erf_view(layers, shape, side)
    crop = erf[top:bottom + 1, left:right + 1]
    zoom = max(1, int(display) // max(crop.shape))
    out = np.ascontiguousarray(_zoom(viridis(crop, vmax=max(float(erf.max()), 1e-12)), zoom))
    shift = lambda rc: (rc[0] - top, rc[1] - left, rc[2] - top, rc[3] - left)  # noqa: E731
    if theo is not None:
        _frame(out, shift(theo), zoom, line, OUTLINE)
    cy, cx = round((full[0] + full[2]) / 2), round((full[1] + full[3]) / 2)
    if fraction and 0 <= cy < shape[0] and 0 <= cx < shape[1]:
        h = erf_stats(erf, fraction, centre=(cy, cx)).radius
        _frame(out, shift((cy - h, cx - h, cy + h, cx + h)), zoom, line, MASS, dash=max(6, 3 * line))
    return out


# ----------------------------------------------------------------------------- static figures

def _jpeg_uri(arr, quality=85):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _named(presets):
    if presets is None:
        return {name: PRESETS[name] for name in PRESETS}
    if isinstance(presets, dict):
        return {str(k): tuple(v) for k, v in presets.items()}
    out = {}
    for name in presets:
        if name not in PRESETS:
            raise ValueError(f"No preset named {name!r}; choose from: {', '.join(PRESETS)}.")
        out[name] = PRESETS[name]
    return out


def unit_note(layers, layer_index, i, j, input_size) -> str:
    """One line about unit (i, j): its layer, field size and jump, and the input rows and columns it sees."""
    rows = receptive_field(layers)
    sizes = layer_sizes(layers, input_size)
    row = rows[layer_index]
    t, l, b, r = input_rect(layers, layer_index, i, j, input_size, clip=False)
    clipped = input_rect(layers, layer_index, i, j, input_size, clip=True)
    h, w = sizes[layer_index]
    name = "input" if row.layer is None else f"layer {layer_index} ({row.name})"
    text = (f"unit ({i}, {j}) of {name}, {h}×{w}: receptive field <b>r = {row.r} px</b>, "
            f"jump <b>{row.j} px</b>")
    if clipped is None:
        return text + "; it sees only padding"
    ct, cl, cb, cr = clipped
    text += f";<br>it sees input rows {ct}–{cb}, columns {cl}–{cr}"
    if (ct, cl, cb, cr) != (t, l, b, r):
        text += f" (its {row.r}×{row.r} window reaches into the padding)"
    return text


def receptive_field_figure(photo, presets=None, *, title=None, width=320) -> go.Figure:
    """The static twin of the explorer: a photo with the centre unit's receptive field, layer by layer.

    ``presets``: names from ``receptive_field.PRESETS`` (default: all) or a
    dict {name: layers}. A menu chooses the stack; its slider chooses the
    layer; the photo (centre-cropped and resized to the stack's input size,
    ``input_size_for``) shows the centre unit's field (``rf_overlay``), the bars
    beside it the field size ``r`` per layer with the current layer in amber,
    and the line below the numbers (``unit_note``). All pictures are
    precomputed JPEG data URIs, so the figure works with no kernel.
    """
    named = _named(presets)
    if not named:
        raise ValueError("Give at least one preset.")
    # One image trace for every preset: the menu and the sliders change its source. (Hiding and
    # showing one image trace per preset made plotly.js draw a not-yet-loaded image: console errors.)
    fig = go.Figure(go.Image(hoverinfo="skip", name="photo", xaxis="x", yaxis="y"))
    sliders, notes, states = [], [], []
    for k, (name, layers) in enumerate(named.items()):
        n = input_size_for(name)
        sizes = layer_sizes(layers, (n, n))
        rows = receptive_field(layers)
        zoom = max(1, width // n)
        bright, dim = overlay_bases(input_photo(photo, n), zoom)
        line = max(2, round(n * zoom / 160))
        uris, colours, texts = [], [], []
        for li, (h, w) in enumerate(sizes):
            rect, centre = unit_geometry(layers, li, h // 2, w // 2, (n, n))
            uris.append(_jpeg_uri(draw_overlay(bright, dim, zoom, rect, centre, line)))
            colours.append(["rgb(%d,%d,%d)" % (BAR_ON if m == li else BAR) for m in range(len(rows))])
            texts.append(f"<b>{name}</b>, input {n}×{n}:<br>" + unit_note(layers, li, h // 2, w // 2, (n, n)))
        last = len(sizes) - 1
        bar_index = len(fig.data)
        fig.add_trace(go.Bar(x=[row.r for row in rows], y=list(range(len(rows))), orientation="h", name=name,
                             marker=dict(color=colours[last]), visible=k == 0, xaxis="x2", yaxis="y2",
                             text=[f"r {row.r} · jump {row.j}" for row in rows], textposition="outside",
                             cliponaxis=False, hovertemplate="r = %{x} px<extra></extra>"))
        fig.add_trace(go.Scatter(x=[n, n], y=[-0.5, len(rows) - 0.5], mode="lines", visible=k == 0,
                                 line=dict(color="#777", dash="dash", width=2), name=f"input width {n}",
                                 hoverinfo="name", xaxis="x2", yaxis="y2"))
        notes.append(dict(text=texts[last], xref="paper", yref="paper", x=0, y=-0.03, xanchor="left", yanchor="top",
                          showarrow=False, align="left", visible=k == 0, font=dict(size=16)))
        steps = [dict(method="update", label=("input" if li == 0 else rows[li].name), name=str(li),
                      args=[{"source": [uris[li], None], "marker.color": [None, colours[li]]},
                            {f"annotations[{k}].text": texts[li]}, [0, bar_index]])
                 for li in range(len(sizes))]
        sliders.append(dict(steps=steps, active=last, visible=k == 0, pad=dict(t=95), x=0, len=1,
                            currentvalue=dict(prefix=f"{name}: layer ", font=dict(size=18))))
        ticks = [f"{m} {'input' if row.layer is None else row.name}" for m, row in enumerate(rows)]
        image = dict(source=uris[last], x0=0.5 / zoom - 0.5, y0=0.5 / zoom - 0.5, dx=1 / zoom, dy=1 / zoom)  # input px
        # explicit ranges: plotly.js 4 forgets autorange "reversed" when an update re-autoranges (upside down)
        axes = {"xaxis.range": [-0.5, n - 0.5], "yaxis.range": [n - 0.5, -0.5],
                "yaxis2.tickvals": list(range(len(rows))), "yaxis2.ticktext": ticks,
                "yaxis2.range": [len(rows) - 0.5, -0.5], "xaxis2.range": [0, max(max(row.r for row in rows), n) * 1.45]}
        states.append(dict(image=image, axes=axes, last=last, colours=colours[last], text=texts[last]))

    buttons = []
    for k, name in enumerate(named):
        st = states[k]
        restyle = {"visible": [True] + [t // 2 == k for t in range(len(fig.data) - 1)]}
        restyle.update({key: [value] + [None] * (len(fig.data) - 1) for key, value in st["image"].items()})
        restyle["marker.color"] = [None] + [st["colours"] if t == 2 * k else None for t in range(len(fig.data) - 1)]
        layout = {f"sliders[{m}].visible": m == k for m in range(len(named))}
        layout.update({f"annotations[{m}].visible": m == k for m in range(len(named))})
        layout.update({f"sliders[{k}].active": st["last"], f"annotations[{k}].text": st["text"]}, **st["axes"])
        buttons.append(dict(method="update", label=name, args=[restyle, layout]))
    fig.data[0].update(**states[0]["image"])
    fig.update_layout(
        xaxis=dict(domain=[0, 0.5], visible=False, constrain="domain"),
        yaxis=dict(domain=[0, 1], visible=False, scaleanchor="x", constrain="domain"),  # row 0 at the top
        xaxis2=dict(domain=[0.6, 1], anchor="y2", title=dict(text="receptive field r (input pixels)"), zeroline=False),
        yaxis2=dict(domain=[0.08, 0.92], anchor="x2", automargin=True),
        sliders=sliders, annotations=notes, showlegend=False, bargap=0.25,
        updatemenus=[dict(type="dropdown", buttons=buttons, active=0, x=0, y=1.02, xanchor="left", yanchor="bottom",
                          direction="down", showactive=True, font=dict(size=16))],
    )
    fig.plotly_relayout(states[0]["axes"])
    style(fig, title=title, height=720)
    return fig.update_layout(margin=dict(l=20, r=20, t=110 if title else 80, b=175))


def _stacks_of_3x3(n_max=10):
    return {f"{n}×[3×3]": tuple(Layer("conv", 3, 1, 1, name=f"conv{m + 1}") for m in range(n))
            for n in range(1, n_max + 1)}


def erf_figure(layers_by_name=None, input_size=None, *, trials=8, seed=0, fraction=0.95, title=None,
               display=420) -> go.Figure:
    """Theoretical versus effective receptive field as a stack grows: a slider over stacks.

    ``layers_by_name``: {name: layers}, default 1 to 10 "same" 3×3
    convolutions. ``input_size``: side or (H, W), default just large enough
    for the largest field. For each stack, ``effective_receptive_field`` (ReLU
    between layers, ``trials`` random draws from ``seed``) of the centre unit
    of its last layer. Left: the map in viridis at one common scale, with the
    theoretical field framed in amber and the square holding ``fraction`` of
    the gradient in dashed red; right: both sizes against the stack, so the
    linear growth of the theory and the slower growth of the ERF (about √n,
    Luo et al. 2016) are seen side by side. The slider works with no kernel.
    """
    named = _stacks_of_3x3() if layers_by_name is None else {str(k): tuple(v) for k, v in layers_by_name.items()}
    if not named:
        raise ValueError("Give at least one stack.")
    r_max = max(receptive_field(layers)[-1].r for layers in named.values())
    if input_size is None:
        input_size = r_max + 2 * max(6, math.ceil(r_max / 3))
    shape = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
    side = min(max(shape), r_max + 2 * max(3, math.ceil(r_max / 6)))
    names, r, mass, half, images, uris, notes = list(named), [], [], [], [], [], []
    for name, layers in named.items():
        erf = effective_receptive_field(layers, shape, trials=trials, seed=seed)
        k, i, j = _centre_unit(layers, shape)
        t, l, b, rr = input_rect(layers, k, i, j, shape, clip=False)
        centre = (min(max(round((t + b) / 2), 0), shape[0] - 1), min(max(round((l + rr) / 2), 0), shape[1] - 1))
        w_mass = 2 * erf_stats(erf, fraction, centre=centre).radius + 1
        w_half = 2 * erf_stats(erf, 0.5, centre=centre).radius + 1
        std = erf_stats(erf, fraction, centre=centre).std
        r.append(receptive_field(layers)[-1].r)
        mass.append(w_mass)
        half.append(w_half)
        images.append(erf_image(erf, layers, side=side, display=display, fraction=fraction))
        uris.append(data_uri(images[-1]))
        notes.append(f"<b>{name}</b>: theoretical field <b>{r[-1]}×{r[-1]}</b> px (amber);<br>"
                     f"{round(fraction * 100)} % of the gradient within <b>{w_mass}×{w_mass}</b> px (dashed red), "
                     f"half within {w_half}×{w_half};<br>standard deviation {std[0]:.1f} px")
    x = list(range(1, len(names) + 1))
    last = len(names) - 1
    im_h, im_w = images[last].shape[:2]  # every map is drawn at the same scale
    fig = go.Figure()
    fig.add_trace(go.Image(source=uris[last], hoverinfo="skip", xaxis="x", yaxis="y", name="ERF"))
    fig.add_trace(go.Scatter(x=x, y=r, mode="lines+markers", name="theoretical r", xaxis="x2", yaxis="y2",
                             line=dict(color="rgb(%d,%d,%d)" % OUTLINE, width=4), marker=dict(size=9)))
    fig.add_trace(go.Scatter(x=x, y=mass, mode="lines+markers", xaxis="x2", yaxis="y2",
                             name=f"ERF: {round(fraction * 100)} % of gradient",
                             line=dict(color="rgb(%d,%d,%d)" % MASS, width=4, dash="dash"), marker=dict(size=9)))
    fig.add_trace(go.Scatter(x=x, y=half, mode="lines+markers", name="ERF: 50 % of gradient", xaxis="x2",
                             yaxis="y2", line=dict(color="#3b528b", width=3, dash="dot"), marker=dict(size=8)))
    fig.add_trace(go.Scatter(x=[x[last]] * 3, y=[r[last], mass[last], half[last]], mode="markers",
                             xaxis="x2", yaxis="y2", showlegend=False, hoverinfo="skip",
                             marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color="black", width=3))))
    steps = [dict(method="update", label=name,
                  args=[{"source": [uris[n], None], "x": [None, [x[n]] * 3], "y": [None, [r[n], mass[n], half[n]]]},
                        {"annotations[0].text": notes[n]}, [0, 4]]) for n, name in enumerate(names)]
    fig.update_layout(
        xaxis=dict(domain=[0, 0.46], visible=False, constrain="domain", range=[-0.5, im_w - 0.5]),
        yaxis=dict(domain=[0, 1], visible=False, scaleanchor="x", constrain="domain", range=[im_h - 0.5, -0.5]),
        xaxis2=dict(domain=[0.56, 1], anchor="y2", tickvals=x, title=dict(text="stack (named on the slider)")),
        yaxis2=dict(domain=[0.1, 1], anchor="x2", title=dict(text="width (input pixels)"), rangemode="tozero"),
        legend=dict(x=0.57, y=0.99, xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.85)"),
        annotations=[dict(text=notes[last], xref="paper", yref="paper", x=0, y=-0.03, xanchor="left", yanchor="top",
                          showarrow=False, align="left", font=dict(size=16))],
        sliders=[dict(steps=steps, active=last, pad=dict(t=95),
                      currentvalue=dict(prefix="stack: ", font=dict(size=18)))],
    )
    style(fig, title=title, height=640)
    return fig.update_layout(margin=dict(l=20, r=20, t=70 if title else 30, b=175))
