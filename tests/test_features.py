"""cnnviz.features against torch's own operations on models with known weights."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnviz.models
from cnnviz.features import (NotAConvolution, default_layers, feature_maps, filter_smoothness, filters,
                             strongest_channels)
from cnnviz.probe import LayerNotFound, Preprocess, prepare
from cnnviz.runtime import full_float32
from model_helpers import assert_no_hooks, seeded


def _tiny():
    """conv 3→4 3×3 p1, ReLU, max-pool 2, conv 4→5 3×3 s2, BN, ReLU, then a head that needs 8×8 inputs."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, stride=2),
                          nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 1 * 1, 2))
    seeded(model)
    model[4].running_mean.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3, 0.5]))
    model[4].running_var.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0]))
    return model


def _manual(model, x):
    """The tiny model's layers by hand with F.conv2d and friends: {index: (C, H, W)}."""
    c0, c3, bn = model[0], model[3], model[4]
    y0 = F.conv2d(x, c0.weight, c0.bias, padding=1)
    y1 = F.relu(y0)
    y2 = F.max_pool2d(y1, 2)
    y3 = F.conv2d(y2, c3.weight, c3.bias, stride=2)
    y4 = (y3 - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps) \
        * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    return {str(k): y[0] for k, y in enumerate([y0, y1, y2, y3, y4, F.relu(y4)])}


# ----------------------------------------------------------------------------- feature maps

def test_feature_maps_equal_manual_convolutions():
    model = _tiny()
    x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    maps = feature_maps(model, x, ["0", "1", "2", "3", "4", "5"])
    expected = _manual(model, x)
    assert list(maps) == ["0", "1", "2", "3", "4", "5"]
    for name, want in expected.items():
        assert maps[name].shape == want.shape
        torch.testing.assert_close(maps[name], want, rtol=1e-5, atol=1e-5)
    assert maps["3"].shape == (5, 4, 4)
    # a single name, and a (3, H, W) tensor
    torch.testing.assert_close(feature_maps(model, x[0], "2")["2"], expected["2"])
    assert_no_hooks(model)


def test_feature_maps_stop_after_the_last_layer_so_any_size_works():
    model = _tiny()  # its Linear head needs 8×8 inputs: 20×20 would fail there
    x = torch.randn(1, 3, 20, 20)
    with pytest.raises(RuntimeError):
        model(x)
    assert feature_maps(model, x, ["5"])["5"].shape == (5, 4, 4)


def test_feature_maps_of_a_photo_use_the_models_preprocessing():
    model = _tiny()
    model.cnnviz_preprocess = Preprocess(24, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    maps = feature_maps(model, "astronaut", ["0"])
    x = prepare("astronaut", model).x  # (1, 3, 24, 24)
    torch.testing.assert_close(maps["0"], _manual(model, x)["0"])


def test_outputs_are_copied_before_in_place_operations_overwrite_them():
    conv = seeded(nn.Conv2d(3, 4, 3))
    model = nn.Sequential(conv, nn.ReLU(inplace=True))
    x = torch.randn(1, 3, 9, 9)
    maps = feature_maps(model, x, ["0", "1"])
    want = F.conv2d(x, conv.weight, conv.bias)[0]
    assert (want < 0).any()
    torch.testing.assert_close(maps["0"], want)
    torch.testing.assert_close(maps["1"], want.relu())


@pytest.fixture(scope="module")
def resnet():
    return cnnviz.models.get("resnet18")


def test_feature_maps_of_a_resnet(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps = feature_maps(resnet, x)
    assert list(maps) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert [tuple(m.shape) for m in maps.values()] == [(64, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4),
                                                       (512, 2, 2)]
    with torch.no_grad():
        resnet.eval()
        want = resnet.forward_features(x)[0]
        resnet.train()
    torch.testing.assert_close(maps["layer4"], want)
    # torchvision's blocks use ReLU(inplace=True) and `out += identity`: bn outputs must stay as they were
    bn1 = feature_maps(resnet, x, ["layer1.0.bn1", "layer1.0.bn2"])
    assert (bn1["layer1.0.bn1"] < 0).any() and (bn1["layer1.0.bn2"] < 0).any()
    assert_no_hooks(resnet)
    assert all(m.training for m in resnet.modules())


def test_mode_restored_and_eval_used():
    model = _tiny()
    model.train()
    model[1].eval()  # mixed flags come back as they were
    flags = [m.training for m in model.modules()]
    stats = model[4].running_mean.clone()
    x = torch.randn(1, 3, 20, 20)
    maps = feature_maps(model, x, ["5"])
    torch.testing.assert_close(maps["5"], _manual(model, x)["5"])  # batch norm used its running statistics
    assert [m.training for m in model.modules()] == flags
    assert torch.equal(model[4].running_mean, stats)


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_hooks_removed_and_mode_restored_after_an_exception():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), _Boom(), nn.ReLU())
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        feature_maps(model, torch.randn(1, 3, 8, 8), ["2"])
    assert_no_hooks(model)
    assert all(m.training for m in model.modules())


