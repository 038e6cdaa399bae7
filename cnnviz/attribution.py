"""Attribution maps through captum: which pixels a class score depends on, by six published methods.

Every method is captum's own implementation, called as its authors intend;
cnnviz only prepares the input, picks the layer, turns captum's output into
one map per image for the figures, and restores the model afterwards.

- ``saliency``: the gradient of the class score with respect to the pixels
  (Simonyan, Vedaldi & Zisserman 2014); the map is the largest absolute
  gradient over the colour channels, as in their §3.1.
- ``integrated_gradients``: the gradient averaged along the straight path
  from a baseline (default: the grey image, 0 after normalisation) to the
  image, times the difference (Sundararajan, Taly & Yan 2017). Its
  attributions add up to ``f(image) − f(baseline)`` ("completeness").
- ``guided_backprop``: backpropagation that also lets only positive
  gradients through each ReLU (Springenberg et al. 2015).
- ``deconvnet``: Zeiler & Fergus's deconvnet as captum's ``Deconvolution``
  computes it: the ReLU applied to the backward signal instead of the
  forward mask (``cnnviz.deconvnet`` explains how it relates to the paper).
- ``grad_cam``: the layer's feature maps weighted by their average gradient,
  summed and rectified (Selvaraju et al. 2017), upsampled bilinearly to the
  image with ``LayerAttribution.interpolate``.
- ``guided_grad_cam``: guided backpropagation times the (nearest-neighbour
  upsampled) Grad-CAM map: captum's ``GuidedGradCam``.

Pixel-space methods give (3, S, S); the map shown (``Attribution.map``) is
``|Σ_channels|`` as captum's ``visualize_image_attr`` draws it, except for
saliency (max over channels, the paper's choice). ``sanity_check`` runs
Adebayo et al.'s (2018) cascading randomisation test: a map that barely
changes when the network's weights are destroyed explains the image, not
the network.
"""
import copy
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from cnnviz.probe import check_channel, conv_layers, eval_mode, get_layer, prepare

__all__ = ["METHODS", "Attribution", "attribute", "sanity_check", "rank_correlation", "default_cam_layer"]

#: The methods ``attribute`` knows, name → label for menus and figure titles.
METHODS = OrderedDict([
    ("saliency", "Saliency (Simonyan et al. 2014)"),
    ("integrated_gradients", "Integrated gradients (Sundararajan et al. 2017)"),
    ("guided_backprop", "Guided backpropagation (Springenberg et al. 2015)"),
    ("deconvnet", "Deconvnet (Zeiler & Fergus 2014)"),
    ("grad_cam", "Grad-CAM (Selvaraju et al. 2017)"),
    ("guided_grad_cam", "Guided Grad-CAM (Selvaraju et al. 2017)"),
])

_LAYER_METHODS = ("grad_cam", "guided_grad_cam")


@dataclass
class Attribution:
    """What ``attribute`` returns. ``map`` (S, S) float ≥ 0 on the model's device: what the figure shows;
    ``raw``: captum's output (``(1, 3, S, S)``, or ``(1, 1, S, S)`` for Grad-CAM, upsampled); ``target``: the
    class explained; ``layer``: the layer of Grad-CAM and guided Grad-CAM (None for the others)."""
    method: str
    target: int
    map: torch.Tensor
    raw: torch.Tensor
    layer: Optional[str] = None


def default_cam_layer(model: nn.Module) -> str:
    """The layer Grad-CAM looks at by default: the last of the model's ``feature_layers`` (the registry's
    contract: e.g. ResNet's ``layer4``, VGG's last ReLU), else its last ``Conv2d``. Selvaraju et al. use the
    last convolutional feature maps: the best compromise between high-level meaning and spatial detail."""
    names = getattr(model, "feature_layers", None)
    if names:
        return names[-1]
    convs = conv_layers(model)
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional layer and this model has none; pick a method that works "
                         "on the pixels (saliency, integrated_gradients, guided_backprop, deconvnet).")
    return convs[-1]


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"Unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}.")
    return method


class _no_inplace_relu:
    """Guided backprop and deconvnet hook every ReLU's backward pass, which fails on in-place ReLUs (torchvision's
    models use them): switch them off for the computation, then restore each one's flag."""

    def __init__(self, model: nn.Module):
        self.relus = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]

    def __enter__(self):
        for m in self.relus:
            m.inplace = False

    def __exit__(self, *exc):
        for m in self.relus:
            m.inplace = True


def _captum_output(model: nn.Module, x: torch.Tensor, method: str, target: int, layer: Optional[nn.Module],
                   options: dict) -> torch.Tensor:
    from captum import attr as ca

    if method == "saliency":
        return ca.Saliency(model).attribute(x, target=target, abs=True, **options)
    if method == "integrated_gradients":
        options.setdefault("baselines", torch.zeros_like(x))
        return ca.IntegratedGradients(model).attribute(x, target=target, **options)
    if method == "guided_backprop":
        return ca.GuidedBackprop(model).attribute(x, target=target, **options)
    if method == "deconvnet":
        return ca.Deconvolution(model).attribute(x, target=target, **options)
    if method == "grad_cam":
        cam = ca.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True, **options)
        if isinstance(cam, tuple):
            cam = cam[0]
        return ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
    out = ca.GuidedGradCam(model, layer).attribute(x, target=target, **options)
    if out.numel() == 0:  # captum warns and returns an empty tensor when the layer's map cannot be upsampled
        raise ValueError("Guided Grad-CAM could not upsample this layer's output to the image; choose a "
                         "convolutional layer whose output is a (batch, channels, height, width) map.")
    return out


