"""cnnviz.augmentation and cnnviz.augmentation_study: every transformation with explicit parameters, AlexNet's
PCA colour augmentation, lens distortion, label preservation, the training comparison and the throughput.

Oracles: ``numpy.cov`` and ``numpy.linalg.eigh`` (the PCA basis), the offset ``Σ α_i λ_i p_i`` written out here,
``numpy.interp`` along the centre row (lens distortion's documented mapping), torchvision's own functional
pad/crop/flip (the batched crop and flip of ``cnnviz.train``), exact identities (each transformation at its
identity setting, a flip twice, a batch against its images one by one), ``Classifier.probabilities`` (label
preservation at the identity), and the digits themselves (a 6 turned upside down is read as a 9).
"""
import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import cnnviz
import cnnviz.augmentation_study as study
from cnnviz.augmentation import (AUGMENTATIONS, AugmentationError, PCABasis, RandomPCAColour, as_image_tensor,
                                 augment, check_params, checkerboard, code, default_basis, lens_distortion,
                                 pca_basis, pca_colour, pipeline_code, random_transform)
from cnnviz.augmentation_study import (ComparisonConfig, cached_training_comparison, classifier,
                                       label_preservation, training_comparison)
from cnnviz.runtime import full_float32
from cnnviz.train import DeviceLoader, crop_flip, draw_epoch


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _non_identity(key):
    """A setting of ``key`` away from its identity: every parameter at the end of its range furthest from it."""
    if key in ("hflip", "vflip"):
        return {"p": 1.0}
    return {p.name: (p.high if p.high - p.identity >= p.identity - p.low else p.low) * 0.6 + p.identity * 0.4
            for p in AUGMENTATIONS[key].params}


@pytest.fixture(scope="module")
def basis():
    return pca_basis(_rand(4, 3, 10, 12, seed=3) ** 2)  # squared: unequal eigenvalues, correlated channels


# ----------------------------------------------------------------------------- PCA colour (AlexNet)


def test_pca_basis_is_numpys_covariance_and_eigh():
    images = _rand(5, 3, 7, 9) * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)
    images[:, 1] += 0.5 * images[:, 0]  # correlated channels
    b = pca_basis(images)
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1).double().numpy()  # every pixel of every image
    cov = np.cov(pixels)
    assert b.pixels == 5 * 7 * 9
    np.testing.assert_allclose(b.covariance.numpy(), cov, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.mean.numpy(), pixels.mean(1), rtol=1e-5)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    np.testing.assert_allclose(b.eigenvalues.numpy(), values[order], rtol=1e-5, atol=1e-8)
    assert np.all(np.diff(b.eigenvalues.numpy()) <= 0)  # largest first
    for i, j in enumerate(order):  # each eigenvector up to its sign
        assert abs(float(np.dot(b.eigenvectors[:, i].double().numpy(), vectors[:, j]))) == pytest.approx(1, abs=1e-5)
    # a list of (3, H, W) images of different sizes pools their pixels the same way
    parts = [images[0], images[1:].permute(1, 0, 2, 3).reshape(3, 4 * 7, 9)]
    torch.testing.assert_close(pca_basis(parts).covariance, b.covariance, rtol=1e-5, atol=1e-7)
    with pytest.raises(AugmentationError):
        pca_basis([_rand(4, 3, 3)])  # RGBA-like tensors are not RGB


def test_pca_colour_adds_the_offset_written_out(basis):
    image = _rand(3, 6, 8, seed=1) * 0.8 + 0.1
    alphas = [1.5, -2.0, 0.7]
    lam, p = basis.eigenvalues.double().numpy(), basis.eigenvectors.double().numpy()
    offset = sum(alphas[i] * lam[i] * p[:, i] for i in range(3))                 # Σ_i α_i λ_i p_i, an RGB triple
    expected = np.clip(image.double().numpy() + offset[:, None, None], 0, 1)    # the same for every pixel
    np.testing.assert_allclose(pca_colour(image, alphas, basis).numpy(), expected, atol=1e-6)
    # a large α clips at 0 and 1
    big = pca_colour(image, [50.0, 0, 0], basis)
    assert big.min() >= 0 and big.max() <= 1 and ((big == 0) | (big == 1)).any()
    # one row of α per image of a batch
    batch = torch.stack([image, image.flip(-1)])
    rows = torch.tensor([alphas, [0.0, 1.0, -1.0]])
    out = pca_colour(batch, rows, basis)
    for i in range(2):
        torch.testing.assert_close(out[i], pca_colour(batch[i], rows[i], basis))
    # augment("pca", a1=…) is the same offset, through the basis given
    torch.testing.assert_close(augment(image, "pca", basis=basis, a1=1.5, a2=-2.0, a3=0.7),
                               pca_colour(image, alphas, basis))


