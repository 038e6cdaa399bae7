"""cnnviz.initialisation, the symmetry of constant weights, and the CPU settings of chapter 9.

Oracles: the sample variance of hundreds of thousands of weights drawn by ``torch.nn.init`` (within a tolerance
computed from their number), torch's own fan counting, exact equality for the constant schemes, torch's
global random state (untouched by a seeded draw), plain gradient descent (constant weights stay constant
across units), and torch's own thread count and denormal behaviour.
"""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz import probe
from cnnviz.initialisation import (ACTIVATIONS, SCALED_SCHEMES, SCHEMES, InitError, LayerInit, SeededDraws,
                                   draw_scale, fans, gain, init_table, initialisable_layers, initialise_, unit_spread,
                                   variance)
from cnnviz.runtime import cpu_threads, flush_denormals, flushing_denormals
from cnnviz.signal_flow import deep_mlp, digits_batch
from cnnviz.trainability import train_steps

RANDOM_SCHEMES = [s for s in SCHEMES if s not in ("zeros", "constant")]
# big layers: the sample variance of n weights is within a few tenths of a percent of the true one
LAYERS = {
    "linear 512x1024": lambda: nn.Linear(1024, 512),
    "linear 1024x512": lambda: nn.Linear(512, 1024),             # fan_in < fan_out: tells fan-in from fan-out
    "conv2d 128x64x5x5": lambda: nn.Conv2d(64, 128, 5),
    "conv2d 64x256x3x3": lambda: nn.Conv2d(256, 64, 3),
    "conv1d 512x256x3": lambda: nn.Conv1d(256, 512, 3),
}
# (activation, gain override): every gain torch knows for the chapter's activations, and Glorot's gain 1
SETTINGS = [("relu", None), ("tanh", None), ("sigmoid", None), ("linear", None), ("relu", 1.0), ("tanh", 1.0)]


def _tolerance(n):
    """Six standard errors of a sample variance of ``n`` independent draws, relative to the variance: the
    relative standard error is √((κ − 1)/n), κ = 3 for a normal and 1.8 for a uniform distribution."""
    return 6 * math.sqrt(2 / n)


def _measured(weight):
    return float(weight.detach().double().var(unbiased=True))


# ----------------------------------------------------------------------------- the formulas


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("scheme", RANDOM_SCHEMES)
def test_drawn_weights_have_the_variance_the_formula_states(scheme, layer):
    m = LAYERS[layer]()
    w = m.weight.detach()
    tol = _tolerance(w.numel())
    assert tol < 0.035
    for k, (activation, g) in enumerate(SETTINGS):
        kw = dict(activation=activation, gain=g, sigma=0.05 if scheme == "normal" else None)
        nn.init.normal_(m.bias, 3.0, 1.0)  # anything: initialise_ sets it to 0
        initialise_(m, scheme, seed=k, **kw)
        target, formula = variance(scheme, tuple(w.shape), **kw)
        assert target > 0 and isinstance(formula, str) and formula
        assert _measured(w) == pytest.approx(target, rel=tol), (activation, g, formula)
        assert abs(float(w.double().mean())) < 6 * math.sqrt(target / w.numel())
        assert torch.count_nonzero(m.bias) == 0
        row, = init_table(m, scheme, **kw)
        assert row.variance == target and row.std == pytest.approx(math.sqrt(target))


@pytest.mark.parametrize("layer", LAYERS)
def test_variance_matches_the_formulas_with_torchs_fans_and_gains(layer):
    shape = tuple(LAYERS[layer]().weight.shape)
    fin, fout = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    rows, cols = shape[0], math.prod(shape[1:])
    for activation in ACTIVATIONS:
        g = nn.init.calculate_gain(activation)
        assert gain(activation) == g
        v = lambda scheme, **kw: variance(scheme, shape, activation=activation, **kw)[0]  # noqa: E731
        assert v("xavier_uniform") == pytest.approx(g ** 2 * 2 / (fin + fout))
        assert v("xavier_normal", gain=1.0) == pytest.approx(2 / (fin + fout))
        assert v("kaiming_fan_in") == pytest.approx(g ** 2 / fin)
        assert v("kaiming_fan_out") == pytest.approx(g ** 2 / fout)
        assert v("lecun") == pytest.approx(1 / fin)
        assert v("orthogonal") == pytest.approx(g ** 2 / max(rows, cols))
        assert v("normal", sigma=0.3) == pytest.approx(0.09)
        assert v("zeros") == 0.0 and v("constant", value=0.5) == 0.0
    assert gain("relu") == pytest.approx(math.sqrt(2)) and gain("tanh") == pytest.approx(5 / 3)


