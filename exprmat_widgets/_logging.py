"""The package's user-facing messages, through :mod:`logging` (scanpy's ``logg`` is the model).

Routines say what they did with ``logg.info("labelled 30 cells ...")`` and warn with
``logg.warning(...)``, on the logger ``"exprmat_widgets"``.  A default handler prints them
to ``sys.stderr`` as ``[i] message`` / ``[!] message`` (the notebook shows stderr under the
cell, like scanpy's messages); it looks ``sys.stderr`` up at every message, so a kernel's
stream, a redirected one or pytest's capture receive them.

Records still propagate to the root logger (``caplog``, an application's own logging
set-up); ``logging.getLogger("exprmat_widgets").setLevel(logging.WARNING)`` silences the
info lines.  The Annotator collects the messages of its own actions with
:func:`capture_messages` and shows them in its status line instead of printing them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

__all__ = ["logg", "info", "warning", "progress", "on_progress", "capture_messages"]

logg = logging.getLogger("exprmat_widgets")

# threads whose messages an Annotator shows itself: the default handler leaves them out
_captured_threads: dict[int, int] = {}
_captured_lock = threading.Lock()


class _StderrHandler(logging.StreamHandler):
    """Prints ``[i] message`` (info) or ``[!] message`` (warning and above) on the current
    ``sys.stderr``."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(em_prefix)s %(message)s"))
        self.addFilter(self._keep)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property reads sys.stderr
        pass

    @staticmethod
    def _keep(record) -> bool:
        record.em_prefix = "[i]" if record.levelno < logging.WARNING else "[!]"
        return record.thread not in _captured_threads


def _install_default_handler() -> None:
    if not any(isinstance(h, _StderrHandler) for h in logg.handlers):
        logg.addHandler(_StderrHandler())
    if logg.level == logging.NOTSET:
        logg.setLevel(logging.INFO)


_install_default_handler()


def info(msg: str, *args) -> None:
    """Tell the user what a routine did (``[i] ...``)."""
    logg.info(msg, *args)


def warning(msg: str, *args) -> None:
    """Tell the user about something they should look at (``[!] ...``)."""
    logg.warning(msg, *args)


def progress(msg: str, *args) -> None:
    """Say what a routine is doing now, before a long wait (``[i] ...``, like :func:`info`);
    an :func:`on_progress` callback of the calling thread receives it at once."""
    logg.info(msg, *args, extra={"em_progress": True})


class _ProgressHook(logging.Handler):
    """Calls ``callback(message)`` for the :func:`progress` records of one thread."""

    def __init__(self, callback):
        super().__init__()
        self.thread = threading.get_ident()
        self.callback = callback

    def emit(self, record):
        if record.thread == self.thread and getattr(record, "em_progress", False):
            try:
                self.callback(record.getMessage())
            except Exception:  # a display problem must not fail the routine
                self.handleError(record)


@contextlib.contextmanager
def on_progress(callback):
    """While the block runs, ``callback(message)`` receives this thread's :func:`progress`
    messages as they are made (a panel shows them in its status line during the wait)."""
    hook = _ProgressHook(callback)
    logg.addHandler(hook)
    try:
        yield
    finally:
        logg.removeHandler(hook)


class _ThreadSink(logging.Handler):
    """Collects the records of one thread, as ``(levelno, message)``."""

    def __init__(self, level: int, progress: bool = True):
        super().__init__(level=level)
        self.thread = threading.get_ident()
        self.progress = progress
        self.records: list[tuple[int, str]] = []

    def emit(self, record):
        if record.thread == self.thread and (self.progress or not getattr(record, "em_progress", False)):
            self.records.append((record.levelno, record.getMessage()))


@contextlib.contextmanager
def capture_messages(level: int = logging.INFO, *, quiet: bool = True, progress: bool = True):
    """Collect the package's log records made by this thread while the block runs.

    Yields a list that fills with ``(levelno, message)`` tuples.  With ``quiet`` the
    default handler does not print them (the caller shows them itself); records of other
    threads (a notebook cell run meanwhile) print as usual.  ``progress=False`` leaves
    out the :func:`progress` notes (about a wait that is over once the block ends).
    """
    sink = _ThreadSink(level, progress)
    me = sink.thread
    logg.addHandler(sink)
    if quiet:
        with _captured_lock:
            _captured_threads[me] = _captured_threads.get(me, 0) + 1
    try:
        yield sink.records
    finally:
        logg.removeHandler(sink)
        if quiet:
            with _captured_lock:
                left = _captured_threads.pop(me) - 1
                if left:
                    _captured_threads[me] = left
