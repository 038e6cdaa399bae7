"""Xception (Chollet 2017, ``chollet2017xception``): Inception taken to its limit, depthwise separable
convolutions with residual connections.

Built as Keras builds it (``keras.applications.Xception``, whose table the ResNet lecture shows), layer
for layer: an *entry flow* (two 3×3 convolutions, then three blocks of two separable convolutions and a
3×3 max pool, each with a strided 1×1 convolution on its shortcut), a *middle flow* (eight blocks of
three ReLU-separable convolution-BN, identity shortcuts) and an *exit flow* (one more such block, then
separable convolutions to 1,536 and 2,048 channels), global average pooling and a dense layer. A
separable convolution is a 3×3 depthwise convolution followed by a 1×1 pointwise one, neither with a
bias. Input 299×299. No torchvision weights.
"""
import torch
import torch.nn as nn

from cnnviz.models._registry import register

__all__ = ["Xception", "xception", "SeparableConv2d"]


class SeparableConv2d(nn.Sequential):
    """Keras's ``SeparableConv2D`` without bias: a k×k depthwise convolution (one filter per channel, with
    the stride) followed by a 1×1 pointwise convolution to ``c_out`` channels. Padding "same" (k // 2 on
    every side) at stride 1, "valid" (none) at stride 2, where Keras's NASNet zero-pads beforehand.
    Xception's are all 3×3 with stride 1. (B, c_in, H, W) → (B, c_out, H', W')."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        padding = kernel_size // 2 if stride == 1 else 0
        self.depthwise = nn.Conv2d(c_in, c_in, kernel_size, stride, padding, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)


class _Block(nn.Module):
    """Separable convolutions each followed by batch norm (ReLU before each, except before the first when
    ``relu_first`` is False), then a 3×3 max pool with stride 2 if ``pool``, plus the shortcut: a strided 1×1
    convolution with batch norm where the block pools, else the identity."""

    def __init__(self, channels: list, *, relu_first: bool = True, pool: bool = True):
        super().__init__()
        layers = []
        for k, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
            if k > 0 or relu_first:
                layers.append(nn.ReLU())
            layers += [SeparableConv2d(c_in, c_out), nn.BatchNorm2d(c_out)]
        if pool:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.body = nn.Sequential(*layers)
        self.shortcut = (nn.Sequential(nn.Conv2d(channels[0], channels[-1], 1, stride=2, bias=False),
                                       nn.BatchNorm2d(channels[-1])) if pool else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class Xception(nn.Module):
    """Xception. Shapes, batch ``B``, at 299×299::

        (B, 3, 299, 299) → entry flow → (B, 728, 19, 19) → middle flow (8 blocks) → (B, 728, 19, 19)
        → exit flow → (B, 2048, 10, 10) = forward_features → global average pool → dense = forward_head
    """

    default_input_size = (3, 299, 299)

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU())  # no padding
        self.entry = nn.Sequential(_Block([64, 128, 128], relu_first=False), _Block([128, 256, 256]),
                                   _Block([256, 728, 728]))
        self.middle = nn.Sequential(*[_Block([728, 728, 728, 728], pool=False) for _ in range(8)])
        self.exit = nn.Sequential(_Block([728, 728, 1024]),
                                  SeparableConv2d(1024, 1536), nn.BatchNorm2d(1536), nn.ReLU(),
                                  SeparableConv2d(1536, 2048), nn.BatchNorm2d(2048), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)
        self.feature_layers = ("stem", "entry.0", "entry.1", "entry.2", "middle", "exit")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.exit(self.middle(self.entry(self.stem(x))))   # (B, 2048, H', W')

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))          # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def xception(*, num_classes: int = 1000) -> Xception:
    """Xception as Keras builds it, for 299×299 images (any side from 71 up works)."""
    return Xception(num_classes)


register("xception", xception, family="xception", paper="chollet2017xception", input_size=(3, 299, 299),
         description="Xception: 36 convolutions, all but the first two depthwise separable, in 14 residual "
                     "blocks; built as Keras builds it. No torchvision weights.")
