"""Zeiler & Fergus's deconvnet, guided backpropagation, receptive boxes and the top activations of a layer.

Zeiler & Fergus, "Visualizing and understanding convolutional networks",
ECCV 2014 (``zeiler2014visualizing``; arXiv 1311.2901, 2013), section 2.1:
to see what excites one unit, keep only its activation, and run it back to
pixel space through the layers below: max *unpooling* with the switches
(argmax positions) recorded on the way up, rectification, and the layer's
filters transposed. Their figure 2 shows, for a few channels per layer, the
9 strongest units over the validation set, each as its deconvnet projection
beside the image patch that the unit sees: ``top_activations`` computes both.

Springenberg et al., "Striving for simplicity: the all convolutional net",
ICLR 2015 workshop, section 3.4: guided backpropagation, the gradient with
the ReLU rules of backpropagation *and* of the deconvnet combined
(``guided_backprop``, through captum).

Every function works on any ``nn.Module`` (the explicit deconvnet on chains
of layers, captum for the rest; see ``deconvnet``), leaves no hook behind,
restores the model's train/eval flags and returns tensors on the model's device.
"""
import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from cnnviz.features import _Stop, _activations, _input
from cnnviz.probe import check_channel, eval_mode, get_layer, model_device, preprocessing
from cnnviz.summaries import _tensors  # the tensors in nested arguments

__all__ = ["deconvnet", "guided_backprop", "strongest_unit", "receptive_box", "top_activations", "TopActivations"]

Box = Tuple[int, int, int, int]


# ----------------------------------------------------------------------------- units

def strongest_unit(maps: torch.Tensor, channel: int) -> Tuple[int, int]:
    """(row, col) of the largest activation of ``channel`` in ``maps`` (C, H, W); the first one on a tie."""
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a (C, H, W) tensor, got "
                         f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}.")
    c = check_channel(channel, maps.shape[0], "the maps")
    row, col = divmod(int(maps[c].argmax()), maps.shape[2])
    return row, col


def _check_position(position, size, layer) -> Tuple[int, int]:
    try:
        row, col = position
    except (TypeError, ValueError):
        raise ValueError(f"position must be (row, col) in the map of {layer!r}, got {position!r}.") from None
    h, w = size
    return check_channel(row, h, layer, what="row"), check_channel(col, w, layer, what="column")


def _units(out: torch.Tensor, channel, positions, layer) -> Tuple[int, torch.Tensor, torch.Tensor]:
    """Checked channel and (B,) rows and columns: ``positions`` one (row, col) per image, or None for each
    image's strongest unit of the channel."""
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"Layer {layer!r} gives {shape}, not a (B, C, H, W) feature map; choose a convolutional "
                         "layer.")
    c = check_channel(channel, out.shape[1], layer)
    if positions is None:
        flat = out[:, c].flatten(1).argmax(dim=1)  # (B,)
        return c, flat // out.shape[3], flat % out.shape[3]
    rows, cols = zip(*(_check_position(p, out.shape[2:], layer) for p in positions))
    device = out.device
    return c, torch.tensor(rows, device=device), torch.tensor(cols, device=device)


# ----------------------------------------------------------------------------- the explicit deconvnet

# layers the explicit deconvnet runs backwards (exact types: a subclass may have its own forward)
_CHAIN_TYPES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.LocalResponseNorm, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d,
                nn.Identity)


