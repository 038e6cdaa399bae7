"""ImageNet results of the course's models: measured accuracies, each with its source and protocol.

An accuracy is a measurement, not a computation, so it cannot be derived from the
model: it comes either from the metadata that travels with torchvision's
weights, or from a table of the paper that introduced the model.

- **torchvision**: for every registered model with ImageNet weights (``info(name).weights``),
  ``acc@1`` and ``acc@5`` are read from ``weights.meta["_metrics"]["ImageNet-1K"]`` and the
  protocol from ``weights.transforms()`` (resize, then one centre crop). Never typed in.
- **Keras**: the lecture's Keras applications table (``KERAS_TABLE``), for the networks built as
  Keras builds them that nothing else here measured (the ResNet V2s, NASNet-Mobile);
- **papers**: ``_PAPER_ERRORS`` below, typed as printed (as the Keras table is), each with
  its table and row. Papers print *error* rates; they are kept exactly as printed and
  turned into accuracies (100 − error) here.

Every accuracy is in percent of the 50,000 ILSVRC-2012 validation images: top-1 counts
an image as right when the highest score is its class, top-5 when its class is among
the five highest scores. Results differ in protocol (one centre crop, ten crops,
144 crops; one network or an ensemble), and only like can be compared with like:
``ImageNetResult.crops`` and ``.models`` say which.

Left out on purpose: LeNet-5 (MNIST digits, never ImageNet), NiN (its paper reports
CIFAR-10, CIFAR-100, SVHN and MNIST only; the ImageNet NiN of the Caffe model zoo has no
published paper result), the CIFAR models of chapters 10 and 11, and AlexNet as one
tower (``alexnet``: Krizhevsky et al. measured the two-GPU network, ``alexnet_2gpu``).

``KERAS_TABLE`` holds every row of the lecture's Keras applications table, as printed, with
the registered model that matches it where there is one; ``keras_count`` counts a registered
model's parameters the way Keras does, so that the book can set them beside the table's.

``QUOTES`` holds the other published figures the book cites (test-set errors of competition
entries, ImageNet's size, ResNet's training recipe), each with its source and table.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

__all__ = ["ImageNetResult", "imagenet_results", "results_for", "result", "KerasRow", "KERAS_TABLE", "KerasCount",
           "keras_count", "source_label", "Quote", "QUOTES", "quote"]


@dataclass(frozen=True)
class ImageNetResult:
    """One published ImageNet-1k validation result of a registered model.

    ``top1`` and ``top5`` are accuracies in % (``None`` where the source gives none);
    ``source`` is a BibTeX key of ``book/references.bib`` or ``"torchvision"``;
    ``where`` is the table and row (or the weights) the numbers come from;
    ``protocol`` says how each validation image was fed to the network;
    ``crops`` is the number of views averaged per image (``None``: the source does not
    say); ``models`` the number of networks averaged (1 for a single model).
    """
    model: str
    top1: Optional[float]
    top5: Optional[float]
    source: str
    where: str
    protocol: str
    crops: Optional[int] = 1
    models: int = 1
    note: str = ""

    @property
    def single_model(self) -> bool:
        """One network (not an ensemble): the results that belong in a per-model chart."""
        return self.models == 1


# ----------------------------------------------------------------------------- papers
# (model, top-1 error %, top-5 error %, source, where, protocol, crops, models, note), as printed.
_TEN_CROP = "10 crops of 224×224 per image (4 corners and centre, and their mirror images), softmax averaged"
_PAPER_ERRORS = (
    # Krizhevsky et al. 2012, Table 2 (ILSVRC-2012 validation); testing as in their section 4.1.
    ("alexnet_2gpu", 40.7, 18.2, "krizhevsky2012imagenet", "Table 2, row '1 CNN'", _TEN_CROP, 10, 1,
     "The network of the paper, split over two GPUs."),
    ("alexnet_2gpu", 38.1, 16.4, "krizhevsky2012imagenet", "Table 2, row '5 CNNs'", _TEN_CROP, 10, 5,
     "Average of five networks."),
    # Zeiler & Fergus 2014, Table 2 (ImageNet 2012 validation).
    ("zfnet", 38.4, 16.5, "zeiler2014visualizing", "Table 2, row '1 convnet as per Fig. 3'",
     "224×224 crops; the test-time crops are not stated (section 3 describes 10 corner and centre crops "
     "with flips)", None, 1, ""),
    ("zfnet_wide", 37.5, 16.0, "zeiler2014visualizing",
     "Table 2, row '1 convnet as per Fig. 3 but with layers 3,4,5: 512,1024,512 maps'",
     "224×224 crops; the test-time crops are not stated (section 3 describes 10 corner and centre crops "
     "with flips)", None, 1, ""),
    # Szegedy et al. 2015, Table 3 (validation): top-5 only.
    ("googlenet", None, 10.07, "szegedy2015going", "Table 3, row '1 model, 1 crop'",
     "one 224×224 crop per image", 1, 1, "The paper gives no top-1 error for this setting."),
    ("googlenet", None, 9.15, "szegedy2015going", "Table 3, row '1 model, 10 crops'", _TEN_CROP, 10, 1, ""),
    ("googlenet", None, 7.89, "szegedy2015going", "Table 3, row '1 model, 144 crops'",
     "144 crops per image: 4 scales × 3 squares × 6 crops (4 corners, centre, the whole square) × 2 mirrors",
     144, 1, ""),
    ("googlenet", None, 6.67, "szegedy2015going", "Table 3, row '7 models, 144 crops'",
     "144 crops per image (as above) for each of 7 networks", 144, 7, "The ILSVRC 2014 winning entry."),
    # He et al. 2016, Table 3 (validation, 10-crop testing); ResNet-50/101/152 use option B shortcuts.
    ("resnet34", 24.52, 7.46, "he2016deep", "Table 3, row 'ResNet-34 B'", _TEN_CROP, 10, 1,
     "Option B: projection shortcuts where the dimensions change."),
    ("resnet50", 22.85, 6.71, "he2016deep", "Table 3, row 'ResNet-50'", _TEN_CROP, 10, 1, ""),
    ("resnet101", 21.75, 6.05, "he2016deep", "Table 3, row 'ResNet-101'", _TEN_CROP, 10, 1, ""),
    ("resnet152", 21.43, 5.71, "he2016deep", "Table 3, row 'ResNet-152'", _TEN_CROP, 10, 1, ""),
    # Hu et al. 2018, Table 2 (validation, one 224×224 centre crop; their re-implemented ResNet-50: 24.80 / 7.48).
    ("se_resnet50", 23.29, 6.62, "hu2018squeeze", "Table 2, row 'ResNet-50', column 'SE-ResNet'",
     "one 224×224 centre crop per image", 1, 1, ""),
    # Howard et al. 2017, Table 8: accuracy 70.6 % as printed (stored here as the error 29.4); no top-5.
    ("mobilenet_v1", 29.4, None, "howard2017mobilenets", "Table 8, row '1.0 MobileNet-224'",
     "the test crops are not stated", None, 1, "The paper prints the accuracy, 70.6 %, and no top-5 result."),
    # Szegedy et al. 2017, Table 2 (single crop, single model; validation).
    ("inception_v4", 20.0, 5.0, "szegedy2017inception", "Table 2, row 'Inception-v4'",
     "one 299×299 crop per image, on the validation images the paper did not blacklist", 1, 1, ""),
    ("inception_resnet_v2", 19.9, 4.9, "szegedy2017inception", "Table 2, row 'Inception-ResNet-v2'",
     "one 299×299 crop per image, on the validation images the paper did not blacklist", 1, 1, ""),
    # Chollet 2017, Table 1 (single crop, single model; validation): accuracies 0.790 / 0.945 as printed.
    ("xception", 21.0, 5.5, "chollet2017xception", "Table 1, row 'Xception'", "one 299×299 crop per image", 1, 1,
     "The paper prints the accuracies, 0.790 and 0.945."),
    # Huang et al. 2017, Table 3 (validation, single-crop / 10-crop).
    ("densenet264", 22.15, 6.12, "huang2017densely", "Table 3, row 'DenseNet-264 (k=32)', single-crop",
     "one 224×224 centre crop per image", 1, 1, ""),
    ("densenet264", 20.80, 5.29, "huang2017densely", "Table 3, row 'DenseNet-264 (k=32)', 10-crop",
     _TEN_CROP, 10, 1, ""),
)

# Why a registered model has no result (the error message of ``result``).
_NO_RESULT = {
    "lenet5": "LeNet-5 classified handwritten digits (MNIST); it was never trained on ImageNet.",
    "lenet5_1998": "LeNet-5 classified handwritten digits (MNIST); it was never trained on ImageNet.",
    "nin": ("The Network in Network paper reports CIFAR-10, CIFAR-100, SVHN and MNIST results only; its "
            "ImageNet model (Caffe model zoo) has no published paper result."),
    "alexnet": ("Krizhevsky et al. measured the network split over two GPUs: see result('alexnet_2gpu'). "
                "No result is published for the one-tower variant."),
}


def _accuracy(error: Optional[float]) -> Optional[float]:
    return None if error is None else round(100.0 - error, 2)


def _from_paper(row) -> ImageNetResult:
    model, top1_err, top5_err, source, where, protocol, crops, n_models, note = row
    return ImageNetResult(model, _accuracy(top1_err), _accuracy(top5_err), source, where, protocol, crops,
                          n_models, note)


# ----------------------------------------------------------------------------- torchvision

def _from_weights(name: str, weights) -> ImageNetResult:
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    preset = weights.transforms()  # torchvision's ImageClassification: resize, then one centre crop
    crop, resize = preset.crop_size[0], preset.resize_size[0]
    docs = " ".join(weights.meta.get("_docs", "").split())
    return ImageNetResult(
        model=name, top1=float(metrics["acc@1"]), top5=float(metrics["acc@5"]), source="torchvision",
        where=f"{type(weights).__name__}.{weights.name} metadata",
        protocol=f"one {crop}×{crop} centre crop per image (shorter side resized to {resize})",
        crops=1, models=1, note=docs)


def _from_keras(row) -> ImageNetResult:
    """A row of the lecture's Keras table as a result: Keras's weights, measured by Keras."""
    return ImageNetResult(
        model=row.model, top1=round(100 * row.top1, 1), top5=round(100 * row.top5, 1), source="kerasapplications",
        where=f"the applications table, row '{row.keras_name}'",
        protocol="Keras's own weights and evaluation (the number of crops is not stated)", crops=None, models=1,
        note=f"Keras's table prints the accuracies, {row.top1:.3f} and {row.top5:.3f}.")


@lru_cache(maxsize=1)
def _all() -> Tuple[ImageNetResult, ...]:
    from cnnviz import models
    names = models.available()
    rank = {n: k for k, n in enumerate(names)}
    found, seen = [], set()
    for name in names:  # a weights file shared by two names (resnet18, resnet18_tv) gives one result
        weights = models.info(name).weights
        if weights is not None and weights not in seen:
            seen.add(weights)
            found.append(_from_weights(name, weights))
    found += [_from_paper(row) for row in _PAPER_ERRORS]
    # Keras's own figures (the lecture's table) for a network nothing else measured: ResNet V2s, NASNet-Mobile
    found += [_from_keras(row) for row in KERAS_TABLE
              if row.model in rank and not any(r.model == row.model for r in found)]
    # course order; for one model, torchvision's result first, then the paper's in table order
    order = {id(r): k for k, r in enumerate(found)}
    return tuple(sorted(found, key=lambda r: (rank[r.model], r.source != "torchvision", order[id(r)])))


def imagenet_results() -> List[ImageNetResult]:
    """Every ImageNet result of a registered model, in the order of the course.

    For each model, torchvision's result (if it has weights) comes first, then the
    paper's results in the order of its table. Ensembles and multi-crop results are
    included: filter on ``single_model`` and ``crops`` to compare like with like.
    """
    return list(_all())


def results_for(name: str) -> List[ImageNetResult]:
    """The results of the registered model ``name``, in the order of ``imagenet_results()``; ``[]`` if none.

    A name that shares its weights with another (``resnet18_tv`` and ``resnet18``) gets
    that model's torchvision result. Raises ``ValueError`` for an unknown name.
    """
    from cnnviz import models
    spec = models.info(name)  # ValueError, with suggestions, for an unknown name
    found = [r for r in _all() if r.model == name]
    if not found and spec.weights is not None:
        found = [r for r in _all() if r.source == "torchvision" and models.info(r.model).weights is spec.weights]
    return found


def result(name: str, source: Optional[str] = None) -> ImageNetResult:
    """The headline ImageNet result of the registered model ``name``.

    That is the first of ``imagenet_results()`` for it: torchvision's if the model has
    weights, else the paper's single-model result. ``source`` (``"torchvision"`` or a
    BibTeX key) picks the first result from that source instead. A name that shares its
    weights with another (``resnet18_tv`` and ``resnet18``) gets that model's result.
    Raises ``ValueError`` for an unknown name, and ``LookupError`` saying why when
    there is no result.
    """
    from cnnviz import models
    candidates = results_for(name)
    if source is not None:
        sources = sorted({r.source for r in candidates})
        candidates = [r for r in candidates if r.source == source]
        if not candidates:
            raise LookupError(f"There is no ImageNet result for {name} from {source!r}; its sources are: "
                              f"{', '.join(sources) or 'none'}.")
    if not candidates:
        spec = models.info(name)
        reason = _NO_RESULT.get(name) or (
            f"{name} is a model for {spec.input_size[1]}×{spec.input_size[2]} images (CIFAR); it has no "
            "ImageNet result." if spec.input_size[1] < 64 else f"No ImageNet result is recorded for {name}.")
        raise LookupError(reason)
    return candidates[0]


def source_label(source: str) -> str:
    """A source as a short label, first author and year: ``"he2016deep"`` → ``"He 2016"``; others kept."""
    if source == "kerasapplications":
        return "Keras applications"
    match = re.fullmatch(r"([a-z]+)(\d{4})[a-z]*", source)
    return f"{match.group(1).capitalize()} {match.group(2)}" if match else source


# ----------------------------------------------------------------------------- the lecture's Keras table

@dataclass(frozen=True)
class KerasRow:
    """One row of the Keras applications table the ResNet lecture shows (keras.io/api/applications).

    As printed: ``size_mb`` the weights file, ``top1``/``top5`` as fractions (Keras's own
    weights and evaluation), ``params`` Keras's parameter count, ``depth`` its depth
    column (``None`` where the table prints "-"). ``model`` is the matching registered name,
    ``None`` where cnnviz does not build that network (yet).
    """
    model: Optional[str]
    keras_name: str
    size_mb: int
    top1: float
    top5: float
    params: int
    depth: Optional[int]


#: Every row of the lecture's table, in its order.
KERAS_TABLE = (
    KerasRow("xception", "Xception", 88, 0.790, 0.945, 22_910_480, 126),
    KerasRow("vgg16", "VGG16", 528, 0.713, 0.901, 138_357_544, 23),
    KerasRow("vgg19", "VGG19", 549, 0.713, 0.900, 143_667_240, 26),
    KerasRow("resnet50", "ResNet50", 98, 0.749, 0.921, 25_636_712, None),
    KerasRow("resnet101", "ResNet101", 171, 0.764, 0.928, 44_707_176, None),
    KerasRow("resnet152", "ResNet152", 232, 0.766, 0.931, 60_419_944, None),
    KerasRow("resnet50_v2", "ResNet50V2", 98, 0.760, 0.930, 25_613_800, None),
    KerasRow("resnet101_v2", "ResNet101V2", 171, 0.772, 0.938, 44_675_560, None),
    KerasRow("resnet152_v2", "ResNet152V2", 232, 0.780, 0.942, 60_380_648, None),
    KerasRow("inception_v3", "InceptionV3", 92, 0.779, 0.937, 23_851_784, 159),
    KerasRow("inception_resnet_v2", "InceptionResNetV2", 215, 0.803, 0.953, 55_873_736, 572),
    KerasRow("mobilenet_v1", "MobileNet", 16, 0.704, 0.895, 4_253_864, 88),
    KerasRow("mobilenet_v2", "MobileNetV2", 14, 0.713, 0.901, 3_538_984, 88),
    KerasRow("densenet121", "DenseNet121", 33, 0.750, 0.923, 8_062_504, 121),
    KerasRow("densenet169", "DenseNet169", 57, 0.762, 0.932, 14_307_880, 169),
    KerasRow("densenet201", "DenseNet201", 80, 0.773, 0.936, 20_242_984, 201),
    KerasRow("nasnet_mobile", "NASNetMobile", 23, 0.744, 0.919, 5_326_716, None),
)


@dataclass(frozen=True)
class KerasCount:
    """A registered model's parameters counted as Keras counts them: ``learned`` (cnnviz's, trainable),
    plus batch norm's running mean and variance (``running``, which Keras lists as non-trainable
    parameters), plus a bias per convolution filter where Keras's network has them (``biases``), minus
    batch norm's scale γ where Keras builds batch norm without it (``no_gamma``, ``scale=False``), minus an
    auxiliary classifier Keras's network does not have (``auxiliary``)."""
    learned: int
    running: int
    biases: int
    no_gamma: int
    auxiliary: int

    @property
    def total(self) -> int:
        return self.learned + self.running + self.biases - self.no_gamma - self.auxiliary


