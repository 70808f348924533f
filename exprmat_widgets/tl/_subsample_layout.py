"""The pieces of ``em.umap(subsample=m)``: a faster UMAP for hundreds of thousands of cells.

Why: umap-learn's layout costs about the same per cell and epoch at any size, and its
default is 200 epochs over every cell (``benchmarks/reembed.py``: minutes at 200k cells
on a small machine).  Most of those epochs only move cells a little once their
neighbourhood is laid out, so this lays out ``m`` random cells (their own kNN graph,
umap-learn's default epochs), puts every other cell where its embedded kNN neighbours
are (the mean of their positions, weighted by ``obsp['connectivities']``), and runs a
few epochs over all cells from there.  Everything here is plain scanpy calls and sparse
algebra; no umap-learn internals.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from ..errors import ExprmatError

__all__ = ["pick", "sub_graph", "place", "FINAL_EPOCHS", "seconds", "measured"]

#: epochs over all cells after the placement when ``maxiter`` is not given (the quality /
#: time trade-off measured in benchmarks/results/reembed.md)
FINAL_EPOCHS = 30

# seconds per cell and epoch of a default UMAP (its spectral start grows faster than the
# cells: measured at 200k), of the epochs of the fast one (at 50k), and per cell of a kNN
# search: CPU seconds of benchmarks/results/reembed.md (one busy core); a default UMAP run
# in this process replaces the first by the wall time it took here
_RATE = {"umap": 7.8e-6, "epoch": 4.5e-6, "knn": 1.8e-4}


def default_epochs(n_obs: int) -> int:
    """umap-learn's (and scanpy's) epochs for a graph of ``n_obs`` cells."""
    return 500 if n_obs <= 10000 else 200


def measured(n_obs: int, epochs: int, wall: float) -> None:
    """Keep the rate of a UMAP that took ``wall`` seconds for ``n_obs`` cells and ``epochs``."""
    if n_obs > 1000 and epochs > 0 and wall > 0:
        _RATE["umap"] = wall / (n_obs * epochs)


def seconds(n_obs: int, subsample: int | None = None, maxiter: int | None = None) -> float:
    """About how long ``em.umap`` takes for ``n_obs`` cells (``subsample`` / ``maxiter`` as
    there), from the last measured rate."""
    if subsample is None:
        return _RATE["umap"] * n_obs * (maxiter or default_epochs(n_obs))
    final = FINAL_EPOCHS if maxiter is None else maxiter
    return (_RATE["knn"] * subsample + _RATE["epoch"] * subsample * default_epochs(subsample)
            + _RATE["epoch"] * n_obs * final)


def pick(n_obs: int, subsample: int, random_state: int) -> np.ndarray:
    """Sorted positions of ``subsample`` distinct random cells of ``n_obs`` (seeded)."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_obs, size=subsample, replace=False))


def graph_rep(adata, nk: str):
    """``(use_rep, n_pcs, params)`` of the kNN graph ``uns[nk]``: what the sub-graph is built on."""
    params = dict(adata.uns[nk].get("params", {}))
    rep = params.get("use_rep")
    if rep is None or rep == "X" or rep not in adata.obsm:
        raise ExprmatError(
            f"umap(subsample=...) builds a kNN graph of the subsample on the representation of the "
            f"graph {nk!r}, which names none in obsm (use_rep={rep!r}); rebuild the graph with "
            "em.knn(adata, use_rep='X_pca') (or another obsm key), or leave subsample=None.")
    return rep, params.get("n_pcs"), params


def sub_graph(adata, idx: np.ndarray, nk: str, init_pos):
    """An AnnData of the cells ``idx`` holding only the graph's representation (and the
    initial layout when ``init_pos`` is an obsm key), with its own kNN graph built as the
    graph ``uns[nk]`` was (same neighbours, metric, method, seed)."""
    rep, n_pcs, params = graph_rep(adata, nk)
    obsm = {rep: np.asarray(adata.obsm[rep])[idx]}
    if isinstance(init_pos, str) and init_pos in adata.obsm:
        obsm[init_pos] = np.asarray(adata.obsm[init_pos])[idx]
    sub = ad.AnnData(obs=pd.DataFrame(index=np.asarray(adata.obs_names)[idx]), obsm=obsm)
    sc.pp.neighbors(
        sub,
        n_neighbors=int(params.get("n_neighbors", 15)),
        n_pcs=n_pcs,
        use_rep=rep,
        method=params.get("method", "umap"),
        metric=params.get("metric", "euclidean"),
        metric_kwds=dict(params.get("metric_kwds", {}) or {}),
        random_state=params.get("random_state", 0),
    )
    return sub


def place(conn, idx: np.ndarray, sub_pos: np.ndarray, random_state: int) -> np.ndarray:
    """Positions of all cells: ``sub_pos`` for the cells ``idx``; every other cell at the
    mean of its already-placed graph neighbours weighted by ``conn`` (in rounds, so a cell
    none of whose neighbours was sampled follows the ones that were placed before it).
    Cells of graph components without any sampled cell sit on a random sampled cell."""
    conn = sp.csr_matrix(conn)
    n = conn.shape[0]
    pos = np.zeros((n, sub_pos.shape[1]), dtype=np.float64)
    placed = np.zeros(n, dtype=bool)
    pos[idx] = sub_pos
    placed[idx] = True
    while not placed.all():
        todo = np.flatnonzero(~placed)
        rows = conn[todo]
        weight = rows @ placed.astype(np.float64)
        ok = weight > 0
        if not ok.any():
            break
        # unplaced cells hold zeros, so they add nothing to the weighted sum
        pos[todo[ok]] = (rows[ok] @ pos) / weight[ok, None]
        placed[todo[ok]] = True
    if not placed.all():
        rest = np.flatnonzero(~placed)
        rng = np.random.default_rng(random_state)
        pos[rest] = sub_pos[rng.integers(0, len(idx), size=len(rest))]
    return pos
