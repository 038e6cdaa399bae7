"""cnnviz.figures.visualising: the pictures and the static figures hold exactly the data they are built from."""
import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from cnnviz.figures import visualising as vf

RNG = np.random.default_rng(0)


def decode(source: str) -> np.ndarray:
    """The pixels of a ``data:image/png;base64,...`` URI."""
    head, payload = source.split(",", 1)
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im.convert("RGB"))


def tile(picture, box, h, w):
    top, left = box
    return picture[top:top + h, left:left + w]


def relu_maps(c, s, seed):
    g = np.random.default_rng(seed)
    return np.maximum(g.standard_normal((c, s, s)), 0).astype(np.float32)


# ----------------------------------------------------------------------------- pictures

def test_colourise_unsigned_uses_viridis_from_zero_to_the_maximum():
    lut = vf._lut("Viridis")
    v = np.array([[0.0, 1.0], [2.0, 4.0]])
    out = vf.colourise(v)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], lut[0])
    np.testing.assert_array_equal(out[1, 1], lut[255])
    np.testing.assert_array_equal(out[1, 0], lut[128])  # 2/4 of the way: index rint(127.5) = 128
    np.testing.assert_array_equal(vf.colourise(v, vmax=8.0)[1, 1], lut[128])
    np.testing.assert_array_equal(vf.colourise(np.zeros((3, 3))), np.broadcast_to(lut[0], (3, 3, 3)))


def test_colourise_signed_is_symmetric_around_white():
    lut = vf._lut("RdBu_r")
    out = vf.colourise(np.array([[-2.0, 0.0, 2.0, 1.0]]))
    np.testing.assert_array_equal(out[0, 0], lut[0])
    np.testing.assert_array_equal(out[0, 2], lut[255])
    np.testing.assert_array_equal(out[0, 1], lut[128])  # 0 sits in the middle: near white
    assert out[0, 1].min() > 230
    with pytest.raises(ValueError, match="2-D"):
        vf.colourise(np.zeros((2, 2, 2)))


def test_upscale_is_nearest_neighbour():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    big = vf.upscale(a, 3)
    assert big.shape == (6, 9)
    np.testing.assert_array_equal(big[::3, ::3], a)
    np.testing.assert_array_equal(big[2, 8], a[0, 2])
    with pytest.raises(ValueError, match="≥ 1"):
        vf.upscale(a, 0)


def test_mosaic_places_tiles_left_to_right_with_gaps_and_label_rows():
    tiles = np.stack([np.full((4, 5, 3), i * 20, np.uint8) for i in range(1, 6)])
    pic, boxes = vf.mosaic(tiles, 2, gap=1, label_rows=2)
    assert pic.shape == (3 * (4 + 2 + 1) - 1, 2 * (5 + 1) - 1, 3)
    assert boxes == [(2, 0), (2, 6), (9, 0), (9, 6), (16, 0)]
    for i, box in enumerate(boxes):
        assert (tile(pic, box, 4, 5) == (i + 1) * 20).all()
    assert (pic[0:2] == 255).all()  # the label rows of the first row of tiles are background
    assert (pic[:, 5] == 255).all()  # the gap between the columns
    assert (pic[16:, 6:] == 255).all()  # the empty sixth cell


def test_filter_mosaic_rgb_tiles_are_the_filters():
    f = RNG.random((10, 3, 5, 5))
    pic, boxes, labels, shown = vf.filter_mosaic(f, columns=4)
    assert shown == (10, 3) and len(boxes) == 10 and labels[7] == "filter 7"
    for i, box in enumerate(boxes):
        expected = np.rint(f[i].transpose(1, 2, 0) * 255).astype(np.uint8)
        np.testing.assert_array_equal(tile(pic, box, 5, 5), expected)
    assert boxes[4] == (5 + 1, 0)  # second row starts under the first, one pixel of gap


