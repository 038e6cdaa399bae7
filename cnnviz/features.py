"""What a layer has learned and what it sees: filters, feature maps, and the strongest channels.

- ``filters(model, "features.0")`` arranges a convolution's kernels for display:
  the first layer in colour, as in Krizhevsky et al. 2012 (figure 3) and
  Zeiler & Fergus 2014 (figure 5); deeper layers per input channel or
  summarised by their norm.
- ``filter_smoothness(weight)`` measures how spatially structured kernels are:
  about 0 for white noise, near 1 for the smooth edge and colour detectors a
  trained first layer learns.
- ``feature_maps(model, image)`` records the activations of chosen layers for
  one image with scoped hooks (none left behind, the model's train/eval flags
  restored), in the spirit of Zeiler & Fergus 2014, figure 2.

Every function works on any ``nn.Module`` and returns tensors on the model's device.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from cnnviz.probe import capture, conv_layers, eval_mode, get_layer, model_device, prepare

__all__ = ["NotAConvolution", "filters", "filter_smoothness", "feature_maps", "default_layers",
           "strongest_channels", "FILTER_MODES"]

#: The ways ``filters`` can show a layer's kernels.
FILTER_MODES = ("auto", "rgb", "channels", "summary")


class NotAConvolution(ValueError):
    """A layer given to ``filters`` that is not an ``nn.Conv2d``; the message lists the convolutions."""


# ----------------------------------------------------------------------------- filters

def _conv(model: nn.Module, layer: str) -> nn.Conv2d:
    module = get_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        convs = conv_layers(model)
        shown = ", ".join(convs[:40]) + (f", … ({len(convs)} in all)" if len(convs) > 40 else "")
        raise NotAConvolution(f"{layer!r} is a {type(module).__name__}, not a Conv2d, so it has no filters to show. "
                              + (f"The model's convolutions are: {shown}." if convs else "The model has no Conv2d."))
    return module


def filters(model: nn.Module, layer: str, *, mode: str = "auto") -> torch.Tensor:
    """The kernels of the ``nn.Conv2d`` called ``layer``, as display-ready values in [0, 1].

    ``mode``:

    - ``"rgb"``: (C_out, 3, kh, kw), one colour image per filter, each scaled
      on its own from its minimum (0) to its maximum (1), as the first-layer
      figures of Krizhevsky et al. 2012 (fig. 3) and Zeiler & Fergus 2014
      (fig. 5) show them; a constant filter is uniform grey (0.5). Needs 3 input channels.
    - ``"channels"``: (C_out, C_in, kh, kw), every input channel's kernel as a
      grey image, with one symmetric scale for the whole layer: 0.5 is a zero
      weight, 0 and 1 are the layer's largest negative and positive magnitude.
    - ``"summary"``: (C_out, 1, kh, kw), the L2 norm over input channels at each
      tap, divided by the layer's largest norm, so 0 means no weight and a dead
      filter (Zeiler & Fergus's diagnosis of AlexNet's conv1) stays black.
    - ``"auto"``: ``"rgb"`` when the layer reads 3 channels, else ``"summary"``.

    ``C_in`` is per group for a grouped convolution. The values are on the model's device.
    """
    if mode not in FILTER_MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in FILTER_MODES)}, not {mode!r}.")
    w = _conv(model, layer).weight.detach().float()  # (C_out, C_in, kh, kw)
    if mode == "auto":
        mode = "rgb" if w.shape[1] == 3 else "summary"
    if mode == "rgb":
        if w.shape[1] != 3:
            raise ValueError(f"mode='rgb' needs a layer that reads 3 (colour) channels; {layer!r} reads "
                             f"{w.shape[1]}. Use mode='channels' or 'summary'.")
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        span = w.amax(dim=(1, 2, 3), keepdim=True) - lo
        return torch.where(span > 0, (w - lo) / span.clamp_min(torch.finfo(w.dtype).tiny), torch.full_like(w, 0.5))
    if mode == "channels":
        peak = w.abs().max()
        return w / (2 * peak) + 0.5 if peak > 0 else torch.full_like(w, 0.5)
    norm = w.pow(2).sum(dim=1, keepdim=True).sqrt()  # (C_out, 1, kh, kw)
    peak = norm.max()
    return norm / peak if peak > 0 else norm


def filter_smoothness(weight) -> torch.Tensor:
    """How spatially smooth each kernel is: (C_out,), about 0 for white noise, near 1 for smooth kernels.

    ``weight`` is a (C_out, C_in, kh, kw) tensor or an ``nn.Conv2d``. Each
    input channel's kernel is centred on its own mean (only spatial structure
    counts, not a colour offset), then the taps are paired with their right
    and lower neighbours, and the result is the correlation between the pairs'
    two members, pooled over input channels::

        s = Σ x_p x_q / sqrt(Σ x_p² · Σ x_q²)   over neighbouring taps (p, q)

    White-noise kernels give about -1/(kh·kw - 1) (centring makes neighbours
    slightly anti-correlated); a Gaussian blob or an oriented edge gives 0.8 to
    1; a kernel with no spatial variation gives 0. It is the lag-1
    autocorrelation that image statistics use to tell natural images from noise.
    """
    if isinstance(weight, nn.Conv2d):
        weight = weight.weight
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError("weight must be a (C_out, C_in, kh, kw) tensor or an nn.Conv2d, got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}.")
    if weight.shape[-1] * weight.shape[-2] < 2:
        raise ValueError(f"{weight.shape[-2]}×{weight.shape[-1]} kernels have no neighbouring taps, so no spatial "
                         "structure to measure.")
    x = weight.detach().cpu().double()   # on the CPU: MPS has no float64
    x = x - x.mean(dim=(2, 3), keepdim=True)  # (C_out, C_in, kh, kw)
    pairs = [(x[..., :, :-1], x[..., :, 1:]), (x[..., :-1, :], x[..., 1:, :])]  # right and lower neighbours
    num = sum((p * q).sum(dim=(1, 2, 3)) for p, q in pairs)  # (C_out,)
    pp = sum(p.pow(2).sum(dim=(1, 2, 3)) for p, _ in pairs)
    qq = sum(q.pow(2).sum(dim=(1, 2, 3)) for _, q in pairs)
    den = (pp * qq).sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)).to(weight.device, weight.dtype)


# ----------------------------------------------------------------------------- feature maps

#: Layers that leave the "follows a convolution" status of the next ReLU unchanged.
_TRANSPARENT = (nn.BatchNorm2d, nn.GroupNorm, nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d, nn.Identity)


def default_layers(model: nn.Module) -> List[str]:
    """The layers worth looking at: ``model.feature_layers`` (the zoo's contract) when the model has it,
    else every ``nn.ReLU`` that follows a ``Conv2d`` (perhaps through batch norm), else every ``Conv2d``."""
    chosen = getattr(model, "feature_layers", None)
    if chosen:
        return list(chosen)
    relus, last = [], None
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or isinstance(module, _TRANSPARENT):
            continue  # containers, and normalisation between a conv and its ReLU
        if isinstance(module, nn.ReLU) and last is nn.Conv2d:
            relus.append(name)
        last = type(module)
    return relus or conv_layers(model)


class _Stop(Exception):
    """Raised by a hook once every requested layer has run: the rest of the forward pass is not needed."""


def _input(model: nn.Module, image) -> torch.Tensor:
    """A prepared input: tensors (3, H, W) or (1, 3, H, W) as they are (already normalised), anything else
    through ``probe.prepare`` (photo names, paths, bytes, arrays)."""
    if isinstance(image, torch.Tensor) and image.ndim in (3, 4):
        x = image.detach().to(model_device(model), torch.float32)
        x = x.unsqueeze(0) if x.ndim == 3 else x
        if x.shape[0] != 1:
            raise ValueError(f"One image at a time: the tensor has a batch of {x.shape[0]}; pass image[k].")
        return x  # (1, C, H, W)
    return prepare(image, model).x


def _run(model, x, names, copy):
    """One forward pass recording ``names``, stopped once all of them ran; ``copy``: names whose outputs
    are cloned as they are recorded. Returns the outputs and their version counters at recording time."""
    modules = {get_layer(model, n): n for n in names}
    versions = {}
    with capture(model, names) as out:
        handles = []

        def keep(module, _inputs, _output):
            name = modules[module]
            t = out.get(name)
            if isinstance(t, torch.Tensor):
                if name in copy:
                    out[name] = t = t.clone()
                versions[name] = t._version
            if len(out) == len(names):
                raise _Stop

        try:
            for module in modules:
                handles.append(module.register_forward_hook(keep))
            model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
    return dict(out), versions


def _activations(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Outputs of ``layers`` for the batch ``x`` (one forward pass, stopped after the last of them ran).

    Call under ``eval_mode`` and ``torch.no_grad`` (not ``inference_mode``:
    the version counters are needed). A later in-place operation
    (``ReLU(inplace=True)``, ResNet's ``out += identity``) can overwrite a
    recorded output; its version counter tells, and then the pass is run again
    copying those outputs as they come (no copies at all for models without
    in-place operations).
    """
    names = list(dict.fromkeys(layers))
    out, versions = _run(model, x, names, ())
    changed = {n for n, v in versions.items() if out[n]._version != v}
    if changed:
        out, _ = _run(model, x, names, changed)
    missing = [n for n in names if n not in out]
    if missing:
        raise ValueError(f"Layer(s) {', '.join(repr(n) for n in missing)} did not run in the model's forward pass "
                         "(in eval mode), so they have no output to show.")
    return out


def feature_maps(model: nn.Module, image, layers: Optional[Sequence[str]] = None) -> Dict[str, torch.Tensor]:
    """The activations of ``layers`` for one image: ``{name: (C, H, W)}`` on the model's device.

    ``image``: an embedded photo's name, a path, bytes or a uint8 array
    (prepared with ``probe.prepare``: cropped, resized and normalised for the
    model), or a tensor (3, H, W) / (1, 3, H, W) already normalised, used as it is.
    ``layers``: dotted names, default ``default_layers(model)``; a wrong name
    raises ``LayerNotFound`` listing the valid ones.

    One forward pass in eval mode without gradients, stopped after the last
    requested layer (so a head that needs a fixed input size is never run);
    every hook is removed and each submodule's train/eval flag restored.
    """
    names = default_layers(model) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    for n in names:
        get_layer(model, n)  # LayerNotFound before any work
    x = _input(model, image)
    with eval_mode(model), torch.no_grad():
        out = _activations(model, x, names)
    maps = {}
    for n in names:
        t = out[n]
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"Layer {n!r} gives {shape}, not a (1, C, H, W) feature map; choose a convolutional "
                             f"layer, e.g. one of {', '.join(default_layers(model)[:8])}.")
        maps[n] = t[0]  # (C, H, W)
    return maps


def strongest_channels(maps: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` channels of ``maps`` (C, H, W) with the largest maximum activation, strongest first:
    a LongTensor (min(k, C),) on the maps' device."""
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a (C, H, W) tensor, got "
                         f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}.")
    peaks = maps.flatten(1).amax(dim=1)  # (C,)
    return peaks.topk(min(k, maps.shape[0])).indices
