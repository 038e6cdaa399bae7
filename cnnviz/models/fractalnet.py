"""FractalNet (Larsson, Maire & Shakhnarovich 2017, ``larsson2017fractalnet``): ultra-deep networks without
residuals, built by repeating one expansion rule, and trained by dropping paths.

- **The expansion rule** (their Figure 1): f₁(z) = conv(z), f_{C+1}(z) = [f_C ∘ f_C](z) ⊕ conv(z), where conv
  is a 3×3 convolution (padding 1), batch norm and ReLU, and the join ⊕ is the element-wise *mean* of its
  inputs (not a sum, not a concatenation). A block f_C has C columns; column k (1 = the shallowest) has
  2^(k−1) convolutions, so the longest path has 2^(C−1) and the block 2^C − 1 in all. As in their figure
  (and the authors' Caffe generator), the joins of nested blocks that end at the same place are one join:
  f₃'s last join averages three inputs, not the mean of a mean and one more.
- **The CIFAR network** (section 4): B = 5 blocks with 64, 128, 256, 512 and 512 channels, a 2×2 max pool
  after each (32×32 → 1×1), and a linear (softmax) layer; depth B · 2^(C−1): 20 for C = 3.
  ``fractalnet20`` is the "FractalNet (20 layers)" of their Table 1, the network of the authors' generator
  (``gustavla/fractalnet``, ``FILTERS = [64, 128, 256, 512, 512]``, ``COLUMNS = 3``).
- **Drop-path** (section 3.1), in training only: *local*, each join drops each input with probability
  0.15 and averages the ones it keeps, keeping at least one (all dropped: one, at random, is kept, as the
  authors' ``FractalJoin`` layer does); *global*, one column, drawn at random, is the whole network for
  that mini-batch. The paper mixes them 50/50: each mini-batch is global with probability
  ``global_ratio`` = 0.5, else local. Masks are drawn per mini-batch from torch's global generator (seed
  it with ``torch.manual_seed``, as for ``torchvision.ops.StochasticDepth``). At test time every path is
  used: each join is the plain mean.
- **A column alone**: ``FractalNet.column(k)`` is column k as a plain chain network (their "deepest column
  alone" row is ``column(C)``), made of the fractal's own layers.

Table 1's FractalNet rows (test error, %; C10 = CIFAR-10, + standard augmentation, ++ more augmentation)::

                                            C100   C100+  C100++  C10    C10+   C10++  SVHN
    FractalNet (20 layers, 38.6M params)    35.34  23.30  22.85   10.18  5.22   5.11   2.01
      + drop-path + dropout                 28.20  23.73  23.36    7.33  4.60   4.59   1.87
        ⇒ deepest column alone              29.05  24.32  23.60    7.27  4.68   4.63   1.89
    FractalNet (40 layers, 22.9M params)†     —    22.49  21.49     —    5.24   5.21    —

(The CIFAR columns of the 20-layer rows and "38.6M" agree with a second source; the SVHN column and the
40-layer row are not confirmed by one: check them against the paper before citing them.)

**The parameter count does not match.** The paper's description gives 33.7 M parameters for the 20-layer
network (33,724,618 here: convolutions without bias, batch norm with its scale and shift, a 512 → 10 linear
layer), not the 38.6 M Table 1 prints. No reading of the description reaches 38.6 M: convolution biases with
a Caffe batch norm without scale and shift (the authors' generator) give 33.71 M, biases with affine batch
norm 33.73 M, and a 1×1 convolution widening each block's input before the fractal 38.91 M. Other
re-implementations (``osmr/imgclsmob``: 33,724,618; ``khanrc/pt.fractalnet``: "33.7M") find the same gap.
This module builds the network the paper describes and the tests pin its count, 33.7 M.

† The 40-layer network is not registered: its footnote says only that its columns start at 128, 64, 32 and 16
channels, that a linear projection widens the thinner columns before joins, and that it mixes 1×1 and 3×3
convolutions, not which are which, so its 22.9 M cannot be rebuilt. (``fractalnet(columns=4)`` is the plain
rule with four columns: 40 layers but 76 M parameters, not the paper's network.)
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from cnnviz.models._registry import register

__all__ = ["FractalNet", "FractalBlock", "FractalColumn", "Join", "ConvBNReLU", "fractalnet", "PAPER_PARAMS",
           "CIFAR_CHANNELS"]

#: The channels of the five CIFAR blocks (section 4).
CIFAR_CHANNELS = (64, 128, 256, 512, 512)

#: Parameter counts as Table 1 prints them; the 20-layer network as described has 33.7 M (module docstring).
PAPER_PARAMS = {"fractalnet20": 38.6e6, "fractalnet40": 22.9e6}


def _check_fraction(name: str, value: float, *, one: bool) -> float:
    high_ok = value <= 1 if one else value < 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value and high_ok):
        raise ValueError(f"{name} must be a probability in [0, {'1]' if one else '1)'}, got {value!r}.")
    return float(value)


class ConvBNReLU(nn.Sequential):
    """The paper's "conv" unit: a 3×3 convolution (padding 1, no bias: batch norm follows), batch norm and
    ReLU; with ``dropout`` > 0, dropout after the convolution, where the authors' Caffe puts it.
    (B, c_in, H, W) → (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers, nn.BatchNorm2d(c_out), nn.ReLU())


