"""FilterGallery: the learned filters of any convolution of a model, as pictures.

A thin view over ``cnnviz.features.filters`` (the kernels arranged for
display) and ``cnnviz.figures.visualising.filter_mosaic`` (the same picture
as the book's ``filter_grid_figure``), with core ipywidgets only. The first
layer's filters are colour images (Krizhevsky et al. 2012, fig. 3; Zeiler &
Fergus 2014, fig. 6); deeper ones are shown per input channel or as the norm
over input channels.
"""
import time
from collections import OrderedDict

import ipywidgets as widgets

from cnnviz.figures.visualising import filter_mosaic, upscale
from cnnviz.imaging import png_bytes
from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, guarded, info_html, lecture_frame, lecture_settings,
                                  step_buttons)
from cnnviz.widgets._photo_view import _PhotoView

__all__ = ["FilterGallery", "MODES"]

#: The display modes of ``cnnviz.features.filters``, as the menu names them.
MODES = (("auto", "auto"), ("colour", "rgb"), ("per input channel", "channels"), ("norm over inputs", "summary"))
_WIDTH = 780  # the picture's width at scale 1, in px


class FilterGallery(_PhotoView):
    """Choose a convolution and a display mode; see every filter of the layer.

    Parameters: ``model`` ("shapesnet", the default; "alexnet", "vgg16",
    "resnet18"; a ``VisionModel``; or any ``nn.Module``), ``layer`` (a
    dotted name of an ``nn.Conv2d``; default the first), ``mode`` ("auto":
    colour for a layer that reads RGB, else the norm over input channels;
    "rgb"; "channels": every input channel's kernel, blue < 0 = white < red;
    "summary"), ``max_filters`` and ``max_inputs`` (how many are drawn),
    ``scale`` (1.0 in a notebook, 1.4 for a projector), ``threaded``
    (``False`` renders synchronously: tests, scripts).

    A wrong layer or an impossible mode (colour for a layer that does not
    read RGB) is explained in the message line; the last picture stays.
    """

    def __init__(self, model="shapesnet", layer=None, *, mode="auto", class_names=None, max_filters: int = 256,
                 max_inputs: int = 16, scale=None, lecture=None, threaded: bool = True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        from cnnviz.probe import conv_layers

        self._setup_model(model, class_names, scale)
        self.max_filters, self.max_inputs = int(max_filters), int(max_inputs)
        self._pictures = OrderedDict()  # (layer, mode) -> (PNG bytes, info html)
        self.picture = None  # the mosaic on screen, uint8 (H, W, 3) before enlarging
        self.shown = None  # (layer, mode) on screen
        self.timings = {}
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        px, g = self.px, (lambda cb: guarded(cb, self._show_error))
        convs = conv_layers(self.model)
        if not convs:
            raise ValueError(f"{type(self.model).__name__} has no nn.Conv2d layer, so it has no filters to show.")
        if mode not in dict((v, v) for _, v in MODES):
            raise ValueError(f"mode must be one of {', '.join(repr(v) for _, v in MODES)}, not {mode!r}.")
        self.message = widgets.HTML()
        self.layer = widgets.Dropdown(options=convs, value=convs[0], description="layer",
                                      layout=widgets.Layout(width=px(300)))
        self.mode = widgets.ToggleButtons(options=list(MODES), value=mode, style={"button_width": px(160)})
        self.info = widgets.HTML()
        self.view = widgets.Image(format="png", layout=widgets.Layout(width=px(_WIDTH)))
        self.layer.observe(g(self._on_change), names=["value"])
        self.mode.observe(g(self._on_change), names=["value"])
        title = widgets.HTML('<span class="cnnviz-title">Filter gallery: what each convolution has learned to '
                             'look for</span>')
        self.add_class("cnnviz-fg")
        if self.lecture:  # the hall looks at the filters; the instructor steps through the layers
            k = scale / LECTURE_SCALE
            title.value = '<span class="cnnviz-title">Filter gallery: what each convolution looks for</span>'
            self.view.layout = widgets.Layout(width="auto", height="auto", max_width="100%",
                                              max_height=f"{round(560 * k)}px")
            self.view.add_class("cnnviz-fg-view")
            self.layer.description, self.layer.layout.width = "", px(170)
            prev, nxt = step_buttons(self.step, self._show_error, what="layer")
            self.children = lecture_frame(
                self, "cnnviz-fg", scale, title=title, picture=self.view,
                primary=[self.layer, widgets.HBox([prev, nxt])], side=[self.message],
                below=self._style("cnnviz-fg") + [self.mode, self.info],
                side_width=260, picture_basis=700,
                narrow_css=f"& .cnnviz-fg-view {{ max-height: {round(470 * k)}px !important; }}")
        else:
            self.children = self._style("cnnviz-fg") + [
                title, widgets.HBox([self.layer, self.mode], layout=widgets.Layout(flex_flow="row wrap",
                                                                                  align_items="center")),
                self.message, self.info, self.view]
        if layer is not None:
            self.set(layer=layer)
        else:
            self._request()

    # ------------------------------------------------------------------ public API
    def step(self, delta: int = 1):
        """Show the convolution ``delta`` places deeper (shallower where negative), stopping at the ends."""
        layers = list(self.layer.options)
        self.layer.value = layers[min(max(layers.index(self.layer.value) + int(delta), 0), len(layers) - 1)]

    def set(self, layer=None, mode=None):
        """Show another layer and/or mode; a wrong layer name is explained in the message line."""
        from cnnviz.probe import conv_layers, get_layer

        if layer is not None and layer not in self.layer.options:
            try:
                get_layer(self.model, layer)  # LayerNotFound lists the layers
                raise ValueError(f"{layer!r} is a {type(get_layer(self.model, layer)).__name__}, not a "
                                 f"convolution; choose one of: {', '.join(conv_layers(self.model))}.")
            except ValueError as err:
                self._show_error(err, source="layer")
                layer = None
                if self.shown is None:  # the constructor: show the first layer under the message
                    self._request()
                if mode is None:
                    return
        with self._quietly():
            if layer is not None:
                self.layer.value = layer
                self._clear_message("layer")
            if mode is not None:
                self.mode.value = mode
        self._request()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the newest request is rendered (for scripts and tests)."""
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ rendering
    def _on_change(self, change):
        if not self._quiet:
            self._clear_message("layer")
            self._request()

    def _request(self):
        self._renderer.request((self.layer.value, self.mode.value))

    def _render(self, req):
        from cnnviz.features import filter_smoothness, filters
        from cnnviz.probe import get_layer

        layer, mode = req
        t0 = time.perf_counter()
        if (layer, mode) not in self._pictures:
            conv = get_layer(self.model, layer)
            with self._lock:
                f = filters(self.model, layer, mode=mode).detach().cpu()  # (C_out, K, kh, kw) in [0, 1]
            image, _, _, shown = filter_mosaic(f, max_filters=self.max_filters, max_inputs=self.max_inputs)
            factor = max(1, round(_WIDTH * self._scale) // image.shape[1])
            w = conv.weight.detach()
            kind = {3: "in colour, each filter stretched on its own from its smallest weight (dark) to its largest "
                    "(bright)", 1: "the norm over input channels at each tap: black = no weight"}.get(
                f.shape[1], "one input channel per column, blue < 0 = white < red")
            cut = f" (the first {shown[0]} shown)" if shown[0] < w.shape[0] else ""
            cut += (f" (the first {shown[1]} input channels shown)" if f.shape[1] not in (1, 3)
                    and shown[1] < f.shape[1] else "")
            smooth = ""
            if w.shape[-1] * w.shape[-2] > 1:
                smooth = (f"; neighbouring weights correlate {float(filter_smoothness(w).mean()):.2f} on average "
                          "(white noise ≈ 0, smooth patterns near 1)")
            text = (f"<b>{layer}</b>: {w.shape[0]} filters of {w.shape[2]}×{w.shape[3]}×{w.shape[1]}{cut}; "
                    f"{kind}{smooth}.")
            self._pictures[layer, mode] = (image, png_bytes(upscale(image, factor)), text)
            while len(self._pictures) > 32:
                self._pictures.popitem(last=False)
        image, png, text = self._pictures[layer, mode]
        self.view.value = png
        self.info.value = info_html(text)
        self.picture, self.shown = image, (layer, mode)
        self._clear_message("other")
        self.timings["render_ms"] = (time.perf_counter() - t0) * 1000

    def _error_suffix(self, err, source):
        if self.shown is None or source == "layer":
            return ""
        return f" The gallery still shows {self.shown[0]} ({dict((v, k) for k, v in MODES)[self.shown[1]]})."
