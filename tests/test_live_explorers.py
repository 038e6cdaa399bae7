"""cnnviz.live: the kernel editor and the convolution explorer computing in the reader's browser.

Oracles: the Python functions the JavaScript mirrors. The page's output pixels are compared with
``kernels.filter_image`` + ``kernels.for_display`` on the same photo (at most one grey level apart: float32
sums in another order, and ties rounded), its sentences for bad cells with ``kernels.parse_entry``'s, its
formula, output size, parameters and MACs with ``figures.arithmetic.conv_arithmetic_text`` and
``cnnviz.layers`` for a grid of settings, impossible ones included. The kernel editor computes with the
WebAssembly SIMD module of ``cnnviz/static/cnnviz-live-simd.wat`` where the browser runs it (checked: the bytes
embedded in the script are what ``tools/build_live_wasm.py`` assembles from it; its loops give ``correlate``'s
numbers on any size) and with the JavaScript loops elsewhere (``window.cnnvizLiveWasm = "never"`` forces them):
both are held to Python. The browser tests run on the built book's chapters 1 and 2 (Debian's chromium),
offline; one runs the blocks in JupyterLab's output cells.
The page's timings are written to /tmp/cnnviz-shots/live_timings.txt (reported, never asserted).
"""
import base64
import importlib.util
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from cnnviz import live
from cnnviz.figures.arithmetic import conv_arithmetic_text
from cnnviz.kernels import PRESETS, filter_image, for_display, parse_entry
from cnnviz.layers import conv_macs, conv_output_shape, conv_params

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path("/tmp/cnnviz-shots")
KEEP_KERNEL = " The output still shows the last valid kernel."
KEEP_PICTURE = " The picture shows the last setting that worked."


# ----------------------------------------------------------------------------- the blocks, without a browser

def test_kernel_editor_block_refuses_what_it_cannot_show():
    with pytest.raises(ValueError, match="unknown: nowhere"):
        live.kernel_editor_html(photos=["astronaut", "nowhere"])
    with pytest.raises(ValueError, match="must be one of the photos offered"):
        live.kernel_editor_html("coins", photos=["astronaut"])
    with pytest.raises(ValueError, match="No preset named 'blur'"):
        live.kernel_editor_html(kernel="blur")
    with pytest.raises(ValueError, match="display mode"):
        live.kernel_editor_html(mode="log")
    with pytest.raises(ValueError, match="between 16 and 1024"):
        live.kernel_editor_html(max_side=4096)
    with pytest.raises(ValueError, match="none given"):
        live.kernel_editor_html(photos=[])


def test_conv_explorer_block_refuses_what_the_widget_refuses():
    with pytest.raises(ValueError, match="more than this explorer draws"):
        live.conv_explorer_html(n=10_000)
    with pytest.raises(ValueError, match="The kernel does not fit"):
        live.conv_explorer_html(n=5, f=7)
    with pytest.raises(ValueError, match="stride 1"):
        live.conv_explorer_html(p="same", s=2)


def _payload(block):
    start = block.index('type="application/json"')
    start = block.index(">", start) + 1
    return json.loads(block[start:block.index("</script>", start)])


def test_block_carries_its_data_script_and_fallback(monkeypatch):
    monkeypatch.delenv("CNNVIZ_BOOK", raising=False)
    block = live.kernel_editor_html("camera", "laplacian", photos=["camera", "coins"], max_side=64, color=True)
    data = _payload(block)
    assert data["kind"] == "kernel-editor" and list(data["photos"]) == ["camera", "coins"]
    assert data["start"] == "laplacian" and data["color"] is True
    assert data["kernel"] == PRESETS["laplacian"].tolist()
    assert "needs JavaScript" in block and live.script() in block  # notebooks: the module travels inline
    monkeypatch.setenv("CNNVIZ_BOOK", "1")
    book = live.conv_explorer_html(n=6, f=3, p="same")
    assert live.script() not in book and "window.cnnvizLive.mount" in book  # the book serves it once
    assert _payload(book)["start"] == {"n": 6, "f": 3, "p": "same", "s": 1, "d": 1, "c_in": 1, "c_out": 1}
    assert live.ConvExplorerLive(n=6)._repr_html_().count("cnnviz-live-host") == 1


