"""GoogLeNet and the Inception module, exactly as Table 1 of the paper (no batch norm).

Szegedy et al., "Going deeper with convolutions", CVPR 2015
(``szegedy2015going``). An Inception module runs 1×1, 3×3 and 5×5
convolutions and a 3×3 max-pool side by side on the same input and
concatenates their maps; 1×1 "bottleneck" convolutions shrink the depth
before the expensive 3×3 and 5×5 filters and after the pool, which is what
keeps GoogLeNet at about 7 M parameters and 1.6 G multiply–adds (the paper
says 1.5 G; its Table 1 prices the first layer lower, see ``TABLE1_NOTES``).

``inception_cost`` prices one module branch by branch (the lecture's naive vs
bottleneck example); ``table1`` prices every row of the paper's Table 1 from
the model itself, next to the paper's own figures in ``TABLE1``, with the
rows where they disagree explained in ``TABLE1_NOTES``.
"""
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from cnnviz.layers import conv_macs, conv_output_shape, conv_params, dense_params
from cnnviz.models._registry import register

__all__ = ["Inception", "InceptionAux", "GoogLeNet", "GoogLeNetOutputs", "InceptionCost", "LayerCost",
           "inception_cost", "table1", "table1_agrees", "INCEPTION_WIDTHS", "TABLE1", "TABLE1_NOTES", "googlenet"]


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(in_channels, out_channels, kernel_size, **kwargs)),
                                      ("relu", nn.ReLU())]))


class Inception(nn.Module):
    """One Inception module (Figure 2 of the paper), with the paper's arguments (the columns of Table 1).

    Four branches on the same input ``(B, in_channels, H, W)``, every one
    keeping ``H × W``, concatenated along the channels into
    ``(B, out_channels, H, W)``:

    - ``branch1``: 1×1 convolution, ``ch1x1`` maps;
    - ``branch2``: 1×1 reduction to ``ch3x3red`` maps, then 3×3 convolution, ``ch3x3`` maps;
    - ``branch3``: 1×1 reduction to ``ch5x5red`` maps, then 5×5 convolution, ``ch5x5`` maps;
    - ``branch4``: 3×3 max-pool (stride 1), then 1×1 projection to ``pool_proj`` maps.

    ``None`` for ``ch3x3red`` or ``ch5x5red`` drops that reduction (the 3×3 or
    5×5 filters then read all ``in_channels``), and ``None`` for ``pool_proj``
    drops the projection, so the pool passes all ``in_channels`` through: with
    all three ``None`` this is the paper's naive module (Figure 2a), whose
    output can only get deeper. Every convolution is followed by a ReLU.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: Optional[int], ch3x3: int,
                 ch5x5red: Optional[int], ch5x5: int, pool_proj: Optional[int]):
        super().__init__()
        self.branch1 = _conv_relu(in_channels, ch1x1, 1)                           # (B, ch1x1, H, W)
        self.branch2 = self._reduce_then(in_channels, ch3x3red, ch3x3, 3)          # (B, ch3x3, H, W)
        self.branch3 = self._reduce_then(in_channels, ch5x5red, ch5x5, 5)          # (B, ch5x5, H, W)
        pool = [("pool", nn.MaxPool2d(kernel_size=3, stride=1, padding=1))]
        if pool_proj is not None:
            pool += [("proj", nn.Conv2d(in_channels, pool_proj, kernel_size=1)), ("relu", nn.ReLU())]
        self.branch4 = nn.Sequential(OrderedDict(pool))                            # (B, pool_proj, H, W)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + (in_channels if pool_proj is None else pool_proj)

    @staticmethod
    def _reduce_then(in_channels, reduced, out_channels, size) -> nn.Sequential:
        layers = []
        if reduced is not None:
            layers += [("reduce", nn.Conv2d(in_channels, reduced, kernel_size=1)), ("reduce_relu", nn.ReLU())]
            in_channels = reduced
        layers += [("conv", nn.Conv2d(in_channels, out_channels, kernel_size=size, padding=size // 2)),
                   ("relu", nn.ReLU())]
        return nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (B, out_channels, H, W)


class InceptionAux(nn.Module):
    """An auxiliary classifier (section 5), on the output of inception 4a (512 maps) or 4d (528 maps).

    ``(B, C, 14, 14)`` → 5×5 average pool, stride 3 ``(B, C, 4, 4)`` → 1×1
    convolution to 128 maps + ReLU ``(B, 128, 4, 4)`` → dense 1024 + ReLU →
    dropout 70 % → dense ``num_classes``. Used only in training, where the
    paper adds 0.3 × its loss to the main loss to push gradient into the
    middle of the network; discarded at inference.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)         # (B, C, 4, 4)
        self.conv = _conv_relu(in_channels, 128, 1)               # (B, 128, 4, 4)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)  # (B, 2048)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))  # (B, num_classes)


