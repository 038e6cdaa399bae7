"""One contract for every registered model: it runs on its smallest valid input, and its summary
agrees with torch's own parameter count and FLOP counter (MACs = FLOPs / 2)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnviz import models, summary
from cnnviz.summaries import InputSizeMismatch, InputTooSmall

NAMES = models.available()


def _meta(name):
    with torch.device("meta"):
        return models.get(name)


def _fits(model, c, side):
    try:
        summary(model, (c, side, side))
    except (InputTooSmall, InputSizeMismatch):
        return False
    return True


def smallest_input(model, input_size):
    """The smallest square side the model accepts at or below its paper's, by bisection.

    Every model accepts an interval of sides that ends at its paper's input: the convolutions need a
    minimum size, and a fixed-size classifier (LeNet-5, the 2012 AlexNet) accepts nothing below its
    paper's side either.
    """
    c, side, _ = input_size
    assert _fits(model, c, side)
    low, high = 0, side  # low does not fit (or is 0), high fits
    try:
        summary(model, (c, 1, 1))
        return 1
    except InputTooSmall as err:
        if err.min_size is not None and err.min_size <= side and _fits(model, c, err.min_size):
            high = err.min_size
            low = err.min_size - 1
    except InputSizeMismatch:
        pass
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _fits(model, c, mid) else (mid, high)
    return high


def test_the_registry_holds_the_course():
    expected = {"lenet5", "alexnet", "alexnet_2gpu", "alexnet_tv", "zfnet", "nin", "googlenet",
                *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
                *(f"resnet{d}" for d in (18, 34, 50, 101, 152)), *(f"resnet{d}_tv" for d in (50, 101, 152)),
                *(f"{kind}{d}" for kind in ("resnet", "plain", "preact_resnet") for d in (20, 32, 44, 56, 110)),
                "densenet121", "densenet169", "densenet201", "densenet264", "densenet_bc_100",
                "wide_resnet50_2", "resnext50_32x4d", "resnext101_32x8d", "se_resnet50", "wrn28_10",
                "resnet110_stochastic_depth", "mobilenet_v1", "mobilenet_v2", "squeezenet1_0", "squeezenet1_1",
                "inception_v3", "inception_v4", "inception_resnet_v2", "xception", "resnet50_v2", "resnet101_v2", "resnet152_v2",
                "nasnet_mobile", "fractalnet20"}
    assert expected <= set(NAMES), sorted(expected - set(NAMES))
    assert models.families() == ["lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "improved_resnet",
                                "fractalnet", "densenet", "xception", "mobilenet", "nasnet", "squeezenet", "shapesnet"]


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_its_smallest_input(name):
    spec = models.info(name)
    side = smallest_input(_meta(name), spec.input_size)
    c = spec.input_size[0]
    torch.manual_seed(0)
    model = models.get(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, c, side, side))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()
    if side > 1:  # one pixel less is refused with a clear error, not a crash deep inside torch
        with pytest.raises((InputTooSmall, InputSizeMismatch)):
            summary(_meta(name), (c, side - 1, side - 1))


@pytest.mark.parametrize("name", NAMES)
def test_summary_totals_agree_with_torch(name):
    model = _meta(name).eval()
    size = models.info(name).input_size
    s = summary(model, size)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in s.rows) <= s.total_params  # rows: the layers that ran (not GoogLeNet's aux heads)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *size, device="meta"))
    assert s.total_macs * 2 == counter.get_total_flops()
    assert all(model.get_submodule(r.name) is not None for r in s.rows)


def test_get_builds_on_the_device_asked_for():
    meta = models.get("vgg16", device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in _meta("vgg16").parameters())
    assert all(p.device.type == "cpu" for p in models.get("lenet5", device="cpu").parameters())
    assert next(models.get("lenet5").parameters()).device.type == "cpu"  # default: torch's default device
    with pytest.raises(ValueError, match="meta device has no values"):
        models.get("resnet18", device="meta", pretrained=True)
