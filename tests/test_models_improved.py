"""The improved ResNets, MobileNets and SqueezeNet against their oracles: torchvision's networks and their
weights' published counts, the papers' parameter and multiply-add figures, chapter 2's formulas, and the
behaviour each paper defines (stochastic depth's decay rule, identity at test time; the SE gate's cost)."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

from cnnviz import models, summary
from cnnviz.models import checkpoint_path
from cnnviz.layers import conv_params
from cnnviz.models import improved_resnet as ir
from cnnviz.models import mobilenet as mn
from cnnviz.models.squeezenet import squeezenet
from cnnviz.summaries import count_params

TORCHVISION = {"wide_resnet50_2": "wide_resnet50_2", "resnext50_32x4d": "resnext50_32x4d",
               "resnext101_32x8d": "resnext101_32x8d", "mobilenet_v2": "mobilenet_v2",
               "squeezenet1_0": "squeezenet1_0", "squeezenet1_1": "squeezenet1_1"}


def _meta(name, **kwargs):
    with torch.device("meta"):
        return models.get(name, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_twins_have_its_keys_shapes_and_published_counts(name):
    spec = models.info(name)
    ours = _meta(name)
    with torch.device("meta"):
        theirs = getattr(torchvision.models, TORCHVISION[name])(weights=None)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
           [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert count_params(ours) == spec.weights.meta["num_params"]
    s = summary(ours, spec.input_size)
    assert round(s.total_macs / 1e9, 3) == pytest.approx(spec.weights.meta["_ops"], abs=1e-3)   # "GFLOPS" = MACs


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1", "mobilenet_v2"])
def test_a_torchvision_checkpoint_loads_and_gives_torchvisions_outputs(tmp_path, monkeypatch, name):
    """A checkpoint written into a temporary hub cache (no download) loads through models.get(pretrained=True),
    and the cnnviz model computes what torchvision's computes with the same weights. (The other new models with
    weights are torchvision's ResNet and Inception3 classes, whose keys and shapes are checked above.)"""
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)        # restored afterwards
    torch.hub.set_dir(str(tmp_path))
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    path = Path(checkpoint_path(models.info(name).weights))
    assert path.is_relative_to(tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(theirs.state_dict(), path)
    ours = models.get(name, pretrained=True).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
        torch.testing.assert_close(ours.forward_head(ours.forward_features(x)), theirs(x))


@pytest.mark.parametrize("name, depth, widen", [("wrn28_10", 28, 10), ("wrn40_4", 40, 4), ("wrn16_8", 16, 8)])
def test_wide_resnets_have_the_papers_parameter_counts(name, depth, widen):
    with torch.device("meta"):
        net = ir.wide_resnet_cifar(depth, widen)
    assert round(count_params(net) / 1e5) / 10 == ir.PAPER_PARAMS[name] / 1e6       # WRN Table 4, 0.1 M
    assert len(net.group1) == (depth - 4) // 6
    assert net(torch.zeros(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_se_resnet50_costs_its_gates_and_nothing_else():
    se, plain = _meta("se_resnet50"), _meta("resnet50")
    assert round(count_params(se) / 1e5) / 10 == ir.PAPER_PARAMS["se_resnet50"] / 1e6    # SENet Table 2: 28.1 M
    # each gate: C → C/16 → C, 1×1 convolutions with biases, in every bottleneck of the four stages
    gates = sum(n * (conv_params(c, c // 16, 1) + conv_params(c // 16, c, 1))
                for c, n in ((256, 3), (512, 4), (1024, 6), (2048, 3)))
    assert count_params(se) - count_params(plain) == gates
    gate = next(m for m in se.modules() if isinstance(m, torchvision.ops.SqueezeExcitation))
    assert gate.fc1.in_channels == 16 * gate.fc1.out_channels


def test_se_gate_rescales_the_channels_before_the_addition():
    torch.manual_seed(0)
    block = ir.SEBottleneck(256, 64).eval()
    x = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        out = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        s = torch.sigmoid(block.se.fc2(torch.relu(block.se.fc1(out.mean((2, 3), keepdim=True)))))
        torch.testing.assert_close(block(x), torch.relu(out * s + x))


def test_stochastic_depth_follows_the_linear_decay_rule():
    net = models.get("resnet110_stochastic_depth")
    blocks = [b for stage in (net.layer1, net.layer2, net.layer3) for b in stage]
    assert len(blocks) == 54
    p = [b.survival for b in blocks]
    assert p == pytest.approx([1 - (l / 54) * 0.5 for l in range(1, 55)])
    assert p[-1] == pytest.approx(0.5) and all(a > b for a, b in zip(p, p[1:]))
    assert count_params(net) == count_params(models.get("resnet110"))   # dropping costs no parameter


def test_stochastic_depth_is_the_plain_resnet_at_test_time_and_drops_blocks_in_training():
    torch.manual_seed(0)
    net = ir.stochastic_depth_resnet(20, p_last=0.5)
    plain = models.get("resnet20")
    plain.load_state_dict(net.state_dict())                            # the same weights, plain blocks
    x = torch.randn(4, 3, 32, 32)
    net.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x))                   # all blocks used, no rescaling
    net.train()
    dropped = []
    for block in (b for stage in (net.layer1, net.layer2, net.layer3) for b in stage):
        block.drop.register_forward_hook(lambda m, i, o: dropped.append(bool((o == 0).all())))
    torch.manual_seed(1)
    for _ in range(50):
        net(x)
    rate = sum(dropped) / len(dropped)
    expected = 1 - sum(ir.survival_probabilities(9, 0.5)) / 9         # 0.278 for 9 blocks
    assert abs(rate - expected) < 0.08, (rate, expected)
    with pytest.raises(ValueError, match="survival probability"):
        ir.survival_probabilities(9, 0.0)


def test_mobilenet_v1_has_the_papers_costs_and_chapter_2s_saving():
    net = _meta("mobilenet_v1")
    s = summary(net, (3, 224, 224))
    assert round(s.total_params / 1e5) / 10 == mn.PAPER_V1["params"] / 1e6          # 4.2 M
    assert round(s.total_macs / 1e6) == mn.PAPER_V1["mult_adds"] / 1e6              # 569 M
    for layer in list(net.features)[1:]:
        dw, pw = layer.depthwise[0], layer.pointwise[0]
        c, c_out = dw.in_channels, pw.out_channels
        assert dw.groups == c and count_params(dw) == conv_params(c, c, 3, bias=False, groups=c) == 9 * c
        assert count_params(pw) == conv_params(c, c_out, 1, bias=False)
    v2 = summary(_meta("mobilenet_v2"), (3, 224, 224))
    assert round(v2.total_macs / 1e7) * 1e7 == mn.PAPER_V2["mult_adds"]          # "300M", to its 2 digits
    assert abs(v2.total_params - mn.PAPER_V2["params"]) < 0.11e6                  # 3.50 M against "3.4M"
    half = mn.mobilenet_v1(width=0.5, num_classes=10)
    assert half.fc.in_features == 512
    with pytest.raises(ValueError, match="width multiplier"):
        mn.mobilenet_v1(width=0)


def test_new_builders_refuse_what_the_papers_do_not_define():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        ir.wide_resnet_cifar(27, 10)
    with pytest.raises(ValueError, match="bottlenecks"):
        ir.resnext(34)
    with pytest.raises(ValueError, match="groups"):
        ir.resnext(50, groups=0)
    with pytest.raises(ValueError, match="version"):
        squeezenet(version="2_0")
    assert isinstance(models.get("squeezenet1_1", num_classes=7).classifier[1], nn.Conv2d)


# ----------------------------------------------------------------------------- built as Keras builds them
# (their parameter counts, the Keras way, equal the lecture's table: tests/test_accuracy.py)

def test_xception_has_the_papers_36_convolutions_and_parameters():
    from cnnviz.models.xception import SeparableConv2d
    net = _meta("xception")
    separable = [m for m in net.modules() if isinstance(m, SeparableConv2d)]
    stem = [m for m in net.stem if isinstance(m, nn.Conv2d)]
    assert len(separable) + len(stem) == 36                       # "36 convolutional layers" (Chollet, section 3)
    assert all(s.depthwise.groups == s.depthwise.in_channels and s.pointwise.kernel_size == (1, 1)
               for s in separable)
    assert len(net.middle) == 8 and all(b.shortcut is None for b in net.middle)
    assert count_params(net) == 22_855_952                        # Chollet's Table 3, to the parameter
    assert net.forward_features(torch.zeros(1, 3, 299, 299, device="meta")).shape == (1, 2048, 10, 10)


def test_resnet_v2_blocks_preactivate_and_stride_at_the_end_of_a_stage():
    from cnnviz.models.resnet_v2 import PreActBottleneckV2
    torch.manual_seed(0)
    net = models.get("resnet50_v2").eval()
    strides = [[b.body[4].stride[0] for b in stage] for stage in (net.stage1, net.stage2, net.stage3, net.stage4)]
    assert strides == [[1, 1, 2], [1, 1, 1, 2], [1] * 5 + [2], [1, 1, 1]]
    assert [b.projection for b in net.stage2] == [True, False, False, False]
    block = PreActBottleneckV2(64, 16, stride=2).eval()        # identity shortcut, subsampled
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x[:, :, ::2, ::2] + block.body(block.preact(x)))
        first = net.stage1[0]
        y = torch.randn(1, 64, 8, 8)
        a = first.preact(y)
        torch.testing.assert_close(first(y), first.shortcut(a) + first.body(a))   # projection of the pre-activation


def test_inception_resnet_blocks_add_their_scaled_output():
    from cnnviz.models.inception_resnet_v2 import BLOCKS, ResidualInception
    net = _meta("inception_resnet_v2")
    for kind, n, scale in BLOCKS:
        stage = getattr(net, f"block_{kind.lower()}")
        assert len(stage) == n and {b.scale for b in stage[:n - 1]} == {scale}
    assert net.block_c[-1].scale == 1.0 and isinstance(net.block_c[-1].relu, nn.Identity)
    torch.manual_seed(0)
    block = ResidualInception("A", 320, 0.17).eval()
    x = torch.randn(1, 320, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x + 0.17 * block.up(block.mixed(x))))
    assert net.forward_features(torch.zeros(1, 3, 299, 299, device="meta")).shape == (1, 1536, 8, 8)


def test_inception_v4_has_the_papers_modules_and_the_public_count():
    from cnnviz.models.inception_v4 import MODULES
    net = _meta("inception_v4")
    assert [(name, len(getattr(net, name))) for name, _ in MODULES] == list(MODULES)   # Figure 9: 4, 7, 3
    shapes = {}
    x = torch.zeros(1, 3, 299, 299, device="meta")
    for name in net.feature_layers:
        x = getattr(net, name)(x)
        shapes[name] = tuple(x.shape[1:])
    assert shapes["stem"] == (384, 35, 35) and shapes["reduction_a"] == (1024, 17, 17)   # Figures 3 and 7
    assert shapes["reduction_b"] == (1536, 8, 8) and shapes["inception_c"] == (1536, 8, 8)
    # the paper prints no parameter count; other implementations of its figures (timm's inception_v4) have this one
    assert count_params(net) == 42_679_816
