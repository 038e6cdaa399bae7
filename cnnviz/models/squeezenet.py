"""SqueezeNet (Iandola et al. 2016, ``iandola2016squeezenet``): AlexNet's accuracy with 50× fewer parameters.

Fire modules (a *squeeze* 1×1 convolution to few channels, then *expand* 1×1 and 3×3 convolutions side by
side, concatenated), max pools early in v1.0 and later in v1.1, and no dense layer: a 1×1 convolution to
one map per class and global average pooling. torchvision's networks and weights.
"""
import torch
import torch.nn as nn
from torchvision import models as tvm

from cnnviz.models._registry import register

__all__ = ["SqueezeNet", "squeezenet"]


class SqueezeNet(tvm.SqueezeNet):
    """torchvision's ``SqueezeNet`` with cnnviz's model contract; its state dict is torchvision's.

    ``forward_features`` ends after the last fire module (512 channels); ``forward_head`` is the dropout, the
    1×1 convolution to ``num_classes`` maps, ReLU and global average pooling. ReLUs not in place.
    """

    default_input_size = (3, 224, 224)

    def __init__(self, version: str = "1_0", num_classes: int = 1000):
        if version not in ("1_0", "1_1"):
            raise ValueError(f"SqueezeNet version must be '1_0' or '1_1', got {version!r}.")
        super().__init__(version=version, num_classes=num_classes)
        for m in self.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.version = version
        self.feature_layers = tuple(f"features.{name}" for name, m in self.features.named_children()
                                    if type(m).__name__ in ("Fire", "ReLU"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                                     # (B, 512, h, w)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(f), 1)                 # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def squeezenet(*, version: str = "1_0", num_classes: int = 1000) -> SqueezeNet:
    """SqueezeNet ``version`` "1_0" (the paper's) or "1_1" (2.4× fewer multiply-adds, same accuracy)."""
    return SqueezeNet(version, num_classes)


register("squeezenet1_0", squeezenet, family="squeezenet", paper="iandola2016squeezenet", input_size=(3, 224, 224),
         version="1_0", weights=tvm.SqueezeNet1_0_Weights.IMAGENET1K_V1,
         description="SqueezeNet 1.0: eight fire modules, no dense layer; torchvision's network and weights.")
register("squeezenet1_1", squeezenet, family="squeezenet", paper="iandola2016squeezenet", input_size=(3, 224, 224),
         version="1_1", weights=tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1,
         description="SqueezeNet 1.1: the same fire modules, pooling earlier: 2.4× fewer multiply-adds; "
                     "torchvision's network and weights.")
