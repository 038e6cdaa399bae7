"""The models the visualisation chapter looks at: torchvision's ImageNet networks, or one cnnviz trains itself.

- ``vision_model("resnet18")`` (or ``"alexnet"``, ``"vgg16"``): torchvision's
  ImageNet weights, through ``cnnviz.models.get(..., pretrained=True)``, with
  the 1000 class names from the weights' metadata. Without internet and
  without the file in the torch hub cache, it warns and returns the offline
  model instead (``fallback=True``), or raises the error that says which file
  to fetch (``fallback=False``).
- ``vision_model("shapesnet")`` / ``trained_shapesnet()``: ShapesNet
  (``cnnviz.models.shapesnet``) trained by cnnviz on generated images of six
  shapes (``cnnviz.shapes``): about a minute on a laptop CPU the first time,
  then loaded from ``cnnviz.data.cache_dir()``. Its first-layer filters are
  smooth oriented edge and colour-contrast detectors, like those of Zeiler &
  Fergus (2014, fig. 2), and occluding the shape, not the background, changes
  its answer.
- ``example_images()``: a fixed set of shapes images, the offline model's "photos".

``VisionModel.description`` and ``.source`` say which network a figure came
from and what it was trained on, so the book can print it.
"""
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn as nn

from cnnviz import shapes
from cnnviz.probe import IMAGENET, Preprocess

__all__ = ["VisionModel", "VISION_MODELS", "vision_model", "trained_shapesnet", "example_images", "RECIPE",
           "shapesnet_cache_path"]

#: The names ``vision_model`` accepts, with the registry name whose torchvision weights they load.
VISION_MODELS = {"shapesnet": "shapesnet", "alexnet": "alexnet_tv", "vgg16": "vgg16", "resnet18": "resnet18"}

#: How ``trained_shapesnet`` trains. Changing anything here (or how ``cnnviz.shapes`` draws) changes the cache
#: file's name, so a changed recipe retrains instead of loading stale weights.
RECIPE = {
    "model": "shapesnet", "widths": (32, 48, 64, 64), "train_with_batch_norm": True,
    "image_size": 64, "train_images": 12000, "test_images": 2000, "epochs": 4, "batch_size": 128,
    "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "warmup": 0.25, "flip": True, "crop_pad": 0,
}

_FORMAT = "cnnviz shapesnet 1"
_EXAMPLE_SEED = 20140912   # the example images: another seed than any training or test set


@dataclass
class VisionModel:
    """A network to visualise, with what the book says about it.

    ``model``: the ``nn.Module`` in eval mode (on the CPU), with
    ``cnnviz_preprocess`` (its input size and normalisation) and
    ``class_names``; ``name``: as given to ``vision_model``; ``class_names``:
    one per output; ``description``: which network and what it was trained
    on, a sentence for a figure's caption; ``source``: ``"torchvision
    ImageNet weights"`` or ``"trained offline by cnnviz"``.
    """
    model: nn.Module
    name: str
    class_names: List[str]
    description: str
    source: str


# ----------------------------------------------------------------------------- ShapesNet, trained here


def _recipe_key(seed: int) -> str:
    """A hash of everything that decides the weights: the recipe, the seed, and a fingerprint of the data
    (a few generated images, so a change in ``cnnviz.shapes`` retrains too)."""
    h = hashlib.sha256(json.dumps({**RECIPE, "seed": int(seed), "format": _FORMAT}, sort_keys=True).encode())
    h.update(shapes.make_shapes(4, size=RECIPE["image_size"], seed=int(seed))[0].numpy().tobytes())
    return h.hexdigest()[:16]


def shapesnet_cache_path(seed: int = 0) -> Path:
    """The file ``trained_shapesnet(seed=seed)`` keeps its weights in: ``cache_dir()/shapesnet-<recipe hash>.pt``."""
    from cnnviz.data import cache_dir

    return cache_dir() / f"shapesnet-{_recipe_key(seed)}.pt"


def _one_cycle_trainer():
    """``cnnviz.train.Trainer`` with a one-cycle learning rate (Smith & Topin 2019): a linear warm-up over
    ``warmup`` of the run, then a cosine down to zero. Step decay needs more epochs than a minute allows."""
    from cnnviz.train import Trainer

    class OneCycleTrainer(Trainer):
        warmup = RECIPE["warmup"]

        @property
        def current_lr(self) -> float:
            t = self.step_count / self.total_steps                                  # 0 … 1 through the run
            if t < self.warmup:
                return self.lr * (0.1 + 0.9 * t / self.warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (1 - self.warmup)))

    return OneCycleTrainer


def _plain_shapesnet() -> nn.Module:
    """An untrained ShapesNet of the recipe's widths, built without drawing from the caller's random generator
    (its initial weights are overwritten anyway)."""
    from cnnviz.models.shapesnet import shapesnet

    with torch.random.fork_rng(devices=[]):
        return shapesnet(widths=RECIPE["widths"])


