"""Keep every page's scripts clean for offline reading.

sphinx-thebe registers its configuration script each time Sphinx reads
documents, so an incremental build can put ``const THEBE_JS_URL = ...`` twice
on a page, a JavaScript error ("Identifier 'THEBE_JS_URL' has already been
declared"). This drops exact duplicates from each page's script list.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script is registered once with filename None and once with ""
        name = getattr(script, "filename", script) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
