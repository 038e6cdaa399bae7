"""Looking inside a model without changing it: layer names, scoped hooks, eval mode, and input preparation.

Everything the visualisation modules (``cnnviz.features``, ``cnnviz.deconvnet``,
``cnnviz.occlusion``, ``cnnviz.attribution``) share:

- ``get_layer(model, "features.3")`` finds a layer by its dotted name, and when
  the name is wrong the error lists the valid ones (closest first);
- ``capture(model, layers)`` records layer outputs during a forward pass and
  removes its hooks when the ``with`` block ends, also after an exception;
- ``eval_mode(model)`` puts every submodule in eval mode and restores each
  one's own flag afterwards (a caller's model in training mode stays so);
- ``prepare(image, model)`` turns a photo name, a file, bytes, an array or a
  tensor into the model's input ``(1, 3, S, S)`` on the model's device, with
  the model's normalisation, and says in ``note`` when it had to resize.

Any ``nn.Module`` works. A model may carry ``cnnviz_preprocess`` (a
``Preprocess``) to say its input size and normalisation; otherwise cnnviz
uses the registry's ``default_input_size`` (or 224) and ImageNet's mean and
standard deviation.
"""
import difflib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "LayerNotFound", "ChannelOutOfRange", "InputResized", "Preprocess", "Prepared", "IMAGENET",
    "layer_names", "conv_layers", "get_layer", "check_channel", "eval_mode", "train_mode", "capture", "model_device",
    "preprocessing", "prepare", "prepare_batch", "to_display",
]


class LayerNotFound(ValueError):
    """A dotted layer name that the model does not have; the message lists the valid ones."""


class ChannelOutOfRange(ValueError):
    """A channel (or class) index outside ``0 … n-1``; the message gives the range."""


class InputResized(UserWarning):
    """A tensor given as input had another size than the model's, and was resized."""


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: a square of ``size`` pixels, each channel ``(x - mean) / std``
    with ``x`` in [0, 1]."""
    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]


#: ImageNet's channel statistics, as torchvision's weights use them.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Prepared:
    """A prepared input: ``x`` (1, 3, S, S) float on the model's device, ``display`` the same image as
    uint8 (S, S, 3) for overlays, ``note`` a sentence when the image was cropped or resized (else "")."""
    x: torch.Tensor
    display: np.ndarray
    note: str


# ----------------------------------------------------------------------------- layers

def layer_names(model: nn.Module, kinds: Optional[Tuple[type, ...]] = None) -> List[str]:
    """Dotted names of the model's submodules in definition order (``kinds``: only these types)."""
    return [n for n, m in model.named_modules() if n and (kinds is None or isinstance(m, kinds))]


def conv_layers(model: nn.Module) -> List[str]:
    """Dotted names of every ``nn.Conv2d`` of the model, input to output."""
    return layer_names(model, (nn.Conv2d,))


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (e.g. ``"features.3"``); ``LayerNotFound`` lists the valid names."""
    if isinstance(name, str) and name:
        try:
            return model.get_submodule(name)  # walks the dotted path: no scan of every module
        except AttributeError:
            pass
    modules = dict(model.named_modules())
    valid = [n for n in modules if n]
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(valid[:40]) + (f", … ({len(valid)} in all)" if len(valid) > 40 else "")
    raise LayerNotFound(f"The model has no layer called {name!r}.{hint} Its layers are: {shown}.")


def check_channel(channel, n: int, layer: str, what: str = "channel") -> int:
    """``channel`` as an int in ``0 … n-1``, else ``ChannelOutOfRange`` saying the range."""
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) and not (
            isinstance(channel, torch.Tensor) and channel.numel() == 1):
        raise ChannelOutOfRange(f"The {what} must be a whole number from 0 to {n - 1}, not {channel!r}.")
    c = int(channel)
    if not 0 <= c < n:
        raise ChannelOutOfRange(f"{what.capitalize()} {c} is out of range: {layer!r} has {n} {what}s, "
                                f"numbered 0 to {n - 1}.")
    return c


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the ``with`` block, then restore each one's own flag."""
    with _mode(model, False):
        yield model


