"""What every cnnviz widget shares: latest-request-only rendering, background work that ends cleanly when the
process exits, error display, scoped style."""
import atexit
import threading
import weakref
from contextlib import contextmanager

import ipywidgets as widgets

from ..runtime import keep_freed_memory

__all__ = ["LatestOnly", "Worker", "View", "guarded", "scoped_style", "upload_bytes", "error_html", "info_html",
           "close_all"]

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


def scoped_style(css_class: str, scale: float = 1.0) -> widgets.HTML:
    """A ``<style>`` that enlarges controls inside ``.css_class`` only (Colab gives each output its own
    iframe, so a widget must carry its own style)."""
    fs, h = round(15 * scale), round(32 * scale)
    return widgets.HTML(f"""<style>
.{css_class} {{ --jp-widgets-font-size: {fs}px; --jp-widgets-inline-height: {h}px; font-size: {fs}px; }}
.{css_class} input, .{css_class} select, .{css_class} button {{ font-size: {fs}px !important; }}
.{css_class} .cnnviz-cell input {{ text-align: center; height: {round(h * 1.25)}px; font-size: {round(fs * 1.25)}px !important; }}
.{css_class} .cnnviz-title {{ font-size: {round(fs * 1.2)}px; font-weight: 600; }}
.{css_class} .widget-html-content, .{css_class} .widget-radio-box label {{ line-height: 1.35; }}
.{css_class} .widget-hbox {{ gap: 4px; }}
</style>""")


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