def test_data_can_never_end_its_script_early():
    block = live._block({"kind": "conv-explorer", "text": "</script><script>alert(1)</script>"}, "<b>fallback</b>",
                        inline=False)
    assert block.count("</script>") == 2                  # the data's own and the mounting script's
    assert "&lt;b&gt;fallback&lt;/b&gt;" in block
    assert _payload(block)["text"] == "</script><script>alert(1)</script>"


def test_photos_travel_as_the_pixels_python_filters():
    photo = live._photo("coffee", 96)
    for key, color in (("rgb", True), ("gray", False)):
        np.testing.assert_array_equal(_decode(photo[key]), live.photo_pixels("coffee", 96, color))


def test_preset_cells_are_written_as_the_python_editor_writes_them():
    """Oracle: KernelEditor's own grid, preset by preset."""
    from cnnviz.widgets import KernelEditor
    editor = KernelEditor(threaded=False, max_side=32)
    try:
        presets = live._presets()
        for name in PRESETS:
            editor.preset.value = name
            f = PRESETS[name].shape[0]
            assert presets[name]["texts"] == [editor.cells[r][c].value for r in range(f) for c in range(f)], name
            assert presets[name]["values"] == PRESETS[name].ravel().tolist()
    finally:
        editor.close()


def test_the_book_serves_the_script():
    config = (ROOT / "_config.yml").read_text()
    assert "cnnviz/static" in config and "cnnviz-live.js" in config
    assert live.SCRIPT_PATH.exists() and "cnnvizLive" in live.script()
    assert 'cnnviz = ["static/*.js"]' in (ROOT / "pyproject.toml").read_text()  # installed with the package


