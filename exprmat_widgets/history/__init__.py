"""The command history: records, fingerprints, exact replay, undo and script export.

Every state-changing routine is registered with :func:`command`.  Calling it appends
one JSON record (format 1, see ``docs/history_format.md``) to ``adata.uns['commands']``.
A command that raises leaves the AnnData and its history exactly as they were.

Modules: :mod:`.records` (format, parsing, append), :mod:`.fingerprints` (hashes and
the obs_names cache), :mod:`.registry` (the decorator, locks, undo checkpoints),
:mod:`.replay` (replay and undo), :mod:`.script` (script export) and :mod:`._compat`
(the only code touching AnnData internals).
"""

from ._compat import restore, shallow_copy, snapshot
from .fingerprints import (
    carry_obs_names_hash,
    current_format,
    fingerprint,
    fingerprint_format,
    hash_scheme,
    input_fingerprint,
    obs_names_hash,
    output_fingerprint,
    subset_rows,
)
from .records import (
    FORMAT,
    UNS_KEY,
    changed_outputs,
    get_records,
    hashed_as,
    history,
    last_record,
    raw_records,
    record_format,
)
from .registry import (
    VERSION,
    CommandSpec,
    command,
    command_lock,
    held_bytes,
    is_replaying,
    record_resolved,
    registered_commands,
    to_jsonable,
)
from .replay import replay, undo
from .script import history_to_script

__all__ = [
    "FORMAT",
    "UNS_KEY",
    "VERSION",
    "CommandSpec",
    "carry_obs_names_hash",
    "changed_outputs",
    "current_format",
    "command",
    "command_lock",
    "fingerprint",
    "fingerprint_format",
    "hash_scheme",
    "hashed_as",
    "get_records",
    "held_bytes",
    "is_replaying",
    "history",
    "history_to_script",
    "record_resolved",
    "input_fingerprint",
    "last_record",
    "obs_names_hash",
    "output_fingerprint",
    "raw_records",
    "record_format",
    "registered_commands",
    "replay",
    "restore",
    "shallow_copy",
    "snapshot",
    "subset_rows",
    "to_jsonable",
    "undo",
]
