"""cnnviz.train: the trainer learns, resumes exactly, stops cleanly, guards against NaN, and its loader
makes the same batches as a plain per-image reference. Tiny models and data: each test takes about a second."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.data import DatasetUnavailable, cifar10_tensors, digits_tensors
from cnnviz.train import CheckpointError, DeviceLoader, History, TensorData, Trainer, TrainingDiverged, fit


def tiny_cnn(in_channels=1, classes=10, seed=0, widths=(8, 16)):
    torch.manual_seed(seed)
    a, b = widths
    return nn.Sequential(nn.Conv2d(in_channels, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(b, classes))


@pytest.fixture(scope="module")
def digits():
    return TensorData.from_arrays(**digits_tensors())


@pytest.fixture(scope="module")
def small(digits):
    return digits.take(256, 64)


QUIET = dict(progress=False, device="cpu", pad=1, flip=False)


def _numbers(history, drop=("seconds", "images_per_s")):
    """The history without its timings."""
    return ([{k: v for k, v in r.items() if k not in drop} for r in history.epochs],
            [{k: v for k, v in r.items() if k not in drop} for r in history.steps])


# ----------------------------------------------------------------------------- data


def test_from_arrays_accepts_common_layouts_and_computes_normalisation():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (10, 6, 5, 3), dtype=np.uint8)        # as torchvision's CIFAR10.data
    d = TensorData.from_arrays(nhwc, np.arange(10) % 3, nhwc[:4], np.zeros(4, dtype=np.int64))
    assert d.train_images.shape == (10, 3, 6, 5) and d.train_images.dtype == torch.uint8
    assert torch.equal(d.train_images, torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    x = nhwc / 255.0
    np.testing.assert_allclose(d.mean, x.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(d.std, x.std(axis=(0, 1, 2)), rtol=1e-9)
    assert d.num_classes == 3 and d.image_shape == (3, 6, 5)
    floats = TensorData.from_arrays(torch.rand(5, 7, 7), torch.arange(5), torch.rand(2, 7, 7), torch.arange(2))
    assert floats.train_images.shape == (5, 1, 7, 7)                   # (N, H, W) floats in [0, 1]
    with pytest.raises(ValueError, match="one per image"):
        TensorData.from_arrays(nhwc, np.arange(9), nhwc, np.arange(10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TensorData.from_arrays(rng.normal(size=(4, 3, 5, 5)), np.arange(4), nhwc, np.arange(10))


def test_cifar10_offline_raises_or_falls_back(tmp_path):
    with pytest.raises(DatasetUnavailable, match="fallback='digits'"):
        cifar10_tensors(root=tmp_path, download=False)
    with pytest.warns(UserWarning, match="embedded digits"):
        d = cifar10_tensors(root=tmp_path, download=False, fallback="digits")
    assert d["train_images"].shape[1:] == (1, 8, 8) and d["train_images"].dtype == torch.uint8
    assert len(d["train_labels"]) + len(d["test_labels"]) == 1797


def _reference_batches(images, labels, *, batch_size, mean, std, pad, seed):
    """The plain way: draw as documented (``draw_epoch``), then pad, cut, mirror and normalise image by image."""
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    perm = torch.randperm(n, generator=g)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    flips = torch.randint(0, 2, (n,), generator=g)
    mean, std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    h, w = images.shape[2:]
    out = []
    for k in range(n // batch_size):
        xs = []
        for j in range(k * batch_size, (k + 1) * batch_size):
            padded = F.pad(images[perm[j]], (pad, pad, pad, pad))          # (C, H + 2p, W + 2p), zeros around
            oy, ox = offsets[j].tolist()
            crop = padded[:, oy:oy + h, ox:ox + w]
            if flips[j]:
                crop = crop.flip(-1)
            xs.append((crop.float() / 255 - mean) / std)
        out.append((torch.stack(xs), labels[perm[k * batch_size:(k + 1) * batch_size]]))
    return out


@pytest.mark.parametrize("channels_last", [False, True])
def test_device_loader_makes_the_reference_batches(channels_last):
    images = torch.randint(0, 256, (23, 3, 9, 7), dtype=torch.uint8)
    labels = torch.arange(23)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = DeviceLoader(images, labels, batch_size=5, mean=mean, std=std, device="cpu", augment=True, pad=3,
                          channels_last=channels_last, generator=torch.Generator().manual_seed(7))
    got = list(loader)
    want = _reference_batches(images, labels, batch_size=5, mean=mean, std=std, pad=3, seed=7)
    assert len(got) == len(loader) == 4                                  # 23 // 5, the rest left out
    for (x, y), (xr, yr) in zip(got, want):
        assert x.dtype == torch.float32 and x.shape == (5, 3, 9, 7)
        assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert torch.equal(y, yr)
        torch.testing.assert_close(x, xr, rtol=0, atol=1e-5)
    # the next epoch continues the same generator: new order, new crops
    assert not torch.equal(next(iter(loader))[1], got[0][1])


def test_device_loader_in_order_without_augmentation():
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.arange(10), batch_size=4, mean=(0.5,), std=(0.25,), device="cpu",
                          shuffle=False)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]                     # evaluation keeps every image
    x = torch.cat([x for x, _ in batches])
    torch.testing.assert_close(x, (images.float() / 255 - 0.5) / 0.25)


# ----------------------------------------------------------------------------- training


def test_trainer_learns_digits(digits):
    model = tiny_cnn(widths=(32, 64))  # few, wide steps: quick even when other work loads the CPU
    logged = []
    t = Trainer(model, digits, epochs=3, batch_size=128, lr=0.2, seed=0, train_eval_size=200,
                on_log=lambda tr: logged.append(tr.step_count), **QUIET)
    history = t.fit()
    assert isinstance(history, History) and t.done and len(history.epochs) == 3
    first, last = history.steps[0], history.epochs[-1]
    assert last["train_loss"] < 0.5 * first["loss"]
    assert last["test_acc"] > 0.6 and last["train_eval_acc"] > 0.6     # chance: 0.1
    assert math.isclose(last["test_error"], 1 - last["test_acc"])
    assert logged == [r["step"] for r in history.steps]
    assert history.series("test_acc") == [r["test_acc"] for r in history.epochs]
    assert model.training                                                # evaluate() restored the mode
    with pytest.raises(RuntimeError, match="finished"):
        t.step()


def test_fit_wrapper_milestones_and_progress_bar(small, capsys):
    history = fit(tiny_cnn(), small, epochs=4, batch_size=32, lr=0.1, milestones=(0.5, 3), seed=1,
                  **dict(QUIET, progress=True))
    assert [r["lr"] for r in history.epochs] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert "32/32" in capsys.readouterr().err                           # tqdm's bar: 4 epochs of 8 steps


def test_warm_up_at_a_tenth_then_the_milestones(small):
    """He et al.'s warm-up: lr / 10 for the first steps, then lr, then / 10 at each milestone; the optimiser
    uses exactly the rate ``current_lr`` announces."""
    t = Trainer(tiny_cnn(), small, epochs=2, batch_size=64, lr=0.1, warmup_steps=3, milestones=(1,), **QUIET)
    rates = []
    while not t.done:
        announced = t.current_lr
        t.step()
        assert t.optimizer.param_groups[0]["lr"] == pytest.approx(announced)
        rates.append(announced)
    steps = t.steps_per_epoch                                             # the milestone: epoch 1
    assert rates == pytest.approx([0.01] * 3 + [0.1] * (steps - 3) + [0.01] * steps)


def _trainer(data, path=None, *, model_seed=0, **kw):
    args = dict(epochs=4, batch_size=64, lr=0.05, seed=3, log_every=3, checkpoint=path, **QUIET)
    args.update(kw)
    return Trainer(tiny_cnn(seed=model_seed), data, **args)


@pytest.mark.parametrize("how", ["extend", "interrupt"])
def test_resume_reproduces_the_uninterrupted_run(small, tmp_path, how):
    milestones = None if how == "extend" else (0.6,)
    whole = _trainer(small, milestones=milestones)
    whole.fit()
    path = tmp_path / "run.pt"
    if how == "extend":       # a 2-epoch run, later extended to 4
        _trainer(small, path, epochs=2).fit()
    else:                     # a 4-epoch run that dies after its second epoch
        t = _trainer(small, path, milestones=milestones)
        t.run_epoch()
        t.run_epoch()
        t.step()              # progress after the checkpoint is lost
    resumed = _trainer(small, path, model_seed=99, resume=True, milestones=milestones)  # other init: overwritten
    assert resumed.epoch == 2 and resumed.step_count == 8
    resumed.fit()
    assert _numbers(resumed.history) == _numbers(whole.history)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_stop_returns_after_the_current_step_and_fit_goes_on(small):
    whole = _trainer(small, epochs=2)
    whole.fit()

    def stop_at_3(trainer):  # as a Stop button would, in the middle of the first epoch (4 steps)
        if trainer.step_count == 3:
            trainer.stop()

    t = _trainer(small, epochs=2, log_every=1, on_log=stop_at_3)
    history = t.fit()
    assert t.stopped and t.step_count == 3 and history.steps[-1]["step"] == 3 and not history.epochs
    t.on_log = None
    t.fit()
    assert t.done and not t.stopped
    assert [r["test_loss"] for r in t.history.epochs] == [r["test_loss"] for r in whole.history.epochs]


class NaNAt(nn.Module):
    """Wraps a model; its training forward number ``at`` returns NaN scores (a poisoned step)."""

    def __init__(self, model, at):
        super().__init__()
        self.model, self.at, self.calls = model, at, 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                out = out * float("nan")
        return out


def test_nan_loss_stops_with_history_kept(small):
    model = NaNAt(tiny_cnn(), at=6)
    t = Trainer(model, small, epochs=2, batch_size=32, lr=0.05, seed=0, log_every=2, **QUIET)
    with pytest.raises(TrainingDiverged, match="diverged at step 6.*smaller learning rate") as info:
        t.fit()
    assert info.value.step == 6 and info.value.history is t.history
    assert [r["step"] for r in t.history.steps] == [2, 4, 5]            # the good steps, flushed
    assert t.step_count == 5
    assert all(torch.isfinite(p).all() for p in model.parameters())   # the bad update was not made
    with pytest.raises(TrainingDiverged):
        t.step()


def test_nan_found_at_the_next_log_point_when_checks_are_deferred(small):
    """On CUDA the NaN check waits for a log point (no per-step host sync); the CPU can run that path too."""
    t = Trainer(NaNAt(tiny_cnn(), at=6), small, epochs=2, batch_size=32, lr=0.05, seed=0, log_every=4, **QUIET)
    t._check_each_step = False
    with pytest.raises(TrainingDiverged, match="diverged at step 6") as info:
        t.fit()
    assert info.value.step == 6 and t.step_count == 8                  # noticed at the log point of step 8
    assert t.history.steps[0]["step"] == 4 and math.isnan(t.history.steps[-1]["loss"])


@pytest.mark.parametrize("kw, match", [
    (dict(lr=0), "lr"), (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(batch_size=257), "larger than the training set"), (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"), (dict(epochs=1.5), "epochs"),
    (dict(milestones=(5,)), "not before the end"), (dict(milestones=(-1,)), "milestones"),
    (dict(momentum=1.0), "momentum"), (dict(weight_decay=-1), "weight_decay"), (dict(log_every=0), "log_every"),
    (dict(amp="fp8"), "amp"), (dict(warmup_steps=-1), "warmup_steps"), (dict(warmup_steps=1.5), "warmup_steps"),
])
def test_bad_arguments_are_explained(small, kw, match):
    args = dict(epochs=2, batch_size=32, **QUIET)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        Trainer(tiny_cnn(), small, **args)


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture
def checkpointed(small, tmp_path):
    path = tmp_path / "run.pt"
    _trainer(small, path, epochs=1).fit()
    return path


def test_damaged_checkpoint_is_detected(small, checkpointed, tmp_path):
    raw = checkpointed.read_bytes()
    checkpointed.write_bytes(raw[: len(raw) // 2])                      # truncated
    with pytest.raises(CheckpointError, match="cannot be read.*restart_if_corrupt=True"):
        _trainer(small, checkpointed, resume=True)
    with pytest.warns(UserWarning, match="Starting over"):
        t = _trainer(small, checkpointed, resume=True, restart_if_corrupt=True)
    assert t.epoch == 0 and not t.history.epochs

    # readable but altered: a weight changed without the checksum knowing
    with pytest.warns(UserWarning, match="overwritten"):
        _trainer(small, checkpointed, epochs=1).fit()
    ckpt = torch.load(checkpointed, weights_only=True)
    next(iter(ckpt["model"].values())).view(-1)[0] += 1
    torch.save(ckpt, checkpointed)
    with pytest.raises(CheckpointError, match="checksum"):
        _trainer(small, checkpointed, resume=True)

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(3)}, other)
    with pytest.raises(CheckpointError, match="not a cnnviz.train checkpoint"):
        _trainer(small, other, resume=True)


def test_checkpoint_of_another_run_is_refused(small, checkpointed):
    with pytest.raises(CheckpointError, match="batch_size=64 there, 16 here"):
        _trainer(small, checkpointed, resume=True, batch_size=16)


def test_interrupted_save_leaves_the_previous_checkpoint(small, checkpointed, monkeypatch):
    before = checkpointed.read_bytes()
    t = _trainer(small, checkpointed, resume=True)

    def failing_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        t.run_epoch()                                                    # ends with a checkpoint
    monkeypatch.undo()
    assert checkpointed.read_bytes() == before
    assert list(checkpointed.parent.iterdir()) == [checkpointed]         # no temporary file left behind
    assert _trainer(small, checkpointed, resume=True).epoch == 1


def test_existing_checkpoint_without_resume_warns(small, checkpointed):
    with pytest.warns(UserWarning, match="resume=True"):
        _trainer(small, checkpointed)


def test_without_seed_the_run_follows_torch_generator(small):
    """Without seed, the trainer draws one from torch's generator: repeatable after torch.manual_seed."""
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runs.append(_numbers(fit(tiny_cnn(), small, epochs=1, batch_size=64, **QUIET)))
    assert runs[0] == runs[1]