def keras_count(row: KerasRow) -> KerasCount:
    """``row``'s network (a registered model) counted the Keras way (see ``KerasCount``); built on the meta
    device. Keras's ResNets give every convolution a bias; its InceptionV3 and InceptionResNetV2 have no γ
    in batch norm, and its InceptionV3 no auxiliary classifier; the others (built as Keras builds them where
    torchvision has no such network: Xception, the ResNet V2s, Inception-ResNet-v2, NASNet-Mobile) differ from
    cnnviz's count by the running statistics only."""
    if row.model is None:
        raise LookupError(f"cnnviz does not build Keras's {row.keras_name}.")
    import torch
    import torch.nn as nn

    from cnnviz import models
    with torch.device("meta"):
        net = models.get(row.model)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    aux = getattr(net, "AuxLogits", None)
    aux_norms = {id(m) for m in aux.modules()} if aux is not None else set()
    kept = [m for m in norms if id(m) not in aux_norms]
    learned = sum(p.numel() for p in net.parameters())
    return KerasCount(
        learned=learned,
        running=sum(m.running_mean.numel() + m.running_var.numel() for m in kept),
        biases=(sum(m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d) and m.bias is None)
                if row.keras_name in ("ResNet50", "ResNet101", "ResNet152") else 0),
        no_gamma=sum(m.weight.numel() for m in kept) if row.keras_name in ("InceptionV3", "InceptionResNetV2") else 0,
        auxiliary=sum(p.numel() for p in aux.parameters()) if aux is not None else 0)


