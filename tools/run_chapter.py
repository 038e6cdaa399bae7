"""Execute one MyST chapter of the book (book/*.md) the way the book build does, without building.

    .venv/bin/python tools/run_chapter.py book/04_lenet.md [--save OUT.ipynb]

Prints each cell's time and stops at the first error with its traceback:
a quick check of one chapter while writing it (``make book`` builds them all).
"""
import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", type=Path)
    parser.add_argument("--save", type=Path, help="write the executed notebook here")
    args = parser.parse_args(argv)
    os.environ["CNNVIZ_BOOK"] = "1"  # the chapters display figures as the book does
    nb = read_myst_markdown_notebook(args.chapter.read_text(encoding="utf-8"))
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(args.chapter.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            client.execute_cell(cell, index)
            print(f"cell {index:3d}: {time.perf_counter() - t:6.2f} s  {cell.source.splitlines()[0][:70] if cell.source else ''}")
    print(f"{args.chapter}: all cells ran in {time.perf_counter() - start:.1f} s")
    if args.save:
        nbformat.write(nb, args.save)


if __name__ == "__main__":
    sys.exit(main())
