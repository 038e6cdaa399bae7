"""VGG: configurations A, B, D and E of Simonyan & Zisserman, with and without batch norm.

Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015 (``simonyan2015very``), Table 1. Only 3×3
convolutions (stride 1, padding 1, so a stage keeps its size) and 2×2 max-pools
(which halve it); two stacked 3×3 layers see 5×5 and three see 7×7, with fewer
parameters and more non-linearities than one large filter.

The models are torchvision's (``torchvision.models.VGG``), so torchvision's
ImageNet weights load into them; ``_bn`` adds batch norm after every
convolution (Ioffe & Szegedy 2015, not in the VGG paper). Parameters:
vgg11 132,863,336, vgg13 133,047,848, vgg16 138,357,544, vgg19 143,667,240.
"""
import torch
import torch.nn as nn
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from cnnviz.models._registry import register

__all__ = ["VGG", "vgg"]


class VGG(torchvision.models.VGG):
    """torchvision's VGG with the cnnviz contract; its state dict is torchvision's, so its weights load.

    ``config`` is the column of the paper's Table 1: ``"A"`` (11 weight
    layers), ``"B"`` (13), ``"D"`` (16), ``"E"`` (19). Shapes, batch ``B``::

        (B, 3, 224, 224) → 5 stages of 3×3 convolutions, 64-128-256-512-512 filters,
        each ending in a 2×2 max-pool → (B, 512, 7, 7) = forward_features
        → avgpool (B, 512, 7, 7) → fc 4096 → fc 4096 → fc num_classes = forward_head

    The adaptive 7×7 average pool is torchvision's: it does nothing at 224×224
    and lets smaller or larger images through the dense layers.
    ``feature_layers`` are the ReLUs after the convolutions.
    """
    default_input_size = (3, 224, 224)

    def __init__(self, config: str = "D", batch_norm: bool = False, num_classes: int = 1000):
        if config not in cfgs:
            raise ValueError(f"VGG config must be one of {', '.join(cfgs)} (Table 1 of the paper), got {config!r}.")
        super().__init__(make_layers(cfgs[config], batch_norm=batch_norm), num_classes=num_classes)
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
    """VGG with the layers of Table 1's column ``config`` (A, B, D or E), optionally with batch norm."""
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
