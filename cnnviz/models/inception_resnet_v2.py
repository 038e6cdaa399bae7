"""Inception-ResNet-v2 (Szegedy et al. 2017, ``szegedy2017inception``): Inception modules whose output is
added to their input, as in a ResNet.

Built as Keras builds it (``keras.applications.InceptionResNetV2``, a row of the lecture's table), layer for
layer: a stem of five convolutions and two max pools (35×35×192), an Inception module to 320 channels,
10 Inception-ResNet-A blocks (35×35), a reduction to 17×17×1,088, 20 Inception-ResNet-B blocks, a
reduction to 8×8×2,080, 10 Inception-ResNet-C blocks, a 1×1 convolution to 1,536 channels, global average
pooling and a dense layer. Each residual block concatenates its branches, projects them back to the
block's width with a 1×1 convolution (with bias, no batch norm) and adds that, **scaled** (by 0.17, 0.1
and 0.2 in the three kinds of block: the paper's remedy for instability), to the input. Every other
convolution has no bias and is followed by batch norm and ReLU (Keras's batch norm has no scale γ there;
PyTorch's has one, which ``cnnviz.accuracy.keras_count`` takes into account). Input 299×299. No
torchvision weights.
"""
import torch
import torch.nn as nn

from cnnviz.models._inception_parts import _Branches, _cbr, _stack, _Stages
from cnnviz.models._registry import register

__all__ = ["InceptionResNetV2", "inception_resnet_v2", "BLOCKS"]

#: (kind, number of blocks, residual scale) of the three residual stages.
BLOCKS = (("A", 10, 0.17), ("B", 20, 0.1), ("C", 10, 0.2))


class ResidualInception(nn.Module):
    """An Inception-ResNet block of ``kind`` "A" (35×35), "B" (17×17) or "C" (8×8) on ``channels`` channels:
    x + scale · up(concat(branches(x))), then ReLU unless ``last``."""

    def __init__(self, kind: str, channels: int, scale: float, *, last: bool = False):
        super().__init__()
        if kind == "A":
            self.mixed = _Branches(_cbr(channels, 32, 1),
                                   _stack(_cbr(channels, 32, 1), _cbr(32, 32, 3)),
                                   _stack(_cbr(channels, 32, 1), _cbr(32, 48, 3), _cbr(48, 64, 3)))
            mixed = 32 + 32 + 64
        elif kind == "B":
            self.mixed = _Branches(_cbr(channels, 192, 1),
                                   _stack(_cbr(channels, 128, 1), _cbr(128, 160, (1, 7)), _cbr(160, 192, (7, 1))))
            mixed = 192 + 192
        else:
            self.mixed = _Branches(_cbr(channels, 192, 1),
                                   _stack(_cbr(channels, 192, 1), _cbr(192, 224, (1, 3)), _cbr(224, 256, (3, 1))))
            mixed = 192 + 256
        self.up = nn.Conv2d(mixed, channels, 1)       # with bias, no batch norm, no activation
        self.scale = scale
        self.relu = nn.Identity() if last else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.scale * self.up(self.mixed(x)))


class InceptionResNetV2(_Stages):
    """Inception-ResNet-v2. Shapes, batch ``B``, at 299×299::

        (B, 3, 299, 299) → stem → (B, 192, 35, 35) → mixed_5b → (B, 320, 35, 35) → 10 × A
        → mixed_6a → (B, 1088, 17, 17) → 20 × B → mixed_7a → (B, 2080, 8, 8) → 10 × C
        → 1×1 conv → (B, 1536, 8, 8) = forward_features → global average pool → dense = forward_head
    """

    default_input_size = (3, 299, 299)

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, 32, 3, 2, "valid"), _cbr(32, 32, 3, padding="valid"), _cbr(32, 64, 3),
                                  nn.MaxPool2d(3, 2), _cbr(64, 80, 1, padding="valid"),
                                  _cbr(80, 192, 3, padding="valid"), nn.MaxPool2d(3, 2))
        self.mixed_5b = _Branches(_cbr(192, 96, 1),
                                  _stack(_cbr(192, 48, 1), _cbr(48, 64, 5)),
                                  _stack(_cbr(192, 64, 1), _cbr(64, 96, 3), _cbr(96, 96, 3)),
                                  _stack(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _cbr(192, 64, 1)))
        self.block_a = nn.Sequential(*[ResidualInception("A", 320, 0.17) for _ in range(10)])
        self.mixed_6a = _Branches(_cbr(320, 384, 3, 2, "valid"),
                                  _stack(_cbr(320, 256, 1), _cbr(256, 256, 3), _cbr(256, 384, 3, 2, "valid")),
                                  nn.MaxPool2d(3, 2))
        self.block_b = nn.Sequential(*[ResidualInception("B", 1088, 0.1) for _ in range(20)])
        self.mixed_7a = _Branches(_stack(_cbr(1088, 256, 1), _cbr(256, 384, 3, 2, "valid")),
                                  _stack(_cbr(1088, 256, 1), _cbr(256, 288, 3, 2, "valid")),
                                  _stack(_cbr(1088, 256, 1), _cbr(256, 288, 3), _cbr(288, 320, 3, 2, "valid")),
                                  nn.MaxPool2d(3, 2))
        self.block_c = nn.Sequential(*[ResidualInception("C", 2080, 0.2) for _ in range(9)],
                                     ResidualInception("C", 2080, 1.0, last=True))
        self.conv_7b = _cbr(2080, 1536, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1536, num_classes)
        self.feature_layers = ("stem", "mixed_5b", "block_a", "mixed_6a", "block_b", "mixed_7a", "block_c", "conv_7b")

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))          # (B, num_classes)


def inception_resnet_v2(*, num_classes: int = 1000) -> InceptionResNetV2:
    """Inception-ResNet-v2 as Keras builds it, for 299×299 images (any side from 75 up works)."""
    return InceptionResNetV2(num_classes)


register("inception_resnet_v2", inception_resnet_v2, family="googlenet", paper="szegedy2017inception",
         input_size=(3, 299, 299),
         description="Inception-ResNet-v2: 40 scaled residual Inception blocks on a 35/17/8 grid; built as Keras "
                     "builds it. No torchvision weights.")
