"""Read-only summaries of a marker result for display (the marker panel, figures).

Nothing here writes to the AnnData or the history:

* :func:`marker_data_options` / :func:`default_marker_data` - which matrix to test
  (``'X'``, a layer, ``'raw'``) and the default choice (not raw counts);
* :func:`marker_groups` - the groups of cells a result compares (its ``groupby``
  groups and the rest, or the selection and the rest);
* :func:`marker_group_means` - mean expression and fraction of expressing cells of
  some genes in those groups, from the same one-pass :func:`group_stats` the
  t-test uses;
* :func:`marker_violins` - per-group distributions (smoothed histograms on one grid
  per gene, quartiles) of some genes, for stacked violins;
* :func:`marker_cell_values` - per-cell values of some genes, cells ordered by group
  and downsampled to a bound, for tracks plots;
* :func:`marker_result_stale` - whether the groups changed since the result was
  computed (history fingerprints of ``obs[groupby]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ExprmatError, MissingKeyError
from ..history import current_format, fingerprint, get_records, hashed_as
from ._wilcoxon import REST, group_stats
from .marker_genes import _is_dask, _matrix, looks_like_counts

__all__ = [
    "default_marker_data",
    "latest_marker_key",
    "marker_data_args",
    "marker_data_options",
    "marker_group_means",
    "binned_density",
    "marker_cell_values",
    "marker_groups",
    "marker_result_stale",
    "marker_violins",
]


def marker_data_options(adata) -> list[str]:
    """The matrices :func:`markers` can test: ``'X'``, the layers, and ``'raw'`` when
    ``adata.raw`` is set.  Reads ``layers`` and ``raw``.

    Parameters
    ----------
    adata
        Annotated data.

    Returns
    -------
    list of str
        ``['X', <layers>..., 'raw']``.
    """
    out = ["X"] + [str(k) for k in adata.layers if k != "X"]
    if adata.raw is not None:
        out.append("raw")
    return out


def marker_data_args(choice: str) -> dict:
    """``layer=`` / ``use_raw=`` arguments of :func:`markers` for a choice of
    :func:`marker_data_options`.

    Parameters
    ----------
    choice
        ``'X'`` (or ``None``), a layer name, or ``'raw'``.

    Returns
    -------
    dict
        ``{'layer': ..., 'use_raw': ...}``.
    """
    if choice == "raw":
        return {"layer": None, "use_raw": True}
    if choice in (None, "X"):
        return {"layer": None, "use_raw": False}
    return {"layer": choice, "use_raw": False}


def _sample_counts(x) -> bool:
    if x is None:
        return True
    if _is_dask(x):  # a few rows are enough to tell, and avoid reading the whole array
        x = x[: min(200, x.shape[0])].compute()
    return looks_like_counts(x)


def default_marker_data(adata) -> str:
    """The matrix the marker panel offers first: ``'X'`` unless X looks like raw counts
    (:func:`looks_like_counts`); then the first layer that does not (layers named like
    ``log*`` first), then ``'raw'``, else ``'X'`` (and the routine's warning says why).
    Reads ``X``, ``layers``, ``raw`` (a sample of rows of dask arrays).

    Parameters
    ----------
    adata
        Annotated data.

    Returns
    -------
    str
        A choice of :func:`marker_data_options`.
    """
    if not _sample_counts(adata.X):
        return "X"
    layers = [k for k in marker_data_options(adata) if k not in ("X", "raw")]
    layers.sort(key=lambda k: 0 if "log" in k.lower() else 1)
    for k in layers:
        if not _sample_counts(adata.layers[k]):
            return k
    if adata.raw is not None and not _sample_counts(adata.raw.X):
        return "raw"
    return "X"


def _result(adata, key):
    if not isinstance(key, str) or key not in adata.uns:
        raise MissingKeyError(f"no marker result uns[{key!r}]; run em.markers(adata, groupby=...) first.")
    res = adata.uns[key]
    if not _is_result(res):
        raise ExprmatError(f"uns[{key!r}] is not a marker result (no 'names' / 'params').")
    return res


def _is_result(value) -> bool:
    return hasattr(value, "keys") and "names" in value and "params" in value


def latest_marker_key(adata) -> str | None:
    """The ``uns`` key of the marker result written last by a recorded command (still
    present), else ``'markers'`` or the first marker result in ``uns``, else None.
    Reads ``uns['commands']`` and ``uns``.

    Parameters
    ----------
    adata
        Annotated data.

    Returns
    -------
    str or None
        An ``uns`` key holding a marker result, or None when there is none.
    """
    for r in reversed(get_records(adata)):
        for label in (r.get("output") or {}):
            k = label[4:] if label.startswith("uns:") else None
            if k is not None and k in adata.uns and _is_result(adata.uns[k]):
                return k
    keys = [k for k in adata.uns if _is_result(adata.uns[k])]
    return "markers" if "markers" in keys else (keys[0] if keys else None)


def marker_groups(adata, key: str) -> dict:
    """The groups of cells the result ``uns[key]`` compares, as ``{name: boolean mask}``:
    the tested groups of ``obs[groupby]`` (and ``'rest'``, the other cells, when the
    reference is the rest and some are left), or the selection of
    :func:`selection_markers` and ``'rest'``.  Empty when the cells no longer match
    (the selection mask has another length, ``groupby`` is gone).

    Reads ``uns[key]['params']``, ``uns[key]['names']``, ``uns[key]['selection']``,
    ``obs[groupby]``.

    Parameters
    ----------
    adata
        Annotated data holding the marker result.
    key
        ``uns`` key of a result of :func:`markers` or :func:`selection_markers`.

    Returns
    -------
    dict
        ``{group name: boolean mask over cells}``, disjoint.
    """
    res = _result(adata, key)
    params = res["params"]
    groupby = params.get("groupby")
    if groupby is None:
        mask = res.get("selection")
        mask = None if mask is None else np.asarray(mask, dtype=bool)
        if mask is None or mask.shape != (adata.n_obs,):
            return {}
        return {str(res["names"].dtype.names[0]): mask, "rest": ~mask}
    if groupby not in adata.obs.columns:
        return {}
    col = adata.obs[groupby].astype(str).to_numpy()
    out = {}
    for g in (str(n) for n in res["names"].dtype.names):
        m = col == g
        if m.any():
            out[g] = m
    reference = str(params.get("reference", "rest"))
    if reference != "rest" and reference not in out and (col == reference).any():
        out[reference] = col == reference
    if out and reference == "rest":
        rest = ~np.logical_or.reduce(list(out.values()))
        if rest.any():  # some groups against the rest: show the rest too
            out["rest"] = rest
    return out


def marker_group_means(adata, genes, groups: dict, *, layer: str | None = None, use_raw: bool = False):
    """Mean expression and fraction of expressing cells (value != 0) of ``genes`` in each
    group of cells, from the matrix :func:`markers` tests (same ``layer`` / ``use_raw``).
    Reads ``X`` / ``layers[layer]`` / ``raw``; writes nothing.

    Parameters
    ----------
    adata
        Annotated data.
    genes
        Gene names (``var_names``, or ``raw.var_names`` with ``use_raw``).
    groups
        ``{name: boolean mask over cells}``, disjoint (e.g. :func:`marker_groups`).

    layer
        Read this layer instead of ``X``.
    use_raw
        Read ``adata.raw`` instead of ``X``.

    Returns
    -------
    mean, frac : numpy.ndarray
        Arrays ``len(groups) x len(genes)`` in the order given: the mean value and
        the fraction of cells with a non-zero value.
    """
    sub, codes = _genes_and_codes(adata, genes, groups, layer, use_raw, "marker_group_means")
    n = len(groups)
    s, _q, nz = group_stats(sub, codes, n)
    sizes = np.maximum(np.bincount(codes[codes >= 0], minlength=n), 1).astype(float)[:, None]
    return s[:n] / sizes, nz[:n] / sizes


def _genes_and_codes(adata, genes, groups: dict, layer, use_raw, where, dense: bool = False):
    """The columns of ``genes`` in the matrix the markers test (float, dense when asked)
    and each cell's group code (``REST`` for cells in no group)."""
    x, var, _ = _matrix(adata, layer, use_raw, where)
    genes = [str(g) for g in genes]
    idx = pd.Index(var.index.astype(str)).get_indexer(genes)
    if (idx < 0).any():
        missing = [g for g, i in zip(genes, idx) if i < 0][:5]
        raise MissingKeyError(f"{where}: genes not in var_names: {missing}; pass genes of this AnnData.")
    codes = np.full(adata.n_obs, REST, dtype=np.int64)
    for i, m in enumerate(groups.values()):
        m = np.asarray(m, dtype=bool)
        if m.shape != (adata.n_obs,):
            raise ExprmatError(f"{where}: a group mask has {m.size} entries for {adata.n_obs} cells.")
        if (codes[m] != REST).any():
            raise ExprmatError(f"{where}: the groups overlap; pass disjoint groups of cells.")
        codes[m] = i
    sub = x[:, idx]
    if _is_dask(sub):
        sub = sub.compute()
    if sub.dtype.kind in "iub":
        sub = sub.astype(np.float64)
    if dense:
        sub = np.asarray(sub.toarray() if hasattr(sub, "toarray") else sub, dtype=np.float64)
    return sub, codes


def binned_density(values, lo: float, hi: float, bins: int = 48, sigma: float = 1.5) -> np.ndarray:
    """Density of ``values`` on ``bins`` equal bins over ``[lo, hi]``: the histogram smoothed
    by a Gaussian of ``sigma`` bins and scaled to a peak of 1 (all zeros for no values).
    One numpy pass, so cheap at any number of cells.  Reads no AnnData.

    Parameters
    ----------
    values
        1-D values (e.g. one gene in one group of cells).
    lo, hi
        The range of the bins (``hi > lo``).
    bins
        Number of bins.
    sigma
        Width of the smoothing, in bins (0: the plain histogram).

    Returns
    -------
    numpy.ndarray
        ``bins`` values in ``[0, 1]``.
    """
    from scipy.ndimage import gaussian_filter1d

    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        return np.zeros(bins)
    h, _ = np.histogram(values, bins=bins, range=(lo, hi))
    d = gaussian_filter1d(h.astype(float), sigma, mode="constant") if sigma > 0 else h.astype(float)
    return d / d.max() if d.max() > 0 else d


def marker_violins(adata, genes, groups: dict, *, layer: str | None = None, use_raw: bool = False,
                   bins: int = 48, sigma: float = 1.5) -> dict:
    """Distributions of ``genes`` in each group of cells, for stacked violins: per gene one
    grid of ``bins`` bins from its minimum to its maximum over the grouped cells, and per
    group and gene the smoothed histogram on it (:func:`binned_density`, peak 1: violins
    of equal width, scanpy's ``scale='width'``) and the quartiles.  Every cell is used
    (a histogram is one pass per gene, so no downsampling is needed).
    Reads ``X`` / ``layers[layer]`` / ``raw``; writes nothing.

    Parameters
    ----------
    adata
        Annotated data.
    genes
        Gene names (``var_names``, or ``raw.var_names`` with ``use_raw``).
    groups
        ``{name: boolean mask over cells}``, disjoint (e.g. :func:`marker_groups`).
    layer
        Read this layer instead of ``X``.
    use_raw
        Read ``adata.raw`` instead of ``X``.
    bins
        Number of bins of each gene's grid.
    sigma
        Smoothing of the histograms, in bins.

    Returns
    -------
    dict
        ``lo``, ``hi`` (per gene, the grid's ends), ``density`` (groups x genes x bins),
        ``q1``, ``median``, ``q3``, ``mean`` (groups x genes) and ``n`` (cells per group).
    """
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ExprmatError(f"marker_violins: bins must be an integer >= 2, got {bins!r}.")
    sub, codes = _genes_and_codes(adata, genes, groups, layer, use_raw, "marker_violins", dense=True)
    n_groups, n_genes = len(groups), sub.shape[1]
    inside = codes >= 0
    vals = sub[inside]
    lo = vals.min(axis=0) if vals.size else np.zeros(n_genes)
    hi = vals.max(axis=0) if vals.size else np.ones(n_genes)
    hi = np.where(hi > lo, hi, lo + 1.0)  # a constant gene gets a grid of width 1
    dens = np.zeros((n_groups, n_genes, int(bins)))
    q = np.full((3, n_groups, n_genes), np.nan)
    mean = np.full((n_groups, n_genes), np.nan)
    for i in range(n_groups):
        part = sub[codes == i]
        if not len(part):
            continue
        q[:, i] = np.quantile(part, [0.25, 0.5, 0.75], axis=0)
        mean[i] = part.mean(axis=0)
        for j in range(n_genes):
            dens[i, j] = binned_density(part[:, j], lo[j], hi[j], int(bins), sigma)
    return {"lo": lo, "hi": hi, "density": dens, "q1": q[0], "median": q[1], "q3": q[2], "mean": mean,
            "n": np.bincount(codes[inside], minlength=n_groups)}


def marker_cell_values(adata, genes, groups: dict, *, layer: str | None = None, use_raw: bool = False,
                       max_cells: int = 500, min_per_group: int = 3, random_state: int = 0) -> dict:
    """Per-cell values of ``genes`` for a tracks plot: the cells of each group in turn (in
    their order in the data), at most about ``max_cells`` in all.  Larger data are
    downsampled without replacement, each group keeping its share of the cells (and at
    least ``min_per_group``, or all it has), so the plot stays small at any size.
    Reads ``X`` / ``layers[layer]`` / ``raw``; writes nothing.

    Parameters
    ----------
    adata
        Annotated data.
    genes
        Gene names (``var_names``, or ``raw.var_names`` with ``use_raw``).
    groups
        ``{name: boolean mask over cells}``, disjoint (e.g. :func:`marker_groups`).
    layer
        Read this layer instead of ``X``.
    use_raw
        Read ``adata.raw`` instead of ``X``.
    max_cells
        Bound on the cells returned (up to ``min_per_group`` per group more).
    min_per_group
        Cells kept of every non-empty group however small its share.
    random_state
        Seed of the downsampling.

    Returns
    -------
    dict
        ``cells`` (positions in ``adata``), ``group`` (each cell's group index),
        ``values`` (cells x genes), ``sizes`` (cells per group in the data) and
        ``sampled`` (whether cells were left out).
    """
    for name, val, low in (("max_cells", max_cells, 1), ("min_per_group", min_per_group, 0)):
        if isinstance(val, bool) or int(val) != val or val < low:
            raise ExprmatError(f"marker_cell_values: {name} must be an integer >= {low}, got {val!r}.")
    sub, codes = _genes_and_codes(adata, genes, groups, layer, use_raw, "marker_cell_values")
    n_groups = len(groups)
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups)
    total = int(sizes.sum())
    rng = np.random.default_rng(random_state)
    cells, labels = [], []
    for i in range(n_groups):
        members = np.flatnonzero(codes == i)
        if total > max_cells:
            keep = max(int(round(max_cells * members.size / total)), min(min_per_group, members.size))
            keep = min(keep, members.size)
            members = np.sort(rng.choice(members, size=keep, replace=False))
        cells.append(members)
        labels.append(np.full(members.size, i, dtype=np.int64))
    cells = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    part = sub[cells]
    values = np.asarray(part.toarray() if hasattr(part, "toarray") else part, dtype=np.float64)
    return {"cells": cells, "group": np.concatenate(labels) if labels else np.zeros(0, np.int64),
            "values": values, "sizes": sizes, "sampled": bool(cells.size < total)}


