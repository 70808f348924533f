"""UMAP embedding of the kNN graph (scanpy's ``tl.umap``)."""

from __future__ import annotations

import time

import scanpy as sc

from .. import _progress as prog
from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from ..history import command
from . import _subsample_layout as sub
from ._first_knn import first_use
from ._umap_compat import epoch_progress, scanpy_uses_pynndescent

__all__ = ["umap"]


def _obsm_key(key_added):
    key = key_added or "umap"
    return key if key.startswith("X_") else f"X_{key}"


def _writes(p, adata):
    nk = p.get("neighbors_key") or "neighbors"
    params = adata.uns.get(nk)
    conn = params.get("connectivities_key", "connectivities") if hasattr(params, "get") else "connectivities"
    return [("obsm", _obsm_key(p["key_added"])), ("uns", "umap"), ("obsp", conn)]


@command("umap", writes=_writes, gated=True)
def umap(
    adata,
    min_dist: float = 0.5,
    spread: float = 1.0,
    n_components: int = 2,
    maxiter: int | None = None,
    alpha: float = 1.0,
    gamma: float = 1.0,
    negative_sample_rate: int = 5,
    init_pos: str = "spectral",
    random_state: int = 0,
    a: float | None = None,
    b: float | None = None,
    key_added: str | None = "umap",
    neighbors_key: str | None = "neighbors",
    subsample: int | None = None,
):
    """UMAP of the kNN graph.

    Reads the graph named by ``neighbors_key`` (``uns[neighbors_key]`` and its
    ``obsp`` matrices; with ``subsample`` also the ``obsm`` representation the graph
    was built on).  Writes ``obsm['X_<key_added>']`` (the tutorial's
    ``key_added='umap'`` gives ``obsm['X_umap']``) and ``uns['umap']``; and, as
    ``sc.tl.umap`` does, the connectivities with umap-learn's weakest edges set to zero
    (so that a Leiden after it clusters scanpy's graph), only once the UMAP succeeded.

    The default (``subsample=None``) is scanpy's ``tl.umap``, bit for bit.  With
    ``subsample=m`` (faster for hundreds of thousands of cells, at some cost in local
    detail: ``benchmarks/results/reembed.md``): ``m`` random cells (seeded by
    ``random_state``) get their own kNN graph, built as the graph ``neighbors_key`` was,
    and a UMAP with umap-learn's default epochs; every other cell starts at the mean of
    its embedded graph neighbours weighted by ``obsp['connectivities']``; then
    ``maxiter`` epochs (``None``: 30) of UMAP over all cells from there.

    Parameters
    ----------
    adata
        Annotated data with a kNN graph (:func:`~exprmat_widgets.tl.knn`).
    min_dist
        The effective minimum distance between embedded points: smaller values
        give a more clustered embedding, larger ones a more even spread.
    spread
        The effective scale of embedded points; with ``min_dist`` it sets how
        clumped the embedded points are.
    n_components
        The number of dimensions of the embedding.
    maxiter
        The number of optimisation epochs (``None``: umap-learn's default for the
        data size; with ``subsample``, the epochs over all cells, ``None``: 30).
    alpha
        The initial learning rate of the embedding optimisation.
    gamma
        Weight of negative samples in the optimisation; values above one weigh
        them more than positive samples.
    negative_sample_rate
        The number of negative edge samples per positive edge sample.
    init_pos
        How to initialise the low-dimensional embedding: ``'spectral'``,
        ``'paga'``, ``'random'`` or an ``obsm`` key (bare names find ``'X_<name>'``).
    random_state
        Seed of the optimisation.
    a, b
        Parameters of the embedding curve; ``None`` derives them from ``min_dist``
        and ``spread``.
    key_added
        The embedding goes to ``obsm['X_<key_added>']`` (``None``: ``'umap'``).
    neighbors_key
        ``uns`` key of the kNN graph to embed (``None``: ``'neighbors'``).
    subsample
        ``None`` (scanpy's UMAP of every cell) or the number of cells to lay out
        first (at least 2 more than the graph's ``n_neighbors``, fewer than the cells);
        the others are placed by their neighbours and refined (see above).
    """
    nk = neighbors_key or "neighbors"
    if nk not in adata.uns:
        raise MissingKeyError(
            f"no kNN graph {nk!r} in adata.uns; run em.knn(adata, key_added={nk!r}) first."
        )
    v.number(min_dist, "min_dist", minimum=0)
    v.number(spread, "spread", minimum=0)
    v.number(n_components, "n_components", minimum=1, integer=True)
    if init_pos not in ("spectral", "paga", "random") and init_pos is not None:
        init_pos = v.embedding_key(adata, init_pos)
    if subsample is not None:
        _check_subsample(adata, subsample, nk, init_pos)
        _subsampled(adata, subsample, min_dist, spread, n_components, maxiter, alpha, gamma,
                    negative_sample_rate, init_pos, random_state, a, b, key_added, nk)
        return
    # each epoch of umap-learn's layout loop is reported and is a safe point (the spectral
    # init before it is not); scanpy writes as it goes, so panel reads wait for the whole call
    with first_use("umap"), prog.writing("UMAP"), epoch_progress("UMAP epochs"):
        t0 = time.perf_counter()
        _umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
              init_pos, random_state, a, b, key_added, nk)
        # the panel's estimate for the next, larger re-embed
        sub.measured(adata.n_obs, maxiter or sub.default_epochs(adata.n_obs), time.perf_counter() - t0)


