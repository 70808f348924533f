"""The data as they were when an Annotator opened (its start copy), kept for Verify and for
undoing steps older than the undo checkpoints.

It is a shallow copy, so it costs nothing while it shares its arrays with the data.  Once a
command replaces them (an exclusion's new ``X``), the arrays only the start copy keeps count
in the undo budget (``em.settings.undo_max_bytes``) together with the checkpoints' (see
:func:`exprmat_widgets.history.registry.held_bytes`).  Above the budget the start copy is
written to a temporary ``.h5ad`` and let go first (the checkpoints give the quick undos, the
start copy only the rare older ones), and read back when it is needed.  An h5ad round trip
keeps every value and dtype, so fingerprints, replay and undo are unchanged by it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from pathlib import Path

from . import _compat

__all__ = ["StartCopy"]

logger = logging.getLogger("exprmat_widgets")


class StartCopy:
    """The start copy of ``adata``: ``get()`` gives it (read back when it was written out),
    ``path`` the temporary file once written (``None`` while in memory)."""

    def __init__(self, adata, start):
        from .registry import hold_start

        self._data = start
        self.path: Path | None = None
        self._dir: str | None = None
        hold_start(adata, self)

    @property
    def in_memory(self) -> bool:
        return self._data is not None

    def get(self):
        """The start data (a fresh read of the temporary file once it was written out)."""
        if self._data is not None:
            return self._data
        import anndata as ad

        return ad.read_h5ad(self.path)

    def arrays(self) -> list[tuple[int, int]]:
        """``(id, nbytes)`` of the large arrays held in memory (none once written out)."""
        return _compat.current_arrays(self._data) if self._data is not None else []

    def spill(self, held: int) -> bool:
        """Write the start copy to a temporary h5ad and let it go; ``held`` (bytes it alone
        kept) is only said in the message.  ``False`` when the file could not be written
        (the copy then stays in memory)."""
        if self._data is None:
            return False
        self._dir = tempfile.mkdtemp(prefix="exprmat-start-")
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        path = Path(self._dir) / "start.h5ad"
        try:
            self._data.write_h5ad(path)
        except Exception as e:  # a full disk, an object h5ad cannot hold: keep it in memory
            logger.warning("undo: the start copy could not be written to %s (%s); it stays in memory", path, e)
            shutil.rmtree(self._dir, ignore_errors=True)
            return False
        self._data, self.path = None, path
        logger.info("undo: the start copy (%.1f GiB the data no longer use) was written to %s to keep undo "
                    "memory under em.settings.undo_max_bytes; Verify and older undos read it from there",
                    held / 2**30, path)
        return True
