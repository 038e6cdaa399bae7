"""ResNet (He et al. 2016): the ImageNet ResNets, torchvision's v1.5 variant, and the CIFAR ResNets.

- ``resnet18`` ... ``resnet152``: ImageNet ResNet v1 as published (Table 1 of
  the paper, projection shortcuts where the shape changes: option B). The
  bottleneck block downsamples with its *first* 1×1 convolution, as in the
  paper and the original Caffe models.
- ``resnet50_tv`` ... ``resnet152_tv``: torchvision's ResNets ("v1.5"), whose
  bottleneck downsamples with the 3×3 convolution instead. Same parameters,
  more multiply-adds; these are the ones torchvision's ImageNet weights fit.
  For 18 and 34 layers (basic blocks) v1 and v1.5 are the same network.
- ``cifar_resnet(depth, ...)``: the CIFAR-10 networks of the paper's section
  4.2 (``resnet20`` ... ``resnet110``), their plain twins (``plain20`` ...) and
  the pre-activation ResNets of He et al. 2016, "Identity mappings"
  (``preact_resnet20`` ... ``preact_resnet164``).

Module and key names follow torchvision (``conv1``, ``bn1``, ``layer1`` ...
``layer4``, ``downsample.0``, ``fc``), so torchvision's state dicts load.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet as tv

from cnnviz.models._registry import register

__all__ = ["ResNet", "BottleneckV1", "imagenet_resnet", "CifarResNet", "ShortcutA", "BasicBlockCifar",
           "PreActBlock", "PreActBottleneck", "BottleneckCifar", "cifar_resnet", "TABLE1_FLOPS",
           "TABLE1_NOTES", "TABLE6_PARAMS"]

# Table 1 of He et al. 2016, row "FLOPs" (224×224 input): what the paper calls FLOPs are multiply-adds.
TABLE1_FLOPS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}
# cnnviz's count (torch.utils.flop_counter: convolutions and the fc layer; MACs = FLOPs / 2),
# pinned in tests/test_models_resnet_densenet.py:
#   v1   (resnet18 ... resnet152):   1.814, 3.664, 3.858, 7.570, 11.282 G
#   v1.5 (resnet50_tv ... _tv):      4.089, 7.801, 11.514 G (torchvision's documented "GFLOPS")
TABLE1_NOTES = (
    "Computed v1 multiply-adds round to Table 1 for ResNet-18, -101 and -152 (1.8, 7.6, 11.3 G). "
    "ResNet-34 computes to 3.66 G, not 3.6: the paper's 3.6 G first appears in section 3.3 as the cost of "
    "the 34-layer plain baseline, and the plain net (without the three 1x1 projection shortcuts, "
    "0.019 G) computes to 3.645 G, which does round to 3.6; the table seems to reuse it. ResNet-50 computes "
    "to 3.86 G, not 3.8 (1.5 % more); we know of no accounting that reproduces 3.8 exactly (leaving out the "
    "stride-1 projection of conv2_x, 0.051 G, would). The fc layer adds only 0.5 M (18, 34) or 2 M MACs. "
    "torchvision's v1.5 bottleneck (stride on the 3x3) costs 6 % (50) to 2 % (152) more than v1: "
    "4.09, 7.80, 11.51 G.")

# Table 6 of He et al. 2016: parameters of the CIFAR-10 ResNets, in millions.
TABLE6_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6, 1202: 19.4e6}


# ---------------------------------------------------------------- ImageNet ResNets


class BottleneckV1(tv.Bottleneck):
    """The bottleneck block of the paper: 1×1 (stride s) → 3×3 → 1×1, then add the shortcut and ReLU.

    torchvision's ``Bottleneck`` puts the stride on the 3×3 convolution ("v1.5");
    the paper and the original Caffe models put it on the first 1×1. We build
    torchvision's block and move the stride: same layers and keys, the 3×3
    then runs on the already subsampled map (cheaper, and slightly less accurate).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv1.stride, self.conv2.stride = self.conv2.stride, (1, 1)


