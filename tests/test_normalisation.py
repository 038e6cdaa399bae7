"""cnnviz.normalisation: batch norm written out, the other normalisations, running averages, folding, rescaling.

Oracles: torch's own modules and functions (``nn.BatchNorm1d/2d``, ``F.batch_norm``, ``nn.GroupNorm``,
``nn.InstanceNorm2d``, ``nn.LayerNorm``), the Keras update rule written out, and exact invariances (a
normalisation over one image's own values cannot depend on its batch-mates; ReLU networks are positively
homogeneous).
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.initialisation import initialise_
from cnnviz.normalisation import (NORMS, BatchDependence, batch_norm_formula, batch_dependence, fold_batch_norm,
                                  keras_momentum, layer_rescaling, norm_axes, norm_layer, normalise,
                                  running_average)
from cnnviz.signal_flow import deep_mlp, digits_batch
from model_helpers import assert_no_hooks


def _x(*shape, seed=0, scale=3.0, shift=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale + shift


# ----------------------------------------------------------------------------- batch norm written out


@pytest.mark.parametrize("shape", [(16, 6, 5, 7), (32, 4), (8, 3, 10)])
def test_batch_norm_formula_is_torchs_batch_norm_in_training_mode(shape):
    x = _x(*shape)
    c = shape[1]
    gamma, beta = _x(c, seed=1, scale=1.0, shift=0.0), _x(c, seed=2, scale=1.0, shift=0.0)
    y, mean, var = batch_norm_formula(x, gamma, beta)

    # momentum 1: the running statistics are the batch's own
    bn = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c, momentum=1.0).train()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        expected = bn(x)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, F.batch_norm(x, None, None, gamma, beta, training=True), atol=1e-5, rtol=1e-5)
    # the statistics: the batch mean, and the biased variance (torch keeps the unbiased one as running_var)
    n = x.numel() // c
    torch.testing.assert_close(mean, bn.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var * n / (n - 1), bn.running_var, atol=1e-5, rtol=1e-5)


def test_batch_norm_formula_gives_mean_beta_and_std_gamma():
    x = _x(64, 3, 4, 4)
    gamma, beta = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.0, -1.0, 3.0])
    y, _, _ = batch_norm_formula(x, gamma, beta, eps=0.0)
    torch.testing.assert_close(y.mean((0, 2, 3)), beta, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3), unbiased=False), gamma, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- batch, layer, instance, group


@pytest.mark.parametrize("kind", list(NORMS))
def test_normalise_is_torchs_module_in_training_mode(kind):
    x = _x(8, 6, 5, 5)
    layer = norm_layer(kind, 6, groups=3).train()
    with torch.no_grad():
        expected = layer(x)
    torch.testing.assert_close(normalise(x, kind, groups=3), expected, atol=1e-5, rtol=1e-5)
    # γ = 1 and β = 0 at the start, for each kind's own module
    assert torch.equal(layer.weight, torch.ones(6)) and torch.equal(layer.bias, torch.zeros(6))


def test_norm_layer_modules_and_layer_norm_statistics():
    assert isinstance(norm_layer("batch", 4), nn.BatchNorm2d)
    assert isinstance(norm_layer("instance", 4), nn.InstanceNorm2d) and norm_layer("instance", 4).affine
    assert norm_layer("layer", 4).num_groups == 1 and norm_layer("group", 4, groups=2).num_groups == 2
    x = _x(4, 6, 3, 3)
    torch.testing.assert_close(normalise(x, "layer"), F.layer_norm(x, x.shape[1:]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(normalise(x, "instance"), F.instance_norm(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(normalise(x, "group", groups=6), F.instance_norm(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(normalise(x, "group", groups=1), normalise(x, "layer"), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind, axes", [("batch", (0, 2, 3)), ("layer", (1, 2, 3)), ("instance", (2, 3)),
                                        ("group", (1, 2, 3))])
def test_norm_axes_are_the_axes_each_statistic_pools(kind, axes):
    assert norm_axes(kind) == axes
    x = _x(5, 4, 3, 3)
    if kind != "group":  # normalised over those axes: mean 0 and variance 1 there
        y = normalise(x, kind, eps=0.0)
        torch.testing.assert_close(y.mean(axes), torch.zeros_like(y.mean(axes)), atol=1e-5, rtol=0)
        torch.testing.assert_close(y.var(axes, unbiased=False), torch.ones_like(y.mean(axes)), atol=1e-4, rtol=0)


def test_bad_kinds_and_shapes_raise_value_errors():
    for call in (lambda: norm_axes("weight"), lambda: norm_layer("weight", 4),
                 lambda: normalise(_x(2, 4, 3, 3), "x"),
                 lambda: normalise(_x(2, 4), "batch"), lambda: normalise(_x(2, 5, 3, 3), "group", groups=2)):
        with pytest.raises(ValueError):
            call()


# ----------------------------------------------------------------------------- running statistics


def test_running_average_is_batch_norms_running_mean_and_var():
    bn = nn.BatchNorm1d(1, momentum=0.1).train()
    means, variances, torch_means, torch_vars = [], [], [], []
    for k in range(12):
        b = _x(32, 1, seed=k, scale=1.0 + k / 4, shift=k - 5.0)
        means.append(float(b.mean()))
        variances.append(float(b.var(unbiased=True)))
        with torch.no_grad():
            bn(b)
        torch_means.append(float(bn.running_mean))
        torch_vars.append(float(bn.running_var))
    assert running_average(means, 0.1) == pytest.approx(torch_means, rel=1e-5, abs=1e-6)
    assert running_average(variances, 0.1, start=1.0) == pytest.approx(torch_vars, rel=1e-5)


def test_keras_momentum_gives_the_same_running_average():
    values = [3.0, -1.0, 4.0, 1.0, 5.0]
    for m in (0.1, 0.01, 0.5):
        keras = running_average(values, keras_momentum(m), convention="keras")
        assert keras == pytest.approx(running_average(values, m, convention="pytorch"))
        r, by_hand = 0.0, []  # Keras: moving = moving · momentum + batch · (1 − momentum)
        for v in values:
            r = r * keras_momentum(m) + v * (1 - keras_momentum(m))
            by_hand.append(r)
        assert keras == pytest.approx(by_hand)
    assert keras_momentum(0.1) == pytest.approx(0.9)
    assert running_average([2.0, 2.0], 1.0) == [2.0, 2.0] and running_average([2.0], 0.0, start=5.0) == [5.0]
    with pytest.raises(ValueError):
        running_average(values, 1.5)
    with pytest.raises(ValueError):
        running_average(values, 0.1, convention="tensorflow")


# ----------------------------------------------------------------------------- dependence on the batch


@pytest.fixture(scope="module")
def images():
    return _x(256, 4, 6, 6, seed=3, scale=1.0, shift=0.0)


@pytest.mark.parametrize("kind", ["layer", "instance", "group"])
def test_per_image_normalisations_do_not_depend_on_the_batch(images, kind):
    dep = batch_dependence(kind, images, (2, 4, 8, 32))
    assert isinstance(dep, BatchDependence) and dep.kind == kind and dep.batch_sizes == (2, 4, 8, 32)
    assert dep.change == (0.0, 0.0, 0.0, 0.0)


def test_batch_norm_depends_on_the_batch_less_as_it_grows(images):
    dep = batch_dependence("batch", images, (2, 4, 8, 16, 32))
    assert all(c > 0 for c in dep.change)
    assert dep.change[0] > dep.change[-1]
    assert dep.change[0] > 2 * dep.change[-1]  # ~1/√B: from a batch of 2 to one of 32


def test_batch_dependence_is_seeded_and_checks_the_batch_size(images):
    assert batch_dependence("batch", images, (4, 8)) == batch_dependence("batch", images, (4, 8))
    with pytest.raises(ValueError, match="at least 300 images"):
        batch_dependence("batch", images, (300,))


# ----------------------------------------------------------------------------- folding and rescaling


def _conv_bn(bias=True):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    for k in range(5):  # running statistics that are not the defaults
        bn(conv(_x(16, 3, 8, 8, seed=10 + k)))
    return conv.eval(), bn.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_folded_convolution_computes_conv_then_batch_norm_in_eval_mode(bias):
    conv, bn = _conv_bn(bias)
    state = copy.deepcopy((conv.state_dict(), bn.state_dict()))
    folded = fold_batch_norm(conv, bn)
    assert isinstance(folded, nn.Conv2d) and folded is not conv
    x = _x(4, 3, 8, 8, seed=99)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
    for before, module in zip(state, (conv, bn)):  # neither module changed
        for k, v in module.state_dict().items():
            assert torch.equal(v, before[k])
    # the formula: w' = w·γ/σ, b' = (b − μ)·γ/σ + β
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = conv.bias if bias else torch.zeros(8)
    torch.testing.assert_close(folded.weight, conv.weight * scale[:, None, None, None])
    torch.testing.assert_close(folded.bias, (b - bn.running_mean) * scale + bn.bias)


def test_folding_refuses_training_mode():
    conv, bn = _conv_bn()
    for module in (conv, bn):
        module.train()
        with pytest.raises(ValueError, match="eval mode"):
            fold_batch_norm(conv, bn)
        module.eval()


@pytest.mark.parametrize("batch_norm, ratio", [(False, 10.0), (True, 1.0)])
def test_rescaling_a_layer_passes_through_unless_batch_norm_follows(batch_norm, ratio):
    x, _ = digits_batch(256)
    model = initialise_(deep_mlp(6, 32, batch_norm=batch_norm), "kaiming_fan_in", seed=0).eval()
    state = copy.deepcopy(model.state_dict())
    assert layer_rescaling(model, "fc2", 10.0, x, "act6") == pytest.approx(ratio, rel=1e-3)
    for k, v in model.state_dict().items():  # weights and running statistics
        assert torch.equal(v, state[k]), k
    assert not any(m.training for m in model.modules())
    assert_no_hooks(model)
    assert layer_rescaling(model, "fc2", 1.0, x, "act6") == 1.0
