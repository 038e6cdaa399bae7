"""AugmentationExplorer: choose a photo, a ShapesNet example or a handwritten digit, a transformation and its
parameters; see what the transformation does (and, for one that moves pixels, what it does to a checkerboard),
a grid of random draws of the whole training pipeline, whether a classifier still reads each draw as the
original's class (the label meter), and the ``torchvision.transforms.v2`` code of the pipeline.

A thin view over ``cnnviz.augmentation`` (``augment``, ``random_transform``, ``pipeline_code``,
``checkerboard``) and ``cnnviz.augmentation_study.classifier``. Core ipywidgets only (Colab's ipywidgets 7 and
ipywidgets 8); each update runs on a worker thread that always takes the newest request, and draws all the
random copies into one picture (one image to send, however many draws).
"""
import functools
import hashlib
import html
import threading
import time
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.augmentation import (AUGMENTATIONS, AugmentationError, as_image_tensor, augment, check_params,
                                 checkerboard, pipeline_code, random_transform)
from cnnviz.figures.augmentation import mosaic, to_uint8
from cnnviz.imaging import jpeg_bytes, png_bytes
from cnnviz.widgets._base import (LECTURE_SCALE, LatestOnly, View, guarded, info_html, lecture_frame, lecture_settings,
                                  scoped_style, set_tooltip, upload_bytes, widget_style)

__all__ = ["AugmentationExplorer", "mosaic", "MAX_SIDE", "DRAWS"]

#: Images are transformed at up to this many pixels a side (bigger photos are shrunk first).
MAX_SIDE = 224
#: The draws slider's range.
DRAWS = (1, 16)
_MIN_SIDE = 8
_SHAPES, _DIGIT = "shapes", "digit"
_UPLOAD = "(your image)"
_KEEP, _CHANGE = "#2e7d32", "#b00020"
_NO_CLASSIFIER = ("No classifier for photos offline: choose 'shapes' or 'digit' to see the label meter.")
_CLASSIFIERS = {}
_CLASSIFIERS_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- what the widget is built on


def _classifier(name):
    """``augmentation_study.classifier(name)``, loaded once per process (a Classifier is returned as is)."""
    from cnnviz.augmentation_study import Classifier, classifier

    if isinstance(name, Classifier):
        return name
    with _CLASSIFIERS_LOCK:
        if name not in _CLASSIFIERS:
            _CLASSIFIERS[name] = classifier(name)
        return _CLASSIFIERS[name]


@functools.lru_cache(maxsize=1)
def _shape_examples():
    """ShapesNet's 12 example images (the six classes in turn) as float (12, 3, 64, 64), and their labels."""
    from cnnviz.vismodels import example_images

    images, labels = example_images(12)
    return images.float() / 255, labels


@functools.lru_cache(maxsize=1)
def _digit_examples():
    """One handwritten digit per class (the first of each in the digits' test part): float (10, 1, 8, 8)."""
    from cnnviz.data import digits_tensors

    d = digits_tensors()
    labels = d["test_labels"]
    first = [int((labels == c).nonzero()[0]) for c in range(10)]
    return d["test_images"][first].float() / 255


@functools.lru_cache(maxsize=8)
def _photo(name):
    """An embedded photo as a float (3, H, W) tensor at up to ``MAX_SIDE`` a side (loaded once)."""
    from cnnviz.data import load_image

    return _shrink(torch.from_numpy(load_image(name)).permute(2, 0, 1).float() / 255)[0]


def _channels(t: torch.Tensor, c: int) -> torch.Tensor:
    """(N, C, H, W) with ``c`` channels (grey repeated, or RGB averaged)."""
    if t.shape[1] == c:
        return t
    return t.expand(-1, c, -1, -1) if t.shape[1] == 1 else t.mean(1, keepdim=True)


def _shrink(t: torch.Tensor):
    """``t`` (C, H, W) with its longer side at most ``MAX_SIDE`` (aspect ratio kept), and a note if shrunk."""
    h, w = t.shape[-2:]
    if max(h, w) <= MAX_SIDE:
        return t, ""
    f = MAX_SIDE / max(h, w)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    small = F.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return small.clamp(0, 1), f"Shrunk from {w}×{h} to {size[1]}×{size[0]} pixels."


