"""The built book in a real browser: every page loads offline without console errors,
and the static interactive figures respond to their controls with no kernel.

Needs the book built into _build/html (`make test` builds it first) and Debian's chromium.
"""
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import chromium

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = Path("/tmp/cnnviz-shots")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("The book is not built: run `make book` (make test does it first).")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _open(browser, url):
    """Open ``url``; record console errors, page errors and every request that leaves 127.0.0.1."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":  # blob: the page's own workers
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="networkidle")
    # Wait until every figure written in the HTML file is drawn by the local plotly.js.
    expected = (HTML / urlparse(url).path.lstrip("/")).read_text(encoding="utf-8").count('class="plotly-graph-div"')
    try:
        page.wait_for_function(f"() => document.querySelectorAll('div.js-plotly-plot').length >= {expected}",
                               timeout=30_000)
    except Exception:  # reported by the caller's assertion with the counts
        pass
    page.expected_figures = expected
    return page, errors, outside


def _pages():
    rel = (p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html"))
    return sorted(r for r in rel if not r.startswith(("_static/", "_sources/", ".")))


def test_book_has_every_chapter_of_the_course():
    pages = _pages()
    chapters = [p for p in pages if p.startswith("book/") and p[5:7].isdigit()]
    assert len(chapters) == 15, chapters  # 14 chapters; ResNet has two pages


@pytest.mark.parametrize("page_path", _pages() or ["index.html"])
def test_page_loads_offline_without_errors(server, browser, page_path):
    page, errors, outside = _open(browser, f"{server}/{page_path}")
    try:
        assert outside == [], f"{page_path} requested resources outside the machine: {outside}"
        assert errors == [], f"{page_path} logged console errors: {errors}"
        # every plotly figure on the page was drawn by the local plotly.js
        n_div = page.locator("div.plotly-graph-div").count()
        n_drawn = page.locator("div.plotly-graph-div.js-plotly-plot").count()
        assert n_div == n_drawn, f"{page_path}: {n_drawn} of {n_div} plotly figures drawn"
    finally:
        page.close()


def _visible(page, index):
    return page.evaluate(f"() => document.querySelectorAll('div.js-plotly-plot')[{index}]"
                         "._fullData.map(t => t.visible)")


def _scrub(page, gd, rail):
    """Click near one end of a slider's rail, then near the other if the first click was where the
    slider already stood; return True when the figure's picture, shapes or text changed."""
    before = gd.evaluate(_STATE)
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    for fraction in (0.97, 0.03):
        page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
        if gd.evaluate(_STATE) != before:
            return True
    return False


def _click_slider_step(page, index, fraction):
    """Click the ``index``-th figure's slider rail at ``fraction`` of its length (a label click is
    intercepted by plotly's touch rectangle, so click by coordinates)."""
    rail = page.locator("div.js-plotly-plot").nth(index).locator(".slider-rail-rect").first
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)


# Chapter 1's kernel editor and chapter 2's convolution explorer compute in the page: tests/test_live_explorers.py.


def test_conv_steps_slider_moves_the_window(server, browser):
    page, errors, _ = _open(browser, f"{server}/book/01_convolution.html")
    try:
        index = page.evaluate("""() => [...document.querySelectorAll('div.js-plotly-plot')]
            .findIndex(d => (d.layout.sliders || []).some(s => s.currentvalue.prefix.startsWith('output cell')))""")
        assert index >= 0, "the sliding-kernel figure is missing"
        shapes = "() => JSON.stringify(document.querySelectorAll('div.js-plotly-plot')[%d].layout.shapes)" % index
        text = "() => document.querySelectorAll('div.js-plotly-plot')[%d].layout.annotations.slice(-1)[0].text" % index
        before_shapes, before_text = page.evaluate(shapes), page.evaluate(text)
        assert before_text.endswith("= <b>-5</b>")
        _click_slider_step(page, index, 0.99)
        assert page.evaluate(shapes) != before_shapes
        assert page.evaluate(text).endswith("= <b>-16</b>")  # the last cell of the lecture's result
        page.locator("div.js-plotly-plot").nth(index).screenshot(path=str(SHOTS / "conv_steps.png"))
        assert errors == []
    finally:
        page.close()


_STATE = """(gd) => JSON.stringify([gd._fullData.map(t => [t.visible, t.source ? t.source.length + t.source.slice(-64) : null,
                                                     t.z ? JSON.stringify(t.z).length : null]),
                            gd.layout.shapes, (gd.layout.annotations || []).map(a => a.text)])"""


def _chapter_pages():
    return [p for p in _pages() if p.startswith("book/") and p[5:7].isdigit()]


@pytest.mark.parametrize("page_path", _chapter_pages() or ["book/01_convolution.html"])
def test_every_slider_in_a_chapter_changes_its_figure(server, browser, page_path):
    """Scrub each static explorer with no kernel: moving any visible slider must change the picture."""
    page, errors, _ = _open(browser, f"{server}/{page_path}")
    try:
        plots = page.locator("div.js-plotly-plot")
        scrubbed = 0
        for index in range(plots.count()):
            gd = plots.nth(index)
            rails = gd.locator(".slider-rail-rect")
            for k in range(rails.count()):
                rail = rails.nth(k)
                if not rail.is_visible():
                    continue  # a slider of another setting, hidden by the figure's menu
                assert _scrub(page, gd, rail), f"{page_path}: figure {index}, slider {k} changed nothing"
                scrubbed += 1
        assert errors == []
        if page_path.endswith(("01_convolution.html", "02_padding_stride_pooling.html", "03_receptive_field.html")):
            live = page.evaluate("() => [...document.querySelectorAll('.cnnviz-live-host')].filter(h => h.cnnvizLive).length")
            assert scrubbed + live >= 1, f"{page_path} has no interactive figure"  # live: tests/test_live_explorers.py
    finally:
        page.close()


