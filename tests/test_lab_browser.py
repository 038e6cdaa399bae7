"""The instructor's kernel editor notebook in a real JupyterLab, driven by Debian's chromium.

Starts JupyterLab (the ``lab`` fixture of tests/conftest.py: offline, random port and token, scratch
settings), opens
widgets/kernel_editor.ipynb, runs all cells and edits the kernel grid like a
person: a number updates the output image, a typo shows a message and keeps it.
Screenshots go to /tmp/lab_kernel_editor_*.png.
"""
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import WAIT_MS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "widgets/kernel_editor.ipynb"
SHOTS = Path("/tmp")

# The kernel editor's output is the second widget image inside the editor (input first).
OUTPUT_IMG = ".cnnviz-ke img.widget-image >> nth=1"
CELL_INPUT = ".cnnviz-ke .cnnviz-cell input"
def test_kernel_editor_in_jupyterlab(lab, browser):
    base, token = lab
    original = (ROOT / NOTEBOOK).read_bytes()
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    page.set_default_timeout(WAIT_MS)
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)

    def route(r):  # Lab must work offline: refuse (and record) anything not served by this Lab
        if r.request.url.startswith(("data:", "blob:")) or urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}&reset")
        page.wait_for_function("""() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle' && w.context.path.endsWith('kernel_editor.ipynb');
        }""")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        output = page.locator(OUTPUT_IMG)
        output.wait_for(state="visible")
        page.wait_for_function("""() => {
            const img = document.querySelectorAll('.cnnviz-ke img.widget-image')[1];
            return img && img.src.startsWith('blob:') && img.naturalWidth > 0;
        }""")
        editor = page.locator(".cnnviz-ke").first
        editor.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "lab_kernel_editor_1_rendered.png"))
        editor.screenshot(path=str(SHOTS / "lab_kernel_editor_2_widget.png"))
        # Input and output side by side, each large enough to read on a projector.
        images = page.locator(".cnnviz-ke img.widget-image")
        left, right = images.nth(0).bounding_box(), images.nth(1).bounding_box()
        assert abs(left["y"] - right["y"]) < 5 and right["x"] >= left["x"] + left["width"]
        assert left["width"] >= 320 and right["width"] >= 320, (left, right)  # large enough to project

        # A person types 5 in the first kernel cell and presses Enter: the output changes.
        before = output.get_attribute("src")
        cell = page.locator(CELL_INPUT).first
        cell.fill("5")
        cell.press("Enter")
        page.wait_for_function(
            "before => document.querySelectorAll('.cnnviz-ke img.widget-image')[1].src !== before", arg=before)
        changed = output.get_attribute("src")
        assert changed != before
        page.screenshot(path=str(SHOTS / "lab_kernel_editor_3_edited.png"))

        # A typo: a message says what is wrong and the output keeps the last valid kernel.
        cell.fill("abc")
        cell.press("Enter")
        message = page.locator(".cnnviz-ke").get_by_text("not a number")
        message.wait_for(state="visible")
        assert "abc" in message.inner_text()
        # No render is requested for an invalid kernel; give a stray one time to arrive before checking.
        page.wait_for_timeout(1000)
        assert output.get_attribute("src") == changed
        page.screenshot(path=str(SHOTS / "lab_kernel_editor_4_typo.png"))

        # The badge image in the first cell is the notebook's own content; nothing else may leave.
        outside = [u for u in outside if u != "https://colab.research.google.com/assets/colab-badge.svg"]
        assert not outside, f"JupyterLab tried to reach the internet: {outside}"
        widget_errors = [e for e in errors if "widget" in e.lower() or "cnnviz" in e.lower()]
        assert not widget_errors, widget_errors
        if errors:
            print("console errors (not about widgets):", *errors, sep="\n  ")
    finally:
        page.close()
        assert (ROOT / NOTEBOOK).read_bytes() == original, "JupyterLab saved the notebook during the test"


