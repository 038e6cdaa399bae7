"""ResNet and DenseNet families: the model contract, the papers' numbers, and torchvision's weights.

Oracles: He et al. 2016 Table 1 (multiply-adds) and Table 6 (CIFAR parameters),
Huang et al. 2017 Table 2 (CIFAR DenseNet-BC), torchvision's documented
parameters and "GFLOPS" (multiply-adds), torchvision's own modules, and the
Keras table of the ResNet lecture. Counting runs on the meta device.
"""
import pathlib
import urllib.error

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import cnnviz.models as models
from cnnviz.models import WeightsUnavailable, checkpoint_path
from cnnviz.models.densenet import TABLE2_PARAMS, TORCHVISION_GMACS, _rename_old_keys, cifar_densenet
from cnnviz.models.resnet import (TABLE1_FLOPS, TABLE6_PARAMS, BasicBlockCifar, PreActBlock, ShortcutA,
                                  cifar_resnet, imagenet_resnet)

# Keras's ResNet V2s (resnet50_v2 ...) are held to the lecture's Keras table in test_accuracy.py and to their
# structure in test_models_improved.py
NAMES = [n for n in models.available("resnet") if not n.endswith("_v2")] + models.available("densenet")

# (parameters, multiply-adds for one image at the paper's input size), with the paper's classes:
# 1000 for ImageNet, 10 for CIFAR-10.
PINNED = {
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 3_857_973_248),
    "resnet101": (44_549_160, 7_570_194_432),
    "resnet152": (60_192_808, 11_282_415_616),
    "resnet18_tv": (11_689_512, 1_814_073_344),
    "resnet34_tv": (21_797_672, 3_663_761_408),
    "resnet50_tv": (25_557_032, 4_089_184_256),
    "resnet101_tv": (44_549_160, 7_801_405_440),
    "resnet152_tv": (60_192_808, 11_513_626_624),
    "resnet20": (269_722, 40_551_040),
    "resnet32": (464_154, 68_862_592),
    "resnet44": (658_586, 97_174_144),
    "resnet56": (853_018, 125_485_696),
    "resnet110": (1_727_962, 252_887_680),
    "plain20": (269_722, 40_551_040),
    "plain32": (464_154, 68_862_592),
    "plain44": (658_586, 97_174_144),
    "plain56": (853_018, 125_485_696),
    "plain110": (1_727_962, 252_887_680),
    "preact_resnet20": (269_722, 40_551_040),
    "preact_resnet32": (464_154, 68_862_592),
    "preact_resnet44": (658_586, 97_174_144),
    "preact_resnet56": (853_018, 125_485_696),
    "preact_resnet110": (1_727_962, 252_887_680),
    "resnet164": (1_661_274, 242_403_840),
    "preact_resnet164": (1_661_274, 242_403_840),
    "densenet121": (7_978_856, 2_834_161_664),
    "densenet169": (14_149_480, 3_359_843_328),
    "densenet201": (20_013_928, 4_291_365_888),
    "densenet264": (33_337_704, 5_751_653_376),
    "densenet_bc_100": (769_162, 287_929_692),
}


def _paper_classes(name):
    return 10 if models.info(name).input_size[1] == 32 else 1000


