"""Transfer learning as computation: features at any layer, linear probes, fine-tuning with explicit choices.

Works on any ``nn.Module``: the zoo's models, torchvision's, the reader's own.

- ``extract_features(model, images, layer)``: the outputs of one layer (by its
  dotted name) for a set of images, batched on the model's device, in eval
  mode, the forward pass stopped at that layer; ``cached_features`` keeps them
  on disk, keyed on the model's weights, the layer and the images.
- ``linear_probe(train_x, train_y, test_x, test_y)``: a logistic-regression
  classifier (scikit-learn's) on standardised features, and its accuracy.
- ``find_head`` / ``replace_head``: the classifier layer, and a new one for
  any number of classes; ``blocks``: the model's layers in order, each with
  its batch norm, so "train the last k blocks" means something for any model.
- ``set_trainable(model, trainable)``: which layers train; frozen ones get
  ``requires_grad=False`` and their batch-norm layers stay in eval mode even
  when the model is put in training mode (their statistics do not drift);
  ``fine_tuner(...)``: a ``cnnviz.train.Trainer`` with a learning rate per
  group (smaller for pretrained layers), checkpoints, NaN guard and Stop.

``cnnviz.transfer_study`` measures the lecture's two-by-two table with these.
"""
import hashlib
import types
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.probe import LayerNotFound, eval_mode, get_layer, model_device, preprocessing

__all__ = ["TransferError", "feature_layers", "extract_features", "cached_features", "Probe", "linear_probe",
           "find_head", "replace_head", "head_from_probe", "blocks", "Freezing", "set_trainable", "frozen_batch_norms",
           "param_groups", "fine_tuner", "reinitialised", "as_uint8"]

_FEATURES_FORMAT = "cnnviz features 1"
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


class TransferError(ValueError):
    """A transfer-learning request that cannot be done as asked; the message says what to do instead."""


class _Captured(Exception):
    """Raised by the capturing hook to end a forward pass at the layer whose output was wanted."""


# ----------------------------------------------------------------------------- images


def as_uint8(images) -> torch.Tensor:
    """(N, C, H, W) uint8 from uint8 or [0, 1] float images, (N, C, H, W) or (N, H, W, C)."""
    from cnnviz.train import _as_uint8_images

    return _as_uint8_images(images, "images")


def _normalised(x: torch.Tensor, model: nn.Module, device) -> torch.Tensor:
    """uint8 (B, C, H, W) on the CPU → the model's input: ``(x / 255 − mean) / std`` on ``device``."""
    pre = preprocessing(model)
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return (x.to(device).float() / 255 - mean) / std


# ----------------------------------------------------------------------------- features


def feature_layers(model: nn.Module) -> List[str]:
    """The dotted names a feature can be taken from: every named module but the model itself."""
    return [n for n, _ in model.named_modules() if n]


def _pooled(out: torch.Tensor, pool) -> torch.Tensor:
    """A layer's output (B, C, H, W) or (B, D) as (B, features): flattened (``pool=None``), averaged over space
    (``"avg"``), or averaged down to a k×k grid first (``pool=k``)."""
    if out.ndim <= 2 or pool is None:
        return out.flatten(1)
    if pool == "avg":
        return out.flatten(2).mean(2)
    return F.adaptive_avg_pool2d(out, int(pool)).flatten(1)


def _check_pool(pool):
    if pool is None or pool == "avg" or (isinstance(pool, int) and not isinstance(pool, bool) and pool >= 1):
        return pool
    raise TransferError(f"pool is None (flatten the layer's output), 'avg' (average over space) or a whole number "
                        f"k ≥ 1 (average down to a k×k grid); got {pool!r}.")


