"""The GPU paths, checked on the CPU where their logic allows: capability checks, device comparisons, copies,
and seeding that leaves other devices' random state alone (no GPU has run these; see issue "GPU paths")."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz import train
from cnnviz.summaries import _same_device


def test_bf16_only_where_the_gpu_has_it_natively(monkeypatch):
    """A T4 reports bf16 as supported through emulation, without bf16 convolutions: float16 with loss scaling
    is chosen there; an Ampere GPU gets bfloat16."""
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert train._amp_dtype(True, cuda) == torch.float16 and train._amp_dtype(None, cuda) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert train._amp_dtype(True, cuda) == torch.bfloat16
    assert train._amp_dtype(None, torch.device("cpu")) is None and train._amp_dtype("fp16", cuda) == torch.float16


def test_device_names_that_mean_the_same_device():
    d = torch.device
    assert _same_device(d("cuda:0"), d("cuda")) and _same_device(d("cuda"), d("cuda:1"))
    assert not _same_device(d("cuda:0"), d("cuda:1")) and not _same_device(d("cpu"), d("cuda"))
    assert _same_device(d("mps"), d("mps:0")) and _same_device(d("cpu"), d("cpu"))


def test_asynchronous_copies_only_on_cuda():
    assert train.non_blocking_copies("cuda") and train.non_blocking_copies(torch.device("cuda:1"))
    assert not train.non_blocking_copies("mps") and not train.non_blocking_copies("cpu")
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    assert train.DeviceLoader(x, torch.zeros(4, dtype=torch.int64), batch_size=2, mean=[0.5], std=[0.5],
                              device="cpu").non_blocking is False


@pytest.fixture
def seeding_recorder(monkeypatch):
    """Records any seeding of the CUDA generators (which torch.manual_seed does, even with no GPU)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(("all", seed)))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(("one", seed)))
    return calls


def test_seeded_builds_leave_other_devices_alone(seeding_recorder):
    from cnnviz import race, transfer, transfer_study as ts
    from cnnviz.models.shapesnet import shapesnet

    net = shapesnet(widths=(4, 4, 4, 4))             # (draws from the global generator: before `before`)
    before = torch.get_rng_state()
    race.build_net("resnet-20", race.EMBEDDED)
    ts.scratch_model(net.eval(), seed=1)
    transfer.replace_head(net, 3, generator=torch.Generator().manual_seed(0))
    assert seeding_recorder == []                                  # no CUDA generator was reseeded
    assert torch.equal(before, torch.get_rng_state())               # and the CPU's is as it was


def test_tensor_data_keeps_its_images_on_the_cpu():
    """Images and labels given on a device are kept on the CPU (the loader copies batches over): here a
    'device' tensor is the meta device's stand-in for a GPU one, which .cpu() must be asked of."""
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(6) % 2
    moved = []

    class OnDevice(torch.Tensor):
        def cpu(self, *args, **kwargs):
            moved.append(tuple(self.shape))
            return torch.Tensor(self).cpu()

    d = train.TensorData.from_arrays(x.as_subclass(OnDevice), y.as_subclass(OnDevice), x, y)
    assert len(moved) == 2 and d.train_images.device.type == "cpu" and type(d.train_labels) is torch.Tensor


def test_shapesnet_trains_on_the_cpu_in_float32_everywhere(monkeypatch):
    from cnnviz import vismodels

    seen = {}

    class Spy(Exception):
        pass

    def trainer(*args, **kwargs):
        seen.update(kwargs)
        raise Spy

    monkeypatch.setattr(vismodels, "_one_cycle_trainer", lambda: trainer)
    with pytest.raises(Spy):
        vismodels._train(0, progress=False)
    assert seen["device"] == "cpu" and seen["amp"] is False


def test_the_gpu_check_runs_every_path_on_the_cpu(tmp_path):
    """bench/gpu_check.py --device cpu --quick: every path runs and matches the CPU (so the script never rots
    while no GPU is lent)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    report = tmp_path / "gpu_check.json"
    run = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
                          "--json", str(report)], cwd=root, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    data = json.loads(report.read_text())
    paths = [r["path"] for r in data["results"]]
    assert all(r["ran"] and r["matched"] for r in data["results"]), data["results"]
    for needed in ("zoo forward", "summary", "feature maps", "deconvnet", "occlusion: incremental = full",
                   "attribution", "filter_image", "trainer: checkpoint and resume", "trainer: NaN guard",
                   "DeviceLoader", "random state", "images/s", "top_activations", "sanity_check",
                   "race wall time", "the path this device chose", "ShapesNet's recipe", "signal_flow"):
        assert any(needed in p for p in paths), needed
    assert data["info"]["device"] == "cpu"


# ----------------------------------------------------------------------------- torch.set_default_device

_DRAW = re.compile(r"torch\.(?:randn|rand|randint|randperm|normal|bernoulli|multinomial)\((?:[^()]|\([^()]*\))*"
                   r"\bgenerator=")


def _whole_call(text, start):
    """The call starting at ``start``, up to its balanced closing parenthesis."""
    depth = 0
    for k in range(text.index("(", start), len(text)):
        depth += {"(": 1, ")": -1}.get(text[k], 0)
        if depth == 0:
            return text[start:k + 1]
    raise ValueError("unbalanced call")


def test_every_seeded_draw_names_its_device():
    """Under torch.set_default_device("cuda") a draw from a CPU generator with no device= is made on the GPU
    and fails ("Expected a 'cuda' device type for generator"): every seeded draw in cnnviz says where."""
    root = Path(__file__).resolve().parents[1] / "cnnviz"
    missing, seen = [], 0
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in _DRAW.finditer(text):
            call = _whole_call(text, m.start())
            seen += 1
            if "device=" not in call:
                missing.append(f"{path.relative_to(root)}:{text.count(chr(10), 0, m.start()) + 1}: {call}")
    assert seen > 30  # the pattern does find the package's draws
    assert not missing, "\n".join(missing)


def _made_on(default):
    from cnnviz import kernels, receptive_field, shapes, signal_flow
    image = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    with torch.device(default):
        return {
            "make_shapes": shapes.make_shapes(6, size=32, seed=3),
            "make_textures": shapes.make_textures(6, size=32, seed=3),
            "digits_batch": signal_flow.digits_batch(8, seed=1),
            "draw_epoch": train.draw_epoch(torch.Generator().manual_seed(0), 10, 2),
            "effective_receptive_field": receptive_field.effective_receptive_field(
                receptive_field._convs(2), (12, 12), channels=2),
            "fit_kernel": kernels.fit_kernel(image, image, steps=3)[0],
        }


def test_embedded_data_is_made_on_the_cpu_whatever_the_default_device():
    """The meta device stands in for a GPU made the default (torch.set_default_device): a tensor created there
    has no values, so anything the makers created on the default device would show up as meta or fail."""
    ref, got = _made_on("cpu"), _made_on("meta")
    for name in ref:
        a = ref[name] if isinstance(ref[name], tuple) else (ref[name],)
        b = got[name] if isinstance(got[name], tuple) else (got[name],)
        for x, y in zip(a, b):
            if isinstance(x, torch.Tensor):
                assert y.device.type == "cpu", name
                assert torch.equal(x, y), name
            else:
                np.testing.assert_array_equal(x, y, err_msg=name)
