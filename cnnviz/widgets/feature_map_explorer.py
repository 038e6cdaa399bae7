"""FeatureMapExplorer: a photo through a trained network, layer by layer; click a map to see what it wants.

A thin view over ``cnnviz.features`` (feature maps, the strongest channels),
``cnnviz.deconvnet`` (the Zeiler–Fergus projection of a unit, its receptive
field, the top-9 patches over a dataset) and the picture helpers of
``cnnviz.figures.visualising``, with core ipywidgets only (Colab's
ipywidgets 7 and ipywidgets 8).

Speed: one forward pass per photo records every layer's maps (cached), so a
layer or page change only encodes small PNGs (milliseconds); a click runs
one deconvnet pass; the top-9 scan of the example images runs once per layer
(and is cached on disk by ``top_activations``). Three renderers keep only the
newest request each: the grid, the chosen channel's details, and the top-9.

What the four visualisation widgets share (the photo menu and upload, the
model lock, the pixelated style) is in ``cnnviz.widgets._photo_view``.
"""
import time
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np
import torch

from cnnviz.figures.visualising import colourise, projection_to_uint8, strongest
from cnnviz.imaging import png_bytes
from cnnviz.widgets._base import (LatestOnly, error_html, guarded, info_html, lecture_frame, lecture_settings,
                                  step_buttons)
from cnnviz.widgets._photo_view import (TOP_CLASS, _example_images, _PhotoView, _png, _small_input, box_on,
                                        image_box, model_lock, resolve_model)

__all__ = ["FeatureMapExplorer", "resolve_model", "model_lock", "box_on", "TOP_CLASS"]


# ----------------------------------------------------------------------------- the explorer