def test_filter_mosaic_summary_is_grey_and_channels_are_diverging():
    s = RNG.random((6, 1, 3, 3))
    pic, boxes, _, _ = vf.filter_mosaic(s)
    np.testing.assert_array_equal(tile(pic, boxes[2], 3, 3)[..., 0], np.rint(s[2, 0] * 255))
    assert (tile(pic, boxes[2], 3, 3)[..., 0] == tile(pic, boxes[2], 3, 3)[..., 2]).all()

    c = RNG.random((20, 8, 3, 3))
    pic, boxes, labels, shown = vf.filter_mosaic(c, max_filters=12, max_inputs=5)
    assert shown == (12, 5) and len(boxes) == 60
    assert labels[5 * 3 + 2] == "filter 3, input channel 2"
    np.testing.assert_array_equal(tile(pic, boxes[5 * 3 + 2], 3, 3), vf.colourise(c[3, 2] - 0.5, signed=True, vmax=0.5))
    zero = vf.filter_mosaic(np.full((1, 4, 3, 3), 0.5))[0]  # a zero weight is the white middle of the scale
    assert (zero[:3, :3] == vf._lut("RdBu_r")[128]).all()


def test_projection_to_uint8_centres_zero_on_grey():
    p = np.zeros((3, 2, 2))
    p[0, 0, 0], p[1, 1, 1] = 4.0, -2.0
    out = vf.projection_to_uint8(torch.tensor(p))
    assert out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 255 and out[1, 1, 1] == 64 and out[0, 1, 2] == 128
    np.testing.assert_array_equal(vf.projection_to_uint8(np.zeros((3, 4, 4))), 128)


def test_overlay_keeps_cold_pixels_and_colours_hot_ones():
    photo = np.full((4, 4, 3), 200, np.uint8)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = vf.overlay(photo, heat, vmax=1.0, alpha=1.0)
    grey = 0.25 * 255 + 0.6 * 200
    assert np.allclose(out[3, 3], grey, atol=1)  # cold: the dimmed grey photo
    np.testing.assert_array_equal(out[0, 0], vf._lut("Inferno")[255])  # hottest with alpha 1: the colour
    with pytest.raises(ValueError, match="photo's size"):
        vf.overlay(photo, np.zeros((3, 3)))


def test_strongest_orders_by_maximum():
    m = np.zeros((4, 2, 2))
    m[2, 0, 0], m[0, 1, 1], m[3, 0, 1] = 5, 3, 4
    assert vf.strongest(m, 3).tolist() == [2, 3, 0]
    assert vf.strongest(torch.tensor(m), 10).tolist() == [2, 3, 0, 1]


def test_uri_is_exact_for_few_colours_and_close_for_photos():
    from cnnviz.data import load_image

    few = vf.colourise(RNG.random((40, 50)))  # viridis: at most 256 colours
    np.testing.assert_array_equal(decode(vf._uri(few, lossy=True)), few)
    photo = load_image("astronaut", max_side=128)
    np.testing.assert_array_equal(decode(vf._uri(photo)), photo)  # true colour unless lossy
    reduced = decode(vf._uri(photo, lossy=True))
    assert reduced.shape == photo.shape and np.abs(reduced.astype(int) - photo).mean() < 3
    assert len(vf._uri(photo, lossy=True)) < 0.7 * len(vf._uri(photo))


# ----------------------------------------------------------------------------- filter_grid_figure

def test_filter_grid_figure_shows_the_mosaic_and_names_every_filter():
    f = RNG.random((12, 3, 7, 7))
    fig = vf.filter_grid_figure(f, title="conv1")
    assert isinstance(fig, go.Figure) and fig.data[0].type == "image"
    pic, boxes, labels, _ = vf.filter_mosaic(f)
    np.testing.assert_array_equal(decode(fig.data[0].source), pic)
    hover = fig.data[1]
    assert list(hover.hovertext) == labels
    assert hover.x[5] == boxes[5][1] + 3.5 and hover.y[5] == boxes[5][0] + 3.5  # at each filter's centre
    assert fig.layout.title.text == "conv1"