def _on_meta(name, num_classes=None):
    spec = models.info(name)
    with torch.device("meta"):
        return spec.builder(num_classes=num_classes or _paper_classes(name), **spec.kwargs)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _count(model, input_size):
    """Multiply-adds of one image, total and per module (FLOPs / 2, as torchvision and the papers count)."""
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, *input_size, device="meta"))
    per_module = {k: sum(v.values()) // 2 for k, v in counter.get_flop_counts().items()}
    return counter.get_total_flops() // 2, per_module


def _macs(model, input_size):
    return _count(model, input_size)[0]


def _smallest_input(name):
    c, h, _ = models.info(name).input_size
    return (c, 32, 32) if h == 224 else (c, 8, 8)  # ImageNet nets end at 1×1 from 32×32; CIFAR nets at 2×2


# ---------------------------------------------------------------- every registered name


def test_registry_has_the_families_names():
    assert set(NAMES) == set(PINNED)
    assert {models.info(n).family for n in NAMES} == {"resnet", "densenet"}
    assert {models.info(n).paper for n in NAMES} == {"he2016deep", "he2016identity", "huang2017densely"}


@pytest.mark.parametrize("name", NAMES)
def test_contract(name):
    torch.manual_seed(0)
    model = models.get(name, num_classes=7).eval()
    spec = models.info(name)
    assert tuple(model.default_input_size) == spec.input_size
    x = torch.randn(2, *_smallest_input(name))
    outputs, handles = {}, []
    for layer in model.feature_layers:
        module = model.get_submodule(layer)
        handles.append(module.register_forward_hook(lambda m, i, o, layer=layer: outputs.__setitem__(layer, o)))
    try:
        with torch.no_grad():
            f = model.forward_features(x)
            y = model(x)
            assert torch.allclose(y, model.forward_head(f), atol=1e-6)
    finally:
        for h in handles:
            h.remove()
    assert all(not m._forward_hooks for m in model.modules())
    assert f.ndim == 4 and f.shape[0] == 2
    assert y.shape == (2, 7)
    # the feature layers run in depth order: the maps never grow
    assert list(outputs) == list(model.feature_layers)
    sizes = [o.shape[-1] for o in outputs.values()]
    assert sizes == sorted(sizes, reverse=True)
    assert outputs[model.feature_layers[-1]].shape[1] == f.shape[1]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_and_macs_pinned(name):
    model = _on_meta(name)
    assert (_params(model), _macs(model, models.info(name).input_size)) == PINNED[name]


# ---------------------------------------------------------------- ImageNet ResNets vs the paper and torchvision


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_resnets_match_torchvision_counts(depth):
    meta = getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1.meta
    assert PINNED[f"resnet{depth}"][0] == PINNED[f"resnet{depth}_tv"][0] == meta["num_params"]
    assert round(PINNED[f"resnet{depth}_tv"][1] / 1e9, 3) == meta["_ops"]  # torchvision's "GFLOPS" are MACs


def test_table1_flops_v1():
    computed = {d: round(PINNED[f"resnet{d}"][1] / 1e9, 1) for d in TABLE1_FLOPS}
    paper = {d: f / 1e9 for d, f in TABLE1_FLOPS.items()}
    # ResNet-18, -101, -152 round to the paper's figures.
    for d in (18, 101, 152):
        assert computed[d] == paper[d]
    # ResNet-34 and -50 come out 0.1 G above (documented in resnet.TABLE1_NOTES).
    assert computed[34] == pytest.approx(paper[34] + 0.1) and computed[50] == pytest.approx(paper[50] + 0.1)
    # The paper's 3.6 G is the cost of the 34-layer plain baseline (section 3.3): no projection shortcuts.
    total, per_module = _count(_on_meta("resnet34"), (3, 224, 224))
    projections = sum(v for k, v in per_module.items() if k.endswith("downsample"))
    assert projections == 3 * 128 * 64 * 28 * 28
    assert round((total - projections) / 1e9, 1) == 3.6


def test_v1_stride_on_first_1x1_and_v1_5_on_3x3():
    v1, v15 = _on_meta("resnet50"), _on_meta("resnet50_tv")
    for layer in ("layer2", "layer3", "layer4"):
        first1, first15 = getattr(v1, layer)[0], getattr(v15, layer)[0]
        assert first1.conv1.stride == (2, 2) and first1.conv2.stride == (1, 1)
        assert first15.conv1.stride == (1, 1) and first15.conv2.stride == (2, 2)
        assert first1.downsample[0].stride == first15.downsample[0].stride == (2, 2)
    assert all(b.conv1.stride == b.conv2.stride == (1, 1) for b in list(v1.layer1) + list(v1.layer2)[1:])
    # same parameters and keys (so v1.5 weights would load into v1 silently), different cost
    assert {k: v.shape for k, v in v1.state_dict().items()} == {k: v.shape for k, v in v15.state_dict().items()}
    for d in (50, 101, 152):
        assert PINNED[f"resnet{d}"][1] < PINNED[f"resnet{d}_tv"][1]


def test_basic_block_nets_are_the_same_for_v1_and_v1_5():
    torch.manual_seed(0)
    a, b = models.get("resnet18").eval(), models.get("resnet18_tv").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("ours, theirs", [("resnet50_tv", torchvision.models.resnet50),
                                          ("densenet121", torchvision.models.densenet121)])
def test_same_network_as_torchvision(ours, theirs):
    torch.manual_seed(0)
    reference = theirs().eval()
    model = models.get(ours).eval()
    model.load_state_dict(reference.state_dict())  # strict: the same keys and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_resnet_feature_layers():
    assert models.get("resnet18").feature_layers == ("relu", "layer1", "layer2", "layer3", "layer4")
    assert models.get("resnet20").feature_layers == ("stem", "layer1", "layer2", "layer3")
    assert models.get("preact_resnet20").feature_layers[-1] == "final_bn_relu"


def test_imagenet_resnet_rejects_other_depths():
    with pytest.raises(ValueError, match="18, 34, 50, 101 or 152"):
        imagenet_resnet(20)


# ---------------------------------------------------------------- CIFAR ResNets (section 4.2)


@pytest.mark.parametrize("depth", sorted(TABLE6_PARAMS))
def test_table6_parameters(depth):
    variants = ({}, {"plain": True}, {"preact": True}) if depth < 1000 else ({},)
    with torch.device("meta"):
        counts = {_params(cifar_resnet(depth, **kw)) for kw in variants}
    assert len(counts) == 1  # option A adds nothing; pre-activation moves BN layers, same total
    (count,) = counts
    decimals = 2 if count < 1e6 else 1  # the table prints 0.27 M ... 0.85 M, 1.7 M, 19.4 M
    assert round(count / 1e6, decimals) == TABLE6_PARAMS[depth] / 1e6


def test_preact_resnet164_has_the_papers_parameters():
    assert round(PINNED["preact_resnet164"][0] / 1e6, 1) == 1.7  # He et al. 2016, "Identity mappings"


def test_cifar_structure():
    model = cifar_resnet(20).eval()
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [3, 3, 3]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 20                              # 19 conv layers + fc
    assert all(c.kernel_size == (3, 3) for c in convs)       # no 1×1 projections: option A
    shapes = []
    handles = [getattr(model, f"layer{i}").register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
               for i in (1, 2, 3)]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
    finally:
        for h in handles:
            h.remove()
    assert shapes == [(1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8)]


@pytest.mark.parametrize("depth", [21, 19, 2, 0, -4, 20.0, "20", True])
def test_cifar_depth_validation(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*20, 32, 44, 56, 110"):
        cifar_resnet(depth)


def test_cifar_bottleneck_depth_is_9n_plus_2():
    assert len(cifar_resnet(164, bottleneck=True).layer1) == 18
    with pytest.raises(ValueError, match=r"9n \+ 2.*164"):
        cifar_resnet(32, bottleneck=True)


def test_option_a_shortcut_is_parameter_free():
    shortcut = ShortcutA(32, stride=2)
    assert list(shortcut.parameters()) == [] and list(shortcut.buffers()) == []
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)                                           # (2, 32, 4, 4)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 16:], torch.zeros(2, 16, 4, 4))
    assert torch.equal(ShortcutA(16)(x), x)


def _zero_convs(block):
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
    return block.eval()


def test_plain_twin_has_no_shortcut():
    x = torch.randn(2, 16, 8, 8)
    residual = _zero_convs(models.get("resnet20").layer1[0])
    plain = _zero_convs(models.get("plain20").layer1[0])
    with torch.no_grad():
        assert torch.equal(residual(x), torch.relu(x))      # F(x) = 0: the block passes relu(x)
        assert torch.equal(plain(x), torch.zeros_like(x))   # no shortcut: nothing gets through
        # the pre-activation unit with F(x) = 0 is exactly the identity (Identity Mappings, eq. 4)
        assert torch.equal(_zero_convs(PreActBlock(16, 16))(x), x)
        assert torch.equal(_zero_convs(PreActBlock(16, 16, residual=False))(x), torch.zeros_like(x))
    assert plain.shortcut is None and BasicBlockCifar(16, 16).shortcut is not None


def test_cifar_resnet_for_small_grey_images():
    torch.manual_seed(0)
    for plain in (False, True):
        model = cifar_resnet(20, plain=plain, width=8, in_channels=1, num_classes=2)
        x = torch.randn(4, 1, 8, 8)
        out = model(x)
        assert out.shape == (4, 2)
        out.sum().backward()
        assert model.stem[0].weight.grad is not None
        assert model.forward_features(torch.randn(1, 1, 16, 16)).shape == (1, 32, 4, 4)


def test_cifar_resnet_he_initialisation():
    torch.manual_seed(0)
    conv = cifar_resnet(110).layer3[5].conv1                  # 64 → 64, 3×3: fan_out = 576
    assert conv.weight.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)


