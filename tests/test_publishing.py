"""The book publishes itself: the GitHub Actions workflow builds it with the README's command and deploys
_build/html to GitHub Pages; `make book` reminds whoever still has the placeholder repository in _config.yml."""
import subprocess
import sys
from pathlib import Path

import yaml
from test_notebooks import _sync_badges  # tools/sync_badges.py loaded as a module

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def test_the_workflow_builds_with_make_book_and_deploys_pages():
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = flow.get("on", flow.get(True))            # YAML 1.1 reads a bare `on:` key as True
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert any(r.strip().startswith("make book") for r in runs)
    uses = [s.get("uses", "") for s in build["steps"]]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert any(u.startswith("actions/cache@") for u in uses) and any(u.startswith("actions/setup-node@") for u in uses)
    cached = " ".join(str(s.get("with", {}).get("path", "")) for s in build["steps"])
    assert ".venv" in cached and "_build/.jupyter_cache" in cached and ".npm" in cached
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    # the execution cache is kept only for the version of the package it was made with
    exec_cache = next(s for s in build["steps"] if s.get("id") == "exec")
    assert "hashFiles('cnnviz/**/*.py'" in exec_cache["with"]["key"]


def test_the_placeholder_repository_is_pointed_out(tmp_path):
    sb = _sync_badges()
    note = sb.placeholder_note(ROOT / "_config.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    if config["repository"]["url"].rstrip("/") == f"https://github.com/{sb.PLACEHOLDER}":
        assert note and "repository.url" in note and "Publishing the book" in note
    fork = tmp_path / "_config.yml"
    config["repository"]["url"] = "https://github.com/someone/their-cnn-course"
    fork.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert sb.placeholder_note(fork) is None
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_badges.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "Note:" not in run.stdout   # --check stays quiet about it


def test_the_readme_says_how_to_publish_a_fork():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Publishing the book" in text and "repository.url" in text and "GitHub Actions" in text
