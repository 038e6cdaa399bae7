"""KernelEditor: edit a 3×3 or 5×5 kernel and watch it filter a photo.

A thin view over ``cnnviz.kernels`` (``filter_image``, ``for_display``,
``parse_entry``) using core ipywidgets only, so it runs on Colab's
ipywidgets 7 without a custom widget manager, and on ipywidgets 8.
"""
import time

import ipywidgets as widgets
import numpy as np

from cnnviz.data import ImageError, image_names, load_image
from cnnviz.imaging import jpeg_bytes, png_bytes, to_gray
from cnnviz.kernels import DESCRIPTIONS, DISPLAY_MODES, PRESETS, filter_image, for_display, parse_entry
from cnnviz.runtime import device as best_device
from cnnviz.widgets._base import (LatestOnly, View, guarded, info_html, lecture_frame, lecture_settings, scoped_style,
                                  upload_bytes)

__all__ = ["KernelEditor"]

CUSTOM = "(custom)"
_MODE_LABELS = {"clip": "clip to 0–255", "abs": "absolute value", "normalise": "stretch min–max"}


class KernelEditor(View):
    """Edit a kernel cell by cell (or pick a preset) and see input and output side by side.

    Parameters: ``image`` (an embedded photo's name, a path, bytes or an
    array), ``kernel`` (a preset name or a 3×3 / 5×5 array), ``mode``
    (``"clip"``, ``"abs"`` or ``"normalise"``), ``color`` (filter each RGB
    channel, or the grayscale image), ``max_side`` (photos are shrunk to this
    for display), ``scale`` (1.0 in a notebook, 1.4 for a projector), ``lecture``
    (the lecture layout: output and input large, the kernel beside them; ``None``
    follows ``cnnviz.widgets.lecture()``),
    ``threaded`` (render on a worker thread keeping only the newest request;
    ``False`` renders synchronously).

    Bad entries show a message beside the grid and keep the last good output.
    """

    def __init__(self, image="astronaut", kernel="sobel x", *, mode="abs", color=False, max_side=512,
                 scale=None, lecture=None, threaded=True, device=None):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        self.max_side = int(max_side)
        self.device = device if device is not None else best_device()
        self._written = {}  # (row, col) -> (text, exact value) last written by code, e.g. ("0.1111", 1/9)
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)

        if isinstance(kernel, str) and kernel not in PRESETS:
            raise ValueError(f"No preset named {kernel!r}; choose one of: {', '.join(PRESETS)}.")
        start = kernel if isinstance(kernel, str) else CUSTOM
        k0 = PRESETS[kernel] if isinstance(kernel, str) else np.asarray(kernel, dtype=float)
        if k0.shape not in ((3, 3), (5, 5)):
            raise ValueError(f"The kernel must be 3×3 or 5×5, got shape {k0.shape}.")
        if mode not in DISPLAY_MODES:
            raise ValueError(f"Unknown display mode {mode!r}; choose one of {DISPLAY_MODES}.")

        self._scale = scale
        px = lambda v: f"{round(v * scale)}px"  # noqa: E731  sizes grow with scale (projector)
        self.photo = widgets.Dropdown(options=image_names(), value=image if isinstance(image, str) and image in image_names() else "astronaut",
                                      description="photo", layout=widgets.Layout(width=px(250)))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload",
                                         layout=widgets.Layout(width=px(130)))
        self.preset = widgets.Dropdown(options=[CUSTOM] + list(PRESETS), value=start, description="preset",
                                       layout=widgets.Layout(width=px(290)))
        self.size = widgets.ToggleButtons(options=["3×3", "5×5"], value=f"{k0.shape[0]}×{k0.shape[0]}",
                                          style={"button_width": px(60)})
        self.mode = widgets.RadioButtons(options=[(_MODE_LABELS[m], m) for m in DISPLAY_MODES], value=mode,
                                         description="show", layout=widgets.Layout(width=px(280)))
        self.color = widgets.ToggleButtons(options=["grayscale", "colour"], value="colour" if color else "grayscale",
                                           style={"button_width": px(110)})
        self.cells = [[widgets.Text(value="0", continuous_update=False) for _ in range(5)] for _ in range(5)]
        for row in self.cells:
            for cell in row:
                cell.add_class("cnnviz-cell")
                cell.observe(guarded(self._on_cell, self._show_error), names=["value"])
        self.grid = widgets.GridBox(layout=widgets.Layout(grid_gap="4px"))
        self.message = widgets.HTML(layout=widgets.Layout(width=px(280)))
        self.explain = widgets.HTML(layout=widgets.Layout(width=px(280)))
        self.input_view = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=px(512)))
        self.output_view = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=px(512)))

        for control, callback in [(self.photo, self._on_photo), (self.upload, self._on_upload),
                                  (self.preset, self._on_preset), (self.size, self._on_size),
                                  (self.mode, self._on_display), (self.color, self._on_display)]:
            control.observe(guarded(callback, self._show_error), names=["value"])

        title = widgets.HTML('<span class="cnnviz-title">Kernel editor: output = kernel ⋆ input (cross-correlation)</span>')
        # Left: everything about the kernel, fixed width so messages wrap instead of pushing the
        # images; right: input and output side by side, as large as the page allows.
        left = widgets.VBox([widgets.HTML("<b>kernel</b> (numbers, or fractions like 1/9)"), self.size, self.grid,
                             self.message, self.mode, self.color, self.explain],
                            layout=widgets.Layout(width=px(300), min_width=px(300)))
        view = lambda label, image: widgets.VBox(  # noqa: E731
            [widgets.HTML(f"<b>{label}</b>"), image], layout=widgets.Layout(flex="1 1 0", min_width="0"))
        self.add_class("cnnviz-ke")
        if self.lecture:  # the hall looks at input and output; the instructor touches the preset and the grid
            for view_ in (self.input_view, self.output_view):
                view_.layout = widgets.Layout(width="100%", max_width=px(280), margin="0", object_fit="contain")
            self.preset.layout.width = px(250)
            self.preset.description = ""  # the menu says what it is; the side column is narrow
            self.message.layout.width = "auto"
            pair = widgets.HBox([view("input", self.input_view), view("output", self.output_view)],
                                layout=widgets.Layout(grid_gap=px(12), width="100%"))
            self.children = lecture_frame(
                self, "cnnviz-ke", scale, title=title, picture=pair,
                primary=[self.preset, self.size, self.grid], side=[self.message],
                below=[widgets.HBox([self.photo, self.upload, self.mode, self.color, self.explain],
                                    layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(12)))],
                side_width=260, picture_basis=700,
                css=f"& .cnnviz-cell input {{ height: {px(32)}; }}")
            for row in self.cells:
                for cell in row:
                    cell.layout.margin = "0"  # the grid's gap spaces them
        else:
            self.children = [scoped_style(self, "cnnviz-ke", scale), title,
                             widgets.HBox([self.photo, self.upload, self.preset],
                                          layout=widgets.Layout(flex_flow="row wrap")),
                             widgets.HBox([left, view("input", self.input_view), view("output", self.output_view)],
                                          layout=widgets.Layout(grid_gap=px(12)))]

        self._image = load_image(image, max_side=self.max_side)  # uint8 (H, W, 3)
        self._kernel = k0.copy()
        self.output = None  # the last good output, uint8 (H, W) or (H, W, 3)
        self._input_key = None
        self._fill_cells(k0)
        self._show_input()
        self._request()

    # ------------------------------------------------------------------ public API
    @property
    def kernel(self) -> np.ndarray:
        """The last valid kernel, (f, f) float64."""
        return self._kernel.copy()

    @property
    def image(self) -> np.ndarray:
        """The current input photo, uint8 (H, W, 3), already shrunk to ``max_side``."""
        return self._image.copy()

    def set_kernel(self, kernel):
        """Show ``kernel`` (a 3×3 or 5×5 array or a preset name) and filter with it."""
        if isinstance(kernel, str):
            self.preset.value = kernel
            return
        k = np.asarray(kernel, dtype=float)
        if k.shape not in ((3, 3), (5, 5)):
            raise ValueError(f"The kernel must be 3×3 or 5×5, got shape {k.shape}.")
        with self._quietly():
            self.size.value = f"{k.shape[0]}×{k.shape[0]}"
        self._fill_cells(k)
        self._on_cell(None)

    def set_image(self, source):
        """Use a new photo: an embedded name, a path, image bytes or an array."""
        try:
            self._image = load_image(source, max_side=self.max_side)
        except ImageError as err:
            self._show_error(err)
            return
        self._clear_message("other")
        if not (isinstance(source, str) and source == self.photo.value):
            with self._quietly():  # the menu no longer names the photo shown: choosing any photo loads it again
                self.photo.value = source if isinstance(source, str) and source in image_names() else None
        self._show_input()
        self._request()

    def wait(self, timeout=10.0) -> bool:
        """Block until the newest request is rendered (for scripts and tests)."""
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ callbacks

    def _f(self):
        return int(self.size.value[0])

    def _fill_cells(self, k):
        f = k.shape[0]
        with self._quietly():
            self._written = {}
            for r in range(f):
                for c in range(f):
                    v = float(k[r, c])
                    text = str(int(v)) if v.is_integer() else f"{v:.4g}"
                    self.cells[r][c].value = text
                    self._written[r, c] = (text, v)  # an untouched "0.1111" still means exactly 1/9
        cell = (56 if f == 3 else 48) if self.lecture else (72 if f == 3 else 50)  # about the same grid width
        width = f"{round(cell * self._scale)}px"
        for r in range(f):
            for c in range(f):
                self.cells[r][c].layout.width = width
        self.grid.layout.grid_template_columns = f"repeat({f}, {width})"
        self.grid.children = [self.cells[r][c] for r in range(f) for c in range(f)]

    def _on_display(self, change):
        self._request()

    def _on_photo(self, change):
        if change["new"] is not None and not self._quiet:
            self.set_image(change["new"])

    def _on_upload(self, change):
        data = upload_bytes(change["new"])
        if data is not None:
            self.set_image(data)

    def _on_preset(self, change):
        if change["new"] == CUSTOM or self._quiet:
            return
        k = PRESETS[change["new"]]
        with self._quietly():
            self.size.value = f"{k.shape[0]}×{k.shape[0]}"
        self._fill_cells(k)
        self._kernel = k.copy()
        self._clear_message("cells")
        self._request()

    def _on_size(self, change):
        if self._quiet:
            return
        f_old, f_new = int(change["old"][0]), int(change["new"][0])
        k = np.zeros((f_new, f_new))
        if f_new > f_old:  # embed in the centre, zeros around
            k[1:-1, 1:-1] = self._kernel
        else:  # keep the centre
            k = self._kernel[1:-1, 1:-1].copy()
        self._fill_cells(k)
        self._on_cell(None)

    def _read_cells(self):
        f = self._f()
        k = np.zeros((f, f))
        problems = []
        for r in range(f):
            for c in range(f):
                text = self.cells[r][c].value
                written = self._written.get((r, c))
                try:
                    k[r, c] = written[1] if written and written[0] == text else parse_entry(text)
                except ValueError as err:
                    problems.append(f"Row {r + 1}, column {c + 1}: {err}")
        if problems:
            raise ValueError(" ".join(problems[:3]) + (" …" if len(problems) > 3 else "")
                             + " The output still shows the last valid kernel.")
        return k

    def _on_cell(self, change):
        if self._quiet:
            return
        try:
            k = self._read_cells()
        except ValueError as err:
            self._show_error(err, source="cells")
            return
        self._kernel = k
        self._clear_message("cells")
        match = next((n for n, p in PRESETS.items() if p.shape == k.shape and np.allclose(p, k)), CUSTOM)
        with self._quietly():
            self.preset.value = match
        self._request()

    # ------------------------------------------------------------------ rendering
    def _request(self):
        self._renderer.request((self._image, self._kernel.copy(), self.mode.value,
                                self.color.value == "colour", self.preset.value))

    def _show_input(self):
        self._input_key = None  # the next render re-encodes the input view

    def _render(self, req):
        image, kernel, mode, colour, name = req
        t0 = time.perf_counter()
        source = image if colour else to_gray(image)
        out = for_display(filter_image(source, kernel, device=self.device), mode)
        if self._input_key != (id(image), colour):  # encode the input only when it changed
            self.input_view.format = "jpeg"  # a photo: JPEG is ~15× faster to encode than PNG
            self.input_view.value = jpeg_bytes(source)
            self._input_key = (id(image), colour)
        self.output_view.value = png_bytes(out)
        self.output = out
        ms = (time.perf_counter() - t0) * 1000
        total = kernel.sum()
        what = DESCRIPTIONS.get(name, "your own kernel.")
        self.explain.value = info_html(
            f"<b>{name}</b>: {what}<br>weights sum to {total:.3g}"
            + (" (flat regions become 0)" if abs(total) < 1e-9 else "")
            + f"<br>{source.shape[1]}×{source.shape[0]} px, {ms:.0f} ms")
        self._clear_message("other")


