"""Figures of the chapter "Visualising what CNNs learn" (the static twins of the four widgets).

Every builder takes plain data (NumPy arrays or tensors, computed beforehand
by ``cnnviz.features``, ``cnnviz.deconvnet``, ``cnnviz.occlusion`` and
``cnnviz.attribution``) and returns a ``go.Figure`` whose sliders and menus
switch between precomputed states, so the book stays interactive with no
kernel. Images travel as PNG data URIs at their native resolution (small
HTML) and plotly draws them with ``image-rendering: pixelated``, so a 7×7
feature map is a grid of 49 sharp squares, not a blur.

The pure picture helpers (``colourise``, ``mosaic``, ``filter_mosaic``,
``projection_to_uint8``, ``overlay``, ``upscale``) are public: the widgets draw
with the same code, so a widget and its figure show the same pixels.

Papers: Zeiler & Fergus, *Visualizing and Understanding Convolutional
Networks*, ECCV 2014 (filters, feature maps, deconvnet projections with the
top-9 patches of fig. 2, occlusion of fig. 7); Adebayo et al., *Sanity Checks
for Saliency Maps*, NeurIPS 2018 (``sanity_figure``); Nakandala et al., *Incremental and
Approximate Inference for Faster Occlusion-based Deep CNN Explanations*, SIGMOD 2019 (``regions_figure``).
"""
import base64
import functools
import io
import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from PIL import Image
from plotly.subplots import make_subplots

from cnnviz.imaging import data_uri, to_rgb
from cnnviz.plot import style

__all__ = ["colourise", "upscale", "mosaic", "filter_mosaic", "projection_to_uint8", "overlay", "strongest",
           "top_picture", "filter_grid_figure", "example_grid_figure", "projection_figure", "feature_map_figure",
           "top_patches_figure", "occlusion_figure", "attribution_figure", "sanity_figure", "regions_figure", "BOOK_WIDTH",
           "CLASS_COLOURS"]

#: The width the book gives a figure, in CSS pixels: every figure is laid out to be read at this width.
BOOK_WIDTH = 750
_FRAME = 1000.0  # the coordinate width every mosaic of a figure is stretched to (so states share the axes)
_GAP_COLOUR = 255  # white between tiles
_LABEL_FONT = 13


# ----------------------------------------------------------------------------- pictures (pure, NumPy)

def _numpy(x) -> np.ndarray:
    """A tensor (any device) or array-like as a NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@functools.lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    colours = sample_colorscale(name, list(np.linspace(0.0, 1.0, 256)))  # "rgb(68, 1, 84)", ...
    return np.array([[round(float(v)) for v in c[c.index("(") + 1:-1].split(",")] for c in colours],
                    dtype=np.uint8)  # (256, 3)


def colourise(values, *, signed=None, vmax=None, colorscale=None) -> np.ndarray:
    """A 2-D map as colours, uint8 (H, W, 3).

    Unsigned maps (activations after a ReLU, heat maps): 0 is dark purple and
    ``vmax`` (default: the map's maximum) yellow, on viridis. Signed maps
    (``signed=None`` decides from the data): blue < 0 = white < red, on a
    scale symmetric around 0 (``vmax`` default: the largest magnitude). A map
    of zeros is uniformly the colour of 0.
    """
    v = np.nan_to_num(_numpy(values).astype(np.float64))
    if v.ndim != 2:
        raise ValueError(f"colourise needs a 2-D map, got shape {v.shape}.")
    signed = bool((v < 0).any()) if signed is None else bool(signed)
    if signed:
        top = float(np.abs(v).max(initial=0.0)) if vmax is None else float(vmax)
        idx = np.rint((v / (top or 1.0) + 1.0) * 127.5)
        lut = _lut(colorscale or "RdBu_r")
    else:
        top = float(v.max(initial=0.0)) if vmax is None else float(vmax)
        idx = np.rint(v / (top if top > 0 else 1.0) * 255)
        lut = _lut(colorscale or "Viridis")
    return lut[np.clip(idx, 0, 255).astype(np.intp)]


def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole ``factor`` (each pixel becomes a factor×factor block)."""
    a = np.asarray(image)
    f = int(factor)
    if f < 1:
        raise ValueError(f"The upscaling factor must be a whole number ≥ 1, not {factor!r}.")
    return a if f == 1 else np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def mosaic(tiles, columns: int, *, gap: int = 1, label_rows: int = 0, background: int = _GAP_COLOUR):
    """Tiles (N, h, w, 3) uint8 in a grid of ``columns``, left to right then top to bottom.

    Returns ``(image uint8 (H, W, 3), boxes)``: ``boxes[i] = (top, left)`` of
    tile i in the image. ``label_rows`` leaves that many empty rows above every
    tile (where a figure writes the tile's label); ``gap`` pixels separate tiles.
    """
    t = np.asarray(tiles)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"mosaic needs tiles of shape (N, h, w, 3), got {t.shape}.")
    n, h, w = t.shape[:3]
    columns = max(1, min(int(columns), n)) if n else 1
    rows = math.ceil(n / columns) if n else 0
    cell_h, cell_w = h + label_rows + gap, w + gap
    out = np.full((max(rows * cell_h - gap, 1), max(columns * cell_w - gap, 1), 3), background, dtype=np.uint8)
    boxes = []
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * cell_h + label_rows, c * cell_w
        out[top:top + h, left:left + w] = t[i]
        boxes.append((top, left))
    return out, boxes