class Join(nn.Module):
    """The join ⊕: the element-wise mean of its ``inputs`` tensors, all of one shape (B, C, H, W) → (B, C, H, W).

    In training, with ``drop_prob`` > 0 (local drop-path), each input is dropped with probability
    ``drop_prob`` and the mean is taken over the ones kept; if all are dropped one of them, at random, is kept.
    One draw per call, that is per mini-batch, from torch's global generator; ``last_kept`` tells which
    inputs the last call kept (``None`` before any call in training). In eval mode: the plain mean.
    """

    def __init__(self, inputs: int, drop_prob: float = 0.15):
        super().__init__()
        if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 2:
            raise ValueError(f"A join averages at least 2 inputs, got {inputs!r}.")
        self.inputs = inputs
        self.drop_prob = _check_fraction("The local drop-path probability", drop_prob, one=False)
        self.last_kept = None

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}, drop_prob={self.drop_prob}"

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) != self.inputs:
            raise ValueError(f"This join averages {self.inputs} inputs, got {len(xs)}.")
        if self.training and self.drop_prob > 0:
            keep = torch.rand(len(xs)) >= self.drop_prob
            if not keep.any():
                keep[torch.randint(len(xs), ())] = True
            self.last_kept = tuple(keep.tolist())
            xs = [x for x, k in zip(xs, self.last_kept) if k]
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)                                                    # (B, C, H, W)


class FractalBlock(nn.Module):
    """f_C, built by the expansion rule: ``conv`` (a ``ConvBNReLU``, column 1) beside ``first`` and ``second``,
    two f_{C−1} one after the other (columns 2 to C), and ``join``, the mean of the C columns.
    (B, c_in, H, W) → (B, c_out, H, W). A block with one column is a single conv unit, with no join.

    ``second``'s last join is this block's ``join`` (it ends where this block ends), so ``second`` has none
    of its own: ``own_join=False``, and it is only called through its parent. ``forward(x, column=k)`` runs
    column k alone (global drop-path): its 2^(k−1) conv units, no join.
    """

    def __init__(self, c_in: int, c_out: int, columns: int, *, drop_prob: float = 0.15, dropout: float = 0.0,
                 own_join: bool = True):
        super().__init__()
        if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
            raise ValueError(f"A fractal block has a whole number of columns, at least 1, got {columns!r}.")
        self.columns = columns
        self.conv = ConvBNReLU(c_in, c_out, dropout)                           # conv(z): column 1
        if columns > 1:
            self.first = FractalBlock(c_in, c_out, columns - 1, drop_prob=drop_prob, dropout=dropout)
            self.second = FractalBlock(c_out, c_out, columns - 1, drop_prob=drop_prob, dropout=dropout,
                                       own_join=False)
            if own_join:
                self.join = Join(columns, drop_prob)

    def column_layers(self, k: int) -> List[nn.Module]:
        """The conv units of column ``k`` (1 = the shallowest, one unit; C = the deepest, 2^(C−1)), in order."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.columns:
            raise ValueError(f"Columns are numbered 1 (the shallowest) to {self.columns} (the deepest), got {k!r}.")
        if k == 1:
            return [self.conv]
        return self.first.column_layers(k - 1) + self.second.column_layers(k - 1)

    def paths(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The inputs of this block's last join, column 1 first: conv(x), then ``second``'s on ``first``(x)."""
        if self.columns == 1:
            return [self.conv(x)]
        return [self.conv(x), *self.second.paths(self.first(x))]

    def forward(self, x: torch.Tensor, column: Optional[int] = None) -> torch.Tensor:
        if column is not None:                                                 # global drop-path: one column
            for layer in self.column_layers(column):
                x = layer(x)
            return x
        if self.columns == 1:
            return self.conv(x)
        if not hasattr(self, "join"):
            raise RuntimeError("This block's last join belongs to the block around it; call that one.")
        return self.join(*self.paths(x))                                       # (B, c_out, H, W)