@contextmanager
def _notebook(browser, lab, notebook, viewport=(1600, 1500)):
    """Open ``notebook`` in the Lab and run all cells; yield the page and its error and outside-request lists.
    Afterwards the page is closed and the notebook must be as it was (JupyterLab saved nothing)."""
    original = (ROOT / notebook).read_bytes()
    base, token = lab
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page.set_default_timeout(WAIT_MS)
        errors, outside = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def route(r):
            if r.request.url.startswith(("data:", "blob:")) or urlparse(r.request.url).hostname == "127.0.0.1":
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset")
        page.wait_for_function("""name => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle' && w.context.path.endsWith(name);
        }""", arg=notebook.split("/")[-1])
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        yield page, errors, outside
    finally:
        page.close()
        assert (ROOT / notebook).read_bytes() == original, "JupyterLab saved the notebook during the test"


def _check_offline_and_quiet(errors, outside):
    outside = [u for u in outside if u != "https://colab.research.google.com/assets/colab-badge.svg"]
    assert not outside, f"JupyterLab tried to reach the internet: {outside}"
    widget_errors = [e for e in errors if "widget" in e.lower() or "cnnviz" in e.lower()]
    assert not widget_errors, widget_errors


# the diagram's title, also where the lecture layout prints it beside the diagram instead of in it
_DIAGRAM_TITLE = "() => { const t = document.querySelector('.cnnviz-arch .cnnviz-diagram svg'); " \
                 "return t ? t.getAttribute('aria-label') : ''; }"


def test_architecture_explorer_in_jupyterlab(lab, browser):
    """widgets/architecture_explorer.ipynb: run all, pick ResNet-50 in the menu (the diagram changes),
    move the block slider, type a too-small input for AlexNet (a sentence, the diagram stays).
    Screenshots go to /tmp/lab_architecture_explorer_*.png."""
    notebook = "widgets/architecture_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        page.wait_for_function(f"() => ({_DIAGRAM_TITLE})().startsWith('vgg16 on a 3×224×224 input')")
        explorer = page.locator(".cnnviz-arch").first
        explorer.scroll_into_view_if_needed()
        box = page.locator(".cnnviz-arch .cnnviz-diagram svg").first.bounding_box()
        assert box["width"] >= 800, box  # the lecture layout shows it 1.5× larger than drawn: readable when projected
        explorer.screenshot(path=str(SHOTS / "lab_architecture_explorer_1_vgg16.png"))

        page.locator(".cnnviz-arch select").first.select_option(label="ResNet: resnet50")
        page.wait_for_function(f"() => ({_DIAGRAM_TITLE})().startsWith('resnet50 on a 3×224×224 input: 20 blocks')")
        # the table is a second widget, updated after the diagram: wait until it has changed too
        page.wait_for_function("""() => document.querySelectorAll('.cnnviz-arch .cnnviz-table tr').length === 22
            || !!document.querySelector('.cnnviz-arch .cnnviz-table')?.textContent.includes('Bottleneck')""")
        assert page.locator(".cnnviz-arch .cnnviz-table tr").count() == 20 + 2
        assert "Inception" not in explorer.inner_text() and "BottleneckV1" in explorer.inner_text()

        before = page.locator(".cnnviz-arch .cnnviz-diagram").inner_html()
        handle = page.locator(".cnnviz-arch .widget-slider .noUi-handle, .cnnviz-arch .widget-slider .ui-slider-handle")
        handle.first.click()
        page.keyboard.press("Home")  # the first block: the stem convolution
        page.wait_for_function("""before => {
            const d = document.querySelector('.cnnviz-arch .cnnviz-diagram');
            return d && d.innerHTML !== before; }""", arg=before)
        assert "0: conv 64" in page.locator(".cnnviz-arch").first.inner_text()
        explorer.screenshot(path=str(SHOTS / "lab_architecture_explorer_2_resnet50.png"))

        page.locator(".cnnviz-arch select").first.select_option(label="AlexNet: alexnet")
        page.wait_for_function(f"() => ({_DIAGRAM_TITLE})().startsWith('alexnet on a 3×227×227 input')")
        size = page.locator(".cnnviz-arch input[type=number]").first
        size.fill("32")
        size.press("Enter")
        message = explorer.get_by_text("too small")
        message.wait_for(state="visible")
        assert "67×67" in message.inner_text() and "Traceback" not in explorer.inner_text()
        page.wait_for_timeout(500)
        assert page.evaluate(_DIAGRAM_TITLE).startswith("alexnet on a 3×227×227 input")
        explorer.screenshot(path=str(SHOTS / "lab_architecture_explorer_3_too_small.png"))
        _check_offline_and_quiet(errors, outside)


