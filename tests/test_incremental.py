"""Incremental inference against its oracle: every copy run through the whole network.

Every test builds the N occluded copies by hand, runs the model on them as
usual, and asks ``Incremental.run`` for the same outputs: across the zoo's
architectures (residual adds, concatenations, ceil-mode pooling, LRN), on
layers with unusual geometry (dilation, groups, uneven padding and strides,
boxes at every border, boxes no output reads), with operations it does not
know (they get full activations), and with in-place operations in the model.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz import models
from cnnviz.incremental import Incremental, NotTraceable
from cnnviz.occlusion import occlusion
from cnnviz.probe import Preprocess


def _copies(x, top, left, content):
    """The oracle's input: x repeated, copy n with content[n] pasted at (top[n], left[n])."""
    batch = x.repeat(len(top), 1, 1, 1)
    h, w = content.shape[-2:]
    for n, (r, c) in enumerate(zip(top.tolist(), left.tolist())):
        batch[n, :, r:r + h, c:c + w] = content[n]
    return batch


def _boxes(size, box, n, seed):
    """n box positions: the four corners, the centre, then random ones."""
    g = torch.Generator().manual_seed(seed)
    far = size - box
    fixed = [(0, 0), (0, far), (far, 0), (far, far), (far // 2, far // 2)]
    rand = torch.randint(0, far + 1, (max(0, n - len(fixed)), 2), generator=g).tolist()
    pos = torch.tensor((fixed + rand)[:n])
    return pos[:, 0], pos[:, 1]


def _check(model, size, box, n=9, seed=0, content=None, channels=3, atol=2e-5):
    torch.manual_seed(seed)
    model.eval()
    x = torch.randn(1, channels, size, size)
    top, left = _boxes(size, box, n, seed)
    if content is None:
        content = torch.randn(n, channels, box, box)
    with torch.inference_mode():
        expected = model(_copies(x, top, left, content))
        engine = Incremental(model, x)
        got = engine.run(top, left, content)
    scale = float(expected.abs().max()) + 1e-6
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= atol * scale
    return engine


@pytest.mark.parametrize("name, size, box", [
    ("resnet18", 64, 16), ("resnet50", 64, 12), ("vgg11_bn", 32, 8), ("googlenet", 64, 16),
    ("densenet_bc_100", 32, 8), ("nin", 64, 12), ("shapesnet", 64, 16), ("plain20", 32, 8),
])
def test_the_zoo_gives_what_the_full_network_gives(name, size, box):
    engine = _check(models.get(name), size, box)
    assert engine.macs["incremental"] <= engine.macs["full"]


def test_resnet18_at_224_with_zf_patch_does_about_half_the_work():
    """The bench's setting: a 32-pixel patch on ResNet-18 at 224² recomputes about half the multiply-adds."""
    engine = _check(models.get("resnet18"), 224, 32, n=6)
    ratio = engine.macs["incremental"] / engine.macs["full"]
    assert 0.35 < ratio < 0.65


@pytest.mark.parametrize("layer", [
    nn.Conv2d(3, 6, 3, padding=1),
    nn.Conv2d(3, 6, 5, stride=2, padding=2),
    nn.Conv2d(3, 6, 3, stride=3, padding=(1, 2)),
    nn.Conv2d(3, 6, 3, dilation=2, padding=2),
    nn.Conv2d(3, 6, (3, 5), stride=(1, 2), padding=(0, 2)),
    nn.Conv2d(3, 6, 1, stride=4),                        # stride > kernel: some boxes are read by no output
    nn.Conv2d(3, 3, 3, padding=1, groups=3),
    nn.Conv2d(3, 6, 3, bias=False),
    nn.MaxPool2d(3, 2, padding=1),
    nn.MaxPool2d(3, 2, ceil_mode=True),
    nn.MaxPool2d(2, ceil_mode=True, padding=1),
    nn.MaxPool2d(3, 1, dilation=2),
    nn.AvgPool2d(2),
    nn.AvgPool2d(3, stride=2),
])
@pytest.mark.parametrize("box", [1, 4, 17])
def test_sliding_layers_of_every_geometry(layer, box):
    model = nn.Sequential(layer, nn.ReLU(), nn.Conv2d(layer.out_channels if isinstance(layer, nn.Conv2d) else 3,
                                                      4, 3, padding=1))
    engine = _check(model, 17, box, n=12)
    if box < 17:  # the second convolution at least was computed on windows only
        assert engine.macs["incremental"] < engine.macs["full"]


class Residual(nn.Module):
    """In-place operations like torchvision's blocks: ``out += identity``, ``relu(inplace=True)``, and an input
    changed in place after a layer has read it (the kept activations must not change with it)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, stride=2, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.a(x)
        x = self.relu(x)           # x changed in place after `a` read it
        y += x
        z = F.relu(y, inplace=True)
        return torch.cat([self.b(z), F.avg_pool2d(z, 2)], 1) + 1.5


class Unknown(nn.Module):
    """Operations incremental inference does not know: they get whole activations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        y = self.conv(x) * torch.tensor(2.0)               # a tensor constant
        y = torch.flip(y, dims=[-1]).softmax(1)
        y = self.up(y)[..., 1:, :]
        return self.head(y).mean((2, 3))


@pytest.mark.parametrize("model", [Residual(), Unknown()], ids=["in-place", "unknown-ops"])
@pytest.mark.parametrize("box", [3, 8, 16])
def test_in_place_and_unknown_operations(model, box):
    _check(model, 16, box)


def test_a_box_covering_the_image_is_a_full_run():
    engine = _check(models.get("shapesnet"), 32, 32, n=3)
    assert engine.macs["incremental"] == engine.macs["full"]


def test_the_engine_can_run_many_batches():
    model = models.get("resnet18").eval()
    torch.manual_seed(3)
    x = torch.randn(1, 3, 48, 48)
    with torch.inference_mode():
        engine = Incremental(model, x)
        for seed in range(3):
            top, left = _boxes(48, 10, 5, seed)
            content = torch.randn(5, 3, 10, 10)
            expected = model(_copies(x, top, left, content))
            assert torch.allclose(engine.run(top, left, content), expected, atol=1e-4)


class Branchy(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it."""

    cnnviz_preprocess = Preprocess(16, (0.5,) * 3, (0.25,) * 3)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 100:        # never true; fx still cannot trace it
            y = -y
        return self.fc(y.mean((2, 3)))


def test_an_untraceable_model_says_so():
    with pytest.raises(NotTraceable, match="cannot trace Branchy"):
        Incremental(Branchy(), torch.randn(1, 3, 16, 16))


def test_occlusion_falls_back_to_full_runs_for_an_untraceable_model():
    torch.manual_seed(0)
    model = Branchy()
    x = torch.randn(1, 3, 16, 16)
    a = occlusion(model, x, patch=5, stride=3)
    b = occlusion(model, x, patch=5, stride=3, incremental=False)
    assert torch.equal(a.prob, b.prob)
    assert a.method == b.method == "full"


def test_occlusion_runs_whole_copies_when_the_patch_saves_too_little():
    model = models.get("shapesnet")
    x = torch.randn(1, 3, 64, 64)
    assert occlusion(model, x, patch=32, stride=16).method == "full"      # the patch reaches most of the net
    assert occlusion(model, x, patch=8, stride=16).method == "incremental"


@pytest.mark.parametrize("fill", [None, 0.3, "image"])
def test_occlusion_maps_agree_with_and_without_incremental_inference(fill, monkeypatch):
    monkeypatch.setattr("cnnviz.occlusion.WORTH_IT", 1.0)  # at 64² ResNet-18 saves too little to be chosen
    torch.manual_seed(0)
    model = models.get("resnet18")
    model.cnnviz_preprocess = Preprocess(64, (0.5,) * 3, (0.25,) * 3)
    x = torch.randn(1, 3, 64, 64)
    kwargs = dict(patch=12, stride=6, batch_size=20, fill=x.clone() if fill == "image" else fill)
    a = occlusion(model, x, **kwargs)
    b = occlusion(model, x, incremental=False, **kwargs)
    assert torch.allclose(a.prob, b.prob, atol=1e-5)
    assert torch.allclose(a.top_prob, b.top_prob, atol=1e-5)
    assert (a.top_class == b.top_class).float().mean() == 1.0
    assert (a.method, b.method) == ("incremental", "full")
    if fill == "image":
        assert torch.allclose(a.prob, torch.full_like(a.prob, a.base_prob), atol=1e-5)


def test_regions_cover_every_activation_the_box_changes():
    """Oracle: run the occluded copy in full, find where each layer's output differs from the unoccluded one;
    that bounding box fits in the recomputed region. The first layer's region is also worked out by hand."""
    from cnnviz.probe import capture

    torch.manual_seed(0)
    model = models.get("resnet18").eval()
    x = torch.randn(1, 3, 96, 96)
    box = torch.randn(1, 3, 20, 20)
    with torch.inference_mode():
        engine = Incremental(model, x)
        regions = engine.regions(box)
        names = [name for name, _, _ in regions]
        occluded = _copies(x, torch.tensor([38]), torch.tensor([38]), box)       # the middle: (96 - 20) // 2
        with capture(model, names) as plain:
            model(x)
            plain = dict(plain)
        with capture(model, names) as changed:
            model(occluded)
    for name, (h, w), whole in regions:
        diff = (changed[name] != plain[name]).any(1)[0]                          # (H, W)
        rows, cols = diff.any(1).nonzero(), diff.any(0).nonzero()
        assert tuple(diff.shape) == whole
        assert int(rows.max() - rows.min()) + 1 <= h and int(cols.max() - cols.min()) + 1 <= w, name
    # conv1 (7×7, stride 2, padding 3): outputs ceil((38 + 3 - 6) / 2) = 18 … floor((57 + 3) / 2) = 30
    assert regions[0] == ("conv1", (13, 13), (48, 48))
    assert regions[-1][1] == regions[-1][2]                                       # the last layer: everything


@pytest.mark.parametrize("top, left, content, match", [
    ([0, 1], [0], torch.zeros(2, 3, 4, 4), "shape"),
    ([0], [0], torch.zeros(1, 1, 4, 4), r"\(N, 3, h, w\)"),
    ([0], [0], torch.zeros(3, 4, 4), "shape"),
    ([13], [0], torch.zeros(1, 3, 4, 4), "inside the 16×16 input"),
    ([0], [-1], torch.zeros(1, 3, 4, 4), "inside"),
])
def test_bad_boxes_say_what_is_wrong(top, left, content, match):
    with torch.inference_mode():
        engine = Incremental(models.get("shapesnet").eval(), torch.zeros(1, 3, 16, 16))
        with pytest.raises(ValueError, match=match):
            engine.run(torch.tensor(top), torch.tensor(left), content)


@pytest.mark.parametrize("where", ["__init__", "run"])
def test_a_failure_of_incremental_inference_still_gives_the_map(where, monkeypatch):
    """Should incremental inference ever fail on a model, the map comes from whole runs, with a warning."""
    torch.manual_seed(0)
    model = models.get("resnet18")
    model.cnnviz_preprocess = Preprocess(64, (0.5,) * 3, (0.25,) * 3)
    x = torch.randn(1, 3, 64, 64)
    expected = occlusion(model, x, patch=12, stride=13, incremental=False)
    monkeypatch.setattr("cnnviz.occlusion.WORTH_IT", 1.0)

    def broken(*args, **kwargs):
        raise RuntimeError("a shape this module got wrong")

    monkeypatch.setattr(Incremental, where, broken)
    with pytest.warns(RuntimeWarning, match="a shape this module got wrong.*whole network"):
        got = occlusion(model, x, patch=12, stride=13, batch_size=7)
    assert got.method == "full"
    assert torch.allclose(got.prob, expected.prob, atol=1e-5)


class Concat(nn.Module):
    """Two branches concatenated along channels, then a convolution (Inception and DenseNet blocks)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 2, 1)
        self.c = nn.Conv2d(6, 5, 3, padding=1)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), F.relu(self.b(x))], 1)).mean((2, 3))


def test_a_concatenation_keeps_the_saving():
    """The convolution after torch.cat still runs on windows only, and its outputs are exact."""
    engine = _check(Concat(), 32, 4)
    with torch.inference_mode():
        rows = engine.regions(torch.zeros(1, 3, 4, 4))
    assert [name for name, _, _ in rows] == ["a", "b", "c"]
    assert rows[-1][1] == (8, 8) and rows[-1][2] == (32, 32)  # 4 + 2 (a's reach) + 2 (c's reach)


@pytest.mark.parametrize("x", [torch.zeros(3, 16, 16), torch.zeros(2, 3, 16, 16), "astronaut"])
def test_the_unoccluded_input_must_be_one_tensor(x):
    with pytest.raises(ValueError, match=r"shape \(1, C, H, W\).*prepare"):
        Incremental(models.get("shapesnet"), x)


# ----------------------------------------------------------------------------- no waiting for a device

@pytest.mark.parametrize("name, size", [("resnet18", 224), ("alexnet", 227), ("googlenet", 224)])
def test_the_pass_never_reads_a_value_back_from_the_device(name, size):
    """On a GPU every number read from a device tensor waits for the device. The meta device has no values at
    all: reading one raises. Activations on meta, positions on the CPU: the whole pass runs, so every size and
    bound it needs is host arithmetic, and only its index tensors go to the device."""
    with torch.device("meta"):
        model = models.get(name).eval()
        x = torch.randn(1, 3, size, size)
    top, left = torch.tensor([0, 96, size - 32]), torch.tensor([10, 50, size - 32])
    with torch.inference_mode():
        engine = Incremental(model, x)
        out = engine.run(top, left, torch.zeros(3, 3, 32, 32, device="meta"))
        share = engine.fraction(torch.zeros(1, 3, 32, 32, device="meta"))
    assert out.device.type == "meta" and out.shape[0] == 3
    assert 0 < share < 1
    with pytest.raises(RuntimeError, match="meta"):
        bool(out.sum() > 0)  # guards the test: a read-back on meta does raise


def test_positions_given_on_the_device_are_read_once():
    model = models.get("shapesnet").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        engine = Incremental(model, x)
        a = engine.run(torch.tensor([3, 9]), [4, 0], torch.zeros(2, 3, 8, 8))
        b = engine.run(torch.tensor([3, 9]), torch.tensor([4, 0]), torch.zeros(2, 3, 8, 8))
    assert torch.equal(a, b)
