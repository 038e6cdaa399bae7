"""Figures of chapter 2 (padding, stride, dilation, channels): the convolution explorer's pictures.

``conv_frames`` draws one picture per output position of a convolution layer,
in the spirit of Dumoulin & Visin's diagrams ("A guide to convolution
arithmetic for deep learning", 2016, github.com/vdumoulin/conv_arithmetic),
but for any n, f, p, s, d, C_in and C_out: the zero-padded input slices (one
per input channel) with the kernel's taps on each, their sums added with the
bias into one output cell, and the C_out output maps stacked into the output
volume. Every shape and count comes from ``cnnviz.layers``.

The pictures are drawn with NumPy on a palette canvas (PIL only renders the
text), so a frame takes well under a millisecond to draw and a few to encode:
a widget computes all of them once per setting and then only swaps PNGs, and
``conv_explorer_figure`` embeds them in a static plotly page.
"""
import base64
import importlib.util
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from cnnviz.figures._common import _square_axes
from cnnviz.layers import conv_macs, conv_output_shape, conv_params, conv_trace, same_padding
from cnnviz.plot import style

__all__ = ["conv_frames", "conv_frame_pngs", "conv_arithmetic_text", "conv_explorer_figure",
           "EXPLORER_SETTINGS", "MAX_FRAMES", "MAX_DRAWN_SIDE", "MAX_DRAWN_CHANNELS", "MAX_DRAWN_MAPS"]

#: ``conv_frames`` refuses settings with more output positions (frames) than this ...
MAX_FRAMES = 1024
#: ... or a padded input side (n + 2p) longer than this: a picture, not a framework.
MAX_DRAWN_SIDE = 48
#: Input channels drawn side by side (first two, "…", last one when there are more).
MAX_DRAWN_CHANNELS = 3
#: Output maps drawn stacked (the front one and up to three behind it).
MAX_DRAWN_MAPS = 4

#: The static figure's default settings: valid, same, stride, dilation, channels.
EXPLORER_SETTINGS = (
    dict(label="valid: n = 5, f = 3, p = 0", n=5, f=3),
    dict(label="same: n = 5, f = 3, p = 1", n=5, f=3, p=1),
    dict(label="stride: n = 5, f = 3, p = 1, s = 2", n=5, f=3, p=1, s=2),
    dict(label="dilation: n = 7, f = 3, d = 2", n=7, f=3, d=2),
    dict(label="channels: n = 5, f = 3, C_in = 3, C_out = 2", n=5, f=3, c_in=3, c_out=2),
)

# ----------------------------------------------------------------------------- palette
# Indices 0..15: a ramp from the text colour to white (antialiased text sits on white).
_TEXT_RGB, _WHITE_RGB = np.array([34, 34, 34]), np.array([255, 255, 255])
WHITE = 15
_COLOURS = {  # name: RGB
    "grid": (140, 140, 140),
    "edge": (40, 40, 40),         # the border of the real (unpadded) input
    "pad": (228, 228, 228),       # padding cells: light grey ...
    "hatch": (190, 190, 190),     # ... hatched
    "tap": (86, 150, 222),        # kernel taps on real cells: blue
    "tap_pad": (175, 200, 232),   # kernel taps on padding (they multiply a zero): pale blue
    "tap_hatch": (140, 172, 212),
    "window": (16, 62, 140),      # outline of the (dilated) window and of the current output cell
    "done": (150, 214, 188),      # output cells already computed: green
    "current": (86, 150, 222),    # the output cell being computed: the kernel's blue
    "back": (238, 238, 238),      # output maps behind the front one
    "back_grid": (170, 170, 170),
    "back_done": (190, 228, 212),
    "back_current": (160, 194, 232),
}
_INDEX = {name: 16 + k for k, name in enumerate(_COLOURS)}
PALETTE = np.zeros((256, 3), dtype=np.uint8)  # index → RGB
for _g in range(16):
    PALETTE[_g] = np.round(_TEXT_RGB + (_WHITE_RGB - _TEXT_RGB) * _g / 15)
for _name, _rgb in _COLOURS.items():
    PALETTE[_INDEX[_name]] = _rgb
_PALETTE_BYTES = PALETTE.tobytes()