def filter_mosaic(filters, *, columns=None, max_filters: int = 256, max_inputs: int = 16):
    """The filters of one layer, as ``cnnviz.features.filters`` returns them, in one picture.

    ``filters``: (C_out, K, kh, kw) values in [0, 1]. K = 3: each filter in
    colour (AlexNet fig. 3 / ZF fig. 6); K = 1 (a summary): grey levels;
    otherwise ("channels" mode, 0.5 = a zero weight) each filter is a strip
    of its input channels' kernels, blue < 0 = white < red, and the strips are
    stacked in ``columns`` blocks. At most ``max_filters`` filters and
    ``max_inputs`` input channels are drawn. Returns ``(image uint8, boxes,
    labels, shown)``: the picture, each kernel's ``(top, left)``, its hover
    label, and ``(filters shown, input channels shown)``.
    """
    f = _numpy(filters).astype(np.float64)
    if f.ndim != 4:
        raise ValueError(f"filters must have shape (C_out, K, kh, kw), got {f.shape}.")
    c_out, k, kh, kw = f.shape
    gap = max(1, round(kw / 8))
    if k in (1, 3):
        n = min(c_out, max_filters)
        tiles = np.clip(np.rint(f[:n].transpose(0, 2, 3, 1) * 255), 0, 255).astype(np.uint8)
        if k == 1:
            tiles = np.repeat(tiles, 3, axis=3)
        if columns is None:
            columns = min(n, 16, max(1, math.ceil(math.sqrt(1.5 * n))))
        image, boxes = mosaic(tiles, columns, gap=gap)
        return image, boxes, [f"filter {i}" for i in range(n)], (n, k)
    n, m = min(c_out, max_filters), min(k, max_inputs)
    strips = np.stack([mosaic(np.stack([colourise(f[i, j] - 0.5, signed=True, vmax=0.5) for j in range(m)]), m,
                              gap=gap)[0] for i in range(n)])  # (n, kh, m·(kw+gap)-gap, 3)
    if columns is None:  # blocks of strips side by side, so that the picture is about 3:2
        columns = max(1, min(n, round(math.sqrt(1.5 * n / m))))
    image, strip_boxes = mosaic(strips, columns, gap=3 * gap)
    boxes = [(top, left + j * (kw + gap)) for top, left in strip_boxes for j in range(m)]
    labels = [f"filter {i}, input channel {j}" for i in range(n) for j in range(m)]
    return image, boxes, labels, (n, m)


def projection_to_uint8(projection) -> np.ndarray:
    """A deconvnet projection (3, H, W) or (H, W, 3), signed floats, as a picture uint8 (H, W, 3).

    As in Zeiler & Fergus's figures: grey is 0, and the largest magnitude of
    the projection reaches black or white (one scale for the three channels,
    so the colours keep their balance). A uint8 input is returned as RGB.
    """
    p = _numpy(projection)
    if p.ndim == 3 and p.shape[0] == 3 and p.shape[-1] != 3:
        p = p.transpose(1, 2, 0)
    if p.dtype == np.uint8:
        return to_rgb(p)
    p = np.nan_to_num(p.astype(np.float64))
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"A projection must have shape (3, H, W) or (H, W, 3), got {p.shape}.")
    top = float(np.abs(p).max(initial=0.0)) or 1.0
    return np.clip(np.rint((p / top + 1.0) * 127.5), 0, 255).astype(np.uint8)


def overlay(photo, heat, *, alpha: float = 0.85, vmax=None, colorscale: str = "Inferno") -> np.ndarray:
    """A heat map (H, W) ≥ 0 painted over a photo (H, W, 3) uint8 → uint8 (H, W, 3).

    The photo is shown in grey (so colour means only attribution) and each
    pixel takes the heat's colour in proportion to its heat: cold pixels
    keep the photo, the hottest take ``alpha`` of the colour. ``vmax``
    (default: the map's 99.5th percentile, so one extreme pixel does not
    darken the rest) is the hottest value.
    """
    img = to_rgb(_numpy(photo))
    h = np.nan_to_num(_numpy(heat).astype(np.float64))
    if h.shape != img.shape[:2]:
        raise ValueError(f"The heat map {h.shape} must have the photo's size {img.shape[:2]}.")
    h = np.clip(h, 0, None)
    top = float(np.percentile(h, 99.5)) if vmax is None else float(vmax)
    if top <= 0:
        top = float(h.max()) or 1.0
    h = np.clip(h / top, 0, 1)
    grey = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    base = np.repeat((0.25 * 255 + 0.6 * grey)[..., None], 3, axis=2)  # dimmed grey photo
    colour = _lut(colorscale)[np.rint(h * 255).astype(np.intp)].astype(np.float64)
    w = (alpha * h)[..., None]
    return np.clip(np.rint(base * (1 - w) + colour * w), 0, 255).astype(np.uint8)


def strongest(maps, k: int) -> np.ndarray:
    """Indices of the ``k`` channels of ``maps`` (C, H, W) with the largest maximum, strongest first
    (ties: lower channel first)."""
    m = _numpy(maps)
    peak = m.reshape(m.shape[0], -1).max(axis=1)
    return np.argsort(-peak, kind="stable")[:k]


# ----------------------------------------------------------------------------- figure helpers

def _uri(image, *, lossy: bool = False) -> str:
    """A PNG data URI as small as it can be: an image of at most 256 colours (feature maps on a colour scale,
    filters, labels) as an exact palette PNG; with ``lossy`` (photo patches) any other image is reduced to
    256 colours (median cut, no dithering: about 2/255 mean error, half the size); otherwise a true-colour PNG."""
    img = np.ascontiguousarray(to_rgb(image))
    colours, inverse = np.unique(img.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) <= 256:
        pal = Image.fromarray(inverse.reshape(img.shape[:2]).astype(np.uint8), mode="P")
        pal.putpalette(colours.astype(np.uint8).ravel().tolist())
    elif lossy:
        pal = Image.fromarray(img).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    else:
        return data_uri(img, compress_level=9)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image_trace(image, *, frame=None, name=None, visible=True, **kw) -> go.Image:
    """An image as a pixelated PNG data URI; with ``frame`` its width is stretched to that many axis units."""
    h, w = image.shape[:2]
    dx = 1.0 if frame is None else frame / w
    return go.Image(source=_uri(image), x0=dx / 2, y0=dx / 2, dx=dx, dy=dx, name=name,
                    visible=visible, hoverinfo="skip", **kw)