@pytest.mark.parametrize("page_path", ["book/03_receptive_field.html"])
def test_explorer_menus_switch_setting_and_their_slider_scrubs(server, browser, page_path):
    """Each static explorer's menu picks another setting, whose own slider then moves its picture."""
    page, errors, _ = _open(browser, f"{server}/{page_path}")
    try:
        plots = page.locator("div.js-plotly-plot")
        menus = 0
        for index in range(plots.count()):
            gd = plots.nth(index)
            if gd.locator(".updatemenu-header-group").count() == 0:
                continue
            menus += 1
            before = gd.evaluate(_STATE)
            header = gd.locator(".updatemenu-header-group").first
            header.scroll_into_view_if_needed()
            header.click()
            items = gd.locator(".updatemenu-dropdown-button")
            items.nth(items.count() - 1).click()  # the last setting in the menu
            page.wait_for_timeout(400)
            after_menu = gd.evaluate(_STATE)
            assert after_menu != before, f"{page_path}: figure {index}'s menu changed nothing"
            rails = [r for r in gd.locator(".slider-rail-rect").all() if r.is_visible()]
            assert len(rails) == 1, f"{page_path}: figure {index} shows {len(rails)} sliders after the menu"
            assert _scrub(page, gd, rails[0]), f"{page_path}: figure {index}'s slider is dead after the menu"
            SHOTS.mkdir(exist_ok=True)
            gd.screenshot(path=str(SHOTS / f"{page_path.split('/')[-1][:-5]}_{index}.png"))
        assert menus >= 1, f"{page_path} has no explorer with a menu"
        assert errors == []
    finally:
        page.close()


def test_signal_flow_explorer_menu_and_depth_slider(server, browser):
    """Chapter 9's static signal-flow explorer with no kernel: the menu picks another network (its titles
    change), and the depth slider, now that network's, shows a shallower one."""
    page, errors, _ = _open(browser, f"{server}/book/09_batchnorm_init.html")
    try:
        index = page.evaluate("""() => [...document.querySelectorAll('div.js-plotly-plot')]
            .findIndex(d => (d.layout.sliders || []).some(s => s.currentvalue.prefix === 'depth: '))""")
        assert index >= 0, "the signal-flow explorer is missing"
        gd = page.locator("div.js-plotly-plot").nth(index)
        titles = "i => document.querySelectorAll('div.js-plotly-plot')[i].layout.annotations.map(a => a.text)"
        assert page.evaluate(titles, index)[0].startswith("without BN, activations: std at layer 50")
        gd.scroll_into_view_if_needed()
        gd.locator(".updatemenu-header-group").first.click()
        gd.locator(".updatemenu-dropdown-button", has_text="N(0, 0.01²) · tanh").first.click()
        page.wait_for_timeout(500)
        assert page.evaluate(titles, index)[0] == "without BN, activations: std at layer 50 = 0"
        _click_slider_step(page, index, 0.0)
        after = page.evaluate(titles, index)
        assert after[0].startswith("without BN, activations: std at layer 10 = ")
        gd.screenshot(path=str(SHOTS / "signal_flow_explorer.png"))
        assert errors == []
    finally:
        page.close()


def test_transfer_explorer_twin_and_layer_probes(server, browser):
    """Chapter 14 with no kernel: the static transfer explorer's slider shows another target and size (its bars
    change to that cell's measured values), and the layer-probe figure's slider another training-set size."""
    from cnnviz import transfer_study as ts

    table = ts.cached_transfer_table(progress=False)
    page, errors, _ = _open(browser, f"{server}/book/14_transfer_learning.html")
    try:
        assert "plan" not in page.locator("h1").first.inner_text().lower()
        index = page.evaluate("""() => [...document.querySelectorAll('div.js-plotly-plot')]
            .findIndex(d => (d.layout.annotations || []).some(a => a.text === 'training loss as it trains'))""")
        assert index >= 0, "the static transfer explorer is missing"
        bars = f"""() => document.querySelectorAll('div.js-plotly-plot')[{index}].data
            .filter(t => t.type === 'bar' && t.visible === true).map(t => t.x)"""
        last = page.evaluate(bars)
        big = max(table.config.sizes)
        assert len(last) == 1 and abs(last[0][0] - 100 * table.mean("different", big, "scratch")[0]) < 1e-6
        _click_slider_step(page, index, 0.0)
        first = page.evaluate(bars)
        small = min(table.config.sizes)
        assert abs(first[0][1] - 100 * table.mean("similar", small, "probe")[0]) < 1e-6
        page.locator("div.js-plotly-plot").nth(index).screenshot(path=str(SHOTS / "transfer_explorer.png"))
        probes = page.evaluate("""() => [...document.querySelectorAll('div.js-plotly-plot')]
            .findIndex(d => (d.layout.sliders || []).some(s => s.currentvalue.prefix === 'training set: '))""")
        assert probes >= 0
        before = _visible(page, probes)
        _click_slider_step(page, probes, 0.0)
        assert _visible(page, probes) != before
        page.locator("div.js-plotly-plot").nth(probes).screenshot(path=str(SHOTS / "layer_probes.png"))
        assert errors == []
    finally:
        page.close()