def _fold_batch_norm(trained: nn.Module) -> nn.Module:
    """The plain ShapesNet (Conv2d, ReLU, MaxPool2d only) computing what ``trained`` computes in eval mode.

    Batch normalisation in eval mode is a per-channel affine map, so it folds into the convolution before it:
    ``w' = w·γ/σ``, ``b' = (b − μ)·γ/σ + β`` with ``σ = √(var + ε)`` (Ioffe & Szegedy 2015;
    ``cnnviz.normalisation.fold_batch_norm``, chapter 9). The explicit deconvnet and the filter figures then see
    the filters the network really applies.
    """
    from cnnviz.normalisation import fold_batch_norm
    from cnnviz.probe import eval_mode

    plain = _plain_shapesnet()
    f = trained.features
    state = {}
    with eval_mode(trained):
        for k in range(1, 5):
            folded = fold_batch_norm(getattr(f, f"conv{k}"), getattr(f, f"bn{k}"))
            state[f"features.conv{k}.weight"], state[f"features.conv{k}.bias"] = folded.weight.detach(), \
                folded.bias.detach()
    state.update({f"classifier.{k}": v for k, v in trained.classifier.state_dict().items()})
    plain.load_state_dict({k: v.float().cpu().contiguous() for k, v in state.items()})
    return plain


def _train(seed: int, progress: bool) -> dict:
    """Train ShapesNet by ``RECIPE``; return what the cache file holds (state dict, normalisation, results)."""
    from cnnviz.models.shapesnet import shapesnet
    from cnnviz.train import TensorData

    r = RECIPE
    start = time.perf_counter()
    # training and test images from different seeds: the test accuracy is on shapes never seen
    x_train, y_train = shapes.make_shapes(r["train_images"], size=r["image_size"], seed=2 * seed + 1)
    x_test, y_test = shapes.make_shapes(r["test_images"], size=r["image_size"], seed=2 * seed + 2)
    data = TensorData.from_arrays(x_train, y_train, x_test, y_test, classes=shapes.CLASSES)
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's generator
        torch.default_generator.manual_seed(seed)
        model = shapesnet(widths=r["widths"], batch_norm=r["train_with_batch_norm"])
    trainer = _one_cycle_trainer()(
        model, data, epochs=r["epochs"], batch_size=r["batch_size"], lr=r["lr"], momentum=r["momentum"],
        weight_decay=r["weight_decay"], augment=True, pad=r["crop_pad"], flip=r["flip"], seed=seed,
        progress=progress, device="cpu", amp=False)  # on the CPU in float32 everywhere: the cache file's name
    # says nothing of the machine, so the weights (and every figure made from them) must not depend on it
    history = trainer.fit()
    model.eval()
    plain = _fold_batch_norm(model)
    last = history.epochs[-1]
    return {"format": _FORMAT, "recipe": json.dumps({**r, "seed": seed}, sort_keys=True),
            "state_dict": plain.state_dict(), "mean": list(data.mean), "std": list(data.std),
            "test_acc": float(last["test_acc"]), "train_acc": float(last["train_acc"]),
            "train_seconds": float(trainer.train_seconds), "seconds": time.perf_counter() - start,
            "images_seen": trainer.step_count * r["batch_size"]}


def _load_cached(path: Path) -> Optional[dict]:
    """The verified contents of a cache file, or None (with a warning) when it is damaged."""
    from cnnviz.train import _digest

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(payload, dict) and payload.get("format") == _FORMAT
        ok = ok and payload.pop("sha256", None) == _digest(payload)
    except Exception as err:  # a truncated file, a bad pickle, ...: all mean the file cannot be used
        ok, why = False, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    else:
        why = "its contents do not match their checksum"
    if not ok:
        warnings.warn(f"The cached ShapesNet weights {path} are damaged ({why}); training it again "
                      "(about a minute) and replacing the file.", stacklevel=3)
        return None
    return payload