def test_filter_grid_figure_says_what_it_leaves_out():
    fig = vf.filter_grid_figure(RNG.random((40, 30, 3, 3)), title="conv2", max_filters=16, max_inputs=8)
    assert "the first 16 of 40 filters" in fig.layout.title.text
    assert "the first 8 of 30 input channels" in fig.layout.title.text
    assert len(fig.data[1].hovertext) == 16 * 8


# ----------------------------------------------------------------------------- feature_map_figure

@pytest.fixture(scope="module")
def fmap_data():
    photos = {n: RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8) for n in ("cat", "disc", "rocket")}
    maps = {n: {"features.relu1": relu_maps(32, 32, k), "features.relu2": torch.tensor(relu_maps(48, 16, k + 10)),
                "features.relu3": relu_maps(8, 8, k + 20)} for k, n in enumerate(photos)}
    return photos, maps, vf.feature_map_figure(photos, maps, channels=16, columns=4)


def test_feature_map_figure_structure(fmap_data):
    photos, maps, fig = fmap_data
    layers = list(maps["cat"])
    assert len(fig.data) == 1 + 2 * len(layers)  # photo, one mosaic per layer, one label trace per layer
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == layers
    for i, s in enumerate(steps):
        visible = s.args[0]["visible"]
        assert list(visible) == [True] + [j == i for j in range(3)] * 2
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == list(photos)
    assert [fig.data[1 + i].visible for i in range(3)] == [True, False, False]


def test_feature_map_figure_states_hold_each_photos_strongest_maps(fmap_data):
    photos, maps, fig = fmap_data
    layers = list(maps["cat"])
    for b, name in zip(fig.layout.updatemenus[0].buttons, photos):
        sources, texts, hovers = (b.args[0][k] for k in ("source", "text", "hovertext"))
        assert list(b.args[1]) == list(range(1 + 2 * len(layers)))
        np.testing.assert_array_equal(decode(sources[0]), photos[name])
        for i, layer in enumerate(layers):
            m = np.asarray(maps[name][layer], dtype=np.float64)
            order = vf.strongest(m, 16)
            assert list(texts[1 + len(layers) + i]) == [f"#{c}" for c in order]
            assert hovers[1 + len(layers) + i][0] == f"channel {order[0]}: max {m[order[0]].max():.3g}"
            pic = decode(sources[1 + i])
            h = m.shape[1]
            label_rows = max(1, int(np.ceil(0.2 * h)))
            _, boxes = vf.mosaic(np.zeros((len(order), h, h, 3), np.uint8), 4, gap=max(1, round(h / 16)),
                                 label_rows=label_rows)
            for k in (0, len(order) - 1):
                np.testing.assert_array_equal(tile(pic, boxes[k], h, h), vf.colourise(m[order[k]]))
    # the initial traces are the first photo's
    first = fig.layout.updatemenus[0].buttons[0].args[0]
    np.testing.assert_array_equal(decode(fig.data[1].source), decode(first["source"][1]))
    assert list(fig.data[1 + 3].text) == list(first["text"][4])


def test_feature_map_figure_layer_with_few_channels_shows_them_all(fmap_data):
    _, maps, fig = fmap_data
    assert len(fig.data[-1].text) == 8  # features.relu3 has 8 channels: all shown, strongest first


def test_feature_map_figure_rejects_mismatched_layers():
    photos = {"a": np.zeros((8, 8, 3), np.uint8), "b": np.zeros((8, 8, 3), np.uint8)}
    with pytest.raises(ValueError, match="same layers"):
        vf.feature_map_figure(photos, {"a": {"x": relu_maps(2, 4, 0)}, "b": {"y": relu_maps(2, 4, 0)}})
    with pytest.raises(ValueError, match="No photo called 'c'"):
        vf.feature_map_figure(photos, {"c": {"x": relu_maps(2, 4, 0)}})


def test_feature_map_figure_html_is_small_for_the_chapter():
    # the chapter's configuration: five photos, shapesnet's four ReLU layers (32×32 … 8×8)
    photos = {f"p{i}": RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(5)}
    maps = {n: {"r1": relu_maps(32, 32, i), "r2": relu_maps(48, 16, i), "r3": relu_maps(64, 8, i),
                "r4": relu_maps(64, 8, i + 1)} for i, n in enumerate(photos)}
    html = vf.feature_map_figure(photos, maps).to_html(include_plotlyjs=False, full_html=False)
    assert len(html) < 2_000_000


