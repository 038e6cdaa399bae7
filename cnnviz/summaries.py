"""Model summaries: one row per layer call with its output shape, parameters, MACs and receptive field.

``summary(model, (3, 224, 224))`` runs one forward pass of a batch of zeros
without gradients, in eval mode, and records every call of a *leaf* module (a
module without children) in call order: ResNet's ``layer1.0.conv1`` or
VGG's ``features.28``. Nothing about the model changes: its train/eval flags
are restored and every hook is removed, also after an exception.

Counting conventions (those of the lecture tables):

- ``params``: a module's own learned parameters (``nn.Parameter``; BatchNorm's
  running statistics are buffers, not parameters). A parameter is counted in the
  first row that uses it, so parameters shared between modules, or a module
  called twice, are counted once and the rows add up to ``total_params``
  (except parameters of modules never called, such as GoogLeNet's auxiliary
  classifiers in eval mode, and parameters owned directly by a container).
- ``macs``: multiply–accumulates of the convolutions (``Conv2d`` with groups
  and dilation, ``ConvTranspose2d``) and matrix products (``Linear``) of one
  image, one MAC per weight per output position; bias additions, pooling,
  normalisation, activations and residual additions count 0. One MAC is one
  multiplication plus one addition, so FLOPs ≈ 2 × MACs: ``total_macs`` equals
  half of ``torch.utils.flop_counter.FlopCounterMode``'s total for CNNs.
- ``receptive_field`` and ``jump``: chapter 3's recurrence (Araujo et al. 2019,
  "Computing receptive fields of convolutional neural networks") carried by every
  *tensor* through the forward pass, so that it follows branches: see ``summary``.
"""
import contextlib
import html
import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from numbers import Integral
from typing import Iterable, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnnviz.receptive_field import Layer, receptive_field

__all__ = ["summary", "Summary", "SummaryRow", "InputTooSmall", "InputSizeMismatch", "count_params", "MACS_NOTE",
           "UNTRACKED_NOTE"]

#: The note every rendering carries: what the MACs column counts.
MACS_NOTE = ("MACs are multiply–accumulates of the convolution and linear layers for one image "
             "(bias additions, pooling, normalisation and activations not counted); FLOPs ≈ 2 × MACs.")

Number = Union[int, float]
Field = Union[Number, Tuple[Number, Number]]

_ATTR = "_cnnviz_receptive_field"  # set on the tensors of one summary's forward pass: ((r_h, j_h), (r_w, j_w))
_INPUT = ((1, 1), (1, 1))  # an input pixel sees itself; neighbours are one pixel apart
# the field of a map whose axes were rearranged (a channels-last block, window attention): not followed further
_UNTRACKED = "untracked"
#: the note of a row whose receptive field is not worked out
UNTRACKED_NOTE = ("receptive field not worked out: the map's axes were permuted before this layer (channels-last "
                  "blocks, window attention), and the summary follows fields only through (C, H, W) maps")


class InputTooSmall(ValueError):
    """The input is too small for the model: some layer's output would be empty.

    ``layer`` is the dotted name of that layer, ``kind`` its class name and
    ``min_size`` the smallest square input side that fits every layer (``None``
    when it could not be worked out).
    """

    def __init__(self, message, *, layer="", kind="", min_size=None):
        super().__init__(message)
        self.layer, self.kind, self.min_size = layer, kind, min_size


class InputSizeMismatch(ValueError):
    """The input's size does not fit a dense layer sized for one particular input (AlexNet's fc6 at 100×100).

    ``layer`` is the dotted name of that layer, ``expected`` and ``got`` its input features.
    """

    def __init__(self, message, *, layer="", expected=None, got=None):
        super().__init__(message)
        self.layer, self.expected, self.got = layer, expected, got


@dataclass(frozen=True)
class SummaryRow:
    """One call of a leaf module (or, after ``Summary.group``, of a block of them).

    ``output_shape`` has no batch axis, e.g. ``(64, 56, 56)``; ``activations``
    is its number of elements. ``receptive_field`` is the side ``r`` of the
    square window of input pixels one output unit sees, and ``jump`` the
    distance in input pixels between neighbouring output units: both are set
    for rows that run a convolution, pooling or upsampling, else ``None``; they
    are an int, or a ``(rows, cols)`` pair when the two axes differ (a 1×7
    kernel, a non-square input to a global pooling), or a float after a
    fractional upsampling. ``call`` counts the calls of the same module (0 for
    the first): a module run twice gives two rows with the same ``name``.
    ``note``: why a row that runs a convolution or pooling has no field (empty otherwise).
    """
    name: str
    kind: str
    output_shape: Tuple[int, ...]
    params: int
    macs: int
    receptive_field: Optional[Field]
    jump: Optional[Field]
    activations: int
    call: int = 0
    note: str = ""


