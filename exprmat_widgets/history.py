"""The command history: records, fingerprints, exact replay, undo and script export.

Every state-changing routine is registered with :func:`command`.  Calling it
appends one JSON record to ``adata.uns['commands']`` (a list of JSON strings,
so it survives ``write_h5ad`` / ``read_h5ad``)::

    {"command": "leiden", "params": {...}, "version": "0.1.0",
     "time": "2026-11-25T15:40:00+00:00",
     "input": {"n_obs": .., "n_vars": .., "obs_names": "<hash>"},
     "output": {"obs:leiden": "<hash>", "uns:leiden_colors": "<hash>", ...}}

A command that raises leaves the AnnData (and so its history) exactly as it
was: the decorator snapshots the containers before the call and restores them
on error.  Routines never write into existing arrays; they replace columns and
entries, which makes the snapshot cheap (references only) and exact.  The same
snapshots, kept on a bounded stack per AnnData, make :func:`undo` exact.

Replay only runs registered commands, with parameters bound to the routine's
signature; recorded content is parsed with :mod:`json` and never evaluated.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import hashlib
import inspect
import json
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import ExprmatError, ReplayError

__all__ = [
    "command",
    "history",
    "replay",
    "undo",
    "history_to_script",
    "registered_commands",
    "fingerprint",
]

UNS_KEY = "commands"
MAX_UNDO = 50


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("exprmat_widgets")
    except Exception:  # running from a source tree that is not installed
        return "0.1.0"


VERSION = _package_version()


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class CommandSpec:
    """A registered command: the routine, what it writes, and which parameters are cell
    selections (recorded as cell names or a packed mask)."""

    name: str
    func: Callable
    writes: Callable[[dict, Any], list]
    selections: tuple = ()


_REGISTRY: dict[str, CommandSpec] = {}
_depth = contextvars.ContextVar("exprmat_command_depth", default=0)


def registered_commands() -> dict[str, CommandSpec]:
    """The commands that replay may run, by name."""
    return dict(_REGISTRY)


def command(name: str, writes: Callable[[dict, Any], list], selections: Iterable[str] = ()):
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
    """
    selections = tuple(selections)

    def decorate(func):
        sig = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(adata, *args, **kwargs):
            if _depth.get() > 0:  # called by another command: only the outer call is recorded
                return func(adata, *args, **kwargs)
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
            _check_not_view(adata, name)
            input_fp = input_fingerprint(adata)
            snap = snapshot(adata)
            token = _depth.set(1)
            try:
                from .selection import encode_selection  # local: selection imports history

                recorded = {}
                for k, v in params.items():
                    if k in selections and v is not None:
                        recorded[k] = encode_selection(adata, v)
                    else:
                        recorded[k] = to_jsonable(v, f"{name}({k}=...)")
                result = func(adata, *args, **kwargs)
                record = {
                    "command": name,
                    "params": recorded,
                    "version": VERSION,
                    "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "input": input_fp,
                    "output": output_fingerprint(adata, writes(recorded, adata)),
                }
                _append_record(adata, record)
            except BaseException:
                restore(adata, snap)
                raise
            finally:
                _depth.reset(token)
            _push_checkpoint(adata, snap)
            return result

        wrapper.__exprmat_command__ = name
        _REGISTRY[name] = CommandSpec(name, wrapper, writes, selections)
        return wrapper

    return decorate


def _check_not_view(adata, name):
    if getattr(adata, "is_view", False):
        raise ExprmatError(
            f"{name}(): the AnnData is a view of another one; commands change data in place. "
            "Make it an AnnData of its own first with `adata = adata.copy()`."
        )


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


# --------------------------------------------------------------------------- fingerprints


def _h():
    return hashlib.blake2b(digest_size=12)