def _lut(**mapping):
    """A recolouring table: index → index, identity except ``from_name=to_name`` pairs."""
    table = np.arange(256, dtype=np.uint8)
    for src, dst in mapping.items():
        table[WHITE if src == "white" else _INDEX[src]] = _INDEX[dst]
    return table


_LUT_TAP = _lut(white="tap", pad="tap_pad", hatch="tap_hatch")
_LUT_DONE = _lut(white="done")
_LUT_CURRENT = _lut(white="current", done="current")
_LUT_BACK_DONE = _lut(back="back_done")
_LUT_BACK_CURRENT = _lut(back="back_current", back_done="back_current")

# ----------------------------------------------------------------------------- text
_FONT_FILES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_ASCII = str.maketrans({"×": "x", "−": "-", "–": "-"})


@lru_cache(maxsize=32)
def _font(size):
    """(font, has_unicode): DejaVu Sans (Debian, or matplotlib's copy on Colab), else PIL's own font."""
    candidates = list(_FONT_FILES)
    spec = importlib.util.find_spec("matplotlib")  # found without importing matplotlib
    if spec and spec.submodule_search_locations:
        candidates.append(str(Path(list(spec.submodule_search_locations)[0], "mpl-data", "fonts", "ttf",
                                   "DejaVuSans.ttf")))
    for path in candidates:
        try:
            return ImageFont.truetype(path, size), True
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size), False  # Pillow ≥ 10.1: no ×, − glyphs
    except TypeError:  # older Pillow: a small bitmap font
        return ImageFont.load_default(), False


