"""What augmentation does, measured: does a transformation keep the label, what does it do to training, and
where should it run.

- ``classifier(name)``: a trained classifier that takes images in [0, 1]: "shapesnet" (chapter 6's, trained
  offline and cached) or "digits" (a small CNN on scikit-learn's 8×8 digits, trained here in seconds and
  cached), or any ``nn.Module`` with its preprocessing.
- ``label_preservation``: the classifier's accuracy on a test set transformed at each magnitude of one
  parameter, overall and per class (a 6 rotated by 180° is read as a 9).
- ``training_comparison``: a small CNN trained on a few hundred images with no augmentation and with several
  policies; training and test error per epoch, and test-time augmentation on the trained models.
- ``augmentation_throughput``: images per second of the conventional CPU pipeline (PIL and ``DataLoader``)
  and of batched augmentation on the device (``cnnviz.train.DeviceLoader``).
"""
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from cnnviz.augmentation import AugmentationError, augment, random_transform

__all__ = ["Classifier", "classifier", "digits_net", "held_out_set", "Preservation", "label_preservation",
           "POLICIES", "ComparisonConfig", "EMBEDDED_COMPARISON", "Comparison", "training_comparison",
           "cached_training_comparison", "Throughput", "augmentation_throughput"]


@dataclass
class Classifier:
    """A trained classifier: ``model`` (eval mode, CPU), ``size`` (its input side), ``mean``/``std`` (per channel,
    for inputs in [0, 1]), ``channels`` and ``class_names``. ``probabilities(images)`` takes (B, C, H, W) in
    [0, 1] of any size (resized to ``size``; RGB made grey for a grey model and the reverse)."""
    model: nn.Module
    size: int
    mean: tuple
    std: tuple
    channels: int
    class_names: list
    name: str

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        x = images if images.dim() == 4 else images[None]
        if x.shape[1] != self.channels:
            x = x.mean(1, keepdim=True) if self.channels == 1 else x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return torch.softmax(self.model((x - mean) / std), 1)


class _Standardise(nn.Module):
    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) / self.std


class _DigitsNet(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * 16, 10))


_DIGITS_RECIPE = {"epochs": 40, "batch_size": 64, "lr": 3e-3, "format": "cnnviz digits 1"}


