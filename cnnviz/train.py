"""Training that people can watch: a small SGD trainer for image classifiers, stepwise and resumable.

- ``TensorData``: a whole image dataset in memory as uint8 tensors (N, C, H, W)
  with int64 labels and its normalisation (per-channel mean and std).
- ``DeviceLoader``: shuffled batches made on the device (the data stays there
  as uint8 when it fits): random crop with zero padding and horizontal flip
  done for the whole batch at once, then conversion to float and
  normalisation. One seeded generator draws every random number of an epoch.
- ``Trainer``: SGD with momentum and weight decay, learning rate divided by 10
  at milestones (He et al. 2016, §4.2). ``step()`` does one optimisation step,
  so several trainers can advance together; ``fit()`` runs to the end or until
  ``stop()``. History, callbacks for live display, a checkpoint after every
  epoch (resuming it reproduces an uninterrupted run exactly), and a guard
  that stops on a NaN or infinite loss.
- ``fit(model, data, **kw)``: the same in one call.

Losses and accuracies stay on the device and are read only at log points, so
a GPU is never made to wait for the host between steps.
"""
import contextlib
import hashlib
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnviz.runtime import device as default_device, synchronize

__all__ = ["TensorData", "DeviceLoader", "draw_epoch", "crop_flip", "Trainer", "History", "fit", "TrainingDiverged",
           "CheckpointError"]

