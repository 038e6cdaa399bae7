"""The lecture's two-by-two table of transfer learning, measured on data cnnviz makes itself.

The lectures give a rule for each cell: little data and a similar data set → a
linear classifier on the top layer; little data and a different data set →
"you're in trouble", try linear classifiers on different stages; lots of data
and similar → fine-tune a few layers; lots and different → fine-tune a larger
number of layers. This module measures each cell offline:

- the **source** is ShapesNet trained on six shapes (``cnnviz.vismodels``, chapter 6);
- the **similar target** is six shapes it has never seen (``shapes.NEW_CLASSES``) drawn the same way;
- the **different target** is telling six materials apart from close-ups (``shapes.make_textures``):
  a task the source never had (it saw these photos only as backgrounds to ignore), where a linear model on
  the raw pixels does poorly;
- for several training-set sizes and seeds: training from scratch, a linear probe on the top layer
  (and on every stage), fine-tuning the top block and fine-tuning all of it; baselines: a linear
  model on pixels and a probe on the same network with random weights.

``transfer_table`` runs it (about two to three minutes on a laptop CPU); ``cached_transfer_table`` keeps
it on disk. ``run_strategy`` is one cell's run (the live explorer calls it); ``projections`` gives the
2-D maps of each layer's features. With internet, ``source_model`` and ``online_target`` swap in an
ImageNet network and a real data set; offline they fall back to the embedded ones with a message.
"""
import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn

from cnnviz import shapes
from cnnviz.train import TrainingDiverged
from cnnviz.transfer import (TransferError, blocks, cached_features, extract_features, find_head,
                             fine_tuner, linear_probe, reinitialised)

__all__ = ["Target", "TARGETS", "target_images", "target_data", "per_class_subset", "top_layer", "stage_layers",
           "Recipe", "RunResult", "run_strategy", "scratch_model", "STRATEGIES", "BASELINES", "STRATEGY_NAMES", "RULES",
           "TableConfig", "EMBEDDED_TABLE", "TransferTable", "Cell", "transfer_table", "cached_transfer_table",
           "is_cached", "projections", "source_model", "online_target", "ONLINE_TARGETS", "feature_throughput"]

_TABLE_FORMAT = "cnnviz transfer table 1"
_TEST_SEED = 271828          # the test images: a seed no training pool uses
_CHUNK = 384                 # images drawn at a time when collecting a balanced set


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A target task: ``key`` ("similar" / "different"), ``title``, ``classes`` (names), ``description`` (a
    sentence) and ``make(n, seed, split)`` → (uint8 images (n, 3, 64, 64), labels), where ``split`` ("train" or
    "test") may keep the two apart (the textures come from different halves of their photos)."""
    key: str
    title: str
    classes: Tuple[str, ...]
    description: str
    make: Callable


TARGETS: Dict[str, Target] = {
    "similar": Target(
        "similar", "new shapes", shapes.NEW_CLASSES,
        "six shapes the source network never saw (hexagon, half-disc, crescent, ellipse, bar, ell), drawn like "
        "its own: random place, size, rotation and colour, on photo, gradient and noise backgrounds",
        lambda n, seed, split: shapes.make_shapes(n, seed=seed, classes=shapes.NEW_CLASSES)),
    "different": Target(
        "different", "textures", ("brick", "grass", "gravel", "handwriting", "star field", "stained cells"),
        "close-ups of six materials (brick, grass, gravel, handwriting on paper, a star field, stained cells) at "
        "random scale, rotation and tint, training crops from the top half of each photo and test crops from the "
        "bottom half: the class is the texture, not a shape, and colour says nothing",
        lambda n, seed, split: shapes.make_textures(n, seed=seed, half="top" if split == "train" else "bottom")),
}


def _target(target) -> Target:
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise TransferError(f"There is no embedded target called {target!r}; choose 'similar' (new shapes) or "
                            "'different' (textures).")
    return TARGETS[target]


def _count(value, name: str, low: int = 1, high: int = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise TransferError(f"{name} must be a whole number, {span}; got {value!r}.")
    return value


def target_images(target, per_class: int, *, seed: int = 0, split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of every class of ``target``, class by class in generation order (so the first k
    of each class are ``target_images(target, k, seed=seed)``): uint8 (K·per_class, 3, 64, 64) and labels.
    ``split``: "train" or "test" (the textures' test crops come from other parts of the photos)."""
    t = _target(target)
    per_class = _count(per_class, "per_class (images of each class)")
    if split not in ("train", "test"):
        raise TransferError(f"split is 'train' or 'test', got {split!r}.")
    if t.key in TARGETS and TARGETS[t.key] is t:  # the embedded targets: made once per process
        x, y = _embedded_images(t.key, per_class, int(seed), split)
        return x.clone(), y.clone()
    return _make_balanced(t, per_class, seed, split)


@lru_cache(maxsize=8)
def _embedded_images(key: str, per_class: int, seed: int, split: str):
    return _make_balanced(TARGETS[key], per_class, seed, split)


