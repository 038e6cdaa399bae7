"""The degradation race (He et al. 2016, section 4.2 and Figure 6): plain and residual networks of two or
more depths, trained side by side so that all their curves advance together.

- ``RaceConfig``: everything that defines a race: data set, depths, width, schedule, seed.
  ``EMBEDDED`` is the CPU demo on scikit-learn's digits (about a minute for four networks);
  ``CIFAR10`` is the paper's CIFAR-10 recipe (a GPU run).
- ``Race``: one ``cnnviz.train.Trainer`` per network, advanced in turns (one ``Trainer.step()``
  each, round-robin), with a ``RaceLog`` point every ``1 / logs_per_epoch`` epoch: training loss
  and error over the batches since the previous point, and at the end of every epoch test loss
  and error. ``on_log`` is called after each point (live display); ``stop()`` ends ``run()``
  after the current round of steps.
- ``race(config)``: one race to the end; ``cached_race(config)``: the same, stored as JSON under
  ``cnnviz.data.cache_dir()`` keyed by the settings, so a book build trains only once.
- ``cifar_race(...)``: the CIFAR-10 recipe; downloads CIFAR-10 through torchvision (offline it
  raises ``cnnviz.data.DatasetUnavailable`` saying what to do).
- ``degradation(log)``: the verdict on a finished race: does the deep plain net end with a higher
  training loss than the shallow one, and is the deep residual net no worse than the shallow one?
- ``gradient_norms(model, images, labels)``: how large the gradient of the loss is at the output of
  every block, at initialisation: the numerical side of the identity-shortcut argument
  (He et al. 2016, "Identity mappings", equation 5).

Each plain network starts from exactly the weights of its residual twin (same depth, same seed:
the two have the same layers), and all networks see the same batches in the same order, so the
shortcuts are the only difference between them.
"""
import copy
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnviz.models.resnet import cifar_resnet
from cnnviz.runtime import cpu_threads
from cnnviz.train import TensorData, Trainer, TrainingDiverged

__all__ = ["RaceConfig", "EMBEDDED", "CIFAR10", "Race", "RaceLog", "race", "cached_race", "cifar_race",
           "race_data", "net_names", "build_net", "degradation", "Verdict", "gradient_norms", "Gradients", "LOG_FORMAT"]

LOG_FORMAT = "cnnviz.race log 1"
KINDS = ("plain", "resnet")