@dataclass(frozen=True)
class Summary:
    """The table ``summary`` returns: ``rows`` plus the whole model's totals.

    Totals (for one image): ``total_params`` (== ``count_params(model)``),
    ``trainable_params``, ``total_macs`` (every convolution and matrix product of
    the forward pass), ``total_activations`` (the rows' output elements, added
    up), ``activation_bytes`` (forward activations of one image: the outputs of
    the rows that make a new tensor; in-place layers such as ``ReLU(inplace=True)``,
    ``Dropout`` in eval mode and views such as ``Flatten`` add nothing, and
    tensors made outside leaf modules, like Inception's and DenseNet's
    concatenations, are not counted), ``param_bytes``.

    ``filter`` and ``group`` return a new ``Summary`` with other rows and the
    same totals, which always describe the whole model.
    """
    model_name: str
    input_size: Tuple[int, int, int]
    batch_size: int
    rows: Tuple[SummaryRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    total_activations: int
    activation_bytes: int
    param_bytes: int
    # every module call (containers included) in call order, its enclosing call, and each row's call
    _calls: Tuple[SummaryRow, ...] = field(default=(), repr=False, compare=False)
    _parents: Tuple[int, ...] = field(default=(), repr=False, compare=False)
    _row_calls: Tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    # ------------------------------------------------------------------ other views of the rows

    def filter(self, kinds: Optional[Iterable[str]] = None, where=None) -> "Summary":
        """The rows whose ``kind`` is in ``kinds`` (class names) and for which ``where(row)`` is true.

        ``summary.filter(kinds=("Conv2d", "MaxPool2d", "Linear"))`` keeps the
        "main layers" of a lecture table. Totals stay those of the whole model.
        """
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = None if kinds is None else set(kinds)
        keep = [k for k, row in enumerate(self.rows)
                if (kinds is None or row.kind in kinds) and (where is None or where(row))]
        return replace(self, rows=tuple(self.rows[k] for k in keep),
                       _row_calls=tuple(self._row_calls[k] for k in keep))

    def group(self, depth: int) -> "Summary":
        """One row per module at ``depth`` levels of the dotted names: ResNet stages, Inception modules.

        Each row goes to the outermost module call around it whose name has at
        least ``depth`` components (``group(1)`` turns ``inception3a.branch2.0.conv``
        into ``inception3a``); rows with shorter names stay as they are. A group
        row adds up its rows' ``params`` and ``macs`` and takes its module's
        class, output shape and receptive field (an Inception module's output is
        the concatenation of its branches).
        """
        if isinstance(depth, bool) or not isinstance(depth, Integral) or depth < 1:
            raise ValueError(f"depth must be a whole number of at least 1, got {depth!r}.")
        members = {}  # group's call index -> [(row, its call index)], in order of first appearance
        for row, k in zip(self.rows, self._row_calls):
            members.setdefault(self._group_of(k, depth), []).append((row, k))
        rows = tuple(self._group_row(g, group) for g, group in members.items())
        return replace(self, rows=rows, _row_calls=tuple(members))

    def _group_of(self, k, depth):
        """The outermost call around call k (k included) whose name has at least ``depth`` components."""
        group, parent = k, k
        while parent >= 0:
            if _depth(self._calls[parent].name) >= depth:
                group = parent
            parent = self._parents[parent]
        return group

    def _group_row(self, g, group):
        if len(group) == 1 and group[0][1] == g:  # a row that is its own group
            return group[0][0]
        rows = [row for row, _ in group]
        return replace(self._calls[g], params=sum(r.params for r in rows), macs=sum(r.macs for r in rows))

    # ------------------------------------------------------------------ renderings

    def to_dataframe(self):
        """The rows as a ``pandas.DataFrame`` (one column per ``SummaryRow`` field); totals in ``df.attrs``."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Summary.to_dataframe needs pandas: pip install pandas") from None
        columns = ["name", "kind", "output_shape", "params", "macs", "receptive_field", "jump",
                   "activations", "call", "note"]
        df = pd.DataFrame([[getattr(row, c) for c in columns] for row in self.rows], columns=columns)
        df.attrs.update(self._totals())
        return df

    def to_markdown(self) -> str:
        """A Markdown table (MyST, GitHub) of the rows with a total row; ``MACS_NOTE`` says what MACs count."""
        header = self._header()
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if k < 2 or k == 7 else "---:"
                                                                 for k in range(len(header))) + "|"]
        for cells in self._cells():
            cells[0] = f"`{cells[0]}`" if cells[0] else ""
            lines.append("| " + " | ".join(cells) + " |")
        total = ["**Total**", "", "", f"**{self.total_params:,}**", f"**{self.total_macs:,}**", "", ""]
        total += [""] * (len(header) - len(total))
        lines.append("| " + " | ".join(total) + " |")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        right = ' style="text-align:right"'
        header = self._header()
        head = "".join(f"<th{right if 2 <= k < 7 else ''}>{h}</th>" for k, h in enumerate(header))
        body = "".join("<tr>" + "".join(f"<td{right if 2 <= k < 7 else ''}>{html.escape(c)}</td>"
                                        for k, c in enumerate(cells)) + "</tr>" for cells in self._cells())
        total = (f"<tr><th>Total</th><td></td><td></td><th{right}>{self.total_params:,}</th>"
                 f"<th{right}>{self.total_macs:,}</th><td></td><td></td>{'<td></td>' * (len(header) - 7)}</tr>")
        notes = "".join(f"<li>{html.escape(line)}</li>" for line in self._total_lines())
        return (f"<table><caption>{html.escape(self._title())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody><tfoot>{total}</tfoot></table><ul>{notes}</ul>")

    def __str__(self) -> str:
        header = self._header()
        table = [list(header)] + self._cells()
        widths = [max(len(line[k]) for line in table) for k in range(len(header))]
        text = ["  ".join(c.ljust(w) if k < 2 or k == 7 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths)))
                .rstrip() for line in table]
        rule = "-" * len(text[0])
        return "\n".join([self._title(), text[0], rule, *text[1:], rule, *self._total_lines()])

    def _title(self):
        c, h, w = self.input_size
        return f"{self.model_name} on a {c}×{h}×{w} input ({len(self.rows)} rows)"

    def _header(self):
        """The columns; "Note" only when a row has one."""
        return _HEADER + (("Note",) if any(row.note for row in self.rows) else ())

    def _cells(self):
        noted = any(row.note for row in self.rows)
        return [[row.name, row.kind, _shape(row.output_shape), f"{row.params:,}", f"{row.macs:,}",
                 _field(row.receptive_field), _field(row.jump)] + ([row.note] if noted else []) for row in self.rows]

    def _total_lines(self):
        return [
            f"Parameters: {self.total_params:,} ({self.trainable_params:,} trainable), "
            f"{_megabytes(self.param_bytes)}",
            f"MACs: {self.total_macs:,} per image. {MACS_NOTE}",
            f"Activations: {self.total_activations:,} output values per image; forward activation memory "
            f"{_megabytes(self.activation_bytes)} per image",
        ]

    def _totals(self):
        names = ("model_name", "input_size", "batch_size", "total_params", "trainable_params", "total_macs",
                 "total_activations", "activation_bytes", "param_bytes")
        return {name: getattr(self, name) for name in names}


_HEADER = ("Layer", "Type", "Output shape", "Params", "MACs", "RF", "Jump")


def _depth(name):
    return len(name.split(".")) if name else 0


def _shape(shape):
    return "×".join(str(n) for n in shape) if shape else "–"


def _field(value):
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "×".join(_field(v) for v in value)
    return str(value) if isinstance(value, int) else f"{value:.3g}"


def _megabytes(n):
    return f"{n / 1e6:,.1f} MB"


# ----------------------------------------------------------------------------- public helpers

def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of learned parameters of ``model``, shared ones counted once (buffers excluded).

    ``trainable_only=True`` counts only those with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module, input_size, *, batch_size: int = 1, device=None) -> Summary:
    """Summarise ``model`` on an ``input_size`` = (C, H, W) input: one ``SummaryRow`` per leaf module call.

    Runs one forward pass of zeros ``(batch_size, C, H, W)`` without gradients,
    in eval mode. By default it runs on the meta device: shapes only, no
    arithmetic (VGG-16 in milliseconds instead of a second); a model with real
    weights gets meta stand-ins for its parameters and buffers during the call,
    and if its forward cannot run on meta (it makes CPU tensors of its own, or
    looks at values), the pass is run again on the model's own device.
    ``device="cpu"`` (or the model's device) forces a real forward pass there.
    Counts are per image (see the module docstring for the conventions). The
    model is left as it was: modes restored, no hook left, parameters untouched.

    Receptive fields follow every tensor: the input carries r = 1, j = 1;
    a convolution or pooling composes the field of its input with its own
    window (``cnnviz.receptive_field.receptive_field`` of that one layer:
    ``r_out = r_in + d(f-1)·j_in``, ``j_out = j_in·s``); a global or adaptive
    pooling, a mean over the spatial axes and a flatten see the whole map;
    and every other operation (additions, concatenations, activations,
    normalisation, matrix products) takes the largest r and j of its inputs,
    the j only of inputs of the output's size (a 1×1 squeeze-and-excitation
    gate broadcast over a map widens its field but does not space its units).
    So a residual addition or an Inception concatenation gets the larger field
    of its branches. A permute or transpose that takes H or W out of the last
    two places (ConvNeXt's channels-last blocks, Swin's and MaxViT's window
    attention) ends the tracking: the rows after it get no field and a
    ``note`` (``UNTRACKED_NOTE``), shown in an extra column of the renderings.

    Raises ``InputTooSmall`` (a ``ValueError``) naming the first layer whose
    output would be empty and the smallest input that fits, ``ValueError`` for
    a bad ``input_size``, and any other error of the forward pass with the name
    of the layer it happened in.
    """
    c, h, w = _check_input_size(input_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    plans = _plan_devices(model, device)
    shape = (int(batch_size), c, h, w)
    for k, (run_device, stand_ins) in enumerate(plans):
        try:
            recorder, tracer = _trace(model, shape, run_device, stand_ins)
            break
        except InputTooSmall as err:  # sizes are exact on meta: no second try
            raise _with_min_size(err, model, shape) from None
        except InputSizeMismatch as err:
            default = getattr(model, "default_input_size", None)
            hint = (f" Use the model's own input size, {_shape(default)}." if default is not None else
                    " Its dense layers were sized for another input size.")
            raise InputSizeMismatch(f"A {c}×{h}×{w} input does not fit this model: {err}{hint}",
                                    layer=err.layer, expected=err.expected, got=err.got) from None
        except Exception:
            if k == len(plans) - 1:
                raise  # else: try the model's own device, which raises the real error if there is one
    return _build(model, recorder, tracer, (c, h, w), int(batch_size))


# ----------------------------------------------------------------------------- arguments and devices

def _check_input_size(input_size):
    hint = "input_size must be (C, H, W), three positive whole numbers such as (3, 224, 224)"
    try:
        values = tuple(input_size)
    except TypeError:
        raise ValueError(f"{hint}; got {input_size!r}.") from None
    if len(values) != 3:
        extra = " (without the batch axis: use batch_size=)" if len(values) == 4 else ""
        raise ValueError(f"{hint}{extra}; got {input_size!r}, which has {len(values)} values.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise ValueError(f"{hint}; got {input_size!r}.")
    return tuple(int(v) for v in values)


def _plan_devices(model, device):
    """[(device, meta stand-ins or None)] to try in turn: meta first by default, then the model's device."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    tensors = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
    devices = {t.device for t in tensors.values()}
    home = next(iter(tensors.values())).device if tensors else torch.device("cpu")
    meta = torch.device("meta")
    if device is None:
        return [_on_meta(tensors)] + ([] if meta in devices else [(home, None)])
    target = torch.device(device)
    if target == meta:
        return [_on_meta(tensors)]
    if meta in devices:
        raise ValueError(f"The model's parameters are on the meta device (they hold no values), so it cannot "
                         f"run on {target}; leave device=None to summarise it on the meta device.")
    if any(not _same_device(d, target) for d in devices):
        raise ValueError(f"The model is on {home} but device={str(target)!r}: move it with model.to(...) "
                         "first, or leave device=None.")
    return [(home if _same_device(home, target) else target, None)]


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same: the same type, and the same index where both name one
    (``cuda`` and ``cuda:0`` are the same device when the current one is 0; torch compares them as unequal)."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return a.index == b.index


def _on_meta(tensors):
    meta = torch.device("meta")
    if all(t.device == meta for t in tensors.values()):
        return meta, None
    return meta, {name: torch.empty_like(t, device=meta) for name, t in tensors.items()}


def _input_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


# ----------------------------------------------------------------------------- the forward pass

@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode for the duration, then every module's own train/eval flag back, also after an error."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _trace(model, shape, device, stand_ins):
    """Run the model once under the hooks and the tracing mode; the recorder and the tracer afterwards."""
    x = torch.zeros(shape, device=device, dtype=_input_dtype(model))  # (B, C, H, W)
    setattr(x, _ATTR, _INPUT)
    recorder = _CallRecorder(model)
    with _eval_mode(model), recorder, torch.no_grad(), _Tracer(recorder, model) as tracer:
        try:
            if stand_ins is None:
                model(x)
            else:
                torch.func.functional_call(model, stand_ins, (x,))
        except InputTooSmall:
            raise
        except Exception as err:
            _raise_in_layer(err, recorder.innermost())
    return recorder, tracer


_PLAIN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, NotImplementedError, AssertionError)