def _wasm_tool():
    spec = importlib.util.spec_from_file_location("build_live_wasm", ROOT / "tools" / "build_live_wasm.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_embedded_webassembly_is_the_wat_assembled():
    """The bytes in cnnviz-live.js are tools/build_live_wasm.py's assembly of cnnviz-live-simd.wat (rerun the tool
    after editing the .wat), small enough for Chrome to compile on the page's thread (it refuses above 4 kB)."""
    tool = _wasm_tool()
    wasm = tool.module_bytes()
    assert tool.embedded(live.script()) == wasm, "run tools/build_live_wasm.py"
    assert wasm[:8] == b"\0asm\1\0\0\0" and len(wasm) < 4096
    assert tool.main(["--check"]) == 0


def test_the_assembler_encodes_what_the_spec_says():
    """A few encodings written out by hand from the WebAssembly spec (the .wat module was also compared once with
    wabt's wat2wasm, byte for byte: see the tool's docstring)."""
    tool = _wasm_tool()
    assert tool.uleb(624485) == bytes([0xE5, 0x8E, 0x26]) and tool.sleb(-123456) == bytes([0xC0, 0xBB, 0x78])
    assert tool.sleb(64) == bytes([0xC0, 0x00]) and tool.sleb(-64) == bytes([0x40])
    wasm = tool.assemble("""(module (import "env" "memory" (memory 1))
      (func $f (export "f") (param $p i32) (local $v v128)
        (local.set $v (f32x4.mul (v128.load offset=4 (local.get $p)) (f32x4.splat (f32.const 2))))
        (loop $l (br_if $l (i32.const 0)))
        (v128.store align=16 (local.get $p) (local.get $v))))""")
    body = bytes([0x01, 0x01, 0x7B,                                      # one v128 local
                  0x20, 0x00, 0xFD, 0x00, 0x04, 0x04,                    # local.get 0; v128.load align=16 offset=4
                  0x43, 0x00, 0x00, 0x00, 0x40, 0xFD, 0x13,              # f32.const 2; f32x4.splat
                  0xFD, 0xE6, 0x01, 0x21, 0x01,                          # f32x4.mul; local.set 1
                  0x03, 0x40, 0x41, 0x00, 0x0D, 0x00, 0x0B,              # loop; i32.const 0; br_if 0; end
                  0x20, 0x00, 0x20, 0x01, 0xFD, 0x0B, 0x04, 0x00, 0x0B])  # v128.store; end
    assert wasm.endswith(bytes([0x0A, len(body) + 2, 0x01, len(body)]) + body)
    assert b"\x02\x0f\x01\x03env\x06memory\x02\x00\x01" in wasm      # the import section
    with pytest.raises(tool.WatError, match="no local"):
        tool.assemble("(module (func (local.get $x)))")


# ----------------------------------------------------------------------------- the built book in chromium

from test_book_pages import browser, server as site  # noqa: E402,F401  the book's server and chromium, shared


def _open(browser, url):
    from test_book_pages import _open as open_page
    page, errors, outside = open_page(browser, url)
    page.wait_for_function("() => [...document.querySelectorAll('.cnnviz-live-host')].every(h => h.cnnvizLive)")
    return page, errors, outside


def _report(line):
    SHOTS.mkdir(exist_ok=True)
    with open(SHOTS / "live_timings.txt", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(line)


_READ = """(host) => new Promise(done => {
  const wait = () => {
    if (host.dataset.busy || !host.dataset.rendered) { requestAnimationFrame(wait); return; }
    const im = host.cnnvizLive.outputPixels(); let s = '';
    for (let i = 0; i < im.data.length; i += 0x8000) s += String.fromCharCode.apply(null, im.data.subarray(i, i + 0x8000));
    done({w: im.width, h: im.height, b64: btoa(s), rendered: Number(host.dataset.rendered)});
  };
  wait();
})"""


def _pixels(host):
    got = host.evaluate(_READ)
    rgba = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8).reshape(got["h"], got["w"], 4)
    return rgba


def _decode(uri):
    import io

    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def _expected(image, kernel, mode, color):
    """What the page must show: ``image`` (the pixels it filters) through filter_image and for_display, as RGB."""
    out = for_display(filter_image(image, kernel, device="cpu"), mode)
    return out if color else np.repeat(out[..., None], 3, axis=-1)


def _engine(host):
    """What computed the last output, as the explanation says: "WebAssembly SIMD", "JavaScript" or "N threads"."""
    return re.search(r"ms in this page \(([^)]*)\)", host.locator(".cnnviz-live-explain").text_content()).group(1)


def _choose(host, label, value):
    host.locator(f'select[aria-label="{label}"]').select_option(value)


def _editor_state(host):
    return host.evaluate("h => ({photo: h.cnnvizLive.state.photo, mode: h.cnnvizLive.state.mode, "
                         "colour: h.cnnvizLive.state.colour, f: h.cnnvizLive.state.f})")


@pytest.mark.browser
def test_kernel_editor_in_the_book_filters_like_python(site, browser):
    """Every preset, in colour and in grayscale, and typed kernels (numbers, fractions, 5×5): the canvas is
    filter_image + for_display on the same photo, at most one grey level apart."""
    page, errors, outside = _open(browser, f"{site}/book/01_convolution.html")
    try:
        host = page.locator(".cnnviz-live-host").filter(has=page.locator(".cnnviz-live-ke")).first
        data = json.loads(page.locator(".cnnviz-live-host + script[type='application/json']").first.text_content())
        photo = data["image"]
        pixels = {True: _decode(data["photos"][photo]["rgb"]), False: _decode(data["photos"][photo]["gray"])}
        max_side = max(pixels[True].shape[:2])
        np.testing.assert_array_equal(pixels[False], live.photo_pixels(photo, max_side, False))  # Python's to_gray
        for color in (False, True):
            _choose(host, "colour", "colour" if color else "gray")
            for name in PRESETS:
                _choose(host, "preset", name)
                mode = _editor_state(host)["mode"]
                got = _pixels(host)
                want = _expected(pixels[color], PRESETS[name], mode, color)
                assert got.shape[:2] == want.shape[:2]
                diff = np.abs(got[..., :3].astype(int) - want.astype(int))
                assert diff.max() <= 1, (name, color, int(diff.max()), int((diff > 1).sum()))
                assert _engine(host) == "WebAssembly SIMD", name
        # a few presets on the JavaScript loops too (3×3, separable 5×5), and back on WebAssembly
        page.evaluate("() => { window.cnnvizLiveWasm = 'never'; }")
        for name in ("sobel x", "gaussian blur 5×5", "sharpen"):
            _choose(host, "preset", name)
            want = _expected(pixels[True], PRESETS[name], _editor_state(host)["mode"], True)
            diff = np.abs(_pixels(host)[..., :3].astype(int) - want.astype(int))
            assert diff.max() <= 1 and _engine(host) == "JavaScript", (name, int(diff.max()))
        page.evaluate("() => { delete window.cnnvizLiveWasm; }")
        _choose(host, "preset", "box blur 5×5")
        want = _expected(pixels[True], PRESETS["box blur 5×5"], _editor_state(host)["mode"], True)
        assert np.abs(_pixels(host)[..., :3].astype(int) - want.astype(int)).max() <= 1
        assert _engine(host) == "WebAssembly SIMD"
        # typed kernels, in the grid, cell by cell, as a reader types them (every display mode)
        typed = [(["1/9"] * 9, "clip"), (["0", "-1", "0", "-1", " 5 ", "-1", "0", "-1", "0"], "clip"),
                 (["1e-1", "-0.25", "2", "0", "1/3", "−1", "3/2", "-2", "0.5"], "normalise"),
                 ([str((k * k * 7 + 3) % 11 - 5) for k in range(25)], "abs")]
        for color in (True, False):
            _choose(host, "colour", "colour" if color else "gray")
            for texts, mode in typed:
                f = int(len(texts) ** 0.5)
                _choose(host, "kernel size", str(f))
                _choose(host, "show", mode)
                cells = host.locator(".cnnviz-live-grid input")
                for k, text in enumerate(texts):
                    cells.nth(k).fill(text)
                kernel = np.array([parse_entry(t) for t in texts]).reshape(f, f)
                diff = np.abs(_pixels(host)[..., :3].astype(int) - _expected(pixels[color], kernel, mode, color).astype(int))
                assert diff.max() <= 1, (texts, mode, color, int(diff.max()))
                assert _engine(host) == "WebAssembly SIMD", texts
                if color and f in (3, 5):  # the same kernel on the JavaScript loops (browsers without SIMD)
                    page.evaluate("() => { window.cnnvizLiveWasm = 'never'; }")
                    cells.nth(f * f - 1).fill(texts[-1] + " ")
                    diff = np.abs(_pixels(host)[..., :3].astype(int) - _expected(pixels[color], kernel, mode, color).astype(int))
                    assert diff.max() <= 1 and _engine(host) == "JavaScript", (texts, mode, int(diff.max()))
                    page.evaluate("() => { delete window.cnnvizLiveWasm; }")
                if color and f == 5:  # the same job split across Web Workers (forced: this machine has 2 cores)
                    page.evaluate("() => { window.cnnvizLiveWorkers = 'always'; }")
                    cells.nth(0).fill(texts[0] + " ")
                    diff = np.abs(_pixels(host)[..., :3].astype(int) - _expected(pixels[color], kernel, mode, color).astype(int))
                    assert diff.max() <= 1 and "threads)" in host.locator(".cnnviz-live-explain").text_content()
                    page.evaluate("() => { delete window.cnnvizLiveWorkers; }")
        # a new photo chosen while the workers compute: the picture that stays is the new photo's
        others = [p for p in data["photos"] if p != photo]
        if others:
            _choose(host, "colour", "colour")
            page.evaluate("() => { window.cnnvizLiveWorkers = 'always'; }")
            host.locator(".cnnviz-live-grid input").nth(12).fill("7")
            _choose(host, "photo", others[0])
            kernel = np.array([parse_entry(c.input_value()) for c in host.locator(".cnnviz-live-grid input").all()])
            new = _decode(data["photos"][others[0]]["rgb"])
            diff = np.abs(_pixels(host)[..., :3].astype(int) - _expected(new, kernel.reshape(5, 5), "abs", True).astype(int))
            assert diff.max() <= 1
        timings = host.evaluate("h => h.cnnvizLive.timings.slice()")
        _report(f"kernel editor in the book ({max_side}-pixel photo, {len(timings)} redraws): median "
                f"{np.median(timings):.1f} ms, 90th percentile {np.percentile(timings, 90):.1f} ms")
        assert errors == [] and outside == []
    finally:
        page.close()


@pytest.mark.browser
def test_kernel_editor_bad_entries_keep_the_last_output(site, browser):
    page, errors, outside = _open(browser, f"{site}/book/01_convolution.html")
    try:
        host = page.locator(".cnnviz-live-host").filter(has=page.locator(".cnnviz-live-ke")).first
        _choose(host, "preset", "sharpen")
        good = _pixels(host)
        cell = host.locator(".cnnviz-live-grid input").nth(4)
        for text in ["", "abc", "nan", "-inf", "1e999", "1/0", "2/x", "<img src=x onerror=window.__pwned=1>"]:
            cell.fill(text)
            with pytest.raises(ValueError) as err:
                parse_entry(text)
            message = host.locator(".cnnviz-live-message").text_content()
            assert message == f"Row 2, column 2: {err.value}{KEEP_KERNEL}", text
            assert "cnnviz-live-bad" in cell.get_attribute("class")
            np.testing.assert_array_equal(_pixels(host), good)          # the last good output stays
        assert page.evaluate("() => window.__pwned") is None
        assert host.locator(".cnnviz-live-message img").count() == 0    # shown as text, never as markup
        cell.fill("5")
        assert host.locator(".cnnviz-live-message").text_content() == ""
        assert "cnnviz-live-bad" not in (cell.get_attribute("class") or "")
        SHOTS.mkdir(exist_ok=True)
        host.screenshot(path=str(SHOTS / "live_kernel_editor.png"))
        assert errors == [] and outside == []
    finally:
        page.close()


_SIMD_VS_CORRELATE = """() => {
  const L = window.cnnvizLive, module = new WebAssembly.Module(Uint8Array.from(atob(SIMD), c => c.charCodeAt(0)));
  let seed = 7; const rnd = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  const rows = [], e = L.makeSimdEngine();
  for (const [h, w] of [[1, 1], [2, 3], [7, 13], [23, 37], [64, 64], [31, 130], [300, 451], [5, 6]]) {  // grows, shrinks
    for (const f of [3, 5]) {
      const r = (f - 1) >> 1, planes = [0, 1, 2].map(() => Float32Array.from({length: h * w}, () => Math.round(rnd() * 255)));
      const padded = planes.map(p => L.padPlane(p, h, w, r)), kernels = [Float64Array.from({length: f * f}, () => rnd() * 4 - 2)];
      if (f === 5) {
        const u = [1, 4, 6, 4, 1], v = [1, 2, 0, -2, -1];
        kernels.push(Float64Array.from({length: 25}, (_, i) => u[Math.floor(i / 5)] * v[i % 5] / 16));
      }
      e.load(h + 'x' + w + ':' + r, padded, h, w, r);
      for (const k of kernels) {
        const sep = f === 5 ? L.separate(k, 5) : null, got = e.run(k, f, sep);
        let worst = 0, scale = 0;
        padded.forEach((p, c) => {
          const want = L.correlate(p, h, w, k, f, new Float32Array(h * w));
          for (let i = 0; i < h * w; i++) {
            worst = Math.max(worst, Math.abs(want[i] - got[c][i])); scale = Math.max(scale, Math.abs(want[i]));
          }
          if (got[c].length !== h * w) { worst = Infinity; }
        });
        rows.push({h, w, f, separable: !!sep, worst, scale});
      }
    }
  }
  return {rows, exports: WebAssembly.Module.exports(module).map(x => x.name + ':' + x.kind),
          imports: WebAssembly.Module.imports(module).map(x => x.module + '.' + x.name + ':' + x.kind)};
}"""


@pytest.mark.browser
def test_webassembly_loops_compute_what_correlate_computes(browser):
    """The SIMD module's 3×3, 5×5 and separable 5×5 loops against correlate (the JavaScript loops the tests hold
    to Python) on random planes of many sizes, widths that are not multiples of four included, one engine whose
    memory grows and is reused: equal up to float32 rounding of sums in another order."""
    b64 = _wasm_tool().embedded(live.script())
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.set_content("<!doctype html><meta charset='utf-8'><body><script>" + live.script() + "</script>"
                         f"<script>var SIMD = '{base64.b64encode(b64).decode()}';</script></body>")
        got = page.evaluate(_SIMD_VS_CORRELATE)
        assert got["exports"] == ["dense3:function", "dense5:function", "sep5:function"]
        assert got["imports"] == ["env.memory:memory"]
        for row in got["rows"]:
            assert row["worst"] <= 1e-5 * max(row["scale"], 1), row
        assert len(got["rows"]) == 24 and errors == []
    finally:
        page.close()


# What people type: Unicode digits of other scripts (a Japanese input method gives full-width １/９), Python's
# whitespace (str.strip's, not JavaScript's \s: U+0085 and U+001C–U+001F are spaces there, U+FEFF is not),
# characters Python's repr escapes, signs, underscores, exponents, fractions; then random strings over them.
TYPED = ["１/９", "٣", "\u00a01\u00a0", "1\x85", "\ufeff1", "1\u200b", "𝟏/𝟗", "1_000", "½", "\u3000-1", "−2",
         "\x1c3", "1 / 9", "+.5e-3", "5.", ".", "e3", "1e", "nan", "+nan", "-Inf", "infinity", "1/-0", "0/0",
         "inf/inf", "1e999/1e999", "1e308/1e-10", "1e-400", "١/٣", "७", "1\u2028", "\t2\n", "1'2", 'a"b', "a'b\"c",
         "\\", "é", "\x7f", "\u0660.\u0661e\u0662", "1__0", "_1", "1_", "0x10", "1,5", "٫5", "1\u2009/\u20099",
         "\U000e0001", "😀", "\ud7ff"]
CELLS = [1 / 64, -1 / 64, 1.0625, 0.140625, 1 / 3, 1e-5, 1.25e-5, 1234.5, 12345.5, 9999.5, 99995.0, 2.0 ** 70,
         -1e22, 2.5e-7, 0.5, -0.0, 3.0]


@pytest.mark.browser
def test_typed_entries_and_cell_texts_are_pythons(browser):
    """The page's ``parseEntry`` gives ``parse_entry``'s value (exactly) or sentence (the typed text quoted as
    Python's repr quotes it), and its cell texts are the Python editor's (``str(int(v))`` or ``f"{v:.4g}"``, ties
    to even), for the strings above and 4,000 random ones, and for 3,000 numbers (dyadic ties, random doubles)."""
    import random
    import struct

    rnd = random.Random(3)
    alphabet = list("0123456789+-._eE/ ") + ["１", "٣", "\u00a0", "\u3000", "−", "𝟗", "\x85", "i", "n", "f", "a"]
    texts = TYPED + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 7))) for _ in range(4000)]
    numbers = CELLS + [rnd.choice([1, -1]) * rnd.randint(1, 100_000) / 2 ** rnd.randint(1, 20) for _ in range(2000)]
    numbers += [v for v in (struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0] for _ in range(1000))
                if math.isfinite(v)]
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><meta charset='utf-8'><body><script>" + live.script() + "</script>")
        parsed, cells = page.evaluate("([ts, vs]) => [ts.map(t => cnnvizLive.parseEntry(t)), "
                                      "vs.map(v => cnnvizLive.format4g(v))]", [texts, numbers])
    finally:
        page.close()
    for text, got in zip(texts, parsed):
        try:
            assert got == {"value": parse_entry(text)}, text
        except ValueError as err:
            assert got == {"error": str(err)}, text
    assert sum("value" in g for g in parsed) > 500 and sum("error" in g for g in parsed) > 500
    assert cells == [live._cell_text(v) for v in numbers]
    assert cells[:2] == ["0.01562", "-0.01562"]  # 0.015625: a tie, to the even digit