def _hide_axes(fig, row=None, col=None, x_range=None, y_range=None):
    fig.update_xaxes(visible=False, range=x_range, constrain="domain", row=row, col=col)
    fig.update_yaxes(visible=False, range=y_range, constrain="domain", row=row, col=col)


def _axis_suffix(fig, row, col):
    """'' or '2', '3', …: the suffix of the x axis of subplot (row, col)."""
    ref = fig.get_subplot(row, col).xaxis.plotly_name  # "xaxis", "xaxis2", …
    return ref[len("xaxis"):]


def _get(m, key):
    """A field of an OcclusionMap-like object: a dict or a dataclass."""
    return m[key] if isinstance(m, dict) else getattr(m, key)


# ----------------------------------------------------------------------------- filters

def filter_grid_figure(filters, *, title=None, columns=None, max_filters: int = 256, max_inputs: int = 16
                       ) -> go.Figure:
    """The filters of a layer as a grid of small pictures (Zeiler & Fergus 2014 fig. 6, AlexNet fig. 3).

    ``filters``: (C_out, K, kh, kw) in [0, 1], e.g. ``cnnviz.features.filters``
    (K = 3: colour, K = 1: a summary in grey, otherwise one row per filter and
    one column per input channel, 0.5 = zero). Hover names each filter.
    """
    image, boxes, labels, shown = filter_mosaic(filters, columns=columns, max_filters=max_filters,
                                                max_inputs=max_inputs)
    f = _numpy(filters)
    kh, kw = f.shape[-2:]
    fig = go.Figure(_image_trace(image, name="filters"))
    fig.add_trace(go.Scatter(x=[left + kw / 2 for _, left in boxes], y=[top + kh / 2 for top, _ in boxes],
                             mode="markers", opacity=0,
                             marker=dict(size=max(6, min(60, round(0.9 * kw * (BOOK_WIDTH - 40) / image.shape[1])))),
                             hovertext=labels, hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
                             name="labels"))
    h, w = image.shape[:2]
    _hide_axes(fig, x_range=[0, w], y_range=[h, 0])
    fig.update_yaxes(scaleanchor="x")
    cut = []
    if shown[0] < f.shape[0]:
        cut.append(f"the first {shown[0]} of {f.shape[0]} filters")
    if f.shape[1] not in (1, 3) and shown[1] < f.shape[1]:
        cut.append(f"the first {shown[1]} of {f.shape[1]} input channels")
    if cut:
        title = (title + "<br>" if title else "") + f"<sup>showing {' and '.join(cut)}</sup>"
    plot_w = BOOK_WIDTH - 40
    height = min(860, max(220, round(plot_w * h / w))) + (70 if title else 30)
    return style(fig, title=title, height=height)


# ----------------------------------------------------------------------------- images and projections

def example_grid_figure(images, labels=None, *, columns: int = 8, title=None) -> go.Figure:
    """A grid of images (N, H, W, 3) uint8 with a caption over each (``labels``: N strings)."""
    imgs = _numpy(images)
    if imgs.ndim == 4 and imgs.shape[1] == 3 and imgs.shape[-1] != 3:
        imgs = imgs.transpose(0, 2, 3, 1)  # (N, 3, H, W) → (N, H, W, 3)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"example_grid_figure needs images of shape (N, H, W, 3), got {imgs.shape}.")
    tiles = np.stack([to_rgb(i) for i in imgs])
    n, h, w = tiles.shape[:3]
    labels = [str(lbl) for lbl in labels] if labels is not None else None
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels.")
    label_rows = max(3, math.ceil(0.22 * h)) if labels else 0
    image, boxes = mosaic(tiles, columns, gap=max(1, round(w / 16)), label_rows=label_rows)
    fig = go.Figure(_image_trace(image, name="images"))
    if labels:
        fig.add_trace(go.Scatter(x=[left + w / 2 for _, left in boxes], y=[top - label_rows / 2 for top, _ in boxes],
                                 mode="text", text=labels, textfont=dict(size=_LABEL_FONT), hoverinfo="skip",
                                 showlegend=False, name="labels"))
    H, W = image.shape[:2]
    _hide_axes(fig, x_range=[0, W], y_range=[H, 0])
    fig.update_yaxes(scaleanchor="x")
    return style(fig, title=title, height=round((BOOK_WIDTH - 40) * H / W) + (70 if title else 30))


