"""Chapter 14: feature extraction speed, one TransferExplorer run, and the whole measured table.

    python bench/transfer.py                 # all three parts (the table takes about three minutes)
    python bench/transfer.py --no-table      # feature extraction and the explorer run only
    python bench/transfer.py --device cuda   # feature extraction on a GPU too (where one is lent)

(a) ``feature_throughput``: images per second through ShapesNet to its top layer (64×64 inputs), and through
torchvision's ResNet-18 (random weights: the speed does not depend on them) to ``avgpool`` at 224×224, batched
by 256, on the CPU with torch's threads (and on ``--device``).
(b) One ``TransferExplorer`` run at a small size (5 images per class, fine-tuning everything, the widget's 6
epochs, one torch thread as the widget uses), trained on its background thread: its wall time, how many times
the chart was redrawn, and the longest interval between two redraws while it trained.
(c) ``cached_transfer_table`` of ``EMBEDDED_TABLE`` (2 targets × 3 sizes × 3 seeds: 4 strategies, 2 baselines
and every stage's probe) into an empty temporary cache, then read back; the seconds per strategy.

Goals on this CPU (issue "Chapter 14"): the table ≤ 3 minutes the first time, cached after; one explorer run
at a small size ≤ 10 s with a curve update at least every second; feature extraction images/s reported.
Prints figures; asserts nothing.
"""
import argparse
import collections
import os
import time

import torch

from _timing import cpu_name, first_then_cached  # bench/_timing.py (scripts run from bench/)
from cnnviz import transfer_study as ts


def _load():
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def extraction_rows(device):
    import torchvision

    source = ts._shapes_source()
    resnet = torchvision.models.resnet18().eval()
    print("(a) feature extraction to the top layer, batches of 256, images/s")
    devices = ["cpu"] + ([device] if device and device != "cpu" else [])
    for dev in devices:
        shapes = ts.feature_throughput(source, n=2048, device=dev)
        res = ts.feature_throughput(resnet, n=512 if dev == "cpu" else 4096, layer="avgpool", device=dev)
        print(f"  {dev:5}  ShapesNet 64×64: {shapes:10,.0f}    ResNet-18 224×224: {res:8,.0f}")
    print()


def explorer_rows():
    from cnnviz.widgets import TransferExplorer

    w = TransferExplorer(threaded=True, min_interval=0.25)
    w.target.value, w.size.value, w.strategy.value = "similar", 5, "finetune"
    w.layer.value = 4
    stamps = []
    w.chart.observe(lambda change: stamps.append(time.perf_counter()), names="value")
    t0 = time.perf_counter()
    w.start.click()
    while w.running:
        time.sleep(0.02)
    w.wait(60)
    wall = time.perf_counter() - t0
    gaps = [b - a for a, b in zip([t0] + stamps, stamps)]
    print(f"(b) TransferExplorer: fine-tune everything, 5 images per class, {w.epochs} epochs, {w.threads} thread")
    print(f"  run {wall:.1f} s (goal ≤ 10 s), {len(stamps)} chart redraws, longest interval "
          f"{max(gaps) if gaps else float('nan'):.2f} s (goal ≤ 1 s); test accuracy {w.result.accuracy:.1%}\n")


def table_rows():
    cfg = ts.EMBEDDED_TABLE
    table, first, again = first_then_cached(lambda cache: ts.cached_transfer_table(cfg, cache=cache, progress=False))
    runs = len(cfg.targets) * len(cfg.sizes) * len(cfg.seeds)
    print(f"(c) the measured table: {len(cfg.targets)} targets × {len(cfg.sizes)} sizes × {len(cfg.seeds)} seeds = "
          f"{runs} training sets, {cfg.threads} torch threads")
    print(f"  first time {first:.1f} s (goal ≤ 180 s); from the cache {1000 * again:.0f} ms")
    secs = collections.defaultdict(float)
    for r in table.rows:
        secs[r["strategy"]] += r["seconds"]
    print("  seconds per strategy: " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))
    for c in table.cells():
        print(f"  {c.data:6} {c.similarity:9} best: {c.best:13} lecture's choice: {'/'.join(c.recommended):13} "
              f"[{c.verdict}]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-table", action="store_true")
    parser.add_argument("--device", default=None, help="also extract features on this device (e.g. cuda)")
    args = parser.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"load average before: {_load()}\n")
    extraction_rows(args.device)
    explorer_rows()
    if not args.no_table:
        table_rows()
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