@dataclass(frozen=True)
class KerasGraph:
    """How Keras's graph of a network differs, layer object by layer object, from the module graph of
    cnnviz's network for it (traced with ``torch.fx``; every module, function and merge is one node).

    ``fused``: module kinds Keras folds into the layer before (VGG's ``Conv2D(activation="relu")``).
    ``absent``: module kinds Keras's network has no layer for (torchvision's dropout, VGG's adaptive 7×7
    pool, Inception-ResNet-v2's identity in place of its last block's ReLU). ``pads``: Keras writes a
    ``ZeroPadding2D`` layer before each strided layer that pads (its ``correct_pad`` idiom).
    ``input_transform``: torchvision's Inception-v3 rescales its input inside the network, Keras outside.
    ``scale_lambda``: a residual ``x + scale · r`` is one Keras ``Lambda`` layer, two nodes in cnnviz's.
    ``conv_head``: Keras's MobileNet ends in Reshape, Dropout, a 1×1 ``Conv2D``, Reshape and a softmax
    ``Activation`` where cnnviz's ends in one dense layer. In every network a flatten after global
    pooling is no layer (Keras's ``GlobalAveragePooling2D`` returns flat vectors), nor is a concatenation
    of one tensor.
    """
    fused: Tuple[str, ...] = ()
    absent: Tuple[str, ...] = ()
    pads: bool = False
    input_transform: bool = False
    scale_lambda: bool = False
    conv_head: bool = False

    def differences(self) -> List[str]:
        """The rules in words, for a table's note."""
        words = [f"{', '.join(self.fused)} inside the layer before" if self.fused else "",
                 f"no {', '.join(self.absent)}" if self.absent else "",
                 "ZeroPadding2D before strided layers" if self.pads else "",
                 "input scaled outside the network" if self.input_transform else "",
                 "x + scale·r one Lambda layer" if self.scale_lambda else "",
                 "head: Reshape, Dropout, 1×1 Conv2D, Reshape, Activation" if self.conv_head else ""]
        return [w for w in words if w]


