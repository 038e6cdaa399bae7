"""AugmentationExplorer driven from Python: the pictures against cnnviz.augmentation's functions, the sliders
per transformation, the random draws (their number, Redraw, reproducibility), the pipeline and its code, the
label meter (a 6 upside down reads as a 9), and bad input as sentences that keep the last output."""
import datetime
import io
import statistics

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.augmentation import AUGMENTATIONS, AugmentationError, augment, checkerboard, code

widgets_mod = pytest.importorskip("cnnviz.widgets")
AugmentationExplorer = widgets_mod.AugmentationExplorer
from cnnviz.widgets.augmentation_explorer import _digit_examples, _shape_examples, mosaic  # noqa: E402


def explorer(image="astronaut", key="rotate", **kw):
    return AugmentationExplorer(image, key, threaded=False, **kw)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def upload_value(data: bytes):
    """FileUpload.value as the installed ipywidgets holds it (8: a tuple of dicts; 7: a dict);
    tests/test_ipywidgets7.py runs this file under ipywidgets 7 too."""
    if int(ipywidgets.__version__.split(".")[0]) >= 8:
        return ({"name": "x.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                 "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    return {"x.png": {"metadata": {"name": "x.png", "type": "image/png", "size": len(data)}, "content": data}}


def shown(w):
    """Everything on screen, to check that a bad input changes none of it."""
    return (w.result, w.draws_tensor, w.code, w.result_view.value, w.mosaic_view.value, w.meter.value,
            w.code_view.value)


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x is y or (isinstance(x, torch.Tensor) and torch.equal(x, y)) or x == y


# ----------------------------------------------------------------------------- the deterministic view


def test_the_result_is_augment_at_the_sliders():
    w = explorer()
    assert w.image.shape == (3, 224, 224) and w.message.value == ""     # astronaut (512²), shrunk to 224
    w.sliders["angle"].value = 30
    assert torch.equal(w.result, augment(w.image, "rotate", angle=30))
    w.set(key="crop", scale=0.3, x=0.5)
    assert torch.equal(w.result, augment(w.image, "crop", scale=0.3, x=0.5, y=0))
    assert w.settings["params"] == {"scale": 0.3, "x": 0.5, "y": 0.0} and w.settings["key"] == "crop"
    assert decode(w.result_view.value).shape == (224, 224, 3)
    assert "random crop and rescale (scale 0.3, x 0.5, y 0)" in w.result_caption.value


@pytest.mark.parametrize("key", list(AUGMENTATIONS))
def test_at_the_identity_the_result_is_the_input(key):
    w = explorer(key=key)
    assert w.params == AUGMENTATIONS[key].identity()
    assert torch.equal(w.result, w.image)
    assert "at its identity now" in w.pipeline_view.value
    assert (w.board is not None) == AUGMENTATIONS[key].geometric


def test_changing_the_transformation_rebuilds_the_sliders():
    w = explorer()
    assert list(w.sliders) == ["angle"]
    w.sliders["angle"].value = 40
    w.transform.value = "crop"
    assert list(w.sliders) == ["scale", "x", "y"] and len(w.param_box.children) == 3
    for p in AUGMENTATIONS["crop"].params:
        s = w.sliders[p.name]
        assert (s.min, s.max, s.value, s.description) == (p.low, p.high, p.identity, p.name)
    assert p.label in w.param_box.children[-1].children[1].value          # what the parameter means
    w.transform.value = "rotate"                                          # back at the identity
    assert w.sliders["angle"].value == 0 and (w.sliders["angle"].min, w.sliders["angle"].max) == (-180, 180)
    w.transform.value = "hflip"
    assert (w.sliders["p"].min, w.sliders["p"].max, w.sliders["p"].step) == (0, 1, 1)


def test_a_geometric_transformation_shows_a_checkerboard_and_a_colour_one_does_not():
    w = explorer()
    w.set(angle=30)
    assert torch.equal(w.board, augment(checkerboard(), "rotate", angle=30))
    assert w.board_box.layout.display is None
    assert decode(w.board_view.value).shape == (128, 128, 3)
    w.set(key="brightness", factor=1.5)
    assert w.board is None and w.board_box.layout.display == "none"
    w.set(key="lens", k=-0.3)
    assert torch.equal(w.board, augment(checkerboard(), "lens", k=-0.3)) and w.board_box.layout.display is None


# ----------------------------------------------------------------------------- the random draws


def test_the_number_of_draws_follows_the_slider():
    w = explorer()
    w.set(angle=20)
    assert w.draws_tensor.shape == (8, 3, 224, 224)
    img = decode(w.mosaic_view.value)                                    # 4 columns, 2 rows, framed tiles
    assert img.shape[1] > 4 * 224 and 2 * 224 < img.shape[0] < 3 * 224
    w.draws.value = 3
    assert w.draws_tensor.shape[0] == 3 and decode(w.mosaic_view.value).shape[1] < 4 * 224
    w.draws.value = 16
    assert w.draws_tensor.shape[0] == 16 and decode(w.mosaic_view.value).shape[0] > 4 * 224
    assert w.mosaic_view.format == "jpeg"                                # photos: JPEG, fast to encode


def test_redraw_changes_the_draws_and_the_seed_makes_them_reproducible():
    w = explorer()
    w.set(angle=45)
    first = w.draws_tensor
    assert not torch.equal(first[0], first[1])                           # each draw its own angle
    w.redraw_button.click()
    assert not torch.equal(w.draws_tensor, first) and w.settings["redraws"] == 1
    again = explorer()
    again.set(angle=45)
    assert torch.equal(again.draws_tensor, first)                        # same seed, same presses
    again.redraw()
    assert torch.equal(again.draws_tensor, w.draws_tensor)
    other = explorer(seed=1)
    other.set(angle=45)
    assert not torch.equal(other.draws_tensor, first)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    w.redraw()
    assert torch.equal(torch.rand(3), expected)                          # the global generator is untouched


def test_the_pipeline_and_its_code():
    w = explorer()
    assert "v2.Identity()" in w.code and w.pipeline == []
    w.add_button.click()                                                 # at the identity: nothing to add
    assert "identity" in w.message.value and w.pipeline == []
    w.set(angle=20)
    assert code("rotate", angle=20) in w.code and code("rotate", angle=20) in w.code_view.value
    w.add_button.click()
    assert w.pipeline == [("rotate", {"angle": 20.0})] and w.sliders["angle"].value == 0
    assert w.message.value == ""
    w.set(key="brightness", factor=1.5)
    for step in (code("rotate", angle=20), code("brightness", factor=1.5)):
        assert step in w.code
    assert w.code.index("RandomRotation") < w.code.index("ColorJitter")
    assert "rotation (angle 20)" in w.pipeline_view.value
    w.add_button.click()
    w.set(key="hflip", p=1)
    assert [k for k, _ in w.pipeline] == ["rotate", "brightness"] and "RandomHorizontalFlip" in w.code
    assert "&lt;" not in w.code and "<" not in w.code_view.value.replace("<pre", "").replace("</pre>", "")
    w.clear_button.click()
    assert w.pipeline == [] and "RandomRotation" not in w.code and "RandomHorizontalFlip" in w.code
    w.set(pipeline=[("translate", {"dx": 0.1}), ("contrast", {"factor": 0.5})])
    assert code("translate", dx=0.1) in w.code and code("contrast", factor=0.5) in w.code
    assert w.settings["pipeline"] == [("translate", {"dx": 0.1, "dy": 0.0}), ("contrast", {"factor": 0.5})]


def test_settings_round_trip():
    w = explorer("shapes", key="shear")
    w.set(example=3, angle=12, draws=5, pipeline=[("hflip", {"p": 1})])
    w.redraw()
    state, draws = w.settings, w.draws_tensor
    other = explorer()
    other.set(**state)
    assert other.settings == state and torch.equal(other.draws_tensor, draws)
    other.set(key="rotate", params={"angle": 90})
    assert other.params == {"angle": 90.0}


def test_the_draws_apply_the_pipeline_then_the_current_transformation():
    w = explorer("shapes", key="vflip")
    w.set(pipeline=[("hflip", {"p": 1})])                                # each draw: mirrored or not
    image = w.image
    options = [image, augment(image, "hflip", p=1)]
    assert all(any(torch.equal(d, o) for o in options) for d in w.draws_tensor)
    w.set(p=1)                                                           # then flipped upside down or not
    options += [augment(o, "vflip", p=1) for o in options]
    assert all(any(torch.equal(d, o) for o in options) for d in w.draws_tensor)


# ----------------------------------------------------------------------------- the label meter


def test_a_six_upside_down_reads_as_a_nine():
    w = explorer("digit")
    assert torch.equal(w.image, _digit_examples()[6]) and w.example.value == 6
    assert w.original_prediction[0] == "6" and w.result_prediction[0] == "6"
    assert "the label is kept" in w.result_meter.value
    w.set(angle=180)                                                     # deterministic: exactly upside down
    assert torch.equal(w.result, torch.flip(w.image, (-2, -1)))
    assert w.result_prediction[0] != "6"
    assert "the label changes" in w.result_meter.value and f"<b style=\"color:#b00020\">" \
        f"{w.result_prediction[0]}</b>" in w.result_meter.value
    kept = sum(name == "6" for name, _ in w.predictions)
    assert len(w.predictions) == 8 and kept < 8                          # random rotations up to ±180°
    assert f"{kept} of 8 draws keep the label" in w.meter.value
    assert w.meter.value.count("#2e7d32") == kept and w.meter.value.count("#b00020") == 8 - kept
    assert all(0 <= p <= 1 for _, p in w.predictions)
    w.set(angle=5)                                                       # small rotations keep it
    assert "the label is kept" in w.result_meter.value


def test_shapes_use_shapesnet_and_the_example_slider():
    w = explorer("shapes", key="hue")
    assert w.example.layout.display is None and w.example.max == 11
    w.set(shift=0.3)
    names = {"disc", "square", "triangle", "ring", "cross", "star"}
    assert w.original_prediction[0] in names and {n for n, _ in w.predictions} <= names
    assert "draws keep the label" in w.meter.value and w.mosaic_view.format == "png"
    w.example.value = 2
    assert torch.equal(w.image, _shape_examples()[0][2]) and w.settings["example"] == 2
    w.photo.value = "digit"                                              # the slider now picks the digit
    assert w.example.description == "digit" and w.example.max == 9 and w.example.value == 6
    w.photo.value = "coffee"
    assert w.example.layout.display == "none" and w.settings["example"] is None


def test_a_photo_has_no_classifier_and_says_so():
    w = explorer("coffee")
    w.set(angle=10)
    assert w.predictions is None and w.original_prediction is None and w.result_meter.value == ""
    assert "No classifier for photos offline" in w.meter.value and "shapes" in w.meter.value


@pytest.mark.parametrize("image", ["shapes", "digit"])
def test_every_transformation_draws_on_small_images(image):
    w = explorer(image)
    for key, aug in AUGMENTATIONS.items():
        params = {p.name: (p.high if p.name == "p" else p.low + 0.75 * (p.high - p.low)) for p in aug.params}
        w.set(key=key, **params)
        assert w.message.value == "", (key, w.message.value)
        assert w.draws_tensor.shape[0] == 8 and w.draws_tensor.shape[-2:] == w.image.shape[-2:]
        assert len(w.predictions) == 8 and torch.equal(w.result, augment(w.image, key, **w.params))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("settings, words", [
    (dict(key="twirl"), "Unknown transformation 'twirl'"), (dict(draws=0), "from 1 to 16"),
    (dict(draws=17), "from 1 to 16"), (dict(draws=2.5), "whole number"), (dict(angle=500), "outside its range"),
    (dict(angle=float("nan")), "must be a number"), (dict(factor=1.2), "has no parameter factor"),
    (dict(key="hflip", p=0.5), "A flip is done"), (dict(image="nowhere.png"), "neither an embedded photo"),
    (dict(image="shapes", example=12), "numbered 0 to 11"), (dict(pipeline=[("rotate",)]), "(key, params)"),
    (dict(pipeline=[("rotate", {"angle": 999})]), "outside its range"), (dict(redraws=-1), "whole number"),
    (dict(params=[1]), "parameters are a dict"), (dict(key=["rotate"]), "named by its key"),
    (dict(pipeline=5), "(key, params) pairs"), (dict(pipeline=[("rotate", 5)]), "parameters are a dict"),
])
def test_bad_settings_are_sentences_and_the_last_output_stays(settings, words):
    w = explorer()
    w.set(angle=30)
    before, state = shown(w), w.settings
    w.set(**settings)
    assert words in w.message.value and "Traceback" not in w.message.value
    same(shown(w), before)
    assert w.settings == state
    w.set(angle=10)                                                      # a good setting clears the message
    assert w.message.value == "" and torch.equal(w.result, augment(w.image, "rotate", angle=10))


def test_an_upload_that_is_not_an_image_is_a_sentence_and_the_last_output_stays():
    w = explorer()
    w.set(angle=30)
    before, photo = shown(w), w.photo.value
    w.upload.set_trait("value", upload_value(b"this is not a picture"))
    assert "The uploaded file is not an image" in w.message.value and "Traceback" not in w.message.value
    same(shown(w), before)
    assert w.photo.value == photo


def test_uploads_are_converted_with_a_note():
    w = explorer()
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0], rgba[10:30, 10:50, 3] = 255, 255                      # a red box on transparency
    w.upload.set_trait("value", upload_value(png(rgba)))
    assert w.message.value == "" and "Transparency composited on white" in w.note.value
    assert dict((v, k) for k, v in w.photo.options)[w.photo.value] == "(your image)"
    assert w.image.shape == (3, 40, 60) and torch.equal(w.image[:, 0, 0], torch.ones(3))
    grey16 = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")
    w.upload.set_trait("value", upload_value(buf.getvalue()))
    assert "Grey image shown as RGB" in w.note.value and w.image.shape == (3, 64, 64)
    big = np.random.default_rng(0).integers(0, 255, (300, 600, 3), dtype=np.uint8)
    w.set(image=big)                                                    # an array: shrunk to 224 wide
    assert w.image.shape == (3, 112, 224) and "Shrunk from 600×300 to 224×112" in w.note.value
    w.photo.value = "astronaut"
    assert w.note.value == "" and w.image.shape == (3, 224, 224)
    w.set(image=np.zeros((4, 4, 3), np.uint8))
    assert "at least 8 pixels" in w.message.value and w.image.shape == (3, 224, 224)


def test_bad_constructor_arguments_are_sentences():
    with pytest.raises(AugmentationError, match="Unknown transformation 'twirl'"):
        AugmentationExplorer(key="twirl", threaded=False)
    for draws in (0, 17, 3.0):
        with pytest.raises(AugmentationError, match="from 1 to 16"):
            AugmentationExplorer(draws=draws, threaded=False)
    with pytest.raises(ValueError, match="neither an embedded photo"):
        AugmentationExplorer("nowhere.png", threaded=False)
    with pytest.raises(AugmentationError, match="Unknown classifier"):
        AugmentationExplorer(classifier="alexnet", threaded=False)


# ----------------------------------------------------------------------------- pieces, threads, speed


def test_mosaic_frames_each_tile_in_its_colour():
    tiles = np.arange(5 * 4 * 6 * 3, dtype=np.uint8).reshape(5, 4, 6, 3)
    m = mosaic(tiles, 3, border=2, colours=[(0, 200, 0), None, (200, 0, 0), (0, 200, 0), (0, 200, 0)])
    assert m.shape == (2 * 8, 3 * 10, 3)
    np.testing.assert_array_equal(m[2:6, 12:18], tiles[1])
    np.testing.assert_array_equal(m[10:14, 2:8], tiles[3])
    assert (m[0, 0] == (0, 200, 0)).all() and (m[0, 10] == 255).all() and (m[7, 29] == (200, 0, 0)).all()
    assert (m[8:, 20:] == 255).all()                                     # no sixth tile


def test_scale_enlarges_the_text_and_pictures():
    w = AugmentationExplorer("shapes", threaded=False, scale=1.4)
    style = w.children[0].children[0].value
    assert "font-size: 21px" in style and w.mosaic_view.layout.width == f"{4 * 238}px"
    assert w.original_view.layout.width == "336px" and "cnnviz-au-pixels" in w.mosaic_view._dom_classes
    assert decode(w.original_view.value).shape[0] >= 300                 # 64 px enlarged 5×, sharp


def test_a_threaded_explorer_shows_the_newest_request():
    w = AugmentationExplorer("digit", draws=4)
    for angle in (10, 40, 90, 180):
        w.sliders["angle"].value = angle
    assert w.wait(60)
    assert w.message.value == "" and torch.equal(w.result, augment(w.image, "rotate", angle=180))
    assert w.result_prediction[0] != "6"


def test_update_time_for_eight_draws_of_a_224_photo(capsys):
    """Not an assertion on time (a shared CI machine): the measurement, printed."""
    def median_ms(w):
        w.set(angle=30)
        times = []
        for _ in range(7):
            w.redraw()
            times.append(w.timings["total_ms"])
        return statistics.median(times), w.timings

    plain, _ = median_ms(explorer("astronaut"))
    meter, parts = median_ms(explorer("astronaut", classifier="shapesnet"))     # the meter on a 224² photo
    shapes, _ = median_ms(explorer("shapes"))
    with capsys.disabled():
        print(f"\nAugmentationExplorer update, 8 draws of a 224×224 photo (rotate): {plain:.0f} ms without the "
              f"label meter, {meter:.0f} ms with it (ShapesNet; last: "
              + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()) + f"); 64×64 shapes with the meter: "
              f"{shapes:.0f} ms (medians of 7, torch threads: {torch.get_num_threads()})")
    assert plain > 0 and meter > 0
