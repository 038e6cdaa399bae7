"""AlexNet (2012), its two-GPU split, torchvision's variant, and ZFNet (2013), the model that tuned it.

- ``alexnet``: Krizhevsky, Sutskever & Hinton, "ImageNet classification with
  deep convolutional neural networks", NIPS 2012 (``krizhevsky2012imagenet``),
  section 3, drawn as one tower: 62,378,344 parameters.
- ``alexnet_2gpu``: the same network split over two GPUs as in the paper's
  Figure 2, written as grouped convolutions: 60,965,224 parameters.
- ``alexnet_tv``: torchvision's AlexNet (64-192-384-256-256 filters, no
  normalisation; the variant of Krizhevsky's 2014 "One weird trick" paper),
  with torchvision's ImageNet weights: 61,100,840 parameters.
- ``zfnet`` and ``zfnet_wide``: Zeiler & Fergus, "Visualizing and
  understanding convolutional networks", ECCV 2014 (``zeiler2014visualizing``),
  the model of their Figure 3, and its variant with wider conv3-5 (Table 2).
"""
from collections import OrderedDict
from typing import Tuple

import torch
import torch.nn as nn
import torchvision

from cnnviz.models._registry import FeaturesThenClassifier, register

__all__ = ["AlexNet", "AlexNetTV", "ZFNet", "local_response_norm", "alexnet", "alexnet_tv", "zfnet"]


def local_response_norm(n: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75) -> nn.LocalResponseNorm:
    """AlexNet's response normalisation (section 3.3) with the paper's constants, as a torch module.

    The paper divides each activation by ``(k + α·Σ a²)^β``, the sum over ``n``
    adjacent maps at the same position. ``nn.LocalResponseNorm`` divides by
    ``(k + α/n·Σ a²)^β`` instead, so it is given ``alpha = α·n`` (5e-4).
    No parameters; ``(B, C, H, W) → (B, C, H, W)``.
    """
    return nn.LocalResponseNorm(size=n, alpha=alpha * n, beta=beta, k=k)


def _dense_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    # fc6 and fc7 are followed by ReLU and dropout (AlexNet section 4.2, ZFNet section 3)
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),                           # (B, in_features)
        ("fc6", nn.Linear(in_features, 4096)),
        ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(dropout)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(dropout)),
        ("fc8", nn.Linear(4096, num_classes)),               # (B, num_classes)
    ]))


class AlexNet(FeaturesThenClassifier):
    """AlexNet as in the 2012 paper, on one GPU (``groups=1``) or split over two (``groups=2``).

    The paper says 224×224, but 11×11 filters with stride 4 need 227×227 to
    give its 55×55 maps (a well-known slip). Shapes, batch ``B``::

        (B, 3, 227, 227) → conv1 96@11×11/4 (B, 96, 55, 55) → pool1 (B, 96, 27, 27)
        → conv2 256@5×5 p2 (B, 256, 27, 27) → pool2 (B, 256, 13, 13)
        → conv3 384@3×3 → conv4 384@3×3 → conv5 256@3×3 (B, 256, 13, 13)
        → pool5 (B, 256, 6, 6) = forward_features
        → fc6 4096 → fc7 4096 → fc8 num_classes = forward_head

    ReLU after every layer, response normalisation after the ReLUs of conv1
    and conv2, overlapping 3×3 max-pooling with stride 2 (section 3.4),
    dropout 0.5 after fc6 and fc7. With ``groups=2`` each GPU holds half the
    maps of every layer, and conv2, conv4 and conv5 only see the maps on their
    own GPU; conv3 and the dense layers read both (Figure 2). (The paper's
    normalisation also stops at the GPU boundary; here it runs across all maps
    of a layer, which has no parameters and changes two maps' neighbourhoods.)

    Initialisation as in section 5: weights N(0, 0.01²), biases 1 in conv2,
    conv4, conv5 and the hidden dense layers (so the ReLUs start positive), 0
    elsewhere.
    """
    default_input_size = (3, 227, 227)
    feature_layers = ("features.relu1", "features.relu2", "features.relu3", "features.relu4", "features.relu5")

    def __init__(self, num_classes: int = 1000, groups: int = 1, dropout: float = 0.5):
        super().__init__()
        g = groups
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, kernel_size=11, stride=4)),               # (B, 96, 55, 55)
            ("relu1", nn.ReLU()),
            ("norm1", local_response_norm()),
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2)),                    # (B, 96, 27, 27)
            ("conv2", nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=g)),   # (B, 256, 27, 27)
            ("relu2", nn.ReLU()),
            ("norm2", local_response_norm()),
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2)),                    # (B, 256, 13, 13)
            ("conv3", nn.Conv2d(256, 384, kernel_size=3, padding=1)),            # (B, 384, 13, 13), across GPUs
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=g)),  # (B, 384, 13, 13)
            ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=g)),  # (B, 256, 13, 13)
            ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),                    # (B, 256, 6, 6)
        ]))
        self.classifier = _dense_head(256 * 6 * 6, num_classes, dropout)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)
        for layer in (self.features.conv2, self.features.conv4, self.features.conv5,
                      self.classifier.fc6, self.classifier.fc7):
            nn.init.ones_(layer.bias)


