"""How long cnnviz.summary takes on torchvision models at 224×224: on the meta device and with real weights.

    python bench/summary.py            # 5 repetitions per row
    python bench/summary.py --reps 20
    python bench/summary.py --threads 1   # torch on one core
    python bench/summary.py --models resnet152   # only the judged model

Goal on this CPU: the summary of ResNet-152 (464 layer calls) at 224×224 in
at most 2 s: built on the meta device (as the book builds it), with real
float32 weights (by default summarised on meta stand-ins), and with
device="cpu" (a real forward pass). The plain forward pass is timed beside
it, to show what the hooks and the tracing mode add.
Prints median and 90th percentile in milliseconds; it asserts nothing
(timings belong here, not in tests/).
"""
import argparse
import os

import torch
import torchvision

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz.summaries import summary

GOAL_MS = 2000.0
INPUT = (3, 224, 224)
MODELS = ("resnet152", "resnet18", "googlenet", "densenet121", "vgg16")


def _build(name, device):
    kwargs = dict(aux_logits=False, init_weights=False) if name == "googlenet" else {}
    with torch.device(device):
        return getattr(torchvision.models, name)(**kwargs).eval()


def _forward(model, device):
    x = torch.zeros(1, *INPUT, device=device)

    def run():
        with torch.no_grad():
            model(x)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per row (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice, one per core)")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, help="torchvision models to time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"cnnviz.summary at {INPUT[1]}×{INPUT[2]}, batch 1; {args.reps} repetitions per row")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):  # other work on the machine inflates every row
        print(f"Load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"Goal: ResNet-152 summary ≤ {GOAL_MS:.0f} ms (p90), meta and CPU weights, meta and CPU runs\n")

    header = f"{'model':<12} {'weights':<8} {'step':<28} {'rows':>5} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for name in args.models:
        for device in ("meta", "cpu"):
            model = _build(name, device)
            rows = len(summary(model, INPUT))
            steps = [("summary", lambda: summary(model, INPUT), name == "resnet152")]
            if device == "cpu":  # the default ran on meta stand-ins; this is a real forward pass
                steps.append(("summary, device='cpu'", lambda: summary(model, INPUT, device="cpu"),
                              name == "resnet152"))
            steps.append(("plain forward (no summary)", _forward(model, device), False))
            for step, fn, judged in steps:
                med, p90 = time_ms(fn, args.reps, warmup=1)
                mark = ""
                if judged:
                    ok = p90 <= GOAL_MS
                    verdicts.append(ok)
                    mark = "  ok" if ok else "  OVER GOAL"
                print(f"{name:<12} {device:<8} {step:<28} {rows:>5} {med:>10.1f} {p90:>8.1f}{mark}")
        print()

    print(f"{sum(verdicts)}/{len(verdicts)} judged rows meet their goal (p90).")
    if hasattr(os, "getloadavg"):
        print(f"Load average after the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
