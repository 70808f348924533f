"""Composition tables: the share of each minor category (e.g. cell type) within each
major category (e.g. sample)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _validate as v
from ..errors import ExprmatError

__all__ = ["proportion"]


def proportion(adata, major: str, minor: str, normalize: str | None = "index") -> pd.DataFrame:
    """Cross-table of ``obs[major]`` (rows) by ``obs[minor]`` (columns).

    Parameters
    ----------
    adata
        Reads ``obs[major]`` and ``obs[minor]``; writes nothing (not recorded).
    major, minor
        Categorical obs columns, e.g. ``major='sample', minor='cell.type'``.
    normalize
        ``'index'``: each row sums to 1 (share of each cell type per sample);
        ``'columns'``: each column sums to 1; ``None``: cell counts.

    Returns
    -------
    pandas.DataFrame
        Index named ``major`` and columns named ``minor``, in category order;
        cells with a missing value in either column are left out.
    """
    if normalize not in ("index", "columns", None):
        raise ExprmatError(f"normalize must be 'index', 'columns' or None, got {normalize!r}.")
    a = v.categorical(adata, major)
    b = v.categorical(adata, minor)
    ca, cb = a.cat.codes.to_numpy(np.int64), b.cat.codes.to_numpy(np.int64)
    na, nb = a.cat.categories.size, b.cat.categories.size
    ok = (ca >= 0) & (cb >= 0)
    table = np.bincount(ca[ok] * nb + cb[ok], minlength=na * nb).reshape(na, nb)
    rows, cols = table.sum(axis=1) > 0, table.sum(axis=0) > 0  # categories without cells
    table = table[rows][:, cols]
    if table.size == 0:
        raise ExprmatError(f"proportion: no cell has both obs[{major!r}] and obs[{minor!r}] set.")
    counts = pd.DataFrame(
        table,
        index=pd.Index(a.cat.categories[rows], name=major),
        columns=pd.Index(b.cat.categories[cols], name=minor),
    )
    if normalize is None:
        return counts
    axis = 1 if normalize == "index" else 0
    return counts.div(counts.sum(axis=axis), axis=1 - axis).astype(float)