def _raise_in_layer(err, call):
    """Re-raise ``err`` with the layer it happened in: same type and a longer message where that is safe."""
    module = getattr(call, "module", None)
    if isinstance(module, nn.Linear) and isinstance(err, RuntimeError) and ("cannot be multiplied" in str(err)
                                                                   or "same reduction dim" in str(err)):
        got = _features_in(str(err))
        raise InputSizeMismatch(
            f"layer {call.name!r} (Linear) expects {module.in_features:,} input values per image"
            + (f" but gets {got:,}." if got is not None else "."),
            layer=call.name, expected=module.in_features, got=got) from None
    where = f"In layer {call.name!r} ({call.kind})" if call is not None and call.name else (
        f"In the forward of the model itself ({call.kind})" if call is not None else "Before any layer ran")
    if type(err) in _PLAIN_ERRORS:
        raise type(err)(f"{where}: {err}") from err
    if hasattr(err, "add_note"):  # Python 3.11+
        err.add_note(where)
    raise err


def _features_in(message):
    """The input features of a failed matrix product, from torch's "mat1 and mat2 shapes cannot be
    multiplied (1x6400 and 9216x4096)" or (on meta) "... but got [1, 6400] X [9216, 4096]" message;
    None if the message has another form."""
    import re
    found = (re.search(r"\((\d+)x(\d+) and \d+x\d+\)", message)
             or re.search(r"\[(\d+), (\d+)\] X \[\d+, \d+\]", message))
    return int(found.group(2)) if found else None