#: Keras's graphs against cnnviz's networks, by Keras name (keras-applications 1.0.8's code, read layer by layer).
#: Checked against Keras itself (3.15, the longest path over ``model.layers``): the same count for every row except
#: MobileNet (Keras 3: 91, one Reshape fewer in the head and no padding layer before the stem) and MobileNetV2
#: (156, no padding layer before the stem), both changed since the code these rules follow.
KERAS_GRAPHS = {
    "Xception": KerasGraph(), "VGG16": KerasGraph(fused=("ReLU",), absent=("Dropout", "AdaptiveAvgPool2d")),
    "ResNet50": KerasGraph(pads=True), "ResNet50V2": KerasGraph(),
    "InceptionV3": KerasGraph(absent=("Dropout",), input_transform=True),
    "InceptionResNetV2": KerasGraph(absent=("Identity",), scale_lambda=True),
    "MobileNet": KerasGraph(pads=True, conv_head=True), "MobileNetV2": KerasGraph(pads=True, absent=("Dropout",)),
    "DenseNet121": KerasGraph(pads=True), "NASNetMobile": KerasGraph(),
}
KERAS_GRAPHS.update({"VGG19": KERAS_GRAPHS["VGG16"], "ResNet101": KERAS_GRAPHS["ResNet50"],
                     "ResNet152": KERAS_GRAPHS["ResNet50"], "ResNet101V2": KERAS_GRAPHS["ResNet50V2"],
                     "ResNet152V2": KERAS_GRAPHS["ResNet50V2"], "DenseNet169": KERAS_GRAPHS["DenseNet121"],
                     "DenseNet201": KERAS_GRAPHS["DenseNet121"]})


