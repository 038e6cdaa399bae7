"""Training throughput of cnnviz.train against a conventional DataLoader loop, in images per second.

    python bench/train_throughput.py                 # ResNet-20, batch 128, 2 threads, 10 timed steps per row
    python bench/train_throughput.py --steps 30      # steadier figures
    python bench/train_throughput.py --profile       # also where the time of one step goes (torch profiler)

Data: N random uint8 images of CIFAR-10's shape (3×32×32, N = 10,000) with
random labels; model ``cifar_resnet(20)``; SGD (momentum 0.9, weight decay
1e-4), batch 128, float32 (no AMP on the CPU).

Rows:
- loaders alone: batches of 128 augmented, normalised images per second
  (``DeviceLoader`` vs torchvision's ``DataLoader`` with ``RandomCrop(32,
  padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` on PIL images).
- training steps, timed one step at a time in turns so that other load on the
  machine falls on every row alike: one step on a fixed, already normalised
  batch (the compute-only ceiling any loader can reach), ``Trainer.step()``
  (loader + step, no host synchronisation per step), and the conventional loop
  (``DataLoader`` with 0 workers + ``loss.item()`` every step), each with and
  without channels_last. GFLOP/s from ``torch.utils.flop_counter``
  (convolutions and the linear layer, forward + backward).
- the conventional loop with 2 worker processes, timed in runs of its own
  between two runs of the Trainer (taking turns would bill its prefetching to
  the other rows).
- the CPU's float32 matrix-product rate, as the roofline.

Goals on this CPU (issue "Training that people can watch"): ResNet-20 at
≥ 3,500 images/s, and cnnviz.train never slower than the conventional loop.
Prints figures; asserts nothing (timings do not belong in tests/).
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from _timing import cpu_name  # bench/_timing.py (scripts run from bench/)
from cnnviz.models.resnet import cifar_resnet
from cnnviz.train import DeviceLoader, TensorData, Trainer

GOAL_IMAGES_PER_S = 3500
BATCH = 128
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _load():
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def _random_cifar(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images, labels


def _model(channels_last):
    torch.manual_seed(0)
    model = cifar_resnet(20)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def _per_second(fn, steps, warmup):
    """Images per second over ``steps`` calls of ``fn`` (each one batch) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return steps * BATCH / (time.perf_counter() - t0)


