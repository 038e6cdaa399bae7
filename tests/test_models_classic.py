"""The classic models (LeNet-5 … GoogLeNet) against their oracles: the papers' counts, torchvision's
models and documented figures, the lectures' worked examples and torch's FlopCounterMode."""
import re
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnviz.layers import conv_macs, conv_params, dense_params
from cnnviz.models import WeightsUnavailable, available, checkpoint_path, get, info

available()  # register every family in the course's order before importing two of them directly
from cnnviz.models import googlenet as G  # noqa: E402
from cnnviz.models.lenet import C3_TABLE, lenet5_connections  # noqa: E402

FAMILIES = {
    "lenet": ["lenet5", "lenet5_1998"],
    "alexnet": ["alexnet", "alexnet_2gpu", "alexnet_tv", "zfnet", "zfnet_wide"],
    "vgg": ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"],
    "nin": ["nin"],
    "googlenet": ["googlenet"],
}
LATER = {"googlenet": ["inception_v3", "inception_v4", "inception_resnet_v2"]}   # the family's later networks (another test file)
NAMES = [name for names in FAMILIES.values() for name in names]
BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def _meta(name, num_classes=1000):
    """The model built on the meta device: shapes and parameter counts without memory or time."""
    with torch.device("meta"):
        return get(name, num_classes=num_classes)


def _materialise(model):
    """A meta-device model on the CPU with small random weights (much faster than VGG's own init)."""
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            bound = (p[0].numel() if p.dim() > 1 else 1) ** -0.5  # 1/√fan-in keeps activations finite
            p.uniform_(-bound, bound, generator=generator)
        for b in model.buffers():  # batch-norm statistics, LeNet's RBF prototypes
            b.fill_(1) if b.is_floating_point() else b.zero_()
    return model


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _macs(model, input_size):
    """Multiply–accumulates of one image, by torch's own counter (it reports FLOPs = 2 × MACs)."""
    with torch.device("meta"):
        x = torch.empty(1, *input_size)
    with FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2


# ----------------------------------------------------------------------------- registry and contract

def test_families_register_their_names():
    for family, names in FAMILIES.items():
        assert available(family) == names + LATER.get(family, [])
    keys = set(re.findall(r"^@\w+\{([^,]+),", BIB.read_text(encoding="utf-8"), flags=re.M))
    for name in NAMES:
        assert info(name).paper in keys, name


@pytest.mark.parametrize("name", NAMES)
def test_contract_on_meta(name):
    model = _meta(name).eval()
    assert tuple(model.default_input_size) == info(name).input_size
    with torch.device("meta"):
        x = torch.empty(2, *model.default_input_size)
    f = model.forward_features(x)
    assert f.dim() == 4 and f.shape[0] == 2
    assert model.forward_head(f).shape == (2, 1000)
    assert model(x).shape == (2, 1000)
    # feature_layers resolve, and fire once each, in the order listed (input to output)
    fired = []
    layers = [model.get_submodule(n) for n in model.feature_layers]
    assert len(layers) >= 2
    handles = [m.register_forward_hook(lambda m, i, o, n=n: fired.append(n)) for n, m in
               zip(model.feature_layers, layers)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    assert fired == list(model.feature_layers)
    assert not any(m._forward_hooks for m in model.modules())


# adaptive global pooling lets these run on small images (the default sizes are checked on meta above)
SMALL_SIDE = {"vgg": 32, "nin": 96, "googlenet": 96}


@pytest.mark.parametrize("name", NAMES)
def test_forward_is_head_of_features(name):
    model = _materialise(_meta(name, num_classes=10)).eval()
    side = SMALL_SIDE.get(info(name).family)
    size = model.default_input_size if side is None else (3, side, side)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, model.forward_head(model.forward_features(x)), rtol=0, atol=0)


# ----------------------------------------------------------------------------- parameter totals

