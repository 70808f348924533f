"""The command registry and the recording decorator: what makes a routine a command.

A call of a registered routine, from code or a panel, holds a per-AnnData lock for the
whole command (so a notebook cell cannot interleave with a background action), checks
that the data are ones the history can describe, records its parameters (selections by
the cells they hit), runs, fingerprints what it wrote and appends one record; on error it
restores every container and the history as they were.  The snapshot taken before the
call is kept as an undo checkpoint, within a count and a memory budget
(:data:`exprmat_widgets.settings`).
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import _progress
from .._settings import settings
from ..errors import ExprmatError
from . import _compat
from .fingerprints import current_format, input_fingerprint, names_are_unique, output_fingerprint
from .records import UNS_KEY, append_record, last_record, raw_records, record_format

__all__ = [
    "CommandSpec", "command", "is_replaying", "record_resolved", "registered_commands", "command_lock", "to_jsonable",
]

logger = logging.getLogger("exprmat_widgets")


def _package_version() -> str:
    from .._version import __version__

    return __version__


VERSION = _package_version()


@dataclass(frozen=True)
class CommandSpec:
    """A registered command: the routine, what it writes, and which parameters are cell
    selections (recorded as cell names or a packed mask)."""

    name: str
    func: Callable
    writes: Callable[[dict, Any], list]
    selections: tuple = ()
    in_memory: bool = False
    gated: bool = False


_REGISTRY: dict[str, CommandSpec] = {}
_depth = contextvars.ContextVar("exprmat_command_depth", default=0)
_replaying = contextvars.ContextVar("exprmat_replaying", default=False)  # replay keeps no undo states
# the params of the record being made by the running top-level command (None elsewhere)
_recorded = contextvars.ContextVar("exprmat_recorded", default=None)


def is_replaying() -> bool:
    """Whether the running command is being replayed from a record (``em.replay``)."""
    return bool(_replaying.get())


def record_resolved(**values) -> None:
    """Inside a command: record these parameter values instead of the ones passed.

    For inputs that are looked up when the command runs (a Cell Ontology name resolved to
    its id): the record then holds what was looked up, so replay does not depend on
    looking it up again.  A no-op when the command was called by another command.
    """
    rec = _recorded.get()
    if rec is None:
        return
    for k, v in values.items():
        if k not in rec:
            raise ExprmatError(f"record_resolved: {k!r} is not a parameter of this command.")
        rec[k] = to_jsonable(v, f"{k}=...")


def registered_commands() -> dict[str, CommandSpec]:
    """The commands that replay may run, by name."""
    return dict(_REGISTRY)


# --------------------------------------------------------------------------- locks

_locks: dict[int, threading.RLock] = {}
_locks_guard = threading.Lock()


def command_lock(adata) -> threading.RLock:
    """The lock every recorded command on ``adata`` holds while it runs."""
    key = id(adata)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.RLock()
            weakref.finalize(adata, _locks.pop, key, None)
    return lock


# --------------------------------------------------------------------------- checks


def _check_state(adata, name: str, input_fp: dict, in_memory: bool) -> None:
    if not isinstance(adata.obs, pd.DataFrame):
        raise ExprmatError(
            f"{name}(): adata.obs is a lazy {type(adata.obs).__name__} (anndata.experimental.read_lazy), "
            "and commands rewrite obs columns. Open the data with `em.read_lazy(path)` instead: X stays "
            "on disk, obs is read into memory."
        )
    if in_memory and _compat.is_backed(adata):
        raise ExprmatError(
            f"{name}(): the AnnData is backed by {adata.filename} (read with backed='r'), and "
            f"{name} removes cells, which rewrites X. Load it into memory first with "
            "`adata = adata.to_memory()` (the history comes along), then save with "
            "`adata.write_h5ad(new_path)`; if X does not fit in memory, open the file with "
            "`adata = em.read_lazy(path)` instead (X stays on disk and the removal stays lazy)."
        )
    if getattr(adata, "is_view", False):
        raise ExprmatError(
            f"{name}(): the AnnData is a view of another one; commands change data in place. "
            "Make it an AnnData of its own first with `adata = adata.copy()`."
        )
    if not names_are_unique(adata):
        dup = adata.obs_names[adata.obs_names.duplicated()][:3].tolist()
        raise ExprmatError(
            f"{name}(): obs_names are not unique (e.g. {dup}), so a recorded selection could "
            "point at the wrong cells. Make them unique first: `adata.obs_names_make_unique()`."
        )
    last = last_record(adata) if raw_records(adata) else None
    if last is None:
        return
    expected = last.get("after")
    if expected is None and record_format(last) == 0 and "obs_names" not in last["output"]:
        expected = last["input"]  # a format-0 command that kept the cells
    if expected is not None and any(expected.get(k) != input_fp[k] for k in ("n_obs", "n_vars", "obs_names")):
        n = len(raw_records(adata))
        raise ExprmatError(
            f"{name}(): the history in adata.uns['{UNS_KEY}'] does not belong to these data: its "
            f"last step (step {n - 1}, {last['command']}) left {expected.get('n_obs')} cells x "
            f"{expected.get('n_vars')} genes, the data have {input_fp['n_obs']} x "
            f"{input_fp['n_vars']}{' with other cell names' if expected.get('n_obs') == input_fp['n_obs'] else ''}. "
            "That happens after anndata.concat(..., uns_merge=...) or subsetting by hand "
            "(`adata[mask].copy()`), which the history cannot replay. Use em.exclude_cells / "
            "em.subset_cells for subsets, or start a new history on these data with "
            f"`del adata.uns['{UNS_KEY}']`."
        )


# --------------------------------------------------------------------------- decorator


def command(name: str, writes: Callable[[dict, Any], list], selections: Iterable[str] = (),
            in_memory: bool = False, gated: bool = False):
    """Register a state-changing routine and record each top-level call.

    Parameters
    ----------
    name
        Name stored in the record and used by replay.
    writes
        ``writes(params, adata) -> [(slot, key), ...]`` after the call: what the
        routine wrote, fingerprinted into the record.  Slots: ``obs``, ``var``,
        ``obsm``, ``varm``, ``obsp``, ``layers``, ``uns`` and ``obs_names``.
    selections
        Names of parameters that hold a cell selection; they are recorded as
        the cells they hit (see :func:`exprmat_widgets.selection.encode_selection`).
    in_memory
        The routine rewrites ``X`` (removes cells): refused with a clear message on
        backed data.
    gated
        The routine writes to ``adata`` only inside :func:`exprmat_widgets._progress.writing`,
        so a panel may read the data while it computes (see :mod:`exprmat_widgets._progress`).
    """
    selections = tuple(selections)

    def decorate(func):
        sig = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(adata, *args, **kwargs):
            if _depth.get() > 0:  # called by another command: only the outer call is recorded
                token = _recorded.set(None)
                try:
                    return func(adata, *args, **kwargs)
                finally:
                    _recorded.reset(token)
            try:
                bound = sig.bind(adata, *args, **kwargs)
            except TypeError as e:
                raise ExprmatError(f"{name}(): {e}. See help(em.{name}) for its parameters.") from None
            bound.apply_defaults()
            params = dict(bound.arguments)
            params.pop(next(iter(sig.parameters)))
            for k, p in sig.parameters.items():  # **kwargs
                if p.kind is inspect.Parameter.VAR_KEYWORD and k in params:
                    params.update(params.pop(k))
            with command_lock(adata):
                return _run(adata, name, func, writes, selections, in_memory, params, args, kwargs)

        wrapper.__exprmat_command__ = name
        wrapper.__exprmat_gated__ = bool(gated)
        _REGISTRY[name] = CommandSpec(name, wrapper, writes, selections, in_memory, bool(gated))
        return wrapper

    return decorate


def _run(adata, name, func, writes, selections, in_memory, params, args, kwargs):
    from ..selection import encode_selection

    input_fp = input_fingerprint(adata)
    _check_state(adata, name, input_fp, in_memory)
    snap = _compat.snapshot(adata)
    n_before = len(raw_records(adata))
    token = _depth.set(1)
    rec_token = _recorded.set(None)
    try:
        recorded = {}
        for k, v in params.items():
            if k in selections and v is not None:
                recorded[k] = encode_selection(adata, v)
            else:
                recorded[k] = to_jsonable(v, f"{name}({k}=...)")
        _recorded.set(recorded)
        result = func(adata, *args, **kwargs)
        with _progress.locked():  # a panel reading while the routine ran waits for the record
            _append(adata, name, recorded, input_fp, writes)
    except BaseException:
        with _progress.locked():
            _compat.restore(adata, snap)
        raise
    finally:
        _recorded.reset(rec_token)
        _depth.reset(token)
    if not _replaying.get():
        push_checkpoint(adata, n_before, snap)
    return result


def _append(adata, name, recorded, input_fp, writes):
    record = {
        "format": current_format(),  # a replayed record keeps its own format
        "command": name,
        "params": recorded,
        "version": VERSION,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input": input_fp,
        "output": output_fingerprint(adata, writes(recorded, adata)),
        "after": input_fingerprint(adata),
    }
    append_record(adata, record)


# --------------------------------------------------------------------------- JSON params


def to_jsonable(value, where: str = "parameter"):
    """Convert a parameter to plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            raise ExprmatError(f"{where}: {v} is not a finite number; pass a finite value.")
        return v
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple, pd.Index, pd.Series, np.ndarray, pd.Categorical)):
        return [to_jsonable(v, where) for v in list(value)]
    if isinstance(value, range):
        return [int(v) for v in value]
    raise ExprmatError(
        f"{where}: a {type(value).__name__} cannot be recorded in the history; "
        "pass plain numbers, strings, lists or dicts."
    )