# ---------------------------------------------------------------- DenseNet


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201"])
def test_densenet_matches_torchvision_counts(name):
    meta = getattr(torchvision.models, name.replace("densenet", "DenseNet") + "_Weights").IMAGENET1K_V1.meta
    params, macs = PINNED[name]
    assert params == meta["num_params"]
    assert round(macs / 1e9, 3) == pytest.approx(meta["_ops"]) == TORCHVISION_GMACS[name]


def test_densenet264_blocks():
    model = _on_meta("densenet264")
    blocks = [len(model.features.get_submodule(f"denseblock{i}")) for i in (1, 2, 3, 4)]
    assert blocks == [6, 12, 64, 48] and model.features.denseblock1.denselayer1.conv2.out_channels == 32
    assert models.info("densenet264").weights is None


def test_densenet_bc_100_table2():
    model = cifar_densenet(100, growth_rate=12)
    assert round(_params(model) / 1e6, 1) == TABLE2_PARAMS["densenet_bc_100"] / 1e6
    assert model.features.conv0.kernel_size == (3, 3) and model.features.conv0.out_channels == 24
    assert not hasattr(model.features, "pool0")
    assert [len(model.features.get_submodule(f"denseblock{i}")) for i in (1, 2, 3)] == [16, 16, 16]
    # 24 + 16·12 = 216 → 108, 108 + 192 = 300 → 150, 150 + 192 = 342 features for the classifier
    assert model.features.transition1.conv.out_channels == 108 and model.classifier.in_features == 342
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 342, 8, 8)
    with pytest.raises(ValueError, match=r"6n \+ 4"):
        cifar_densenet(101)


