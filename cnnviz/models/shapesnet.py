"""ShapesNet: a small ZFNet-like network that cnnviz trains itself, offline, to have a model worth looking at.

The visualisation chapter reproduces Zeiler & Fergus's figures
(``zeiler2014visualizing``). With internet it uses torchvision's ImageNet
networks; offline (a laptop, CI) it needs a network that has learnt
something, and training AlexNet on ImageNet is not an option. ShapesNet is
ZFNet shrunk to 64×64 inputs and six classes (``cnnviz.shapes``): the same
7×7 stride-2 first layer that ZF chose so that first-layer filters are
smooth and not aliased, ReLU and overlapping max-pooling, four convolutions
in all, global average pooling and one dense layer. ``vismodels.trained_shapesnet()``
trains it in about a minute on a laptop CPU.
"""
from collections import OrderedDict
from typing import Tuple

import torch.nn as nn

from cnnviz.models._registry import FeaturesThenClassifier, register
from cnnviz.shapes import CLASSES

__all__ = ["ShapesNet", "shapesnet"]


class ShapesNet(FeaturesThenClassifier):
    """A four-layer ZFNet-like classifier for 64×64 images. Shapes, batch ``B``, ``widths = (c1, c2, c3, c4)``,
    by default (32, 48, 64, 64)::

        (B, 3, 64, 64) → conv1 c1@7×7/2 p3 (B, c1, 32, 32) → pool1 3×3/2 p1 (B, c1, 16, 16)
        → conv2 c2@5×5 p2 (B, c2, 16, 16) → pool2 3×3/2 p1 (B, c2, 8, 8)
        → conv3 c3@3×3 p1 (B, c3, 8, 8) → conv4 c4@3×3 p1 (B, c4, 8, 8) = forward_features
        → global average pool (B, c4) → fc num_classes = forward_head

    ReLU after every convolution (``features.relu1`` … ``relu4``, the
    ``feature_layers``). ``features`` holds only Conv2d, ReLU and MaxPool2d,
    so the explicit Zeiler–Fergus deconvnet applies to it. ``batch_norm=True``
    adds ``bn1`` … ``bn4`` after the convolutions, for training (Ioffe &
    Szegedy 2015): ``vismodels.trained_shapesnet`` folds them into the
    convolutions afterwards and returns this plain chain. The first layer
    starts at N(0, 0.01²), as in ZF (section 3), so that its filters end up
    made of what training put there rather than of the initial noise; the
    other layers use He initialisation.
    """
    default_input_size = (3, 64, 64)
    feature_layers = ("features.relu1", "features.relu2", "features.relu3", "features.relu4")

    def __init__(self, num_classes: int = len(CLASSES), widths: Tuple[int, int, int, int] = (32, 48, 64, 64),
                 batch_norm: bool = False):
        super().__init__()
        c1, c2, c3, c4 = widths

        def conv(k, c_in, c_out, **kw):  # a convolution, then (when training with it) batch norm, then ReLU
            layers = [(f"conv{k}", nn.Conv2d(c_in, c_out, **kw))]
            if batch_norm:
                layers.append((f"bn{k}", nn.BatchNorm2d(c_out)))
            return layers + [(f"relu{k}", nn.ReLU())]

        self.features = nn.Sequential(OrderedDict([
            *conv(1, 3, c1, kernel_size=7, stride=2, padding=3),                     # (B, c1, 32, 32)
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),             # (B, c1, 16, 16)
            *conv(2, c1, c2, kernel_size=5, padding=2),                              # (B, c2, 16, 16)
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),             # (B, c2, 8, 8)
            *conv(3, c2, c3, kernel_size=3, padding=1),                              # (B, c3, 8, 8)
            *conv(4, c3, c4, kernel_size=3, padding=1),                              # (B, c4, 8, 8)
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("pool", nn.AdaptiveAvgPool2d(1)),                                       # (B, c4, 1, 1)
            ("flatten", nn.Flatten()),                                               # (B, c4)
            ("fc", nn.Linear(c4, num_classes)),                                      # (B, num_classes)
        ]))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.features.conv1.weight, 0.0, 0.01)


def shapesnet(*, num_classes: int = len(CLASSES), widths: Tuple[int, int, int, int] = (32, 48, 64, 64),
              batch_norm: bool = False) -> ShapesNet:
    """ShapesNet with ``num_classes`` outputs (six: ``cnnviz.shapes.CLASSES``) and ``widths`` filters in conv1-4."""
    return ShapesNet(num_classes=num_classes, widths=tuple(widths), batch_norm=batch_norm)


register("shapesnet", shapesnet, family="shapesnet", paper="zeiler2014visualizing", input_size=(3, 64, 64),
         num_classes=len(CLASSES),
         description="ShapesNet: a four-layer ZFNet-like network (7×7 stride-2 first layer) for 64×64 images of "
                     "six coloured shapes, trained offline by cnnviz (cnnviz.vismodels.trained_shapesnet).")
