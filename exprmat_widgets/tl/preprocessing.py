"""Recorded preprocessing: total-count normalisation, log1p, highly variable genes, PCA
and Harmony, so a history can start at the raw counts.

Each command calls scanpy's routine (harmonypy for Harmony) and writes where scanpy writes,
so results are scanpy's exactly.  scanpy's normalisation and log1p change ``X`` in place;
here they work on a copy and put the new matrix in, because recorded commands replace
arrays instead of writing into them (what keeps undo snapshots and start copies exact).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from ..history import command
from .marker_genes import looks_like_counts

__all__ = ["normalize_total", "log1p", "highly_variable_genes", "pca", "harmony"]

logger = logging.getLogger("exprmat_widgets")


def _matrix(adata, layer):
    if layer is None:
        if adata.X is None:
            raise ExprmatError("adata.X is empty; pass layer='<name>' of a layer with the counts.")
        return adata.X
    if layer not in adata.layers:
        raise MissingKeyError(f"layer {layer!r} not found (have: {sorted(adata.layers.keys())}).")
    return adata.layers[layer]


def _put(adata, layer, x):
    if layer is None:
        adata.X = x
    else:
        adata.layers[layer] = x


def _writes_matrix(p, adata):
    layer = p.get("key_added") or p.get("layer")
    return [("layers", layer)] if layer else [("X", None)]


@command("normalize_total", writes=_writes_matrix)
def normalize_total(
    adata,
    target_sum: float | None = 1e4,
    *,
    layer: str | None = None,
    key_added: str | None = None,
    exclude_highly_expressed: bool = False,
    max_fraction: float = 0.05,
):
    """Scale each cell to ``target_sum`` total counts (scanpy's ``pp.normalize_total``).

    Writes ``X`` (or ``layers[layer]`` / ``layers[key_added]``).

    Parameters
    ----------
    adata
        Annotated data with counts in ``X`` (or ``layers[layer]``).
    target_sum
        Total per cell after scaling; ``None`` uses the median of the totals.
    layer
        Read (and, unless ``key_added``, write) this layer instead of ``X``.
    key_added
        Write the result to ``layers[key_added]`` and leave the input as it was.
    exclude_highly_expressed, max_fraction
        As in scanpy: genes above ``max_fraction`` of a cell's counts are left out
        of that cell's total.
    """
    import scanpy as sc

    x = _matrix(adata, layer)
    if target_sum is not None:
        target_sum = v.number(target_sum, "target_sum", minimum=0)
        if target_sum <= 0:
            raise ExprmatError("target_sum must be > 0 (or None for the median total).")
    if key_added is not None:
        v.new_key("key_added", key_added)
    data = x.data if sp.issparse(x) else np.asarray(x)
    if data.size and data.min() < 0:
        raise ExprmatError("normalize_total: the data have negative values; it expects counts "
                           "(pass layer='counts' if X is already transformed).")
    tmp = _bare(adata, x)
    out = sc.pp.normalize_total(tmp, target_sum=target_sum, exclude_highly_expressed=exclude_highly_expressed,
                                max_fraction=max_fraction, inplace=False)
    _put(adata, key_added or layer, out["X"])
    logger.info("normalised %d cells to %s counts each", adata.n_obs,
                "the median total" if target_sum is None else f"{target_sum:g}")


def _bare(adata, x):
    """An AnnData over a copy-free view of ``x`` for scanpy calls that read X only."""
    import anndata as ad

    with ad.settings.override(check_uniqueness=False):
        return ad.AnnData(X=x, obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names))


@command("log1p", writes=_writes_matrix)
def log1p(adata, *, layer: str | None = None, key_added: str | None = None, base: float | None = None):
    """Natural log of one plus each value (scanpy's ``pp.log1p``).

    Writes ``X`` (or ``layers[layer]`` / ``layers[key_added]``) and ``uns['log1p']``.

    Parameters
    ----------
    adata
        Annotated data, usually normalised counts in ``X``.
    layer
        Read (and, unless ``key_added``, write) this layer instead of ``X``.
    key_added
        Write the result to ``layers[key_added]`` instead.
    base
        Logarithm base; ``None`` for the natural log.
    """
    import scanpy as sc

    x = _matrix(adata, layer)
    if key_added is not None:
        v.new_key("key_added", key_added)
    if base is not None:
        base = v.number(base, "base", minimum=0)
        if base <= 1:
            raise ExprmatError("base must be > 1 (or None for the natural logarithm).")
    if "log1p" in adata.uns and layer is None and key_added is None:
        raise ExprmatError("log1p: X was already log-transformed (uns['log1p'] exists); transforming "
                           "it twice is almost always a mistake. Pass layer= or key_added= to log another matrix.")
    data = x.data if sp.issparse(x) else np.asarray(x)
    if data.size and data.min() <= -1:
        raise ExprmatError("log1p: the data have values <= -1; it expects non-negative (normalised) counts.")
    floating = x.dtype.kind == "f"
    x = x.copy() if floating else x.astype(np.float32)  # scanpy's log1p writes into its input
    out = sc.pp.log1p(x, base=base, copy=False)
    _put(adata, key_added or layer, out)
    adata.uns["log1p"] = {"base": base}


_HVG_FLAVORS = ("seurat", "cell_ranger", "seurat_v3", "seurat_v3_paper", "pearson_residuals")


def _writes_hvg(p, adata):
    cols = [c for c in ("highly_variable", "highly_variable_rank", "means", "variances", "variances_norm",
                        "dispersions", "dispersions_norm", "highly_variable_nbatches",
                        "highly_variable_intersection") if c in adata.var.columns]
    if p.get("key_added") and p["key_added"] != "highly_variable":
        cols.append(p["key_added"])
    return [("var", c) for c in cols] + [("uns", "hvg")]


@command("highly_variable_genes", writes=_writes_hvg)
def highly_variable_genes(
    adata,
    *,
    n_top_genes: int | None = 2000,
    flavor: str = "seurat",
    layer: str | None = None,
    batch_key: str | None = None,
    min_mean: float = 0.0125,
    max_mean: float = 3,
    min_disp: float = 0.5,
    span: float = 0.3,
    n_bins: int = 20,
    key_added: str = "highly_variable",
):
    """Flag highly variable genes (scanpy's ``pp.highly_variable_genes``).

    Writes ``var['highly_variable']``, scanpy's statistics columns (``means``,
    ``dispersions``, ... by flavour), ``var[key_added]`` and ``uns['hvg']``.

    Parameters
    ----------
    adata
        Annotated data: log-normalised for ``'seurat'`` / ``'cell_ranger'``, counts for
        ``'seurat_v3'`` (pass ``layer='counts'``).
    n_top_genes
        Number of genes to flag (capped at the number of genes); ``None`` uses the
        mean / dispersion cut-offs instead.
    flavor
        ``'seurat'``, ``'cell_ranger'``, ``'seurat_v3'`` or ``'seurat_v3_paper'``.
    layer
        Read this layer instead of ``X``.
    batch_key
        obs column: genes are ranked within each batch and then combined, as in scanpy.
    min_mean, max_mean, min_disp, span, n_bins
        As in scanpy.
    key_added
        The flag column also written under this name, e.g. the tutorial's
        ``'vst.all.hvg'`` (``var['highly_variable']`` is always written, as scanpy does).
    """
    import scanpy as sc

    if flavor not in _HVG_FLAVORS[:4]:
        raise ExprmatError(f"flavor must be one of {_HVG_FLAVORS[:4]}, got {flavor!r}.")
    x = _matrix(adata, layer)
    counts = looks_like_counts(x)
    if flavor.startswith("seurat_v3") and not counts:
        raise ExprmatError(
            f"highly_variable_genes(flavor={flavor!r}) needs raw counts, but "
            f"{'X' if layer is None else f'layers[{layer!r}]'} does not hold integers. Pass the "
            "counts layer (layer='counts'), or use flavor='seurat' on log-normalised data."
        )
    if not flavor.startswith("seurat_v3") and counts:
        raise ExprmatError(
            f"highly_variable_genes(flavor={flavor!r}) expects log-normalised data, but "
            f"{'X' if layer is None else f'layers[{layer!r}]'} holds raw counts. Run em.normalize_total "
            "and em.log1p first, or use flavor='seurat_v3' on counts."
        )
    if batch_key is not None:
        col = v.obs_key(adata, batch_key)
        if col.nunique() < 2:
            logger.warning("highly_variable_genes: obs[%r] has one batch; genes are ranked over all cells",
                           batch_key)
    if n_top_genes is not None:
        n_top_genes = min(v.number(n_top_genes, "n_top_genes", minimum=1, integer=True), adata.n_vars)
    v.new_key("key_added", key_added)
    tmp = _bare(adata, x)
    if batch_key is not None:
        tmp.obs[batch_key] = adata.obs[batch_key].to_numpy()
    if not flavor.startswith("seurat_v3"):
        tmp.uns["log1p"] = dict(adata.uns.get("log1p", {"base": None}))
    if flavor.startswith("seurat_v3"):
        try:
            import skmisc.loess  # noqa: F401
        except ImportError:
            raise ExprmatError(f"highly_variable_genes(flavor={flavor!r}) needs the scikit-misc package "
                               "(scanpy fits its loess): `pip install scikit-misc`, or use flavor='seurat'.") from None
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes, flavor=flavor, batch_key=batch_key,
                                min_mean=min_mean, max_mean=max_mean, min_disp=min_disp, span=span,
                                n_bins=n_bins, inplace=True)
    for c in tmp.var.columns:  # the columns scanpy writes in place, onto our var
        adata.var[c] = tmp.var[c].to_numpy()
    adata.var[key_added] = adata.var["highly_variable"].to_numpy()
    adata.uns["hvg"] = dict(tmp.uns.get("hvg", {"flavor": flavor}))
    logger.info("flagged %d highly variable genes in var[%r]", int(adata.var["highly_variable"].sum()), key_added)


def _writes_pca(p, adata):
    key = p.get("key_added") or "X_pca"
    varm_key = "PCs" if key == "X_pca" else key
    uns_key = "pca" if key == "X_pca" else key
    return [("obsm", key), ("varm", varm_key), ("uns", uns_key)]


@command("pca", writes=_writes_pca)
def pca(
    adata,
    n_comps: int = 50,
    *,
    layer: str | None = None,
    mask_var: str | None = "highly_variable",
    zero_center: bool = True,
    svd_solver: str | None = None,
    random_state: int = 0,
    key_added: str = "X_pca",
):
    """Principal components (scanpy's ``pp.pca``).

    Writes ``obsm[key_added]``, ``varm['PCs']`` and ``uns['pca']``.

    Parameters
    ----------
    adata
        Annotated data, log-normalised in ``X`` (or ``layers[layer]``).
    n_comps
        Number of components (capped at ``min(n_obs, n_genes used) - 1``).
    layer
        Read this layer instead of ``X``.
    mask_var
        Boolean var column of the genes to use (e.g. ``'highly_variable'`` or the
        tutorial's ``'vst.all.hvg'``); ``None`` for all genes.
    zero_center, svd_solver, random_state
        As in scanpy.
    key_added
        ``obsm`` key of the scores (the loadings go to ``varm['PCs']`` and the
        variance to ``uns['pca']`` for the default ``'X_pca'``, else under ``key_added``).

    Notes
    -----
    scanpy's PCA runs on one BLAS thread here, so the result is the same on any number
    of cores (scanpy's own differs in the last bits between, e.g., 2 and 8 threads).
    """
    import scanpy as sc

    x = _matrix(adata, layer)
    if looks_like_counts(x):
        logger.warning("pca: the data look like raw counts; PCA usually runs on log-normalised values "
                       "(em.normalize_total, then em.log1p)")
    n_use = adata.n_vars
    if mask_var is not None:
        if mask_var not in adata.var.columns:
            raise MissingKeyError(
                f"mask_var {mask_var!r} is not a var column (have: {list(adata.var.columns)[:10]}). Run "
                "em.highly_variable_genes first, or pass mask_var=None to use every gene."
            )
        n_use = int(np.asarray(adata.var[mask_var], dtype=bool).sum())
        if n_use < 2:
            raise ExprmatError(f"mask_var {mask_var!r} selects {n_use} gene(s); PCA needs at least 2.")
    n_comps = v.number(n_comps, "n_comps", minimum=1, integer=True)
    n_comps = min(n_comps, adata.n_obs - 1, n_use - 1)
    if n_comps < 1:
        raise ExprmatError(f"pca: {adata.n_obs} cells and {n_use} genes are too few for a PCA.")
    v.new_key("key_added", key_added)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: ARPACK's gemv sums in another order on another core count, and a
    # history made on a laptop must replay bit for bit on an 8-core server (and in CI)
    with threadpool_limits(limits=1, user_api="blas"):
        sc.pp.pca(adata, n_comps=n_comps, layer=layer, mask_var=mask_var, zero_center=zero_center,
                  svd_solver=svd_solver, random_state=random_state,
                  key_added=None if key_added == "X_pca" else key_added)


def _writes_harmony(p, adata):
    return [("obsm", p["key_added"])]


@command("harmony", writes=_writes_harmony)
def harmony(
    adata,
    batch_key: str = "sample",
    *,
    basis: str = "X_pca",
    key_added: str = "harmony",
    max_iter_harmony: int = 10,
    random_state: int = 0,
    allow_single_batch: bool = False,
):
    """Harmony integration of an embedding over a batch column (harmonypy).

    Writes ``obsm[key_added]`` (float32, cells x components).

    Parameters
    ----------
    adata
        Annotated data with a PCA (``obsm[basis]``).
    batch_key
        obs column of the batches (e.g. ``'sample'``); needs at least two.
    basis
        Embedding to correct.
    key_added
        ``obsm`` key of the corrected embedding (the tutorial's ``'harmony'``).
    max_iter_harmony, random_state
        Passed to ``harmonypy.run_harmony``.
    allow_single_batch
        With a single batch, copy ``obsm[basis]`` to ``obsm[key_added]`` instead of
        refusing (so downstream calls naming ``key_added`` work on one sample too).
    """
    import harmonypy

    col = v.obs_key(adata, batch_key)
    if col.isna().any():
        raise ExprmatError(f"harmony: obs[{batch_key!r}] has missing values; fill them first.")
    pcs = np.asarray(v.embedding(adata, basis), dtype=np.float64)
    v.new_key("key_added", key_added)
    if col.nunique() < 2:
        if allow_single_batch:
            adata.obsm[key_added] = pcs.astype(np.float32)
            return
        raise ExprmatError(
            f"harmony: obs[{batch_key!r}] has a single batch, so there is nothing to integrate; "
            f"use obsm[{basis!r}] as it is (e.g. em.knn(adata, use_rep={basis!r}))."
        )
    max_iter_harmony = v.number(max_iter_harmony, "max_iter_harmony", minimum=1, integer=True)
    ho = harmonypy.run_harmony(pcs, adata.obs[[batch_key]], batch_key, max_iter_harmony=max_iter_harmony,
                               random_state=random_state, verbose=False)
    z = np.asarray(ho.Z_corr)
    if z.shape != pcs.shape:  # harmonypy < 2 returns components x cells
        z = z.T
    adata.obsm[key_added] = np.ascontiguousarray(z, dtype=np.float32)