def projection_figure(photo, projections, *, columns=None, title=None) -> go.Figure:
    """The photo, then projections back to pixel space (deconvnet, guided backpropagation) beside it.

    ``projections``: label -> (3, S, S) signed floats (or uint8), each shown
    with ``projection_to_uint8`` (grey = 0, its own largest magnitude black or
    white), captioned with its label.
    """
    panels = [("photo", to_rgb(_numpy(photo)))] + [(str(k), projection_to_uint8(v)) for k, v in projections.items()]
    n = len(panels)
    cols = max(1, min(n, int(columns) if columns else 4))
    if columns and n > cols:  # the photo on a row of its own, then ``columns`` projections per row
        rows = 1 + math.ceil((n - 1) / cols)
        places = [(1, 1)] + [(2 + i // cols, 1 + i % cols) for i in range(n - 1)]
    else:
        rows = math.ceil(n / cols)
        places = [(1 + i // cols, 1 + i % cols) for i in range(n)]
    titles = [""] * (rows * cols)
    for (r, c), (lbl, _) in zip(places, panels):
        titles[(r - 1) * cols + (c - 1)] = lbl
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=min(0.12, 0.5 / rows) if rows > 1 else 0.0)
    for (r, c), (lbl, img) in zip(places, panels):
        fig.add_trace(_image_trace(img, name=lbl), row=r, col=c)
        h, w = img.shape[:2]
        _hide_axes(fig, row=r, col=c, x_range=[0, w], y_range=[h, 0])
        fig.update_yaxes(scaleanchor="x" + _axis_suffix(fig, r, c), row=r, col=c)
    for r in range(1, rows + 1):  # empty cells keep no axes
        for c in range(1, cols + 1):
            if (r, c) not in places:
                _hide_axes(fig, row=r, col=c)
    side = (BOOK_WIDTH - 40) / cols
    return style(fig, title=title, height=rows * round(side + 45) + (70 if title else 30))


# ----------------------------------------------------------------------------- feature maps

def _map_tiles(m, channels):
    """The strongest channels of one (C, H, W) map and their tiles (each map on its own scale)."""
    order = strongest(m, channels)
    tiles = np.stack([colourise(m[c]) for c in order])
    return order, tiles


def _photos_and_keys(photos, maps, figure: str, what: str):
    """Check that ``maps`` (photo -> {key -> map}) has at least one photo, the same keys for each, and a photo
    in ``photos`` for each; return (photo names, keys)."""
    names = list(maps)
    if not names:
        raise ValueError(f"{figure} needs the maps of at least one photo.")
    keys = list(maps[names[0]])
    for n in names:
        if list(maps[n]) != keys:
            raise ValueError(f"Every photo needs {what}; {n!r} has {list(maps[n])}, {names[0]!r} has {keys}.")
        if n not in photos:
            raise ValueError(f"No photo called {n!r} in photos (it has {list(photos)}).")
    return names, keys


def feature_map_figure(photos, maps, *, channels: int = 16, columns: int = 4, title=None) -> go.Figure:
    """Feature maps of several photos through the depth: a menu for the photo, a slider for the layer.

    ``photos``: name -> uint8 (S, S, 3) (the input as the model saw it);
    ``maps``: name -> {layer -> (C, H, W)} activations, e.g.
    ``cnnviz.features.feature_maps`` (the same layers for every photo). Each
    state shows the ``channels`` channels with the largest maximum (strongest
    first), each on its own scale (viridis: 0 dark, its maximum yellow;
    signed maps blue–white–red); the label over a map is its channel number
    and hover gives its maximum. The two controls are independent: the menu
    swaps the pictures of every layer at once, the slider shows one layer.
    """
    names, layers = _photos_and_keys(photos, maps, "feature_map_figure", "the maps of the same layers")
    state = {}  # (photo, layer) -> (data URI, labels, hover texts)
    geometry = {}  # layer -> (label xs, label ys, mosaic height in frame units, channels, dx)
    for layer in layers:
        for n in names:
            m = _numpy(maps[n][layer]).astype(np.float64)  # (C, H, W)
            if m.ndim != 3:
                raise ValueError(f"maps[{n!r}][{layer!r}] must have shape (C, H, W), got {m.shape}.")
            order, tiles = _map_tiles(m, channels)
            h, w = m.shape[1:]
            label_rows = max(1, math.ceil(0.2 * h))  # about 20 px on screen, whatever the map size
            image, boxes = mosaic(tiles, columns, gap=max(1, round(w / 16)), label_rows=label_rows)
            dx = _FRAME / image.shape[1]
            state[n, layer] = (_uri(image), [f"#{c}" for c in order],
                               [f"channel {c}: max {m[c].max():.3g}" for c in order])
            geometry[layer] = ([(left + w / 2) * dx for _, left in boxes],
                               [(top - label_rows / 2) * dx for top, _ in boxes], image.shape[0] * dx, m.shape[0], dx)
    frame_h = max(g[2] for g in geometry.values())
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.03)
    first = names[0]
    photo0 = to_rgb(_numpy(photos[first]))
    fig.add_trace(_image_trace(photo0, name="photo"), row=1, col=1)
    for i, layer in enumerate(layers):
        dx = geometry[layer][4]
        fig.add_trace(go.Image(source=state[first, layer][0], x0=dx / 2, y0=dx / 2, dx=dx, dy=dx, name=layer,
                               visible=i == 0, hoverinfo="skip"), row=1, col=2)
    for i, layer in enumerate(layers):
        xs, ys = geometry[layer][:2]
        _, text, hover = state[first, layer]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=text, hovertext=hover, visible=i == 0,
                                 textfont=dict(size=_LABEL_FONT), hovertemplate="%{hovertext}<extra></extra>",
                                 showlegend=False, name=f"{layer} labels"), row=1, col=2)
    side_h, side_w = photo0.shape[:2]
    _hide_axes(fig, row=1, col=1, x_range=[0, side_w], y_range=[side_h, 0])
    _hide_axes(fig, row=1, col=2, x_range=[0, _FRAME], y_range=[frame_h, 0])
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    grid_w = (BOOK_WIDTH - 40) * 0.97 * 0.7
    grid_h = round(grid_w * frame_h / _FRAME)
    photo_h = (BOOK_WIDTH - 40) * 0.97 * 0.3 * side_h / side_w
    fig.update_yaxes(domain=[max(0.0, 1 - photo_h / grid_h), 1], row=1, col=1)  # the photo at the top
    n_layers = len(layers)
    steps = [dict(method="restyle", label=layer, name=layer, args=[{"visible": [True] + [j == i for j in range(
        n_layers)] * 2}]) for i, layer in enumerate(layers)]
    traces = list(range(1 + 2 * n_layers))
    buttons = []
    for n in names:
        sources = ([_uri(_numpy(photos[n]))] + [state[n, lay][0] for lay in layers]
                   + [None] * n_layers)
        text = [None] * (1 + n_layers) + [state[n, lay][1] for lay in layers]
        hover = [None] * (1 + n_layers) + [state[n, lay][2] for lay in layers]
        buttons.append(dict(method="restyle", label=n, args=[{"source": sources, "text": text, "hovertext": hover},
                                                             traces]))
    fig.update_layout(
        sliders=[dict(steps=steps, active=0, currentvalue=dict(prefix="layer: ", font=dict(size=17)),
                      pad=dict(t=10), x=0.07, len=0.86)],  # room for the end labels
        updatemenus=[dict(type="dropdown", buttons=buttons, active=0, x=0, y=1.0, xanchor="left", yanchor="bottom",
                          pad=dict(b=8), font=dict(size=15), showactive=True)],
    )
    fig.add_annotation(text=f"the {channels} strongest channels, strongest first (hover: channel, maximum)",
                       xref="x2 domain", yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom",
                       showarrow=False, font=dict(size=14))
    fig = style(fig, title=title, height=grid_h + 170 + (50 if title else 0))
    return fig.update_layout(margin=dict(t=110 if title else 60, b=10))


