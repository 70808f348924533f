"""Messages and warnings of a routine run by a panel action, kept for the panel (not only
the console)."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field

from .._logging import capture_messages

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


@dataclass
class Said:
    """What a routine said while an action ran: its info lines and its warnings."""

    info: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def capture_action():
    """Collect the log records of the package made by this thread (INFO lines and
    WARNING+ separately) and the ``warnings.warn`` messages of this package raised while
    the block runs; the default handler does not print the collected records.

    Without this they reach only the kernel's stderr, which JupyterLab shows under some
    other cell (a background action has no cell of its own), not next to the result.
    Warnings of other libraries (deprecations, ...) go to the console as usual.
    ``warnings`` has no per-thread state, so a warning raised by another thread during
    the block is collected too (an action runs one at a time, so this is rare and only
    moves a message).  Progress notes ("loading ... (about 7 s) ...") are left out: the
    panel showed them during the wait, and in the summary of a finished action they would
    read as if it were still running."""
    said = Said()
    caught: list = []
    with capture_messages(logging.INFO, progress=False) as records:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)  # also a repeated warning
                yield said
        finally:
            for level, msg in records:
                (said.info if level < logging.WARNING else said.warnings).append(msg)
            seen = set(said.warnings)
            for w in caught:
                msg = str(w.message)
                if not os.path.abspath(w.filename).startswith(_PACKAGE):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                elif msg not in seen:
                    seen.add(msg)
                    said.warnings.append(msg)
