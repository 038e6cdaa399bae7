"""One check of cnnviz's device paths, for the day a GPU is lent: does each path run there, does it agree with
the CPU, and how fast is it.

    python bench/gpu_check.py                          # on cnnviz.device() (CUDA, else MPS, else the CPU)
    python bench/gpu_check.py --device cuda            # a chosen device
    python bench/gpu_check.py --device cpu --quick     # the same script in well under a minute (make test)
    python bench/gpu_check.py --json report.json       # where the JSON report goes (default: print only)

Everything runs offline on synthetic or embedded data. For each path it records whether it ran, whether its
result equals the CPU's within the stated tolerance, the precision the comparison is made at (``precision``:
"device default" where the device computes as it would for a user, so on Ampere and later GPUs cuDNN's float32
convolutions use TF32, good to about 1e-3 relative; "full float32" where a result meant to be exact, such as
incremental against full occlusion, a ranking or a resumed run, is compared inside
``cnnviz.runtime.full_float32``, TF32 off), and its time after a warm-up, with the device synchronised. It
prints the device, its compute capability, native bf16 support and the TF32 settings first, and on CUDA runs
the test suite's CUDA-only tests.

Paths covered: the zoo's forward pass, `summary` on a device model, feature maps, the Zeiler–Fergus deconvnet,
occlusion (incremental against full), captum's attributions, `filter_image`, chapter 9's `signal_flow`, the trainer with AMP off / fp16 /
bf16 (the dtype chosen, the loss scaler, the first losses against the CPU's, checkpoint and resume, the NaN
guard), ShapesNet's training recipe for a few steps against the CPU's, `DeviceLoader` against the CPU with the
same seed, `top_activations` and `sanity_check` against the CPU, the global random state around a race, the
embedded race's wall time on the device (a one-epoch race with ``--quick``), and the trainer's images/s against
a conventional `DataLoader` loop. The cached ShapesNet is not trained on the device: it always trains on the
CPU in float32, so its weights are the same on every machine.
Goal on one GPU: the whole check in at most 5 minutes; the trainer at least 2× the conventional loop.
"""
import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cnnviz  # noqa: E402
from cnnviz.runtime import full_float32, synchronize as sync  # noqa: E402

DEFAULT, FULL = "device default (TF32 convolutions on Ampere+)", "full float32 (TF32 off)"


def timed(fn, device, reps: int) -> float:
    """Milliseconds per call (median of ``reps`` after one warm-up), synchronised."""
    fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def max_diff(a, b) -> float:
    a, b = torch.as_tensor(a).detach().float().cpu(), torch.as_tensor(b).detach().float().cpu()
    return float((a - b).abs().max()) if a.numel() else 0.0


def relative(a, b) -> float:
    b_t = torch.as_tensor(b).detach().float().cpu()
    return max_diff(a, b) / max(float(b_t.abs().max()), 1e-12)


# ----------------------------------------------------------------------------- the paths


def check_zoo(device, quick):
    from cnnviz import models

    out = []
    for name in (["resnet18"] if quick else ["resnet18", "vgg11", "densenet121", "googlenet"]):
        torch.manual_seed(0)
        model = models.get(name).eval()
        x = torch.randn(2, 3, 64 if quick else 224, 64 if quick else 224)
        with torch.no_grad():
            ref = model(x)
            dev_model = model.to(device)
            got = dev_model(x.to(device))
        ms = timed(lambda: dev_model(x.to(device)), device, 3 if quick else 10)
        out.append({"path": f"zoo forward: {name}", "matched": relative(got, ref) < 1e-3, "error": relative(got, ref),
                    "tolerance": "1e-3 relative (TF32)", "ms": ms, "precision": DEFAULT})
    return out


def check_summary(device, quick):
    from cnnviz import models
    from cnnviz.summaries import summary

    model = models.get("resnet18").to(device)
    s = summary(model, (3, 224, 224), device=str(device))
    ref = summary(models.get("resnet18"), (3, 224, 224))
    return [{"path": "summary of a model on the device", "matched": s.total_params == ref.total_params,
             "error": abs(s.total_params - ref.total_params), "tolerance": "exact (parameter count)"}]


def check_features(device, quick):
    from cnnviz.features import feature_maps
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False)
    ref = feature_maps(model, "chelsea")
    dev = feature_maps(model.to(device), "chelsea")
    err = max(relative(dev[k], ref[k]) for k in ref)
    model.to("cpu")
    return [{"path": "feature maps (ShapesNet)", "matched": err < 1e-3, "error": err, "tolerance": "1e-3 relative",
             "precision": DEFAULT}]


