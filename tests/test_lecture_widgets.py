"""The lecture layout from Python: the switch, what each widget marks as picture and primary controls, stepping,
and the notebook layout left as it was.

The oracle for "as it was": ``tests/data/notebook_layout.json``, the widget trees of every widget at scale 1.0
(widget types, CSS classes, layout properties, descriptions) written by ``notebook_layout()`` below on the
commit before the lecture layout existed (4ee8258). Two CSS classes changed since, on purpose, and are mapped back
before comparing (``as_before``): every widget's root now also names its scale (``cnnviz-s100``), and the live
training widget's class is ``cnnviz-training`` (it was ``cnnviz-live``, the class of the in-page explorers too).
The page-side checks (sizes in a real JupyterLab) are in tests/test_lecture_layout.py.
"""
import json
import re
from pathlib import Path

import pytest

widgets_mod = pytest.importorskip("cnnviz.widgets")
import ipywidgets  # noqa: E402

from cnnviz.widgets import _base  # noqa: E402

SNAPSHOT = Path(__file__).parent / "data" / "notebook_layout.json"
LAYOUT_KEYS = ("width", "height", "max_width", "min_width", "flex", "flex_flow", "align_items", "grid_gap",
               "display")


@pytest.fixture(autouse=True)
def notebook_switch():
    """Every test starts and ends with the switch off, as a fresh notebook has it."""
    _base.lecture(False)
    yield
    _base.lecture(False)


def _make(name, **kw):
    """A widget of each kind, small and synchronous (the ones the notebook tests also build)."""
    from cnnviz import transfer_study as ts

    cls = getattr(widgets_mod, name)
    extra = {"SignalFlowExplorer": {"depth": 12, "width": 64, "trainability": False},
             "TransferExplorer": {"table": ts.cached_transfer_table(progress=False)}}.get(name, {})
    return cls(threaded=False, **extra, **kw)


WIDGETS = sorted(n for n in widgets_mod.__all__ if n != "lecture")


def _tree(w, depth=0):
    yield depth, w
    for child in getattr(w, "children", ()) or ():
        yield from _tree(child, depth + 1)


def notebook_layout(w):
    """The widget tree as plain data: what the notebook layout's look depends on (values excluded)."""
    rows = []
    for depth, v in _tree(w):
        layout = {k: getattr(v.layout, k) for k in LAYOUT_KEYS if getattr(v.layout, k, None)} \
            if hasattr(v, "layout") else {}
        rows.append([depth, type(v).__name__, sorted(v._dom_classes), getattr(v, "description", None), layout])
    return rows


def as_before(rows):
    """``notebook_layout`` rows with the classes renamed since the snapshot mapped back (see the module's text)."""
    renamed = {"cnnviz-training": "cnnviz-live", "cnnviz-training-chart": "cnnviz-live-chart"}
    return [[depth, kind, sorted(renamed.get(c, c) for c in classes if c != "cnnviz-s100"), description, layout]
            for depth, kind, classes, description, layout in rows]


def _classes(w):
    return [c for _, v in _tree(w) for c in v._dom_classes]


def test_the_switch_and_its_sentences():
    assert _base.lecture_settings() == (1.0, False)
    widgets_mod.lecture(scale=1.6)
    assert _base.lecture_settings() == (1.6, True)
    assert _base.lecture_settings(scale=2.0) == (2.0, True)      # a widget's own scale wins
    assert _base.lecture_settings(lecture=False) == (1.0, False)  # and its own choice
    widgets_mod.lecture(False)
    assert _base.lecture_settings() == (1.0, False)
    with pytest.raises(ValueError, match="between 1.2 .text at 18 px. and 3.0"):
        widgets_mod.lecture(scale=1.0)
    with pytest.raises(ValueError, match="needs scale ≥ 1.2"):
        _base.lecture_settings(scale=1.0, lecture=True)
    widgets_mod.lecture()
    assert _base.lecture_settings(scale=1.0) == (1.0, False)     # a small scale asks for the notebook layout
    with pytest.raises(ValueError, match="between 0.5 and 3.0"):
        _base.lecture_settings(scale=9)


@pytest.mark.parametrize("name", WIDGETS)
def test_notebook_layout_is_unchanged(name):
    """At scale 1.0 without the switch every widget builds the tree it built before the lecture layout."""
    expected = json.loads(SNAPSHOT.read_text())[name]
    w = _make(name)
    assert not w.lecture and "cnnviz-lecture" not in _classes(w)
    assert as_before(notebook_layout(w)) == expected