def test_densenet_has_fewer_parameters_than_resnet():
    # The homework's claim, and Huang et al. 2017 §4.4: DenseNet-201 (20 M parameters) reaches the error
    # of ResNet-101 (more than 40 M). torchvision's weights: top-1 within a point, less than half the size.
    params = {n: PINNED[n][0] for n in ("densenet121", "densenet201", "resnet50", "resnet101")}
    assert params["densenet121"] < params["resnet50"] / 3
    assert params["densenet201"] < params["resnet101"] / 2 and params["resnet101"] > 40e6
    top1 = {n: models.info(n).weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] for n in ("densenet201", "resnet101_tv")}
    assert abs(top1["densenet201"] - top1["resnet101_tv"]) < 1


@pytest.mark.parametrize("name, keras", [("resnet50", 25_636_712), ("resnet101", 44_707_176),
                                         ("resnet152", 60_419_944), ("densenet121", 8_062_504),
                                         ("densenet169", 14_307_880), ("densenet201", 20_242_984)])
def test_lecture_keras_table(name, keras):
    # The lecture's Keras table also counts BatchNorm's moving mean and variance (not trained),
    # and Keras's ResNets give their convolutions a bias.
    model = _on_meta(name)
    bn = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    biases = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)) if "resnet" in name else 0
    assert _params(model) + 2 * bn + biases == keras


