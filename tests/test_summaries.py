"""cnnviz.summaries against its oracles: parameter counts, torch's FlopCounterMode, shapes from hooks on a
real forward, chapter 3's receptive_field, known receptive fields, and brute force (autograd support)."""
import sys

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz.layers import conv_macs, conv_params, dense_params
from cnnviz.receptive_field import PRESETS, as_torch, receptive_field
from cnnviz import models
from cnnviz.summaries import MACS_NOTE, InputSizeMismatch, InputTooSmall, Summary, count_params, summary
from model_helpers import as_its_weights_build_it, assert_no_hooks, meta_parameters

# an input size per preset on which every layer fits (as in tests/test_receptive_field.py)
PRESET_INPUT = {"AlexNet conv1–pool2": (227, 227), "LeNet-5 conv–pool": (32, 32)}


def _meta(builder, **kwargs):
    with torch.device("meta"):
        return builder(**kwargs)


TORCHVISION = {
    "alexnet": lambda: _meta(torchvision.models.alexnet),
    "vgg16": lambda: _meta(torchvision.models.vgg16),
    "resnet18": lambda: _meta(torchvision.models.resnet18),
    "resnet50": lambda: _meta(torchvision.models.resnet50),
    "googlenet": lambda: _meta(torchvision.models.googlenet, aux_logits=False, init_weights=False),
    "densenet121": lambda: _meta(torchvision.models.densenet121),
}


@pytest.fixture(scope="module")
def vgg16():
    return TORCHVISION["vgg16"]()


@pytest.fixture(scope="module")
def googlenet():
    return TORCHVISION["googlenet"]()


def _flop_counter_macs(model, input_size):
    x = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2


# ----------------------------------------------------------------------------- totals and rows

@pytest.mark.parametrize("name", list(TORCHVISION))
def test_totals_against_oracles(name):
    model = TORCHVISION[name]()
    s = summary(model, (3, 224, 224))
    assert s.total_params == sum(p.numel() for p in model.parameters()) == count_params(model)
    assert s.trainable_params == s.total_params
    assert s.total_macs == _flop_counter_macs(model, (3, 224, 224))  # conv + addmm flops, halved
    assert sum(r.macs for r in s.rows) == s.total_macs  # every conv and matmul runs inside a leaf
    assert sum(r.params for r in s.rows) == s.total_params  # every parameter is in exactly one row
    assert s.param_bytes == 4 * s.total_params
    assert s.total_activations == sum(r.activations for r in s.rows)
    for row in s.rows:
        module = model.get_submodule(row.name)
        assert type(module).__name__ == row.kind and not list(module.children())
        assert row.params == 0 or row.params == count_params(module)
    assert_no_hooks(model)


def test_modules_never_called_have_no_row():
    model = _meta(torchvision.models.googlenet, aux_logits=True, init_weights=False)
    s = summary(model, (3, 224, 224))  # eval mode: the auxiliary classifiers do not run
    assert not [r for r in s.rows if r.name.startswith("aux")]
    aux = count_params(model.aux1) + count_params(model.aux2)
    assert s.total_params == count_params(model) == sum(r.params for r in s.rows) + aux


def test_known_totals():
    # ResNet-18: 11,689,512 parameters and 1.81 GMACs, ResNet-50: 25,557,032 and 4.09 GMACs (torchvision docs)
    r18, r50 = summary(TORCHVISION["resnet18"](), (3, 224, 224)), summary(TORCHVISION["resnet50"](), (3, 224, 224))
    assert r18.total_params == 11_689_512 and round(r18.total_macs / 1e9, 2) == 1.81
    assert r50.total_params == 25_557_032 and round(r50.total_macs / 1e9, 2) == 4.09


def test_output_shapes_match_a_real_forward():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.append((name, tuple(o.shape[1:]))))
             for name, m in model.named_modules() if not list(m.children())]
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, 64, 48))
    for h in hooks:
        h.remove()
    for device in ("cpu", "meta"):
        s = summary(model, (3, 64, 48), batch_size=2, device=device)
        assert [(r.name, r.output_shape) for r in s.rows] == seen
    assert [r.activations for r in s.rows] == [torch.Size(shape).numel() for _, shape in seen]