class FeatureMapExplorer(_PhotoView):
    """Pick a photo (or upload one) and a layer; see that layer's feature maps; click a map's button to
    see the unit's deconvnet projection and the nine example images that excite its channel most.

    Parameters: ``model`` ("shapesnet", the default, trained offline by
    cnnviz; "alexnet", "vgg16", "resnet18" with ImageNet weights where they
    can be downloaded; a ``VisionModel``; or any ``nn.Module`` with
    ``class_names=``), ``image`` (a menu entry, an example index, an
    embedded photo's name, a path, bytes or an array), ``layer`` (a dotted
    name; default the first of ``features.default_layers``), ``channels``
    (maps per page), ``columns`` (maps per row), ``top_k`` (patches per
    channel, 9 as in Zeiler & Fergus; 0 for none), ``examples`` (how many
    of ``vismodels.example_images`` the top patches are chosen from, for
    models with small inputs; ImageNet models use the embedded photos), ``scale`` (1.0 in a notebook, 1.4 for
    a projector), ``threaded`` (``False`` renders synchronously: tests, scripts).

    The grid shows the strongest channels first (each map on its own scale:
    dark 0, yellow its maximum) or all channels in order, a page at a time.
    """

    def __init__(self, model="shapesnet", image=None, layer=None, *, class_names=None, channels: int = 16,
                 columns=None, top_k: int = 9, examples: int = 256, scale=None, lecture=None,
                 threaded: bool = True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        columns = (4 if self.lecture else 8) if columns is None else columns  # lecture: 4 × 4 large maps
        from cnnviz.features import default_layers
        from cnnviz.probe import get_layer, layer_names

        self._setup_model(model, class_names, scale)
        self.page_size, self.columns, self.top_k, self.n_examples = int(channels), int(columns), int(top_k), examples
        self._maps = OrderedDict()  # photo key -> {layer: (C, H, W) CPU tensor}
        self._projections = OrderedDict()  # (photo, layer, channel) -> (projection uint8, unit, box)
        self._tops = {}  # layer -> TopActivations
        self._top_pictures = OrderedDict()  # (layer, channel) -> uint8 picture
        self._dataset = None
        self.timings = {}  # what the last renders took, in ms (bench/ and the report read it)
        self.shown = None  # (photo, layer, channels on screen) of the grid
        self.detail = None  # (photo, layer, channel, unit (row, col)) of the detail pane
        self.top_shown = None  # (layer, channel) of the top-9 picture
        self._grid = LatestOnly(self._render_grid, self._show_error, threaded=threaded)
        self._details = LatestOnly(self._render_detail, self._show_error, threaded=threaded)
        self._top = LatestOnly(self._render_top, self._top_error, threaded=threaded)
        px, g = self.px, (lambda cb: guarded(cb, self._show_error))

        self.message = widgets.HTML()
        layers = list(default_layers(self.model))
        start_layer, layer_error = layers[0], None
        if layer is not None:
            try:
                get_layer(self.model, layer)
                if layer not in layers:
                    layers.append(layer)
                    layers.sort(key=layer_names(self.model).index)
                start_layer = layer
            except ValueError as err:  # LayerNotFound: said on screen, the default layer is shown
                layer_error = err
        start = self._setup_photos(image)
        self.layer = widgets.Dropdown(options=layers, value=start_layer, description="layer",
                                      layout=widgets.Layout(width=px(260)))
        self.order = widgets.ToggleButtons(options=[("strongest first", "strongest"), ("by number", "number")],
                                           value="strongest", style={"button_width": px(130)})
        self.page = widgets.IntSlider(value=0, min=0, max=0, description="page", continuous_update=False,
                                      layout=widgets.Layout(width=px(300)))
        self.channel = widgets.BoundedIntText(value=0, min=0, max=0, description="channel",
                                              style={"description_width": "initial"},
                                              layout=widgets.Layout(width=px(190)))
        self.channel.add_class("cnnviz-cell")
        self.photo_view = widgets.Image(format="png", layout=widgets.Layout(width=px(160), height=px(160)))
        self.info = widgets.HTML()
        # The grid is ONE HTML widget of data-URI images: measured in JupyterLab (click → pixels), 16 maps
        # take ~45 ms and 64 ~75 ms this way, against ~105 ms and ~300 ms for one ipywidgets.Image per map
        # (one message per image). Maps are picked with the buttons under the grid, in the grid's order.
        self._cell = round(640 / self.columns * scale) - 6
        self._gap = 6
        if self.lecture:  # the maps as large as the screen allows, their numbers written over them
            self._cell, self._gap = round(100 * scale), 4
        self.grid = widgets.HTML(layout=widgets.Layout(width=f"{self.columns * (self._cell + self._gap)}px"))
        self.pick = widgets.ToggleButtons(options=[], style={"button_width": f"{self._cell}px"},
                                          tooltips=[], layout=widgets.Layout(
                                              width=f"{self.columns * (self._cell + 6) + 10}px"))
        self.pick.add_class("cnnviz-pick")
        self._uris = OrderedDict()  # (photo, layer, channel) -> data URI of the map
        big = px(240)
        self.map_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.projection_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.field_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.detail_info = widgets.HTML()
        self.top_info = widgets.HTML()
        self.top_view = widgets.Image(format="png", layout=widgets.Layout(width=px(780)))
        map_box, _ = image_box("the map (its own scale)", self.map_view, big)
        proj_box, _ = image_box("deconvnet projection of its strongest unit (grey = 0)", self.projection_view, big)
        field_box, _ = image_box("that unit's receptive field", self.field_view, big)

        for control, callback in ((self.layer, self._on_layer), (self.order, self._on_order),
                                  (self.page, self._on_page), (self.channel, self._on_channel),
                                  (self.pick, self._on_channel)):
            control.observe(g(callback), names=["value"])

        title = widgets.HTML('<span class="cnnviz-title">Feature maps: what each channel of a layer finds in the '
                             'photo</span>')
        self.add_class("cnnviz-fm")
        if self.lecture:  # the hall looks at the maps; the instructor steps through the layers
            title.value = '<span class="cnnviz-title">Feature maps: what each channel finds</span>'
            self.grid.layout.max_width = "100%"
            self.layer.description, self.layer.layout.width = "", px(170)
            self.photo.description, self.photo.layout.width = "", px(170)
            self.photo_view.layout = widgets.Layout(width=px(120), height=px(120))
            prev, nxt = step_buttons(self.step, self._show_error, what="layer")
            self.children = lecture_frame(
                self, "cnnviz-fm", scale, title=title, picture=self.grid,
                primary=[self.layer, widgets.HBox([prev, nxt]), self.photo],
                side=[self.photo_view, self.message],
                below=self._style("cnnviz-fm") + [
                    widgets.HBox([self.upload, self.order, self.page, self.channel],
                                 layout=widgets.Layout(flex_flow="row wrap", align_items="center")),
                    self.note, self.info,
                    widgets.HTML('<span class="cnnviz-caption">choose a map (same order as above):</span>'),
                    self.pick, self.detail_info,
                    widgets.HBox([map_box, proj_box, field_box],
                                 layout=widgets.Layout(grid_gap=px(16), flex_flow="row wrap")),
                    self.top_info, self.top_view],
                side_width=240, picture_basis=4 * (self._cell + self._gap), picture_grows=False,
                css="& .cnnviz-fm-cell { position: relative; } "
                    "& .cnnviz-fm-cell img { display: block; }"
                    "& .cnnviz-fm-cell .cnnviz-caption { position: absolute; left: 0; top: 0; "
                    "padding: 0 6px; background: rgba(255, 255, 255, 0.85); }")
        else:
            self.children = self._style("cnnviz-fm") + [
                title,
                widgets.HBox([self.photo, self.upload, self.layer], layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox([self.order, self.page, self.channel], layout=widgets.Layout(flex_flow="row wrap",
                                                                                          align_items="center")),
                self.message, self.note, self.info,
                widgets.HBox([self.photo_view, widgets.VBox([self.grid, widgets.HTML(
                    '<span class="cnnviz-caption">choose a map (same order as above):</span>'), self.pick])],
                    layout=widgets.Layout(grid_gap=px(12))),
                self.detail_info,
                widgets.HBox([map_box, proj_box, field_box],
                             layout=widgets.Layout(grid_gap=px(16), flex_flow="row wrap")),
                self.top_info, self.top_view]
        self._photo_key_now = None
        self._selected = None  # (layer, channel) chosen
        self._start_photo(start)
        if layer_error is not None:
            self._show_error(layer_error, source="layer")

    # ------------------------------------------------------------------ public API
    def step(self, delta: int = 1):
        """Show the layer ``delta`` places deeper in the menu (shallower where negative), stopping at the ends."""
        layers = list(self.layer.options)
        k = min(max(layers.index(self.layer.value) + int(delta), 0), len(layers) - 1)
        self.layer.value = layers[k]

    def set(self, image=None, layer=None, channel=None, order=None, page=None):
        """Change several settings at once: a photo (as ``image=`` of the constructor), a layer, a
        channel (shown in the detail pane), ``order`` ("strongest" or "number"), a page. A wrong layer
        or channel is explained in the message line; nothing is raised."""
        with self._quietly():
            if order is not None:
                self.order.value = order
            if page is not None:
                self.page.value = min(max(int(page), 0), self.page.max)
        if layer is not None:
            if layer not in self.layer.options:
                from cnnviz.probe import get_layer
                try:
                    get_layer(self.model, layer)
                except ValueError as err:
                    self._show_error(err, source="layer")
                    return
                with self._quietly():
                    self.layer.options = list(self.layer.options) + [layer]
            with self._quietly():
                self.layer.value = layer
            self._clear_message("layer")
        if image is not None:
            with self._quietly():
                self.set_image(image)
        if image is not None or layer is not None or channel is not None or order is not None or page is not None:
            self._request_grid(channel=channel)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the grid, the detail pane and the top-9 are rendered (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        ok = True
        for _ in range(3):  # a render may post to the next renderer
            for r in (self._grid, self._details, self._top):
                ok = r.wait(max(0.0, deadline - time.monotonic())) and ok
        return ok

    @property
    def maps(self):
        """The feature maps of the photo on screen: {layer: (C, H, W) CPU tensor}."""
        return self._maps.get(self._photo_key_now)

    # ------------------------------------------------------------------ callbacks
    def _on_new_photo(self, key):
        self._photo_key_now = key
        if not self._quiet:  # set() asks for one render after all its changes
            self._request_grid()

    def _on_layer(self, change):
        if self._quiet:
            return
        self._clear_message("layer")
        with self._quietly():
            self.page.value = 0
        self._request_grid()  # the new layer's strongest channel is chosen

    def _on_order(self, change):
        if not self._quiet:
            with self._quietly():
                self.page.value = 0
            self._request_grid()

    def _on_page(self, change):
        if not self._quiet:
            self._request_grid()

    def _on_channel(self, change):
        if not self._quiet and change["new"] is not None:
            self._request_grid(channel=int(change["new"]))

    # ------------------------------------------------------------------ rendering
    def _request_grid(self, channel=None):
        """Render the grid; ``channel``: choose it (its page is shown), else keep the chosen channel on the
        same layer, or the layer's strongest."""
        self._grid.request((self._photo_key_now, self.layer.value, self.order.value, self.page.value, channel))

    def _maps_for(self, key):
        """Every listed layer's maps for photo ``key``: one forward pass, cached."""
        with self._lock:
            return self._maps_locked(key)

    def _maps_locked(self, key):
        from cnnviz.features import feature_maps

        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        x = self._prepared(key).x
        maps = {n: t.detach().float().cpu() for n, t in feature_maps(self.model, x, list(self.layer.options)).items()}
        self._maps[key] = maps
        while len(self._maps) > 8:
            self._maps.popitem(last=False)
        return maps

    def _render_grid(self, req):
        from cnnviz.probe import check_channel

        key, layer, order, page, wanted = req
        t0 = time.perf_counter()
        maps = self._maps_for(key)
        if layer not in maps:  # a layer added after this photo's pass
            self._maps.pop(key, None)
            maps = self._maps_for(key)
        t1 = time.perf_counter()
        m = maps[layer]  # (C, H, W)
        n_channels = m.shape[0]
        order_all = strongest(m, n_channels) if order == "strongest" else np.arange(n_channels)
        pages = max(1, -(-n_channels // self.page_size))
        channel = None
        if wanted is not None:
            try:
                channel = check_channel(wanted, n_channels, layer)
            except ValueError as err:
                self._show_error(err, source="channel")
                wanted = None
            else:
                self._clear_message("channel")
                page = int(np.nonzero(order_all == channel)[0][0]) // self.page_size
        page = min(max(int(page), 0), pages - 1)
        if channel is None:
            previous = self._selected
            keep = previous is not None and previous[0] == layer and previous[1] < n_channels
            channel = previous[1] if keep else int(order_all[0])
        self._selected = (layer, channel)
        on_page = order_all[page * self.page_size:(page + 1) * self.page_size]
        self.grid.value = self._grid_html(key, layer, m, on_page, channel)
        with self._quietly():
            self.pick.options = [(f"#{int(c)}", int(c)) for c in on_page]
            self.pick.tooltips = [f"channel {int(c)}: max {float(m[c].max()):.3g}" for c in on_page]
            self.pick.value = channel if channel in [int(c) for c in on_page] else None
        prep = self._prepared(key)
        if self.shown is None or self.shown[0] != key:
            self.photo_view.value = _png(prep.display, self._side(160))
        with self._quietly():
            self.page.max = pages - 1
            self.page.value = page
            self.page.layout.display = None if pages > 1 else "none"
            self.channel.max = n_channels - 1
            self.channel.value = channel
        self.shown = (key, layer, [int(c) for c in on_page])
        h, w = m.shape[1:]
        zero = float((m == 0).float().mean())
        first = page * self.page_size
        self.info.value = info_html(
            f"<b>{layer}</b>: {n_channels} maps of {h}×{w} ({zero:.0%} of the values are 0); showing "
            + ("the strongest" if order == "strongest" else "channels")
            + f" {first + 1}–{first + len(on_page)}" + (f" (page {page + 1} of {pages})" if pages > 1 else "")
            + ". Each map on its own scale: dark = 0, yellow = its maximum.")
        self._clear_message("other")
        self.timings["grid_ms"] = (time.perf_counter() - t0) * 1000
        self.timings["forward_ms"] = (t1 - t0) * 1000
        if self.detail is None or self.detail[:3] != (key, layer, channel):
            self._details.request((key, layer, channel))

    def _uri(self, key, layer, m, c):
        """The data URI of map ``c`` (native size: the page enlarges it without blurring), cached."""
        k = (key, layer, int(c))
        uri = self._uris.get(k)
        if uri is None:
            import base64
            uri = "data:image/png;base64," + base64.b64encode(png_bytes(colourise(m[c].numpy()))).decode("ascii")
            self._uris[k] = uri
            while len(self._uris) > 4096:
                self._uris.popitem(last=False)
        return uri

    def _grid_html(self, key, layer, m, on_page, chosen) -> str:
        """The page of maps as one HTML grid: each map enlarged without blurring, its channel number under it,
        the chosen one outlined."""
        cell = self._cell
        items = []
        for c in on_page:
            c = int(c)
            ring = "outline:4px solid #f0a000;" if c == chosen else ""
            items.append(f'<div class="cnnviz-fm-cell" style="text-align:center">'
                         f'<img src="{self._uri(key, layer, m, c)}" width="{cell}" '
                         f'height="{cell}" title="channel {c}: max {float(m[c].max()):.3g}" '
                         f'style="image-rendering:pixelated;{ring}"><div class="cnnviz-caption">#{c}</div></div>')
        return (f'<div style="display:grid;grid-template-columns:repeat({self.columns}, {cell}px);gap:{self._gap}px">'
                + "".join(items) + "</div>")

    def _render_detail(self, req):
        from cnnviz.deconvnet import deconvnet, receptive_box, strongest_unit

        key, layer, channel = req
        t0 = time.perf_counter()
        m = self._maps_for(key)[layer]
        unit = tuple(int(v) for v in strongest_unit(m, channel))
        cache_key = (key, layer, channel)
        if cache_key in self._projections:
            proj, box = self._projections[cache_key]
        else:
            prep = self._prepared(key)
            with self._lock:
                p = deconvnet(self.model, prep.x, layer, channel, position=unit)
                side = prep.x.shape[-1]
                box = receptive_box(self.model, layer, unit, (side, side))
            proj = projection_to_uint8(p)
            self._projections[cache_key] = (proj, box)
            while len(self._projections) > 64:
                self._projections.popitem(last=False)
        prep = self._prepared(key)
        self.map_view.value = _png(colourise(m[channel].numpy()), self._side(240))
        self.projection_view.value = _png(proj, self._side(240))
        self.field_view.value = _png(box_on(prep.display, box), self._side(240))
        value = float(m[channel][unit])
        silent = " The unit is silent (0) for this photo, so there is nothing to project." if value <= 0 else ""
        self.detail_info.value = info_html(
            f"<b>channel {channel} of {layer}</b>: its strongest unit is at row {unit[0]}, column {unit[1]} of the "
            f"{m.shape[1]}×{m.shape[2]} map (activation {value:.3g}); it sees the "
            f"{box[2] - box[0]}×{box[3] - box[1]} px window outlined on the right.{silent}")
        self.detail = (key, layer, channel, unit)
        self.timings["detail_ms"] = (time.perf_counter() - t0) * 1000
        if self.top_k and self.top_shown != (layer, channel):
            if layer not in self._tops:
                n = len(self._dataset) if self._dataset is not None else self.n_examples
                self.top_info.value = info_html(f"⏳ Scanning {n} example images for the strongest units of "
                                                f"<b>{layer}</b> (once per layer)…")
            self._top.request((layer, channel))

    def _dataset_tensor(self):
        """The images the top-9 are chosen from, prepared for the model: (N, 3, S, S) normalised.
        Small models: ``vismodels.example_images``; large ones (ImageNet): the embedded photos."""
        if self._dataset is None:
            import torch.nn.functional as F

            from cnnviz.data import image_names
            from cnnviz.probe import preprocessing, prepare

            pre = preprocessing(self.model)
            if _small_input(self.model):
                images, _ = _example_images(self.n_examples)
                x = images.float() / 255  # (N, 3, s, s)
                if x.shape[-1] != pre.size:
                    x = F.interpolate(x, size=(pre.size, pre.size), mode="bilinear", align_corners=False,
                                      antialias=True).clamp(0, 1)
                mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
                std = torch.tensor(pre.std).view(1, 3, 1, 1)
                self._dataset = (x - mean) / std
            else:
                self._dataset = torch.cat([prepare(n, self.model).x.cpu() for n in image_names()])
        return self._dataset

    def _render_top(self, req):
        from cnnviz.deconvnet import top_activations
        from cnnviz.figures.visualising import top_picture

        layer, channel = req
        t0 = time.perf_counter()
        data = self._dataset_tensor()
        if layer not in self._tops:
            with self._lock:
                self._tops[layer] = top_activations(self.model, data, layer, k=self.top_k, progress=False,
                                                    cache=True)
            self.timings["scan_ms"] = (time.perf_counter() - t0) * 1000
        tops = self._tops[layer]
        if (layer, channel) not in self._top_pictures:
            with self._lock:
                pats = tops.patches(self.model, data, channel)
                projs = tops.projections(self.model, data, channel)
            self._top_pictures[layer, channel] = top_picture(pats, projs)
            while len(self._top_pictures) > 64:
                self._top_pictures.popitem(last=False)
        self.top_view.value = _png(self._top_pictures[layer, channel], self._side(780))
        values = tops.values[channel]
        self.top_info.value = info_html(
            f"<b>The top {len(values)} of channel {channel} ({layer})</b> over {len(data)} example images, one unit "
            f"per image (Zeiler &amp; Fergus fig. 2): deconvnet projections (left) and the image patches their "
            f"units see (right); strongest activation {float(values[0]):.3g}.")
        self.top_shown = (layer, channel)
        self.timings["top_ms"] = (time.perf_counter() - t0) * 1000

    def _top_error(self, err):
        self.top_info.value = error_html(str(err) if isinstance(err, ValueError) else
                                         f"The top patches could not be computed ({type(err).__name__}: {err}).")
        self.last_error = err
