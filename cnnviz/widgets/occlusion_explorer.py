"""OcclusionExplorer: slide a grey square over a photo and watch the classifier's confidence.

A thin view over ``cnnviz.occlusion.occlusion`` (Zeiler & Fergus 2014,
§4.2, fig. 7), with core ipywidgets only. The maps fill in as the batches of
occluded copies come back (``on_batch``); a new request (another photo,
size, stride or class) abandons the computation under way at its next
batch, so the screen always follows the newest settings.
"""
import time

import ipywidgets as widgets
import numpy as np

from cnnviz.figures.visualising import CLASS_COLOURS, _class_colour, colourise
from cnnviz.widgets._base import LECTURE_SCALE, guarded, info_html, lecture_frame, lecture_settings
from cnnviz.widgets._photo_view import _PhotoView, _png, class_name, image_box, lecture_panel, lecture_panel_css

__all__ = ["OcclusionExplorer", "map_canvas"]

_UNDONE = 225  # light grey where the map is not computed yet
_VIEW = 260  # side of each picture at scale 1, in px


class _Superseded(Exception):
    """A newer request arrived: the computation under way stops at its next batch."""


def _hex(colour: str):
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def map_canvas(colours, rows, cols, patch: int, stride: int, size) -> np.ndarray:
    """Paint a map of occlusion positions on a picture of the input's size: uint8 (H, W, 3).

    ``colours`` (Hp, Wp, 3): one colour per position; position (i, j) is the
    patch whose top-left pixel is ``(rows[i], cols[j])``; each pixel takes the
    colour of the nearest patch centre within half a stride (white elsewhere:
    the border a patch centre never reaches), as the static figure draws it.
    """
    h, w = (size, size) if np.isscalar(size) else size
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)

    def nearest(centres, n):
        px = np.arange(n) + 0.5  # pixel centres
        i = np.clip(np.searchsorted(centres, px), 1, len(centres) - 1) if len(centres) > 1 else np.zeros(n, int)
        if len(centres) > 1:
            i = np.where(np.abs(px - centres[i - 1]) <= np.abs(px - centres[i]), i - 1, i)
        ok = np.abs(px - centres[i]) <= max(stride, 1) / 2 + 1e-9
        return i, ok

    iy, oky = nearest(rows + patch / 2, h)
    ix, okx = nearest(cols + patch / 2, w)
    out = np.asarray(colours)[np.ix_(iy, ix)]  # (H, W, 3)
    out[~(oky[:, None] & okx[None, :])] = 255
    return out.astype(np.uint8)


def _square(photo, top, left, patch):
    img = np.array(photo, copy=True)
    img[max(top, 0):top + patch, max(left, 0):left + patch] = 128
    edge = max(1, round(img.shape[0] / 100))
    t, l, b, r = max(top, 0), max(left, 0), min(top + patch, img.shape[0]), min(left + patch, img.shape[1])
    img[t:t + edge, l:r] = img[b - edge:b, l:r] = (214, 39, 40)
    img[t:b, l:l + edge] = img[t:b, r - edge:r] = (214, 39, 40)
    return img


