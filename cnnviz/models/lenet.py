"""LeNet-5, the first case study of the course: as taught today, and as published in 1998.

LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998 (``lecun1998gradient``), section II.B
and Appendix A.

- ``lenet5``: the version of today's lectures (32×32×1 input, two 5×5
  convolutions with 6 and 16 filters, 2×2 average pooling, fully connected
  120 → 84 → classes, tanh). 61,706 parameters with 10 classes.
- ``lenet5_1998``: the network of the paper, with its details: the partial
  connection table of C3, trainable subsampling, the scaled tanh and the RBF
  output units. 60,000 trainable parameters and 340,908 connections, as the
  paper counts them.
"""
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.models._registry import FeaturesThenClassifier, register

__all__ = ["LeNet5", "LeNet1998", "ScaledTanh", "Subsampling", "PartialConv2d", "RBFOutput",
           "C3_TABLE", "lenet5", "lenet5_1998", "lenet5_connections"]


# ----------------------------------------------------------------------------- as taught today

class LeNet5(FeaturesThenClassifier):
    """LeNet-5 as the lectures draw it: conv 6@5×5, avg-pool, conv 16@5×5, avg-pool, dense 120, 84, classes.

    Shapes for one 32×32 grey image, batch ``B``::

        (B, 1, 32, 32) → c1 (B, 6, 28, 28) → s2 (B, 6, 14, 14)
        → c3 (B, 16, 10, 10) → s4 (B, 16, 5, 5) = forward_features
        → fc1 (B, 120) → fc2 (B, 84) → fc3 (B, num_classes) = forward_head

    Every C3 map sees all six S2 maps and pooling has no weights: the two
    simplifications of the 1998 network (``LeNet1998``) that courses make.
    """
    default_input_size = (1, 32, 32)
    feature_layers = ("features.act1", "features.s2", "features.act3", "features.s4")

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("c1", nn.Conv2d(1, 6, kernel_size=5)),     # (B, 6, 28, 28)
            ("act1", nn.Tanh()),
            ("s2", nn.AvgPool2d(2)),                     # (B, 6, 14, 14)
            ("c3", nn.Conv2d(6, 16, kernel_size=5)),    # (B, 16, 10, 10)
            ("act3", nn.Tanh()),
            ("s4", nn.AvgPool2d(2)),                     # (B, 16, 5, 5)
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),                   # (B, 400)
            ("fc1", nn.Linear(16 * 5 * 5, 120)),
            ("act1", nn.Tanh()),
            ("fc2", nn.Linear(120, 84)),
            ("act2", nn.Tanh()),
            ("fc3", nn.Linear(84, num_classes)),         # (B, num_classes)
        ]))


# ----------------------------------------------------------------------------- the 1998 paper's pieces

class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = A·tanh(S·a)`` with A = 1.7159, S = 2/3 (Appendix A).

    The constants make f(±1) = ±1, so targets of ±1 sit where the slope is
    still large, and the gain near 0 is about 1.
    """
    A = 1.7159
    S = 2.0 / 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A * torch.tanh(self.S * x)


class Subsampling(nn.Module):
    """S2/S4: each unit sums a non-overlapping 2×2 block, times one trainable coefficient, plus one bias, per map.

    ``(B, C, H, W) → (B, C, H/2, W/2)``; 2·C parameters (12 for S2, 32 for S4).
    The paper passes the result through the sigmoid (here the next ``ScaledTanh``).
    """

    def __init__(self, channels: int, size: int = 2):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.ones(channels))  # one coefficient per map
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = F.avg_pool2d(x, self.size) * (self.size * self.size)  # (B, C, H/2, W/2)
        return block_sum * self.weight[:, None, None] + self.bias[:, None, None]


#: Table I of the paper: the S2 maps (0–5) each C3 map (0–15) takes its input from.
#: Six maps see 3 contiguous maps, six see 4 contiguous, three see 4 non-contiguous, one sees all six;
#: breaking the symmetry makes the maps learn different features, and it keeps C3 small.
C3_TABLE: Tuple[Tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class PartialConv2d(nn.Module):
    """A convolution in which output map ``o`` sees only the input maps ``table[o]`` (C3 of LeNet-5).

    One small ``Conv2d`` per output map (``maps[o]``, weight ``(1, len(table[o]), k, k)``),
    so only the connections that exist are parameters: with ``C3_TABLE`` and
    5×5 kernels, 6·(3·25+1) + 9·(4·25+1) + (6·25+1) = 1,516, the paper's count.
    ``(B, C_in, H, W) → (B, len(table), H-k+1, W-k+1)``.
    """

    def __init__(self, table: Sequence[Sequence[int]], kernel_size: int):
        super().__init__()
        self.table = tuple(tuple(int(c) for c in inputs) for inputs in table)
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, kernel_size) for inputs in self.table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x[:, list(inputs)]) for conv, inputs in zip(self.maps, self.table)], dim=1)


class RBFOutput(nn.Module):
    """The output layer: one Euclidean radial basis function unit per class, ``y_i = Σ_j (x_j − w_ij)²``.

    ``(B, in_features) → (B, num_classes)``. The paper fixes the ±1 prototypes
    ``w_i`` by hand (7×12 bitmaps of stylised characters, hence 84 = F6's
    width) and says random ±1 codes would also do; here they are random ±1,
    drawn from a fixed seed, and stored as a buffer: they are not trained,
    exactly as in the paper (its 60,000 trainable parameters exclude them).

    Returns ``−y``: the nearest prototype gets the largest logit, and the
    paper's discriminative loss (its eq. 9) is cross-entropy on these logits
    with one extra constant term, ``e^{−j}``, in the normaliser.
    """

    def __init__(self, in_features: int, num_classes: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)  # a local generator: no global seeding at build time
        codes = torch.randint(0, 2, (num_classes, in_features), generator=generator, device="cpu") * 2.0 - 1.0
        # (num_classes, in_features), moved to the default device (meta when counting)
        self.register_buffer("prototypes", codes.to(torch.empty(0).device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = ((x[:, None, :] - self.prototypes[None]) ** 2).sum(dim=-1)  # (B, num_classes)
        return -distance


def _init_lecun98(model: nn.Module) -> None:
    """Appendix A: every weight and bias uniform in ±2.4/F, F = the unit's fan-in (inputs per unit)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
        elif isinstance(module, Subsampling):
            fan_in = module.size * module.size
        else:
            continue
        for p in (module.weight, module.bias):
            nn.init.uniform_(p, -2.4 / fan_in, 2.4 / fan_in)