_fingerprinted: list = []  # [(result, ids of its entries, fingerprint)], newest first


def result_identity(res) -> tuple:
    """The ids of a marker result's entries: equal while no entry was replaced."""
    return tuple((str(k), id(res[k])) for k in res)


def _result_fingerprint(res) -> str:
    """``fingerprint(res)``, remembered for the last few results: a panel asks after every
    click, and hashing a genes x groups result of names takes most of a second.  A result
    whose entries were replaced (new arrays) is hashed again."""
    ids = (result_identity(res), current_format())
    for r, i, fp in list(_fingerprinted):
        if r is res and i == ids:
            return fp
    fp = fingerprint(res)
    _fingerprinted[:] = [(res, ids, fp)] + [e for e in _fingerprinted if not (e[0] is res and e[1] == ids)][:3]
    return fp


def _last_writer(records, label, stop=None):
    for i in range(len(records) if stop is None else stop, 0, -1):
        if label in (records[i - 1].get("output") or {}):
            return i - 1
    return None


def marker_result_stale(adata, key: str) -> str | None:
    """Why the result ``uns[key]`` no longer matches the data, or None.

    A result of :func:`markers` is stale when ``obs[groupby]`` changed after it was
    computed: the history record that wrote the result follows the record that last
    wrote ``obs[groupby]``, whose output fingerprint is compared with the column now
    (a column made outside the history: any later recorded change of the column or of
    the cells counts).  A result of :func:`selection_markers` is stale when the cells
    changed.  Results written outside the history (e.g. scanpy's) are not judged.

    Reads ``uns[key]``, ``obs[groupby]``, ``uns['commands']``; writes nothing.

    Parameters
    ----------
    adata
        Annotated data holding the marker result.
    key
        ``uns`` key of a result of :func:`markers` or :func:`selection_markers`.

    Returns
    -------
    str or None
        The reason, e.g. ``"obs['leiden'] changed since these markers were computed"``,
        or None when the result still matches (or its provenance is unknown).
    """
    res = _result(adata, key)
    groupby = res["params"].get("groupby")
    records = get_records(adata)
    i = _last_writer(records, f"uns:{key}")
    if groupby is None:
        mask = res.get("selection")
        if mask is not None and np.asarray(mask).shape != (adata.n_obs,):
            return f"the cells changed since these markers were computed ({len(mask)} then, {adata.n_obs} now)"
        if i is not None and "obs_names" in (records[i].get("input") or {}):
            from ..history import obs_names_hash

            if records[i]["input"]["obs_names"] != obs_names_hash(adata):
                return "the cells changed since these markers were computed"
        return None
    if groupby not in adata.obs.columns:
        return f"obs[{groupby!r}] no longer exists"
    if i is None:
        return None
    with hashed_as(records[i]):  # as that record hashed it
        if records[i]["output"][f"uns:{key}"] != _result_fingerprint(res):
            return None  # not written by the recorded command: its provenance is unknown
    label = f"obs:{groupby}"
    j = _last_writer(records, label, stop=i)
    changed = f"obs[{groupby!r}] changed since these markers were computed"
    if j is not None:
        with hashed_as(records[j]):
            return changed if records[j]["output"][label] != fingerprint(adata.obs[groupby]) else None
    later = _last_writer(records, label)
    moved = _last_writer(records, "obs_names")
    if (later is not None and later > i) or (moved is not None and moved > i):
        return changed
    return None
