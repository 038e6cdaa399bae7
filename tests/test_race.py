"""cnnviz.race: plain and residual twins trained in turns, the log they leave, and the degradation it shows.

Oracles: the trainers' own records (a race's windows add up to each epoch's mean; its test errors
are the trainers' evaluations), autograd on the model itself (gradient norms), and the paper's claim
(the deep plain net trains worse, the deep residual one does not) on five seeds of the embedded race.
Most tests use a tiny race (256 digits, depths 8 and 14, width 4): about a second each. The five-seed
test trains the full embedded race five times (about 50 s of CPU each, two at a time).
"""
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

import cnnviz.race as race_module
from cnnviz.data import DatasetUnavailable, digits_tensors
from cnnviz.race import (CIFAR10, EMBEDDED, Race, RaceConfig, RaceLog, build_net, cached_race, cifar_race,
                         degradation, gradient_norms, net_names, race, race_data)
from cnnviz.train import TensorData, TrainingDiverged

TINY = EMBEDDED.replace(depths=(8, 14), width=4, epochs=2, batch_size=64, logs_per_epoch=2, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def small():
    return TensorData.from_arrays(**digits_tensors()).take(256, 64)  # 4 steps of 64 per epoch


def tiny_race(small, **kw):
    return Race(TINY.replace(**kw), data=small, device="cpu")


# ----------------------------------------------------------------------------- settings


def test_configs_state_the_recipes():
    assert EMBEDDED.dataset == "digits" and EMBEDDED.depths == (20, 56) and not EMBEDDED.augment
    assert (CIFAR10.dataset, CIFAR10.width, CIFAR10.batch_size, CIFAR10.lr, CIFAR10.momentum,
            CIFAR10.weight_decay, CIFAR10.milestones, CIFAR10.augment) == \
           ("cifar10", 16, 128, 0.1, 0.9, 1e-4, (0.5, 0.75), True)
    assert CIFAR10.warmup_epochs == 0
    assert net_names(EMBEDDED) == ["plain-20", "plain-56", "resnet-20", "resnet-56"]
    assert "width 8" in EMBEDDED.describe() and "no augmentation" in EMBEDDED.describe()
    assert RaceConfig.from_dict(EMBEDDED.to_dict()) == EMBEDDED


@pytest.mark.parametrize("changes, match", [
    (dict(depths=(20, 21)), "6n \\+ 2"), (dict(depths=(20, 20)), "different depths"), (dict(depths=()), "depths"),
    (dict(kinds=("plain", "dense")), "kinds"), (dict(dataset="mnist"), "dataset"), (dict(epochs=0), "epochs"),
    (dict(width=2.5), "width"), (dict(warmup_epochs=-1), "warmup_epochs"), (dict(warmup_epochs="2"), "warmup"),
])
def test_config_rejects_bad_settings_with_a_sentence(changes, match):
    with pytest.raises(ValueError, match=match):
        EMBEDDED.replace(**changes)


# ----------------------------------------------------------------------------- the race


def test_twins_start_from_the_same_weights_and_see_the_same_batches(small):
    r = tiny_race(small)
    for depth in (8, 14):
        plain, res = r.trainers[f"plain-{depth}"], r.trainers[f"resnet-{depth}"]
        a, b = plain.model.state_dict(), res.model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert plain.seed == res.seed
    different = [t.model.stem[0].weight for t in (r.trainers["plain-8"], r.trainers["plain-14"])]
    assert not torch.equal(*different)  # the depths are not copies of each other
    # the seed is the caller's only source of randomness: the same race twice is the same race
    again = tiny_race(small)
    assert all(torch.equal(r.trainers[n].model.stem[0].weight, again.trainers[n].model.stem[0].weight)
               for n in r.trainers)


def test_models_are_built_without_touching_the_global_generator(small):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_race(small)
    assert torch.equal(torch.rand(3), expected)


def test_steps_interleave_round_robin(small):
    r = tiny_race(small)
    order = []
    for name, t in r.trainers.items():
        t.step = (lambda step, name: lambda: (order.append(name), step())[1])(t.step, name)
    for _ in range(3):
        r.step()
    assert order == list(r.trainers) * 3
    assert {t.step_count for t in r.trainers.values()} == {3}


def test_each_network_is_charged_its_own_device_time(small, monkeypatch):
    """On a GPU a step only queues work; a synchronisation waits for everything queued, whoever queued it. A
    simulated device (a clock that advances only when synchronised, networks that queue 1 and 10 units per
    training step) shows each network charged exactly its own work: a race synchronises around every step."""
    import types

    import cnnviz.train as train_module

    clock = {"now": 0.0, "queued": 0.0}

    def synchronize(device):
        clock["now"], clock["queued"] = clock["now"] + clock["queued"], 0.0

    monkeypatch.setattr(train_module, "synchronize", synchronize)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    r = tiny_race(small, logs_per_epoch=1)
    costs = dict(zip(r.trainers, (1.0, 10.0, 3.0, 30.0)))
    for name, t in r.trainers.items():
        def queue(module, args, out, cost=costs[name]):
            if module.training:                      # evaluation is not a training step
                clock["queued"] += cost
        t.model.register_forward_hook(queue)
    for _ in range(3):                               # within the first epoch: no log point yet
        r.step()
    for name, t in r.trainers.items():
        assert t.train_seconds == pytest.approx(3 * costs[name]), name


def test_log_windows_add_up_to_the_trainers_records(small):
    r = tiny_race(small)
    log = r.run()
    assert log.status == "finished" and r.done and len(log) == 2 * 2
    assert log.points["step"] == [2, 4, 6, 8] and log.points["epoch"] == [0.5, 1.0, 1.5, 2.0]
    assert log.points["seconds"] == sorted(log.points["seconds"])
    for name, t in r.trainers.items():
        s = log.series[name]
        for e, record in enumerate(t.history.epochs):
            # two windows of two steps each make one epoch
            assert math.isclose((s["train_loss"][2 * e] + s["train_loss"][2 * e + 1]) / 2, record["train_loss"],
                                rel_tol=1e-9)
            assert math.isclose((s["train_error"][2 * e] + s["train_error"][2 * e + 1]) / 2,
                                record["train_error"], rel_tol=1e-9, abs_tol=1e-12)
            # test error: measured at the end of the epoch only, by the trainer itself
            assert s["test_error"][2 * e] is None and s["test_error"][2 * e + 1] == record["test_error"]
            assert s["test_loss"][2 * e + 1] == record["test_loss"]
        assert log.epochs[name] == t.history.epochs
        assert log.final(name) == t.history.epochs[-1]["train_loss"]
    assert log.params["plain-8"] == log.params["resnet-8"] > 0  # option A shortcuts have no parameters


def test_log_points_need_not_divide_the_epoch(small):
    """11 steps per epoch (the embedded digits at batch 128) and 4 points: windows of 3, 3, 2 and 3 steps."""
    data = TensorData.from_arrays(**digits_tensors())
    r = Race(EMBEDDED.replace(depths=(8, 14), width=4, epochs=1, kinds=("resnet",), warmup_epochs=0), data=data,
             device="cpu")
    log = r.run()
    assert log.points["step"] == [3, 6, 8, 11]
    t = r.trainers["resnet-8"]
    steps = [3, 3, 2, 3]
    mean = sum(v * n for v, n in zip(log.series["resnet-8"]["train_loss"], steps)) / 11
    assert math.isclose(mean, t.history.epochs[0]["train_loss"], rel_tol=1e-9)


def test_warmup_trains_at_a_tenth_of_the_rate_then_follows_the_milestones(small):
    r = tiny_race(small, epochs=4, warmup_epochs=1.0)  # 16 steps; milestones at 50 % and 75 %
    r.run()
    lrs = [row["lr"] for row in r.trainers["resnet-8"].history.steps]
    steps = [row["step"] for row in r.trainers["resnet-8"].history.steps]
    expected = {s: 0.01 if s <= 4 else 0.1 if s <= 8 else 0.01 if s <= 12 else 0.001 for s in steps}
    assert all(math.isclose(lr, expected[s]) for lr, s in zip(lrs, steps)), list(zip(steps, lrs))


def test_on_log_is_called_and_stop_ends_the_run_between_rounds(small):
    seen = []

    def on_log(r):
        seen.append(len(r.log))
        if len(r.log) == 2:
            r.stop()

    r = Race(TINY, data=small, device="cpu", on_log=on_log)
    log = r.run()
    assert seen == [1, 2] and log.status == "stopped"
    assert {t.step_count for t in r.trainers.values()} == {4}  # every network stopped at the same step
    log = r.run()  # and goes on from there
    assert log.status == "finished" and len(log) == 4 and seen == [1, 2, 3, 4]


def test_a_diverged_network_drops_out_and_the_others_go_on(small):
    r = tiny_race(small)
    victim = r.trainers["plain-14"]
    real_step = victim.step

    def step():
        if victim.step_count == 3:
            raise TrainingDiverged("Training diverged at step 4: the loss became nan.", history=victim.history,
                                   step=4)
        return real_step()

    victim.step = step
    log = r.run()
    assert log.status == "finished" and list(log.diverged) == ["plain-14"] and "diverged" in log.diverged["plain-14"]
    assert log.series["plain-14"]["train_loss"][2:] == [None, None]
    assert all(v is not None for v in log.series["resnet-14"]["train_loss"])
    assert r.trainers["resnet-14"].done


def test_log_round_trips_through_json(small, tmp_path):
    log = tiny_race(small).run()
    path = log.save(tmp_path / "race.json")
    again = RaceLog.load(path)
    assert again.to_dict() == log.to_dict() and again.race_config == TINY
    snap = log.snapshot()
    log.points["epoch"].append(99.0)
    assert snap.points["epoch"][-1] != 99.0  # a snapshot does not follow later changes
    with pytest.raises(ValueError, match="not a race log"):
        RaceLog.from_dict({"format": "something else"})


def test_checkpoints_resume_a_race_exactly(small, tmp_path):
    full = tiny_race(small, epochs=3).run()
    first = Race(TINY.replace(epochs=3), data=small, device="cpu", checkpoint_dir=tmp_path,
                 on_log=lambda r: r.stop() if len(r.log) == 4 else None)
    assert first.run().status == "stopped"
    resumed = Race(TINY.replace(epochs=3), data=small, device="cpu", checkpoint_dir=tmp_path)
    assert resumed.step_count == 8 and len(resumed.log) == 4  # two epochs of four steps
    log = resumed.run()
    assert log.status == "finished"
    for name in full.nets:
        for key in ("train_loss", "train_error", "test_error"):
            assert log.series[name][key] == pytest.approx(full.series[name][key], nan_ok=True), (name, key)


def test_cached_race_trains_once(tmp_path, monkeypatch):
    calls = []
    real = race_module.race

    def counting(config, **kw):
        calls.append(config)
        return real(config, data=TensorData.from_arrays(**digits_tensors()).take(256, 64), **kw)

    monkeypatch.setattr(race_module, "race", counting)
    config = TINY
    first = cached_race(config, cache=tmp_path)
    second = cached_race(config, cache=tmp_path)
    assert len(calls) == 1 and second.to_dict() == first.to_dict()
    cached_race(config.replace(seed=1), cache=tmp_path)  # other settings, another file
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    next(tmp_path.glob("*.json")).write_text("{ damaged")
    cached_race(config, cache=tmp_path)
    cached_race(config.replace(seed=1), cache=tmp_path)
    assert len(calls) == 3  # a damaged file is trained again and replaced


def test_cifar_race_trains_with_the_papers_recipe(monkeypatch, tmp_path):
    """The CIFAR-10 path end to end on stand-in data of CIFAR-10's shape (the real set needs a download)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (256,), generator=g)
    fake = TensorData.from_arrays(images, labels, images[:64], labels[:64])
    asked = []
    monkeypatch.setattr(race_module, "race_data", lambda name, **kw: asked.append((name, kw)) or fake)
    log = cifar_race(depths=(8,), epochs=2, width=4, root=tmp_path / "data", download=False, device="cpu",
                     checkpoint_dir=tmp_path / "ckpt")
    assert asked == [("cifar10", {"root": tmp_path / "data", "download": False})]
    config = log.race_config
    assert (config.dataset, config.augment, config.lr, config.batch_size, config.milestones, config.warmup_epochs) \
        == ("cifar10", True, 0.1, 128, (0.5, 0.75), 0)
    assert log.status == "finished" and len(log) == 2 and log.dataset["image_shape"] == [3, 32, 32]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["plain-8.pt", "race.json", "resnet-8.pt"]
    monkeypatch.setattr(race_module.Race, "run", lambda self: self.log)  # settings only: no training
    deep = cifar_race(depths=(8, 110), epochs=2, width=4, device="cpu", kinds=("resnet",))
    assert deep.race_config.warmup_epochs == 1.0  # the paper warms ResNet-110 up


def test_build_net_names_a_race_network():
    a, b = build_net("plain-20"), build_net("resnet-20")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.stem[0].in_channels == 1 and a.fc.out_features == 10
    assert build_net("resnet-20", EMBEDDED.replace(width=16)).stem[0].out_channels == 16
    with pytest.raises(ValueError, match="plain-56"):
        build_net("dense-20")


def test_cifar_race_explains_how_to_get_cifar10(tmp_path):
    with pytest.raises(DatasetUnavailable, match="CIFAR-10"):
        cifar_race(root=tmp_path, download=False)
    with pytest.raises(DatasetUnavailable):
        race_data("cifar10", root=tmp_path, download=False)


# ----------------------------------------------------------------------------- the verdict


def _log_with_losses(losses):
    log = RaceLog(config=EMBEDDED.to_dict(), nets=net_names(EMBEDDED))
    for name, loss in losses.items():
        log.epochs[name] = [{"epoch": 20, "train_loss": loss}]
    return log


def test_degradation_verdict():
    good = degradation(_log_with_losses({"plain-20": 0.01, "plain-56": 1.5, "resnet-20": 0.001, "resnet-56": 0.002}))
    assert good.degraded and good.residual_no_worse and good.holds and (good.shallow, good.deep) == (20, 56)
    close = degradation(_log_with_losses({"plain-20": 0.2, "plain-56": 0.3, "resnet-20": 0.1, "resnet-56": 0.1}))
    assert not close.degraded and not close.holds
    worse = degradation(_log_with_losses({"plain-20": 0.01, "plain-56": 1.5, "resnet-20": 0.01, "resnet-56": 0.5}))
    assert worse.degraded and not worse.residual_no_worse
    with pytest.raises(ValueError, match="full epoch"):
        degradation(RaceLog(config=EMBEDDED.to_dict(), nets=net_names(EMBEDDED)))


def _embedded_verdict(seed):
    torch.set_num_threads(1)
    log = race(EMBEDDED.replace(seed=seed), device="cpu", threads=1)
    v = degradation(log)
    return seed, v.losses, v.degraded, v.residual_no_worse


def test_embedded_race_shows_the_degradation_problem_on_five_seeds():
    """The book's claim, on five seeds: plain-56 ends with a clearly higher training loss than plain-20
    (more than twice it, plus 0.05), and ResNet-56 ends no higher than ResNet-20 (within 0.01)."""
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_embedded_verdict, range(5)))
    failed = [r for r in results if not (r[2] and r[3])]
    assert not failed, "\n".join(f"seed {s}: {losses}" for s, losses, *_ in results)


# ----------------------------------------------------------------------------- gradients at initialisation


def _batch(n=64):
    d = TensorData.from_arrays(**digits_tensors())
    x = (d.train_images[:n].float() / 255 - d.mean[0]) / d.std[0]     # (n, 1, 8, 8)
    return x, d.train_labels[:n]


def test_gradient_norms_match_autograd_and_leave_the_model_alone():
    from cnnviz.models.resnet import cifar_resnet

    torch.manual_seed(0)
    model = cifar_resnet(20, width=4, in_channels=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch()
    g = gradient_norms(model, x, y)
    assert len(g.names) == len(g.norms) == 1 + 3 * 3 and g.names[0] == "stem" and g.names[-1] == "layer3.2"
    # unchanged: weights, running statistics, mode, gradients, hooks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    # oracle: the gradient at the last block's output, and at the first convolution, by plain backward
    ref = __import__("copy").deepcopy(model).train()
    features = ref.forward_features(x)
    features.retain_grad()
    torch.nn.functional.cross_entropy(ref.forward_head(features), y).backward()
    assert math.isclose(g.norms[-1], float(features.grad.norm()), rel_tol=1e-5)
    assert math.isclose(g.first_layer, float(ref.stem[0].weight.grad.norm()), rel_tol=1e-5)


def test_shortcuts_keep_the_gradient_in_proportion_at_initialisation():
    x, y = _batch(128)
    data = TensorData.from_arrays(**digits_tensors())
    ratio = {}
    for kind in ("plain", "resnet"):
        model = race_module._build(kind, 56, EMBEDDED, data)
        g = gradient_norms(model, x, y)
        ratio[kind] = g.norms[0] / g.norms[-1]
    # with batch norm the plain net's gradient grows layer after layer towards the input;
    # through the shortcuts it stays within a small factor
    assert ratio["plain"] > 100 * ratio["resnet"] and ratio["resnet"] < 100
