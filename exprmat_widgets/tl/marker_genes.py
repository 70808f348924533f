"""Marker genes: each group (or a cell selection) against the rest or a reference group.

Results go to ``uns[key_added]`` in the layout of :func:`scanpy.tl.rank_genes_groups`
(structured arrays ``names`` / ``scores`` / ``logfoldchanges`` / ``pvals`` /
``pvals_adj`` with one field per group, ``pts`` / ``pts_rest`` tables, ``params``),
so :func:`scanpy.get.rank_genes_groups_df` and scanpy's marker plots read them.
The numbers equal scanpy's (same statistics, same p-value corrections, same
ordering of genes) - the tests check this to 1e-6.

Why the statistics are hand-written instead of calling scanpy: scanpy's
Wilcoxon test densifies the matrix in blocks of genes and sorts every value of
every gene (and, with ``tie_correct`` or a named reference, sorts again per
group), and its t-test subsets the matrix once per group and once more for each
group's "rest".  Here the Wilcoxon test ranks each gene once with the zeros
treated as one block of ties whose rank is known without sorting them, and
collects the rank sums of all groups in the same pass (see ``_wilcoxon.py``: for
float32 data each stored entry becomes one packed integer key - gene, value,
group - and one vectorised numpy sort of bounded gene chunks replaces the
per-gene sorts; a named reference is handled for all groups in one pass too);
the t-test, fold changes and fractions of expressing cells come from one pass
of per-group sums.  On 10,000 real cells this is several times faster than
scanpy with identical results (``benchmarks/markers.py``).  Logistic regression
is delegated to scanpy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from ..history import command
from ..selection import resolve_selection
from ._marker_stats import _compute_blocks, _is_dask
from ._wilcoxon import REST

__all__ = ["markers", "selection_markers"]

METHODS = ("t-test", "t-test_overestim_var", "wilcoxon", "logreg")
CORRECTIONS = ("benjamini-hochberg", "bonferroni")
_DTYPES = {"names": "O", "scores": "float32", "logfoldchanges": "float32", "pvals": "float64", "pvals_adj": "float64"}


# --------------------------------------------------------------------------- input


def _matrix(adata, layer, use_raw, where):
    """The matrix to test, its var table, and the recorded layer (None = X)."""
    if use_raw not in (True, False):
        raise ExprmatError(f"{where}: use_raw must be True or False, got {use_raw!r}.")
    if layer is not None and not isinstance(layer, str):
        raise ExprmatError(f"{where}: layer must be a layer name or 'X', got {layer!r}.")
    if layer is not None and layer not in adata.layers and layer != "X":
        raise MissingKeyError(
            f"{where}: layer {layer!r} not found (have: {sorted(adata.layers.keys())}); "
            "pass one of them, or layer='X' / None for adata.X."
        )
    if layer is not None and layer in adata.layers:
        if use_raw:
            raise ExprmatError(f"{where}: pass either layer={layer!r} or use_raw=True, not both.")
        return adata.layers[layer], adata.var, layer
    if use_raw:
        if adata.raw is None:
            raise ExprmatError(f"{where}: use_raw=True but adata.raw is empty; pass use_raw=False.")
        return adata.raw.X, adata.raw.var, None
    if adata.X is None:
        raise ExprmatError(f"{where}: adata.X is empty; pass layer='<name>' of a layer to test.")
    x = adata.X
    if type(x).__name__.endswith("Dataset"):  # h5py.Dataset, anndata's CSR/CSCDataset
        # backed (read_h5ad(backed='r')): the test reads the matrix from the file once;
        # data too large for memory belong in a lazy (dask) X, which is read in blocks
        x = x[:]
    return x, adata.var, None


def _mask_var(adata, var, mask_var, where):
    if mask_var is None:
        return None
    if isinstance(mask_var, str):
        if mask_var not in adata.var.columns:
            raise MissingKeyError(f"{where}: mask_var column {mask_var!r} not found in adata.var.")
        mask = adata.var[mask_var].to_numpy()
        if mask.dtype != bool:
            raise ExprmatError(f"{where}: var[{mask_var!r}] must be boolean to be used as mask_var.")
    else:
        mask = np.asarray(mask_var)
        if mask.dtype != bool:
            raise ExprmatError(f"{where}: mask_var must be a boolean mask over genes or a var column name.")
    if mask.shape != (var.shape[0],):
        raise ExprmatError(f"{where}: mask_var has {mask.size} entries but there are {var.shape[0]} genes.")
    if not mask.any():
        raise ExprmatError(f"{where}: mask_var selects no gene; select at least one.")
    return mask


def looks_like_counts(x) -> bool:
    """Whether the matrix ``x`` (sparse or dense) looks like raw counts: its first 20,000
    stored values are non-negative integers, some above 1.  Markers expect log-normalised
    values; the marker panel uses this to choose a layer and :func:`markers` to warn."""
    data = x.data if sp.issparse(x) else np.asarray(x)
    sample = np.ravel(data)[:20000]
    return bool(sample.size and (sample >= 0).all() and (sample == np.round(sample)).all() and sample.max() > 1)


def _all_finite(data) -> bool:
    # a float64 sum is NaN or infinite if any value is, and finite float32 values cannot
    # overflow it, so one vectorised sum (no boolean copy of the data) decides; only an
    # overflowing float64 sum needs the element-wise check
    total = np.sum(data, dtype=np.float64)
    if np.isfinite(total):
        return True
    return bool(np.isfinite(data).all()) if data.dtype.itemsize > 4 else False


def _check_values(x, where):
    data = x.data if sp.issparse(x) else np.asarray(x)
    if data.dtype.kind not in "fiub":
        raise ExprmatError(f"{where}: the expression matrix has dtype {data.dtype}; it must be numeric.")
    if data.dtype.kind == "f" and not _all_finite(data):
        raise ExprmatError(
            f"{where}: the expression matrix contains NaN or infinite values; "
            "fix or drop them (or test another layer) before looking for markers."
        )
    if looks_like_counts(x):
        warnings.warn(
            f"{where}: the data look like raw counts; markers expect log-normalised values "
            "(e.g. sc.pp.normalize_total + sc.pp.log1p, or layer='<log-normalised layer>').",
            stacklevel=4,
        )


def _gene_symbol(var, gene_symbol, where):
    if gene_symbol is None:
        return None
    if not isinstance(gene_symbol, str) or gene_symbol not in var.columns:
        raise MissingKeyError(
            f"{where}: gene_symbol column {gene_symbol!r} not found in adata.var "
            f"(have: {list(var.columns)}); pass an existing column or gene_symbol=None."
        )
    return gene_symbol


def _choice(value, allowed, name, where):
    if value not in allowed:
        raise ExprmatError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}.")
    return value


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first (the ordering scanpy uses)."""
    part = np.argpartition(scores, -n)[-n:]
    return part[np.argsort(scores[part])[::-1]]


