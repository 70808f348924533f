"""Consensus NMF (cNMF; Kotliar et al., eLife 2019) over several k, and extraction of one k.

:func:`consensus_nmf` selects highly variable genes (HVGs), scales their counts
to unit variance, factorises them ``n_iter`` times per ``k`` (scikit-learn's
coordinate-descent NMF, Frobenius loss, random init, run by the numba kernels
of ``_nmf_kernels``; see ``_nmf_engine``),
pools the spectra of the replicates, drops outlier components by local density,
clusters the rest into ``k`` consensus programs with k-means and refits usages.
It stores what extraction needs in ``uns[key_added]`` and the per-k stability
and error in ``uns[key_added + '.stats']``.

:func:`consensus_nmf_extract_k` turns one ``k`` into usages per cell
(``obsm``), spectra in TPM units and z-score coefficients for all genes
(``varm``) without factorising again.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _progress as prog
from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from ..history import command, fingerprint
from . import _nmf_engine as eng

__all__ = ["consensus_nmf", "consensus_nmf_extract_k"]

_HVG_HELP = (
    "Make one first, e.g. `sc.pp.highly_variable_genes(adata, flavor='seurat_v3', layer='counts', "
    "n_top_genes=2000)` then `adata.var[{name!r}] = adata.var['highly_variable']`, or pass hvg=None to "
    "let consensus_nmf pick n_top_genes genes itself."
)


# --------------------------------------------------------------------------- input checks


def _layer(adata, name, what):
    """The matrix named ``name`` ('X' or None: adata.X; else a layer), validated."""
    if name is None or name == "X":
        X = adata.X
        label = "adata.X"
    else:
        if not isinstance(name, str):
            raise ExprmatError(f"{what} must name a layer (a string), got {name!r}.")
        if name not in adata.layers:
            hint = (
                " Make it with `adata.layers['norm'] = np.expm1(adata.X)` (linear normalised data)."
                if what == "tpm"
                else " Keep the raw UMI counts in a layer, e.g. `adata.layers['counts'] = adata.X.copy()` "
                "before normalising."
            )
            raise MissingKeyError(
                f"{what}: layer {name!r} not found (layers: {sorted(adata.layers.keys())}).{hint}"
            )
        X = adata.layers[name]
        label = f"layers[{name!r}]"
    if X is None or X.shape[0] == 0 or X.shape[1] == 0:
        raise ExprmatError(f"{what}: {label} is empty (shape {None if X is None else X.shape}); pass a filled layer.")
    if not (sp.issparse(X) or isinstance(X, np.ndarray)):
        X = np.asarray(X)
    return X, label


def _values(X):
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def _check_nonnegative(X, label, role, fix, *, integer):
    """One check for the two inputs: ``role`` is 'counts' or 'tpm', ``fix`` what to pass instead."""
    vals = _values(X)
    if vals.size == 0 or not np.any(vals):
        raise ExprmatError(f"{role}: {label} holds no nonzero value; pass {fix}.")
    if not np.all(np.isfinite(vals)):
        raise ExprmatError(f"{role}: {label} contains NaN or infinite values; pass {fix}.")
    if (vals < 0).any():
        kind = "raw (non-negative integer) counts" if integer else "linear (not log, not scaled) normalised data"
        raise ExprmatError(f"{role}: {label} has negative values; cNMF needs {kind}, e.g. {_EXAMPLE[role]}.")
    if integer and np.any(vals != np.round(vals)):
        raise ExprmatError(
            f"{role}: {label} has non-integer values (it looks normalised); pass {fix}, e.g. {_EXAMPLE[role]}."
        )


_EXAMPLE = {"counts": "counts='counts'", "tpm": "`adata.layers['norm'] = np.expm1(adata.X)`"}


def _check_counts(X, label):
    _check_nonnegative(X, label, "counts", "the raw UMI counts layer", integer=True)


def _check_tpm(T, label):
    _check_nonnegative(T, label, "tpm", "linear normalised data", integer=False)


def _hvg_mask(adata, hvg, n_top_genes, tpm):
    if hvg is None:
        import anndata as ad
        import scanpy as sc

        v.number(n_top_genes, "n_top_genes", minimum=1, integer=True)
        T = tpm.astype(np.float32) if sp.issparse(tpm) else np.asarray(tpm, dtype=np.float32)
        tmp = ad.AnnData(X=T.log1p() if sp.issparse(T) else np.log1p(T))
        n_top = min(int(n_top_genes), adata.n_vars)
        sc.pp.highly_variable_genes(tmp, flavor="seurat", n_top_genes=n_top)
        return np.asarray(tmp.var["highly_variable"].values, dtype=bool)
    if not isinstance(hvg, str):
        raise ExprmatError(f"hvg must name a boolean column of adata.var (or be None), got {hvg!r}.")
    if hvg not in adata.var.columns:
        raise MissingKeyError(
            f"hvg: adata.var has no column {hvg!r} (columns: {list(adata.var.columns)}). "
            + _HVG_HELP.format(name=hvg)
        )
    col = adata.var[hvg]
    if col.dtype != bool and (col.isna().any() or not set(pd.unique(col)).issubset({0, 1})):
        raise ExprmatError(f"hvg: adata.var[{hvg!r}] must be boolean (True for the genes to use).")
    return np.asarray(col.values, dtype=bool)


def _ks(ks):
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = [ks]
    if not isinstance(ks, (list, tuple, np.ndarray, range)) or len(ks) == 0:
        raise ExprmatError(f"ks must be a non-empty list of numbers of programs, e.g. [5, 10], got {ks!r}.")
    out = sorted({v.number(k, "each k in ks", minimum=2, integer=True) for k in ks})
    return out


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _ncpus(ncpus):
    v.number(ncpus, "ncpus", minimum=1, integer=True)
    return max(1, min(int(ncpus), available_cores()))


def _seeds(random_state, ks, n_iter):
    """One seed per replicate, drawn like the ``cnmf`` package does for the same seed
    (k in increasing order, then replicate), so replicate inits are comparable."""
    rs = np.random.RandomState(random_state)
    seeds = rs.randint(low=1, high=(2**31) - 1, size=len(ks) * n_iter)
    return {k: seeds[i * n_iter : (i + 1) * n_iter] for i, k in enumerate(ks)}


def _std(X, ddof):
    """Per-column standard deviation of a sparse or dense matrix (float64)."""
    n = X.shape[0]
    if sp.issparse(X):
        X = X if X.dtype == np.float64 else X.astype(np.float64)
        mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    else:
        Xd = np.asarray(X, dtype=np.float64)
        mean = Xd.mean(axis=0)
        sq = (Xd * Xd).mean(axis=0)
    var = np.maximum(sq - mean**2, 0)
    if ddof and n > ddof:
        var *= n / (n - ddof)
    return mean, np.sqrt(var)


def _scale_cols(X, scale):
    """``X * scale`` column-wise as float64 CSR (a new matrix)."""
    if sp.issparse(X):
        return sp.csr_matrix(sp.csr_matrix(X, dtype=np.float64).multiply(scale[None, :]))
    return sp.csr_matrix(np.asarray(X, dtype=np.float64) * scale[None, :])


# --------------------------------------------------------------------------- consensus_nmf


def _writes(p, adata):
    key = p["key_added"]
    return [("uns", key), ("uns", f"{key}.stats")]


@command("consensus_nmf", writes=_writes, gated=True)
def consensus_nmf(
    adata,
    counts: str = "counts",
    tpm: str = "norm",
    ks=(5, 10),
    hvg: str | None = "vst.all.hvg",
    n_iter: int = 100,
    ncpus: int = 1,
    key_added: str = "cnmf",
    min_counts: int = 0,
    density_threshold: float = 0.5,
    local_neighborhood_size: float = 0.3,
    n_top_genes: int = 2000,
    max_nmf_iter: int = 1000,
    tol: float = 1e-4,
    random_state: int = 42,
    progress: bool = True,
):
    """Consensus NMF over several numbers of programs ``ks``.

    Steps (as in the ``cnmf`` package): take the HVGs, divide their counts by
    each gene's standard deviation, run NMF ``n_iter`` times per ``k`` with
    different seeds (coordinate descent, Frobenius loss, random init), pool the
    spectra (L2-normalised), drop components whose mean distance to their
    ``local_neighborhood_size * n_iter`` nearest neighbours is at least
    ``density_threshold``, cluster the rest into ``k`` programs with k-means,
    take each cluster's median spectrum and refit usages by non-negative least
    squares.  Per ``k``: stability = silhouette of that clustering, error =
    squared Frobenius error of the refit on the scaled counts.

    Reads ``layers[counts]``, ``layers[tpm]`` (checked only) and ``var[hvg]``.
    Writes ``uns[key_added]`` (params, genes, and per ``str(k)``: pooled
    ``spectra``, ``seeds``, ``density``, ``labels``, ``consensus`` spectra,
    refit ``usage``, ``stability``, ``error``) and ``uns[key_added + '.stats']``
    (DataFrame: ``k``, ``stability``, ``error``, ``kept``).

    Parameters
    ----------
    adata
        Cells x genes, with raw counts in ``layers[counts]`` and linear normalised
        values in ``layers[tpm]``.
    counts
        Layer with raw UMI counts (``'X'`` for ``adata.X``).
    tpm
        Layer with linear normalised expression (e.g. ``np.expm1`` of log data);
        read by :func:`consensus_nmf_extract_k` for spectra on all genes.
    ks
        Numbers of programs to try (each >= 2 and <= number of cells).
    hvg
        Boolean ``var`` column marking the genes to factorise; ``None``: pick
        ``n_top_genes`` genes (scanpy ``flavor='seurat'`` on ``log1p(tpm)``).
    n_iter
        NMF replicates per ``k``.
    ncpus
        Threads running replicates (clamped to the cores available): each runs a
        stream of stacked replicates in numba kernels that release the GIL, so
        the threads run in parallel; results do not depend on it.
    key_added
        ``uns`` key of the result (and ``'<key_added>.stats'`` of its table).
    min_counts
        HVGs with fewer total counts are not used.
    density_threshold, local_neighborhood_size
        Outlier filter of pooled components (``>= 2`` keeps all).
    n_top_genes
        Number of genes picked when ``hvg`` is ``None``.
    max_nmf_iter, tol
        Per-replicate iteration limit and tolerance (sklearn's meaning).
    random_state
        Seed of the replicate seeds and of k-means.
    progress
        Show a progress bar (tqdm).  Run from a panel, the panel's bar shows the
        progress instead and its Cancel button stops the run between NMF iterations
        (data and history unchanged).
    """
    # ---- validate everything before any work or write
    v.new_key("key_added", key_added)
    ks = _ks(ks)
    n_iter = v.number(n_iter, "n_iter", minimum=2, integer=True)
    v.number(min_counts, "min_counts", minimum=0)
    v.number(density_threshold, "density_threshold")
    if density_threshold <= 0:
        raise ExprmatError(f"density_threshold must be > 0 (2 keeps every component), got {density_threshold!r}.")
    v.number(local_neighborhood_size, "local_neighborhood_size")
    if not 0 < local_neighborhood_size <= 1:
        raise ExprmatError(
            f"local_neighborhood_size is a fraction of n_iter in (0, 1], got {local_neighborhood_size!r}."
        )
    max_nmf_iter = v.number(max_nmf_iter, "max_nmf_iter", minimum=1, integer=True)
    v.number(tol, "tol", minimum=0)
    v.number(random_state, "random_state", integer=True, minimum=0)
    n_threads = _ncpus(ncpus)
    if max(ks) > adata.n_obs:
        raise ExprmatError(
            f"k={max(ks)} is larger than the number of cells ({adata.n_obs}); pass ks no larger than "
            f"{adata.n_obs}."
        )
    C, clabel = _layer(adata, counts, "counts")
    T, tlabel = _layer(adata, tpm, "tpm")
    if C.shape != adata.shape or T.shape != adata.shape:
        raise ExprmatError("counts and tpm layers must have the shape of the data.")
    _check_counts(C, clabel)
    _check_tpm(T, tlabel)
    genes_mask = _hvg_mask(adata, hvg, n_top_genes, T)
    idx = np.flatnonzero(genes_mask)
    Ch = C[:, idx]
    Ch = sp.csr_matrix(Ch) if sp.issparse(Ch) else sp.csr_matrix(np.asarray(Ch))
    if min_counts > 0:
        tot = np.asarray(Ch.sum(axis=0)).ravel()
        keep = tot >= min_counts
        idx, Ch = idx[keep], Ch[:, np.flatnonzero(keep)]
    if len(idx) < max(ks):
        raise ExprmatError(
            f"only {len(idx)} highly variable genes (hvg={hvg!r}, min_counts={min_counts}) for k up to "
            f"{max(ks)}; select more genes or pass smaller ks."
        )
    zero = np.asarray(Ch.sum(axis=1)).ravel() == 0
    if zero.any():
        ex = list(adata.obs_names[zero][:4])
        raise ExprmatError(
            f"{int(zero.sum())} cells have zero counts on the {len(idx)} genes used (e.g. {ex}); "
            "remove them (e.g. em.exclude_cells(adata, cells=...)) or use more genes."
        )
    Th = T[:, idx]
    tzero = np.asarray(Th.sum(axis=1)).ravel() == 0
    if tzero.any():
        raise ExprmatError(
            f"{int(tzero.sum())} cells have zero {tlabel} values on the genes used although they have "
            "counts; the tpm layer must be normalised from the same counts."
        )

    # ---- variance-normalised counts of the HVGs
    _, sd = _std(Ch, ddof=1)
    sd[sd == 0] = 1.0
    Xn = _scale_cols(Ch, 1.0 / sd)  # float64 CSR, for refits and error
    X32 = Xn.astype(np.float32)
    x_mean = float(X32.sum(dtype=np.float64)) / (X32.shape[0] * X32.shape[1])
    seeds = _seeds(int(random_state), ks, n_iter)

    # ---- replicates: per thread one pool of stacked replicates (any k), all pulling
    # from one queue, big k first (a replicate's result does not depend on which pool
    # or thread runs it, nor on its neighbours; see eng.factorize_pool)
    import threading

    from threadpoolctl import threadpool_limits

    queue = [(k, i, int(sd_)) for k in sorted(ks, reverse=True) for i, sd_ in enumerate(seeds[k])]
    results = {k: {} for k in ks}
    lock = threading.Lock()
    arrays = eng.csr_arrays(X32)
    total_cols = sum(k * n_iter for k in ks)
    by_mem = eng.CHUNK_BYTES // (3 * 4 * adata.n_obs)
    budget = int(max(max(ks), min(eng.CHUNK_COLS, by_mem, -(-total_cols // n_threads))))
    # one step per replicate and one per k's consensus; each update is a safe point to cancel
    bar = prog.bar(len(ks) * (n_iter + 1), "cNMF", progress)
    check = prog.checker("cNMF")

    def take(free):
        with lock:
            for q, (k, i, sd_) in enumerate(queue):
                if k <= free:
                    del queue[q]
                    return (k, i), k, sd_
        return None

    def done(_):
        with lock:
            bar.update(1)

    def worker():
        out = eng.factorize_pool(X32, x_mean, take, budget, tol, max_nmf_iter, arrays, done, check)
        with lock:
            for (k, i), val in out.items():
                results[k][i] = val

    with threadpool_limits(limits=1), bar:
        if n_threads == 1:
            worker()
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as ex:
                for f in [ex.submit(worker) for _ in range(n_threads)]:
                    f.result()

        # ---- consensus per k
        store = {}
        stats = []
        for k in ks:
            pooled = np.vstack([results[k][i][0].T for i in range(n_iter)]).astype(np.float32, copy=False)
            n_its = np.asarray([results[k][i][1] for i in range(n_iter)], dtype=np.int64)
            entry = _consensus(
                pooled, Xn, k, n_iter, density_threshold, local_neighborhood_size, int(random_state), tol, max_nmf_iter
            )
            entry["seeds"] = np.asarray(seeds[k], dtype=np.int64)
            entry["n_iterations"] = n_its
            store[str(k)] = entry
            stats.append((k, entry["stability"], entry["error"], entry["kept"]))
            bar.update(1)

    params = {
        "counts": "X" if counts is None else str(counts),
        "tpm": "X" if tpm is None else str(tpm),
        "hvg": "" if hvg is None else str(hvg),
        "ks": np.asarray(ks, dtype=np.int64),
        "n_iter": int(n_iter),
        "min_counts": float(min_counts),
        "density_threshold": float(density_threshold),
        "local_neighborhood_size": float(local_neighborhood_size),
        "max_nmf_iter": int(max_nmf_iter),
        "tol": float(tol),
        "random_state": int(random_state),
        "solver": "cd",
        "beta_loss": "frobenius",
        "init": "random",
    }
    result = {
        "params": params,
        "genes": np.asarray(adata.var_names[idx], dtype=object).astype(str),
        "gene_std": sd,
        "obs_names": fingerprint(np.asarray(adata.obs_names, dtype=object)),
        **store,
    }
    table = pd.DataFrame(stats, columns=["k", "stability", "error", "kept"])
    table["k"] = table["k"].astype(np.int64)
    table["kept"] = table["kept"].astype(np.int64)
    with prog.writing("cNMF"):
        adata.uns[key_added] = result
        adata.uns[f"{key_added}.stats"] = table
    return None


def _consensus(pooled, Xn, k, n_iter, density_threshold, lns, random_state, tol, max_iter):
    from sklearn.cluster import KMeans
    from sklearn.metrics import euclidean_distances, silhouette_score

    l2 = eng.l2_rows(pooled)
    D = euclidean_distances(l2)
    np.fill_diagonal(D, 0.0)
    n_nb = max(1, int(lns * n_iter))
    density = eng.local_density(D, n_nb)
    keep = density < density_threshold
    if keep.sum() < k:
        raise ExprmatError(
            f"k={k}: only {int(keep.sum())} of {len(keep)} pooled components pass density_threshold="
            f"{density_threshold}; raise density_threshold (2 keeps all) or run more iterations."
        )
    km = KMeans(n_clusters=k, n_init=10, random_state=random_state)
    lab = km.fit_predict(l2[keep])
    counts_per = np.bincount(lab, minlength=k)
    cons = np.vstack([np.median(l2[keep][lab == c], axis=0) if counts_per[c] else np.zeros(l2.shape[1])
                      for c in range(k)])
    tot = cons.sum(axis=1, keepdims=True)
    tot[tot == 0] = 1.0
    cons = cons / tot
    usage = eng.nnls(np.asarray(Xn @ cons.T), cons @ cons.T, tol=tol, max_iter=max_iter)
    n_labels = len(np.unique(lab))
    if 2 <= n_labels <= int(keep.sum()) - 1:
        stability = float(silhouette_score(D[np.ix_(keep, keep)], lab, metric="precomputed"))
    else:
        stability = float("nan")
    error = eng.sq_frobenius_error(Xn, usage, cons)
    labels = np.full(len(keep), -1, dtype=np.int64)
    labels[keep] = lab
    return {
        "spectra": pooled.astype(np.float32, copy=False),
        "density": density,
        "labels": labels,
        "consensus": cons,
        "usage": usage,
        "stability": stability,
        "error": float(error),
        "kept": int(keep.sum()),
    }


# --------------------------------------------------------------------------- extraction


def _writes_extract(p, adata):
    key, k = p["key"], p["k"]
    return [
        ("obsm", f"{key}.{k}"),
        ("varm", f"{key}.{k}"),
        ("varm", f"{key}.coef.{k}"),
        ("uns", f"{key}.density.{k}"),
        ("uns", f"{key}.dist.{k}"),
        ("uns", f"{key}.{k}.labels"),
    ]


@command("consensus_nmf_extract_k", writes=_writes_extract)
def consensus_nmf_extract_k(adata, k: int, key: str = "cnmf"):
    """Usages, spectra and gene coefficients of ``k`` programs from a :func:`consensus_nmf` run.

    Programs are numbered ``'1'..'k'`` by decreasing total usage.  Spectra in
    TPM units are the non-negative least-squares fit of ``layers[tpm]`` (all
    genes) on the normalised usages; gene coefficients are the OLS fit of the
    z-scored ``tpm`` on the usages; the final usages are refit on the
    variance-scaled ``tpm`` of the HVGs and normalised to sum to 1 per cell.

    Reads ``uns[key]`` and ``layers[uns[key]['params']['tpm']]``.  Writes
    ``obsm['<key>.<k>']`` (DataFrame, index ``obs_names``, columns ``'1'..'k'``,
    rows sum to 1), ``varm['<key>.<k>']`` (n_vars x k spectra, TPM units),
    ``varm['<key>.coef.<k>']`` (n_vars x k coefficients),
    ``uns['<key>.density.<k>']`` (local density of each pooled component),
    ``uns['<key>.dist.<k>']`` (euclidean distances between the L2-normalised
    pooled components, float32) and ``uns['<key>.<k>.labels']`` (program of each
    pooled component, 0 for components dropped by the density filter).

    Parameters
    ----------
    adata
        The cells :func:`consensus_nmf` ran on (same cells, same order).
    k
        Number of programs: one of the ``ks`` of the run.
    key
        ``uns`` key of the :func:`consensus_nmf` result (its ``key_added``).
    """
    if not isinstance(key, str) or key not in adata.uns:
        raise MissingKeyError(f"uns[{key!r}] not found: run "
                              f"em.consensus_nmf(adata, ks=[...], key_added={key!r}) first.")
    store = adata.uns[key]
    if not hasattr(store, "keys") or "params" not in store:
        raise ExprmatError(f"uns[{key!r}] is not a consensus_nmf result; run em.consensus_nmf again.")
    k = v.number(k, "k", integer=True, minimum=1)
    if str(k) not in store:
        have = [int(x) for x in store["params"]["ks"]]
        raise ExprmatError(f"k={k} was not run by consensus_nmf (ks run: {have}); pick one of them or run it.")
    if store["obs_names"] != fingerprint(np.asarray(adata.obs_names, dtype=object)):
        raise ExprmatError(
            "the cells differ from those consensus_nmf ran on (cells were removed, added or reordered); "
            "run em.consensus_nmf again on these cells."
        )
    params = store["params"]
    entry = store[str(k)]
    tpm = params["tpm"]
    T, tlabel = _layer(adata, None if tpm == "X" else tpm, "tpm")
    if T.shape != adata.shape:
        raise ExprmatError("the tpm layer must have the shape of the data.")
    _check_tpm(T, tlabel)
    genes = pd.Index(np.asarray(store["genes"]).astype(str))
    gidx = adata.var_names.get_indexer(genes)
    if (gidx < 0).any():
        raise ExprmatError(
            f"{int((gidx < 0).sum())} genes used by consensus_nmf are no longer in the data; run it again."
        )
    tol = float(params["tol"])
    max_iter = int(params["max_nmf_iter"])
    T = sp.csr_matrix(T, dtype=np.float64) if sp.issparse(T) else np.asarray(T, dtype=np.float64)

    U = np.asarray(entry["usage"], dtype=np.float64)
    rs = U.sum(axis=1, keepdims=True)
    if (rs == 0).any():
        raise ExprmatError(f"{int((rs == 0).sum())} cells have zero usage of every program; run consensus_nmf again.")
    Un = U / rs
    order = np.argsort(-Un.sum(axis=0), kind="stable")
    U, Un = U[:, order], Un[:, order]

    # spectra in TPM units (all genes): NNLS of tpm on the normalised usages
    spectra_tpm = eng.nnls(eng.matmul_t(T, Un), Un.T @ Un, tol=tol, max_iter=max_iter)  # n_vars x k

    # gene coefficients: OLS of z-scored tpm on the (unnormalised) usages
    mean, sd = _std(T, ddof=0)
    sd = np.sqrt(np.maximum(sd**2, 1e-12))
    UtT = eng.matmul_t(T, U).T  # k x n_vars
    UtZ = (UtT - U.sum(axis=0)[:, None] * mean[None, :]) / sd[None, :]
    coef = np.linalg.lstsq(U.T @ U, UtZ, rcond=None)[0].T  # n_vars x k

    # final usages: NNLS of the variance-scaled tpm of the HVGs on the tpm spectra
    Th = T[:, gidx]
    _, sdh = _std(Th, ddof=0)
    sdh[sdh == 0] = 1.0
    Xh = _scale_cols(Th, 1.0 / sdh)
    Sh = spectra_tpm[gidx].T / sdh[None, :]  # k x hvg
    Uf = eng.nnls(np.asarray(Xh @ Sh.T), Sh @ Sh.T, tol=tol, max_iter=max_iter)
    fs = Uf.sum(axis=1, keepdims=True)
    if (fs == 0).any():
        raise ExprmatError(
            f"{int((fs == 0).sum())} cells get zero usage from the tpm layer; check that layers[{tpm!r}] "
            "is the normalised form of the counts consensus_nmf used."
        )
    usage = pd.DataFrame(Uf / fs, index=adata.obs_names.copy(), columns=[str(i) for i in range(1, k + 1)])

    # pooled components: distances, density, programs
    l2 = eng.l2_rows(np.asarray(entry["spectra"], dtype=np.float64))
    from sklearn.metrics import euclidean_distances

    D = euclidean_distances(l2).astype(np.float32)
    np.fill_diagonal(D, 0.0)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    lab = np.asarray(entry["labels"], dtype=np.int64)
    labels = np.where(lab >= 0, rank[np.maximum(lab, 0)], 0).astype(np.int64)

    adata.obsm[f"{key}.{k}"] = usage
    adata.varm[f"{key}.{k}"] = spectra_tpm
    adata.varm[f"{key}.coef.{k}"] = coef
    adata.uns[f"{key}.density.{k}"] = np.asarray(entry["density"], dtype=np.float64).copy()
    adata.uns[f"{key}.dist.{k}"] = D
    adata.uns[f"{key}.{k}.labels"] = labels
    return None
