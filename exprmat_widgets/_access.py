"""One data-access layer for tl, pl and widgets: where an embedding and a feature (an obs
column, a gene or an ``obsm`` column such as a cNMF program's usage) are read from.  The
static figures (``em.pl``) and the WebGL scatter use the same functions, so a plot and a
widget never show different data for the same name.

The embedding key is :func:`exprmat_widgets._validate.embedding_key` (re-exported here)."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validate import embedding_key  # noqa: F401 (the one embedding look-up)
from .errors import ExprmatError, MissingKeyError

__all__ = ["embedding_key", "feature", "obsm_column", "obsm_feature_names", "symbol_column"]


def symbol_column(adata, gene_symbols):
    """The ``var`` column of gene symbols, validated (``None`` passes through)."""
    if gene_symbols is None:
        return None
    if gene_symbols not in adata.var.columns:
        raise MissingKeyError(
            f"gene_symbols column {gene_symbols!r} not found in adata.var (have: {list(adata.var.columns)})."
        )
    return gene_symbols


# columns exprmat, scanpy's readers and CELLxGENE keep gene symbols in, when var_names are ids
SYMBOL_COLUMNS = ("gene", "gene_symbols", "symbol", "feature_name")


def symbol_columns(adata, gene_symbols=None) -> list:
    """The ``var`` columns searched for a gene symbol: ``[gene_symbols]`` when given (checked),
    else those of :data:`SYMBOL_COLUMNS` that ``adata.var`` has."""
    if gene_symbols is not None:
        return [symbol_column(adata, gene_symbols)]
    return [c for c in SYMBOL_COLUMNS if c in adata.var.columns]


def gene_position(adata, symbol: str, gene_symbols=None):
    """Position in ``var`` of the one gene whose symbol is ``symbol`` (``None``: no such symbol).

    Reads ``adata.var[gene_symbols]`` (default: the columns of :func:`symbol_columns`, the
    first that has the symbol).  A symbol shared by several genes raises ``ExprmatError``
    naming their ``var_names``, so a figure or a widget never shows one of them silently.
    """
    for c in symbol_columns(adata, gene_symbols):
        hits = np.flatnonzero(adata.var[c].astype(str).to_numpy() == symbol)
        if len(hits) > 1:
            ids = [str(g) for g in adata.var_names[hits[:10]]]
            raise ExprmatError(
                f"gene symbol {symbol!r} (var[{c!r}]) names {len(hits)} genes: {ids}"
                f"{' ...' if len(hits) > 10 else ''}; name one of them by its id, e.g. {ids[0]!r}."
            )
        if len(hits):
            return int(hits[0])
    return None


def gene_labels(adata, gene_symbols=None) -> np.ndarray:
    """The name each gene is shown and typed by: its symbol (first column of
    :func:`symbol_columns`) when that symbol is unique and not another gene's ``var_name``,
    else its ``var_name`` (e.g. ``rna:hsa:g00042`` shown as ``CD14``).  Reads ``adata.var``."""
    names = adata.var_names.astype(str).to_numpy()
    cols = symbol_columns(adata, gene_symbols)
    if not cols:
        return names
    sym = adata.var[cols[0]]
    ok = sym.notna().to_numpy()
    sym = sym.astype(str).to_numpy()
    ok &= (sym != "") & (sym != "nan") & ~pd.Series(sym).duplicated(keep=False).to_numpy()
    ok &= ~(pd.Index(sym).isin(names) & (sym != names))
    return np.where(ok, sym, names)


def _dense_column(mat, j) -> np.ndarray:
    if sp.issparse(mat) and mat.format == "csr":
        # one pass over the column indices: half the time of scipy's column slice (0.17 s
        # against 0.35 s at 1M cells, 60M non-zeros), the cost of each colouring by a gene;
        # bincount sums duplicate entries as scipy does
        hit = np.flatnonzero(mat.indices == j)
        rows = np.searchsorted(mat.indptr, hit, side="right") - 1
        return np.bincount(rows, weights=mat.data[hit], minlength=mat.shape[0]).astype(float, copy=False)
    col = mat[:, j]
    if hasattr(col, "dask"):  # a lazy X: one gene computed block by block, not the matrix
        col = col.compute()
    if sp.issparse(col):
        col = col.toarray()
    return np.asarray(col, dtype=float).ravel()


def _gene_index(adata, name, gene_symbols):
    """Position of gene ``name``: a ``var_name``, else a symbol (:func:`gene_position`)."""
    names = adata.var_names
    if name in names:
        return names.get_loc(name), name
    j = gene_position(adata, name, gene_symbols)
    return (None, None) if j is None else (j, name)


def _obsm_columns(value) -> list[str]:
    """The names an ``obsm`` entry's columns are called by: a DataFrame's column names,
    else 0-based positions (numpy's, as ``X_pca:0`` is the first principal component)."""
    if isinstance(value, pd.DataFrame):
        return [str(c) for c in value.columns]
    ncol = value.shape[1] if getattr(value, "ndim", 0) == 2 else 0
    return [str(j) for j in range(ncol)]


def _what(adata, key, n) -> str:
    """'10 programs' for a cNMF usage table (``obsm['<run>.<k>']``), else 'n columns'."""
    run, _, k = str(key).rpartition(".")
    store = adata.uns.get(run) if run else None
    is_cnmf = k.isdigit() and hasattr(store, "keys") and "params" in store and k in store
    return f"{n} program{'s' if n != 1 else ''}" if is_cnmf else f"{n} column{'s' if n != 1 else ''}"


def _bare_key_message(adata, key) -> str:
    cols = _obsm_columns(adata.obsm[key])
    if not cols:
        return f"obsm[{key!r}] is not a table of per-cell columns; it cannot colour cells."
    shown = f"{key}:{cols[0]}" if len(cols) == 1 else (
        f"{key}:{cols[0]}, {key}:{cols[1]}" if len(cols) == 2 else f"{key}:{cols[0]} ... {key}:{cols[-1]}")
    return (f"{key} has {_what(adata, key, len(cols))}: {shown}; name one as '<obsm key>:<column>', "
            f"e.g. {key}:{cols[0]}.")


def obsm_column(adata, name: str):
    """Where ``name`` points in ``obsm``: ``(key, column label, position)`` or ``None``.

    ``'<key>:<column>'`` names a column of ``obsm[key]``: by column name for a DataFrame
    (cNMF usages ``cnmf.10`` have columns ``'1'``..``'10'``, program 1 first, as
    :func:`~exprmat_widgets.consensus_nmf_extract_k` numbers them), by 0-based position for
    an array (``X_pca:0``).  A plain column name of an ``obsm`` DataFrame counts when exactly
    one DataFrame has it.  Reads ``adata.obsm`` only; raises ``MissingKeyError`` for an obsm
    key without a column or a column that does not exist.
    """
    obsm = adata.obsm
    key, sep, col = name.rpartition(":")
    if sep and key in obsm:
        cols = _obsm_columns(obsm[key])
        if col in cols:
            return key, col, cols.index(col)
        if not cols:
            raise MissingKeyError(_bare_key_message(adata, key))
        raise MissingKeyError(
            f"obsm[{key!r}] has no column {col!r}: it has {_what(adata, key, len(cols))}, "
            f"{key}:{cols[0]} ... {key}:{cols[-1]}."
        )
    hits = [(k, name) for k in obsm if isinstance(obsm[k], pd.DataFrame) and name in _obsm_columns(obsm[k])]
    if len(hits) == 1:
        k, c = hits[0]
        return k, c, _obsm_columns(obsm[k]).index(c)
    if len(hits) > 1:
        raise MissingKeyError(
            f"{name!r} is a column of several obsm tables ({[k for k, _ in hits]}); "
            f"name one, e.g. {hits[0][0]}:{name}."
        )
    return None


def obsm_feature_names(adata, max_columns: int = 100) -> list[str]:
    """``'<key>:<column>'`` for the columns of every 2-D ``obsm`` entry (at most
    ``max_columns`` of each), as :func:`feature` accepts them; reads ``adata.obsm``."""
    out = []
    for k in adata.obsm:
        out += [f"{k}:{c}" for c in _obsm_columns(adata.obsm[k])[:max_columns]]
    return out


def _series_values(col: pd.Series):
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.values, "categorical", list(col.cat.categories)
    if col.dtype.kind in "biuf" and col.dtype.kind != "b":
        return col.to_numpy(dtype=float, na_value=np.nan), "continuous", None
    cat = col.astype(str).where(col.notna()).astype("category")
    return cat.values, "categorical", list(cat.cat.categories)


def feature(adata, name: str, *, layer=None, gene_symbols=None, use_raw: bool = False):
    """Values of an obs column, a gene or an ``obsm`` column for every cell.

    Parameters
    ----------
    adata
        Reads ``obs[name]``, or gene ``name`` from ``X``, ``layers[layer]`` or ``raw.X``
        (``use_raw=True``), or a column of ``obsm`` (see :func:`obsm_column`).  Writes nothing.
    name
        obs column, gene or ``'<obsm key>:<column>'`` (e.g. ``'cnmf.10:3'``, the usage of
        cNMF program 3; ``'X_pca:0'``).  obs columns win over genes of the same name, genes
        over ``obsm`` columns.  Genes are looked up in ``var_names`` then by symbol in the
        ``gene_symbols`` column (or, when it is not given, in a ``var['gene']`` /
        ``var['gene_symbols']`` / ``var['symbol']`` / ``var['feature_name']`` column); a
        symbol of several genes raises ``ExprmatError`` naming their ids.  A bare ``obsm``
        key is an error that lists its columns.
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
        return _series_values(adata.obs[name])
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
    hit = obsm_column(adata, name)
    if hit is not None:
        value = adata.obsm[hit[0]]
        if isinstance(value, pd.DataFrame):
            return _series_values(value.iloc[:, hit[2]])
        return _dense_column(value, hit[2]), "continuous", None
    if name in adata.obsm:
        raise MissingKeyError(_bare_key_message(adata, name))
    if not use_raw and adata.raw is not None and name in adata.raw.var_names:
        raise MissingKeyError(
            f"gene {name!r} is only in adata.raw, not in adata.var_names; pass use_raw=True to read it there."
        )
    pool = list(adata.obs.columns) + list(src.var_names[:50000])
    close = difflib.get_close_matches(name, pool, n=3)
    raise MissingKeyError(
        f"feature {name!r} is neither an obs column nor a gene nor an obsm column ('<obsm key>:<column>')"
        + (f" (also searched var[{gene_symbols!r}])" if gene_symbols else "")
        + (f"; did you mean {close}?" if close else "; check the spelling or pass gene_symbols='<var column>'.")
    )
