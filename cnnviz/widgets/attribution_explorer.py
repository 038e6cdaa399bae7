"""AttributionExplorer: which pixels does each attribution method credit for a class? Side by side.

A thin view over ``cnnviz.attribution.attribute`` (saliency, integrated
gradients, guided backpropagation, deconvnet, Grad-CAM, guided Grad-CAM, all
through captum) and ``cnnviz.figures.visualising.overlay`` (the same pictures
as the book's ``attribution_figure``), with core ipywidgets only. Maps are
cached per (photo, class, method): switching a method off and on again, or
back to an earlier photo, costs nothing; each new map appears as soon as it is
computed, and a newer request abandons the older one between methods.
"""
import time
import warnings
from collections import OrderedDict

import ipywidgets as widgets

from cnnviz.figures.visualising import overlay
from cnnviz.widgets._base import LECTURE_SCALE, guarded, info_html, lecture_frame, lecture_settings
from cnnviz.widgets._photo_view import _PhotoView, _png, class_name, image_box, lecture_panel, lecture_panel_css

__all__ = ["AttributionExplorer", "DEFAULT_METHODS"]

#: The methods shown at first (all of ``cnnviz.attribution.METHODS`` can be switched on).
DEFAULT_METHODS = ("saliency", "integrated_gradients", "guided_backprop", "grad_cam")
_VIEW = 240  # side of each picture at scale 1, in px


