"""Comparing architectures (chapter 12): what each model costs to run, and the accuracy it buys.

``model_costs`` computes, for registered models, the three costs of a network:
parameters (storage), multiply–accumulates (time; MACs, one multiplication plus one
addition, so FLOPs ≈ 2 × MACs) and activation memory for one image, all from
``cnnviz.summary`` on the meta device. ``depth`` counts weight layers,
``pytorch_flops`` asks PyTorch's own FLOP counter. ``accuracy_chart`` draws accuracy
against cost in the style of Canziani, Paszke and Culurciello (2016, "An analysis of
deep neural network models for practical applications"), with menus that work
without a kernel.
"""
import html
import math
import re
import textwrap
from functools import lru_cache
from typing import Dict, Iterable, Mapping, NamedTuple, Optional, Sequence

import plotly.graph_objects as go
import torch
import torch.nn as nn
from plotly.colors import qualitative
from torch.overrides import TorchFunctionMode

from cnnviz.plot import style

__all__ = ["Costs", "Depth", "model_costs", "depth", "pytorch_flops", "model_label", "accuracy_chart",
           "X_AXES", "Y_AXES", "SHOW"]


class Costs(NamedTuple):
    """What one model costs for one image, as ``cnnviz.summary`` counts it in eval mode.

    ``params``: the learned parameters of the layers the forward pass runs (BatchNorm's
    running statistics are not parameters), the sum of the summary's rows; this is
    ``total_params`` for every registered model except GoogLeNet, whose auxiliary
    classifiers only run in training. ``macs``: ``total_macs``, the multiply–accumulates
    of the convolutions and linear layers (FLOPs ≈ 2 × MACs). ``activation_bytes``: the
    layer outputs of one forward pass (float32), ``activation_bytes`` of the summary.
    """
    params: int
    macs: int
    activation_bytes: int


class Depth(NamedTuple):
    """How deep a model is, counted two ways: ``path``, the most weight layers (convolutions and
    linear layers) on one path from the input to the output, the count that names VGG-16 or
    ResNet-50; and ``weight_layers``, every weight layer the forward pass runs (shortcut
    projections and parallel branches included)."""
    path: int
    weight_layers: int


# ----------------------------------------------------------------------------- costs

