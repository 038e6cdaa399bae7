"""cnnviz.imaging conversions and cnnviz.data loading (images, uploads, datasets), all offline."""
import base64
import io
import socket
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz import data
from cnnviz.imaging import data_uri, downscale, png_bytes, to_gray, to_rgb, to_uint8


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (AssertionError is not caught as a download error)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _encode(im: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


# ----------------------------------------------------------------------------- to_uint8 / to_rgb / to_gray

def test_to_uint8_bool():
    out = to_uint8(np.array([[True, False]]))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[255, 0]])


def test_to_uint8_uint16_full_range():
    out = to_uint8(np.array([[0, 32768, 65535]], dtype=np.uint16))
    np.testing.assert_array_equal(out, [[0, 128, 255]])


def test_to_uint8_float_unit_range():
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.2, 1.0])), [0, 51, 255])
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.2, 1.0], dtype=np.float32)), [0, 51, 255])


def test_to_uint8_float_byte_range_and_nan():
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 10.4, 300.0, np.nan])), [0, 10, 255, 0])


def test_to_uint8_uint8_is_unchanged():
    a = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(a), a)


def test_to_uint8_signed_integers_are_clipped_not_wrapped():
    # a signed integer image with values beyond 0..255 (e.g. a rounded filter output):
    # negative values must become 0 (black), never wrap around to bright values
    out = to_uint8(np.array([[-100, 0, 1000]], dtype=np.int32))
    np.testing.assert_array_equal(out, [[0, 0, 255]])
    np.testing.assert_array_equal(to_uint8(np.array([-5, 7, 300], dtype=np.int16))[0], 0)


def test_to_rgb_gray_and_single_channel():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for a in (g, g[:, :, None]):
        out = to_rgb(a)
        assert out.shape == (3, 4, 3) and out.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], g)


def test_to_rgb_composites_alpha_on_white():
    rgba = np.array([[[100, 200, 0, 0], [100, 200, 0, 255], [100, 200, 0, 51], [0, 0, 0, 128]]], dtype=np.uint8)
    out = to_rgb(rgba)
    assert out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # fully transparent: white
    np.testing.assert_array_equal(out[0, 1], [100, 200, 0])  # opaque: unchanged
    np.testing.assert_array_equal(out[0, 2], [224, 244, 204])  # 20 %: 0.2·c + 0.8·255
    np.testing.assert_array_equal(out[0, 3], [127, 127, 127])  # half-transparent black on white


def test_to_rgb_rejects_two_channels():
    with pytest.raises(ValueError, match="Not an image"):
        to_rgb(np.zeros((3, 3, 2), dtype=np.uint8))


def test_to_gray_matches_pil_luminance():
    rgb = np.random.default_rng(0).integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)  # the oracle: PIL's 'L' mode
    got = to_gray(rgb)
    assert got.shape == (16, 20) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_to_gray_other_inputs():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(to_gray(g), g)
    np.testing.assert_array_equal(to_gray(g[:, :, None]), g)
    np.testing.assert_array_equal(to_gray(np.zeros((2, 2, 4), dtype=np.uint8)), np.full((2, 2), 255))  # transparent
    np.testing.assert_array_equal(to_gray(np.array([[0.0, 1.0]])), [[0, 255]])


# ----------------------------------------------------------------------------- downscale / png

@pytest.mark.parametrize("shape, max_side, expected", [
    ((300, 400, 3), 100, (75, 100, 3)),
    ((400, 300, 3), 100, (100, 75, 3)),
    ((3000, 4000, 3), 512, (384, 512, 3)),
    ((1000, 10), 100, (100, 1)),
    ((300, 451), 100, (67, 100)),
])
def test_downscale_keeps_aspect_ratio(shape, max_side, expected):
    out = downscale(np.zeros(shape, dtype=np.uint8), max_side)
    assert out.shape == expected and out.dtype == np.uint8
    assert out.flags.writeable


@pytest.mark.parametrize("shape", [(50, 60, 3), (100, 100), (1, 1)])
def test_downscale_never_enlarges(shape):
    a = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = downscale(a, 100)
    assert out.shape == shape
    np.testing.assert_array_equal(out, a)


def test_downscale_keeps_the_picture():
    # a flat colour stays that colour; a left/right split stays split
    a = np.zeros((200, 400, 3), dtype=np.uint8)
    a[:, :200] = (200, 40, 10)
    out = downscale(a, 40)
    assert out.shape == (20, 40, 3)
    np.testing.assert_array_equal(out[:, :15], np.broadcast_to([200, 40, 10], (20, 15, 3)))
    np.testing.assert_array_equal(out[:, 25:], 0)


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3)])
def test_png_bytes_round_trip(shape):
    a = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    raw = png_bytes(a)
    assert raw.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(raw)) as im:
        np.testing.assert_array_equal(np.asarray(im), a)
    uri = data_uri(a)
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        np.testing.assert_array_equal(np.asarray(im), a)


