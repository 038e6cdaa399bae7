"""Network in Network: mlpconv layers and global average pooling instead of dense layers.

Lin, Chen & Yan, "Network in network", ICLR 2014 (``lin2014network``). The
paper replaces each linear filter by a small multilayer perceptron slid over
the image (an "mlpconv" layer: a k×k convolution followed by 1×1
convolutions, ReLU after each) and the dense classifier by global average
pooling over one map per class, so the network has no fully connected layer.

The paper reports CIFAR, SVHN and MNIST models; its ImageNet model is the one
the authors released in the Caffe model zoo (``nin_imagenet``), which d2l
also follows: 7,595,176 parameters with 1,000 classes.
"""
from collections import OrderedDict

import torch.nn as nn

from cnnviz.models._registry import FeaturesThenClassifier, register

__all__ = ["NiN", "mlpconv", "nin"]


def mlpconv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
            depth: int = 3) -> nn.Sequential:
    """One mlpconv layer: a ``kernel_size`` convolution then ``depth - 1`` 1×1 convolutions, ReLU after each.

    A 1×1 convolution is a dense layer applied to the channel vector at every
    pixel, so the stack is a small MLP sliding over the input (section 3.1).
    ``(B, in_channels, H, W) → (B, out_channels, H', W')`` with ``H'`` set by the first convolution.
    Submodules ``conv``, ``relu``, ``cccp1``, ``relu1``, ... (Caffe's names for the 1×1 layers).
    """
    layers = [("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)),
              ("relu", nn.ReLU())]
    for i in range(1, depth):
        layers += [(f"cccp{i}", nn.Conv2d(out_channels, out_channels, kernel_size=1)), (f"relu{i}", nn.ReLU())]
    return nn.Sequential(OrderedDict(layers))


class NiN(FeaturesThenClassifier):
    """The ImageNet Network in Network: four mlpconv layers, the last one ending in one map per class.

    Shapes, batch ``B``::

        (B, 3, 224, 224) → mlpconv1 96@11×11/4 (B, 96, 54, 54) → pool1 (B, 96, 27, 27)
        → mlpconv2 256@5×5 p2 (B, 256, 27, 27) → pool2 (B, 256, 13, 13)
        → mlpconv3 384@3×3 p1 (B, 384, 13, 13) → pool3 (B, 384, 6, 6) → dropout 0.5
        → mlpconv4 1024@3×3 p1 + 1×1 1024 (B, 1024, 6, 6) = forward_features
        → class maps: 1×1 num_classes + ReLU (B, num_classes, 6, 6)
        → global average pool (B, num_classes) = forward_head

    ``forward_features`` stops before the last 1×1 convolution, the one that
    makes the class maps: like the dense classifier of other networks, it is
    the part that knows the classes (and the part transfer learning replaces),
    so ``forward_head`` = class maps + global average pooling, with no dense
    layer and no parameter but that convolution's. The class maps themselves
    are ``classifier.relu``'s output. Max-pools are 3×3 with stride 2, rounding
    up as Caffe does (54 → 27 → 13 → 6). The paper gives no initialisation:
    He et al.'s keeps the twelve ReLU layers trainable without batch norm.
    """
    default_input_size = (3, 224, 224)
    feature_layers = ("features.mlpconv1", "features.mlpconv2", "features.mlpconv3", "features.mlpconv4")

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("mlpconv1", mlpconv(3, 96, 11, stride=4)),                              # (B, 96, 54, 54)
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),        # (B, 96, 27, 27)
            ("mlpconv2", mlpconv(96, 256, 5, padding=2)),                            # (B, 256, 27, 27)
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),        # (B, 256, 13, 13)
            ("mlpconv3", mlpconv(256, 384, 3, padding=1)),                           # (B, 384, 13, 13)
            ("pool3", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),        # (B, 384, 6, 6)
            ("dropout", nn.Dropout(dropout)),
            ("mlpconv4", mlpconv(384, 1024, 3, padding=1, depth=2)),                 # (B, 1024, 6, 6)
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(1024, num_classes, kernel_size=1)),  # the third layer of mlpconv4: (B, classes, 6, 6)
            ("relu", nn.ReLU()),  # as in the Caffe model: the class maps, and so the logits, are ≥ 0
            ("pool", nn.AdaptiveAvgPool2d(1)),                      # global average pooling: (B, classes, 1, 1)
            ("flatten", nn.Flatten()),                              # (B, classes)
        ]))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)


def nin(*, num_classes: int = 1000) -> NiN:
    """Network in Network, the ImageNet model (``NiN``)."""
    return NiN(num_classes=num_classes)


register("nin", nin, family="nin", paper="lin2014network", input_size=(3, 224, 224),
         description="Network in Network (ImageNet model of the Caffe zoo): four mlpconv layers (a convolution "
                     "and 1×1 convolutions), one map per class, global average pooling, no dense layer.")