def check_deconvnet(device, quick):
    from cnnviz.deconvnet import deconvnet
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False)
    ref = deconvnet(model, "chelsea", "features.relu3", 5)
    got = deconvnet(model.to(device), "chelsea", "features.relu3", 5)
    model.to("cpu")
    err = relative(got, ref)
    return [{"path": "deconvnet (ShapesNet, relu3)", "matched": err < 1e-3, "error": err,
             "tolerance": "1e-3 relative", "precision": DEFAULT}]


def check_occlusion(device, quick):
    from cnnviz.occlusion import occlusion
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False).to(device)
    kwargs = dict(patch=16, stride=8 if quick else 4)
    out = []
    chosen = occlusion(model, "chelsea", **kwargs)  # on a GPU: the first batch timed both ways, the faster kept
    out.append({"path": "occlusion: the path this device chose", "chosen": chosen.method, "matched": True,
                "error": 0.0, "tolerance": "runs"})
    maps = {}
    with full_float32():
        for incremental in (True, False):
            maps[incremental] = occlusion(model, "chelsea", incremental=incremental, **kwargs)
            ms = timed(lambda: occlusion(model, "chelsea", incremental=incremental, **kwargs), device,
                       1 if quick else 3)
            out.append({"path": f"occlusion, {'incremental' if incremental else 'full'}", "ms": ms,
                        "matched": True, "error": 0.0, "tolerance": "runs", "precision": FULL})
    err = max_diff(maps[True].prob, maps[False].prob)
    out.append({"path": "occlusion: incremental = full", "matched": err < 1e-4, "error": err,
                "tolerance": "1e-4 absolute probability", "precision": FULL})
    model.to("cpu")
    return out


def _shapes_batch(model, n):
    """``n`` generated shapes, normalised as ShapesNet wants them: (n, 3, 64, 64)."""
    from cnnviz.shapes import make_shapes

    images, _ = make_shapes(n, size=model.cnnviz_preprocess.size, seed=5)
    mean = torch.tensor(model.cnnviz_preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.cnnviz_preprocess.std).view(1, 3, 1, 1)
    return (images - mean) / std


def check_top_activations(device, quick):
    from cnnviz.deconvnet import top_activations
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False)
    images = _shapes_batch(model, 64 if quick else 512)
    with full_float32():
        ref = top_activations(model, images, "features.relu3", k=4, progress=False)
        got = top_activations(model.to(device), images.to(device), "features.relu3", k=4, progress=False)
        ms = timed(lambda: top_activations(model, images.to(device), "features.relu3", k=4, progress=False),
                   device, 1 if quick else 3)
    model.to("cpu")
    same = torch.equal(got.index.cpu(), ref.index)
    err = relative(got.values, ref.values)
    return [{"path": "top_activations (ShapesNet relu3): same images", "matched": same and err < 1e-4,
             "error": err, "tolerance": "indices exact, values 1e-4 relative", "ms": ms, "precision": FULL}]


def check_sanity(device, quick):
    from cnnviz.attribution import sanity_check
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False)
    layers = ["classifier.fc", "features.conv3"] if quick else None
    with full_float32():
        ref = sanity_check(model, "chelsea", "saliency", layers=layers)
        got = sanity_check(model.to(device), "chelsea", "saliency", layers=layers)
    model.to("cpu")
    err = max(abs(a[1] - b[1]) for a, b in zip(got, ref))
    names = [a[0] for a in got] == [b[0] for b in ref]
    return [{"path": "sanity_check (saliency): rank correlations", "matched": names and err < 1e-3, "error": err,
             "tolerance": "1e-3 absolute correlation", "precision": FULL}]


def check_race(device, quick):
    from dataclasses import replace

    from cnnviz.race import EMBEDDED, race

    config = replace(EMBEDDED, depths=(8,), epochs=1) if quick else EMBEDDED
    t0 = time.perf_counter()
    log = race(config, device=device)
    sync(device)
    seconds = time.perf_counter() - t0
    finite = all(log.final(net, "train_loss") is not None and math.isfinite(log.final(net, "train_loss"))
                 for net in log.nets)
    return [{"path": f"race wall time ({'one epoch, depth 8' if quick else 'the embedded race'})",
             "seconds_wall": seconds, "matched": finite, "error": 0.0, "tolerance": "finite losses"}]


