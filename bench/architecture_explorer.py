"""How long the architecture and Inception cost explorers take: summaries per model, updates per control.

    python bench/architecture_explorer.py            # 20 repetitions per row
    python bench/architecture_explorer.py --reps 50
    python bench/architecture_explorer.py --models vgg16 resnet152

Goals: a model's summary (built on the meta device) under 1 s cold for every
model of the zoo (ResNet-152 included), and nothing once cached; an
ArchitectureExplorer update from a cached summary (block slider, block height,
input size already seen) at most 50 ms; an InceptionCostExplorer update well
under 100 ms. Prints median and 90th percentile in milliseconds; it asserts
nothing (timings belong here, not in tests/).
"""
import argparse
import os
import time

import torch

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz import models
from cnnviz.figures.architecture import architecture_svg, inception_cost_svg
from cnnviz.widgets import architecture_explorer as ae
from cnnviz.widgets import ArchitectureExplorer, InceptionCostExplorer

SUMMARY_GOAL_MS = 1000.0
UPDATE_GOAL_MS = 50.0
INCEPTION_GOAL_MS = 100.0
DEFAULT_MODELS = ("lenet5", "alexnet", "vgg16", "vgg19_bn", "nin", "googlenet", "resnet18", "resnet50",
                  "resnet152", "resnet110", "densenet121", "densenet264")


def cold_ms(name, side):
    """One uncached summary + diagram units (the cache emptied first), in ms."""
    ae._CACHE.clear()
    t0 = time.perf_counter()
    ae.analyse(name, side)
    return (time.perf_counter() - t0) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions per row (default 20)")
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), help="models for the summary rows")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):  # other work on the machine inflates every row
        print(f"Load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    models.available()  # import the zoo (torchvision) before timing anything
    ae.analyse("lenet5", 32)

    print(f"\nSummary + diagram units per model on its paper's input (meta device); goal cold ≤ "
          f"{SUMMARY_GOAL_MS:.0f} ms, cached ≈ 0")
    header = f"{'model':<16} {'input':>9} {'rows':>5} {'blocks':>6} {'cold ms (median of 3)':>22} {'cached ms':>10}"
    print(header)
    print("-" * len(header))
    for name in args.models:
        side = models.info(name).input_size[1]
        cold = sorted(cold_ms(name, side) for _ in range(3))[1]
        cached, _ = time_ms(lambda: ae.analyse(name, side), args.reps)
        s, units = ae.analyse(name, side)
        mark = "  ok" if cold <= SUMMARY_GOAL_MS else "  OVER GOAL"
        print(f"{name:<16} {side:>5}×{side:<3} {len(s.rows):>5} {len(units):>6} {cold:>22.0f} {cached:>10.3f}{mark}")

    print(f"\nArchitectureExplorer updates (synchronous widget, summaries cached); "
          f"goal p90 ≤ {UPDATE_GOAL_MS:.0f} ms")
    header = f"{'step':<52} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    e = ArchitectureExplorer("resnet152", threaded=False)
    s, units = ae.analyse("resnet152", 224)
    e.size.value = 320
    e.size.value = 224  # both sizes cached
    blocks = iter([k % len(units) for k in range(10 * args.reps + 100)])
    heights = iter(["params", "macs", "activations"] * (4 * args.reps + 10))
    sizes = iter([320, 224] * (4 * args.reps + 10))
    vgg = ArchitectureExplorer("vgg16", threaded=False)
    vgg_blocks = iter([k % 22 for k in range(10 * args.reps + 100)])
    rows = [
        ("architecture_svg, ResNet-152 (54 blocks)",
         lambda: architecture_svg(units, highlight=10, input_size=224, height=ae.DIAGRAM_HEIGHT)),
        ("table_html, ResNet-152", lambda: ae.table_html(s, units, highlight=10)),
        ("block slider → new view, ResNet-152", lambda: setattr(e.unit, "value", next(blocks)), True),
        ("block height → new view, ResNet-152", lambda: setattr(e.size_by, "value", next(heights)), True),
        ("input size (cached) → new view, ResNet-152", lambda: setattr(e.size, "value", next(sizes)), True),
        ("block slider → new view, VGG-16", lambda: setattr(vgg.unit, "value", next(vgg_blocks)), True),
    ]
    for row in rows:
        name, fn = row[0], row[1]
        med, p90 = time_ms(fn, args.reps)
        mark = ("  ok" if p90 <= UPDATE_GOAL_MS else "  OVER GOAL") if len(row) > 2 else ""
        print(f"{name:<52} {med:>10.1f} {p90:>8.1f}{mark}")
    ae._CACHE.clear()
    t0 = time.perf_counter()
    e.model.value = "densenet201"
    print(f"{'model menu → densenet201 (uncached summary)':<52} {(time.perf_counter() - t0) * 1000:>10.0f}"
          f" {'(once)':>8}")

    print(f"\nInceptionCostExplorer updates (synchronous widget); goal p90 ≤ {INCEPTION_GOAL_MS:.0f} ms")
    print(header)
    print("-" * len(header))
    inc = InceptionCostExplorer(threaded=False)
    widths = iter([8 * (1 + k % 32) for k in range(10 * args.reps + 100)])
    switches = iter([False, True] * (4 * args.reps + 10))
    presets = iter(["inception3a", "inception5b", "inception4e"] * (4 * args.reps + 10))
    rows = [
        ("inception_cost_svg (naive + this module)", lambda: inception_cost_svg(256, 28, 128, 64, 192, 64, 96, 64)),
        ("reduction slider → new picture", lambda: setattr(inc.sliders["ch3x3red"], "value", next(widths))),
        ("reduction switch → new picture", lambda: setattr(inc.switches["ch5x5red"], "value", next(switches))),
        ("GoogLeNet preset → new picture", lambda: setattr(inc.preset, "value", next(presets))),
    ]
    for name, fn in rows:
        med, p90 = time_ms(fn, args.reps)
        mark = "  ok" if p90 <= INCEPTION_GOAL_MS else "  OVER GOAL"
        print(f"{name:<52} {med:>10.1f} {p90:>8.1f}{mark}")
    if hasattr(os, "getloadavg"):
        print(f"\nLoad average after the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
