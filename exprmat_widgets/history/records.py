"""History records: the format, strict parsing of what a file holds, and appending.

``adata.uns['commands']`` is a list of JSON strings, one a command (h5ad cannot store a
list of dicts).  The record layout is documented in ``docs/history_format.md``; this
module is the only reader and writer of it.  Parsing never trusts the file: every
malformed record raises :class:`~exprmat_widgets.errors.ReplayError` naming the step,
and what a message quotes from a record is cut short.

Parsed records are cached by the identity of their (immutable) JSON string, so a command
on a long history parses only its own record: appending costs the same at 10 or 10,000
records.
"""

from __future__ import annotations

import json
import threading

import pandas as pd

from ..errors import ReplayError
from .fingerprints import NEWEST as FORMAT  # the record format this package writes and the newest it reads
from .fingerprints import fingerprint_format

__all__ = [
    "UNS_KEY",
    "FORMAT",
    "get_records",
    "raw_records",
    "append_record",
    "record_format",
    "hashed_as",
    "short",
    "history",
    "changed_outputs",
    "last_record",
]

UNS_KEY = "commands"
MAX_RECORD_CHARS = 256 * 2**20  # a packed mask of 1e9 cells is ~170 MB of base64
_REQUIRED = ("command", "params", "input", "output")

_parsed: dict[int, tuple[str, dict]] = {}  # id(json string) -> (string, validated record)
_parsed_lock = threading.Lock()
_PARSED_MAX_CHARS = 512 * 2**20
_parsed_chars = 0


def short(value, n: int = 60) -> str:
    """``repr(value)`` cut to ``n`` characters, for quoting hostile content in messages."""
    try:
        text = value if isinstance(value, str) and len(value) > 4 * n else repr(value)
    except Exception:  # a repr that fails or recurses
        text = f"<{type(value).__name__}>"
    if isinstance(value, str) and len(value) > 4 * n:
        text = repr(value[:n])
    return text if len(text) <= n else text[: n - 3] + "..."


def raw_records(source) -> list:
    """The stored JSON strings of an AnnData's history (an empty list when there is none)."""
    raw = source.uns.get(UNS_KEY, None) if hasattr(source, "uns") else source
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if hasattr(raw, "dtype") and hasattr(raw, "tolist") and getattr(raw, "ndim", 0) == 1:
        return raw.tolist()  # h5ad gives a 1-d array of strings
    raise ReplayError(
        f"uns[{UNS_KEY!r}] is a {type(raw).__name__}, not a list of JSON records; the history "
        f"is damaged. Remove it with `del adata.uns[{UNS_KEY!r}]` to start a new one.",
        step=None,
    )


def record_format(record: dict) -> int:
    return record.get("format", 0)


def hashed_as(record: dict):
    """A context in which fingerprints are hashed as ``record`` was (its format's scheme):
    to check, replay or redo it."""
    return fingerprint_format(record_format(record))


def _fail(step, message, command=None):
    where = f"history step {step}" if step is not None else "history record"
    raise ReplayError(f"{where}: {message}", step=step, command=command)


def validate(record, step=None) -> dict:
    """Check the structure of one parsed record; return it or raise ReplayError."""
    if not isinstance(record, dict):
        _fail(step, f"is a JSON {type(record).__name__}, not an object with command, params, "
                    "input and output; the file is damaged or was not written by exprmat_widgets.")
    fmt = record.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 0:
        _fail(step, f"'format' is {short(fmt)}, not a non-negative integer.")
    if fmt > FORMAT:
        _fail(step, f"was written in history format {fmt}; this exprmat_widgets reads formats "
                    f"0 to {FORMAT}. Upgrade with `pip install -U exprmat_widgets`.")
    name = record.get("command")
    if not isinstance(name, str) or not name or len(name) > 200:
        _fail(step, f"'command' is {short(name)}, not a command name.")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        _fail(step, f"({short(name)}) lacks {', '.join(missing)}; every record needs "
                    f"{', '.join(_REQUIRED)} (see docs/history_format.md).", name)
    if not isinstance(record["params"], dict):
        _fail(step, f"({short(name)}) 'params' is a JSON {type(record['params']).__name__}, "
                    "not an object.", name)
    inp = record["input"]
    if not (isinstance(inp, dict) and _is_count(inp.get("n_obs")) and _is_count(inp.get("n_vars"))
            and isinstance(inp.get("obs_names"), str)):
        _fail(step, f"({short(name)}) 'input' is {short(inp)}, not "
                    "{n_obs: int, n_vars: int, obs_names: str}.", name)
    out = record["output"]
    if not isinstance(out, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in out.items()):
        _fail(step, f"({short(name)}) 'output' is {short(out)}, not an object of fingerprint "
                    "strings.", name)
    after = record.get("after")
    if after is not None and not (isinstance(after, dict) and _is_count(after.get("n_obs"))
                                  and isinstance(after.get("obs_names"), str)):
        _fail(step, f"({short(name)}) 'after' is {short(after)}, not "
                    "{n_obs: int, n_vars: int, obs_names: str}.", name)
    return record


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62


