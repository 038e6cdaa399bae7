"""What every cnnviz widget shares: latest-request-only rendering, background work that ends cleanly when the
process exits, error display, scoped style."""
import atexit
import threading
import weakref
from contextlib import contextmanager

import ipywidgets as widgets

from ..runtime import keep_freed_memory

__all__ = ["LatestOnly", "Worker", "View", "guarded", "scoped_style", "style_scope", "widget_style", "scale_class",
           "upload_bytes", "error_html", "info_html", "close_all", "lecture", "lecture_settings", "lecture_frame",
           "step_buttons", "set_tooltip", "LECTURE_SCALE"]

# Every thread a widget starts is a daemon thread, so that it never keeps a notebook or a script alive. But a
# daemon thread that is still inside torch (or PIL) when the interpreter finalises makes the process abort
# ("terminate called without an active exception", exit status 134). So each one registers here, and at exit,
# before the interpreter finalises, ``close_all`` asks each to stop and waits for it: a render in flight finishes,
# a training run stops after its current step, an idle renderer returns.
_LIVE = weakref.WeakSet()
_HOOKED = threading.Lock()
_EXIT_TIMEOUT = 60.0  # seconds to wait for one thread at exit; a step or a render takes far less


def _register(obj) -> None:
    with _HOOKED:
        if not getattr(_register, "hooked", False):
            atexit.register(close_all)
            _register.hooked = True
        _LIVE.add(obj)


_EXITING = threading.Event()  # set by close_all: from then on no widget starts a thread


def close_all(timeout: float = _EXIT_TIMEOUT) -> None:
    """Stop every widget thread and wait for it (at most ``timeout`` seconds each): run at interpreter exit.

    A render that finishes while we wait may ask another renderer to start (a grid render requests the detail
    pane): no thread starts once exit has begun, and the live set is gone over until nothing new was added."""
    _EXITING.set()
    closed = set()
    while True:
        todo = [obj for obj in list(_LIVE) if id(obj) not in closed]
        if not todo:
            return
        for obj in todo:
            closed.add(id(obj))
            try:
                obj.close(timeout)
            except Exception:  # at exit nothing may raise; a thread that cannot be stopped is left to the runtime
                pass


class Worker:
    """A background job on a daemon thread that is stopped and joined when the process exits.

    ``target()`` runs on the thread; ``stop()`` (optional) asks it to end early (a trainer's Stop). ``close``
    calls ``stop`` and waits for the thread; the process's exit does this for every live worker."""

    def __init__(self, target, *, name: str, stop=None):
        self._stop = stop
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        _register(self)

    def start(self) -> "Worker":
        if not _EXITING.is_set():
            self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout=None) -> None:
        self._thread.join(timeout)

    def close(self, timeout: float = _EXIT_TIMEOUT) -> None:
        if self._thread.is_alive():
            if self._stop is not None:
                self._stop()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout)


