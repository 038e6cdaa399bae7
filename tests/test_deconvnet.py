"""cnnviz.deconvnet: hand-worked projections, captum as the reference, brute-force receptive fields."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

import cnnviz.models
from cnnviz.deconvnet import (TopActivations, deconvnet, guided_backprop, receptive_box, strongest_unit,
                              top_activations)
from cnnviz.features import feature_maps
from cnnviz.probe import ChannelOutOfRange, LayerNotFound, Preprocess, capture
from cnnviz.receptive_field import PRESETS, as_torch, gradient_support, input_rect, layer_sizes
from cnnviz.runtime import full_float32
from model_helpers import assert_no_hooks, seeded

# what captum says on every call of the reference computations below (cnnviz's own calls are quiet)
pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning",
                                        "ignore:Input Tensor 0 did not already require:UserWarning")


class Wrapper(nn.Module):
    """A chain hidden in a plain module: not an nn.Sequential, so cnnviz goes through captum."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


# ----------------------------------------------------------------------------- by hand

X = torch.tensor([[1, 0, 2, 0, 0],
                  [0, 3, 0, 1, 0],
                  [0, 0, 0, 0, 4],
                  [2, 0, 1, 0, 0],
                  [0, 0, 0, 2, 0]], dtype=torch.float32).view(1, 1, 5, 5)


def _one_layer():
    """conv 1→2 2×2 (w0 = [[1, 0], [0, 1]], w1 = [[1, -1], [0, 2]], biases 0 and -1), ReLU, max-pool 2×2."""
    conv = nn.Conv2d(1, 2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1, 0], [0, 1]]], [[[1, -1], [0, 2]]]], dtype=torch.float32))
        conv.bias.copy_(torch.tensor([0.0, -1.0]))
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))


def test_one_layer_deconvnet_by_hand():
    # channel 1 on the way up: y = x[i,j] - x[i,j+1] + 2 x[i+1,j+1] - 1, then ReLU:
    #   [[6, 0, 3, 0],      max-pool 2×2 → [[6, 8],    switches (0,0) (1,3)
    #    [0, 2, 0, 8],                      [1, 4]]             (2,1) (3,2)
    #    [0, 1, 0, 0],      (unit (1,0) ties between (2,1) and (3,0): the first wins)
    #    [1, 0, 4, 0]]
    net = _one_layer()
    maps = net(X)[0]
    assert maps[1].tolist() == [[6, 8], [1, 4]]
    assert strongest_unit(maps, 1) == (0, 1)
    # the strongest unit, 8: unpooled to its switch (1, 3), ReLU (nothing to do), transposed filter 8·w1 there
    expected = torch.zeros(1, 5, 5)
    expected[0, 1:3, 3:5] = 8 * torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    assert torch.equal(deconvnet(net, X, "2", 1), expected)
    assert torch.equal(deconvnet(net, X, "2", 1, position=(0, 1)), expected)
    # unit (1, 1) = 4, switch (3, 2)
    expected = torch.zeros(1, 5, 5)
    expected[0, 3:5, 2:4] = 4 * torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    assert torch.equal(deconvnet(net, X, "2", 1, position=(1, 1)), expected)
    # channel 0: y = x[i,j] + x[i+1,j+1]; unit (0, 0) = max(4, 0, 0, 3) = 4 at (0, 0): 4·w0 at rows 0-1, cols 0-1
    expected = torch.zeros(1, 5, 5)
    expected[0, 0, 0] = expected[0, 1, 1] = 4
    assert torch.equal(deconvnet(net, X, "2", 0, position=(0, 0)), expected)
    # its strongest unit is (0, 1) = max(3, 0, 0, 5) = 5 at (1, 3): 5·w0 at rows 1-2, cols 3-4
    expected = torch.zeros(1, 5, 5)
    expected[0, 1, 3] = expected[0, 2, 4] = 5
    assert torch.equal(deconvnet(net, X, "2", 0), expected)
    # and captum (gradient with the deconvnet's ReLU rule) times the activation gives the same
    for channel, position, value in ((1, (0, 1), 8.0), (1, (1, 1), 4.0), (0, (0, 0), 4.0), (0, (0, 1), 5.0)):
        ref = NeuronDeconvolution(net, net[2]).attribute(X.clone(), neuron_selector=(channel, *position))[0] * value
        assert torch.equal(deconvnet(net, X, "2", channel, position=position), ref)
    assert_no_hooks(net)


