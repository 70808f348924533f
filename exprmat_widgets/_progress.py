"""Progress and cancellation of long routines (cNMF, SC3, kNN, UMAP).

A long routine reports its progress through :func:`bar` and stops, when asked, at its
safe points (:func:`checkpoint`, and every ``bar.update``).  Called from code, :func:`bar`
is a plain ``tqdm.auto`` bar (notebook or terminal) and nothing can be cancelled but by
an interrupt.  Called inside :func:`scope` (what the Annotator does for a panel action),
the bar prints nothing and hands its counts to the scope's listener instead (the panel's
progress bar), and a cancelled :class:`CancelToken` makes the next safe point raise
:class:`Cancelled`.  That exception leaves the command like any other error, so the
``command`` decorator puts the AnnData and its history back exactly as they were.

While a routine computes, a panel may read the data (answer a click) if the routine
writes to the AnnData only inside :func:`writing` and its command is registered with
``gated=True``: :func:`writing` takes the scope's data lock, which the panel takes too
(without waiting) around each read.  The command decorator takes it for its own writes
(the record, the restore after an error).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.std import tqdm as _std_tqdm

from .errors import ExprmatError

__all__ = ["Cancelled", "CancelToken", "Scope", "scope", "current", "bar", "checkpoint", "checker",
           "writing", "locked"]


class Cancelled(ExprmatError):
    """A long routine was cancelled at a safe point; the data and history are as before."""


class CancelToken:
    """Asks a running routine to stop at its next safe point (thread-safe)."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, where: str = "") -> None:
        """Raise :class:`Cancelled` when :meth:`cancel` was called."""
        if self._event.is_set():
            at = f" during {where}" if where else ""
            raise Cancelled(f"cancelled{at}; the data and the history are as they were before. "
                            "Run it again to get the result.")


@dataclass
class Scope:
    """Where the bars of one action report (``listener(desc, n, total)``), its cancel token
    and the lock around its writes to the data."""

    listener: Callable[[str, float, float | None], None] | None = None
    token: CancelToken = field(default_factory=CancelToken)
    data_lock: threading.RLock = field(default_factory=threading.RLock)

    def report(self, desc: str, n: float, total: float | None) -> None:
        if self.listener is not None:
            self.listener(desc, n, total)


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("exprmat_progress", default=None)


def current() -> Scope | None:
    """The scope of the running action, or ``None`` when called from code."""
    return _current.get()


@contextlib.contextmanager
def scope(listener=None, token: CancelToken | None = None):
    """Run the block as one action: its bars report to ``listener`` and ``token`` cancels it."""
    s = Scope(listener, token or CancelToken())
    reset = _current.set(s)
    try:
        yield s
    finally:
        _current.reset(reset)


class _ScopeBar(_std_tqdm):
    """A tqdm bar that tells the scope's listener instead of printing (tqdm's own counting,
    rate and timing; only the output differs) and checks the cancel token on each update."""

    def __init__(self, *args, scope: Scope, **kwargs):
        self._scope = scope
        kwargs.update(file=io.StringIO(), disable=False, leave=False)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        self._scope.report(self.desc, self.n, self.total)
        return True

    def refresh(self, nolock=False, lock_args=None):
        # tqdm's refresh holds its class-wide write lock around display(); nothing is written
        # to a terminal here, and a listener that takes its time (a panel's message) would
        # stall every other bar of the process, also one made in another thread
        self.display()
        return True

    def update(self, n=1):
        out = super().update(n)
        self._scope.token.check(self.desc)
        return out

    def close(self):
        if not self.disable:
            self._scope.report(self.desc, self.n, self.total)
        super().close()


def bar(total: int | None, desc: str, enabled: bool = True, iterable=None):
    """A progress bar for ``total`` steps of a long routine (or over ``iterable``, as
    ``tqdm(iterable)``: each step taken from it is then a safe point).

    From code: ``tqdm.auto.tqdm`` (disabled when ``enabled`` is false).  Inside :func:`scope`:
    a bar reporting to the scope (always; ``enabled`` only governs printed bars), whose
    ``update`` is a safe point.  The bar is bound to the scope at creation, so worker threads
    of the routine may update it.
    """
    s = _current.get()
    if s is None:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False)
    # every step reaches the listener (which throttles what it shows), so a cancel asked from
    # it is seen at that very step
    return _ScopeBar(iterable, total=total, desc=desc, scope=s, mininterval=0, miniters=1)


def checkpoint(where: str = "") -> None:
    """A safe point of a long routine: raises :class:`Cancelled` if its action was cancelled."""
    s = _current.get()
    if s is not None:
        s.token.check(where)


def checker(where: str = "") -> Callable[[], None]:
    """:func:`checkpoint` bound to the current scope, for worker threads (which do not see
    the caller's context)."""
    s = _current.get()
    if s is None:
        return lambda: None
    token = s.token
    return lambda: token.check(where)


@contextlib.contextmanager
def writing(where: str = ""):
    """The block writes to the AnnData: a last safe point, then the scope's data lock (panel
    reads wait for it).  A no-op outside a scope."""
    s = _current.get()
    if s is None:
        yield
        return
    s.token.check(where)
    with s.data_lock:
        yield


@contextlib.contextmanager
def locked():
    """The scope's data lock without a safe point (the command's record and its restore
    after an error, which must run whatever was asked).  A no-op outside a scope."""
    s = _current.get()
    if s is None:
        yield
        return
    with s.data_lock:
        yield