def test_orthogonal_weights_are_orthonormal_times_the_gain():
    for shape in [(64, 256), (256, 64)]:
        m = nn.Linear(shape[1], shape[0])
        initialise_(m, "orthogonal", activation="tanh", seed=0)
        w = m.weight.detach().double()
        small = w @ w.T if shape[0] <= shape[1] else w.T @ w
        torch.testing.assert_close(small, (5 / 3) ** 2 * torch.eye(min(shape), dtype=torch.float64),
                                   atol=1e-5, rtol=0)


def test_init_table_fans_are_torchs_for_every_kind_of_layer():
    model = nn.Sequential(nn.Conv1d(3, 5, 7), nn.Conv2d(4, 6, (3, 5)), nn.Conv3d(2, 3, (2, 3, 4)),
                          nn.Sequential(nn.Linear(11, 13), nn.ReLU(), nn.BatchNorm1d(13)),
                          nn.Linear(13, 2, bias=False))
    table = init_table(model, "xavier_normal", activation="tanh")
    assert [r.name for r in table] == ["0", "1", "2", "3.0", "4"] == [n for n, _ in initialisable_layers(model)]
    for row, (_, m) in zip(table, initialisable_layers(model)):
        assert isinstance(row, LayerInit)
        assert (row.fan_in, row.fan_out) == nn.init._calculate_fan_in_and_fan_out(m.weight)
        assert (row.fan_in, row.fan_out) == fans(m.weight.shape)
        assert row.shape == tuple(m.weight.shape) and row.gain == pytest.approx(5 / 3)
    with pytest.raises(InitError, match="two or more dimensions"):
        fans((5,))


@pytest.mark.parametrize("scheme, value", [("zeros", 0.0), ("constant", 0.1), ("constant", -2.5)])
def test_zeros_and_constant_give_exactly_that_value(scheme, value):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4), nn.BatchNorm1d(4))
    nn.init.normal_(model[4].weight)  # batch norm keeps its own γ, β
    gamma = model[4].weight.detach().clone()
    assert initialise_(model, scheme, value=value if scheme == "constant" else None) is model
    for m in (model[0], model[3]):
        assert torch.all(m.weight == value) and torch.all(m.bias == 0)
    assert torch.equal(model[4].weight, gamma)


def test_seed_repeats_the_draw_and_leaves_the_global_random_state_alone():
    a, b, c, d = (nn.Sequential(nn.Linear(20, 30), nn.Conv2d(3, 4, 3)) for _ in range(4))  # torch draws these
    torch.manual_seed(123)
    state = torch.get_rng_state()
    initialise_(a, "kaiming_fan_in", seed=7)
    initialise_(b, "kaiming_fan_in", seed=7)
    initialise_(c, "kaiming_fan_in", seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert pa.dim() == 1 or not torch.equal(pa, pc)
    initialise_(d, "kaiming_fan_in")  # no seed: draws from the global state
    assert not torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    initialise_(b, "kaiming_fan_in")  # the seeded draw is the global one after torch.manual_seed(seed)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))



def _cnn(width):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Conv2d(width, width, 5), nn.Flatten(),
                         nn.Linear(width * 4, 7))


@pytest.mark.parametrize("scheme", SCALED_SCHEMES)
def test_seeded_draws_are_initialise_bit_for_bit_and_draw_only_new_layers(scheme):
    """Oracle: initialise_ (torch.nn.init) itself, compared with torch.equal, through changes of activation,
    σ, depth (a shared first part: only the new layers are drawn) and layer kinds."""
    draws = SeededDraws(seed=3)
    torch.manual_seed(5)
    steps = [(deep_mlp(5, 16, activation="tanh"), "tanh", 0.1), (deep_mlp(5, 16, activation="relu"), "relu", 0.3),
             (deep_mlp(7, 16), "relu", 0.3), (deep_mlp(3, 16), "sigmoid", 2.0), (_cnn(6), "relu", 0.01),
             (deep_mlp(7, 16), "linear", 0.3)]
    drawn = []
    for model, activation, sigma in steps:
        state = torch.get_rng_state()
        got = draws.weights(model, scheme, activation=activation, sigma=sigma)
        assert torch.equal(torch.get_rng_state(), state)    # torch's global generator untouched
        initialise_(model, scheme, activation=activation, sigma=sigma, seed=3)
        want = [m.weight for _, m in initialisable_layers(model)]
        assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want)), (model, activation)
        drawn.append(draws.drawn)
    # depth 5 (6 layers), the same shapes again (none), depth 7 (fc6, fc7, out), depth 3 (out), a CNN (3),
    # depth 7 again: its chain (kept per first layer's shape, beside the CNN's) ends after depth 3's fc3, so
    # fc4-fc7 and out (5)
    assert drawn == [6, 6, 9, 10, 13, 18]


