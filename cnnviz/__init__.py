"""cnnviz: the interactive visual companion to a course on convolutional networks.

Importing cnnviz does nothing but define names: no seeding, no warnings
filters, no device probing and no ipywidgets import. Submodules load on first
use (``cnnviz.conv``, ``cnnviz.layers``, ``cnnviz.receptive_field``, ``cnnviz.data``, ``cnnviz.kernels``, ``cnnviz.plot``,
``cnnviz.figures``, ``cnnviz.widgets``, ``cnnviz.models``,
``cnnviz.summaries``, ``cnnviz.accuracy``, ``cnnviz.train``, ``cnnviz.race``, and for looking inside a trained
network ``cnnviz.probe``, ``cnnviz.features``, ``cnnviz.deconvnet``, ``cnnviz.occlusion``, ``cnnviz.attribution``,
``cnnviz.shapes``, ``cnnviz.vismodels``; for chapter 9 ``cnnviz.initialisation``, ``cnnviz.signal_flow``,
``cnnviz.trainability``, ``cnnviz.normalisation``; for chapter 13 ``cnnviz.augmentation``,
``cnnviz.augmentation_study``); ``cnnviz.summary(model, input_size)`` is the model summary.
"""
from importlib import import_module

from cnnviz.runtime import device, seed

__version__ = "0.1.0"
__all__ = ["device", "seed", "conv", "layers", "receptive_field", "data", "kernels", "imaging", "plot", "figures",
           "widgets", "exercises", "models", "summaries", "summary", "accuracy", "train", "race", "probe", "features",
           "deconvnet", "occlusion", "attribution", "shapes", "vismodels", "initialisation", "signal_flow", "trainability",
           "normalisation", "augmentation", "augmentation_study"]

_SUBMODULES = {"conv", "layers", "receptive_field", "data", "kernels", "imaging", "plot", "figures", "widgets",
               "exercises", "models", "summaries", "accuracy", "train", "race", "probe", "features", "deconvnet",
               "occlusion", "attribution", "shapes", "vismodels", "initialisation", "signal_flow",
               "trainability", "normalisation", "augmentation", "augmentation_study"}


def __getattr__(name):
    # PEP 562: submodules are imported lazily so that `import cnnviz` stays cheap
    # and never pulls ipywidgets into pure computation.
    if name in _SUBMODULES:
        return import_module(f"cnnviz.{name}")
    if name == "summary":  # the function; its module is cnnviz.summaries
        return import_module("cnnviz.summaries").summary
    raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")