class _Call:
    """One module call: where it sits, and what the tracer and the hooks learn about it."""
    __slots__ = ("index", "module", "name", "kind", "parent", "leaf", "number", "macs", "spatial",
                 "shape", "numel", "new_bytes", "field")

    def __init__(self, index, module, name, parent, leaf, number):
        self.index, self.module, self.name, self.kind = index, module, name, type(module).__name__
        self.parent, self.leaf, self.number = parent, leaf, number
        self.macs, self.spatial, self.shape, self.numel, self.new_bytes, self.field = 0, False, (), 0, 0, None


class _CallRecorder:
    """Forward pre-hooks and hooks on every module (a context manager): the stack of calls, and a record of each."""

    def __init__(self, model):
        self.names = {m: name for name, m in model.named_modules()}  # a shared module gets its first name
        self.leaves = {m for m in self.names if next(iter(m.children()), None) is None}
        self.calls, self.stack, self.counts, self.handles = [], [], Counter(), []

    def __enter__(self):
        try:
            for module in self.names:
                self.handles.append(module.register_forward_pre_hook(self._pre))
                self.handles.append(module.register_forward_hook(self._post))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc):
        self._remove()

    def _remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def innermost(self) -> Optional[_Call]:
        return self.stack[-1] if self.stack else None

    def _pre(self, module, args):
        parent = self.stack[-1].index if self.stack else -1
        call = _Call(len(self.calls), module, self.names[module], parent, module in self.leaves, self.counts[module])
        self.counts[module] += 1
        self.calls.append(call)
        self.stack.append(call)

    def _post(self, module, args, output):
        call = self.stack.pop()
        out = _first_tensor(output)
        if out is not None:
            call.shape, call.numel, call.field = tuple(out.shape), out.numel(), getattr(out, _ATTR, None)
            call.new_bytes = 0 if _aliases(out, args) else out.numel() * out.element_size()
        if self.stack:  # MACs and "ran a spatial op" are inclusive: a block has those of its layers
            self.stack[-1].macs += call.macs
            self.stack[-1].spatial |= call.spatial


