"""The helpers behind the ResNet family page (10b) and the DenseNet chapter (11).

Oracles: the models' own modules and totals (a table's rows add up to the
whole model), the papers' tables (He et al. 2016 Table 1, Huang et al. 2017
Tables 1 and 2), hand-worked formulas, and torch.cat counted during a real
forward pass. Counting runs on the meta device.
"""
import pytest
import torch
import torch.nn as nn

import cnnviz.models as models
from cnnviz.models import densenet, resnet
from cnnviz.summaries import count_params, summary


def _meta(name, **kwargs):
    with torch.device("meta"):
        return models.get(name, **kwargs)


# ---------------------------------------------------------------- ResNet: blocks and shortcuts


def test_residual_block_basic_is_resnet34s_block():
    with torch.device("meta"):
        block = resnet.residual_block("basic", 64, 64)
    # two 3×3 convolutions without bias, two batch norms
    assert count_params(block) == 2 * (9 * 64 * 64) + 2 * (2 * 64)
    assert block.downsample is None
    theirs = _meta("resnet34").layer1[0]
    assert {k: v.shape for k, v in block.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("v1_5", [False, True])
def test_residual_block_bottleneck_matches_resnet50(v1_5):
    net = _meta("resnet50_tv" if v1_5 else "resnet50")
    with torch.device("meta"):
        plain = resnet.residual_block("bottleneck", 256, 64, v1_5=v1_5)
        strided = resnet.residual_block("bottleneck", 256, 128, stride=2, v1_5=v1_5)
    assert count_params(plain) == 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)
    for ours, theirs in ((plain, net.layer1[1]), (strided, net.layer2[0])):
        assert type(ours) is type(theirs)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
        assert [m.stride for m in ours.modules() if isinstance(m, nn.Conv2d)] == \
               [m.stride for m in theirs.modules() if isinstance(m, nn.Conv2d)]
    # the projection: 1×1, stride 2, 256 → 512, with batch norm (option B)
    assert strided.downsample[0].stride == (2, 2) and count_params(strided.downsample) == 256 * 512 + 2 * 512