def test_inception_cost_explorer_in_jupyterlab(lab, browser):
    """widgets/inception_cost_explorer.ipynb: run all, see the lecture's 854 M vs 271 M, switch off the
    3×3 reduction and pick GoogLeNet's 4e. Screenshots go to /tmp/lab_inception_cost_explorer_*.png."""
    notebook = "widgets/inception_cost_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        explorer = page.locator(".cnnviz-inc").first
        explorer.get_by_text("this module: 271 M MACs").wait_for(state="visible")
        assert "naive: 854 M MACs" in explorer.inner_text()
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "lab_inception_cost_explorer_1_lecture.png"))
        page.locator(".cnnviz-inc input[type=checkbox]").first.click()  # the 3×3 branch's reduction off
        explorer.get_by_text("this module: 519 M MACs").wait_for(state="visible")  # 271 − 99.5 + 347 M
        page.locator(".cnnviz-inc select").first.select_option(label="GoogLeNet inception4e (14×14×528)")
        explorer.get_by_text("this module: 170 M MACs").wait_for(state="visible")
        explorer.screenshot(path=str(SHOTS / "lab_inception_cost_explorer_2_4e.png"))
        _check_offline_and_quiet(errors, outside)


def test_feature_map_explorer_in_jupyterlab(lab, browser):
    """widgets/feature_map_explorer.ipynb: run all (ShapesNet, trained once and cached by the book build),
    see a grid of maps, choose another map with the buttons under it (the detail pane follows, with its
    deconvnet projection and top nine patches), switch layer. Screenshots go to /tmp/lab_feature_map_explorer_*.png."""
    notebook = "widgets/feature_map_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        explorer = page.locator(".cnnviz-fm").first
        explorer.get_by_text("channel", exact=False).first.wait_for(state="visible", timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('.cnnviz-fm img[src^=\"data:image/png\"]').length >= 16",
                               timeout=120_000)
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "lab_feature_map_explorer_1_relu1.png"))
        buttons = page.locator(".cnnviz-fm .cnnviz-pick button")
        assert buttons.count() >= 16
        label = buttons.nth(3).inner_text().strip().lstrip("#")
        buttons.nth(3).click()
        explorer.get_by_text(f"channel {label} of features.relu1", exact=False).wait_for(state="visible")
        explorer.get_by_text(f"The top 9 of channel {label} (features.relu1)", exact=False).wait_for(
            state="visible", timeout=60_000)
        page.locator(".cnnviz-fm select").filter(has_text="features.relu3").select_option(label="features.relu3")
        explorer.get_by_text("features.relu3: 64 maps of 8×8", exact=False).wait_for(state="visible")
        page.wait_for_timeout(1500)
        assert "Traceback" not in explorer.inner_text()
        explorer.screenshot(path=str(SHOTS / "lab_feature_map_explorer_2_relu3.png"))
        _check_offline_and_quiet(errors, outside)