def check_attribution(device, quick):
    from cnnviz.attribution import METHODS, attribute
    from cnnviz.vismodels import trained_shapesnet

    model = trained_shapesnet(progress=False)
    out = []
    for method in (["saliency", "grad_cam"] if quick else list(METHODS)):
        ref = attribute(model, "chelsea", method).map
        got = attribute(model.to(device), "chelsea", method).map
        model.to("cpu")
        err = relative(got, ref)
        out.append({"path": f"attribution: {method}", "matched": err < 1e-2, "error": err,
                    "tolerance": "1e-2 relative (gradients through TF32 convolutions)", "precision": DEFAULT})
    return out


def check_filter(device, quick):
    from cnnviz.data import load_image
    from cnnviz.kernels import filter_image

    img = load_image("astronaut", max_side=256 if quick else 512)
    k = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float32)
    ref = filter_image(img, k, device="cpu")
    got = filter_image(img, k, device=device)
    ms = timed(lambda: filter_image(img, k, device=device), device, 5 if quick else 20)
    err = max_diff(got, ref)
    return [{"path": "filter_image (colour, Sobel)", "matched": err < 1e-2, "error": err,
             "tolerance": "1e-2 absolute on 0..255 values", "ms": ms, "precision": DEFAULT}]


def _tiny_data(n=256, seed=0):
    from cnnviz.train import TensorData

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TensorData.from_arrays(x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4:], y[n * 3 // 4:])


def check_trainer(device, quick):
    from cnnviz.models.resnet import cifar_resnet
    from cnnviz.train import Trainer, TrainingDiverged

    data = _tiny_data()
    out = []
    losses = {}
    modes = [False] if device.type == "cpu" else [False, "fp16", "bf16"]
    for amp in [False] + [m for m in modes if m]:
        devices = [torch.device("cpu"), device] if amp is False and device.type != "cpu" else [device]
        for dev in devices:
            torch.manual_seed(0)
            model = cifar_resnet(8)
            tr = Trainer(model, data, epochs=1, batch_size=32, device=dev, amp=amp, seed=0, augment=False,
                         progress=False, log_every=1)
            tr.fit()
            losses[(str(dev.type), amp)] = [r["loss"] for r in tr.history.steps[:3]]
            if dev == device:
                out.append({"path": f"trainer, amp={amp or 'off'}", "dtype": str(tr.amp_dtype),
                            "scaler": tr.scaler is not None, "matched": True, "error": 0.0, "tolerance": "runs"})
    ref, got = losses[("cpu", False)], losses[(device.type, False)]
    err = max(abs(a - b) for a, b in zip(ref, got))
    out.append({"path": "trainer: first losses, device = CPU (fp32)", "matched": err < 1e-2, "error": err,
                "tolerance": "1e-2 absolute (TF32)", "precision": DEFAULT})
    # checkpoint and resume reproduce an uninterrupted run
    with tempfile.TemporaryDirectory() as tmp:
        def run(resume_after):
            torch.manual_seed(0)
            model = cifar_resnet(8)
            tr = Trainer(model, data, epochs=2, batch_size=32, device=device, amp=False, seed=0, progress=False,
                         checkpoint=Path(tmp) / f"c{resume_after}.pt")
            if resume_after:
                tr.run_epoch()
                torch.manual_seed(0)
                model = cifar_resnet(8)
                tr = Trainer(model, data, epochs=2, batch_size=32, device=device, amp=False, seed=0,
                             progress=False, checkpoint=Path(tmp) / f"c{resume_after}.pt", resume=True)
            tr.fit()
            return model.state_dict()

        with full_float32():
            a, b = run(0), run(1)
        err = max(max_diff(a[k], b[k]) for k in a if a[k].is_floating_point())
    out.append({"path": "trainer: checkpoint and resume = uninterrupted", "matched": err < 1e-4, "error": err,
                "tolerance": "1e-4 absolute", "precision": FULL})
    # the NaN guard
    bad = _tiny_data()
    torch.manual_seed(0)
    tr = Trainer(cifar_resnet(8), bad, epochs=1, batch_size=32, lr=1e6, device=device, amp=False, seed=0,
                 progress=False, log_every=1)
    try:
        tr.fit()
        caught = False
    except TrainingDiverged:
        caught = True
    out.append({"path": "trainer: NaN guard stops a diverging run", "matched": caught, "error": 0.0,
                "tolerance": "raises TrainingDiverged"})
    return out


def check_signal_flow(device, quick):
    """Chapter 9's signal flow (activation, gradient and update statistics; float64 sums) of a deep plain network
    with batch normalisation on the device against the CPU."""
    from cnnviz.initialisation import initialise_
    from cnnviz.signal_flow import deep_mlp, digits_batch, signal_flow

    x, y = digits_batch(128 if quick else 512)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = deep_mlp(10 if quick else 30, 128, activation="tanh", batch_norm=True)
        initialise_(model, "xavier_normal", activation="tanh")
    with full_float32():
        ref = signal_flow(model, x, y)
        got = signal_flow(model.to(device), x.to(device), y.to(device))
    model.to("cpu")
    pairs = [(a.std, b.std) for a, b in zip(got.activations + got.gradients, ref.activations + ref.gradients)]
    pairs += [(a.update_ratio, b.update_ratio) for a, b in zip(got.weights, ref.weights)]
    err = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)
    same = len(got.activations) == len(ref.activations) and len(got.gradients) == len(ref.gradients)
    return [{"path": "signal_flow: activation, gradient and update statistics", "matched": same and err < 1e-3,
             "error": err, "tolerance": "1e-3 relative", "precision": FULL}]