def test_seeded_draws_keep_each_width_and_forget_the_network_used_longest_ago():
    draws = SeededDraws(seed=1, keep=2)
    for width in (16, 32, 16, 32):                     # back to a width: nothing drawn
        draws.weights(deep_mlp(4, width), "orthogonal")
    assert draws.drawn == 2 * 5
    draws.weights(deep_mlp(4, 8), "orthogonal")          # a third width: width 16's draws forgotten
    draws.weights(deep_mlp(4, 32), "orthogonal")
    assert draws.drawn == 3 * 5
    got = draws.weights(deep_mlp(4, 16), "orthogonal")
    assert draws.drawn == 4 * 5
    want = initialise_(deep_mlp(4, 16), "orthogonal", seed=1)
    assert all(torch.equal(a, m.weight) for a, (_, m) in zip(got, initialisable_layers(want)))
    with pytest.raises(InitError, match="keep must be"):
        SeededDraws(keep=0)


def test_draw_scale_refuses_what_is_not_a_scaled_draw():
    with pytest.raises(InitError, match="not a scaled unit draw"):
        draw_scale("xavier_uniform", (4, 4))
    with pytest.raises(InitError, match="σ > 0"):
        draw_scale("normal", (4, 4), sigma=0)
    with pytest.raises(InitError, match="initialise_"):
        SeededDraws().weights(deep_mlp(2, 4), "constant")
    with pytest.raises(InitError, match="whole number"):
        SeededDraws(seed=0.5)
    assert draw_scale("kaiming_fan_in", (8, 32), activation="relu") == math.sqrt(2.0) / math.sqrt(32)

@pytest.mark.parametrize("call, match", [
    (lambda m: initialise_(m, "normal", sigma=0.0), "σ > 0"),
    (lambda m: initialise_(m, "normal", sigma=-0.1), "σ > 0"),
    (lambda m: initialise_(m, "normal", sigma=float("nan")), "σ > 0"),
    (lambda m: initialise_(m, "normal", sigma=float("inf")), "σ > 0"),
    (lambda m: initialise_(m, "normal"), "σ > 0"),
    (lambda m: initialise_(m, "normal", sigma=True), "σ > 0"),
    (lambda m: initialise_(m, "constant"), "finite value"),
    (lambda m: initialise_(m, "constant", value=float("inf")), "finite value"),
    (lambda m: initialise_(m, "he"), "Unknown initialisation scheme 'he'"),
    (lambda m: initialise_(m, "kaiming_fan_in", activation="gelu"), "Unknown activation 'gelu'"),
    (lambda m: initialise_(m, "xavier_normal", gain=0), "gain must be a finite number above 0"),
    (lambda m: initialise_(m, "xavier_normal", gain=float("nan")), "gain"),
    (lambda m: initialise_(nn.Sequential(nn.ReLU()), "xavier_normal"), "no layer an initialisation scheme"),
    (lambda m: variance("lecun", (3, 4), activation="swish"), "Unknown activation"),
    (lambda m: init_table(m, "orthogonal_uniform"), "choose one of"),
    (lambda m: deep_mlp(0, 16), "depth"),
    (lambda m: deep_mlp(10000, 16), "depth"),
    (lambda m: deep_mlp(3, 0), "width"),
    (lambda m: deep_mlp(3, 2.5), "width"),
    (lambda m: deep_mlp(3, 16, activation="gelu"), "Unknown activation 'gelu'"),
    (lambda m: train_steps(m, torch.zeros(2, 4), torch.zeros(2).long(), steps=1, lr=0.0), "learning rate"),
    (lambda m: train_steps(m, torch.zeros(2, 4), torch.zeros(2).long(), steps=1, lr=-1), "learning rate"),
])
def test_bad_settings_raise_an_init_error_with_a_sentence(call, match):
    model = nn.Sequential(nn.Linear(4, 3))
    before = model[0].weight.detach().clone()
    with pytest.raises(InitError, match=match) as err:
        call(model)
    assert isinstance(err.value, ValueError)
    assert str(err.value).endswith(".") and len(str(err.value).split()) >= 5
    assert torch.equal(model[0].weight, before)  # nothing was drawn before the check


# ----------------------------------------------------------------------------- symmetry


@pytest.fixture(scope="module")
def batch():
    return digits_batch(256)