def test_unpooling_adds_where_overlapping_windows_share_a_switch():
    # [0, 5, 0] → max-pool 1×2 stride 1 → [5, 5] (both switches at 1) → conv [1, 1] → 10
    pool, conv = nn.MaxPool2d((1, 2), stride=1), nn.Conv2d(1, 1, (1, 2), bias=False)
    nn.init.ones_(conv.weight)
    net = nn.Sequential(pool, conv)
    x = torch.tensor([0.0, 5.0, 0.0]).view(1, 1, 1, 3)
    # down: 10 → transposed filter [10, 10] → both to the switch: 20 (F.max_unpool2d would give 10)
    assert deconvnet(net, x, "1", 0).tolist() == [[[0.0, 20.0, 0.0]]]


def test_guided_backprop_of_a_first_layer_unit_is_its_filter():
    net = _one_layer()
    g = guided_backprop(net, X, "1", 1, position=(1, 3))  # the ReLU after the conv; active (8 > 0)
    expected = torch.zeros(1, 5, 5)
    expected[0, 1:3, 3:5] = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    assert torch.equal(g, expected)
    ref = NeuronGuidedBackprop(net, net[1]).attribute(X.clone(), neuron_selector=(1, 1, 3))[0]
    assert torch.equal(g, ref)
    assert torch.equal(guided_backprop(net, X, "1", 1), expected)  # (1, 3) is the strongest unit
    assert_no_hooks(net)


# ----------------------------------------------------------------------------- against captum

def _chain():
    net = nn.Sequential(nn.Conv2d(3, 6, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(),
                        nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, dilation=2, padding=2), nn.ReLU())
    seeded(net, 1)
    net[4].running_mean.uniform_(-0.5, 0.5)
    net[4].running_var.uniform_(0.5, 2.0)
    return net


def _captum_times_activation(model, x, layer, channel, position=None):
    """captum's NeuronDeconvolution of the unit (default: the channel's strongest), times its activation."""
    module = model.get_submodule(layer)
    model.eval()
    with torch.no_grad(), capture(model, layer) as out:
        model(x)
    if position is None:
        position = strongest_unit(out[layer][0], channel)
    value = out[layer][0, channel, position[0], position[1]]
    assert value != 0
    # the backward pass starts at the activation (its sign matters to the ReLU rule)
    ref = NeuronDeconvolution(model, module).attribute(
        x.clone(), neuron_selector=lambda o: o[:, channel, position[0], position[1]] * value)
    return ref[0].detach()


@pytest.mark.parametrize("layer,channel,position", [("0", 2, (5, 7)), ("2", 1, None), ("5", 3, (2, 2)),
                                                     ("7", 0, None), ("8", 2, (1, 3)), ("9", 3, None)])
def test_explicit_deconvnet_equals_captum_on_a_chain(layer, channel, position):
    net = _chain()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    got = deconvnet(net, x, layer, channel, position=position)
    want = _captum_times_activation(net, x, layer, channel, position)
    if position is None:
        with torch.no_grad():
            position = strongest_unit(net.eval()[:int(layer) + 1](x)[0], channel)
    assert got.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())
    # the same unit through captum (the chain hidden in a plain module) gives the same again
    wrapped = Wrapper(net)
    torch.testing.assert_close(deconvnet(wrapped, x, f"body.{layer}", channel, position=position), got,
                               rtol=1e-5, atol=1e-6 * want.abs().max().item())
    assert_no_hooks(wrapped)


