"""Incremental inference: run many copies of one input that differ only inside a small box, recomputing only
what the box changes (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019).

An occlusion map (``cnnviz.occlusion``) runs the network on hundreds of copies
of one image, each with a grey square somewhere. Most of each copy's
activations equal the unoccluded image's: a convolution's output changes only
where its window overlaps the square, so the changed region grows by the
kernel's reach at every layer and shrinks with every stride, and until it
covers the whole map the rest can be copied from one ordinary forward pass.
Nakandala et al. call this incremental inference; their system (Krypton)
also offers approximations, which this module does not: every value it
returns is the exact activation of the occluded copy, up to the rounding of a
convolution computed over a smaller window.

How it works: ``Incremental(model, x)`` traces the model with ``torch.fx``
and runs it once on ``x`` (1, C, H, W), keeping every intermediate value.
``run(top, left, content)`` then takes N copies, copy n equal to ``x`` except
in the box of ``content[n]`` at ``(top[n], left[n])``, and walks the graph with
each value held as a *patch*: the unoccluded activation, plus for every copy a
box (one size for all copies, placed per copy) and the activation inside it.

- a ``Conv2d``, ``MaxPool2d`` or ``AvgPool2d`` cuts, for each copy, the input
  window its new box reads (the unoccluded activation, padded as the layer pads,
  with the copy's box pasted in) and runs on those windows only, batched;
- an element-wise layer (ReLU and friends, batch norm and dropout in eval
  mode, LRN, which mixes channels at one pixel) runs on the boxes only;
- ``+`` and ``torch.cat`` along channels take the union of their operands'
  boxes;
- anything else (global pooling, flattening, a linear layer, an operation
  this module does not know) gets full activations, the unoccluded one with
  each copy's box pasted in, and runs as usual; so does everything once a box
  covers the whole map. The result is exact for any traceable model; the
  saving is in the convolutional part.

A model ``torch.fx`` cannot trace (Python control flow on tensor values) raises
``NotTraceable``; ``cnnviz.occlusion`` then runs every copy in full.
``Incremental.macs`` reports how many multiply-adds the convolutions and
dense layers did, against a full run of the same copies.
"""
import operator
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Incremental", "NotTraceable"]


class NotTraceable(RuntimeError):
    """The model cannot be traced by ``torch.fx``; incremental inference needs its graph."""


@dataclass
class _Patch:
    """N copies of one activation: ``base`` (1, C, H, W) everywhere, except copy n's box of size ``content``'s
    (h, w) at rows ``top[n]``…, columns ``left[n]``…, where it is ``content[n]`` (N, C, h, w).

    ``top`` and ``left`` are CPU tensors wherever the activations are: every size and bound is worked out on
    the host, so a pass on a GPU never waits for the device to read a number back; only the index tensors
    that cut windows are sent to it."""
    base: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    content: torch.Tensor

    @property
    def size(self) -> Tuple[int, int]:
        return self.content.shape[-2], self.content.shape[-1]

    @property
    def n(self) -> int:
        return self.content.shape[0]


# element-wise at each pixel (LRN mixes channels, not pixels); modules of exactly these types
_POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
              nn.Hardsigmoid, nn.Mish, nn.Identity, nn.LocalResponseNorm)
