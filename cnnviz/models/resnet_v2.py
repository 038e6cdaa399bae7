"""ResNet V2 as Keras builds it (``keras.applications.ResNet50V2`` …): the pre-activation ResNets of He et
al. 2016, "Identity mappings in deep residual networks" (``he2016identity``), for ImageNet.

Each bottleneck is BN-ReLU first; the shortcut leaves from that pre-activated input when it needs a 1×1
projection (the first block of a stage) and from the raw input otherwise, subsampled by a 1×1 max pool
where the block strides. Keras puts a stage's stride on its *last* block (the 3×3 convolution), not its
first, and gives the stem convolution, the shortcut projections and each bottleneck's last 1×1
convolution a bias. The network ends with BN-ReLU, global average pooling and a dense layer. Padding is
Keras's explicit zero padding (also before the stem's max pool). No torchvision weights.
"""
import torch
import torch.nn as nn

from cnnviz.models._registry import register

__all__ = ["PreActBottleneckV2", "ResNetV2", "resnet_v2", "STAGES"]

#: Blocks per stage (filters 64, 128, 256, 512) of Keras's ResNet50V2, ResNet101V2 and ResNet152V2.
STAGES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class PreActBottleneckV2(nn.Module):
    """Keras's ``block2``: BN-ReLU, 1×1 to ``width``, BN-ReLU, 3×3 (stride s), BN-ReLU, 1×1 to 4·``width``
    (with bias), plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, *, projection: bool = False):
        super().__init__()
        out = width * self.expansion
        self.preact = nn.Sequential(nn.BatchNorm2d(in_channels, eps=1.001e-5), nn.ReLU())
        if projection:
            self.shortcut = nn.Conv2d(in_channels, out, 1, stride=stride)            # from the pre-activation
        else:
            self.shortcut = nn.MaxPool2d(1, stride=stride) if stride > 1 else None   # from the raw input
        self.projection = projection
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width, eps=1.001e-5), nn.ReLU(),
            nn.ZeroPad2d(1), nn.Conv2d(width, width, 3, stride=stride, bias=False),
            nn.BatchNorm2d(width, eps=1.001e-5), nn.ReLU(),
            nn.Conv2d(width, out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.preact(x)
        if self.projection:
            shortcut = self.shortcut(a)
        else:
            shortcut = x if self.shortcut is None else self.shortcut(x)
        return shortcut + self.body(a)


class ResNetV2(nn.Module):
    """Keras's ResNet V2. Shapes, batch ``B``::

        (B, 3, 224, 224) → zero-pad 3, 7×7 conv (stride 2), zero-pad 1, 3×3 max pool (stride 2) → (B, 64, 56, 56)
        → stages of pre-activation bottlenecks, each but the last ending with a stride 2
        → BN-ReLU → (B, 2048, 7, 7) = forward_features → global average pool → dense = forward_head
    """

    default_input_size = (3, 224, 224)

    def __init__(self, depth: int = 50, num_classes: int = 1000):
        super().__init__()
        if depth not in STAGES:
            raise ValueError(f"Keras's ResNet V2 has 50, 101 or 152 layers, got {depth!r}.")
        self.stem = nn.Sequential(nn.ZeroPad2d(3), nn.Conv2d(3, 64, 7, stride=2),
                                  nn.ZeroPad2d(1), nn.MaxPool2d(3, stride=2))
        channels = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), STAGES[depth])):
            last_stride = 2 if i < 3 else 1
            layers = []
            for j in range(blocks):
                stride = last_stride if j == blocks - 1 else 1
                layers.append(PreActBottleneckV2(channels, width, stride, projection=(j == 0)))
                channels = width * 4
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))
        self.post = nn.Sequential(nn.BatchNorm2d(channels, eps=1.001e-5), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.depth = depth
        self.feature_layers = ("stem", "stage1", "stage2", "stage3", "stage4", "post")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.post(x)                                       # (B, 2048, H/32, W/32)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))         # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def resnet_v2(depth: int = 50, *, num_classes: int = 1000) -> ResNetV2:
    """Keras's ResNet``depth``V2 (50, 101 or 152)."""
    return ResNetV2(depth, num_classes)


for _depth in STAGES:
    register(f"resnet{_depth}_v2", resnet_v2, family="resnet", paper="he2016identity", input_size=(3, 224, 224),
             depth=_depth,
             description=f"ResNet-{_depth} V2 as Keras builds it: pre-activation bottlenecks (He et al., "
                         "'Identity mappings'), the stride on each stage's last block. No torchvision weights.")
del _depth
