"""Loading torchvision's ImageNet weights into cnnviz's models, from the torch hub cache.

torchvision's ``WeightsEnum`` members carry the URL, the ImageNet class names
and the preprocessing; ``get_state_dict`` downloads into (or reads from)
``torch.hub.get_dir()/checkpoints``. Without internet and without the cached
file, ``WeightsUnavailable`` says which file to fetch and where to put it.
"""
import os
import urllib.error
from typing import Callable, Dict, List

import torch
import torch.nn as nn

__all__ = ["WeightsUnavailable", "checkpoint_path", "load_pretrained", "imagenet_categories"]


class WeightsUnavailable(RuntimeError):
    """Pretrained weights do not exist for a model, or cannot be fetched right now."""


def checkpoint_path(weights) -> str:
    """Where the torch hub cache keeps the file of a torchvision ``WeightsEnum`` member."""
    filename = os.path.basename(weights.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


# Some families' files predate the module's current key names; a family module
# registers a function that renames the keys of a loaded state dict.
_KEY_FIXES: Dict[str, Callable[[dict], dict]] = {}


def load_pretrained(model: nn.Module, spec) -> nn.Module:
    """Load ``spec.weights`` into ``model`` (strictly: every key and shape must match)."""
    if spec.weights is None:
        with_weights = _names_with_weights()
        twin = f"{spec.name}_tv"
        hint = (f" torchvision's variant {twin} has them (its architecture differs slightly; see its description)."
                if twin in with_weights else "")
        raise WeightsUnavailable(
            f"There are no pretrained ImageNet weights for {spec.name}: no published checkpoint matches this "
            f"architecture.{hint} Use pretrained=False and train it, or pick a model that has them: "
            f"{', '.join(with_weights)}.")
    path = checkpoint_path(spec.weights)
    try:
        state = spec.weights.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        raise WeightsUnavailable(
            f"The ImageNet weights of {spec.name} are not in the torch hub cache and could not be downloaded "
            f"({err.__class__.__name__}: {err}). On a machine with internet, download {spec.weights.url} "
            f"and put the file at {path} (or set TORCH_HOME), then try again.") from None
    except RuntimeError as err:  # torch.load of a truncated or corrupted file
        raise WeightsUnavailable(
            f"The cached weights file {path} for {spec.name} could not be read ({err}). Delete it and try "
            "again to download a fresh copy.") from None
    fix = _KEY_FIXES.get(spec.family)
    if fix is not None:
        state = fix(state)
    state = _fill_batch_counters(model, state)
    missing, unexpected = _mismatch(model, state)
    if missing or unexpected:
        raise WeightsUnavailable(
            f"The weights file {path} does not fit {spec.name}: missing keys {missing[:5]}, unexpected keys "
            f"{unexpected[:5]}. The file may be for another architecture; delete it and try again.")
    model.load_state_dict(state)
    return model


def _fill_batch_counters(model: nn.Module, state: dict) -> dict:
    """Files saved before PyTorch 0.4.1 (torchvision's ResNet and DenseNet ones) have no
    ``num_batches_tracked`` for their BatchNorm layers; add the counter (0) PyTorch itself would."""
    own = model.state_dict()
    missing = [k for k in own if k.endswith(".num_batches_tracked") and k not in state]
    return {**state, **{k: torch.zeros_like(own[k]) for k in missing}} if missing else state


def _mismatch(model: nn.Module, state: dict):
    own = model.state_dict()
    missing = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    unexpected = [k for k in state if k not in own]
    return missing, unexpected


def _names_with_weights() -> List[str]:
    from cnnviz.models._registry import _REGISTRY
    return [n for n, s in _REGISTRY.items() if s.weights is not None]


def imagenet_categories() -> List[str]:
    """The 1000 ImageNet class names, in the order of the pretrained models' outputs (no download)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