_DROPOUT = (nn.Dropout, nn.Dropout2d)
_POINTWISE_FUNCTIONS = {F.relu, torch.relu, torch.sigmoid, torch.tanh, F.gelu, F.silu, F.relu6, F.leaky_relu}
_POINTWISE_METHODS = {"relu", "sigmoid", "tanh"}
_ADD_FUNCTIONS = {operator.add, torch.add, operator.iadd}


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device``. Asynchronous on CUDA only (the driver stages pageable memory before
    the call returns, so the source may go); elsewhere an ordinary copy (MPS's asynchronous copies of
    short-lived CPU tensors are not safe)."""
    return t if device.type == "cpu" else t.to(device, non_blocking=device.type == "cuda")


def _window(p: _Patch, top: torch.Tensor, left: torch.Tensor, h: int, w: int,
            pad: Tuple[int, int, int, int] = (0, 0, 0, 0), value: float = 0.0) -> torch.Tensor:
    """Each copy's activation in the window of rows ``top[n]`` … ``top[n]+h-1``, columns ``left[n]`` … of the
    map padded by ``pad`` = (top, bottom, left, right) with ``value``: (N, C, h, w), channels-last.
    ``top`` and ``left``: CPU tensors (N,)."""
    pt, pb, pl, pr = pad
    dev = p.base.device
    base = p.base[0].permute(1, 2, 0)                                                   # (H, W, C)
    if any(pad):
        base = F.pad(base, (0, 0, pl, pr, pt, pb), value=value)
    rows = top[:, None] + torch.arange(h)                                               # (N, h), padded coords
    cols = left[:, None] + torch.arange(w)                                              # (N, w)
    out = base[_to(rows[:, :, None], dev), _to(cols[:, None, :], dev)]                  # (N, h, w, C)
    bh, bw = p.size
    r = rows - pt - p.top[:, None]                                                      # row inside the box
    c = cols - pl - p.left[:, None]
    inside = ((r >= 0) & (r < bh))[:, :, None] & ((c >= 0) & (c < bw))[:, None, :]      # (N, h, w)
    if bool(inside.any()):                                                              # a host value: no wait
        content = p.content.permute(0, 2, 3, 1)                                         # (N, bh, bw, C)
        n = torch.arange(p.n, device=dev)[:, None, None]
        boxed = content[n, _to(r.clamp(0, bh - 1)[:, :, None], dev),
                        _to(c.clamp(0, bw - 1)[:, None, :], dev)]                       # (N, h, w, C)
        out = torch.where(_to(inside[..., None], dev), boxed, out)
    return out.permute(0, 3, 1, 2)                                                      # (N, C, h, w) view


def _full(p: _Patch) -> torch.Tensor:
    """Every copy's whole activation (N, C, H, W)."""
    zero = torch.zeros(p.n, dtype=torch.long)
    return _window(p, zero, zero, p.base.shape[-2], p.base.shape[-1])


def _maybe_full(p: _Patch):
    """A patch whose box covers the whole map is just the full activation."""
    return p.content if p.size == tuple(p.base.shape[-2:]) else p


def _changed(top: torch.Tensor, h: int, out_length: int, k: int, s: int, pad: int, d: int):
    """Along one axis of a sliding window (kernel k, stride s, padding pad, dilation d): the outputs whose window
    overlaps input rows ``top[n]`` … ``top[n]+h-1``. Returns each copy's first output
    row and one count for all (the largest, clipped so every box stays inside the ``out_length`` outputs)."""
    lo = torch.div(top + pad - d * (k - 1) + s - 1, s, rounding_mode="floor").clamp_min(0)   # ceil
    hi = torch.div(top + h - 1 + pad, s, rounding_mode="floor").clamp_max(out_length - 1)
    count = int((hi - lo + 1).max().clamp(1, out_length))
    return lo.clamp_max(out_length - count), count


def _host_positions(v) -> torch.Tensor:
    """Box positions as a CPU long tensor (one read-back if the caller kept them on a device)."""
    return torch.as_tensor(v).to("cpu", torch.long)


def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Keeper(fx.Interpreter):
    """Runs the graph as usual and keeps a copy of every node's value."""

    def __init__(self, graph: fx.GraphModule):
        super().__init__(graph)
        self.kept: Dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        self.kept[n] = out.clone() if isinstance(out, torch.Tensor) else out
        return out


