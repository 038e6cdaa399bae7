"""Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception architecture", ``szegedy2016rethinking``).

GoogLeNet's successor: the 5×5 convolutions of the Inception module factorised into two 3×3 ones, n×n
convolutions into 1×n followed by n×1 (n = 7 in the 17×17 modules), grid reductions that pool and
convolve side by side, batch norm after every convolution, and one auxiliary classifier. Input
299×299. torchvision's network and ImageNet weights; its ``transform_input`` is on, as torchvision
sets it for those weights (they expect inputs scaled to [−1, 1]; the model converts the usual
ImageNet normalisation to that).
"""
import torch
from torchvision import models as tvm

from cnnviz.models._registry import register

__all__ = ["InceptionV3", "inception_v3", "STAGES"]

#: The module kinds in order, with the grid they work on (torchvision's names; the paper's Figures 5-7, 10).
STAGES = (("Mixed_5b", "35×35, Figure 5"), ("Mixed_5c", "35×35, Figure 5"), ("Mixed_5d", "35×35, Figure 5"),
          ("Mixed_6a", "grid reduction 35 → 17, Figure 10"), ("Mixed_6b", "17×17, Figure 6 (n = 7)"),
          ("Mixed_6c", "17×17, Figure 6 (n = 7)"), ("Mixed_6d", "17×17, Figure 6 (n = 7)"),
          ("Mixed_6e", "17×17, Figure 6 (n = 7)"), ("Mixed_7a", "grid reduction 17 → 8"),
          ("Mixed_7b", "8×8, Figure 7"), ("Mixed_7c", "8×8, Figure 7"))


class InceptionV3(tvm.Inception3):
    """torchvision's ``Inception3`` with cnnviz's model contract; its state dict is torchvision's.

    ``forward`` is torchvision's (in training mode it also returns the auxiliary logits, like GoogLeNet's);
    in eval mode it equals ``forward_head(forward_features(x))``. Shapes, batch ``B``::

        (B, 3, 299, 299) → stem (five convolutions, two max pools) → (B, 192, 35, 35)
        → 3 × Figure-5 modules → reduction → 4 × Figure-6 modules → reduction → 2 × Figure-7 modules
        → (B, 2048, 8, 8) = forward_features → global average pool → dense = forward_head
    """

    default_input_size = (3, 299, 299)
    feature_layers = ("maxpool1", "maxpool2") + tuple(name for name, _ in STAGES)

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = True):
        super().__init__(num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input,
                         init_weights=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2") + tuple(name for name, _ in STAGES):
            x = getattr(self, name)(x)
        return x                                                  # (B, 2048, H', W'), 8×8 at 299×299

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.dropout(self.avgpool(f)), 1))   # (B, num_classes)


def inception_v3(*, num_classes: int = 1000, aux_logits: bool = True) -> InceptionV3:
    """Inception-v3 for 299×299 images (any side from 75 up works), with its auxiliary classifier."""
    return InceptionV3(num_classes=num_classes, aux_logits=aux_logits)


register("inception_v3", inception_v3, family="googlenet", paper="szegedy2016rethinking", input_size=(3, 299, 299),
         weights=tvm.Inception_V3_Weights.IMAGENET1K_V1,
         description="Inception-v3: factorised Inception modules, batch norm, one auxiliary classifier, 299×299 "
                     "input; torchvision's network and weights.")