def test_bad_layers():
    model = _tiny()
    with pytest.raises(LayerNotFound, match=r"no layer called 'conv1'.*Its layers are: 0, 1, 2"):
        feature_maps(model, torch.randn(1, 3, 8, 8), ["conv1"])
    with pytest.raises(ValueError, match=r"'7' gives \(1, 2\), not a \(1, C, H, W\) feature map"):
        feature_maps(model, torch.randn(1, 3, 8, 8), ["7"])
    with pytest.raises(ValueError, match="One image at a time"):
        feature_maps(model, torch.randn(2, 3, 8, 8), ["0"])
    assert_no_hooks(model)


def test_default_layers():
    assert default_layers(_tiny()) == ["1", "5"]  # the ReLUs after a conv (through batch norm)
    assert default_layers(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Tanh(), nn.Conv2d(2, 2, 3))) == ["0", "2"]
    head_relu = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2), nn.ReLU())
    assert default_layers(head_relu) == ["1"]
    with_contract = _tiny()
    with_contract.feature_layers = ("2", "4")  # the zoo's contract wins
    assert default_layers(with_contract) == ["2", "4"]
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(inplace=True)), nn.MaxPool2d(2),
                           nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2), nn.ReLU()))
    assert default_layers(nested) == ["0.1", "2.2"]


def test_strongest_channels():
    maps = torch.zeros(4, 3, 3)
    maps[0, 1, 1], maps[1, 0, 2], maps[2, 2, 2], maps[3, 0, 0] = 1.0, 5.0, -1.0, 3.0
    assert strongest_channels(maps, 2).tolist() == [1, 3]
    assert strongest_channels(maps, 10).tolist() == [1, 3, 0, 2]
    assert strongest_channels(maps, 1).dtype == torch.long
    with pytest.raises(ValueError, match="positive whole number"):
        strongest_channels(maps, 0)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        strongest_channels(maps[0], 1)


# ----------------------------------------------------------------------------- filters

def _conv_with(weight):
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(weight.shape[0], 2, 1))


def test_filters_rgb_channels_summary():
    w = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    w[2] = 0.7  # a constant filter
    model = _conv_with(w)
    rgb = filters(model, "0")  # auto: 3 input channels
    assert rgb.shape == (4, 3, 5, 5) and rgb.min() >= 0 and rgb.max() <= 1
    for k in (0, 1, 3):
        torch.testing.assert_close(rgb[k], (w[k] - w[k].min()) / (w[k].max() - w[k].min()))
    assert torch.all(rgb[2] == 0.5)
    channels = filters(model, "0", mode="channels")
    torch.testing.assert_close(channels, w / (2 * w.abs().max()) + 0.5)
    summary = filters(model, "0", mode="summary")
    norm = w.pow(2).sum(1, keepdim=True).sqrt()
    torch.testing.assert_close(summary, norm / norm.max())
    deeper = filters(model, "2")  # auto: 4 input channels → summary
    assert deeper.shape == (2, 1, 1, 1) and deeper.max() == 1
    assert filters(model, "2", mode="channels").shape == (2, 4, 1, 1)