class Incremental:
    """``model`` traced once, with every activation of the unoccluded input ``x`` (1, C, H, W) kept.

    ``run(top, left, content)``: the outputs for N copies of ``x``, copy n with
    the box ``content[n]`` (N, C, h, w) pasted at row ``top[n]``, column
    ``left[n]``. The model must be in the state it will be run in (eval mode,
    under ``torch.no_grad`` or ``inference_mode``): the unoccluded pass is
    done here, with the weights as they are now.

    Give ``top`` and ``left`` as CPU tensors (or lists) even when the model is
    on a GPU: the boxes' sizes and bounds are host arithmetic, and positions
    read back from the device would make the pass wait for it at every layer.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Incremental needs the one unoccluded input as a tensor of shape (1, C, H, W); got "
                             f"{shape}. cnnviz.probe.prepare(image, model).x makes one from a photo.")
        try:
            self.graph = fx.symbolic_trace(model)
        except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError… depending on the construct
            raise NotTraceable(f"torch.fx cannot trace {type(model).__name__}: {e}") from e
        placeholders = [n for n in self.graph.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise NotTraceable(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; incremental "
                               f"inference handles models with one.")
        self.modules = dict(self.graph.named_modules())
        self.base: Dict[fx.Node, object] = {}
        self.macs = {"incremental": 0, "full": 0}
        self.base_input = x
        self._regions = None  # filled by ``regions``
        self._trace_base(x)

    def _trace_base(self, x):
        """The ordinary forward pass, keeping a copy of every value (a later in-place op must not change it)."""
        keeper = _Keeper(self.graph)
        keeper.run(x)
        self.base = keeper.kept

    def fraction(self, content: torch.Tensor) -> float:
        """The share of a full run's multiply-adds that one copy with the box ``content`` (1, C, h, w) in the
        middle of the input costs (a box at a border costs less): 1.0 when nothing would be saved, and for a
        model without convolutions or dense layers."""
        done, full = self._centred(content)[0]
        return done / full if full else 1.0

    def regions(self, content: torch.Tensor) -> List[Tuple[str, Tuple[int, int], Tuple[int, int]]]:
        """How far one box's change reaches: for each convolution and pooling layer, in order, its name, the
        side of the region recomputed (h, w) and of its whole output (H, W), for ``content`` (1, C, h, w)
        in the middle of the input. Where the change covers the whole map, (h, w) = (H, W)."""
        return self._centred(content)[1]

    def _centred(self, content):
        """Run one copy with ``content`` in the middle, leaving ``macs`` as it was: ((multiply-adds done, a
        full run's), the ``regions`` rows)."""
        before, self._regions = dict(self.macs), []
        (height, width), (h, w) = self.base_input.shape[-2:], content.shape[-2:]
        try:
            self.run(torch.tensor([(height - h) // 2]), torch.tensor([(width - w) // 2]), content)
            work = (self.macs["incremental"] - before["incremental"], self.macs["full"] - before["full"])
            return work, self._regions
        finally:
            self._regions, self.macs = None, before

    # ------------------------------------------------------------------ the incremental pass

    def run(self, top: torch.Tensor, left: torch.Tensor, content: torch.Tensor):
        """The model's output for N copies of ``x`` differing in one box each (see the class)."""
        x = self.base_input
        if (content.ndim != 4 or content.shape[1] != x.shape[1] or tuple(torch.as_tensor(top).shape) != (content.shape[0],)
                or tuple(torch.as_tensor(left).shape) != (content.shape[0],)):
            raise ValueError(f"run needs top and left of shape (N,) and content of shape (N, {x.shape[1]}, h, w); "
                             f"got {tuple(top.shape)}, {tuple(left.shape)} and {tuple(content.shape)}.")
        top, left = _host_positions(top), _host_positions(left)
        h, w = content.shape[-2:]
        if len(top) and (int(top.min()) < 0 or int(left.min()) < 0 or int(top.max()) + h > x.shape[-2]
                         or int(left.max()) + w > x.shape[-1]):
            raise ValueError(f"Every {h}×{w} box must lie inside the {x.shape[-2]}×{x.shape[-1]} input; "
                             f"rows {top.tolist()}, columns {left.tolist()} do not.")
        env: Dict[fx.Node, object] = {}
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                env[node] = _maybe_full(_Patch(self.base[node], top, left, content))
                continue
            if node.op == "get_attr":
                env[node] = self.base[node]
                continue
            args = fx.node.map_arg(node.args, lambda a: env[a])
            kwargs = fx.node.map_arg(node.kwargs, lambda a: env[a])
            if node.op == "output":
                return fx.node.map_aggregate(args[0], lambda a: _full(a) if isinstance(a, _Patch) else a)
            env[node] = out = self._step(node, args, kwargs)
            if self._regions is not None and node.op == "call_module" and isinstance(
                    self.modules[node.target], (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                whole = tuple(self.base[node].shape[-2:])
                self._regions.append((node.target, out.size if isinstance(out, _Patch) else whole, whole))
        raise RuntimeError("the traced graph has no output")  # fx graphs always end in one

    def _step(self, node: fx.Node, args, kwargs):
        found = []  # the patches among the arguments, also inside lists (torch.cat's)
        fx.node.map_aggregate((args, kwargs), lambda a: found.append(a) if isinstance(a, _Patch) else None)
        patches = bool(found)
        if node.op == "call_module":
            module = self.modules[node.target]
            if patches and len(args) == 1 and not kwargs:
                out = self._module(node, module, args[0])
                if out is not None:
                    return out
        elif node.op == "call_function" and patches:
            out = self._function(node, args, kwargs)
            if out is not None:
                return out
        elif node.op == "call_method" and patches:
            if node.target in _POINTWISE_METHODS and len(args) == 1 and not kwargs:
                return self._pointwise(node, args[0], lambda t: getattr(t, node.target)())
        # anything else: whole activations, as the model would compute them
        args = fx.node.map_aggregate(args, lambda a: _full(a) if isinstance(a, _Patch) else a)
        kwargs = fx.node.map_aggregate(kwargs, lambda a: _full(a) if isinstance(a, _Patch) else a)
        if node.op == "call_module":
            module = self.modules[node.target]
            self._count(node, module, args[0] if args else None)
            return module(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        self_obj, *rest = args
        return getattr(self_obj, node.target)(*rest, **kwargs)

    def _pointwise(self, node, p: _Patch, fn):
        return _Patch(self.base[node], p.top, p.left, fn(p.content))

    def _module(self, node, m: nn.Module, p: _Patch):
        kind = type(m)
        if kind in _POINTWISE or (kind in _DROPOUT and not m.training):
            inplace = getattr(m, "inplace", False)
            return self._pointwise(node, p, lambda t: m(t.clone() if inplace else t))
        if kind is nn.BatchNorm2d and not m.training and m.running_mean is not None:
            return self._pointwise(node, p, m)
        if kind is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            return self._sliding(node, p, m.kernel_size, m.stride, m.padding, m.dilation, 0.0,
                                 lambda w: F.conv2d(w, m.weight, m.bias, m.stride, 0, m.dilation, m.groups), m)
        if kind is nn.MaxPool2d and not m.return_indices:
            k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            pad, d = _pair(m.padding), _pair(m.dilation)
            return self._sliding(node, p, k, s, pad, d, float("-inf"), lambda w: F.max_pool2d(w, k, s, 0, d))
        if (kind is nn.AvgPool2d and _pair(m.padding) == (0, 0) and not m.ceil_mode
                and m.divisor_override is None):
            k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            return self._sliding(node, p, k, s, (0, 0), (1, 1), 0.0, lambda w: F.avg_pool2d(w, k, s))
        return None

    def _function(self, node, args, kwargs):
        f = node.target
        if f in _POINTWISE_FUNCTIONS and isinstance(args[0], _Patch) and len(args) == 1:
            kw = {k: v for k, v in kwargs.items() if k != "inplace"}
            return self._pointwise(node, args[0], lambda t: f(t, **kw))
        if f in _ADD_FUNCTIONS and len(args) == 2 and not kwargs:
            a, b = args
            if isinstance(a, _Patch) and isinstance(b, _Patch) and a.base.shape == b.base.shape:
                top, left, (h, w) = self._union([a, b])
                return _maybe_full(_Patch(self.base[node], top, left,
                                          _window(a, top, left, h, w) + _window(b, top, left, h, w)))
            scalar = b if isinstance(a, _Patch) else a
            if isinstance(scalar, (int, float)) and not isinstance(scalar, bool):
                p = a if isinstance(a, _Patch) else b
                return self._pointwise(node, p, lambda t: t + scalar)
        if f is torch.cat and len(args) >= 1 and isinstance(args[0], (list, tuple)):
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            parts = args[0]
            if (dim in (1, -3) and all(isinstance(t, _Patch) for t in parts)
                    and len({tuple(t.base.shape[-2:]) for t in parts}) == 1 and len(args) + len(kwargs) <= 2):
                top, left, (h, w) = self._union(parts)
                return _maybe_full(_Patch(self.base[node], top, left,
                                          torch.cat([_window(t, top, left, h, w) for t in parts], dim=1)))
        return None

    @staticmethod
    def _union(parts: List[_Patch]):
        """Boxes covering every operand's box, one size for all copies, inside the map."""
        height, width = parts[0].base.shape[-2:]
        top = torch.stack([t.top for t in parts]).min(0).values
        left = torch.stack([t.left for t in parts]).min(0).values
        bottom = torch.stack([t.top + t.size[0] for t in parts]).max(0).values
        right = torch.stack([t.left + t.size[1] for t in parts]).max(0).values
        h, w = int((bottom - top).max()), int((right - left).max())
        return top.clamp_max(height - h), left.clamp_max(width - w), (h, w)

    def _sliding(self, node, p: _Patch, k, s, pad, d, value, fn, module=None):
        """A convolution or pooling on the windows its changed outputs read."""
        k, s, pad, d = _pair(k), _pair(s), _pair(pad), _pair(d)
        (height, width), (out_h, out_w) = p.base.shape[-2:], self.base[node].shape[-2:]
        bh, bw = p.size
        top, h = _changed(p.top, bh, out_h, k[0], s[0], pad[0], d[0])
        left, w = _changed(p.left, bw, out_w, k[1], s[1], pad[1], d[1])
        win_h, win_w = (h - 1) * s[0] + d[0] * (k[0] - 1) + 1, (w - 1) * s[1] + d[1] * (k[1] - 1) + 1
        # the far padding: the layer's own, plus what ceil_mode's last window reaches beyond it
        far_h = max(pad[0], (out_h - 1) * s[0] + d[0] * (k[0] - 1) + 1 - height - pad[0])
        far_w = max(pad[1], (out_w - 1) * s[1] + d[1] * (k[1] - 1) + 1 - width - pad[1])
        windows = _window(p, top * s[0], left * s[1], win_h, win_w, (pad[0], far_h, pad[1], far_w), value)
        if module is not None:
            self._count(node, module, windows, out_hw=(h, w))
        return _maybe_full(_Patch(self.base[node], top, left, fn(windows)))

    def _count(self, node, module, x, out_hw=None):
        """Multiply-adds of convolutions and dense layers: done, and what a full run of the same copies does."""
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or not isinstance(x, torch.Tensor):
            return
        out = self.base[node]
        per_row = module.weight[0].numel()                  # in_features, or in_channels/groups · kh · kw
        full = x.shape[0] * out[0].numel() * per_row         # N copies × every output × its multiply-adds
        self.macs["full"] += full
        self.macs["incremental"] += full if out_hw is None else full * out_hw[0] * out_hw[1] // (
            out.shape[-2] * out.shape[-1])