@pytest.mark.parametrize("scheme, value", [("zeros", None), ("constant", 0.1)])
def test_constant_weights_keep_every_hidden_unit_identical_through_training(batch, scheme, value):
    x, y = batch
    model = initialise_(deep_mlp(3, 16), scheme, value=value)
    assert all(s == 0.0 for s in unit_spread(model).values())
    trained = train_steps(model, x, y, steps=20, lr=0.1)
    spread = unit_spread(trained)
    assert [spread[f"fc{k}"] for k in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert not torch.equal(trained.out.bias, model.out.bias)  # training did move the classifier
    if scheme == "constant":
        assert not torch.equal(trained.fc1.weight, model.fc1.weight)  # the units moved, all together
        assert spread["out"] > 0                                     # the classes' units did differ
    else:  # a ReLU passes no gradient at 0, and the classifier's zero weights none backwards
        for k in (1, 2, 3):
            assert torch.equal(trained.get_submodule(f"fc{k}").weight, torch.zeros(16, 64 if k == 1 else 16))
            assert torch.count_nonzero(trained.get_submodule(f"fc{k}").bias) == 0


def test_random_weights_break_the_symmetry(batch):
    x, y = batch
    trained = train_steps(initialise_(deep_mlp(3, 16), "kaiming_fan_in", seed=0), x, y, steps=20, lr=0.1)
    spread = unit_spread(trained)
    assert all(spread[f"fc{k}"] > 0 for k in (1, 2, 3))


def test_unit_spread_is_the_largest_difference_between_two_units():
    m = nn.Linear(3, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [1.5, 2.0, 0.5]]))
        m.bias.copy_(torch.tensor([0.0, 0.25]))
    conv = nn.Conv2d(2, 1, 3)  # one output channel: nothing to differ from
    assert unit_spread(nn.Sequential(m, conv)) == {"0": 2.5, "1": 0.0}


def test_train_steps_returns_a_trained_copy_and_leaves_the_model_alone(batch):
    x, y = batch
    model = initialise_(deep_mlp(3, 16, batch_norm=True), "kaiming_fan_in", seed=0).eval()
    state = copy.deepcopy(model.state_dict())
    trained = train_steps(model, x, y, steps=3, lr=0.1)
    assert trained is not model and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(trained.fc1.weight, model.fc1.weight)
    assert int(trained.bn1.num_batches_tracked) == 3

    # the same three steps written out
    oracle = copy.deepcopy(model).train()
    opt = torch.optim.SGD(oracle.parameters(), lr=0.1, momentum=0.9)
    with cpu_threads(1):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(oracle(x), y).backward()
            opt.step()
    for (k, a), b in zip(trained.state_dict().items(), oracle.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


# ----------------------------------------------------------------------------- CPU settings


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    torch.set_flush_denormal(False)


def _denormal_product():
    return (torch.tensor([1e-37], dtype=torch.float32) * 1e-3).item()


def test_flush_denormals_is_scoped(two_threads):
    assert not flushing_denormals() and _denormal_product() > 0  # the default: denormals kept
    with flush_denormals() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush denormal floats")
        assert flushing_denormals() and _denormal_product() == 0.0
        assert torch.get_num_threads() == 1
    assert not flushing_denormals() and _denormal_product() > 0
    assert torch.get_num_threads() == 2

    with pytest.raises(RuntimeError, match="boom"):
        with flush_denormals():
            raise RuntimeError("boom")
    assert not flushing_denormals() and torch.get_num_threads() == 2

    torch.set_flush_denormal(True)  # already on: it stays on after the block
    with flush_denormals():
        assert flushing_denormals()
    assert flushing_denormals()


def test_cpu_threads_restores_the_count_even_after_an_error(two_threads):
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(KeyError):
        with cpu_threads(1):
            assert torch.get_num_threads() == 1
            raise KeyError("x")
    assert torch.get_num_threads() == 2
    with cpu_threads(None):
        assert torch.get_num_threads() == 2
    with cpu_threads(np.int64(1)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_train_mode_restores_each_submodules_own_flag():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Sequential(nn.Dropout(0.5), nn.ReLU())).eval()
    net[2][0].train()  # a mixed state the caller chose
    flags = {n: m.training for n, m in net.named_modules()}
    with probe.train_mode(net) as m:
        assert m is net and all(mod.training for mod in net.modules())
    assert {n: m.training for n, m in net.named_modules()} == flags
    with pytest.raises(ZeroDivisionError):
        with probe.train_mode(net):
            1 / 0
    assert {n: m.training for n, m in net.named_modules()} == flags
    with probe.eval_mode(net), probe.train_mode(net[1]):  # nested: each restores what it found
        assert net[1].training and not net[0].training
    assert {n: m.training for n, m in net.named_modules()} == flags
