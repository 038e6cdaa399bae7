"""cnnviz.runtime (device, seed), what `import cnnviz` does (nothing), and cnnviz.plot's display paths."""
import json
import random
import re
import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import cnnviz
from cnnviz import plot


# ----------------------------------------------------------------------------- device

def _no_mps(monkeypatch):
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)


def test_device_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_mps(monkeypatch)
    assert cnnviz.device() == torch.device("cpu")


def test_device_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cnnviz.device() == torch.device("cuda")


def test_device_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert cnnviz.device() == torch.device("mps")


def test_device_unpatched_agrees_with_torch():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert cnnviz.device().type == expected


# ----------------------------------------------------------------------------- seed

def _draw():
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]


def test_seed_makes_every_generator_repeatable():
    cnnviz.seed(3)
    first = _draw()
    cnnviz.seed(3)
    assert _draw() == first
    cnnviz.seed(4)
    assert all(a != b for a, b in zip(_draw(), first))


def test_seed_returns_a_seeded_generator():
    g1, g2 = cnnviz.seed(11), cnnviz.seed(11)
    assert isinstance(g1, torch.Generator)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))
    assert g1.initial_seed() == 11


def test_seed_accepts_numpy_and_large_integers():
    cnnviz.seed(np.int64(5))
    a = _draw()
    cnnviz.seed(5)
    assert _draw() == a
    cnnviz.seed(2**40)  # numpy's 32-bit limit is handled
    cnnviz.seed(0)


@pytest.mark.parametrize("bad", [1.5, 2.0, "3", None, True, [1]])
def test_seed_rejects_non_integers(bad):
    with pytest.raises(TypeError, match="seed must be an integer"):
        cnnviz.seed(bad)


# ----------------------------------------------------------------------------- import has no side effects

_IMPORT_PROBE = r"""
import json, random, sys, warnings
import numpy as np
import torch

before = (torch.get_rng_state().clone(), np.random.get_state(), random.getstate(), list(warnings.filters),
          torch.get_num_threads(), torch.get_default_dtype())
import cnnviz
import cnnviz.conv, cnnviz.kernels, cnnviz.imaging, cnnviz.data, cnnviz.runtime
after_computation = sorted(m for m in ("ipywidgets", "IPython", "plotly") if m in sys.modules)
import cnnviz.plot, cnnviz.figures
after_figures = sorted(m for m in ("ipywidgets", "IPython") if m in sys.modules)
after = (torch.get_rng_state(), np.random.get_state(), random.getstate(), list(warnings.filters),
         torch.get_num_threads(), torch.get_default_dtype())
print(json.dumps(dict(
    torch_rng=bool(torch.equal(before[0], after[0])),
    numpy_rng=all(np.array_equal(a, b) for a, b in zip(before[1], after[1])),
    python_rng=before[2] == after[2],
    warnings=before[3] == after[3],
    threads=before[4] == after[4],
    dtype=before[5] == after[5],
    after_computation=after_computation,
    after_figures=after_figures,
)))
"""


def _run(code):
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_import_cnnviz_is_cheap_and_pure():
    out = _run("import sys; import cnnviz; "
               "print(sorted(m for m in ('ipywidgets', 'plotly', 'IPython', 'torchvision', 'skimage', 'sklearn') "
               "if m in sys.modules))")
    assert out.strip() == "[]"


def test_import_has_no_side_effects():
    result = json.loads(_run(_IMPORT_PROBE).strip().splitlines()[-1])
    assert result == dict(torch_rng=True, numpy_rng=True, python_rng=True, warnings=True, threads=True, dtype=True,
                          after_computation=[], after_figures=[])


def test_the_probe_can_see_an_import():
    # guards the two tests above: importing the widgets does pull ipywidgets into sys.modules
    assert "ipywidgets" in _run("import sys, cnnviz.widgets; print(sorted(sys.modules))")


def test_lazy_submodules():
    assert cnnviz.conv.output_size(6, 3) == 4
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        cnnviz.nope  # noqa: B018
    assert set(cnnviz.__all__) >= {"device", "seed", "conv", "data", "kernels", "plot", "figures", "widgets"}


# ----------------------------------------------------------------------------- keep_freed_memory