# --------------------------------------------------------------------------- undo checkpoints


@dataclass
class _Stack:
    entries: list  # (number of records before the command, snapshot)
    dropped: int = 0  # checkpoints let go for the count or the memory budget
    reason: str = ""


_checkpoints: dict[int, _Stack] = {}


def checkpoints(adata) -> _Stack | None:
    return _checkpoints.get(id(adata))


def forget_checkpoints(adata) -> None:
    _checkpoints.pop(id(adata), None)


def push_checkpoint(adata, n_before: int, snap: dict) -> None:
    key = id(adata)
    stack = _checkpoints.get(key)
    if stack is None:
        stack = _checkpoints[key] = _Stack([])
        weakref.finalize(adata, _checkpoints.pop, key, None)
    stack.entries.append((n_before, snap))
    while len(stack.entries) > max(int(settings.undo_max_steps), 0):
        stack.entries.pop(0)
        stack.dropped += 1
        stack.reason = f"only the last {settings.undo_max_steps} are kept (em.settings.undo_max_steps)"
    budget = settings.undo_max_bytes
    if budget is None:
        return
    start = _start_of(adata)
    if start is not None and held_bytes(adata) > budget:
        live = {i for i, _ in _compat.current_arrays(adata)}
        alone = sum(n for i, n in start.arrays() if i not in live)
        if alone:  # the start copy goes first (to a file): the checkpoints give the quick undos
            start.spill(alone)
    while stack.entries and held_bytes(adata) > budget:
        stack.entries.pop(0)
        stack.dropped += 1
        stack.reason = (
            f"older states were let go to keep undo memory under {budget / 2**30:.1f} GiB "
            "(em.settings.undo_max_bytes)"
        )
        logger.info("undo: %s; an older state can still be rebuilt from the start data", stack.reason)