@lru_cache(maxsize=512)
def _text_patch(text, size):
    """``text`` as an index patch (0 = text colour … 15 = white), one line box high."""
    font, unicode_ok = _font(size)
    if not unicode_ok:
        text = text.translate(_ASCII)
    left, _, right, _ = font.getbbox(text)
    try:
        ascent, descent = font.getmetrics()
    except AttributeError:
        ascent, descent = size, 0
    im = Image.new("L", (max(1, right - left + 2), ascent + descent + 2), 255)
    ImageDraw.Draw(im).text((1 - left, 1), text, font=font, fill=0)
    patch = ((np.asarray(im, dtype=np.uint16) * 15 + 127) // 255).astype(np.uint8)
    patch.flags.writeable = False  # cached and shared: nobody may draw into it
    return patch


def _text_size(text, size):
    h, w = _text_patch(text, size).shape
    return w, h


def _put_text(canvas, text, size, x, y, anchor="center"):
    """Draw ``text`` with its line box centred at (x, y) (or its left edge at x: ``anchor="left"``)."""
    patch = _text_patch(text, size)
    h, w = patch.shape
    x0 = int(round(x - w / 2)) if anchor == "center" else int(round(x))
    y0 = int(round(y - h / 2))
    region = canvas[y0:y0 + h, x0:x0 + w]
    patch = patch[:region.shape[0], :region.shape[1]]
    np.copyto(region, patch, where=patch < WHITE)


# ----------------------------------------------------------------------------- arithmetic

def _padding(n, f, p, s, d):
    """An int padding from a number, "valid" or "same" (stride 1 only); errors are sentences."""
    if isinstance(p, str):
        conv_output_shape(1, n, n, 1, f, p, s, d)  # the layers module words the errors ("same" needs s = 1, ...)
        return 0 if p == "valid" else same_padding(f, d)
    return p


def _checked(n, f, p, s, d, c_in, c_out):
    """(p as int, h_out, w_out) or ValueError with the numbers, via ``cnnviz.layers``."""
    p_int = _padding(n, f, p, s, d)
    _, h_out, w_out = conv_output_shape(c_in, n, n, c_out, f, p_int, s, d)  # checks every argument
    conv_params(c_in, c_out, f)
    return p_int, h_out, w_out


def conv_arithmetic_text(n, f, p=0, s=1, d=1, c_in=1, c_out=1) -> str:
    """The layer's arithmetic with the current numbers, as lines joined by ``<br>`` (``<b>`` for results).

    The output size ``floor((n + 2p − d(f−1) − 1)/s) + 1``, the output volume
    C_out × H_out × W_out, the parameters ``C_out·(f·f·C_in + 1)`` and the
    multiply–accumulates (MACs, not FLOPs) ``H_out·W_out·C_out·f·f·C_in`` of one
    n × n input. ``p`` may be a number, ``"valid"`` or ``"same"``. The markup
    (``<b>``, ``<br>`` only) works both in an ipywidgets ``HTML`` and in a plotly
    annotation. Raises ``ValueError`` (a sentence with the numbers) for a
    kernel that does not fit.
    """
    p_int, h_out, w_out = _checked(n, f, p, s, d, c_in, c_out)
    params = conv_params(c_in, c_out, f)
    macs = conv_macs(c_in, n, n, c_out, f, p_int, s, d)
    numerator = n + 2 * p_int - d * (f - 1) - 1
    lines = []
    if p == "same":
        lines.append(f"padding 'same': p = d(f−1)/2 = {d}·({f}−1)/2 = <b>{p_int}</b>")
    elif p == "valid":
        lines.append("padding 'valid': p = <b>0</b>")
    lines += [
        f"<b>output size</b> = floor((n + 2p − d(f−1) − 1)/s) + 1 = "
        f"floor(({n} + 2·{p_int} − {d}·({f}−1) − 1)/{s}) + 1 = floor({numerator}/{s}) + 1 = <b>{h_out}</b>",
        f"<b>output volume</b> C_out × H_out × W_out = <b>{c_out} × {h_out} × {w_out}</b>"
        f" (input C_in × n × n = {c_in} × {n} × {n})",
        f"<b>parameters</b> C_out·(f·f·C_in + 1) = {c_out}·({f}·{f}·{c_in} + 1) = <b>{params:,}</b>",
        f"<b>multiply–accumulates (MACs)</b> H_out·W_out·C_out·f·f·C_in = "
        f"{h_out}·{w_out}·{c_out}·{f}·{f}·{c_in} = <b>{macs:,}</b>",
    ]
    return "<br>".join(lines)


# ----------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in pixels. Grids: (x0, y0) of the top-left cell's outer corner."""
    n: int
    f: int
    p: int
    s: int
    d: int
    c_in: int
    c_out: int
    h_out: int
    w_out: int
    cell: int
    line: int  # grid line width
    font: int
    height: int
    width: int
    inputs: tuple  # ((channel, x0, y0), ...) for each drawn input slice, left to right
    output: tuple  # (x0, y0) of the front output map
    back: tuple  # ((x0, y0), ...) of the maps behind it, back to front
    labels: tuple  # ((text, size, x, y, anchor), ...) drawn once
    position: tuple  # (x, y): where each frame names its output cell


def _layout(n, f, p=0, s=1, d=1, c_in=1, c_out=1, cell=28, font_size=None):
    p, h_out, w_out = _checked(n, f, p, s, d, c_in, c_out)
    side = n + 2 * p
    if side > MAX_DRAWN_SIDE:
        raise ValueError(f"The padded input would be {side}×{side} cells (n + 2p = {n} + 2·{p}); this picture "
                         f"draws at most {MAX_DRAWN_SIDE}×{MAX_DRAWN_SIDE}. Choose a smaller n or less padding.")
    if h_out * w_out > MAX_FRAMES:
        raise ValueError(f"This setting has {h_out * w_out:,} output positions ({h_out}×{w_out}); the "
                         f"animation draws at most {MAX_FRAMES:,}. Choose a smaller n, a larger stride or "
                         "less padding.")
    c = int(cell)
    if c < 6:
        raise ValueError(f"cell must be at least 6 pixels, got {cell!r}.")
    fs = int(font_size) if font_size else max(12, round(c * 0.7))
    sym = round(fs * 1.5)  # "+", "=" between the grids
    line = max(1, c // 16)
    margin, gap = max(10, c // 2), max(8, fs // 2)
    off = max(4, c // 3)  # how far each output map behind is shifted (up and right)
    n_back = min(c_out, MAX_DRAWN_MAPS) - 1
    grid_in, grid_out = side * c + line, w_out * c + line
    _, line_h = _text_size("Ag", fs)

    channels = list(range(c_in)) if c_in <= MAX_DRAWN_CHANNELS else [0, 1, c_in - 1]
    above_in = [f"input {n}×{n}" if c_in == 1 else f"channel {k + 1}" for k in channels]
    above_out = "output" if c_out == 1 else f"{c_out} output maps"
    below_in = [f"padding p = {p}" + (f", stride {s}" if s > 1 else "") + (f", dilation {d}" if d > 1 else "")]
    if c_in > MAX_DRAWN_CHANNELS:
        below_in.append(f"{len(channels)} of {c_in} input channels drawn")
    below_out = [f"{h_out}×{w_out}" if c_out == 1 else f"{c_out} maps of {h_out}×{w_out}"]
    position_w = _text_size(f"cell ({h_out - 1}, {w_out - 1})", fs)[0]

    # left to right: slice (+ slice)* [+ … +] + bias = output
    x = margin
    inputs, labels = [], []
    grids_h = max(side * c, h_out * c + n_back * off) + line
    top = margin + line_h + gap  # the labels sit above the grids
    mid = top + grids_h / 2
    sym_w = lambda t: _text_size(t, sym)[0] + 2 * gap  # noqa: E731
    for k, (ch, label) in enumerate(zip(channels, above_in)):
        if k:
            token = "+ … +" if (c_in > MAX_DRAWN_CHANNELS and k == len(channels) - 1) else "+"
            w = sym_w(token)
            labels.append((token, sym, x + w / 2, mid, "center"))
            x += w
        item_w = max(grid_in, _text_size(label, fs)[0])
        x0 = int(x + (item_w - grid_in) / 2)
        inputs.append((ch, x0, int(mid - grid_in / 2)))
        labels.append((label, fs, x0 + grid_in / 2, mid - grid_in / 2 - gap - line_h / 2, "center"))
        x += item_w
    below_in_w = max(_text_size(t, fs)[0] for t in below_in)
    for r, t in enumerate(below_in):
        labels.append((t, fs, inputs[0][1], mid + grid_in / 2 + gap + line_h * (r + 0.5), "left"))
    for token in ("+ bias", "="):
        w = sym_w(token)
        labels.append((token, sym, x + w / 2, mid, "center"))
        x += w
    x = max(x, inputs[0][1] + below_in_w + gap)  # the input captions never run under the output

    stack_w = grid_out + n_back * off
    out_w = max(stack_w, _text_size(above_out, fs)[0], position_w, *(_text_size(t, fs)[0] for t in below_out))
    ox = int(x + (out_w - stack_w) / 2)
    stack_top = int(mid - (h_out * c + line + n_back * off) / 2)
    oy = stack_top + n_back * off
    back = tuple((ox + m * off, oy - m * off) for m in range(n_back, 0, -1))
    centre_out = x + out_w / 2
    labels.append((above_out, fs, centre_out, stack_top - gap - line_h / 2, "center"))
    bottom = oy + h_out * c + line
    for r, t in enumerate(below_out):
        labels.append((t, fs, centre_out, bottom + gap + line_h * (r + 0.5), "center"))
    position = (centre_out, bottom + gap + line_h * (len(below_out) + 0.5))
    x += out_w

    low = max(mid + grid_in / 2 + gap + line_h * len(below_in), bottom + gap + line_h * (len(below_out) + 1))
    height = int(low + margin)
    width = int(x + margin)
    return _Layout(n, f, p, s, d, c_in, c_out, h_out, w_out, c, line, fs, height, width, tuple(inputs),
                   (ox, oy), back, tuple(labels), position)


# ----------------------------------------------------------------------------- drawing

def _grid(canvas, x0, y0, rows, cols, cell, line, fill, grid):
    """A rows × cols grid of cells filled with ``fill``, lines of width ``line`` in ``grid``."""
    h, w = rows * cell + line, cols * cell + line
    canvas[y0:y0 + h, x0:x0 + w] = fill
    for r in range(rows + 1):
        canvas[y0 + r * cell: y0 + r * cell + line, x0:x0 + w] = grid
    for q in range(cols + 1):
        canvas[y0:y0 + h, x0 + q * cell: x0 + q * cell + line] = grid


def _outline(canvas, x0, y0, x1, y1, t, colour):
    """A rectangle outline of thickness ``t`` just inside (x0, y0)–(x1, y1) (exclusive end)."""
    canvas[y0:y0 + t, x0:x1] = colour
    canvas[y1 - t:y1, x0:x1] = colour
    canvas[y0:y1, x0:x0 + t] = colour
    canvas[y0:y1, x1 - t:x1] = colour


def _recolour(canvas, x0, y0, cell, line, row, col, lut):
    """Recolour one cell's interior through ``lut`` (grid lines and outlines keep their colour)."""
    ys, xs = y0 + row * cell + line, x0 + col * cell + line
    region = canvas[ys:ys + cell - line, xs:xs + cell - line]
    region[...] = lut[region]


def _background(lay):
    """Everything that does not move: padded input slices, empty output maps, labels."""
    c, line, p, n = lay.cell, lay.line, lay.p, lay.n
    side = n + 2 * p
    canvas = np.full((lay.height, lay.width), WHITE, dtype=np.uint8)
    pad, hatch = _INDEX["pad"], _INDEX["hatch"]
    period = max(4, c // 4)
    for _, x0, y0 in lay.inputs:
        _grid(canvas, x0, y0, side, side, c, line, WHITE, _INDEX["grid"])
        if p:
            size = side * c + line
            yy, xx = np.mgrid[0:size, 0:size]
            stripes = (xx + yy) % period < max(1, period // 3)
            inner = np.zeros((size, size), dtype=bool)  # cells in the padding ring
            cells = np.zeros((side, side), dtype=bool)
            cells[:p, :] = cells[-p:, :] = cells[:, :p] = cells[:, -p:] = True
            inner[:side * c, :side * c] = np.kron(cells, np.ones((c, c), dtype=bool))
            region = canvas[y0:y0 + size, x0:x0 + size]
            region[inner & (region == WHITE)] = pad
            region[inner & stripes & (region == pad)] = hatch
        t = max(2, c // 12)  # the real image's border, thicker than the grid
        _outline(canvas, x0 + p * c, y0 + p * c, x0 + (p + n) * c + line, y0 + (p + n) * c + line, t,
                 _INDEX["edge"])
    for x0, y0 in lay.back:
        _grid(canvas, x0, y0, lay.h_out, lay.w_out, c, line, _INDEX["back"], _INDEX["back_grid"])
    ox, oy = lay.output
    _grid(canvas, ox, oy, lay.h_out, lay.w_out, c, line, WHITE, _INDEX["grid"])
    for text, size, x, y, anchor in lay.labels:
        _put_text(canvas, text, size, x, y, anchor)
    return canvas


def _frames_indexed(lay):
    """Yield one palette-index image (H, W) uint8 per output position, row by row."""
    c, line, s, d, f = lay.cell, lay.line, lay.s, lay.d, lay.f
    t = max(2, c // 8)
    done = _background(lay)
    ox, oy = lay.output
    px, py = lay.position
    c_in = lay.c_in
    x_shape, w_shape = (c_in, lay.n, lay.n), (lay.c_out, c_in, f, f)
    for i in range(lay.h_out):
        for j in range(lay.w_out):
            frame = done.copy()
            trace = conv_trace(x_shape, w_shape, (0, i, j), lay.p, s, d)  # the taps, from cnnviz.layers
            taps = {(r, q) for _, r, q in trace.padded}
            top, left, bottom, right = trace.window
            for _, x0, y0 in lay.inputs:
                for r, q in taps:
                    _recolour(frame, x0, y0, c, line, r, q, _LUT_TAP)
                _outline(frame, x0 + left * c, y0 + top * c, x0 + (right + 1) * c + line,
                         y0 + (bottom + 1) * c + line, t, _INDEX["window"])
            for bx, by in lay.back:
                _recolour(frame, bx, by, c, line, i, j, _LUT_BACK_CURRENT)
            _recolour(frame, ox, oy, c, line, i, j, _LUT_CURRENT)
            _outline(frame, ox + j * c, oy + i * c, ox + (j + 1) * c + line, oy + (i + 1) * c + line, t,
                     _INDEX["window"])
            _put_text(frame, f"cell ({i}, {j})", lay.font, px, py)
            yield frame
            for bx, by in lay.back:
                _recolour(done, bx, by, c, line, i, j, _LUT_BACK_DONE)
            _recolour(done, ox, oy, c, line, i, j, _LUT_DONE)


def _png(indexed, compress_level):
    im = Image.fromarray(indexed)
    im.putpalette(_PALETTE_BYTES)  # "L" → "P": one byte per pixel, fast to encode, small
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _fitted_layout(n, f, p, s, d, c_in, c_out, cell, font_size, max_size):
    """``_layout`` with the largest cell size ≤ ``cell`` whose picture fits ``max_size`` (height, width)."""
    lay = _layout(n, f, p, s, d, c_in, c_out, cell, font_size)
    if max_size is None:
        return lay
    max_h, max_w = max_size
    fs = lay.font  # the text keeps its size (readable), only the cells shrink
    c = int(cell)
    while c > 6 and (lay.height > max_h or lay.width > max_w):
        # the picture grows about linearly with the cell size: jump close, then step down
        shrink = min(max_h / lay.height, max_w / lay.width)
        c = max(6, min(c - 1, int(c * shrink)))
        lay = _layout(n, f, p, s, d, c_in, c_out, c, fs)
    return lay


def conv_frames(n, f, p=0, s=1, d=1, c_in=1, c_out=1, *, cell=28, font_size=None, max_size=None) -> list:
    """One picture per output position of a convolution layer, as uint8 RGB arrays (H, W, 3).

    Frame ``k`` shows output cell ``divmod(k, W_out)`` being computed. Left:
    the n × n input zero-padded by ``p`` (padding cells light grey and hatched,
    real cells white, the real image framed), once per input channel (at most
    three drawn: the first two, "…", the last), with the kernel's f × f taps
    in blue (pale blue where they fall on padding) and the dilated window
    outlined, so dilation gaps show. Between them "+": the per-channel sums
    add up, ``+ bias``, into one cell of the output (right): finished cells
    green, the current one blue; with C_out > 1 the other output maps stack
    behind it (at most four drawn). ``p``: a number, ``"valid"`` or ``"same"``;
    ``cell``: pixels per grid cell; ``font_size``: label size in pixels
    (default 0.7·cell, at least 12); ``max_size``: (height, width) in pixels
    the picture must fit, by drawing smaller cells (down to 6 pixels).

    Raises ``ValueError`` (a sentence with the numbers) when the kernel does
    not fit, or when the picture would be too big (more than ``MAX_FRAMES``
    positions or a padded side over ``MAX_DRAWN_SIDE``).
    """
    lay = _fitted_layout(n, f, p, s, d, c_in, c_out, cell, font_size, max_size)
    return [PALETTE[idx] for idx in _frames_indexed(lay)]


def conv_frame_pngs(n, f, p=0, s=1, d=1, c_in=1, c_out=1, *, cell=28, font_size=None, max_size=None,
                    compress_level=1) -> list:
    """``conv_frames`` encoded as palette PNGs (bytes), ready for an ``ipywidgets.Image``.

    Level 1 (the default) is fast enough to encode hundreds of frames at
    once; level 9 makes the smallest files for pages that embed them.
    """
    lay = _fitted_layout(n, f, p, s, d, c_in, c_out, cell, font_size, max_size)
    return [_png(idx, compress_level) for idx in _frames_indexed(lay)]


# ----------------------------------------------------------------------------- the static twin

def _setting(entry):
    """(label, kwargs) from a dict like ``dict(n=5, f=3, p=1, label=...)``."""
    kw = dict(entry)
    label = kw.pop("label", None)
    unknown = set(kw) - {"n", "f", "p", "s", "d", "c_in", "c_out"}
    if unknown:
        raise ValueError(f"Unknown setting {sorted(unknown)}; use n, f, p, s, d, c_in, c_out (and label).")
    if "n" not in kw or "f" not in kw:
        raise ValueError(f"Each setting needs at least n and f, got {entry!r}.")
    if label is None:
        names = {"c_in": "C_in", "c_out": "C_out"}
        label = ", ".join(f"{names.get(k, k)} = {v}" for k, v in kw.items())
    return label, kw


def _uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def conv_explorer_figure(settings=None, *, title=None, cell=22) -> go.Figure:
    """The static twin of ``ConvExplorer``: a menu chooses a setting, a slider moves the kernel.

    ``settings``: a list of dicts with ``n``, ``f`` and optionally ``p``, ``s``,
    ``d``, ``c_in``, ``c_out`` and ``label`` (default ``EXPLORER_SETTINGS``:
    valid, same, stride 2, dilation 2, three input channels and two filters).
    Each setting's frames (``conv_frames``) are embedded as PNG data URIs in
    one ``go.Image`` trace; the dropdown shows that trace, its slider and its
    arithmetic (``conv_arithmetic_text``); the slider steps swap the image.
    Works with no kernel: everything is precomputed here.
    """
    entries = [_setting(e) for e in (EXPLORER_SETTINGS if settings is None else settings)]
    if not entries:
        raise ValueError("Give at least one setting.")
    fs = max(12, round(cell * 0.68))
    layouts = [_layout(**kw, cell=cell, font_size=fs) for _, kw in entries]
    height = max(lay.height for lay in layouts)
    width = max(lay.width for lay in layouts)
    texts = [conv_arithmetic_text(**kw) for _, kw in entries]

    fig = go.Figure()
    frames, sliders, players = [], [], []
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    for k, ((label, kw), lay) in enumerate(zip(entries, layouts)):
        names = []
        for pos, idx in enumerate(_frames_indexed(lay)):
            canvas = np.full((height, width), WHITE, dtype=np.uint8)  # every setting on the same canvas size
            canvas[:idx.shape[0], :idx.shape[1]] = idx
            uri = _uri(_png(canvas, 9))
            if pos == 0:
                fig.add_trace(go.Image(source=uri, name=label, visible=k == 0, hoverinfo="skip"))
            names.append(f"{k}:{pos}")
            frames.append(go.Frame(name=names[-1], data=[go.Image(source=uri)], traces=[k]))
        # one slider and one play button per setting; the menu shows the chosen setting's pair
        steps = [dict(method="animate", label=f"({pos // lay.w_out}, {pos % lay.w_out})", args=[[name], still])
                 for pos, name in enumerate(names)]
        sliders.append(dict(active=0, visible=k == 0, steps=steps, pad=dict(t=10), len=0.84, x=0.16,
                            currentvalue=dict(prefix="output cell (row, col): ", font=dict(size=16, color="#222")),
                            font=dict(color="rgba(0,0,0,0)")))  # one tick label per cell would overlap
        play = dict(frame=dict(duration=450, redraw=True), transition=dict(duration=0), fromcurrent=True,
                    mode="immediate")
        players.append(dict(type="buttons", direction="left", visible=k == 0, showactive=False, x=0, y=0,
                            xanchor="left", yanchor="top", pad=dict(t=38), font=dict(size=15),
                            buttons=[dict(label="▶", method="animate", args=[names, play]),
                                     dict(label="❚❚", method="animate", args=[[None], still])]))
    fig.frames = frames
    text_lines = max(t.count("<br>") + 1 for t in texts)
    text_h = 22 * text_lines + 10
    buttons = []
    for k, (label, _) in enumerate(entries):
        relayout = {f"sliders[{m}].visible": m == k for m in range(len(entries))}
        relayout.update({f"updatemenus[{m + 1}].visible": m == k for m in range(len(entries))})
        relayout["annotations[0].text"] = texts[k]
        buttons.append(dict(label=label, method="update",
                            args=[{"visible": [m == k for m in range(len(entries))]}, relayout]))
    fig.update_layout(
        sliders=sliders,
        updatemenus=[dict(type="dropdown", buttons=buttons, active=0, x=1, y=1, xanchor="right", yanchor="bottom",
                          pad=dict(b=text_h + 6), showactive=True, font=dict(size=15))] + players,
        annotations=[dict(text=texts[0], x=0, y=1, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
                          align="left", showarrow=False, font=dict(size=14))],
    )
    _square_axes(fig)
    fig.update_xaxes(range=[-0.5, width - 0.5], fixedrange=True)
    fig.update_yaxes(range=[height - 0.5, -0.5], autorange=False, fixedrange=True)
    style(fig, title=title, height=height + text_h + 60 + 110 + (40 if title else 0))
    fig.update_layout(margin=dict(t=text_h + 60 + (40 if title else 0), b=110))
    return fig
