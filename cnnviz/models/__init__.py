"""The architecture zoo: every network of the course, built as published.

``get(name, num_classes=1000, pretrained=False)`` builds one; ``available()``
lists the names; ``info(name)`` tells its family, paper and default input.
The registry is a plain dict, filled by one module per family
(``lenet``, ``alexnet``, ``vgg``, ``nin``, ``googlenet``, ``inception_v3``,
``inception_v4``, ``inception_resnet_v2``, ``resnet``, ``resnet_v2``, ``improved_resnet``, ``fractalnet``,
``densenet``, ``xception``, ``mobilenet``, ``nasnet``, ``squeezenet``, and ``shapesnet``, the small network chapter 6
trains offline)
the first time it is asked for. See ``_registry`` for the
contract every model follows.
"""
from importlib import import_module

from cnnviz.models._registry import ModelSpec, available, families, get, info, register
from cnnviz.models._weights import WeightsUnavailable, checkpoint_path, imagenet_categories

__all__ = ["get", "available", "info", "families", "register", "ModelSpec", "WeightsUnavailable",
           "checkpoint_path", "imagenet_categories", "Inception"]

# registration order = the order of the course; shapesnet is the offline model of the visualisation chapter
_FAMILIES = ("lenet", "alexnet", "vgg", "nin", "googlenet", "inception_v3", "inception_v4", "inception_resnet_v2",
             "resnet", "resnet_v2",
             "improved_resnet", "fractalnet", "densenet", "xception", "mobilenet", "nasnet", "squeezenet", "shapesnet")
_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for family in _FAMILIES:
            import_module(f"cnnviz.models.{family}")


def __getattr__(name):
    if name == "Inception":
        return import_module("cnnviz.models.googlenet").Inception
    raise AttributeError(f"module 'cnnviz.models' has no attribute {name!r}")