CHECKPOINT_FORMAT = "cnnviz.train checkpoint 1"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``history`` holds everything recorded before; ``step`` is the bad step."""

    def __init__(self, message: str, *, history: "History", step: int):
        super().__init__(message)
        self.history, self.step = history, step


class CheckpointError(RuntimeError):
    """A checkpoint file is damaged or belongs to another run; the message says what to do."""


# ----------------------------------------------------------------------------- data


def _as_uint8_images(x, what: str) -> torch.Tensor:
    """(N, C, H, W) uint8 on the CPU from uint8 or [0, 1] float images, (N, H, W) or channels-last (N, H, W, C)
    arrays, on any device (the loader copies batches to the training device)."""
    x = torch.as_tensor(x).cpu()
    if x.ndim == 3:
        x = x[:, None]                                         # (N, 1, H, W)
    if x.ndim != 4:
        raise ValueError(f"{what} must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}.")
    if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)                              # (N, H, W, C) -> (N, C, H, W)
    if x.is_floating_point():
        lo, hi = (float(v) for v in x.aminmax()) if x.numel() else (0.0, 1.0)
        if lo < 0 or hi > 1:
            raise ValueError(f"{what} are floats in [{lo:.3g}, {hi:.3g}]; give uint8 pixels (0..255) "
                             "or floats in [0, 1].")
        x = (x * 255).round()
    elif x.dtype != torch.uint8:
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
            raise ValueError(f"{what} must hold pixel values 0..255.")
    return x.to(torch.uint8).contiguous()


def _as_labels(y, n: int, what: str) -> torch.Tensor:
    y = torch.as_tensor(y).cpu()   # on the CPU: labels on a GPU would make num_classes a sync every step
    if y.ndim != 1 or len(y) != n or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{what} must be {n} integer class indices (one per image), "
                         f"got {y.dtype} of shape {tuple(y.shape)}.")
    if n and int(y.min()) < 0:
        raise ValueError(f"{what} must be class indices 0, 1, 2 ...; found {int(y.min())}.")
    return y.to(torch.int64).contiguous()


def _channel_stats(images: torch.Tensor, chunk: int = 1024):
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units, without a float copy of all of them."""
    c = images.shape[1]
    s, s2, n = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(torch.float64).div_(255)   # (b, C, H, W)
        s += x.sum(dim=(0, 2, 3))
        s2 += x.square().sum(dim=(0, 2, 3))
        n += x.numel() // c
    mean = s / n
    std = (s2 / n - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


@dataclass(frozen=True, eq=False)
class TensorData:
    """A labelled image dataset held in memory: what ``Trainer`` trains on.

    ``train_images``, ``test_images``: (N, C, H, W) uint8; ``train_labels``,
    ``test_labels``: (N,) int64; ``mean``, ``std``: per channel, in [0, 1]
    pixel units (the network sees ``(pixels / 255 - mean) / std``);
    ``classes``: names, optional. Make one with ``from_arrays``.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple
    std: tuple
    classes: tuple = None

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != torch.uint8 or x.ndim != 4 or len(x) == 0:
                raise ValueError(f"{split}_images must be a non-empty (N, C, H, W) uint8 tensor; "
                                 "use TensorData.from_arrays to convert.")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise ValueError(f"{split}_labels must be {len(x)} int64 labels; use TensorData.from_arrays.")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"Train images are {tuple(self.train_images.shape[1:])} but test images are "
                             f"{tuple(self.test_images.shape[1:])}; they must have the same shape.")
        c = self.train_images.shape[1]
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean and std need one value per channel ({c}), "
                             f"got {len(self.mean)} and {len(self.std)}.")
        if not all(s > 0 for s in self.std):
            raise ValueError(f"std must be positive for every channel, got {tuple(self.std)}.")

    @classmethod
    def from_arrays(cls, train_images, train_labels, test_images, test_labels, *, mean=None, std=None,
                    classes=None) -> "TensorData":
        """From NumPy arrays or tensors: uint8 or [0, 1] float images, (N, C, H, W), (N, H, W, C) or (N, H, W).

        ``mean`` and ``std`` (per channel, [0, 1] units) default to those of
        the training images; a channel with std below 1/255 gets 1/255.
        ``TensorData.from_arrays(**cnnviz.data.cifar10_tensors())`` is CIFAR-10.
        """
        x_train = _as_uint8_images(train_images, "train_images")
        x_test = _as_uint8_images(test_images, "test_images")
        y_train = _as_labels(train_labels, len(x_train), "train_labels")
        y_test = _as_labels(test_labels, len(x_test), "test_labels")
        if mean is None or std is None:
            m, s = _channel_stats(x_train)
            mean = m if mean is None else mean
            std = tuple(max(v, 1 / 255) for v in s) if std is None else std
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        return cls(x_train, y_train, x_test, y_test, mean, std, None if classes is None else tuple(classes))

    @property
    def num_classes(self) -> int:
        """The number of classes: of ``classes`` when named, else one more than the largest label."""
        if self.classes is not None:
            return len(self.classes)
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.train_images.shape[1:])

    def take(self, n_train: int = None, n_test: int = None) -> "TensorData":
        """The first ``n_train`` training and ``n_test`` test images (all when None), same normalisation."""
        return TensorData(self.train_images[:n_train], self.train_labels[:n_train], self.test_images[:n_test],
                          self.test_labels[:n_test], self.mean, self.std, self.classes)

    def __repr__(self):
        c, h, w = self.image_shape
        return (f"TensorData({len(self.train_images)} train + {len(self.test_images)} test images, "
                f"{c}×{h}×{w}, {self.num_classes} classes)")


def _fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of data can live on ``device`` and leave room for training (at most half the free memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    return True


def draw_epoch(generator: torch.Generator, n: int, pad: int):
    """The random numbers of one epoch, in this order: a permutation of ``n`` (``randperm``), crop offsets
    (n, 2) in 0..2·pad (``randint``: row offset, column offset) and flips (n,) in {0, 1} (``randint``).

    The k-th image of the epoch is ``perm[k]``, cut at ``offsets[k]`` from its zero-padded copy and
    mirrored left-right when ``flips[k]`` is 1. All on the CPU, from ``generator``.
    """
    perm = torch.randperm(n, generator=generator, device=generator.device)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=generator.device)
    flips = torch.randint(0, 2, (n,), generator=generator, device=generator.device)
    return perm, offsets, flips


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crops with zero padding and horizontal flips of a whole batch at once.

    ``x``: (B, C, H, W), any dtype; ``offsets`` (B, 2) int in 0..2·pad: where
    each H×W crop starts (row, column) in the image padded by ``pad`` zeros on
    every side; ``flips`` (B,) 0 or 1: mirror the crop left-right. Returns
    (B, C, H, W). Pixels from the padding are 0, as in torchvision's
    ``RandomCrop(padding=pad)``.
    """
    b, c, h, w = x.shape
    # every one of the (2p+1)² crops of every image, as a view: (B, C, 2p+1, 2p+1, H, W)
    crops = F.pad(x, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)
    out = crops[torch.arange(b, device=x.device), :, offsets[:, 0], offsets[:, 1]]  # (B, C, H, W): one per image
    return torch.where(flips.bool().view(b, 1, 1, 1), out.flip(-1), out)


def non_blocking_copies(device: torch.device) -> bool:
    """Whether host-to-``device`` copies may be asynchronous: on CUDA only, where the caching allocator keeps a
    source alive until its copy is done; on MPS a non-blocking copy of a temporary CPU tensor can read it after
    it is freed (a known PyTorch issue), and on the CPU there is nothing to overlap."""
    return torch.device(device).type == "cuda"


class DeviceLoader:
    """Batches of normalised float images made on ``device`` from uint8 images kept there.

    ``images`` (N, C, H, W) uint8, ``labels`` (N,) int64. Each pass (``iter``)
    is one epoch: with ``shuffle``, a permutation from ``generator``; with
    ``augment``, a random crop from the image zero-padded by ``pad`` (default
    H // 8: 4 for 32×32) and, with ``flip``, a left-right mirror with
    probability 1/2, drawn per image (``draw_epoch`` says in what order). Then
    ``(pixels / 255 - mean) / std`` in float32, laid out channels-last when
    ``channels_last``. ``transform``: a further augmentation of whole batches on
    the device, a module taking (B, C, H, W) floats in [0, 1] and drawing its
    parameters per image (``cnnviz.augmentation.RandomPCAColour``, say); it
    draws from torch's global generator, not from ``generator``. ``drop_last`` leaves out the N mod batch_size images
    left over (a different few each epoch when shuffled). The data is copied to
    ``device`` once if it takes at most half its free memory, else it stays on
    the host and each batch is copied over.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, mean, std, device=None,
                 shuffle: bool = True, augment: bool = False, pad: int = None, flip: bool = True,
                 drop_last: bool = None, channels_last: bool = False, generator: torch.Generator = None,
                 transform=None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("DeviceLoader takes (N, C, H, W) uint8 images; see TensorData.from_arrays.")
        n = len(images)
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size={batch_size} does not fit a dataset of {n} images; use 1 to {n}.")
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_size, self.shuffle, self.augment, self.flip = int(batch_size), shuffle, augment, flip
        self.pad = images.shape[2] // 8 if pad is None else int(pad)
        self.drop_last = shuffle if drop_last is None else drop_last
        self.channels_last, self.transform = channels_last, transform
        self.non_blocking = non_blocking_copies(self.device)
        if generator is None and (shuffle or augment):  # not seeding: a seed drawn from torch's global generator
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), dtype=torch.int64)))
        self.generator = generator
        keep_on = self.device if _fits_on(self.device, images.numel()) else torch.device("cpu")
        self.images, self.labels = images.to(keep_on), labels.to(keep_on)
        mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale, self._shift = 1 / (255 * std), -mean / std                   # (1, C, 1, 1)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        if self.shuffle or self.augment:
            perm, offsets, flips = draw_epoch(self.generator, n, self.pad)
            if not self.shuffle:
                perm = torch.arange(n)
            if not self.flip:
                flips = torch.zeros_like(flips)
            perm = perm.to(self.images.device)
            nb = self.non_blocking
            offsets, flips = offsets.to(self.device, non_blocking=nb), flips.to(self.device, non_blocking=nb)
        else:
            perm = None
        for k in range(len(self)):
            sl = slice(k * self.batch_size, (k + 1) * self.batch_size)
            if perm is None:
                x, y = self.images[sl], self.labels[sl]
            else:
                x, y = self.images.index_select(0, perm[sl]), self.labels.index_select(0, perm[sl])
            x = x.to(self.device, non_blocking=self.non_blocking)               # (B, C, H, W) uint8
            y = y.to(self.device, non_blocking=self.non_blocking)               # (B,)
            if self.augment:
                x = crop_flip(x, offsets[sl], flips[sl], self.pad)
            if self.transform is not None:  # a batched augmentation on floats in [0, 1], e.g. PCA colour
                x = self.transform(x.to(torch.float32).div_(255)).mul_(255).clamp_(0, 255)
            yield self.normalise(x), y

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32 ``(x / 255 - mean) / std``, in this loader's memory layout."""
        # per-channel arithmetic in the (B, C, H, W) layout: in channels-last memory its innermost
        # loop would run over only C values, several times slower on the CPU
        x = x.to(torch.float32, memory_format=torch.contiguous_format).mul_(self._scale).add_(self._shift)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


# ----------------------------------------------------------------------------- history


@dataclass
class History:
    """What a training run recorded, as plain numbers.

    ``steps``: one dict per log point: ``step`` (optimisation steps so far),
    ``epoch`` (epochs so far, fractional), ``loss`` and ``acc`` (means over the
    training batches since the previous log point, augmented, in training
    mode), ``lr``, ``seconds`` (training time so far).
    ``epochs``: one dict per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``,
    ``train_acc``, ``train_error`` (over the epoch's batches), ``test_loss``,
    ``test_acc``, ``test_error``, with ``train_eval_*`` (a fixed training
    subset, unaugmented, in evaluation mode) when asked, ``seconds`` (training
    time of the epoch, evaluation excluded) and ``images_per_s``.
    Accuracies and errors are fractions (0.08 = 8 %).
    """

    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)

    def series(self, key: str, *, per: str = "epoch") -> list:
        """The values of ``key`` per epoch (``per="epoch"``) or per log point (``per="step"``)."""
        rows = {"epoch": self.epochs, "step": self.steps}.get(per)
        if rows is None:
            raise ValueError(f"per is 'epoch' or 'step', got {per!r}.")
        return [r.get(key) for r in rows]

    def to_dict(self) -> dict:
        return {"steps": [dict(r) for r in self.steps], "epochs": [dict(r) for r in self.epochs]}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls([dict(r) for r in d["steps"]], [dict(r) for r in d["epochs"]])

    def __repr__(self):
        last = self.epochs[-1] if self.epochs else None
        tail = (f", last: test error {100 * last['test_error']:.1f} %" if last else "")
        return f"History({len(self.epochs)} epochs, {len(self.steps)} log points{tail})"