def test_residual_block_runs_and_rejects_unknown_kinds():
    torch.manual_seed(0)
    block = resnet.residual_block("bottleneck", 16, 8, stride=2).eval()
    with torch.no_grad():
        assert block(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    with pytest.raises(ValueError, match="basic.*bottleneck"):
        resnet.residual_block("dense", 16, 16)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_all_projections_is_option_c(name):
    net = _meta(name)
    before = {k: v.shape for k, v in net.state_dict().items()}
    c = resnet.all_projections(net)
    assert {k: v.shape for k, v in net.state_dict().items()} == before  # the argument is untouched
    blocks = [m for m in c.modules() if isinstance(m, (resnet.tv.BasicBlock, resnet.tv.Bottleneck))]
    assert blocks and all(b.downsample is not None for b in blocks)
    added = sum(b.conv1.in_channels * b.conv1.in_channels + 2 * b.conv1.in_channels
                for b in net.modules()
                if isinstance(b, (resnet.tv.BasicBlock, resnet.tv.Bottleneck)) and b.downsample is None)
    assert count_params(c) - count_params(net) == added  # identity blocks: in = out channels


def test_all_projections_runs():
    torch.manual_seed(0)
    net = resnet.all_projections(models.get("resnet18", num_classes=3)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert next(net.parameters()).device.type == "cpu"


# ---------------------------------------------------------------- ResNet: Table 1


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_stages_add_up_to_the_model(depth):
    net = _meta(f"resnet{depth}")
    s = summary(net, (3, 224, 224))
    rows = resnet.stages(net)
    assert rows == resnet.stages(net, precomputed=s)
    assert [r.name for r in rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc"]
    assert sum(r.params for r in rows) == s.total_params
    assert sum(r.macs for r in rows) == s.total_macs
    assert [r.blocks for r in rows[1:5]] == resnet._IMAGENET_BLOCKS[depth]
    assert [r.output_shape[1:] for r in rows[:5]] == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert rows[0].layers == ((7, 64),) and rows[-1].layers == () and rows[-1].receptive_field is None
    widths = (64, 128, 256, 512)
    for stage, width in zip(rows[1:5], widths):
        expected = ((3, width), (3, width)) if depth < 50 else ((1, width), (3, width), (1, 4 * width))
        assert stage.layers == expected
    fields = [r.receptive_field for r in rows[:5]]
    assert fields == sorted(fields) and fields[0] == 7


def test_stages_rejects_other_models():
    with pytest.raises(TypeError, match="ImageNet ResNets"):
        resnet.stages(_meta("resnet20", num_classes=10), (3, 32, 32))


def test_preact_table2_full_preactivation_is_best():
    best = resnet.PREACT_TABLE2["full pre-activation (BN-ReLU-conv)"]
    assert all(best[i] == min(v[i] for v in resnet.PREACT_TABLE2.values()) for i in (0, 1))


@pytest.mark.parametrize("name", sorted(resnet.KERAS_PARAMS))
def test_keras_params_from_the_summary(name):
    # the chapter's accounting: + one running mean and variance per BN γ, β; + one bias per conv filter
    s = summary(_meta(name), (3, 224, 224))
    running = sum(r.params for r in s.rows if r.kind == "BatchNorm2d")
    biases = sum(r.output_shape[0] for r in s.rows if r.kind == "Conv2d")
    assert s.total_params + running + biases == resnet.KERAS_PARAMS[name]


# ---------------------------------------------------------------- DenseNet


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201", "densenet264", "densenet_bc_100"])
def test_block_channels_match_the_models(name):
    net = _meta(name)
    blocks = [b for n, b in net.features.named_children() if n.startswith("denseblock")]
    k = blocks[0].denselayer1.conv2.out_channels
    c0 = blocks[0].denselayer1.norm1.num_features
    rows = densenet.block_channels([len(b) for b in blocks], growth_rate=k, num_init_features=c0)
    transitions = [t for n, t in net.features.named_children() if n.startswith("transition")]
    for (c_in, c_out, after), block, i in zip(rows, blocks, range(len(blocks))):
        assert block.denselayer1.norm1.num_features == c_in
        last = list(block.values())[-1]
        assert last.norm1.num_features + k == c_out
        assert after == (transitions[i].conv.out_channels if i < len(transitions) else None)
    assert rows[-1][1] == net.classifier.in_features


def test_block_channels_densenet121_by_hand():
    assert densenet.block_channels((6, 12, 24, 16)) == [(64, 256, 128), (128, 512, 256), (256, 1024, 512),
                                                       (512, 1024, None)]
    assert densenet.block_channels((2,), growth_rate=4, num_init_features=3) == [(3, 11, None)]


@pytest.mark.parametrize("name", ["densenet121", "densenet264", "densenet_bc_100"])
def test_densenet_stages_add_up(name):
    net = _meta(name, num_classes=10 if name.endswith("100") else 1000)
    s = summary(net, net.default_input_size)
    rows = densenet.stages(net)
    assert rows == densenet.stages(net, precomputed=s)
    assert sum(r.params for r in rows) == s.total_params and sum(r.macs for r in rows) == s.total_macs
    n_blocks = 3 if name.endswith("100") else 4
    names = ["Convolution"] + ([] if name.endswith("100") else ["Pooling"])
    for i in range(1, n_blocks + 1):
        names += [f"Dense Block ({i})"] + ([f"Transition Layer ({i})"] if i < n_blocks else [])
    assert [r.name for r in rows] == names + ["Classification"]
    assert all(a.output_shape[0] == b.in_channels for a, b in zip(rows, rows[1:]))
    assert [r.layers for r in rows if r.layers] == [len(b) for n, b in net.features.named_children()
                                                     if n.startswith("denseblock")]
    assert rows[-1].receptive_field is None and rows[0].in_channels == 3


def test_densenet_stages_rejects_other_models():
    with pytest.raises(TypeError, match="DenseNets"):
        densenet.stages(_meta("resnet18"))


def test_concatenated_inputs_by_hand():
    s = summary(_meta("densenet_bc_100", num_classes=10), (3, 32, 32))
    got = densenet.concatenated_inputs(s)
    expected, c0 = {}, 24
    for i, side in enumerate((32, 16, 8), start=1):
        layer_inputs = sum(c0 + (l - 1) * 12 for l in range(1, 17))
        expected[f"features.denseblock{i}"] = (layer_inputs + c0 + 16 * 12) * side * side
        c0 = (c0 + 16 * 12) // 2
    assert got == expected
    assert densenet.concatenated_inputs(summary(_meta("resnet18"), (3, 64, 64))) == {}


def test_concatenated_inputs_match_torch_cat():
    torch.manual_seed(0)
    net = densenet.cifar_densenet(16, growth_rate=4).eval()  # 2 layers per block
    made = []
    real_cat = torch.cat

    def counting_cat(tensors, *args, **kwargs):
        out = real_cat(tensors, *args, **kwargs)
        made.append(out.numel())
        return out

    torch.cat = counting_cat
    try:
        with torch.no_grad():
            net(torch.randn(1, 3, 32, 32))
    finally:
        torch.cat = real_cat
    assert sum(densenet.concatenated_inputs(summary(net, (3, 32, 32))).values()) == sum(made)


@pytest.mark.parametrize("key", sorted(densenet.TABLE2_BC_PARAMS))
def test_table2_bc_params(key):
    depth, growth = key
    with torch.device("meta"):
        count = count_params(densenet.cifar_densenet(depth, growth_rate=growth))
    assert round(count / 1e6, 1) == densenet.TABLE2_BC_PARAMS[key] / 1e6


@pytest.mark.parametrize("name", sorted(densenet.KERAS_PARAMS))
def test_densenet_keras_params_from_the_summary(name):
    s = summary(_meta(name), (3, 224, 224))
    assert s.total_params + sum(r.params for r in s.rows if r.kind == "BatchNorm2d") == densenet.KERAS_PARAMS[name]
