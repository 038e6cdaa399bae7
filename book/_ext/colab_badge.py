"""Sphinx role ``{colab}`path/to/notebook.ipynb``` : an "Open in Colab" link.

The URL is derived from the repository named once in ``_config.yml``
(Jupyter Book passes it to the theme as ``repository_url`` and
``repository_branch``). The link is plain styled text: pages load nothing
from outside the book.
"""
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


def setup(app):
    app.add_role("colab", colab_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