class _ShapeOnlyBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose forward only makes a new tensor of the input's shape.

    On the meta device BatchNorm runs a Python decomposition (about 10 ms a call, most
    of a DenseNet's summary time); its output is a new tensor shaped like its input,
    so a copy gives the same shapes, MACs (0) and activation memory. ``clone`` keeps the
    autograd graph that ``depth`` walks.
    """

    def forward(self, x):
        return x.clone()


class _SkipInit(TorchFunctionMode):
    """Skips the in-place random and fill operations of weight initialisation.

    Tensors on the meta device hold no values, yet initialising them still runs
    PyTorch's Python decompositions of ``normal_``, ``uniform_``, ...: about half of the
    time it takes to build a model there. Only the listed value-changing methods are
    skipped (they return their tensor, as they would), and only on meta tensors.
    """
    _SKIPPED = frozenset(getattr(torch.Tensor, name) for name in (
        "normal_", "uniform_", "fill_", "zero_", "copy_", "bernoulli_", "random_", "erfinv_", "mul_", "add_",
        "clamp_", "exponential_", "log_normal_", "cauchy_", "geometric_"))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self._SKIPPED and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@lru_cache(maxsize=None)
def _meta_model(name: str) -> nn.Module:
    """A registered model on the meta device, in eval mode, with shape-only BatchNorm: never handed out."""
    from cnnviz import models
    with torch.device("meta"), _SkipInit():
        model = models.get(name)
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = _ShapeOnlyBatchNorm  # same parameters and buffers, cheaper forward
    return model.eval()


def _input_size(name: str, input_size) -> tuple:
    from cnnviz import models
    return tuple(models.info(name).input_size if input_size is None else input_size)


@lru_cache(maxsize=None)
def _costs(name: str, input_size: tuple) -> Costs:
    from cnnviz.summaries import summary
    s = summary(_meta_model(name), input_size)
    return Costs(sum(row.params for row in s.rows), s.total_macs, s.activation_bytes)


def model_costs(names: Iterable[str], input_size: Optional[Sequence[int]] = None) -> Dict[str, Costs]:
    """``{name: Costs(params, macs, activation_bytes)}`` for registered model names, for one image (see ``Costs``).

    ``input_size`` = (C, H, W) for every model; ``None`` gives each model its own default
    (``info(name).input_size``: 227×227 for AlexNet, 224×224 for most, 32×32 for CIFAR models).
    Computed with ``cnnviz.summary`` on the meta device (shapes only, no arithmetic) and
    cached, so asking again is free. MACs are multiply–accumulates (FLOPs / 2).
    """
    if isinstance(names, str):
        names = [names]
    return {name: _costs(name, _input_size(name, input_size)) for name in names}


_WEIGHTED = ("ConvolutionBackward", "AddmmBackward", "MmBackward", "BmmBackward")


@lru_cache(maxsize=None)
def _depth(name: str) -> Depth:
    model = _meta_model(name)
    x = torch.zeros((1, *_input_size(name, None)), device="meta", requires_grad=True)  # (1, C, H, W)
    with torch.enable_grad():
        out = model(x)
    longest = {}  # autograd node -> most weight layers on a path from x to it (None: x does not reach it)
    stack = [(out.grad_fn, False)]
    while stack:  # iterative depth-first walk: DenseNet-264's graph is deeper than Python's recursion limit
        node, children_done = stack.pop()
        if node in longest:
            continue
        children = [child for child, _ in node.next_functions if child is not None]
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if child not in longest)
            continue
        if type(node).__name__ == "AccumulateGrad":
            longest[node] = 0 if node.variable is x else None
            continue
        reached = [longest[c] for c in children if longest.get(c) is not None]
        best = max(reached) if reached else None
        weighted = type(node).__name__.startswith(_WEIGHTED)
        longest[node] = None if best is None else best + weighted
    on_paths = [n for n, v in longest.items() if v is not None and type(n).__name__.startswith(_WEIGHTED)]
    return Depth(longest[out.grad_fn] or 0, len(on_paths))


def depth(name: str) -> Depth:
    """``Depth(path, weight_layers)`` of a registered model at its default input, from its autograd graph.

    ``path``: the most convolution and linear layers on any path from the input to the
    output (VGG-16: 16, ResNet-50: 50, GoogLeNet: 22; pooling, normalisation and
    activations are not counted). ``weight_layers``: all the convolution and linear
    layers the forward pass runs in eval mode (ResNet-50's 4 shortcut projections and
    Inception's parallel branches included, GoogLeNet's training-only auxiliary
    classifiers not).
    """
    return _depth(name)


def pytorch_flops(name: str, input_size: Optional[Sequence[int]] = None) -> int:
    """FLOPs of one image as PyTorch's ``torch.utils.flop_counter.FlopCounterMode`` counts them.

    It counts 2 FLOPs (a multiplication and an addition) per multiply–accumulate of the
    convolutions and matrix products, so for these CNNs it is exactly 2 × ``Costs.macs``.
    """
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.zeros((1, *_input_size(name, input_size)), device="meta")  # (1, C, H, W)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        _meta_model(name)(x)
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------- the chart

_BASE = {"alexnet": "AlexNet", "zfnet": "ZFNet", "vgg": "VGG-", "googlenet": "GoogLeNet", "resnet": "ResNet-",
         "densenet": "DenseNet-", "lenet": "LeNet-", "nin": "NiN"}
_SUFFIX = {"bn": "BN", "tv": "tv", "wide": "wide", "2gpu": "", "1998": "(1998)", "v2": "V2"}
_FAMILY_LABELS = {"alexnet": "AlexNet & ZFNet", "vgg": "VGG", "googlenet": "GoogLeNet & Inception",
                  "resnet": "ResNet", "improved_resnet": "WRN, ResNeXt, SE", "densenet": "DenseNet", "lenet": "LeNet", "nin": "NiN",
                  "mobilenet": "MobileNet", "squeezenet": "SqueezeNet", "xception": "Xception", "fractalnet": "FractalNet", "nasnet": "NASNet"}
# names the pattern below cannot spell
_LABELS = {"wide_resnet50_2": "WRN-50-2", "resnext50_32x4d": "ResNeXt-50 32×4d", "resnext101_32x8d": "ResNeXt-101 32×8d",
           "se_resnet50": "SE-ResNet-50", "wrn28_10": "WRN-28-10", "resnet110_stochastic_depth": "ResNet-110 SD",
           "mobilenet_v1": "MobileNet v1", "mobilenet_v2": "MobileNet v2", "squeezenet1_0": "SqueezeNet 1.0",
           "squeezenet1_1": "SqueezeNet 1.1", "inception_v3": "Inception-v3", "xception": "Xception",
           "inception_resnet_v2": "Inception-ResNet-v2", "inception_v4": "Inception-v4", "fractalnet20": "FractalNet-20",
           "nasnet_mobile": "NASNet-Mobile"}


def model_label(name: str) -> str:
    """A registered name as a chart label: ``vgg16_bn`` → "VGG-16 BN", ``resnet50_tv`` → "ResNet-50 tv"."""
    if name in _LABELS:
        return _LABELS[name]
    match = re.fullmatch(r"([a-z]+?)(\d*)((?:_[a-z0-9]+)*)", name)
    if not match or match.group(1) not in _BASE:
        return name
    base, number, suffixes = match.groups()
    words = [_SUFFIX.get(s) for s in suffixes.split("_")[1:]]
    if any(w is None for w in words):
        return name
    return " ".join([_BASE[base] + number] + [w for w in words if w])


#: The x axes of the chart: key → (menu label, axis title, value of a ``Costs``, the note under the chart).
#: Menu labels are short, so that the three menus fit in one row of a 700 px page; the notes are
#: broken into lines (``<br>``) of at most about 85 characters for the same page.
X_AXES = {
    "macs": ("x: MACs", "multiply–accumulates per image (G MACs, log scale)",
             lambda c: c.macs / 1e9,
             "x: multiply–accumulates (MACs) of the convolutions and linear layers for one image<br>"
             "at the model's own input size; FLOPs ≈ 2 × MACs."),
    "params": ("x: parameters", "parameters (millions, log scale)", lambda c: c.params / 1e6,
               "x: learned parameters used at inference (BatchNorm's running statistics and GoogLeNet's<br>"
               "training-only auxiliary classifiers not counted); 4 bytes each in float32."),
    "activations": ("x: activations", "activation memory per image (MB, log scale)",
                    lambda c: c.activation_bytes / 1e6,
                    "x: the forward pass's layer outputs for one image in float32 (MB = 10⁶ bytes);<br>"
                    "training keeps them all for the backward pass."),
}
#: The y axes: key → (menu label, axis title, attribute of an ``ImageNetResult``, note).
Y_AXES = {
    "top1": ("y: top-1", "top-1 accuracy (%)", "top1",
             "y: top-1 accuracy on the ImageNet validation images (the best guess is right)."),
    "top5": ("y: top-5", "top-5 accuracy (%)", "top5",
             "y: top-5 accuracy on the ImageNet validation images<br>"
             "(the class is among the five best guesses)."),
}
#: The result filter: key → (menu label, which origins are shown).
SHOW = {"all": ("all results", ("torchvision", "paper", "keras")),
        "torchvision": ("torchvision only", ("torchvision",)),
        "paper": ("papers only", ("paper",)),
        "keras": ("Keras only", ("keras",))}
_SYMBOLS = {1: "circle", 10: "diamond", None: "square"}
_CROPS = {1: "one centre crop", 10: "10 crops", None: "crops not stated"}
_KEY = ("marker area ∝ parameters · click a family in the legend to hide it<br>"
        "hover a marker for its name, numbers, source and protocol (crowded markers have no label)")
_MAX_MARKER = 52  # px, the diameter of the largest marker
_PLOT_PX = (600, 512)  # the plot's size in px on a 700 px page (see the margins), for placing the labels
_LABEL_PLACES = ("top center", "bottom center", "middle right", "middle left")
_LABEL_FONT = 12  # px
_HEIGHT = 880  # px, the whole figure with a legend of up to two rows
_LEGEND_ROW = 26  # px, one more row of the legend


def _origin(r) -> str:
    """Who measured a result: torchvision (its weights' metadata), Keras (the lecture's table) or a paper."""
    return {"torchvision": "torchvision", "kerasapplications": "keras"}.get(r.source, "paper")


def _fmt(v, unit=" %"):
    return "—" if v is None else f"{v:.2f}{unit}"


def _hover(r, c, spec) -> str:
    from cnnviz.accuracy import source_label
    from cnnviz.figures.architecture import human
    source = {"torchvision": "torchvision", "kerasapplications": "Keras applications"}.get(r.source) or \
        f"{source_label(r.source)} [{r.source}]"  # a paper: its key in the book's bibliography
    lines = [f"<b>{html.escape(model_label(r.model))}</b> ({r.model})",
             f"top-1 {_fmt(r.top1)} · top-5 {_fmt(r.top5)}",
             f"parameters {human(c.params)} · MACs {human(c.macs)} · activations {c.activation_bytes / 1e6:.0f} MB",
             f"input {'×'.join(str(s) for s in spec.input_size)}",
             f"source: {html.escape(source)}, {html.escape(r.where)}"]
    for text in (f"protocol: {r.protocol}", r.note):
        lines += [html.escape(line) for line in textwrap.wrap(text, 64)]
    return "<br>".join(lines)


def _log_ticks(values):
    """Tick values 1, 2, 5 × 10^k spanning ``values``, and their labels as plain numbers."""
    lo, hi = min(values), max(values)
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5)]
    below, above = max(t for t in ticks if t <= lo), min(t for t in ticks if t >= hi)
    ticks = [t for t in ticks if below <= t <= above]  # plotly shows those inside its padded range
    return ticks, [f"{t:g}" for t in ticks]


_EDGE = 32  # px between the plot's edges and the centres of the outermost markers


def _range(values, px, log=False):
    """An axis range that keeps ``_EDGE`` px between the plot's edges and the extreme ``values`` on a plot
    ``px`` long (log10 units on a log axis, as plotly wants them)."""
    values = [math.log10(v) if log else v for v in values if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo or 1.0) * _EDGE / (px - 2 * _EDGE)
    return [lo - pad, hi + pad]


def _label_places(xs, ys_by_axis, radii, texts):
    """A text position per marker (``_LABEL_PLACES``) that keeps labels off other labels and markers
    on every y axis of ``ys_by_axis`` (one list of y values per axis, the same x), and which labels
    to show: the y menu changes no label, so a label must read well on each y axis.

    Greedy, largest marker first, in pixel coordinates of the plot on a 700 px page (x on a log
    scale; the axis ranges are the chart's, from ``_range``). A label that overlaps other labels
    or markers wherever it goes, that sits next to another marker (it could be read as that
    one's), or that repeats a label already placed near it (the same model from two sources),
    is left out: its marker is named in its hover text. Returns ``(places, shown)``.
    """
    n = len(xs)
    places, shown = ["top center"] * n, [False] * n
    (w_px, h_px) = _PLOT_PX
    x0, x1 = _range(xs, w_px, log=True)
    u = [(math.log10(x) - x0) / (x1 - x0) * w_px for x in xs]
    axes = []  # per y axis: {marker: v (px, upwards)}, and the boxes to keep labels off
    for ys in ys_by_axis:
        if all(y is None for y in ys):
            continue
        y0, y1 = _range(ys, h_px)
        v = {k: (y - y0) / (y1 - y0) * h_px for k, y in enumerate(ys) if y is not None}
        axes.append((v, [(u[k] - radii[k], v[k] - radii[k], u[k] + radii[k], v[k] + radii[k], k) for k in v]))

    def overlap(a, b):
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    def near(box, k, v):  # marker k within 5 px of the box: the label could be read as its
        return math.hypot(max(box[0] - u[k], 0.0, u[k] - box[2]), max(box[1] - v[k], 0.0, v[k] - box[3])) < radii[k] + 5

    placed = {}  # label text -> [(u, v) of the marker it names, per y axis]
    for k in sorted({k for v, _ in axes for k in v}, key=lambda k: -radii[k]):
        w, h, r = 0.58 * _LABEL_FONT * len(texts[k]) + 6, _LABEL_FONT + 3.0, radii[k]
        offsets = {"top center": (0.0, r + 2 + h / 2), "bottom center": (0.0, -r - 2 - h / 2),
                   "middle right": (r + 3 + w / 2, 0.0), "middle left": (-r - 3 - w / 2, 0.0)}
        best = None
        for rank, place in enumerate(_LABEL_PLACES):
            costs, boxes = [], []
            for v, taken in axes:
                if k not in v:
                    costs.append(0.0)
                    boxes.append(None)
                    continue
                cx, cy = u[k] + offsets[place][0], v[k] + offsets[place][1]
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                outside = (max(0.0, -box[0]) + max(0.0, box[2] - w_px)) * h + (
                    max(0.0, -box[1]) + max(0.0, box[3] - h_px)) * w
                costs.append(sum(overlap(box, b) for b in taken if b[4] != k) + outside
                             + 0.2 * w * h * sum(near(box, j, v) for j in v if j != k))
                boxes.append(box)
            if best is None or max(costs) + rank < best[0] + best[1]:  # rank: prefer top, then bottom
                best = (max(costs), rank, place, boxes)
        places[k] = best[2]
        twins = placed.get(texts[k], [])
        if best[0] > 0.12 * w * h or any(k in v and t is not None and math.hypot(t[0] - u[k], t[1] - v[k]) < 120
                                         for (v, _), t in zip(axes, twins)):
            continue  # crowded or ambiguous, or its twin is labelled nearby: hover only
        shown[k] = True
        placed[texts[k]] = [(u[k], v[k]) if k in v else None for v, _ in axes]
        for (_, taken), box in zip(axes, best[3]):
            if box is not None:
                taken.append((*box, k))
    return places, shown


def accuracy_chart(results: Iterable, costs: Mapping[str, Costs], *, title: Optional[str] = None) -> go.Figure:
    """Accuracy against cost, one marker per result, in the style of Canziani et al. (2016).

    ``results``: single-model ``cnnviz.accuracy.ImageNetResult``\\ s (an ensemble is not
    one model's accuracy: ``ValueError``); ``costs``: ``{name: Costs}`` from
    ``model_costs`` for every result's model. Marker area is proportional to the
    parameters, colour tells the family, the symbol the number of test crops; hovering
    shows every number with its source and protocol. With no kernel, three menus switch
    the x axis (MACs, parameters, activation memory; log scale), the y axis (top-1,
    top-5: results without a top-1 value, like GoogLeNet's, appear on the top-5 axis only)
    and the results shown (all, torchvision's weights, papers). MACs are multiply–accumulates
    (FLOPs / 2). Markers are labelled where a label fits clear of the others on a 700 px page
    (for both y axes); crowded markers are named in their hover text only. The data traces come
    first, one per (family, origin), each with ``meta = {"family", "origin", "models"}``;
    legend-only traces (no points) follow.
    """
    from cnnviz import models
    results = list(results)
    if not results:
        raise ValueError("Give at least one result (cnnviz.accuracy.imagenet_results()).")
    ensembles = [f"{r.model} ({r.where})" for r in results if not r.single_model]
    if ensembles:
        raise ValueError("An ensemble's accuracy is not one model's: leave out " + "; ".join(ensembles) + ".")
    missing = sorted({r.model for r in results} - set(costs))
    if missing:
        raise ValueError(f"costs has no entry for {', '.join(missing)}: use model_costs(names) for every result's "
                         "model.")

    families = models.families()
    family_of = {r.model: models.info(r.model).family for r in results}
    # one colour per family on the chart (families without a result take none), in the course's order
    shown = [f for f in families if f in set(family_of.values())]
    palette = qualitative.D3 + qualitative.Dark2
    colour = {f: palette[k % len(palette)] for k, f in enumerate(shown)}
    groups = {}  # (family, origin) -> results, in family order
    for r in sorted(results, key=lambda r: (families.index(family_of[r.model]), _origin(r))):
        groups.setdefault((family_of[r.model], _origin(r)), []).append(r)
    keys = list(groups)
    flat = [r for k in keys for r in groups[k]]  # every result, trace by trace
    sizeref = 2 * max(costs[r.model].params for r in results) / _MAX_MARKER ** 2
    radii = [0.5 * max(5.0, math.sqrt(costs[r.model].params / sizeref)) for r in flat]
    texts = [model_label(r.model) for r in flat]

    def per_trace(values):  # one flat list -> one list per data trace
        out, k = [], 0
        for key in keys:
            out.append(values[k:k + len(groups[key])])
            k += len(groups[key])
        return out

    def x_values(key):
        return [X_AXES[key][2](costs[r.model]) for r in flat]

    def y_values(key):
        return [getattr(r, Y_AXES[key][2]) for r in flat]

    def labels(x_key):  # {"textposition": per trace, "text": per trace (" " where hover only)}, for both y axes
        where, shown = _label_places(x_values(x_key), [y_values(key) for key in Y_AXES], radii, texts)
        # " ", not "": plotly.js draws no label where a restyle turns "" into text
        return {"textposition": per_trace(where), "text": per_trace([t if s else " " for t, s in zip(texts, shown)])}

    fig = go.Figure()
    first = labels("macs")
    for t, (family, origin) in enumerate(keys):
        group = groups[(family, origin)]
        fig.add_trace(go.Scatter(
            x=[X_AXES["macs"][2](costs[r.model]) for r in group], y=[r.top1 for r in group],
            mode="markers+text", text=first["text"][t], textposition=first["textposition"][t],
            textfont=dict(size=_LABEL_FONT, color="#333"), name=_FAMILY_LABELS.get(family, family),
            legendgroup=family,
            showlegend=False, hoverinfo="text",
            hovertext=[_hover(r, costs[r.model], models.info(r.model)) for r in group],
            meta=dict(family=family, origin=origin, models=[r.model for r in group]),
            marker=dict(size=[costs[r.model].params for r in group], sizemode="area", sizeref=sizeref, sizemin=5,
                        color=colour[family], opacity=0.75, symbol=[_SYMBOLS.get(r.crops, "star") for r in group],
                        line=dict(width=1, color="#222"))))
    data_traces = list(range(len(keys)))
    # legend-only traces: the families' colours and the crops' symbols (clicking a family hides its markers)
    for family in dict.fromkeys(f for f, _ in keys):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=_FAMILY_LABELS.get(family, family),
                                 legendgroup=family, hoverinfo="skip",
                                 marker=dict(size=12, color=colour[family], symbol="circle")))
    for crops in sorted({r.crops for r in flat}, key=lambda c: (c is None, c or 0)):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=_CROPS.get(crops, f"{crops} crops"),
                                 legendgroup="crops", hoverinfo="skip",
                                 marker=dict(size=12, color="#999", symbol=_SYMBOLS.get(crops, "star"))))

    x_buttons = []
    for key, (label, axis, _, note) in X_AXES.items():
        ticks, ticktext = _log_ticks(x_values(key))
        x_buttons.append(dict(method="update", label=label, args=[
            {"x": per_trace(x_values(key)), **labels(key)},
            {"xaxis.title.text": axis, "xaxis.tickvals": ticks, "xaxis.ticktext": ticktext,
             "xaxis.range": _range(x_values(key), _PLOT_PX[0], log=True),
             "annotations[0].text": note}, data_traces]))
    y_buttons = [dict(method="update", label=label, args=[
        {"y": per_trace(y_values(key))},
        {"yaxis.title.text": axis, "yaxis.range": _range(y_values(key), _PLOT_PX[1]), "annotations[1].text": note},
        data_traces])
        for key, (label, axis, _, note) in Y_AXES.items()]
    show_buttons = [dict(method="restyle", label=label,
                         args=[{"visible": [o in origins for _, o in keys]}, data_traces])
                    for label, origins in SHOW.values()]

    # Laid out in px for a 700 px page (wider pages only widen the plot): the title, the three menus in
    # one row, the plot; under it the axis title, the legend (one or two rows) and the notes. The
    # margins are set, not grown by plotly to fit what lies outside the plot.
    ticks, ticktext = _log_ticks(x_values("macs"))
    row = 50 if title else 10  # the top of the menus
    # the legend wraps at about three entries per row on a 700 px page: rows beyond two push the notes down
    entries = len(fig.data) - len(keys)
    extra = _LEGEND_ROW * max(0, math.ceil(entries / 3) - 2)
    height = _HEIGHT + extra
    top, bottom = row + 46, 272 + extra  # the margins above and below the plot
    menu = dict(type="dropdown", direction="down", showactive=True, active=0, x=0, y=1, xanchor="left",
                yanchor="bottom", font=dict(size=14))
    gap = dict(t=0, r=0, l=0, b=top - row - 34)
    fig.update_layout(
        updatemenus=[dict(menu, buttons=x_buttons, pad=gap), dict(menu, buttons=y_buttons, pad=dict(gap, l=150)),
                     dict(menu, buttons=show_buttons, pad=dict(gap, l=250))],
        xaxis=dict(type="log", title=dict(text=X_AXES["macs"][1], standoff=8), tickvals=ticks, ticktext=ticktext,
                   range=_range(x_values("macs"), _PLOT_PX[0], log=True)),
        yaxis=dict(title=dict(text=Y_AXES["top1"][1]), ticksuffix=" %", range=_range(y_values("top1"), _PLOT_PX[1])),
        legend=dict(orientation="h", traceorder="normal", x=0, xanchor="left", y=(bottom - 66) / height,
                    yref="container", yanchor="top", font=dict(size=14)),
        hoverlabel=dict(align="left", font_size=14),
    )
    for k, text in enumerate((X_AXES["macs"][3], Y_AXES["top1"][3], _KEY)):
        fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=0, yshift=-128 - extra - 38 * k,
                           xanchor="left", yanchor="top", showarrow=False, font=dict(size=13), align="left")
    style(fig, title=title, height=height)
    if title:
        fig.update_layout(title=dict(yref="container", y=1, yanchor="top", pad=dict(t=14)))
    return fig.update_layout(margin=dict(l=80, r=20, t=top, b=bottom, autoexpand=False))
