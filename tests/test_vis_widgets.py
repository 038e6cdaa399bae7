"""The four visualisation widgets driven from Python: set the controls, check what is shown against the
pure functions (features, deconvnet, occlusion, attribution) and the messages for bad input.

Most tests use a tiny two-convolution network (fast); one per widget uses the real default, the
ShapesNet cnnviz trains offline (cached after its first training).
"""
import base64
import datetime
import io
import re
import threading

import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from cnnviz import features, probe
from cnnviz.figures.visualising import (colourise, filter_mosaic, overlay, projection_to_uint8, strongest,
                                        top_picture, upscale)
from cnnviz.shapes import CLASSES
from cnnviz.widgets.attribution_explorer import DEFAULT_METHODS, AttributionExplorer
from cnnviz.widgets.feature_map_explorer import (TOP_CLASS, FeatureMapExplorer, _example_images, model_lock,
                                                 resolve_model)
from cnnviz.widgets.filter_gallery import FilterGallery
from cnnviz.widgets.occlusion_explorer import OcclusionExplorer, _square, map_canvas
from model_helpers import assert_no_hooks

# ----------------------------------------------------------------------------- helpers


def tiny_model(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, len(CLASSES)))
    m.cnnviz_preprocess = probe.Preprocess(32, (0.5,) * 3, (0.5,) * 3)
    m.class_names = list(CLASSES)
    return m.eval()


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(autouse=True)
def scratch_cache(tmp_path, monkeypatch, request):
    """The tiny model's top-9 scans are cached in a scratch folder (the real ShapesNet keeps the user's cache,
    where its trained weights are)."""
    if "shapesnet" not in request.node.name:
        monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def shrink(img: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Undo a whole-factor nearest-neighbour enlargement, to compare with the unenlarged picture."""
    f = img.shape[0] // like.shape[0]
    assert f >= 1 and img.shape[0] == f * like.shape[0] and img.shape[1] == f * like.shape[1]
    small = img[::f, ::f]
    np.testing.assert_array_equal(upscale(small, f), img)  # really whole blocks
    return small


def grid_maps(html: str):
    """The maps of a FeatureMapExplorer grid: (channel numbers, decoded images), in page order."""
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    channels = [int(c) for c in re.findall(r'cnnviz-caption">#(\d+)<', html)]
    return channels, [decode(base64.b64decode(u)) for u in uris]


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def upload_value(data: bytes):
    """FileUpload.value as the installed ipywidgets holds it (8: a tuple of dicts; 7: a dict)."""
    if int(ipywidgets.__version__.split(".")[0]) >= 8:
        return ({"name": "x.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                 "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    return {"x.png": {"metadata": {"name": "x.png", "type": "image/png", "size": len(data)}, "content": data}}


def example_x(model, i=0):
    return probe.prepare(_example_images(12)[0][i].permute(1, 2, 0).numpy(), model)  # example_images(), once


def examples_for(model, n=256):
    """The oracle's copy of the images the top-9 are chosen from (vismodels.example_images, prepared)."""
    pre = probe.preprocessing(model)
    x = _example_images(n)[0].float() / 255  # vismodels.example_images(n), generated once
    x = F.interpolate(x, size=(pre.size, pre.size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- resolve_model

def test_resolve_model_accepts_modules_and_vision_models(tiny):
    from cnnviz.vismodels import VisionModel

    vm = resolve_model(tiny)
    assert isinstance(vm, VisionModel) and vm.model is tiny and list(vm.class_names) == list(CLASSES)
    plain = nn.Sequential(nn.Conv2d(3, 2, 3))
    assert resolve_model(plain).class_names is None
    assert list(resolve_model(plain, class_names=["a", "b"]).class_names) == ["a", "b"]
    assert resolve_model(vm) is vm
    with pytest.raises(ValueError, match="a name .* a VisionModel or an nn.Module"):
        resolve_model(42)
    assert model_lock(tiny) is model_lock(tiny) and model_lock(tiny) is not model_lock(plain)


# ----------------------------------------------------------------------------- FilterGallery

def test_filter_gallery_shows_the_first_convolution(tiny):
    g = FilterGallery(tiny, threaded=False)
    assert g.shown == ("0", "auto") and g.message.value == ""
    expected, *_ = filter_mosaic(features.filters(tiny, "0"))
    np.testing.assert_array_equal(g.picture, expected)
    np.testing.assert_array_equal(shrink(decode(g.view.value), expected), expected)
    assert "8 filters of 5×5×3" in g.info.value and "neighbouring weights correlate" in g.info.value


def test_filter_gallery_layer_and_mode(tiny):
    g = FilterGallery(tiny, threaded=False)
    g.layer.value = "3"
    assert g.shown == ("3", "auto")
    np.testing.assert_array_equal(g.picture, filter_mosaic(features.filters(tiny, "3"))[0])  # auto: the summary
    assert g.picture.shape[:2] != filter_mosaic(features.filters(tiny, "0"))[0].shape[:2]
    g.mode.value = "channels"
    np.testing.assert_array_equal(g.picture, filter_mosaic(features.filters(tiny, "3", mode="channels"))[0])
    assert "16 filters of 3×3×8" in g.info.value and "blue < 0" in g.info.value


def test_filter_gallery_impossible_mode_keeps_the_picture(tiny):
    g = FilterGallery(tiny, layer="3", threaded=False)
    before = g.picture
    g.mode.value = "rgb"  # layer 3 reads 8 channels, not colours
    assert "needs a layer that reads 3" in g.message.value and "still shows 3" in g.message.value
    assert g.picture is before and g.shown == ("3", "auto")
    g.mode.value = "summary"
    assert g.message.value == "" and g.shown == ("3", "summary")


@pytest.mark.parametrize("layer, says", [("conv9", "has no layer called 'conv9'"), ("1", "'1' is a ReLU, not a conv")])
def test_filter_gallery_wrong_layer_is_a_message(tiny, layer, says):
    g = FilterGallery(tiny, layer=layer, threaded=False)  # no exception
    assert says in g.message.value
    assert g.shown == ("0", "auto")  # the first convolution is shown under the message
    g.set(layer="3")
    assert g.message.value == "" and g.shown == ("3", "auto")


def test_filter_gallery_model_without_convolutions():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        FilterGallery(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), threaded=False)


# ----------------------------------------------------------------------------- FeatureMapExplorer

@pytest.fixture
def counting(monkeypatch):
    """Counts forward passes for feature maps (features.feature_maps calls)."""
    calls = []
    inner = features.feature_maps

    def wrapped(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("layers"))
        return inner(*args, **kwargs)

    monkeypatch.setattr(features, "feature_maps", wrapped)
    return calls


def test_feature_map_explorer_initial_view(tiny):
    from cnnviz.deconvnet import deconvnet, strongest_unit, top_activations

    e = FeatureMapExplorer(tiny, threaded=False)
    assert e.message.value == "" and e.last_error is None
    assert list(e.layer.options) == features.default_layers(tiny) == ["1", "4"]
    assert e.layer.value == "1" and e.photo.value == "example:0"
    x = example_x(tiny).x
    m = features.feature_maps(tiny, x, ["1"])["1"]  # (8, 32, 32)
    order = strongest(m, 8).tolist()
    channels, pics = grid_maps(e.grid.value)
    assert channels == order and [v for _, v in e.pick.options] == order
    for c, pic in zip(channels, pics):
        np.testing.assert_array_equal(pic, colourise(m[c].numpy()))
    assert "The photo was resized to 32×32" in e.note.value
    assert "8 maps of 32×32" in e.info.value
    # the detail pane: the strongest channel, its strongest unit, projected back with the deconvnet
    c = order[0]
    assert e.pick.value == c and e.channel.value == c
    unit = tuple(strongest_unit(m, c))
    assert e.detail == ("example:0", "1", c, unit)
    proj = projection_to_uint8(deconvnet(tiny, x, "1", c, position=unit))
    np.testing.assert_array_equal(shrink(decode(e.projection_view.value), proj), proj)
    big = colourise(m[c].numpy())
    np.testing.assert_array_equal(shrink(decode(e.map_view.value), big), big)
    # the top 9 over the example images, as top_activations finds them
    data = examples_for(tiny)
    tops = top_activations(tiny, data, "1", k=9, progress=False)
    expected = top_picture(tops.patches(tiny, data, c), tops.projections(tiny, data, c))
    np.testing.assert_array_equal(shrink(decode(e.top_view.value), expected), expected)
    assert e.top_shown == ("1", c) and "over 256 example images" in e.top_info.value
    assert_no_hooks(tiny)


def test_feature_map_explorer_layer_changes_reuse_the_forward_pass(tiny, counting):
    e = FeatureMapExplorer(tiny, threaded=False, top_k=0)
    assert len(counting) == 1 and list(counting[0]) == ["1", "4"]  # one pass for every layer
    e.layer.value = "4"
    e.layer.value = "1"
    e.layer.value = "4"
    assert len(counting) == 1
    channels, pics = grid_maps(e.grid.value)
    m = e.maps["4"]
    assert channels == strongest(m, 16).tolist() and len(pics) == 16
    assert e.detail[1:3] == ("4", channels[0])  # a new layer: its strongest channel
    e.photo.value = "chelsea"
    assert len(counting) == 2
    e.photo.value = "example:0"
    assert len(counting) == 2  # cached
    assert e.shown[:2] == ("example:0", "4")


def test_feature_map_explorer_choosing_a_map(tiny):
    from cnnviz.deconvnet import deconvnet

    e = FeatureMapExplorer(tiny, layer="4", threaded=False, top_k=0)
    third = e.pick.options[2][1]
    e.pick.value = third  # the button under the third map
    assert e.detail[2] == third and e.channel.value == third
    proj = projection_to_uint8(deconvnet(tiny, e._prepared("example:0").x, "4", third, position=e.detail[3]))
    np.testing.assert_array_equal(shrink(decode(e.projection_view.value), proj), proj)
    assert f"channel {third} of 4" in e.detail_info.value
    assert 'outline:4px solid' in e.grid.value.split(f"#{third}<")[0].rsplit("<img", 1)[1]  # outlined in the grid
    e.photo.value = "coffee"  # another photo: the same channel, so the two can be compared
    assert e.detail[:3] == ("coffee", "4", third)


def test_feature_map_explorer_pages_and_order(tiny):
    e = FeatureMapExplorer(tiny, layer="4", channels=4, columns=4, threaded=False, top_k=0)
    assert e.page.max == 3 and len(e.pick.options) == 4
    e.order.value = "number"
    assert e.shown[2] == [0, 1, 2, 3]
    e.page.value = 2
    assert e.shown[2] == [8, 9, 10, 11]
    channels, pics = grid_maps(e.grid.value)
    assert channels == [8, 9, 10, 11]
    np.testing.assert_array_equal(pics[1], colourise(e.maps["4"][9].numpy()))
    e.set(channel=13)  # the page follows the chosen channel
    assert e.page.value == 3 and e.shown[2] == [12, 13, 14, 15] and e.detail[2] == 13


def test_feature_map_explorer_bad_input_is_a_message(tiny):
    e = FeatureMapExplorer(tiny, layer="features.9", threaded=False, top_k=0)  # no exception
    assert "has no layer called 'features.9'" in e.message.value and "Its layers are: 0, 1, 2" in e.message.value
    assert e.shown[1] == "1"
    e.layer.value = "4"
    assert e.message.value == ""
    before = e.shown
    e.set(channel=99)
    assert "Channel 99 is out of range: '4' has 16 channels, numbered 0 to 15." in e.message.value
    e.set(layer="nope")
    assert "no layer called 'nope'" in e.message.value and e.shown == before
    e.upload.set_trait("value", upload_value(b"this is not a picture"))
    assert "not an image" in e.message.value and e.shown == before and e.photo.value == "example:0"
    pic = np.zeros((20, 20, 3), np.uint8)
    pic[:, 10:] = 255
    e.upload.set_trait("value", upload_value(png(pic)))  # a real image: shown, message gone
    assert e.message.value == "" and e.photo.value.startswith("upload:") and e.shown[0] == e.photo.value
    assert dict((v, k) for k, v in e.photo.options)[e.photo.value] == "(uploaded)"
    assert "resized to 32×32" in e.note.value


def test_feature_map_explorer_unexpected_error_is_shown(tiny, monkeypatch):
    import cnnviz.deconvnet as dn

    e = FeatureMapExplorer(tiny, threaded=False, top_k=0)
    monkeypatch.setattr(dn, "deconvnet", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    e.pick.value = e.pick.options[1][1]
    assert "Unexpected error (RuntimeError: boom)" in e.message.value
    monkeypatch.undo()
    e.pick.value = e.pick.options[2][1]
    assert e.message.value == "" and e.detail[2] == e.pick.options[2][1]


def test_feature_map_explorer_leaves_the_model_as_it_was():
    m = tiny_model(1).train()
    e = FeatureMapExplorer(m, threaded=False)
    e.layer.value = "4"
    e.pick.value = e.pick.options[1][1]
    assert m.training and all(mod.training for mod in m.modules())
    assert_no_hooks(m)


def test_feature_map_explorer_threaded_settles_on_the_last_request(tiny):
    e = FeatureMapExplorer(tiny, top_k=0)
    assert e.wait()
    for layer in ["4", "1", "4", "1", "4"]:
        e.layer.value = layer
    e.photo.value = "coffee"
    assert e.wait()
    assert e.shown[:2] == ("coffee", "4") and e.detail[:2] == ("coffee", "4")
    assert grid_maps(e.grid.value)[0] == strongest(e.maps["4"], 16).tolist()
    assert e.message.value == ""


# ----------------------------------------------------------------------------- OcclusionExplorer

def test_map_canvas_paints_each_position_at_its_patch_centre():
    colours = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # (Hp=2, Wp=3) positions
    out = map_canvas(colours, rows=[0, 4], cols=[0, 2, 4], patch=4, stride=2, size=8)
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[2, 2], colours[0, 0])  # pixel (2, 2) is the centre of patch (0, 0)
    np.testing.assert_array_equal(out[6, 6], colours[1, 2])  # patch (4, 4)'s centre is at (6, 6)
    np.testing.assert_array_equal(out[2, 4], colours[0, 1])
    assert (out[0] == 255).all() and (out[:, 0] == 255).all()  # no patch is centred on the border


def test_occlusion_explorer_shows_the_occlusion_map(tiny):
    from cnnviz.occlusion import occlusion

    e = OcclusionExplorer(tiny, threaded=False)
    assert (e.patch.value, e.stride.value) == (8, 2)  # a quarter of the 32-pixel side, a quarter of that
    p = example_x(tiny)
    oracle = occlusion(tiny, p.x, patch=8, stride=2)
    m = e.result
    assert m.target == oracle.target and m.complete
    torch.testing.assert_close(m.prob, oracle.prob)
    assert e.shown == ("example:0", 8, 2, oracle.target)
    expected = map_canvas(colourise(oracle.prob.numpy(), signed=False, vmax=1.0), oracle.rows, oracle.cols, 8, 2, 32)
    np.testing.assert_array_equal(shrink(decode(e.prob_view.value), expected), expected)
    r, c = np.unravel_index(int(oracle.prob.argmin()), oracle.prob.shape)
    hurt = _square(p.display, int(oracle.rows[r]), int(oracle.cols[c]), 8)
    np.testing.assert_array_equal(shrink(decode(e.photo_view.value), hurt), hurt)
    name = CLASSES[oracle.target]
    assert f"p(<b>{name}</b>) = {oracle.base_prob:.3f} without the square" in e.info.value
    assert "done: 169 positions" in e.info.value
    assert ("by incremental inference" in e.info.value) == (oracle.method == "incremental")
    # the class menu: the top class first, then every class from the most to the least probable
    probs = torch.softmax(tiny(p.x), 1)[0]
    order = torch.argsort(probs, descending=True).tolist()
    assert [v for _, v in e.target.options] == [TOP_CLASS] + order and e.target.value == TOP_CLASS
    assert e.target.options[0][0].startswith(f"top class: {name}")


@pytest.mark.parametrize("worth_it, said", [(1.0, True), (0.0, False)])
def test_occlusion_explorer_says_when_the_map_came_by_incremental_inference(tiny, monkeypatch, worth_it, said):
    monkeypatch.setattr("cnnviz.occlusion.WORTH_IT", worth_it)  # 1.0: always worth it; 0.0: never
    e = OcclusionExplorer(tiny, threaded=False)
    assert e.result.method == ("incremental" if said else "full")
    assert ("by incremental inference" in e.info.value) == said


def test_occlusion_explorer_fills_in_batch_by_batch(tiny, monkeypatch):
    drawn = []
    inner = OcclusionExplorer._draw

    def spy(self, prep, m, names, t0, *, final):
        drawn.append((int(m.done.sum()), final, decode(self.prob_view.value) if self.prob_view.value else None))
        inner(self, prep, m, names, t0, final=final)
        drawn[-1] = drawn[-1][:2] + (decode(self.prob_view.value),)

    monkeypatch.setattr(OcclusionExplorer, "_draw", spy)
    e = OcclusionExplorer(tiny, patch=8, stride=2, batch_size=32, min_interval=0, threaded=False)
    counts = [d[0] for d in drawn]
    assert counts == [32, 64, 96, 128, 160, 169, 169]  # six batches as they come, then the final picture
    assert [d[1] for d in drawn] == [False] * 6 + [True]
    first = drawn[0][2]
    f = first.shape[0] // 32
    assert (first[20 * f:26 * f, 8 * f:24 * f] == 225).all()  # the lower rows are not computed yet: light grey
    assert not (first[4 * f:6 * f, 4 * f:28 * f] == 225).all(axis=2).any()  # the first rows are
    assert not (drawn[-1][2] == 225).all(axis=2).any()  # the final map has no grey left
    assert e.batches == 6


def test_occlusion_explorer_class_and_sliders(tiny):
    from cnnviz.occlusion import occlusion

    e = OcclusionExplorer(tiny, threaded=False)
    x = example_x(tiny).x
    e.target.value = 3
    torch.testing.assert_close(e.result.prob, occlusion(tiny, x, target=3, patch=8, stride=2).prob)
    assert "p(<b>ring</b>)" in e.info.value and "p(<b>ring</b>) with the square" in e.prob_caption.value
    e.set(patch=12, stride=5)
    m = e.result
    assert (m.patch, m.stride, m.target) == (12, 5, 3)  # the chosen class is kept
    torch.testing.assert_close(m.prob, occlusion(tiny, x, target=3, patch=12, stride=5).prob)
    e.target.value = TOP_CLASS  # back to "top class"
    assert e.result.target == int(torch.softmax(tiny(x), 1).argmax())


def test_occlusion_explorer_bad_input_is_a_message(tiny):
    e = OcclusionExplorer(tiny, threaded=False)
    before = e.result
    e.set(target=99)
    assert "Class 99 does not exist: the model has 6 classes, numbered 0 to 5." in e.message.value
    assert e.result.target == before.target  # the top class is explained meanwhile
    e.set(target=2)
    assert e.message.value == "" and e.result.target == 2
    e.set_image(b"\x89PNG\r\n\x1a\n truncated")
    assert "uploaded file" in e.message.value and e.photo.value == "example:0"
    e.photo.value = "astronaut"
    assert e.message.value == "" and "resized to 32×32" in e.note.value and e.shown[0] == "astronaut"
    # impossible settings in the constructor: a sentence on screen and the nearest setting, never a traceback
    e = OcclusionExplorer(tiny, patch=40, stride=0, threaded=False)
    assert ("The square must be between 1 and 32 pixels (the model's input is 32×32), not 40; using 32."
            in e.message.value)
    assert "The stride must be between 1 and 16 pixels" in e.message.value and "not 0; using 1." in e.message.value
    assert (e.patch.value, e.stride.value) == (32, 1) and e.result.patch == 32 and e.result.prob.shape == (1, 1)


def test_occlusion_explorer_newest_request_wins(tiny, monkeypatch):
    """A computation under way stops at its next batch when a newer request arrives."""
    import cnnviz.occlusion as occ

    started, release = threading.Event(), threading.Event()
    finished = []
    inner = occ.occlusion

    def slow(model, image, **kw):
        on_batch = kw.pop("on_batch")

        def hold(partial):
            if partial.patch == 6 and not release.is_set():
                started.set()
                assert release.wait(10)
            on_batch(partial)

        m = inner(model, image, on_batch=hold, **kw)
        finished.append(m.patch)
        return m

    e = OcclusionExplorer(tiny, batch_size=16, min_interval=0)
    assert e.wait()
    monkeypatch.setattr(occ, "occlusion", slow)
    e.patch.value = 6
    assert started.wait(10)
    e.patch.value = 10  # while the 6-pixel map is being computed
    e.stride.value = 3
    release.set()
    assert e.wait()
    assert finished == [10]  # the 6-pixel computation was abandoned; the skipped (10, 2) never ran
    assert (e.result.patch, e.result.stride) == (10, 3) and e.shown[1:3] == (10, 3)
    assert e.message.value == ""


# ----------------------------------------------------------------------------- AttributionExplorer

@pytest.fixture
def attribute_calls(monkeypatch):
    import cnnviz.attribution as attr

    calls = []
    inner = attr.attribute

    def counted(model, image, method, **kw):
        calls.append((method, kw.get("target")))
        return inner(model, image, method, **kw)

    monkeypatch.setattr(attr, "attribute", counted)
    return calls


def test_attribution_explorer_maps_are_captums(tiny, attribute_calls):
    from cnnviz.attribution import METHODS, attribute

    e = AttributionExplorer(tiny, threaded=False)
    p = example_x(tiny)
    top = int(tiny(p.x).argmax())
    assert e.chosen == list(DEFAULT_METHODS) and list(e.maps) == list(DEFAULT_METHODS)
    for m in DEFAULT_METHODS:
        expected = attribute(tiny, p.x, m, target=top).map.numpy()
        np.testing.assert_allclose(e.maps[m], expected, rtol=1e-5, atol=1e-7)
        pic = overlay(p.display, e.maps[m])
        np.testing.assert_array_equal(shrink(decode(e.views[m].value), pic), pic)
    assert len(e.gallery.children) == 1 + len(DEFAULT_METHODS)
    assert [c.children[0].value for c in e.gallery.children[1:]] == [
        f'<span class="cnnviz-caption">{METHODS[m]}</span>' for m in DEFAULT_METHODS]
    assert f"Explaining <b>{CLASSES[top]}</b>" in e.info.value
    assert e.message.value == ""
    assert_no_hooks(tiny)


def test_attribution_explorer_methods_are_cached(tiny, attribute_calls):
    e = AttributionExplorer(tiny, methods=("saliency", "grad_cam"), threaded=False)
    assert [m for m, _ in attribute_calls] == ["saliency", "grad_cam"]
    e.methods["grad_cam"].value = False
    assert e.chosen == ["saliency"] and len(e.gallery.children) == 2
    e.methods["grad_cam"].value = True
    e.methods["deconvnet"].value = True
    assert e.chosen == ["saliency", "deconvnet", "grad_cam"]  # in METHODS order
    assert [m for m, _ in attribute_calls] == ["saliency", "grad_cam", "deconvnet"]  # only the new one computed
    e.target.value = 4
    assert attribute_calls[3:] == [("saliency", 4), ("deconvnet", 4), ("grad_cam", 4)]
    assert e.shown[1] == 4 and "Explaining <b>cross</b>" in e.info.value


def test_attribution_explorer_bad_input_is_a_message(tiny):
    e = AttributionExplorer(tiny, methods=("saliency",), threaded=False)
    e.set(methods=["saliency", "lime"])
    assert "Unknown attribution method(s) 'lime'; choose from saliency, integrated_gradients" in e.message.value
    assert e.chosen == ["saliency"]
    e.set(target=6)
    assert "Class 6 does not exist" in e.message.value
    e.upload.set_trait("value", upload_value(b"GIF89a nonsense"))
    assert "uploaded file" in e.message.value
    with pytest.raises(ValueError, match="Unknown attribution method"):
        AttributionExplorer(tiny, methods=("smoothgrad",), threaded=False)


def test_widgets_leave_a_training_model_as_it_was():
    m = tiny_model(2).train()
    OcclusionExplorer(m, threaded=False)
    AttributionExplorer(m, methods=("guided_backprop", "grad_cam"), threaded=False)
    FilterGallery(m, threaded=False)
    assert all(mod.training for mod in m.modules())
    assert_no_hooks(m)


# ----------------------------------------------------------------------------- the real default: ShapesNet

@pytest.fixture(scope="module")
def shapes_geometry():
    from cnnviz.vismodels import example_images

    images, labels, geometry = example_images(12, return_geometry=True)  # centre row, column, radius, angle
    return labels, geometry


def test_feature_map_explorer_on_the_trained_shapesnet():
    from cnnviz.deconvnet import top_activations

    e = FeatureMapExplorer(threaded=False)  # the default: ShapesNet, trained offline by cnnviz (cached)
    assert e.vision.name == "shapesnet" and e.message.value == ""
    assert list(e.layer.options) == list(e.model.feature_layers) and e.layer.value == "features.relu1"
    channels, pics = grid_maps(e.grid.value)
    assert len(channels) == 16 and pics[0].shape == (32, 32, 3)
    e.layer.value = "features.relu3"
    channels, _ = grid_maps(e.grid.value)
    assert channels == strongest(e.maps["features.relu3"], 16).tolist()
    c = e.detail[2]
    assert c == channels[0] and e.top_shown == ("features.relu3", c)
    data = e._dataset_tensor()
    tops = top_activations(e.model, data, "features.relu3", k=9, progress=False, cache=True)
    expected = top_picture(tops.patches(e.model, data, c), tops.projections(e.model, data, c))
    np.testing.assert_array_equal(shrink(decode(e.top_view.value), expected), expected)
    assert "over 256 example images" in e.top_info.value


def test_occlusion_explorer_on_the_trained_shapesnet_hurts_most_on_the_shape(shapes_geometry):
    """The trained network looks at the shape: covering the shape, not the background, lowers its class."""
    labels, geometry = shapes_geometry
    e = OcclusionExplorer(threaded=False)
    assert e.vision.name == "shapesnet" and (e.patch.value, e.stride.value) == (16, 4)
    hits = 0
    for i in range(6):
        e.set(image=i, target=int(labels[i]))
        m = e.result
        assert m.target == int(labels[i]) and e.message.value == ""
        r, c = np.unravel_index(int(m.prob.argmin()), tuple(m.prob.shape))
        centre = np.array([float(m.rows[r]) + 8, float(m.cols[c]) + 8])
        row, col, radius = (float(v) for v in geometry[i][:3])
        hits += np.hypot(*(centre - np.array([row, col]))) <= radius + 8
    assert hits >= 5  # the most harmful square sits on the shape (its centre within the shape's radius + 8 px)


def test_attribution_explorer_on_the_trained_shapesnet():
    e = AttributionExplorer(threaded=False)
    assert e.vision.name == "shapesnet" and e.message.value == ""
    assert e.target.options[0][0].startswith("top class: ") and len(e.target.options) == 1 + len(CLASSES)
    assert set(e.maps) == set(DEFAULT_METHODS) and all(m.shape == (64, 64) for m in e.maps.values())
    g = FilterGallery(threaded=False)
    assert g.shown == ("features.conv1", "auto") and "filters of 7×7×3" in g.info.value


@pytest.mark.parametrize("make", [FeatureMapExplorer, OcclusionExplorer, AttributionExplorer])
@pytest.mark.parametrize("image, says", [("chelsae", "'chelsae' is neither an embedded photo"),
                                         (b"junk", "The uploaded file is not an image"),
                                         (99, "There are 12 example images, numbered 0 to 11; not 99.")])
def test_a_bad_first_photo_is_a_message_and_the_first_example_is_shown(tiny, make, image, says):
    kw = dict(top_k=0) if make is FeatureMapExplorer else {}
    e = make(tiny, image=image, threaded=False, **kw)
    assert says in e.message.value
    assert e.photo.value == "example:0" and e.shown[0] == "example:0"
    assert "(uploaded)" not in dict(e.photo.options)


def test_occlusion_explorer_with_many_unnamed_classes():
    """ImageNet-like: more classes than colours, no names: the map and legend still work."""
    from cnnviz.figures.visualising import CLASS_COLOURS

    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(4, 200))
    m.cnnviz_preprocess = probe.Preprocess(16, (0.5,) * 3, (0.5,) * 3)
    e = OcclusionExplorer(m, patch=4, stride=4, threaded=False)
    assert e.message.value == "" and len(e.target.options) == 201
    top = e.result.top_class
    present = sorted(set(top.flatten().tolist()))
    for c in present:
        assert f"class {c}</div>" in e.legend.value
    colour = CLASS_COLOURS[int(top[0, 0]) % len(CLASS_COLOURS)]
    pic = decode(e.class_view.value)
    f = pic.shape[0] // 16
    np.testing.assert_array_equal(pic[2 * f, 2 * f], [int(colour[i:i + 2], 16) for i in (1, 3, 5)])  # patch (0, 0)
