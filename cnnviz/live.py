"""Live explorers that compute in the reader's browser, with no Python behind them.

``kernel_editor_html`` and ``conv_explorer_html`` return one self-contained HTML block: a ``<div>`` with
a sentence for readers whose browser runs no scripts, the data the explorer needs as JSON (the photos'
pixels at display resolution, the preset kernels, the slider limits), and a script that mounts the
explorer from ``cnnviz/static/cnnviz-live.js``. The same block works in the published book, in JupyterLab
and in Colab's output cells, offline. ``KernelEditorLive`` and ``ConvExplorerLive`` wrap them for
notebooks (``display(...)`` or the last line of a cell).

The JavaScript mirrors cnnviz's Python functions (``kernels.parse_entry``, ``kernels.filter_image``,
``kernels.for_display``, ``figures.arithmetic.conv_arithmetic_text``); the browser tests hold the page's
pixels, numbers and sentences to them. Python stays the source of truth: the photos' grayscale planes
are computed here (``imaging.to_gray``), and the presets' cell texts are those of the Python editor.

In the book, where ``CNNVIZ_BOOK`` is set, the script is served once from the book's static files
(``_config.yml`` lists it); elsewhere the block carries it inline.
"""
import base64
import html
import json
import uuid
from functools import lru_cache
from pathlib import Path

__all__ = ["kernel_editor_html", "conv_explorer_html", "KernelEditorLive", "ConvExplorerLive", "script",
           "SCRIPT_PATH", "BOOK_PHOTOS"]

#: The module's source, shipped with the package.
SCRIPT_PATH = Path(__file__).with_name("static") / "cnnviz-live.js"
#: The photos the book's editor offers (a page carries each at display resolution, colour and grayscale).
BOOK_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "brick", "text")

_STYLE = """<style>
.cnnviz-live { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 15px;
  color: #222; background: #fff; padding: 6px; max-width: 100%; }
.cnnviz-live:focus { outline: 2px solid #9ecbff; }
.cnnviz-live-title { font-size: 1.15em; font-weight: 600; margin: 4px 0 8px; }
.cnnviz-live-row { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; margin: 4px 0; }
.cnnviz-live-body { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.cnnviz-live-left { flex: 0 0 15.5em; display: flex; flex-direction: column; gap: 6px; }
.cnnviz-live-view { flex: 1 1 14em; min-width: 0; display: flex; flex-direction: column; gap: 4px; }
.cnnviz-live-view canvas { width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #ccc; }
.cnnviz-live-ce .cnnviz-live-view canvas { width: auto; border: none; }
.cnnviz-live-grid { display: grid; gap: 4px; }
.cnnviz-live-grid input { font-size: 1.1em; text-align: center; padding: 4px 0; width: 100%; box-sizing: border-box; }
.cnnviz-live-grid input.cnnviz-live-bad { border: 2px solid #b00020; background: #fff0f0; }
.cnnviz-live select, .cnnviz-live button { font-size: 1em; }
.cnnviz-live-message { color: #b00020; font-weight: 600; min-height: 1.2em; }
.cnnviz-live-explain, .cnnviz-live-formula { line-height: 1.45; }
.cnnviz-live-formula { margin-top: 8px; overflow-x: auto; }
.cnnviz-live-sliders { flex: 0 0 19em; display: flex; flex-direction: column; gap: 4px; }
.cnnviz-live-sliders label { display: grid; grid-template-columns: 6.5em 1fr 2.2em; align-items: center; gap: 6px; }
.cnnviz-live-sliders label select { grid-column: 2 / 4; }
.cnnviz-live-sliders output { text-align: right; font-variant-numeric: tabular-nums; }
</style>"""


def script() -> str:
    """The JavaScript module's source."""
    return SCRIPT_PATH.read_text(encoding="utf-8")


def _png_data_uri(pixels) -> str:
    from cnnviz.imaging import png_bytes
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


@lru_cache(maxsize=64)
def _photo(name: str, max_side: int) -> dict:
    """A photo at display resolution: its RGB pixels and its grayscale plane (``to_gray``), as PNG data URIs."""
    from cnnviz.data import load_image
    from cnnviz.imaging import to_gray
    rgb = load_image(name, max_side=max_side)  # uint8 (H, W, 3)
    return {"name": name, "rgb": _png_data_uri(rgb), "gray": _png_data_uri(to_gray(rgb))}


def photo_pixels(name: str, max_side: int, color: bool):
    """The pixels the page filters: uint8 (H, W, 3) for colour, (H, W) grayscale (``to_gray``), at display
    resolution. The tests filter these with ``kernels.filter_image`` to check the page."""
    from cnnviz.data import load_image
    from cnnviz.imaging import to_gray
    rgb = load_image(name, max_side=max_side)
    return rgb if color else to_gray(rgb)


def _cell_text(v: float) -> str:
    """The text the Python kernel editor writes in a cell (``KernelEditor._fill_cells``)."""
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.4g}"


def _presets() -> dict:
    from cnnviz.kernels import DESCRIPTIONS, PRESETS
    return {name: {"values": [float(v) for v in k.ravel()], "texts": [_cell_text(v) for v in k.ravel()],
                   "description": DESCRIPTIONS[name]} for name, k in PRESETS.items()}


def _in_book() -> bool:
    from cnnviz.plot import in_book_build
    return in_book_build()