def test_old_densenet_keys_are_renamed():
    old = {"features.denseblock1.denselayer1.norm.1.weight": torch.ones(1),
           "features.denseblock4.denselayer16.conv.2.weight": torch.ones(1),
           "features.norm0.running_var": torch.ones(1), "classifier.bias": torch.ones(1)}
    before = dict(old)
    new = _rename_old_keys(old)
    assert old == before  # the argument is not mutated
    assert set(new) == {"features.denseblock1.denselayer1.norm1.weight",
                        "features.denseblock4.denselayer16.conv2.weight",
                        "features.norm0.running_var", "classifier.bias"}


# ---------------------------------------------------------------- pretrained weights (never the network)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """torch hub pointed at an empty temporary directory, with downloads failing as offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored afterwards
    torch.hub.set_dir(str(tmp_path))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path


def _random_checkpoint(name, *, old_densenet_keys=False, batch_counters=False):
    """A state dict of ``name`` with random values, saved where the torch hub cache keeps its weights.

    Like torchvision's published files: no ``num_batches_tracked`` (saved before PyTorch 0.4.1), and for
    DenseNet optionally the old key names (``norm.1`` for ``norm1``)."""
    torch.manual_seed(1)
    state = {k: torch.rand_like(v) if v.is_floating_point() else v
             for k, v in models.get(name).state_dict().items()
             if batch_counters or not k.endswith("num_batches_tracked")}
    if old_densenet_keys:
        state = {k.replace("norm1", "norm.1").replace("norm2", "norm.2").replace("conv1", "conv.1")
                 .replace("conv2", "conv.2") if ".denselayer" in k else k: v for k, v in state.items()}
    path = pathlib.Path(checkpoint_path(models.info(name).weights))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def _assert_loaded(model, state):
    own = model.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


@pytest.mark.parametrize("name", ["resnet18", "resnet18_tv"])
def test_pretrained_from_the_cache(hub_dir, name):
    state = _random_checkpoint(name)
    assert checkpoint_path(models.info(name).weights).startswith(str(hub_dir))
    _assert_loaded(models.get(name, pretrained=True), state)


def test_pretrained_densenet_old_and_new_keys(hub_dir):
    old = _random_checkpoint("densenet121", old_densenet_keys=True)
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    model = models.get("densenet121", pretrained=True)
    _assert_loaded(model, _rename_old_keys(old))
    new = _random_checkpoint("densenet121", batch_counters=True)
    _assert_loaded(models.get("densenet121", pretrained=True), new)


def test_pretrained_offline_without_the_file(hub_dir):
    weights = models.info("resnet34").weights
    with pytest.raises(WeightsUnavailable) as err:
        models.get("resnet34", pretrained=True)
    assert weights.url in str(err.value) and checkpoint_path(weights) in str(err.value)


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_v1_bottleneck_has_no_weights_and_points_at_tv(hub_dir, name):
    assert models.info(name).weights is None
    with pytest.raises(WeightsUnavailable, match=f"{name}_tv"):
        models.get(name, pretrained=True)


def test_cifar_nets_have_no_weights(hub_dir):
    with pytest.raises(WeightsUnavailable):
        models.get("resnet20", pretrained=True)