@pytest.mark.browser
@pytest.mark.parametrize("without", ["WebAssembly", "SIMD"])
def test_without_webassembly_simd_the_editor_computes_in_javascript(browser, without, tmp_path):
    """A browser with no WebAssembly, or one whose WebAssembly refuses SIMD (validate says no): the editor computes
    with the JavaScript loops, silently, and its output is still Python's."""
    block = live.kernel_editor_html("camera", "laplacian", photos=["camera"], max_side=64, color=True, inline=True)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.add_init_script("delete window.WebAssembly;" if without == "WebAssembly"
                             else "WebAssembly.validate = () => false;")
        (tmp_path / "page.html").write_text("<!doctype html><meta charset='utf-8'><body>" + block + "</body>",
                                            encoding="utf-8")
        page.goto((tmp_path / "page.html").as_uri())
        assert page.evaluate("() => typeof WebAssembly") == ("undefined" if without == "WebAssembly" else "object")
        host = page.locator(".cnnviz-live-host").first
        for name in ("laplacian", "gaussian blur 5×5"):
            _choose(host, "preset", name)
            want = _expected(live.photo_pixels("camera", 64, True), PRESETS[name], _editor_state(host)["mode"], True)
            assert np.abs(_pixels(host)[..., :3].astype(int) - want.astype(int)).max() <= 1, name
            assert _engine(host) == "JavaScript"
        assert errors == []
    finally:
        page.close()