def _expm1(adata):
    base = adata.uns.get("log1p", {}).get("base") if hasattr(adata.uns.get("log1p", {}), "get") else None
    if base is not None:
        return lambda a: np.expm1(a * np.log(base))
    return np.expm1


def _records(names: list, values, n: int, dtype) -> np.recarray:
    """The record array scanpy stores (what ``pd.DataFrame(dict(zip(names, values)))
    .to_records(index=False, column_dtypes=dtype)`` gives), one field per group, filled one
    group at a time from the iterable ``values``: no second full copy of the table exists."""
    if not names:
        return pd.DataFrame({}).to_records(index=False, column_dtypes=dtype)
    rec = np.recarray(n, dtype=[(name, dtype) for name in names])
    for name, column in zip(names, values, strict=True):
        rec[name] = column
    return rec


def _run(x, var, labels, groups_order, ref, *, method, corr_method, tie_correct, n_genes, rankby_abs, pts, expm1):
    """Compute and assemble the ``uns`` entry (without params)."""
    var_names = pd.Index(var.index.astype(str))
    cats = {c: i for i, c in enumerate(groups_order)}
    codes = np.array([cats.get(c, REST) for c in labels.categories], dtype=np.int64)
    cell_codes = np.where(labels.codes >= 0, codes[labels.codes], REST) if len(codes) else np.full(len(labels), REST)
    cell_codes = np.ascontiguousarray(cell_codes, dtype=np.int64)
    n_groups = len(groups_order)
    res = _compute_blocks(x, cell_codes, n_groups, ref, method, tie_correct, corr_method, expm1,
                          lambda b: _check_values(b, "markers"))
    if method == "logreg" and _is_dask(x):
        x = x.compute()  # scanpy's logistic regression needs the matrix in memory
    n_total = x.shape[1]
    n_top = n_total if n_genes is None or n_genes > n_total else int(n_genes)
    names = [str(g) for g in groups_order]
    entry = {}
    if pts:
        entry["pts"] = pd.DataFrame(res["pts"].T, index=var_names, columns=names)
        if ref is None:
            entry["pts_rest"] = pd.DataFrame(res["pts_rest"].T, index=var_names, columns=names)
    if method == "logreg":
        rank = {c: i for i, c in enumerate(labels.categories)}
        scores, tested = _logreg(x, cell_codes, groups_order, ref, [rank[c] for c in groups_order])
        res = dict(res, scores=scores, tested=tested)
        fields = ("names", "scores")
    else:
        fields = ("names", "scores", "logfoldchanges", "pvals", "pvals_adj")
    tested = res["tested"]
    top = [_top(np.abs(res["scores"][g]) if rankby_abs else res["scores"][g], n_top) for g in tested]
    labels_ = [names[g] for g in tested]
    genes = var_names.to_numpy()
    entry["names"] = _records(labels_, (genes[idx] for idx in top), n_top, _DTYPES["names"])
    for f in fields[1:]:
        entry[f] = _records(labels_, (res[f][g][idx] for g, idx in zip(tested, top)), n_top, _DTYPES[f])
        res[f] = None  # each groups x genes table is let go once stored (peak memory at many groups)
    return entry