class ResNet(tv.ResNet):
    """torchvision's ``ResNet`` with cnnviz's model contract (see ``cnnviz.models._registry``)."""

    default_input_size = (3, 224, 224)
    # "relu" ends the stem (conv1-bn1-relu, the paper's conv1 at 112×112); the max pool opens conv2_x.
    feature_layers = ("relu", "layer1", "layer2", "layer3", "layer4")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        x = self.maxpool(x)                     # (B, 64, H/4, W/4)
        x = self.layer1(x)                      # (B, 64·e, H/4, W/4)   e = 1 (basic) or 4 (bottleneck)
        x = self.layer2(x)                      # (B, 128·e, H/8, W/8)
        x = self.layer3(x)                      # (B, 256·e, H/16, W/16)
        return self.layer4(x)                   # (B, 512·e, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_IMAGENET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def imagenet_resnet(depth: int, *, v1_5: bool = False, num_classes: int = 1000) -> ResNet:
    """The ImageNet ResNet of ``depth`` 18, 34, 50, 101 or 152 layers (Table 1 of He et al. 2016).

    ``v1_5=True`` gives torchvision's bottleneck (stride on the 3×3), which its
    ImageNet weights fit; it changes nothing for 18 and 34 layers (basic blocks).
    """
    if depth not in _IMAGENET_BLOCKS:
        raise ValueError(f"The ImageNet ResNets have 18, 34, 50, 101 or 152 layers, got {depth!r}.")
    if depth < 50:
        block = tv.BasicBlock
    else:
        block = tv.Bottleneck if v1_5 else BottleneckV1
    return ResNet(block, _IMAGENET_BLOCKS[depth], num_classes=num_classes)


# ---------------------------------------------------------------- CIFAR ResNets (section 4.2)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class ShortcutA(nn.Module):
    """Option A of the paper: the identity, subsampled by ``stride`` and zero-padded to ``out_channels``.

    No parameters: the extra channels of the output are zeros.
    """

    def __init__(self, out_channels: int, stride: int = 1):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]             # (B, C, H/s, W/s)
        extra = self.out_channels - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x  # (B, out_channels, H/s, W/s)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, stride={self.stride}"


class BasicBlockCifar(nn.Module):
    """Two 3×3 conv-BN layers, the shortcut added before the last ReLU (Figure 2 of the paper).

    ``residual=False`` drops the shortcut: the block of the plain twin.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, residual: bool = True):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = ShortcutA(out_channels, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class BottleneckCifar(nn.Module):
    """1×1 → 3×3 (stride s) → 1×1 conv-BN layers with 4× wider output, shortcut before the last ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, residual: bool = True):
        super().__init__()
        mid = out_channels // self.expansion
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = _conv3x3(mid, mid, stride)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = ShortcutA(out_channels, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class PreActBlock(nn.Module):
    """The full pre-activation unit of He et al. 2016, "Identity mappings" (their Figure 4e):
    BN-ReLU-conv, BN-ReLU-conv, then add the shortcut, with nothing after the addition."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, residual: bool = True):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU()
        self.shortcut = ShortcutA(out_channels, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))    # (B, C_out, H/s, W/s)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x) if self.shortcut is not None else out


class PreActBottleneck(nn.Module):
    """The pre-activation bottleneck: BN-ReLU-1×1, BN-ReLU-3×3 (stride s), BN-ReLU-1×1 (4× wider), + shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, residual: bool = True):
        super().__init__()
        mid = out_channels // self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = _conv3x3(mid, mid, stride)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = ShortcutA(out_channels, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self.shortcut(x) if self.shortcut is not None else out


