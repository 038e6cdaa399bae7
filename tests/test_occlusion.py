"""Occlusion sensitivity against hand-computed probabilities, its oracles (a patch that changes nothing
changes nothing), its bookkeeping, and the trained offline model looking at the shape, not the background."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.occlusion import OcclusionMap, occlusion, occlusion_steps, patch_positions
from cnnviz.probe import ChannelOutOfRange, Preprocess
from model_helpers import assert_no_hooks

S = 16


class CornerReader(nn.Module):
    """Two logits: the sum of the top-left 5×5 pixels (all channels), and 0. Its probabilities are known by hand."""
    cnnviz_preprocess = Preprocess(S, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.1))
        self.drop = nn.Dropout(0.5)  # in training mode it would make the test fail: occlusion must use eval mode

    def forward(self, x):  # (B, 3, S, S) -> (B, 2)
        s = self.drop(x)[:, :, :5, :5].sum((1, 2, 3)) * self.scale
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _image(seed=0):
    return torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _expected(x, patch, stride, fill):
    """The probability of class 0 at every patch position, computed by hand."""
    pos = patch_positions(S, patch, stride).tolist()
    out = torch.empty(len(pos), len(pos))
    for i, r in enumerate(pos):
        for j, c in enumerate(pos):
            y = x.clone()
            y[:, :, r:r + patch, c:c + patch] = fill
            s = 0.1 * y[0, :, :5, :5].sum()
            out[i, j] = torch.sigmoid(s)  # softmax of (s, 0)
    return out


@pytest.mark.parametrize("patch, stride, fill", [(4, 2, None), (3, 3, 0.7), (5, 4, -1.0), (16, 1, None)])
def test_probabilities_by_hand(patch, stride, fill):
    x = _image()
    model = CornerReader()
    m = occlusion(model, x, target=0, patch=patch, stride=stride, fill=fill, batch_size=5)
    expected = _expected(x, patch, stride, 0.0 if fill is None else fill)
    assert torch.allclose(m.prob, expected, atol=1e-6)
    assert torch.allclose(m.top_prob, torch.maximum(expected, 1 - expected), atol=1e-6)
    assert torch.equal(m.top_class, (expected < 0.5).long())
    assert m.base_prob == pytest.approx(float(torch.sigmoid(0.1 * x[0, :, :5, :5].sum())), abs=1e-6)
    assert m.complete and m.done.all()


def test_patches_away_from_what_the_model_reads_change_nothing():
    x = _image(1)
    m = occlusion(CornerReader(), x, target=0, patch=4, stride=2)
    rows, cols = m.rows[:, None], m.cols[None, :]
    far = (rows >= 5) | (cols >= 5)                                              # the patch misses the 5×5 corner
    assert (m.prob[far] == m.base_prob).all()
    assert (m.prob[~far] != m.base_prob).all()


def test_filling_with_the_image_itself_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 5))
    model.cnnviz_preprocess = Preprocess(S, (0.5,) * 3, (0.25,) * 3)
    x = _image(2)
    m = occlusion(model, x, patch=6, stride=3, fill=x.clone())
    assert torch.allclose(m.prob, torch.full_like(m.prob, m.base_prob), atol=1e-6)
    assert (m.top_class == m.base_class).all()
    assert m.target == m.base_class  # target None: the unoccluded image's top class
    assert torch.allclose(m.upsampled(), torch.full((S, S), m.base_prob), atol=1e-6)


@pytest.mark.parametrize("size, patch, stride, expected", [
    (224, 32, 8, list(range(0, 193, 8))),   # 25 positions, the last flush with the border
    (10, 4, 4, [0, 4, 6]),                  # 8 would overhang: one more position, flush with the border
    (10, 4, 3, [0, 3, 6]),                  # 6 + 4 = 10: already flush
    (10, 10, 3, [0]),
    (7, 1, 7, [0, 6]),
])
def test_patch_positions(size, patch, stride, expected):
    assert patch_positions(size, patch, stride).tolist() == expected


def test_map_layout_and_upsampling():
    x = _image(3)
    m = occlusion(CornerReader(), x, target=0, patch=6, stride=4)               # positions 0, 4, 8, 10
    assert m.rows.tolist() == m.cols.tolist() == [0, 4, 8, 10]
    assert m.prob.shape == m.top_prob.shape == m.top_class.shape == m.done.shape == (4, 4)
    assert (m.patch, m.stride, m.size, m.target) == (6, 4, S, 0)
    up = m.upsampled()
    assert up.shape == (S, S)
    assert up[0, 0] == pytest.approx(float(m.prob[0, 0]))                     # covered by one patch only
    assert up[S - 1, S - 1] == pytest.approx(float(m.prob[-1, -1]))
    assert up[5, 0] == pytest.approx(float(m.prob[:2, 0].mean()))              # rows 0-5 and 4-9 cover row 5
    assert m.upsampled(32).shape == (32, 32)


def test_batch_size_does_not_change_the_map():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 3))
    model.cnnviz_preprocess = Preprocess(S, (0.5,) * 3, (0.25,) * 3)
    x = _image(4)
    maps = [occlusion(model, x, patch=5, stride=2, batch_size=b) for b in (1, 7, 1000)]
    for m in maps[1:]:
        assert torch.allclose(m.prob, maps[0].prob, atol=1e-6)
        assert torch.equal(m.top_class, maps[0].top_class)


def test_partial_maps_fill_in_batch_by_batch():
    x = _image(5)
    seen = []
    final = occlusion(CornerReader(), x, patch=4, stride=4, batch_size=6,
                      on_batch=lambda m: seen.append(m))                        # 4×4 = 16 positions: 6, 6, 4
    assert [int(m.done.sum()) for m in seen] == [6, 12, 16]
    first = seen[0]
    assert first.done.flatten().tolist() == [True] * 6 + [False] * 10          # row by row
    assert torch.isnan(first.prob[~first.done]).all() and (first.top_class[~first.done] == -1).all()
    assert torch.equal(first.prob[first.done], final.prob[first.done])
    assert seen[-1].complete and torch.equal(seen[-1].prob, final.prob)
    assert len(list(occlusion_steps(CornerReader(), x, patch=4, stride=4, batch_size=6))) == 3


def test_model_left_as_it_was_and_no_hooks():
    model = CornerReader().train()
    model.drop.eval()  # a mixed state, restored exactly
    occlusion(model, _image(6), target=0, patch=4, stride=4)
    assert model.training and not model.drop.training
    assert_no_hooks(model)
    assert model.scale.grad is None


def test_an_error_in_on_batch_still_restores_the_model():
    model = CornerReader().train()

    def fail(_):
        raise RuntimeError("the widget broke")

    with pytest.raises(RuntimeError, match="widget"):
        occlusion(model, _image(7), patch=4, stride=4, batch_size=2, on_batch=fail)
    assert model.training and model.drop.training
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target=2), ChannelOutOfRange, "numbered 0 to 1"),
    (dict(target=-1), ChannelOutOfRange, "out of range"),
    (dict(patch=17), ValueError, "larger than the image"),
    (dict(patch=0), ValueError, "patch"),
    (dict(stride=0), ValueError, "stride"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(fill=torch.zeros(3, 8, 8)), ValueError, "shaped like"),
    (dict(fill="grey"), ValueError, "fill"),
])
def test_bad_arguments_say_what_to_do(kwargs, error, match):
    with pytest.raises(error, match=match):
        occlusion(CornerReader(), _image(), **{"patch": 4, "stride": 4, **kwargs})


def test_a_photo_works_as_input():
    m = occlusion(CornerReader(), "astronaut", target=1, patch=8, stride=8)
    assert isinstance(m, OcclusionMap) and m.prob.shape == (2, 2) and m.target == 1


# ----------------------------------------------------------------------------- the trained offline model


@pytest.fixture(scope="module")
def shapesnet():
    from cnnviz.vismodels import trained_shapesnet
    return trained_shapesnet(progress=False)  # trained once (about a minute), then from the cache


def test_the_offline_model_looks_at_the_shape(shapesnet):
    """Zeiler & Fergus's question, answered on the offline model: hiding the object costs probability,
    hiding a corner of the background much less."""
    from cnnviz.vismodels import example_images

    images, labels, geometry = example_images(24, return_geometry=True)
    patch = 20
    drops_centre, drops_corner = [], []
    for img, label, (cy, cx, _, _) in zip(images, labels, geometry):
        m = occlusion(shapesnet, img.permute(1, 2, 0).numpy(), target=int(label), patch=patch, stride=4)
        top_left = torch.stack([m.rows[:, None].expand(-1, len(m.cols)), m.cols[None, :].expand(len(m.rows), -1)], -1)
        centres = top_left.float() + patch / 2                                     # (Hp, Wp, 2) patch centres
        dist = (centres - torch.tensor([float(cy), float(cx)])).norm(dim=-1)
        on_shape = np.unravel_index(int(dist.argmin()), dist.shape)
        far = np.unravel_index(int(dist.argmax()), dist.shape)                    # the farthest corner
        drops_centre.append(m.base_prob - float(m.prob[on_shape]))
        drops_corner.append(m.base_prob - float(m.prob[far]))
    centre, corner = np.array(drops_centre), np.array(drops_corner)
    assert (centre > corner).mean() >= 0.8
    assert centre.mean() > corner.mean() + 0.2


# ----------------------------------------------------------------------------- the path chosen per device

def test_faster_times_each_path_after_a_warm_up_and_synchronised():
    from cnnviz.occlusion import _faster
    log, now = [], [0.0]

    def path(name, cost):
        def run():
            log.append(name)
            now[0] += cost
            return name.upper()
        return run

    best, result, seconds = _faster({"incremental": path("incremental", 3.0), "full": path("full", 1.0)},
                                    sync=lambda: log.append("sync"), clock=lambda: now[0])
    assert (best, result) == ("full", "FULL")
    assert seconds == {"incremental": 3.0, "full": 1.0}
    assert log == ["incremental", "sync", "incremental", "sync", "full", "sync", "full", "sync"]


@pytest.mark.parametrize("winner", ["incremental", "full"])
def test_a_measured_device_keeps_the_faster_path_for_later_maps(winner, monkeypatch):
    """On a GPU the first batch is run both ways and the faster kept; pretend the CPU is such a device."""
    from cnnviz import models, occlusion as occ
    monkeypatch.setattr(occ, "MEASURED_DEVICES", ("cpu",))
    monkeypatch.setattr(occ, "_CHOSEN", __import__("weakref").WeakKeyDictionary())
    races = []

    def fake_faster(paths, sync, clock=None):
        races.append(sorted(paths))
        return winner, paths[winner](), {}

    monkeypatch.setattr(occ, "_faster", fake_faster)
    torch.manual_seed(0)
    model = models.get("shapesnet")
    x = torch.randn(1, 3, 64, 64)
    expected = occlusion(model, x, patch=32, stride=8, incremental=False)  # 32: the CPU rule would say "full"
    first = occlusion(model, x, patch=32, stride=8, batch_size=10)
    again = occlusion(model, x, patch=32, stride=8, batch_size=10)
    assert races == [["full", "incremental"]]  # raced once, on the first batch of the first map
    assert first.method == again.method == winner
    for got in (first, again):
        assert torch.allclose(got.prob, expected.prob, atol=1e-5)
    other = occlusion(model, x, patch=16, stride=8, batch_size=10)  # another patch: measured again
    assert len(races) == 2 and other.complete