@contextmanager
def train_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in training mode for the ``with`` block (batch norm uses the batch's statistics),
    then restore each one's own flag."""
    with _mode(model, True):
        yield model


@contextmanager
def _mode(model: nn.Module, training: bool):
    flags = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def capture(model: nn.Module, layers: Union[str, Sequence[str]], *, detach: bool = True
            ) -> Iterator[Dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during forward passes inside the ``with`` block.

    Yields a dict filled as the model runs: ``name -> output`` (the last call's,
    for a module called twice). Every hook is removed when the block ends,
    also when it ends with an exception. ``detach=False`` keeps the graph (for
    gradients with respect to an activation).
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = [(n, get_layer(model, n)) for n in names]  # all names checked before any hook is added
    out: Dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name):
        def hook(_module, _inputs, output):
            out[name] = output.detach() if detach and isinstance(output, torch.Tensor) else output
        return hook

    try:
        for n, m in modules:
            handles.append(m.register_forward_hook(hook_for(n)))
        yield out
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------- inputs

def preprocessing(model: nn.Module) -> Preprocess:
    """The model's ``cnnviz_preprocess`` if it has one, else its ``default_input_size`` (or 224) with
    ImageNet's statistics."""
    pre = getattr(model, "cnnviz_preprocess", None)
    if isinstance(pre, Preprocess):
        return pre
    size = getattr(model, "default_input_size", None)
    side = int(size[-1]) if size else 224
    return Preprocess(side, *IMAGENET)


def _stats(pre: Preprocess, device) -> Tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def _square_crop(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return arr[top:top + s, left:left + s]


def prepare(image, model: nn.Module, *, size: Optional[int] = None) -> Prepared:
    """The model's input for ``image``, with a note when it was cropped or resized.

    ``image``: an embedded photo's name (``cnnviz.data.image_names()``), a file
    path, the bytes of an image file, a uint8 array (H, W) or (H, W, 3), or a
    float tensor (3, H, W) / (1, 3, H, W) that is already normalised for the
    model. Photos are centre-cropped to a square and resized to the model's
    side (``size`` overrides it); a normalised tensor of another size is
    resized too, with an ``InputResized`` warning, since that changes what
    the model sees.
    """
    pre = preprocessing(model)
    side = int(size or pre.size)
    device = model_device(model)
    mean, std = _stats(pre, device)
    if isinstance(image, torch.Tensor):
        x = image.detach().to(device=device, dtype=torch.float32)
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"A tensor input must have shape (3, H, W) or (1, 3, H, W); this one is "
                             f"{tuple(image.shape)}.")
        note = ""
        if x.shape[-2:] != (side, side):
            note = (f"The input was {x.shape[-2]}×{x.shape[-1]} pixels; it was resized to {side}×{side}, "
                    "the size this model expects.")
            warnings.warn(note, InputResized, stacklevel=2)
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        return Prepared(x, to_display(x, model)[0], note)
    from cnnviz.data import load_image  # photos, files and bytes all go through one loader

    arr = load_image(image)  # (H, W, 3) uint8
    h, w = arr.shape[:2]
    sq = _square_crop(arr)
    t = torch.from_numpy(np.array(sq)).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255  # (1,3,s,s)
    if t.shape[-1] != side:
        t = F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    steps = []
    if h != w:
        steps.append(f"centre-cropped from {h}×{w} to {sq.shape[0]}×{sq.shape[1]}")
    if sq.shape[0] != side:
        steps.append(f"resized to {side}×{side}")
    note = f"The photo was {' and '.join(steps)} pixels, the input size of this model." if steps else ""
    display = (t[0].permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy()
    return Prepared((t - mean) / std, display, note)


def prepare_batch(images, model: nn.Module) -> torch.Tensor:
    """A batch of uint8 images (N, 3, S, S) or (N, S, S, 3), already at the model's side, as the model's
    normalised input (N, 3, S, S) on its device: a dataset scanned by ``top_activations``, say."""
    t = torch.as_tensor(images)
    if t.ndim == 4 and t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)  # (N, S, S, 3) → (N, 3, S, S)
    side = preprocessing(model).size
    if t.ndim != 4 or t.shape[1] != 3 or t.dtype != torch.uint8:
        raise ValueError(f"prepare_batch needs uint8 images of shape (N, 3, S, S) or (N, S, S, 3); these are "
                         f"{t.dtype} {tuple(t.shape)}.")
    if t.shape[-2:] != (side, side):
        raise ValueError(f"These images are {t.shape[-2]}×{t.shape[-1]} pixels but the model takes {side}×{side}; "
                         "prepare them one by one with prepare(), which crops and resizes.")
    device = model_device(model)
    mean, std = _stats(preprocessing(model), device)
    return (t.to(device).float() / 255 - mean) / std


def to_display(x: torch.Tensor, model: nn.Module) -> np.ndarray:
    """Undo the model's normalisation: (N, 3, H, W) float → uint8 (N, H, W, 3) on the CPU."""
    if x.ndim == 3:
        x = x.unsqueeze(0)
    mean, std = _stats(preprocessing(model), x.device)
    img = (x.detach().float() * std + mean).clamp(0, 1)
    return (img.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy()
