"""The Colab labs (notebooks/) and the widget gallery (widgets/): they run top to bottom unattended,
are committed without outputs, and their badges and install lines match _config.yml."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for folder in ("notebooks", "widgets")
                   for p in (ROOT / folder).glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELL_TIMEOUT = 300  # seconds; the first torch import on a cold disk is the slow part


def _sync_badges():
    spec = importlib.util.spec_from_file_location("sync_badges", ROOT / "tools" / "sync_badges.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert "notebooks/01_convolution.ipynb" in NOTEBOOKS
    assert "widgets/kernel_editor.ipynb" in NOTEBOOKS


@pytest.mark.notebook
def test_kernel_is_this_python():
    """The notebooks run on the interpreter running the tests (the venv), not on whatever `python` is on PATH."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        lines = []
        kc.execute_interactive("import sys; print(sys.executable)", timeout=60,
                               output_hook=lambda m: lines.append(m["content"].get("text", "")))
        assert Path("".join(lines).strip()).resolve() == Path(sys.executable).resolve()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / path, as_version=4)
    # Run from a scratch folder so nothing a cell writes lands in the repository.
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    # The last cell shows a live widget: a widget view, not just its text repr.
    assert any(WIDGET_VIEW in o.get("data", {}) for o in code[-1].outputs), code[-1].outputs
    assert any(name in code[-1].source for name in _widget_names())


def _widget_names():
    import cnnviz.widgets
    return cnnviz.widgets.__all__


LABS = [p for p in NOTEBOOKS if p.startswith("notebooks/")]


@pytest.mark.parametrize("path", LABS)
def test_prediction_exercises_run_unattended(path):
    """Every `my_answer = None` exercise is followed by a check that explains what to do."""
    nb = nbformat.read(ROOT / path, as_version=4)
    exercises = [c.source for c in nb.cells if c.cell_type == "code" and "my_answer = None" in c.source]
    assert len(exercises) >= 4
    assert all("check(my_answer," in s for s in exercises)
    # the checker comes from cnnviz (tests/test_exercises.py), not a helper pasted into the lab
    assert any("from cnnviz.exercises import check" in c.source for c in nb.cells)
    assert not any("def check(" in c.source for c in nb.cells)


def test_setup_cell_installs_only_when_missing():
    sync = _sync_badges()
    requirement = sync.install_requirement()
    for path in NOTEBOOKS:
        nb = nbformat.read(ROOT / path, as_version=4)
        setup = [c.source for c in nb.cells if c.cell_type == "code" and "%pip" in c.source]
        assert len(setup) == 1, f"{path}: exactly one setup cell should install cnnviz"
        src = setup[0]
        assert "try:\n    import cnnviz\nexcept ImportError:\n    %pip install -q" in src, path
        assert f'"{requirement}"' in src, path
        assert not any(w in src.split("%pip install", 1)[1].splitlines()[0] for w in ("torch", "ipywidgets")), path
        assert "enable_custom_widget_manager" not in json.dumps(nb), path  # core widgets only


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_committed_without_outputs(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path}: cell {i} has outputs"
    assert "widgets" not in nb.metadata, f"{path}: saved widget state"


def test_badges_match_config():
    result = subprocess.run([sys.executable, "tools/sync_badges.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_colab_url():
    sync = _sync_badges()
    assert sync.colab_url("notebooks/01_convolution.ipynb") == (
        "https://colab.research.google.com/github/cnnviz/cnnviz/blob/main/notebooks/01_convolution.ipynb")
    assert sync.colab_url(ROOT / "widgets" / "kernel_editor.ipynb").endswith("/blob/main/widgets/kernel_editor.ipynb")


def test_sync_badges_fixes_and_is_idempotent(tmp_path):
    """A moved repository: --check fails, a sync rewrites badge and install line, a second sync changes nothing."""
    sync = _sync_badges()
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/someone/fork/\n  branch: spring-2026\n")
    path = ROOT / "notebooks" / "01_convolution.ipynb"
    original = path.read_text(encoding="utf-8")
    nb = nbformat.reads(original, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "%pip" not in c.source)
    cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", text="stale")], 3

    fixed, problems = sync.synced(nb, path, config)
    assert any("badge" in p for p in problems) and any("install" in p for p in problems)
    assert any("outputs" in p for p in problems)
    first = fixed.cells[0].source.splitlines()
    assert first[0] == ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                        "(https://colab.research.google.com/github/someone/fork/blob/spring-2026/"
                        "notebooks/01_convolution.ipynb)")
    assert first[1] == "" and first[2:] == nb.cells[0].source.splitlines()[2:]  # title and intro kept
    setup = next(c.source for c in fixed.cells if "%pip" in c.source)
    assert '"cnnviz @ git+https://github.com/someone/fork@spring-2026"' in setup
    assert all(c.outputs == [] and c.execution_count is None for c in fixed.cells if c.cell_type == "code")
    assert sync.synced(fixed, path, config)[1] == []
    assert path.read_text(encoding="utf-8") == original  # synced() never writes


def test_sync_badges_inserts_a_missing_badge_and_writes_like_jupyter(tmp_path):
    sync = _sync_badges()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "lab.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A lab\n\nSome text."),
                                         nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, path)
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    sync.ROOT = tmp_path  # the notebook's path in the badge is relative to this root
    assert sync.sync(path, tmp_path / "_config.yml") == ["badge missing"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n "cells": [\n  {\n') and text.endswith("}\n")  # 1-space indent, like Jupyter
    source = nbformat.read(path, as_version=4).cells[0].source
    assert source.count("colab-badge.svg") == 1
    assert source.endswith("/blob/main/notebooks/lab.ipynb)\n\n# A lab\n\nSome text.")
    assert sync.sync(path, tmp_path / "_config.yml") == []
    assert path.read_text(encoding="utf-8") == text
