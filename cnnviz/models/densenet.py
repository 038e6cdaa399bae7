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
             input_size=(3, 32, 32), num_classes=10, depth=100, growth_rate=12,
             description="CIFAR DenseNet-BC (L=100, k=12): 3 dense blocks of 16 bottleneck layers, 0.8M parameters.")


_register_all()


# ---------------------------------------------------------------- for the book: channels, stages, concatenations

from dataclasses import dataclass  # noqa: E402  (kept with the helpers that use it)
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

# The Keras applications table of the ResNet lecture: parameters as Keras counts them, that is with
# BatchNorm's moving mean and variance (not trained) on top of torchvision's count.
KERAS_PARAMS = {"densenet121": 8_062_504, "densenet169": 14_307_880, "densenet201": 20_242_984}
# Table 2 of Huang et al. 2017: parameters of the three CIFAR DenseNet-BC networks, keyed by (depth L, growth rate k).
TABLE2_BC_PARAMS = {(100, 12): 0.8e6, (250, 24): 15.3e6, (190, 40): 25.6e6}


def block_channels(block_config: Sequence[int], *, growth_rate: int = 32, num_init_features: int = 64,
                   compression: float = 0.5) -> List[Tuple[int, int, Optional[int]]]:
    """Channels in and out of each dense block, and after the transition that follows it.

    A block of n layers turns c channels into c + n·k (k = ``growth_rate``); a
    transition keeps floor(θ·m) of its m channels (θ = ``compression``), none
    after the last block. DenseNet-121: ``[(64, 256, 128), (128, 512, 256),
    (256, 1024, 512), (512, 1024, None)]``.
    """
    result, channels = [], num_init_features
    for i, layers in enumerate(block_config):
        out = channels + layers * growth_rate
        after = int(compression * out) if i < len(block_config) - 1 else None
        result.append((channels, out, after))
        channels = after
    return result


_STAGE_NAMES = {"conv0": "Convolution", "norm0": "Convolution", "relu0": "Convolution", "pool0": "Pooling",
                "norm5": "Classification", "classifier": "Classification"}


@dataclass(frozen=True)
class Stage:
    """One row of Table 1 of Huang et al. 2017, computed from a model.

    ``layers`` counts the bottleneck layers of a dense block (0 elsewhere);
    ``in_channels``/``output_shape`` are what the stage receives and makes;
    ``params`` and ``macs`` (multiply–accumulates, FLOPs / 2) add up its layers
    for one image; ``receptive_field`` is in input pixels (``None`` for the classifier).
    """
    name: str
    in_channels: int
    output_shape: Tuple[int, ...]
    layers: int
    params: int
    macs: int
    receptive_field: Optional[int]


def stages(model: DenseNet, input_size=None, *, precomputed=None) -> List[Stage]:
    """The rows of Table 1 (Convolution, Pooling, Dense Block (1), Transition Layer (1), ..., Classification)
    of a DenseNet, computed with ``cnnviz.summary`` on ``input_size`` (default: the model's own).

    ``precomputed``: that summary, if you already have it (saves a forward pass).
    The classification row holds the final batch norm, the global average
    pooling and the fully connected layer. The CIFAR networks have no Pooling row.
    """
    from cnnviz.summaries import summary
    if not isinstance(model, DenseNet):
        raise TypeError(f"stages() describes cnnviz's DenseNets, not {type(model).__name__}.")
    table = precomputed if precomputed is not None else summary(model, tuple(input_size or model.default_input_size))
    result: List[Stage] = []
    channels = table.input_size[0]
    for row in table.group(2).rows:
        short = row.name.split(".")[-1]
        match = re.fullmatch(r"(denseblock|transition)(\d+)", short)
        if match:
            name = f"{'Dense Block' if match[1] == 'denseblock' else 'Transition Layer'} ({match[2]})"
        else:
            name = _STAGE_NAMES.get(short, short)
        layers = len(model.get_submodule(row.name)) if match and match[1] == "denseblock" else 0
        field = row.receptive_field if name != "Classification" else None
        if result and result[-1].name == name:  # another layer of the same row (conv0, norm0, relu0)
            last = result[-1]
            result[-1] = Stage(name, last.in_channels, row.output_shape, last.layers, last.params + row.params,
                               last.macs + row.macs, field if field is not None else last.receptive_field)
        else:
            result.append(Stage(name, channels, row.output_shape, layers, row.params, row.macs, field))
        channels = row.output_shape[0]
    return result


def concatenated_inputs(summary) -> Dict[str, int]:
    """Elements (per image) of the concatenated tensors a DenseNet builds in each dense block.

    Every layer of a block concatenates all earlier maps into a new tensor before
    its batch norm (its input: c₀ + (l−1)·k channels for layer l), and the block
    concatenates once more for its output: memory that grows with the square of
    the number of layers, and that ``Summary.activation_bytes`` leaves out
    (made outside leaf modules). ``summary`` is ``cnnviz.summary`` of a DenseNet;
    the keys are the blocks' names (``"features.denseblock1"``, ...).
    """
    totals: Dict[str, int] = {}
    for row in summary.rows:
        match = re.fullmatch(r"(.*denseblock\d+)\.denselayer\d+\.norm1", row.name)
        if match:
            totals[match[1]] = totals.get(match[1], 0) + row.activations
    for row in summary.group(2).rows:  # the block's output is one more concatenation
        if row.name in totals:
            totals[row.name] += row.activations
    return totals


__all__ += ["KERAS_PARAMS", "TABLE2_BC_PARAMS", "block_channels", "Stage", "stages", "concatenated_inputs"]