@pytest.fixture(scope="module")
def vgg11():
    return cnnviz.models.get("vgg11")


@pytest.mark.parametrize("layer", ["features.4", "features.12"])
def test_explicit_deconvnet_equals_captum_on_vgg11(vgg11, layer):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    got = deconvnet(vgg11, x, layer, 5)
    want = _captum_times_activation(vgg11, x, layer, 5)
    vgg11.train()
    assert got.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
    assert_no_hooks(vgg11)


@pytest.mark.parametrize("alpha,similarity", [(5e-4, 0.99999), (5e-2, 0.99)])
def test_local_response_norm_divides_by_the_divisor_of_the_way_up(alpha, similarity):
    # the explicit version holds the divisor fixed; captum adds the cross-channel terms of the derivative,
    # tiny with AlexNet's constants (alpha = 5·1e-4 in torch's convention), visible with a 100× larger alpha
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.LocalResponseNorm(5, alpha, 0.75, 2.0), nn.MaxPool2d(2),
                        nn.Conv2d(8, 4, 3), nn.ReLU())
    seeded(net, 4)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    got = deconvnet(net, x, "4", 1)
    want = _captum_times_activation(net, x, "4", 1)
    assert torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1] > similarity
    # a unit of the LRN itself: its value, divided by the divisor again, then ReLU and the transposed filter
    with torch.no_grad():
        a = net[:2](x)
        div = a / net[2](a)  # (1, 8, 14, 14)
    got = deconvnet(net, x, "2", 3, position=(4, 6))
    r = torch.zeros_like(a)
    r[0, 3, 4, 6] = net[2](a)[0, 3, 4, 6] / div[0, 3, 4, 6]
    assert r.sum() > 0
    want = torch.nn.functional.conv_transpose2d(torch.relu(r), net[0].weight)[0]
    torch.testing.assert_close(got, want)


@pytest.fixture(scope="module")
def resnet():
    with torch.random.fork_rng():  # the same random weights whichever tests ran before
        torch.manual_seed(0)
        return cnnviz.models.get("resnet18")


def test_deconvnet_of_a_resnet_goes_through_captum_and_stays_in_the_field(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    position = strongest_unit(feature_maps(resnet, x, ["layer1"])["layer1"], 7)
    got = deconvnet(resnet, x, "layer1", 7)
    want = _captum_times_activation(resnet, x, "layer1", 7, position)
    resnet.train()
    torch.testing.assert_close(got, want)
    top, left, bottom, right = receptive_box(resnet, "layer1", position, 64)
    assert bottom - top < 64 or right - left < 64  # a unit that does not see the whole image
    outside = got.abs().sum(0)
    outside[top:bottom, left:right] = 0
    assert got.abs().sum() > 0 and outside.max() == 0
    gb = guided_backprop(resnet, x, "layer1", 7, position=position)
    resnet.eval()
    ref = NeuronGuidedBackprop(resnet, resnet.layer1).attribute(x.clone(), neuron_selector=(7, *position))[0]
    resnet.train()
    torch.testing.assert_close(gb, ref)
    assert_no_hooks(resnet)
    assert all(m.training for m in resnet.modules())


# ----------------------------------------------------------------------------- modes, hooks, bad input

def test_model_mode_restored_and_eval_used():
    net = _chain()
    net.train()
    net[1].eval()
    flags = [m.training for m in net.modules()]
    stats = net[4].running_mean.clone()
    x = torch.randn(1, 3, 32, 32)
    got = deconvnet(net, x, "9", 1)
    assert [m.training for m in net.modules()] == flags
    assert torch.equal(net[4].running_mean, stats)
    net.eval()
    torch.testing.assert_close(got, deconvnet(net, x, "9", 1))  # dropout and batch statistics were off


class _Boom(nn.Module):
    """Raises in forward passes with gradients: inside captum, after cnnviz's own forward pass went well."""

    def forward(self, x):
        if torch.is_grad_enabled():
            raise RuntimeError("boom")
        return x


def test_hooks_removed_after_exceptions():
    net = Wrapper(nn.Sequential(nn.Conv2d(3, 2, 3), _Boom(), nn.ReLU()))
    net.train()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match="boom"):
        deconvnet(net, x, "body.2", 0)
    assert_no_hooks(net)
    with pytest.raises(RuntimeError, match="boom"):
        guided_backprop(net, x, "body.2", 0)
    assert_no_hooks(net)
    with pytest.raises(ChannelOutOfRange):
        deconvnet(net, x, "body.2", 5)
    assert_no_hooks(net)
    assert all(m.training for m in net.modules())