class CifarResNet(nn.Module):
    """3×3 conv, three stages of ``n`` blocks (width, 2·width, 4·width filters; stride 2 between stages),
    global average pooling and a fully connected layer: the CIFAR-10 networks of He et al. 2016, §4.2."""

    default_input_size = (3, 32, 32)

    def __init__(self, block: type, blocks_per_stage: int, *, width: int = 16, in_channels: int = 3,
                 num_classes: int = 10, residual: bool = True):
        super().__init__()
        preact = block in (PreActBlock, PreActBottleneck)
        expansion = getattr(block, "expansion", 1)
        # pre-activation nets start with a bare convolution: the first block normalises and activates it
        stem = [_conv3x3(in_channels, width)] + ([] if preact else [nn.BatchNorm2d(width), nn.ReLU()])
        self.stem = nn.Sequential(*stem)                                       # (B, width, H, W)
        channels = width
        for i, stride in enumerate((1, 2, 2)):
            out_channels = width * 2 ** i * expansion
            layers = []
            for j in range(blocks_per_stage):
                layers.append(block(channels, out_channels, stride if j == 0 else 1, residual=residual))
                channels = out_channels
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))           # (B, out_channels, H/2^i, W/2^i)
        # pre-activation nets end with BN-ReLU, since their blocks end with an addition
        self.final_bn_relu = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU()) if preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.feature_layers = ("stem", "layer1", "layer2", "layer3") + (("final_bn_relu",) if preact else ())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. 2015 initialisation, as the paper says
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))  # (B, 4·width·e, H/4, W/4)
        return self.final_bn_relu(x) if self.final_bn_relu is not None else x

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))       # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def cifar_resnet(depth: int, *, plain: bool = False, preact: bool = False, bottleneck: bool = False,
                 width: int = 16, in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """A CIFAR ResNet of ``depth`` weighted layers (He et al. 2016, section 4.2).

    With basic blocks ``depth = 6n + 2`` (20, 32, 44, 56, 110, 1202): 3 stages of
    ``n`` blocks of two 3×3 layers, with ``width``, ``2·width``, ``4·width``
    filters on maps of H, H/2, H/4 (32, 16, 8 for CIFAR). Shortcuts are option A
    (identity, subsampled and zero-padded: no parameters). ``plain=True`` removes
    the shortcuts (the plain twin, same parameters); ``preact=True`` uses the
    pre-activation unit of He et al. 2016, "Identity mappings";
    ``bottleneck=True`` uses 1×1-3×3-1×1 blocks with 4× wider outputs, and
    then ``depth = 9n + 2`` (164, 1001). Any input of at least 4×4 works.
    """
    per_block = 3 if bottleneck else 2
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3 * per_block + 2 \
            or (depth - 2) % (3 * per_block):
        examples = "29, 47, 164 or 1001" if bottleneck else "20, 32, 44, 56, 110 or 1202"
        kind = "bottleneck blocks of three" if bottleneck else "basic blocks of two"
        raise ValueError(f"A CIFAR ResNet with {kind} layers has depth {3 * per_block}n + 2 (n blocks in each of "
                         f"3 stages, plus the first convolution and the classifier), e.g. {examples}; got {depth!r}.")
    if preact:
        block = PreActBottleneck if bottleneck else PreActBlock
    else:
        block = BottleneckCifar if bottleneck else BasicBlockCifar
    return CifarResNet(block, (depth - 2) // (3 * per_block), width=width, in_channels=in_channels,
                       num_classes=num_classes, residual=not plain)


# ---------------------------------------------------------------- weights and registration


_PAPER, _PREACT_PAPER = "he2016deep", "he2016identity"
_TV_WEIGHTS = {18: tv.ResNet18_Weights.IMAGENET1K_V1, 34: tv.ResNet34_Weights.IMAGENET1K_V1,
               50: tv.ResNet50_Weights.IMAGENET1K_V1, 101: tv.ResNet101_Weights.IMAGENET1K_V1,
               152: tv.ResNet152_Weights.IMAGENET1K_V1}


