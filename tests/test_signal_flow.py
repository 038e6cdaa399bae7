"""cnnviz.signal_flow and cnnviz.trainability: activations and gradients layer by layer, and which initial
scales and learning rates train.

Oracles: the papers' claims on a 50-layer network (tiny tanh weights vanish, N(0, 1) ReLU weights explode, He's
keep the scale), autograd through a forward hook written here (gradients, update ratios), the layer outputs
counted here (histograms, inactive shares), and a training loop written out in plain torch (a map cell).
"""
import copy
import json
import math
from concurrent.futures import Future
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnviz.trainability as trainability
from cnnviz.data import digits_tensors
from cnnviz.initialisation import InitError, initialise_
from cnnviz.runtime import cpu_threads
from cnnviz.signal_flow import LOG_EDGES, SignalFlow, deep_mlp, digits_batch, signal_flow
from cnnviz.trainability import (Cell, MapConfig, TrainabilityMap, cached_trainability_map, digits_features,
                                 he_sigma, is_cached, train_cell)
from model_helpers import assert_no_hooks


@pytest.fixture(scope="module")
def batch():
    return digits_batch(256)


def _net(depth, width=256, activation="relu", scheme="kaiming_fan_in", sigma=None, batch_norm=False):
    model = deep_mlp(depth, width, activation=activation, batch_norm=batch_norm)
    return initialise_(model, scheme, activation=activation, sigma=sigma, seed=0)


def _outputs_and_grads(model, x, y, names):
    """Each named layer's output and the loss's gradient with respect to it, by hooks written here."""
    outs, handles = {}, []
    for n in names:
        handles.append(model.get_submodule(n).register_forward_hook(
            lambda _m, _i, o, n=n: outs.__setitem__(n, o)))
    try:
        with cpu_threads(1):
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, [outs[n] for n in names])
    finally:
        for h in handles:
            h.remove()
    return {n: outs[n].detach() for n in names}, dict(zip(names, grads)), loss


def _nonzero_finite(v):
    return int((torch.isfinite(v) & (v != 0)).sum())


# ----------------------------------------------------------------------------- the networks and the batch


def test_deep_mlp_layers_and_digits_batch():
    model = deep_mlp(3, 16, activation="tanh", batch_norm=True)
    assert [n for n, _ in model.named_children()] == ["fc1", "bn1", "act1", "fc2", "bn2", "act2", "fc3", "bn3",
                                                      "act3", "out"]
    assert model.signal_layers == ("act1", "act2", "act3") and isinstance(model.act2, nn.Tanh)
    assert model.fc1.bias is None and model.out.bias is not None
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    assert deep_mlp(2, 8, in_features=3, num_classes=4)(torch.zeros(1, 3)).shape == (1, 4)

    x, y = digits_batch(256)
    assert x.shape == (256, 64) and x.dtype == torch.float32 and y.shape == (256,)
    d = digits_tensors()
    images = torch.cat([d["train_images"], d["test_images"]]).flatten(1).float()
    labels = torch.cat([d["train_labels"], d["test_labels"]])
    standard = (images - images.mean(0)) / images.std(0).clamp_min(1e-6)
    # every row of the batch is one of the digits, with its label
    match = (x[:, None, :] == standard[None]).all(-1)
    assert match.sum(1).min() >= 1
    assert torch.equal(labels[match.float().argmax(1)], y)
    assert torch.equal(digits_batch(256)[0], x) and not torch.equal(digits_batch(256, seed=1)[0], x)
    big, _ = digits_batch(2000)
    assert big.shape == (2000, 64)



def test_set_activation_gives_what_deep_mlp_builds_with_the_same_weights():
    model = deep_mlp(3, 16, activation="tanh", batch_norm=True)
    weights = copy.deepcopy(model.state_dict())
    for activation in ("relu", "linear", "sigmoid"):
        assert model.set_activation_(activation) is model
        fresh = deep_mlp(3, 16, activation=activation, batch_norm=True)
        assert [(n, type(m)) for n, m in model.named_children()] == [(n, type(m)) for n, m in fresh.named_children()]
        assert model.activation == activation
        fresh.load_state_dict(weights)
        model.eval(), fresh.eval()                     # batch norm on its running statistics: nothing moves
        x = torch.randn(8, 64)
        assert torch.equal(model(x), fresh(x))
        assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    with pytest.raises(InitError, match="Unknown activation"):
        model.set_activation_("swish")