def test_bad_input_messages():
    net = _one_layer()
    with pytest.raises(LayerNotFound, match=r"no layer called 'pool'.*Its layers are: 0, 1, 2"):
        deconvnet(net, X, "pool", 0)
    with pytest.raises(ChannelOutOfRange, match=r"Channel 2 is out of range: '2' has 2 channels, numbered 0 to 1"):
        deconvnet(net, X, "2", 2)
    with pytest.raises(ChannelOutOfRange, match=r"Row 2 is out of range: '2' has 2 rows, numbered 0 to 1"):
        deconvnet(net, X, "2", 0, position=(2, 0))
    with pytest.raises(ChannelOutOfRange, match=r"Column -1 is out of range"):
        guided_backprop(net, X, "2", 0, position=(0, -1))
    with pytest.raises(ValueError, match=r"position must be \(row, col\)"):
        deconvnet(net, X, "2", 0, position=3)
    with pytest.raises(ChannelOutOfRange, match="Row 9"):
        receptive_box(net, "2", (9, 0), 5)
    head = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(ValueError, match="not a \\(B, C, H, W\\) feature map"):
        deconvnet(head, X, "1", 0)
    with pytest.raises(ValueError, match="receptive field"):
        receptive_box(head, "1", (0, 0), 5)
    assert_no_hooks(net)


def test_strongest_unit():
    maps = torch.zeros(2, 3, 4)
    maps[1, 2, 1] = maps[1, 0, 3] = 2.0  # a tie: the first in reading order
    maps[0, 1, 2] = -1.0
    assert strongest_unit(maps, 1) == (0, 3)
    with pytest.raises(ChannelOutOfRange, match="0 to 1"):
        strongest_unit(maps, 2)


# ----------------------------------------------------------------------------- receptive boxes

