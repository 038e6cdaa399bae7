"""How long a ReceptiveFieldExplorer update takes on the 512×512 astronaut photo with a 10-layer stack.

    python bench/receptive_field_explorer.py            # 50 repetitions per row
    python bench/receptive_field_explorer.py --reps 200
    python bench/receptive_field_explorer.py --threads 1   # torch on one core (the ERF rows)

Goals: redrawing the overlay when the unit or layer changes (draw on the
prepared bases + JPEG encode + caption) at most 50 ms, so dragging the unit
sliders feels immediate; the ERF, recomputed only when the stack changes and
on a worker thread, about a second at most. Prints median and 90th percentile
in milliseconds; it asserts nothing (timings belong here, not in tests/).
"""
import argparse
import os

import torch

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.data import load_image
from cnnviz.figures.receptive import overlay_bases, draw_overlay, unit_geometry, growth_chart, rf_overlay
from cnnviz.imaging import jpeg_bytes, png_bytes
from cnnviz.receptive_field import PRESETS, Layer
from cnnviz.widgets.receptive_field_explorer import ReceptiveFieldExplorer

GOAL_MS = 50.0
ERF_GOAL_MS = 1000.0




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="timed repetitions per row (default 50)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for the ERF rows (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    photo = load_image("astronaut")  # (512, 512, 3) uint8
    layers = PRESETS["10×[3×3]"]
    n = photo.shape[0]
    e = ReceptiveFieldExplorer("10×[3×3]", image=photo, input_size=n, threaded=False)
    print(f"ReceptiveFieldExplorer on the {n}×{n} astronaut photo, stack {len(layers)}×[3×3], "
          f"{args.reps} repetitions per row")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):  # other work on the machine inflates every row
        print(f"Load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"Goals: overlay update ≤ {GOAL_MS:.0f} ms (p90); ERF ≤ ~{ERF_GOAL_MS:.0f} ms, off the main thread\n")

    zoom, line = e._zoom, e._line
    bright, dim = overlay_bases(photo, zoom)
    rect, centre = unit_geometry(layers, 10, 256, 256, (n, n))
    drawn = draw_overlay(bright, dim, zoom, rect, centre, line)
    units = iter([(k % 11, (37 * k) % n, (91 * k) % n) for k in range(10 * args.reps + 100)])
    rows_iter = iter([v for _ in range(args.reps + 10) for v in (100, 400)])
    layers_iter = iter([v for _ in range(args.reps + 10) for v in (3, 9)])

    def explorer_request(layer_index):
        k, i, j = layer_index, 256, 256
        e._render_overlay((bright, dim, zoom, line, layers, n, k, i, j))

    rows = [
        ("draw on prepared bases (draw_overlay)", lambda: draw_overlay(bright, dim, zoom, rect, centre, line)),
        ("jpeg_bytes of the overlay", lambda: jpeg_bytes(drawn, quality=88)),
        ("overlay update: unit moved", lambda: explorer_request(10), True),
        ("overlay update: layer changed (+ chart)", lambda: explorer_request(next(units)[0]), True),
        ("unit row slider → new overlay (sync widget)", lambda: setattr(e.row, "value", next(rows_iter)), True),
        ("layer menu → new overlay (sync widget)", lambda: setattr(e.layer, "value", next(layers_iter)), True),
        ("rf_overlay from scratch (pure function)", lambda: rf_overlay(photo, layers, 10, 256, 256)),
        ("growth_chart + png_bytes", lambda: png_bytes(growth_chart(layers, input_size=n, highlight=5))),
    ]
    header = f"{'step':<46} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for row in rows:
        name, fn = row[0], row[1]
        med, p90 = time_ms(fn, args.reps)
        mark = ""
        if len(row) > 2:
            ok = p90 <= GOAL_MS
            verdicts.append(ok)
            mark = "  ok" if ok else "  OVER GOAL"
        print(f"{name:<46} {med:>10.1f} {p90:>8.1f}{mark}")
    print(f"\n{sum(verdicts)}/{len(verdicts)} overlay rows meet the goal (p90 ≤ {GOAL_MS:.0f} ms).\n")

    # The ERF: what the worker thread does when the stack changes (input shrunk to the field + margin).
    stacks = {"10×[3×3]": layers, "AlexNet conv1–pool2": PRESETS["AlexNet conv1–pool2"],
              "20×[3×3]": tuple(Layer("conv", 3, 1, 1) for _ in range(20)),
              "VGG block": PRESETS["VGG block"]}
    reps = max(3, args.reps // 10)
    print(f"{'ERF on stack change (worker thread)':<46} {'median ms':>10} {'p90 ms':>8}")
    print("-" * len(header))
    for name, stack in stacks.items():
        med, p90 = time_ms(lambda s=stack: e._render_erf((s, n, e._erf_token)), reps, warmup=1)
        mark = "  ok" if p90 <= ERF_GOAL_MS else "  over ~1 s"
        print(f"{name:<46} {med:>10.1f} {p90:>8.1f}{mark}")
    if hasattr(os, "getloadavg"):
        print(f"\nLoad average after the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