def _to_map(method: str, raw: torch.Tensor) -> torch.Tensor:
    """captum's output (1, C, S, S) → (S, S) ≥ 0: saliency max over channels, Grad-CAM as is, the others
    |sum over channels| (captum's ``visualize_image_attr`` with ``sign="absolute_value"``)."""
    r = raw.detach()[0].float()                                                   # (C, S, S)
    if method == "saliency":
        return r.abs().amax(0)
    if method == "grad_cam":
        return r[0].clamp_min(0)
    return r.sum(0).abs()


def attribute(model: nn.Module, image, method: str, *, target: Optional[int] = None, layer: Optional[str] = None,
              **options) -> Attribution:
    """The ``method`` attribution (``METHODS``) of class ``target`` for ``image``.

    ``image``: anything ``cnnviz.probe.prepare`` accepts. ``target``: the
    class to explain (None: the model's top class for this image; out of range
    raises ``ChannelOutOfRange``). ``layer``: for ``grad_cam`` and
    ``guided_grad_cam``, a dotted layer name (default ``default_cam_layer``).
    ``options`` go to captum's ``attribute`` (e.g. ``n_steps=50``,
    ``baselines=…``, ``internal_batch_size=…`` for integrated gradients).

    The model runs in eval mode; its train/eval flags, any in-place ReLU,
    and its parameters' ``.grad`` are as before afterwards, and captum
    removes the hooks it adds (also after an error).
    """
    _check_method(method)
    x = prepare(image, model).x                                                   # (1, 3, S, S)
    layer_name = None
    layer_module = None
    if method in _LAYER_METHODS:
        layer_name = default_cam_layer(model) if layer is None else layer
        layer_module = get_layer(model, layer_name)
    with eval_mode(model), _no_inplace_relu(model):
        if target is None:
            with torch.no_grad():
                t = int(model(x).argmax(1))
        else:
            with torch.no_grad():
                n_classes = model(x).shape[1]
            t = check_channel(target, n_classes, "the model's output", what="class")
        with torch.enable_grad(), warnings.catch_warnings():
            # captum announces the ReLU hooks of guided backprop and deconvnet every call; it removes them itself
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)
            raw = _captum_output(model, x.clone().requires_grad_(True), method, t, layer_module, dict(options))
    raw = raw.detach()
    return Attribution(method, t, _to_map(method, raw), raw, layer_name)


# ----------------------------------------------------------------------------- sanity checks


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps of the same shape (ties get their average rank)."""
    if a.shape != b.shape:
        raise ValueError(f"The maps have different shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    ra, rb = _ranks(a.detach().flatten().cpu().double()), _ranks(b.detach().flatten().cpu().double())  # MPS: no float64
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / denominator) if denominator > 0 else 0.0


def _ranks(v: torch.Tensor) -> torch.Tensor:
    values, order = torch.sort(v)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()                                      # 1-based rank of each group's last
    average = ends - (counts.double() - 1) / 2                                    # average 1-based rank per group
    ranks = torch.empty_like(v)
    ranks[order] = average[inverse]
    return ranks


def _weighted_layers(model: nn.Module) -> List[str]:
    """The convolutions and dense layers, from the output down: the order of Adebayo et al.'s cascade."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][::-1]


def _cuda_devices(module: nn.Module) -> List[int]:
    return sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})


def sanity_check(model: nn.Module, image, method: str, *, target: Optional[int] = None,
                 layers: Optional[Sequence[str]] = None, seed: int = 0, with_maps: bool = False, **options
                 ) -> List[Tuple]:
    """Adebayo et al. (2018)'s cascading randomisation: how much of the map survives destroying the network?

    On a deep copy of ``model`` (the caller's model is never changed), the
    weights of ``layers`` (default: every Conv2d and Linear, from the output
    down) are re-initialised one after another, cumulatively, each with its
    PyTorch default initialisation seeded by ``seed``. After each, the map of
    the same ``target`` (default: the trained model's top class) is compared
    with the trained model's by Spearman's rank correlation. A method that
    explains the model should decorrelate quickly; one whose map stays
    similar is mostly showing the image (an edge detector).

    Returns ``[(layer name, correlation), …]`` in the order randomised, or
    ``(layer name, correlation, map)`` with ``with_maps=True``. ``options``
    go to ``attribute``.
    """
    _check_method(method)
    first = attribute(model, image, method, target=target, **options)
    names = _weighted_layers(model) if layers is None else list(layers)
    for n in names:
        get_layer(model, n)  # every name checked before the long computation
    shadow = copy.deepcopy(model)
    out = []
    for k, name in enumerate(names):
        module = get_layer(shadow, name)
        if not hasattr(module, "reset_parameters"):
            raise ValueError(f"The layer {name!r} ({type(module).__name__}) has no weights to randomise; give "
                             "layers with weights, e.g. the convolutions and dense layers.")
        with torch.random.fork_rng(devices=_cuda_devices(module)):  # the caller's random state is left alone
            torch.manual_seed(seed + k)
            module.reset_parameters()
        current = attribute(shadow, image, method, target=first.target, layer=first.layer, **options)
        rho = rank_correlation(first.map, current.map)
        out.append((name, rho, current.map) if with_maps else (name, rho))
    return out
