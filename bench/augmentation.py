"""Chapter 13: one AugmentationExplorer-style update, augmentation throughput, and the training comparison.

    python bench/augmentation.py                    # all three parts (the comparison takes a minute or two)
    python bench/augmentation.py --reps 100         # steadier update figures
    python bench/augmentation.py --no-comparison    # the update rows and the throughput only
    python bench/augmentation.py --threads 1        # torch limited to one thread (a busy 2-core machine)

(a) What the explorer computes per update: 8 random draws of a 224×224 photo (the astronaut) through
``random_transform`` — one call per draw, as each image of a training batch gets its own parameters — for
rotation, random crop, PCA colour, perspective, lens distortion and a 3-step pipeline (crop, rotate,
brightness), then the label meter: ShapesNet's ``Classifier.probabilities`` on the 8 draws. Median and 90th
percentile in ms of the draws, the meter, and both. Then, where ``cnnviz.widgets.AugmentationExplorer`` is
installed, its whole synchronous update (draws, meter, pictures encoded) after "Redraw".
(b) ``augmentation_throughput``: images per second of random crop + flip + normalisation for 5,000 3×32×32
images through PIL and a ``DataLoader`` (0 and 2 worker processes) and batched by ``cnnviz.train.DeviceLoader``
on the best device, and their ratio.
(c) ``cached_training_comparison`` of ``EMBEDDED_COMPARISON`` (every policy of ``POLICIES``, 3 seeds, 40 epochs
on 300 digits) from scratch into a temporary cache, then read back; the final training and test error per
policy, and with test-time augmentation.

Goals on this CPU (issue "Chapter 13"): one explorer update ≤ 100 ms; batched augmentation ≥ 10× the PIL
DataLoader; the comparison ≤ 90 s, cached after. Prints figures; asserts nothing.
"""
import argparse
import math
import os

import torch
from torchvision.transforms import v2

from _timing import cpu_name, first_then_cached, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.augmentation import as_image_tensor, random_transform
from cnnviz.augmentation_study import (EMBEDDED_COMPARISON, POLICIES, augmentation_throughput,
                                       cached_training_comparison, classifier)
from cnnviz.data import load_image

DRAWS = 8


def _load():
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def explorer_rows(reps):
    photo, _ = as_image_tensor(load_image("astronaut", max_side=224))  # (3, 224, 224)
    shapesnet = classifier("shapesnet")
    cases = [("rotate ±30°", random_transform("rotate", angle=30)),
             ("crop, scale ≥ 0.3", random_transform("crop", scale=0.3)),
             ("PCA colour, std 1/3", random_transform("pca", a1=1, a2=1, a3=1)),
             ("perspective 0.5", random_transform("perspective", distortion=0.5)),
             ("lens ±0.3", random_transform("lens", k=0.3)),
             ("crop + rotate + brightness", v2.Compose([random_transform("crop", scale=0.5),
                                                        random_transform("rotate", angle=15),
                                                        random_transform("brightness", factor=1.4)]))]
    print(f"(a) {DRAWS} draws of a {photo.shape[1]}×{photo.shape[2]} photo + ShapesNet label meter")
    print(f"{'transformation':30} {'8 draws':>14} {'label meter':>14} {'update':>14}")
    for label, t in cases:
        drawn = torch.stack([t(photo) for _ in range(DRAWS)])

        def update():
            x = torch.stack([t(photo) for _ in range(DRAWS)])
            return shapesnet.probabilities(x).max(1)

        rows = [time_ms(lambda: torch.stack([t(photo) for _ in range(DRAWS)]), reps),
                time_ms(lambda: shapesnet.probabilities(drawn), reps), time_ms(update, reps)]
        print(f"{label:30} " + " ".join(f"{m:6.1f} / {p:5.1f}" for m, p in rows))
    try:
        from cnnviz.widgets import AugmentationExplorer
    except ImportError:
        print("(cnnviz.widgets.AugmentationExplorer not available: no whole-widget row)")
    else:
        for image, key, params in [("astronaut", "rotate", {"angle": 30}), ("shapes", "rotate", {"angle": 30})]:
            w = AugmentationExplorer(image, key, draws=DRAWS, threaded=False)
            w.set(**params)
            m, p = time_ms(w.redraw, reps)
            print(f"{'widget Redraw, ' + image:30} {'':>14} {'':>14} {m:6.1f} / {p:5.1f}")
    print("(median / 90th percentile, ms; goal: update ≤ 100 ms)\n")


def throughput_rows(n):
    t = augmentation_throughput(n=n)
    print(f"(b) augmentation alone (random crop, padding {t.size // 8}, flip, normalise), {t.n:,} images "
          f"of 3×{t.size}×{t.size}, images/s")
    print(f"  PIL + DataLoader, 0 workers     {t.pil_loader:10,.0f}")
    print(f"  PIL + DataLoader, {t.workers} workers     {t.pil_workers:10,.0f}")
    print(f"  DeviceLoader, batched on {t.device:6} {t.device_batched:10,.0f}")
    if not math.isnan(getattr(t, "device_batched_colour", math.nan)):
        print(f"    + PCA colour, batched         {t.device_batched_colour:10,.0f}")
    print(f"  ratio batched / PIL (0 workers) {t.device_batched / t.pil_loader:10.1f}×  (goal ≥ 10×)\n")


def comparison_rows():
    cfg = EMBEDDED_COMPARISON
    comp, first, again = first_then_cached(lambda cache: cached_training_comparison(cfg, cache=cache))
    runs = len(POLICIES) * len(cfg.seeds)
    print(f"(c) training comparison: {len(POLICIES)} policies × {len(cfg.seeds)} seeds = {runs} runs of "
          f"{cfg.epochs} epochs on {cfg.n_train} digits ({torch.get_num_threads()} torch threads)")
    print(f"  first time {first:.1f} s (goal ≤ 90 s), {first / runs:.1f} s per run; from the cache "
          f"{1000 * again:.0f} ms")
    print(f"  {'policy':28} {'train error':>12} {'test error':>11} {'with TTA':>9}")
    for name in comp.curves:
        print(f"  {name:28} {comp.final(name, 'train_error'):12.1%} {comp.final(name):11.1%} {comp.tta[name]:9.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--n", type=int, default=5000, help="images for the throughput (default 5000)")
    parser.add_argument("--no-comparison", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"load average before: {_load()}\n")
    explorer_rows(args.reps)
    throughput_rows(args.n)
    if not args.no_comparison:
        comparison_rows()
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