PARAMS = [
    # name, num_classes, trainable parameters, source
    ("lenet5", 10, conv_params(1, 6, 5) + conv_params(6, 16, 5) + dense_params(400, 120) + dense_params(120, 84)
     + dense_params(84, 10)),                                                          # 61,706
    ("lenet5_1998", 10, 60_000),                                                       # LeCun et al. 1998, II.B
    ("alexnet", 1000, 62_378_344),                                                     # the homework's table
    ("alexnet_2gpu", 1000, 60_965_224),
    ("alexnet_tv", 1000, torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]),  # 61,100,840
    ("zfnet", 1000, conv_params(3, 96, 7) + conv_params(96, 256, 5) + conv_params(256, 384, 3)
     + conv_params(384, 384, 3) + conv_params(384, 256, 3) + dense_params(6 * 6 * 256, 4096)
     + dense_params(4096, 4096) + dense_params(4096, 1000)),                           # 62,357,608
    ("zfnet_wide", 1000, conv_params(3, 96, 7) + conv_params(96, 256, 5) + conv_params(256, 512, 3)
     + conv_params(512, 1024, 3) + conv_params(1024, 512, 3) + dense_params(6 * 6 * 512, 4096)
     + dense_params(4096, 4096) + dense_params(4096, 1000)),                           # 107,627,624
    ("vgg11", 1000, 132_863_336), ("vgg13", 1000, 133_047_848),
    ("vgg16", 1000, 138_357_544), ("vgg19", 1000, 143_667_240),
    ("vgg11_bn", 1000, 132_868_840), ("vgg13_bn", 1000, 133_053_736),
    ("vgg16_bn", 1000, 138_365_992), ("vgg19_bn", 1000, 143_678_248),
    ("nin", 1000, conv_params(3, 96, 11) + 2 * conv_params(96, 96, 1) + conv_params(96, 256, 5)
     + 2 * conv_params(256, 256, 1) + conv_params(256, 384, 3) + 2 * conv_params(384, 384, 1)
     + conv_params(384, 1024, 3) + conv_params(1024, 1024, 1) + conv_params(1024, 1000, 1)),  # 7,595,176
]


@pytest.mark.parametrize("name, num_classes, expected", PARAMS, ids=[p[0] for p in PARAMS])
def test_parameter_totals(name, num_classes, expected):
    assert _count(_meta(name, num_classes)) == expected


def test_vgg_is_torchvision_vgg():
    for name in FAMILIES["vgg"]:
        weights = info(name).weights
        assert _count(_meta(name)) == weights.meta["num_params"]
        builder = getattr(torchvision.models, name)
        with torch.device("meta"):
            theirs = builder(weights=None).state_dict()
        ours = _meta(name).state_dict()
        assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]
    with torch.device("meta"):
        theirs = torchvision.models.alexnet(weights=None).state_dict()
    assert [(k, v.shape) for k, v in _meta("alexnet_tv").state_dict().items()] == \
           [(k, v.shape) for k, v in theirs.items()]


def test_vgg_configurations_have_table_2s_parameters_and_table_1s_layers():
    """Oracle: the paper's Table 2 (millions, as printed) and Table 1 (weight layers; C's three 1×1 layers and
    A-LRN's normalisation after the first layer); A, B, D and E are torchvision's lists."""
    from cnnviz.models.vgg import CONFIGS, PAPER_MILLIONS, vgg
    assert list(CONFIGS) == list(PAPER_MILLIONS) == ["A", "A-LRN", "B", "C", "D", "E"]
    depth = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    for config in CONFIGS:
        with torch.device("meta"):
            net = vgg(config=config)
        assert round(_count(net) / 1e6) == PAPER_MILLIONS[config], config
        convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
        assert len(convs) + 3 == depth[config]
        assert sum(m.kernel_size == (1, 1) for m in convs) == (3 if config == "C" else 0)
    # C is B with a 1×1 layer closing stages 3-5: exactly those three layers' parameters more
    with torch.device("meta"):
        b, c = vgg(config="B"), vgg(config="C")
    assert _count(c) - _count(b) == conv_params(256, 256, 1) + 2 * conv_params(512, 512, 1)
    with torch.device("meta"):
        lrn, a = vgg(config="A-LRN"), vgg(config="A")
    kinds = [type(m).__name__ for m in lrn.features][:4]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert _count(lrn) == _count(a)
    net = vgg(config="C", num_classes=5).eval()   # a real forward pass at the paper's size
    assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 5)
    with pytest.raises(ValueError, match="A-LRN"):
        vgg(config="F")


@pytest.mark.parametrize("name", FAMILIES["vgg"] + ["alexnet_tv"])
def test_macs_match_torchvision_documentation(name):
    # torchvision documents "GFLOPS" that are really multiply–accumulates: vgg16 15.47, alexnet 0.714
    model = _meta(name)
    documented = info(name).weights.meta["_ops"]
    assert round(_macs(model, model.default_input_size) / 1e9, 3) == pytest.approx(documented, abs=1e-3)
    if name.startswith("vgg16"):
        assert round(_macs(model, model.default_input_size) / 1e9, 2) == 15.47