# ----------------------------------------------------------------------------- top-9 patches

def top_picture(pats, projs, columns: int = 3) -> np.ndarray:
    """Projections (left) and patches (right) of one channel's top units, as one picture uint8 (H, W, 3).

    ``pats``: (k, 3, r, r) uint8 or [0, 1] floats; ``projs``: (k, 3, r, r) uint8 or signed floats.
    """
    pats, projs = _numpy(pats), _numpy(projs)
    if pats.ndim != 4 or pats.shape[1] != 3 or projs.shape != pats.shape:
        raise ValueError(f"patches and projections must both have shape (k, 3, r, r); got {pats.shape} and "
                         f"{projs.shape}.")
    pat_tiles = np.stack([to_rgb(p.transpose(1, 2, 0)) for p in pats])
    proj_tiles = np.stack([projection_to_uint8(p) for p in projs])
    gap = max(1, round(pats.shape[-1] / 12))
    left, _ = mosaic(proj_tiles, columns, gap=gap)
    right, _ = mosaic(pat_tiles, columns, gap=gap)
    sep = np.full((left.shape[0], 4 * gap, 3), _GAP_COLOUR, dtype=np.uint8)
    return np.concatenate([left, sep, right], axis=1)


def top_patches_figure(patches, projections=None, *, layer=None, columns: int = 3, title=None) -> go.Figure:
    """Zeiler & Fergus fig. 2: the deconvnet projections of a channel's k strongest units over a dataset
    (left) beside the image patches that caused them (right).

    Two ways to call it:

    - ``top_patches_figure(patches, projections, layer="features.3")`` with
      ``patches``/``projections``: channel -> (k, 3, r, r): a slider over the channels;
    - ``top_patches_figure({layer: {channel: (patches, projections)}})``: a
      menu over layers and a slider over each layer's channels (in the order given).

    Patches are uint8 (or floats in [0, 1]); projections uint8 or signed
    floats, shown with ``projection_to_uint8`` (grey = 0), both as
    ``TopActivations.patches`` / ``.projections`` return them, strongest unit first.
    """
    if projections is None:
        views = {str(lay): dict(v) for lay, v in patches.items()}
    else:
        if set(projections) != set(patches):
            raise ValueError(f"patches and projections must have the same channels: {list(patches)} vs "
                             f"{list(projections)}.")
        views = {str(layer): {c: (patches[c], projections[c]) for c in patches}}
    if not views or not all(views.values()):
        raise ValueError("top_patches_figure needs the patches of at least one channel of each layer.")
    layers = list(views)
    ranks = max(len(v) for v in views.values())
    pictures = {}  # (layer, rank) -> (data URI, frame height, dx, caption)
    for lay in layers:
        chans = list(views[lay])
        for r in range(ranks):
            c = chans[min(r, len(chans) - 1)]  # a layer with fewer channels repeats its last
            image = top_picture(*views[lay][c], columns)
            dx = _FRAME / image.shape[1]
            pictures[lay, r] = (_uri(image, lossy=True), image.shape[0] * dx, dx, f"{lay}, channel {c}")
    frame_h = max(p[1] for p in pictures.values())
    fig = go.Figure()
    first = layers[0]
    for r in range(ranks):
        uri, _, dx, _ = pictures[first, r]
        fig.add_trace(go.Image(source=uri, x0=dx / 2, y0=dx / 2, dx=dx, dy=dx, name=f"channel {r}",
                               visible=r == 0, hoverinfo="skip"))
    for r in range(ranks):
        fig.add_trace(go.Scatter(x=[_FRAME / 2], y=[frame_h + 0.045 * _FRAME], mode="text",
                                 text=[pictures[first, r][3]], textfont=dict(size=16), visible=r == 0,
                                 hoverinfo="skip", showlegend=False, name=f"caption {r}"))
    _hide_axes(fig, x_range=[0, _FRAME], y_range=[frame_h + 0.08 * _FRAME, 0])
    fig.update_yaxes(scaleanchor="x")
    k = _numpy(next(iter(views[first].values()))[0]).shape[0]
    for x, text in ((0.0, f"deconvnet projections of the top {k}"), (0.52, f"the top {k} image patches")):
        fig.add_annotation(text=text, xref="paper", yref="paper", x=x, y=1.0, xanchor="left", yanchor="bottom",
                           showarrow=False, font=dict(size=15))
    if len(layers) == 1:
        labels = [str(c) for c in views[first]]
        prefix = f"{first}, channel "
    else:
        labels = [str(r + 1) for r in range(ranks)]
        prefix = "channel (strongest first): "
    steps = [dict(method="restyle", label=labels[r] if r < len(labels) else str(r), name=str(r),
                  args=[{"visible": [j == r for j in range(ranks)] * 2}]) for r in range(ranks)]
    menus = []
    if len(layers) > 1:
        buttons = [dict(method="restyle", label=lay,
                        args=[{"source": [pictures[lay, r][0] for r in range(ranks)] + [None] * ranks,
                               "text": [None] * ranks + [[pictures[lay, r][3]] for r in range(ranks)]},
                              list(range(2 * ranks))]) for lay in layers]
        menus = [dict(type="dropdown", buttons=buttons, active=0, x=1.0, y=1.0, xanchor="right", yanchor="bottom",
                      pad=dict(b=30), font=dict(size=15))]
    fig.update_layout(sliders=[dict(steps=steps, active=0, pad=dict(t=10),
                                    currentvalue=dict(prefix=prefix, font=dict(size=17)))], updatemenus=menus)
    height = round((BOOK_WIDTH - 40) * (frame_h + 0.08 * _FRAME) / _FRAME) + 140 + (50 if title else 0) \
        + (40 if menus else 0)
    fig = style(fig, title=title, height=height)
    return fig.update_layout(margin=dict(t=(110 if title else 50) + (40 if menus else 0), b=10))