class OcclusionExplorer(_PhotoView):
    """Choose a photo, the grey square's size and stride, and a class; see where covering the photo
    lowers the probability of that class, and which class wins instead.

    Parameters: ``model`` ("shapesnet", the default; "alexnet", "vgg16",
    "resnet18"; a ``VisionModel``; or any ``nn.Module`` with
    ``class_names=``), ``image`` (a menu entry, an example index, an
    embedded photo's name, a path, bytes or an array), ``patch`` and
    ``stride`` in pixels of the model's input (default a quarter of the
    side, and a quarter of the patch), ``target`` (a class index; default
    the top class), ``batch_size`` (occluded copies per forward pass),
    ``min_interval`` (seconds between two pictures of a map filling in),
    ``scale`` (1.0 in a notebook, 1.4 for a projector), ``threaded``
    (``False`` computes synchronously: tests, scripts).
    """

    def __init__(self, model="shapesnet", image=None, *, class_names=None, patch=None, stride=None, target=None,
                 batch_size: int = 64, min_interval: float = 0.08, scale=None, lecture=None, threaded: bool = True):
        super().__init__()
        from cnnviz.probe import preprocessing

        scale, self.lecture = lecture_settings(scale, lecture)
        self._setup_model(model, class_names, scale)
        side = preprocessing(self.model).size
        self.side, self.batch_size, self.min_interval = side, int(batch_size), float(min_interval)
        patch = max(2, side // 4) if patch is None else int(patch)
        stride = max(1, patch // 4) if stride is None else int(stride)
        bad = []  # said in the message line once the widget is on screen, never raised at a lecture hall
        for name, v, hi in (("square", patch, side), ("stride", stride, max(1, side // 2))):
            if not 1 <= v <= hi:
                bad.append(f"The {name} must be between 1 and {hi} pixels (the model's input is {side}×{side}), "
                           f"not {v}; using {min(max(v, 1), hi)}.")
        patch, stride = min(max(patch, 1), side), min(max(stride, 1), max(1, side // 2))
        self.result = None  # the last complete OcclusionMap
        self.partial = None  # the newest (maybe partial) OcclusionMap on screen
        self.batches = 0  # batches drawn for the current request
        self.shown = None  # (photo, patch, stride, target) of the complete map on screen
        start = self._setup_explainer(image, threaded)
        px, g = self.px, (lambda cb: guarded(cb, self._show_error))
        self.patch = widgets.IntSlider(value=patch, min=1, max=side, description="square (px)",
                                       continuous_update=False, style={"description_width": "initial"},
                                       layout=widgets.Layout(width=px(340)))
        self.stride = widgets.IntSlider(value=stride, min=1, max=max(1, side // 2), description="stride (px)",
                                        continuous_update=False, style={"description_width": "initial"},
                                        layout=widgets.Layout(width=px(340)))
        self.target = self._target_menu()
        self._wanted_target = target
        self.info = widgets.HTML()
        big = px(_VIEW)
        self.photo_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.prob_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.class_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        self.legend = widgets.HTML()
        photo_box, _ = image_box("the grey square where it hurts most", self.photo_view, big)
        prob_box, self.prob_caption = image_box("p(class) with the square centred here", self.prob_view, big)
        class_box, _ = image_box("most probable class", self.class_view, big)
        for control in (self.patch, self.stride, self.target):
            control.observe(g(self._on_change), names=["value"])
        title = widgets.HTML('<span class="cnnviz-title">Occlusion: is the classifier looking at the object? '
                             '(Zeiler &amp; Fergus 2014)</span>')
        self.add_class("cnnviz-oc")
        if self.lecture:  # the hall watches the map fill in beside the photo; the instructor sizes the square
            k = scale / LECTURE_SCALE
            title.value = '<span class="cnnviz-title">Occlusion: is the classifier looking at the object?</span>'
            photo_box = lecture_panel("where the square hurts most", self.photo_view, "cnnviz-oc-pic")
            prob_box = lecture_panel("p(class), square centred here", self.prob_view, "cnnviz-oc-pic")
            self.prob_caption = prob_box.children[0]
            pair = widgets.HBox([photo_box, prob_box], layout=widgets.Layout(grid_gap="12px"))
            for control, words in ((self.patch, "square"), (self.stride, "stride")):
                control.description, control.layout.width = words, px(190)
            self.photo.description, self.photo.layout.width = "", px(170)
            self.target.description, self.target.layout.width = "", px(170)
            css, narrow = lecture_panel_css("cnnviz-oc-pic", round(395 * k), round(410 * k))
            self.children = lecture_frame(
                self, "cnnviz-oc", scale, title=title, picture=pair,
                primary=[self.photo, self.target, self.patch, self.stride], side=[self.message, self.info],
                below=self._style("cnnviz-oc") + [self.upload, self.note, widgets.VBox([class_box, self.legend])],
                side_width=260, picture_basis=round(2 * 395 + 12), picture_grows=False, css=css,
                narrow_css=narrow + "& .cnnviz-oc-info { display: none; }")  # narrow: the pictures first
            self.info.add_class("cnnviz-oc-info")
        else:
            self.children = self._style("cnnviz-oc") + [
                title,
                widgets.HBox([self.photo, self.upload, self.target], layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox([self.patch, self.stride], layout=widgets.Layout(flex_flow="row wrap")),
                self.message, self.note, self.info,
                widgets.HBox([photo_box, prob_box, widgets.VBox([class_box, self.legend])],
                             layout=widgets.Layout(grid_gap=px(16), flex_flow="row wrap"))]
        self._photo_key_now = None
        self._start_photo(start)
        if bad:
            self._show_error(ValueError(" ".join(bad)), source="settings")

    # ------------------------------------------------------------------ public API
    def set(self, image=None, patch=None, stride=None, target="keep"):
        """Change several settings at once (one computation): a photo, the square's size and stride in
        pixels, the class (an index, or None for the top class)."""
        with self._quietly():
            if patch is not None:
                self.patch.value = int(patch)
            if stride is not None:
                self.stride.value = int(stride)
        self._apply(image, target)

    # ------------------------------------------------------------------ callbacks
    def _request(self):
        self._generation += 1
        self._renderer.request((self._generation, self._photo_key_now, self.patch.value, self.stride.value,
                                self._wanted_target))

    # ------------------------------------------------------------------ rendering
    def _render(self, req):
        from cnnviz.occlusion import occlusion

        generation, key, patch, stride, wanted = req
        if generation != self._generation:
            return  # a newer request is queued
        t0 = time.perf_counter()
        prep = self._prepared(key)
        probs, target = self._resolve_target(key, wanted)
        names = self.vision.class_names
        self.prob_caption.value = (
            f'<span class="cnnviz-caption">p(<b>{class_name(names, target)}</b>), square centred here</span>'
            if self.lecture else f'<span class="cnnviz-caption">p(<b>{class_name(names, target)}</b>) with the '
                                 'square centred here (purple 0, yellow 1)</span>')
        self.batches = 0
        last_draw = [0.0]

        def on_batch(partial):
            if generation != self._generation:
                raise _Superseded()
            self.batches += 1
            now = time.perf_counter()
            if now - last_draw[0] >= self.min_interval:  # at most ~12 pictures a second (default) meanwhile
                last_draw[0] = now
                self._draw(prep, partial, names, t0, final=False)

        try:
            with self._lock:
                m = occlusion(self.model, prep.x, target=target, patch=patch, stride=stride,
                              batch_size=self.batch_size, on_batch=on_batch)
        except _Superseded:
            return
        self._draw(prep, m, names, t0, final=True)
        self.result = m
        self.shown = (key, patch, stride, target)
        self._clear_message("other")
        self.timings["occlusion_ms"] = (time.perf_counter() - t0) * 1000

    def _draw(self, prep, m, names, t0, *, final):
        import torch

        prob = m.prob.detach().float().cpu().numpy()  # (Hp, Wp)
        done = m.done.detach().cpu().numpy() if m.done is not None else np.ones(prob.shape, bool)
        top = m.top_class.detach().cpu().numpy()
        rows = np.asarray(m.rows.cpu() if isinstance(m.rows, torch.Tensor) else m.rows)
        cols = np.asarray(m.cols.cpu() if isinstance(m.cols, torch.Tensor) else m.cols)
        size = prep.display.shape[:2]
        heat = colourise(np.where(done, prob, 0.0), signed=False, vmax=1.0)
        heat[~done] = _UNDONE
        palette = np.array([_hex(c) for c in CLASS_COLOURS], np.uint8)
        classes = palette[np.clip(top, 0, None) % len(palette)]
        classes[~done] = _UNDONE
        self.prob_view.value = _png(map_canvas(heat, rows, cols, m.patch, m.stride, size), self._side(_VIEW))
        self.class_view.value = _png(map_canvas(classes, rows, cols, m.patch, m.stride, size), self._side(_VIEW))
        if done.any():
            masked = np.where(done, prob, np.inf)
            r, c = np.unravel_index(int(np.argmin(masked)), prob.shape)
            self.photo_view.value = _png(_square(prep.display, int(rows[r]), int(cols[c]), m.patch), self._side(_VIEW))
            low = f"lowest {prob[r, c]:.2f} with the square at row {int(rows[r])}, column {int(cols[c])}"
        else:
            self.photo_view.value = _png(prep.display, self._side(_VIEW))
            low = ""
        present = sorted(set(top[done].tolist()))
        self.legend.value = "".join(
            f'<div class="cnnviz-caption"><span style="display:inline-block;width:1em;height:1em;'
            f'background:{_class_colour(c)};vertical-align:middle;margin-right:6px"></span>'
            f'{class_name(names, c)}</div>' for c in present)
        n, total = int(done.sum()), done.size
        secs = time.perf_counter() - t0
        how = " by incremental inference" if getattr(m, "method", "full") == "incremental" else ""
        state = (f"done: {total} positions in {secs:.2f} s{how}" if final else
                 f"⏳ {n} of {total} positions ({secs:.1f} s)…")
        self.info.value = info_html(
            f"p(<b>{class_name(names, int(m.target))}</b>) = {float(m.base_prob):.3f} without the square; "
            + (low + "; " if low else "") + state
            + f" (square {m.patch} px, stride {m.stride} px: {len(rows)}×{len(cols)} positions).")
        self.partial = m

    def _error_suffix(self, err, source):
        if self.shown is None or source in ("photo", "target"):
            return ""
        return " The maps still show the last complete computation."
