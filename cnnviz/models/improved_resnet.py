"""The improved ResNets of the lecture: wide, ResNeXt, squeeze-and-excitation, stochastic depth.

- **Wide ResNet** (Zagoruyko & Komodakis 2016, ``zagoruyko2016wide``): ``wrn28_10`` is the CIFAR
  WRN-d-k of their Table 1 (pre-activation blocks of two 3×3 convolutions, 16k, 32k and 64k filters,
  a 1×1 projection where the shape changes); ``wide_resnet50_2`` is ResNet-50 with every bottleneck's
  inner width doubled, torchvision's network and weights.
- **ResNeXt** (Xie et al. 2017, ``xie2017aggregated``): the bottleneck's 3×3 convolution split into
  ``groups`` parallel paths of ``width_per_group`` channels (cardinality × width: "32×4d");
  ``resnext50_32x4d`` and ``resnext101_32x8d`` are torchvision's, with weights.
- **SE-ResNet** (Hu et al. 2018, ``hu2018squeeze``): a squeeze-and-excitation gate
  (``torchvision.ops.SqueezeExcitation``: global average pool, a 1×1 layer to C/r channels, ReLU, a 1×1
  layer back to C, sigmoid) rescales each bottleneck's channels before the addition; reduction
  ratio r = 16, the stride on the first 1×1 convolution as in ResNet v1.
- **Stochastic depth** (Huang et al. 2016, ``huang2016deep``): the CIFAR ResNet-110 whose residual
  branches are dropped at random in training, block l of L kept with probability
  p_l = 1 − (l / L)(1 − p_L), p_L = 0.5 (their linear decay rule), for the whole mini-batch
  (``torchvision.ops.StochasticDepth``, mode "batch", which scales a kept branch by 1/p_l so
  that the test-time network is the plain sum: the identity on every shortcut, all blocks used).

Module names follow torchvision where torchvision has the network, so its state dicts load.
"""
import torch
import torch.nn as nn
from torchvision import models as tvm
from torchvision.models import resnet as tv
from torchvision.ops import SqueezeExcitation, StochasticDepth

from cnnviz.models._registry import register
from cnnviz.models.resnet import _IMAGENET_BLOCKS, BasicBlockCifar, BottleneckV1, CifarResNet, ResNet, _conv3x3

__all__ = ["wide_resnet_imagenet", "resnext", "se_resnet", "SEBottleneck", "WideResNet", "wide_resnet_cifar",
           "stochastic_depth_resnet", "StochasticDepthBlock", "survival_probabilities", "PAPER_PARAMS"]

#: Parameter counts as the papers print them: WRN's Table 4 (CIFAR-10, millions), SENet's Table 2
#: (SE-ResNet-50, millions, beside ResNet-50's 25.6).
PAPER_PARAMS = {"wrn28_10": 36.5e6, "wrn40_4": 8.9e6, "wrn16_8": 11.0e6, "se_resnet50": 28.1e6}


# ---------------------------------------------------------------- ImageNet: wide, ResNeXt, SE

def wide_resnet_imagenet(depth: int = 50, *, widen: int = 2, num_classes: int = 1000) -> ResNet:
    """ResNet-``depth`` (50 or 101) with every bottleneck's inner width multiplied by ``widen``
    (torchvision's ``wide_resnet50_2`` for 50 and 2)."""
    return resnext(depth, groups=1, width_per_group=64 * widen, num_classes=num_classes)


