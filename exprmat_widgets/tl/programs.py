"""Gene programs after :func:`~exprmat_widgets.consensus_nmf_extract_k`: the top genes of
each program (read-only) and a recorded labelling of cells by their dominant program.

Program names are the usage table's column names: ``'1'``..``'k'`` for a cNMF extraction
(program 1 has the largest total usage), the same names ``'cnmf.10:3'`` colours by.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _validate as v
from .._access import _obsm_columns
from ..errors import ExprmatError, MissingKeyError
from ..history import command
from ._categorical import previous_colors, write_categorical

__all__ = ["label_by_program", "program_top_genes"]


def _usage(adata, usage_key) -> tuple[np.ndarray, list[str]]:
    """``obsm[usage_key]`` as a float matrix (cells x programs) and its program names."""
    if not isinstance(usage_key, str) or usage_key not in adata.obsm:
        have = [str(k) for k in adata.obsm]
        raise MissingKeyError(
            f"usage_key {usage_key!r} is not in adata.obsm (have: {have}); run "
            "em.consensus_nmf(...) then em.consensus_nmf_extract_k(adata, k=...) first, which writes "
            "obsm['<key>.<k>'] (e.g. 'cnmf.10')."
        )
    value = adata.obsm[usage_key]
    names = _obsm_columns(value)
    try:
        U = np.asarray(value.to_numpy() if isinstance(value, pd.DataFrame) else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExprmatError(f"obsm[{usage_key!r}] is not numeric; pass the usage table of a cNMF run.") from None
    if U.ndim != 2 or U.shape[1] < 1:
        raise ExprmatError(f"obsm[{usage_key!r}] must be a cells x programs table (shape {U.shape}).")
    if not np.isfinite(U).all():
        raise ExprmatError(f"obsm[{usage_key!r}] has NaN or infinite usages; extract the programs again.")
    return U, names


def _writes(p, adata):
    key = p["key_added"] or f"{p['usage_key']}.program"
    return [("obs", key), ("uns", f"{key}_colors")]


@command("label_by_program", writes=_writes)
def label_by_program(adata, usage_key: str = "cnmf.10", key_added: str | None = None, min_usage: float = 0.0):
    """Label every cell by its dominant program (the column of largest usage).

    Parameters
    ----------
    adata
        Reads ``obsm[usage_key]`` (cells x programs; a DataFrame such as the one
        :func:`~exprmat_widgets.consensus_nmf_extract_k` writes, or an array).
    usage_key
        ``obsm`` key of the usages, e.g. ``'cnmf.10'``.
    key_added
        obs column to write (created or overwritten); ``None``: ``'<usage_key>.program'``.
    min_usage
        Cells whose largest usage is below this are left unlabelled (NaN); usages of a
        cNMF extraction sum to 1 per cell, so e.g. ``0.5`` keeps cells with one clear
        program.

    Returns
    -------
    pandas.Series
        Cells per program (``obs[key_added].value_counts()``).

    Notes
    -----
    Writes ``obs[key_added]`` (categorical; categories are the program names of the usage
    table, ``'1'``..``'k'`` for cNMF, in column order, programs without cells dropped) and
    ``uns['<key_added>_colors']`` (programs that were there before keep their colour).
    Ties go to the first program.
    """
    key = f"{usage_key}.program" if key_added is None else key_added
    v.new_key("key_added", key)
    U, names = _usage(adata, usage_key)
    v.number(min_usage, "min_usage", minimum=0)
    top = U.max(axis=1)
    codes = U.argmax(axis=1).astype(np.int64)
    codes[top < min_usage] = -1
    if (codes < 0).all():
        raise ExprmatError(
            f"min_usage={min_usage} leaves no cell labelled (the largest usage of any cell is "
            f"{float(top.max()):.3g}); lower min_usage."
        )
    write_categorical(adata, key, codes, names, previous_colors(adata, key))
    return adata.obs[key].value_counts()


def program_top_genes(adata, usage_key: str = "cnmf.10", n_genes: int = 10) -> pd.DataFrame:
    """The top genes of each program of a cNMF extraction (not recorded: writes nothing).

    Genes are ranked by their z-score coefficient (the ``cnmf`` package's gene spectra
    score), as :func:`~exprmat_widgets.consensus_nmf_extract_k` stores it.

    Parameters
    ----------
    adata
        Reads ``varm['<key>.coef.<k>']`` for ``usage_key = '<key>.<k>'`` (n_vars x k) and
        ``obsm[usage_key]`` (for the program names).
    usage_key
        The usage key of the extraction, e.g. ``'cnmf.10'``.
    n_genes
        Genes listed per program.

    Returns
    -------
    pandas.DataFrame
        One column per program (named as the usage table's columns), rows ``1..n_genes``
        (rank), values gene names (``var_names``).
    """
    n_genes = v.number(n_genes, "n_genes", minimum=1, integer=True)
    run, _, k = str(usage_key).rpartition(".")
    coef_key = f"{run}.coef.{k}"
    if not run or coef_key not in adata.varm:
        raise MissingKeyError(
            f"no gene coefficients varm[{coef_key!r}] for {usage_key!r}; run "
            f"em.consensus_nmf_extract_k(adata, k=..., key=...) first (it writes obsm['<key>.<k>'] and "
            "varm['<key>.coef.<k>'])."
        )
    coef = np.asarray(adata.varm[coef_key], dtype=np.float64)
    _, names = _usage(adata, usage_key)
    if coef.ndim != 2 or coef.shape[1] != len(names):
        raise ExprmatError(
            f"varm[{coef_key!r}] has {coef.shape[1] if coef.ndim == 2 else '?'} programs but obsm[{usage_key!r}] "
            f"has {len(names)}; extract the programs again."
        )
    n = min(n_genes, adata.n_vars)
    order = np.argsort(-np.nan_to_num(coef, nan=-np.inf), axis=0, kind="stable")[:n]
    genes = np.asarray(adata.var_names, dtype=object)
    return pd.DataFrame({name: genes[order[:, j]] for j, name in enumerate(names)},
                        index=pd.RangeIndex(1, n + 1, name="rank"))
