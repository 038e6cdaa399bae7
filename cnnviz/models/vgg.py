"""VGG: the configurations of Simonyan & Zisserman's Table 1, with and without batch norm.

Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015 (``simonyan2015very``), Table 1. Only 3×3
convolutions (stride 1, padding 1, so a stage keeps its size) and 2×2 max-pools
(which halve it); two stacked 3×3 layers see 5×5 and three see 7×7, with fewer
parameters and more non-linearities than one large filter.

The models are torchvision's (``torchvision.models.VGG``), so torchvision's
ImageNet weights load into them; ``_bn`` adds batch norm after every
convolution (Ioffe & Szegedy 2015, not in the VGG paper). Parameters:
vgg11 132,863,336, vgg13 133,047,848, vgg16 138,357,544, vgg19 143,667,240.
The paper's two other columns, **A-LRN** (A with AlexNet's response normalisation after
the first layer) and **C** (B with a 1×1 convolution at the end of stages 3, 4 and 5),
are built by ``vgg(config=...)`` but not registered: no weights were ever published
for them.
"""
import torch
import torch.nn as nn
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from cnnviz.models._registry import register
from cnnviz.models.alexnet import local_response_norm

__all__ = ["VGG", "vgg", "CONFIGS", "PAPER_MILLIONS"]

#: Table 1's columns: a number is a 3×3 convolution with that many filters (padding 1), ``(1, n)`` a 1×1
#: convolution, ``"M"`` a 2×2 max-pool, ``"LRN"`` local response normalisation (AlexNet's constants).
#: A, B, D and E are torchvision's lists (its ImageNet weights load into them).
CONFIGS = {"A": cfgs["A"],
           "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
           "B": cfgs["B"],
           "C": [64, 64, "M", 128, 128, "M", 256, 256, (1, 256), "M", 512, 512, (1, 512), "M",
                 512, 512, (1, 512), "M"],
           "D": cfgs["D"], "E": cfgs["E"]}

#: Table 2 of the paper: each configuration's parameters, in millions, as printed.
PAPER_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


def _make_layers(cfg: list, batch_norm: bool) -> nn.Sequential:
    """torchvision's ``make_layers`` for its lists; the same layers, in the same order, with 1×1 convolutions and
    response normalisation for the paper's columns C and A-LRN."""
    if all(v == "M" or isinstance(v, int) for v in cfg):
        return make_layers(cfg, batch_norm=batch_norm)
    layers, c_in = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "LRN":
            layers.append(local_response_norm())   # after the first layer's ReLU, as AlexNet places it
        else:
            f, c_out = v if isinstance(v, tuple) else (3, v)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=f, padding=f // 2))
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            c_in = c_out
    return nn.Sequential(*layers)


class VGG(torchvision.models.VGG):
    """torchvision's VGG with the cnnviz contract; its state dict is torchvision's, so its weights load.

    ``config`` is the column of the paper's Table 1: ``"A"`` (11 weight
    layers), ``"A-LRN"`` (11), ``"B"`` (13), ``"C"`` (16, three of them 1×1), ``"D"`` (16),
    ``"E"`` (19). Shapes, batch ``B``::

        (B, 3, 224, 224) → 5 stages of 3×3 convolutions, 64-128-256-512-512 filters,
        each ending in a 2×2 max-pool → (B, 512, 7, 7) = forward_features
        → avgpool (B, 512, 7, 7) → fc 4096 → fc 4096 → fc num_classes = forward_head

    The adaptive 7×7 average pool is torchvision's: it does nothing at 224×224
    and lets smaller or larger images through the dense layers.
    ``feature_layers`` are the ReLUs after the convolutions.
    """
    default_input_size = (3, 224, 224)

    def __init__(self, config: str = "D", batch_norm: bool = False, num_classes: int = 1000):
        if config not in CONFIGS:
            raise ValueError(f"VGG config must be one of {', '.join(CONFIGS)} (Table 1 of the paper), got {config!r}.")
        super().__init__(_make_layers(CONFIGS[config], batch_norm=batch_norm), num_classes=num_classes)
        self.config = config
        for module in self.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # a hook on a conv must see its output, not the ReLU's overwrite of it
        self.feature_layers = tuple(f"features.{name}" for name, module in self.features.named_children()
                                    if isinstance(module, nn.ReLU))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 512, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(f), 1))  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def vgg(*, num_classes: int = 1000, config: str = "D", batch_norm: bool = False) -> VGG:
    """VGG with the layers of Table 1's column ``config`` (A, A-LRN, B, C, D or E), optionally with batch norm."""
    return VGG(config=config, batch_norm=batch_norm, num_classes=num_classes)


_DEPTHS = {"A": 11, "B": 13, "D": 16, "E": 19}

for _bn in (False, True):
    for _config, _depth in _DEPTHS.items():
        _name = f"vgg{_depth}{'_bn' if _bn else ''}"
        _weights = getattr(torchvision.models, f"VGG{_depth}{'_BN' if _bn else ''}_Weights").IMAGENET1K_V1
        register(_name, vgg, family="vgg", paper="simonyan2015very", input_size=(3, 224, 224), weights=_weights,
                 description=f"VGG-{_depth} (configuration {_config} of Table 1): {_depth} weight layers, "
                             f"3×3 convolutions only{', with batch norm after each' if _bn else ''}; "
                             "ImageNet weights available.",
                 config=_config, batch_norm=_bn)
del _bn, _config, _depth, _name, _weights