def resnext(depth: int = 50, *, groups: int = 32, width_per_group: int = 4, num_classes: int = 1000) -> ResNet:
    """ResNeXt-``depth`` (50, 101 or 152) of cardinality ``groups`` and ``width_per_group`` channels per path:
    torchvision's bottleneck (stride on the 3×3, "v1.5") with a grouped 3×3 convolution."""
    if depth not in _IMAGENET_BLOCKS or depth < 50:
        raise ValueError(f"ResNeXt and wide ResNets use bottlenecks: depth 50, 101 or 152, got {depth!r}.")
    for name, value in (("groups", groups), ("width_per_group", width_per_group)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return ResNet(tv.Bottleneck, _IMAGENET_BLOCKS[depth], groups=groups, width_per_group=width_per_group,
                  num_classes=num_classes)


class SEBottleneck(BottleneckV1):
    """ResNet v1's bottleneck with a squeeze-and-excitation gate on its output, before the addition
    (Hu et al. 2018, their Figure 3)."""

    reduction = 16

    def __init__(self, inplanes, planes, *args, **kwargs):
        super().__init__(inplanes, planes, *args, **kwargs)
        channels = planes * self.expansion
        self.se = SqueezeExcitation(channels, channels // self.reduction)   # (B, C, H, W) → same, rescaled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


def se_resnet(depth: int = 50, *, num_classes: int = 1000) -> ResNet:
    """SE-ResNet-``depth`` (50, 101 or 152): ResNet v1 with an SE gate (r = 16) in every bottleneck."""
    if depth not in _IMAGENET_BLOCKS or depth < 50:
        raise ValueError(f"SE-ResNet here uses bottlenecks: depth 50, 101 or 152, got {depth!r}.")
    return ResNet(SEBottleneck, _IMAGENET_BLOCKS[depth], num_classes=num_classes)


# ---------------------------------------------------------------- CIFAR: WRN-d-k

class WideBlock(nn.Module):
    """WRN's pre-activation block B(3,3): BN-ReLU-3×3 conv (stride s), BN-ReLU-(dropout)-3×3 conv, plus the
    input, or a 1×1 convolution of the activated input where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU()
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.bn1(x))
        out = self.conv2(self.dropout(self.relu(self.bn2(self.conv1(a)))))  # (B, C_out, H/s, W/s)
        return out + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    """WRN-d-k for CIFAR (Zagoruyko & Komodakis 2016, Table 1): a 3×3 convolution to 16 channels, three
    groups of (d − 4)/6 wide blocks with 16k, 32k and 64k filters (stride 2 into groups 2 and 3), BN-ReLU,
    global average pooling and a linear classifier."""

    default_input_size = (3, 32, 32)

    def __init__(self, depth: int = 28, widen: int = 10, *, dropout: float = 0.0, num_classes: int = 10):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"A WRN has depth 6n + 4 (n blocks in each of 3 groups, plus the first convolution, "
                             f"the shortcut projections' count excluded, and the classifier), e.g. 16, 28 or 40; "
                             f"got {depth!r}.")
        if isinstance(widen, bool) or not isinstance(widen, int) or widen < 1:
            raise ValueError(f"The widening factor k must be a whole number of at least 1, got {widen!r}.")
        n = (depth - 4) // 6
        self.conv1 = _conv3x3(3, 16)                                             # (B, 16, H, W)
        channels = 16
        for i, stride in enumerate((1, 2, 2)):
            out = 16 * 2 ** i * widen
            blocks = [WideBlock(channels if j == 0 else out, out, stride if j == 0 else 1, dropout) for j in range(n)]
            self.add_module(f"group{i + 1}", nn.Sequential(*blocks))             # (B, 16k·2^i, H/2^i, W/2^i)
            channels = out
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.feature_layers = ("conv1", "group1", "group2", "group3", "relu")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.group3(self.group2(self.group1(self.conv1(x))))
        return self.relu(self.bn(x))                                             # (B, 64k, H/4, W/4)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))                        # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def wide_resnet_cifar(depth: int = 28, widen: int = 10, *, dropout: float = 0.0, num_classes: int = 10) -> WideResNet:
    """WRN-``depth``-``widen`` for 32×32 images (dropout between the convolutions of a block if given: the
    paper's 0.3 in its best runs)."""
    return WideResNet(depth, widen, dropout=dropout, num_classes=num_classes)


# ---------------------------------------------------------------- CIFAR: stochastic depth

def survival_probabilities(blocks: int, p_last: float = 0.5) -> list:
    """Huang et al.'s linear decay rule: block l of L (1-based) is kept with p_l = 1 − (l / L)(1 − p_L)."""
    if not 0 < p_last <= 1:
        raise ValueError(f"p_L, the last block's survival probability, must be in (0, 1], got {p_last!r}.")
    return [1 - (l / blocks) * (1 - p_last) for l in range(1, blocks + 1)]


class StochasticDepthBlock(BasicBlockCifar):
    """The CIFAR ResNet's basic block whose residual branch is dropped, for the whole mini-batch, with
    probability 1 − ``survival`` in training; the shortcut always passes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, survival: float = 1.0):
        super().__init__(in_channels, out_channels, stride)
        self.survival = survival
        self.drop = StochasticDepth(1 - survival, mode="batch")  # identity at test time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.drop(branch) + identity)


def stochastic_depth_resnet(depth: int = 110, *, p_last: float = 0.5, num_classes: int = 10) -> CifarResNet:
    """The CIFAR ResNet-``depth`` (6n + 2) with stochastic depth: its blocks' survival probabilities fall
    linearly from 1 to ``p_last`` (0.5 in the paper)."""
    from cnnviz.models.resnet import cifar_resnet
    net = cifar_resnet(depth, num_classes=num_classes)          # checks the depth; gives the layout and init
    places = [(stage, k) for stage in (net.layer1, net.layer2, net.layer3) for k in range(len(stage))]
    for p, (stage, k) in zip(survival_probabilities(len(places), p_last), places):
        old = stage[k]
        new = StochasticDepthBlock(old.conv1.in_channels, old.conv2.out_channels, old.conv1.stride[0], survival=p)
        new.load_state_dict(old.state_dict())                   # the same initial weights
        stage[k] = new
    return net


# ---------------------------------------------------------------- registration

def _register_all() -> None:
    family = "improved_resnet"
    imagenet = dict(family=family, input_size=(3, 224, 224))
    register("wide_resnet50_2", wide_resnet_imagenet, paper="zagoruyko2016wide", depth=50, widen=2,
             weights=tvm.Wide_ResNet50_2_Weights.IMAGENET1K_V1, **imagenet,
             description="WRN-50-2: ResNet-50 with every bottleneck's inner width doubled; torchvision's network "
                         "and weights.")
    register("resnext50_32x4d", resnext, paper="xie2017aggregated", depth=50, groups=32, width_per_group=4,
             weights=tvm.ResNeXt50_32X4D_Weights.IMAGENET1K_V1, **imagenet,
             description="ResNeXt-50 (32×4d): ResNet-50 whose 3×3 convolutions are split into 32 groups of 4 "
                         "channels per unit of width; torchvision's network and weights.")
    register("resnext101_32x8d", resnext, paper="xie2017aggregated", depth=101, groups=32, width_per_group=8,
             weights=tvm.ResNeXt101_32X8D_Weights.IMAGENET1K_V1, **imagenet,
             description="ResNeXt-101 (32×8d); torchvision's network and weights.")
    register("se_resnet50", se_resnet, paper="hu2018squeeze", depth=50, **imagenet,
             description="SE-ResNet-50: ResNet-50 (v1) with a squeeze-and-excitation gate (r = 16) in every "
                         "bottleneck. No torchvision weights.")
    cifar = dict(family=family, input_size=(3, 32, 32), num_classes=10)
    register("wrn28_10", wide_resnet_cifar, paper="zagoruyko2016wide", depth=28, widen=10, **cifar,
             description="WRN-28-10 for CIFAR: 3 groups of 4 pre-activation wide blocks, 160-320-640 filters.")
    register("resnet110_stochastic_depth", stochastic_depth_resnet, paper="huang2016deep", depth=110, **cifar,
             description="CIFAR ResNet-110 with stochastic depth: residual branches dropped in training with the "
                         "linear decay rule (p_L = 0.5); all blocks at test time.")


_register_all()