# ----------------------------------------------------------------------------- top_patches_figure

def _top_data(channels, r=9, k=9, seed=0):
    g = np.random.default_rng(seed)
    pats = {c: g.integers(0, 255, (k, 3, r, r), dtype=np.uint8) for c in channels}
    projs = {c: g.standard_normal((k, 3, r, r)) for c in channels}
    return pats, projs


def test_top_patches_figure_one_layer_slider_over_channels():
    pats, projs = _top_data([5, 2, 7])
    fig = vf.top_patches_figure(pats, projs, layer="features.relu2")
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["5", "2", "7"]
    assert fig.layout.sliders[0].currentvalue.prefix == "features.relu2, channel "
    assert list(steps[1].args[0]["visible"]) == [False, True, False] * 2
    # the figure holds the picture of channel 2 (reduced to 256 colours, as every photo-like picture it embeds)
    np.testing.assert_array_equal(decode(fig.data[1].source), decode(vf._uri(vf.top_picture(pats[2], projs[2]),
                                                                             lossy=True)))
    pic = vf.top_picture(pats[2], projs[2])
    gap = 1
    left_w = 3 * (9 + gap) - gap
    right = pic[:, left_w + 4 * gap:]
    np.testing.assert_array_equal(right[:9, :9], pats[2][0].transpose(1, 2, 0))  # the strongest patch, top left
    np.testing.assert_array_equal(pic[:9, :9], vf.projection_to_uint8(projs[2][0]))  # and its projection
    assert list(fig.data[3 + 1].text) == ["features.relu2, channel 2"]
    assert not fig.layout.updatemenus


def test_top_patches_figure_many_layers_menu_swaps_the_pictures():
    p1, q1 = _top_data([0, 1], r=7, seed=1)
    p2, q2 = _top_data([4, 3, 9], r=15, seed=2)
    views = {"conv1": {c: (p1[c], q1[c]) for c in p1}, "conv2": {c: (p2[c], q2[c]) for c in p2}}
    fig = vf.top_patches_figure(views, title="top 9")
    assert len(fig.data) == 2 * 3  # three ranks: pictures and captions
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["conv1", "conv2"]
    src = buttons[1].args[0]["source"]
    np.testing.assert_array_equal(decode(src[2]), decode(vf._uri(vf.top_picture(p2[9], q2[9]), lossy=True)))
    assert [list(t) for t in buttons[1].args[0]["text"][3:]] == [["conv2, channel 4"], ["conv2, channel 3"],
                                                                ["conv2, channel 9"]]
    # conv1 has two channels: its third rank repeats its last
    np.testing.assert_array_equal(decode(buttons[0].args[0]["source"][2]),
                                  decode(vf._uri(vf.top_picture(p1[1], q1[1]), lossy=True)))


def test_top_patches_figure_checks_shapes():
    pats, projs = _top_data([0])
    with pytest.raises(ValueError, match="same channels"):
        vf.top_patches_figure(pats, {1: projs[0]}, layer="x")
    with pytest.raises(ValueError, match="shape"):
        vf.top_patches_figure(pats, {0: projs[0][:, :, :5, :5]}, layer="x")


# ----------------------------------------------------------------------------- occlusion_figure

def _occ(patch, stride=4, side=32, target=1, seed=0):
    g = np.random.default_rng(seed)
    pos = np.arange(0, side - patch + 1, stride)
    return dict(prob=g.random((len(pos), len(pos))), top_class=g.integers(0, 3, (len(pos), len(pos))),
                target=target, base_prob=0.9, patch=patch, stride=stride, rows=pos, cols=pos)


