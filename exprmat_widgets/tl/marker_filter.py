"""Filtering a marker result (``uns[key]`` in scanpy's ``rank_genes_groups`` layout) the way
the tutorial does: fold change, adjusted p-value and the fractions of expressing cells,
skipping the filters a result has no values for (e.g. logreg: scores only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError

__all__ = ["FILTER_FIELDS", "filter_markers", "unavailable_filters"]


# the filters of :func:`filter_markers` and the result field each one reads
FILTER_FIELDS = {
    "min_logfoldchange": "logfoldchanges",
    "max_logfoldchange": "logfoldchanges",
    "max_p_adjust": "pvals_adj",
    "min_pct": "pts",
    "max_pct_reference": "pts_rest",
}


def unavailable_filters(adata, key: str = "markers") -> list[str]:
    """The filters of :func:`filter_markers` that cannot apply to the result ``uns[key]``
    because it lacks the values they read: a logistic-regression result (``method='logreg'``,
    ours or scanpy's) has scores but no fold changes or p-values; a result computed without
    ``pts`` has no fractions of expressing cells.  Reads ``uns[key]``; writes nothing.

    Parameters
    ----------
    adata
        Annotated data holding the marker result.
    key
        ``uns`` key of the result.

    Returns
    -------
    list of str
        Names of filter parameters (``'min_logfoldchange'``, ``'max_p_adjust'``, ...) that
        :func:`filter_markers` does not apply to this result.
    """
    res = adata.uns[key]
    reference = res["params"].get("reference", "rest") if "params" in res else "rest"
    pts = res.get("pts")
    has = {"logfoldchanges": "logfoldchanges" in res, "pvals_adj": "pvals_adj" in res, "pts": pts is not None,
           # with a named reference group its column of pts is the reference fraction
           "pts_rest": res.get("pts_rest") is not None
           or (pts is not None and reference != "rest" and reference in pts.columns)}
    return [name for name, field in FILTER_FIELDS.items() if not has[field]]


def filter_markers(
    adata,
    key: str = "markers",
    groupby: str | None = None,
    n_genes: int | None = None,
    min_logfoldchange: float | None = None,
    max_logfoldchange: float | None = None,
    max_p_adjust: float | None = None,
    min_pct: float | None = None,
    max_pct_reference: float | None = None,
    gene_symbols: str | None = None,
) -> pd.DataFrame:
    """Marker table of ``uns[key]`` filtered by fold change, adjusted p-value and fractions.

    Keeps genes with ``logfoldchanges > min_logfoldchange``, ``logfoldchanges <
    max_logfoldchange``, ``pvals_adj < max_p_adjust``, ``pct_nz_group > min_pct`` and
    ``pct_nz_reference < max_pct_reference`` (each only when given; strict, like
    :func:`scanpy.get.rank_genes_groups_df`), then the first ``n_genes`` of each group.
    A filter on values the result does not hold (:func:`unavailable_filters`: a logreg
    result has no fold changes or p-values) is not applied, rather than dropping every gene;
    the genes then stay in the order of their scores.

    Reads ``uns[key]`` (and ``var[gene_symbols]``); writes nothing.

    Parameters
    ----------
    adata
        Annotated data holding the marker result.
    key
        ``uns`` key written by :func:`markers` / :func:`selection_markers` (or scanpy).
    groupby
        Must match the ``groupby`` the markers were computed for, when given.
    n_genes
        Keep at most this many genes per group, after the filters (``None``: all).
    min_logfoldchange, max_logfoldchange
        Keep genes whose log2 fold change is above / below these bounds.
    max_p_adjust
        Keep genes whose adjusted p-value is below this.
    min_pct
        Keep genes expressed in more than this fraction of the group's cells.
    max_pct_reference
        Keep genes expressed in less than this fraction of the reference cells
        (the rest, or the named reference group).
    gene_symbols
        ``var`` column of gene symbols added as column ``symbol`` (default: the
        ``gene_symbol`` recorded by :func:`markers`).

    Returns
    -------
    pandas.DataFrame
        Columns ``group, names, scores, logfoldchanges, pvals, pvals_adj,
    pct_nz_group, pct_nz_reference`` (+ ``symbol``), sorted by group (in the order of
    the result) and then by score (as ranked), at most ``n_genes`` rows per group.
    With a named reference, ``pct_nz_reference`` is the reference group's fraction.
    """
    if not isinstance(key, str) or key not in adata.uns:
        raise MissingKeyError(f"filter_markers: no marker result uns[{key!r}]; "
                              "run em.markers(adata, groupby=...) first.")
    res = adata.uns[key]
    if not hasattr(res, "keys") or "names" not in res or "params" not in res:
        raise ExprmatError(f"filter_markers: uns[{key!r}] is not a marker result (no 'names' / 'params').")
    params = res["params"]
    if groupby is not None and params.get("groupby") not in (None, groupby):
        raise ExprmatError(
            f"filter_markers: uns[{key!r}] holds markers of {params.get('groupby')!r}, not {groupby!r}; "
            f"run em.markers(adata, groupby={groupby!r}, key_added=...) or pass that key."
        )
    if n_genes is not None:
        v.number(n_genes, "n_genes", minimum=1, integer=True)
    for name, val in (("min_logfoldchange", min_logfoldchange), ("max_logfoldchange", max_logfoldchange),
                      ("max_p_adjust", max_p_adjust), ("min_pct", min_pct), ("max_pct_reference", max_pct_reference)):
        if val is not None:
            v.number(val, name)
    if gene_symbols is None:
        gene_symbols = params.get("gene_symbol")
    if gene_symbols is not None and gene_symbols not in adata.var.columns:
        raise MissingKeyError(f"filter_markers: gene_symbols column {gene_symbols!r} not found in adata.var.")
    # a filter on values the result lacks would drop every gene (NaN compares false)
    skip = set(unavailable_filters(adata, key))
    if skip:
        given = {"min_logfoldchange": min_logfoldchange, "max_logfoldchange": max_logfoldchange,
                 "max_p_adjust": max_p_adjust, "min_pct": min_pct, "max_pct_reference": max_pct_reference}
        min_logfoldchange, max_logfoldchange, max_p_adjust, min_pct, max_pct_reference = (
            None if name in skip else value for name, value in given.items())
    names = res["names"]
    groups = list(names.dtype.names)
    reference = params.get("reference", "rest")
    pts = res.get("pts")
    pts_rest = res.get("pts_rest")
    frames = []
    for g in groups:
        gn = np.asarray(names[g]).astype(str)
        d = {"group": g, "names": gn}
        for f in ("scores", "logfoldchanges", "pvals", "pvals_adj"):
            d[f] = np.asarray(res[f][g], dtype=float) if f in res else np.full(gn.size, np.nan)
        df = pd.DataFrame(d)
        if pts is not None and g in pts.columns:
            df["pct_nz_group"] = pts[g].reindex(gn).to_numpy()
        else:
            df["pct_nz_group"] = np.nan
        if pts_rest is not None and g in pts_rest.columns:
            df["pct_nz_reference"] = pts_rest[g].reindex(gn).to_numpy()
        elif pts is not None and reference != "rest" and reference in pts.columns:
            df["pct_nz_reference"] = pts[reference].reindex(gn).to_numpy()
        else:
            df["pct_nz_reference"] = np.nan
        keep = np.ones(len(df), dtype=bool)
        if min_logfoldchange is not None:
            keep &= df["logfoldchanges"].to_numpy() > min_logfoldchange
        if max_logfoldchange is not None:
            keep &= df["logfoldchanges"].to_numpy() < max_logfoldchange
        if max_p_adjust is not None:
            keep &= df["pvals_adj"].to_numpy() < max_p_adjust
        if min_pct is not None:
            keep &= df["pct_nz_group"].to_numpy() > min_pct
        if max_pct_reference is not None:
            keep &= df["pct_nz_reference"].to_numpy() < max_pct_reference
        df = df[keep]
        if n_genes is not None:
            df = df.head(int(n_genes))
        frames.append(df)
    cols = ["group", "names", "scores", "logfoldchanges", "pvals", "pvals_adj", "pct_nz_group", "pct_nz_reference"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    out = out[cols]
    out["group"] = pd.Categorical(out["group"], categories=groups)
    if gene_symbols is not None:
        out["symbol"] = adata.var[gene_symbols].reindex(out["names"]).astype(str).to_numpy()
    return out.reset_index(drop=True)
