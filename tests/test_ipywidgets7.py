"""Colab ships ipywidgets 7: run the kernel-editor and the explorers' tests again under ipywidgets 7.

`make test` installs ipywidgets 7 (without dependencies) into .venv/ipywidgets7;
this test puts it first on the path of a fresh Python and runs the widget tests there.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IPYW7 = ROOT / ".venv" / "ipywidgets7"


def test_kernel_editor_works_with_ipywidgets_7():
    if not (IPYW7 / "ipywidgets").is_dir():
        pytest.fail(f"ipywidgets 7 is not installed in {IPYW7}: run `make test`, which installs it.")
    env = dict(os.environ, PYTHONPATH=str(IPYW7))
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("7."), version
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_kernel_editor.py")],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


@pytest.mark.parametrize("test_file", ["test_architecture_explorer.py", "test_inception_explorer.py",
                                       "test_vis_widgets.py", "test_signal_flow_explorer.py",
                                       "test_augmentation_explorer.py", "test_transfer_explorer.py",
                                       "test_lecture_widgets.py"])
def test_explorers_work_with_ipywidgets_7(test_file):
    """The explorers' tests (architecture, Inception cost, visualisation, signal flow, augmentation, transfer, the
    lecture layout), again under ipywidgets 7 (Colab's)."""
    if not (IPYW7 / "ipywidgets").is_dir():
        pytest.fail(f"ipywidgets 7 is not installed in {IPYW7}: run `make test`, which installs it.")
    env = dict(os.environ, PYTHONPATH=str(IPYW7))
    probe = "import ipywidgets, cnnviz.widgets; print(ipywidgets.__version__)"
    version = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert version.startswith("7."), version
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not browser",
                          str(ROOT / "tests" / test_file)],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