# ----------------------------------------------------------------------------- the chapter's three cases


def test_tiny_tanh_weights_make_the_signal_vanish(batch):
    x, y = batch
    flow = signal_flow(_net(50, activation="tanh", scheme="normal", sigma=0.01), x, y)
    assert flow.diverged_at is None and len(flow.activations) == 50 and flow.layers[0] == "act1"
    stds = [s.std for s in flow.activations]
    assert stds[39] < 1e-20
    assert stds[-1] == 0.0 or stds[-1] < 1e-30
    assert all(b <= a for a, b in zip(stds, stds[1:]))
    assert flow.gradients and all(math.isfinite(g.std) for g in flow.gradients)


def test_unit_normal_relu_weights_explode(batch):
    x, y = batch
    flow = signal_flow(_net(50, scheme="normal", sigma=1.0), x, y)
    assert flow.diverged_at is not None and 1 < flow.diverged_at <= 50
    assert not flow.activations[flow.diverged_at - 1].finite
    assert all(s.finite for s in flow.activations[:flow.diverged_at - 1])
    assert flow.gradients == [] and flow.weights == []
    assert not math.isfinite(flow.loss)
    assert f"Diverged at layer {flow.diverged_at}" in flow.summary()
    stds = [s.std for s in flow.activations[:flow.diverged_at - 1]]
    assert stds[-1] > 1e30 and all(b > a for a, b in zip(stds, stds[1:]))


def test_he_weights_keep_the_scale_of_a_relu_network(batch):
    x, y = batch
    flow = signal_flow(_net(50), x, y)
    first = flow.activations[0].std
    assert all(first / 2 <= s.std <= 2 * first for s in flow.activations)
    assert flow.diverged_at is None and len(flow.gradients) == 50
    assert flow.summary().startswith("Activations: std") and "Gradients" in flow.summary()


def test_a_classifier_that_overflows_diverges_after_the_last_layer(batch):
    x, y = batch
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    initialise_(model, "kaiming_fan_in", seed=0)
    with torch.no_grad():
        model[2].weight.fill_(3e38)
    flow = signal_flow(model, x, y)
    assert flow.layers == ["1"] and flow.activations[0].finite
    assert flow.diverged_at == 2 and flow.gradients == []


# ----------------------------------------------------------------------------- against autograd


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gradients_and_activations_agree_with_autograd(batch, batch_norm):
    x, y = batch
    model = _net(8, 64, batch_norm=batch_norm)
    flow = signal_flow(model, x, y)
    names = list(model.signal_layers)
    outs, grads, loss = _outputs_and_grads(copy.deepcopy(model).train(), x, y, names)
    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    for a, g, n in zip(flow.activations, flow.gradients, names):
        v, gv = outs[n].double(), grads[n].double()
        assert a.name == g.name == n
        assert a.mean == pytest.approx(float(v.mean()), rel=1e-5, abs=1e-9)
        assert a.std == pytest.approx(float(v.std(unbiased=False)), rel=1e-5)
        assert a.rms == pytest.approx(float(v.square().mean().sqrt()), rel=1e-5)
        assert g.std == pytest.approx(float(gv.std(unbiased=False)), rel=1e-5)
        assert g.mean == pytest.approx(float(gv.mean()), rel=1e-4, abs=1e-12)
        # ReLU: inactive where the output is 0; dead: units at 0 for every example
        assert a.inactive == pytest.approx(float((v == 0).double().mean()))
        assert a.zeros == a.inactive
        assert a.dead == pytest.approx(float((v == 0).all(0).double().mean()))
        # the histograms count every nonzero finite value once
        assert a.hist.sum() == _nonzero_finite(v) and g.hist.sum() == _nonzero_finite(gv)
        assert a.hist.shape == g.hist.shape == (len(LOG_EDGES) - 1,)
    # the last layer's histogram: in the bins of log10 of its values
    v = outs[names[-1]].double()
    counts, _ = np.histogram(np.log10(np.abs(v[v != 0].numpy())), bins=LOG_EDGES)
    assert np.array_equal(flow.activations[-1].hist, counts)


