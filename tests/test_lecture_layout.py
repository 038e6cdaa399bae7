"""Every instructor notebook in widgets/, projected: JupyterLab at 1280×720 and 1024×768, file browser closed.

Each notebook is run as an instructor runs it (run all; its hidden setup cell turns the lecture layout on);
then the page scrolls to the widget and measures, at both sizes:
- the main picture (``.cnnviz-lecture-picture``) and the primary controls (``.cnnviz-lecture-primary``) lie
  fully inside the notebook's visible area (not under Lab's menus or status bar);
- the picture's images (img, svg, canvas) cover at least a third of the viewport's area;
- nothing scrolls horizontally (the page, the notebook, the widget);
- no text in the widget is below 18 px: every visible text node, every control's own text, and the text of
  inline SVG pictures at the size it is drawn on the screen.
Where a widget steps (a ``.cnnviz-lecture-next`` button), pressing → steps it and ← steps back; where it has a Play
button, Play animates the picture.
Screenshots go to /tmp/cnnviz-shots/lecture_<notebook>_<width>x<height>.png, to look at.
"""
from pathlib import Path

import pytest
from browser import WAIT_MS
from test_lab_browser import _check_offline_and_quiet, _notebook

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path("/tmp/cnnviz-shots")
SIZES = [(1280, 720), (1024, 768)]
MIN_TEXT_PX = 18
NOTEBOOKS = sorted(p.name for p in (ROOT / "widgets").glob("*.ipynb"))

# What the page measures. The visible area is the notebook's scrolling panel clipped to the window.
MEASURE = """() => {
  const root = document.querySelector('.cnnviz-lecture');
  let scroller = document.querySelector('.cnnviz-lecture').parentElement;  // the notebook's scrolling panel
  while (scroller && !(['auto', 'scroll'].includes(getComputedStyle(scroller).overflowY)
                            && scroller.scrollHeight > scroller.clientHeight + 1)) scroller = scroller.parentElement;
  const v = scroller.getBoundingClientRect();
  const area = {left: Math.max(v.left, 0), top: Math.max(v.top, 0),
                right: Math.min(v.right, innerWidth), bottom: Math.min(v.bottom, innerHeight)};
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width,
                             height: r.height}; };
  const shown = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
                       return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const pictures = [...root.querySelectorAll('.cnnviz-lecture-picture')].filter(shown);
  const images = pictures.flatMap(p => [p, ...p.querySelectorAll('img, canvas, svg')]
      .filter(e => e.matches('img, canvas, svg'))
      .filter(e => shown(e) && !(e.tagName.toLowerCase() === 'svg' && e.parentElement.closest('svg'))));
  const small = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const e = n.parentElement;
    if (!n.textContent.trim() || !e || e.closest('style, script, option') || !shown(e)) continue;
    let px = parseFloat(getComputedStyle(e).fontSize);
    const svg = e.closest('svg');
    if (svg && e.getScreenCTM) {          // SVG text: its font size times the picture's scale on the screen
      const m = e.getScreenCTM(); px *= Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
    }
    if (px < MIN - 0.01) small.push([n.textContent.trim().slice(0, 40), Math.round(px * 10) / 10]);
  }
  for (const e of root.querySelectorAll('input, select, button, textarea')) {
    if (!shown(e)) continue;
    const px = parseFloat(getComputedStyle(e).fontSize);
    const text = (e.value || e.textContent || '').trim();
    if (text && px < MIN - 0.01) small.push([e.tagName + ':' + text.slice(0, 30), px]);
  }
  const wide = [document.scrollingElement, scroller, root, ...root.querySelectorAll('*')]
      .filter(e => e && e.scrollWidth > e.clientWidth + 1 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
                   || e === document.scrollingElement && e.scrollWidth > e.clientWidth + 1)
      .map(e => (e.className && e.className.baseVal === undefined ? e.className : e.tagName) + ' ' + e.scrollWidth
                + '>' + e.clientWidth);
  return {area, viewport: [innerWidth, innerHeight], pictures: pictures.map(box),
          primary: [...root.querySelectorAll('.cnnviz-lecture-primary')].filter(shown).map(box),
          imageArea: images.reduce((a, e) => { const r = e.getBoundingClientRect();
                                               return a + r.width * r.height; }, 0),
          small, wide};
}""".replace("MIN", str(MIN_TEXT_PX))

READY = """() => {
  const root = document.querySelector('.cnnviz-lecture');
  if (!root) return false;
  const pics = [...root.querySelectorAll('.cnnviz-lecture-picture')];
  return pics.length > 0 && pics.every(p => {
    const imgs = [p, ...p.querySelectorAll('img')].filter(e => e.matches('img'));
    return p.querySelector('svg, canvas') || (imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0));
  });
}"""


def _inside(box, area):
    return (box["left"] >= area["left"] - 0.5 and box["top"] >= area["top"] - 0.5
            and box["right"] <= area["right"] + 0.5 and box["bottom"] <= area["bottom"] + 0.5)