def test_filters_errors():
    model = _conv_with(torch.randn(4, 3, 3, 3))
    with pytest.raises(NotAConvolution, match=r"'1' is a ReLU, not a Conv2d.*convolutions are: 0, 2"):
        filters(model, "1")
    assert issubclass(NotAConvolution, ValueError)
    with pytest.raises(ValueError, match="mode='rgb' needs a layer that reads 3"):
        filters(model, "2", mode="rgb")
    with pytest.raises(ValueError, match="mode must be one of"):
        filters(model, "0", mode="colour")
    with pytest.raises(LayerNotFound):
        filters(model, "conv1")


def _gaussian(size, sigma, centre):
    r = torch.arange(size, dtype=torch.float64)
    g = torch.exp(-((r[:, None] - centre[0]) ** 2 + (r[None, :] - centre[1]) ** 2) / (2 * sigma ** 2))
    return g


def test_filter_smoothness_noise_against_structure():
    g = torch.Generator().manual_seed(0)
    noise = filter_smoothness(torch.randn(256, 3, 7, 7, generator=g))
    assert noise.shape == (256,)
    assert abs(noise.mean().item()) < 0.05 and noise.abs().max() < 0.4
    # smooth filters: colour blobs, oriented ramps and smooth edges (what a trained conv1 learns)
    smooth = []
    for k in range(32):
        theta = math.pi * k / 32
        r = torch.arange(7, dtype=torch.float64) - 3
        ramp = math.cos(theta) * r[:, None] + math.sin(theta) * r[None, :]  # oriented gradient
        edge = torch.tanh(ramp)
        blob = _gaussian(7, 1.0 + k / 16, (3 + k % 3 - 1, 3))
        colours = torch.randn(3, 3, generator=g, dtype=torch.float64)
        smooth.append(torch.stack([colours[0, c] * ramp + colours[1, c] * blob + colours[2, c] * edge
                                   for c in range(3)]))
    s = filter_smoothness(torch.stack(smooth))
    assert s.min() > 0.7 and s.mean() > 0.85, s
    # a pure ramp: rows are neighbours with equal values, columns step by one
    ramp = torch.arange(7.0).repeat(7, 1).view(1, 1, 7, 7)
    assert filter_smoothness(ramp).item() == pytest.approx((7 * 16 + 6 * 28) / (7 * 19 + 6 * 28))
    assert filter_smoothness(torch.full((1, 3, 5, 5), 2.0)).item() == 0  # no spatial variation
    checker = (torch.arange(5)[:, None] + torch.arange(5)[None, :]) % 2 * 2.0 - 1
    assert filter_smoothness(checker.view(1, 1, 5, 5)).item() < -0.9  # the opposite of smooth


def test_filter_smoothness_accepts_a_conv_and_checks_shapes():
    conv = nn.Conv2d(3, 8, 5)
    torch.testing.assert_close(filter_smoothness(conv), filter_smoothness(conv.weight))
    with pytest.raises(ValueError, match="no neighbouring taps"):
        filter_smoothness(torch.randn(4, 3, 1, 1))
    with pytest.raises(ValueError, match=r"\(C_out, C_in, kh, kw\)"):
        filter_smoothness(torch.randn(4, 3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_results_stay_on_the_models_device():
    model = _tiny().cuda()
    x = torch.randn(1, 3, 20, 20)
    with full_float32():  # compared in full float32: TF32 convolutions agree only to ~1e-3
        maps = feature_maps(model, x, ["0", "5"])
    assert all(m.device.type == "cuda" for m in maps.values())
    torch.testing.assert_close(maps["5"].cpu(), _manual(model.cpu(), x)["5"], rtol=1e-4, atol=1e-4)
    model.cuda()
    assert filters(model, "0").device.type == "cuda"
    assert strongest_channels(maps["0"], 2).device.type == "cuda"