def test_layer_formulas_on_vgg16(vgg16):
    s = summary(vgg16, (3, 224, 224))
    shape = (3, 224, 224)
    for row in s.rows:
        module = vgg16.get_submodule(row.name)
        if row.kind == "Conv2d":
            c_in, h, w = shape
            assert row.params == conv_params(c_in, module.out_channels, 3)
            assert row.macs == conv_macs(c_in, h, w, module.out_channels, 3, 1)
        elif row.kind == "Linear":
            assert row.params == dense_params(module.in_features, module.out_features)
            assert row.macs == module.in_features * module.out_features  # bias additions not counted
        else:
            assert row.macs == 0
        shape = row.output_shape
    assert s.total_params == 138_357_544
    assert round(s.total_macs / 1e9, 1) == 15.5  # "VGG-16: 15.5 G multiply-adds"


def test_groups_dilation_and_transposed_convolutions():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4, bias=False),
                          nn.ConvTranspose2d(16, 6, 4, stride=2, padding=1, groups=2))
    s = summary(model, (8, 10, 10))
    assert s.rows[0].macs == 10 * 10 * 16 * (8 // 4) * 9  # output positions · C_out · C_in/groups · f·f
    assert s.rows[1].macs == 10 * 10 * 16 * (6 // 2) * 16  # input positions · C_in · C_out/groups · f·f
    assert s.total_macs == _flop_counter_macs(model, (8, 10, 10))
    assert s.rows[0].receptive_field == 5 and s.rows[0].jump == 1  # 1 + d(f-1)
    assert s.rows[1].output_shape == (6, 20, 20)
    assert s.rows[1].jump == 0.5


def test_module_called_twice_and_shared_parameters():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.b.weight = self.a.weight  # tied

        def forward(self, x):
            x = self.conv(self.conv(x)).mean((2, 3))
            return self.b(self.a(x))

    model = Twice()
    s = summary(model, (4, 8, 8))
    assert [(r.name, r.call) for r in s.rows] == [("conv", 0), ("conv", 1), ("a", 0), ("b", 0)]
    assert [r.params for r in s.rows] == [4 * 4 * 9 + 4, 0, 20, 4]  # each parameter in its first row
    assert s.total_params == count_params(model) == sum(r.params for r in s.rows) == 172
    assert [r.receptive_field for r in s.rows[:2]] == [3, 5]
    assert [r.macs for r in s.rows] == [64 * 4 * 36, 64 * 4 * 36, 16, 16]


def test_activation_memory_counts_new_tensors_only():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Dropout(),
                          nn.Linear(512, 10))
    s = summary(model, (3, 8, 8))
    assert [r.activations for r in s.rows] == [512, 512, 512, 512, 10]
    assert s.total_activations == 2058
    assert s.activation_bytes == (512 + 10) * 4  # in-place ReLU, the Flatten view and eval Dropout add nothing


def test_batch_size_gives_per_image_counts():
    model = torchvision.models.resnet18(num_classes=10)
    one, four = summary(model, (3, 32, 32)), summary(model, (3, 32, 32), batch_size=4)
    assert one.rows == four.rows and one.total_macs == four.total_macs
    assert one.activation_bytes == four.activation_bytes and four.batch_size == 4


def test_count_params_trainable_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_params(model) == 112 + 8 + 10  # BatchNorm: weight and bias; running stats are buffers
    assert count_params(model, trainable_only=True) == 18
    assert summary(model[:2], (3, 5, 5)).trainable_params == 8


# ----------------------------------------------------------------------------- receptive fields

@pytest.mark.parametrize("preset", list(PRESETS))
def test_receptive_field_matches_chapter_3_on_stacks(preset):
    stack = PRESETS[preset]
    model = as_torch(stack, 2)
    s = summary(model, (2, *PRESET_INPUT.get(preset, (64, 64))))
    fields = [(r.receptive_field, r.jump) for r in s.rows]
    assert fields == [(row.r, row.j) for row in receptive_field(stack)[1:]]


def test_known_receptive_fields(vgg16):
    s = summary(vgg16, (3, 224, 224))
    rows = {r.name: r for r in s.rows}
    assert (rows["features.28"].receptive_field, rows["features.28"].jump) == (196, 16)  # conv5_3
    assert (rows["features.30"].receptive_field, rows["features.30"].jump) == (212, 32)  # pool5
    assert rows["features.29"].receptive_field is None  # a ReLU
    assert rows["classifier.0"].receptive_field is None  # a Linear
    # the longest path through the residual blocks (3×3 convolutions and the stem), worked by hand:
    # ResNet-18: 7 + 4·2 + 4·8 + ... = 435; ResNet-50 (stride in the 3×3 convolutions): 427
    for name, r in [("resnet18", 435), ("resnet50", 427)]:
        grouped = {row.name: row for row in summary(TORCHVISION[name](), (3, 224, 224)).group(1).rows}
        assert (grouped["layer4"].receptive_field, grouped["layer4"].jump) == (r, 32)


class _Concat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class _Residual(nn.Module):
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body, self.shortcut = body, shortcut if shortcut is not None else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def test_branches_take_the_largest_field():
    inception = _Concat(nn.Conv2d(2, 3, 1), nn.Conv2d(2, 3, 5, padding=2))
    s = summary(nn.Sequential(inception), (2, 16, 16))
    assert [r.receptive_field for r in s.rows] == [1, 5]
    (block,) = s.group(1).rows
    assert (block.name, block.kind, block.output_shape, block.receptive_field) == ("0", "_Concat", (6, 16, 16), 5)
    residual = _Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)))
    (block,) = summary(nn.Sequential(residual), (2, 16, 16)).group(1).rows
    assert block.receptive_field == 5  # the identity sees 1 pixel, the body 5