def _logreg(x, cell_codes, groups_order, ref, category_order):
    """Logistic-regression scores from scanpy (on a throw-away AnnData; ours is not touched).

    The throw-away AnnData holds the cells of the tested groups (scanpy fits on those
    only, with or without a reference) under short stand-in names in their original
    category order, so scanpy fits the same rows with the same class order as on the
    real column - without copying long labels.  Returns the scores (groups x genes, gene
    order) and the groups scanpy reports: every group, the reference included, except
    for two groups, where the one binary model is reported for the first group only.
    """
    import anndata as ad
    import scanpy as sc

    keep = cell_codes >= 0
    sub = x[keep]
    if sp.issparse(sub):
        sub = sub.copy()
    n_groups = len(groups_order)
    names = [f"g{g}" for g in range(n_groups)]
    by_category = sorted(range(n_groups), key=lambda g: category_order[g])
    position = np.empty(n_groups, dtype=np.int64)
    position[by_category] = np.arange(n_groups)
    obs = pd.DataFrame(
        {"g": pd.Categorical.from_codes(position[cell_codes[keep]], categories=[names[g] for g in by_category])}
    )
    obs.index = obs.index.astype(str)
    tmp = ad.AnnData(X=sub, obs=obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(
            tmp, "g", groups=names, reference="rest" if ref is None else names[ref], method="logreg",
            use_raw=False, key_added="r", pts=False,
        )
    rec = tmp.uns["r"]["scores"]
    # scanpy stores them sorted; put them back in gene order through the names
    order_names = tmp.uns["r"]["names"]
    pos = {n: i for i, n in enumerate(tmp.var_names)}
    out = np.zeros((n_groups, x.shape[1]))
    tested = [names.index(f) for f in rec.dtype.names]
    for g in tested:
        idx = np.array([pos[n] for n in order_names[names[g]]])
        out[g, idx] = np.asarray(rec[names[g]], dtype=np.float64)
    return out, tested


def _prepare(adata, *, mask_var, layer, use_raw, method, corr_method, n_genes, key_added, gene_symbol, where):
    v.new_key("key_added", key_added)
    _choice(method, METHODS, "method", where)
    _choice(corr_method, CORRECTIONS, "corr_method", where)
    if n_genes is not None:
        v.number(n_genes, "n_genes", minimum=1, integer=True)
    x, var, layer_used = _matrix(adata, layer, use_raw, where)
    gene_symbol = _gene_symbol(adata.var, gene_symbol, where)
    mask = _mask_var(adata, var, mask_var, where)
    if mask is not None:
        x = x[:, mask]
        var = var.iloc[np.flatnonzero(mask)]
    if not _is_dask(x):  # dask arrays are checked block by block as they are read
        _check_values(x, where)
    if (x.dtype.kind in "iub"):  # integer data: work in float64 (squares of int32 would overflow)
        x = x.astype(np.float64)
    return x, var, layer_used, gene_symbol


# --------------------------------------------------------------------------- commands


def _writes(p, adata):
    return [("uns", p["key_added"])]


@command("markers", writes=_writes)
def markers(
    adata,
    groupby: str,
    mask_var=None,
    groups="all",
    reference: str = "rest",
    n_genes: int | None = None,
    rankby_abs: bool = False,
    pts: bool = True,
    key_added: str = "markers",
    method: str = "t-test",
    corr_method: str = "benjamini-hochberg",
    tie_correct: bool = False,
    gene_symbol: str | None = None,
    layer: str | None = None,
    use_raw: bool = False,
):
    """Marker genes of each group of ``obs[groupby]`` against the rest or a reference group.

    Same statistics as :func:`scanpy.tl.rank_genes_groups` (equal to 1e-6), faster.

    Reads ``obs[groupby]``, ``X`` / ``layers[layer]`` / ``raw``, ``uns['log1p']['base']``.
    Writes ``uns[key_added]``: ``names``, ``scores``, ``logfoldchanges``, ``pvals``,
    ``pvals_adj`` (structured arrays, one field per tested group, genes sorted by score),
    ``pts`` and ``pts_rest`` (DataFrames genes x groups; ``pts_rest`` only for
    ``reference='rest'``) and ``params`` (groupby, reference, method, use_raw, layer,
    corr_method, tie_correct, gene_symbol).

    Parameters
    ----------
    adata
        Annotated data with log-normalised values in ``X`` (or ``layers[layer]`` /
        ``raw``).
    groupby
        Categorical ``obs`` column with the groups (clusters, cell types).
    mask_var
        Test only these genes: a boolean ``var`` column name or a boolean mask.
    groups
        ``'all'`` or a list of groups to test (the rest is still every other cell).
    reference
        ``'rest'`` (all other cells) or a group of ``groupby`` to compare with.
    n_genes
        Keep the top ``n_genes`` of each group (default: all genes).
    rankby_abs
        Rank genes by the absolute score.
    pts
        Also store the fraction of cells expressing each gene (``pts``, ``pts_rest``).
    key_added
        ``uns`` key of the result.
    method
        ``'t-test'``, ``'t-test_overestim_var'``, ``'wilcoxon'`` or ``'logreg'``.
    corr_method
        ``'benjamini-hochberg'`` or ``'bonferroni'``.
    tie_correct
        Tie correction of the Wilcoxon test.
    gene_symbol
        ``var`` column holding gene symbols; recorded in ``params`` and used by
        :func:`~exprmat_widgets.tl.marker_filter.filter_markers` and the marker plots.
    layer
        Layer to test; ``None`` or ``'X'`` (unless a layer is named 'X') use ``adata.X``.
        Values should be log-normalised.
    use_raw
        Test ``adata.raw`` instead.
    """
    where = "markers"
    col = v.categorical(adata, groupby)
    labels = pd.Categorical(col)
    cats = [str(c) for c in labels.categories]
    if groups == "all":
        order = cats
    else:
        if isinstance(groups, (str, int)):
            groups = [groups]
        if len(groups) == 0:
            raise ExprmatError(f"{where}: groups is empty; pass 'all' or a list of groups of obs[{groupby!r}].")
        order = [str(c) for c in v.clusters_in(adata, groupby, list(groups), what="group")]
    if not isinstance(reference, str):
        raise ExprmatError(f"{where}: reference must be 'rest' or a group name, got {reference!r}.")
    if reference != "rest":
        if reference not in cats:
            raise MissingKeyError(
                f"{where}: reference {reference!r} is not a group of obs[{groupby!r}] (groups: {cats}); "
                "pass one of them or reference='rest'."
            )
        if reference not in order:
            order = order + [reference]
        if len(order) < 2:
            raise ExprmatError(f"{where}: nothing to compare with reference {reference!r}; add other groups.")
    x, var, layer_used, gene_symbol = _prepare(
        adata, mask_var=mask_var, layer=layer, use_raw=use_raw, method=method, corr_method=corr_method,
        n_genes=n_genes, key_added=key_added, gene_symbol=gene_symbol, where=where,
    )
    # cell counts from the category codes: the labels themselves are never copied per cell
    # (a fixed-width text copy is n_obs x the longest label: out of memory for long labels)
    n_per = np.bincount(labels.codes[labels.codes >= 0], minlength=len(cats))
    counts = dict(zip(cats, n_per.tolist()))
    small = [g for g in order if counts.get(g, 0) < 2]
    if small:
        raise ExprmatError(
            f"{where}: group(s) {small} of obs[{groupby!r}] have fewer than 2 cells, too few to test; "
            "leave them out with groups=[...], merge them (em.merge_clusters) or drop them (em.exclude)."
        )
    if reference == "rest":
        whole = [g for g in order if counts.get(g, 0) == adata.n_obs]
        if whole:
            raise ExprmatError(f"{where}: group {whole[0]!r} holds every cell, so there is no rest to compare with.")
    if method == "logreg" and len(order) < 2:
        raise ExprmatError(f"{where}: logistic regression needs at least two groups; pass more groups.")
    ref = order.index(reference) if reference != "rest" else None
    str_labels = pd.Categorical.from_codes(labels.codes, categories=cats)  # text categories, same codes
    entry = _run(
        x, var, str_labels, order, ref, method=method, corr_method=corr_method, tie_correct=tie_correct,
        n_genes=n_genes, rankby_abs=rankby_abs, pts=pts, expm1=_expm1(adata),
    )
    entry = {
        "params": {
            "groupby": groupby, "reference": reference, "method": method, "use_raw": bool(use_raw), "layer": layer_used,
            "corr_method": corr_method, "tie_correct": bool(tie_correct), "gene_symbol": gene_symbol,
        },
        **entry,
    }
    adata.uns[key_added] = entry


def _cells_in_polygon(adata, polygon, basis):
    from matplotlib.path import Path

    if basis is None:
        raise ExprmatError("selection_markers: a polygon needs basis='<embedding>' (e.g. 'umap').")
    try:
        pts = np.asarray(polygon, dtype=float)
    except (TypeError, ValueError):
        pts = np.zeros((0, 0))
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3 or not np.isfinite(pts).all():
        raise ExprmatError("selection_markers: polygon must be a list of at least 3 finite [x, y] vertices.")
    emb = v.embedding(adata, basis)[:, :2]
    return Path(pts).contains_points(emb)


@command("selection_markers", writes=_writes, selections=("cells",))
def selection_markers(
    adata,
    cells=None,
    key_added: str = "markers.selection",
    method: str = "wilcoxon",
    mask_var=None,
    n_genes: int | None = None,
    rankby_abs: bool = False,
    pts: bool = True,
    corr_method: str = "benjamini-hochberg",
    tie_correct: bool = False,
    gene_symbol: str | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    polygon=None,
    basis: str | None = None,
):
    """Marker genes of a cell selection against all other cells.

    ``cells`` is a selection (names, boolean mask, positions); alternatively
    ``polygon`` (vertices in the ``basis`` embedding) selects the cells inside it.
    The selection is recorded by the cells it hits, so replay is exact.

    Reads ``X`` / ``layers[layer]`` / ``raw`` (and ``obsm[basis]`` for a polygon).
    Writes ``uns[key_added]`` in the layout of :func:`markers` with a single group
    ``'selection'`` (``pts_rest`` = fraction in the other cells); ``params['groupby']``
    is None and ``uns[key_added]['selection']`` holds the boolean mask of the cells.

    Parameters
    ----------
    adata
        Annotated data with log-normalised values in ``X`` (or ``layers[layer]`` /
        ``raw``).
    cells
        The selection: cell names, a boolean mask or positions; ``None`` to take
        the cells of ``obsm[basis]`` inside ``polygon``.  At least 2 cells, and at
        least 2 left outside.
    key_added
        ``uns`` key of the result.
    method
        ``'wilcoxon'``, ``'t-test'`` or ``'t-test_overestim_var'`` (not ``'logreg'``).
    polygon, basis
        The lasso drawn (vertices ``[[x, y], ...]``) and the embedding it was drawn
        on, used when ``cells`` is ``None``.
    mask_var, n_genes, rankby_abs, pts, corr_method, tie_correct, gene_symbol, layer, use_raw
        As in :func:`markers`.
    """
    where = "selection_markers"
    if cells is None:
        if polygon is None:
            raise ExprmatError(f"{where}: pass cells=<selection> or polygon=<vertices> with basis=<embedding>.")
        mask = _cells_in_polygon(adata, polygon, basis)
    else:
        mask = resolve_selection(adata, cells, what=where, allow_empty=True)
    n_sel = int(mask.sum())
    if n_sel < 2:
        raise ExprmatError(f"{where}: the selection has {n_sel} cell(s); select at least 2 cells.")
    if n_sel > adata.n_obs - 2:
        raise ExprmatError(f"{where}: the selection leaves fewer than 2 other cells to compare with.")
    if method == "logreg":
        raise ExprmatError(f"{where}: use method 't-test', 't-test_overestim_var' or 'wilcoxon' for a selection.")
    x, var, layer_used, gene_symbol = _prepare(
        adata, mask_var=mask_var, layer=layer, use_raw=use_raw, method=method, corr_method=corr_method,
        n_genes=n_genes, key_added=key_added, gene_symbol=gene_symbol, where=where,
    )
    labels = pd.Categorical(np.where(mask, "selection", "rest"), categories=["selection", "rest"])
    entry = _run(
        x, var, labels, ["selection"], None, method=method, corr_method=corr_method,
        tie_correct=tie_correct, n_genes=n_genes, rankby_abs=rankby_abs, pts=pts, expm1=_expm1(adata),
    )
    adata.uns[key_added] = {
        "params": {
            "groupby": None, "reference": "rest", "method": method, "use_raw": bool(use_raw), "layer": layer_used,
            "corr_method": corr_method, "tie_correct": bool(tie_correct), "gene_symbol": gene_symbol,
        },
        **entry,
        "selection": mask,
    }