# ----------------------------------------------------------------------------- load_image

@pytest.mark.parametrize("name", data.EMBEDDED_IMAGES)
def test_every_embedded_image_loads(name):
    img = data.load_image(name)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.flags.c_contiguous
    assert img.max() > img.min()  # not blank
    g = data.load_image(name, gray=True)
    assert g.dtype == np.uint8 and g.shape == img.shape[:2]


def test_image_names():
    assert data.image_names() == list(data.EMBEDDED_IMAGES)
    assert "astronaut" in data.image_names()


@pytest.mark.parametrize("name, expected", [("astronaut", (100, 100, 3)), ("chelsea", (67, 100, 3)),
                                            ("retina", (100, 100, 3))])
def test_max_side(name, expected):
    assert data.load_image(name, max_side=100).shape == expected
    assert data.load_image(name, max_side=100, gray=True).shape == expected[:2]
    small = data.load_image("coins")
    assert data.load_image("coins", max_side=10_000).shape == small.shape  # never enlarges


def test_gray_is_luminance_of_the_colour_photo():
    rgb = data.load_image("astronaut")
    np.testing.assert_array_equal(data.load_image("astronaut", gray=True), to_gray(rgb))


def test_png_rgba_bytes():
    a = np.zeros((4, 5, 4), dtype=np.uint8)
    a[..., :3] = (10, 20, 30)
    a[:2, :, 3] = 255  # top opaque, bottom transparent
    out = data.load_image(_encode(Image.fromarray(a, "RGBA")))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:2], np.broadcast_to([10, 20, 30], (2, 5, 3)))
    np.testing.assert_array_equal(out[2:], 255)


def test_png_gray_bytes():
    g = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    raw = _encode(Image.fromarray(g, "L"))
    out = data.load_image(raw)
    assert out.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], g)
    np.testing.assert_array_equal(data.load_image(raw, gray=True), g)


def test_png_palette_bytes():
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0, 0, 0] * 253)
    im.putdata([0, 1, 2, 2, 1, 0])
    out = data.load_image(_encode(im))
    expected = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 255], [0, 255, 0], [255, 0, 0]]])
    np.testing.assert_array_equal(out, expected)


def test_png_palette_with_transparency_bytes():
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    im.putdata([0, 1])
    raw = _encode(im, transparency=0)  # palette entry 0 is transparent
    np.testing.assert_array_equal(data.load_image(raw), [[[255, 255, 255], [0, 0, 255]]])


def test_png_16_bit_bytes():
    a = np.array([[0, 1000, 30000], [40000, 60000, 65535]], dtype=np.uint16)
    im = Image.fromarray(a)
    assert im.mode == "I;16"
    out = data.load_image(_encode(im))
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    expected = np.round(a / 65535 * 255).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


def test_jpeg_bytes():
    a = np.zeros((32, 48, 3), dtype=np.uint8)
    a[:] = (200, 100, 50)
    out = data.load_image(_encode(Image.fromarray(a), "JPEG", quality=95))
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - a).max() <= 3  # JPEG is lossy


def test_bytes_like_inputs():
    raw = _encode(Image.fromarray(np.full((2, 2), 9, dtype=np.uint8)))
    for source in (raw, bytearray(raw), memoryview(raw)):
        np.testing.assert_array_equal(data.load_image(source), 9)


def test_large_bytes_with_max_side():
    a = np.zeros((300, 400, 3), dtype=np.uint8)
    out = data.load_image(_encode(Image.fromarray(a)), max_side=40)
    assert out.shape == (30, 40, 3)


