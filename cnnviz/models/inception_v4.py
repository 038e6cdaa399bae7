"""Inception-v4 (Szegedy et al. 2017, ``szegedy2017inception``): the Inception design made uniform and
deeper, without residual connections.

As the paper's Figures 3-9 draw it: the stem (Figure 3: three convolutions, then three places where a
pooling or convolution branch and a convolution branch run side by side and are concatenated; 35×35×384),
4 Inception-A modules (Figure 4), Reduction-A (Figure 7, k, l, m, n = 192, 224, 256, 384; 17×17×1,024),
7 Inception-B modules (Figure 5), Reduction-B (Figure 8; 8×8×1,536), 3 Inception-C modules (Figure 6),
global average pooling, dropout (keep 0.8) and a dense layer. Every convolution has no bias and is
followed by batch norm and ReLU; the average pools of the modules do not count the padding. Input
299×299. No torchvision weights.
"""
import torch
import torch.nn as nn

from cnnviz.models._inception_parts import _Branches, _cbr, _stack, _Stages
from cnnviz.models._registry import register

__all__ = ["InceptionV4", "inception_v4", "MODULES"]

#: (stage, number of modules) as the paper's Figure 9 stacks them.
MODULES = (("inception_a", 4), ("inception_b", 7), ("inception_c", 3))


def _pool_branch(c_in: int, c_out: int) -> nn.Sequential:
    return _stack(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _cbr(c_in, c_out, 1))


def _inception_a(c: int = 384) -> nn.Module:
    return _Branches(_cbr(c, 96, 1),
                     _stack(_cbr(c, 64, 1), _cbr(64, 96, 3)),
                     _stack(_cbr(c, 64, 1), _cbr(64, 96, 3), _cbr(96, 96, 3)),
                     _pool_branch(c, 96))                                               # → 384


def _inception_b(c: int = 1024) -> nn.Module:
    return _Branches(_cbr(c, 384, 1),
                     _stack(_cbr(c, 192, 1), _cbr(192, 224, (1, 7)), _cbr(224, 256, (7, 1))),
                     _stack(_cbr(c, 192, 1), _cbr(192, 192, (7, 1)), _cbr(192, 224, (1, 7)),
                            _cbr(224, 224, (7, 1)), _cbr(224, 256, (1, 7))),
                     _pool_branch(c, 128))                                              # → 1,024


class _SplitPair(nn.Module):
    """A 1×3 and a 3×1 convolution side by side on the same input, concatenated (Figure 6's ends)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.a, self.b = _cbr(c_in, c_out, (1, 3)), _cbr(c_in, c_out, (3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1)


def _inception_c(c: int = 1536) -> nn.Module:
    return _Branches(_cbr(c, 256, 1),
                     _stack(_cbr(c, 384, 1), _SplitPair(384, 256)),
                     _stack(_cbr(c, 384, 1), _cbr(384, 448, (3, 1)), _cbr(448, 512, (1, 3)), _SplitPair(512, 256)),
                     _pool_branch(c, 256))                                              # → 1,536


class InceptionV4(_Stages):
    """Inception-v4. Shapes, batch ``B``, at 299×299::

        (B, 3, 299, 299) → stem → (B, 384, 35, 35) → 4 × A → reduction A → (B, 1024, 17, 17) → 7 × B
        → reduction B → (B, 1536, 8, 8) → 3 × C = forward_features → global average pool → dense = forward_head
    """

    default_input_size = (3, 299, 299)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            _cbr(3, 32, 3, 2, "valid"), _cbr(32, 32, 3, padding="valid"), _cbr(32, 64, 3),
            _Branches(nn.MaxPool2d(3, 2), _cbr(64, 96, 3, 2, "valid")),                            # → 160
            _Branches(_stack(_cbr(160, 64, 1), _cbr(64, 96, 3, padding="valid")),
                      _stack(_cbr(160, 64, 1), _cbr(64, 64, (1, 7)), _cbr(64, 64, (7, 1)),
                             _cbr(64, 96, 3, padding="valid"))),                                    # → 192
            _Branches(_cbr(192, 192, 3, 2, "valid"), nn.MaxPool2d(3, 2)))                           # → 384
        self.inception_a = nn.Sequential(*[_inception_a() for _ in range(4)])
        self.reduction_a = _Branches(_cbr(384, 384, 3, 2, "valid"),                               # n = 384
                                     _stack(_cbr(384, 192, 1), _cbr(192, 224, 3), _cbr(224, 256, 3, 2, "valid")),
                                     nn.MaxPool2d(3, 2))                                           # → 1,024
        self.inception_b = nn.Sequential(*[_inception_b() for _ in range(7)])
        self.reduction_b = _Branches(_stack(_cbr(1024, 192, 1), _cbr(192, 192, 3, 2, "valid")),
                                     _stack(_cbr(1024, 256, 1), _cbr(256, 256, (1, 7)), _cbr(256, 320, (7, 1)),
                                            _cbr(320, 320, 3, 2, "valid")),
                                     nn.MaxPool2d(3, 2))                                           # → 1,536
        self.inception_c = nn.Sequential(*[_inception_c() for _ in range(3)])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1536, num_classes)
        self.feature_layers = ("stem", "inception_a", "reduction_a", "inception_b", "reduction_b", "inception_c")

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.avgpool(f), 1)))   # (B, num_classes)


def inception_v4(*, num_classes: int = 1000) -> InceptionV4:
    """Inception-v4 for 299×299 images (any side from 75 up works)."""
    return InceptionV4(num_classes)


register("inception_v4", inception_v4, family="googlenet", paper="szegedy2017inception", input_size=(3, 299, 299),
         description="Inception-v4: 14 uniform Inception modules and two reductions on a 35/17/8 grid, no "
                     "residual connections; built from the paper's figures. No torchvision weights.")
