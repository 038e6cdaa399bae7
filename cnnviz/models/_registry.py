"""The model registry: a plain dict from name to ``ModelSpec``, filled by the family modules.

Every registered model follows one contract, so that summaries, diagrams and
the visualisation code work on any of them:

- ``model.forward_features(x)`` maps a batch ``(B, C, H, W)`` to the last feature
  map ``(B, C', h, w)``, before global pooling and the classifier;
- ``model.forward_head(f)`` maps that feature map to logits ``(B, num_classes)``;
- ``forward(x) == forward_head(forward_features(x))`` (GoogLeNet in training
  mode also returns its auxiliary logits, as in the paper);
- ``model.feature_layers`` is a tuple of dotted names (valid for
  ``model.get_submodule``) of the layers whose outputs are worth looking at,
  from the input to the output: the convolution stages, blocks or modules;
- ``model.default_input_size`` is the input ``(C, H, W)`` of the paper.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

__all__ = ["ModelSpec", "FeaturesThenClassifier", "register", "get", "available", "info", "families"]


class FeaturesThenClassifier(nn.Module):
    """The contract for networks made of a ``features`` module followed by a ``classifier`` module
    (LeNet-5, AlexNet, ZFNet, NiN): subclasses set both and ``feature_layers``."""

    def forward_features(self, x):
        return self.features(x)  # (B, C', h, w)

    def forward_head(self, f):
        return self.classifier(f)  # (B, num_classes)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name.

    ``weights`` is a torchvision ``WeightsEnum`` member (its URL, ImageNet
    categories and preprocessing travel with it) for the models whose
    architecture matches torchvision's exactly, else ``None``.
    ``paper`` is the BibTeX key in ``book/references.bib``.
    """
    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    input_size: Tuple[int, int, int]
    description: str
    weights: Optional[object] = None
    kwargs: Dict[str, object] = field(default_factory=dict)
    num_classes: int = 1000  # the paper's number of classes: the default of ``get``


_REGISTRY: Dict[str, ModelSpec] = {}


def register(name: str, builder: Callable[..., nn.Module], *, family: str, paper: str,
             input_size: Tuple[int, int, int], description: str, weights: Optional[object] = None,
             num_classes: int = 1000, **kwargs) -> None:
    """Add ``name`` to the registry. ``builder(num_classes=..., **kwargs)`` must return a fresh model;
    ``num_classes`` is the paper's (10 for LeNet's digits and the CIFAR networks)."""
    if name in _REGISTRY:
        raise ValueError(f"A model called {name!r} is registered twice.")
    _REGISTRY[name] = ModelSpec(name, builder, family, paper, tuple(input_size), description, weights, dict(kwargs),
                                num_classes)


def _lookup(name: str) -> ModelSpec:
    from cnnviz.models import _load_families  # the family modules register themselves on first use
    _load_families()
    if not isinstance(name, str) or name not in _REGISTRY:
        import difflib
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"There is no model called {name!r}.{hint} "
                         f"cnnviz.models.available() lists the {len(_REGISTRY)} names.")
    return _REGISTRY[name]


def info(name: str) -> ModelSpec:
    """The ``ModelSpec`` of a registered name (family, paper, default input size, weights)."""
    return _lookup(name)


def available(family: Optional[str] = None) -> List[str]:
    """The registered model names, in registration order (optionally only one family's)."""
    from cnnviz.models import _load_families
    _load_families()
    if family is not None and family not in families():
        raise ValueError(f"There is no model family {family!r}; the families are {', '.join(families())}.")
    return [n for n in _ordered() if family is None or _REGISTRY[n].family == family]


def _ordered() -> List[str]:
    """Registered names in the order of the course (family order, then registration order), however
    the family modules happened to be imported."""
    from cnnviz.models import _FAMILIES
    rank = {f: k for k, f in enumerate(_FAMILIES)}
    position = {n: k for k, n in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda n: (rank.get(_REGISTRY[n].family, len(rank)), position[n]))


def families() -> List[str]:
    """The model families, in registration order (``"lenet"``, ``"alexnet"``, ``"vgg"``, ...)."""
    from cnnviz.models import _load_families
    _load_families()
    return list(dict.fromkeys(_REGISTRY[n].family for n in _ordered()))


def get(name: str, *, num_classes: Optional[int] = None, pretrained: bool = False, device=None) -> nn.Module:
    """Build the model ``name`` (see ``available()``) with ``num_classes`` outputs.

    ``num_classes`` defaults to the paper's: 1000 for the ImageNet networks, 10
    for LeNet-5 and the CIFAR networks (``info(name).num_classes``).

    ``pretrained=True`` loads torchvision's ImageNet weights into it, for the
    models whose architecture matches torchvision's exactly; the file comes
    from the torch hub cache, or is downloaded into it when there is internet.

    ``device``: where the parameters are created (default: torch's default
    device). ``device="meta"`` gives shapes only: no memory and no random
    initialisation, so even VGG-19 is built in milliseconds; enough for
    ``cnnviz.summary`` and parameter counts.
    """
    spec = _lookup(name)
    if device is not None and torch.device(device).type == "meta" and pretrained:
        raise ValueError("A model on the meta device has no values to load weights into; build it with "
                         "pretrained=False, or on 'cpu' or 'cuda' to load the ImageNet weights.")
    if num_classes is None:
        num_classes = spec.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if pretrained and spec.weights is not None and num_classes != 1000:
        raise ValueError(f"The ImageNet weights of {name} have 1000 classes; build it with num_classes=1000 "
                         "and replace the classifier afterwards (the transfer-learning chapter shows how).")
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = spec.builder(num_classes=num_classes, **spec.kwargs)
    if pretrained:
        from cnnviz.models._weights import load_pretrained
        load_pretrained(model, spec)
    return model
