"""Sphinx role ``{colab}`path/to/notebook.ipynb``` : an "Open in Colab" link.

It also points each chapter's Colab launch button (top right of the page) at
the chapter's lab ``notebooks/<chapter>.ipynb``: Colab cannot open the
chapter's MyST markdown source. Chapters without a lab get no launch button.

The URL is derived from the repository named once in ``_config.yml``
(Jupyter Book passes it to the theme as ``repository_url`` and
``repository_branch``). The link is plain styled text: pages load nothing
from outside the book.
"""
from pathlib import Path

from docutils import nodes

COLAB = "https://colab.research.google.com/github/"


def colab_url(config, path: str) -> str:
    opts = config.html_theme_options or {}
    repo = opts.get("repository_url", "").rstrip("/")
    branch = opts.get("repository_branch") or "main"
    if not repo.startswith("https://github.com/"):
        raise ValueError("_config.yml must set repository.url to https://github.com/OWNER/REPO")
    return f"{COLAB}{repo[len('https://github.com/'):]}/blob/{branch}/{path.lstrip('/')}"


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    config = inliner.document.settings.env.config
    url = colab_url(config, text.strip())
    html = (f'<a class="cnnviz-colab" href="{url}" target="_blank" rel="noopener" '
            'style="display:inline-block;padding:2px 10px;border-radius:4px;background:#f9ab00;'
            'color:#222;font-weight:600;text-decoration:none">▶ Open in Colab</a>')
    return [nodes.raw("", html, format="html")], []


def _lab_launch_button(app, pagename, templatename, context, doctree):
    """Runs after sphinx-book-theme has added its launch buttons (priority 900 > 500)."""
    lab = Path(app.srcdir) / "notebooks" / (Path(pagename).name + ".ipynb")
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        kept = []
        for button in group.get("buttons", []):
            if "colab" not in button.get("url", ""):
                kept.append(button)
            elif lab.exists():
                kept.append(dict(button, url=colab_url(app.config, f"notebooks/{lab.name}"), text="Colab lab"))
        group["buttons"] = kept
    context["header_buttons"] = [g for g in context.get("header_buttons", [])
                                 if g.get("label") != "launch-buttons" or g["buttons"]]


def setup(app):
    app.add_role("colab", colab_role)
    app.connect("html-page-context", _lab_launch_button, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
