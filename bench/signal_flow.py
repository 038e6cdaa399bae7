"""Chapter 9: one SignalFlowExplorer update, its parts, and the whole trainability map.

    python bench/signal_flow.py                  # explorer rows (30 repetitions) and the map once
    python bench/signal_flow.py --reps 100       # steadier explorer figures
    python bench/signal_flow.py --no-map         # the explorer rows only

Rows: at depth 50, width 256, batch 256 (the issue's setting), for four initialisations: the plain forward
and backward pass (the compute floor), ``signal_flow`` (forward, backward and every layer's statistics, the
activations' measured on a second thread during the backward pass, the gradients' on both), and the widget's
whole update through ``set`` alternating between two settings that both give new weights (He fan-in ↔
fan-out; σ ± 0.1 %; orthogonal with tanh ↔ sigmoid): the weights from the kept unit draws
(``initialisation.SeededDraws``), ``signal_flow``, the SVG and the numbers. Then the worst case, every layer
drawn anew (the kept draws forgotten before each update: what a new width or the first choice of a kind costs
without drawing ahead); the threaded explorer choosing orthogonal weights after it has drawn them ahead while
idle, as in a notebook; the threaded explorer with orthogonal weights going from width 128 to 256 after it has
drawn the other widths ahead (the network of width 256 built anew each time, and kept, as the last
networks are), and from 64 to 256 (one menu choice); one update after a change of depth (network rebuilt, only the new layers drawn); an
update after a new learning rate (network and weights kept); one update after a change of width (all drawn).
Median and 90th percentile in ms. Then the trainability map (cnnviz.trainability.EMBEDDED_MAP, 72 runs)
computed from scratch into a temporary cache, and read back from it.

Goals on this CPU (issue "Chapter 9"): one explorer update ≤ 150 ms; the whole map ≤ 90 s, cached after.
Each thread runs torch single-threaded with denormals flushed, as the package runs it. Prints figures;
asserts nothing.
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F

from _timing import cpu_name, first_then_cached, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.initialisation import SeededDraws, initialise_
from cnnviz.runtime import flush_denormals
from cnnviz.signal_flow import deep_mlp, digits_batch, signal_flow
from cnnviz.trainability import EMBEDDED_MAP, cached_trainability_map


def _load():
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _threaded(reps, start, turns, first_visit=False):
    """Median and 90th percentile (ms) of a threaded explorer's update to ``turns[0]``, from the setting to the
    new picture, alternating with ``turns[1]``; after each update the explorer is left idle until it has drawn
    ahead, as a user pausing on a setting leaves it. ``first_visit``: the networks built before are forgotten
    (the new width's network is built, as on the first visit to that width)."""
    import threading

    from cnnviz.widgets import SignalFlowExplorer

    w = SignalFlowExplorer(depth=50, width=256, trainability=False, **start)
    w.wait(60)
    shown = threading.Event()
    w.picture.observe(lambda change: shown.set(), names=["value"])
    times = []
    for k in range(reps):
        for i, turn in enumerate(turns):
            shown.clear()
            if first_visit:
                w._built.clear()
            t0 = time.perf_counter()
            w.set(**turn)
            shown.wait(60)
            if i == 0:
                times.append(1000 * (time.perf_counter() - t0))
            w.wait(60)
    w._renderer.close()
    times.sort()
    return times[len(times) // 2], times[int(0.9 * (len(times) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--no-map", action="store_true")
    args = parser.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"load average before: {_load()}\n")

    from cnnviz.widgets import SignalFlowExplorer

    x, y = digits_batch(256)
    # each case alternates between two settings that both draw new weights, as a user's change does
    cases = [("He · ReLU, fan-in ↔ fan-out", "kaiming_fan_in", "relu", None, [dict(scheme="kaiming_fan_out"),
                                                                           dict(scheme="kaiming_fan_in")]),
             ("N(0, 0.01²) · tanh, σ ± 0.1 %", "normal", "tanh", 0.01, [dict(sigma=0.01001), dict(sigma=0.01)]),
             ("N(0, 1) · ReLU (diverges), σ ± 0.1 %", "normal", "relu", 1.0, [dict(sigma=1.001), dict(sigma=1.0)]),
             ("orthogonal · tanh ↔ sigmoid", "orthogonal", "tanh", None, [dict(activation="sigmoid"),
                                                                          dict(activation="tanh")])]
    print(f"{'depth 50, width 256, batch 256':40} {'fwd+bwd':>14} {'signal_flow':>14} {'widget update':>14}")
    for label, scheme, act, sigma, changes in cases:
        model = initialise_(deep_mlp(50, 256, activation=act), scheme, activation=act, sigma=sigma, seed=0)

        def plain():
            with flush_denormals():
                loss = F.cross_entropy(model(x), y)
                if torch.isfinite(loss):
                    torch.autograd.grad(loss, list(model.parameters()))

        w = SignalFlowExplorer(scheme, sigma=sigma or 0.01, activation=act, depth=50, width=256,
                               trainability=False, threaded=False)
        turns = iter(changes * 10 ** 6)
        rows = [time_ms(plain, args.reps), time_ms(lambda: signal_flow(model, x, y), args.reps),
                time_ms(lambda: w.set(**next(turns)), args.reps)]
        print(f"{label:40} " + " ".join(f"{m:6.0f} / {p:5.0f}" for m, p in rows))

    # the worst case: every layer drawn anew (the first time a scheme's kind is chosen, a new width)
    for label, scheme, act in (("He · ReLU", "kaiming_fan_in", "relu"), ("orthogonal · tanh", "orthogonal", "tanh")):
        w = SignalFlowExplorer(scheme, activation=act, depth=50, width=256, trainability=False, threaded=False)
        rates = iter([0.01 * (1 + (k % 2)) for k in range(10 ** 6)])

        def first_draw():
            w._draws = SeededDraws(w.seed)       # forget the kept unit draws: all 51 layers drawn again
            w._model = (w._model[0], w._model[1], None)
            w.set(lr=next(rates))

        m, p = time_ms(first_draw, args.reps)
        print(f"{'every layer drawn anew, ' + label:40} {'':>14} {'':>14} {m:6.0f} / {p:5.0f}")
    # threaded, as in a notebook: the explorer draws the other kinds' unit weights while idle
    ortho, widths = dict(scheme="orthogonal", activation="tanh"), [dict(width=256), dict(width=128)]
    for label, start, turns in (("threaded: He → orthogonal, drawn ahead", dict(scheme="kaiming_fan_in"),
                                 [dict(scheme="orthogonal"), dict(scheme="kaiming_fan_in")]),
                                ("threaded: orthogonal, 128 → new width 256", ortho, widths),
                                ("threaded: orthogonal, 128 → 256 again", ortho, widths),
                                ("threaded: orthogonal, a jump 64 → 256", ortho, [dict(width=256), dict(width=64)])):
        m, p = _threaded(args.reps, start, turns, first_visit="new width" in label)
        print(f"{label:40} {'':>14} {'':>14} {m:6.0f} / {p:5.0f}")
    w = SignalFlowExplorer(trainability=False, threaded=False)
    t0 = time.perf_counter()
    w.set(depth=49)
    print(f"{'one update after a change of depth':40} {'':>14} {'':>14} {1000 * (time.perf_counter() - t0):6.0f}")
    rates = iter([0.01 * (1 + (k % 2)) for k in range(10 ** 6)])
    m, p = time_ms(lambda: w.set(lr=next(rates)), args.reps)
    print(f"{'a new learning rate (weights kept)':40} {'':>14} {'':>14} {m:6.0f} / {p:5.0f}")
    for width in (128, 512):
        t0 = time.perf_counter()
        w.set(width=width)
        ms = 1000 * (time.perf_counter() - t0)
        print(f"{f'one update after a change of width ({width})':40} {'':>14} {'':>14} {ms:6.0f}")
    print("(median / 90th percentile, ms; goal: widget update ≤ 150 ms)")

    if not args.no_map:
        cfg = EMBEDDED_MAP
        cells = 2 * len(cfg.sigmas) * len(cfg.lrs)
        tmap, first, again = first_then_cached(lambda cache: cached_trainability_map(cfg, cache=cache))
        diverged = sum(c.diverged for rows in tmap.cells.values() for row in rows for c in row)
        print(f"\ntrainability map: {len(cfg.sigmas)} σ × {len(cfg.lrs)} learning rates × (without, with BN) = "
              f"{cells} runs of {cfg.epochs} epochs ({diverged} diverged)")
        print(f"  first time {first:.1f} s (goal ≤ 90 s), {1000 * first / cells:.0f} ms per run; "
              f"from the cache {1000 * again:.0f} ms")
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
