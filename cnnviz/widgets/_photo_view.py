"""What the four visualisation widgets (FeatureMapExplorer, FilterGallery, OcclusionExplorer,
AttributionExplorer) share: turning ``model=`` into a ``VisionModel``, the photo menu and upload, one lock
per model (hooks from two threads must never meet), pictures as sharp PNGs, and the pixelated style.
"""
import functools
import hashlib
import threading
import weakref
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np
import torch

from cnnviz.figures.visualising import upscale
from cnnviz.imaging import png_bytes, to_rgb
from cnnviz.widgets._base import LatestOnly, View, guarded, info_html, scoped_style, upload_bytes, widget_style

__all__ = ["resolve_model", "model_lock", "class_name", "check_class", "box_on", "image_box", "TOP_CLASS"]

UPLOAD = "(uploaded)"
#: The class menu's value for "the photo's most probable class" (ipywidgets cannot select a None value).
TOP_CLASS = -1
_EXAMPLE = "example:"
_LOCKS = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- shared by the four widgets

def model_lock(model) -> threading.RLock:
    """One lock per model object: every computation on it holds the lock, so the scoped hooks of one
    widget's thread never catch another thread's forward pass (two widgets may share a model)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def resolve_model(model="shapesnet", class_names=None):
    """``model`` as a ``cnnviz.vismodels.VisionModel``: a name for ``vision_model`` ("shapesnet",
    "alexnet", "vgg16", "resnet18"), a ``VisionModel``, or any ``nn.Module`` (its ``class_names``
    attribute or ``class_names=`` names its outputs; otherwise "class 0", "class 1", …)."""
    import torch.nn as nn

    from cnnviz import vismodels

    if isinstance(model, str):
        vm = vismodels.vision_model(model)
    elif isinstance(model, vismodels.VisionModel):
        vm = model
    elif isinstance(model, nn.Module):
        names = class_names if class_names is not None else getattr(model, "class_names", None)
        vm = vismodels.VisionModel(model=model, name=type(model).__name__,
                                   class_names=tuple(names) if names is not None else None,
                                   description=f"your own model ({type(model).__name__})", source="given")
    else:
        raise ValueError(f"model must be a name (e.g. 'shapesnet'), a VisionModel or an nn.Module, not a "
                         f"{type(model).__name__}.")
    if class_names is not None and not isinstance(model, nn.Module):
        from dataclasses import replace
        vm = replace(vm, class_names=tuple(class_names))
    return vm


def class_name(names, c: int) -> str:
    return str(names[c]) if names is not None and 0 <= c < len(names) else f"class {c}"


def check_class(c, n: int) -> int:
    """``c`` as a class index of a model with ``n`` outputs, or a ValueError saying the range."""
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < n:
        raise ValueError(f"Class {c!r} does not exist: the model has {n} classes, numbered 0 to {n - 1}.")
    return int(c)


@functools.lru_cache(maxsize=4)
def _example_images(n: int):
    """``vismodels.example_images(n)``, generated once per process (a few seconds for hundreds)."""
    from cnnviz.vismodels import example_images
    return example_images(n)


def _small_input(model) -> bool:
    from cnnviz.probe import preprocessing
    return preprocessing(model).size <= 128


class _PhotoView(View):
    """A View with a model, a photo menu (example images and embedded photos) and an upload button.

    Subclasses call ``_setup_photos`` in their constructor and implement
    ``_on_new_photo`` (the prepared input changed).
    """

    _kept = "view"

    def _setup_model(self, model, class_names, scale):
        self.vision = resolve_model(model, class_names)
        self.model = self.vision.model
        self._lock = model_lock(self.model)
        self._scale = scale
        self._inputs = OrderedDict()  # photo key -> probe.Prepared (LRU)
        self._uploads = {}  # "upload:<hash>" -> bytes
        self._examples = None

    def px(self, v) -> str:
        return f"{round(v * self._scale)}px"

    def _side(self, v) -> int:
        """Pictures are enlarged (nearest neighbour) to about their size on screen, ``v`` px at scale 1: sharp
        without the page's help, and no larger than needed (PNG encoding is most of a redraw's time)."""
        return round(v * self._scale)

    def _example_data(self):
        """(uint8 images (N, 3, S, S), labels) of ``vismodels.example_images``, loaded once."""
        if self._examples is None:
            self._examples = _example_images(12)
        return self._examples

    def _photo_options(self, examples=12):
        from cnnviz.data import image_names
        opts = []
        if examples:
            images, labels = self._example_data()
            names = self.vision.class_names
            opts = [(f"{class_name(names, int(labels[i]))} (test image {i})", f"{_EXAMPLE}{i}")
                    for i in range(min(examples, len(images)))]
        photos = [(f"{n} (photo)", n) for n in image_names()]
        return opts + photos if _small_input(self.model) else photos + opts

    def _setup_explainer(self, image, threaded):
        """What the occlusion and attribution explorers start with: one renderer keeping only the newest
        request (numbered by ``_generation``), the message line, and the photo controls; returns the
        first photo's key."""
        self.timings = {}
        self._generation = 0
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        self.message = widgets.HTML()
        return self._setup_photos(image)

    def _setup_photos(self, image):
        options = self._photo_options()
        values = [v for _, v in options]
        start = self._photo_key(image, values)
        self.photo = widgets.Dropdown(options=options + ([(UPLOAD, start)] if start not in values else []),
                                      value=start, description="photo", layout=widgets.Layout(width=self.px(300)))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload",
                                         layout=widgets.Layout(width=self.px(130)))
        self.photo.observe(guarded(self._on_photo, self._show_error), names=["value"])
        self.upload.observe(guarded(self._on_upload, self._show_error), names=["value"])
        self.note = widgets.HTML()
        return start

    def _photo_key(self, image, values):
        """The menu value for ``image``: a menu entry, an example index, or a new upload-like key."""
        if image is None:
            return values[0]
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            return f"{_EXAMPLE}{int(image)}"
        if isinstance(image, str) and (image in values or image.startswith(_EXAMPLE)):
            return image
        if isinstance(image, (bytes, bytearray, memoryview)):
            raw = bytes(image)
        elif isinstance(image, str):
            from pathlib import Path
            p = Path(image)
            if not p.is_file():
                return image  # probe.prepare says that it is neither an embedded photo nor a file
            raw = p.read_bytes()
        else:
            arr = np.ascontiguousarray(to_rgb(np.asarray(image)))
            raw = png_bytes(arr)
        key = "upload:" + hashlib.sha1(raw).hexdigest()[:12]
        self._uploads[key] = raw
        return key

    def _prepared(self, key):
        """``probe.prepare`` of the photo ``key``, cached (a bad upload raises ImageError)."""
        with self._lock:  # renderers of several threads share the cache
            return self._prepared_locked(key)

    def _prepared_locked(self, key):
        from cnnviz.probe import prepare

        if key in self._inputs:
            self._inputs.move_to_end(key)
            return self._inputs[key]
        if key.startswith(_EXAMPLE):
            images, _ = self._example_data()
            i = int(key[len(_EXAMPLE):])
            if not 0 <= i < len(images):
                raise ValueError(f"There are {len(images)} example images, numbered 0 to {len(images) - 1}; "
                                 f"not {i}.")
            source = images[i].permute(1, 2, 0).numpy()
        elif key.startswith("upload:"):
            source = self._uploads[key]
        else:
            source = key
        p = prepare(source, self.model)
        self._inputs[key] = p
        while len(self._inputs) > 16:
            self._inputs.popitem(last=False)
        return p

    def _on_photo(self, change):
        if self._quiet or change["new"] is None:
            return
        self._select_photo(change["new"])

    def _on_upload(self, change):
        raw = upload_bytes(change["new"])
        if raw is not None:
            self.set_image(raw)

    def set_image(self, image):
        """Show another photo: a menu entry, an example index, an embedded photo's name, a path, bytes
        or a uint8 array. A file that is not an image keeps the current photo and says why."""
        key = self._photo_key(image, [v for _, v in self.photo.options])
        self._select_photo(key)

    def _start_photo(self, key):
        """Show the constructor's photo; one that cannot be read is explained and the menu's first is shown."""
        if not self._select_photo(key):
            err = self.last_error
            with self._quietly():
                self.photo.options = [o for o in self.photo.options if o[0] != UPLOAD]
            self._select_photo(self.photo.options[0][1])
            self._show_error(err, source="photo")

    def _select_photo(self, key) -> bool:
        try:
            p = self._prepared(key)
        except ValueError as err:  # ImageError, a bad example index: the last photo stays
            self._show_error(err, source="photo")
            return False
        self._clear_message("photo")
        if key not in [v for _, v in self.photo.options]:
            with self._quietly():
                self.photo.options = [o for o in self.photo.options if o[0] != UPLOAD] + [(UPLOAD, key)]
        with self._quietly():
            self.photo.value = key
        self.note.value = info_html(f"<small>{p.note}</small>") if p.note else ""
        self._on_new_photo(key)
        return True

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the newest request is computed (for scripts and tests)."""
        return self._renderer.wait(timeout)

    def _on_new_photo(self, key):
        """The prepared input changed: compute the view for it (``_request`` says what to compute)."""
        self._photo_key_now = key
        self._request()

    def _on_change(self, change):
        """A control changed; a person choosing a class also makes it the class kept across photos."""
        if self._quiet:
            return
        if change["owner"] is getattr(self, "target", None):
            self._wanted_target = self._wanted_from(change["new"])
        self._request()

    def _apply(self, image, target):
        """The end of ``set``: keep ``target`` (unless "keep"), then one computation, for ``image`` if given."""
        if target != "keep":
            self._keep_target(target)
        if image is not None:
            self.set_image(image)
        else:
            self._request()

    def _keep_target(self, target):
        """``set(target=...)``: the class to explain from now on (None: each photo's top class)."""
        self._wanted_target = target
        value = TOP_CLASS if target is None else target
        if value in [v for _, v in self.target.options]:
            with self._quietly():
                self.target.value = value

    def _probabilities(self, key):
        """Softmax of the model's output for photo ``key``: (classes,) CPU tensor, cached."""
        from cnnviz.probe import eval_mode

        with self._lock:
            cache = self.__dict__.setdefault("_probs", OrderedDict())
            if key not in cache:
                x = self._prepared(key).x
                with eval_mode(self.model), torch.no_grad():
                    out = self.model(x)
                if not isinstance(out, torch.Tensor) or out.ndim != 2:
                    raise ValueError("The model's output must be class scores of shape (1, classes), got "
                                     f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
                cache[key] = torch.softmax(out.detach().float(), dim=1)[0].cpu()
                while len(cache) > 16:
                    cache.popitem(last=False)
            return cache[key]

    def _target_options(self, probs):
        """The target menu: "top class" first, then every class from the most to the least probable."""
        names = self.vision.class_names
        order = torch.argsort(probs, descending=True).tolist()
        top = order[0]
        return ([(f"top class: {class_name(names, top)} ({float(probs[top]):.2f})", TOP_CLASS)]
                + [(f"{class_name(names, c)} ({float(probs[c]):.2f})", c) for c in order])

    def _set_targets(self, probs, wanted):
        """Fill the target menu for a new photo, keeping the chosen class (None: the top class); returns the
        class to explain."""
        options = self._target_options(probs)
        with self._quietly():
            self.target.options = options
            self.target.value = wanted if wanted in [v for _, v in options] else TOP_CLASS
        return int(torch.argmax(probs)) if self.target.value == TOP_CLASS else int(self.target.value)

    def _resolve_target(self, key, wanted):
        """(probabilities, class to explain) for photo ``key``: ``wanted`` if it exists (None: the top class);
        a class that does not exist is said once in the message line and the top class is explained."""
        probs = self._probabilities(key)
        if wanted is not None:
            try:
                wanted = check_class(wanted, len(probs))
            except ValueError as err:
                self._show_error(err, source="target")
                if self._wanted_target == wanted:
                    self._wanted_target = None  # said once; the next request explains the top class quietly
                wanted = None
            else:
                self._clear_message("target")
        return probs, self._set_targets(probs, wanted)

    def _target_menu(self):
        """The class menu of the occlusion and attribution explorers (filled per photo)."""
        menu = widgets.Dropdown(options=[("top class", TOP_CLASS)], value=TOP_CLASS, description="class",
                                layout=widgets.Layout(width=self.px(330)))
        return menu

    def _wanted_from(self, value):
        """A class menu value as the class asked for: None for the top class."""
        return None if value == TOP_CLASS else value

    def _style(self, css_class):
        return [scoped_style(self, css_class, self._scale), widget_style(self, css_class, self._scale, f"""
& img {{ image-rendering: pixelated; image-rendering: crisp-edges; }}
& .cnnviz-map button {{ padding: 0 4px; }}
& .cnnviz-caption {{ font-size: {round(14 * self._scale)}px; color: #333; line-height: 1.3; }}
& .cnnviz-boxcap .cnnviz-caption {{ display: block; min-height: 2.6em; }}
""")]


def lecture_panel(label, image, css_class):
    """An image under a one-line caption for the lecture layout, sized by the stylesheet (``css_class``) so that a
    narrow page can make it smaller (see ``lecture_panel_css``)."""
    image.layout = widgets.Layout()
    image.add_class(css_class)
    caption = widgets.HTML(f'<span class="cnnviz-caption">{label}</span>')
    caption.add_class("cnnviz-panelcap")
    return widgets.VBox([caption, image], layout=widgets.Layout(align_items="flex-start"))


def lecture_panel_css(css_class, side, narrow_side):
    """The sizes of ``lecture_panel`` images (``lecture_frame``'s ``css`` and ``narrow_css``): ``side`` px, and
    ``narrow_side`` px where the page is narrow."""
    return (f"& .{css_class} {{ width: {side}px; height: {side}px; }} & .cnnviz-panelcap {{ white-space: nowrap; "
            f"overflow: hidden; text-overflow: ellipsis; max-width: {side}px; }}",
            f"& .{css_class} {{ width: {narrow_side}px !important; height: {narrow_side}px !important; }} "
            f"& .cnnviz-panelcap {{ max-width: {narrow_side}px !important; }}")


def image_box(label, image, width):
    """An image with a caption above it, ``width`` wide (a CSS length)."""
    caption = widgets.HTML(f'<span class="cnnviz-caption">{label}</span>')
    caption.add_class("cnnviz-boxcap")  # two lines tall: pictures in a row stay aligned
    return widgets.VBox([caption, image], layout=widgets.Layout(width=width, align_items="flex-start")), caption


def _png(arr, side=None):
    """PNG bytes of an image, enlarged by a whole factor (nearest neighbour) to at most ``side`` px, so it
    stays sharp where a browser would blur it."""
    a = np.asarray(arr)
    if side:
        a = upscale(a, max(1, int(side) // max(a.shape[:2])))
    return png_bytes(a)


def box_on(photo, box, colour=(255, 200, 0), width=None):
    """``photo`` (S, S, 3) uint8 with the rectangle ``box`` = (top, left, bottom, right) outlined, outside dimmed."""
    img = to_rgb(photo).astype(np.float32)
    h, w = img.shape[:2]
    top, left, bottom, right = (int(v) for v in box)
    top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, h), min(right, w)  # clipped to the photo
    out = img * 0.45
    out[top:bottom, left:right] = img[top:bottom, left:right]
    w = width or max(1, round(img.shape[0] / 64))
    out[max(top - w, 0):top, max(left - w, 0):right + w] = colour
    out[bottom:bottom + w, max(left - w, 0):right + w] = colour
    out[max(top - w, 0):bottom + w, max(left - w, 0):left] = colour
    out[max(top - w, 0):bottom + w, right:right + w] = colour
    return out.astype(np.uint8)