@dataclass(frozen=True)
class KerasDepth:
    """The longest path from the input to the output of a registered network, in graph nodes: ``traced``
    counts every node of cnnviz's traced graph (the input, each module, each function such as an addition
    or a concatenation), ``keras`` the layer objects of Keras's graph (``KerasGraph``'s rules), the input
    layer included: the "topological depth" that Keras's applications table once printed."""
    traced: int
    keras: int
    graph: KerasGraph


def _strided_padding(module) -> bool:
    import torch.nn as nn
    stride = getattr(module, "stride", 1)
    padding = getattr(module, "padding", 0)
    strided = max(stride) > 1 if isinstance(stride, tuple) else (stride or 1) > 1
    padded = max(padding) > 0 if isinstance(padding, tuple) else padding not in (0, "valid")
    return isinstance(module, (nn.Conv2d, nn.MaxPool2d)) and strided and padded


def _global_pool(node, modules) -> bool:
    """Whether fx node ``node`` pools to one value per channel (the output size 1 of an adaptive pool),
    looking through dropout (torchvision's Inception-v3 drops out before it flattens)."""
    import torch.nn as nn
    while node.op == "call_module" and isinstance(modules[node.target], nn.Dropout):
        node = node.all_input_nodes[0]
    if node.op == "call_module" and isinstance(modules[node.target], nn.AdaptiveAvgPool2d):
        return modules[node.target].output_size in (1, (1, 1))
    if node.op == "call_function" and getattr(node.target, "__name__", "") == "adaptive_avg_pool2d":
        return node.args[1] in (1, (1, 1)) if len(node.args) > 1 else node.kwargs.get("output_size") in (1, (1, 1))
    return False