@pytest.mark.parametrize("name", WIDGETS)
def test_lecture_layout_marks_picture_and_controls(name):
    """With the switch on, a widget made without arguments takes the lecture layout: one picture, its primary
    controls, the key listener, and nothing else changed in what it computes."""
    widgets_mod.lecture(scale=1.4)
    w = _make(name)
    assert w.lecture and "cnnviz-lecture" in w._dom_classes
    classes = _classes(w)
    assert classes.count("cnnviz-lecture-picture") == 1
    assert classes.count("cnnviz-lecture-primary") == 1
    primary = next(v for _, v in _tree(w) if "cnnviz-lecture-primary" in v._dom_classes)
    assert any(isinstance(v, (ipywidgets.Button, ipywidgets.Dropdown, ipywidgets.IntSlider, ipywidgets.FloatSlider,
                              ipywidgets.SelectionSlider, ipywidgets.Text, ipywidgets.ToggleButtons, ipywidgets.Box))
               for _, v in _tree(primary) if v is not primary)
    keys = [v for _, v in _tree(w) if isinstance(v, ipywidgets.Output)]
    assert len(keys) == 1 and "cnnvizLectureKeys" in keys[0].outputs[0]["data"]["text/html"]
    shown = [id(v) for _, v in _tree(w)]
    assert len(shown) == len(set(shown)), "a control is shown twice"
    # every rule of its style reaches this widget in the lecture layout only (JupyterLab: one page, many notebooks)
    css = w._dom_classes[0]
    style = next(v.value for _, v in _tree(w) if isinstance(v, ipywidgets.HTML) and "container-type" in v.value)
    selectors = _selectors(style)
    assert selectors and all(s.startswith(f".{css}.cnnviz-s140.cnnviz-lecture") for s in selectors), selectors
    # the widget's own arguments win over the switch
    assert not _make(name, lecture=False).lecture


def _selectors(style):
    """The selectors of a ``<style>`` element's rules, inside container queries too."""
    return [s.strip() for rule in re.findall(r"([^{}]+)\{[^{}]*\}", re.sub(r"@container[^{]*\{", "", style))
            for s in rule.replace("<style>", "").split(",")]


def _styles(w):
    return [v.value for _, v in _tree(w) if isinstance(v, ipywidgets.HTML) and "<style" in v.value]


@pytest.mark.parametrize("name", WIDGETS)
@pytest.mark.parametrize("scale, lecture", [(1.0, False), (1.4, False), (1.4, True), (1.8, True)])
def test_every_style_rule_names_its_widget_and_scale(name, scale, lecture):
    """JupyterLab keeps every open notebook in one page: a rule of one widget must not reach the same widget at
    another scale (the lab at 1.0, the instructor notebook at 1.4) nor another kind of widget."""
    w = _make(name, scale=scale, lecture=lecture)
    css, here = w._dom_classes[0], _base.scale_class(scale)
    assert here in w._dom_classes and here == f"cnnviz-s{round(scale * 100)}"
    styles = _styles(w)
    assert styles, "a widget carries its own style"
    selectors = [s for style in styles for s in _selectors(style)]
    assert all(s.startswith(f".{css}.{here}") for s in selectors), selectors
    assert all(f".{css}" == f".{c}" or c.startswith("cnnviz-s") or c == "cnnviz-lecture"
               for c in w._dom_classes[1:]), w._dom_classes


def test_one_page_keeps_each_scale_its_own_sizes():
    """In a real page (chromium) with the styles of one widget at 1.0, at 1.4 and in the lecture layout at 1.8, in
    either order, each copy's text takes its own size: the rules parse, and none reaches another copy."""
    from browser import chromium

    copies = [(1.0, _make("KernelEditor", scale=1.0)), (1.4, _make("KernelEditor", scale=1.4, lecture=False)),
              (1.8, _make("KernelEditor", scale=1.8, lecture=True))]
    sizes = """() => [...document.querySelectorAll('body > div')].map(d =>
        [getComputedStyle(d).fontSize, getComputedStyle(d.querySelector('input')).fontSize])"""
    with chromium() as browser:
        page = browser.new_page()
        for order in (copies, copies[::-1]):
            page.set_content("".join("".join(_styles(w)) for _, w in order) + "".join(
                f'<div class="{" ".join(w._dom_classes)}"><input value="1/9"></div>' for _, w in order))
            expected = [[f"{round(15 * scale)}px"] * 2 for scale, _ in order]
            assert page.evaluate(sizes) == expected