def _make_balanced(t: Target, per_class: int, seed: int, split: str):
    k = len(t.classes)
    picked: List[List[torch.Tensor]] = [[] for _ in range(k)]
    chunk = 0
    while min(len(p) for p in picked) < per_class:
        if chunk >= 1000:
            raise TransferError(f"The target {t.title!r} made too few images of some class in {chunk * _CHUNK:,} "
                                "draws; check that its make() draws every class.")
        x, y = t.make(_CHUNK, 1_000_003 * int(seed) + chunk, split)  # fixed chunks: smaller sets nest in larger
        for c in range(k):
            need = per_class - len(picked[c])
            if need > 0:
                picked[c].extend(x[y == c][:need])
        chunk += 1
    images = torch.stack([img for p in picked for img in p])
    labels = torch.arange(k).repeat_interleave(per_class)
    return images, labels


def target_data(target, *, per_class: int, test_per_class: int = 100, seed: int = 0, mean=None, std=None,
                pool_per_class: int = None):
    """A ``TensorData`` of ``target``: ``per_class`` training images of each class (the first of a pool of
    ``pool_per_class`` drawn from ``seed``, so smaller sets are part of larger ones) and ``test_per_class`` test
    images of each class (the same for every seed). ``mean``/``std``: the normalisation, which must be the
    source network's (default: the training images')."""
    from cnnviz.train import TensorData

    t = _target(target)
    per_class = _count(per_class, "per_class (training images of each class)")
    pool = per_class if pool_per_class is None else max(per_class, int(pool_per_class))
    x, y = target_images(t, pool, seed=1 + int(seed))
    keep = torch.cat([torch.arange(c * pool, c * pool + per_class) for c in range(len(t.classes))])
    x_test, y_test = target_images(t, _count(test_per_class, "test_per_class"), seed=_TEST_SEED, split="test")
    return TensorData.from_arrays(x[keep], y[keep], x_test, y_test, mean=mean, std=std, classes=t.classes)


def per_class_subset(data, per_class: int, *, seed: int = 0):
    """``data`` (a ``TensorData``) with ``per_class`` training images of each class, drawn at random from
    ``seed`` (the test set is kept whole): the training-set size of a table for any data set."""
    from cnnviz.train import TensorData

    labels = data.train_labels
    counts = torch.bincount(labels, minlength=data.num_classes)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise TransferError(f"per_class is the number of training images of each class: at least 1 (one image "
                            f"per class), got {per_class!r}.")
    if per_class > int(counts.min()):
        poorest = int(counts.argmin())
        name = data.classes[poorest] if data.classes else poorest
        raise TransferError(f"per_class={per_class} is more than the data has: class {name!r} has only "
                            f"{int(counts.min())} training images; use at most {int(counts.min())}.")
    g = torch.Generator().manual_seed(int(seed))
    keep = torch.cat([(labels == c).nonzero().squeeze(1)[torch.randperm(int(counts[c]), generator=g,
                                                                         device=g.device)[:per_class]]
                      for c in range(data.num_classes)])
    return TensorData(data.train_images[keep], labels[keep], data.test_images, data.test_labels, data.mean,
                      data.std, data.classes)


# ----------------------------------------------------------------------------- layers of a source network