def _settle(page):
    """Let the layout settle, then put the widget's top at the top of the notebook's visible area."""
    page.wait_for_timeout(400)
    page.evaluate("""() => {
      const root = document.querySelector('.cnnviz-lecture');
      let scroller = root.parentElement;
      while (scroller && !(['auto', 'scroll'].includes(getComputedStyle(scroller).overflowY)
                            && scroller.scrollHeight > scroller.clientHeight + 1)) scroller = scroller.parentElement;
      scroller.scrollTop += root.getBoundingClientRect().top - scroller.getBoundingClientRect().top - 4;
    }""")
    page.wait_for_timeout(300)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_instructor_notebook_fits_a_projector(lab, browser, notebook):
    SHOTS.mkdir(exist_ok=True)
    stem = notebook.removesuffix(".ipynb")
    with _notebook(browser, lab, f"widgets/{notebook}", viewport=SIZES[0]) as (page, errors, outside):
        try:
            page.wait_for_function(READY, timeout=WAIT_MS)
        except Exception:
            page.screenshot(path=str(SHOTS / f"lecture_{stem}_not_ready.png"))
            raise
        page.evaluate("window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight()")
        failures = []
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            _settle(page)
            page.screenshot(path=str(SHOTS / f"lecture_{stem}_{width}x{height}.png"))
            m = page.evaluate(MEASURE)
            where = f"{notebook} at {width}×{height}"
            if not m["pictures"] or not m["primary"]:
                failures.append(f"{where}: no picture or no primary controls marked")
            for name, boxes in (("picture", m["pictures"]), ("primary control", m["primary"])):
                failures += [f"{where}: a {name} is not inside the visible area {m['area']}: {b}"
                             for b in boxes if not _inside(b, m["area"])]
            if m["imageArea"] < width * height / 3:
                failures.append(f"{where}: the picture covers {m['imageArea'] / (width * height):.0%} of the "
                                "viewport, less than a third")
            if m["small"]:
                failures.append(f"{where}: text below {MIN_TEXT_PX} px: {m['small'][:8]}")
            if m["wide"]:
                failures.append(f"{where}: scrolls horizontally: {m['wide']}")
        if page.locator(".cnnviz-lecture button.cnnviz-lecture-next").count():
            failures += _keys_step(page, notebook)
        if page.locator(".cnnviz-lecture .widget-play").count():
            failures += _play(page, notebook)
        _check_offline_and_quiet(errors, outside)
        assert not failures, "\n".join(failures)


# What the pictures show: images by their pixels (a blob URL changes whenever the bytes are sent again), the rest
# by their markup.
PICTURE_STATE = """() => [...document.querySelectorAll('.cnnviz-lecture .cnnviz-lecture-picture')].map(p => {
    const imgs = [p, ...p.querySelectorAll('img')].filter(e => e.matches('img'));
    if (!imgs.length) return p.innerHTML;
    return imgs.map(img => {
      const c = document.createElement('canvas'); c.width = 48; c.height = 48;
      const g = c.getContext('2d'); g.drawImage(img, 0, 0, 48, 48);
      return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
    }).join('/');
  }).join('|')"""


def _play(page, notebook):
    """The Play button still animates the picture in the lecture layout; its stop button stops it."""
    before = page.evaluate(PICTURE_STATE)
    buttons = page.locator(".cnnviz-lecture .widget-play button")
    buttons.nth(0).click()
    try:
        page.wait_for_function(f"s => ({PICTURE_STATE})() !== s", arg=before, timeout=20_000)
    except Exception:
        return [f"{notebook}: Play did not animate the picture"]
    finally:
        buttons.nth(2).click()  # stop: back to the first frame
    return []


def _keys_step(page, notebook):
    """→ and ← step the widget, as an instructor presses them with the notebook focused (JupyterLab's command
    mode), not a control: one of them changes the picture (a widget at its last step only goes back) and the
    other brings the first picture back."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})  # focus the notebook, not a widget control
    page.keyboard.press("Escape")
    before = page.evaluate(PICTURE_STATE)

    def changed(timeout=8_000):
        try:
            page.wait_for_function(f"s => ({PICTURE_STATE})() !== s", arg=before, timeout=timeout)
            return True
        except Exception:
            return False

    first, second = "ArrowRight", "ArrowLeft"
    page.keyboard.press(first)
    if not changed():
        first, second = "ArrowLeft", "ArrowRight"
        page.keyboard.press(first)
        if not changed(20_000):
            return [f"{notebook}: neither → nor ← stepped the widget"]
    page.keyboard.press(second)
    try:
        page.wait_for_function(f"s => ({PICTURE_STATE})() === s", arg=before, timeout=20_000)
    except Exception:
        return [f"{notebook}: {first} stepped the widget but {second} did not step it back"]
    return []