def _update(h, obj):
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, (str, bytes)):
        h.update(b"S")
        h.update(obj.encode() if isinstance(obj, str) else obj)
    elif isinstance(obj, (bool, np.bool_, int, float, np.integer, np.floating)):
        h.update(b"V" + repr(obj.item() if hasattr(obj, "item") else obj).encode())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"D")
        _update(h, obj.index)
        for c in obj.columns:
            _update(h, str(c))
            _update(h, obj[c])
    elif isinstance(obj, (pd.Series, pd.Index)):
        _update(h, obj.array if not isinstance(obj.dtype, pd.CategoricalDtype) else obj.values)
    elif isinstance(obj, pd.Categorical):
        h.update(b"C")
        _update(h, np.asarray(obj.categories.astype(str)))
        _update(h, obj.codes)
    elif isinstance(obj, pd.api.extensions.ExtensionArray):
        _update(h, np.asarray(obj, dtype=object))
    elif sp.issparse(obj):
        # canonical form, so that storage details (index order and dtype after an h5ad
        # round trip, matrix vs array classes) do not change the fingerprint of the values
        obj = sp.csr_matrix(obj) if obj.format not in ("csr", "csc") else obj
        if not obj.has_sorted_indices:
            obj = obj.copy()
            obj.sort_indices()
        h.update(f"sparse{obj.format}{obj.shape}".encode())
        _update(h, obj.data)
        _update(h, obj.indices.astype(np.int64, copy=False))
        _update(h, obj.indptr.astype(np.int64, copy=False))
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype.str}{obj.shape}".encode())
        if obj.dtype.names:  # structured (scanpy's rank_genes_groups record arrays)
            for f in obj.dtype.names:
                _update(h, np.asarray(obj[f]))
        elif obj.dtype.kind in "OUS":
            h.update("\x1f".join(map(str, obj.ravel().tolist())).encode())
        else:
            h.update(memoryview(np.ascontiguousarray(obj)).cast("B"))
    elif isinstance(obj, dict) or hasattr(obj, "keys"):
        h.update(b"M")
        for k in sorted(obj.keys(), key=str):
            _update(h, str(k))
            _update(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L")
        for v in obj:
            _update(h, v)
    elif hasattr(obj, "shape") and hasattr(obj, "dtype"):  # dask or other array-likes
        _update(h, np.asarray(obj))
    else:
        h.update(repr(type(obj)).encode())


def fingerprint(obj) -> str:
    """A short content hash of an array, column, table or nested dict."""
    h = _h()
    _update(h, obj)
    return h.hexdigest()


_names_cache: dict[int, tuple] = {}  # id(index) -> (index, per-name hashes, digest, parent)


def _names_entry(idx, element_hashes: np.ndarray, parent=None) -> str:
    """Cache the per-name hashes of the (immutable) index ``idx`` and return its fingerprint;
    ``parent`` is ``(old_index, rows)`` when ``idx`` is ``old_index[rows]``."""
    h = _h()
    h.update(b"names")
    h.update(memoryview(np.ascontiguousarray(element_hashes)).cast("B"))
    value = h.hexdigest()
    if len(_names_cache) > 16:  # at 1M cells an entry holds ~16 MB (hashes, kept rows)
        _names_cache.clear()
    _names_cache[id(idx)] = (idx, element_hashes, value, parent)
    return value


def _names_hit(idx):
    hit = _names_cache.get(id(idx))
    return hit if hit is not None and hit[0] is idx else None


def obs_names_hash(adata) -> str:
    """Fingerprint of ``adata.obs_names``: a hash of the 64-bit hashes of the names
    (pandas' ``hash_array``, fixed key), cached for the index object, which is immutable."""
    idx = adata.obs_names
    hit = _names_hit(idx)
    if hit is not None:
        return hit[2]
    names = np.asarray(idx, dtype=object)
    return _names_entry(idx, pd.util.hash_array(names, categorize=False))


def carry_obs_names_hash(old_index, new_index, rows: np.ndarray) -> None:
    """After ``new_index = old_index[rows]``, seed the fingerprint cache of ``new_index``
    from the cached per-name hashes of ``old_index`` (a gather instead of re-hashing
    every name: exclusions on a million cells stay cheap) and remember ``rows``."""
    hit = _names_hit(old_index)
    if hit is not None:
        _names_entry(new_index, hit[1][rows], parent=(old_index, rows))


def subset_rows(old_index, new_index) -> np.ndarray | None:
    """``rows`` with ``new_index = old_index[rows]`` if an exclusion made ``new_index`` from
    ``old_index`` in this session (see :func:`carry_obs_names_hash`), else None."""
    hit = _names_hit(new_index)
    if hit is None or hit[3] is None or hit[3][0] is not old_index:
        return None
    return hit[3][1]


def input_fingerprint(adata) -> dict:
    return {"n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars), "obs_names": obs_names_hash(adata)}


def output_fingerprint(adata, writes: list) -> dict:
    out = {}
    for slot, key in writes:
        if slot == "obs_names":
            out["obs_names"] = obs_names_hash(adata)
            continue
        container = getattr(adata, slot)
        label = f"{slot}:{key}"
        if slot in ("obs", "var"):
            out[label] = fingerprint(container[key]) if key in container.columns else "absent"
        else:
            out[label] = fingerprint(container[key]) if key in container else "absent"
    return out


# --------------------------------------------------------------------------- snapshots


_MAPPINGS = ("obsm", "varm", "obsp", "varp", "layers")


def snapshot(adata) -> dict:
    """References to every container of ``adata``: cheap, and exact because routines
    replace columns and entries instead of writing into them."""
    return {
        "dict": dict(adata.__dict__),
        "obs": adata.obs.copy(deep=False),
        "var": adata.var.copy(deep=False),
        "uns": dict(adata.uns),
        **{m: dict(getattr(adata, m)) for m in _MAPPINGS},
    }


def shallow_copy(adata):
    """A new AnnData holding the same arrays and columns as ``adata`` (no data copied).

    Exact as a starting point for :func:`replay` for the same reason :func:`snapshot` is:
    recorded commands replace columns, arrays and ``uns`` entries instead of writing into
    them, so later commands on ``adata`` leave the copy as it was.  (Writing into
    ``adata``'s arrays by hand would show in both: take ``adata.copy()`` then.)
    """
    import anndata as ad

    with ad.settings.override(check_uniqueness=False):  # the names were accepted once already
        return ad.AnnData(
            X=adata.X,
            obs=adata.obs.copy(deep=False),
            var=adata.var.copy(deep=False),
            uns=dict(adata.uns),
            raw=adata.raw,
            **{m: dict(getattr(adata, m)) for m in _MAPPINGS},
        )


def restore(adata, snap: dict) -> None:
    """Put ``adata`` back in the state captured by :func:`snapshot`."""
    adata.__dict__.clear()
    adata.__dict__.update(snap["dict"])
    adata._obs = snap["obs"]
    adata._var = snap["var"]
    adata._uns.clear()
    adata._uns.update(snap["uns"])
    for m in _MAPPINGS:
        store = getattr(adata, m)._data
        store.clear()
        store.update(snap[m])


_checkpoints: dict[int, list] = {}


def _push_checkpoint(adata, snap):
    key = id(adata)
    if key not in _checkpoints:
        _checkpoints[key] = []
        weakref.finalize(adata, _checkpoints.pop, key, None)
    stack = _checkpoints[key]
    stack.append((len(get_records(adata)) - 1, snap))
    del stack[:-MAX_UNDO]


# --------------------------------------------------------------------------- records


def get_records(source) -> list[dict]:
    """The parsed records of an AnnData, a history DataFrame or a list of records."""
    if isinstance(source, pd.DataFrame):
        return [json.loads(s) for s in source["record"]]
    if isinstance(source, (list, tuple)):
        return [json.loads(r) if isinstance(r, str) else dict(r) for r in source]
    raw = source.uns.get(UNS_KEY, []) if hasattr(source, "uns") else source
    if isinstance(raw, str):
        raw = [raw]
    out = []
    for i, r in enumerate(list(raw)):
        try:
            out.append(json.loads(str(r)))
        except json.JSONDecodeError as e:
            raise ReplayError(f"history record {i} is not valid JSON ({e}).", step=i) from None
    return out


def _append_record(adata, record):
    old = adata.uns.get(UNS_KEY, [])
    adata.uns[UNS_KEY] = [str(r) for r in list(old)] + [json.dumps(record)]


def history(adata) -> pd.DataFrame:
    """The command history of ``adata`` as a table, one row a command.

    Reads ``adata.uns['commands']``.  Columns: ``command``, ``params`` (dict),
    ``version``, ``time``, ``input``, ``output`` and ``record`` (the JSON text,
    which :func:`replay` accepts back).
    """
    records = get_records(adata)
    rows = [
        {
            "command": r["command"],
            "params": r["params"],
            "version": r.get("version"),
            "time": r.get("time"),
            "input": r.get("input"),
            "output": r.get("output"),
            "record": json.dumps(r),
        }
        for r in records
    ]
    cols = ["command", "params", "version", "time", "input", "output", "record"]
    df = pd.DataFrame(rows, columns=cols)
    df.index.name = "step"
    return df


# --------------------------------------------------------------------------- replay


def _version_tuple(v: str) -> tuple:
    parts = []
    for p in str(v).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _resolve(step: int, record: dict) -> tuple[CommandSpec, dict]:
    name = record.get("command")
    if name not in _REGISTRY:
        raise ReplayError(
            f"step {step}: unknown command {name!r}; replay only runs exprmat_widgets commands "
            f"({', '.join(sorted(_REGISTRY))}).",
            step=step,
            command=name,
        )
    rec_version = record.get("version", "0")
    if _version_tuple(rec_version) > _version_tuple(VERSION):
        raise ReplayError(
            f"step {step} ({name}) was recorded by exprmat_widgets {rec_version}, newer than this "
            f"one ({VERSION}); upgrade exprmat_widgets to replay it.",
            step=step,
            command=name,
        )
    params = record.get("params")
    if not isinstance(params, dict):
        raise ReplayError(f"step {step} ({name}): parameters are not a mapping.", step=step, command=name)
    spec = _REGISTRY[name]
    sig = inspect.signature(inspect.unwrap(spec.func))
    accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    names = [k for k in sig.parameters][1:]
    unknown = [k for k in params if k not in names and not accepts_kwargs]
    if unknown:
        raise ReplayError(
            f"step {step} ({name}): unknown parameter(s) {unknown}; the record does not match "
            "this version's command.",
            step=step,
            command=name,
        )
    return spec, params


def replay(adata_start, history, *, check: bool = True, copy: bool = True, on_step=None):
    """Re-run a recorded history on a copy of the starting data.

    Parameters
    ----------
    adata_start
        The data the history started from.  Left unchanged when ``copy=True``.
    history
        An AnnData (its ``uns['commands']``), the table of :func:`history`, or a
        list of records / JSON strings.
    check
        Compare each step's input and output fingerprints with the record and
        stop with :class:`~exprmat_widgets.errors.ReplayError` at the first
        mismatch, naming the step.
    on_step
        Called as ``on_step(step, record, ok)`` after each step (used by the
        command line to print progress).

    Returns
    -------
    The replayed AnnData, whose own ``uns['commands']`` holds the new records.
    """
    records = get_records(history)
    adata = adata_start.copy() if copy else adata_start
    if UNS_KEY in adata.uns:
        adata.uns.pop(UNS_KEY)
    for step, record in enumerate(records):
        spec, params = _resolve(step, record)
        name = spec.name
        if check and record.get("input"):
            now = input_fingerprint(adata)
            if now != record["input"]:
                raise ReplayError(
                    f"step {step} ({name}): the data going in differ from the recorded run "
                    f"(recorded {record['input']}, now {now}). Replay onto the data the history "
                    "started from.",
                    step=step,
                    command=name,
                )
        try:
            spec.func(adata, **params)
        except ReplayError:
            raise
        except Exception as e:
            raise ReplayError(
                f"step {step} ({name}) failed on replay: {e} (if the data were changed by hand "
                "before this step, e.g. `adata.layers[...] = ...`, that change is not in the history; "
                "use a recorded command such as em.derive_layer instead)",
                step=step,
                command=name,
            ) from e
        new = get_records(adata)[-1]
        ok = new["output"] == record.get("output") if check else True
        if on_step is not None:
            on_step(step, record, ok)
        if check and not ok:
            diff = sorted(
                k
                for k in set(new["output"]) | set(record.get("output", {}))
                if new["output"].get(k) != record.get("output", {}).get(k)
            )
            raise ReplayError(
                f"step {step} ({name}) did not reproduce the recorded result: {', '.join(diff)} differ.",
                step=step,
                command=name,
            )
    return adata


def undo(adata, start=None) -> dict:
    """Undo the last command of ``adata`` exactly, in place.

    Uses the in-memory checkpoint taken before that command.  When there is
    none (e.g. the data were read from disk), pass ``start``, the data the
    history started from: the history minus its last step is replayed on it.

    Returns the record that was undone.
    """
    records = get_records(adata)
    if not records:
        raise ExprmatError("undo: the history is empty, there is nothing to undo.")
    stack = _checkpoints.get(id(adata), [])
    if stack and stack[-1][0] == len(records) - 1:
        _, snap = stack.pop()
        restore(adata, snap)
        return records[-1]
    if start is None:
        raise ExprmatError(
            "undo: no in-memory checkpoint for the last command (the data were probably read from "
            "disk). Pass the starting data, `em.undo(adata, start=adata_start)`, to rebuild the "
            "state by replaying all but the last step."
        )
    rebuilt = replay(start, records[:-1])
    adata._init_as_actual(rebuilt)
    _checkpoints.pop(id(adata), None)
    return records[-1]


# --------------------------------------------------------------------------- script


def history_to_script(adata, start_path: str = "start.h5ad", out_path: str = "annotated.h5ad") -> str:
    """A runnable Python script that repeats the history of ``adata``.

    The script reads ``start_path``, calls each recorded command with its
    recorded parameters and writes ``out_path``.
    """
    lines = [
        '"""Replay of an exprmat_widgets history (generated by em.history_to_script)."""',
        "import anndata as ad",
        "import exprmat_widgets as em",
        "",
        f"adata = ad.read_h5ad({start_path!r})",
    ]
    for step, record in enumerate(get_records(adata)):
        spec, params = _resolve(step, record)
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        lines.append(f"em.{spec.name}(adata{', ' if args else ''}{args})  # step {step}")
    lines.append(f"adata.write_h5ad({out_path!r})")
    return "\n".join(lines) + "\n"