class AlexNetTV(torchvision.models.AlexNet):
    """torchvision's AlexNet with the cnnviz contract; its state dict is torchvision's, so its weights load.

    64-192-384-256-256 filters (11×11/4 p2, 5×5 p2, 3×3 p1), no response
    normalisation, an adaptive 6×6 average pool before the dense layers, and
    dropout before fc6 and fc7. Shapes, batch ``B``::

        (B, 3, 224, 224) → features (B, 256, 6, 6) = forward_features
        → avgpool (B, 256, 6, 6) → classifier (B, num_classes) = forward_head
    """
    default_input_size = (3, 224, 224)
    feature_layers = ("features.1", "features.4", "features.7", "features.9", "features.11")  # the ReLUs

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__(num_classes=num_classes, dropout=dropout)
        for module in self.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # a hook on a conv must see its output, not the ReLU's overwrite of it

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(f), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ZFNet(FeaturesThenClassifier):
    """ZFNet: the model of Zeiler & Fergus's Figure 3 (``widths=(384, 384, 256)``) or Table 2's wider one.

    AlexNet with a 7×7 stride-2 first layer instead of 11×11 stride 4 (the
    visualisations showed aliasing and dead filters), stride 2 in conv2, and
    a single tower. Shapes, batch ``B``, with Figure 3's sizes::

        (B, 3, 224, 224) → conv1 96@7×7/2 (B, 96, 110, 110) → pool1 (B, 96, 55, 55)
        → conv2 256@5×5/2 (B, 256, 26, 26) → pool2 (B, 256, 13, 13)
        → conv3, conv4, conv5 3×3 (B, c5, 13, 13) → pool5 (B, c5, 6, 6) = forward_features
        → fc6 4096 → fc7 4096 → fc8 num_classes = forward_head

    Figure 3 normalises contrast across feature maps after pool1 and pool2;
    the paper gives no constants, so AlexNet's response normalisation stands
    in. The pools round up (``ceil_mode``), which gives Figure 3's 55 and 13.
    ``widths`` are the filters of conv3-5: (384, 384, 256) in Figure 3,
    (512, 1024, 512) in Table 2 (the variant the cs231n lecture quotes).
    Weights start N(0, 0.01²), biases 0 (section 3).
    """
    default_input_size = (3, 224, 224)
    feature_layers = ("features.relu1", "features.relu2", "features.relu3", "features.relu4", "features.relu5")

    def __init__(self, num_classes: int = 1000, widths: Tuple[int, int, int] = (384, 384, 256),
                 dropout: float = 0.5):
        super().__init__()
        c3, c4, c5 = widths
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1)),        # (B, 96, 110, 110)
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),       # (B, 96, 55, 55)
            ("norm1", local_response_norm()),
            ("conv2", nn.Conv2d(96, 256, kernel_size=5, stride=2)),                 # (B, 256, 26, 26)
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),       # (B, 256, 13, 13)
            ("norm2", local_response_norm()),
            ("conv3", nn.Conv2d(256, c3, kernel_size=3, padding=1)),                # (B, c3, 13, 13)
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(c3, c4, kernel_size=3, padding=1)),                 # (B, c4, 13, 13)
            ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(c4, c5, kernel_size=3, padding=1)),                 # (B, c5, 13, 13)
            ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),       # (B, c5, 6, 6)
        ]))
        self.classifier = _dense_head(c5 * 6 * 6, num_classes, dropout)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------- builders and registration

def alexnet(*, num_classes: int = 1000, groups: int = 1) -> AlexNet:
    """AlexNet (2012) on one GPU (``groups=1``) or with the paper's two-GPU split (``groups=2``)."""
    return AlexNet(num_classes=num_classes, groups=groups)


def alexnet_tv(*, num_classes: int = 1000) -> AlexNetTV:
    """torchvision's AlexNet (64-192-384-256-256) with the cnnviz contract."""
    return AlexNetTV(num_classes=num_classes)


def zfnet(*, num_classes: int = 1000, widths: Tuple[int, int, int] = (384, 384, 256)) -> ZFNet:
    """ZFNet, Figure 3 of Zeiler & Fergus; ``widths`` are the filters of conv3-5."""
    return ZFNet(num_classes=num_classes, widths=tuple(widths))


register("alexnet", alexnet, family="alexnet", paper="krizhevsky2012imagenet", input_size=(3, 227, 227),
         description="AlexNet (2012) as one tower: 96-256-384-384-256 filters, ReLU, response normalisation, "
                     "overlapping max-pooling, dropout, fc 4096-4096.")
register("alexnet_2gpu", alexnet, family="alexnet", paper="krizhevsky2012imagenet", input_size=(3, 227, 227),
         groups=2,
         description="AlexNet with the paper's split over two GPUs: conv2, conv4 and conv5 see only their own "
                     "GPU's maps (grouped convolutions).")
register("alexnet_tv", alexnet_tv, family="alexnet", paper="krizhevsky2014one", input_size=(3, 224, 224),
         weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
         description="torchvision's AlexNet, from Krizhevsky's 2014 \"one weird trick\" paper: 64-192-384-256-256 "
                     "filters, no normalisation, adaptive 6×6 average pool; ImageNet weights available.")
register("zfnet", zfnet, family="alexnet", paper="zeiler2014visualizing", input_size=(3, 224, 224),
         description="ZFNet (Zeiler & Fergus): AlexNet with a 7×7 stride-2 first layer and stride 2 in conv2, "
                     "as in their Figure 3.")
register("zfnet_wide", zfnet, family="alexnet", paper="zeiler2014visualizing", input_size=(3, 224, 224),
         widths=(512, 1024, 512),
         description="ZFNet with 512, 1024 and 512 filters in conv3-5 (Table 2 of Zeiler & Fergus).")
