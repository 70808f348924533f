"""Replay of a recorded history, checked step by step, and exact undo.

Replay runs only registered commands, with parameters bound to the routine's signature;
recorded content is parsed with :mod:`json` and never evaluated.  Each step's input and
output fingerprints are compared with the record.
"""

from __future__ import annotations

import inspect
import keyword

from ..errors import ExprmatError, ReplayError
from . import _compat
from .fingerprints import input_fingerprint
from .records import UNS_KEY, get_records, hashed_as, last_record, raw_records, short
from .registry import _REGISTRY, CommandSpec, _replaying, checkpoints, command_lock, forget_checkpoints

__all__ = ["replay", "undo", "resolve"]


def resolve(step: int, record: dict) -> tuple[CommandSpec, dict]:
    """The registered command of a validated record and its parameters, checked against
    the routine's signature."""
    name = record["command"]
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ReplayError(
            f"step {step}: unknown command {short(name)}; replay only runs exprmat_widgets commands "
            f"({', '.join(sorted(_REGISTRY))}).",
            step=step,
            command=short(name),
        )
    params = record["params"]
    sig = inspect.signature(inspect.unwrap(spec.func))
    accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    names = list(sig.parameters)[1:]
    bad = [k for k in params if not k.isidentifier() or keyword.iskeyword(k)]
    if bad:
        raise ReplayError(
            f"step {step} ({name}): parameter name(s) {short(bad, 120)} are not Python names; "
            "the record is damaged.",
            step=step,
            command=name,
        )
    unknown = [k for k in params if k not in names and not accepts_kwargs]
    if unknown:
        raise ReplayError(
            f"step {step} ({name}): unknown parameter(s) {short(unknown, 120)}; the record does "
            "not match this version's command.",
            step=step,
            command=name,
        )
    for k in spec.selections:
        v = params.get(k)
        if v is not None and not isinstance(v, dict):
            raise ReplayError(
                f"step {step} ({name}): the selection {k!r} is a {type(v).__name__}, not a recorded "
                "selection; the record is damaged.",
                step=step,
                command=name,
            )
    return spec, params


def _run_records(adata, records, *, check: bool, on_step, offset: int = 0) -> None:
    for i, record in enumerate(records):
        step = i + offset
        spec, params = resolve(step, record)
        name = spec.name
        if check:
            now = input_fingerprint(adata)
            if now != record["input"]:
                raise ReplayError(
                    f"step {step} ({name}): the data going in differ from the recorded run "
                    f"(recorded {short(record['input'], 200)}, now {now}). Replay onto the data "
                    "the history started from.",
                    step=step,
                    command=name,
                )
        try:
            with hashed_as(record):
                spec.func(adata, **_fresh(params))
        except ReplayError:
            raise
        except Exception as e:
            raise ReplayError(
                f"step {step} ({name}) failed on replay: {short(str(e), 400)} (if the data were "
                "changed by hand before this step, e.g. `adata.layers[...] = ...`, that change is "
                "not in the history; use a recorded command such as em.derive_layer instead)",
                step=step,
                command=name,
            ) from e
        new = last_record(adata)
        ok = new["output"] == record["output"] if check else True
        if on_step is not None:
            on_step(step, record, ok)
        if check and not ok:
            diff = sorted(
                k for k in set(new["output"]) | set(record["output"])
                if new["output"].get(k) != record["output"].get(k)
            )
            raise ReplayError(
                f"step {step} ({name}) did not reproduce the recorded result: "
                f"{short(', '.join(diff), 400)} differ.",
                step=step,
                command=name,
            )


def _same_step(a: dict, b: dict) -> bool:
    """The same command on the same data with the same result (when it ran is not part of it)."""
    return all(a.get(k) == b.get(k) for k in ("command", "params", "input", "output"))


def _is_prefix(done: list, records: list) -> bool:
    return len(done) <= len(records) and all(_same_step(a, b) for a, b in zip(done, records))


def _fresh(params: dict) -> dict:
    """A copy of cached parameters that a routine may change without touching the cache."""
    import copy

    return copy.deepcopy(params)