def top_layer(model: nn.Module, *, head: str = None) -> str:
    """The layer whose output the head classifies: the last module with no children registered before the
    head (``classifier.flatten`` of ShapesNet, ``avgpool`` of a ResNet, the last dropout of VGG)."""
    head = find_head(model, head)
    names = [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    before = names[:names.index(head)] if head in names else names
    if not before:
        raise TransferError(f"{type(model).__name__} has no layer before its head {head!r}.")
    return before[-1]


def stage_layers(model: nn.Module) -> List[str]:
    """The stages a probe reads, early to late: after each of ShapesNet's ReLUs (``feature_layers``) or each
    block of another model (``transfer.blocks``), the last one replaced by the top layer (``top_layer``), which
    is that stage's output averaged over space (what the probes read anyway)."""
    names = list(getattr(model, "feature_layers", ()) or [b[-1] for b in blocks(model)[:-1]])
    top = top_layer(model)
    return [n for n in names[:-1] if n != top] + [top]


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Recipe:
    """How each strategy trains. SGD with momentum on batches of ``batch_size``. Fine-tuning: the new head at
    ``lr``, starting from the top layer's linear probe fitted with the stronger penalty ``1 / head_C``
    (``head_from_probe``; a softer start than the best probe), the pretrained layers that train at
    ``lr × backbone_factor`` (larger factors can wreck ShapesNet's features: chapter 14 measures it). From scratch,
    everything at ``scratch_lr``. Each run sees ``passes`` times its training set, but at least ``min_images``
    and at most ``max_images`` images (mirrored at random with ``augment``; shifted by up to ``pad`` pixels:
    0, since zero borders hurt textures), the learning rate divided by 10 for the last quarter. Probes:
    logistic regression with penalty ``1 / C`` on features averaged over space (``pool``)."""
    batch_size: int = 32
    lr: float = 0.02
    backbone_factor: float = 0.05
    scratch_lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    passes: int = 20
    min_images: int = 1500
    max_images: int = 4000
    augment: bool = True
    pad: int = 0
    C: float = 1.0
    pool: object = "avg"
    head_from_probe: bool = True
    head_C: float = 0.02

    def images_to_see(self, n_train: int) -> int:
        """How many training images a run on ``n_train`` images sees, in whole batches."""
        want = min(max(self.passes * n_train, self.min_images), self.max_images)
        return -(-want // self.batch_size) * self.batch_size

    def schedule(self, n_train: int, epochs: int = 1) -> Tuple[int, int]:
        """(images per epoch, images in all) for a run of ``epochs`` epochs: ``images_to_see`` split into
        epochs of whole batches (so the total can differ from it by less than a batch per epoch)."""
        steps = self.images_to_see(n_train) // self.batch_size
        per_epoch = max(1, round(steps / epochs)) * self.batch_size
        return per_epoch, per_epoch * epochs


#: The strategies of the table, and the baselines measured beside them.
STRATEGIES = ("scratch", "probe", "finetune_top", "finetune_all")
BASELINES = ("pixels", "random_probe")
STRATEGY_NAMES = {
    "scratch": "train from scratch", "probe": "linear classifier on the top layer",
    "finetune_top": "fine-tune the top block", "finetune_all": "fine-tune everything",
    "pixels": "linear classifier on the pixels", "random_probe": "linear classifier on a random network",
}


@dataclass
class RunResult:
    """One strategy on one training set: ``accuracy`` on the test set, ``seconds``, ``curve`` (for trained
    strategies: dicts of ``images`` seen, training ``loss`` and ``acc`` per log point), ``strategy``, ``layer``
    (probes), ``trainable`` (fine-tuning), ``stopped`` (ended by Stop), ``trainer`` (or None), ``diverged`` (None,
    or the sentence saying at which step the loss became NaN or infinite; the accuracy is then the model's when
    training stopped: on the CPU just before the bad step, on a GPU at the log point that found it)."""
    strategy: str
    accuracy: float
    seconds: float
    curve: list = field(default_factory=list)
    layer: str = None
    trainable: object = None
    stopped: bool = False
    trainer: object = None
    diverged: str = None


def _tiled(data, total: int):
    """``data`` with its training set repeated (and cut) to ``total`` images: one Trainer epoch sees them all."""
    from cnnviz.train import TensorData

    n = len(data.train_images)
    idx = torch.arange(total) % n
    return TensorData(data.train_images[idx], data.train_labels[idx], data.test_images, data.test_labels,
                      data.mean, data.std, data.classes)


def _probe_features(model, data, layer, pool, cache):
    get = (lambda x: cached_features(model, x, layer, pool=pool, cache=cache)) if cache else \
        (lambda x: extract_features(model, x, layer, pool=pool))
    return get(data.train_images), get(data.test_images)


def scratch_model(source: nn.Module, *, seed: int = 0) -> nn.Module:
    """The network to train from scratch: the source's architecture with fresh random weights, trained the way
    the source was. For the offline ShapesNet (stored with its batch norm folded into the convolutions) that is
    ShapesNet with batch normalisation, as ``vismodels.RECIPE`` trains it; for any other model
    ``transfer.reinitialised(source)``."""
    from cnnviz.models.shapesnet import ShapesNet, shapesnet

    if isinstance(source, ShapesNet) and not any(isinstance(m, nn.BatchNorm2d) for m in source.modules()):
        f = source.features
        widths = tuple(getattr(f, f"conv{k}").out_channels for k in range(1, 5))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            model = shapesnet(num_classes=source.classifier.fc.out_features, widths=widths, batch_norm=True)
        model.cnnviz_preprocess = getattr(source, "cnnviz_preprocess", None)
        return model
    return reinitialised(source, seed=seed)


def run_strategy(strategy: str, source: nn.Module, data, *, recipe: Recipe = Recipe(), seed: int = 0,
                 layer: str = None, trainable=None, epochs: int = 1, on_log=None, on_epoch=None, log_every=None,
                 cache=False, trainer_hook=None, top_features=None) -> RunResult:
    """Run one ``strategy`` with the pretrained ``source`` on ``data`` (a ``TensorData`` normalised as the
    source was trained); ``source`` itself is never changed (a copy is trained).

    - ``"probe"``: a linear classifier on the features of ``layer`` (default:
      the top layer, ``top_layer``); ``"random_probe"``: the same on the
      source's architecture with random weights; ``"pixels"``: on the raw pixels.
    - ``"finetune_top"`` (the last block and the head), ``"finetune_all"``, or
      ``"finetune"`` with ``trainable`` (any ``transfer.set_trainable`` value):
      a copy of the source with a new head that starts as the top layer's
      linear probe (``recipe.head_from_probe``, LP-FT), the head at
      ``recipe.lr``, the pretrained layers that train at ``lr ×
      backbone_factor``, the rest frozen.
    - ``"scratch"``: ``scratch_model(source)``, everything trained at ``recipe.scratch_lr``.

    Trained strategies see ``recipe.images_to_see`` images in ``epochs`` epochs
    (the test set is measured after each), call ``on_log(trainer)`` /
    ``on_epoch(trainer)``, and ``trainer_hook(trainer)`` once before training
    (the explorer keeps it to call ``stop()``). ``top_features``: the top
    layer's (train, test) features when already extracted. ``cache``: as
    ``transfer.cached_features``, for the source's features.
    """
    import copy

    start = time.perf_counter()
    if strategy in ("probe", "random_probe", "pixels"):
        if strategy == "pixels":
            train_x = data.train_images.float().flatten(1) / 255
            test_x = data.test_images.float().flatten(1) / 255
        elif strategy == "probe" and layer in (None, top_layer(source)) and top_features is not None:
            train_x, test_x = top_features
            layer = top_layer(source)
        else:
            net = source if strategy == "probe" else reinitialised(source, seed=seed)
            layer = layer or top_layer(net)
            train_x, test_x = _probe_features(net, data, layer, recipe.pool, cache if strategy == "probe" else False)
        probe = linear_probe(train_x, data.train_labels, test_x, data.test_labels, C=recipe.C)
        return RunResult(strategy, probe.accuracy, time.perf_counter() - start, layer=layer)
    if strategy not in ("scratch", "finetune_top", "finetune_all", "finetune"):
        raise TransferError(f"There is no strategy {strategy!r}; choose one of "
                            f"{', '.join(STRATEGIES + BASELINES)}, or 'finetune' with trainable=.")
    epochs = _count(epochs, "epochs")
    per_epoch, _ = recipe.schedule(len(data.train_images), epochs)
    tiled = _tiled(data, per_epoch)
    head_init = None
    if strategy == "scratch":
        model, trainable, new_head = scratch_model(source, seed=seed), "all", True
        lr = backbone = recipe.scratch_lr
    else:
        model, new_head = copy.deepcopy(source), True
        if strategy != "finetune" or trainable is None:
            trainable = {"finetune_top": 1, "finetune_all": "all"}.get(strategy, trainable if trainable is not None
                                                                         else 1)
        lr, backbone = recipe.lr, recipe.lr * recipe.backbone_factor
        if recipe.head_from_probe:  # LP-FT: the head starts as the linear probe of the top layer
            tr, te = top_features if top_features is not None else \
                _probe_features(source, data, top_layer(source), recipe.pool, cache)
            head_init = linear_probe(tr, data.train_labels, te, data.test_labels, C=recipe.head_C)
    steps = per_epoch // recipe.batch_size
    on_cpu = next(source.parameters()).device.type == "cpu"
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        trainer = fine_tuner(model, tiled, trainable=trainable, lr=lr, backbone_lr=backbone, seed=seed,
                             new_head=new_head, head_init=head_init, epochs=epochs, batch_size=recipe.batch_size,
                             momentum=recipe.momentum, weight_decay=recipe.weight_decay, augment=recipe.augment,
                             pad=recipe.pad, milestones=(0.75,) if epochs * steps >= 4 else None,
                             device="cpu" if on_cpu else None, log_every=log_every or max(1, steps // 10),
                             on_log=on_log, on_epoch=on_epoch, progress=False)
        if trainer_hook is not None:
            trainer_hook(trainer)
        diverged = None
        try:
            trainer.fit()
        except TrainingDiverged as err:  # a result, not a crash: the model as it was before the bad step
            diverged = str(err)
    h = trainer.history
    curve = [{"images": r["step"] * recipe.batch_size, "loss": r["loss"], "acc": r["acc"]} for r in h.steps]
    finished = h.epochs and h.epochs[-1]["step"] == trainer.step_count
    accuracy = h.epochs[-1]["test_acc"] if finished else trainer.evaluate()["test_acc"]
    model.eval()
    return RunResult(strategy, float(accuracy), time.perf_counter() - start, curve, trainable=trainable,
                     stopped=trainer.stopped, trainer=trainer, diverged=diverged)


# ----------------------------------------------------------------------------- the table


#: The lecture's rule for each cell (``(data, similarity)``), and the strategies it recommends.
RULES = {
    ("little", "similar"): ("Use a linear classifier on the top layer.", ("probe",)),
    ("little", "different"): ("You're in trouble… try linear classifiers from different stages.", ("stages",)),
    ("lots", "similar"): ("Fine-tune a few layers.", ("finetune_top",)),
    ("lots", "different"): ("Fine-tune a larger number of layers.", ("finetune_all",)),
}


@dataclass(frozen=True)
class TableConfig:
    """What ``transfer_table`` measures: ``targets``, training-set ``sizes`` (images per class; the smallest is
    the lecture's "very little data", the largest its "quite a lot"), ``seeds``, ``test_per_class``, the
    ``recipe``; the source is ``trained_shapesnet(seed=source_seed)``."""
    targets: Tuple[str, ...] = ("similar", "different")
    sizes: Tuple[int, ...] = (5, 25, 150)
    seeds: Tuple[int, ...] = (0, 1, 2)
    test_per_class: int = 100
    recipe: Recipe = Recipe()
    source_seed: int = 0
    threads: int = 2

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


#: The table the book prints (2 targets × 3 sizes × 3 seeds).
EMBEDDED_TABLE = TableConfig()


@dataclass
class Cell:
    """One cell of the lecture's table: ``data`` ("little"/"lots"), ``similarity``, ``size`` (per class),
    ``rule`` (the lecture's sentence), ``recommended`` (strategy keys), ``means`` (strategy → mean accuracy
    over seeds), ``sems`` (standard errors), ``best`` (the strategy with the highest mean), ``verdict``
    ("agrees", "within noise", "partly" or "disagrees") and ``explanation`` (a sentence with the numbers)."""
    data: str
    similarity: str
    size: int
    rule: str
    recommended: tuple
    means: dict
    sems: dict
    best: str
    verdict: str
    explanation: str


@dataclass
class TransferTable:
    """The measured table: ``config``, ``rows`` (dicts: ``target``, ``size``, ``seed``, ``strategy``,
    ``layer``, ``accuracy``, ``seconds``), ``curves`` (``"target/size/seed/strategy"`` → training curve),
    ``stages`` (the probed layers, in order), ``source`` (a sentence), ``chance`` (target → 1 / classes),
    ``seconds`` (to compute it)."""
    config: TableConfig
    rows: list
    curves: dict
    stages: list
    source: str
    chance: dict
    seconds: float

    def accuracies(self, target: str, size: int, strategy: str, layer: str = None) -> list:
        """The accuracy of every seed, in seed order (for ``"stage"`` rows, of the probe at ``layer``)."""
        return [r["accuracy"] for r in self.rows if r["target"] == target and r["size"] == size
                and r["strategy"] == strategy and (layer is None or r["layer"] == layer)]

    def mean(self, target: str, size: int, strategy: str, layer: str = None) -> Tuple[float, float]:
        """(mean, standard error of the mean) over the seeds."""
        values = self.accuracies(target, size, strategy, layer)
        if not values:
            raise KeyError(f"No rows for {target}, {size} per class, {strategy} {layer or ''}.")
        m = sum(values) / len(values)
        if len(values) < 2:
            return m, 0.0
        var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
        return m, math.sqrt(var / len(values))

    def best_stage(self, target: str, size: int) -> Tuple[str, float]:
        """The probed layer with the highest mean accuracy, and that mean."""
        means = {layer: self.mean(target, size, "stage", layer)[0] for layer in self.stages}
        layer = max(means, key=means.get)
        return layer, means[layer]

    def cells(self) -> List[Cell]:
        """The lecture's four cells, each with its rule, the measurements and whether they agree."""
        out = []
        for data, size in (("little", min(self.config.sizes)), ("lots", max(self.config.sizes))):
            for sim in ("similar", "different"):
                if sim not in self.config.targets:
                    continue
                rule, recommended = RULES[(data, sim)]
                stats = {s: self.mean(sim, size, s) for s in STRATEGIES}
                means = {s: v[0] for s, v in stats.items()}
                sems = {s: v[1] for s, v in stats.items()}
                best = max(means, key=means.get)
                if recommended == ("stages",):
                    verdict, explanation = self._stages_verdict(sim, size, means, best)
                else:
                    rec = recommended[0]
                    gap = means[best] - means[rec]
                    noise = 2 * math.sqrt(sems[best] ** 2 + sems[rec] ** 2)
                    verdict = "agrees" if rec == best else ("within noise" if gap <= noise else "disagrees")
                    explanation = (f"{STRATEGY_NAMES[rec].capitalize()} reaches {100 * means[rec]:.1f} %"
                                   + (", the best of the four." if rec == best else
                                      f"; {STRATEGY_NAMES[best]} reaches {100 * means[best]:.1f} % "
                                      f"({100 * gap:.1f} points more, "
                                      + ("less than twice the standard error of the difference)." if gap <= noise
                                         else "more than twice the standard error of the difference).")))
                layer, stage_mean = self.best_stage(sim, size)
                if recommended != ("stages",) and layer != self.stages[-1] and stage_mean > means[best]:
                    explanation += (f" (A linear classifier on the earlier stage {layer} reaches "
                                    f"{100 * stage_mean:.1f} %, more than any of the four.)")
                out.append(Cell(data, sim, size, rule, recommended, means, sems, best, verdict, explanation))
        return out

    def _stages_verdict(self, target, size, means, best):
        """The "you're in trouble, try other stages" cell: does the top layer transfer less here than to the
        other target (its lead over random weights is smaller), and does an earlier stage beat it?"""
        layer, stage_mean = self.best_stage(target, size)
        top, top_sem = self.mean(target, size, "probe")
        stage_sem = self.mean(target, size, "stage", layer)[1]
        lead = top - self.mean(target, size, "random_probe")[0]
        other = "similar" if target == "different" else "different"
        other_lead = (self.mean(other, size, "probe")[0] - self.mean(other, size, "random_probe")[0]
                      if other in self.config.targets else None)
        trouble = other_lead is not None and lead < other_lead
        # an earlier stage helps when it beats the top layer by more than twice the standard error of the difference
        earlier = layer != self.stages[-1] and stage_mean - top > 2 * math.sqrt(top_sem ** 2 + stage_sem ** 2)
        verdict = "agrees" if (trouble and earlier) else ("partly" if (trouble or earlier) else "disagrees")
        text = f"Pretrained top-layer features beat random ones by {100 * lead:.1f} points here"
        if other_lead is not None:
            text += (f" against {100 * other_lead:.1f} on the {other} target"
                     + (" (the top layer transfers less: trouble, as the lecture says)" if trouble else
                        " (the top layer transfers no worse)"))
        text += (f"; a linear classifier on {layer} reaches {100 * stage_mean:.1f} % against {100 * top:.1f} % on "
                 f"the top layer, so {'an earlier stage does help' if earlier else 'earlier stages do not help'}. "
                 f"Best of the four: {STRATEGY_NAMES[best]}, {100 * means[best]:.1f} %.")
        return verdict, text

    def to_payload(self) -> dict:
        return {"format": _TABLE_FORMAT, "config": json.dumps(asdict(self.config), sort_keys=True, default=str),
                "rows": json.dumps(self.rows), "curves": json.dumps(self.curves), "stages": list(self.stages),
                "source": self.source, "chance": json.dumps(self.chance), "seconds": float(self.seconds)}

    @classmethod
    def from_payload(cls, payload: dict, config: TableConfig) -> "TransferTable":
        return cls(config, json.loads(payload["rows"]), json.loads(payload["curves"]), list(payload["stages"]),
                   payload["source"], json.loads(payload["chance"]), float(payload["seconds"]))


def _shapes_source(seed: int = 0, progress: bool = False) -> nn.Module:
    from cnnviz.vismodels import trained_shapesnet

    return trained_shapesnet(seed=seed, progress=progress)


def _source_sentence(model) -> str:
    rep = getattr(model, "training_report", {})
    acc = f", {100 * rep['test_acc']:.1f} % on unseen images" if "test_acc" in rep else ""
    return (f"ShapesNet trained offline by cnnviz on generated images of six shapes "
            f"({', '.join(shapes.CLASSES)}){acc}")


def transfer_table(config: TableConfig = EMBEDDED_TABLE, *, progress: bool = True) -> TransferTable:
    """Measure ``config``: for every target, seed and size, the four strategies, the two baselines and a
    linear probe on every stage (pretrained and random weights). Runs on the CPU with ``config.threads``
    torch threads, restored after. (Denormal floats are not flushed: these ReLU networks at healthy scales do
    not make them.)"""
    from cnnviz.runtime import cpu_threads

    source = _shapes_source(config.source_seed, progress=progress)
    pre = source.cnnviz_preprocess
    stages = stage_layers(source)
    top = top_layer(source)
    rows, curves = [], {}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(config.targets) * len(config.seeds) * len(config.sizes), desc="transfer table",
                   unit="cell")

    def row(target, size, seed, strategy, layer, accuracy, seconds):
        rows.append({"target": target, "size": size, "seed": seed, "strategy": strategy, "layer": layer,
                     "accuracy": float(accuracy), "seconds": float(seconds)})

    with cpu_threads(config.threads):
        for target in config.targets:
            for seed in config.seeds:
                full = target_data(target, per_class=max(config.sizes), test_per_class=config.test_per_class,
                                   seed=seed, mean=pre.mean, std=pre.std)
                random_net = reinitialised(source, seed=seed)
                feats = {}   # (kind, layer) → (features of every pool image, of every test image)
                for kind, net in (("stage", source), ("random_stage", random_net)):
                    tr = extract_features(net, full.train_images, stages, pool=config.recipe.pool)
                    te = extract_features(net, full.test_images, stages, pool=config.recipe.pool)
                    feats.update({(kind, layer): (tr[layer], te[layer]) for layer in stages})
                pool = max(config.sizes)
                for size in config.sizes:
                    keep = torch.cat([torch.arange(c * pool, c * pool + size) for c in range(full.num_classes)])
                    data = type(full)(full.train_images[keep], full.train_labels[keep], full.test_images,
                                      full.test_labels, full.mean, full.std, full.classes)
                    for (kind, layer), (tr, te) in feats.items():
                        t0 = time.perf_counter()
                        p = linear_probe(tr[keep], data.train_labels, te, data.test_labels, C=config.recipe.C)
                        row(target, size, seed, kind, layer, p.accuracy, time.perf_counter() - t0)
                    top_features = (feats["stage", top][0][keep], feats["stage", top][1])
                    for strategy in STRATEGIES + BASELINES:
                        if strategy == "probe":  # the stage probe of the top layer, measured just above
                            r = next(x for x in rows[::-1] if x["strategy"] == "stage" and x["layer"] == top)
                            row(target, size, seed, "probe", top, r["accuracy"], r["seconds"])
                            continue
                        if strategy == "random_probe":
                            r = next(x for x in rows[::-1] if x["strategy"] == "random_stage" and x["layer"] == top)
                            row(target, size, seed, "random_probe", top, r["accuracy"], r["seconds"])
                            continue
                        r = run_strategy(strategy, source, data, recipe=config.recipe, seed=seed,
                                         top_features=top_features)
                        row(target, size, seed, strategy, r.layer, r.accuracy, r.seconds)
                        if r.curve:
                            curves[f"{target}/{size}/{seed}/{strategy}"] = r.curve
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    chance = {t: 1 / len(_target(t).classes) for t in config.targets}
    return TransferTable(config, rows, curves, stages, _source_sentence(source), chance,
                         time.perf_counter() - start)


def _cache_path(config: TableConfig, cache) -> Path:
    from cnnviz.data import cache_dir
    from cnnviz.vismodels import shapesnet_cache_path

    folder = cache_dir() if cache in (None, True) else Path(cache)
    h = hashlib.sha256(config.key().encode())
    h.update(shapesnet_cache_path(config.source_seed).name.encode())       # a retrained source: a new table
    for t in config.targets:  # a change in how any class of a target is drawn: one image of each
        for split in ("train", "test"):
            h.update(target_images(t, 1, seed=0, split=split)[0].numpy().tobytes())
    return folder / f"transfer-table-{h.hexdigest()[:16]}.pt"


def is_cached(config: TableConfig = EMBEDDED_TABLE, *, cache=None) -> bool:
    """Whether ``cached_transfer_table(config)`` would load from disk."""
    return _cache_path(config, cache).exists()


def cached_transfer_table(config: TableConfig = EMBEDDED_TABLE, *, cache=None,
                          progress: bool = True) -> TransferTable:
    """``transfer_table(config)``, computed once and kept in ``cache`` (default ``cnnviz.data.cache_dir()``):
    written atomically, checked by a SHA-256 digest and read with ``weights_only=True``; a damaged file is
    recomputed with a warning."""
    from cnnviz.train import _digest, _load_verified, _save_atomically

    path = _cache_path(config, cache)
    if path.exists():
        payload, why = _load_verified(path, _TABLE_FORMAT)
        if payload is not None:
            return TransferTable.from_payload(payload, config)
        warnings.warn(f"The cached transfer table {path} is damaged ({why}); measuring it again (two to three "
                      "minutes).", stacklevel=2)
    table = transfer_table(config, progress=progress)
    payload = table.to_payload()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically({**payload, "sha256": _digest(payload)}, path)
    return table


# ----------------------------------------------------------------------------- 2-D maps of the features


def projections(source: nn.Module, target, *, layers=None, per_class: int = 60, method: str = "pca",
                seed: int = 0, random_weights: bool = False) -> dict:
    """Each layer's features for ``per_class`` test images of ``target``, projected to 2-D: the lecture's
    "tangled manifold → separable manifold" made concrete.

    Returns ``{"layers": [...], "labels": (N,), "classes": [...], "points": {layer: (N, 2)}, "variance":
    {layer: share of the variance the two axes keep}}``, plus ``"pixels"`` first. ``method``: ``"pca"``
    (principal components of the standardised features) or ``"tsne"`` (scikit-learn's t-SNE: slower).
    ``random_weights``: the same for a randomly initialised copy.
    """
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if method not in ("pca", "tsne"):
        raise TransferError(f"method is 'pca' or 'tsne', got {method!r}.")
    t = _target(target)
    net = reinitialised(source, seed=seed) if random_weights else source
    layers = list(layers) if layers is not None else stage_layers(net)
    x, y = target_images(t, per_class, seed=_TEST_SEED + 1, split="test")
    out = {"layers": ["pixels"] + layers, "labels": y, "classes": list(t.classes), "points": {}, "variance": {}}
    feats = {"pixels": x.float().flatten(1) / 255}
    for layer in layers:
        feats[layer] = extract_features(net, x, layer, pool="avg")
    for name, f in feats.items():
        z = StandardScaler().fit_transform(f.numpy().astype(np.float64))
        pca = PCA(n_components=2, random_state=seed).fit(z)
        out["variance"][name] = float(pca.explained_variance_ratio_.sum())
        if method == "pca":
            pts = pca.transform(z)
        else:
            from sklearn.manifold import TSNE

            pts = TSNE(2, init="pca", random_state=seed, perplexity=min(30, len(z) // 4)).fit_transform(z)
        out["points"][name] = torch.from_numpy(np.asarray(pts, dtype=np.float32))
    return out


# ----------------------------------------------------------------------------- ImageNet sources and real data


#: Data sets ``online_target`` knows: name → (torchvision class, keyword arguments, what it is).
ONLINE_TARGETS = {
    "pets": ("OxfordIIITPet", {"target_types": "binary-category"}, "Oxford-IIIT Pet, cats vs dogs (Parkhi et al. "
             "2012): the lecture's cat/dog example, a target similar to ImageNet"),
    "pets37": ("OxfordIIITPet", {"target_types": "category"}, "Oxford-IIIT Pet, 37 breeds"),
    "flowers102": ("Flowers102", {}, "Oxford Flowers-102 (Nilsback & Zisserman 2008)"),
    "dtd": ("DTD", {}, "the Describable Textures Dataset (Cimpoi et al. 2014): 47 textures, a target unlike "
            "ImageNet's objects"),
    "eurosat": ("EuroSAT", {}, "EuroSAT (Helber et al. 2019): satellite images of land use, very unlike ImageNet"),
    "cars": ("StanfordCars", {}, "Stanford Cars (Krause et al. 2013): 196 car models, the lecture's data set"),
}


def source_model(name: str = "shapesnet", *, fallback: bool = True):
    """The pretrained network to transfer from: ``"shapesnet"`` (offline) or ``"resnet18"``, ``"vgg16"``,
    ``"alexnet"`` with torchvision's ImageNet weights (``cnnviz.vismodels.vision_model``: downloaded into the
    torch hub cache; offline, with ``fallback=True``, a warning and ShapesNet instead)."""
    from cnnviz.vismodels import vision_model

    return vision_model(name, fallback=fallback, progress=False).model


def _split_names(name: str):
    """torchvision's names of the training and test splits (Pets calls its training split "trainval")."""
    return ("trainval", "test") if name in ("pets", "pets37") else ("train", "test")


def online_target(name: str, *, root=None, size: int = 224, per_class: int = None, test_per_class: int = None,
                  download: bool = True, fallback: str = "similar", mean=None, std=None, seed: int = 0):
    """A real data set as a ``TensorData`` of ``size``×``size`` images (resized on the short side, centre
    crop), at most ``per_class`` training and ``test_per_class`` test images of each class.

    ``name``: a key of ``ONLINE_TARGETS``, or a folder laid out as
    ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (Stanford Cars from
    another source, say). torchvision's download of Stanford Cars no longer
    works: give its folder instead. When the data cannot be had (no internet,
    no files), ``fallback`` ("similar" or "different") warns, saying why, and
    returns that embedded target; ``fallback=None`` raises ``cnnviz.data.DatasetUnavailable``.
    """
    from cnnviz.data import DatasetUnavailable, cache_dir

    folder = Path(name) if (isinstance(name, (str, Path)) and Path(name).is_dir()) else None
    if folder is None and name not in ONLINE_TARGETS:
        raise TransferError(f"There is no data set {name!r}; choose one of {', '.join(ONLINE_TARGETS)}, or give a "
                            "folder with train/<class>/ and test/<class>/ subfolders of images.")
    try:
        if folder is not None:
            sets = [_folder_split(folder / split) for split in ("train", "test")]
            classes = sets[0].classes
        else:
            sets, classes = _torchvision_splits(name, root or cache_dir(), download, seed)
    except (OSError, RuntimeError, ValueError, ImportError) as err:
        where = folder or Path(root or cache_dir())
        extra = (" torchvision can no longer download Stanford Cars: put the data in a folder with train/<class>/ "
                 "and test/<class>/ subfolders and pass that folder as the name." if name == "cars" else "")
        message = (f"The data set {name} could not be loaded from {where} ({type(err).__name__}: "
                   f"{str(err).splitlines()[0] if str(err) else ''}).{extra} Connect to the internet, or copy the "
                   "files there")
        if fallback is None:
            raise DatasetUnavailable(message + ".") from err
        warnings.warn(message + f". Using the embedded {fallback!r} target instead (cnnviz.transfer_study.TARGETS).",
                      stacklevel=2)
        return target_data(fallback, per_class=per_class or 25, test_per_class=test_per_class or 100, seed=seed,
                           mean=mean, std=std)
    return _to_tensor_data(sets, classes, size, per_class, test_per_class, mean, std, seed)


def _torchvision_splits(name, root, download, seed):
    import torchvision.datasets as tvd

    cls_name, kwargs, _ = ONLINE_TARGETS[name]
    cls = getattr(tvd, cls_name)
    if name == "cars":
        download = False  # the original URLs are gone: only a local copy works
    if name == "eurosat":  # one split: a seeded 80/20 cut
        full = cls(str(root), download=download)
        g = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(len(full), generator=g, device=g.device).tolist()
        cut = int(0.8 * len(full))
        return [torch.utils.data.Subset(full, perm[:cut]), torch.utils.data.Subset(full, perm[cut:])], full.classes
    train_split, test_split = _split_names(name)
    sets = [cls(str(root), split=s, download=download, **kwargs) for s in (train_split, test_split)]
    classes = getattr(sets[0], "classes", None)
    if name == "pets":
        classes = ["cat", "dog"]
    return sets, classes


def _folder_split(folder: Path):
    import torchvision.datasets as tvd

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: the folder needs train/ and test/ subfolders, one folder "
                                "of images per class in each")
    return tvd.ImageFolder(str(folder))


def _to_tensor_data(sets, classes, size, per_class, test_per_class, mean, std, seed):
    """Read the images of the two splits (at most so many per class) into uint8 tensors of ``size``."""
    from PIL import Image
    from torchvision.transforms import v2

    from cnnviz.train import TensorData

    resize = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    out = []
    for ds, limit in zip(sets, (per_class, test_per_class)):
        counts: Dict[int, int] = {}
        xs, ys = [], []
        known = _labels_of(ds)   # when the data set lists its labels, images past the limit are never decoded
        for i in range(len(ds)):
            if known is not None and limit is not None and counts.get(known[i], 0) >= limit:
                continue
            img, label = ds[i]
            label = int(label)
            if limit is not None and counts.get(label, 0) >= limit:
                continue
            if not isinstance(img, Image.Image):
                img = v2.functional.to_pil_image(img)
            xs.append(resize(img.convert("RGB")))
            ys.append(label)
            counts[label] = counts.get(label, 0) + 1
        out.append((torch.stack(xs), torch.tensor(ys)))
    (x_train, y_train), (x_test, y_test) = out
    return TensorData.from_arrays(x_train, y_train, x_test, y_test, mean=mean, std=std, classes=classes)


def _labels_of(ds):
    """Every label of a torchvision data set without reading its images, where it keeps them in a list
    (``ImageFolder.targets``, the private ``_labels`` / ``_bin_labels`` of Pets, Flowers, DTD; through a
    ``Subset``), else None."""
    if isinstance(ds, torch.utils.data.Subset):
        inner = _labels_of(ds.dataset)
        return None if inner is None else [inner[i] for i in ds.indices]
    binary = getattr(ds, "_target_types", None) == ["binary-category"]
    for name in (("_bin_labels",) if binary else ()) + ("targets", "_labels"):
        labels = getattr(ds, name, None)
        if isinstance(labels, (list, tuple)) and len(labels) == len(ds):
            return [int(v) for v in labels]
    return None


# ----------------------------------------------------------------------------- speed


def feature_throughput(model: nn.Module = None, *, n: int = 1024, layer: str = None, batch_size: int = 256,
                       device=None) -> float:
    """Images per second that ``extract_features`` takes through ``model`` (default: the offline ShapesNet) up
    to ``layer`` (default: its top layer), on ``device`` (default: the model's)."""
    import copy

    model = model if model is not None else _shapes_source()
    if device is not None:
        model = copy.deepcopy(model).to(device)
    layer = layer or top_layer(model)
    side = getattr(getattr(model, "cnnviz_preprocess", None), "size", 224)
    x = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0),
                      device="cpu")
    extract_features(model, x[:batch_size], layer, batch_size=batch_size)        # warm-up
    if next(model.parameters()).device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    extract_features(model, x, layer, batch_size=batch_size)
    return n / (time.perf_counter() - t0)