def _parse(text, step) -> dict:
    if not isinstance(text, str):
        _fail(step, f"is a {type(text).__name__}, not a JSON string.")
    if len(text) > MAX_RECORD_CHARS:
        _fail(step, f"is {len(text):,} characters long, over the {MAX_RECORD_CHARS:,} a record "
                    "may hold; the file is damaged.")
    try:
        record = json.loads(text)
    except RecursionError:
        _fail(step, "is JSON nested too deeply to be a history record.")
    except (json.JSONDecodeError, ValueError) as e:  # ValueError: huge int literals
        _fail(step, f"is not valid JSON ({short(str(e), 120)}).")
    return validate(record, step)


def get_records(source) -> list[dict]:
    """The parsed, validated records of an AnnData, a history table or a list of records.

    Raises :class:`~exprmat_widgets.errors.ReplayError` naming the first malformed step.
    The returned dicts are shared with a cache: treat them as read-only.
    """
    if isinstance(source, pd.DataFrame):
        if "record" not in source.columns:
            raise ReplayError("a history table needs its 'record' column (from em.history()).")
        source = list(source["record"])
    stored = source.uns.get(UNS_KEY) if hasattr(source, "uns") else source
    cache = isinstance(stored, list)  # strings that live on in uns: worth remembering
    raws = raw_records(source)
    out = []
    for i, r in enumerate(raws):
        if isinstance(r, dict):
            out.append(validate(r, i))
            continue
        if not isinstance(r, str) and hasattr(r, "item"):  # numpy str scalar
            r = str(r)
        hit = _parsed.get(id(r))
        if hit is not None and hit[0] is r:
            out.append(hit[1])
            continue
        rec = _parse(r, i)
        if cache:
            _remember(r, rec)
        out.append(rec)
    return out


def _remember(text: str, record: dict) -> None:
    global _parsed_chars
    with _parsed_lock:
        if _parsed_chars > _PARSED_MAX_CHARS:
            _parsed.clear()
            _parsed_chars = 0
        _parsed[id(text)] = (text, record)
        _parsed_chars += len(text)


def append_record(adata, record: dict) -> None:
    """Append one record.  The list is replaced, not extended in place, because snapshots
    (undo, the Annotator's start copy) share the old one; a list of references copies in
    microseconds, and nothing already stored is re-parsed or re-encoded."""
    text = json.dumps(record, separators=(",", ":"))
    _remember(text, record)
    old = adata.uns.get(UNS_KEY)
    old = [] if old is None else raw_records(adata)
    adata.uns[UNS_KEY] = old + [text]


def changed_outputs(record: dict | None) -> set:
    """``{'obs:leiden', 'obs_names', ...}``: what a record says its command wrote."""
    if not record:
        return set()
    return set((record.get("output") or {}).keys())


def last_record(adata):
    raws = raw_records(adata)
    if not raws:
        return None
    return get_records(raws[-1:])[0]


def history(adata) -> pd.DataFrame:
    """The command history of ``adata`` as a table, one row a command.

    Reads ``adata.uns['commands']``.  Columns: ``command``, ``params`` (dict),
    ``format``, ``version``, ``time``, ``input``, ``output`` and ``record`` (the JSON
    text, which :func:`~exprmat_widgets.history.replay` accepts back).

    Parameters
    ----------
    adata
        Annotated data.

    Returns
    -------
    pandas.DataFrame
        One row a command, index ``step`` (0, 1, ...).
    """
    raws = raw_records(adata)
    records = get_records(raws)
    rows = [
        {
            "command": r["command"],
            "params": r["params"],
            "format": record_format(r),
            "version": r.get("version"),
            "time": r.get("time"),
            "input": r.get("input"),
            "output": r.get("output"),
            "record": text if isinstance(text, str) else json.dumps(r),
        }
        for r, text in zip(records, raws)
    ]
    cols = ["command", "params", "format", "version", "time", "input", "output", "record"]
    df = pd.DataFrame(rows, columns=cols)
    df.index.name = "step"
    return df
