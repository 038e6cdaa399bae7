"""The book's configuration and build output: whole course in the table of contents,
every script and stylesheet served from the book itself, Colab links derived from _config.yml."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())

COURSE_ORDER = ["convolution", "padding_stride_pooling", "receptive_field", "lenet", "alexnet_zfnet",
                "visualising", "vgg", "nin_googlenet", "batchnorm_init", "resnet", "resnet_architectures", "densenet",
                "comparing",
                "augmentation", "transfer_learning"]


def _toc_files():
    return [c["file"] for part in TOC["parts"] for c in part["chapters"]]


def test_toc_lists_the_whole_course_in_lecture_order():
    chapters = [f for f in _toc_files() if re.match(r"book/\d\d_", f)]
    assert [f.split("_", 1)[1] for f in chapters] == COURSE_ORDER
    assert sorted(set(int(f[5:7]) for f in chapters)) == list(range(1, 15))
    for f in _toc_files() + [TOC["root"]]:
        assert (ROOT / f"{f}.md").exists(), f"{f}.md is in _toc.yml but missing"


def _written_chapters():
    """The chapters that are written (the others are short plan pages with a "being written" note)."""
    return [f for f in _toc_files() if re.match(r"book/\d\d_", f)
            and "being written" not in (ROOT / f"{f}.md").read_text(encoding="utf-8")]


def test_every_chapter_page_has_the_required_parts():
    written = _written_chapters()
    assert len(written) >= 10
    for f in written:
        text = (ROOT / f"{f}.md").read_text(encoding="utf-8")
        labs = re.findall(r"\{colab\}`(notebooks/[^`]+\.ipynb)`", text)
        assert labs and all((ROOT / lab).exists() for lab in labs), f"{f}: no lab, or a missing one: {labs}"
        assert all((ROOT / w).exists() for w in re.findall(r"\{colab\}`(widgets/[^`]+\.ipynb)`", text)), f
        for part in ("Learning goals", "## Exercises", "hide-cell", "{cite}", "show("):
            assert part in text, f"{f} has no {part!r}"


def _built_pages():
    pages = sorted(HTML.rglob("*.html"))
    if not pages:
        pytest.fail("The book is not built: run `make book` (make test does it first).")
    return pages


def test_built_pages_reference_no_outside_script_or_style():
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""", re.I)
    for page in _built_pages():
        hits = remote.findall(page.read_text(encoding="utf-8"))
        assert hits == [], f"{page.relative_to(HTML)} loads from outside: {hits[:3]}"


def test_no_page_embeds_a_live_widget():
    """A page has no kernel: a widget in a cell's output (a tqdm bar while something trains, say) would be a
    dead box that asks the server for widget code. Chapters show static figures; widgets live in widgets/."""
    for page in _built_pages():
        text = page.read_text(encoding="utf-8")
        assert "application/vnd.jupyter.widget-view+json" not in text, (
            f"{page.relative_to(HTML)} embeds a live widget: pass progress=False (or show a figure) in its cells.")


def test_vendored_javascript_is_served_by_the_book():
    static = HTML / "_static"
    sphinx = CONFIG["sphinx"]["config"]
    for path in sphinx["html_js_files"] + [sphinx["mathjax_path"]] + list(sphinx["nb_ipywidgets_js"]):
        assert (static / path).is_file(), f"{path} is configured but not in _build/html/_static"
    assert (static / "vendor/mathjax/output/chtml/fonts/woff-v2").is_dir()


def test_plotly_js_is_loaded_once_per_page_and_figures_are_html():
    page = (HTML / "book" / "01_convolution.html").read_text(encoding="utf-8")
    assert page.count("vendor/plotly.min.js") == 1
    assert page.count('class="plotly-graph-div"') >= 5
    assert "application/vnd.plotly.v1+json" not in page


def test_colab_links_are_derived_from_the_repository_in_config():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        from colab_badge import colab_url
    finally:
        sys.path.pop(0)
    repo, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    config = SimpleNamespace(html_theme_options={"repository_url": repo, "repository_branch": branch})
    url = colab_url(config, "notebooks/01_convolution.ipynb")
    owner_repo = repo.removeprefix("https://github.com/")
    assert url == f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/01_convolution.ipynb"
    page = (HTML / "book" / "01_convolution.html").read_text(encoding="utf-8")
    assert url in page
    with pytest.raises(ValueError, match="repository.url"):
        colab_url(SimpleNamespace(html_theme_options={}), "x.ipynb")


def test_computed_markdown_tables_render_as_tables():
    for name, tables in [("01_convolution", 1), ("02_padding_stride_pooling", 2), ("03_receptive_field", 3)]:
        page = (HTML / "book" / f"{name}.html").read_text(encoding="utf-8")
        assert page.count("<table") >= tables, f"{name}: a computed Markdown table was not rendered"
        prose = re.sub(r"<pre.*?</pre>", "", page, flags=re.S)  # the code cells show the table's source
        assert "|---|" not in prose and "|—|" not in prose, f"{name}: raw Markdown table text on the page"
