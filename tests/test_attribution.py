"""Attribution through captum against oracles: a linear model's saliency is its weights, integrated gradients
add up to the change in output, Grad-CAM by hand, guided Grad-CAM from captum's own parts; hooks, modes and
the caller's model left alone; Adebayo et al.'s sanity check."""
import copy

import pytest
import scipy.stats
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam

from cnnviz.attribution import METHODS, Attribution, attribute, default_cam_layer, rank_correlation, sanity_check
from cnnviz.probe import ChannelOutOfRange, Preprocess
from model_helpers import assert_no_hooks

S = 8
PRE = Preprocess(S, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * S * S, 4))
    model.cnnviz_preprocess = PRE
    return model


class SmallCNN(nn.Module):
    """conv-ReLU-pool twice, then a dense layer, with an in-place ReLU used twice (as torchvision's blocks do)."""
    cnnviz_preprocess = Preprocess(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):                                                      # (B, 3, 16, 16)
        x = F.max_pool2d(self.relu(self.conv1(x)), 2)                          # (B, 6, 8, 8)
        x = F.max_pool2d(self.relu(self.bn(self.conv2(x))), 2)                 # (B, 8, 4, 4)
        return self.fc(x.flatten(1))                                            # (B, 5)


def _small_cnn(seed=0):
    torch.manual_seed(seed)
    return SmallCNN().eval()


def _x(side, seed=0):
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("target", [0, 3])
def test_saliency_of_a_linear_model_is_its_weights(target):
    model = _linear()
    a = attribute(model, _x(S), "saliency", target=target)
    w = model[1].weight[target].detach().view(3, S, S)
    assert isinstance(a, Attribution) and a.method == "saliency" and a.target == target and a.layer is None
    assert torch.allclose(a.raw[0], w.abs())
    assert torch.allclose(a.map, w.abs().amax(0))                                # Simonyan et al.: max over channels


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_without_relus_guided_backprop_and_deconvnet_are_the_gradient(method):
    model = _linear()
    a = attribute(model, _x(S), method, target=1)
    w = model[1].weight[1].detach().view(3, S, S)
    assert torch.allclose(a.raw[0], w)
    assert torch.allclose(a.map, w.sum(0).abs())


def test_integrated_gradients_of_a_linear_model():
    model, x = _linear(), _x(S)
    a = attribute(model, x, "integrated_gradients", target=2)
    w = model[1].weight[2].detach().view(1, 3, S, S)
    assert torch.allclose(a.raw, x * w, atol=1e-6)                              # baseline 0: (x − 0)·w exactly


def test_integrated_gradients_completeness():
    """Sundararajan et al.'s axiom: the attributions add up to f(x) − f(baseline) for the target."""
    model, x = _small_cnn(), _x(16, 1)
    baseline = torch.full_like(x, -0.5)
    a = attribute(model, x, "integrated_gradients", target=3, baselines=baseline, n_steps=300)
    with torch.no_grad():
        delta = float(model(x)[0, 3] - model(baseline)[0, 3])
    assert float(a.raw.sum()) == pytest.approx(delta, rel=0.02, abs=1e-3)


def _grad_cam_by_hand(model, x, layer, target):
    """Selvaraju et al. eq. 1-2: α_c = mean of ∂y/∂A_c over positions, map = ReLU(Σ_c α_c A_c), upsampled."""
    acts = {}
    handle = layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        out = model(x)
    finally:
        handle.remove()
    grads = torch.autograd.grad(out[0, target], acts["a"])[0]                  # (1, C, h, w)
    alpha = grads.mean((2, 3), keepdim=True)
    cam = F.relu((alpha * acts["a"]).sum(1, keepdim=True))                      # (1, 1, h, w)
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0].detach()


def test_grad_cam_by_hand():
    model, x = _small_cnn(), _x(16, 2)
    a = attribute(model, x, "grad_cam", target=4, layer="conv2")
    assert a.layer == "conv2" and a.raw.shape == (1, 1, 16, 16) and a.map.shape == (16, 16)
    expected = _grad_cam_by_hand(model, x, model.conv2, 4)
    assert torch.allclose(a.map, expected, atol=1e-6)
    assert (a.map >= 0).all() and a.map.max() > 0


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
def test_guided_grad_cam_is_guided_backprop_times_grad_cam():
    model, x = _small_cnn(), _x(16, 3)
    a = attribute(model, x, "guided_grad_cam", target=1, layer="conv2")
    gbp = GuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=1)
    cam = LayerGradCam(model, model.conv2).attribute(x.clone().requires_grad_(True), target=1, relu_attributions=True)
    expected = gbp * LayerAttribution.interpolate(cam, (16, 16), interpolate_mode="nearest")
    assert a.raw.shape == (1, 3, 16, 16)
    assert torch.allclose(a.raw, expected.detach(), atol=1e-7)
    assert torch.allclose(a.map, expected.detach()[0].sum(0).abs(), atol=1e-7)