# ----------------------------------------------------------------------------- LeNet-5

# Table I of LeCun et al. 1998: rows are the S2 maps 0-5, columns the C3 maps 0-15, X = connected.
TABLE_I = ["X   XXX  XXXX XX",
           "XX   XXX  XXXX X",
           "XXX   XXX  X XXX",
           " XXX  XXXX  X XX",
           "  XXX  XXXX XX X",
           "   XXX  XXXX XXX"]


def test_lenet5_1998_connection_table_is_table_i():
    from_paper = [tuple(row for row in range(6) if TABLE_I[row][col] == "X") for col in range(16)]
    assert list(C3_TABLE) == from_paper


def test_lenet5_1998_counts_are_the_papers():
    model = _meta("lenet5_1998", 10)
    f, c = model.features, model.classifier
    per_layer = {"C1": f.c1, "S2": f.s2, "C3": f.c3, "S4": f.s4, "C5": f.c5, "F6": c.f6, "output": c.output}
    assert {k: _count(m) for k, m in per_layer.items()} == {
        "C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164, "output": 0}
    assert _count(model) == 60_000
    assert lenet5_connections() == {"C1": 122_304, "S2": 5_880, "C3": 151_600, "S4": 2_000, "C5": 48_120,
                                    "F6": 10_164, "output": 840}
    assert sum(lenet5_connections().values()) == 340_908
    # the RBF prototypes are fixed ±1 codes: a buffer, not parameters
    real = get("lenet5_1998", num_classes=10)
    prototypes = real.classifier.output.prototypes
    assert prototypes.shape == (10, 84) and set(prototypes.unique().tolist()) == {-1.0, 1.0}
    assert not any(p is prototypes for p in real.parameters())
    assert torch.equal(prototypes, get("lenet5_1998", num_classes=10).classifier.output.prototypes)


def test_lenet5_1998_pieces():
    model = get("lenet5_1998", num_classes=10).eval()
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    f = model.features
    # scaled tanh: f(±1) = ±1 (Appendix A)
    assert f.act1(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([1.0, -1.0], abs=2e-4)
    # subsampling: 2×2 sum × coefficient + bias, per map
    a = torch.randn(2, 6, 28, 28)
    with torch.no_grad():
        f.s2.weight.copy_(torch.arange(6.0))
        f.s2.bias.fill_(0.5)
    expected = a.reshape(2, 6, 14, 2, 14, 2).sum(dim=(3, 5)) * torch.arange(6.0)[:, None, None] + 0.5
    torch.testing.assert_close(f.s2(a), expected)
    # C3 map o depends on its Table I inputs only
    s2 = torch.randn(1, 6, 14, 14, requires_grad=True)
    for o, inputs in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(f.c3(s2)[0, o].sum(), s2)
        assert [c for c in range(6) if grad[0, c].abs().sum() > 0] == list(inputs)
    # logits = −(squared distance to the prototypes): the nearest prototype wins
    with torch.no_grad():
        h = model.classifier.act6(model.classifier.f6(model.forward_features(x).flatten(1)))
        distance = torch.cdist(h, model.classifier.output.prototypes) ** 2
        torch.testing.assert_close(model(x), -distance, rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------- AlexNet and ZFNet

def test_local_response_norm_is_the_papers_formula():
    # b_i = a_i / (k + α Σ_{j=i-n/2}^{i+n/2} a_j²)^β with k = 2, n = 5, α = 1e-4, β = 0.75 (section 3.3)
    norm = _meta("alexnet").features.norm1
    a = torch.randn(2, 9, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 30
    expected = torch.empty_like(a)
    for i in range(9):
        window = a[:, max(0, i - 2):min(9, i + 3)]
        expected[:, i] = a[:, i] / (2 + 1e-4 * (window ** 2).sum(dim=1)) ** 0.75
    torch.testing.assert_close(norm(a), expected)  # no parameters: runs on any device
    assert (norm.size, norm.k, norm.beta) == (5, 2.0, 0.75)


def test_alexnet_two_gpu_split_and_paper_init():
    one, two = _meta("alexnet").features, _meta("alexnet_2gpu").features
    assert [two.get_submodule(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [one.get_submodule(f"conv{i}").groups for i in range(1, 6)] == [1] * 5
    saved = sum(_count(one.get_submodule(c)) - _count(two.get_submodule(c)) for c in ("conv2", "conv4", "conv5"))
    assert saved == 62_378_344 - 60_965_224
    model = get("alexnet")  # section 5: N(0, 0.01²) weights, biases 1 in conv2, 4, 5 and fc6, 7
    assert model.features.conv1.bias.abs().sum() == 0 and (model.features.conv2.bias == 1).all()
    assert (model.classifier.fc6.bias == 1).all() and model.classifier.fc8.bias.abs().sum() == 0
    assert model.classifier.fc6.weight.std().item() == pytest.approx(0.01, rel=0.01)


@pytest.mark.parametrize("name, sizes", [
    ("alexnet", {"conv1": 55, "pool1": 27, "conv2": 27, "pool2": 13, "conv5": 13, "pool5": 6}),
    ("zfnet", {"conv1": 110, "pool1": 55, "conv2": 26, "pool2": 13, "conv3": 13, "conv4": 13, "conv5": 13,
               "pool5": 6}),  # Figure 3 of Zeiler & Fergus
])
def test_feature_map_sizes(name, sizes):
    model = _meta(name)
    with torch.device("meta"):
        x = torch.empty(1, *model.default_input_size)
    seen = {}
    for layer, module in model.features.named_children():
        x = module(x)
        seen[layer] = x.shape[-1]
    assert {k: seen[k] for k in sizes} == sizes


def test_zfnet_wide_is_table_2():
    f = _meta("zfnet_wide").features
    assert (f.conv3.out_channels, f.conv4.out_channels, f.conv5.out_channels) == (512, 1024, 512)


# ----------------------------------------------------------------------------- Network in Network

def test_nin_has_no_dense_layer():
    model = _meta("nin")
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    with torch.device("meta"):
        f = model.forward_features(torch.empty(1, 3, 224, 224))
    assert f.shape == (1, 1024, 6, 6)


# ----------------------------------------------------------------------------- Inception and GoogLeNet

NAIVE = dict(in_channels=256, height=28, width=28, ch1x1=128, ch3x3red=None, ch3x3=192, ch5x5red=None, ch5x5=96,
             pool_proj=None)
BOTTLENECK = dict(NAIVE, ch3x3red=64, ch5x5red=64, pool_proj=64)


def test_inception_costs_are_the_lectures():
    naive = G.inception_cost(**NAIVE)
    # the slide: [1x1 conv, 128] 28·28·128·1·1·256, [3x3 conv, 192] 28·28·192·3·3·256,
    # [5x5 conv, 96] 28·28·96·5·5·256
    assert [naive.branches[b].macs for b in ("branch1", "branch2", "branch3", "branch4")] == [
        28 * 28 * 128 * 256, 28 * 28 * 192 * 9 * 256, 28 * 28 * 96 * 25 * 256, 0]
    assert round(naive.total.macs / 1e6) == 854  # "Total: 854M ops"
    assert naive.out_channels == 128 + 192 + 96 + 256 == 672 and naive.out_shape == (672, 28, 28)
    bottleneck = G.inception_cost(**BOTTLENECK)
    assert bottleneck.out_channels == 480
    assert bottleneck.total.macs == 28 * 28 * (64 * 256 + 64 * 256 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64
                                               + 64 * 256) == 271_351_808
    # the slide lists these six terms but prints "Total: 358M ops": the 3×3 term counted twice
    assert round((bottleneck.total.macs + conv_macs(64, 28, 28, 192, 3, p=1)) / 1e6) == 358


ARGS = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
FIVE_B = dict(zip(ARGS, G.INCEPTION_WIDTHS["inception5b"]), height=7, width=7)


@pytest.mark.parametrize("widths", [NAIVE, BOTTLENECK, FIVE_B], ids=["naive", "bottleneck", "5b"])
def test_inception_cost_agrees_with_torch(widths):
    args = [widths[k] for k in ARGS]
    cost = G.inception_cost(**widths)
    with torch.device("meta"):
        module = G.Inception(*args)
    assert _macs(module, (widths["in_channels"], widths["height"], widths["width"])) == cost.total.macs
    assert _count(module) == cost.total.params
    assert sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d)) == cost.total.weights
    with torch.device("meta"):
        out = module(torch.empty(1, widths["in_channels"], widths["height"], widths["width"]))
    assert out.shape[1:] == cost.out_shape and module.out_channels == cost.out_channels


def test_inception_branch_names():
    module = G.Inception(192, *G.INCEPTION_WIDTHS["inception3a"][1:])
    for name in ("branch1.conv", "branch2.reduce", "branch2.conv", "branch3.reduce", "branch3.conv",
                 "branch4.pool", "branch4.proj"):
        module.get_submodule(name)
    naive = G.Inception(**{k: v for k, v in NAIVE.items() if k not in ("height", "width")})
    assert [n for n, _ in naive.branch4.named_children()] == ["pool"]
    assert naive.branch2.conv.in_channels == 256


def test_googlenet_table_1():
    table = G.table1()
    assert list(table) == list(G.TABLE1)
    # rows that match the paper, to the unit of its last digit (K = 1,024 weights, M = 10⁶ multiply-adds)
    assert table["conv2"].weights == 112 * 1024 and round(table["conv2"].macs / 1e6) == 360
    assert round(table["inception3a"].weights / 1024) == 160 and round(table["inception3a"].macs / 1e6) == 128
    assert round(table["inception3b"].macs / 1e6) == 304 and round(table["inception4b"].macs / 1e6) == 88
    assert table["linear"].weights == 1000 * 1024
    # the rows that disagree are exactly the ones TABLE1_NOTES explains
    disagree = [row for row, cost in table.items() if not all(G.table1_agrees(row, cost))]
    assert disagree == list(G.TABLE1_NOTES)
    assert table["conv1"].weights == 7 * 7 * 3 * 64 and 3 * 8 * 49 + 24 * 64 == 2712
    assert round(112 * 112 * 2712 / 1e6) == 34  # the separable reading of conv1's 2.7K / 34M
    # totals: the paper's column sums to about 6.8 "M" (in K = 1,024) and it quotes 1.5 G multiply-adds
    weights = sum(c.weights for c in table.values())
    assert round(weights / 1024 / 1000, 1) == 6.8 and round(sum(k for k, _ in G.TABLE1.values()) / 1000, 1) == 6.8
    model = _meta("googlenet")
    macs = _macs(model, (3, 224, 224))
    assert macs == sum(c.macs for c in table.values())  # torch's counter agrees row by row in total
    assert 1.5e9 < macs < 1.6e9
    assert sum(c.params for c in table.values()) == sum(p.numel() for n, p in model.named_parameters()
                                                        if not n.startswith("aux"))


def test_googlenet_auxiliary_outputs_only_in_training():
    model = _meta("googlenet", 10)
    with torch.device("meta"):
        x = torch.empty(2, 3, 224, 224)
    out = model.train()(x)
    assert isinstance(out, G.GoogLeNetOutputs) and [t.shape for t in out] == [(2, 10)] * 3
    assert isinstance(model.eval()(x), torch.Tensor)
    with torch.device("meta"):
        plain = G.googlenet(num_classes=10, aux_logits=False)
    assert isinstance(plain.train()(x), torch.Tensor)
    aux = conv_params(512, 128, 1) + dense_params(2048, 1024) + dense_params(1024, 10)
    assert _count(model.aux1) == aux and _count(model.aux2) == aux + 16 * 128
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


# ----------------------------------------------------------------------------- pretrained weights

@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """A private torch hub cache, restored afterwards; downloading fails as if offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # what torch.hub.set_dir sets

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub"


def test_pretrained_loads_the_cached_file(hub_dir):
    weights = info("alexnet_tv").weights
    path = Path(checkpoint_path(weights))
    assert path == hub_dir / "checkpoints" / Path(weights.url).name
    path.parent.mkdir(parents=True)
    written = _materialise(_meta("alexnet_tv")).state_dict()
    torch.save(written, path)
    loaded = get("alexnet_tv", pretrained=True).state_dict()
    assert list(loaded) == list(written)
    assert all(torch.equal(loaded[k], written[k]) for k in written)


def test_pretrained_offline_says_what_to_download(hub_dir):
    weights = info("alexnet_tv").weights
    with pytest.raises(WeightsUnavailable) as err:
        get("alexnet_tv", pretrained=True)
    assert weights.url in str(err.value) and checkpoint_path(weights) in str(err.value)


@pytest.mark.parametrize("name", ["zfnet", "googlenet", "lenet5_1998", "nin"])
def test_no_pretrained_weights(name, hub_dir):
    assert info(name).weights is None
    with pytest.raises(WeightsUnavailable, match="no pretrained"):
        get(name, pretrained=True)
