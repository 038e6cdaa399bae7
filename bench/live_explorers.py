"""How fast the live explorers (``cnnviz.live``) redraw in chromium on this CPU.

    python bench/live_explorers.py             # 60 keystrokes / setting changes per row
    python bench/live_explorers.py --reps 200

Goal (issue: the explorers computing in the page): a keystroke in the kernel editor's grid redraws the
output of a 512×512 colour photo in at most 16 ms (one frame at 60 Hz); a setting change in the
convolution explorer redraws in at most 16 ms. Two figures per row, median / 90th percentile in ms:

- ``handler``: the page's own work, from the input event to the new pixels handed to the canvas
  (``performance.now()`` around it, recorded by the explorer; with a large photo and kernel the work is
  split across Web Workers, and this is the time until the last band is back and drawn);
- ``to frame``: from dispatching the keystroke to the next animation frame after the new pixels, which
  adds the browser's event handling (what a reader waits for, short of the compositor's paint).

Each keystroke waits for the previous one's picture (a person types far slower than this).

Every kernel-editor row runs twice: on WebAssembly SIMD (the page's default where the browser runs it) and on
the JavaScript loops (``window.cnnvizLiveWasm = "never"``, what browsers without WebAssembly SIMD run); the
"computed by" column is what the page's own explanation line names.

Runs Debian's chromium headless through Playwright, like the browser tests; asserts nothing.
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from cnnviz import live

GOAL_MS = 16.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# keystrokes: a cell's new text each time, so every one is a new kernel
TYPE_3 = """(async (reps) => {
  const host = document.querySelector('.cnnviz-live-host'); const api = host.cnnvizLive;
  const cell = api.cells()[4]; const frames = [];
  const before = api.timings.length;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    cell.value = String(5 + (r % 7) / 8);
    const seen = Number(host.dataset.rendered);
    cell.dispatchEvent(new Event('input', {bubbles: true}));
    while (host.dataset.busy || Number(host.dataset.rendered) === seen) { await new Promise(r => setTimeout(r, 0)); }
    await new Promise(requestAnimationFrame);
    frames.push(performance.now() - t0);
  }
  return {handler: api.timings.slice(before), frame: frames};
})"""

# a preset chosen from the menu, alternating between two separable 5×5 blurs
PRESET_5 = """(async (reps) => {
  const host = document.querySelector('.cnnviz-live-host'); const api = host.cnnvizLive;
  const menu = host.querySelector('select[aria-label="preset"]'); const frames = [];
  const before = api.timings.length;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    menu.value = r % 2 ? 'box blur 5×5' : 'gaussian blur 5×5';
    const seen = Number(host.dataset.rendered);
    menu.dispatchEvent(new Event('change'));
    while (host.dataset.busy || Number(host.dataset.rendered) === seen) { await new Promise(r => setTimeout(r, 0)); }
    await new Promise(requestAnimationFrame);
    frames.push(performance.now() - t0);
  }
  return {handler: api.timings.slice(before), frame: frames};
})"""

SETTINGS = """(async (reps) => {
  const hosts = document.querySelectorAll('.cnnviz-live-host'); const api = hosts[hosts.length - 1].cnnvizLive;
  const frames = []; const before = api.timings.length;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    api.set({n: 8 + (r % 8), f: 3 + (r % 2) * 2, p: r % 3, s: 1 + (r % 2), d: 1, c_in: 3, c_out: 16});
    await new Promise(requestAnimationFrame);
    frames.push(performance.now() - t0);
  }
  return {handler: api.timings.slice(before), frame: frames};
})"""


def _stats(values):
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.9 * len(values)))]


ENGINES = (("WebAssembly SIMD", "() => { delete window.cnnvizLiveWasm; }"),
           ("JavaScript", "() => { window.cnnvizLiveWasm = 'never'; }"))
ENGINE_SHOWN = """() => { const t = document.querySelector('.cnnviz-live-explain').textContent;
  const m = t.match(/ms in this page \\(([^)]*)\\)/); return m ? m[1] : '?'; }"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=60, help="keystrokes or setting changes per row (default 60)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []

    def measure(page, label, script):
        """The same keystrokes on each engine (window.cnnvizLiveWasm); the engine the page names is the row's."""
        for _, switch in ENGINES:
            page.evaluate(switch)
            page.evaluate(script, 10)  # warm the JIT (and WebAssembly's optimising tier)
            result = page.evaluate(script, args.reps)
            rows.append((label, page.evaluate(ENGINE_SHOWN), result))
        page.evaluate(ENGINES[0][1])

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        for label, kernel, color in [("3×3 Sobel x (separable), colour", "sobel x", True),
                                     ("3×3 Laplacian (not separable), colour", "laplacian", True),
                                     ("5×5 blurs from the preset menu (separable), colour", "gaussian blur 5×5", True),
                                     ("3×3 Laplacian, grayscale", "laplacian", False)]:
            page_path = Path(tmp) / "page.html"
            page_path.write_text("<!doctype html><meta charset='utf-8'><body>"
                                 + live.kernel_editor_html("astronaut", kernel, photos=["astronaut"], color=color,
                                                           max_side=512, inline=True)
                                 + live.conv_explorer_html(inline=True) + "</body>", encoding="utf-8")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri())
            page.wait_for_function("document.querySelector('.cnnviz-live-host').dataset.rendered")
            measure(page, "kernel editor 512×512: " + label, PRESET_5 if "menu" in label else TYPE_3)
            if "not separable" in label and color:
                # a 5×5 kernel nobody can separate: the worst case (25 products a pixel and channel)
                page.evaluate("""() => { const api = document.querySelector('.cnnviz-live-host').cnnvizLive;
                    const m = document.querySelector('select[aria-label="kernel size"]');
                    m.value = '5'; m.dispatchEvent(new Event('change')); }""")
                for k in range(25):
                    page.evaluate(f"""() => {{ const c = document.querySelector('.cnnviz-live-host').cnnvizLive.cells()[{k}];
                        c.value = '{(k * k * 7 + 3) % 11 - 5}'; c.dispatchEvent(new Event('input')); }}""")
                measure(page, "kernel editor 512×512: 5×5 dense (not separable), colour",
                        TYPE_3.replace("cells()[4]", "cells()[12]"))
            if kernel == "sobel x":
                page.evaluate(SETTINGS, 10)
                rows.append(("convolution explorer: a setting change (C_in 3, C_out 16)", "",
                             page.evaluate(SETTINGS, args.reps)))
            page.close()
        version = browser.version
        browser.close()
    print(f"chromium {version}, headless, --disable-gpu; {args.reps} per row; goal {GOAL_MS:.0f} ms")
    width = max(len(label) for label, _, _ in rows)
    print(f"{'row':<{width}} {'computed by':<17} {'handler ms (median/p90)':>24} {'to frame ms (median/p90)':>26}")
    for label, engine, result in rows:
        h, f = _stats(result["handler"]), _stats(result["frame"])
        print(f"{label:<{width}} {engine:<17} {h[0]:>10.1f} / {h[1]:<10.1f} {f[0]:>12.1f} / {f[1]:<10.1f}")


if __name__ == "__main__":
    sys.exit(main())
