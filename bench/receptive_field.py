"""How long the receptive-field explorer's computations take: one unit picked on a 512×512 photo, and the ERF.

    python bench/receptive_field.py            # 50 repetitions per row (10 for the slow rows)
    python bench/receptive_field.py --reps 200
    python bench/receptive_field.py --threads 1   # torch on one core

Goals on this CPU: one explorer update (layer sizes, the receptive-field table,
the unit's rectangle and the photo dimmed outside it, no drawing) in at most
50 ms for a 10-layer stack on the 512×512 astronaut photo; the effective
receptive field of a 10-layer 3×3 stack on a 128×128 input in at most 1 s.
Prints median and 90th percentile in milliseconds; it asserts nothing
(timings belong here, not in tests/).
"""
import argparse
import os

import numpy as np
import torch

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.data import load_image
from cnnviz.receptive_field import (PRESETS, Layer, effective_receptive_field, gradient_support, input_rect,
                                    input_support, layer_sizes, receptive_field)

UPDATE_GOAL_MS = 50.0
ERF_GOAL_MS = 1000.0

# the first ten layers of VGG-16 (conv1_1 .. conv4_1 with three pools): a deep field with strides
VGG10 = (
    Layer("conv", 3, 1, 1, name="conv1_1"), Layer("conv", 3, 1, 1, name="conv1_2"), Layer("maxpool", 2, 2, name="pool1"),
    Layer("conv", 3, 1, 1, name="conv2_1"), Layer("conv", 3, 1, 1, name="conv2_2"), Layer("maxpool", 2, 2, name="pool2"),
    Layer("conv", 3, 1, 1, name="conv3_1"), Layer("conv", 3, 1, 1, name="conv3_2"), Layer("conv", 3, 1, 1, name="conv3_3"),
    Layer("maxpool", 2, 2, name="pool3"),
)
STACKS = {"10×[3×3]": PRESETS["10×[3×3]"], "VGG-16 conv1_1–pool3": VGG10}




def _update(photo, stack, layer_index, i, j):
    """What the explorer computes when a unit is picked: sizes, table, rectangle, dimmed photo."""
    size = photo.shape[:2]
    layer_sizes(stack, size)
    receptive_field(stack)
    top, left, bottom, right = input_rect(stack, layer_index, i, j, size)
    shown = (photo * 0.35).astype(np.uint8)  # (H, W, 3): dim everything ...
    shown[top:bottom + 1, left:right + 1] = photo[top:bottom + 1, left:right + 1]  # ... but the field
    return shown


def _update_exact(photo, stack, layer_index, i, j):
    """The same with the exact support (holes and skipped pixels shown) instead of the rectangle."""
    mask = input_support(stack, layer_index, i, j, photo.shape[:2])  # (H, W) bool
    return np.where(mask[:, :, None], photo, (photo * 0.35).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="timed repetitions per fast row (default 50)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    slow_reps = max(3, args.reps // 5)

    photo = load_image("astronaut")  # (512, 512, 3) uint8
    print(f"Receptive-field explorer on the {photo.shape[1]}×{photo.shape[0]} RGB astronaut photo; "
          f"{args.reps} repetitions per fast row, {slow_reps} per slow row")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):  # other work on the machine inflates every row
        print(f"Load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"Goals: explorer update ≤ {UPDATE_GOAL_MS:.0f} ms; ERF of 10×[3×3] on 128×128 ≤ {ERF_GOAL_MS:.0f} ms\n")

    header = f"{'stack':<22} {'step':<44} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for name, stack in STACKS.items():
        sizes = layer_sizes(stack, photo.shape[:2])
        k = len(stack)
        i, j = sizes[k][0] // 2, sizes[k][1] // 3
        r = receptive_field(stack)[-1].r
        rows = [
            (f"update: rect + dimmed photo (r = {r})", lambda: _update(photo, stack, k, i, j), args.reps, True),
            ("update: exact support + dimmed photo", lambda: _update_exact(photo, stack, k, i, j), args.reps, True),
            ("input_rect alone", lambda: input_rect(stack, k, i, j, photo.shape[:2]), args.reps, False),
            ("gradient_support (brute force, float64)",
             lambda: gradient_support(stack, photo.shape[:2], k, i, j), slow_reps, False),
        ]
        for step, fn, reps, judged in rows:
            med, p90 = time_ms(fn, reps)
            mark = ""
            if judged:
                ok = p90 <= UPDATE_GOAL_MS
                verdicts.append(ok)
                mark = "  ok" if ok else "  OVER GOAL"
            print(f"{name:<22} {step:<44} {med:>10.1f} {p90:>8.1f}{mark}")
        print()

    stack = PRESETS["10×[3×3]"]
    for size, trials, judged in [((128, 128), 1, True), ((128, 128), 8, False), ((512, 512), 1, False)]:
        step = f"effective_receptive_field {size[0]}×{size[1]}, trials={trials}"
        med, p90 = time_ms(lambda: effective_receptive_field(stack, size, trials=trials), slow_reps, warmup=1)
        mark = ""
        if judged:
            ok = p90 <= ERF_GOAL_MS
            verdicts.append(ok)
            mark = "  ok" if ok else "  OVER GOAL"
        print(f"{'10×[3×3]':<22} {step:<44} {med:>10.1f} {p90:>8.1f}{mark}")

    print()
    print(f"{sum(verdicts)}/{len(verdicts)} judged rows meet their goal (p90).")
    if hasattr(os, "getloadavg"):
        print(f"Load average after the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