class FractalNet(nn.Module):
    """FractalNet for CIFAR: ``len(channels)`` fractal blocks of ``columns`` columns, each followed by a 2×2
    max pool, and a linear layer. Shapes, batch ``B``, for the paper's network at 32×32::

        (B, 3, 32, 32) → block1 → (B, 64, 32, 32) → pool1 → (B, 64, 16, 16) → ... → block5 → (B, 512, 2, 2)
        → pool5 → (B, 512, 1, 1) = forward_features → flatten, linear → (B, num_classes) = forward_head

    In training, each mini-batch is a global drop-path one (one column, drawn uniformly, for every block) with
    probability ``global_ratio``, else a local one (each join drops inputs with ``local_drop``);
    ``global_ratio=0`` gives local drop-path only, ``1`` global only, ``local_drop=0`` and ``global_ratio=0``
    none. ``last_column`` is the column the last training mini-batch ran (``None``: all, locally dropped).
    ``forward(x, column=k)`` runs column k alone, in training or at test time. ``dropout``: one rate per block
    (the paper's "+ dropout" runs use 0, 0.1, 0.2, 0.3 and 0.4).
    """

    default_input_size = (3, 32, 32)

    def __init__(self, columns: int = 3, channels: Sequence[int] = CIFAR_CHANNELS, *, local_drop: float = 0.15,
                 global_ratio: float = 0.5, dropout: Optional[Sequence[float]] = None, num_classes: int = 10):
        super().__init__()
        if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
            raise ValueError(f"A FractalNet has a whole number of columns, at least 1, got {columns!r}.")
        channels = tuple(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be one positive whole number per block, got {channels!r}.")
        dropout = (0.0,) * len(channels) if dropout is None else tuple(dropout)
        if len(dropout) != len(channels):
            raise ValueError(f"Give one dropout rate per block: {len(dropout)} rates for {len(channels)} blocks.")
        for p in dropout:
            _check_fraction("A dropout rate", p, one=False)
        _check_fraction("The local drop-path probability", local_drop, one=False)
        self.global_ratio = _check_fraction("global_ratio, the share of global drop-path mini-batches",
                                            global_ratio, one=True)
        self.columns = columns
        self.last_column = None
        c_in = 3
        for i, (c_out, p) in enumerate(zip(channels, dropout), 1):
            self.add_module(f"block{i}", FractalBlock(c_in, c_out, columns, drop_prob=local_drop, dropout=p))
            self.add_module(f"pool{i}", nn.MaxPool2d(2))                       # (B, c_out, H/2^i, W/2^i)
            c_in = c_out
        self.fc = nn.Linear(c_in, num_classes)
        self.feature_layers = tuple(f"block{i}" for i in range(1, len(channels) + 1))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # Caffe's "xavier" filler, the authors': uniform in ±√(3 / fan_in)
                nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def depth(self) -> int:
        """Convolutions on the longest path: B · 2^(C−1)."""
        return len(self.feature_layers) * 2 ** (self.columns - 1)

    def _stages(self):
        return [(getattr(self, name), getattr(self, f"pool{name[5:]}")) for name in self.feature_layers]

    def forward_features(self, x: torch.Tensor, column: Optional[int] = None) -> torch.Tensor:
        if column is None and self.training:
            if self.global_ratio > 0 and float(torch.rand(())) < self.global_ratio:
                column = int(torch.randint(1, self.columns + 1, ()))           # global drop-path
            self.last_column = column
        for block, pool in self._stages():
            x = pool(block(x, column=column))
        return x                                                               # (B, C_last, H/2^B, W/2^B)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(f, 1))                                    # (B, num_classes)

    def forward(self, x: torch.Tensor, column: Optional[int] = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, column))

    def column(self, k: int) -> "FractalColumn":
        """Column ``k`` (1 = the shallowest, ``columns`` = the deepest) as a plain chain network: the fractal's
        own conv units, pools and linear layer, shared, not copied (``copy.deepcopy`` it for a network of
        its own). It computes what ``forward(x, column=k)`` computes."""
        for block, _ in self._stages():
            block.column_layers(k)                                             # checks k
        return FractalColumn(self, k)


class FractalColumn(nn.Module):
    """One column of a ``FractalNet`` as a chain: in each block its 2^(k−1) conv units, then the block's pool,
    and the linear layer. ``block1`` ... are ``nn.Sequential`` of the fractal's own modules.
    (B, 3, 32, 32) → (B, num_classes) like the fractal."""

    default_input_size = (3, 32, 32)

    def __init__(self, net: FractalNet, k: int):
        super().__init__()
        self.k = k
        for name, (block, pool) in zip(net.feature_layers, net._stages()):
            self.add_module(name, nn.Sequential(*block.column_layers(k)))
            self.add_module(f"pool{name[5:]}", pool)
        self.fc = net.fc
        self.feature_layers = net.feature_layers

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_layers:
            x = getattr(self, f"pool{name[5:]}")(getattr(self, name)(x))
        return x                                                               # (B, C_last, H/2^B, W/2^B)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(f, 1))                                    # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def fractalnet(columns: int = 3, *, channels: Sequence[int] = CIFAR_CHANNELS, local_drop: float = 0.15,
               global_ratio: float = 0.5, dropout: Optional[Sequence[float]] = None,
               num_classes: int = 10) -> FractalNet:
    """A CIFAR FractalNet of ``columns`` columns per block (depth 5 · 2^(columns−1): 20 for 3), with the paper's
    drop-path (local 0.15, global in half the mini-batches) in training."""
    return FractalNet(columns, channels, local_drop=local_drop, global_ratio=global_ratio, dropout=dropout,
                      num_classes=num_classes)


register("fractalnet20", fractalnet, family="fractalnet", paper="larsson2017fractalnet", input_size=(3, 32, 32),
         num_classes=10, columns=3,
         description="FractalNet, 20 layers (CIFAR): 5 fractal blocks of 3 columns (64-128-256-512-512 "
                     "channels), joins that average, drop-path in training; no residuals. 33.7 M parameters "
                     "as described (Table 1 prints 38.6 M).")
