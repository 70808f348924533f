"""Loaders for the small real data sets shipped in ``exprmat_widgets/data`` (see its README)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .errors import ExprmatError

__all__ = ["data_path", "pbmc68k_counts", "pbmc_2samples", "mouse_10k", "synthetic_from"]

DATA_DIR = Path(__file__).parent / "data"


def data_path(name: str) -> Path:
    """Path of a shipped file, e.g. ``data_path('pbmc68k_reduced_counts.h5ad')``.

    Parameters
    ----------
    name
        File name in ``exprmat_widgets/data``.

    Returns
    -------
    pathlib.Path
    """
    return DATA_DIR / name


def pbmc68k_counts() -> ad.AnnData:
    """700 human PBMC x 765 genes, UMI counts in ``X``, cell types in ``obs['bulk_labels']``.

    Returns
    -------
    anndata.AnnData
    """
    return ad.read_h5ad(data_path("pbmc68k_reduced_counts.h5ad"))


def pbmc_2samples() -> ad.AnnData:
    """400 PBMC (2 samples, ``obs['sample']``) x 15,792 genes, raw counts.

    Returns
    -------
    anndata.AnnData
    """
    return ad.read_h5ad(data_path("pbmc_2samples_400.h5ad"))


def mouse_10k() -> ad.AnnData:
    """10,000 mouse cells x 1,000 genes (chromosome 1), raw counts in ``X`` and ``layers['counts']``.

    Returns
    -------
    anndata.AnnData
    """
    return ad.read_h5ad(data_path("mouse_10k_chr1.h5ad"))


# --------------------------------------------------------------------------- synthetic cells

_CHUNK = 4096  # cells per kernel call
_KEEP_MAX = 0.8  # at most this share of a real cell's molecules goes into one new cell


def _kernel():
    # compiled on first use: importing the datasets module must stay cheap
    global _mix_and_sample
    if _mix_and_sample is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def binomial(g, n, q):
            if q >= 1.0:
                return n
            if n == 1:
                return 1 if g.random() < q else 0
            if n > 30:
                return g.binomial(n, q)
            # inversion of one uniform (exact)
            u = g.random()
            p = (1.0 - q) ** n
            s = p
            k = 0
            r = q / (1.0 - q)
            while u > s and k < n:
                p *= r * (n - k) / (k + 1)
                k += 1
                s += p
            return k

        @numba.njit(cache=True, nogil=True)
        def poisson(g, lam):
            if lam <= 0.0:
                return 0
            if lam >= 30.0:
                return g.poisson(lam)
            u = g.random()
            p = np.exp(-lam)
            s = p
            k = 0
            while u > s and k < 200:
                k += 1
                p *= lam / k
                s += p
            return k

        @numba.njit(cache=True, nogil=True)
        def mix_and_sample(g, indptr, indices, counts, lib, a, b, qa, qb, ea, eb, out_ind, out_val, row_nnz):
            # per new cell: walk the sorted rows a and b together; a gene's count is a binomial
            # thinning of each real cell's molecules (qa, qb) plus a Poisson top-up (ea, eb
            # molecules spread like the real cell's profile) where a real cell has too few
            n = 0
            for r in range(a.size):
                i, i1 = indptr[a[r]], indptr[a[r] + 1]
                j, j1 = indptr[b[r]], indptr[b[r] + 1]
                start = n
                while i < i1 or j < j1:
                    ca = 0
                    cb = 0
                    if j >= j1 or (i < i1 and indices[i] < indices[j]):
                        gene = indices[i]
                        ca = int(counts[i])
                        i += 1
                    elif i >= i1 or indices[j] < indices[i]:
                        gene = indices[j]
                        cb = int(counts[j])
                        j += 1
                    else:
                        gene = indices[i]
                        ca = int(counts[i])
                        cb = int(counts[j])
                        i += 1
                        j += 1
                    v = 0
                    if ca > 0:
                        v += binomial(g, ca, qa[r])
                    if cb > 0:
                        v += binomial(g, cb, qb[r])
                    v += poisson(g, ea[r] * ca / lib[a[r]] + eb[r] * cb / lib[b[r]])
                    if v > 0:
                        out_ind[n] = gene
                        out_val[n] = v
                        n += 1
                row_nnz[r] = n - start
            return n

        _mix_and_sample = mix_and_sample
    return _mix_and_sample


_mix_and_sample = None


def _counts_matrix(adata, layer):
    x = adata.layers[layer] if layer is not None else adata.X
    where = f"layers[{layer!r}]" if layer is not None else "X"
    if x is None:
        raise ExprmatError("synthetic_from: the AnnData has no X; pass layer= naming a layer of raw counts.")
    x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr(copy=True)  # sorted below, not theirs
    if x.nnz and (x.data.min() < 0 or np.any(np.mod(x.data, 1) != 0)):
        raise ExprmatError(
            f"synthetic_from: {where} does not hold raw counts (negative or non-integer values); "
            "pass the layer of counts, e.g. layer='counts'."
        )
    x.sum_duplicates()
    x.sort_indices()
    return x


def _neighbours(x, lib, n_neighbors, n_pcs, random_state):
    """Each real cell's nearest real cells in a PCA of the log-normalised counts."""
    import scanpy as sc
    from sklearn.neighbors import NearestNeighbors

    logn = sp.csr_matrix(sp.diags(1e4 / lib) @ x, dtype=np.float32)
    logn.data = np.log1p(logn.data)
    tmp = ad.AnnData(logn)
    n_comp = int(max(1, min(n_pcs, x.shape[0] - 1, x.shape[1] - 1)))
    sc.pp.pca(tmp, n_comps=n_comp, random_state=random_state)  # centred, without densifying
    k = min(n_neighbors, x.shape[0] - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(tmp.obsm["X_pca"]).kneighbors(return_distance=False)
    # drop each cell itself (a duplicated cell may list its twin first)
    own = nn == np.arange(x.shape[0])[:, None]
    rest = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(k + 1)[None, :] < k)
    return nn[rest].reshape(x.shape[0], k)