def _settings_grid():
    grid = []
    for n in (1, 2, 3, 5, 7, 10, 16):
        for f in (1, 2, 3, 4, 5, 7):
            for p in (0, 1, 3, "valid", "same"):
                for s in (1, 2, 3):
                    for d in (1, 2, 3):
                        c_in, c_out = (3, 16) if (n + f + s + d) % 2 else (1, 1)
                        grid.append(dict(n=n, f=f, p=p, s=s, d=d, c_in=c_in, c_out=c_out))
    return grid


@pytest.mark.browser
def test_conv_explorer_in_the_book_computes_what_python_computes(site, browser):
    """For a grid of settings (impossible ones included) the page shows conv_arithmetic_text's formula, and
    its output size, parameters and MACs are cnnviz.layers'; an impossible setting gets Python's sentence
    and the last picture that worked stays."""
    page, errors, outside = _open(browser, f"{site}/book/02_padding_stride_pooling.html")
    try:
        host = page.locator(".cnnviz-live-host").filter(has=page.locator(".cnnviz-live-ce")).first
        grid = _settings_grid()
        results = host.evaluate("(h, grid) => grid.map(kw => h.cnnvizLive.set(kw))", grid)
        worked = failed = 0
        last_good = None
        for kw, got in zip(grid, results):
            try:
                text = conv_arithmetic_text(**kw)
            except ValueError as err:
                assert got["message"] == f"{err}{KEEP_PICTURE}", kw
                assert got["shown"] == last_good, kw                # the picture of the last setting that worked
                failed += 1
                continue
            p = got["p"]
            _, h_out, w_out = conv_output_shape(kw["c_in"], kw["n"], kw["n"], kw["c_out"], kw["f"], p, kw["s"], kw["d"])
            assert got["message"] == "" and got["formula"] == text, kw
            assert (got["hOut"], got["params"], got["macs"]) == (
                h_out, conv_params(kw["c_in"], kw["c_out"], kw["f"]),
                conv_macs(kw["c_in"], kw["n"], kw["n"], kw["c_out"], kw["f"], p, kw["s"], kw["d"])), kw
            assert got["frames"] == h_out * w_out
            last_good = got["shown"]
            worked += 1
        assert worked > 500 and failed > 500, (worked, failed)
        # the formula is drawn as text with bold numbers, never parsed as HTML
        host.evaluate("h => h.cnnvizLive.set({n: 7, f: 3, p: 1, s: 2, d: 1, c_in: 3, c_out: 8})")
        assert host.locator(".cnnviz-live-formula b").first.text_content() == "output size"
        # → steps the window, ← steps back, Play advances by itself
        host.locator(".cnnviz-live-ce").focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        assert host.evaluate("h => h.cnnvizLive.position()") == 2
        page.keyboard.press("ArrowLeft")
        assert host.evaluate("h => h.cnnvizLive.position()") == 1
        assert "(0, 1), 2 of 16" in host.locator(".cnnviz-live-where").text_content()
        host.locator("button").click()
        host.evaluate("h => new Promise(done => { const t = setInterval(() => { if (h.cnnvizLive.position() >= 2) "
                      "{ clearInterval(t); done(); } }, 50); })")
        host.locator("button").click()
        assert host.locator("button").text_content().endswith("play")
        timings = host.evaluate("h => h.cnnvizLive.timings.slice()")
        _report(f"convolution explorer in the book ({len(timings)} setting changes): median {np.median(timings):.2f} ms, "
                f"90th percentile {np.percentile(timings, 90):.2f} ms")
        SHOTS.mkdir(exist_ok=True)
        host.screenshot(path=str(SHOTS / "live_conv_explorer.png"))
        assert errors == [] and outside == []
    finally:
        page.close()