# ----------------------------------------------------------------------------- occlusion

#: Colours of classes in "most probable class" maps: D3's ten, then 48 more (all "#rrggbb"); they repeat
#: after 58 classes (ImageNet's 1000), and the legend names what is shown.
CLASS_COLOURS = tuple(qualitative.D3) + tuple(qualitative.Dark24) + tuple(qualitative.Light24)


def _class_colour(c: int) -> str:
    return CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]


def _discrete_scale(classes):
    """A colour scale where value i (0 … n-1) is the colour of ``classes[i]``, as sharp steps."""
    n = len(classes)
    if n == 1:
        return [[0, _class_colour(classes[0])], [1, _class_colour(classes[0])]]
    scale = []
    for i, c in enumerate(classes):
        scale += [[i / n, _class_colour(c)], [(i + 1) / n, _class_colour(c)]]
    return scale


def occlusion_figure(photo, maps, class_names, *, title=None) -> go.Figure:
    """Zeiler & Fergus fig. 7: a grey square slid over the photo; a slider over its size.

    Panels: the photo with the square at its most harmful position; the
    probability of the target class with the square at each position
    (yellow = 1); the most probable class at each position. ``maps``:
    patch size -> an ``OcclusionMap`` (``cnnviz.occlusion``) or a dict with
    its fields ``prob``, ``top_class``, ``target``, ``base_prob``, ``patch``,
    ``stride``, ``rows``, ``cols``. Both maps are drawn in pixel
    coordinates: each value sits at the centre of its patch.
    """
    img = to_rgb(_numpy(photo))
    side_h, side_w = img.shape[:2]
    sizes = list(maps)
    if not sizes:
        raise ValueError("occlusion_figure needs at least one occlusion map.")
    names = list(class_names)

    def name(c):
        return names[c] if 0 <= c < len(names) else f"class {c}"

    target = int(_get(maps[sizes[0]], "target"))
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.1,
                        subplot_titles=["grey square", f"p({name(target)})", "most probable class"])
    fig.add_trace(_image_trace(img, name="photo"), row=1, col=1)
    n = len(sizes)
    states = []
    for i, size in enumerate(sizes):
        m = maps[size]
        prob = _numpy(_get(m, "prob")).astype(np.float64)  # (Hp, Wp)
        top = _numpy(_get(m, "top_class")).astype(np.int64)  # (Hp, Wp)
        rows, cols = _numpy(_get(m, "rows")).astype(np.float64), _numpy(_get(m, "cols")).astype(np.float64)
        patch = int(_get(m, "patch"))
        xs, ys = cols + patch / 2, rows + patch / 2  # centre of each patch, in pixels
        fig.add_trace(go.Heatmap(z=prob, x=xs, y=ys, zmin=0, zmax=1, colorscale="Viridis", visible=i == 0,
                                 colorbar=dict(len=0.8, thickness=12, x=0.655, tickvals=[0, 0.5, 1]),
                                 name=f"p, patch {size}",
                                 hovertemplate="patch centre (%{x:.0f}, %{y:.0f}) px<br>p = %{z:.3f}<extra></extra>"),
                      row=1, col=2)
        present = sorted(set(top.ravel().tolist()))
        index = {c: j for j, c in enumerate(present)}
        z = np.array([[index[v] for v in row] for row in top])
        custom = np.array([[name(v) for v in row] for row in top])
        fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, customdata=custom, zmin=-0.5, zmax=len(present) - 0.5,
                                 colorscale=_discrete_scale(present), visible=i == 0, name=f"class, patch {size}",
                                 colorbar=dict(len=0.8, thickness=12, x=1.0, tickvals=list(range(len(present))),
                                               ticktext=[name(c) for c in present]),
                                 hovertemplate="patch centre (%{x:.0f}, %{y:.0f}) px<br>%{customdata}<extra></extra>"),
                      row=1, col=3)
        r, c = np.unravel_index(int(np.argmin(prob)), prob.shape)
        y0, x0 = float(rows[r]), float(cols[c])
        shapes = [dict(type="rect", xref="x", yref="y", x0=x0, y0=y0, x1=x0 + patch, y1=y0 + patch,
                       fillcolor="rgb(128,128,128)", opacity=0.9, line=dict(color="#d62728", width=3))]
        base = float(_get(m, "base_prob"))
        note = (f"{patch} px square, stride {int(_get(m, 'stride'))} px: p({name(target)}) = {base:.2f} without "
                f"it, {prob[r, c]:.2f} with it where it hurts most (left)")
        states.append((shapes, note))
    for col in (1, 2, 3):
        _hide_axes(fig, row=1, col=col, x_range=[0, side_w], y_range=[side_h, 0])
        fig.update_yaxes(scaleanchor="x" + _axis_suffix(fig, 1, col), row=1, col=col)
    titles = list(fig.layout.annotations)

    def layout_for(i):
        shapes, note = states[i]
        ann = titles + [go.layout.Annotation(text=note, xref="paper", yref="paper", x=0, y=-0.04, xanchor="left",
                                             yanchor="top", showarrow=False, font=dict(size=14))]
        return dict(shapes=shapes, annotations=ann)

    steps = [dict(method="update", label=f"{size} px", name=str(size),
                  args=[{"visible": [True] + [j == i for j in range(n) for _ in (0, 1)]}, layout_for(i)])
             for i, size in enumerate(sizes)]
    fig.update_layout(**layout_for(0))
    fig.update_layout(sliders=[dict(steps=steps, active=0, pad=dict(t=50),
                                    currentvalue=dict(prefix="grey square: ", font=dict(size=17)))])
    panel = (BOOK_WIDTH - 100) * 0.8 / 3
    height = round(panel * side_h / side_w) + 230 + (50 if title else 0)
    fig = style(fig, title=title, height=height)
    return fig.update_layout(margin=dict(b=20, r=80))


