"""cnnviz.probe: layer lookup, scoped hooks, eval mode and input preparation."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz import probe
from model_helpers import assert_no_hooks


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 2, 3), nn.Dropout(0.5)))


def test_layer_names_and_conv_layers_in_definition_order():
    net = _net()
    assert probe.layer_names(net) == ["0", "1", "2", "3", "3.0", "3.1"]
    assert probe.conv_layers(net) == ["0", "3.0"]
    assert probe.get_layer(net, "3.0") is net[3][0]


def test_unknown_layer_lists_the_valid_names_closest_first():
    with pytest.raises(probe.LayerNotFound) as err:
        probe.get_layer(_net(), "3.00")
    text = str(err.value)
    assert "'3.00'" in text and "Did you mean '3.0'" in text and "0, 1, 2, 3, 3.0, 3.1" in text
    with pytest.raises(ValueError):  # a LayerNotFound is a ValueError: widgets show it as a message
        probe.get_layer(_net(), "")


@pytest.mark.parametrize("bad, words", [(4, "numbered 0 to 3"), (-1, "numbered 0 to 3"), (1.5, "whole number"),
                                        (True, "whole number")])
def test_channel_out_of_range_says_the_range(bad, words):
    with pytest.raises(probe.ChannelOutOfRange, match=words):
        probe.check_channel(bad, 4, "0")
    assert probe.check_channel(np.int64(3), 4, "0") == 3
    assert probe.check_channel(torch.tensor(2), 4, "0") == 2


def test_capture_records_outputs_and_removes_hooks_even_after_an_error():
    net = _net().eval()
    x = torch.randn(2, 3, 8, 8)
    with probe.capture(net, ["0", "3.0"]) as out:
        y = net(x)
    torch.testing.assert_close(out["0"], net[0](x))
    torch.testing.assert_close(out["3.0"], y)  # dropout is the identity in eval mode
    assert not out["0"].requires_grad
    assert_no_hooks(net)
    with pytest.raises(RuntimeError, match="boom"):
        with probe.capture(net, "0") as out:
            net(x)
            raise RuntimeError("boom")
    assert_no_hooks(net)
    with pytest.raises(probe.LayerNotFound):  # a bad name in the list: no hook is left on the good ones
        with probe.capture(net, ["0", "nope"]):
            pass
    assert_no_hooks(net)


def test_capture_without_detach_keeps_the_graph():
    net = _net().eval()
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    with probe.capture(net, "2", detach=False) as out:
        net(x)
    out["2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eval_mode_restores_each_submodules_own_flag():
    net = _net().train()
    net[3][1].eval()  # a mixed state the caller chose
    with probe.eval_mode(net) as m:
        assert m is net and not any(mod.training for mod in net.modules())
    assert net.training and net[1].training and not net[3][1].training
    with pytest.raises(KeyError):
        with probe.eval_mode(net):
            raise KeyError
    assert net.training and not net[3][1].training


def test_preprocessing_from_attribute_registry_or_default():
    net = _net()
    assert probe.preprocessing(net) == probe.Preprocess(224, *probe.IMAGENET)
    net.default_input_size = (3, 32, 32)
    assert probe.preprocessing(net).size == 32
    net.cnnviz_preprocess = probe.Preprocess(20, (0.5,) * 3, (0.25,) * 3)
    assert probe.preprocessing(net).size == 20


def test_prepare_a_photo_crops_resizes_normalises_and_says_so():
    net = _net()
    net.cnnviz_preprocess = probe.Preprocess(50, (0.5,) * 3, (0.25,) * 3)
    photo = np.zeros((100, 200, 3), np.uint8)
    photo[:, 50:150] = 255  # the centre square is white, the sides black
    p = probe.prepare(photo, net)
    assert p.x.shape == (1, 3, 50, 50) and p.display.shape == (50, 50, 3)
    torch.testing.assert_close(p.x, torch.full((1, 3, 50, 50), 2.0))  # (1 - 0.5) / 0.25
    assert (p.display == 255).all()
    assert "centre-cropped from 100×200 to 100×100" in p.note and "resized to 50×50" in p.note
    # the display image is what to_display gives back
    np.testing.assert_array_equal(probe.to_display(p.x, net)[0], p.display)


def test_prepare_an_image_of_the_right_size_has_no_note():
    net = _net()
    net.cnnviz_preprocess = probe.Preprocess(8, (0.0,) * 3, (1.0,) * 3)
    img = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    p = probe.prepare(img, net)
    assert p.note == ""
    torch.testing.assert_close(p.x[0], torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    assert probe.prepare("chelsea", net).x.shape == (1, 3, 8, 8)  # embedded photos by name


def test_prepare_a_tensor_keeps_it_or_resizes_with_a_warning():
    net = _net()
    net.cnnviz_preprocess = probe.Preprocess(16, *probe.IMAGENET)
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = probe.prepare(x, net)
    assert torch.equal(p.x, x) and p.note == ""
    with pytest.warns(probe.InputResized, match="was 10×12 pixels; it was resized to 16×16"):
        p = probe.prepare(torch.randn(3, 10, 12), net)
    assert p.x.shape == (1, 3, 16, 16) and "resized" in p.note
    with pytest.raises(ValueError, match=r"\(3, H, W\) or \(1, 3, H, W\)"):
        probe.prepare(torch.randn(2, 3, 16, 16), net)


def test_prepare_rejects_what_is_not_an_image_in_a_sentence():
    from cnnviz.data import ImageError
    with pytest.raises(ImageError, match="not an image"):
        probe.prepare(b"not an image", _net())


def test_model_device():
    assert probe.model_device(_net()) == torch.device("cpu")
    assert probe.model_device(nn.ReLU()) == torch.device("cpu")
    assert probe.model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


def test_prepare_batch_equals_prepare_one_by_one():
    net = _net()
    net.cnnviz_preprocess = probe.Preprocess(8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    imgs = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    batch = probe.prepare_batch(imgs, net)
    one = torch.cat([probe.prepare(i.permute(1, 2, 0).numpy(), net).x for i in imgs])
    torch.testing.assert_close(batch, one)
    torch.testing.assert_close(probe.prepare_batch(imgs.permute(0, 2, 3, 1), net), batch)  # channels last too
    with pytest.raises(ValueError, match="8×8"):
        probe.prepare_batch(torch.zeros(2, 3, 9, 9, dtype=torch.uint8), net)
    with pytest.raises(ValueError, match="uint8"):
        probe.prepare_batch(torch.zeros(2, 3, 8, 8), net)
