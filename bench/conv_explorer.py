"""How long ConvExplorer takes to draw a setting's frames, and to switch to another frame.

    python bench/conv_explorer.py             # 10 repetitions per drawing row, 300 per swap row
    python bench/conv_explorer.py --reps 30

Goal: moving the position slider (or a Play tick) shows the next frame in under
100 ms key-to-pixels; the Python side of that, the swap of a precomputed PNG,
must take only a few ms (≤ 5 ms p90 here). Drawing a setting (every frame,
once, on a worker thread) should stay well under a second for the settings a
lecture uses. Prints median and 90th percentile in milliseconds; it asserts
nothing (timings belong here, not in tests/).
"""
import argparse
import os

import numpy as np

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.figures.arithmetic import conv_arithmetic_text, conv_frame_pngs
from cnnviz.widgets.conv_explorer import ConvExplorer

SWAP_GOAL_MS = 5.0
SETTINGS = {
    "valid 5, f 3": dict(n=5, f=3),
    "same 8, f 3": dict(n=8, f=3, p="same"),
    "stride 2, dilation 2": dict(n=11, f=3, p=1, s=2, d=2),
    "8, f 3, C_in 3, C_out 8": dict(n=8, f=3, c_in=3, c_out=8),
    "16, f 3, p 1, C_in 3, C_out 4": dict(n=16, f=3, p=1, c_in=3, c_out=4),
    "16, f 1, p 6, C_in 3 (784 frames)": dict(n=16, f=1, p=6, c_in=3),
}




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions per drawing row (default 10)")
    parser.add_argument("--swaps", type=int, default=300, help="timed frame switches per row (default 300)")
    args = parser.parse_args()

    print(f"ConvExplorer: drawing every frame of a setting, and switching frames; {args.reps} repetitions per "
          f"drawing row, {args.swaps} per switch row")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    if hasattr(os, "getloadavg"):  # other work on the machine inflates every row
        print(f"Load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"Goal: a frame switch (Python side) ≤ {SWAP_GOAL_MS:.0f} ms p90, so key-to-pixels stays < 100 ms\n")

    header = f"{'scale':<6} {'setting':<36} {'frames':>6} {'picture':>10} {'step':<24} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for scale in (1.0, 1.4):
        ex = ConvExplorer(scale=scale, threaded=False)
        for name, given in SETTINGS.items():
            kw = dict(dict(p=0, s=1, d=1, c_in=1, c_out=1), **given)  # set() keeps what it is not given
            ex.set(**kw)
            assert ex.shown == kw, (ex.shown, kw)
            assert ex.message.value == "", ex.message.value
            frames = ex.frames
            size = f"{len(frames[0]) / 1000:.1f} KB"
            draw = dict(cell=round(28 * scale), font_size=ex._font, max_size=ex._max_size)
            rows = [
                ("arithmetic text", lambda: conv_arithmetic_text(**kw), args.reps),
                ("all frames (PNG)", lambda: conv_frame_pngs(**kw, **draw), args.reps),
                ("whole _render", lambda: ex._render(ex.settings), args.reps),
            ]
            positions = iter(np.random.default_rng(0).integers(0, len(frames), args.swaps + 10).tolist())
            rows.append(("frame switch (position)", lambda: setattr(ex.position, "value", next(positions)),
                         args.swaps))
            for step, fn, reps in rows:
                med, p90 = time_ms(fn, reps)
                mark = ""
                if step.startswith("frame switch"):
                    ok = p90 <= SWAP_GOAL_MS
                    verdicts.append(ok)
                    mark = "  ok" if ok else "  OVER GOAL"
                print(f"{scale:<6} {name:<36} {len(frames):>6} {size:>10} {step:<24} {med:>10.1f} {p90:>8.1f}{mark}")
            print()
    print(f"{sum(verdicts)}/{len(verdicts)} frame-switch rows meet the goal (p90 ≤ {SWAP_GOAL_MS:.0f} ms).")
    if hasattr(os, "getloadavg"):
        print(f"Load average after the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