def test_update_ratio_is_lr_times_gradient_norm_over_weight_norm(batch):
    x, y = batch
    model = _net(6, 64)
    flow = signal_flow(model, x, y, lr=0.05)
    assert flow.lr == 0.05 and [w.name for w in flow.weights] == [f"fc{k}" for k in range(1, 7)] + ["out"]
    oracle = copy.deepcopy(model).train()
    with cpu_threads(1):
        F.cross_entropy(oracle(x), y).backward()
    for w in flow.weights:
        weight = oracle.get_submodule(w.name).weight.detach()
        grad = oracle.get_submodule(w.name).weight.grad
        ratio = 0.05 * float(grad.norm()) / float(weight.norm())
        assert w.update_ratio == pytest.approx(ratio, rel=1e-5)
        assert w.grad_std == pytest.approx(float(grad.std(unbiased=False)), rel=1e-5)   # as the layers' statistics
        assert w.weight_std == pytest.approx(float(weight.std(unbiased=False)), rel=1e-6)


def test_histograms_count_the_finite_values_of_a_diverging_network(batch):
    x, y = batch
    model = _net(50, scheme="normal", sigma=1.0)
    flow = signal_flow(model, x, y)
    outs = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda _m, _i, o, n=n: outs.__setitem__(n, o.detach()))
               for n in model.signal_layers]
    with cpu_threads(1), torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    k = flow.diverged_at - 1
    v = outs[flow.layers[k]]
    assert not torch.isfinite(v).all() and torch.isfinite(v).any()
    for s in flow.activations:
        assert s.hist.sum() == _nonzero_finite(outs[s.name].double())


def _overflowing(*layers):
    """Linear(64, 8) with weights 1e38 on inputs ≥ 0: every output is +inf (none NaN), then ``layers``."""
    model = initialise_(nn.Sequential(nn.Linear(64, 8), *layers), "kaiming_fan_in", seed=0)
    with torch.no_grad():
        model[0].weight.fill_(1e38)
        model[0].bias.zero_()
    return model


def test_a_layer_of_infinities_is_counted_as_overflowed(batch):
    x, y = batch
    model = _overflowing(nn.ReLU(), nn.Linear(8, 10))
    flow = signal_flow(model, x.abs(), y)
    assert flow.layers == ["1"] and flow.diverged_at == 1 and not flow.activations[0].finite
    assert flow.activations[0].hist.sum() == 0 and flow.gradients == []


def test_an_overflowed_layer_leaves_the_next_layers_histogram_alone(batch):
    x, y = batch
    model = _overflowing(nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 10))  # tanh(inf) = 1: finite again after
    flow = signal_flow(model, x.abs(), y, layers=["0", "2"])
    with torch.no_grad():
        after = model[:3](x.abs())
    assert [s.finite for s in flow.activations] == [False, True]
    assert flow.activations[1].hist.sum() == _nonzero_finite(after)
    assert flow.activations[1].hist[0] == 0  # nothing near 1e-40


def test_saturated_tanh_units_count_as_inactive(batch):
    x, y = batch
    model = _net(4, 128, activation="tanh", scheme="normal", sigma=1.0)
    flow = signal_flow(model, x, y)
    outs, _, _ = _outputs_and_grads(copy.deepcopy(model).train(), x, y, list(model.signal_layers))
    for s in flow.activations:
        v = outs[s.name]
        assert s.inactive == pytest.approx(float((v.abs() > 0.99).double().mean()))
        assert s.inactive > 0.3  # N(0, 1) weights on 128 inputs saturate most units


# ----------------------------------------------------------------------------- leaving the model as it was