def test_occlusion_figure_maps_are_the_data_in_pixel_coordinates():
    photo = RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    maps = {8: _occ(8, seed=1), 16: _occ(16, seed=2)}
    names = ["disc", "square", "triangle"]
    fig = vf.occlusion_figure(photo, maps, names, title="occlusion")
    assert len(fig.data) == 1 + 2 * 2
    np.testing.assert_array_equal(decode(fig.data[0].source), photo)
    for i, p in enumerate((8, 16)):
        m = maps[p]
        prob, cls = fig.data[1 + 2 * i], fig.data[2 + 2 * i]
        np.testing.assert_allclose(np.asarray(prob.z, dtype=float), m["prob"])
        np.testing.assert_allclose(np.asarray(prob.x, dtype=float), m["cols"] + p / 2)
        assert prob.zmin == 0 and prob.zmax == 1
        assert np.asarray(cls.customdata).tolist() == [[names[c] for c in row] for row in m["top_class"]]
        present = sorted(set(m["top_class"].ravel().tolist()))
        assert list(cls.colorbar.ticktext) == [names[c] for c in present]
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["8 px", "16 px"]
    assert list(steps[1].args[0]["visible"]) == [True, False, False, True, True]
    rect = steps[1].args[1]["shapes"][0]
    r, c = np.unravel_index(np.argmin(maps[16]["prob"]), maps[16]["prob"].shape)
    assert (rect["x0"], rect["y0"], rect["x1"] - rect["x0"]) == (maps[16]["cols"][c], maps[16]["rows"][r], 16)
    note = steps[1].args[1]["annotations"][-1]["text"]
    assert "p(square) = 0.90 without it" in note and f"{maps[16]['prob'][r, c]:.2f}" in note


def test_occlusion_figure_takes_objects_with_the_fields():
    class Map:
        def __init__(self, d):
            self.__dict__.update({k: torch.as_tensor(v) if k in ("prob", "top_class") else v for k, v in d.items()})

    fig = vf.occlusion_figure(np.zeros((32, 32, 3), np.uint8), {8: Map(_occ(8))}, ["a", "b", "c"])
    np.testing.assert_allclose(np.asarray(fig.data[1].z, dtype=float), _occ(8)["prob"])


# ----------------------------------------------------------------------------- attribution_figure