def _block(data: dict, fallback: str, inline) -> str:
    """The HTML block: fallback text, data, and a script that mounts the explorer (module inline or not)."""
    uid = f"cnnviz-live-{uuid.uuid4().hex}"
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never ends the <script> early
    inline = (not _in_book()) if inline is None else bool(inline)
    module = script() if inline else ""
    missing = json.dumps("The live explorer's script did not load; the figures on this page still work.")
    return (f'{_STYLE}<div id="{uid}" class="cnnviz-live-host"><p class="cnnviz-live-fallback">'
            f'{html.escape(fallback)}</p></div>'
            f'<script type="application/json" id="{uid}-data">{payload}</script>'
            f'<script>{module}\n(function (me) {{ var data = me && me.previousElementSibling,'
            f' host = data && data.previousElementSibling;'  # this block's own elements, whatever else the page holds
            f' if (!host || host.id !== "{uid}") {{ host = document.getElementById("{uid}");'
            f' data = document.getElementById("{uid}-data"); }}'
            f' if (!window.cnnvizLive) {{ host.textContent = {missing}; return; }}'
            f' window.cnnvizLive.mount(host, JSON.parse(data.textContent)); }})(document.currentScript);'
            f'</script>')


def kernel_editor_html(image: str = "astronaut", kernel: str = "sobel x", *, photos=None,
                       mode: str = "abs", color: bool = False, max_side: int = 384, inline=None) -> str:
    """The kernel editor as an HTML block that filters in the reader's browser (see the module's docstring).

    ``photos``: embedded photo names the menu offers (each travels in the page at ``max_side``, in colour and
    grayscale, so keep the list short; default: ``image`` alone, ``BOOK_PHOTOS`` in the book); ``image`` the
    first one shown; ``kernel`` a preset's name; ``mode``
    ``"clip"``, ``"abs"`` or ``"normalise"``; ``color`` filter each RGB channel (else the grayscale photo);
    ``inline`` carry the script in the block (default: yes, except in the book, which serves it once).
    """
    from cnnviz.data import image_names
    from cnnviz.kernels import DISPLAY_MODES, PRESETS
    photos = list(photos) if photos is not None else (list(BOOK_PHOTOS) if _in_book() else [image])
    unknown = [p for p in photos if p not in image_names()]
    if not photos or unknown:
        raise ValueError(f"Choose photos among the embedded ones ({', '.join(image_names())}); "
                         f"{'none given' if not photos else 'unknown: ' + ', '.join(map(str, unknown))}.")
    if image not in photos:
        raise ValueError(f"image={image!r} must be one of the photos offered: {', '.join(photos)}.")
    if kernel not in PRESETS:
        raise ValueError(f"No preset named {kernel!r}; choose one of: {', '.join(PRESETS)}.")
    if mode not in DISPLAY_MODES:
        raise ValueError(f"Unknown display mode {mode!r}; choose one of {DISPLAY_MODES}.")
    if not 16 <= int(max_side) <= 1024:
        raise ValueError(f"max_side={max_side} must be between 16 and 1024 pixels.")
    data = {"kind": "kernel-editor", "photos": {p: _photo(p, int(max_side)) for p in photos}, "image": image,
            "presets": _presets(), "start": kernel, "kernel": PRESETS[kernel].tolist(), "mode": mode,
            "modes": list(DISPLAY_MODES), "color": bool(color)}
    return _block(data, "The live kernel editor runs in your browser and needs JavaScript, which is off here. "
                        "Open this page with scripts allowed, or run the notebook's KernelEditor.", inline)


def conv_explorer_html(n: int = 5, f: int = 3, p=0, s: int = 1, d: int = 1, c_in: int = 1, c_out: int = 1, *,
                       inline=None) -> str:
    """The convolution explorer as an HTML block that computes in the reader's browser: the sliders of
    ``cnnviz.widgets.ConvExplorer`` (the same ``LIMITS``), its formula with the current numbers, its sentences
    for settings that do not work, and the kernel sliding over the padded input (Play, or → and ← keys).
    The start setting must work (``conv_arithmetic_text`` explains it if not)."""
    from cnnviz.figures.arithmetic import conv_arithmetic_text
    from cnnviz.widgets.conv_explorer import LIMITS, _check_setting
    for name, value in dict(n=n, f=f, s=s, d=d, c_in=c_in, c_out=c_out).items():
        _check_setting(name, value)
    if not isinstance(p, str):
        _check_setting("p", p)
    conv_arithmetic_text(n, f, p, s, d, c_in, c_out)  # raises the sentence for a setting that does not work
    data = {"kind": "conv-explorer", "limits": {k: list(v) for k, v in LIMITS.items()},
            "start": dict(n=n, f=f, p=p, s=s, d=d, c_in=c_in, c_out=c_out)}
    return _block(data, "The live convolution explorer runs in your browser and needs JavaScript, which is off "
                        "here. Open this page with scripts allowed, or run the notebook's ConvExplorer.", inline)


class _Live:
    """A live block for notebooks: shown by Jupyter (``_repr_html_``) wherever it is displayed."""

    def __init__(self, html_text: str):
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html


class KernelEditorLive(_Live):
    """``kernel_editor_html(...)`` for a notebook cell: the kernel editor computed by the browser."""

    def __init__(self, *args, **kwargs):
        super().__init__(kernel_editor_html(*args, **kwargs))


class ConvExplorerLive(_Live):
    """``conv_explorer_html(...)`` for a notebook cell: the convolution explorer computed by the browser."""

    def __init__(self, *args, **kwargs):
        super().__init__(conv_explorer_html(*args, **kwargs))