def _tensors(obj):
    """The tensors in nested tuples, lists and dicts (an op's arguments, a module's output)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _first_tensor(obj):
    return next(_tensors(obj), None)


def _aliases(out, inputs):
    """True if ``out`` is one of ``inputs`` or a view of one (in-place ReLU, Dropout in eval, Flatten)."""
    base = out._base
    for t in _tensors(inputs):
        if out is t or (base is not None and (base is t or base is t._base)):
            return True
    return False


# ----------------------------------------------------------------------------- per-tensor receptive fields

class _Tracer(TorchDispatchMode):
    """Sees every ATen op of the forward pass: counts MACs and carries (r, j) from inputs to outputs."""

    def __init__(self, recorder, model):
        super().__init__()
        self.recorder = recorder
        self.macs = 0
        # the caller's tensors never get our attribute, even if the forward writes into a buffer in place
        self.own = {id(t) for t in itertools.chain(model.parameters(), model.buffers())}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        windows = _windows_before(packet, args, kwargs, self.recorder)  # conv / pool; checks the size
        out = func(*args, **kwargs)
        call = self.recorder.innermost()
        macs = _op_macs(packet, args, out)
        if macs:
            self.macs += macs
            if call is not None:
                call.macs += macs
        if windows is None:
            windows = _windows_after(packet, args, kwargs, out)
        if windows is not None and call is not None and packet not in _views():
            call.spatial = True  # a convolution, pooling or upsampling ran in this call (a flatten does not)
        carried = [(getattr(t, _ATTR), t) for t in _tensors((args, kwargs)) if getattr(t, _ATTR, None) is not None]
        if carried:
            if any(f is _UNTRACKED for f, _ in carried) or _moves_the_map_axes(packet, args):
                f = _UNTRACKED
            else:
                f = carried[0][0] if len(carried) == 1 else _merge(carried, out)
                if windows is not None:
                    f = _compose(f, windows)
            for t in _tensors(out):
                if id(t) not in self.own:
                    setattr(t, _ATTR, f)
        return out


def _moves_the_map_axes(packet, args) -> bool:
    """A permute or transpose of a (B, C, H, W) map that takes H or W out of the last two places."""
    aten = torch.ops.aten
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or x.dim() < 3 or packet not in (aten.permute, aten.transpose):
        return False
    n = x.dim()
    order = list(range(n))
    if packet is aten.permute:
        order = [d % n for d in args[1]]
    else:
        a, b = args[1] % n, args[2] % n
        order[a], order[b] = order[b], order[a]
    return order[-2:] != [n - 2, n - 1]


def _merge(carried, out):
    """Branches meet (addition, concatenation, a gate): per axis the largest r, and the largest j of the
    branches whose map has the output's size. A map broadcast over the output (a squeeze-and-excitation gate of
    1×1, say) has seen the whole map, so its r counts, but it does not set the spacing of the output's units."""
    fields = [f for f, _ in carried]
    size = tuple(out.shape[-2:]) if isinstance(out, torch.Tensor) and out.dim() >= 2 else None
    full = [f for f, t in carried if size is not None and t.dim() >= 2 and tuple(t.shape[-2:]) == size] or fields
    return tuple((max(f[a][0] for f in fields), max(f[a][1] for f in full)) for a in range(2))