def test_signal_flow_leaves_no_hook_no_grad_and_every_flag(batch):
    x, y = batch
    model = _net(5, 32).eval()
    model.fc3.train()
    flags = {n: m.training for n, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    flow = signal_flow(model, x, y)
    assert isinstance(flow, SignalFlow) and flow.gradients
    assert_no_hooks(model)
    assert all(p.grad is None for p in model.parameters())
    assert {n: m.training for n, m in model.named_modules()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_signal_flow_leaves_batch_norm_running_statistics_alone(batch):
    x, y = batch
    model = _net(3, 16, batch_norm=True)
    state = copy.deepcopy(model.state_dict())
    flow = signal_flow(model, x, y, layers=["fc1", "bn1", "act1"])
    assert flow.activations[0].std > 1.2                                  # He's weights on 64 standardised inputs
    assert flow.activations[1].mean == pytest.approx(0.0, abs=1e-6)       # the batch's own statistics: each
    assert flow.activations[1].std == pytest.approx(1.0, rel=1e-4)        # unit at mean 0 and variance 1
    assert flow.gradients and flow.gradients[1].std > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_signal_flow_removes_its_hooks_after_an_error(batch):
    x, y = batch
    model = _net(4, 16, batch_norm=True).eval()
    state = copy.deepcopy(model.state_dict())
    threads = torch.get_num_threads()

    def bad_loss(out, target):
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        signal_flow(model, x, y, loss_fn=bad_loss)
    assert_no_hooks(model)
    assert not any(m.training for m in model.modules())
    assert torch.get_num_threads() == threads
    for k, v in model.state_dict().items():  # the forward pass did run: its running statistics are undone
        assert torch.equal(v, state[k]), k
    with pytest.raises(ValueError):  # a layer that does not exist: no hook was put on the others
        signal_flow(model, x, y, layers=["act1", "act9"])
    assert_no_hooks(model)

def test_an_error_on_the_statistics_thread_reaches_the_caller_and_the_thread_is_gone(batch, monkeypatch):
    """The activations are measured on a second thread during the backward pass: its error is raised in the
    caller's thread, after the thread has been joined, and the results equal those measured on one thread."""
    import threading

    import cnnviz.signal_flow as sf

    x, y = batch
    model = _net(4, 16)
    one_thread = signal_flow(model, x, y)
    before = threading.active_count()
    real = sf._layer_stats

    def failing(names, tensors, modules):
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("statistics failed")
        return real(names, tensors, modules)

    monkeypatch.setattr(sf, "_layer_stats", failing)
    with pytest.raises(ValueError, match="statistics failed"):
        signal_flow(model, x, y)
    assert threading.active_count() == before and threading.current_thread() is threading.main_thread()
    assert_no_hooks(model)

    @contextmanager
    def on_this_thread(fn, *args):     # the same measurement with no second thread
        out = Future()
        out.set_result(fn(*args))
        yield out

    monkeypatch.setattr(sf, "_layer_stats", real)
    monkeypatch.setattr(sf, "_beside", on_this_thread)
    serial = signal_flow(model, x, y)
    for a, b in zip(serial.activations + serial.gradients, one_thread.activations + one_thread.gradients):
        assert (a.name, a.mean, a.std, a.inactive, a.dead, a.zeros) == (b.name, b.mean, b.std, b.inactive, b.dead,
                                                                        b.zeros)
        assert np.array_equal(a.hist, b.hist)
    assert len(serial.gradients) == len(one_thread.gradients) == 4


def test_layers_default_to_activations_else_weighted_layers(batch):
    x, y = batch
    plain = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    assert signal_flow(plain, x, y).layers == ["1", "3"]
    assert signal_flow(nn.Sequential(nn.Linear(64, 10)), x, y).layers == ["0"]
    chosen = signal_flow(plain, x, y, layers=["0", "2"])
    assert chosen.layers == ["0", "2"] and chosen.activations[0].inactive == 0.0
    with pytest.raises(InitError, match="layers="):
        signal_flow(nn.Sequential(nn.Flatten()), x, y)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), True])
def test_signal_flow_rejects_a_bad_learning_rate(batch, lr):
    x, y = batch
    with pytest.raises(InitError, match="learning rate must be a finite number above 0"):
        signal_flow(_net(2, 8), x, y, lr=lr)


# ----------------------------------------------------------------------------- the trainability map

SMALL = MapConfig(sigmas=(0.3,), lrs=(0.05,), depth=4, width=16, epochs=2)
TINY = MapConfig(sigmas=(0.1, 0.5), lrs=(0.01, 0.1), depth=3, width=8, epochs=1)


def _features():
    d = digits_tensors()
    train, test = d["train_images"].flatten(1).float(), d["test_images"].flatten(1).float()
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, d["train_labels"], (test - mean) / std, d["test_labels"]