def test_random_pca_colour_draws_per_image_and_is_reproducible(basis):
    batch = torch.full((6, 3, 4, 5), 0.5)  # mid grey: offsets this small never clip
    t = RandomPCAColour(basis, std=0.1)
    torch.manual_seed(7)
    out = t(batch)
    torch.manual_seed(7)
    assert torch.equal(t(batch), out)
    offsets = (out - batch)[:, :, 0, 0]                                          # (6, 3)
    assert torch.equal(out - batch, offsets[:, :, None, None].expand_as(out))   # one offset per image
    assert torch.cdist(offsets, offsets).add(torch.eye(6)).min() > 1e-6          # six different offsets
    # the draw: α ~ N(0, 0.1²) per image, from torch's global generator
    torch.manual_seed(7)
    alphas = torch.randn(6, 3) * 0.1
    torch.testing.assert_close(out, pca_colour(batch, alphas, basis))
    # one (3, H, W) image: one draw
    assert t(batch[0]).shape == (3, 4, 5)


def test_default_basis_is_the_embedded_photos():
    b = default_basis()
    assert isinstance(b, PCABasis) and b.pixels > 10_000 and default_basis() is b
    assert torch.all(b.eigenvalues > 0) and b.eigenvalues[0] > 2 * b.eigenvalues[1]
    # the first axis of natural photos is brightness: its three components of one sign, near 1/√3
    first = b.eigenvectors[:, 0] * b.eigenvectors[:, 0].sign()
    assert torch.all(first > 0.4)


# ----------------------------------------------------------------------------- every transformation


@pytest.mark.parametrize("key", list(AUGMENTATIONS))
def test_identity_setting_returns_the_image_exactly(key, basis):
    image, batch = _rand(3, 12, 16, seed=2), _rand(3, 3, 12, 16, seed=4)
    ident = AUGMENTATIONS[key].identity()
    for x in (image, batch):
        assert torch.equal(augment(x, key), x)
        assert torch.equal(augment(x, key, basis=basis, **ident), x)
    assert isinstance(random_transform(key), v2.Identity)
    assert isinstance(random_transform(key, **ident), v2.Identity)
    assert code(key) == "v2.Identity()"
    # and away from it, every transformation changes the image, keeping its shape
    out = augment(batch, key, basis=basis, **_non_identity(key))
    assert out.shape == batch.shape and not torch.equal(out, batch)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


@pytest.mark.parametrize("key, flip", [("hflip", TF.horizontal_flip), ("vflip", TF.vertical_flip)])
def test_a_flip_twice_is_the_identity(key, flip):
    for x in (_rand(3, 5, 7), _rand(2, 3, 5, 7)):
        once = augment(x, key, p=1)
        assert torch.equal(once, flip(x)) and not torch.equal(once, x)
        assert torch.equal(augment(once, key, p=1), x)
        assert torch.equal(augment(x, key, p=0), x)
    for p in (0.5, 0.01):
        with pytest.raises(AugmentationError, match="flip"):
            augment(_rand(3, 5, 7), key, p=p)


BATCH_CASES = [("rotate", {"angle": 30}), ("brightness", {"factor": 1.5}), ("pca", {"a1": 1.0, "a2": -1.0, "a3": 0.5}),
               ("lens", {"k": -0.3}), ("crop", {"scale": 0.5, "x": 0.3, "y": -0.6}),
               ("perspective", {"distortion": 0.4}), ("stretch", {"sx": 1.5, "sy": 0.8}), ("hue", {"shift": 0.2})]