def check_shapesnet(device, quick):
    """ShapesNet's recipe (batch norm, one-cycle SGD, crops and flips) for a few steps on the device against the
    same steps on the CPU. The cached ShapesNet itself always trains on the CPU (see the module's docstring)."""
    from cnnviz import shapes
    from cnnviz.models.shapesnet import shapesnet
    from cnnviz.train import TensorData
    from cnnviz.vismodels import RECIPE, _one_cycle_trainer

    n = 128 if quick else 512
    x, y = shapes.make_shapes(n, size=RECIPE["image_size"], seed=11)
    data = TensorData.from_arrays(x, y, x[:64], y[:64], classes=shapes.CLASSES)
    losses, ms = {}, None
    for dev in dict.fromkeys([torch.device("cpu"), device]):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = shapesnet(widths=RECIPE["widths"], batch_norm=True)
        tr = _one_cycle_trainer()(model, data, epochs=1, batch_size=32, lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                                  weight_decay=RECIPE["weight_decay"], augment=True, pad=RECIPE["crop_pad"],
                                  flip=RECIPE["flip"], seed=0, progress=False, device=dev, amp=False, log_every=1)
        t0 = time.perf_counter()
        tr.fit()
        sync(dev)
        losses[dev.type] = [r["loss"] for r in tr.history.steps[:3]]
        if dev == device:
            ms = 1000 * (time.perf_counter() - t0)
    ref, got = losses["cpu"], losses[device.type]
    err = max(abs(a - b) for a, b in zip(ref, got))
    return [{"path": "ShapesNet's recipe on the device: first losses = CPU", "matched": err < 1e-2, "error": err,
             "tolerance": "1e-2 absolute (TF32)", "ms": ms, "precision": DEFAULT}]


def check_loader(device, quick):
    from cnnviz.train import DeviceLoader

    data = _tiny_data(128)
    batches = {}
    for dev in ("cpu", device):
        loader = DeviceLoader(data.train_images, data.train_labels, batch_size=32, mean=data.mean, std=data.std,
                              device=dev, augment=True, pad=4, generator=torch.Generator().manual_seed(3))
        batches[str(dev)] = [(x.cpu(), y.cpu()) for x, y in loader]
    ref, got = batches["cpu"], batches[str(device)]
    err = max(max_diff(a[0], b[0]) for a, b in zip(ref, got))
    same_labels = all(torch.equal(a[1], b[1]) for a, b in zip(ref, got))
    return [{"path": "DeviceLoader: crops and flips = the CPU's (same seed)", "matched": err < 1e-5 and same_labels,
             "error": err, "tolerance": "1e-5 absolute, labels exact", "precision": "float32, no convolution"}]


def check_random_state(device, quick):
    from cnnviz.race import EMBEDDED, build_net

    cpu = torch.get_rng_state()
    acc = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    build_net("resnet-20", EMBEDDED)
    same = torch.equal(cpu, torch.get_rng_state())
    same = same and (acc is None or torch.equal(acc, torch.cuda.get_rng_state(device)))
    return [{"path": "random state around a race network's build", "matched": same, "error": 0.0,
             "tolerance": "bit-identical generators"}]