#: The main output and the two auxiliary ones (after 4a and 4d), returned in training mode.
#: (torchvision's namedtuple of the same name orders them logits, aux_logits2, aux_logits1.)
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux1", "aux2"])

#: Table 1's Inception rows: (in_channels, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).
INCEPTION_WIDTHS: Dict[str, Tuple[int, ...]] = OrderedDict([
    ("inception3a", (192, 64, 96, 128, 16, 32, 32)),       # 28×28, out 256
    ("inception3b", (256, 128, 128, 192, 32, 96, 64)),     # 28×28, out 480
    ("inception4a", (480, 192, 96, 208, 16, 48, 64)),      # 14×14, out 512
    ("inception4b", (512, 160, 112, 224, 24, 64, 64)),     # 14×14, out 512
    ("inception4c", (512, 128, 128, 256, 24, 64, 64)),     # 14×14, out 512
    ("inception4d", (512, 112, 144, 288, 32, 64, 64)),     # 14×14, out 528
    ("inception4e", (528, 256, 160, 320, 32, 128, 128)),   # 14×14, out 832
    ("inception5a", (832, 256, 160, 320, 32, 128, 128)),   # 7×7, out 832
    ("inception5b", (832, 384, 192, 384, 48, 128, 128)),   # 7×7, out 1024
])