# ----------------------------------------------------------------------------- checkpoints


def _digest(obj, h=None) -> str:
    """SHA-256 over the numbers and tensors in nested dicts and lists (keys sorted): a checkpoint's fingerprint."""
    top = h is None
    h = hashlib.sha256() if top else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L")
        for v in obj:
            _digest(v, h)
    else:
        h.update(repr(obj).encode())
    return h.hexdigest() if top else None


def _save_atomically(payload: dict, path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename it over: an interrupted save leaves the old file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_verified(path: Path, fmt: str):
    """``(payload, None)`` from a cache file written as ``{**payload, "sha256": _digest(payload)}`` with
    ``payload["format"] == fmt``, or ``(None, why)`` when it cannot be read or does not check out (loaded with
    ``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, ...: the caller recomputes
        return None, type(err).__name__
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        return None, "it is not such a file"
    if payload.pop("sha256", None) != _digest(payload):
        return None, "its contents do not match their checksum"
    return payload, None


def _load_checkpoint(path: Path) -> dict:
    """Read and verify a checkpoint; a damaged one raises ``CheckpointError``."""
    advice = "delete it to start over, or pass restart_if_corrupt=True to do that automatically."
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, ...: all mean the file cannot be used
        raise CheckpointError(f"The checkpoint {path} cannot be read ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); it is damaged or not a "
                              f"checkpoint: {advice}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a cnnviz.train checkpoint; {advice}")
    stored = ckpt.pop("sha256", None)
    if stored != _digest(ckpt):
        raise CheckpointError(f"The checkpoint {path} is damaged (its contents do not match their checksum); {advice}")
    return ckpt


# ----------------------------------------------------------------------------- trainer


def _positive_int(value, name: str, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.{hint}")
    return value


def _amp_dtype(amp, device: torch.device):
    if amp is None:
        amp = device.type == "cuda"
    if amp is False:
        return None
    if amp is True:
        # natively only: pre-Ampere GPUs (Colab's T4) report bf16 "supported" through emulation, with no bf16
        # convolutions in cuDNN; there float16 with loss scaling is the fast choice
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            return torch.float16
        return torch.bfloat16
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if amp in names:
        return names[amp]
    if amp in (torch.bfloat16, torch.float16):
        return amp
    raise ValueError(f"amp is None (automatic: on CUDA only), True, False, 'bf16' or 'fp16'; got {amp!r}.")


class Trainer:
    """Trains ``model`` (in place) on ``data``: SGD with momentum, weight decay and step learning-rate decay.

    ``batch_size``, ``lr``, ``momentum``, ``weight_decay``: as in He et al.
    2016, §4.2 (128, 0.1, 0.9, 1e-4). ``milestones``: where ``lr`` is divided
    by 10, in epochs (values ≥ 1, e.g. ``(80, 120)``) or as fractions of
    ``epochs`` (values < 1, e.g. ``(0.5, 0.75)``); applied at the first step
    at or after each (rounded to whole steps). ``epochs``: how many to train.
    ``augment``: random crops (zero padding ``pad``, default H // 8) and, with
    ``flip``, left-right mirrors. ``device``: default ``cnnviz.device()``.
    ``amp``: mixed precision; None means bfloat16 autocast on CUDA (float16
    with loss scaling where bfloat16 is missing) and none elsewhere.
    ``channels_last``: None means on CUDA and the CPU, not MPS. ``seed``: seeds this trainer's
    data order and augmentation (the model's initialisation is the caller's:
    see ``cnnviz.seed``). ``checkpoint``: a file written after every epoch;
    ``resume=True`` continues from it when it exists (a damaged one raises
    ``CheckpointError``, or, with ``restart_if_corrupt=True``, is ignored with a
    warning). ``log_every``: steps between log points (default: 20 per epoch).
    ``train_eval_size``: also evaluate on that many training images (fixed,
    unaugmented) after every epoch. ``on_log(trainer)``, ``on_epoch(trainer)``:
    called after each log point and epoch. ``progress``: a tqdm bar.
    ``param_groups``: learning rates per group of parameters, as torch's
    optimisers take them (``[{"params": [...], "lr": 0.001}, ...]``; a group
    without ``"lr"`` gets ``lr``); the schedule (warm-up, milestones) scales
    every group alike, and a group at 0 never moves. By default one group of
    every parameter with ``requires_grad`` (frozen ones are left out; a model
    with none to train is refused with a sentence saying so).

    Each optimisation step is ``step()``; ``run_epoch()`` and ``fit()`` loop
    over it. A NaN or infinite loss raises ``TrainingDiverged`` (on the CPU
    before the bad update; on CUDA at the next log point); ``history`` keeps
    what was recorded. Interleaved trainers share torch's global random state,
    which matters only for models that draw random numbers (dropout).
    """

    def __init__(self, model: torch.nn.Module, data: TensorData, *, epochs: int, batch_size: int = 128,
                 lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4, milestones=None,
                 warmup_steps: int = 0, augment: bool = True, pad: int = None, flip: bool = True, device=None,
                 amp=None, channels_last=None, seed: int = None, checkpoint=None, resume: bool = False,
                 restart_if_corrupt: bool = False, log_every: int = None, train_eval_size: int = 0,
                 on_log=None, on_epoch=None, progress: bool = True, param_groups=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(data, TensorData):
            raise TypeError(f"data must be a cnnviz.train.TensorData (see TensorData.from_arrays), "
                            f"got {type(data).__name__}.")
        n_train = len(data.train_images)
        self.epochs = _positive_int(epochs, "epochs", " Train for at least one epoch.")
        self.batch_size = _positive_int(batch_size, "batch_size")
        if self.batch_size > n_train:
            raise ValueError(f"batch_size={batch_size} is larger than the training set ({n_train} images); "
                             f"use at most {n_train}.")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"lr (the learning rate) must be a positive number such as 0.1, got {lr!r}.")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1) (0.9 is usual), got {momentum!r}.")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be 0 or positive (1e-4 is usual), got {weight_decay!r}.")
        self.train_eval_size = int(train_eval_size)
        if not 0 <= self.train_eval_size <= n_train:
            raise ValueError(f"train_eval_size is how many training images to evaluate on, 0 to {n_train}; "
                             f"got {train_eval_size!r}.")
        self.model, self.data = model, data
        self.device = torch.device(device) if device is not None else default_device()
        self.amp_dtype = _amp_dtype(amp, self.device)
        # channels-last convolutions are faster on CUDA and, for ResNet-20, ~15-20 % faster on an AVX2 CPU
        # with oneDNN (bench/train_throughput.py); MPS supports them poorly
        self.channels_last = (self.device.type in ("cuda", "cpu")) if channels_last is None else bool(channels_last)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.steps_per_epoch = n_train // self.batch_size
        self.total_steps = self.epochs * self.steps_per_epoch
        self.milestones = self._milestone_steps(milestones)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps is how many steps to train at lr/10 first: 0 or more; "
                             f"got {warmup_steps!r}.")
        self.warmup_steps = warmup_steps
        self.log_every = (max(1, self.steps_per_epoch // 20) if log_every is None
                          else _positive_int(log_every, "log_every"))
        self.on_log, self.on_epoch, self.progress = on_log, on_epoch, progress

        if seed is None:  # not seeding: a seed drawn from torch's global generator (repeatable after cnnviz.seed)
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.loader = DeviceLoader(data.train_images, data.train_labels, batch_size=self.batch_size,
                                   mean=data.mean, std=data.std, device=self.device, shuffle=True, augment=augment,
                                   pad=pad, flip=flip, drop_last=True, channels_last=self.channels_last,
                                   generator=self.generator)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self._param_groups(param_groups), lr=self.lr, momentum=self.momentum,
                                         weight_decay=self.weight_decay,
                                         foreach=self.device.type in ("cuda", "mps") or None)
        fp16 = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None

        self.history = History()
        self.step_count = 0          # optimisation steps done
        self.epoch = 0               # epochs completed
        self.train_seconds = 0.0     # time spent in steps (evaluation excluded)
        # Synchronise the device before and after every step, so that the step's time is its own even when
        # other trainers queue work on the same device (a race sets it; a lone trainer need not wait so often).
        self.timed_alone = False
        self._batches = None         # the current epoch's batch iterator (made at its first step)
        self._stop_requested = False
        self.stopped = False         # the last fit()/run_epoch() ended because of stop()
        self._diverged = None
        self._last_lr = self.lr      # the learning rate of the last step
        self._pbar = None
        self._eval_loaders = {}
        self._reset_window()
        self._epoch_sums = [0.0, 0.0, 0]   # loss·n, correct, n over the epoch so far
        self._epoch_seconds = 0.0
        # A NaN loss is looked for at once on the CPU; on an accelerator that would make the host wait every
        # step, so the first bad step is noted on the device and read at the next log point.
        self._check_each_step = self.device.type == "cpu"
        self._nonfinite_at = torch.full((), -1, dtype=torch.int64, device=self.device)

        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if self.checkpoint is not None and self.checkpoint.exists():
            if resume:
                self._resume(restart_if_corrupt)
            else:
                warnings.warn(f"The checkpoint {self.checkpoint} exists and will be overwritten after the first "
                              "epoch; pass resume=True to continue it instead.", stacklevel=2)

    def _param_groups(self, groups) -> list:
        """The optimiser's groups, each with ``lr_scale``: its learning rate as a multiple of ``lr``."""
        if groups is None:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        out, seen = [], set()
        for g in groups:
            if not isinstance(g, dict) or "params" not in g:
                raise ValueError("param_groups is a list of dicts, each with 'params' (a list of parameters) and "
                                 "optionally 'lr', as torch's optimisers take them.")
            lr = g.get("lr", self.lr)
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0 or not math.isfinite(lr):
                raise ValueError(f"A parameter group's learning rate must be 0 or a positive number, got {lr!r}.")
            params = [p for p in g["params"] if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in params)
            out.append({**{k: v for k, v in g.items() if k != "lr"}, "params": params, "lr": lr,
                        "lr_scale": lr / self.lr})
        if not any(g["params"] for g in out):
            raise ValueError("Every parameter of the model is frozen (requires_grad=False), so there is nothing to "
                             "train. Let some layers train first, e.g. cnnviz.transfer.set_trainable(model, 'head') "
                             "for the classifier only, or 'all'.")
        return [g for g in out if g["params"]]

    # ---------------------------------------------------------------- state

    @property
    def done(self) -> bool:
        """Whether all ``epochs`` are trained."""
        return self.epoch >= self.epochs

    @property
    def progress_epochs(self) -> float:
        """Epochs trained so far, fractional (e.g. 2.5 halfway through the third)."""
        return self.step_count / self.steps_per_epoch

    @property
    def current_lr(self) -> float:
        """The learning rate of the next step: ``lr``, divided by 10 during the warm-up and at each milestone."""
        warm = self.step_count < self.warmup_steps
        return self.lr * 0.1 ** (warm + sum(self.step_count >= m for m in self.milestones))

    def _milestone_steps(self, milestones) -> tuple:
        if milestones is None:
            return ()
        steps = []
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0:
                raise ValueError(f"milestones are positive epochs (e.g. 80, 120) or fractions of the run "
                                 f"(e.g. 0.5, 0.75); got {m!r}.")
            epochs = m * self.epochs if m < 1 else m
            if epochs >= self.epochs:
                raise ValueError(f"The milestone {m!r} is not before the end of training (epochs={self.epochs}); "
                                 f"give epochs below {self.epochs} or fractions below 1.")
            steps.append(round(epochs * self.steps_per_epoch))
        return tuple(sorted(steps))

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _reset_window(self):
        self._window = torch.zeros(2, device=self.device)  # loss·n, correct since the last log point
        self._window_n = 0

    # ---------------------------------------------------------------- training

    def stop(self) -> None:
        """Ask ``fit()`` / ``run_epoch()`` to return after the current step (safe to call from another thread)."""
        self._stop_requested = True

    def step(self) -> torch.Tensor:
        """One optimisation step on the next batch; returns its loss (a detached tensor on the device).

        Ends the epoch (evaluation, history, checkpoint, ``on_epoch``) after its last step.
        """
        if self._diverged is not None:
            raise self._diverged
        if self.done:
            raise RuntimeError(f"This trainer has finished its {self.epochs} epochs; make a new one with more "
                               "epochs (and resume=True with the same checkpoint) to go on.")
        if self.timed_alone:  # other trainers' queued work is not this step's
            synchronize(self.device)
        t0 = time.perf_counter()
        if self._batches is None:
            self._batches = iter(self.loader)
        x, y = next(self._batches)                            # (B, C, H, W) float, (B,)
        self._last_lr = lr = self.current_lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with self._autocast():
            out = self.model(x)                               # (B, classes)
            if out.ndim != 2 or out.shape[1] < self.data.num_classes:
                raise ValueError(f"The model outputs {tuple(out.shape)} for a batch of {len(x)}; it needs "
                                 f"(batch, {self.data.num_classes}) scores, one per class of the data.")
            loss = F.cross_entropy(out.float(), y)
        if self._check_each_step:  # nothing to stall on the CPU: check now, before the bad update
            if not torch.isfinite(loss):
                self._diverge(self.step_count + 1, float(loss.detach()))
        else:
            self._nonfinite_at = torch.where((self._nonfinite_at < 0) & ~torch.isfinite(loss),
                                             self.step_count + 1, self._nonfinite_at)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        loss = loss.detach()
        n = len(y)
        self._window[0] += loss * n
        self._window[1] += (out.detach().argmax(1) == y).sum()
        self._window_n += n
        self.step_count += 1
        if self._pbar is not None:
            self._pbar.update(1)
        end_of_epoch = self.step_count % self.steps_per_epoch == 0
        log_point = end_of_epoch or self.step_count % self.log_every == 0
        if log_point or self.timed_alone:  # the time up to a log point includes the device's queued work
            synchronize(self.device)
        seconds = time.perf_counter() - t0
        self._epoch_seconds += seconds
        self.train_seconds += seconds
        if log_point:
            self._log()
        if end_of_epoch:
            self._end_epoch()
        return loss

    def run_epoch(self) -> dict:
        """Train to the end of the current epoch (or until ``stop()``); its history record, or None if stopped."""
        return self._run(until=(self.epoch + 1) * self.steps_per_epoch)

    def fit(self) -> History:
        """Train to the end of ``epochs`` (or until ``stop()``; calling it again goes on); returns ``history``."""
        self._run(until=self.total_steps)
        return self.history

    def _run(self, until: int):
        self._stop_requested, self.stopped = False, False
        if self.progress and self._pbar is None and not self.done:
            from tqdm.auto import tqdm  # here, not at import: in a notebook tqdm.auto loads ipywidgets

            self._pbar = tqdm(total=self.total_steps, initial=self.step_count, unit="step",
                              desc=f"epoch {self.epoch + 1}/{self.epochs}")
        try:
            while self.step_count < min(until, self.total_steps):
                self.step()
                if self._stop_requested:
                    self.stopped = True
                    if self._window_n:
                        self._log()
                    return None
        finally:
            if self._pbar is not None and (self.done or self.stopped or self._diverged is not None):
                self._pbar.close()
                self._pbar = None
        return self.history.epochs[-1] if self.history.epochs else None

    def _diverge(self, step: int, loss: float):
        if self._window_n:
            self._log(check=False)
        message = (f"Training diverged at step {step} (epoch {step / self.steps_per_epoch:.2f}): the loss became "
                   f"{loss}. Try a smaller learning rate than lr={self.lr:g} and check the data for NaN or inf. "
                   f"What was recorded before is in trainer.history.")
        self._diverged = TrainingDiverged(message, history=self.history, step=step)
        raise self._diverged

    def _log(self, check: bool = True):
        loss_sum, correct = self._window.tolist()            # the one host synchronisation per log point
        if check and not self._check_each_step:
            bad = int(self._nonfinite_at)
            if bad >= 0:
                self._diverge(bad, float("nan") if math.isnan(loss_sum) else loss_sum)
        n = self._window_n
        self._epoch_sums[0] += loss_sum
        self._epoch_sums[1] += correct
        self._epoch_sums[2] += n
        self.history.steps.append({"step": self.step_count, "epoch": self.progress_epochs, "loss": loss_sum / n,
                                   "acc": correct / n, "lr": self._last_lr, "seconds": self.train_seconds})
        self._reset_window()
        if self._pbar is not None:
            self._pbar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}", refresh=False)
        if self.on_log is not None:
            self.on_log(self)

    def _end_epoch(self):
        self.epoch += 1
        self._batches = None
        loss_sum, correct, n = self._epoch_sums
        record = {"epoch": self.epoch, "step": self.step_count, "lr": self._last_lr,
                  "train_loss": loss_sum / n, "train_acc": correct / n, "train_error": 1 - correct / n}
        record.update(self.evaluate(train_subset=self.train_eval_size or None))
        record["seconds"] = self._epoch_seconds
        record["images_per_s"] = n / self._epoch_seconds if self._epoch_seconds > 0 else float("inf")
        self.history.epochs.append(record)
        self._epoch_sums, self._epoch_seconds = [0.0, 0.0, 0], 0.0
        if self._pbar is not None:
            self._pbar.set_description(f"epoch {min(self.epoch + 1, self.epochs)}/{self.epochs}", refresh=False)
            self._pbar.set_postfix(loss=f"{record['train_loss']:.3f}", test_acc=f"{record['test_acc']:.3f}")
        if self.checkpoint is not None:
            self.save_checkpoint()
        if self.on_epoch is not None:
            self.on_epoch(self)

    # ---------------------------------------------------------------- evaluation

    def _eval_loader(self, which: str, size: int = None) -> DeviceLoader:
        key = (which, size)
        if key not in self._eval_loaders:
            d = self.data
            if which == "test":
                x, y = d.test_images, d.test_labels
            else:  # a fixed, evenly spread subset of the training set
                idx = torch.linspace(0, len(d.train_images) - 1, size).round().long()
                x, y = d.train_images[idx], d.train_labels[idx]
            self._eval_loaders[key] = DeviceLoader(x, y, batch_size=min(len(x), 2 * self.batch_size), mean=d.mean,
                                                   std=d.std, device=self.device, shuffle=False, augment=False,
                                                   drop_last=False, channels_last=self.channels_last)
        return self._eval_loaders[key]

    def evaluate(self, *, train_subset: int = None) -> dict:
        """Test loss and accuracy (``test_loss``, ``test_acc``, ``test_error``) of the model as it is now,
        in evaluation mode; with ``train_subset=k`` also ``train_eval_*`` on k fixed training images, unaugmented."""
        out = self._evaluate_on(self._eval_loader("test"), "test")
        if train_subset:
            out.update(self._evaluate_on(self._eval_loader("train", int(train_subset)), "train_eval"))
        return out

    def _evaluate_on(self, loader: DeviceLoader, prefix: str) -> dict:
        was_training = self.model.training
        self.model.eval()
        sums = torch.zeros(2, device=self.device)
        try:
            with torch.inference_mode(), self._autocast():
                for x, y in loader:
                    out = self.model(x).float()                # (B, classes)
                    sums[0] += F.cross_entropy(out, y, reduction="sum")
                    sums[1] += (out.argmax(1) == y).sum()
        finally:
            self.model.train(was_training)
        loss_sum, correct = sums.tolist()
        n = len(loader.images)
        return {f"{prefix}_loss": loss_sum / n, f"{prefix}_acc": correct / n, f"{prefix}_error": 1 - correct / n}

    # ---------------------------------------------------------------- checkpoints

    def _config(self) -> dict:
        return {"batch_size": self.batch_size, "n_train": len(self.data.train_images),
                "steps_per_epoch": self.steps_per_epoch, "image_shape": list(self.data.image_shape)}

    def save_checkpoint(self, path=None) -> Path:
        """Write the state at the end of the last completed epoch to ``path`` (default: ``checkpoint``), atomically."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise ValueError("No checkpoint path: give one here or as Trainer(checkpoint=...).")
        rng = {"loader": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        payload = {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "step": self.step_count,
                   "train_seconds": self.train_seconds, "seed": self.seed, "config": self._config(),
                   "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                   "history": self.history.to_dict(), "rng": rng}
        payload["sha256"] = _digest(payload)
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_atomically(payload, path)
        return path

    def _resume(self, restart_if_corrupt: bool):
        try:
            ckpt = _load_checkpoint(self.checkpoint)
        except CheckpointError as err:
            if not restart_if_corrupt:
                raise
            warnings.warn(f"{err} Starting over (restart_if_corrupt=True).", stacklevel=3)
            return
        mine = self._config()
        if ckpt["config"] != mine:
            diff = ", ".join(f"{k}={ckpt['config'].get(k)} there, {v} here" for k, v in mine.items()
                             if ckpt["config"].get(k) != v)
            raise CheckpointError(f"The checkpoint {self.checkpoint} belongs to another run ({diff}); use the same "
                                  "data and batch size, or another checkpoint path.")
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"The checkpoint {self.checkpoint} was written for a different model "
                                  f"({str(err).splitlines()[0]}); build the same model, or use another "
                                  "checkpoint path.") from err
        if self.scaler is not None and ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.generator.set_state(ckpt["rng"]["loader"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.history = History.from_dict(ckpt["history"])
        self.epoch, self.step_count = int(ckpt["epoch"]), int(ckpt["step"])
        self.train_seconds, self.seed = float(ckpt["train_seconds"]), int(ckpt["seed"])

    def __repr__(self):
        return (f"Trainer({type(self.model).__name__}, epoch {self.epoch}/{self.epochs}, step {self.step_count}, "
                f"lr {self.current_lr:g}, device {self.device})")


def fit(model: torch.nn.Module, data: TensorData, **kwargs) -> History:
    """Train ``model`` on ``data`` with a ``Trainer(model, data, **kwargs)`` and return its ``History``."""
    return Trainer(model, data, **kwargs).fit()
