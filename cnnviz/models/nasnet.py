"""NASNet-Mobile (Zoph et al. 2018, "Learning transferable architectures for scalable image recognition",
``zoph2018learning``): two cells found by neural architecture search on CIFAR-10, a *normal cell* that
keeps the map's size and a *reduction cell* that halves it (NASNet-A, the paper's Figure 4), stacked for
ImageNet. Each cell combines the outputs of the two cells before it (``x`` and ``p``) through five pairs
of operations (separable convolutions, 3×3 poolings, identities) whose sums are concatenated.

Built as Keras builds it (``keras.applications.NASNetMobile``, the last row of the Keras table the ResNet
lecture shows: NASNet-A 4 @ 1056), layer for layer: a 3×3 convolution with stride 2 and no padding, two
reduction cells on the stem ("stem_1", "stem_2"), then three stacks of 4 normal cells with a reduction
cell between them (filters 44, 88, 176; Keras's block ids "0"–"3", "reduce_4", "5"–"8", "reduce_8",
"9"–"12"), a ReLU, global average pooling and a dense layer. Keras's details kept:

- a separable convolution is a k×k depthwise convolution and a 1×1 pointwise one, without biases, and
  every one comes in a *separable block*: ReLU, separable conv, BN, ReLU, separable conv, BN;
- a layer with stride 2 gets Keras's ``ZeroPadding2D(correct_pad(x, k))`` and no padding of its own:
  ``k // 2`` zeros below and to the right, one fewer above and to the left where the side is even, so
  that the output has ⌈H/2⌉ rows as with 'same' padding (``KerasPad``);
- a cell first adjusts ``p`` to this cell's size and ``filters`` (``_adjust_block``): where ``p`` is
  twice as large, the factorized reduction (two 1×1 convolutions on every other pixel, the second path
  shifted by one pixel, concatenated); where only its channels differ, a 1×1 convolution;
- 3×3 average poolings with 'same' padding average over the pixels inside the map only (TensorFlow's
  rule: ``count_include_pad=False``); the reduction cell's strided poolings run on the zero-padded map;
- batch norm with Keras's momentum 0.9997 (PyTorch's ``momentum=0.0003``) and ε = 10⁻³.

Keras decides which ``_adjust_block`` branch a cell gets from the shapes of its inputs; the port builds
the branches of a 224×224 input (every reduction halving the map) and refuses, with ``InputTooSmall``,
an input so small that the maps stop shrinking (below 19×19), where Keras would build another network.
Input 224×224. Outputs are logits (Keras's model ends with a softmax). No weights. With the same weights
copied in, the port's outputs agree with Keras 3.15's (JAX backend) to 10⁻⁶, at 224×224 and at sides 32,
33, 50 and 97; its parameters, counted the Keras way, are the table's 5,326,716.
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.models._registry import register
from cnnviz.models.xception import SeparableConv2d
from cnnviz.summaries import InputTooSmall

__all__ = ["NASNet", "nasnet_mobile", "PAPER_MOBILE", "NormalCell", "ReductionCell", "SeparableConvBlock", "KerasPad",
           "FactorizedReduction", "ReLUConvBN", "MOBILE"]

#: Zoph et al. 2018, Table 2, NASNet-A (4 @ 1056): parameters and multiply-adds as printed (millions, rounded).
PAPER_MOBILE = {"params": 5.3e6, "mult_adds": 564e6}
#: Keras's ``NASNetMobile`` settings (the arguments of ``NASNet``).
MOBILE = dict(penultimate_filters=1056, num_blocks=4, stem_block_filters=32, filter_multiplier=2,
              skip_reduction=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    """Keras's ``BatchNormalization(momentum=0.9997, epsilon=1e-3)``: PyTorch's momentum is 1 − Keras's."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=3e-4)