def keras_depth(row: KerasRow) -> KerasDepth:
    """``row``'s network traced with ``torch.fx`` and its longest path counted twice: in cnnviz's nodes
    and in Keras's layer objects (see ``KerasDepth``, ``KERAS_GRAPHS``). Xception's 126, VGG-16's 23,
    VGG-19's 26, InceptionV3's 159 and InceptionResNetV2's 572 come out as the lecture's table prints them."""
    if row.model is None:
        raise LookupError(f"cnnviz does not build Keras's {row.keras_name}.")
    import torch
    import torch.fx as fx
    import torch.nn as nn

    from cnnviz import models
    from cnnviz.models.xception import SeparableConv2d

    class Tracer(fx.Tracer):  # Keras's SeparableConv2D is one layer
        def is_leaf_module(self, m, qualified_name):
            return isinstance(m, SeparableConv2d) or super().is_leaf_module(m, qualified_name)

    rules = KERAS_GRAPHS[row.keras_name]
    with torch.device("meta"):
        net = models.get(row.model).eval()
    graph = Tracer().trace(net)
    modules = dict(net.named_modules())
    seen_module = False
    traced, keras = {}, {}
    for node in graph.nodes:
        before = [n for n in node.all_input_nodes if n in traced]
        t = max((traced[n] for n in before), default=0)
        k = max((keras[n] for n in before), default=0)
        if node.op == "output":
            traced[node], keras[node] = t, k
            continue
        if node.op == "get_attr":
            traced[node] = keras[node] = 0
            continue
        weight = 1
        kind = type(modules[node.target]).__name__ if node.op == "call_module" else getattr(node.target, "__name__",
                                                                                             str(node.target))
        if node.op == "call_module":
            module = modules[node.target]
            if kind in rules.fused or kind in rules.absent:
                weight = 0
            elif rules.pads and _strided_padding(module):
                weight = 2          # ZeroPadding2D + the layer
            elif rules.conv_head and isinstance(module, nn.Linear):
                weight = 5
            seen_module = True
        elif node.op != "placeholder":
            if kind == "flatten" and any(_global_pool(n, modules) for n in node.all_input_nodes):
                weight = 0
            elif rules.input_transform and not seen_module:
                weight = 0
            elif rules.scale_lambda and kind == "mul":
                weight = 0
            elif kind == "cat" and isinstance(node.args[0], (list, tuple)) and len(node.args[0]) == 1:
                weight = 0          # torchvision's DenseNet concatenates a one-tensor list
        traced[node], keras[node] = t + 1, k + weight
    out = next(n for n in graph.nodes if n.op == "output")
    return KerasDepth(traced[out], keras[out], rules)