class LatestOnly:
    """Run ``render(request)`` for the newest request only, on a worker thread.

    Controls post requests as fast as they like (a dragged slider, a held key);
    the worker always takes the most recent one and drops those it skipped, so
    updates never pile up behind each other. ``threaded=False`` renders
    synchronously (tests, scripts). Exceptions go to ``on_error``, never lost.
    """

    def __init__(self, render, on_error, *, threaded=True):
        self._render, self._on_error, self._threaded = render, on_error, threaded
        keep_freed_memory()  # redraws allocate megabytes each: reuse them instead of page-faulting them in again
        self._lock = threading.Condition()
        self._pending = None
        self._busy = False
        self._closed = False
        self._thread = None

    def request(self, req):
        if not self._threaded:
            self._run(req)
            return
        with self._lock:
            if self._closed or _EXITING.is_set():
                return
            self._pending = req
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cnnviz-render", daemon=True)
                _register(self)
                self._thread.start()
            self._lock.notify_all()

    def close(self, timeout: float = _EXIT_TIMEOUT) -> None:
        """Drop what is waiting, let a render in flight finish, and end the worker thread (at exit)."""
        with self._lock:
            self._closed = True
            self._pending = None
            self._lock.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, req):
        try:
            self._render(req)
        except Exception as err:  # shown to the user by on_error, never swallowed
            self._on_error(err)

    def _loop(self):
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                req, self._pending, self._busy = self._pending, None, True
            try:
                self._run(req)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def has_pending(self) -> bool:
        """True when a newer request waits (or the worker is closing): work done ahead of time stops for it."""
        return self._pending is not None or self._closed

    def wait(self, timeout=10.0) -> bool:
        """Block until every posted request is rendered; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending is None and not self._busy, timeout=timeout)


class View(widgets.VBox):
    """What every cnnviz widget does the same way: quiet programmatic updates, and one message line.

    A subclass sets ``self.message`` (an ``HTML`` widget) and may override
    ``_kept`` (what stays on screen after an error) and ``_error_suffix``.
    Messages remember their ``source`` (e.g. "cells" for a bad entry), so a
    later success clears only the message it makes obsolete.
    """

    _kept = "output"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.last_error = None
        self._message_source = None
        self._quiet = 0  # > 0 while code (not a person) sets controls: their callbacks stand still

    @contextmanager
    def _quietly(self):
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _error_suffix(self, err, source) -> str:
        return ""

    def _show_error(self, err, source="other"):
        self.last_error = err
        self._message_source = source
        text = str(err) if isinstance(err, ValueError) else (
            f"Unexpected error ({type(err).__name__}: {err}). The last good {self._kept} is kept; "
            "please report this to the cnnviz issue tracker.")
        self.message.value = error_html(text + self._error_suffix(err, source))

    def _clear_message(self, source):
        """Remove the message if it was about ``source`` and that is now fine."""
        if self._message_source == source:
            self.message.value = ""
            self._message_source = None
            self.last_error = None


def guarded(callback, on_error):
    """Wrap a widget callback so an unexpected error is shown to the user as a sentence
    (``on_error``) instead of a traceback in the notebook or its log."""
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception as err:
            on_error(err)
    run.__wrapped__ = callback
    return run


def scale_class(scale: float) -> str:
    """The CSS class of a widget's scale (``cnnviz-s140`` at 1.4): styles that depend on the scale name it, so two
    notebooks with the same widget at different scales, open in one JupyterLab page, keep their own sizes."""
    return f"cnnviz-s{round(float(scale) * 100)}"


def style_scope(view, css_class: str, scale: float) -> str:
    """Mark ``view`` with ``css_class`` and its scale's class, and return the selector of both, for ``_scope``."""
    view.add_class(css_class)
    view.add_class(scale_class(scale))
    return f".{css_class}.{scale_class(scale)}"


def scoped_style(view, css_class: str, scale: float = 1.0) -> widgets.HTML:
    """A ``<style>`` that enlarges the controls of ``view`` only, marked ``css_class`` at ``scale`` (Colab gives each
    output its own iframe, so a widget must carry its own style; JupyterLab keeps every open notebook in one page,
    so the style names the scale too)."""
    fs, h = round(15 * scale), round(32 * scale)
    rules = (f"& {{ --jp-widgets-font-size: {fs}px; --jp-widgets-inline-height: {h}px; font-size: {fs}px; }}"
             f"& input, & select, & button {{ font-size: {fs}px !important; }}"
             f"& .cnnviz-cell input {{ text-align: center; height: {round(h * 1.25)}px; "
             f"font-size: {round(fs * 1.25)}px !important; }}"
             f"& .cnnviz-title {{ font-size: {round(fs * 1.2)}px; font-weight: 600; }}"
             "& .widget-html-content, & .widget-radio-box label { line-height: 1.35; }"
             "& .widget-hbox { gap: 4px; }")
    return widget_style(view, css_class, scale, rules)


def widget_style(view, css_class: str, scale: float, rules: str) -> widgets.HTML:
    """A ``<style>`` of ``rules`` (CSS, every selector starting with ``&``) for ``view`` alone, marked ``css_class``
    at ``scale`` (``style_scope``)."""
    return widgets.HTML(f"<style>\n{_scope(rules, style_scope(view, css_class, scale))}\n</style>")


# ------------------------------------------------------------------------------------------- lecture layout
LECTURE_SCALE = 1.4  # the instructor notebooks' scale: text at 15 px × 1.4 = 21 px, well above 18 px
_LECTURE = {"on": False, "scale": LECTURE_SCALE}


def lecture(on: bool = True, *, scale: float = LECTURE_SCALE) -> None:
    """Turn the lecture layout on (or off, ``lecture(False)``) for every cnnviz widget created after this call.

    In the lecture layout the main picture is large, the controls are compact beside it (above it in one or
    two rows where the screen is narrow), the numbers that matter are in large type next to the picture, no
    text is smaller than 18 px, and → / ← step a widget that animates or scrubs. ``scale`` enlarges every
    control and text (1.4: 21 px type). A widget's own ``scale=`` and ``lecture=`` arguments win over this
    switch; widgets created before the call keep their layout."""
    scale = float(scale)
    if not 1.2 <= scale <= 3.0:
        raise ValueError(f"The lecture scale must be between 1.2 (text at 18 px) and 3.0, got {scale:g}.")
    _LECTURE.update(on=bool(on), scale=scale)