def _correct_pad(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``KerasPad``'s padding; one node when ``torch.fx`` traces the network (``fx.wrap`` below), as
    Keras's ``ZeroPadding2D`` is one layer."""
    h, w = x.shape[-2:]
    c = kernel_size // 2
    return F.pad(x, (c - (1 - w % 2), c, c - (1 - h % 2), c))   # (left, right, top, bottom)


def _check_branch(x: torch.Tensor, p: torch.Tensor, p_larger: bool, block_id: str, kind: str) -> None:
    """Refuses an input for which Keras's ``_adjust_block`` would choose another branch than the port's
    cell has: Keras reduces ``p`` where its width differs from ``x``'s. Off the data path, and one node
    when ``torch.fx`` traces the network."""
    if (p.shape[-1] != x.shape[-1]) != p_larger:
        raise InputTooSmall(
            f"NASNet cell {block_id!r} gets maps {tuple(p.shape[-2:])} and {tuple(x.shape[-2:])} from the cells "
            "before it: the reductions have stopped halving the map, where Keras's NASNet would build another "
            "network (it asks for an input of at least 32×32).", layer=f"cells.{block_id}", kind=kind)


torch.fx.wrap("_correct_pad")
torch.fx.wrap("_check_branch")


class KerasPad(nn.Module):
    """Keras's ``ZeroPadding2D(imagenet_utils.correct_pad(x, k))``, put before a ``k``×``k`` layer with
    stride 2 and 'valid' padding: ``k // 2`` zeros below and to the right, and above and to the left
    ``k // 2`` on an odd side, ``k // 2 - 1`` on an even one. (B, C, H, W) → (B, C, H + k - 1 - (1 - H % 2),
    W + k - 1 - (1 - W % 2)); the strided layer after it then gives ⌈H/2⌉ × ⌈W/2⌉."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _correct_pad(x, self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class SeparableConvBlock(nn.Sequential):
    """Keras's ``_separable_conv_block``: ReLU, separable k×k convolution (stride ``stride``; stride 2 after
    a ``KerasPad``), BN, ReLU, separable k×k convolution (stride 1), BN.
    (B, c_in, H, W) → (B, filters, ⌈H/s⌉, ⌈W/s⌉)."""

    def __init__(self, c_in: int, filters: int, kernel_size: int = 3, stride: int = 1):
        layers = [("relu1", nn.ReLU())]
        if stride == 2:
            layers.append(("pad", KerasPad(kernel_size)))
        layers += [("sep1", SeparableConv2d(c_in, filters, kernel_size, stride)), ("bn1", _bn(filters)),
                   ("relu2", nn.ReLU()), ("sep2", SeparableConv2d(filters, filters, kernel_size)),
                   ("bn2", _bn(filters))]
        super().__init__(OrderedDict(layers))


class ReLUConvBN(nn.Sequential):
    """ReLU, 1×1 convolution without bias, BN: the cells' squeeze of ``x`` to ``filters`` channels, and
    ``_adjust_block``'s projection of ``p``. (B, c_in, H, W) → (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(OrderedDict([("relu", nn.ReLU()), ("conv", nn.Conv2d(c_in, c_out, 1, bias=False)),
                                      ("bn", _bn(c_out))]))