@dataclass(frozen=True)
class RaceConfig:
    """The settings of a race. Depths are ``6n + 2`` (20, 32, 44, 56, 110 ...).

    ``dataset``: ``"digits"`` (embedded, 8×8 grey, 1,438 training and 359 test images) or
    ``"cifar10"`` (downloaded). ``kinds``: ``"plain"`` and/or ``"resnet"``. ``width``: filters of
    the first stage (16 in the paper; the stages have width, 2·width, 4·width). ``batch_size``,
    ``lr``, ``momentum``, ``weight_decay``: SGD as in ``cnnviz.train.Trainer``; ``milestones``:
    where ``lr`` is divided by 10, as fractions of the run. ``warmup_epochs``: train at ``lr / 10``
    for this long first (the paper does this for ResNet-110 only). ``augment``: random crops and
    flips. ``logs_per_epoch``: points on the curves per epoch. ``seed``: the models' initial weights
    (a plain net and its residual twin start from the same ones) and the order of the batches.
    """

    dataset: str = "digits"
    depths: tuple = (20, 56)
    kinds: tuple = KINDS
    width: int = 8
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple = (0.5, 0.75)
    warmup_epochs: float = 0.0
    augment: bool = False
    logs_per_epoch: int = 4
    seed: int = 0

    def __post_init__(self):
        depths = tuple(self.depths)
        for d in depths:
            if isinstance(d, bool) or not isinstance(d, int) or d < 8 or (d - 2) % 6:
                raise ValueError(f"Depths of these networks are 6n + 2 (8, 14, 20, 26, 32, 44, 56, 110 ...); "
                                 f"got {d!r}.")
        if not depths or len(set(depths)) != len(depths):
            raise ValueError(f"Give one or more different depths, e.g. (20, 56); got {self.depths!r}.")
        kinds = tuple(self.kinds)
        if not kinds or any(k not in KINDS for k in kinds) or len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds is 'plain', 'resnet' or both; got {self.kinds!r}.")
        if self.dataset not in ("digits", "cifar10"):
            raise ValueError(f"dataset is 'digits' (embedded) or 'cifar10' (downloaded); got {self.dataset!r}.")
        for name in ("width", "epochs", "batch_size", "logs_per_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, (int, float)) \
                or not 0 <= self.warmup_epochs < math.inf:
            raise ValueError(f"warmup_epochs is how long to train at lr/10 first: 0 or more epochs; "
                             f"got {self.warmup_epochs!r}.")
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "milestones", tuple(self.milestones or ()))

    def replace(self, **changes) -> "RaceConfig":
        """A copy with some settings changed (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "RaceConfig":
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """The settings in one line, e.g. for a figure's title."""
        data = {"digits": "digits 8×8", "cifar10": "CIFAR-10"}[self.dataset]
        ms = ", ".join(f"{100 * m:g} %" if m < 1 else f"epoch {m:g}" for m in self.milestones)
        sched = f"lr {self.lr:g}" + (f" ÷10 at {ms}" if ms else "")
        if self.warmup_epochs:
            sched += f", lr/10 for the first {self.warmup_epochs:g} epoch{'s' if self.warmup_epochs != 1 else ''}"
        return (f"{data}, width {self.width}, batch {self.batch_size}, {self.epochs} epochs, SGD {sched}, "
                f"momentum {self.momentum:g}, weight decay {self.weight_decay:g}, "
                f"{'crop+flip augmentation' if self.augment else 'no augmentation'}, seed {self.seed}")


#: The CPU demo: four networks on the embedded digits in about a minute. It departs from the paper
#: (the chapter says why): width 8 instead of 16, 20 epochs, no augmentation on 8×8 digits, and two
#: epochs of warm-up at lr/10 for every network (the paper warms up ResNet-110 only).
EMBEDDED = RaceConfig(warmup_epochs=2.0)

#: He et al. 2016, section 4.2: width 16, batch 128, lr 0.1 divided by 10 at 32k and 48k of 64k
#: iterations (50 % and 75 %; 164 epochs of the 50,000 training images), momentum 0.9, weight decay
#: 1e-4, 4-pixel padding with random 32×32 crops and horizontal flips.
CIFAR10 = RaceConfig(dataset="cifar10", width=16, epochs=164, batch_size=128, lr=0.1, milestones=(0.5, 0.75),
                     augment=True, logs_per_epoch=1)


def net_names(config: RaceConfig) -> list:
    """The networks of a race, in the order they step: ``["plain-20", "plain-56", "resnet-20", "resnet-56"]``."""
    return [f"{kind}-{depth}" for kind in config.kinds for depth in config.depths]


def race_data(dataset: str = "digits", *, root=None, download: bool = True) -> TensorData:
    """The data of a race as a ``TensorData``: ``"digits"`` (embedded) or ``"cifar10"`` (downloaded into
    ``root``, default ``cnnviz.data.cache_dir()``; raises ``DatasetUnavailable`` when it cannot be had)."""
    from cnnviz import data

    if dataset == "digits":
        return TensorData.from_arrays(**data.digits_tensors())
    if dataset == "cifar10":
        return TensorData.from_arrays(**data.cifar10_tensors(root=root, download=download))
    raise ValueError(f"dataset is 'digits' or 'cifar10'; got {dataset!r}.")


# ----------------------------------------------------------------------------- the log