def _enlarge(a: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (…, H, W, 3) by a whole ``factor`` (sharp pixels in any browser)."""
    return a if factor == 1 else a.repeat(factor, -3).repeat(factor, -2)


def _factor(side: int, want: int) -> int:
    """The whole factor that brings a small image of ``side`` pixels up to about ``want`` pixels."""
    return max(1, want // max(side, 1))


def _rgb(colour: str):
    return tuple(int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))


def _check_draws(draws) -> int:
    lo, hi = DRAWS
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or not lo <= draws <= hi:
        raise AugmentationError(f"The number of draws must be a whole number from {lo} to {hi}; got {draws!r}.")
    return int(draws)


def _check_step(key, params) -> dict:
    """The full parameters of one step (``check_params``), a flip's p being 0 or 1."""
    if not isinstance(key, str):
        raise AugmentationError(f"A transformation is named by its key, such as 'rotate'; got {key!r}.")
    if not isinstance(params, dict):
        raise AugmentationError(f"A transformation's parameters are a dict such as {{'angle': 15}}; got {params!r}.")
    p = check_params(key, **params)
    if key in ("hflip", "vflip") and p["p"] not in (0.0, 1.0):
        raise AugmentationError(f"A flip is done (p = 1) or not (p = 0); got p = {p['p']:g}.")
    return p


def _describe(key, params) -> str:
    aug = AUGMENTATIONS[key]
    values = ", ".join(f"{name} {v:g}" for name, v in params.items())
    return f"{aug.label} ({values})"


def _step(p) -> tuple:
    """Slider step and readout format for one parameter."""
    span = p.high - p.low
    if p.name == "p" or span >= 20:
        return 1.0, ".0f"
    return (0.05, ".2f") if span >= 2.5 else (0.01, ".2f")


# ----------------------------------------------------------------------------- the widget


class AugmentationExplorer(View):
    """What a data augmentation does to an image, and whether a classifier still reads it as the same class.

    Parameters: ``image`` (an embedded photo's name, ``"shapes"`` for a ShapesNet example image, ``"digit"``
    for a handwritten digit (a 6 at first), a path, the bytes of an image file, or an array / tensor),
    ``key`` (the transformation: a key of ``cnnviz.augmentation.AUGMENTATIONS``), ``draws`` (random draws of
    the pipeline shown, 1–16), ``seed`` (the draws are the same for the same seed and number of "Redraw"
    presses), ``classifier`` (None: ShapesNet for shapes, the digits CNN for digits and none for photos; a
    name or a ``Classifier`` of ``cnnviz.augmentation_study`` to use for every image), ``scale`` (1.0 in a
    notebook, 1.4 for a projector), ``threaded`` (compute on a worker thread, newest request only;
    ``False``: synchronously, for tests and scripts).

    On screen after each update: ``image`` (the tensor transformed), ``result`` (``augment`` of it with the
    sliders' values), ``board`` (the warped checkerboard, None for a colour transformation), ``draws_tensor``
    (N, C, H, W), ``predictions`` ((class, probability) per draw, None without a classifier),
    ``original_prediction`` and ``result_prediction``, ``pipeline`` (the steps added: (key, params)),
    ``code`` (the pipeline's ``v2.Compose``), ``timings`` (milliseconds). ``set(**settings)`` changes several
    controls with one update; ``add_step()``, ``clear_pipeline()`` and ``redraw()`` do what the buttons do.
    """

    _kept = "pictures"

    def _error_suffix(self, err, source):
        return " The pictures show the last setting that worked." if isinstance(err, ValueError) else ""

    def __init__(self, image="astronaut", key="rotate", *, draws=8, seed=0, classifier=None, scale=None,
                 lecture=None, threaded=True):
        super().__init__()
        scale, self.lecture = lecture_settings(scale, lecture)
        _check_step(key, {})                                # an unknown key: AugmentationError, a sentence
        draws = _check_draws(draws)
        if classifier is not None and not hasattr(classifier, "probabilities") and classifier not in (
                "shapesnet", "digits"):
            raise AugmentationError(f"Unknown classifier {classifier!r}: use None (automatic), 'shapesnet', "
                                    "'digits' or a cnnviz.augmentation_study.Classifier.")
        self.seed, self.threaded, self._scale, self._classifier_choice = seed, threaded, scale, classifier
        self._uploads = {}                                  # "upload:<hash>" -> (tensor, note)
        self._original_bytes = {}                           # image source -> (bytes, format)
        self.pipeline = []
        self._redraws = 0
        self.image = self.result = self.board = self.draws_tensor = None
        self.predictions = self.original_prediction = self.result_prediction = None
        self.code, self.timings = "", {}
        self._renderer = LatestOnly(self._render, self._show_error, threaded=threaded)
        px = self.px
        g = (lambda cb: guarded(cb, self._show_error))
        wide = {"description_width": px(100)}

        source, example, prepared = self._resolve_image(image, None)
        options = [("shapes (ShapesNet example)", _SHAPES), ("digit (8×8 handwritten)", _DIGIT)] + [
            (f"{n} (photo)", n) for n in self._photo_names()]
        if source not in [v for _, v in options]:
            options.append((_UPLOAD, source))
        self.photo = widgets.Dropdown(options=options, value=source, description="image", style=wide,
                                      layout=widgets.Layout(width=px(330)))
        self.example = widgets.IntSlider(value=0, min=0, max=11, description="example", style=wide,
                                         continuous_update=False, layout=widgets.Layout(width=px(300)))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload",
                                         layout=widgets.Layout(width=px(130)))
        self.transform = widgets.Dropdown(options=[(a.label, k) for k, a in AUGMENTATIONS.items()], value=key,
                                          description="transformation", style=wide,
                                          layout=widgets.Layout(width=px(380)))
        self.draws = widgets.IntSlider(value=draws, min=DRAWS[0], max=DRAWS[1], description="draws", style=wide,
                                       continuous_update=False, layout=widgets.Layout(width=px(300)))
        self.sliders = {}
        self.param_box = widgets.VBox()
        self.add_button = widgets.Button(description="Add to pipeline", icon="plus", button_style="info",
                                         layout=widgets.Layout(width=px(180)))
        self.clear_button = widgets.Button(description="Clear pipeline", icon="trash",
                                           layout=widgets.Layout(width=px(170)))
        self.redraw_button = widgets.Button(description="Redraw", icon="refresh",
                                            layout=widgets.Layout(width=px(130)))
        self.add_button.on_click(g(lambda _b: self.add_step()))
        self.clear_button.on_click(g(lambda _b: self.clear_pipeline()))
        self.redraw_button.on_click(g(lambda _b: self.redraw()))
        self.photo.observe(g(self._on_photo), names=["value"])
        self.example.observe(g(self._on_example), names=["value"])
        self.upload.observe(g(self._on_upload), names=["value"])
        self.transform.observe(g(self._on_key), names=["value"])
        self.draws.observe(g(self._on_change), names=["value"])

        self.message = widgets.HTML()
        self.note = widgets.HTML()
        side = px(240)
        self.original_view = widgets.Image(format="png", layout=widgets.Layout(width=side))
        self.result_view = widgets.Image(format="png", layout=widgets.Layout(width=side))
        self.board_view = widgets.Image(format="png", layout=widgets.Layout(width=side))
        self.result_caption = widgets.HTML()
        self.board_box = self._picture_box("the same transformation on a checkerboard", self.board_view)[0]
        self.result_meter = widgets.HTML()
        self.pipeline_view = widgets.HTML()
        self.mosaic_view = widgets.Image(format="png")
        self.meter = widgets.HTML()
        self.code_view = widgets.HTML()

        title = widgets.HTML('<span class="cnnviz-title">Data augmentation: what each transformation does, '
                             'and does it keep the label?</span>')
        row = lambda items: widgets.HBox(items, layout=widgets.Layout(flex_flow="row wrap",  # noqa: E731
                                                                      grid_gap=px(8)))
        self.add_class("cnnviz-au")
        if self.lecture:  # the hall compares original and result; the instructor picks and moves the transformation
            from cnnviz.widgets._photo_view import lecture_panel, lecture_panel_css

            k = scale / LECTURE_SCALE
            title.value = '<span class="cnnviz-title">Augmentation: does the label survive?</span>'
            original = lecture_panel("original", self.original_view, "cnnviz-au-pic")
            result = lecture_panel("", self.result_view, "cnnviz-au-pic")
            result.children = [self.result_caption, self.result_view]
            self.result_caption.add_class("cnnviz-panelcap")
            for view in (self.original_view, self.result_view):
                view.add_class("cnnviz-au-pixels")
            pair = widgets.HBox([original, result], layout=widgets.Layout(grid_gap="12px"))
            for control in (self.photo, self.transform):
                control.description, control.layout.width = "", px(180)
            self.example.style, self.example.layout.width = {"description_width": px(70)}, px(180)
            css, narrow = lecture_panel_css("cnnviz-au-pic", round(395 * k), round(400 * k))
            self.children = lecture_frame(
                self, "cnnviz-au", scale, title=title, picture=pair,
                primary=[self.photo, self.example, self.transform, self.param_box, self.redraw_button],
                side=[self.message, self.result_meter],
                below=[self._style(), row([self.upload, self.draws, self.add_button, self.clear_button]), self.note,
                       self.board_box, self.pipeline_view, self.mosaic_view, self.meter, self.code_view],
                side_width=260, picture_basis=round(2 * 395 + 12), picture_grows=False,
                css=css + " & .cnnviz-au-pic { object-fit: contain; }",
                narrow_css=narrow + "& .cnnviz-au-meter-side { display: none; }")
            self.result_meter.add_class("cnnviz-au-meter-side")
        else:
            self.children = [
                self._style(), title,
                row([self.photo, self.example, self.upload]),
                row([self.transform, self.draws]),
                self.param_box,
                row([self.add_button, self.clear_button, self.redraw_button]),
                self.message, self.note,
                row([self._picture_box("original", self.original_view)[0],
                     widgets.VBox([self.result_caption, self.result_view],
                                  layout=widgets.Layout(width=side, align_items="flex-start")),
                     self.board_box]),
                self.result_meter,
                self.pipeline_view,
                self.mosaic_view,
                self.meter,
                self.code_view,
            ]
        self._prepared = prepared
        with self._quietly():
            self._show_example_slider(source, example)
            self._build_sliders(key, AUGMENTATIONS[key].identity())
        self._set_note(prepared[1])
        self._request()

    # ------------------------------------------------------------------ public API
    def px(self, v) -> str:
        return f"{round(v * self._scale)}px"

    @property
    def params(self) -> dict:
        """The current transformation's parameters, as the sliders show them."""
        out = {}
        for p in AUGMENTATIONS[self.transform.value].params:
            v = round(float(self.sliders[p.name].value), 6)
            out[p.name] = min(max(v, p.low), p.high)
        return out

    @property
    def settings(self) -> dict:
        return {"image": self.photo.value, "example": self.example.value if self._has_examples() else None,
                "key": self.transform.value, "params": self.params, "draws": self.draws.value,
                "pipeline": [(k, dict(p)) for k, p in self.pipeline], "redraws": self._redraws}

    def set(self, image=None, *, example=None, key=None, params=None, draws=None, pipeline=None, redraws=None,
            **values) -> None:
        """Change several settings at once (one update): ``image`` (as in the constructor), ``example`` (which
        ShapesNet example, 0–11, or which digit, 0–9), ``key`` (the transformation), the transformation's
        parameters by name or as a ``params`` dict (``set(key="rotate", angle=180)``; missing ones at their
        identity when ``key`` changes, as they are otherwise), ``draws``, ``pipeline`` (a list of (key,
        params)), ``redraws`` (how many times "Redraw" was pressed: which random draws are shown). An impossible
        setting is a message, never a traceback, and changes nothing; ``set(**settings)`` restores ``settings``."""
        try:
            new_key = self.transform.value if key is None else key
            _check_step(new_key, {})
            base = self.params if new_key == self.transform.value else {}
            if params is not None and not isinstance(params, dict):
                _check_step(new_key, params)                # a sentence: parameters are a dict
            new_params = _check_step(new_key, {**base, **(params or {}), **values})
            new_draws = self.draws.value if draws is None else _check_draws(draws)
            if redraws is not None and (isinstance(redraws, bool) or not isinstance(redraws, (int, np.integer))
                                        or redraws < 0):
                raise AugmentationError(f"redraws counts presses of Redraw: a whole number from 0; got {redraws!r}.")
            new_pipeline = None if pipeline is None else self._check_pipeline(pipeline)
            if image is not None or example is not None:
                source, ex, prepared = self._resolve_image(self.photo.value if image is None else image, example)
            else:
                source = None
        except ValueError as err:                           # AugmentationError, ImageError
            self._show_error(err, "settings")
            return
        self._clear_message("settings")
        with self._quietly():
            if source is not None:
                self._select(source, ex, prepared)
            if new_key != self.transform.value:
                self.transform.value = new_key
            if self.sliders and list(self.sliders) == [p.name for p in AUGMENTATIONS[new_key].params]:
                for name, v in new_params.items():
                    self.sliders[name].value = v
            else:
                self._build_sliders(new_key, new_params)
            self.draws.value = new_draws
            if new_pipeline is not None:
                self.pipeline = new_pipeline
            if redraws is not None:
                self._redraws = int(redraws)
        self._request()

    def set_image(self, image, example=None) -> None:
        """Show another image (what the menu and the upload button do); one that cannot be read keeps the
        current image and says why."""
        self.set(image, example=example)

    def add_step(self) -> None:
        """Add the current transformation, at its sliders, to the pipeline; its sliders go back to the
        identity (the draws would otherwise apply it twice)."""
        key, params = self.transform.value, self.params
        if params == AUGMENTATIONS[key].identity():
            self._show_error(AugmentationError(
                f"The {AUGMENTATIONS[key].label} is at its identity (it changes nothing): move a slider before "
                "adding it to the pipeline."), "pipeline")
            return
        try:
            _check_step(key, params)
        except AugmentationError as err:
            self._show_error(err, "pipeline")
            return
        self._clear_message("pipeline")
        self.pipeline.append((key, params))
        with self._quietly():
            self._build_sliders(key, AUGMENTATIONS[key].identity())
        self._request()

    def clear_pipeline(self) -> None:
        self.pipeline = []
        self._clear_message("pipeline")
        self._request()

    def redraw(self) -> None:
        """New random draws (the next of the seed's draws)."""
        self._redraws += 1
        self._request()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the newest request is drawn (scripts and tests); False on timeout."""
        return self._renderer.wait(timeout)

    # ------------------------------------------------------------------ images
    @staticmethod
    def _photo_names():
        from cnnviz.data import image_names
        return image_names()

    def _has_examples(self):
        return self.photo.value in (_SHAPES, _DIGIT)

    def _resolve_image(self, image, example):
        """(menu value, example index or None, (tensor, note, kind)) for ``image``; ImageError or
        AugmentationError (both ValueErrors) with a sentence if it cannot be used."""
        from cnnviz.data import ImageError, _decode, load_image

        if isinstance(image, str) and image in (_SHAPES, _DIGIT):
            n = 12 if image == _SHAPES else 10
            ex = (0 if image == _SHAPES else 6) if example is None else example
            if isinstance(ex, bool) or not isinstance(ex, (int, np.integer)) or not 0 <= ex < n:
                what = "ShapesNet example images, numbered 0 to 11" if image == _SHAPES else "digits, 0 to 9"
                raise AugmentationError(f"There are {n} {what}; got example {ex!r}.")
            return image, int(ex), self._example_image(image, int(ex))
        if example is not None:
            raise AugmentationError("Only 'shapes' and 'digit' have examples to choose from.")
        if isinstance(image, str) and image in self._photo_names():
            return image, None, (_photo(image), "", "photo")
        if isinstance(image, str) and image in self._uploads:
            t, note = self._uploads[image]
            return image, None, (t, note, "photo")
        if isinstance(image, (bytes, bytearray, memoryview)):
            raw = bytes(image)
            arr = _decode(raw, "The uploaded file")
        elif isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                load_image(str(image))                      # raises ImageError naming the embedded photos
            raw = path.read_bytes()
            arr = _decode(raw, f"The file {path.name!r}")
        elif isinstance(image, (np.ndarray, torch.Tensor)):
            arr = image.detach().cpu() if isinstance(image, torch.Tensor) else np.asarray(image)
            raw = (arr.numpy() if isinstance(arr, torch.Tensor) else arr).tobytes() + str(arr.shape).encode()
        else:
            raise ImageError(f"Cannot show a {type(image).__name__}: give an embedded photo's name, 'shapes', "
                             "'digit', a path, the bytes of an image file or an array.")
        if isinstance(arr, torch.Tensor) and arr.dim() != 3:
            raise AugmentationError(f"One image, please: a tensor (C, H, W); got shape {tuple(arr.shape)}.")
        t, note = as_image_tensor(arr)
        t, shrunk = _shrink(t.float())
        if min(t.shape[-2:]) < _MIN_SIDE:
            raise AugmentationError(f"The image is only {t.shape[-1]}×{t.shape[-2]} pixels here; give one at "
                                    f"least {_MIN_SIDE} pixels a side (and not much longer than wide).")
        key = "upload:" + hashlib.sha1(raw).hexdigest()[:12]
        note = " ".join(s for s in (note, shrunk) if s)
        self._uploads[key] = (t, note)
        while len(self._uploads) > 8:
            self._uploads.pop(next(iter(self._uploads)))
        return key, None, (t, note, "photo")

    @staticmethod
    def _example_image(source, i):
        if source == _SHAPES:
            return _shape_examples()[0][i], "", _SHAPES
        return _digit_examples()[i], "", _DIGIT

    def _select(self, source, example, prepared):
        """Make ``source`` the image on screen (quietly: the caller asks for the update)."""
        options = list(self.photo.options)
        if source not in [v for _, v in options]:
            options = [o for o in options if o[0] != _UPLOAD] + [(_UPLOAD, source)]
            self.photo.options = options
        self.photo.value = source
        self._show_example_slider(source, example)
        self._prepared = prepared
        self._set_note(prepared[1])

    def _show_example_slider(self, source, example):
        if source in (_SHAPES, _DIGIT):
            n = 12 if source == _SHAPES else 10
            self.example.min = 0
            if self.example.value > n - 1:
                self.example.value = 0
            self.example.max = n - 1
            self.example.value = example
            self.example.description = "example" if source == _SHAPES else "digit"
            self.example.layout.display = None
        else:
            self.example.layout.display = "none"

    def _set_note(self, note):
        self.note.value = info_html(f"<small>{html.escape(note)}</small>") if note else ""

    # ------------------------------------------------------------------ controls
    def _build_sliders(self, key, values):
        """One slider per parameter of ``key`` (range low..high), at ``values``."""
        old = list(self.sliders.values())
        self.sliders, rows = {}, []
        for p in AUGMENTATIONS[key].params:
            step, fmt = _step(p)
            s = widgets.FloatSlider(value=values[p.name], min=p.low, max=p.high, step=step, description=p.name,
                                    readout_format=fmt, continuous_update=True,
                                    style={"description_width": self.px(70 if self.lecture else 100)},
                                    layout=widgets.Layout(width=self.px(180 if self.lecture else 420)))
            s.observe(guarded(self._on_change, self._show_error), names=["value"])
            self.sliders[p.name] = s
            if self.lecture:  # beside the pictures: the slider alone, its meaning on hover
                set_tooltip(s, p.label)
                rows.append(s)
                continue
            rows.append(widgets.HBox([s, widgets.HTML(f'<span class="cnnviz-au-hint">{html.escape(p.label)}'
                                                      '</span>')]))
        self.param_box.children = rows
        for s in old:
            s.close()

    @staticmethod
    def _check_pipeline(pipeline):
        if not isinstance(pipeline, (list, tuple)):
            raise AugmentationError(f"A pipeline is a list of (key, params) pairs; got {pipeline!r}.")
        steps = []
        for step in pipeline:
            if not isinstance(step, (list, tuple)) or len(step) != 2:
                raise AugmentationError(f"A pipeline is a list of (key, params) pairs; got {step!r}.")
            steps.append((step[0], _check_step(*step)))
        return steps

    def _on_change(self, _change=None):
        if self._quiet:
            return
        self._request()

    def _on_key(self, change):
        if self._quiet:
            return
        with self._quietly():
            self._build_sliders(change["new"], AUGMENTATIONS[change["new"]].identity())
        self._request()

    def _on_photo(self, change):
        if self._quiet or change["new"] is None:
            return
        self.set(change["new"])

    def _on_example(self, change):
        if self._quiet:
            return
        self.set(self.photo.value, example=change["new"])

    def _on_upload(self, change):
        raw = upload_bytes(change["new"])
        if raw is not None:
            self.set(raw)

    # ------------------------------------------------------------------ rendering
    def _request(self):
        key = self.transform.value
        try:
            params = _check_step(key, self.params)
        except AugmentationError as err:
            self._show_error(err, "settings")
            return
        tensor, _note, kind = self._prepared
        source = (self.photo.value, self.example.value if self._has_examples() else None)
        self._renderer.request(dict(source=source, image=tensor, kind=kind, key=key, params=params,
                                    pipeline=[(k, dict(p)) for k, p in self.pipeline], draws=self.draws.value,
                                    redraws=self._redraws, classifier=self._classifier_for(kind)))

    def _classifier_for(self, kind):
        if self._classifier_choice is not None:
            return self._classifier_choice
        return {"shapes": "shapesnet", "digit": "digits"}.get(kind)

    def _render(self, r):
        from cnnviz.runtime import cpu_threads

        with cpu_threads(1):  # small images: two torch threads contending with the notebook are 5–10× slower
            self._draw(r)

    def _draw(self, r):
        t0 = time.perf_counter()
        image, key, params = r["image"], r["key"], r["params"]
        result = augment(image, key, **params)
        board = augment(checkerboard(), key, **params) if AUGMENTATIONS[key].geometric else None
        steps = r["pipeline"] + [(key, params)]
        transforms = [random_transform(k, **p) for k, p in steps]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed((self.seed * 1_000_003 + r["redraws"]) % (2 ** 63))
            outs = []
            for _ in range(r["draws"]):
                x = image
                for t in transforms:
                    x = t(x)
                outs.append(x)
        draws = torch.stack(outs).clamp(0, 1)
        t1 = time.perf_counter()

        predictions = original = transformed = None
        if r["classifier"] is not None:
            if isinstance(r["classifier"], str) and r["classifier"] not in _CLASSIFIERS:
                self.meter.value = info_html(f"<i>Loading the {r['classifier']} classifier (the first time it "
                                             "is trained and cached: seconds for the digits, about a minute "
                                             "on a CPU for ShapesNet)…</i>")
            clf = _classifier(r["classifier"])
            from cnnviz.widgets._photo_view import model_lock

            c = draws.shape[1]
            batch = torch.cat([_channels(image[None], c), _channels(result[None], c), draws])
            with model_lock(clf.model):
                probs = clf.probabilities(batch)
            conf, cls = probs.max(1)
            named = [(str(clf.class_names[int(c)]), float(p)) for c, p in zip(cls, conf)]
            original, transformed, predictions = named[0], named[1], named[2:]
        t2 = time.perf_counter()

        small = r["kind"] != "photo"
        pic = self._picture_bytes(result, small)
        original_pic = self._original_picture(r["source"], image, small)
        board_pic = png_bytes(to_uint8(board)) if board is not None else None
        cols = min(r["draws"], 4)
        tile = round((140 if self.lecture else 170) * self._scale)  # lecture: four draws fit a 1024 px screen
        tiles = to_uint8(draws)
        if small:
            tiles = _enlarge(tiles, _factor(max(tiles.shape[1:3]), tile))
        colours = None
        if predictions is not None:
            colours = [_rgb(_KEEP if name == original[0] else _CHANGE) for name, _ in predictions]
        grid = mosaic(tiles, cols, border=max(3, round(tiles.shape[1] / 40)), colours=colours)
        mosaic_bytes, mosaic_format = (png_bytes(grid), "png") if small else (jpeg_bytes(grid, 85), "jpeg")
        code = pipeline_code(self._code_steps(r["pipeline"], key, params))
        t3 = time.perf_counter()

        # everything computed: now the screen changes, all at once (an error above keeps the last output)
        self.image, self.result, self.board, self.draws_tensor = image, result, board, draws
        self.predictions, self.original_prediction, self.result_prediction = predictions, original, transformed
        self.code = code
        for view in (self.original_view, self.result_view, self.mosaic_view):  # sharp pixels, blurred photos
            (view.add_class if small else view.remove_class)("cnnviz-au-pixels")
        self.original_view.format, self.original_view.value = original_pic
        self.result_view.format, self.result_view.value = pic
        aug = AUGMENTATIONS[key]
        self.result_caption.value = (f'<span class="cnnviz-caption">{html.escape(_describe(key, params))}'
                                     "</span>")
        if board_pic is not None:
            self.board_view.value = board_pic
        self.board_box.layout.display = None if board is not None else "none"
        self.result_meter.value = self._result_meter_html(original, transformed, aug.label)
        self.pipeline_view.value = self._pipeline_html(r["pipeline"], key, params, r["draws"])
        self.mosaic_view.layout.width = f"{cols * tile}px"
        self.mosaic_view.format, self.mosaic_view.value = mosaic_format, mosaic_bytes
        self.meter.value = self._meter_html(predictions, original, cols, tile)
        self.code_view.value = (f'<pre class="cnnviz-au-code">{html.escape(code)}</pre>')
        self._clear_message("settings")
        self._clear_message("photo")
        self._clear_message("pipeline")
        self._clear_message("other")
        t4 = time.perf_counter()
        self.timings = {"transform_ms": 1000 * (t1 - t0), "meter_ms": 1000 * (t2 - t1),
                        "encode_ms": 1000 * (t3 - t2), "show_ms": 1000 * (t4 - t3), "total_ms": 1000 * (t4 - t0)}

    @staticmethod
    def _code_steps(pipeline, key, params):
        """The steps of the code: those added, then the current one unless it changes nothing (or alone)."""
        current = [] if params == AUGMENTATIONS[key].identity() and pipeline else [(key, params)]
        return list(pipeline) + current

    def _picture_bytes(self, t, small):
        a = to_uint8(t)
        if small:
            return "png", png_bytes(_enlarge(a, _factor(max(a.shape[:2]), round(240 * self._scale))))
        return "jpeg", jpeg_bytes(a, 90)

    def _original_picture(self, source, image, small):
        if source not in self._original_bytes:
            self._original_bytes[source] = self._picture_bytes(image, small)
            while len(self._original_bytes) > 16:
                self._original_bytes.pop(next(iter(self._original_bytes)))
        return self._original_bytes[source]

    # ------------------------------------------------------------------ text
    def _result_meter_html(self, original, transformed, label):
        if original is None:
            return ""
        same = transformed[0] == original[0]
        colour = _KEEP if same else _CHANGE
        verdict = "the label is kept" if same else "the label changes"
        return info_html(f"The classifier reads the original as <b>{html.escape(original[0])}</b> "
                         f"(p = {original[1]:.2f}) and the {html.escape(label)} above as "
                         f'<b style="color:{colour}">{html.escape(transformed[0])}</b> (p = {transformed[1]:.2f}): '
                         f'<span style="color:{colour};font-weight:600">{verdict}</span>.')

    @staticmethod
    def _pipeline_html(pipeline, key, params, n):
        current = AUGMENTATIONS[key].label
        if pipeline:
            steps = " → ".join(html.escape(_describe(k, p)) for k, p in pipeline)
            what = f"the pipeline {steps}, then the {html.escape(current)} at random up to its sliders"
        else:
            what = f"the {html.escape(current)} at random up to its sliders (add it to build a pipeline)"
        if params == AUGMENTATIONS[key].identity():
            what += " (at its identity now, so it changes nothing)"
        return info_html(f"<b>{n} random draw{'s' if n != 1 else ''}</b> of {what}:")

    def _meter_html(self, predictions, original, cols, tile):
        if predictions is None:
            return info_html(f"<i>{html.escape(_NO_CLASSIFIER)}</i>")
        kept = sum(name == original[0] for name, _ in predictions)
        n = len(predictions)
        cells = "".join(
            f'<div style="color:{_KEEP if name == original[0] else _CHANGE}">#{i + 1}: '
            f"<b>{html.escape(name)}</b> {p:.2f}</div>" for i, (name, p) in enumerate(predictions))
        grid = (f'<div class="cnnviz-au-meter" style="display:grid;grid-template-columns:repeat({cols}, '
                f'{tile}px);text-align:center">{cells}</div>')
        summary = (f'<div class="cnnviz-au-summary"><b>{kept} of {n} draws keep the label</b> (the original '
                   f"is read as {html.escape(original[0])}, p = {original[1]:.2f}).</div>")
        return grid + summary

    def _picture_box(self, label, image):
        caption = widgets.HTML(f'<span class="cnnviz-caption">{html.escape(label)}</span>')
        return widgets.VBox([caption, image], layout=widgets.Layout(width=self.px(240),
                                                                    align_items="flex-start")), caption

    def _style(self):
        fs = round(15 * self._scale)
        own = widget_style(self, "cnnviz-au", self._scale, f"""
& img.cnnviz-au-pixels {{ image-rendering: pixelated; image-rendering: crisp-edges; }}
& .cnnviz-caption {{ font-size: {fs}px; color: #333; }}
& .cnnviz-au-hint {{ font-size: {round(13 * self._scale)}px; color: #555; margin-left: 8px; }}
& .cnnviz-au-meter {{ font-size: {fs}px; line-height: 1.4; }}
& .cnnviz-au-summary {{ font-size: {round(17 * self._scale)}px; margin-top: 4px; }}
& pre.cnnviz-au-code {{ font-size: {round(14 * self._scale)}px; background: #f6f6f6; padding: 8px;
  line-height: 1.35; white-space: pre; overflow-x: auto; }}
""")
        return widgets.VBox([scoped_style(self, "cnnviz-au", self._scale), own])