# ----------------------------------------------------------------------------- attribution

def _wrap(label: str, width: int = 22) -> str:
    """A long panel title on two lines, broken before its parenthesis (e.g. the paper it cites)."""
    if len(label) > width and " (" in label:
        head, tail = label.split(" (", 1)
        return f"{head}<br><span style='font-size:0.8em'>({tail}</span>"
    return label


def attribution_figure(photos, maps, labels=None, *, captions=None, columns: int = 4, title=None) -> go.Figure:
    """Attribution maps of several methods side by side, painted over the photo; a menu over photos.

    ``photos``: name -> uint8 (S, S, 3); ``maps``: name -> {method -> (S, S)
    map ≥ 0} (e.g. ``cnnviz.attribution.attribute(...).map``; the same
    methods for every photo); ``labels``: method -> panel title (e.g.
    ``cnnviz.attribution.METHODS``; default the method's name); ``captions``:
    photo name -> a sentence shown under the title (e.g. the class explained).
    Each map is painted over the grey photo with ``overlay`` (its 99.5th
    percentile is the hottest colour), so every panel is on its own scale.
    """
    names, methods = _photos_and_keys(photos, maps, "attribution_figure", "the same methods")
    labels = dict(labels or {})
    captions = dict(captions or {})
    panels = ["photo"] + [_wrap(str(labels.get(m, m))) for m in methods]
    cols = max(1, min(int(columns), len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=panels, horizontal_spacing=0.02,
                        vertical_spacing=min(0.1, 0.4 / rows) if rows > 1 else 0.0)

    def sources(n):
        img = to_rgb(_numpy(photos[n]))
        return [data_uri(img, compress_level=9)] + [data_uri(overlay(img, maps[n][m]), compress_level=9)
                                                    for m in methods]

    first = sources(names[0])
    side_h, side_w = to_rgb(_numpy(photos[names[0]])).shape[:2]
    for k, src in enumerate(first):
        r, c = divmod(k, cols)
        fig.add_trace(go.Image(source=src, name=panels[k], hoverinfo="skip"), row=r + 1, col=c + 1)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        _hide_axes(fig, row=r + 1, col=c + 1, x_range=[0, side_w], y_range=[side_h, 0])
        fig.update_yaxes(scaleanchor="x" + _axis_suffix(fig, r + 1, c + 1), row=r + 1, col=c + 1)

    def heading(n):
        caption = captions.get(n)
        return (title + "<br>" if title else "") + f"<sup>{n}" + (f": {caption}" if caption else "") + "</sup>"

    buttons = [dict(method="update", label=n, args=[{"source": sources(n) if i else first},
                                                      {"title.text": heading(n)}])
               for i, n in enumerate(names)]
    fig.update_layout(updatemenus=[dict(type="dropdown", buttons=buttons, active=0, x=1.0, y=1.0, xanchor="right",
                                        yanchor="bottom", pad=dict(b=64), font=dict(size=15))])  # above the titles
    panel = (BOOK_WIDTH - 40) / cols
    height = rows * round(panel * side_h / side_w + 45) + 150
    fig = style(fig, title=heading(names[0]), height=height)
    return fig.update_layout(margin=dict(t=150, b=10))


# ----------------------------------------------------------------------------- sanity checks

def sanity_figure(checks, labels=None, *, photo=None, maps=None, title=None) -> go.Figure:
    """Adebayo et al. 2018's cascading randomisation: how much of each method's map survives as the
    model's layers are re-initialised from the top down.

    ``checks``: method -> [(layer, Spearman ρ)], as
    ``cnnviz.attribution.sanity_check`` returns them (layers in the order
    randomised); ``labels``: method -> legend entry (e.g. ``METHODS``). One
    line per method, starting at ρ = 1 for the trained model: a method whose
    line stays high while the weights it should explain are destroyed fails
    the check. With ``photo`` and ``maps`` (method -> [(stage, (S, S) map)],
    e.g. the trained map first; taken from ``checks`` when it holds
    ``sanity_check(..., with_maps=True)`` triples) a panel shows the maps,
    with a slider over the stages and a menu over the methods.
    """
    checks = {m: list(rows) for m, rows in checks.items()}
    if maps is None and all(len(r) == 3 for rows in checks.values() for r in rows):  # sanity_check(with_maps=True)
        maps = {m: [(row[0], row[2]) for row in rows] for m, rows in checks.items()}
    checks = {m: [(str(row[0]), float(row[1])) for row in rows] for m, rows in checks.items()}
    if not checks:
        raise ValueError("sanity_figure needs the correlations of at least one method.")
    labels = dict(labels or {})
    with_maps = photo is not None and maps is not None
    if with_maps:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.42, 0.58], horizontal_spacing=0.1)
        where = dict(row=1, col=2)
    else:
        fig = go.Figure()
        where = {}
    for k, (m, rows) in enumerate(checks.items()):
        fig.add_trace(go.Scatter(x=["trained"] + [lay for lay, _ in rows], y=[1.0] + [r for _, r in rows],
                                 mode="lines+markers", name=str(labels.get(m, m)), line=dict(width=3),
                                 marker=dict(size=9),
                                 hovertemplate="%{x}: ρ = %{y:.2f}<extra>%{fullData.name}</extra>"),
                      **where)
    fig.update_yaxes(range=[-1.05, 1.05], title_text="rank correlation with the trained map", zeroline=True,
                     zerolinewidth=2, **where)
    fig.update_xaxes(tickangle=-40, title_text="randomised from the top down to", **where)
    height = 460 + (50 if title else 0)
    if with_maps:
        img = to_rgb(_numpy(photo))
        side_h, side_w = img.shape[:2]
        n_lines = len(checks)
        methods = [m for m in maps]
        stage_lists = {m: [(str(s), _numpy(v)) for s, v in maps[m]] for m in methods}
        n_stages = max(len(v) for v in stage_lists.values())
        for s in range(n_stages):
            m0 = methods[0]
            lbl, v = stage_lists[m0][min(s, len(stage_lists[m0]) - 1)]
            fig.add_trace(_image_trace(overlay(img, v), name=lbl, visible=s == 0), row=1, col=1)
        _hide_axes(fig, row=1, col=1, x_range=[0, side_w], y_range=[side_h, 0])
        fig.update_yaxes(scaleanchor="x", row=1, col=1)
        stage_names = [stage_lists[methods[0]][min(s, len(stage_lists[methods[0]]) - 1)][0] for s in range(n_stages)]
        steps = [dict(method="restyle", label=stage_names[s], name=str(s),
                      args=[{"visible": [True] * n_lines + [j == s for j in range(n_stages)]}])
                 for s in range(n_stages)]
        buttons = []
        for m in methods:
            lst = stage_lists[m]
            srcs = [data_uri(overlay(img, lst[min(s, len(lst) - 1)][1]), compress_level=9) for s in range(n_stages)]
            buttons.append(dict(method="restyle", label=str(labels.get(m, m)), args=[
                {"source": srcs}, list(range(n_lines, n_lines + n_stages))]))
        fig.update_layout(sliders=[dict(steps=steps, active=0, pad=dict(t=120), x=0.07, len=0.86,
                                        currentvalue=dict(prefix="map after randomising down to: ",
                                                          font=dict(size=16)))],
                          updatemenus=[dict(type="dropdown", buttons=buttons, active=0, x=0, y=1.0, xanchor="left",
                                            yanchor="bottom", pad=dict(b=8), font=dict(size=15))])
        height += 120
    fig = style(fig, title=title, height=height)
    if with_maps:  # inside the curves' panel, bottom right (ρ near -1 is rare there), clear of the menu
        legend = dict(orientation="v", x=1.0, xanchor="right", y=0.0, yanchor="bottom", bgcolor="rgba(255,255,255,0.8)")
    else:  # under the axis title, clear of the figure's title and of the curves
        legend = dict(orientation="h", x=0, xanchor="left", y=-0.42, yanchor="top")
        fig.update_layout(height=height + 25 * len(checks))
    return fig.update_layout(legend=legend, margin=dict(t=(110 if title else 60), b=20))


