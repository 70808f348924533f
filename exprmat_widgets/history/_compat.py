"""The one place that touches AnnData internals (``__dict__``, ``_obs``, ``_uns``,
``_init_as_actual``, the aligned mappings' ``_data``).

Snapshots hold references, not copies: recorded routines replace columns, arrays and
``uns`` entries instead of writing into them, which makes a snapshot cheap and exact.
anndata has no public API to put every container of an object back at once, hence these
shims (scanpy keeps its own in ``scanpy._compat`` for the same reason).
"""

from __future__ import annotations

__all__ = ["snapshot", "restore", "shallow_copy", "become", "is_backed", "held_arrays", "MAPPINGS"]

MAPPINGS = ("obsm", "varm", "obsp", "varp", "layers")


def snapshot(adata) -> dict:
    """References to every container of ``adata`` (no data copied)."""
    return {
        "dict": dict(adata.__dict__),
        "obs": adata.obs.copy(deep=False),
        "var": adata.var.copy(deep=False),
        "uns": dict(adata.uns),
        **{m: dict(getattr(adata, m)) for m in MAPPINGS},
    }


def restore(adata, snap: dict) -> None:
    """Put ``adata`` back in the state captured by :func:`snapshot`."""
    adata.__dict__.clear()
    adata.__dict__.update(snap["dict"])
    adata._obs = snap["obs"]
    adata._var = snap["var"]
    adata._uns.clear()
    adata._uns.update(snap["uns"])
    for m in MAPPINGS:
        store = getattr(adata, m)._data
        store.clear()
        store.update(snap[m])


def shallow_copy(adata):
    """A new AnnData holding the same arrays and columns as ``adata`` (no data copied).

    Exact as a starting point for :func:`~exprmat_widgets.history.replay` for the same
    reason :func:`snapshot` is.  (Writing into ``adata``'s arrays by hand would show in
    both: take ``adata.copy()`` then.)
    """
    import anndata as ad

    with ad.settings.override(check_uniqueness=False):  # the names were accepted once already
        return ad.AnnData(
            X=adata.X,
            obs=adata.obs.copy(deep=False),
            var=adata.var.copy(deep=False),
            uns=dict(adata.uns),
            raw=adata.raw,
            **{m: dict(getattr(adata, m)) for m in MAPPINGS},
        )


def become(adata, other) -> None:
    """Make ``adata`` (in place, same Python object) hold the content of ``other``."""
    adata._init_as_actual(other)


def is_backed(adata) -> bool:
    return bool(getattr(adata, "isbacked", False))


def held_arrays(snap: dict):
    """``(id, nbytes)`` of the large arrays a snapshot refers to (X, layers, obsm, obsp,
    varm, varp, raw's X); what an undo checkpoint keeps alive."""
    seen = []
    d = snap["dict"]
    x = d.get("_X")
    if x is not None:
        seen.append(x)
    raw = d.get("_raw")
    if raw is not None and getattr(raw, "_X", None) is not None:
        seen.append(raw._X)
    for m in MAPPINGS:
        seen.extend(snap[m].values())
    return [(id(a), _nbytes(a)) for a in seen]


def current_arrays(adata):
    return held_arrays(snapshot(adata))


def _nbytes(a) -> int:
    import scipy.sparse as sp

    if sp.issparse(a):
        n = 0
        for f in ("data", "indices", "indptr", "row", "col"):
            v = getattr(a, f, None)
            if v is not None:
                n += int(v.nbytes)
        return n
    n = getattr(a, "nbytes", None)
    if isinstance(n, (int,)) and not hasattr(a, "dask"):
        return int(n)
    return 0
