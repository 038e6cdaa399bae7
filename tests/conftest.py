"""Fixtures shared by test files: a JupyterLab server and a chromium for the browser tests of widget notebooks."""
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import chromium, require_chromium

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120  # seconds for JupyterLab to answer (~20 s on 2 cores)
SETTINGS = {  # scratch user settings for this Lab only
    # No autosave: running the notebook must never write outputs into the repository.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"autosave": false}',
    # No "get notified about Jupyter news?" toast over the widget, no update check.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc):
    """Stop JupyterLab by its PID: SIGTERM makes it shut its kernels down and exit; SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving the repository (one per test module): yields its base URL
    and token."""
    require_chromium()
    home = tmp_path_factory.mktemp("lab")
    for name, text in SETTINGS.items():
        (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "settings" / name).write_text(text)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT}", "--ServerApp.port_retries=0",
           "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",  # no PyPI look-ups
           f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
           f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}"]  # absolute: no .ipynb_checkpoints in the repo
    log = open(home / "lab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(home / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log_tail = (home / "lab.log").read_text()[-3000:]
                pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT} s:\n{log_tail}")
            time.sleep(0.5)
        yield base, token
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    """Chromium for the notebooks of ``lab`` (a test module may define its own ``browser`` instead)."""
    with chromium() as b:
        yield b