class LeNet1998(FeaturesThenClassifier):
    """LeNet-5 as published (LeCun et al. 1998, section II.B, Fig. 2).

    Shapes for one 32×32 image (the 28×28 MNIST digit centred, so strokes
    reach the centre of C3's receptive fields; the paper normalises pixels so
    the background is −0.1 and the ink 1.175), batch ``B``::

        (B, 1, 32, 32) → C1 (B, 6, 28, 28) → S2 (B, 6, 14, 14)
        → C3 (B, 16, 10, 10) → S4 (B, 16, 5, 5) → C5 (B, 120, 1, 1) = forward_features
        → F6 (B, 84) → RBF output (B, num_classes) = forward_head

    Trainable parameters, as the paper counts them: C1 156, S2 12, C3 1,516,
    S4 32, C5 48,120, F6 10,164 (60,000 in all; the RBF prototypes are fixed).
    C5 is a 5×5 convolution, not a fully connected layer: on a larger input it
    would slide. Every layer but the output is followed by ``ScaledTanh``.
    """
    default_input_size = (1, 32, 32)
    feature_layers = ("features.act1", "features.act2", "features.act3", "features.act4", "features.act5")

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("c1", nn.Conv2d(1, 6, kernel_size=5)),      # (B, 6, 28, 28)
            ("act1", ScaledTanh()),
            ("s2", Subsampling(6)),                       # (B, 6, 14, 14)
            ("act2", ScaledTanh()),
            ("c3", PartialConv2d(C3_TABLE, 5)),           # (B, 16, 10, 10)
            ("act3", ScaledTanh()),
            ("s4", Subsampling(16)),                      # (B, 16, 5, 5)
            ("act4", ScaledTanh()),
            ("c5", nn.Conv2d(16, 120, kernel_size=5)),   # (B, 120, 1, 1)
            ("act5", ScaledTanh()),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),                    # (B, 120)
            ("f6", nn.Linear(120, 84)),                   # (B, 84)
            ("act6", ScaledTanh()),
            ("output", RBFOutput(84, num_classes)),       # (B, num_classes)
        ]))
        _init_lecun98(self)


def lenet5_connections(num_classes: int = 10) -> Dict[str, int]:
    """The connections of each layer of ``LeNet1998``, counted as the paper does (section II.B).

    A connection is one input (or the bias) of one unit: output units × (inputs
    per unit + 1). Weight sharing makes convolutions have many more connections
    than parameters (C1: 122,304 vs 156); the RBF units have no bias
    (10 × 84 = 840). Counted from the model's shapes (built on the meta
    device, no memory), keys ``"C1", "S2", "C3", "S4", "C5", "F6", "output"``.
    """
    with torch.device("meta"):
        model = LeNet1998(num_classes=num_classes)
        x = torch.empty(1, *model.default_input_size)
    f, c = model.features, model.classifier
    layers = {"C1": f.c1, "S2": f.s2, "C3": f.c3, "S4": f.s4, "C5": f.c5, "F6": c.f6, "output": c.output}
    shapes = {}
    handles = [m.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
               for name, m in layers.items()]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    counts = {}
    for name, m in layers.items():
        shape = shapes[name]
        if isinstance(m, (nn.Conv2d, PartialConv2d)):
            # each output position repeats every map's weights and bias once
            counts[name] = shape[1] * shape[2] * sum(p.numel() for p in m.parameters())
        elif isinstance(m, Subsampling):
            counts[name] = shape[0] * shape[1] * shape[2] * (m.size * m.size + 1)
        elif isinstance(m, nn.Linear):
            counts[name] = m.out_features * (m.in_features + 1)
        else:  # RBF: every unit reads every input, no bias
            counts[name] = m.prototypes.numel()
    return counts


# ----------------------------------------------------------------------------- builders and registration

def lenet5(*, num_classes: int = 1000) -> LeNet5:
    """LeNet-5 as taught today (``LeNet5``); build it with ``num_classes=10`` for digits."""
    return LeNet5(num_classes=num_classes)


def lenet5_1998(*, num_classes: int = 1000) -> LeNet1998:
    """LeNet-5 as published in 1998 (``LeNet1998``); ``num_classes=10`` for digits."""
    return LeNet1998(num_classes=num_classes)


register("lenet5", lenet5, family="lenet", paper="lecun1998gradient", input_size=(1, 32, 32), num_classes=10,
         description="LeNet-5 as taught today: 32×32 grey input, conv 6@5×5, avg-pool, conv 16@5×5, avg-pool, "
                     "fc 120-84, tanh, 10 outputs for the 10 digits.")
register("lenet5_1998", lenet5_1998, family="lenet", paper="lecun1998gradient", input_size=(1, 32, 32), num_classes=10,
         description="LeNet-5 as published in 1998: C3's partial connection table, trainable subsampling, "
                     "scaled tanh, RBF output units; 60,000 trainable parameters for the 10 digits.")
