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


def test_nasnet_mobile_has_keras_counts_and_the_papers_costs():
    """Keras's ``NASNetMobile().summary()``: 5,289,978 trainable and 36,738 non-trainable parameters (batch norm's
    running means and variances), 5,326,716 in all, the Keras table's figure; Zoph et al., Table 2, NASNet-A
    (4 @ 1056): 5.3 M parameters and 564 M multiply-adds."""
    net = _meta("nasnet_mobile")
    running = sum(m.running_mean.numel() + m.running_var.numel() for m in net.modules()
                  if isinstance(m, nn.BatchNorm2d))
    assert count_params(net) == 5_289_978 and running == 36_738
    assert count_params(net) + running == 5_326_716
    assert all(m.eps == 1e-3 and m.momentum == pytest.approx(1 - 0.9997) for m in net.modules()
               if isinstance(m, nn.BatchNorm2d))                    # Keras's BatchNormalization(0.9997, 1e-3)
    s = summary(net, (3, 224, 224))
    from cnnviz.models.nasnet import PAPER_MOBILE
    assert round(s.total_params / 1e5) / 10 == PAPER_MOBILE["params"] / 1e6 == 5.3
    assert round(s.total_macs / 1e6) == PAPER_MOBILE["mult_adds"] / 1e6 == 564