def _compose(f, windows):
    """The field after an op whose own window is (r_op, j_op) per axis, in units of its input.

    ``r_out = r_in + (r_op - 1)·j_in`` and ``j_out = j_in·j_op``: for one layer
    from r_op = 1 + d(f-1), j_op = s this is chapter 3's recurrence.
    """
    return tuple((r + (w[0] - 1) * j, _plain(j * w[1])) if w is not None else (r, j)
                 for (r, j), w in zip(f, windows))


def _plain(x):
    return int(x) if isinstance(x, Fraction) and x.denominator == 1 else x


@lru_cache(maxsize=None)
def _window(f, s=1, d=1):
    """(r, j) of one layer on its own, by chapter 3's ``receptive_field`` (padding does not change them)."""
    row = receptive_field([Layer("conv", f, s, 0, d)])[-1]
    return row.r, row.j


def _pair(value, default=(0, 0)):
    """(H, W) from an int or a list of 1 or 2 ints, as ATen gives them; ``default`` for an empty list."""
    if isinstance(value, int):
        return value, value
    value = list(value)
    if not value:
        return tuple(default)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _arg(args, kwargs, k, name, default):
    return args[k] if len(args) > k else kwargs.get(name, default)


def _out_len(n, f, p, s, d, ceil_mode=False):
    """Output length along one axis, exactly as PyTorch computes it for convolution and pooling."""
    span = d * (f - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - span) // s + 1
    out = -(-(n + 2 * p - span) // s) + 1
    if (out - 1) * s >= n + p:  # the last window would start in the right padding
        out -= 1
    return out


def _windows_before(packet, args, kwargs, recorder):
    """(r_op, j_op) per axis (H, W) of a 2-D convolution or pooling; ``InputTooSmall`` if its output is empty."""
    aten = torch.ops.aten
    x = args[0]
    if packet is aten.convolution:
        weight = args[1]  # (C_out, C_in/groups, f_h, f_w), or (C_in, C_out/groups, f_h, f_w) if transposed
        if weight.dim() != 4:  # 1-D and 3-D convolutions: not tracked (the field passes through)
            return None
        kernel = tuple(weight.shape[2:])
        stride, padding, dilation = (_pair(args[k]) for k in (3, 4, 5))
        if args[6]:  # transposed: each output unit reads ceil(span/s) input units, which are 1/s apart
            return tuple((-(-(d * (f - 1) + 1) // s), Fraction(1, s)) for f, s, d in zip(kernel, stride, dilation))
        _check_fits(x, kernel, stride, padding, dilation, False, recorder)
        return tuple(_window(f, s, d) for f, s, d in zip(kernel, stride, dilation))
    if packet in (aten.max_pool2d_with_indices, aten.max_pool2d, aten.avg_pool2d):
        # max: (self, kernel_size, stride=[], padding=0, dilation=1, ceil_mode=False)
        # avg: (self, kernel_size, stride=[], padding=0, ceil_mode=False, ...)
        kernel = _pair(args[1])
        stride = _pair(_arg(args, kwargs, 2, "stride", []), kernel)
        padding = _pair(_arg(args, kwargs, 3, "padding", 0))
        if packet is aten.avg_pool2d:
            dilation, ceil_mode = (1, 1), _arg(args, kwargs, 4, "ceil_mode", False)
        else:
            dilation, ceil_mode = _pair(_arg(args, kwargs, 4, "dilation", 1)), _arg(args, kwargs, 5, "ceil_mode", False)
        _check_fits(x, kernel, stride, padding, dilation, bool(ceil_mode), recorder)
        return tuple(_window(f, s, d) for f, s, d in zip(kernel, stride, dilation))
    return None


def _check_fits(x, kernel, stride, padding, dilation, ceil_mode, recorder):
    size = tuple(x.shape[-2:])
    lengths = [_out_len(n, f, p, s, d, ceil_mode) for n, f, p, s, d in zip(size, kernel, padding, stride, dilation)]
    if min(lengths) >= 1:
        return
    need = tuple(next(n for n in itertools.count(1) if _out_len(n, f, p, s, d, ceil_mode) >= 1)
                 for f, p, s, d in zip(kernel, padding, stride, dilation))
    call = recorder.innermost()
    name, kind = (call.name, call.kind) if call is not None else ("", "")
    where = f"layer {name!r} ({kind})" if name else f"the model's own forward ({kind})"
    settings = ", ".join(f"{word} {_pair_text(v)}" for word, v, usual in
                         (("stride", stride, (1, 1)), ("padding", padding, (0, 0)), ("dilation", dilation, (1, 1)))
                         if v != usual)
    settings = f" ({settings})" if settings else ""
    raise InputTooSmall(
        f"{where} would have an empty output: its {_shape(kernel)} window{settings} needs an input of at "
        f"least {_shape(need)} but gets {_shape(size)}.", layer=name, kind=kind)


def _pair_text(v):
    return str(v[0]) if v[0] == v[1] else _shape(v)


_REDUCTIONS = ("mean", "sum", "amax", "amin")


def _views():
    aten = torch.ops.aten
    return aten.view, aten._unsafe_view, aten.reshape


def _windows_after(packet, args, kwargs, out):
    """(r_op, j_op) per axis of ops that see a whole map or change its scale, from their output's shape."""
    aten = torch.ops.aten
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or x.dim() != 4 or not isinstance(out, torch.Tensor):
        return None  # only (B, C, H, W) maps: a 3-D (B, classes, features) tensor has no spatial axes
    size = tuple(x.shape[-2:])
    if packet in (aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d):
        return tuple(_adaptive(n, o) for n, o in zip(size, out.shape[-2:]))
    if packet.__name__ in _REDUCTIONS:
        dims = _arg(args, kwargs, 1, "dim", None)
        dims = range(x.dim()) if dims is None or (isinstance(dims, (list, tuple)) and not dims) else (
            [dims] if isinstance(dims, int) else dims)
        axes = {d % x.dim() for d in dims}
        reduced = [x.dim() - 2 in axes, x.dim() - 1 in axes]
        return tuple(_window(n, n) if r else None for n, r in zip(size, reduced)) if any(reduced) else None
    if packet in _views() and tuple(out.shape[-2:]) != size:
        return tuple(_window(n, n) for n in size)  # flatten: every output value may mix the whole map
    if "upsample" in packet.__name__ and out.dim() == x.dim():
        taps = 4 if "bicubic" in packet.__name__ else 2 if "linear" in packet.__name__ else 1
        return tuple((taps if n != o else 1, _plain(Fraction(n, o))) for n, o in zip(size, out.shape[-2:]))
    return None


def _adaptive(n, o):
    """Adaptive pooling from n to o positions: window i covers [floor(i·n/o), ceil((i+1)·n/o))."""
    if n % o == 0:
        return _window(n // o, n // o)
    widest = max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o))
    return widest, Fraction(n, o)


def _op_macs(packet, args, out):
    """Multiply–accumulates of one convolution or matrix product (FlopCounterMode's count, halved)."""
    aten = torch.ops.aten
    if packet is aten.convolution:
        x, weight, transposed = args[0], args[1], args[6]
        per_value = weight.numel() // weight.shape[0]  # C_in/groups·f·f weights per output value
        # transposed: every *input* value meets C_out/groups·f·f weights (weight is (C_in, C_out/groups, f, f))
        return (x if transposed else out).numel() * per_value
    if packet in (aten.addmm, aten.mm):
        a, b = (args[1], args[2]) if packet is aten.addmm else (args[0], args[1])
        return a.shape[0] * a.shape[1] * b.shape[1]
    if packet in (aten.bmm, aten.baddbmm):
        a, b = (args[1], args[2]) if packet is aten.baddbmm else (args[0], args[1])
        return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return 0


# ----------------------------------------------------------------------------- building the Summary

def _per_image(n, batch_size):
    return n // batch_size


def _rows(recorder, batch_size):
    """A SummaryRow for every call (containers too); a parameter counts in the first leaf row that uses it."""
    seen, rows = set(), []
    for call in recorder.calls:
        params = 0
        if call.leaf:
            for p in call.module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params += p.numel()
        batched = bool(call.shape) and call.shape[0] == batch_size
        shape = call.shape[1:] if batched else call.shape
        field_ = call.field if call.spatial else None
        note = UNTRACKED_NOTE if field_ is _UNTRACKED else ""
        field_ = None if field_ is _UNTRACKED else field_
        rows.append(SummaryRow(
            call.name, call.kind, tuple(shape), params, _per_image(call.macs, batch_size),
            _report(field_, 0), _report(field_, 1), call.numel // batch_size if batched else call.numel,
            call.number, note))
    return rows


def _report(f, k):
    """The r (k = 0) or j (k = 1) of a field as an int, a float, or an (H, W) pair when the axes differ."""
    if f is None:
        return None
    values = tuple(_number(v) for v in (f[0][k], f[1][k]))
    return values[0] if values[0] == values[1] else values


def _number(v):
    """An int where the value is whole (however large: no float conversion), else a float."""
    if isinstance(v, int):
        return v
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    return int(v) if float(v).is_integer() else float(v)


def _build(model, recorder, tracer, input_size, batch_size):
    calls = _rows(recorder, batch_size)
    leaves = [c.index for c in recorder.calls if c.leaf]
    rows = tuple(calls[k] for k in leaves)
    new_bytes = sum(recorder.calls[k].new_bytes for k in leaves)
    return Summary(
        model_name=type(model).__name__, input_size=input_size, batch_size=batch_size, rows=rows,
        total_params=count_params(model), trainable_params=count_params(model, trainable_only=True),
        total_macs=_per_image(tracer.macs, batch_size), total_activations=sum(r.activations for r in rows),
        activation_bytes=_per_image(new_bytes, batch_size),
        param_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        _calls=tuple(calls), _parents=tuple(c.parent for c in recorder.calls), _row_calls=tuple(leaves))


# ----------------------------------------------------------------------------- the smallest input

_LARGEST_SIDE = 16384  # the search for the smallest input gives up past this side (meta: no memory used)


def _fits(model, shape, stand_ins):
    try:
        _trace(model, shape, torch.device("meta"), stand_ins)
    except InputTooSmall:
        return False
    except Exception:  # any other failure (a classifier that wants one exact size) is not about being too small
        return True
    return True


def _smallest_side(model, shape):
    """The smallest s such that an input of at least s×s fits every layer (on meta stand-ins), or None."""
    _, stand_ins = _plan_devices(model, "meta")[0]
    b, c, h, w = shape
    at = lambda s: (b, c, max(h, s), max(w, s))  # noqa: E731
    try:  # the meta run must fail the same way, else the search would say nothing true
        _trace(model, shape, torch.device("meta"), stand_ins)
        return None
    except InputTooSmall:
        pass
    except Exception:
        return None
    lo, hi = max(h, w), 2 * max(h, w)  # lo does not fit
    while not _fits(model, at(hi), stand_ins):
        lo, hi = hi, 2 * hi
        if hi > _LARGEST_SIDE:
            return None
    while hi - lo > 1:  # output sizes never shrink when the input grows: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _fits(model, at(mid), stand_ins) else (mid, hi)
    return hi


def _with_min_size(err, model, shape):
    _, c, h, w = shape
    side = _smallest_side(model, shape)
    tail = f" The smallest input for which every convolution and pooling layer has an output is {side}×{side}." if side is not None else ""
    return InputTooSmall(f"A {c}×{h}×{w} input is too small for this model: {err}{tail}",
                         layer=err.layer, kind=err.kind, min_size=side)