def _clean(value):
    """A JSON-friendly number: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class RaceLog:
    """What a race recorded, as plain numbers (JSON: ``save`` / ``load``).

    ``points``: the shared time axis, one entry per log point: ``epoch`` (fractional), ``step``
    (optimisation steps of each network), ``seconds`` (wall-clock since the start, evaluation
    included). ``series[name]``: ``train_loss``, ``train_error`` (means over the training batches
    since the previous point, in training mode, as the paper's curves), ``test_loss``,
    ``test_error`` (at the ends of epochs only: None between them), one per point (all None after a
    network diverged). ``epochs[name]``: the trainer's per-epoch records
    (``cnnviz.train.History.epochs``). Errors are fractions (0.08 = 8 %). ``machine``: device, torch
    version, threads, ``wall_seconds`` (the race so far) and ``train_seconds`` (in steps, all networks).
    ``status``: "running", "finished", "stopped" or "failed"; ``diverged``: name -> message.
    """

    config: dict
    nets: list
    dataset: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    points: dict = field(default_factory=lambda: {"epoch": [], "step": [], "seconds": []})
    series: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    status: str = "running"
    diverged: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)

    KEYS = ("train_loss", "train_error", "test_loss", "test_error")

    def __post_init__(self):
        for name in self.nets:
            self.series.setdefault(name, {k: [] for k in self.KEYS})
            self.epochs.setdefault(name, [])

    @property
    def race_config(self) -> RaceConfig:
        return RaceConfig.from_dict(self.config)

    def __len__(self) -> int:
        return len(self.points["epoch"])

    def final(self, name: str, key: str = "train_loss"):
        """The value of ``key`` for network ``name`` over its last epoch (a per-epoch record, e.g.
        ``train_loss``, ``train_error``, ``test_error``); None if it trained no full epoch."""
        rows = self.epochs.get(name)
        if rows is None:
            raise KeyError(f"No network {name!r} in this race; it has {', '.join(self.nets)}.")
        return rows[-1].get(key) if rows else None

    def snapshot(self) -> "RaceLog":
        """A copy that later log points do not change (for a display thread)."""
        return RaceLog.from_dict(self.to_dict())

    def to_dict(self) -> dict:
        d = {"format": LOG_FORMAT}
        d.update(copy.deepcopy({k: getattr(self, k) for k in ("config", "nets", "dataset", "params", "points",
                                                               "series", "epochs", "status", "diverged",
                                                               "machine")}))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RaceLog":
        if d.get("format") != LOG_FORMAT:
            raise ValueError(f"This is not a race log of this version (format {d.get('format')!r}, "
                             f"expected {LOG_FORMAT!r}).")
        d = copy.deepcopy(d)
        d.pop("format")
        return cls(**d)

    def save(self, path) -> Path:
        """Write the log as JSON (atomically: a temporary file renamed over ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "RaceLog":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __repr__(self):
        last = self.points["epoch"][-1] if len(self) else 0
        return f"RaceLog({', '.join(self.nets)}; {len(self)} points, {last:.3g} epochs, {self.status})"


# ----------------------------------------------------------------------------- the race


def _largest_divisor_at_most(n: int, k: int) -> int:
    return max(d for d in range(1, max(1, k) + 1) if n % d == 0)


def build_net(name: str, config: RaceConfig = EMBEDDED, data: TensorData = None, **changes) -> torch.nn.Module:
    """The network ``name`` ("plain-56", "resnet-20" ...) of a race with ``config``, with the initial
    weights it starts the race from (a plain net and its residual twin get the same ones). ``data``
    gives the input channels and classes (default: 1 and 10, the digits); ``changes`` go to
    ``cifar_resnet`` (e.g. ``preact=True``). Torch's global random state is left as it was."""
    kind, _, depth = name.partition("-")
    if kind not in KINDS or not depth.isdigit():
        raise ValueError(f"A race network is named 'plain-DEPTH' or 'resnet-DEPTH', e.g. 'plain-56'; got {name!r}.")
    depth = int(depth)
    channels, classes = (data.image_shape[0], data.num_classes) if data is not None else (1, 10)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed * 10_000 + depth)
        return cifar_resnet(depth, plain=kind == "plain", width=config.width, in_channels=channels,
                            num_classes=classes, **changes)


def _build(kind: str, depth: int, config: RaceConfig, data: TensorData) -> torch.nn.Module:
    return build_net(f"{kind}-{depth}", config, data)


class Race:
    """Plain and residual networks trained in turns on the same data (see the module docstring).

    ``config``: a ``RaceConfig`` (default ``EMBEDDED``); ``data``: a ``TensorData`` (default: the
    config's data set); ``device``: default ``cnnviz.device()``; ``threads``: torch's CPU threads
    while ``run()`` trains on the CPU (default 1: the embedded nets are too small to gain from more,
    which only slow them down when other work shares the cores, and one keeps a core free for the
    notebook; None leaves torch's setting); ``on_log(race)``: called after every log point, from the thread
    that trains; ``checkpoint_dir``: a checkpoint per network and the log, written after every
    epoch, and resumed from when they exist. ``trainer_options``: passed on to every ``Trainer``
    (e.g. ``amp=False``).

    ``step()`` advances every network by one optimisation step; ``run()`` until the end or
    ``stop()`` (safe from another thread); ``log`` is the ``RaceLog`` so far.
    """

    def __init__(self, config: RaceConfig = EMBEDDED, *, data: TensorData = None, device=None, threads=1,
                 on_log=None, checkpoint_dir=None, **trainer_options):
        if not isinstance(config, RaceConfig):
            raise TypeError(f"config must be a cnnviz.race.RaceConfig, got {type(config).__name__}.")
        self.config = config
        self.data = data if data is not None else race_data(config.dataset)
        self.threads, self.on_log = threads, on_log
        n_train = len(self.data.train_images)
        if config.batch_size > n_train:
            raise ValueError(f"batch_size={config.batch_size} is larger than the training set ({n_train} images).")
        self.steps_per_epoch = n_train // config.batch_size
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        # log points: evenly spread in every epoch, the last one at its end
        per_epoch = min(config.logs_per_epoch, self.steps_per_epoch)
        self._marks = {round(self.steps_per_epoch * j / per_epoch) for j in range(1, per_epoch + 1)}
        # the trainers record every `log_every` steps (a divisor of the epoch, so their records tile
        # the race's windows exactly); the race sums them up per window
        log_every = _largest_divisor_at_most(self.steps_per_epoch, min(self._marks))
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        options = dict(progress=False)
        options.update(trainer_options)
        self.trainers = {}
        for kind in config.kinds:
            for depth in config.depths:
                name = f"{kind}-{depth}"
                ckpt = self.checkpoint_dir / f"{name}.pt" if self.checkpoint_dir is not None else None
                self.trainers[name] = Trainer(
                    _build(kind, depth, config, self.data), self.data, epochs=config.epochs,
                    batch_size=config.batch_size, lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, milestones=config.milestones or None,
                    warmup_steps=self.warmup_steps, augment=config.augment, device=device, seed=config.seed,
                    log_every=log_every, checkpoint=ckpt, resume=ckpt is not None, **options)
        for trainer in self.trainers.values():  # on a GPU each network's queued work is charged to itself
            trainer.timed_alone = True
        first = next(iter(self.trainers.values()))
        self.device = first.device
        c, h, w = self.data.image_shape
        self.log = RaceLog(
            config=config.to_dict(), nets=list(self.trainers),
            dataset={"name": config.dataset, "train": n_train, "test": len(self.data.test_images),
                     "image_shape": [c, h, w], "classes": self.data.num_classes},
            params={name: sum(p.numel() for p in t.model.parameters()) for name, t in self.trainers.items()},
            machine={"device": str(self.device), "torch": torch.__version__.split("+")[0],
                     "threads": (threads or torch.get_num_threads()) if self.device.type == "cpu" else None,
                     "wall_seconds": 0.0, "train_seconds": 0.0},
        )
        self._used = {name: 0 for name in self.trainers}  # trainer step records already summed into the log
        self._stop = False
        self._t0 = None
        self._elapsed = 0.0
        self._resume()

    # ---------------------------------------------------------------- state
    @property
    def step_count(self) -> int:
        """Optimisation steps done by each network (they advance together)."""
        return max(t.step_count for t in self.trainers.values())

    @property
    def done(self) -> bool:
        return all(t.done or name in self.log.diverged for name, t in self.trainers.items())

    @property
    def progress_epochs(self) -> float:
        return self.step_count / self.steps_per_epoch

    def stop(self) -> None:
        """Ask ``run()`` to return after the current step (safe to call from another thread)."""
        self._stop = True
        for t in self.trainers.values():
            t.stop()

    # ---------------------------------------------------------------- training
    def step(self) -> bool:
        """One optimisation step of every network still training (a diverged one drops out with its
        message in ``log.diverged``); True if it made a log point."""
        if self.done:
            raise RuntimeError("This race is over; make a new Race to train again.")
        if self._t0 is None:
            self._t0 = time.perf_counter()
        for name, trainer in self.trainers.items():
            if name in self.log.diverged or trainer.done:
                continue
            try:
                trainer.step()
            except TrainingDiverged as err:
                self.log.diverged[name] = str(err)
        within = self.step_count % self.steps_per_epoch or self.steps_per_epoch
        if within in self._marks or self.done:
            self._record()
            return True
        return False

    def run(self) -> RaceLog:
        """Train to the end (or until ``stop()``); returns ``log``."""
        self._stop = False
        with cpu_threads(self.threads if self.device.type == "cpu" else None):
            try:
                while not self.done and not self._stop:
                    self.step()
            except BaseException:
                self.log.status = "failed"
                raise
            finally:
                self._elapsed += time.perf_counter() - self._t0 if self._t0 is not None else 0.0
                self._t0 = None
        if self.done:
            self.log.status = "finished" if len(self.log.diverged) < len(self.trainers) else "failed"
        else:
            self.log.status = "stopped"
        self._update_machine()
        return self.log

    def _update_machine(self):
        wall = self._elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)
        self.log.machine["wall_seconds"] = round(wall, 3)
        self.log.machine["train_seconds"] = round(sum(t.train_seconds for t in self.trainers.values()), 3)

    def _record(self):
        log = self.log
        step = self.step_count
        log.points["epoch"].append(step / self.steps_per_epoch)
        log.points["step"].append(step)
        for name, trainer in self.trainers.items():
            s = log.series[name]
            start = self._used[name]
            rows = trainer.history.steps[start:]
            self._used[name] = len(trainer.history.steps)
            if name in log.diverged or not rows:
                for key in log.KEYS:
                    s[key].append(None)
                continue
            # each record covers the steps since the one before (every batch has batch_size images)
            steps = [trainer.history.steps[start - 1]["step"] if start else 0] + [r["step"] for r in rows]
            n = [b - a for a, b in zip(steps, steps[1:])]
            total = sum(n)
            s["train_loss"].append(_clean(sum(r["loss"] * k for r, k in zip(rows, n)) / total))
            s["train_error"].append(_clean(1 - sum(r["acc"] * k for r, k in zip(rows, n)) / total))
            epochs = trainer.history.epochs
            if epochs and epochs[-1]["step"] == trainer.step_count:  # the end of an epoch: evaluated
                s["test_loss"].append(_clean(epochs[-1]["test_loss"]))
                s["test_error"].append(_clean(epochs[-1]["test_error"]))
                log.epochs[name] = [_json_record(r) for r in epochs]
            else:  # between epochs only the training curves advance (testing every point would cost more)
                s["test_loss"].append(None)
                s["test_error"].append(None)
        self._update_machine()
        log.points["seconds"].append(log.machine["wall_seconds"])
        if self.checkpoint_dir is not None and step % self.steps_per_epoch == 0:
            log.save(self.checkpoint_dir / "race.json")
        if self.on_log is not None:
            self.on_log(self)

    def _resume(self):
        if self.checkpoint_dir is None:
            return
        counts = {name: t.step_count for name, t in self.trainers.items()}
        if len(set(counts.values())) > 1:
            from cnnviz.train import CheckpointError

            raise CheckpointError(f"The checkpoints in {self.checkpoint_dir} are from different epochs "
                                  f"({counts}); delete them to start over.")
        step = next(iter(counts.values()))
        path = self.checkpoint_dir / "race.json"
        if step == 0 or not path.exists():
            return
        saved = RaceLog.load(path)
        if saved.config != self.log.config:
            from cnnviz.train import CheckpointError

            raise CheckpointError(f"{path} belongs to a race with other settings; use another checkpoint_dir.")
        keep = sum(1 for s in saved.points["step"] if s <= step)
        saved.points = {k: v[:keep] for k, v in saved.points.items()}
        saved.series = {n: {k: v[:keep] for k, v in s.items()} for n, s in saved.series.items()}
        saved.status = "running"
        self.log = saved
        self.log.epochs = {name: [_json_record(r) for r in t.history.epochs] for name, t in self.trainers.items()}
        self._used = {name: len(t.history.steps) for name, t in self.trainers.items()}
        self._elapsed = saved.machine.get("wall_seconds", 0.0)