# ----------------------------------------------------------------------------- other published figures

@dataclass(frozen=True)
class Quote:
    """A published figure that is not an ILSVRC-2012 validation accuracy of a registered model: a test-set
    error of a competition entry, a data set's size, a training setting. As printed, with its source.

    ``printed`` is the number as the source prints it (``"17.0"``, ``"4.20"``, ``"15,000,000"``), ``value``
    the number, in ``unit`` ("%" for error rates); ``what`` says what was measured or set, on which data;
    ``source`` is a BibTeX key of ``book/references.bib``; ``where`` the table, row or section.
    """
    key: str
    printed: str
    unit: str
    what: str
    source: str
    where: str

    @property
    def value(self) -> float:
        return float(self.printed.replace(",", ""))

    def __str__(self) -> str:
        """``"3.57 %"``, ``"15,000,000 images"``, ``"0.0001"``: the printed number and its unit."""
        return f"{self.printed} {self.unit}" if self.unit else self.printed


_ILSVRC15 = "top-5 error of an ensemble on the ILSVRC test set (He et al.'s Table 5: "
_QUOTES = (
    # Krizhevsky et al. 2012
    Quote("imagenet_images", "15,000,000", "images", "ImageNet as a whole: 'over 15 million labeled high-resolution "
          "images' (the ILSVRC subset has about 1.2 million training images in 1,000 classes)",
          "krizhevsky2012imagenet", "section 1"),
    Quote("imagenet_categories", "22,000", "categories", "ImageNet as a whole: 'over 22,000 categories'",
          "krizhevsky2012imagenet", "section 1"),
    Quote("alexnet_ilsvrc2010_top1", "37.5", "%", "AlexNet (one network), top-1 error on the ILSVRC-2010 test set "
          "(the only year whose test labels were public)", "krizhevsky2012imagenet", "abstract and Table 1"),
    Quote("alexnet_ilsvrc2010_top5", "17.0", "%", "AlexNet (one network), top-5 error on the ILSVRC-2010 test set",
          "krizhevsky2012imagenet", "abstract and Table 1"),
    Quote("alexnet_ilsvrc2012_top5", "15.3", "%", "the ILSVRC-2012 winning entry (seven AlexNets, two of them "
          "pre-trained on the whole Fall-2011 ImageNet), top-5 test error", "krizhevsky2012imagenet", "abstract and Table 2"),
    Quote("ilsvrc2012_second_top5", "26.2", "%", "the second-best ILSVRC-2012 entry, top-5 test error",
          "krizhevsky2012imagenet", "abstract"),
    # ILSVRC 2013 and 2014, as the VGG paper's comparison lists them
    Quote("zfnet_ilsvrc2013_top5", "14.8", "%", "Zeiler & Fergus's ensemble of 6 networks, top-5 test error",
          "zeiler2014visualizing", "Table 2, row '6 convnets, (a) & (b) combined'"),
    Quote("clarifai_ilsvrc2013_top5", "11.7", "%", "Clarifai's ILSVRC-2013 winning entry (Zeiler's company; several "
          "networks), top-5 test error", "simonyan2015very", "Table 7, row 'Clarifai (multiple nets)'"),
    Quote("vgg_ilsvrc2014_top5", "7.3", "%", "VGG's ILSVRC-2014 submission (7 networks, dense evaluation), top-5 "
          "test error", "simonyan2015very", "Table 7, row 'VGG (ILSVRC submission, 7 nets, dense eval.)'"),
    Quote("vgg_best_top5", "6.8", "%", "VGG after the competition (2 networks, multi-crop and dense evaluation), "
          "top-5 test error", "simonyan2015very", "Table 7, row 'VGG (2 nets, multi-crop & dense eval.)'"),
    Quote("googlenet_ilsvrc2014_top5", "6.67", "%", "GoogLeNet's ILSVRC-2014 winning entry (7 networks, 144 crops), "
          "top-5 test error", "szegedy2015going", "Table 2, row 'GoogLeNet, 2014, 1st'"),
    # He et al. 2016, Table 5: ensembles, top-5 error on the test set
    Quote("t5_vgg_ilsvrc14", "7.32", "%", _ILSVRC15 + "VGG, ILSVRC'14)", "he2016deep", "Table 5, row 'VGG (ILSVRC'14)'"),
    Quote("t5_googlenet_ilsvrc14", "6.66", "%", _ILSVRC15 + "GoogLeNet, ILSVRC'14)", "he2016deep",
          "Table 5, row 'GoogLeNet (ILSVRC'14)'"),
    Quote("t5_vgg_v5", "6.8", "%", _ILSVRC15 + "VGG, v5 of the paper)", "he2016deep", "Table 5, row 'VGG (v5)'"),
    Quote("t5_prelu", "4.94", "%", _ILSVRC15 + "PReLU-net)", "he2016deep", "Table 5, row 'PReLU-net'"),
    Quote("t5_bn_inception", "4.82", "%", _ILSVRC15 + "BN-Inception)", "he2016deep", "Table 5, row 'BN-inception'"),
    Quote("t5_resnet_ilsvrc15", "3.57", "%", _ILSVRC15 + "ResNet, the ILSVRC-2015 winning entry: six networks of "
          "different depths, two of them ResNet-152)", "he2016deep", "Table 5, row 'ResNet (ILSVRC'15)'"),
    # He et al. 2016, section 3.4: the ImageNet training recipe
    Quote("resnet_batch", "256", "images", "ResNet's ImageNet mini-batch size", "he2016deep", "section 3.4"),
    Quote("resnet_lr", "0.1", "", "ResNet's first learning rate, divided by 10 when the error plateaus", "he2016deep",
          "section 3.4"),
    Quote("resnet_weight_decay", "0.0001", "", "ResNet's weight decay", "he2016deep", "section 3.4"),
    Quote("resnet_momentum", "0.9", "", "ResNet's SGD momentum", "he2016deep", "section 3.4"),
    Quote("resnet_iterations", "600,000", "iterations", "ResNet's training length ('up to 60 × 10⁴ iterations')",
          "he2016deep", "section 3.4"),
    # Iandola et al. 2016, Table 2: model sizes
    Quote("alexnet_mb", "240", "MB", "AlexNet's model file, 32-bit weights, uncompressed", "iandola2016squeezenet",
          "Table 2, row 'AlexNet, None (baseline)'"),
    Quote("squeezenet_mb", "4.8", "MB", "SqueezeNet's model file, 32-bit weights, uncompressed",
          "iandola2016squeezenet", "Table 2, row 'SqueezeNet (ours), None'"),
    Quote("squeezenet_compressed_mb", "0.47", "MB", "SqueezeNet after Deep Compression (pruning, then the "
          "remaining weights stored as 6-bit codes into a table of shared values)", "iandola2016squeezenet",
          "Table 2, row 'SqueezeNet (ours), Deep Compression, 6 bit'"),
    Quote("squeezenet_compressed_bits", "6", "bits", "the width of each stored weight code in that model",
          "iandola2016squeezenet", "Table 2, row 'SqueezeNet (ours), Deep Compression, 6 bit'"),
    Quote("squeezenet_reduction", "510", "×", "how much smaller than AlexNet's file that model is",
          "iandola2016squeezenet", "abstract and Table 2"),
    # Shao et al. 2016 (Trimps-Soushen, ILSVRC 2016), as the lecture reproduces their table
    *(Quote(f"shao_{key}", err, "%", f"{label}, top-5 error on the ImageNet validation set, single model in a "
            "multi-scale evaluation", "shao2016good", f"the lecture's copy of the table, column '{label}'")
      for key, label, err in (("inception_v3", "Inception-v3", "4.20"), ("inception_v4", "Inception-v4", "4.01"),
                              ("inception_resnet_v2", "Inception-Resnet-v2", "3.52"),
                              ("resnet200", "Resnet-200", "4.26"), ("wrn68_3", "Wrn-68-3", "4.65"))),
    Quote("shao_fusion_val", "2.92", "%", "the fusion of the five, top-5 error on the ImageNet validation set",
          "shao2016good", "the lecture's copy of the table, column 'Fusion (Val.)'"),
    Quote("shao_fusion_test", "2.99", "%", "the fusion of the five, the ILSVRC-2016 winning entry, top-5 test error",
          "shao2016good", "the lecture's copy of the table, column 'Fusion (Test)'"),
)
QUOTES = {q.key: q for q in _QUOTES}


def quote(key: str) -> Quote:
    """The published figure ``key`` of ``QUOTES``; a ``KeyError`` naming the known keys otherwise."""
    try:
        return QUOTES[key]
    except KeyError:
        raise KeyError(f"No quoted figure {key!r}; the known ones are: {', '.join(QUOTES)}.") from None