def test_nasnet_mobile_stacks_keras_cells():
    from cnnviz.models.nasnet import FactorizedReduction, NormalCell, ReductionCell, ReLUConvBN
    net = _meta("nasnet_mobile")
    cells = dict(net.cells.items())
    reductions = [n for n, c in cells.items() if isinstance(c, ReductionCell)]
    normals = [n for n, c in cells.items() if isinstance(c, NormalCell)]
    assert reductions == ["stem_1", "stem_2", "reduce_4", "reduce_8"] and len(cells) == 16   # Keras's block ids
    assert normals == [str(i) for i in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12)]               # 3 stacks of N = 4
    assert [cells[n].filters for n in normals] == [44] * 4 + [88] * 4 + [176] * 4               # 1056 / 24 = 44
    assert [cells[n].filters for n in reductions] == [11, 22, 88, 176]
    # _adjust_block: the factorized reduction where p comes from before a reduction, else a 1×1 projection
    assert [n for n, c in cells.items() if isinstance(c.adjust, FactorizedReduction)] == ["stem_2", "0", "5", "9"]
    assert [n for n, c in cells.items() if c.adjust is None] == ["stem_1"]
    assert all(isinstance(c.adjust, ReLUConvBN) for n, c in cells.items() if n in ("1", "2", "3", "reduce_4"))
    shapes = {}
    hooks = [c.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, c in cells.items()]
    f = net.forward_features(torch.zeros(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    assert f.shape == (1, 1056, 7, 7)
    for n in normals:                                          # concat(p, x1, ..., x5): 6 × filters
        assert shapes[n][0] == 6 * cells[n].filters == cells[n].out_channels
    for n in reductions:                                       # concat(x2, x3, x4, x5): 4 × filters
        assert shapes[n][0] == 4 * cells[n].filters == cells[n].out_channels
    assert [shapes[n][1] for n in ("stem_1", "stem_2", "3", "reduce_4", "8", "reduce_8", "12")] == \
           [56, 28, 28, 14, 14, 7, 7]


def test_nasnet_mobile_runs_on_a_224_batch_and_pads_as_keras_does():
    from cnnviz.models.nasnet import KerasPad
    torch.manual_seed(0)
    net = models.get("nasnet_mobile").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        f = net.forward_features(x)
        out = net(x)
    assert f.shape == (2, 1056, 7, 7) and out.shape == (2, 1000) and torch.isfinite(out).all()
    torch.testing.assert_close(out, net.forward_head(f), rtol=0, atol=0)
    # correct_pad: k // 2 below and right; above and left one fewer where the side is even
    ones = torch.ones(1, 1, 8, 7)
    padded = KerasPad(3)(ones)
    assert padded.shape == (1, 1, 9, 9)                        # 8 → 0 + 8 + 1, 7 → 1 + 7 + 1
    assert padded[0, 0, 0, 1:8].eq(1).all() and padded[0, 0, -1].eq(0).all() and padded[0, 0, :, 0].eq(0).all()
    assert KerasPad(7)(ones).shape == (1, 1, 8 + 2 + 3, 7 + 3 + 3)
    # 'same' average pooling averages over the map only (no zeros from the padding)
    pool = net.cells["0"].left3
    torch.testing.assert_close(pool(ones), ones)


def test_nasnet_mobile_refuses_inputs_where_keras_would_build_another_network():
    from cnnviz.models.nasnet import NASNet
    from cnnviz.summaries import InputTooSmall
    net = _meta("nasnet_mobile")
    summary(net, (3, 19, 19))                                  # 9, 5, 3, 2, 1: every reduction still halves
    with pytest.raises(InputTooSmall, match="Keras") as err:
        summary(net, (3, 18, 18))                              # 8, 4, 2, 1, 1: cell 9's p would be projected
    assert err.value.min_size == 19 and err.value.layer == "cells.9"
    with pytest.raises(ValueError, match="multiple of 24"):
        NASNet(penultimate_filters=1000)


# ----------------------------------------------------------------------------- FractalNet
# Larsson et al. 2017. Table 1 prints "FractalNet (20 layers, 38.6M params)"; the network the paper describes
# (5 blocks of 3 columns, 64-128-256-512-512 channels, 3×3 conv + BN + ReLU, 2×2 max pools, a linear layer)
# has 33.7 M, as do the authors' Caffe generator and other re-implementations: the description is pinned.

def _fractal_calls(net, x, **kwargs):
    """The conv units and joins ``net`` calls on ``x``, in order, and its output (hooks removed afterwards)."""
    from cnnviz.models.fractalnet import ConvBNReLU, Join
    calls, handles = [], []
    for m in net.modules():
        if isinstance(m, (ConvBNReLU, Join)):
            handles.append(m.register_forward_hook(lambda m, i, o: calls.append(m)))
    try:
        out = net(x, **kwargs)
    finally:
        for h in handles:
            h.remove()
    assert all(not m._forward_hooks for m in net.modules())
    return calls, out


def test_fractalnet20_has_the_described_count_not_table_1s():
    from cnnviz.layers import dense_params
    from cnnviz.models import fractalnet as fn
    net = _meta("fractalnet20")
    # per block: the first unit of each of the 3 columns reads the block's input, the other 4 its width
    expected, c_in = dense_params(512, 10), 3
    for c in fn.CIFAR_CHANNELS:
        expected += 3 * conv_params(c_in, c, 3, bias=False) + 4 * conv_params(c, c, 3, bias=False) + 7 * 2 * c
        c_in = c
    assert count_params(net) == expected == 33_724_618
    assert round(count_params(net) / 1e5) / 10 == 33.7
    assert fn.PAPER_PARAMS["fractalnet20"] == 38.6e6          # Table 1's figure, 4.9 M more than described
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 5 * (2 ** 3 - 1)   # B (2^C − 1) = 35
    assert sum(isinstance(m, fn.Join) for m in net.modules()) == 5 * 2                # a 2- and a 3-input join
    assert models.info("fractalnet20").family == "fractalnet" and models.info("fractalnet20").num_classes == 10


@pytest.mark.parametrize("columns, depth", [(3, 20), (4, 40)])
def test_fractalnet_longest_path_has_b_times_2_to_the_c_minus_1_convolutions(columns, depth):
    """Oracle: the longest path through the traced graph (a conv unit adds one to its input's depth, a join
    takes its deepest input), not the network's own bookkeeping."""
    from cnnviz.models import fractalnet as fn
    with torch.device("meta"):
        net = fn.fractalnet(columns).eval()
    seen, handles = {}, []

    def conv_hook(m, i, o):
        seen[id(o)] = (o, seen.get(id(i[0]), (None, 0))[1] + 1)

    def pass_hook(m, i, o):          # joins and pools: the deepest input
        seen[id(o)] = (o, max(seen.get(id(t), (None, 0))[1] for t in i))

    for m in net.modules():
        if isinstance(m, fn.ConvBNReLU):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, (fn.Join, nn.MaxPool2d)):
            handles.append(m.register_forward_hook(pass_hook))
    try:
        f = net.forward_features(torch.zeros(1, 3, 32, 32, device="meta"))
    finally:
        for h in handles:
            h.remove()
    assert seen[id(f)][1] == depth == net.depth
    columns_alone = [len(_fractal_calls(net, torch.zeros(1, 3, 32, 32, device="meta"), column=k)[0])
                     for k in range(1, columns + 1)]
    assert columns_alone == [5 * 2 ** (k - 1) for k in range(1, columns + 1)]   # column k: 2^(k−1) per block
    assert max(columns_alone) == depth


def test_fractal_block_at_test_time_is_the_mean_of_its_columns():
    """Oracle built from the block's own conv units: f₃(x) = mean(conv(x), col₂(h), col₃(h)), h = f₂(x) =
    mean(conv(x), conv(conv(x))), the three-input join of the paper's figure (not a mean of a mean)."""
    from cnnviz.models.fractalnet import FractalBlock
    torch.manual_seed(0)
    block = FractalBlock(2, 3, 3)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):   # running statistics that are not the identity
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    block.eval()
    x = torch.randn(2, 2, 5, 5)
    f, s = block.first, block.second
    with torch.no_grad():
        h = (f.conv(x) + f.second.conv(f.first.conv(x))) / 2
        columns = [block.conv(x), s.conv(h), s.second.conv(s.first.conv(h))]
        torch.testing.assert_close(block(x), sum(columns) / 3)
        assert not torch.allclose(block(x), (columns[0] + (columns[1] + columns[2]) / 2) / 2)
        assert block(x).shape == (2, 3, 5, 5)
        for k, layers in enumerate(([block.conv], [f.conv, s.conv], [f.first.conv, f.second.conv,
                                                                      s.first.conv, s.second.conv]), 1):
            assert block.column_layers(k) == layers
            y = x
            for layer in layers:
                y = layer(y)
            torch.testing.assert_close(block(x, column=k), y)