def test_attribution_figure_panels_are_overlays_of_each_method():
    photos = {n: RNG.integers(0, 255, (16, 16, 3), dtype=np.uint8) for n in ("a", "b")}
    maps = {n: {m: RNG.random((16, 16)) for m in ("saliency", "grad_cam", "integrated_gradients")} for n in photos}
    labels = {"saliency": "Saliency", "grad_cam": "Grad-CAM"}
    fig = vf.attribution_figure(photos, maps, labels, captions={"b": "class disc"}, columns=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["photo", "Saliency", "Grad-CAM", "integrated_gradients"]
    assert len(fig.data) == 4
    np.testing.assert_array_equal(decode(fig.data[0].source), photos["a"])
    np.testing.assert_array_equal(decode(fig.data[2].source), vf.overlay(photos["a"], maps["a"]["grad_cam"]))
    b = fig.layout.updatemenus[0].buttons[1]
    assert b.label == "b" and "class disc" in b.args[1]["title.text"]
    np.testing.assert_array_equal(decode(b.args[0]["source"][3]),
                                  vf.overlay(photos["b"], maps["b"]["integrated_gradients"]))


# ----------------------------------------------------------------------------- sanity_figure

def test_sanity_figure_one_curve_per_method_from_the_trained_model():
    checks = {"saliency": [("fc", 0.4), ("conv4", 0.1)], "guided_backprop": [("fc", 0.95), ("conv4", 0.9)]}
    fig = vf.sanity_figure(checks, {"guided_backprop": "Guided backprop"}, title="sanity")
    assert [t.name for t in fig.data] == ["saliency", "Guided backprop"]
    assert list(fig.data[0].x) == ["trained", "fc", "conv4"] and list(fig.data[0].y) == [1.0, 0.4, 0.1]
    assert list(fig.data[1].y) == [1.0, 0.95, 0.9]


def test_sanity_figure_with_maps_has_a_slider_over_stages():
    photo = RNG.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    checks = {"saliency": [("fc", 0.4), ("conv4", 0.1)]}
    stages = [("trained", RNG.random((16, 16))), ("fc", RNG.random((16, 16))), ("conv4", RNG.random((16, 16)))]
    fig = vf.sanity_figure(checks, photo=photo, maps={"saliency": stages})
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["trained", "fc", "conv4"]
    assert list(steps[2].args[0]["visible"]) == [True, False, False, True]
    np.testing.assert_array_equal(decode(fig.data[1 + 2].source), vf.overlay(photo, stages[2][1]))


# ----------------------------------------------------------------------------- small figures

def test_example_grid_and_projection_figures():
    imgs = RNG.integers(0, 255, (5, 8, 8, 3), dtype=np.uint8)
    fig = vf.example_grid_figure(imgs, ["disc", "ring", "star", "cross", "square"], columns=3)
    pic = decode(fig.data[0].source)
    _, boxes = vf.mosaic(imgs, 3, gap=1, label_rows=3)
    np.testing.assert_array_equal(tile(pic, boxes[4], 8, 8), imgs[4])
    assert list(fig.data[1].text) == ["disc", "ring", "star", "cross", "square"]
    with pytest.raises(ValueError, match="5 images but 2 labels"):
        vf.example_grid_figure(imgs, ["a", "b"])

    photo = imgs[0]
    proj = {"conv1, channel 3": RNG.standard_normal((3, 8, 8)), "conv2, channel 1": RNG.standard_normal((3, 8, 8))}
    fig = vf.projection_figure(photo, proj)
    assert [a.text for a in fig.layout.annotations][:3] == ["photo", "conv1, channel 3", "conv2, channel 1"]
    np.testing.assert_array_equal(decode(fig.data[2].source), vf.projection_to_uint8(proj["conv2, channel 1"]))


def test_attribution_figure_breaks_long_titles_before_the_citation():
    photos = {"a": RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)}
    fig = vf.attribution_figure(photos, {"a": {"saliency": RNG.random((8, 8))}},
                                {"saliency": "Saliency (Simonyan et al. 2014)"})
    assert fig.layout.annotations[1].text.startswith("Saliency<br>") and "(Simonyan et al. 2014)" in \
        fig.layout.annotations[1].text


def test_sanity_figure_takes_sanity_checks_maps():
    photo = RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    maps = [RNG.random((8, 8)) for _ in range(2)]
    checks = {"grad_cam": [("fc", 0.3, maps[0]), ("conv1", -0.1, maps[1])]}  # sanity_check(with_maps=True)
    fig = vf.sanity_figure(checks, photo=photo)
    assert list(fig.data[0].y) == [1.0, 0.3, -0.1]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["fc", "conv1"]
    np.testing.assert_array_equal(decode(fig.data[2].source), vf.overlay(photo, maps[1]))
    assert not vf.sanity_figure(checks).layout.sliders  # no photo: the curves only


# ----------------------------------------------------------------------------- regions_figure

def test_regions_figure_one_bar_per_layer_and_a_slider_over_patches():
    regions = {16: [("conv1", (11, 11), (112, 112)), ("layer4.1.conv2", (7, 7), (7, 7))],
               32: [("conv1", (19, 19), (112, 112)), ("layer4.1.conv2", (7, 7), (7, 7))]}
    fig = vf.regions_figure(regions, title="reach")
    assert len(fig.data) == 2 and fig.data[0].visible and not fig.data[1].visible
    assert list(fig.data[1].x) == ["conv1", "layer4.1.conv2"]
    assert fig.data[1].y[0] == pytest.approx(100 * 19 * 19 / 112 ** 2) and fig.data[1].y[1] == 100
    assert list(fig.data[0].customdata) == ["11×11 of 112×112", "7×7 of 7×7"]
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["16", "32"] and list(steps[1].args[0]["visible"]) == [False, True]
    with pytest.raises(ValueError, match="at least one patch size"):
        vf.regions_figure({})