def trained_shapesnet(*, seed: int = 0, cache: bool = True, progress: bool = True) -> nn.Module:
    """ShapesNet trained on generated shapes (``cnnviz.shapes``), in eval mode on the CPU.

    The first call trains it (``RECIPE``: 12,000 images of 64×64 pixels, four
    epochs of SGD with a one-cycle learning rate and batch normalisation,
    which is then folded into the convolutions; about two minutes on a laptop
    CPU; always on the CPU in float32, so that the same seed gives the same
    weights on every machine, GPU or not) and, with ``cache=True``, saves the weights
    to ``shapesnet_cache_path(seed)`` (written atomically, checked by a
    SHA-256 digest and loaded with ``weights_only=True``; a damaged file is
    retrained with a warning). ``seed`` seeds the data and the
    initialisation. ``progress``: a tqdm bar while training.

    The model carries ``cnnviz_preprocess`` (64×64, the training images'
    channel means and deviations), ``class_names`` (``shapes.CLASSES``) and
    ``training_report`` (a dict: ``test_acc`` on 2,000 unseen images,
    ``train_acc``, ``train_seconds`` (optimisation steps only), ``seconds``
    (data generation and evaluation included), ``images_seen``, ``from_cache``).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number, got {seed!r}.")
    path = shapesnet_cache_path(seed)
    payload = _load_cached(path) if cache and path.exists() else None
    from_cache = payload is not None
    if payload is None:
        payload = _train(seed, progress)
        if cache:
            from cnnviz.train import _digest, _save_atomically

            path.parent.mkdir(parents=True, exist_ok=True)
            _save_atomically({**payload, "sha256": _digest(payload)}, path)
    model = _plain_shapesnet()
    model.load_state_dict(payload["state_dict"])
    model.eval()
    model.cnnviz_preprocess = Preprocess(RECIPE["image_size"], tuple(payload["mean"]), tuple(payload["std"]))
    model.class_names = list(shapes.CLASSES)
    model.training_report = {k: payload[k] for k in ("test_acc", "train_acc", "train_seconds", "seconds",
                                                     "images_seen")}
    model.training_report["from_cache"] = from_cache
    return model


def example_images(n: int = 12, *, return_geometry: bool = False):
    """A fixed set of ``n`` shapes images (64×64) for the offline model: the classes in turn (disc, square, …),
    from seeds no training or test set uses; the first k of ``example_images(n)`` are ``example_images(k)``.

    Returns ``images`` (n, 3, 64, 64) uint8 and ``labels`` (n,) int64, and with ``return_geometry=True`` each
    shape's centre row, column, radius and angle (n, 4), as ``make_shapes``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n is the number of example images, at least 1; got {n!r}.")
    k = len(shapes.CLASSES)
    need = -(-n // k)                                                            # images of each class
    found = [[] for _ in range(k)]                                               # (image, geometry) per class
    chunk = 0
    while min(len(f) for f in found) < need:
        images, labels, geometry = shapes.make_shapes(8 * k, size=RECIPE["image_size"], seed=_EXAMPLE_SEED + chunk,
                                                      return_geometry=True)
        for img, label, geo in zip(images, labels.tolist(), geometry):
            found[label].append((img, geo))
        chunk += 1
    picked = [found[i % k][i // k] for i in range(n)]
    images = torch.stack([p[0] for p in picked])
    labels = torch.arange(n) % k
    if return_geometry:
        return images, labels, torch.stack([p[1] for p in picked])
    return images, labels


# ----------------------------------------------------------------------------- torchvision's ImageNet models


def _imagenet_model(name: str) -> VisionModel:
    from cnnviz import models

    spec = models.info(VISION_MODELS[name])
    weights = spec.weights
    model = models.get(spec.name, pretrained=True).eval()
    classes = list(weights.meta["categories"])
    model.cnnviz_preprocess = Preprocess(224, *IMAGENET)
    model.class_names = classes
    top1 = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    acc = f", {top1:.1f} % top-1 accuracy" if top1 is not None else ""
    description = (f"{name} ({spec.description.split(':')[0].split(';')[0]}) with torchvision's ImageNet weights "
                   f"({type(weights).__name__}.{weights.name}{acc}), 1000 ImageNet classes, 224×224 inputs.")
    return VisionModel(model, name, classes, description, "torchvision ImageNet weights")


def _shapes_model(seed: int = 0, progress: bool = True) -> VisionModel:
    model = trained_shapesnet(seed=seed, progress=progress)
    rep = model.training_report
    description = (f"ShapesNet (four convolutions, 7×7 first layer, ZFNet-like) trained offline by cnnviz on "
                   f"{RECIPE['train_images']:,} generated 64×64 images of {len(shapes.CLASSES)} shapes "
                   f"({', '.join(shapes.CLASSES)}) on photo, gradient and noise backgrounds; "
                   f"{100 * rep['test_acc']:.1f} % accuracy on {RECIPE['test_images']:,} unseen images.")
    return VisionModel(model, "shapesnet", list(shapes.CLASSES), description, "trained offline by cnnviz")


def vision_model(name: str = "shapesnet", *, fallback: bool = True, progress: bool = True) -> VisionModel:
    """A network to visualise: ``"shapesnet"`` (offline), or ``"alexnet"``, ``"vgg16"``, ``"resnet18"``
    with torchvision's ImageNet weights.

    The ImageNet weights come from the torch hub cache, or are downloaded
    into it. When they cannot be had (no internet, no cached file),
    ``fallback=True`` warns with the reason and returns the ShapesNet
    instead (check ``.name``); ``fallback=False`` raises
    ``cnnviz.models.WeightsUnavailable``, whose message says which file to
    fetch and where to put it.
    """
    from cnnviz.models import WeightsUnavailable

    if name not in VISION_MODELS:
        raise ValueError(f"There is no vision model called {name!r}; choose one of "
                         f"{', '.join(repr(n) for n in VISION_MODELS)}.")
    if name == "shapesnet":
        return _shapes_model(progress=progress)
    try:
        return _imagenet_model(name)
    except WeightsUnavailable as err:
        if not fallback:
            raise
        warnings.warn(f"{err} Using the offline model instead: ShapesNet, trained by cnnviz on generated shapes "
                      f"(vision_model({name!r}, fallback=False) raises this error instead).", stacklevel=2)
        return _shapes_model(progress=progress)