@pytest.mark.parametrize("inputs", [2, 3, 4])
def test_fractal_local_drop_path_keeps_one_input_and_drops_at_the_papers_rate(inputs):
    """Each input dropped with p = 0.15, one kept at random when all are: a drop rate of p − pⁿ/n per input;
    the join averages the kept ones; at test time it is the plain mean."""
    from cnnviz.models.fractalnet import Join
    join = Join(inputs, 0.15).train()
    xs = [torch.full((1, 1, 1, 1), 10.0 ** i) for i in range(inputs)]
    torch.manual_seed(0)
    draws = 3000
    dropped = 0
    for _ in range(draws):
        out = join(*xs)
        kept = join.last_kept
        assert any(kept)
        torch.testing.assert_close(out, sum(x for x, k in zip(xs, kept) if k) / sum(kept))
        dropped += inputs - sum(kept)
    rate, expected = dropped / (draws * inputs), 0.15 - 0.15 ** inputs / inputs
    assert abs(rate - expected) < 0.012, (rate, expected)
    join.eval()
    torch.testing.assert_close(join(*xs), sum(xs) / inputs)
    with pytest.raises(ValueError, match="averages 4 inputs"):
        Join(4)(*xs[:1])


def test_fractal_global_drop_path_runs_exactly_one_column_and_the_mix_is_half_and_half():
    from cnnviz.models import fractalnet as fn
    torch.manual_seed(0)
    net = fn.fractalnet(3, channels=(4, 4, 4, 4, 4), global_ratio=1.0).train()
    x = torch.randn(2, 3, 32, 32)
    drawn = []
    for _ in range(30):
        calls, out = _fractal_calls(net, x)
        k = net.last_column
        drawn.append(k)
        column = [m for block, _ in net._stages() for m in block.column_layers(k)]
        assert calls == column                                   # that column's units, in order, and no join
        assert out.shape == (2, 10)
    assert set(drawn) == {1, 2, 3}
    mixed = fn.fractalnet(3, channels=(4, 4, 4, 4, 4)).train()   # the paper's 50/50 mix, per mini-batch
    torch.manual_seed(1)
    share = 0
    for _ in range(200):
        calls, _ = _fractal_calls(mixed, x)
        is_global = mixed.last_column is not None
        share += is_global
        assert any(isinstance(m, fn.Join) for m in calls) != is_global
    assert abs(share / 200 - 0.5) < 0.1


def test_fractalnet_column_is_a_chain_of_the_fractals_own_layers():
    from cnnviz.models import fractalnet as fn
    torch.manual_seed(0)
    net = fn.fractalnet(3, channels=(4, 6, 8, 8, 8)).eval()
    x = torch.randn(2, 3, 32, 32)
    params = {id(p) for p in net.parameters()}
    with torch.no_grad():
        for k in (1, 2, 3):
            col = net.column(k)
            assert sum(isinstance(m, nn.Conv2d) for m in col.modules()) == 5 * 2 ** (k - 1)
            assert all(id(p) in params for p in col.parameters())          # shared, not copied
            torch.testing.assert_close(col(x), net(x, column=k))
            torch.testing.assert_close(col(x), col.forward_head(col.forward_features(x)))
    with pytest.raises(ValueError, match="numbered 1"):
        net.column(4)


def test_fractalnet20_classifies_a_real_batch():
    torch.manual_seed(0)
    net = models.get("fractalnet20")
    x = torch.randn(2, 3, 32, 32)
    assert net.feature_layers == ("block1", "block2", "block3", "block4", "block5")
    with torch.no_grad():
        assert net(x).shape == (2, 10)                                      # training: drop-path
        net.eval()
        out = net(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        torch.testing.assert_close(out, net.forward_head(net.forward_features(x)))
        assert net.forward_features(x).shape == (2, 512, 1, 1)


def test_fractalnet_refuses_what_the_paper_does_not_define():
    from cnnviz.models import fractalnet as fn
    with pytest.raises(ValueError, match="columns"):
        fn.fractalnet(0)
    with pytest.raises(ValueError, match="channels"):
        fn.fractalnet(3, channels=(64, 0))
    with pytest.raises(ValueError, match="one dropout rate per block"):
        fn.fractalnet(3, dropout=(0.1, 0.2))
    with pytest.raises(ValueError, match="local drop-path"):
        fn.fractalnet(3, local_drop=1.0)
    with pytest.raises(ValueError, match="global_ratio"):
        fn.fractalnet(3, global_ratio=1.5)
    with pytest.raises(ValueError, match="at least 2"):
        fn.Join(1)
    with pytest.raises(RuntimeError, match="block around it"):
        fn.FractalBlock(4, 4, 3).second(torch.zeros(1, 4, 4, 4))