def _bbox(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


@pytest.mark.parametrize("preset", ["3×[3×3]", "dilated 3×[3×3], d=1,2,4", "VGG block", "AlexNet conv1–pool2",
                                    "ResNet stem"])
def test_receptive_box_equals_the_brute_force_gradient_support(preset):
    layers = PRESETS[preset]
    size = (227, 227) if "AlexNet" in preset else (29, 33)
    chain = as_torch(layers, 1)
    wrapped = Wrapper(chain)  # the same layers, through the traced forward pass
    sizes = layer_sizes(layers, size)
    for k in range(1, len(layers) + 1):
        h, w = sizes[k]
        for i, j in {(0, 0), (h - 1, w - 1), (h // 2, w // 3), (0, w - 1)}:
            box = receptive_box(chain, str(k - 1), (i, j), size)
            assert box == _bbox(gradient_support(layers, size, k, i, j)), (k, i, j)
            top, left, bottom, right = input_rect(layers, k, i, j, size)
            assert box == (top, left, bottom + 1, right + 1)
            assert receptive_box(wrapped, f"body.{k - 1}", (i, j), size) == box


def test_receptive_box_of_a_resnet_equals_the_brute_force_support(resnet):
    # brute force: the same architecture with every weight 1, neutral batch norm and average instead of max
    # pooling, in float64: all values stay positive, so every pixel a unit can see has a nonzero gradient
    positive = cnnviz.models.get("resnet18").double().eval()
    for m in positive.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    positive.maxpool = nn.AvgPool2d(3, 2, 1)
    for layer, units in (("maxpool", [(0, 0), (15, 15)]), ("layer2", [(0, 0), (7, 7), (4, 3)])):
        for i, j in units:
            x = torch.ones(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
            with capture(positive, layer, detach=False) as out:
                positive(x)
            (grad,) = torch.autograd.grad(out[layer][0, :, i, j].sum(), x)
            assert receptive_box(resnet, layer, (i, j), 64) == _bbox((grad[0] != 0).any(0).numpy())
    assert_no_hooks(resnet)


# ----------------------------------------------------------------------------- top activations

RED = {0: [((3, 4), 0.2)], 1: [((5, 8), 0.9), ((12, 12), 0.85)], 2: [((8, 8), 0.5)], 4: [((9, 3), 0.7)],
       5: [((14, 2), 0.3)], 6: [((0, 15), 0.95)]}
GREEN = {0: [((1, 1), 0.6)], 1: [((4, 4), 0.1)], 2: [((15, 0), 0.8)], 3: [((10, 10), 0.6)], 5: [((7, 7), 0.65)],
         6: [((6, 9), 0.2)]}


def _dots():
    """7 images 16×16 with red and green dots, and a net whose channel 0 is the red dot (a centred delta on
    the red input), channel 1 the green one, then ReLU and max-pool 2×2."""
    images = torch.zeros(7, 3, 16, 16)
    for channel, dots in ((0, RED), (1, GREEN)):
        for n, spots in dots.items():
            for (r, c), v in spots:
                images[n, channel, r, c] = v
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = conv.weight[1, 1, 1, 1] = 1.0
    net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
    net.cnnviz_preprocess = Preprocess(16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return net, images


def test_top_activations_find_the_dots(capsys):
    net, images = _dots()
    top = top_activations(net, images, "2", k=3, batch_size=2)
    assert "top 3 of 2" in capsys.readouterr().err  # the progress bar
    assert isinstance(top, TopActivations) and top.layer == "2"
    # red: image 6 (0.95), image 1 (0.9; its 0.85 dot does not count twice), image 4 (0.7)
    assert top.index[0].tolist() == [6, 1, 4]
    torch.testing.assert_close(top.values[0], torch.tensor([0.95, 0.9, 0.7]))
    assert top.position[0].tolist() == [[0, 7], [2, 4], [4, 1]]  # the dots' pixels // 2
    # green: 0.8, 0.65, then a tie at 0.6 between images 0 and 3 (different batches): the earlier image
    assert top.index[1].tolist() == [2, 5, 0]
    assert top.position[1].tolist() == [[7, 0], [3, 3], [0, 0]]
    assert top.values.shape == (2, 3) and top.index.dtype == torch.long and top.position.shape == (2, 3, 2)
    # one batch, or a list of (image, label) pairs: the same
    same = top_activations(net, images, "2", k=3, progress=False)
    pairs = top_activations(net, [(img, 0) for img in images], "2", k=3, batch_size=3, progress=False)
    for other in (same, pairs):
        assert torch.equal(other.index, top.index) and torch.equal(other.position, top.position)
        assert torch.equal(other.values, top.values)
    assert top_activations(net, images, "2", k=20, progress=False).values.shape == (2, 7)  # at most N
    assert_no_hooks(net)


def test_patches_and_projections_are_cropped_at_the_receptive_field():
    net, images = _dots()
    top = top_activations(net, images, "2", k=3, progress=False)
    patches = top.patches(net, images, 0)
    # unit (i, j) after conv 3×3 p1 and pool 2×2: rows 2i-1 .. 2i+2, columns 2j-1 .. 2j+2 (4×4)
    assert patches.shape == (3, 3, 4, 4) and patches.dtype == torch.uint8
    assert receptive_box(net, "2", (0, 7), 16) == (0, 13, 3, 16)  # unit (0, 7), clipped
    first = patches[0]  # image 6, unit (0, 7): row -1 and column 16 lie outside the image → grey
    assert (first[:, 0, :] == 128).all() and (first[:, :, 3] == 128).all()
    expected = torch.zeros(3, 3, 3, dtype=torch.uint8)
    expected[0, 1 - 1, 2] = round(0.95 * 255)  # the dot (0, 15) sits at (1, 2) of the patch
    assert torch.equal(first[:, 1:, :3], expected)
    second = patches[1]  # image 1, unit (2, 4): rows 3..6, columns 7..10; the dot (5, 8) at (2, 1)
    assert torch.equal(second, (images[1, :, 3:7, 7:11] * 255).round().to(torch.uint8))
    assert second[0, 2, 1] == round(0.9 * 255)
    # projections: unpooled to the dot, through the delta filter: the dot again, with its value
    proj = top.projections(net, images, 0)
    assert proj.shape == (3, 3, 4, 4) and proj.dtype == torch.float32
    want = torch.zeros(3, 3, 4, 4)
    want[0, 0, 1, 2], want[1, 0, 2, 1], want[2, 0, 2, 2] = 0.95, 0.9, 0.7  # image 4: dot (9, 3), unit (4, 1)
    torch.testing.assert_close(proj, want)
    with pytest.raises(ChannelOutOfRange):
        top.patches(net, images, 2)


def test_top_activations_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    net, images = _dots()
    first = top_activations(net, images, "2", k=3, progress=False, cache=True)
    files = list((tmp_path / "topk").glob("*.pt"))
    assert len(files) == 1
    # the second call reads the file: change it and see the change
    data = torch.load(files[0], weights_only=True)
    data["values"] = data["values"] * 2
    torch.save(data, files[0])
    again = top_activations(net, images, "2", k=3, progress=False, cache=True)
    torch.testing.assert_close(again.values, first.values * 2)
    assert torch.equal(again.index, first.index)
    # a corrupt file is computed again (with a warning) and rewritten
    files[0].write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="could not be read"):
        fixed = top_activations(net, images, "2", k=3, progress=False, cache=True)
    assert torch.equal(fixed.values, first.values) and torch.equal(fixed.index, first.index)
    assert torch.equal(torch.load(files[0], weights_only=True)["values"], first.values)
    # other weights, other k or other images: other files
    top_activations(net, images, "2", k=2, progress=False, cache=True)
    top_activations(net, images[:5], "2", k=3, progress=False, cache=True)
    with torch.no_grad():
        net[0].weight[0, 0, 1, 1] = 2.0
    top_activations(net, images, "2", k=3, progress=False, cache=True)
    assert len(list((tmp_path / "topk").glob("*.pt"))) == 4
    assert not list((tmp_path / "topk").glob("*.tmp"))


def test_top_activations_bad_input():
    net, images = _dots()
    with pytest.raises(LayerNotFound):
        top_activations(net, images, "3", progress=False)
    with pytest.raises(ValueError, match="k must be a positive whole number"):
        top_activations(net, images, "2", k=0, progress=False)
    with pytest.raises(ValueError, match="empty"):
        top_activations(net, images[:0], "2", progress=False)
    with pytest.raises(ValueError, match=r"images\[0\] must be a normalised"):
        top_activations(net, ["astronaut"], "2", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_results_stay_on_the_models_device():
    net, images = _dots()
    net.cuda()
    with full_float32():  # the ranking compared exactly: full float32 on both devices, not TF32
        top = top_activations(net, images, "2", k=3, progress=False)
    assert top.values.device.type == top.index.device.type == top.position.device.type == "cuda"
    assert top.patches(net, images, 0).device.type == "cuda"
    assert top.projections(net, images, 1).device.type == "cuda"
    assert deconvnet(net, images[6], "2", 0).device.type == "cuda"
    assert deconvnet(Wrapper(net), images[6], "body.2", 0).device.type == "cuda"
    assert guided_backprop(net, images[6], "2", 0).device.type == "cuda"
    cpu = net.cpu()
    ref = top_activations(cpu, images, "2", k=3, progress=False)
    assert torch.equal(top.index.cpu(), ref.index)