@pytest.mark.parametrize("raw", [b"hello, this is a text file", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_not_an_image(raw):
    with pytest.raises(data.ImageError, match="The uploaded file is not an image that can be read") as err:
        data.load_image(raw)
    assert "PNG, JPEG" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_truncated_image():
    raw = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(data.ImageError, match="could not be decoded.*complete image file"):
        data.load_image(raw[: len(raw) // 2])


def test_absurdly_large_image_is_refused_with_its_reason(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses images over twice this
    raw = _encode(Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)))
    with pytest.raises(data.ImageError, match="too large to open"):
        data.load_image(raw)


def test_missing_path_names_the_embedded_photos(tmp_path):
    missing = tmp_path / "no_such_photo.png"
    with pytest.raises(data.ImageError) as err:
        data.load_image(missing)
    msg = str(err.value)
    assert "no_such_photo.png" in msg and "nor an existing file" in msg
    assert "astronaut" in msg and "camera" in msg
    with pytest.raises(data.ImageError, match="neither an embedded photo"):
        data.load_image("astronot")


def test_file_paths(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    path.write_bytes(_encode(Image.fromarray(a)))
    np.testing.assert_array_equal(data.load_image(path), a)
    np.testing.assert_array_equal(data.load_image(str(path)), a)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(data.ImageError, match="The file 'notes.png' is not an image"):
        data.load_image(text)


def test_arrays_and_bad_types():
    np.testing.assert_array_equal(data.load_image(np.full((2, 3), 0.5)), np.full((2, 3, 3), 128))
    with pytest.raises(data.ImageError, match="Unsupported image shape"):
        data.load_image(np.zeros((2, 2, 2)))
    with pytest.raises(data.ImageError, match="Cannot load an image from a int"):
        data.load_image(42)


# ----------------------------------------------------------------------------- datasets

def test_digits():
    ds = data.load_dataset("digits")
    assert len(ds) == 1797
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    images, labels = ds.tensors
    assert images.shape == (1797, 1, 8, 8)
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert labels.dtype == torch.int64 and set(labels.tolist()) == set(range(10))
    assert len(data.load_dataset("Digits")) == 1797


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError) as err:
        data.load_dataset("imagenet")
    msg = str(err.value)
    assert "'imagenet'" in msg
    for name in ["digits", *data.ONLINE_DATASETS]:
        assert name in msg


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("CNNVIZ_DATA")
    assert data.cache_dir().name == "cnnviz"


def _write_idx(path, array):
    """MNIST's IDX format: big-endian magic (0, 0, dtype 0x08 = uint8, number of dims), sizes, then the bytes."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    path.write_bytes(header + a.tobytes())


def _fake_mnist(root, n_train=5, n_test=3):
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_labels = np.arange(n_train) % 10
    test_labels = (np.arange(n_test) + 7) % 10
    _write_idx(raw / "train-images-idx3-ubyte", train)
    _write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", test)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_labels)
    return train, train_labels, test, test_labels


def test_mnist_from_local_files(tmp_path, no_network):
    train, train_labels, test, test_labels = _fake_mnist(tmp_path)
    ds = data.load_dataset("mnist", root=tmp_path, download=False, fallback=False)
    assert len(ds) == 5
    np.testing.assert_array_equal(ds.data.numpy(), train)
    np.testing.assert_array_equal(ds.targets.numpy(), train_labels)
    image, label = ds[3]
    np.testing.assert_array_equal(np.asarray(image), train[3])  # a PIL image, as torchvision returns
    assert label == 3

    ds = data.load_dataset("MNIST", root=tmp_path, train=False, download=False, transform=np.asarray)
    assert len(ds) == 3
    image, label = ds[2]
    np.testing.assert_array_equal(image, test[2])
    assert label == test_labels[2]


def test_mnist_from_the_default_cache_dir(tmp_path, monkeypatch, no_network):
    train, *_ = _fake_mnist(tmp_path)
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    ds = data.load_dataset("mnist", download=False, fallback=False)
    np.testing.assert_array_equal(ds.data.numpy(), train)


def test_missing_files_without_download_raise(tmp_path, no_network):
    # the real torchvision class, download=False: "Dataset not found" becomes DatasetUnavailable
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_dataset("mnist", root=tmp_path, download=False, fallback=False)
    assert "load_dataset('digits')" in str(err.value)
    assert str(tmp_path) in str(err.value)


def _offline(error):
    calls = []

    class Offline:
        def __init__(self, root, train=True, download=False, transform=None):
            calls.append(dict(root=root, train=train, download=download, transform=transform))
            raise error

    return Offline, calls


@pytest.mark.parametrize("error", [RuntimeError("Error downloading train-images-idx3-ubyte.gz"),
                                   urllib.error.URLError("[Errno -3] Temporary failure in name resolution")])
@pytest.mark.parametrize("key", list(data.ONLINE_DATASETS))
def test_offline_without_fallback_raises(monkeypatch, tmp_path, no_network, error, key):
    import torchvision.datasets as tvd

    cls_name, embedded = data.ONLINE_DATASETS[key]
    offline, calls = _offline(error)
    monkeypatch.setattr(tvd, cls_name, offline)
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load_dataset(key, root=tmp_path, fallback=False)
    msg = str(err.value)
    assert f"load_dataset({embedded!r})" in msg
    assert str(tmp_path) in msg and cls_name in msg
    assert type(error).__name__ in msg
    assert err.value.__cause__ is error
    assert calls == [dict(root=str(tmp_path), train=True, download=True, transform=None)]


@pytest.mark.parametrize("error", [RuntimeError("Error downloading"), urllib.error.URLError("no network")])
def test_offline_with_fallback_warns_and_returns_digits(monkeypatch, tmp_path, no_network, error):
    import torchvision.datasets as tvd

    offline, calls = _offline(error)
    monkeypatch.setattr(tvd, "MNIST", offline)
    with pytest.warns(UserWarning, match=r"load_dataset\('digits'\)") as record:
        ds = data.load_dataset("mnist", root=tmp_path)  # fallback=True is the default
    assert "Using the embedded 'digits' dataset instead" in str(record[0].message)
    assert str(tmp_path) in str(record[0].message)
    assert len(ds) == 1797 and ds[0][0].shape == (1, 8, 8)
    assert len(calls) == 1
