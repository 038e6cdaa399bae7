"""MobileNets: depthwise separable convolutions (v1) and inverted residuals (v2).

- **MobileNet v1** (Howard et al. 2017, ``howard2017mobilenets``), Table 1: a 3×3 convolution, then 13
  depthwise separable layers, each a 3×3 *depthwise* convolution (one filter per channel, ``groups = C``)
  and a 1×1 *pointwise* convolution, every convolution followed by batch norm and ReLU; global average
  pooling and one dense layer. ``width`` is the paper's width multiplier α (channels × α). The table's
  last depthwise layer is printed with stride 2, but its input and output are both 7×7: it has
  stride 1, as in every implementation, and the parameter and multiply-add counts of the paper
  (4.2 M, 569 M) hold only that way.
- **MobileNet v2** (Sandler et al. 2018, ``sandler2018mobilenetv2``): inverted residual blocks
  (1×1 expansion by 6, 3×3 depthwise, 1×1 linear projection, a shortcut where the shape allows);
  torchvision's network and weights.
"""
import torch
import torch.nn as nn
from torchvision import models as tvm

from cnnviz.models._registry import register

__all__ = ["MobileNetV1", "mobilenet_v1", "MobileNetV2", "mobilenet_v2", "V1_LAYERS", "PAPER_V1", "PAPER_V2"]

#: Table 1 of Howard et al.: the 13 depthwise separable layers as (stride of the depthwise 3×3, output
#: channels of the pointwise 1×1), the last stride corrected to 1 (see the module's docstring).
V1_LAYERS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
             (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
#: Table 8 of Howard et al.: 1.0 MobileNet-224, as printed (millions).
PAPER_V1 = {"mult_adds": 569e6, "params": 4.2e6}
#: Table 4 of Sandler et al.: MobileNetV2 (1.0, 224), as printed. Its parameters (3.4 M) are not torchvision's
#: network's (3,504,872, which rounds to 3.5 M; 3,470,760 without batch norm's γ and β, 3.47 M): the paper does
#: not say how it counted, and no count of the network we tried rounds to 3.4 M (chapter 12 shows them).
PAPER_V2 = {"mult_adds": 300e6, "params": 3.4e6}


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class MobileNetV1(nn.Module):
    """MobileNet v1 with width multiplier ``width`` (α). Shapes, batch ``B``, α = 1::

        (B, 3, 224, 224) → 3×3 conv, stride 2 → (B, 32, 112, 112)
        → 13 × [3×3 depthwise (stride 1 or 2) → 1×1 pointwise] → (B, 1024, 7, 7) = forward_features
        → global average pool → dense → (B, num_classes) = forward_head

    ``features.k`` (k = 1 … 13) is one depthwise separable layer, with ``.depthwise`` and ``.pointwise``.
    """

    default_input_size = (3, 224, 224)

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 4:
            raise ValueError(f"The width multiplier α must be a number in (0, 4], e.g. 1, 0.75, 0.5 or 0.25; "
                             f"got {width!r}.")
        ch = lambda c: max(8, int(c * width))  # noqa: E731
        layers, c_in = [_conv_bn_relu(3, ch(32), 3, 2)], ch(32)
        for stride, c_out in V1_LAYERS:
            block = nn.Sequential()
            block.add_module("depthwise", _conv_bn_relu(c_in, c_in, 3, stride, groups=c_in))
            block.add_module("pointwise", _conv_bn_relu(c_in, ch(c_out), 1))
            layers.append(block)
            c_in = ch(c_out)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        self.width = width
        self.feature_layers = tuple(f"features.{k}" for k in range(len(layers)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                                   # (B, 1024·α, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))         # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def mobilenet_v1(*, width: float = 1.0, num_classes: int = 1000) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``width`` (1.0, 0.75, 0.5 and 0.25 in the paper)."""
    return MobileNetV1(width, num_classes)


class MobileNetV2(tvm.MobileNetV2):
    """torchvision's ``MobileNetV2`` with cnnviz's model contract; its state dict is torchvision's.

    ``features.0`` is the stem (3×3 convolution, stride 2), ``features.1`` … ``features.17`` the inverted
    residual blocks, ``features.18`` the last 1×1 convolution to 1,280 channels. Its ReLU6s are not in place
    (a hook on a convolution sees its own output).
    """

    default_input_size = (3, 224, 224)

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__(num_classes=num_classes, width_mult=width)
        for m in self.modules():
            if isinstance(m, (nn.ReLU, nn.ReLU6)):
                m.inplace = False
        self.feature_layers = tuple(f"features.{k}" for k in range(len(self.features)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                                   # (B, 1280, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def mobilenet_v2(*, width: float = 1.0, num_classes: int = 1000) -> MobileNetV2:
    """MobileNet v2 with width multiplier ``width`` (torchvision's ``width_mult``)."""
    return MobileNetV2(width, num_classes)


register("mobilenet_v1", mobilenet_v1, family="mobilenet", paper="howard2017mobilenets", input_size=(3, 224, 224),
         description="MobileNet v1 (1.0, 224): depthwise separable convolutions, Table 1. No torchvision weights.")
register("mobilenet_v2", mobilenet_v2, family="mobilenet", paper="sandler2018mobilenetv2", input_size=(3, 224, 224),
         weights=tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
         description="MobileNet v2 (1.0, 224): inverted residuals and linear bottlenecks; torchvision's network "
                     "and weights.")
