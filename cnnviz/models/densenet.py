"""DenseNet (Huang et al. 2017): the ImageNet DenseNet-BC 121/169/201/264 and the CIFAR DenseNet-BC.

Inside a dense block every layer (BN-ReLU-1×1 conv to 4k channels, BN-ReLU-3×3
conv to k channels) receives the concatenation of all earlier feature maps and
adds k = ``growth_rate`` new ones; transition layers (BN-ReLU-1×1 conv halving
the channels, 2×2 average pooling) connect the blocks. The ImageNet networks
are torchvision's ``DenseNet`` with cnnviz's model contract, so torchvision's
weights load; the CIFAR network replaces the stem with a single 3×3 convolution.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import densenet as tv

from cnnviz.models import _weights
from cnnviz.models._registry import register

__all__ = ["DenseNet", "imagenet_densenet", "cifar_densenet", "TABLE2_PARAMS", "TORCHVISION_GMACS"]

# Table 2 of Huang et al. 2017: parameters of the CIFAR DenseNet-BC (L=100, k=12).
TABLE2_PARAMS = {"densenet_bc_100": 0.8e6}
# torchvision documents "GFLOPS" for its weights that are multiply-adds (224×224 input).
TORCHVISION_GMACS = {"densenet121": 2.834, "densenet169": 3.36, "densenet201": 4.291}
# The paper states no parameter or FLOP count for DenseNet-264 in numbers (Figure 3 plots
# the others against ResNets); its text says DenseNet-201 (20 M parameters) matches the
# error of ResNet-101 (more than 40 M).


class DenseNet(tv.DenseNet):
    """torchvision's ``DenseNet`` with cnnviz's model contract (see ``cnnviz.models._registry``)."""

    default_input_size = (3, 224, 224)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._set_feature_layers()

    def _set_feature_layers(self) -> None:
        # the stem's last layer, then each dense block and transition, then the final BN
        names = [n for n in self.features._modules if n.startswith(("denseblock", "transition"))]
        stem = "pool0" if "pool0" in self.features._modules else "conv0"  # the CIFAR stem is one conv
        self.feature_layers = tuple(f"features.{n}" for n in [stem] + names + ["norm5"])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # not in place: a hook on features.norm5 keeps its own output
        return F.relu(self.features(x))                            # (B, C, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_IMAGENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32), 264: (6, 12, 64, 48)}


def imagenet_densenet(depth: int, *, num_classes: int = 1000) -> DenseNet:
    """The ImageNet DenseNet-BC of ``depth`` 121, 169, 201 or 264 layers (Table 1 of Huang et al. 2017):
    k = 32, bottleneck width 4k, compression 0.5, a 7×7/2 convolution and 3×3/2 max pool as stem."""
    if depth not in _IMAGENET_BLOCKS:
        raise ValueError(f"The ImageNet DenseNets have 121, 169, 201 or 264 layers, got {depth!r}.")
    return DenseNet(growth_rate=32, block_config=_IMAGENET_BLOCKS[depth], num_init_features=64,
                    bn_size=4, num_classes=num_classes)


def cifar_densenet(depth: int = 100, *, growth_rate: int = 12, in_channels: int = 3,
                   num_classes: int = 10) -> DenseNet:
    """The CIFAR DenseNet-BC with ``depth`` L = 6n + 4 and growth rate k (Huang et al. 2017, section 3).

    A 3×3 convolution to 2k channels, three dense blocks of n bottleneck layers
    on 32×32, 16×16 and 8×8 maps, transitions with compression 0.5, then
    BN-ReLU, global average pooling and the classifier. L=100, k=12 is the
    0.8 M-parameter network of Table 2.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError("A CIFAR DenseNet-BC has depth L = 6n + 4 (3 blocks of n two-layer bottlenecks, the first "
                         f"convolution, 2 transitions and the classifier), e.g. 100, 190 or 250; got {depth!r}.")
    model = DenseNet(growth_rate=growth_rate, block_config=((depth - 4) // 6,) * 3,
                     num_init_features=2 * growth_rate, bn_size=4, num_classes=num_classes)
    # the stem is a single 3×3 convolution: no BN, ReLU or pooling before the first block
    model.features.conv0 = nn.Conv2d(in_channels, 2 * growth_rate, 3, padding=1, bias=False)
    nn.init.kaiming_normal_(model.features.conv0.weight)
    for name in ("norm0", "relu0", "pool0"):
        delattr(model.features, name)
    model.default_input_size = (in_channels, 32, 32)
    model._set_feature_layers()
    return model


# torchvision's published files name the layers of a dense layer "norm.1", "conv.2", ...
# (names with dots, no longer allowed), where the module now has "norm1", "conv2".
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _rename_old_keys(state: dict) -> dict:
    """The state dict with torchvision's old DenseNet key names mapped to the current ones (as torchvision does)."""
    return {_OLD_KEY.sub(r"\1\2", key): value for key, value in state.items()}


_weights._KEY_FIXES["densenet"] = _rename_old_keys

_TV_WEIGHTS = {121: tv.DenseNet121_Weights.IMAGENET1K_V1, 169: tv.DenseNet169_Weights.IMAGENET1K_V1,
               201: tv.DenseNet201_Weights.IMAGENET1K_V1}


def _register_all() -> None:
    for depth in (121, 169, 201, 264):
        register(f"densenet{depth}", imagenet_densenet, family="densenet", paper="huang2017densely",
                 input_size=(3, 224, 224), weights=_TV_WEIGHTS.get(depth), depth=depth,
                 description=f"DenseNet-BC-{depth} (k=32) for ImageNet, Table 1"
                             + ("; identical to torchvision's." if depth in _TV_WEIGHTS else
                                "; torchvision has no weights for it."))
    register("densenet_bc_100", cifar_densenet, family="densenet", paper="huang2017densely",
             input_size=(3, 32, 32), depth=100, growth_rate=12,
             description="CIFAR DenseNet-BC (L=100, k=12): 3 dense blocks of 16 bottleneck layers, 0.8M parameters.")


_register_all()
