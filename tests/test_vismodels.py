"""The models the visualisation chapter looks at: the offline ShapesNet (accurate on unseen images, first-layer
filters measurably structured, cached safely) and torchvision's ImageNet models with their fallback."""
import pathlib
import urllib.error

import pytest
import torch
import torch.nn as nn

from cnnviz import models, vismodels
from cnnviz.models import WeightsUnavailable, checkpoint_path
from cnnviz.models.shapesnet import ShapesNet, shapesnet
from cnnviz.shapes import CLASSES, make_shapes


def neighbour_correlation(weight: torch.Tensor) -> torch.Tensor:
    """Per filter (C_out, C_in, k, k) → (C_out,): Pearson correlation between horizontally and vertically
    neighbouring taps (all input channels pooled). About 0 for white noise, near 1 for smooth filters."""
    a = torch.cat([weight[..., :, 1:].flatten(1), weight[..., 1:, :].flatten(1)], 1)
    b = torch.cat([weight[..., :, :-1].flatten(1), weight[..., :-1, :].flatten(1)], 1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


@pytest.fixture(scope="module")
def trained():
    return vismodels.trained_shapesnet(progress=False)  # trained once (about a minute), then from the cache


# ----------------------------------------------------------------------------- the trained offline model


def test_accurate_on_unseen_images(trained):
    images, labels = make_shapes(600, seed=4242)                                # not a training or test seed
    pre = trained.cnnviz_preprocess
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = trained((images.float() / 255 - mean) / std).argmax(1)
    accuracy = (predicted == labels).float().mean().item()
    assert accuracy > 0.85
    assert trained.training_report["test_acc"] > 0.85


def test_first_layer_filters_are_smooth_not_noise(trained):
    w = trained.features.conv1.weight.detach()                                   # (32, 3, 7, 7)
    smooth = neighbour_correlation(w)
    assert smooth.mean() > 0.6 and (smooth > 0.3).float().mean() > 0.9
    # controls: the same taps shuffled within each filter, and the initialisation, are white noise
    g = torch.Generator().manual_seed(0)
    shuffled = torch.stack([f.flatten()[torch.randperm(f.numel(), generator=g)].view_as(f) for f in w])
    assert neighbour_correlation(shuffled).mean().abs() < 0.1
    assert neighbour_correlation(shapesnet().features.conv1.weight.detach()).mean().abs() < 0.1


def test_first_layer_filters_are_edge_and_colour_detectors(trained):
    """Not uniform blobs: most filters have a clear gradient (an edge) or channels of opposite sign (colour
    opponency), as in Zeiler & Fergus's figure 2."""
    w = trained.features.conv1.weight.detach()                                   # (C, 3, 7, 7)
    grey = w.sum(1)                                                              # (C, 7, 7): response to grey edges
    dy, dx = grey[:, 1:, :] - grey[:, :-1, :], grey[:, :, 1:] - grey[:, :, :-1]
    edge = (dy.abs().sum((1, 2)) + dx.abs().sum((1, 2))) / grey.abs().sum((1, 2)).clamp_min(1e-12)
    per_channel = w.mean((2, 3))                                                 # (C, 3): mean weight per colour
    opponent = (per_channel.amax(1) > 0) & (per_channel.amin(1) < 0)
    assert ((edge > 0.3) | opponent).float().mean() > 0.8


def test_contract_of_the_trained_model(trained):
    assert isinstance(trained, ShapesNet) and not trained.training
    assert trained.class_names == list(CLASSES)
    assert trained.cnnviz_preprocess.size == 64
    # batch norm was folded away: a plain chain for the explicit deconvnet
    assert {type(m) for m in trained.features} == {nn.Conv2d, nn.ReLU, nn.MaxPool2d}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(trained(x), trained.forward_head(trained.forward_features(x)))
    assert models.info("shapesnet").num_classes == len(CLASSES)
    assert models.get("shapesnet")(x).shape == (2, len(CLASSES))


def test_folding_batch_norm_computes_the_same_function():
    torch.manual_seed(0)
    with_bn = shapesnet(batch_norm=True)
    with torch.no_grad():
        for m in with_bn.modules():  # non-trivial statistics and affine parameters
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    with_bn.eval()
    plain = vismodels._fold_batch_norm(with_bn)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain(x), with_bn(x), atol=1e-4)


def test_example_images():
    images, labels, geometry = vismodels.example_images(8, return_geometry=True)
    assert images.shape == (8, 3, 64, 64) and images.dtype == torch.uint8 and geometry.shape == (8, 4)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1]                             # the classes in turn
    again, _ = vismodels.example_images(8)
    assert torch.equal(images, again)
    more, _ = vismodels.example_images(20)
    assert torch.equal(more[:8], images)                                         # a fixed sequence