class AttributionExplorer(_PhotoView):
    """Choose a photo, a class and the methods; see each method's map over the photo, side by side.

    Parameters: ``model`` ("shapesnet", the default; "alexnet", "vgg16",
    "resnet18"; a ``VisionModel``; or any ``nn.Module`` with
    ``class_names=``), ``image`` (a menu entry, an example index, an
    embedded photo's name, a path, bytes or an array), ``methods`` (names
    from ``cnnviz.attribution.METHODS``), ``target`` (a class index; default
    the top class), ``scale`` (1.0 in a notebook, 1.4 for a projector),
    ``threaded`` (``False`` computes synchronously: tests, scripts).

    Each map is painted over the grey photo on its own scale (its 99.5th
    percentile is the hottest colour): compare where, not how much.
    """

    def __init__(self, model="shapesnet", image=None, *, methods=DEFAULT_METHODS, target=None, class_names=None,
                 scale=None, lecture=None, threaded: bool = True):
        super().__init__()
        from cnnviz.attribution import METHODS

        scale, self.lecture = lecture_settings(scale, lecture)
        self._setup_model(model, class_names, scale)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Unknown attribution method(s) {', '.join(map(repr, unknown))}; choose from "
                             f"{', '.join(METHODS)}.")
        self._cache = OrderedDict()  # (photo, class, method) -> (S, S) map as a NumPy array
        self.maps = {}  # method -> (S, S) NumPy map on screen
        self.shown = None  # (photo, class, methods) fully on screen
        start = self._setup_explainer(image, threaded)
        px, g = self.px, (lambda cb: guarded(cb, self._show_error))
        self.methods = {m: widgets.ToggleButton(value=m in methods, description=str(label).split(" (")[0],
                                                tooltip=f"{label}: {m}", layout=widgets.Layout(width="auto"))
                        for m, label in METHODS.items()}
        self.target = self._target_menu()
        self._wanted_target = target
        self.info = widgets.HTML()
        big = px(_VIEW)
        self.photo_view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
        # the lecture layout: five panels in two rows of three beside the controls, one-line captions
        panel = (lambda label, image: (lecture_panel(label, image, "cnnviz-at-pic"), None)) if self.lecture else (
            lambda label, image: image_box(label, image, big))
        photo_box, _ = panel("photo", self.photo_view)
        self.views, self.panels = {}, {}
        for m, label in METHODS.items():
            view = widgets.Image(format="png", layout=widgets.Layout(width=big, height=big))
            box, caption = panel(str(label).split(" (")[0] if self.lecture else str(label), view)
            self.views[m], self.panels[m] = view, (box, caption)
        self.gallery = widgets.HBox([photo_box], layout=widgets.Layout(flex_flow="row wrap", grid_gap=px(12)))
        self._photo_box = photo_box
        for b in self.methods.values():
            b.observe(g(self._on_change), names=["value"])
        self.target.observe(g(self._on_change), names=["value"])
        title = widgets.HTML('<span class="cnnviz-title">Attribution: which pixels does each method credit for '
                             'the class?</span>')
        self.add_class("cnnviz-at")
        if self.lecture:  # the hall compares the maps; the instructor picks the photo and the class
            k = scale / LECTURE_SCALE
            title.value = '<span class="cnnviz-title">Attribution: which pixels get the credit?</span>'
            self.gallery.layout = widgets.Layout(flex_flow="row wrap", grid_gap="10px 12px",
                                                 max_width=f"{round(3 * 250 * k + 24)}px")
            self.photo.description, self.photo.layout.width = "", px(170)
            self.target.description, self.target.layout.width = "", px(170)
            css, narrow = lecture_panel_css("cnnviz-at-pic", round(250 * k), round(232 * k))
            self.children = lecture_frame(
                self, "cnnviz-at", scale, title=title, picture=self.gallery,
                primary=[self.photo, self.target], side=[self.message, self.info],
                below=self._style("cnnviz-at") + [
                    widgets.HBox([self.upload, *self.methods.values()], layout=widgets.Layout(flex_flow="row wrap")),
                    self.note],
                side_width=250, picture_basis=round(3 * 250 + 24), picture_grows=False, css=css,
                # narrow: the class menu says the class and its probability; the title and the info line go
                narrow_css=narrow + "& .cnnviz-lecture-side .cnnviz-title, & .cnnviz-at-info { display: none; }"
                                    "& .cnnviz-at-gallery { max-width: 740px !important; }")
            self.gallery.add_class("cnnviz-at-gallery")
            self.info.add_class("cnnviz-at-info")
        else:
            self.children = self._style("cnnviz-at") + [
                title,
                widgets.HBox([self.photo, self.upload, self.target], layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox(list(self.methods.values()), layout=widgets.Layout(flex_flow="row wrap")),
                self.message, self.note, self.info, self.gallery]
        self._photo_key_now = None
        self._start_photo(start)

    # ------------------------------------------------------------------ public API
    @property
    def chosen(self):
        """The methods switched on, in ``METHODS`` order."""
        return [m for m, b in self.methods.items() if b.value]

    def set(self, image=None, methods=None, target="keep"):
        """Change several settings at once: a photo, the methods shown (names), the class (an index, or
        None for the top class)."""
        if methods is not None:
            unknown = [m for m in methods if m not in self.methods]
            if unknown:
                self._show_error(ValueError(f"Unknown attribution method(s) {', '.join(map(repr, unknown))}; "
                                            f"choose from {', '.join(self.methods)}."), source="methods")
                return
            self._clear_message("methods")
            with self._quietly():
                for m, b in self.methods.items():
                    b.value = m in methods
        self._apply(image, target)

    # ------------------------------------------------------------------ callbacks
    def _request(self):
        self._generation += 1
        self._renderer.request((self._generation, self._photo_key_now, tuple(self.chosen), self._wanted_target))

    # ------------------------------------------------------------------ rendering
    def _render(self, req):
        from cnnviz.attribution import attribute

        generation, key, methods, wanted = req
        if generation != self._generation:
            return
        t0 = time.perf_counter()
        prep = self._prepared(key)
        probs, target = self._resolve_target(key, wanted)
        names = self.vision.class_names
        self.photo_view.value = _png(prep.display, self._side(_VIEW))
        self.gallery.children = [self._photo_box] + [self.panels[m][0] for m in methods]
        explaining = f"Explaining <b>{class_name(names, target)}</b> (p = {float(probs[target]):.3f}); "
        self.info.value = info_html(explaining + (f"⏳ computing {len(methods)} map(s)…" if methods
                                                  else "switch a method on above."))
        shown = {}
        for m in methods:
            if generation != self._generation:
                return  # a newer request: it redraws everything it needs
            ck = (key, target, m)
            if ck not in self._cache:
                t1 = time.perf_counter()
                with self._lock, warnings.catch_warnings():
                    # captum says it hooks the ReLUs (and removes them): a note for developers, not for a lecture
                    warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
                    a = attribute(self.model, prep.x, m, target=target)
                self._cache[ck] = a.map.detach().float().cpu().numpy()
                while len(self._cache) > 64:
                    self._cache.popitem(last=False)
                self.timings[f"{m}_ms"] = (time.perf_counter() - t1) * 1000
            heat = self._cache[ck]
            self.views[m].value = _png(overlay(prep.display, heat), self._side(_VIEW))
            shown[m] = heat
        self.maps = shown
        self.shown = (key, target, methods)
        if methods:
            self.info.value = info_html(explaining + f"{len(methods)} map(s), done in "
                                        f"{time.perf_counter() - t0:.2f} s.")
        self._clear_message("other")
        self.timings["render_ms"] = (time.perf_counter() - t0) * 1000

    def _error_suffix(self, err, source):
        if self.shown is None or source in ("photo", "target", "methods"):
            return ""
        return " The maps on screen are from the last computation that worked."