@pytest.mark.parametrize("key, params", BATCH_CASES)
def test_a_batch_is_its_images_one_by_one(key, params):
    batch = _rand(4, 3, 16, 20, seed=5)
    out = augment(batch, key, **params)
    torch.testing.assert_close(out, torch.stack([augment(im, key, **params) for im in batch]), rtol=0, atol=1e-6)


def test_crop_flip_is_torchvisions_pad_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    pad, (h, w) = 3, (9, 11)
    x = torch.randint(0, 256, (12, 3, h, w), dtype=torch.uint8, generator=g)
    offsets = torch.randint(0, 2 * pad + 1, (12, 2), generator=g)
    offsets[0], offsets[1] = torch.tensor([0, 0]), torch.tensor([2 * pad, 2 * pad])  # both extreme corners
    flips = torch.tensor([0, 1] * 6)
    out = crop_flip(x, offsets, flips, pad)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(len(x)):
        ref = TF.crop(TF.pad(x[i], [pad], fill=0), int(offsets[i, 0]), int(offsets[i, 1]), h, w)
        if flips[i]:
            ref = TF.horizontal_flip(ref)
        assert torch.equal(out[i], ref), i
    assert torch.equal(crop_flip(x, torch.full((12, 2), pad), torch.zeros(12, dtype=torch.long), pad), x)