def _json_record(record: dict) -> dict:
    return {k: _clean(v) if isinstance(v, float) else v for k, v in record.items()}


def race(config: RaceConfig = EMBEDDED, *, data: TensorData = None, device=None, threads=1, on_log=None,
         **trainer_options) -> RaceLog:
    """Run one race to the end and return its ``RaceLog`` (see ``Race``)."""
    return Race(config, data=data, device=device, threads=threads, on_log=on_log, **trainer_options).run()


def cache_key(config: RaceConfig) -> str:
    """A short name for a race's settings: the file name of its cached log."""
    text = json.dumps(config.to_dict(), sort_keys=True) + LOG_FORMAT
    return f"race-{config.dataset}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached_race(config: RaceConfig = EMBEDDED, *, cache=None, threads=1, refresh: bool = False) -> RaceLog:
    """The race's log from ``cache`` (default ``cnnviz.data.cache_dir() / "races"``), keyed by its settings;
    when it is not there (or ``refresh``), run the race on the CPU with ``threads`` and store its log first.
    Only finished races are stored. Used by the book, so that a build trains only once."""
    from cnnviz.data import cache_dir

    folder = Path(cache) if cache is not None else cache_dir() / "races"
    path = folder / f"{cache_key(config)}.json"
    if path.exists() and not refresh:
        try:
            log = RaceLog.load(path)
            if log.config == config.to_dict() and log.status == "finished":
                return log
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            pass  # a damaged or outdated file: run again and overwrite it
    log = race(config, device="cpu", threads=threads)
    if log.status == "finished":
        try:
            log.save(path)
        except OSError as err:  # a read-only cache: the result is still good, only not kept
            warnings.warn(f"Could not store the race's log in {folder} ({err}); it will be trained again next time.",
                          stacklevel=2)
    return log


