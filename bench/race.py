"""The embedded race (cnnviz.race.EMBEDDED: plain/ResNet-20 and -56 on the digits): how long it takes,
how often the curves update, and how fast each network trains.

    python bench/race.py                 # the embedded race once, torch on 1 thread (as the race runs)
    python bench/race.py --threads 2     # the same with 2 threads
    python bench/race.py --seed 3        # another seed

Prints: wall-clock and CPU time of the whole race (evaluation included) with the load average
before and after; the interval between log points (each one is a redraw of the live chart) as
median and maximum; each network's training throughput in images per second and its share of the
time; and the cost of drawing: the live SVG chart and the book's animated figure.

Goals on this CPU (issue "Training that people can watch"): the four networks in ≤ 60 s and a
chart update at least every 2 s, on a quiet machine. Under load the wall-clock figures stretch: the
CPU time of a one-thread race is the better guide to what a quiet machine does (it is close to the
wall time there). Prints figures; asserts nothing.
"""
import argparse
import os
import statistics
import time

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.figures.training import race_figure, race_svg
from cnnviz.race import EMBEDDED, Race


def _load():
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=EMBEDDED.seed)
    args = parser.parse_args()
    config = EMBEDDED.replace(seed=args.seed)
    print(f"{cpu_name()}, {os.cpu_count()} cores; torch threads {args.threads}")
    print(f"race: {config.describe()}")
    print(f"load average before: {_load()}")

    race = Race(config, device="cpu", threads=args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    log = race.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"load average after:  {_load()}")
    print(f"\nwhole race: {wall:.1f} s wall, {cpu:.1f} s CPU (goal ≤ 60 s on a quiet machine); status {log.status}")

    seconds = log.points["seconds"]
    gaps = [b - a for a, b in zip([0.0] + seconds, seconds)]
    print(f"chart updates: {len(gaps)} log points, every {statistics.median(gaps):.2f} s (median), "
          f"{max(gaps):.2f} s at most (goal ≤ 2 s)")

    total = sum(t.train_seconds for t in race.trainers.values())
    print("\n| network | images/s (training steps only) | share of the training time |\n|---|---:|---:|")
    for name, t in race.trainers.items():
        images = t.step_count * t.batch_size
        print(f"| {name} | {images / t.train_seconds:,.0f} | {t.train_seconds / total:.0%} |")
    print(f"evaluation and bookkeeping: {wall - total:.1f} s of the {wall:.1f} s")

    svg_med, svg_p90 = time_ms(lambda: race_svg(log), reps=50)
    fig_med, fig_p90 = time_ms(lambda: race_figure(log), reps=3, warmup=1)
    html = race_figure(log).to_html(include_plotlyjs=False, full_html=False)
    print(f"\nlive SVG chart: {svg_med:.1f} ms median, {svg_p90:.1f} ms p90 ({len(race_svg(log)) / 1e3:.0f} kB)")
    print(f"book figure (race_figure): {fig_med:.0f} ms median, {fig_p90:.0f} ms p90 "
          f"({len(html) / 1e3:.0f} kB of HTML)")


if __name__ == "__main__":
    main()