def digits_net(*, seed: int = 0, cache: bool = True) -> Classifier:
    """A small CNN trained on the training part of scikit-learn's digits (8×8, grey; Adam, 40 epochs, about
    5 s on a CPU core), cached in ``cnnviz.data.cache_dir() / "digits"`` (a damaged file is trained again)."""
    from cnnviz.data import cache_dir, digits_tensors
    from cnnviz.runtime import cpu_threads

    d = digits_tensors()
    x = d["train_images"].float() / 255
    mean, std = float(x.mean()), float(x.std())
    key = hashlib.sha256(json.dumps({**_DIGITS_RECIPE, "seed": seed}, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / "digits" / f"digitsnet-{key}.pt"
    model = _DigitsNet()
    state = None
    if cache and path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception:  # noqa: BLE001  a damaged or outdated file: train again
            state = None
    if state is None:
        with torch.random.fork_rng(devices=[]), cpu_threads(1):
            torch.default_generator.manual_seed(seed)
            model = _DigitsNet()
            opt = torch.optim.Adam(model.parameters(), lr=_DIGITS_RECIPE["lr"])
            xn, y = (x - mean) / std, d["train_labels"]
            for _ in range(_DIGITS_RECIPE["epochs"]):
                for idx in torch.randperm(len(y)).split(_DIGITS_RECIPE["batch_size"]):
                    opt.zero_grad()
                    F.cross_entropy(model(xn[idx]), y[idx]).backward()
                    opt.step()
        if cache:
            _save(model.state_dict(), path)
    return Classifier(model.eval(), 8, (mean,), (std,), 1, list(d["classes"]), "digits")


def _save(state, path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"Could not cache in {path.parent} ({err}); it will be computed again next time.",
                      stacklevel=3)


def classifier(name="shapesnet", *, progress: bool = False) -> Classifier:
    """"shapesnet" (6 shapes, 64×64 RGB, chapter 6's offline network) or "digits" (10 digits, 8×8 grey)."""
    if isinstance(name, Classifier):
        return name
    if name == "digits":
        return digits_net()
    if name == "shapesnet":
        from cnnviz.vismodels import vision_model

        vm = vision_model("shapesnet", progress=progress)
        pre = vm.model.cnnviz_preprocess
        return Classifier(vm.model.eval(), pre.size, tuple(pre.mean), tuple(pre.std), 3, list(vm.class_names),
                          "shapesnet")
    raise AugmentationError(f"Unknown classifier {name!r}: use 'shapesnet', 'digits' or a cnnviz Classifier.")


def held_out_set(name: str, n: int = 600, *, seed: int = 1):
    """``(images, labels)`` to measure on: "digits", the test part of the digits ((359, 1, 8, 8) in [0, 1]);
    "shapesnet", ``n`` new shapes images (64×64 RGB) from a seed no training set uses."""
    if name == "digits":
        from cnnviz.data import digits_tensors

        d = digits_tensors()
        return d["test_images"].float() / 255, d["test_labels"]
    if name == "shapesnet":
        from cnnviz.shapes import make_shapes

        images, labels = make_shapes(n, size=64, seed=10_000 + seed)
        return images.float() / 255, labels
    raise AugmentationError(f"No test set called {name!r}: use 'digits' or 'shapesnet'.")


@dataclass(frozen=True)
class Preservation:
    """Accuracy of a classifier on a test set transformed by ``key`` with ``param`` at each of ``values`` (the
    other parameters at their identity): ``accuracy`` (V,), ``per_class`` (V, K), and ``confusion`` (V, K, K)
    (row: true class, column: predicted)."""
    key: str
    param: str
    values: tuple
    accuracy: np.ndarray
    per_class: np.ndarray
    confusion: np.ndarray
    class_names: list


def label_preservation(clf, images: torch.Tensor, labels: torch.Tensor, key: str, param: str, values,
                       **fixed) -> Preservation:
    """How well ``clf`` (a ``Classifier`` or its name) still recognises ``images`` after ``augment(image, key,
    param=value, **fixed)``, for each of ``values``."""
    clf = classifier(clf)
    values = tuple(float(v) for v in values)
    k = len(clf.class_names)
    acc, per, conf = [], [], []
    for v in values:
        x = augment(images, key, **{**fixed, param: v})
        pred = clf.probabilities(x).argmax(1)
        m = torch.zeros(k, k, dtype=torch.long)
        m.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
        conf.append(m.numpy())
        acc.append(float((pred == labels).float().mean()))
        per.append((m.diagonal() / m.sum(1).clamp_min(1)).numpy())
    return Preservation(key, param, values, np.array(acc), np.array(per), np.array(conf), list(clf.class_names))


# ----------------------------------------------------------------------------- augmentation in training


#: The policies of the training comparison: name → the transformations (keys and magnitudes) drawn per image.
POLICIES = {
    "none": [],
    "shift + rotate": [("translate", {"dx": 0.15, "dy": 0.15}), ("rotate", {"angle": 15})],
    "shift + rotate + contrast": [("translate", {"dx": 0.15, "dy": 0.15}), ("rotate", {"angle": 15}),
                                  ("contrast", {"factor": 1.5})],
    "TrivialAugment": "trivial",
    "+ mirror (changes labels)": [("hflip", {"p": 1}), ("translate", {"dx": 0.15, "dy": 0.15}),
                                  ("rotate", {"angle": 15})],
}


def _policy_transform(policy):
    if policy == "trivial":
        return v2.Compose([v2.ToDtype(torch.uint8, scale=True), v2.TrivialAugmentWide(),
                           v2.ToDtype(torch.float32, scale=True)])
    return v2.Compose([random_transform(k, **p) for k, p in policy]) if policy else v2.Identity()


@dataclass(frozen=True)
class ComparisonConfig:
    """A small training set: the first ``n_train`` of the digits' training images (the test set is the digits'
    359 test images), the CNN of ``digits_net`` trained ``epochs`` epochs with Adam (``lr``, batch
    ``batch_size``), once per seed of ``seeds``."""
    n_train: int = 300
    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    seeds: tuple = (0, 1, 2)


EMBEDDED_COMPARISON = ComparisonConfig()
_COMPARISON_FORMAT = "comparison-2"  # part of the cache key: bump it when what a comparison measures changes


@dataclass
class Comparison:
    """``curves[policy]``: ``{"train_error": [...], "test_error": [...]}`` per epoch (mean over the seeds;
    training error measured on the un-augmented training images); ``tta[policy]``: test error with test-time
    augmentation (the mean of the probabilities of the image and four copies shifted by one pixel) after
    training."""
    config: ComparisonConfig
    curves: dict
    tta: dict
    seconds: float = 0.0

    def final(self, policy: str, key: str = "test_error") -> float:
        return self.curves[policy][key][-1]


def _error(model, x, y) -> float:
    from cnnviz.probe import eval_mode

    with eval_mode(model), torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (B, C, H, W) moved ``dy`` pixels down and ``dx`` right, filled with zeros (not wrapped around)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


def training_comparison(config: ComparisonConfig = EMBEDDED_COMPARISON, *, policies=None) -> Comparison:
    """Train the small CNN of ``config`` once per policy (``POLICIES`` by default) and seed: each epoch, every
    training image is augmented afresh (per image, on the CPU, through ``torchvision.transforms.v2``). The
    mirror policy is there to show what a transformation that does not keep the label does."""
    from cnnviz.runtime import cpu_threads

    policies = POLICIES if policies is None else policies
    with cpu_threads(1):  # small networks: one thread is faster than two busy ones (and the same numbers)
        return _compare(config, policies)


def _compare(config, policies) -> Comparison:
    from cnnviz.data import digits_tensors
    from cnnviz.runtime import flush_denormals

    d = digits_tensors()
    train_x, train_y = d["train_images"][:config.n_train].float() / 255, d["train_labels"][:config.n_train]
    test_x, test_y = d["test_images"].float() / 255, d["test_labels"]
    mean, std = float(train_x.mean()), float(train_x.std())
    start = time.perf_counter()
    curves, tta = {}, {}
    for name, policy in policies.items():
        runs, tta_runs = [], []
        for seed in config.seeds:
            with torch.random.fork_rng(devices=[]), flush_denormals():
                torch.default_generator.manual_seed(seed)
                model = nn.Sequential(_Standardise(mean, std), _DigitsNet())
                opt = torch.optim.Adam(model.parameters(), lr=config.lr)
                transform = _policy_transform(policy)
                train_err, test_err = [], []
                for _ in range(config.epochs):
                    xs = torch.stack([transform(img) for img in train_x])          # a fresh draw per image
                    for idx in torch.randperm(len(train_y)).split(config.batch_size):
                        opt.zero_grad()
                        F.cross_entropy(model(xs[idx]), train_y[idx]).backward()
                        opt.step()
                    train_err.append(_error(model, train_x, train_y))
                    test_err.append(_error(model, test_x, test_y))
                model.eval()
                with torch.no_grad():  # test-time augmentation: the image and four one-pixel shifts of it
                    p = sum(torch.softmax(model(_shift(test_x, dy, dx)), 1)
                            for dy, dx in [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0)])
                tta_runs.append(float((p.argmax(1) != test_y).float().mean()))
            runs.append((train_err, test_err))
        curves[name] = {"train_error": np.mean([r[0] for r in runs], 0).tolist(),
                        "test_error": np.mean([r[1] for r in runs], 0).tolist()}
        tta[name] = float(np.mean(tta_runs))
    return Comparison(config, curves, tta, time.perf_counter() - start)


def cached_training_comparison(config: ComparisonConfig = EMBEDDED_COMPARISON, *, cache=None,
                               refresh: bool = False) -> Comparison:
    """``training_comparison(config)`` from ``cache`` (default ``cnnviz.data.cache_dir() / "augmentation"``),
    computed and stored (JSON, atomically) when missing, damaged or ``refresh``."""
    from cnnviz.data import cache_dir

    key = hashlib.sha256((_COMPARISON_FORMAT + json.dumps(asdict(config), sort_keys=True) + json.dumps(
        {k: v for k, v in POLICIES.items()}, sort_keys=True, default=str)).encode()).hexdigest()[:16]
    path = (Path(cache) if cache is not None else cache_dir() / "augmentation") / f"comparison-{key}.json"
    if path.exists() and not refresh:
        try:
            d = json.loads(path.read_text())
            return Comparison(ComparisonConfig(**{**d["config"], "seeds": tuple(d["config"]["seeds"])}),
                              d["curves"], d["tta"], d["seconds"])
        except (ValueError, KeyError, TypeError):
            pass
    result = training_comparison(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"config": asdict(config), "curves": result.curves, "tta": result.tta,
                       "seconds": result.seconds}, f)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"Could not store the comparison in {path.parent} ({err}).", stacklevel=2)
    return result