@pytest.mark.parametrize("notebook, css, done", [
    ("widgets/occlusion_explorer.ipynb", ".cnnviz-oc", "done: "),
    ("widgets/attribution_explorer.ipynb", ".cnnviz-at", "map(s), done in"),
    ("widgets/filter_gallery.ipynb", ".cnnviz-fg", "32 filters of 7×7×3"),
])
def test_visualising_widgets_in_jupyterlab(lab, browser, notebook, css, done):
    """The occlusion, attribution and filter widgets' notebooks: run all; the widget computes its first view
    (no traceback, nothing fetched from outside). Screenshots go to /tmp/lab_<notebook>.png."""
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        widget = page.locator(css).first
        widget.get_by_text(done, exact=False).first.wait_for(state="visible", timeout=120_000)
        page.wait_for_function(f"""() => {{ const imgs = [...document.querySelectorAll('{css} img')];
            return imgs.length >= 1 && imgs.every(i => i.complete && i.naturalWidth > 0); }}""")
        widget.scroll_into_view_if_needed()
        assert "Traceback" not in widget.inner_text() and "⚠" not in widget.inner_text()
        widget.screenshot(path=str(SHOTS / f"lab_{Path(notebook).stem}.png"))
        _check_offline_and_quiet(errors, outside)


def test_signal_flow_explorer_in_jupyterlab(lab, browser):
    """widgets/signal_flow_explorer.ipynb: run all (the trainability map is cached by the book build), see He's
    ReLU network level; choose N(0, σ²) and tanh (the signal vanishes); click a cell of the map (its network is
    shown). Screenshots go to /tmp/lab_signal_flow_explorer_*.png."""
    notebook = "widgets/signal_flow_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        explorer = page.locator(".cnnviz-sf").first
        explorer.get_by_text("std of the activations, layer 1").wait_for(state="visible", timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('.cnnviz-sf svg image').length === 2")
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "lab_signal_flow_explorer_1_he.png"))
        page.locator(".cnnviz-sf select").nth(0).select_option(label="N(0, σ²)")
        page.locator(".cnnviz-sf select").nth(1).select_option(label="tanh")
        explorer.get_by_text("… at layer 50").wait_for(state="visible")
        # the tanh network's own numbers, not those of the ReLU render in between (its std is 0 too, but its
        # units are all inactive; a tanh near 0 is in its linear range: none is)
        page.wait_for_function("""() => [...document.querySelectorAll('.cnnviz-sf svg text')]
            .some(t => t.textContent === 'activations: std at layer 50 = 0')
            && [...document.querySelectorAll('.cnnviz-sf div')].some(d => d.textContent === 'inactive at layer 50'
                && d.nextElementSibling && d.nextElementSibling.textContent === '0 %')""")
        explorer.screenshot(path=str(SHOTS / "lab_signal_flow_explorer_2_tanh.png"))
        cells = page.locator(".cnnviz-sf button", has_text="×")
        assert cells.count() >= 1                       # the map is there, with diverged runs
        cells.first.click()
        explorer.get_by_text("Selected cell").wait_for(state="visible")
        explorer.get_by_text("diverged at step", exact=False).first.wait_for(state="visible")
        page.wait_for_timeout(500)
        assert "Traceback" not in explorer.inner_text()
        explorer.screenshot(path=str(SHOTS / "lab_signal_flow_explorer_3_cell.png"))
        _check_offline_and_quiet(errors, outside)