def _register_all() -> None:
    imagenet = dict(family="resnet", paper=_PAPER, input_size=(3, 224, 224))
    for depth in (18, 34):  # basic blocks: v1 = v1.5, torchvision's weights fit both names
        text = f"ResNet-{depth}, basic blocks (Table 1); identical to torchvision's resnet{depth}."
        register(f"resnet{depth}", imagenet_resnet, description=text, weights=_TV_WEIGHTS[depth],
                 depth=depth, **imagenet)
    for depth in (50, 101, 152):
        register(f"resnet{depth}", imagenet_resnet, weights=None, depth=depth, **imagenet,
                 description=f"ResNet-{depth} v1 as published: bottleneck with the stride on its first 1x1 "
                             f"convolution. No weights exist for it; for ImageNet weights use resnet{depth}_tv.")
    for depth in (18, 34):
        register(f"resnet{depth}_tv", imagenet_resnet, weights=_TV_WEIGHTS[depth], depth=depth, v1_5=True,
                 **imagenet, description=f"torchvision's resnet{depth}; the same network as resnet{depth}.")
    for depth in (50, 101, 152):
        register(f"resnet{depth}_tv", imagenet_resnet, weights=_TV_WEIGHTS[depth], depth=depth, v1_5=True,
                 **imagenet, description=f"torchvision's resnet{depth} (v1.5): stride on the 3x3 convolution of "
                                         "the bottleneck; more multiply-adds than v1, same parameters.")
    cifar = dict(family="resnet", input_size=(3, 32, 32), num_classes=10)
    for depth in (20, 32, 44, 56, 110):
        register(f"resnet{depth}", cifar_resnet, paper=_PAPER, depth=depth, **cifar,
                 description=f"CIFAR-10 ResNet-{depth} (section 4.2): {(depth - 2) // 6} basic blocks per stage, "
                             "16-32-64 filters, option A (parameter-free) shortcuts.")
    for depth in (20, 32, 44, 56, 110):
        register(f"plain{depth}", cifar_resnet, paper=_PAPER, depth=depth, plain=True, **cifar,
                 description=f"The plain twin of resnet{depth}: the same layers without shortcuts.")
    for depth in (20, 32, 44, 56, 110):
        register(f"preact_resnet{depth}", cifar_resnet, paper=_PREACT_PAPER, depth=depth, preact=True, **cifar,
                 description=f"CIFAR-10 ResNet-{depth} with full pre-activation units (BN-ReLU-conv).")
    register("resnet164", cifar_resnet, paper=_PREACT_PAPER, depth=164, bottleneck=True, **cifar,
             description="CIFAR-10 ResNet-164 with bottleneck blocks and the original (post-activation) unit.")
    register("preact_resnet164", cifar_resnet, paper=_PREACT_PAPER, depth=164, bottleneck=True, preact=True,
             **cifar, description="CIFAR-10 ResNet-164, pre-activation bottleneck blocks (1.7M parameters).")


_register_all()


# ---------------------------------------------------------------- for the book: blocks, stages, shortcuts

# He et al. 2016, "Identity mappings", Table 2 (also the homework's table): CIFAR-10 test error in %
# of ResNet-110 and ResNet-164 for five arrangements of the residual unit (their Figure 4 a-e).
PREACT_TABLE2 = {
    "original (conv-BN-ReLU, ReLU after the addition)": (6.61, 5.93),
    "BN after addition": (8.17, 6.50),
    "ReLU before addition": (7.84, 6.14),
    "ReLU-only pre-activation": (6.71, 5.91),
    "full pre-activation (BN-ReLU-conv)": (6.37, 5.46),
}
# The Keras applications table of the ResNet lecture: parameters as Keras counts them, that is with
# BatchNorm's moving mean and variance (not trained) and with a bias in every convolution.
KERAS_PARAMS = {"resnet50": 25_636_712, "resnet101": 44_707_176, "resnet152": 60_419_944}

_BLOCKS = {"basic": tv.BasicBlock, "bottleneck": BottleneckV1}


def residual_block(kind: str, in_channels: int, width: int, stride: int = 1, *, v1_5: bool = False) -> nn.Module:
    """One residual block of the ImageNet ResNets, as ``imagenet_resnet`` builds it.

    ``kind="basic"``: two 3×3 convolutions with ``width`` filters; output ``width``
    channels. ``kind="bottleneck"``: 1×1 to ``width``, 3×3 with ``width``, 1×1 to
    ``4·width`` channels (v1: stride on the first 1×1; ``v1_5=True``: on the 3×3).
    Where the shape changes (``stride > 1`` or other output channels) the shortcut
    is a 1×1 projection with batch norm (option B of He et al. 2016), else the identity.
    Input ``(B, in_channels, H, W)``, output ``(B, width·e, H/stride, W/stride)``.
    """
    if kind not in _BLOCKS:
        raise ValueError(f"kind must be 'basic' or 'bottleneck', got {kind!r}.")
    block = tv.Bottleneck if kind == "bottleneck" and v1_5 else _BLOCKS[kind]
    out_channels = width * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    return block(in_channels, width, stride, downsample)