def synthetic_from(
    adata,
    n_obs: int,
    *,
    random_state: int = 0,
    n_neighbors: int = 15,
    n_pcs: int = 30,
    layer: str | None = None,
    source: str | None = None,
):
    """``n_obs`` distinct synthetic cells built from the real cells of ``adata``.

    Each new cell mixes a real cell and one of its ``n_neighbors`` nearest real
    neighbours (in a PCA of the log-normalised counts) with a uniform random weight ``w``
    and takes a library size ``L`` drawn from the real library sizes.  Its counts are a
    binomial thinning of each real cell's molecules to its share (``w * L`` and
    ``(1 - w) * L``, at most 80% of a real cell's molecules), plus Poisson counts from
    that cell's profile for the part of a share it cannot give.  Thinning keeps the
    counts a single sampling away from the expression, so the number of genes detected
    per cell stays close to the real data's (a Poisson redraw of observed counts would
    lose a quarter of them).  Unlike resampling, no two cells share their counts and
    none copies a real cell, and the cells stay near the real ones in expression space.

    Parameters
    ----------
    adata
        Real cells with raw counts in ``X`` (or ``layers[layer]``); reads ``obs``
        (categorical and string columns are carried to the new cells) and ``var``.
    n_obs
        Number of cells to make (a million is fine: they are generated in chunks by a
        compiled kernel, with no intermediate copy of the result).
    random_state
        Seed; the same seed gives the same cells.
    n_neighbors, n_pcs
        Neighbours a real cell is mixed with, and the PCA they are found in.
    layer
        Layer of raw counts to use instead of ``X``.
    source
        Name of the data in the label (default: ``uns['synthetic']['source']`` of a
        synthetic input, or ``'data'``).

    Returns
    -------
    AnnData with CSR float32 counts (sorted indices) in ``X``; ``obs_names`` ``syn0``,
    ``syn1``, ...; ``obs['source_cell']`` (the real cell mixed in with the larger
    weight), ``obs['partner_cell']`` (the other one), ``obs['mix_weight']`` (the first's
    weight, >= 0.5), the carried obs columns,
    ``obs['n_counts']``; ``var`` copied; ``uns['synthetic']`` with ``label``
    (``'synthetic from <source>'``), ``source``, ``n_source_cells``, ``n_neighbors``
    and ``random_state``.
    """
    import pandas as pd

    if isinstance(n_obs, bool) or not isinstance(n_obs, (int, np.integer)) or n_obs < 1:
        raise ExprmatError(f"synthetic_from: n_obs must be a positive integer, got {n_obs!r}.")
    n_obs = int(n_obs)
    if not adata.obs_names.is_unique:
        raise ExprmatError(
            "synthetic_from: the obs_names are not unique, so obs['source_cell'] could not name "
            "the real cells; make them unique first: `adata.obs_names_make_unique()`."
        )
    x = _counts_matrix(adata, layer)
    lib = np.asarray(x.sum(axis=1)).ravel()
    real = np.flatnonzero(lib > 0)
    if real.size < 2:
        raise ExprmatError(
            f"synthetic_from: only {real.size} cell(s) have counts; at least 2 are needed to mix. "
            "Pass data with more cells."
        )
    x, lib = x[real], lib[real]
    x.sort_indices()
    nn = _neighbours(x, lib, n_neighbors, n_pcs, random_state)
    indptr = x.indptr.astype(np.int64)
    indices = x.indices.astype(np.int32)
    counts = x.data.astype(np.float64)
    lengths = np.diff(indptr)

    rng = np.random.default_rng(random_state)
    a = rng.integers(0, real.size, n_obs)
    b = nn[a, rng.integers(0, nn.shape[1], n_obs)]
    w = rng.random(n_obs)
    size = lib[rng.integers(0, real.size, n_obs)]
    # each real cell gives its share of the new library by thinning its molecules, which
    # keeps the counts one Poisson layer away from the expression; only what a real cell
    # cannot give (its share is above _KEEP_MAX of its molecules) is a Poisson draw
    # from its profile, and the cap keeps every new cell from copying a real one
    share_a, share_b = w * size, (1.0 - w) * size
    qa = np.minimum(_KEEP_MAX, share_a / lib[a])
    qb = np.minimum(_KEEP_MAX, share_b / lib[b])
    ea = share_a - qa * lib[a]
    eb = share_b - qb * lib[b]

    kernel = _kernel()
    out_indptr = np.zeros(n_obs + 1, dtype=np.int64)
    capacity = 0
    data = np.empty(0, dtype=np.float32)
    cols = np.empty(0, dtype=np.int32)
    nnz = 0
    for start in range(0, n_obs, _CHUNK):
        s = slice(start, min(n_obs, start + _CHUNK))
        ca, cb = a[s], b[s]
        bound = int(lengths[ca].sum() + lengths[cb].sum())
        ind = np.empty(bound, dtype=np.int32)
        val = np.empty(bound, dtype=np.float32)
        row_nnz = np.empty(ca.size, dtype=np.int64)
        n = kernel(rng, indptr, indices, counts, lib, ca, cb, qa[s], qb[s], ea[s], eb[s], ind, val, row_nnz)
        if nnz + n > capacity:
            # first chunk: room for all cells at this chunk's density (+5%); grow rarely after
            per_cell = max(n / ca.size, 1.0)
            capacity = max(int(per_cell * n_obs * 1.05) + 1024, nnz + n, int(capacity * 1.25))
            data = _grown(data, nnz, capacity)
            cols = _grown(cols, nnz, capacity)
        data[nnz:nnz + n] = val[:n]
        cols[nnz:nnz + n] = ind[:n]
        out_indptr[s.start + 1:s.stop + 1] = nnz + np.cumsum(row_nnz)
        nnz += n
        del ind, val
    data.resize(nnz, refcheck=False)  # shrinks in place (realloc), no second copy
    cols.resize(nnz, refcheck=False)
    X = sp.csr_matrix((data, cols, out_indptr), shape=(n_obs, x.shape[1]), copy=False)
    X.has_sorted_indices = True

    src_obs = adata.obs.iloc[real]
    heavier = np.where(w >= 0.5, a, b)
    obs = pd.DataFrame(index=pd.Index([f"syn{i}" for i in range(n_obs)], dtype=object))
    for k in src_obs.columns:
        col = src_obs[k]
        if isinstance(col.dtype, pd.CategoricalDtype):
            obs[k] = pd.Categorical.from_codes(col.cat.codes.to_numpy()[heavier], dtype=col.dtype)
        elif col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            obs[k] = pd.Categorical(col.to_numpy()[heavier])
    names = pd.Index(src_obs.index)
    obs["source_cell"] = pd.Categorical.from_codes(heavier, categories=names.astype(str))
    obs["partner_cell"] = pd.Categorical.from_codes(np.where(w >= 0.5, b, a), categories=names.astype(str))
    obs["mix_weight"] = np.maximum(w, 1.0 - w).astype(np.float32)
    obs["n_counts"] = np.asarray(X.sum(axis=1)).ravel().astype(np.float32)
    if source is None:
        source = (adata.uns.get("synthetic") or {}).get("source", "data")
    out = ad.AnnData(X=X, obs=obs, var=adata.var.copy())
    out.uns["synthetic"] = {
        "label": f"synthetic from {source}",
        "source": source,
        "n_source_cells": int(real.size),
        "n_neighbors": int(nn.shape[1]),
        "random_state": int(random_state),
    }
    return out


def _grown(arr, used, capacity):
    new = np.empty(capacity, dtype=arr.dtype)
    new[:used] = arr[:used]
    return new