def test_one_widget_class_per_kind():
    """No two kinds of widget, and no widget and the in-page explorers (``cnnviz.live``), share a class."""
    from cnnviz import live

    roots = [_make(name)._dom_classes[0] for name in WIDGETS]
    assert len(set(roots)) == len(roots), roots
    page = live.KernelEditorLive()._repr_html_() + live.ConvExplorerLive()._repr_html_() + live.script()
    used = set(re.findall(r"cnnviz-[a-z0-9-]+", page))
    assert "cnnviz-live" in used and not used & set(roots), used & set(roots)


STEPPERS = {  # widget: (how to read what it shows, a start that can step both ways)
    "ConvExplorer": (lambda w: w.position.value, lambda w: None),
    "ReceptiveFieldExplorer": (lambda w: w.layer.value, lambda w: w.set_unit(1)),
    "ArchitectureExplorer": (lambda w: w.unit.value, lambda w: w.set(unit=3)),
    "FeatureMapExplorer": (lambda w: w.layer.value, lambda w: None),
    "FilterGallery": (lambda w: w.layer.value, lambda w: None),
}


@pytest.mark.parametrize("name", sorted(STEPPERS))
def test_step_buttons_step_and_stop_or_wrap(name):
    read, start = STEPPERS[name]
    w = _make(name, lecture=True)
    start(w)
    prev, nxt = (next(v for _, v in _tree(w) if f"cnnviz-lecture-{k}" in v._dom_classes) for k in ("prev", "next"))
    first = read(w)
    nxt.click()
    assert read(w) != first
    prev.click()
    assert read(w) == first
    if name == "ConvExplorer":  # the kernel wraps around: back from the first cell is the last one
        prev.click()
        assert w.position.value == w.position.max
    else:  # a layer or block stops at the first one
        for _ in range(50):
            prev.click()
        nxt_values = read(w)
        prev.click()
        assert read(w) == nxt_values
    assert w.last_error is None


def test_only_the_stepping_widgets_have_step_buttons():
    widgets_mod.lecture()
    for name in WIDGETS:
        has = "cnnviz-lecture-next" in _classes(_make(name))
        assert has == (name in STEPPERS), name


def test_lecture_numbers_are_the_widgets_own():
    """The numbers in large type beside a picture are the ones the widget computes."""
    from cnnviz.layers import conv_macs, conv_params

    w = _make("ConvExplorer", lecture=True)
    w.set(n=7, f=3, p=1, s=2, c_in=3, c_out=4)
    assert "output 4×4×4" in w.counts.value
    assert f"{conv_params(3, 4, 3):,} parameters" in w.counts.value
    assert f"{conv_macs(3, 7, 7, 4, 3, 1, 2, 1):,} MACs" in w.counts.value
    r = _make("ReceptiveFieldExplorer", lecture=True)
    from cnnviz.receptive_field import receptive_field
    assert f"r = {receptive_field(r._layers)[-1].r} px" in r.big.value
    i = _make("InceptionCostExplorer", lecture=True)
    naive, this = i.costs
    assert f"({this.total.macs / naive.total.macs:.0%})" in i.big.value
    i.which.value = "naive"
    assert 'aria-label="naive Inception module"' in i.view.value


NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "widgets").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_instructor_notebook_opens_ready_to_project(path):
    """A title, the setup cell collapsed (JupyterLab) and a form (Colab) turning the lecture layout on, then one
    line per widget; notes for the lecture only after the widget."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[:3] == ["markdown", "code", "code"] and "code" not in kinds[3:], kinds
    setup, show = nb.cells[1], nb.cells[2]
    assert setup.metadata.get("jupyter", {}).get("source_hidden") is True
    assert setup.metadata.get("cellView") == "form" and setup.source.startswith("#@title ")
    assert "cnnviz.widgets.lecture(scale=1.4)" in setup.source
    lines = [line for line in show.source.splitlines() if line.strip()]
    assert len(lines) == 1 and "scale=" not in lines[0]
    assert any(lines[0].startswith(name + "(") for name in WIDGETS), lines


def test_lecture_css_must_name_the_widget():
    assert _base._scope("& .a, & b { x: 1 } &.c { y: 2 }", ".w.cnnviz-lecture") == \
        ".w.cnnviz-lecture .a, .w.cnnviz-lecture b { x: 1 }\n.w.cnnviz-lecture.c { y: 2 }"
    with pytest.raises(ValueError, match="start every selector with '&'"):
        _base._scope("& .a { x: 1 } .leak { y: 2 }", ".w")


def test_a_lecture_widget_in_a_plain_script_starts_no_ipython_shell():
    import subprocess
    import sys

    code = ("import cnnviz.widgets as w; w.lecture(); w.ConvExplorer(threaded=False); "
            "from IPython import get_ipython; print(get_ipython() is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