def lecture_settings(scale=None, lecture=None) -> tuple:
    """(scale, lecture on?) for a widget given its own arguments: ``None`` takes the notebook's switch
    (``cnnviz.widgets.lecture``); without it, scale 1.0 and the notebook layout. A widget's own ``scale`` below
    1.2 under the switch asks for the notebook layout at that scale."""
    if scale is not None:
        scale = float(scale)
        if not 0.5 <= scale <= 3.0:
            raise ValueError(f"scale must be between 0.5 and 3.0 (1.0 in a notebook, 1.4 on a projector), "
                             f"got {scale:g}.")
    if lecture is None:
        on = _LECTURE["on"] and (scale is None or scale >= 1.2)
    else:
        on = bool(lecture)
    if scale is None:
        scale = _LECTURE["scale"] if on else 1.0
    if on and scale < 1.2:
        raise ValueError(f"The lecture layout needs scale ≥ 1.2 (text at 18 px or more), got {scale:g}.")
    return scale, on


# → / ← press the step buttons of the lecture widget that has the most of itself on screen (in the notebook the
# key was pressed in). The listener runs before the page's own handlers (capture): JupyterLab's command mode binds
# → and ← to expanding and collapsing a heading, which an instructor notebook gives up for stepping. It never acts
# while a field, a slider handle, a menu, a tab bar, a tree or another button has the focus (they keep their
# arrows), nor on a key already taken. One listener per page (Colab: per output frame, so each widget carries it).
# Nothing typed reaches this script: it reads the key's name and clicks the widget's own buttons.
_KEYS_JS = """<script>
(function () {
  if (window.cnnvizLectureKeys) return;
  window.cnnvizLectureKeys = true;
  var DIR = {ArrowRight: 1, ArrowLeft: -1};
  var BUSY = "input, textarea, select, [contenteditable], .cm-editor, [role=slider], [role^=menu], [role=tab], " +
             "[role^=tree], [role=listbox], button:not(.cnnviz-lecture-prev):not(.cnnviz-lecture-next)";
  document.addEventListener("keydown", function (event) {
    var dir = DIR[event.key];
    if (!dir || event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var t = event.target;
    if (t && t.closest && t.closest(BUSY)) return;
    var scope = (t && t.closest && t.closest(".jp-Notebook")) || document;
    var best = null, most = 0;
    scope.querySelectorAll(".cnnviz-lecture").forEach(function (w) {
      var b = w.querySelector(dir > 0 ? "button.cnnviz-lecture-next" : "button.cnnviz-lecture-prev");
      if (!b || b.disabled) return;
      var r = w.getBoundingClientRect();
      var seen = Math.max(0, Math.min(r.bottom, window.innerHeight) - Math.max(r.top, 0));
      if (r.width > 0 && seen > most) { most = seen; best = b; }
    });
    if (!best) return;
    event.preventDefault();
    event.stopPropagation();
    best.click();
  }, true);
})();
</script>"""


def _keys_output() -> widgets.Output:
    """An output holding the key listener: JupyterLab and Colab run a script in an output's HTML. The output is
    set directly (``append_display_data`` would start an IPython shell in a plain script)."""
    out = widgets.Output(layout=widgets.Layout(height="0px", overflow="hidden"))
    out.outputs = ({"output_type": "display_data", "data": {"text/html": _KEYS_JS}, "metadata": {}},)
    return out


def _scope(rules: str, scope: str) -> str:
    """``rules`` (CSS) with each selector's leading ``&`` replaced by ``scope``. A selector without one is refused:
    a widget's rules must reach no other widget on the page (JupyterLab keeps every open notebook in one
    document)."""
    out = []
    for rule in rules.split("}"):
        if not rule.strip():
            continue
        selectors, body = rule.split("{")
        parts = [s.strip() for s in selectors.split(",")]
        if not all(s.startswith("&") for s in parts):
            raise ValueError(f"Lecture CSS must start every selector with '&' (the widget): {selectors.strip()!r}")
        out.append(", ".join(scope + s[1:] for s in parts) + " {" + body + "}")
    return "\n".join(out)


def set_tooltip(widget, text: str) -> None:
    """A hover text on a control's description, in ipywidgets 8 (``tooltip``) and 7 (``description_tooltip``)."""
    if int(widgets.__version__.split(".")[0]) >= 8:
        widget.tooltip = text
    else:
        widget.description_tooltip = text