class _Gate(nn.Module):
    """Squeeze and excitation: the map times a per-channel gate computed from its global average."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(nn.functional.adaptive_avg_pool2d(x, 1)))


def test_a_broadcast_gate_sees_the_whole_map_but_keeps_the_spacing():
    """A 1×1 gate broadcast over a map has seen all of it (r covers the map), but the output's units are as far
    apart as the map's own: every map's jump stays input side / map side. Before, the gate's jump (the whole
    map) was taken, and in EfficientNet or MobileNet v3 the jumps grew to 10^21."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), _Gate(4), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                          _Gate(4), nn.Conv2d(4, 4, 3, padding=1))
    s = summary(model, (2, 32, 32))
    grouped = {r.name: r for r in s.group(1).rows}
    assert [grouped[k].jump for k in "01234"] == [2, 2, 4, 4, 4]
    assert grouped["1"].receptive_field == 3 + (16 - 1) * 2          # the whole 16×16 map, in input pixels
    assert grouped["2"].receptive_field == grouped["1"].receptive_field + 2 * 2
    for name in ("efficientnet_b0", "mobilenet_v3_small"):
        with torch.device("meta"):
            net = torchvision.models.get_model(name)
        rows = [r for r in summary(net, (3, 224, 224)).rows if r.receptive_field is not None and len(r.output_shape) == 3]
        assert len(rows) > 50
        for r in rows:                                                # 'same' padding and strides that divide
            assert r.jump == 224 // r.output_shape[-1], (name, r.name)


def test_every_torchvision_classifier_is_summarised_with_its_published_parameter_count():
    """torchvision's whole classification registry, each model built as its first weights build it (on the meta
    device: no memory, no download) and summarised on their input size: never an exception, the parameter total
    equal to the weights' published ``num_params``, jumps that make sense (at most twice the input's side: a global
    pooling's jump is the last map's jump times its side, 32 × 8 = 256 on EfficientNet-B1's 240 pixels), and a note on every spatial row whose field is not worked out (channels-last blocks and
    window attention) instead of a number."""
    from torchvision.models import get_model_builder, get_model_weights, list_models

    wrong, noted = [], set()
    names = list_models(module=torchvision.models)
    assert len(names) > 70
    for name in names:
        weights = next(iter(get_model_weights(name)))
        side = weights.transforms().crop_size[0]
        with meta_parameters(), as_its_weights_build_it():
            model = get_model_builder(name)(weights=weights)
        s = summary(model, (3, side, side))
        if s.total_params != weights.meta["num_params"]:
            wrong.append((name, s.total_params, weights.meta["num_params"]))
        for r in s.rows:
            if r.jump is not None and max(r.jump if isinstance(r.jump, tuple) else (r.jump,)) > 2 * side:
                wrong.append((name, r.name, r.jump))
            if r.note:
                assert r.receptive_field is None and r.jump is None and "permuted" in r.note
                noted.add(name.split("_")[0])
    assert not wrong, wrong
    assert noted == {"convnext", "maxvit", "swin"}      # the channels-last and window-attention families