def replay(adata_start, history, *, check: bool = True, copy: bool = True, on_step=None):
    """Re-run a recorded history on the starting data.

    When ``adata_start`` already carries the first steps of ``history`` (e.g. a copy
    taken mid-analysis), replay continues after them.

    Parameters
    ----------
    adata_start
        The data the history started from.  Left unchanged when ``copy=True``: replay
        runs on a shallow copy, which shares arrays with it (recorded commands replace
        arrays instead of writing into them), so replay needs no second copy of ``X``.
    history
        An AnnData (its ``uns['commands']``), the table of :func:`history`, or a
        list of records / JSON strings.
    check
        Compare each step's input and output fingerprints with the record and
        stop with :class:`~exprmat_widgets.errors.ReplayError` at the first
        mismatch, naming the step.
    copy
        Replay on a copy (default) or on ``adata_start`` itself.
    on_step
        Called as ``on_step(step, record, ok)`` after each step (used by the
        command line to print progress).

    Returns
    -------
    anndata.AnnData
        The replayed data, whose own ``uns['commands']`` holds the new records.

    Raises
    ------
    ReplayError
        For any malformed record (naming the step, before anything runs) and, with
        ``check``, at the first step whose fingerprints differ from the record.
    """
    records = get_records(history)
    for i, r in enumerate(records):  # refuse a damaged history before running any of it
        resolve(i, r)
    done = get_records(adata_start) if raw_records(adata_start) else []
    k = len(done) if done and _is_prefix(done, records) else 0
    adata = _compat.shallow_copy(adata_start) if copy else adata_start
    if k == 0 and UNS_KEY in adata.uns:
        adata.uns.pop(UNS_KEY)
    token = _replaying.set(True)
    try:
        _run_records(adata, records[k:], check=check, on_step=on_step, offset=k)
    finally:
        _replaying.reset(token)
    return adata


def undo(adata, start=None) -> dict:
    """Undo the last command of ``adata`` exactly, in place.

    Uses the in-memory checkpoint taken before that command.  When there is none (older
    than the checkpoints kept, see ``em.settings``, or the data were read from disk),
    pass ``start``, the data the history started from (or any earlier state of the same
    data whose history is a prefix of this one): the missing steps are replayed on it.
    Restores every slot the command changed and removes its record from
    ``uns['commands']``.

    Parameters
    ----------
    adata
        Annotated data whose last recorded command is undone, in place.
    start
        The data the history started from (or an earlier state whose history is a
        prefix of this one), used only when no checkpoint of the last command is held;
        or a function of no arguments returning them, called only then.

    Returns
    -------
    dict
        The record that was undone (``command``, ``params``, ...).
    """
    with command_lock(adata):
        raws = raw_records(adata)
        if not raws:
            raise ExprmatError("undo: the history is empty, there is nothing to undo.")
        last = last_record(adata)
        n = len(raws)
        stack = checkpoints(adata)
        if stack and stack.entries and stack.entries[-1][0] == n - 1:
            _, snap = stack.entries.pop()
            _compat.restore(adata, snap)
            return last
        if start is None:
            if stack and stack.dropped:
                cause = f"its checkpoint was let go: {stack.reason}"
            else:
                cause = ("there is no checkpoint for it in this Python session (the data were read "
                         "from disk, or the command ran in another process)")
            raise ExprmatError(
                f"undo: the state before step {n - 1} ({last['command']}) is not held in memory; "
                f"{cause}. Pass the data the history started from to rebuild it by replay: "
                "`em.undo(adata, start=adata_start)` (the Annotator's Undo button uses its start copy)."
            )
        if callable(start):  # read only now that it is needed (an Annotator's start file)
            start = start()
        records = get_records(adata)
        done = get_records(start)
        k = len(done)
        if k > n - 1 or not _is_prefix(done, records):
            raise ExprmatError(
                f"undo: `start` has a history of {k} step(s) that is not the beginning of this "
                f"one's ({n} steps); pass the data this history started from."
            )
        rebuilt = _compat.shallow_copy(start)
        _run_records(rebuilt, records[k:n - 1], check=True, on_step=None, offset=k)
        _compat.become(adata, rebuilt)
        forget_checkpoints(adata)
        return last