def test_augmentation_explorer_in_jupyterlab(lab, browser):
    """widgets/augmentation_explorer.ipynb: run all (ShapesNet, trained once and cached by the book build), see
    the shape beside its rotation and checkerboard, the mosaic of random draws with the label meter and the
    pipeline's code; choose the hue (a colour transformation: no checkerboard), then the digit (the digits CNN
    reads it as a 6); "Add to pipeline" at the identity is a sentence. Screenshots go to
    /tmp/lab_augmentation_explorer_*.png."""
    notebook = "widgets/augmentation_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        explorer = page.locator(".cnnviz-au").first
        explorer.get_by_text("draws keep the label", exact=False).first.wait_for(state="visible", timeout=120_000)
        page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('.cnnviz-au img')];
            return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0); }""")
        explorer.get_by_text("train_transform = v2.Compose", exact=False).wait_for(state="visible")
        explorer.get_by_text("the same transformation on a checkerboard").wait_for(state="visible")
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "lab_augmentation_explorer_1_shapes.png"))
        page.locator(".cnnviz-au select").nth(1).select_option(label="hue")
        explorer.get_by_text("hue (shift 0)").wait_for(state="visible")
        page.locator(".cnnviz-au [title*='turn of the colour wheel']").first.wait_for()  # the slider's hint
        explorer.get_by_text("the same transformation on a checkerboard").wait_for(state="hidden")
        page.locator(".cnnviz-au select").nth(0).select_option(label="digit (8×8 handwritten)")
        explorer.get_by_text("the original is read as 6", exact=False).first.wait_for(state="visible")
        page.wait_for_function("""() => [...document.querySelectorAll('.cnnviz-au img')]
            .every(i => i.complete && i.naturalWidth > 0)""")
        explorer.screenshot(path=str(SHOTS / "lab_augmentation_explorer_2_digit_hue.png"))
        page.locator(".cnnviz-au button", has_text="Add to pipeline").click()
        explorer.get_by_text("is at its identity", exact=False).first.wait_for(state="visible")
        page.wait_for_timeout(500)
        assert "Traceback" not in explorer.inner_text()
        explorer.screenshot(path=str(SHOTS / "lab_augmentation_explorer_3_message.png"))
        _check_offline_and_quiet(errors, outside)


def test_transfer_explorer_in_jupyterlab(lab, browser):
    """widgets/transfer_explorer.ipynb: run all (the table is cached by the book build), see the empty chart and
    the two-by-two table with the book's values; choose a linear probe on relu2 of the different target and
    Start (the result lands in its cell); then fine-tune with Start and Stop at once (a stopped run is still
    placed). Screenshots go to /tmp/lab_transfer_explorer_*.png."""
    notebook = "widgets/transfer_explorer.ipynb"
    with _notebook(browser, lab, notebook) as (page, errors, outside):
        explorer = page.locator(".cnnviz-transfer").first
        explorer.get_by_text("Use a linear classifier on the top layer.").wait_for(state="visible", timeout=180_000)
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "lab_transfer_explorer_1_ready.png"))
        page.locator(".cnnviz-transfer select").nth(0).select_option(label="different: textures")
        page.locator(".cnnviz-transfer select").nth(1).select_option(label="linear probe on a layer's features")
        page.locator(".cnnviz-transfer select").nth(2).select_option(label="relu2 (features.relu2)")
        page.locator(".cnnviz-transfer button", has_text="Start").click()
        explorer.get_by_text("your run (linear probe on relu2", exact=False).wait_for(state="visible", timeout=60_000)
        explorer.get_by_text("finished", exact=False).first.wait_for(state="visible")
        explorer.screenshot(path=str(SHOTS / "lab_transfer_explorer_2_probe.png"))
        page.locator(".cnnviz-transfer select").nth(1).select_option(label="fine-tune from a layer up")
        page.locator(".cnnviz-transfer button", has_text="Start").click()
        page.wait_for_function("""() => [...document.querySelectorAll('.cnnviz-transfer svg polyline')].length >= 1""",
                               timeout=60_000)
        page.locator(".cnnviz-transfer button", has_text="Stop").click()
        explorer.get_by_text("stopped in", exact=False).first.wait_for(state="visible", timeout=60_000)
        assert "Traceback" not in explorer.inner_text()
        explorer.screenshot(path=str(SHOTS / "lab_transfer_explorer_3_stopped.png"))
        _check_offline_and_quiet(errors, outside)