def _train_by_hand(sigma, lr, batch_norm, config):
    """The cell's training written out: SGD with momentum, shuffled drop-last batches, test accuracy per epoch."""
    tx, ty, vx, vy = _features()
    model = initialise_(deep_mlp(config.depth, config.width, batch_norm=batch_norm), "normal", sigma=sigma,
                        seed=config.seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
    order = torch.Generator().manual_seed(config.seed)
    n, bs = len(ty), config.batch_size
    losses, accs = [], []
    with cpu_threads(1):
        for _ in range(config.epochs):
            perm = torch.randperm(n, generator=order)
            model.train()
            total = []
            for s in range(n // bs):
                idx = perm[s * bs:(s + 1) * bs]
                loss = F.cross_entropy(model(tx[idx]), ty[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total.append(loss.item())
            losses.append(sum(total) / len(total))
            model.eval()
            with torch.no_grad():
                accs.append(float((model(vx).argmax(1) == vy).float().mean()))
    return accs, losses


def test_digits_features_are_standardised_with_the_training_statistics():
    for a, b in zip(digits_features(), _features()):
        assert torch.equal(a, b)
    train_x = digits_features()[0]
    varying = train_x.std(0) > 0
    torch.testing.assert_close(train_x.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_x.std(0)[varying], torch.ones(int(varying.sum())), atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_cell_is_the_training_run_written_out(batch_norm):
    cell = train_cell(0.3, 0.05, batch_norm=batch_norm, config=SMALL)
    accs, losses = _train_by_hand(0.3, 0.05, batch_norm, SMALL)
    assert (cell.sigma, cell.lr, cell.batch_norm, cell.diverged_step) == (0.3, 0.05, batch_norm, None)
    assert cell.accuracy == accs[-1] and cell.test_accuracy == accs
    assert cell.train_loss == pytest.approx(losses, rel=1e-5)
    assert len(cell.train_loss) == 2 and cell.train_loss[1] < cell.train_loss[0]
    assert cell.accuracy > 0.3  # it learned something: chance is 0.1
    assert not cell.diverged and f"{100 * cell.accuracy:.1f} %" in cell.describe()


def test_a_diverging_cell_is_a_result_not_an_error():
    cell = train_cell(10.0, 10.0, batch_norm=False, config=SMALL)
    assert cell.diverged and cell.diverged_step >= 1 and math.isnan(cell.accuracy)
    assert f"diverged at step {cell.diverged_step}" in cell.describe()


def test_train_cell_rejects_a_bad_learning_rate_and_batch_size():
    with pytest.raises(InitError, match="learning rate"):
        train_cell(0.1, 0.0, batch_norm=False, config=SMALL)
    x = torch.zeros(10, 64)
    y = torch.zeros(10, dtype=torch.long)
    with pytest.raises(InitError, match="batch size"):
        train_cell(0.1, 0.1, batch_norm=False, config=SMALL, data=(x, y, x, y))


@pytest.mark.parametrize("changes, match", [
    (dict(sigmas=(0.1, 0.0)), "σ"), (dict(sigmas=(-1,)), "σ"), (dict(sigmas=(float("nan"),)), "σ"),
    (dict(sigmas=(float("inf"),)), "σ"), (dict(sigmas=()), "at least one"), (dict(lrs=(0,)), "learning rate"),
    (dict(lrs=(0.1, float("nan"))), "learning rate"), (dict(lrs=(-0.1,)), "learning rate"),
    (dict(lrs=()), "at least one"), (dict(epochs=0), "epochs"), (dict(batch_size=2.0), "batch_size"),
])
def test_map_config_rejects_bad_settings(changes, match):
    with pytest.raises(InitError, match=match):
        TINY.replace(**changes)


def test_map_config_stores_floats_and_he_sigma():
    c = MapConfig(sigmas=[1, 2], lrs=np.array([0.1]))
    assert c.sigmas == (1.0, 2.0) and c.lrs == (0.1,) and all(type(s) is float for s in c.sigmas + c.lrs)
    assert he_sigma(64) == pytest.approx(math.sqrt(2 / 64))


def test_cached_map_is_computed_once_then_read(tmp_path, monkeypatch):
    assert not is_cached(TINY, cache=tmp_path)
    seen = []
    first = cached_trainability_map(TINY, cache=tmp_path, on_cell=lambda _c, done, total: seen.append((done, total)))
    assert seen == [(k, 8) for k in range(1, 9)]
    assert is_cached(TINY, cache=tmp_path) and not is_cached(TINY.replace(epochs=2), cache=tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    assert first.accuracy(False).shape == first.accuracy(True).shape == (2, 2)
    assert first.cell(1, 0, True).sigma == 0.5 and first.cell(1, 0, True).lr == 0.01
    assert first.cell(1, 0, True).batch_norm and not first.cell(1, 0, False).batch_norm
    expected = train_cell(0.5, 0.01, batch_norm=True, config=TINY)
    assert first.cell(1, 0, True).accuracy == expected.accuracy

    def no_training(*args, **kwargs):
        raise AssertionError("the cached map was computed again")

    monkeypatch.setattr(trainability, "train_cell", no_training)
    again = cached_trainability_map(TINY, cache=tmp_path)
    assert again.config == TINY
    np.testing.assert_array_equal(again.accuracy(False), first.accuracy(False))
    np.testing.assert_array_equal(again.accuracy(True), first.accuracy(True))
    with pytest.raises(AssertionError, match="computed again"):
        cached_trainability_map(TINY, cache=tmp_path, refresh=True)
    monkeypatch.undo()

    files[0].write_text('{"format": "trainability-1", "config": ')  # cut short
    assert not is_cached(TINY, cache=tmp_path)
    fixed = cached_trainability_map(TINY, cache=tmp_path)
    np.testing.assert_array_equal(fixed.accuracy(True), first.accuracy(True))
    assert is_cached(TINY, cache=tmp_path)
    assert json.loads(files[0].read_text())["format"] == "trainability-1"


@pytest.mark.parametrize("text", ["", "not json", '{"format": "trainability-1", "cells": {}}', "[]", "null",
                                  '{"format": "trainability-1", "config": [], "cells": {}}'])
def test_a_damaged_cache_file_is_computed_again(tmp_path, text):
    config = MapConfig(sigmas=(0.2,), lrs=(0.1,), depth=2, width=4, epochs=1)
    first = cached_trainability_map(config, cache=tmp_path)
    path, = tmp_path.glob("*.json")
    path.write_text(text)
    assert not is_cached(config, cache=tmp_path)
    again = cached_trainability_map(config, cache=tmp_path)
    np.testing.assert_array_equal(again.accuracy(True), first.accuracy(True))
    assert is_cached(config, cache=tmp_path)


def _same_cells(a, b):
    for bn in (False, True):
        for row_a, row_b in zip(a.cells[bn], b.cells[bn], strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                key = lambda c: (c.sigma, c.lr, c.batch_norm, c.diverged_step)  # noqa: E731
                assert key(x) == key(y)
                np.testing.assert_array_equal([x.accuracy] + x.test_accuracy, [y.accuracy] + y.test_accuracy)
                assert x.train_loss == y.train_loss


def test_map_round_trips_through_a_dict_and_json():
    cells = {bn: [[Cell(0.1, 0.01, bn, 0.5, None, [0.4, 0.5], [2.0, 1.5]),
                   Cell(0.1, 10.0, bn, math.nan, 3, [], [])]] for bn in (False, True)}
    m = TrainabilityMap(TINY.replace(sigmas=(0.1,), lrs=(0.01, 10.0)), cells, 1.5)
    for d in (m.to_dict(), json.loads(json.dumps(m.to_dict()))):
        back = TrainabilityMap.from_dict(d)
        assert back.config == m.config and back.seconds == 1.5
        _same_cells(back, m)
    assert m.trainable_share(False, threshold=0.5) == 0.5 and m.trainable_share(True) == 0.0
    with pytest.raises(ValueError):
        TrainabilityMap.from_dict({**m.to_dict(), "format": "trainability-0"})


def test_an_empty_deep_mlp_once_initialised_is_the_built_one_and_draws_nothing():
    """Oracle: deep_mlp with torch's default weights, both then initialised by initialise_ with one seed; batch
    norm's parameters and statistics at their defaults; torch's random state untouched by the empty build."""
    for bn in (False, True):
        state = torch.get_rng_state()
        empty = deep_mlp(4, 16, batch_norm=bn, activation="tanh", empty=True)
        assert torch.equal(torch.get_rng_state(), state)
        built = deep_mlp(4, 16, batch_norm=bn, activation="tanh")
        a = initialise_(empty, "xavier_normal", activation="tanh", seed=2).state_dict()
        b = initialise_(built, "xavier_normal", activation="tanh", seed=2).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), bn
        assert all(p.device.type == "cpu" for p in empty.parameters())