def test_device_loader_augments_as_the_cpu_pipeline_with_its_draws():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(10)
    loader = DeviceLoader(images, labels, batch_size=10, mean=(0.0,) * 3, std=(1.0,) * 3, device="cpu",
                          augment=True, drop_last=False, generator=torch.Generator().manual_seed(5))
    x, y = next(iter(loader))
    perm, offsets, flips = draw_epoch(torch.Generator().manual_seed(5), 10, 16 // 8)  # the same draws
    assert torch.equal(y, labels[perm])
    for k, i in enumerate(perm.tolist()):
        ref = TF.crop(TF.pad(images[i], [2], fill=0), int(offsets[k, 0]), int(offsets[k, 1]), 16, 16)
        ref = TF.horizontal_flip(ref) if flips[k] else ref
        torch.testing.assert_close(x[k], TF.to_dtype(ref, torch.float32, scale=True), rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu_a_batch_is_augmented_as_on_the_cpu():
    batch = _rand(4, 3, 16, 20, seed=6)
    for key, params in [("rotate", {"angle": 30}), ("lens", {"k": 0.3}), ("pca", {"a1": 2.0})]:
        with full_float32():  # PCA colour is a matrix product: compared in full float32, not TF32
            got = augment(batch.cuda(), key, **params).cpu()
        torch.testing.assert_close(got, augment(batch, key, **params), rtol=0, atol=1e-4)
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    offsets, flips = torch.tensor([[0, 0], [1, 2], [2, 1], [2, 2]]), torch.tensor([0, 1, 1, 0])
    assert torch.equal(crop_flip(x.cuda(), offsets.cuda(), flips.cuda(), 1).cpu(), crop_flip(x, offsets, flips, 1))


# ----------------------------------------------------------------------------- lens distortion


def test_lens_distortion_follows_its_documented_mapping():
    n = 33  # odd: the centre row and column are at 0
    image = _rand(3, n, n, seed=8)
    assert torch.equal(augment(image, "lens", k=0.0), image)
    xs = np.linspace(-1, 1, n)
    for k in (-0.5, -0.2, 0.3, 0.5):
        out = lens_distortion(image, k)
        assert torch.equal(out[:, n // 2, n // 2], image[:, n // 2, n // 2])  # the centre pixel stays
        # along the centre row (y = 0, r = |x|) the output at x is the input at x / (1 + k·x²), linearly interpolated
        src = (xs / (1 + k * xs ** 2) + 1) / 2 * (n - 1)
        inside = (src >= 0) & (src <= n - 1)
        for c in range(3):
            row = np.interp(src, np.arange(n), image[c, n // 2].double().numpy())
            np.testing.assert_allclose(out[c, n // 2].numpy()[inside], row[inside], atol=1e-5)
            col = np.interp(src, np.arange(n), image[c, :, n // 2].double().numpy())
            np.testing.assert_allclose(out[c, :, n // 2].numpy()[inside], col[inside], atol=1e-5)
        if k <= -0.2:  # barrel: the corners look beyond the scene, black
            assert torch.equal(out[:, 0, 0], torch.zeros(3))


def test_lens_distortion_bends_lines_barrel_outwards_pincushion_inwards():
    n = 65
    line = torch.zeros(1, n, n)
    line[0, 16] = 1  # a horizontal line half-way between the top and the centre (row 32)

    def row_of_line(img, col):  # where the line crosses column ``col`` (centroid of its intensity)
        v = img[0, :, col]
        return float((v * torch.arange(n)).sum() / v.sum())

    barrel, pincushion = lens_distortion(line, -0.4), lens_distortion(line, 0.4)
    # barrel (k < 0): the line bows away from the centre: its middle is further from row 32 than its ends
    assert row_of_line(barrel, 32) < row_of_line(barrel, 8) - 1
    assert row_of_line(barrel, 32) < row_of_line(barrel, 56) - 1
    assert row_of_line(barrel, 32) > 16  # and the whole picture shrinks towards the centre
    # pincushion (k > 0): the middle moves out less than the ends, which leave the frame here
    assert row_of_line(pincushion, 32) < 16
    assert row_of_line(pincushion, 16) < row_of_line(pincushion, 32) - 1

    # the checkerboard's red centre line stays on the centre rows for any k (it passes through the centre), as far
    # as the picture reaches: at k = −0.5 the sides already sample beyond the scene, so look at |x| ≤ 0.6 there
    board = checkerboard()
    mid, cols = 64, list(range(26, 56)) + list(range(74, 102))  # away from the blue vertical line
    for k in (-0.5, -0.2, 0.2, 0.5):
        out = lens_distortion(board, k)
        red = out[0, mid - 1:mid + 1, cols] - out[1, mid - 1:mid + 1, cols]
        assert red.min() > 0.5, k
        assert not torch.equal(out, board)
    assert not torch.allclose(lens_distortion(board, 0.3), lens_distortion(board, -0.3))


@pytest.mark.parametrize("k", [-0.5, 0.5])
def test_lens_distortion_never_folds_back_at_the_ends_of_its_range(k):
    """Along the diagonal to the corners the sampled radius keeps growing: no part of the scene appears twice
    (a mapping r·(1 − k·r²) would fold for k > 1/6 and mirror the centre into the corners)."""
    n = 65
    ramp = torch.linspace(0, 1, n).expand(n, n)                     # brightness grows to the right
    image = torch.stack([ramp, ramp.T, torch.zeros(n, n)])          # R: x, G: y
    out = lens_distortion(image, k)
    diag = torch.arange(n // 2, n)
    red = out[0, diag, diag]
    inside = lens_distortion(torch.ones(1, n, n), k)[0, diag, diag] > 0.999  # not blended with the black beyond
    seen = red[inside]
    assert len(seen) >= 4 and bool((seen[1:] >= seen[:-1] - 1e-6).all())


def test_lens_distortion_with_one_k_per_image_is_each_image_alone():
    batch = checkerboard(32).expand(3, 3, 32, 32) * torch.tensor([1.0, 0.8, 0.6]).view(3, 1, 1, 1)
    ks = torch.tensor([-0.4, 0.0, 0.25])
    out = lens_distortion(batch, ks)
    for i in range(3):
        torch.testing.assert_close(out[i], lens_distortion(batch[i], float(ks[i])), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], batch[1], rtol=0, atol=1e-6)  # k = 0 through grid_sample: the identity


# ----------------------------------------------------------------------------- parameters, code, images


def test_check_params_rejects_what_cannot_be_used_in_a_sentence():
    assert check_params("rotate") == {"angle": 0.0}
    assert check_params("crop", scale=np.float32(0.5)) == {"scale": 0.5, "x": 0.0, "y": 0.0}
    assert check_params("shift", r=np.int64(-60)) == {"r": -60.0, "g": 0.0, "b": 0.0}
    bad = [(("zoom",), {}, "Unknown transformation 'zoom'"), (("rotate",), {"degrees": 5}, "no parameter degrees"),
           (("rotate",), {"angle": 200}, "outside its range, -180 to 180"),
           (("brightness",), {"factor": 0.1}, "outside its range"), (("lens",), {"k": math.nan}, "must be a number"),
           (("lens",), {"k": math.inf}, "must be a number"), (("hflip",), {"p": True}, "must be a number"),
           (("hue",), {"shift": "0.1"}, "must be a number")]
    for args, params, message in bad:
        with pytest.raises(AugmentationError, match=message) as err:
            check_params(*args, **params)
        assert str(err.value).endswith(".")  # a whole sentence, saying what is allowed
        with pytest.raises(AugmentationError):
            augment(_rand(3, 4, 4), *args, **params)
        with pytest.raises(AugmentationError):
            random_transform(*args, **params)
    assert issubclass(AugmentationError, ValueError)


@pytest.mark.parametrize("key", list(AUGMENTATIONS))
def test_code_is_a_transform_of_the_right_kind(key, basis):
    params = _non_identity(key)
    text = code(key, **params)
    namespace = {"v2": v2, "size": [32, 32], "cnnviz": cnnviz, "basis": basis}
    made = eval(text, namespace)  # noqa: S307  our own generated line
    random_form = random_transform(key, **params)
    if text.startswith("v2."):
        assert isinstance(made, v2.Transform)
        if isinstance(random_form, v2.Transform):  # the same v2 class as the random form
            assert type(made) is type(random_form)
    else:
        assert isinstance(made, torch.nn.Module) and not isinstance(made, v2.Identity)
    out = made(_rand(3, 32, 32, seed=9))  # it runs on an image, same size out
    assert out.shape == (3, 32, 32)


def test_pipeline_code_lists_every_step_and_runs():
    steps = [("crop", {"scale": 0.5}), ("hflip", {"p": 1}), ("rotate", {"angle": -20}), ("lens", {"k": 0.2}),
             ("brightness", {"factor": 1.3})]
    text = pipeline_code(steps)
    for k, p in steps:
        assert code(k, **p) in text
    assert text.count("\n    ") == len(steps) and "v2.Compose([" in text
    namespace = {"size": [24, 24], "cnnviz": cnnviz}
    exec(text, namespace)  # noqa: S102
    assert isinstance(namespace["train_transform"], v2.Compose)
    assert namespace["train_transform"](_rand(3, 24, 24)).shape == (3, 24, 24)
    assert "v2.Identity()" in pipeline_code([])  # an empty pipeline is still a valid Compose


def test_as_image_tensor_takes_arrays_and_tensors():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    t, note = as_image_tensor(rgb)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32 and note == ""
    torch.testing.assert_close(t, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]                       # opaque red; the rest fully transparent
    t, note = as_image_tensor(rgba)
    assert "transparency" in note.lower() and t.shape == (3, 2, 2)
    assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and torch.equal(t[:, 1, 1], torch.ones(3))  # white behind

    grey = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    t, note = as_image_tensor(grey)
    assert "grey" in note.lower() and t.shape == (3, 2, 2)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2]) and t[0, 0, 1] == pytest.approx(0.2)

    deep = np.array([[[0, 257 * 100, 65535]]], dtype=np.uint16)
    t, note = as_image_tensor(deep)
    assert "16-bit" in note and t[:, 0, 0].tolist() == pytest.approx([0, 100 / 255, 1])

    x = _rand(2, 3, 5, 5)
    t, note = as_image_tensor(x)
    assert t is x and note == ""                        # a float tensor passes through
    u8 = torch.full((3, 2, 2), 255, dtype=torch.uint8)
    assert torch.equal(as_image_tensor(u8)[0], torch.ones(3, 2, 2))
    for bad in (np.zeros(5, dtype=np.uint8), torch.zeros(2, 2, 2, 2, 2), torch.zeros(3, 4, 4, dtype=torch.int32),
                torch.zeros(2, 3, 3)):
        with pytest.raises(AugmentationError):
            as_image_tensor(bad)


# ----------------------------------------------------------------------------- what augmentation does, measured


@pytest.fixture(scope="module")
def digits():
    return classifier("digits"), *study.held_out_set("digits")  # not imported by name: pytest would collect it


def test_label_preservation_at_the_identity_is_the_clean_accuracy(digits):
    clf, x, y = digits
    pred = clf.probabilities(x).argmax(1)
    clean = float((pred == y).float().mean())
    assert clean > 0.9
    pres = label_preservation(clf, x, y, "rotate", "angle", [0, 10, 90])
    assert pres.values == (0.0, 10.0, 90.0) and pres.accuracy.shape == (3,) and pres.confusion.shape == (3, 10, 10)
    assert pres.accuracy[0] == pytest.approx(clean, abs=1e-7)
    expected = np.zeros((10, 10), dtype=np.int64)
    np.add.at(expected, (y.numpy(), pred.numpy()), 1)
    assert np.array_equal(pres.confusion[0], expected)
    np.testing.assert_allclose(pres.per_class[0], expected.diagonal() / expected.sum(1))
    assert pres.confusion.sum((1, 2)).tolist() == [len(y)] * 3
    assert pres.accuracy[2] < pres.accuracy[0] - 0.3  # a quarter turn loses most digits
    # the classifier by name is the same cached network
    assert label_preservation("digits", x, y, "rotate", "angle", [0]).accuracy[0] == pytest.approx(clean, abs=1e-7)


def test_a_six_upside_down_is_read_as_a_nine(digits):
    clf, x, y = digits
    pres = label_preservation(clf, x, y, "rotate", "angle", [0, 180])
    sixes = int((y == 6).sum())
    assert pres.confusion[0][6][6] > 0.9 * sixes
    assert pres.confusion[1][6][9] > sixes / 2
    assert pres.per_class[1][6] < 0.2
    # a tilt of 10° keeps the sixes, and so does a brighter image
    sixes_x, sixes_y = x[y == 6], y[y == 6]
    assert label_preservation(clf, sixes_x, sixes_y, "rotate", "angle", [10]).accuracy[0] > 0.8
    assert label_preservation(clf, sixes_x, sixes_y, "brightness", "factor", [1.5]).accuracy[0] > 0.8


def test_augmentation_throughput_batched_beats_pil():
    t = study.augmentation_throughput(n=512, device="cpu")
    assert t.n == 512 and t.size == 32 and t.workers == 2 and t.device == "cpu"
    assert t.pil_loader > 0 and t.pil_workers > 0 and t.device_batched > t.pil_loader  # ~10-50x, not a close race
    assert t.device_batched_colour > 0  # with PCA colour added to the batched crop and flip
    assert math.isnan(study.augmentation_throughput(n=256, workers=0, device="cpu").pil_workers)


def test_training_comparison_on_a_tiny_config():
    cfg = ComparisonConfig(n_train=64, epochs=2, seeds=(0,))
    policies = {"none": [], "shift": [("translate", {"dx": 0.1})]}
    c = training_comparison(cfg, policies=policies)
    assert c.config == cfg and set(c.curves) == set(c.tta) == set(policies) and c.seconds > 0
    for name in policies:
        for key in ("train_error", "test_error"):
            assert len(c.curves[name][key]) == 2 and all(0 <= e <= 1 for e in c.curves[name][key])
        assert 0 <= c.tta[name] <= 1 and c.final(name) == c.curves[name]["test_error"][-1]
    # the same seed gives the same run
    again = training_comparison(cfg, policies={"none": []})
    assert again.curves["none"] == c.curves["none"] and again.tta["none"] == c.tta["none"]


def test_cached_training_comparison_reads_back_what_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "POLICIES", {"shift": [("translate", {"dx": 0.1})]})
    cfg = ComparisonConfig(n_train=32, epochs=2, seeds=(0,))
    first = cached_training_comparison(cfg, cache=tmp_path)
    assert set(first.curves) == {"shift"} and len(list(tmp_path.glob("comparison-*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(study, "training_comparison", fail)
    again = cached_training_comparison(cfg, cache=tmp_path)
    assert again.config == cfg and again.curves == first.curves and again.tta == first.tta
    assert again.seconds == first.seconds
    # another policy set is another file: computed (here: the failing stand-in is called)
    monkeypatch.setattr(study, "POLICIES", {"none": []})
    with pytest.raises(AssertionError, match="computed again"):
        cached_training_comparison(cfg, cache=tmp_path)
