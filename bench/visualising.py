"""How long chapter 6's computations take: feature maps of VGG-16, occlusion on ResNet-18, memory over repeats.

    python bench/visualising.py              # 5 repetitions per row
    python bench/visualising.py --reps 10
    python bench/visualising.py --threads 1  # torch on one core
    python bench/visualising.py --device cuda

Goals (issue 5), on this CPU:
- the feature maps of every layer of VGG-16 (every convolution, ReLU and pooling)
  for one 224×224 photo in under 1 s;
- a 224×224 occlusion map for ResNet-18 with a 32-pixel patch at stride 8
  (25 × 25 = 625 occluded copies, batched) in under 10 s;
- no memory growth over 100 repeated calls (GPU memory on CUDA, the process's
  resident memory on the CPU, and on both the bytes held by live tensors, which is
  what GPU memory would grow with; the occlusion calls use 16 positions to stay short).
The occlusion row uses incremental inference (cnnviz.incremental: each copy
recomputes only what its patch changes); a second row runs every copy through
the whole network, for comparison. Without a GPU the script prints an estimate
for one from the operation count (stated assumptions: the GPU's sustained
float32 rate). The weights are
random: the time does not depend on them. Prints medians and 90th percentiles
in ms; asserts nothing (timings belong here, not in tests/).
"""
import argparse
import gc
import os

import torch
from torch.utils.flop_counter import FlopCounterMode

from _timing import cpu_name, time_ms  # bench/_timing.py (scripts run from bench/)
from cnnviz import models
from cnnviz.features import feature_maps
from cnnviz.incremental import Incremental
from cnnviz.occlusion import occlusion
from cnnviz.probe import layer_names, prepare

FEATURE_GOAL_MS, OCCLUSION_GOAL_MS = 1000.0, 10000.0
#: sustained float32 rates assumed for the GPU estimate, in TFLOP/s (about half of each card's peak)
GPUS = {"Colab T4": 4.0, "A100": 10.0, "H100": 25.0}


def _rss_mib():
    """The process's resident memory now (Linux /proc), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
    return float("nan")


def _memory(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated(device) / 2**20
    return _rss_mib()


def _live_tensor_mib():
    """Bytes held by the tensors alive in this process (each storage once), in MiB: what repeated calls would
    leave behind on any device."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        try:  # type(), not isinstance(): some module proxies warn when their __class__ is read
            if issubclass(type(obj), torch.Tensor) and not obj.is_meta:
                st = obj.untyped_storage()
                storages[st.data_ptr()] = st.nbytes()
        except Exception:  # tensor subclasses and freed objects that cannot report a storage
            continue
    return sum(storages.values()) / 2**20


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per row (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: one per core)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeats", type=int, default=100, help="calls for the memory check (default 100)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"{cpu_name()} · torch {torch.__version__} · {torch.get_num_threads()} threads · device {device} · "
          f"load average {os.getloadavg()[0]:.2f}")

    torch.manual_seed(0)
    vgg = models.get("vgg16").to(device).eval()
    x = prepare("chelsea", vgg).x  # (1, 3, 224, 224)
    # every layer with a spatial output: the 31 convolutions, ReLUs and poolings of `features`, and the pooling
    # before the classifier (the dense layers' outputs are vectors, not feature maps)
    every = layer_names(vgg, (torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d))
    every = [n for n in every if not n.startswith("classifier")]
    relus = [n for n in every if isinstance(vgg.get_submodule(n), torch.nn.ReLU)]

    def vgg_all():
        feature_maps(vgg, x, every)
        _sync(device)

    def vgg_relus():
        feature_maps(vgg, x, relus)
        _sync(device)

    def vgg_plain():
        with torch.inference_mode():
            vgg(x)
        _sync(device)

    rows = [(f"VGG-16: feature maps of all {len(every)} layers", vgg_all, FEATURE_GOAL_MS),
            (f"VGG-16: the {len(relus)} ReLU outputs", vgg_relus, FEATURE_GOAL_MS),
            ("VGG-16: plain forward pass (for comparison)", vgg_plain, None)]

    resnet = models.get("resnet18").to(device).eval()
    xr = prepare("chelsea", resnet).x

    def occ():
        assert occlusion(resnet, xr, patch=32, stride=8).method == "incremental"
        _sync(device)

    def occ_full():
        occlusion(resnet, xr, patch=32, stride=8, incremental=False)
        _sync(device)

    rows.append(("ResNet-18: occlusion, 224², patch 32, stride 8 (625 copies)", occ, OCCLUSION_GOAL_MS))
    rows.append(("  the same, every copy through the whole network", occ_full, None))

    print(f"\n{'what':<62} {'median ms':>10} {'p90 ms':>9}  goal")
    for label, fn, goal in rows:
        reps = args.reps if not label.startswith(("ResNet", " ")) else max(2, args.reps // 2)
        med, p90 = time_ms(fn, reps, warmup=1)
        verdict = "" if goal is None else (f"≤ {goal:,.0f} ms: {'met' if med <= goal else 'NOT met'}")
        print(f"{label:<62} {med:>10.1f} {p90:>9.1f}  {verdict}")

    with FlopCounterMode(display=False) as counter:
        with torch.inference_mode():
            resnet(xr.expand(625, -1, -1, -1).contiguous())
    flops = counter.get_total_flops()
    with torch.inference_mode():
        share = Incremental(resnet, xr).fraction(torch.zeros(1, 3, 32, 32, device=device))
    print(f"\nIncremental inference: a copy with the patch in the middle costs {share:.0%} of a full pass's "
          f"multiply-adds (less at the borders).")
    print(f"Occlusion on a GPU (estimate): the 625 full forward passes cost {flops / 1e12:.2f} TFLOP; at a sustained")
    print("float32 rate of " + ", ".join(f"{r:g} TFLOP/s ({g}) ≈ {flops / (r * 1e12) * 1e3:,.0f} ms"
                                         for g, r in GPUS.items()) + ".")
    print(f"Incrementally the operations shrink to about {share:.0%}; whether a GPU gains as much from many small "
          f"windows is not measured here.")

    kind = "GPU memory allocated" if device.type == "cuda" else "resident memory"
    print(f"\nMemory over {args.repeats} repeated calls, MiB ({kind}; live tensors):")
    for label, fn in (("feature maps of VGG-16", vgg_all), ("occlusion on ResNet-18, patch 56, stride 56", lambda: (
            occlusion(resnet, xr, patch=56, stride=56), _sync(device)))):
        fn()
        before, live_before = _memory(device), _live_tensor_mib()
        for _ in range(args.repeats):
            fn()
        after, live_after = _memory(device), _live_tensor_mib()
        print(f"  {label:<44} {kind} {before:>7.1f} → {after:>7.1f} ({after - before:+.1f}); "
              f"live tensors {live_before:.1f} → {live_after:.1f} ({live_after - live_before:+.1f})")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