def test_default_grad_cam_layer():
    from cnnviz.models.shapesnet import shapesnet
    assert default_cam_layer(shapesnet()) == "features.relu4"                   # the registry's last feature layer
    assert default_cam_layer(_small_cnn()) == "conv2"                          # else the last Conv2d
    with pytest.raises(ValueError, match="no"):
        default_cam_layer(_linear())
    assert attribute(_small_cnn(), _x(16), "grad_cam").layer == "conv2"


def test_target_defaults_to_the_top_class():
    model, x = _small_cnn(), _x(16, 4)
    with torch.no_grad():
        top = int(model(x).argmax())
    assert attribute(model, x, "saliency").target == top


# ----------------------------------------------------------------------------- the caller's model


@pytest.mark.parametrize("method", list(METHODS))
def test_model_left_as_it_was(method):
    model = _small_cnn().train()
    model.bn.eval()                                                             # a mixed state, restored exactly
    before = copy.deepcopy(model.state_dict())
    a = attribute(model, _x(16, 5), method, target=2)
    assert a.map.shape == (16, 16) and (a.map >= 0).all() and torch.isfinite(a.map).all()
    assert model.training and model.conv1.training and not model.bn.training
    assert model.relu.inplace                                                   # switched off for captum, back on
    assert_no_hooks(model)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched


def test_hooks_removed_after_an_error():
    model = _small_cnn().train()
    with pytest.raises(Exception):
        attribute(model, _x(16), "guided_backprop", target=0, no_such_option=1)  # captum raises a TypeError
    assert_no_hooks(model)
    assert model.training and model.relu.inplace


def test_bad_method_lists_the_methods():
    with pytest.raises(ValueError) as err:
        attribute(_linear(), _x(S), "gradcam")
    assert all(name in str(err.value) for name in METHODS)


def test_target_out_of_range():
    with pytest.raises(ChannelOutOfRange, match="0 to 3"):
        attribute(_linear(), _x(S), "saliency", target=4)


def test_methods_are_labelled_with_their_papers():
    assert list(METHODS) == ["saliency", "integrated_gradients", "guided_backprop", "deconvnet", "grad_cam",
                             "guided_grad_cam"]
    assert "Simonyan" in METHODS["saliency"] and "Selvaraju" in METHODS["grad_cam"]


# ----------------------------------------------------------------------------- sanity checks


def test_rank_correlation_is_spearmans():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (12, 12), generator=g).float()                     # many ties
    b = a + torch.randn(12, 12, generator=g)
    assert rank_correlation(a, b) == pytest.approx(scipy.stats.spearmanr(a.flatten(), b.flatten())[0], abs=1e-12)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)


def test_sanity_check_never_touches_the_callers_model():
    model = _small_cnn().train()
    before = copy.deepcopy(model.state_dict())
    result = sanity_check(model, _x(16, 6), "saliency", seed=3)
    assert [name for name, _ in result] == ["fc", "conv2", "conv1"]            # from the output down
    assert all(-1 <= rho <= 1 for _, rho in result)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training
    assert_no_hooks(model)
    again = sanity_check(model, _x(16, 6), "saliency", seed=3)
    assert again == result                                                      # seeded: repeatable
    maps = sanity_check(model, _x(16, 6), "grad_cam", layers=["fc"], with_maps=True)
    assert len(maps) == 1 and maps[0][2].shape == (16, 16)


@pytest.fixture(scope="module")
def shapesnet():
    from cnnviz.vismodels import trained_shapesnet
    return trained_shapesnet(progress=False)  # trained once (about a minute), then from the cache


@pytest.mark.parametrize("method", ["saliency", "grad_cam"])
def test_randomising_the_trained_network_changes_its_maps(shapesnet, method):
    """Adebayo et al.: a map that depends on what the network learnt decorrelates as the weights are destroyed;
    for the control, re-running on the trained network gives correlation 1."""
    from cnnviz.vismodels import example_images

    images, labels = example_images(4)
    finals = []
    for img, label in zip(images, labels):
        first = attribute(shapesnet, img.permute(1, 2, 0).numpy(), method, target=int(label))
        same = attribute(shapesnet, img.permute(1, 2, 0).numpy(), method, target=int(label))
        assert rank_correlation(first.map, same.map) == pytest.approx(1.0)
        result = sanity_check(shapesnet, img.permute(1, 2, 0).numpy(), method, target=int(label))
        finals.append(result[-1][1])                                           # every layer randomised
    assert sum(finals) / len(finals) < 0.5