def all_projections(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose every residual block has a projection shortcut: option C of He et al. 2016.

    Blocks that already project (option B: where the shape changes) are kept;
    the others get a 1×1 convolution and batch norm (``C_in·C_out + 2·C_out``
    parameters) instead of the identity. ``model`` itself is not changed.
    Works on the ImageNet ResNets and on single ``residual_block``s.
    """
    import copy
    model = copy.deepcopy(model)
    for block in model.modules():
        if isinstance(block, (tv.BasicBlock, tv.Bottleneck)) and block.downsample is None:
            out_channels = (block.bn3 if isinstance(block, tv.Bottleneck) else block.bn2).num_features
            with torch.device(block.conv1.weight.device):
                block.downsample = nn.Sequential(nn.Conv2d(block.conv1.in_channels, out_channels, 1, bias=False),
                                                 nn.BatchNorm2d(out_channels))
    return model


from dataclasses import dataclass  # noqa: E402  (kept with the helpers that use it)
from typing import Optional, Tuple  # noqa: E402

_PAPER_STAGES = (("conv1", ("conv1", "bn1", "relu")), ("conv2_x", ("maxpool", "layer1")), ("conv3_x", ("layer2",)),
                 ("conv4_x", ("layer3",)), ("conv5_x", ("layer4",)), ("fc", ("avgpool", "fc")))


@dataclass(frozen=True)
class Stage:
    """One row of Table 1 of He et al. 2016, computed from a model.

    ``layers`` are the (kernel size, filters) of the convolutions of one block of
    the stage (of the stem for ``conv1``; empty for ``fc``); ``blocks`` how many
    blocks the stage stacks. ``output_shape`` is (C, H, W) or (classes,);
    ``params`` and ``macs`` (multiply–accumulates, FLOPs / 2) add up the stage's
    layers for one image; ``receptive_field`` is the side in input pixels of what
    one unit at the end of the stage sees (``None`` for ``fc``).
    """
    name: str
    output_shape: Tuple[int, ...]
    blocks: int
    layers: Tuple[Tuple[int, int], ...]
    params: int
    macs: int
    receptive_field: Optional[int]


def stages(model: "ResNet", input_size=(3, 224, 224), *, precomputed=None):
    """The rows of Table 1 (conv1, conv2_x ... conv5_x, fc) of an ImageNet ResNet, computed with ``cnnviz.summary``.

    ``precomputed``: ``summary(model, input_size)``, if you already have it (saves a forward pass).
    The max pool is counted in conv2_x, as in the paper's table; the fc row
    holds the global average pooling and the classifier.
    """
    from cnnviz.summaries import summary
    if not isinstance(model, ResNet):
        raise TypeError(f"stages() describes the ImageNet ResNets (cnnviz.models.resnet.ResNet), "
                        f"not {type(model).__name__}.")
    table = precomputed if precomputed is not None else summary(model, input_size)
    rows = {r.name: r for r in table.group(1).rows}
    result = []
    for name, members in _PAPER_STAGES:
        parts = [rows[m] for m in members]
        if name == "conv1":
            blocks, convs = 0, [model.conv1]
        elif name == "fc":
            blocks, convs = 0, []
        else:
            layer = getattr(model, members[-1])
            blocks = len(layer)
            convs = [m for n, m in layer[0].named_children() if n.startswith("conv")]
        fields = [p.receptive_field for p in parts if p.receptive_field is not None and name != "fc"]
        result.append(Stage(name, parts[-1].output_shape, blocks,
                            tuple((c.kernel_size[0], c.out_channels) for c in convs),
                            sum(p.params for p in parts), sum(p.macs for p in parts), fields[-1] if fields else None))
    return result


__all__ += ["PREACT_TABLE2", "KERAS_PARAMS", "residual_block", "all_projections", "Stage", "stages"]