def check_speed(device, quick):
    """Trainer.step() against the conventional loop: PIL crops and flips in a DataLoader, .item() every step."""
    from torchvision import transforms

    from cnnviz.models.resnet import cifar_resnet
    from cnnviz.train import Trainer

    n = 512 if quick else 4096
    data = _tiny_data(n + n // 3)
    torch.manual_seed(0)
    tr = Trainer(cifar_resnet(20), data, epochs=1, batch_size=128, device=device, seed=0, progress=False,
                 channels_last=device.type == "cuda")
    steps = len(data.train_images) // 128
    tr.step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps - 1):
        tr.step()
    sync(device)
    ours = (steps - 1) * 128 / (time.perf_counter() - t0)

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])

    class Set(torch.utils.data.Dataset):
        def __len__(self):
            return len(data.train_images)

        def __getitem__(self, i):
            img = transforms.functional.to_pil_image(data.train_images[i])
            return tf(img), int(data.train_labels[i])

    loader = torch.utils.data.DataLoader(Set(), batch_size=128, shuffle=True, drop_last=True, num_workers=0)
    torch.manual_seed(0)
    model = cifar_resnet(20).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    it = iter(loader)
    t0, seen = None, 0
    for k, (x, y) in enumerate(it):
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        if k == 0:
            sync(device)
            t0 = time.perf_counter()
        else:
            seen += len(y)
    sync(device)
    theirs = seen / (time.perf_counter() - t0) if seen else math.nan
    return [{"path": "trainer images/s vs the conventional loop", "ours": ours, "theirs": theirs,
             "ratio": ours / theirs, "matched": True, "error": 0.0, "tolerance": "goal on a GPU: ratio ≥ 2"}]


def check_cuda_tests(device, quick):
    """The test suite's CUDA-only tests (skipped everywhere else)."""
    import subprocess

    if device.type != "cuda":
        return []
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_features.py::test_results_stay_on_the_models_device",
                          "tests/test_deconvnet.py::test_results_stay_on_the_models_device",
                          "tests/test_augmentation.py::test_on_the_gpu_a_batch_is_augmented_as_on_the_cpu"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    return [{"path": "the CUDA-only tests", "matched": run.returncode == 0, "error": 0.0 if run.returncode == 0
             else run.stdout[-500:], "tolerance": "pass"}]


CHECKS = [check_zoo, check_summary, check_features, check_deconvnet, check_occlusion, check_top_activations,
          check_attribution, check_sanity, check_filter, check_signal_flow, check_trainer, check_shapesnet,
          check_loader, check_random_state, check_race, check_speed, check_cuda_tests]


def device_info(device):
    info = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device),
                    capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                    bf16_native=torch.cuda.is_bf16_supported(including_emulation=False),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        info.update(name=device.type, capability=None, bf16_native=None, tf32_matmul=None, tf32_cudnn=None)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cnnviz.device()")
    parser.add_argument("--quick", action="store_true", help="small inputs and fewer repetitions")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else cnnviz.device()
    start = time.perf_counter()
    report = {"info": device_info(device), "quick": args.quick, "results": []}
    print(" · ".join(f"{k} {v}" for k, v in report["info"].items()))
    for check in CHECKS:
        t0 = time.perf_counter()
        try:
            rows = check(device, args.quick)
            for r in rows:
                r["ran"] = True
        except Exception as err:  # a path that fails is a result: recorded with its error, the others still run
            rows = [{"path": check.__name__[6:], "ran": False, "matched": False,
                     "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}]
        for r in rows:
            r["seconds"] = time.perf_counter() - t0
            report["results"].append(r)
            extra = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                              if k in ("ms", "ratio", "ours", "theirs", "dtype", "scaler", "chosen", "seconds_wall",
                                       "precision"))
            status = "ok" if r["ran"] and r["matched"] else ("RAN, DIFFERS" if r["ran"] else "FAILED")
            err = r["error"] if isinstance(r["error"], str) else f"{r['error']:.2e}"
            print(f"  {status:12} {r['path']:52} error {err:12} ({r.get('tolerance', '')}) {extra}")
    report["seconds"] = time.perf_counter() - start
    print(f"all checks in {report['seconds']:.1f} s (goal on one GPU: ≤ 300 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return 0 if all(r["ran"] and r["matched"] for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