@pytest.mark.browser
def test_blocks_run_in_jupyterlab_output_cells(lab, browser, tmp_path):
    """The same blocks, displayed by a notebook in JupyterLab (the module inline), mount and compute."""
    import nbformat
    from urllib.parse import urlparse

    from browser import WAIT_MS
    base, token = lab
    scratch = ROOT / "_build" / "live_check.ipynb"
    scratch.parent.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("from cnnviz import live\nlive.KernelEditorLive('coins', 'laplacian', "
                                          "photos=['coins'], max_side=128)"),
                nbformat.v4.new_code_cell("live.ConvExplorerLive(n=6, f=3, p='same')")]
    nbformat.write(nb, scratch)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    errors, outside = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("data:", "blob:")) or urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(f"{base}/lab/tree/_build/live_check.ipynb?token={token}&reset")
        page.wait_for_function("""() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle' && w.context.path.endsWith('live_check.ipynb');
        }""")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function("() => document.querySelectorAll('.cnnviz-live-host').length === 2 && "
                               "[...document.querySelectorAll('.cnnviz-live-host')].every(h => h.cnnvizLive) && "
                               "document.querySelector('.cnnviz-live-ke').closest('.cnnviz-live-host').dataset.rendered")
        editor = page.locator(".cnnviz-live-host").filter(has=page.locator(".cnnviz-live-ke")).first
        want = _expected(live.photo_pixels("coins", 128, False), PRESETS["laplacian"], "abs", False)
        diff = np.abs(_pixels(editor)[..., :3].astype(int) - want.astype(int))
        assert diff.max() <= 1
        explorer = page.locator(".cnnviz-live-host").filter(has=page.locator(".cnnviz-live-ce")).first
        got = explorer.evaluate("h => h.cnnvizLive.set({n: 9, f: 5, p: 'same', s: 1, d: 1, c_in: 2, c_out: 4})")
        assert got["formula"] == conv_arithmetic_text(9, 5, "same", 1, 1, 2, 4)
        assert errors == [] and outside == []
    finally:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "live_in_jupyterlab.png"))  # also when it failed: what Lab showed
        page.close()
        scratch.unlink(missing_ok=True)


@pytest.mark.browser
def test_without_scripts_the_page_says_what_to_do(site, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        for chapter, widget in (("01_convolution", "KernelEditor"), ("02_padding_stride_pooling", "ConvExplorer")):
            page.goto(f"{site}/book/{chapter}.html")
            fallback = page.locator(".cnnviz-live-fallback").first
            assert fallback.is_visible()
            assert "needs JavaScript" in fallback.text_content() and widget in fallback.text_content()
    finally:
        context.close()
