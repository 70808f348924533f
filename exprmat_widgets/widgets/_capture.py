"""Warnings of a routine run by a panel action, kept for the panel (not only the console)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _ThreadHandler(logging.Handler):
    """Collects WARNING+ records logged by the thread that installed it."""

    def __init__(self, sink: list):
        super().__init__(level=logging.WARNING)
        self.sink = sink
        self.thread = threading.get_ident()

    def emit(self, record):
        if record.thread == self.thread:
            self.sink.append(record.getMessage())


@contextlib.contextmanager
def capture_warnings(logger: str = "exprmat_widgets"):
    """Collect, as strings, the ``warnings.warn`` messages of this package and the
    WARNING-level log records of ``logger`` (and its children) raised while the block
    runs.  Warnings of other libraries (deprecations, ...) go to the console as usual.

    Without this they reach only the kernel's stderr, which JupyterLab shows in its log
    console, not next to the result.  ``warnings`` has no per-thread state, so a warning
    raised by another thread during the block is collected too (an action runs one at a
    time, so this is rare and only moves a message)."""
    sink: list[str] = []
    handler = _ThreadHandler(sink)
    log = logging.getLogger(logger)
    log.addHandler(handler)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)  # also a repeated warning
            yield sink
    finally:
        log.removeHandler(handler)
        seen = set(sink)
        for w in caught:
            msg = str(w.message)
            if not os.path.abspath(w.filename).startswith(_PACKAGE):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            elif msg not in seen:
                seen.add(msg)
                sink.append(msg)