def test_non_square_fields():
    s = summary(nn.Sequential(nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.AdaptiveAvgPool2d(1)), (1, 8, 12))
    assert s.rows[0].receptive_field == (1, 7) and s.rows[0].jump == 1
    assert s.rows[1].receptive_field == (1 + 7, 7 + 11) and s.rows[1].jump == (8, 12)  # the whole map


def test_reductions_of_non_image_tensors_are_not_pooling():
    class RBF(nn.Module):  # LeNet-5's output layer (LeCun et al. 1998): squared distances to 10 centres
        def __init__(self):
            super().__init__()
            self.centres = nn.Parameter(torch.zeros(10, 84))

        def forward(self, x):
            return ((x[:, None, :] - self.centres) ** 2).sum(-1)  # (B, 10, 84) -> (B, 10)

    s = summary(nn.Sequential(nn.Conv2d(1, 84, 5), nn.Flatten(), RBF()), (1, 5, 5))
    assert [(r.kind, r.receptive_field, r.macs) for r in s.rows] == [("Conv2d", 5, 84 * 25), ("Flatten", None, 0),
                                                                     ("RBF", None, 0)]


def _positive(model):
    """Every weight 1/fan-in and every bias 0: all paths add up and nothing cancels (float64)."""
    model = model.double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    return model