# ----------------------------------------------------------------------------- the cache


TINY = dict(train_images=256, test_images=64, epochs=1, batch_size=64)


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    """A recipe that trains in a second or two, and an empty cache directory."""
    for key, value in TINY.items():
        monkeypatch.setitem(vismodels.RECIPE, key, value)
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    return tmp_path


def _equal_weights(a, b, atol=0.0):
    return all(torch.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a.state_dict().values(),
                                                                      b.state_dict().values()))


def test_trained_once_then_loaded(tiny_recipe):
    path = vismodels.shapesnet_cache_path()
    assert path.parent == tiny_recipe and path.name.startswith("shapesnet-") and not path.exists()
    first = vismodels.trained_shapesnet(progress=False)
    assert path.exists() and not first.training_report["from_cache"]
    assert not list(tiny_recipe.glob("*.tmp"))                                  # written atomically
    second = vismodels.trained_shapesnet(progress=False)
    assert second.training_report["from_cache"] and _equal_weights(first, second)
    assert second.cnnviz_preprocess == first.cnnviz_preprocess


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper"])
def test_a_damaged_cache_file_is_retrained_with_a_warning(tiny_recipe, damage):
    first = vismodels.trained_shapesnet(progress=False)
    path = vismodels.shapesnet_cache_path()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:  # a valid file whose weights no longer match their checksum
        payload = torch.load(path, weights_only=True)
        payload["state_dict"]["features.conv1.weight"] += 1
        torch.save(payload, path)
    with pytest.warns(UserWarning, match="damaged"):
        again = vismodels.trained_shapesnet(progress=False)
    assert not again.training_report["from_cache"]
    assert _equal_weights(first, again, atol=1e-4)  # same seed, same weights (up to oneDNN's summation order)
    assert vismodels.trained_shapesnet(progress=False).training_report["from_cache"]  # the file was replaced


def test_a_changed_recipe_or_seed_is_another_file(tiny_recipe, monkeypatch):
    path = vismodels.shapesnet_cache_path()
    assert vismodels.shapesnet_cache_path(seed=1) != path
    monkeypatch.setitem(vismodels.RECIPE, "lr", 0.05)
    assert vismodels.shapesnet_cache_path() != path


def test_cache_false_writes_nothing_and_leaves_the_random_state(tiny_recipe):
    state = torch.get_rng_state()
    vismodels.trained_shapesnet(cache=False, progress=False)
    assert not list(tiny_recipe.iterdir())
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- torchvision's models


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """A private torch hub cache, restored afterwards; downloading fails as if offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub"


def test_imagenet_model_from_the_hub_cache(hub_dir):
    weights = models.info("resnet18").weights
    torch.manual_seed(1)
    state = {k: torch.rand_like(v) if v.is_floating_point() else v
             for k, v in models.get("resnet18").state_dict().items() if not k.endswith("num_batches_tracked")}
    path = pathlib.Path(checkpoint_path(weights))
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    vm = vismodels.vision_model("resnet18", fallback=False)
    assert vm.name == "resnet18" and vm.source == "torchvision ImageNet weights"
    assert vm.class_names == list(weights.meta["categories"]) and len(vm.class_names) == 1000
    assert vm.model.class_names == vm.class_names and not vm.model.training
    assert vm.model.cnnviz_preprocess.size == 224
    assert "ImageNet" in vm.description and "resnet18" in vm.description
    own = vm.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())


def test_offline_without_weights_falls_back_to_shapesnet(hub_dir, trained):
    with pytest.warns(UserWarning, match="offline model"):
        vm = vismodels.vision_model("vgg16")
    assert vm.name == "shapesnet" and vm.source == "trained offline by cnnviz"
    assert vm.class_names == list(CLASSES) and "ShapesNet" in vm.description
    with pytest.raises(WeightsUnavailable) as err:
        vismodels.vision_model("alexnet", fallback=False)
    weights = models.info("alexnet_tv").weights
    assert weights.url in str(err.value) and checkpoint_path(weights) in str(err.value)


def test_names():
    assert list(vismodels.VISION_MODELS) == ["shapesnet", "alexnet", "vgg16", "resnet18"]
    for name, registered in vismodels.VISION_MODELS.items():  # the torchvision-compatible names have weights
        assert (models.info(registered).weights is None) == (name == "shapesnet")
    with pytest.raises(ValueError, match="'shapesnet', 'alexnet', 'vgg16', 'resnet18'"):
        vismodels.vision_model("googlenet")


def test_shapesnet_vision_model(trained):
    vm = vismodels.vision_model("shapesnet")
    assert vm.name == "shapesnet" and f"{100 * trained.training_report['test_acc']:.1f} %" in vm.description
    assert _equal_weights(vm.model, trained)
