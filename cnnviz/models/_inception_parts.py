"""Building blocks shared by the Keras-style Inception networks (Inception-v4, Inception-ResNet-v2)."""
import torch
import torch.nn as nn


def _cbr(c_in: int, c_out: int, kernel, stride: int = 1, padding="same") -> nn.Sequential:
    """Keras's ``conv2d_bn``: a convolution without bias, batch norm (eps 1e-3), ReLU; "same" or "valid"."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (kh // 2, kw // 2) if padding == "same" else 0
    return nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), stride=stride, padding=pad, bias=False),
                         nn.BatchNorm2d(c_out, eps=1e-3), nn.ReLU())


class _Branches(nn.Module):
    """Parallel branches applied to one input, their outputs concatenated along the channels."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def _stack(*layers) -> nn.Sequential:
    return nn.Sequential(*layers)


class _Stages(nn.Module):
    """The model contract for networks that run the modules named in ``feature_layers`` one after the other:
    ``forward_features`` is that chain; subclasses give ``forward_head``."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_layers:
            x = getattr(self, name)(x)
        return x                                                   # (B, C', H', W')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