def _umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate, init_pos,
          random_state, a, b, key_added, nk):
    # umap-learn zeroes the graph's weakest edges (below max / n_epochs) in place, through the
    # COO view scanpy hands it, so sc.tl.umap changes obsp['connectivities'] (and a later
    # Leiden). scanpy gets a copy: kept, as scanpy leaves it, when the UMAP succeeds; on an
    # error or Cancel the graph is the one em.knn wrote (undo restores it from its snapshot)
    conn_key = adata.uns[nk].get("connectivities_key", "connectivities")
    graph = adata.obsp[conn_key]
    adata.obsp[conn_key] = graph.copy()
    try:
        _scanpy_umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
                     init_pos, random_state, a, b, key_added, nk)
    except BaseException:
        adata.obsp[conn_key] = graph
        raise


def _scanpy_umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
                 init_pos, random_state, a, b, key_added, nk):
    sc.tl.umap(
        adata,
        min_dist=min_dist,
        spread=spread,
        n_components=n_components,
        maxiter=maxiter,
        alpha=alpha,
        gamma=gamma,
        negative_sample_rate=negative_sample_rate,
        init_pos=init_pos,
        random_state=random_state,
        a=a,
        b=b,
        key_added=_obsm_key(key_added),
        neighbors_key=nk,
    )
    # scanpy files the parameters under uns[key_added]; keep them at uns['umap']
    adata.uns["umap"] = adata.uns.pop(_obsm_key(key_added))


def _check_subsample(adata, subsample, nk, init_pos):
    v.number(subsample, "subsample", minimum=2, integer=True)
    k = int(adata.uns[nk].get("params", {}).get("n_neighbors", 15))
    if subsample >= adata.n_obs:
        raise ExprmatError(
            f"subsample={subsample} must be smaller than the number of cells ({adata.n_obs}); "
            "pass a smaller number, or subsample=None for the UMAP of every cell.")
    if subsample <= k + 1:
        raise ExprmatError(
            f"subsample={subsample} is too small for the graph's {k} neighbours: pass at least "
            f"{k + 2} cells (a few thousand give a useful layout), or subsample=None.")
    if init_pos == "paga":
        raise ExprmatError("init_pos='paga' needs the PAGA of the subsample, which is not computed: "
                           "use init_pos='spectral' (or an obsm key) with subsample.")
    sub.graph_rep(adata, nk)


def _subsampled(adata, m, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
                init_pos, random_state, a, b, key_added, nk):
    idx = sub.pick(adata.n_obs, int(m), random_state)
    _, _, params = sub.graph_rep(adata, nk)
    nndescent = scanpy_uses_pynndescent(len(idx), transformer=None, metric=params.get("metric", "euclidean"), knn=True)
    # three scanpy calls, a safe point after each; only the last writes to adata
    with prog.bar(3, "UMAP (subsample)", enabled=False) as bar:
        with first_use("pynndescent" if nndescent else "dense"):
            small = sub.sub_graph(adata, idx, nk, init_pos)
        bar.update(1)
        with first_use("umap"):
            _umap(small, min_dist, spread, n_components, None, alpha, gamma, negative_sample_rate,
                  init_pos, random_state, a, b, "umap", "neighbors")
        bar.update(1)
        conn = adata.obsp[adata.uns[nk].get("connectivities_key", "connectivities")]
        start = sub.place(conn, idx, small.obsm["X_umap"], random_state)
        del small
        with first_use("umap"), prog.writing("UMAP"):
            _umap(adata, min_dist, spread, n_components, sub.FINAL_EPOCHS if maxiter is None else maxiter,
                  alpha, gamma, negative_sample_rate, start, random_state, a, b, key_added, nk)
            adata.uns["umap"]["params"]["subsample"] = int(m)
        bar.update(1)