@torch.no_grad()  # not inference_mode: the features are ordinary tensors a torch classifier can train on
def extract_features(model: nn.Module, images, layer, *, pool=None, batch_size: int = 256,
                     progress: bool = False):
    """The output of ``layer`` for every image, as (N, features) float32 on the CPU.

    ``images``: (N, C, H, W) uint8 or [0, 1] floats, normalised here with the
    model's preprocessing (``cnnviz.probe.preprocessing``: its
    ``cnnviz_preprocess``, else ImageNet's statistics). Batches of
    ``batch_size`` run on the model's device in eval mode (flags restored
    after); each forward pass stops once ``layer`` has run, so early layers cost
    only what precedes them. ``pool``: see ``_pooled``. ``progress``: a tqdm bar.
    ``layer`` may be a list of names: then one pass serves them all and the
    result is a dict name → features. The result does not depend on ``batch_size``.
    A module called several times in one forward pass (a ReLU object reused
    in a residual block) gives its first call's output.
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    if not names:
        raise TransferError("Give at least one layer name.")
    modules = {}
    for name in names:
        try:
            modules[name] = get_layer(model, name)
        except LayerNotFound as err:
            raise TransferError(str(err)) from None
    pool = _check_pool(pool)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TransferError(f"batch_size is a whole number of at least 1, got {batch_size!r}.")
    x = as_uint8(images)
    device = model_device(model)
    found = {}

    def hook_for(name):
        def hook(_module, _inputs, output):
            found[name] = output
            if len(found) == len(names):
                raise _Captured
        return hook

    chunks = {name: [] for name in names}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(x), unit="img", desc=f"features at {', '.join(names)}")
    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items()]
    try:
        with eval_mode(model):
            for start in range(0, len(x), batch_size):
                found.clear()
                try:
                    model(_normalised(x[start:start + batch_size], model, device))
                except _Captured:
                    pass
                for name in names:
                    if name not in found:
                        raise TransferError(f"The layer {name!r} did not run in the model's forward pass, so it "
                                            "has no output to take features from; pick a layer that forward() "
                                            "calls.")
                    out = found[name]
                    if not isinstance(out, torch.Tensor):
                        raise TransferError(f"The layer {name!r} returns {type(out).__name__}, not a tensor; "
                                            "take features from a layer inside it or after it.")
                    chunks[name].append(_pooled(out.float(), pool).cpu())
                if bar is not None:
                    bar.update(min(batch_size, len(x) - start))
    finally:
        for h in handles:
            h.remove()
        if bar is not None:
            bar.close()
    result = {name: torch.cat(c) for name, c in chunks.items()}
    return result[layer] if isinstance(layer, str) else result


def _features_key(model, x, layer, pool) -> str:
    from cnnviz.train import _digest

    h = hashlib.sha256()
    h.update(repr((_FEATURES_FORMAT, repr(model), layer, pool, preprocessing(model))).encode())
    h.update(_digest(model.state_dict()).encode())
    h.update(repr((tuple(x.shape), str(x.dtype))).encode())
    h.update(x.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def cached_features(model: nn.Module, images, layer: str, *, pool=None, cache=True, batch_size: int = 256,
                    progress: bool = False) -> torch.Tensor:
    """``extract_features``, kept on disk: computed once per model weights, layer, pooling and images.

    The file is ``cache_dir()/features/<key>.pt``, where the key hashes the
    model's state dict, the layer, the pooling, the preprocessing and the
    image bytes: new weights or other images mean another file. Written
    atomically, checked by a SHA-256 digest, read with ``weights_only=True``;
    a damaged file is recomputed with a warning. ``cache``: True (the default
    folder), a folder, or False (no file).
    """
    from cnnviz.data import cache_dir
    from cnnviz.train import _digest, _load_verified, _save_atomically

    x = as_uint8(images)
    if not isinstance(layer, str):
        raise TransferError(f"cached_features takes one layer name, got {layer!r}.")
    try:  # the same error as extract_features, before hashing anything
        get_layer(model, layer)
    except LayerNotFound as err:
        raise TransferError(str(err)) from None
    if cache is False or cache is None:
        return extract_features(model, x, layer, pool=pool, batch_size=batch_size, progress=progress)
    from pathlib import Path

    folder = (cache_dir() / "features") if cache is True else Path(cache)
    path = folder / f"{_features_key(model, x, layer, _check_pool(pool))}.pt"
    if path.exists():
        payload, why = _load_verified(path, _FEATURES_FORMAT)
        if payload is not None:
            return payload["features"]
        warnings.warn(f"The cached features {path} are damaged ({why}); computing them again.", stacklevel=2)
    feats = extract_features(model, x, layer, pool=pool, batch_size=batch_size, progress=progress)
    payload = {"format": _FEATURES_FORMAT, "layer": layer, "features": feats}
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomically({**payload, "sha256": _digest(payload)}, path)
    return feats


# ----------------------------------------------------------------------------- linear probe


@dataclass
class Probe:
    """A linear probe's result: ``accuracy`` on the test features, ``train_accuracy``, the fitted
    scikit-learn ``classifier`` (a pipeline: standardisation, then logistic regression), ``features`` (their
    number) and ``predictions`` (test labels predicted)."""
    accuracy: float
    train_accuracy: float
    classifier: object
    features: int
    predictions: torch.Tensor


def linear_probe(train_x, train_y, test_x, test_y, *, C: float = 1.0, max_iter: int = 3000) -> Probe:
    """Fit a logistic-regression classifier on ``train_x`` (N, D) → ``train_y`` and measure it on the test set.

    Features are standardised (zero mean, unit variance per feature, from the
    training set), then scikit-learn's ``LogisticRegression`` (multinomial,
    L2 penalty ``1/C``, L-BFGS) fits them: the "linear classifier on top" of
    the lectures. Features that a linear boundary separates with a clear margin are separated (100 %).

    With more features than images (raw pixels: 12,288 numbers for a 64×64
    photo), the standardised features are first rotated onto the principal
    axes of the training set (PCA keeping every component): an L2-penalised
    linear model's weights lie in the span of its training points, so this
    gives the same classifier in far fewer dimensions, and fits in a second
    instead of minutes.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = [torch.as_tensor(v).float().flatten(1).numpy() if torch.as_tensor(v).ndim > 1 else None
          for v in (train_x, test_x)]
    if xs[0] is None or xs[1] is None:
        raise TransferError("train_x and test_x are (N, features) arrays, one row per image.")
    ys = [torch.as_tensor(v).long().numpy() for v in (train_y, test_y)]
    for x, y, split in zip(xs, ys, ("train", "test")):
        if len(x) != len(y) or len(x) == 0:
            raise TransferError(f"{split}_x has {len(x)} rows but {split}_y {len(y)} labels; give one label per "
                                "row, and at least one row.")
    if xs[0].shape[1] != xs[1].shape[1]:
        raise TransferError(f"The training features have {xs[0].shape[1]} columns and the test features "
                            f"{xs[1].shape[1]}; take both from the same layer.")
    if len(np.unique(ys[0])) < 2:
        raise TransferError("The training set has only one class; a classifier needs at least two.")
    if not np.isfinite(xs[0]).all() or not np.isfinite(xs[1]).all():
        raise TransferError("The features contain NaN or infinite values; check the model and its input.")
    if not C > 0:
        raise TransferError(f"C (the inverse strength of the L2 penalty) must be positive, got {C!r}.")
    n, d = xs[0].shape
    steps = [StandardScaler()]
    if d > n:
        from sklearn.decomposition import PCA

        steps.append(PCA(n_components=n, svd_solver="full"))
    clf = make_pipeline(*steps, LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings():  # tiny training sets stop at max_iter on separable data: harmless here
        warnings.filterwarnings("ignore", message=".*(converge|max_iter).*")
        clf.fit(xs[0], ys[0])
    predicted = clf.predict(xs[1])
    return Probe(float((predicted == ys[1]).mean()), float(clf.score(xs[0], ys[0])), clf, xs[0].shape[1],
                 torch.from_numpy(predicted.astype("int64")))


# ----------------------------------------------------------------------------- heads and blocks


def find_head(model: nn.Module, head: Optional[str] = None) -> str:
    """The dotted name of the model's classifier layer: ``head`` when given (checked), else the last
    ``nn.Linear`` the model registers (``fc`` of a ResNet, ``classifier.6`` of VGG-16, ``classifier.fc`` of
    ShapesNet)."""
    if head is not None:
        try:
            get_layer(model, head)
        except LayerNotFound as err:
            raise TransferError(str(err)) from None
        return head
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TransferError(f"{type(model).__name__} has no nn.Linear layer to take as its head (its classifier "
                            "may be a convolution, as in NiN or SqueezeNet). Name the head yourself: "
                            "head='classifier.1', say (any name of cnnviz.transfer.feature_layers(model)).")
    return linears[-1]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def replace_head(model: nn.Module, num_classes: int, *, head: Optional[str] = None,
                 generator: torch.Generator = None) -> str:
    """Put a new classifier for ``num_classes`` classes in place of the head (``find_head``), in place;
    return its name. A linear head becomes ``nn.Linear(in_features, num_classes)`` on the same device, with
    torch's default initialisation (from ``generator`` when given: the caller's random state is untouched);
    a 1×1 convolution head becomes one with ``num_classes`` filters."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise TransferError(f"num_classes is the number of classes of the new task, at least 2; got {num_classes!r}.")
    name = find_head(model, head)
    old = model.get_submodule(name)
    device = next(old.parameters()).device if any(True for _ in old.parameters()) else None
    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            seed = torch.randint(0, 2**62, (), generator=generator, device=generator.device)
            torch.default_generator.manual_seed(int(seed))
        if isinstance(old, nn.Linear):
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d) and old.kernel_size == (1, 1):
            new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
        else:
            raise TransferError(f"The head {name!r} is a {type(old).__name__}; cnnviz replaces an nn.Linear or a "
                                "1×1 nn.Conv2d. Name the classifier layer with head='...'.")
    _set_module(model, name, new.to(device) if device is not None else new)
    return name


def _expandable(module: nn.Module) -> bool:
    return isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def blocks(model: nn.Module, *, head: Optional[str] = None) -> List[Tuple[str, ...]]:
    """The model's trainable layers in order, as lists of dotted names, the head last.

    Containers (``nn.Sequential``, ``ModuleList``, ``ModuleDict``, and the
    model itself) are opened; any other module with parameters is one block
    (a convolution, a residual block of torchvision's ResNet, a dense layer).
    A normalisation layer joins the block before it, so "the last k blocks"
    keeps each convolution with its batch norm. ShapesNet: conv1 … conv4 and
    the head; ResNet-18: conv1 (with bn1), the eight residual blocks, ``fc``.
    """
    head = find_head(model, head)
    found: List[List[str]] = []

    def walk(prefix: str, module: nn.Module):
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if full == head:
                continue
            if head.startswith(full + ".") or _expandable(child):
                walk(full, child)
            elif any(True for _ in child.parameters()):
                if isinstance(child, _NORMS) and found:
                    found[-1].append(full)
                else:
                    found.append([full])

    walk("", model)
    return [tuple(b) for b in found] + [(head,)]


def head_from_probe(model: nn.Module, probe: Probe, *, head: Optional[str] = None) -> str:
    """Set the linear head's weights (in place) to the classifier ``probe`` learnt on the features that feed
    it, so that the network computes what the probe does; return the head's name.

    Fine-tuning from this head instead of a random one is "LP-FT" (Kumar et al.
    2022): a random head's first, large gradients would scramble the
    pretrained features before it learns anything. The probe's
    standardisation (and rotation, when it has one) is folded in:
    ``W = A / σ``, ``b = c − W·μ`` for the probe's coefficients ``A`` and intercept ``c``.
    """
    import numpy as np

    name = find_head(model, head)
    layer = model.get_submodule(name)
    steps = dict(probe.classifier.named_steps)
    scaler, logistic = steps["standardscaler"], steps["logisticregression"]
    coef = np.asarray(logistic.coef_, dtype=np.float64)                       # (K or 1, d')
    if "pca" in steps:                                                         # back from the principal axes
        pca = steps["pca"]
        coef, intercept = coef @ pca.components_, logistic.intercept_ - coef @ pca.components_ @ pca.mean_
    else:
        intercept = np.asarray(logistic.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:                                                     # two classes: logits ±z/2
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    if not isinstance(layer, nn.Linear) or layer.weight.shape != coef.shape:
        raise TransferError(f"The probe classifies {coef.shape[1]} features into {coef.shape[0]} classes, but the "
                            f"head {name!r} is {layer}; give the probe of the layer that feeds the head, and "
                            "replace_head first for a new number of classes.")
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    w = coef / scale
    b = intercept - w @ np.asarray(scaler.mean_, dtype=np.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(b))
    return name


def _frozen_train(self, mode: bool = True):
    """``nn.Module.train`` for a frozen normalisation layer: it stays in eval mode."""
    return nn.Module.train(self, False)


def frozen_batch_norms(model: nn.Module) -> List[str]:
    """The normalisation layers ``set_trainable`` keeps in eval mode."""
    return [n for n, m in model.named_modules() if getattr(m, "_cnnviz_frozen", False)]


@dataclass
class Freezing:
    """What ``set_trainable`` did: ``trained`` and ``frozen`` blocks (lists of names, from ``blocks``),
    ``head`` (its name), ``frozen_norms`` (normalisation layers kept in eval mode), ``trainable_parameters``
    and ``frozen_parameters`` (counts)."""
    trained: List[Tuple[str, ...]]
    frozen: List[Tuple[str, ...]]
    head: str
    frozen_norms: List[str]
    trainable_parameters: int
    frozen_parameters: int


def set_trainable(model: nn.Module, trainable="head", *, head: Optional[str] = None) -> Freezing:
    """Choose which layers of ``model`` train (in place) and freeze the others.

    ``trainable``: ``"head"`` (the classifier only: a linear probe trained end
    to end), a whole number k (the head and the last k blocks of ``blocks``),
    ``"all"``, or a list of dotted names (those modules and everything inside
    them). Frozen parameters get ``requires_grad=False``; frozen normalisation
    layers are put in eval mode and stay there when ``model.train()`` is
    called, so their running statistics do not change while the rest trains
    (the pitfall of freezing a network's weights but not its batch norm).
    Calling it again first undoes what a previous call did.
    """
    for m in model.modules():  # undo a previous call
        if getattr(m, "_cnnviz_frozen", False):
            del m.train
            del m._cnnviz_frozen
    all_blocks = blocks(model, head=head)
    head_name = all_blocks[-1][0]
    if trainable == "all":
        chosen = [m for m in model.modules()]
        names = [b for b in all_blocks]
    else:
        if trainable == "head":
            trainable = 0
        if isinstance(trainable, bool):
            trainable = None
        if isinstance(trainable, int):
            k = trainable
            if not 0 <= k <= len(all_blocks) - 1:
                raise TransferError(f"trainable={k} asks for the last {k} blocks, but {type(model).__name__} has "
                                    f"{len(all_blocks) - 1} before its head; give 0 to {len(all_blocks) - 1}, "
                                    "'head' or 'all'.")
            names = all_blocks[len(all_blocks) - 1 - k:]
        elif isinstance(trainable, (list, tuple)) and all(isinstance(n, str) for n in trainable):
            if not trainable:
                raise TransferError("trainable=[] freezes every layer, and then there is nothing to train. Give "
                                    "'head' to train only the classifier, a number of blocks, 'all', or names.")
            for n in trainable:
                try:
                    get_layer(model, n)
                except LayerNotFound as err:
                    raise TransferError(str(err)) from None
            names = [tuple(trainable)]
        else:
            raise TransferError(f"trainable is 'head', 'all', a number of blocks (0 to {len(all_blocks) - 1}) or a "
                                f"list of layer names; got {trainable!r}.")
        chosen = [m for group in names for n in group for m in model.get_submodule(n).modules()]
    chosen_ids = {id(p) for m in chosen for p in m.parameters()}
    n_train = n_frozen = 0
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen_ids)
        if id(p) in chosen_ids:
            n_train += p.numel()
        else:
            n_frozen += p.numel()
    chosen_modules = {id(m) for m in chosen}
    norms = []
    for n, m in model.named_modules():
        if isinstance(m, _NORMS) and id(m) not in chosen_modules:
            m.train = types.MethodType(_frozen_train, m)
            m._cnnviz_frozen = True
            m.eval()
            norms.append(n)
    trained = all_blocks if trainable == "all" else [b for b in all_blocks
                                                     if any(id(model.get_submodule(n)) in chosen_modules for n in b)]
    frozen = [b for b in all_blocks if b not in trained]
    return Freezing(trained, frozen, head_name, norms, n_train, n_frozen)


def param_groups(model: nn.Module, *, lr: float, backbone_lr: float, new: Sequence[str] = ()) -> list:
    """Two groups for the optimiser: the parameters of the modules named in ``new`` (a fresh head) at ``lr``,
    every other trainable parameter (pretrained layers) at ``backbone_lr``."""
    new_ids = {id(p) for n in new for p in model.get_submodule(n).parameters()}
    fresh = [p for p in model.parameters() if p.requires_grad and id(p) in new_ids]
    old = [p for p in model.parameters() if p.requires_grad and id(p) not in new_ids]
    groups = []
    if fresh:
        groups.append({"params": fresh, "lr": lr, "name": "new layers"})
    if old:
        groups.append({"params": old, "lr": backbone_lr, "name": "pretrained layers"})
    return groups


def _check_lr(value, name: str, zero_ok: bool) -> float:
    import math

    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if zero_ok else value > 0)
    if not ok:
        need = "0 or a positive number" if zero_ok else "a positive number such as 0.01"
        raise TransferError(f"{name} must be {need}, got {value!r}.")
    return float(value)


def fine_tuner(model: nn.Module, data, *, trainable="head", lr: float = 0.01, backbone_lr: float = None,
               new_head: bool = True, head: Optional[str] = None, head_init: Probe = None, epochs: int = 1,
               seed: int = 0, **trainer_kwargs):
    """A ``cnnviz.train.Trainer`` that fine-tunes ``model`` (in place) on ``data`` (a ``TensorData``).

    ``new_head``: replace the head with one for ``data.num_classes`` classes
    (trained at ``lr``), started from ``head_init`` (a ``Probe`` of the features
    that feed the head: ``head_from_probe``) when given, else at random.
    ``trainable``: as ``set_trainable`` (with a list of names, the new head
    trains too). ``backbone_lr``: the learning rate of the pretrained layers
    that train (default ``lr / 10``; 0 keeps their weights where they are, but
    the batch-norm layers among them still update their running statistics:
    leave them out of ``trainable`` to keep those too). The data's normalisation should be the
    one the weights were trained with (``TensorData.from_arrays(...,
    mean=pre.mean, std=pre.std)``). The model is put in training mode
    (frozen normalisation layers stay in eval mode). Other keywords go to the
    ``Trainer`` (``batch_size``, ``augment``, ``checkpoint``, ``on_log``…). Returns the
    trainer (``.fit()``, ``.stop()``) with ``.freezing`` (a ``Freezing``).
    """
    from cnnviz.train import Trainer

    lr = _check_lr(lr, "lr (the learning rate of the new head)", zero_ok=False)
    backbone_lr = lr / 10 if backbone_lr is None else _check_lr(backbone_lr, "backbone_lr", zero_ok=True)
    new = []
    if new_head:
        new.append(replace_head(model, data.num_classes, head=head,
                                generator=torch.Generator().manual_seed(int(seed))))
    if head_init is not None:
        head_from_probe(model, head_init, head=head)
    if new and isinstance(trainable, (list, tuple)) and new[0] not in trainable:
        trainable = list(trainable) + [new[0]]      # a fresh head must learn, whatever else trains
    freezing = set_trainable(model, trainable, head=head)
    model.train()
    groups = param_groups(model, lr=lr, backbone_lr=backbone_lr, new=new)
    trainer = Trainer(model, data, epochs=epochs, lr=lr, seed=seed, param_groups=groups, **trainer_kwargs)
    trainer.freezing = freezing
    return trainer


def reinitialised(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with fresh random weights: He initialisation (``cnnviz.initialisation``, chapter 9)
    for every convolution and linear layer, normalisation layers reset to γ = 1, β = 0 and fresh statistics.
    The same architecture with nothing learnt: training it is "from scratch"."""
    import copy

    from cnnviz.initialisation import initialise_

    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        if getattr(m, "_cnnviz_frozen", False):
            del m.train
            del m._cnnviz_frozen
        if isinstance(m, _NORMS) and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for p in fresh.parameters():
        p.requires_grad_(True)
    return initialise_(fresh, "kaiming_fan_in", seed=seed)