def step_buttons(on_step, on_error, *, what: str):
    """◀ and ▶ buttons that call ``on_step(-1)`` / ``on_step(+1)``; in the lecture layout → and ← press them."""
    prev = widgets.Button(description="◀", tooltip=f"previous {what} (←)", layout=widgets.Layout(width="auto"))
    nxt = widgets.Button(description="▶", tooltip=f"next {what} (→)", layout=widgets.Layout(width="auto"))
    prev.add_class("cnnviz-lecture-prev")
    nxt.add_class("cnnviz-lecture-next")
    prev.on_click(guarded(lambda _: on_step(-1), on_error))
    nxt.on_click(guarded(lambda _: on_step(+1), on_error))
    return prev, nxt


def lecture_frame(view, css_class: str, scale: float, *, title, picture, primary, side=(), below=(), side_width=340,
                  picture_basis=600, picture_grows=True, css="", narrow_css=""):
    """The children of ``view`` (a cnnviz widget, marked ``cnnviz-lecture``) in the lecture layout.

    ``picture`` (a widget) is the main picture; ``primary`` (a list of controls) what the instructor touches;
    ``side`` (numbers, messages) goes under the controls; ``below`` under the picture, off the first screen.
    Picture and side sit in one row that wraps where the screen is narrow, with the side *above* the picture
    (``wrap-reverse``). The side is ``side_width`` px wide or more (at scale 1.4); the picture wants
    ``picture_basis`` px before the side wraps above it; ``picture_grows``: the picture's box takes the room left
    (pictures sized in % of it), else it keeps its content's size and the side takes the rest. ``css``: the
    widget's own lecture rules, every selector starting with ``&`` (this widget in the lecture layout);
    ``narrow_css``: rules for when the side has wrapped above the picture (a container query on the widget's width:
    it works in Colab's output frames, where the window's height does not), written the same way."""
    px = lambda v: f"{round(v * scale / LECTURE_SCALE)}px"  # noqa: E731  sizes are given at scale 1.4
    view.add_class("cnnviz-lecture")
    picture.add_class("cnnviz-lecture-picture")
    controls = widgets.Box(list(primary), layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                                align_items="center", grid_gap="6px 14px"))
    controls.add_class("cnnviz-lecture-primary")
    side_box = widgets.VBox([title, controls, *side],
                            layout=widgets.Layout(flex=f"1 1 {px(side_width)}", min_width=px(side_width)))
    side_box.add_class("cnnviz-lecture-side")
    pic_box = widgets.Box([picture], layout=widgets.Layout(
        flex=f"1000 1 {px(picture_basis)}" if picture_grows else "0 1 auto", min_width="0",
        justify_content="flex-start"))
    row = widgets.Box([pic_box, side_box], layout=widgets.Layout(
        display="flex", flex_flow="row wrap-reverse", align_items="flex-end", grid_gap="10px 18px"))
    fs = round(15 * scale)
    wraps_below = round((picture_basis + side_width + 18 + 8) * scale / LECTURE_SCALE)  # the row wraps under this
    here = f"{style_scope(view, css_class, scale)}.cnnviz-lecture"
    # the nearest size container of a rule's element is its own widget (each lecture widget is one)
    narrow = f"@container (max-width: {wraps_below}px) {{ {_scope(narrow_css, here)} }}" if narrow_css else ""
    # a size container does not take its width from its content: it fills its output, less its margins
    base = (f"& {{ container-type: inline-size; width: calc(100% - 2 * var(--jp-widgets-margin, 2px)); }}"
            f"& .widget-label, & .widget-readout, & .widget-html-content {{ font-size: {fs}px; }}"
            "& small, & code, & sub, & sup, & .cnnviz-name, & .cnnviz-caption "
            "{ font-size: max(18px, 0.85em) !important; }"
            "& .widget-image { margin: 0 !important; }"
            f"& .cnnviz-lecture-side .cnnviz-title {{ font-size: {round(fs * 1.15)}px; }}"
            f"& .cnnviz-big {{ font-size: {round(fs * 1.5)}px; font-weight: 600; line-height: 1.2; }}")
    style = widgets.HTML(f"<style>\n{_scope(base + css, here)}\n{narrow}\n</style>")
    return [scoped_style(view, css_class, scale), style, row, *below, _keys_output()]


def upload_bytes(value):
    """The bytes of the first uploaded file, for ipywidgets 7 (dict) and 8 (tuple of dicts); None if empty."""
    if not value:
        return None
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": ..., "content": bytes}}
        item = next(iter(value.values()))
    else:  # ipywidgets 8: ({"name": ..., "content": memoryview, ...},)
        item = value[0]
    return bytes(item["content"])


def error_html(message: str) -> str:
    return f'<div style="color:#b00020;font-weight:600">⚠ {_escape(message)}</div>'


def info_html(message: str) -> str:
    return f'<div style="color:#333">{message}</div>'


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