_FAULTS = r"""
import resource
import numpy as np
import cnnviz.widgets  # importing the widgets changes nothing either
import cnnviz.runtime
from cnnviz.kernels import PRESETS, filter_image
print(cnnviz.runtime._ALLOCATOR["set"])
print(cnnviz.runtime.keep_freed_memory())
img = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
for _ in range(3):
    filter_image(img, PRESETS["sobel x"], device="cpu")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    filter_image(img, PRESETS["sobel x"], device="cpu")
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults():
    res = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    untouched, result, per_call = res.stdout.split()
    return untouched, result, float(per_call)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_stops_the_page_faults_of_every_update():
    # A colour filter_image on 512×512 allocates ~7 MB; glibc's default hands it back to the OS
    # and faults it in again each call (thousands of 4 KiB pages). Kept, repeat calls reuse it.
    untouched, result, kept = _faults()
    assert untouched == "None"  # nothing touched the allocator at import
    assert result == "True"
    assert kept < 50  # glibc's default: ~8,600 per call on this machine, though not in every heap state


def test_keep_freed_memory_does_nothing_off_glibc(monkeypatch):
    from cnnviz import runtime
    monkeypatch.setitem(runtime._ALLOCATOR, "set", None)
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False
    assert runtime.keep_freed_memory() is False  # decided once


def test_live_widgets_keep_freed_memory(monkeypatch):
    from cnnviz import runtime
    from cnnviz.widgets._base import LatestOnly
    calls = []
    monkeypatch.setattr("cnnviz.widgets._base.keep_freed_memory", lambda: calls.append(1) or True)
    LatestOnly(lambda req: None, lambda exc: None, threaded=False)
    assert calls == [1]
    assert runtime._ALLOCATOR["set"] in (None, True, False)


# ----------------------------------------------------------------------------- plot.show

@pytest.fixture
def displayed(monkeypatch):
    """Everything plot.show passes to IPython.display.display."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    return shown


def _figure():
    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
    return plot.style(fig, title="cnnviz-test-title")


@pytest.mark.parametrize("value", ["1", "yes"])
def test_show_in_the_book_is_one_html_div(monkeypatch, displayed, value):
    from IPython.core.formatters import DisplayFormatter

    monkeypatch.setenv("CNNVIZ_BOOK", value)
    assert plot.in_book_build()
    fig = _figure()
    plot.show(fig)
    assert len(displayed) == 1
    obj = displayed[0]
    assert not isinstance(obj, go.Figure)
    formats, _ = DisplayFormatter().format(obj)
    assert set(formats) == {"text/plain", "text/html"}  # one HTML output, no plotly JSON for myst-nb to drop
    html = formats["text/html"]
    assert 'class="plotly-graph-div"' in html
    assert "cnnviz-test-title" in html
    assert "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)  # plotly.js comes from the book's one local copy
    assert "cdn" not in html.lower()
    assert not re.search(r"https?://", html)  # nothing from the internet


def test_book_html_does_not_autoplay_animations():
    fig = go.Figure(go.Scatter(y=[1, 2]), frames=[go.Frame(data=[go.Scatter(y=[2, 1])], name="0")])
    html = plot.as_html(fig)
    assert "Plotly.addFrames" in html
    assert "Plotly.animate" not in html


@pytest.mark.parametrize("value", [None, "", "0"])
def test_show_elsewhere_displays_the_figure(monkeypatch, displayed, value):
    if value is None:
        monkeypatch.delenv("CNNVIZ_BOOK", raising=False)
    else:
        monkeypatch.setenv("CNNVIZ_BOOK", value)
    assert not plot.in_book_build()
    fig = _figure()
    plot.show(fig)
    assert len(displayed) == 1 and displayed[0] is fig


def test_style():
    fig = plot.style(go.Figure(), title="t", height=321)
    assert fig.layout.title.text == "t" and fig.layout.height == 321
    assert fig.layout.font.size == plot.FONT_SIZE
    assert plot.style(go.Figure()).layout.title.text is None


def test_full_float32_turns_tf32_off_for_the_block_and_restores_it():
    from cnnviz.runtime import full_float32
    matmul = torch.backends.cuda.matmul
    saved = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = True  # an Ampere GPU's convolution default, both on
        with pytest.raises(KeyError):
            with full_float32():
                assert (torch.backends.cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
                raise KeyError("restored even after an error")
        assert (torch.backends.cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_synchronize_waits_only_where_there_is_a_queue(monkeypatch):
    from cnnviz.runtime import synchronize
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(("cuda", str(d))))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps",)))
    synchronize("cpu")
    synchronize("cuda:1")
    synchronize(torch.device("mps"))
    assert calls == [("cuda", "cuda:1"), ("mps",)]