def cifar_race(*, depths=(20, 56), epochs: int = None, seed: int = 0, root=None, download: bool = True,
               device=None, on_log=None, checkpoint_dir=None, **changes) -> RaceLog:
    """The race on CIFAR-10 with the paper's recipe (``CIFAR10``: SGD momentum 0.9, weight decay 1e-4,
    lr 0.1 divided by 10 at 50 % and 75 %, batch 128, crop+flip augmentation, 164 epochs).

    ``epochs`` shortens or lengthens the run (the milestones stay at 50 % and 75 %); ``changes``
    override other ``RaceConfig`` fields. With a depth above 56, every network first trains one epoch
    at lr 0.01 (the paper does so for ResNet-110, "until the training error is below 80 %").
    CIFAR-10 is downloaded into ``root`` (default ``cnnviz.data.cache_dir()``); without internet this
    raises ``cnnviz.data.DatasetUnavailable`` saying what to do. Meant for a GPU: 164 epochs of four
    networks take many hours on a CPU.
    ``checkpoint_dir``: resume an interrupted run (see ``Race``).
    """
    if "warmup_epochs" not in changes and max(depths) > 56:
        changes["warmup_epochs"] = 1.0  # the paper warms ResNet-110 up at lr 0.01 for about 400 iterations
    config = CIFAR10.replace(depths=tuple(depths), seed=seed, **({"epochs": epochs} if epochs else {}), **changes)
    data = race_data("cifar10", root=root, download=download)
    return Race(config, data=data, device=device, on_log=on_log, checkpoint_dir=checkpoint_dir).run()