def regions_figure(regions, *, title=None) -> go.Figure:
    """How far a patch's change reaches through the network (incremental inference, Nakandala et al. 2019).

    ``regions``: patch side -> ``Incremental.regions`` rows (layer name,
    recomputed (h, w), whole map (H, W)). One bar per convolution or pooling
    layer: the share of its output map a copy with the patch in the middle
    recomputes; hover for the sizes. A slider switches between patch sizes.
    """
    regions = {int(p): list(rows) for p, rows in regions.items()}
    if not regions or not all(regions.values()):
        raise ValueError("regions_figure needs, for at least one patch size, the rows of Incremental.regions.")
    fig = go.Figure()
    patches = list(regions)
    for k, p in enumerate(patches):
        rows = regions[p]
        share = [100.0 * h * w / (hh * ww) for _, (h, w), (hh, ww) in rows]
        text = [f"{h}×{w} of {hh}×{ww}" for _, (h, w), (hh, ww) in rows]
        fig.add_trace(go.Bar(x=[name for name, _, _ in rows], y=share, customdata=text, visible=k == 0,
                             name=f"{p}-pixel patch", marker_color=qualitative.Plotly[0],
                             hovertemplate="%{x}: recomputes %{customdata} (%{y:.0f} %)<extra></extra>"))
    fig.update_yaxes(range=[0, 105], title_text="share of the map recomputed (%)")
    fig.update_xaxes(tickangle=-50)
    steps = [dict(method="restyle", label=str(p), args=[{"visible": [j == k for j in range(len(patches))]}])
             for k, p in enumerate(patches)]
    fig.update_layout(sliders=[dict(steps=steps, active=0, pad=dict(t=150),
                                    currentvalue=dict(prefix="patch side (pixels): ", font=dict(size=16)))],
                      showlegend=False)
    fig = style(fig, title=title, height=560 + (40 if title else 0))
    return fig.update_layout(margin=dict(t=(80 if title else 30), b=20))