def _support_extent(model, name, input_size):
    """Brute force: height and width of the input pixels with a gradient for the centre unit of a layer."""
    out = {}
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    x = torch.ones(1, *input_size, dtype=torch.float64, requires_grad=True)
    try:
        model(x)
    finally:
        handle.remove()
    y = out["y"]  # (1, C, h, w)
    (grad,) = torch.autograd.grad(y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum(), x)
    mask = (grad[0] != 0).any(0)  # (H, W)
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    assert 0 < rows[0] and rows[-1] < input_size[1] - 1, "the field must not reach the border"
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _branching_net():
    c = 3
    conv = lambda k, s=1, d=1: nn.Conv2d(c, c, k, s, d * (k - 1) // 2, d)  # noqa: E731
    return nn.Sequential(
        conv(3, 2),
        _Concat(conv(1), nn.Sequential(conv(3), conv(3)), conv(5), nn.Sequential(nn.AvgPool2d(3, 1, 1), conv(1))),
        nn.Conv2d(4 * c, c, 1),
        _Residual(nn.Sequential(conv(3, 2), nn.ReLU(), conv(3, d=2)), nn.Conv2d(c, c, 1, 2)),
        nn.AvgPool2d(2, 2),
        _Residual(nn.Sequential(conv(3), conv(3))),
        nn.ConvTranspose2d(c, c, 2, 2),
    )


def test_receptive_field_against_brute_force():
    model = _positive(_branching_net())
    s = summary(model, (3, 96, 96))
    checked = 0
    for row in s.rows:
        if row.receptive_field is not None:
            assert _support_extent(model, row.name, (3, 96, 96)) == (row.receptive_field,) * 2, row.name
            checked += 1
    assert checked == 15
    grouped = {r.name: r for r in s.group(1).rows}
    for name in ("1", "3", "5"):  # a concatenation and two residual additions
        assert _support_extent(model, name, (3, 96, 96)) == (grouped[name].receptive_field,) * 2, name
    assert grouped["6"].jump == 4  # the transposed convolution halves the jump


# ----------------------------------------------------------------------------- errors

def test_input_too_small_names_the_layer_and_the_smallest_input():
    alexnet = torchvision.models.alexnet()
    with pytest.raises(InputTooSmall, match=r"3×32×32 input is too small.*'features\.12' \(MaxPool2d\).*"
                                            r"at least 3×3 but gets 1×1.*63×63") as info:
        summary(alexnet, (3, 32, 32))
    assert isinstance(info.value, ValueError)
    assert (info.value.layer, info.value.kind, info.value.min_size) == ("features.12", "MaxPool2d", 63)
    summary(alexnet, (3, 63, 63))
    with pytest.raises(InputTooSmall, match="features.12"):
        summary(alexnet, (3, 62, 62))
    assert_no_hooks(alexnet)


def test_input_too_small_on_a_tiny_net():
    model = nn.Sequential(nn.Conv2d(1, 2, 5), nn.MaxPool2d(2), nn.Conv2d(2, 2, 5))
    with pytest.raises(InputTooSmall, match=r"layer '2' \(Conv2d\).*5×5 window needs an input of at least 5×5 "
                                            r"but gets 4×4.* 14×14") as info:
        summary(model, (1, 12, 12))
    assert info.value.min_size == 14
    assert summary(model, (1, 14, 14)).rows[-1].output_shape == (2, 1, 1)
    with pytest.raises(InputTooSmall, match=r"window \(stride 2, padding 1\)"):
        summary(nn.Sequential(nn.Conv2d(1, 1, 7, stride=2, padding=1)), (1, 4, 40))


@pytest.mark.parametrize("input_size, match", [
    ((224, 224), r"\(C, H, W\).*has 2 values"),
    ((1, 3, 224, 224), "without the batch axis"),
    ((3, 0, 224), r"got \(3, 0, 224\)"),
    ((3, 224.0, 224), "three positive whole numbers"),
    ((True, 8, 8), "three positive whole numbers"),
    (224, "three positive whole numbers"),
])
def test_bad_input_size(input_size, match):
    with pytest.raises(ValueError, match=match):
        summary(nn.Conv2d(3, 1, 1), input_size)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1"):
        summary(nn.Conv2d(3, 1, 1), (3, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        summary(lambda x: x, (3, 8, 8))
    with pytest.raises(ValueError, match="on the meta device"):
        summary(_meta(nn.Conv2d, in_channels=3, out_channels=1, kernel_size=1), (3, 8, 8), device="cpu")
    with pytest.raises(ValueError, match="depth must be"):
        summary(nn.Conv2d(3, 1, 1), (3, 8, 8)).group(0)


def test_forward_errors_name_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(InputSizeMismatch, match=r"A 3×8×8 input does not fit this model: layer '2' \(Linear\) "
                                                r"expects 10 input values per image but gets 144\.") as caught:
        summary(model, (3, 8, 8))
    assert (caught.value.layer, caught.value.expected, caught.value.got) == ("2", 10, 144)
    assert_no_hooks(model)
    with torch.device("meta"):
        alexnet = models.get("alexnet")
    with pytest.raises(InputSizeMismatch, match=r"classifier.fc6.*9,216.*6,400\. Use the model's own input size, "
                                                r"3×227×227"):
        summary(alexnet, (3, 224, 224))

    class Oops(Exception):
        pass

    class Fails(nn.Module):
        def forward(self, x):
            raise Oops("no")

    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(Fails()))
    with pytest.raises(Oops) as info:
        summary(model, (3, 8, 8))
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == ["In layer '1.0' (Fails)"]
    assert_no_hooks(model)


def test_model_left_as_it_was():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).train()
    model.layer2.eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    summary(model, (3, 32, 32))
    with pytest.raises(RuntimeError, match=r"In layer 'conv1' \(Conv2d\)"):
        summary(model, (4, 32, 32))  # four channels for a three-channel stem
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert_no_hooks(model)


def test_meta_stand_ins_give_the_same_summary():
    model = torchvision.models.resnet18(num_classes=10)
    on_cpu, on_meta = summary(model, (3, 64, 64), device="cpu"), summary(model, (3, 64, 64), device="meta")
    assert on_cpu == on_meta == summary(model, (3, 64, 64))
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert cnnviz.summary is summary


def test_models_that_cannot_run_on_meta_run_on_their_device():
    class LooksAtValues(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            scale = torch.arange(1.0, 5.0).view(4, 1, 1)  # a CPU tensor made in the forward
            y = self.conv(x) * scale
            return y if bool(y.abs().sum() >= 0) else -y  # data-dependent: impossible on meta

    model = LooksAtValues()
    with pytest.raises(Exception):
        summary(model, (3, 8, 8), device="meta")
    s = summary(model, (3, 8, 8))
    assert [(r.name, r.output_shape, r.receptive_field) for r in s.rows] == [("conv", (4, 6, 6), 3)]
    assert_no_hooks(model)


# ----------------------------------------------------------------------------- views and renderings

def test_filter_and_group(vgg16, googlenet):
    s = summary(vgg16, (3, 224, 224))
    convs = s.filter(kinds=("Conv2d",))
    assert len(convs) == 13 and convs.total_params == s.total_params and isinstance(convs, Summary)
    assert s.filter("Conv2d") == convs
    main = s.filter(kinds=("Conv2d", "MaxPool2d", "Linear"))
    assert [r.kind for r in main.rows].count("MaxPool2d") == 5 and len(main) == 21
    assert len(s.filter(where=lambda r: r.params > 10_000_000)) == 2  # fc6 and fc7
    assert [r.name for r in s.group(1).rows] == ["features", "avgpool", "classifier"]

    g = summary(googlenet, (3, 224, 224))
    modules = {r.name: r for r in g.group(1).rows}
    # GoogLeNet Table 1 (Szegedy et al. 2015): inception (3a) outputs 28×28×256, (5b) 7×7×1024
    assert modules["inception3a"].output_shape == (256, 28, 28) and modules["inception3a"].kind == "Inception"
    assert modules["inception5b"].output_shape == (1024, 7, 7)
    for name in ("conv1", "inception3a", "inception4e"):
        assert modules[name].params == count_params(googlenet.get_submodule(name))
    assert sum(r.params for r in modules.values()) == g.total_params
    assert sum(r.macs for r in modules.values()) == g.total_macs
    assert [r.name for r in g.group(2).rows][:3] == ["conv1.conv", "conv1.bn", "maxpool1"]
    assert g.filter("Conv2d").group(1).rows[0].params == modules["conv1"].params - 128  # its BatchNorm left out


def test_renderings():
    s = summary(TORCHVISION["resnet18"](), (3, 224, 224))
    text = str(s)
    assert "layer4.1.conv2" in text and "11,689,512" in text and "1,814,073,344" in text
    page = s._repr_html_()
    assert page.count("<tr>") == len(s) + 2 and "11,689,512" in page and "Total" in page
    assert "multiply–accumulates" in page and "FLOPs ≈ 2 × MACs" in page and MACS_NOTE in page
    markdown = s.to_markdown()
    lines = markdown.splitlines()
    assert len(lines) == len(s) + 3 and all(line.startswith("|") and line.endswith("|") for line in lines)
    assert "| `conv1` | Conv2d | 64×112×112 | 9,408 | 118,013,952 | 7 | 2 |" in lines
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    assert rendered.count("<tr>") == len(s) + 2 and rendered.count("<th style") == 7
    assert "<code>layer1.0.conv1</code>" in rendered


def test_to_dataframe():
    pd = pytest.importorskip("pandas")
    s = summary(TORCHVISION["resnet18"](), (3, 224, 224))
    df = s.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(s)
    assert list(df.columns) == ["name", "kind", "output_shape", "params", "macs", "receptive_field", "jump",
                                "activations", "call", "note"]
    assert df["params"].sum() == s.total_params and df.attrs["total_macs"] == s.total_macs


def test_a_note_column_only_where_a_row_has_a_note():
    plain = summary(TORCHVISION["resnet18"](), (3, 224, 224))
    with torch.device("meta"):
        swin = summary(torchvision.models.swin_t(), (3, 224, 224))
    noted = [r for r in swin.rows if r.note]
    assert noted and all(r.receptive_field is None for r in noted)
    assert "Note" not in plain.to_markdown() and "Note" not in str(plain) and "Note" not in plain._repr_html_()
    for text in (swin.to_markdown(), str(swin), swin._repr_html_()):
        assert "Note" in text and "receptive field not worked out" in text
    header, rule = swin.to_markdown().splitlines()[:2]
    assert header.count("|") == rule.count("|") == 9                     # eight columns