# ----------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Verdict:
    """``losses``: each network's training loss over its last epoch. The deep plain net is *degraded*
    when its loss is above ``ratio`` times the shallow plain net's plus ``margin``; the deep residual
    net is *no worse* when its loss is at most the shallow one's plus ``tolerance``."""

    shallow: int
    deep: int
    losses: dict
    degraded: bool
    residual_no_worse: bool
    ratio: float
    margin: float
    tolerance: float

    @property
    def holds(self) -> bool:
        """Both: the degradation problem appears, and the shortcuts remove it."""
        return self.degraded and self.residual_no_worse


def degradation(log: RaceLog, *, ratio: float = 2.0, margin: float = 0.05, tolerance: float = 0.01) -> Verdict:
    """Judge a finished race of plain and residual nets by their final training losses (see ``Verdict``).
    The shallowest and deepest depths of the race are compared."""
    config = log.race_config
    if set(config.kinds) != set(KINDS):
        raise ValueError("degradation() needs both plain and residual networks in the race.")
    shallow, deep = min(config.depths), max(config.depths)
    losses = {name: log.final(name, "train_loss") for name in log.nets}
    if any(losses[f"{k}-{d}"] is None for k in KINDS for d in (shallow, deep)):
        raise ValueError("The race has not trained a full epoch of every network yet.")
    p_s, p_d = losses[f"plain-{shallow}"], losses[f"plain-{deep}"]
    r_s, r_d = losses[f"resnet-{shallow}"], losses[f"resnet-{deep}"]
    return Verdict(shallow, deep, losses, degraded=p_d > ratio * p_s + margin, residual_no_worse=r_d <= r_s + tolerance,
                   ratio=ratio, margin=margin, tolerance=tolerance)