# ----------------------------------------------------------------------------- where augmentation runs


@dataclass(frozen=True)
class Throughput:
    """Images per second of augmentation alone (random crop with 4 pixels of padding, horizontal flip, and
    normalisation to float) for ``n`` images of 3×``size``×``size``: through PIL and a ``DataLoader`` with 0 and
    with ``workers`` worker processes, and batched on ``device`` by ``cnnviz.train.DeviceLoader``; and batched
    with PCA colour augmentation added (``device_batched_colour``)."""
    n: int
    size: int
    pil_loader: float
    pil_workers: float
    workers: int
    device_batched: float
    device: str
    device_batched_colour: float = math.nan


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def augmentation_throughput(n: int = 5000, size: int = 32, *, batch_size: int = 128, workers: int = 2,
                            device=None) -> Throughput:
    """Measure ``Throughput`` (one pass over ``n`` random images each way, after a short warm-up; the batched
    pass on one CPU thread when the device is the CPU, like the PIL pipeline without workers)."""
    from torchvision import transforms as T

    from cnnviz.runtime import device as best_device

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g, device=g.device)
    labels = torch.randint(0, 10, (n,), generator=g, device=g.device)
    pil = T.Compose([T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip(), T.ToTensor(),
                     T.Normalize((0.5,) * 3, (0.25,) * 3)])
    hwc = images.permute(0, 2, 3, 1).numpy()

    def pil_rate(num_workers):
        loader = torch.utils.data.DataLoader(_PILDataset(hwc, labels, pil), batch_size=batch_size, shuffle=True,
                                             num_workers=num_workers)
        t = time.perf_counter()
        for _ in loader:
            pass
        return n / (time.perf_counter() - t)

    from cnnviz.runtime import cpu_threads

    dev = torch.device(device) if device is not None else best_device()
    from cnnviz.augmentation import RandomPCAColour, default_basis

    with cpu_threads(1 if dev.type == "cpu" else None):  # one core each: two busy threads can be 4–10× slower
        batched = _batched_rate(images, labels, batch_size, dev)
        colour = _batched_rate(images, labels, batch_size, dev, RandomPCAColour(default_basis()))
    return Throughput(n, size, pil_rate(0), pil_rate(workers) if workers else math.nan, workers, batched, str(dev),
                      colour)


def _batched_rate(images, labels, batch_size, dev, transform=None) -> float:
    from cnnviz.train import DeviceLoader

    n = len(images)
    loader = DeviceLoader(images, labels, batch_size=batch_size, mean=(0.5,) * 3, std=(0.25,) * 3, device=dev,
                          augment=True, generator=torch.Generator().manual_seed(1), transform=transform)
    for _ in loader:  # warm-up (and the copy to the device)
        break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t = time.perf_counter()
    for x, _ in loader:
        pass
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return n / (time.perf_counter() - t)