_starts: dict[int, weakref.ref] = {}


def hold_start(adata, start) -> None:
    """Count the arrays that ``start`` (a :class:`~.start_copy.StartCopy` of ``adata``) alone
    keeps in the undo budget of ``adata``, and let it go to a file first when over it."""
    key = id(adata)
    if key not in _starts:
        weakref.finalize(adata, _starts.pop, key, None)
    _starts[key] = weakref.ref(start)


def _start_of(adata):
    ref = _starts.get(id(adata))
    start = ref() if ref is not None else None
    return start if start is not None and start.in_memory else None


def held_bytes(adata) -> int:
    """Bytes of arrays that the undo checkpoints of ``adata`` and its start copy (when an
    Annotator keeps one in memory) keep alive and the data no longer use (an exclusion's
    old ``X``, layers and graphs); an array both keep counts once."""
    stack = _checkpoints.get(id(adata))
    start = _start_of(adata)
    if (not stack or not stack.entries) and start is None:
        return 0
    live = {i for i, _ in _compat.current_arrays(adata)}
    held = {i: n for i, n in (start.arrays() if start is not None else []) if i not in live}
    for _, snap in (stack.entries if stack else []):
        for i, n in _compat.held_arrays(snap):
            if i not in live:
                held[i] = n
    return int(sum(held.values()))