# ----------------------------------------------------------------------------- gradients at initialisation


@dataclass(frozen=True)
class Gradients:
    """``names``: the stem and every block, input side first; ``norms``: the L2 norm of the gradient of
    the loss with respect to each one's output (the whole batch); ``first_layer``: of the first
    convolution's weights."""

    names: tuple
    norms: tuple
    first_layer: float


def gradient_norms(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Gradients:
    """How strongly the loss reaches back to each block of a CIFAR-style ResNet (or its plain twin).

    ``images`` (B, C, H, W) float, normalised; ``labels`` (B,). One forward pass in training mode (batch
    statistics, as in the first step of training) and ``torch.autograd.grad``; runs on a copy, so
    ``model`` (its weights, gradients, running statistics and mode) is left as it was.
    """
    net = copy.deepcopy(model).train()
    blocks = [("stem", net.stem)] + [(f"{s}.{i}", b) for s in ("layer1", "layer2", "layer3")
                                     for i, b in enumerate(getattr(net, s))]
    outputs = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for _, m in blocks]
    try:
        loss = F.cross_entropy(net(images), labels)
    finally:
        for h in handles:
            h.remove()
    first = net.stem[0].weight
    grads = torch.autograd.grad(loss, outputs + [first])
    return Gradients(tuple(n for n, _ in blocks), tuple(float(g.norm()) for g in grads[:-1]), float(grads[-1].norm()))