def _interleaved(fns, rounds, warmup):
    """Median and best images/s of each step function, timed one step each in turn, ``rounds`` times.

    Taking turns step by step spreads whatever else loads the machine evenly over the rows.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - t0)
    return {name: (BATCH / statistics.median(t), BATCH / min(t)) for name, t in seconds.items()}


def matmul_gflops(n=2048, reps=5):
    """What this CPU does at best: GFLOP/s of an n×n float32 matrix product (the best of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_image(model):
    """Forward + backward FLOPs of one image (batch of 128), counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / BATCH


def compute_step(channels_last):
    """One optimisation step on a fixed batch, already normalised: no loader at all."""
    model = _model(channels_last)
    opt = _sgd(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _torchvision_loader(images, labels, workers):
    import torchvision.transforms as T
    from PIL import Image

    hwc = images.permute(0, 2, 3, 1).numpy()  # (N, 32, 32, 3) as torchvision's CIFAR10.data
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])

    class PILImages(torch.utils.data.Dataset):  # what torchvision.datasets.CIFAR10 does per sample
        def __len__(self):
            return len(hwc)

        def __getitem__(self, i):
            return transform(Image.fromarray(hwc[i])), int(labels[i])

    return torch.utils.data.DataLoader(PILImages(), batch_size=BATCH, shuffle=True, num_workers=workers,
                                       drop_last=True, persistent_workers=workers > 0)


def _endless(loader):
    while True:
        yield from loader


def loader_only(kind, images, labels, steps, warmup):
    if kind == "DeviceLoader":
        loader = DeviceLoader(images, labels, batch_size=BATCH, mean=MEAN, std=STD, device="cpu", augment=True,
                              generator=torch.Generator().manual_seed(0))
    else:
        loader = _torchvision_loader(images, labels, workers=0)
    batches = _endless(loader)
    return _per_second(lambda: next(batches), steps, warmup)


def trainer_step(data, channels_last):
    trainer = Trainer(_model(False), data, epochs=1000, batch_size=BATCH, device="cpu", channels_last=channels_last,
                      seed=0, progress=False, log_every=10**6)  # no evaluation within the timed steps
    return trainer.step


def conventional_step(images, labels, channels_last, workers):
    """The textbook loop: DataLoader over PIL images with torchvision transforms, ``loss.item()`` every step."""
    model = _model(channels_last)
    opt = _sgd(model)
    batches = _endless(_torchvision_loader(images, labels, workers))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    running = []

    def step():
        x, y = next(batches)
        x = x.contiguous(memory_format=fmt)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        running.append(loss.item())

    return step


def profile_step(channels_last):
    from torch.profiler import ProfilerActivity, profile

    model = _model(channels_last)
    opt = _sgd(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print(f"\nWhere a step's time goes (3 steps, channels_last={channels_last}):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each row (default 2)")
    parser.add_argument("--images", type=int, default=10_000, help="random CIFAR-shaped images (default 10,000)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--profile", action="store_true", help="also print the torch profiler's table for a step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images, labels = _random_cifar(args.images)
    data = TensorData.from_arrays(images, labels, images[:BATCH], labels[:BATCH], mean=MEAN, std=STD)
    gflop = flops_per_image(cifar_resnet(20)) / 1e9
    print(f"ResNet-20 training, batch {BATCH}, float32, {args.images} random 3×32×32 images; "
          f"{args.steps} timed steps per row after {args.warmup}")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}")
    print(f"Load average before the run: {_load()} (1 min)")
    peak = matmul_gflops()
    print(f"Work: {gflop:.3f} GFLOP per image (forward + backward). The goal of {GOAL_IMAGES_PER_S} images/s "
          f"needs {GOAL_IMAGES_PER_S * gflop:.0f} GFLOP/s.")
    print(f"This CPU's best on a 2048×2048 float32 matrix product: {peak:.0f} GFLOP/s, i.e. at most "
          f"~{peak / gflop:.0f} images/s for ResNet-20 even if every convolution ran like a big matmul.\n")

    header = f"{'row':<62} {'median img/s':>12} {'best img/s':>10} {'GFLOP/s':>8}"
    print(header)
    print("-" * len(header))

    def row(name, ips, best=None, flops=True):
        best = f"{best:>10.0f}" if best is not None else f"{'':>10}"
        gf = f"{ips * gflop:>8.1f}" if flops else f"{'':>8}"
        print(f"{name:<62} {ips:>12.0f} {best} {gf}", flush=True)

    print("Loaders alone (no model), batches of 128 augmented, normalised images:")
    row("cnnviz DeviceLoader (crop + flip + normalise, whole batch)",
        loader_only("DeviceLoader", images, labels, 20 * args.steps, args.warmup), flops=False)
    row("torchvision DataLoader, PIL + transforms, 0 workers",
        loader_only("torchvision", images, labels, 2 * args.steps, args.warmup), flops=False)

    print(f"\nTraining steps, taking turns step by step ({args.steps} rounds, load {_load()}):")
    fns = {}
    for cl in (False, True):
        fns[f"compute only (fixed batch), channels_last={cl}"] = compute_step(cl)
    for cl in (False, True):
        fns[f"cnnviz Trainer.step(), channels_last={cl}"] = trainer_step(data, cl)
    for cl in (False, True):
        fns[f"conventional DataLoader loop, 0 workers, channels_last={cl}"] = conventional_step(images, labels, cl, 0)
    results = _interleaved(fns, args.steps, args.warmup)
    for name, (median, best) in results.items():
        row(name, median, best)

    print(f"\nWith worker processes, timed in runs of {args.steps} steps (interleaved, their prefetching would "
          f"bill other rows), between two runs of the Trainer (load {_load()}):")
    bracketed = {}
    for cl in (False, True):
        trainer = trainer_step(data, cl)
        before = _per_second(trainer, args.steps, args.warmup)
        name = f"conventional DataLoader loop, 2 workers, channels_last={cl}"
        results[name] = (_per_second(conventional_step(images, labels, cl, 2), args.steps, args.warmup), None)
        after = _per_second(trainer, args.steps, 0)
        bracketed[cl] = (before + after) / 2
        row(f"cnnviz Trainer.step(), channels_last={cl}, before/after mean", bracketed[cl])
        row(name, results[name][0])
        print(f"{'  Trainer / conventional with 2 workers':<62} {bracketed[cl] / results[name][0]:>11.2f}×")

    print()
    ours = {cl: results[f"cnnviz Trainer.step(), channels_last={cl}"][0] for cl in (False, True)}
    compute = {cl: results[f"compute only (fixed batch), channels_last={cl}"][0] for cl in (False, True)}
    for cl in (False, True):
        conv0 = results[f"conventional DataLoader loop, 0 workers, channels_last={cl}"][0]
        ceiling = compute[cl]
        print(f"channels_last={cl}: Trainer {ours[cl]:.0f} images/s = {ours[cl] / conv0:.2f}× the conventional loop "
              f"(0 workers) and {100 * ours[cl] / ceiling:.0f} % of the compute-only ceiling.")
    print(f"channels_last on the CPU: {ours[True] / ours[False]:.2f}× (Trainer), "
          f"{compute[True] / compute[False]:.2f}× (compute only).")
    ratios = [ours[cl] / results[f"conventional DataLoader loop, 0 workers, channels_last={cl}"][0]
              for cl in (False, True)]
    ratios += [bracketed[cl] / results[f"conventional DataLoader loop, 2 workers, channels_last={cl}"][0]
               for cl in (False, True)]
    best = max(max(ours.values()), max(bracketed.values()))
    print(f"Trainer / conventional loop, same layout and timing method: {min(ratios):.2f}× to {max(ratios):.2f}×.")
    print(f"Best Trainer {best:.0f} images/s. Goal {GOAL_IMAGES_PER_S} images/s: "
          f"{'met' if best >= GOAL_IMAGES_PER_S else 'NOT MET'} "
          f"({best * gflop:.0f} of the {GOAL_IMAGES_PER_S * gflop:.0f} GFLOP/s it needs).")
    best_step = {kind: max(results[f"{kind}, channels_last={cl}"][1] for cl in (False, True))
                 for kind in ("cnnviz Trainer.step()", "compute only (fixed batch)")}
    print(f"With each row's fastest step instead of its median (less sensitive to other load): Trainer "
          f"{best_step['cnnviz Trainer.step()']:.0f}, "
          f"compute only {best_step['compute only (fixed batch)']:.0f} images/s.")
    print(f"Load average after the run: {_load()} (1 min)")
    if args.profile:
        for cl in (False, True):
            profile_step(cl)


if __name__ == "__main__":
    main()
