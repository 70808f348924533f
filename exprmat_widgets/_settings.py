"""Package settings (``em.settings``): plain attributes, validated when set."""

from __future__ import annotations

from .errors import ExprmatError

__all__ = ["settings"]


class Settings:
    """Settings of exprmat_widgets.

    Attributes
    ----------
    undo_max_steps
        Undo checkpoints kept per AnnData (default 50).  Older states are rebuilt by
        replay from the start data (``em.undo(adata, start=...)``; the Annotator passes
        its start copy).
    undo_max_bytes
        Bytes of replaced arrays (an exclusion's old ``X``, layers, graphs) that the
        checkpoints of one AnnData may keep alive; oldest checkpoints are let go beyond it
        (default 2 GiB, safe on a laptop; ``None`` for no limit).
    n_threads
        Threads of the Wilcoxon marker test (``em.markers``); ``None`` (default) follows
        numba's thread count (``numba.get_num_threads()``, which scanpy uses too).  The
        results do not depend on it.
    """

    def __init__(self):
        self._undo_max_steps = 50
        self._undo_max_bytes = 2 * 2**30
        self._n_threads = None

    @property
    def undo_max_steps(self) -> int:
        return self._undo_max_steps

    @undo_max_steps.setter
    def undo_max_steps(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ExprmatError(f"undo_max_steps must be an integer >= 0, got {value!r}.")
        self._undo_max_steps = value

    @property
    def undo_max_bytes(self):
        return self._undo_max_bytes

    @undo_max_bytes.setter
    def undo_max_bytes(self, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ExprmatError(
                f"undo_max_bytes must be a number of bytes >= 0 or None, got {value!r}; "
                "e.g. em.settings.undo_max_bytes = 4 * 2**30 for 4 GiB."
            )
        self._undo_max_bytes = None if value is None else int(value)

    @property
    def n_threads(self):
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExprmatError(
                f"n_threads must be an integer >= 1 or None (numba's thread count), got {value!r}; "
                "e.g. em.settings.n_threads = 2."
            )
        self._n_threads = value

    def __repr__(self):
        return (f"Settings(undo_max_steps={self.undo_max_steps}, undo_max_bytes={self.undo_max_bytes}, "
                f"n_threads={self.n_threads})")


settings = Settings()
