"""Record the race of plain and residual networks on CIFAR-10 with He et al.'s recipe, for the book.

    python tools/record_cifar_race.py                          # 164 epochs, plain/ResNet-20 and -56
    python tools/record_cifar_race.py --epochs 30              # a shorter run, same schedule (50 %, 75 %)
    python tools/record_cifar_race.py --depths 20 32 44 56     # the paper's Figure 6 (left and middle)

Needs a GPU (164 epochs of four networks; not yet timed) and internet access the first time, to
download CIFAR-10 (170 MB) into ``cnnviz.data.cache_dir()`` (or ``--root``). Writes the race's log
as JSON (default ``book/data/race_cifar10.json``); chapter 10 shows it at the next build.
Checkpoints go to ``--checkpoint-dir`` (default: under ``cnnviz.data.cache_dir()``) after every
epoch: run the same command again to resume an interrupted run. Settings: ``cnnviz.race.CIFAR10``
(SGD, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 50 % and 75 % of the run, batch 128,
random crops and flips).
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "book" / "data" / "race_cifar10.json")
    parser.add_argument("--epochs", type=int, default=None, help="default 164 (the paper's 64,000 iterations)")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=None, help="where CIFAR-10 is (default: cnnviz's cache)")
    parser.add_argument("--device", default=None, help="default: cnnviz.device() (CUDA when there is one)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="default: a folder under cnnviz.data.cache_dir() named after the settings")
    args = parser.parse_args(argv)

    import torch

    from cnnviz.data import DatasetUnavailable, cache_dir
    from cnnviz.figures.training import race_table
    from cnnviz.race import cifar_race

    device = torch.device(args.device) if args.device else None
    if (device or torch.device("cuda" if torch.cuda.is_available() else "cpu")).type == "cpu":
        print("warning: no GPU; 164 epochs of four networks would take days on a CPU.", file=sys.stderr)
    name = f"cifar10-{'-'.join(map(str, args.depths))}-epochs{args.epochs or 'all'}-seed{args.seed}-checkpoints"
    checkpoints = args.checkpoint_dir or cache_dir() / "races" / name
    start = time.perf_counter()

    def report(race):
        if race.log.points["step"][-1] % race.steps_per_epoch == 0:
            errors = "  ".join(f"{n} {100 * s['train_error'][-1]:.1f}/{100 * (s['test_error'][-1] or 0):.1f}"
                               for n, s in race.log.series.items() if s["train_error"][-1] is not None)
            print(f"epoch {race.progress_epochs:5.1f}/{race.config.epochs}  {time.perf_counter() - start:7.0f} s  "
                  f"train/test error %: {errors}", flush=True)

    try:
        log = cifar_race(depths=tuple(args.depths), epochs=args.epochs, seed=args.seed, root=args.root,
                         device=device, on_log=report, checkpoint_dir=checkpoints)
    except DatasetUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.save(args.out)
    print(race_table(log))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB); checkpoints in {checkpoints} "
          "(delete them once the log is kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
