"""Keep the "Open in Colab" badge and the install line of every notebook in step with _config.yml.

The repository is named once, in ``_config.yml`` (``repository.url`` and
``repository.branch``). For each ``.ipynb`` in ``notebooks/`` and ``widgets/``:

* the first cell is a markdown cell whose first line is exactly one badge
  linking to that notebook on Colab (the rest of the cell, e.g. the title, is kept);
* the setup cell's ``%pip install "cnnviz @ git+..."`` points at the same repository and branch;
* outputs and execution counts are empty (notebooks are committed without outputs).

Usage::

    python tools/sync_badges.py           # rewrite the notebooks in place (only those that change)
    python tools/sync_badges.py --check   # exit 1 and list the notebooks that are out of step
"""
import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "widgets")
COLAB = "https://colab.research.google.com/github/"
BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
# Any Colab badge, whatever it links to: replaced by the right one.
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*\n?", re.IGNORECASE)
# The requirement in the setup cell: %pip install -q "cnnviz @ git+https://github.com/OWNER/REPO@BRANCH"
INSTALL_RE = re.compile(r"""(["'])cnnviz @ git\+[^"'\s]*\1""")


def _config_path(config_path) -> Path:
    path = Path(config_path)
    return path if path.is_absolute() else ROOT / path


def repository(config_path="_config.yml"):
    """``(owner_repo, branch)`` from ``_config.yml``, e.g. ``("cnnviz/cnnviz", "main")``.

    A relative ``config_path`` is taken relative to the repository root.
    """
    config = yaml.safe_load(_config_path(config_path).read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"_config.yml: repository.url must be https://github.com/OWNER/REPO, got {url!r}.")
    return match.group(1), str(repo.get("branch") or "main")


#: The repository ``_config.yml`` names until a fork sets its own: a published copy that still names it would
#: send students' Colab buttons to a repository that is not theirs.
PLACEHOLDER = "cnnviz/cnnviz"


def placeholder_note(config_path="_config.yml"):
    """A one-line reminder while ``_config.yml`` still names the placeholder repository, else None."""
    owner_repo, _ = repository(config_path)
    if owner_repo != PLACEHOLDER:
        return None
    return (f"Note: _config.yml still names the placeholder repository https://github.com/{PLACEHOLDER}; before "
            "publishing a copy, set repository.url to your own (README, \"Publishing the book\").")


def _relative(path) -> str:
    path = Path(path)
    if path.is_absolute():
        path = path.resolve().relative_to(ROOT)
    return path.as_posix()


def colab_url(path, config_path="_config.yml") -> str:
    """The Colab address of the notebook at ``path`` (absolute, or relative to the repository root)."""
    owner_repo, branch = repository(config_path)
    return f"{COLAB}{owner_repo}/blob/{branch}/{_relative(path)}"


def badge(path, config_path="_config.yml") -> str:
    """The markdown badge line for the notebook at ``path``."""
    return f"[![Open In Colab]({BADGE_SVG})]({colab_url(path, config_path)})"


def install_requirement(config_path="_config.yml") -> str:
    """What the setup cell gives to pip: ``cnnviz @ git+https://github.com/OWNER/REPO@BRANCH``."""
    owner_repo, branch = repository(config_path)
    return f"cnnviz @ git+https://github.com/{owner_repo}@{branch}"


def notebooks(root=ROOT):
    """Every notebook under ``notebooks/`` and ``widgets/`` (checkpoints excluded), sorted."""
    return sorted(p for folder in FOLDERS for p in Path(root, folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def synced(nb, path, config_path="_config.yml"):
    """A copy of ``nb`` with the right badge and install line and no outputs; plus what was wrong."""
    nb = nbformat.from_dict(nb)
    problems = []
    line = badge(path, config_path)
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        problems.append("first cell is not a markdown cell with the badge")
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(line))
    else:
        rest = BADGE_RE.sub("", first.source).lstrip("\n")
        text = f"{line}\n\n{rest}" if rest else line
        if text != first.source:
            found = len(BADGE_RE.findall(first.source))
            problems.append("badge missing" if not found else
                            "more than one badge" if found > 1 else "badge is wrong, or not alone on the first line")
            first.source = text
    requirement = f'"{install_requirement(config_path)}"'
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = INSTALL_RE.sub(requirement, cell.source)
        if source != cell.source:
            problems.append(f"install line should read %pip install -q {requirement}")
            cell.source = source
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append("has outputs or execution counts")
            cell.outputs, cell.execution_count = [], None
    return nb, sorted(set(problems), key=problems.index)


def sync(path, config_path="_config.yml", *, write=True):
    """Bring one notebook in step; return the list of problems found (empty: it already was)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    new, problems = synced(nb, path, config_path)
    if problems and write:
        nbformat.validate(new)
        nbformat.write(new, path)  # Jupyter's own layout: 1-space indent, sorted keys, final newline
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of step")
    parser.add_argument("--config", default="_config.yml", help="the Jupyter Book config naming the repository")
    args = parser.parse_args(argv)
    note = placeholder_note(args.config)
    if note and not args.check:  # make book runs this first: a note on the console, not a Sphinx warning
        print(note)
    stale = []
    for path in notebooks():
        problems = sync(path, args.config, write=not args.check)
        if problems:
            stale.append(path)
            verb = "needs" if args.check else "fixed"
            print(f"{_relative(path)}: {verb}: {'; '.join(problems)}")
    if args.check and stale:
        print(f"{len(stale)} notebook(s) out of step with _config.yml: run python tools/sync_badges.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