class _Shift(nn.Module):
    """``ZeroPadding2D(((0, 1), (0, 1)))`` then ``Cropping2D(((1, 0), (1, 0)))``: the map moved up and left
    by one pixel, a row and a column of zeros coming in at the bottom and the right. (B, C, H, W) → same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]


class FactorizedReduction(nn.Module):
    """``_adjust_block`` where ``p`` is larger than the cell's input: ReLU, then two paths that each keep
    every other pixel (a 1×1 average pool with stride 2) and apply a 1×1 convolution to ``filters // 2``
    channels, the second path on the map shifted by one pixel; concatenated, then BN.
    (B, c_in, H, W) → (B, 2·(filters // 2), ⌈H/2⌉, ⌈W/2⌉)."""

    def __init__(self, c_in: int, filters: int):
        super().__init__()
        half = filters // 2
        self.relu = nn.ReLU()
        self.path1 = nn.Sequential(OrderedDict([("pool", nn.AvgPool2d(1, stride=2)),
                                                ("conv", nn.Conv2d(c_in, half, 1, bias=False))]))
        self.path2 = nn.Sequential(OrderedDict([("shift", _Shift()), ("pool", nn.AvgPool2d(1, stride=2)),
                                                ("conv", nn.Conv2d(c_in, half, 1, bias=False))]))
        self.bn = _bn(2 * half)
        self.out_channels = 2 * half

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        p = self.relu(p)
        return self.bn(torch.cat([self.path1(p), self.path2(p)], 1))


def _avg_pool_same() -> nn.AvgPool2d:
    """Keras's ``AveragePooling2D((3, 3), strides=(1, 1), padding="same")``: the padding is not averaged."""
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class _Cell(nn.Module):
    """What both cells share: ``_adjust_block`` on ``p`` and the squeeze of ``x`` (Keras's ``*_conv_1`` and
    ``*_bn_1``) to ``filters`` channels.

    ``c_p`` is ``p``'s channels (``None`` for the first cell, which gets no ``p`` and uses ``x``);
    ``p_larger`` says whether ``p`` is twice the size of ``x`` (it comes from before a reduction). The
    adjustment is then as Keras's: none where ``p`` is ``x``, the factorized reduction where ``p`` is
    larger, a projection (``ReLUConvBN``) where only its channels differ from ``filters``, else none.
    """

    def __init__(self, c_x: int, c_p: Optional[int], filters: int, p_larger: bool, block_id: str):
        super().__init__()
        self.block_id, self.filters, self.p_larger = block_id, filters, p_larger
        if c_p is None:
            self.adjust, self.p_channels = None, c_x
        elif p_larger:
            self.adjust = FactorizedReduction(c_p, filters)
            self.p_channels = self.adjust.out_channels
        elif c_p != filters:
            self.adjust, self.p_channels = ReLUConvBN(c_p, filters), filters
        else:
            self.adjust, self.p_channels = None, c_p
        self.squeeze = ReLUConvBN(c_x, filters)

    def _adjusted(self, x: torch.Tensor, p: Optional[torch.Tensor]) -> torch.Tensor:
        """``p`` adjusted to ``x`` (``x`` itself where there is no ``p``)."""
        if p is None:
            return x
        _check_branch(x, p, self.p_larger, self.block_id, type(self).__name__)
        return p if self.adjust is None else self.adjust(p)


class NormalCell(_Cell):
    """NASNet-A's normal cell (Keras's ``_normal_a_cell``) with ``filters`` = f; h is the squeezed ``x``,
    p the adjusted ``p``:

        x1 = sep5×5(h) + sep3×3(p)      x2 = sep5×5(p) + sep3×3(p)      x3 = avg3×3(h) + p
        x4 = avg3×3(p) + avg3×3(p)      x5 = sep3×3(h) + h              output = concat(p, x1, …, x5)

    (B, c_x, H, W), (B, c_p, H', W') → (B, 6f, H, W) (H' = H, or 2H where ``p`` comes from before a
    reduction)."""

    def __init__(self, c_x: int, c_p: Optional[int], filters: int, p_larger: bool = False, block_id: str = ""):
        super().__init__(c_x, c_p, filters, p_larger, block_id)
        f, cp = filters, self.p_channels
        self.left1, self.right1 = SeparableConvBlock(f, f, 5), SeparableConvBlock(cp, f, 3)
        self.left2, self.right2 = SeparableConvBlock(cp, f, 5), SeparableConvBlock(cp, f, 3)
        self.left3 = _avg_pool_same()
        self.left4, self.right4 = _avg_pool_same(), _avg_pool_same()
        self.left5 = SeparableConvBlock(f, f, 3)
        self.out_channels = cp + 5 * f

    def forward(self, x: torch.Tensor, p: Optional[torch.Tensor]) -> torch.Tensor:
        p = self._adjusted(x, p)                                   # (B, f, H, W)
        h = self.squeeze(x)                                        # (B, f, H, W)
        x1 = self.left1(h) + self.right1(p)
        x2 = self.left2(p) + self.right2(p)
        x3 = self.left3(h) + p
        x4 = self.left4(p) + self.right4(p)
        x5 = self.left5(h) + h
        return torch.cat([p, x1, x2, x3, x4, x5], 1)               # (B, 6f, H, W)


class ReductionCell(_Cell):
    """NASNet-A's reduction cell (Keras's ``_reduction_a_cell``) with ``filters`` = f; h is the squeezed
    ``x``, h₀ the zero-padded h (``KerasPad(3)``), p the adjusted ``p``; every operation on h, h₀ or p has
    stride 2:

        x1 = sep5×5(h) + sep7×7(p)      x2 = max3×3(h₀) + sep7×7(p)     x3 = avg3×3(h₀) + sep5×5(p)
        x4 = avg3×3(x1) + x2 (stride 1) x5 = sep3×3(x1) + max3×3(h₀)    output = concat(x2, x3, x4, x5)

    (B, c_x, H, W), (B, c_p, H', W') → (B, 4f, ⌈H/2⌉, ⌈W/2⌉)."""

    def __init__(self, c_x: int, c_p: Optional[int], filters: int, p_larger: bool = False, block_id: str = ""):
        super().__init__(c_x, c_p, filters, p_larger, block_id)
        f, cp = filters, self.p_channels
        self.pad = KerasPad(3)
        self.left1, self.right1 = SeparableConvBlock(f, f, 5, 2), SeparableConvBlock(cp, f, 7, 2)
        self.left2, self.right2 = nn.MaxPool2d(3, stride=2), SeparableConvBlock(cp, f, 7, 2)
        self.left3, self.right3 = nn.AvgPool2d(3, stride=2), SeparableConvBlock(cp, f, 5, 2)
        self.left4 = _avg_pool_same()
        self.left5, self.right5 = SeparableConvBlock(f, f, 3), nn.MaxPool2d(3, stride=2)
        self.out_channels = 4 * f

    def forward(self, x: torch.Tensor, p: Optional[torch.Tensor]) -> torch.Tensor:
        p = self._adjusted(x, p)                                   # (B, c_p', H, W)
        h = self.squeeze(x)                                        # (B, f, H, W)
        h0 = self.pad(h)
        x1 = self.left1(h) + self.right1(p)                        # (B, f, ⌈H/2⌉, ⌈W/2⌉)
        x2 = self.left2(h0) + self.right2(p)
        x3 = self.left3(h0) + self.right3(p)
        x4 = self.left4(x1) + x2
        x5 = self.left5(x1) + self.right5(h0)
        return torch.cat([x2, x3, x4, x5], 1)                      # (B, 4f, ⌈H/2⌉, ⌈W/2⌉)


def _plan(penultimate_filters: int, num_blocks: int, filter_multiplier: int) -> Tuple[Tuple[str, bool, int], ...]:
    """Keras's cells in order: (block id, is a reduction cell, filters)."""
    f, m, n = penultimate_filters // 24, filter_multiplier, num_blocks
    return (("stem_1", True, f // m ** 2), ("stem_2", True, f // m),
            *((str(i), False, f) for i in range(n)), (f"reduce_{n}", True, f * m),
            *((str(n + i + 1), False, f * m) for i in range(n)), (f"reduce_{2 * n}", True, f * m ** 2),
            *((str(2 * n + i + 1), False, f * m ** 2) for i in range(n)))


class NASNet(nn.Module):
    """Keras's ``NASNet`` (NASNet-A N @ P, N = ``num_blocks``, P = ``penultimate_filters``). Shapes, batch
    ``B``, for NASNet-Mobile (4 @ 1056) at 224×224::

        (B, 3, 224, 224) → 3×3 conv (stride 2, no padding), BN = stem → (B, 32, 111, 111)
        → reduction cells stem_1, stem_2 → (B, 44, 56, 56), (B, 88, 28, 28)
        → 4 normal cells (f = 44) → (B, 264, 28, 28) → reduction cell → (B, 352, 14, 14)
        → 4 normal cells (f = 88) → (B, 528, 14, 14) → reduction cell → (B, 704, 7, 7)
        → 4 normal cells (f = 176) → (B, 1056, 7, 7) → ReLU = forward_features
        → global average pool → dense = forward_head

    Each cell takes the outputs of the two cells before it (the stem's output twice for stem_1); with
    ``skip_reduction`` (NASNet-Large) the cell after a reduction cell gets, as its ``p``, the ``p`` of the
    reduction cell instead of the reduction cell's input. ``cells`` is keyed by Keras's block ids.
    """

    default_input_size = (3, 224, 224)

    def __init__(self, num_classes: int = 1000, *, penultimate_filters: int = 1056, num_blocks: int = 4,
                 stem_block_filters: int = 32, filter_multiplier: int = 2, skip_reduction: bool = False):
        super().__init__()
        if penultimate_filters % (24 * filter_multiplier ** 2) != 0:
            raise ValueError("For NASNet-A, penultimate_filters must be a multiple of 24 · filter_multiplier², "
                             f"got {penultimate_filters} with filter_multiplier {filter_multiplier}.")
        self.stem = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(3, stem_block_filters, 3, stride=2, bias=False)), ("bn", _bn(stem_block_filters))]))
        cells = OrderedDict()
        x, p = (stem_block_filters, 0), None           # (channels, reductions so far) of the two latest inputs
        for block_id, reduction, filters in _plan(penultimate_filters, num_blocks, filter_multiplier):
            kind = ReductionCell if reduction else NormalCell
            cell = kind(x[0], None if p is None else p[0], filters, p is not None and p[1] != x[1], block_id)
            cells[block_id] = cell
            keep_p = skip_reduction and reduction and not block_id.startswith("stem")
            x, p = (cell.out_channels, x[1] + reduction), (p if keep_p else x)
        self.cells = nn.ModuleDict(cells)
        self._keep_p = frozenset(n for n in cells if skip_reduction and n.startswith("reduce"))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(x[0], num_classes)
        self.feature_layers = ("stem", *(f"cells.{n}" for n in cells), "relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, p = self.stem(x), None
        for block_id, cell in self.cells.items():
            x, p = cell(x, p), (p if block_id in self._keep_p else x)
        return self.relu(x)                                        # (B, 1056, H/32, W/32) for NASNet-Mobile

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))          # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def nasnet_mobile(*, num_classes: int = 1000) -> NASNet:
    """NASNet-Mobile (NASNet-A 4 @ 1056) as Keras builds it, for 224×224 images (any side from 19 up works)."""
    return NASNet(num_classes, **MOBILE)


register("nasnet_mobile", nasnet_mobile, family="nasnet", paper="zoph2018learning", input_size=(3, 224, 224),
         description="NASNet-Mobile (NASNet-A 4 @ 1056): the normal and reduction cells found by neural "
                     "architecture search, 12 normal and 4 reduction cells; built as Keras builds it. "
                     "No weights.")