def _leaves(module: nn.Module) -> Optional[List[nn.Module]]:
    """The layers a module runs, in order, if it is one of ``_CHAIN_TYPES`` or a plain ``nn.Sequential`` of
    them (nested); None otherwise."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        out = []
        for child in module._modules.values():  # not children(): a module may appear twice
            sub = _leaves(child)
            if sub is None:
                return None
            out += sub
        return out
    if type(module) not in _CHAIN_TYPES:
        return None
    if isinstance(module, nn.Conv2d) and (module.padding_mode != "zeros" or isinstance(module.padding, str)):
        return None
    if isinstance(module, nn.BatchNorm2d) and module.running_var is None:
        return None  # batch statistics even in eval mode: not a fixed affine map
    if isinstance(module, nn.MaxPool2d) and module.return_indices:
        return None
    return [module]


def _chain(model: nn.Module, layer: str) -> Optional[List[nn.Module]]:
    """The layers from the input up to ``layer`` included, when that path is a plain chain: the model is an
    ``nn.Sequential``, or follows the zoo's contract with a ``features`` Sequential that
    ``forward_features`` runs first. None when the explicit deconvnet does not apply."""
    parts = layer.split(".")
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        container = model
    elif (parts[0] == "features" and isinstance(getattr(model, "features", None), nn.Sequential)
          and callable(getattr(model, "forward_features", None))):
        container, parts = model.features, parts[1:]
        if not parts:
            return _leaves(container)
    else:
        return None
    chain: List[nn.Module] = []
    for depth, part in enumerate(parts):
        names = list(container._modules)
        if part not in names:
            return None
        for child in list(container._modules.values())[:names.index(part)]:
            sub = _leaves(child)
            if sub is None:
                return None
            chain += sub
        child = container._modules[part]
        if depth == len(parts) - 1:
            sub = _leaves(child)
            return None if sub is None else chain + sub
        if not (isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward):
            return None
        container = child
    return None


def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def _lrn_divisor(x: torch.Tensor, m: nn.LocalResponseNorm) -> torch.Tensor:
    """(k + α/n · Σ x²)^β over the n neighbouring maps, computed as ``F.local_response_norm`` does."""
    sq = F.pad(x.pow(2).unsqueeze(1), (0, 0, 0, 0, m.size // 2, (m.size - 1) // 2))  # (B, 1, C + n - 1, H, W)
    return F.avg_pool3d(sq, (m.size, 1, 1), stride=1).squeeze(1).mul(m.alpha).add(m.k).pow(m.beta)  # (B, C, H, W)


def _up(chain: Sequence[nn.Module], x: torch.Tensor):
    """Run the chain on ``x``, recording what the way down needs (switches, sizes, scales)."""
    records = []
    for m in chain:
        if isinstance(m, nn.Conv2d):
            records.append(tuple(x.shape[-2:]))
            x = F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.MaxPool2d):
            y, switches = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                       return_indices=True)  # switches: flat argmax positions in x
            records.append((tuple(x.shape), switches))
            x = y
        elif isinstance(m, nn.ReLU):
            records.append(None)
            x = F.relu(x)
        elif isinstance(m, nn.LocalResponseNorm):
            div = _lrn_divisor(x, m)
            records.append(div)
            x = x / div
        elif isinstance(m, nn.BatchNorm2d):
            scale = torch.rsqrt(m.running_var + m.eps)
            if m.weight is not None:
                scale = scale * m.weight
            records.append(scale)
            x = F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)
        else:  # Dropout and Identity: nothing in eval mode
            records.append(None)
    return x, records


def _down(chain: Sequence[nn.Module], records, r: torch.Tensor) -> torch.Tensor:
    """Project ``r`` (a layer's map with only the chosen units kept) back to the input: section 2.1."""
    for m, rec in zip(reversed(chain), reversed(records)):
        if isinstance(m, nn.Conv2d):
            # filtering with the transposed filters; output_padding restores the exact input size
            out_pad = tuple(n - ((o - 1) * s - 2 * p + d * (f - 1) + 1) for n, o, s, p, d, f in
                            zip(rec, r.shape[-2:], m.stride, m.padding, m.dilation, m.kernel_size))
            r = F.conv_transpose2d(r, m.weight, None, m.stride, m.padding, out_pad, m.groups, m.dilation)
        elif isinstance(m, nn.MaxPool2d):
            # unpooling: each value goes back to its switch. F.max_unpool2d would overwrite where
            # overlapping windows (AlexNet's and ZFNet's 3×3/2) share a switch; the unpooling is the
            # transpose of the pooling's selection, so those values add up.
            shape, switches = rec
            b, c = r.shape[:2]
            up = r.new_zeros(b, c, shape[-2] * shape[-1])
            up.scatter_add_(2, switches.flatten(2), r.flatten(2))
            r = up.view(b, c, shape[-2], shape[-1])
        elif isinstance(m, nn.ReLU):
            r = F.relu(r)  # rectification of the reconstruction
        elif isinstance(m, nn.LocalResponseNorm):
            r = r / rec  # the same divisor as on the way up, held fixed like the switches
        elif isinstance(m, nn.BatchNorm2d):
            r = r * rec.view(1, -1, 1, 1)  # the transpose of its per-channel scaling; no shift, as no bias
    return r


class _UpTo(nn.Module):
    """``model`` run only as far as ``layer``, whose output it returns: captum needs no more, and the head
    (which may want one input size) never runs. Wraps the model without changing it."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        self.model, self.name, self.layer = model, layer, get_layer(model, layer)

    def forward(self, x):
        out = []

        def stop(_module, _inputs, output):  # registered after captum's own hook on the layer: runs after it
            out.append(output)
            raise _Stop

        handle = self.layer.register_forward_hook(stop)
        try:
            self.model(x)
        except _Stop:
            return out[0]
        finally:
            handle.remove()
        raise ValueError(f"Layer {self.name!r} did not run in the model's forward pass (in eval mode).")


def _captum_neuron(method, model, layer, x, c, rows, cols, start=None) -> torch.Tensor:
    """captum's ``method`` (NeuronDeconvolution, NeuronGuidedBackprop) for unit (c, rows[b], cols[b]) of each
    image b of ``x``: (B, C_in, H, W), the signal going down starting at ``start`` (B,) instead of 1.
    captum adds its hooks and removes them itself."""
    batch = torch.arange(x.shape[0], device=x.device)

    def select(out):  # (B, C, H, W) → (B,): one unit per image, its gradient scaled by `start`
        unit = out[batch, c, rows, cols]
        return unit if start is None else unit * start

    with warnings.catch_warnings(), torch.enable_grad():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")  # captum says it each call
        warnings.filterwarnings("ignore", message=".*did not already require gradients")
        return method(_UpTo(model, layer), get_layer(model, layer)).attribute(x, neuron_selector=select).detach()


def _project(model, layer, x, channel, positions=None) -> torch.Tensor:
    """Deconvnet projections (B, C_in, H, W) of one unit per image of ``x``; call under ``eval_mode``."""
    chain = _chain(model, layer)
    if chain is not None:
        with torch.no_grad():
            out, records = _up(chain, x)  # (B, C, h, w)
            c, rows, cols = _units(out, channel, positions, layer)
            batch = torch.arange(x.shape[0], device=x.device)
            r = torch.zeros_like(out)
            r[batch, c, rows, cols] = out[batch, c, rows, cols]  # every other activation zeroed
            return _down(chain, records, r)
    from captum.attr import NeuronDeconvolution

    with torch.no_grad():
        out = _activations(model, x, [layer])[layer]
    c, rows, cols = _units(out, channel, positions, layer)
    value = out[torch.arange(x.shape[0], device=out.device), c, rows, cols]  # (B,)
    # the unit's activation, not 1, goes down, as in the paper (the ReLU rule makes the sign matter)
    return _captum_neuron(NeuronDeconvolution, model, layer, x, c, rows, cols, start=value)


def deconvnet(model: nn.Module, image, layer: str, channel: int, *, position=None) -> torch.Tensor:
    """Zeiler & Fergus's projection of one unit of ``layer`` back to pixel space: (C_in, S, S) on the model's device.

    ``image`` as ``cnnviz.features.feature_maps`` takes it; ``position`` = (row,
    col) in the layer's map, default the channel's strongest unit in this image.
    All other activations of the layer are set to zero, and the unit's value
    goes down the network (ZF 2014, section 2.1):

    - max pooling → unpooling: each value goes back to the position that won
      the max on the way up (the "switch"); where overlapping windows share a
      switch, their values add up;
    - ReLU → ReLU on the reconstruction (not on the forward signal);
    - convolution → ``conv_transpose2d`` with the same weights, no bias;
    - batch norm (eval) → its per-channel scale γ/σ, the transpose of the
      affine map without its shift (as the bias is left out of convolutions);
    - local response normalisation → division by the divisor of the way up,
      held fixed like the switches (the paper does not say how it treats
      normalisation; the cross-channel terms of the exact derivative are tiny);
    - dropout (eval) and identity → nothing.

    This explicit version runs when the path from the input to ``layer`` is a
    chain of those layers: an ``nn.Sequential`` model, or a zoo model whose
    ``features`` Sequential holds ``layer``. Any other model (ResNet's
    branches, functional operations) goes through captum's
    ``NeuronDeconvolution``, with the backward pass started at the unit's
    activation instead of 1. That is the same computation: the gradient of
    max pooling routes each value to the argmax (the switches, values adding
    up), the gradient of a convolution is
    the transposed convolution with the same filters, and captum replaces the
    gradient of every ``nn.ReLU`` module by ReLU of the signal coming down
    (its "deconvolution" rule). The two agree to rounding on chains without
    local response normalisation, whose full derivative captum keeps (with
    cross-channel terms, small for AlexNet's constants); and captum can only
    change the rule of ReLUs that are ``nn.ReLU`` modules, not of ``F.relu`` calls.

    The model's train/eval flags are restored and no hook is left behind.
    """
    get_layer(model, layer)
    x = _input(model, image)  # (1, C_in, S, S)
    with eval_mode(model):
        return _project(model, layer, x, channel, None if position is None else [position])[0]


def guided_backprop(model: nn.Module, image, layer: str, channel: int, *, position=None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015) of one unit of ``layer``: (C_in, S, S) on the model's device.

    The gradient of the unit (``position`` = (row, col), default the channel's
    strongest unit in this image) with respect to the input, where every ReLU
    passes back only positive signal, and only where its forward input was
    positive: the deconvnet's rule and backpropagation's at once. Computed by
    captum's ``NeuronGuidedBackprop`` (ReLUs must be ``nn.ReLU`` modules),
    as captum returns it (the gradient of the unit, not scaled by its activation).
    """
    from captum.attr import NeuronGuidedBackprop

    x = _input(model, image)  # (1, C_in, S, S)
    get_layer(model, layer)
    with eval_mode(model):
        with torch.no_grad():
            out = _activations(model, x, [layer])[layer]
        c, rows, cols = _units(out, channel, None if position is None else [position], layer)
        return _captum_neuron(NeuronGuidedBackprop, model, layer, x, c, rows, cols)[0]


# ----------------------------------------------------------------------------- receptive boxes

# The window of unit (0, 0) of a map along one axis: (lo, hi, jump), pixels lo..hi of the input (inclusive,
# may lie in the padding); unit i sees lo + i·jump .. hi + i·jump. None: the whole input.
Axis = Tuple[int, int, int]


def _compose(axis: Axis, f: int, s: int, p: int, d: int) -> Axis:
    """Chapter 3's recurrence (Araujo et al. 2019) with the padding offset: after a window of f taps,
    dilation d, stride s and padding p."""
    lo, hi, j = axis
    return lo - p * j, hi + (d * (f - 1) - p) * j, j * s


def _out_len(n, f, p, s, d, ceil_mode=False) -> int:
    """Output length along one axis, as PyTorch computes it for convolution and pooling."""
    span = d * (f - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - span) // s + 1
    out = -(-(n + 2 * p - span) // s) + 1
    return out - 1 if (out - 1) * s >= n + p else out  # the last window may not start in the right padding


def _chain_geometry(chain, size):
    """Per axis the window of unit (0, 0), and the map size, after a chain (pure arithmetic)."""
    axes = [(0, 0, 1), (0, 0, 1)]
    size = list(size)
    for m in chain:
        if isinstance(m, nn.Conv2d):
            params = zip(m.kernel_size, m.stride, m.padding, m.dilation, (False, False))
        elif isinstance(m, nn.MaxPool2d):
            k = _pair(m.kernel_size)
            params = zip(k, _pair(m.stride or k), _pair(m.padding), _pair(m.dilation), (m.ceil_mode,) * 2)
        else:
            continue
        for a, (f, s, p, d, ceil) in enumerate(params):
            axes[a] = _compose(axes[a], f, s, p, d)
            size[a] = _out_len(size[a], f, p, s, d, ceil)
    return tuple(axes), tuple(size)


_ATTR = "_cnnviz_window"


class _Windows(TorchDispatchMode):
    """Carries, on every tensor of a forward pass, the input window of its unit (0, 0) (``Axis`` per axis).

    Convolutions and poolings compose their window (with padding); operations
    that keep the map's size (activations, normalisation, additions,
    concatenations) take the union of their inputs' windows; any other change
    of a map's size (upsampling, uneven adaptive pooling, flattening) gives the whole input.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        found = [getattr(t, _ATTR) for t in _tensors((args, kwargs)) if hasattr(t, _ATTR)]
        if found:
            axes = None if any(a is None for a in found) else tuple(
                (min(a[k][0] for a in found), max(a[k][1] for a in found), max(a[k][2] for a in found))
                for k in range(2))
            axes = _through(func.overloadpacket, args, kwargs, out, axes)
            for t in _tensors(out):
                setattr(t, _ATTR, axes)
        return out


def _through(packet, args, kwargs, out, axes):
    aten = torch.ops.aten
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    y = next(_tensors(out), None)
    if axes is None or x is None or y is None or x.dim() != 4:
        return axes
    params = None
    if packet is aten.convolution and args[1].dim() == 4 and not args[6]:
        params = zip(args[1].shape[2:], _pair(args[3]), _pair(args[4]), _pair(args[5]))
    elif packet in (aten.max_pool2d_with_indices, aten.max_pool2d, aten.avg_pool2d):
        k = _pair(args[1])
        stride = args[2] if len(args) > 2 and args[2] else kwargs.get("stride") or k
        padding = args[3] if len(args) > 3 else kwargs.get("padding", 0)
        dilation = args[4] if packet is not aten.avg_pool2d and len(args) > 4 else kwargs.get("dilation", 1)
        params = zip(k, _pair(stride), _pair(padding), _pair(dilation))
    elif packet in (aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d) and y.dim() == 4 and all(
            n % o == 0 for n, o in zip(x.shape[-2:], y.shape[-2:])):
        params = [(n // o, n // o, 0, 1) for n, o in zip(x.shape[-2:], y.shape[-2:])]
    if params is not None:
        return tuple(_compose(a, f, s, p, d) for a, (f, s, p, d) in zip(axes, params))
    if y.dim() != 4 or y.shape[-2:] != x.shape[-2:]:
        return None
    return axes


def _traced_geometry(model, layer, size):
    """Per axis the window of unit (0, 0) of ``layer`` and its map size, from one forward pass of zeros."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, channels, *size, device=model_device(model), dtype=dtype)  # (1, C_in, H, W)
    setattr(x, _ATTR, ((0, 0, 1), (0, 0, 1)))
    with eval_mode(model), torch.no_grad(), _Windows():
        out = _activations(model, x, [layer])[layer]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ValueError(f"Layer {layer!r} does not give a (B, C, H, W) feature map, so its units have no "
                         "receptive field in the image.")
    axes = getattr(out, _ATTR, None)
    return axes, tuple(out.shape[-2:])


def _geometry(model, layer, size):
    get_layer(model, layer)
    chain = _chain(model, layer)
    return _chain_geometry(chain, size) if chain is not None else _traced_geometry(model, layer, size)


def _input_size(input_size) -> Tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)[-2:]
    if len(size) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size):
        raise ValueError(f"input_size must be S or (H, W) in pixels, got {input_size!r}.")
    return size


def _box(axes, size, row, col) -> Box:
    """Unclipped (top, left, bottom, right), bottom and right exclusive."""
    (h, w) = size
    if axes is None:
        return 0, 0, h, w
    (lo_r, hi_r, j_r), (lo_c, hi_c, j_c) = axes
    return lo_r + row * j_r, lo_c + col * j_c, hi_r + row * j_r + 1, hi_c + col * j_c + 1


def receptive_box(model: nn.Module, layer: str, position, input_size) -> Box:
    """The input window (top, left, bottom, right) that unit ``position`` = (row, col) of ``layer`` sees.

    Bottom and right are exclusive (``image[..., top:bottom, left:right]``) and
    the box is clipped to the ``input_size`` = S or (H, W) image. Exact:
    chapter 3's receptive-field recurrence with the padding offset
    (``r_out = r_in + d(f-1)·j_in``, ``j_out = j_in·s``, and the window's first
    pixel moves by ``-p·j_in``), computed over the chain of layers, or, for
    other models, carried through one forward pass of zeros by every tensor
    (branches take the union of their windows, as ``cnnviz.summary`` does).
    """
    size = _input_size(input_size)
    axes, out_size = _geometry(model, layer, size)
    row, col = _check_position(position, out_size, layer)
    top, left, bottom, right = _box(axes, size, row, col)
    return max(top, 0), max(left, 0), min(bottom, size[0]), min(right, size[1])


def _crop(img: torch.Tensor, box: Box, fill) -> torch.Tensor:
    """img[:, top:bottom, left:right] for a box that may leave the image, the outside filled with ``fill``."""
    top, left, bottom, right = box
    out = torch.full((img.shape[0], bottom - top, right - left), fill, dtype=img.dtype, device=img.device)
    t, l, b, r = max(top, 0), max(left, 0), min(bottom, img.shape[1]), min(right, img.shape[2])
    if t < b and l < r:
        out[:, t - top:b - top, l - left:r - left] = img[:, t:b, l:r]
    return out


# ----------------------------------------------------------------------------- top activations

def _item(images, k: int) -> torch.Tensor:
    item = images[k]
    if isinstance(item, (tuple, list)):  # a dataset of (image, label) pairs
        item = item[0]
    if not isinstance(item, torch.Tensor) or item.ndim not in (3, 4) or (item.ndim == 4 and item.shape[0] != 1):
        raise ValueError(f"images[{k}] must be a normalised (3, S, S) or (1, 3, S, S) tensor, got "
                         f"{tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__}.")
    return item.reshape(item.shape[-3:])  # (3, S, S)


def _batch(images, start: int, stop: int, device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        x = images[start:stop]
    else:
        x = torch.stack([_item(images, k).to(device) for k in range(start, stop)])
    return x.to(device=device, dtype=torch.float32)  # (B, 3, S, S)


def _digest(h, t) -> None:
    if not isinstance(t, torch.Tensor):  # a module's extra state
        h.update(repr(t).encode())
        return
    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.contiguous().cpu().reshape(-1).view(torch.uint8).numpy())


def _cache_key(model, images, layer, k) -> str:
    """A hash of the weights, the images, the layer and k (and of the file format)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"top_activations v1|{type(model).__module__}.{type(model).__qualname__}|{layer}|{k}".encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        _digest(h, t)
    if isinstance(images, torch.Tensor):
        _digest(h, images)
    else:
        for i in range(len(images)):
            _digest(h, _item(images, i))
    return h.hexdigest()


def _load(path: Path, layer: str, device) -> Optional["TopActivations"]:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location=device, weights_only=True)
        values, index, position = data["values"], data["index"], data["position"]
        if (data["layer"] != layer or values.ndim != 2 or index.shape != values.shape or index.dtype != torch.long
                or position.shape != (*values.shape, 2) or position.dtype != torch.long):
            raise ValueError("unexpected contents")
        return TopActivations(layer, values, index, position)
    except Exception as err:  # a truncated or foreign file: compute again and overwrite it
        warnings.warn(f"The cached top activations {path} could not be read ({type(err).__name__}: {err}); "
                      "computing them again.", stacklevel=3)
        return None


def _save(path: Path, top: "TopActivations") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"layer": top.layer, "values": top.values.cpu(), "index": top.index.cpu(),
               "position": top.position.cpu()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class TopActivations:
    """The k strongest units of every channel of ``layer`` over a set of images (at most one per image).

    ``values`` (C, k) activations, strongest first; ``index`` (C, k) the
    images they come from; ``position`` (C, k, 2) their (row, col) in the
    layer's map. All on the model's device.
    """
    layer: str
    values: torch.Tensor
    index: torch.Tensor
    position: torch.Tensor

    def _top_units(self, model, images, channel):
        c = check_channel(channel, self.values.shape[0], self.layer)
        x = torch.stack([_batch(images, int(i), int(i) + 1, model_device(model))[0] for i in self.index[c]])
        axes, _ = _geometry(model, self.layer, tuple(x.shape[-2:]))
        boxes = [_box(axes, tuple(x.shape[-2:]), int(r), int(q)) for r, q in self.position[c]]
        return c, x, boxes  # x (k, 3, S, S)

    def patches(self, model: nn.Module, images, channel: int) -> torch.Tensor:
        """The image patches the channel's top units see: uint8 (k, 3, r, r) (r the receptive field), grey
        (128) where the field leaves the image, on the model's device. ``images`` as given to ``top_activations``."""
        _, x, boxes = self._top_units(model, images, channel)
        pre = preprocessing(model)
        mean = torch.tensor(pre.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(pre.std, device=x.device).view(1, 3, 1, 1)
        shown = ((x * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)  # (k, 3, S, S)
        return torch.stack([_crop(img, box, 128) for img, box in zip(shown, boxes)])

    def projections(self, model: nn.Module, images, channel: int) -> torch.Tensor:
        """The deconvnet projections of the channel's top units, cropped like ``patches``: float (k, 3, r, r),
        zero outside the image (``cnnviz.figures.visualising.projection_to_uint8`` shows one)."""
        c, x, boxes = self._top_units(model, images, channel)
        with eval_mode(model):
            p = _project(model, self.layer, x, c, [tuple(int(v) for v in pos) for pos in self.position[c]])
        return torch.stack([_crop(img, box, 0.0) for img, box in zip(p, boxes)])


def top_activations(model: nn.Module, images, layer: str, *, k: int = 9, batch_size: int = 64,
                    progress: bool = True, cache: bool = False) -> TopActivations:
    """The ``k`` strongest units of every channel of ``layer`` over ``images``, as in Zeiler & Fergus's figure 2.

    ``images``: a normalised (N, 3, S, S) tensor, or anything indexable whose
    items are (3, S, S) tensors (or (image, label) pairs). One pass over the
    images in batches of ``batch_size``, in eval mode without gradients, keeps
    for every channel its strongest unit in each image and the ``k`` (at most
    N) images where that unit is strongest; ties go to the earlier image.
    ``progress``: a tqdm progress bar. ``cache=True`` stores the result in
    ``cnnviz.data.cache_dir() / "topk"``, keyed by a hash of the weights, the
    images, the layer and ``k``; a file that cannot be read is computed again.
    """
    get_layer(model, layer)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}.")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty: there is nothing to scan.")
    device = model_device(model)
    path = None
    if cache:
        from cnnviz.data import cache_dir

        path = cache_dir() / "topk" / f"{_cache_key(model, images, layer, k)}.pt"
        found = _load(path, layer, device)
        if found is not None:
            return found
    from tqdm.auto import tqdm

    values = index = flat = None
    width = 0
    with eval_mode(model), torch.no_grad(), tqdm(total=n, desc=f"top {k} of {layer}", unit="image",
                                                disable=not progress) as bar:
        for start in range(0, n, batch_size):
            x = _batch(images, start, min(start + batch_size, n), device)  # (B, 3, S, S)
            out = _activations(model, x, [layer])[layer]  # (B, C, H, W)
            if not isinstance(out, torch.Tensor) or out.ndim != 4:
                _units(out, 0, None, layer)  # raises the "not a feature map" error
            width = out.shape[3]
            v, f = out.flatten(2).max(dim=2)  # (B, C): each channel's strongest unit per image
            i = torch.arange(start, start + x.shape[0], device=device).expand(out.shape[1], -1)  # (C, B)
            if values is not None:
                v, i, f = torch.cat([values, v.T], 1), torch.cat([index, i], 1), torch.cat([flat, f.T], 1)
            else:
                v, f = v.T, f.T
            order = v.argsort(dim=1, descending=True, stable=True)[:, :k]  # stable: ties keep image order
            values, index, flat = v.gather(1, order), i.gather(1, order), f.gather(1, order)
            bar.update(x.shape[0])
    top = TopActivations(layer, values, index, torch.stack([flat // width, flat % width], dim=-1))
    if path is not None:
        _save(path, top)
    return top
