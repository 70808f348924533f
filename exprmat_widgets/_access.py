"""One data-access layer for tl, pl and widgets: where an embedding and a feature (an obs
column or a gene) are read from.  The static figures (``em.pl``) and the WebGL scatter use
the same functions, so a plot and a widget never show different data for the same name.

The embedding key is :func:`exprmat_widgets._validate.embedding_key` (re-exported here)."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validate import embedding_key  # noqa: F401 (the one embedding look-up)
from .errors import ExprmatError, MissingKeyError

__all__ = ["embedding_key", "feature", "symbol_column"]


def symbol_column(adata, gene_symbols):
    """The ``var`` column of gene symbols, validated (``None`` passes through)."""
    if gene_symbols is None:
        return None
    if gene_symbols not in adata.var.columns:
        raise MissingKeyError(
            f"gene_symbols column {gene_symbols!r} not found in adata.var (have: {list(adata.var.columns)})."
        )
    return gene_symbols


def _dense_column(mat, j) -> np.ndarray:
    col = mat[:, j]
    if sp.issparse(col):
        col = col.toarray()
    return np.asarray(col, dtype=float).ravel()


def _gene_index(adata, name, gene_symbols):
    names = adata.var_names
    if name in names:
        return names.get_loc(name), name
    cols = [gene_symbols] if gene_symbols else [c for c in ("gene", "gene_symbols", "symbol", "feature_name")
                                                 if c in adata.var.columns]
    for c in cols:
        sym = adata.var[c].astype(str).to_numpy()
        hits = np.flatnonzero(sym == name)
        if len(hits):
            return int(hits[0]), name
    return None, None


def feature(adata, name: str, *, layer=None, gene_symbols=None, use_raw: bool = False):
    """Values of an obs column or a gene for every cell.

    Parameters
    ----------
    adata
        Reads ``obs[name]``, or gene ``name`` from ``X``, ``layers[layer]`` or ``raw.X``
        (``use_raw=True``).  Writes nothing.
    name
        obs column or gene.  obs columns win over genes of the same name.  Genes are looked
        up in ``var_names`` then in the ``gene_symbols`` column (or, when it is not given, in
        a ``var['gene']`` / ``var['gene_symbols']`` / ``var['symbol']`` column).
    layer, use_raw
        Where gene expression is read; ``use_raw=False`` by default, as every core routine.

    Returns
    -------
    ``(values, kind, categories)`` with ``kind`` 'categorical' (values: a pandas
    Categorical; bool and string columns count as categorical) or 'continuous' (float array).
    """
    if not isinstance(name, str):
        raise ExprmatError(f"a feature must be an obs column or gene name (a string), got {name!r}.")
    gene_symbols = symbol_column(adata, gene_symbols)
    if name in adata.obs.columns:
        col = adata.obs[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            return col.values, "categorical", list(col.cat.categories)
        if col.dtype.kind in "biuf" and col.dtype.kind != "b":
            return col.to_numpy(dtype=float, na_value=np.nan), "continuous", None
        cat = col.astype(str).where(col.notna()).astype("category")
        return cat.values, "categorical", list(cat.cat.categories)
    src = adata.raw if use_raw and adata.raw is not None else adata
    j, _ = _gene_index(src, name, gene_symbols)
    if j is not None:
        if layer is not None and src is adata:
            if layer not in adata.layers and layer != "X":
                raise MissingKeyError(f"layer {layer!r} not found (have: {list(adata.layers.keys())}).")
            mat = adata.X if layer == "X" else adata.layers[layer]
        else:
            mat = src.X
        return _dense_column(mat, j), "continuous", None
    if not use_raw and adata.raw is not None and name in adata.raw.var_names:
        raise MissingKeyError(
            f"gene {name!r} is only in adata.raw, not in adata.var_names; pass use_raw=True to read it there."
        )
    pool = list(adata.obs.columns) + list(src.var_names[:50000])
    close = difflib.get_close_matches(name, pool, n=3)
    raise MissingKeyError(
        f"feature {name!r} is neither an obs column nor a gene"
        + (f" (also searched var[{gene_symbols!r}])" if gene_symbols else "")
        + (f"; did you mean {close}?" if close else "; check the spelling or pass gene_symbols='<var column>'.")
    )
