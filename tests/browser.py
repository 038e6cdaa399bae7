"""Debian's chromium, driven by Playwright, for every browser test (never `playwright install`)."""
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 120_000  # a widget notebook in JupyterLab: kernel start + torch import + first render


def require_chromium():
    """Fail (not skip: `make test` installs it, so a skip would hide a broken set-up) without chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium.")


@contextmanager
def chromium():
    """A headless chromium for the ``with`` block, closed after it."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