def _lrn() -> nn.LocalResponseNorm:
    # The paper gives no constants; these are the BVLC Caffe reproduction's (Caffe, like torch, divides alpha by n).
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1) as Table 1 and Figure 3 of the paper: 22 layers with weights, no batch norm.

    Shapes, batch ``B``::

        (B, 3, 224, 224) → conv1 7×7/2 (B, 64, 112, 112) → pool1 3×3/2 (B, 64, 56, 56) → norm1
        → conv2 1×1 64 + 3×3 192 (B, 192, 56, 56) → norm2 → pool2 (B, 192, 28, 28)
        → inception3a (B, 256, 28, 28) → 3b (B, 480, 28, 28) → pool3 (B, 480, 14, 14)
        → 4a (B, 512, 14, 14) → 4b → 4c (B, 512, 14, 14) → 4d (B, 528, 14, 14) → 4e (B, 832, 14, 14)
        → pool4 (B, 832, 7, 7) → 5a (B, 832, 7, 7) → 5b (B, 1024, 7, 7) = forward_features
        → average pool (B, 1024) → dropout 40 % → linear (B, num_classes) = forward_head

    The max-pools round up (as the authors' DistBelief and Caffe do), which
    gives Table 1's sizes; the final pool is adaptive, the paper's 7×7/1 at
    224×224. In training mode with ``aux_logits`` the forward pass returns
    ``GoogLeNetOutputs(logits, aux1, aux2)``, the auxiliary classifiers'
    logits after 4a and 4d (train with ``loss(logits) + 0.3·(loss(aux1) +
    loss(aux2))``); in eval mode it returns the logits alone. The paper does
    not give an initialisation: convolutions use He et al.'s, so the 22 layers
    can train without batch norm.
    """
    default_input_size = (3, 224, 224)
    feature_layers = ("conv1", "conv2") + tuple(INCEPTION_WIDTHS)
    _stages = ("conv1", "pool1", "norm1", "conv2", "norm2", "pool2", "inception3a", "inception3b", "pool3",
               "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "pool4",
               "inception5a", "inception5b")

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.4,
                 dropout_aux: float = 0.7):
        super().__init__()
        w = INCEPTION_WIDTHS
        self.conv1 = _conv_relu(3, 64, 7, stride=2, padding=3)                          # (B, 64, 112, 112)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)              # (B, 64, 56, 56)
        self.norm1 = _lrn()
        self.conv2 = nn.Sequential(OrderedDict([                                        # Table 1's "depth 2" row
            ("reduce", nn.Conv2d(64, 64, kernel_size=1)), ("reduce_relu", nn.ReLU()),
            ("conv", nn.Conv2d(64, 192, kernel_size=3, padding=1)), ("relu", nn.ReLU()),  # (B, 192, 56, 56)
        ]))
        self.norm2 = _lrn()
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)              # (B, 192, 28, 28)
        self.inception3a = Inception(*w["inception3a"])                                 # (B, 256, 28, 28)
        self.inception3b = Inception(*w["inception3b"])                                 # (B, 480, 28, 28)
        self.pool3 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)              # (B, 480, 14, 14)
        self.inception4a = Inception(*w["inception4a"])                                 # (B, 512, 14, 14)
        self.inception4b = Inception(*w["inception4b"])                                 # (B, 512, 14, 14)
        self.inception4c = Inception(*w["inception4c"])                                 # (B, 512, 14, 14)
        self.inception4d = Inception(*w["inception4d"])                                 # (B, 528, 14, 14)
        self.inception4e = Inception(*w["inception4e"])                                 # (B, 832, 14, 14)
        self.pool4 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)              # (B, 832, 7, 7)
        self.inception5a = Inception(*w["inception5a"])                                 # (B, 832, 7, 7)
        self.inception5b = Inception(*w["inception5b"])                                 # (B, 1024, 7, 7)
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)                                          # (B, 1024, 1, 1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)                                          # (B, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def _run(self, x: torch.Tensor, taps: Tuple[str, ...] = ()):
        tapped = {}
        for name in self._stages:
            x = getattr(self, name)(x)
            if name in taps:
                tapped[name] = x
        return x, tapped

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]  # (B, 1024, 7, 7) at 224×224

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.avgpool(f), 1)))  # (B, num_classes)

    def forward(self, x: torch.Tensor):
        if self.training and self.aux1 is not None:
            f, tapped = self._run(x, ("inception4a", "inception4d"))
            return GoogLeNetOutputs(self.forward_head(f), self.aux1(tapped["inception4a"]),
                                    self.aux2(tapped["inception4d"]))
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------- costs

@dataclass(frozen=True)
class LayerCost:
    """The cost of a layer or a group of layers on one image: MACs (multiply–accumulates, not FLOPs),
    parameters (weights and biases) and weights alone (what Table 1 of the paper counts)."""
    macs: int
    params: int
    weights: int


@dataclass(frozen=True)
class InceptionCost:
    """``inception_cost``'s answer: ``branches["branch1"]`` … ``["branch4"]`` and their ``total``."""
    branches: Dict[str, LayerCost]
    total: LayerCost
    out_channels: int
    out_shape: Tuple[int, int, int]


def _conv_cost(conv: nn.Conv2d, h: int, w: int) -> Tuple[LayerCost, Tuple[int, int, int]]:
    """A square, ungrouped convolution's cost on an (in_channels, h, w) input, from ``cnnviz.layers``."""
    c_in, c_out, f = conv.in_channels, conv.out_channels, conv.kernel_size[0]
    p, s = conv.padding[0], conv.stride[0]
    cost = LayerCost(conv_macs(c_in, h, w, c_out, f, p, s), conv_params(c_in, c_out, f, bias=conv.bias is not None),
                     conv_params(c_in, c_out, f, bias=False))
    return cost, conv_output_shape(c_in, h, w, c_out, f, p, s)


def _sum(costs) -> LayerCost:
    costs = list(costs)
    return LayerCost(sum(c.macs for c in costs), sum(c.params for c in costs), sum(c.weights for c in costs))


def inception_cost(in_channels: int, height: int, width: int, ch1x1: int, ch3x3red: Optional[int], ch3x3: int,
                   ch5x5red: Optional[int], ch5x5: int, pool_proj: Optional[int]) -> InceptionCost:
    """MACs and parameters of ``Inception(in_channels, ch1x1, ...)`` on one ``(in_channels, height, width)`` input.

    Counted branch by branch from the module's own convolutions (built on the
    meta device, so nothing is allocated) with ``cnnviz.layers.conv_macs`` and
    ``conv_params``; pooling and ReLU are free. The lecture's example, a 28×28×256
    input: naive (``None`` reductions and projection; 1×1 128, 3×3 192, 5×5 96)
    costs 854 M MACs for 672 output maps, with 64-map bottlenecks 271 M for 480.
    """
    with torch.device("meta"):
        module = Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
    branches = {}
    for name in ("branch1", "branch2", "branch3", "branch4"):
        h, w, costs = height, width, []
        for conv in getattr(module, name).modules():
            if isinstance(conv, nn.Conv2d):
                cost, (_, h, w) = _conv_cost(conv, h, w)
                costs.append(cost)
        branches[name] = _sum(costs)
    return InceptionCost(branches, _sum(branches.values()), module.out_channels, (module.out_channels, height, width))


#: Table 1 of the paper: (params in K = 1,024 weights, biases not counted; ops in M = 10⁶ multiply-adds).
TABLE1: Dict[str, Tuple[float, float]] = OrderedDict([
    ("conv1", (2.7, 34)), ("conv2", (112, 360)),
    ("inception3a", (159, 128)), ("inception3b", (380, 304)),
    ("inception4a", (364, 73)), ("inception4b", (437, 88)), ("inception4c", (463, 100)),
    ("inception4d", (580, 119)), ("inception4e", (840, 170)),
    ("inception5a", (1072, 54)), ("inception5b", (1388, 71)),
    ("linear", (1000, 1)),
])

#: Where ``table1()`` (computed from the widths of Table 1) and the paper's figures disagree, and why.
TABLE1_NOTES: Dict[str, str] = OrderedDict([
    ("conv1", "A 7×7 convolution from 3 to 64 maps has 7·7·3·64 = 9,408 weights (9.2K) and costs 118 M "
              "multiply-adds at 112×112, not 2.7K and 34 M. The paper's two figures fit a depthwise-separable "
              "7×7 convolution instead (depth multiplier 8, 1,176 weights, then 1×1 to 64 maps, 1,536 weights: "
              "2,712 weights and 34.0 M multiply-adds); the text and the depth column describe a plain "
              "convolution, which is what is built here."),
    ("inception4a", "The params figure does not follow from the row's widths, although the ops figure does "
                    "(ops = 14·14·weights)."),
    ("inception4c", "The params figure does not follow from the row's widths, although the ops figure does "
                    "(ops = 14·14·weights)."),
    ("inception4d", "The params figure does not follow from the row's widths, although the ops figure does "
                    "(ops = 14·14·weights)."),
    ("inception4e", "The params figure does not follow from the row's widths, although the ops figure does "
                    "(ops = 14·14·weights)."),
    ("inception5a", "Neither figure follows from the row's widths, but they agree with each other "
                    "(7·7·1072K ≈ 54 M): they seem to describe another version of the module. The widths "
                    "give 5a's 832 output maps, which 5b needs."),
    ("inception5b", "The params figure does not follow from the row's widths, although the ops figure does "
                    "(ops = 7·7·weights)."),
])


def table1(num_classes: int = 1000) -> Dict[str, LayerCost]:
    """Every row of Table 1 with weights, computed from ``GoogLeNet`` at 224×224 (one image, aux excluded).

    Rows as in ``TABLE1``: ``"conv1"``, ``"conv2"`` (the 1×1 + 3×3 pair),
    ``"inception3a"`` … ``"inception5b"``, ``"linear"``. Each convolution is
    priced on the input it really gets (recorded by forward hooks on the meta
    device, removed afterwards) with ``cnnviz.layers``.
    """
    with torch.device("meta"):
        model = GoogLeNet(num_classes=num_classes, aux_logits=False).eval()
        x = torch.empty(1, *model.default_input_size)
    inputs = {}
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(lambda m, i, o, name=name: inputs.__setitem__(name, tuple(i[0].shape[2:])))
               for name, m in convs]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    rows = OrderedDict((row, []) for row in TABLE1 if row != "linear")
    for name, conv in convs:
        rows[name.split(".")[0]].append(_conv_cost(conv, *inputs[name])[0])
    table = OrderedDict((row, _sum(costs)) for row, costs in rows.items())
    fc = model.fc
    table["linear"] = LayerCost(fc.in_features * fc.out_features, dense_params(fc.in_features, fc.out_features),
                                dense_params(fc.in_features, fc.out_features, bias=False))
    return table


def table1_agrees(row: str, computed: LayerCost) -> Tuple[bool, bool]:
    """Whether ``computed`` matches the paper's (params, ops) of ``row``, to within one unit of the last
    printed digit (the paper rounds unevenly: 379.0K is printed 380K, 438.0K as 437K)."""
    params_k, ops_m = TABLE1[row]
    return abs(computed.weights / 1024 - params_k) <= 1, abs(computed.macs / 1e6 - ops_m) <= 1


# ----------------------------------------------------------------------------- builder and registration

def googlenet(*, num_classes: int = 1000, aux_logits: bool = True) -> GoogLeNet:
    """GoogLeNet as in Table 1 (``GoogLeNet``), with the two auxiliary classifiers unless ``aux_logits=False``."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits)


register("googlenet", googlenet, family="googlenet", paper="szegedy2015going", input_size=(3, 224, 224),
         description="GoogLeNet (Inception v1) as Table 1 of the paper: nine Inception modules, response "
                     "normalisation, no batch norm, auxiliary classifiers in training; no pretrained weights "
                     "(torchvision's GoogLeNet has batch norm).")
