"""UMAP embedding of the kNN graph (scanpy's ``tl.umap``)."""

from __future__ import annotations

import scanpy as sc

from .. import _progress as prog
from .. import _validate as v
from ..errors import MissingKeyError
from ..history import command
from ._first_knn import first_use
from ._umap_compat import epoch_progress

__all__ = ["umap"]


def _obsm_key(key_added):
    key = key_added or "umap"
    return key if key.startswith("X_") else f"X_{key}"


def _writes(p, adata):
    return [("obsm", _obsm_key(p["key_added"])), ("uns", "umap")]


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
):
    """UMAP of the kNN graph.

    Reads the graph named by ``neighbors_key`` (``uns[neighbors_key]`` and its
    ``obsp`` matrices; unlike ``sc.tl.umap`` it leaves the connectivities unchanged).
    Writes ``obsm['X_<key_added>']`` (the tutorial's ``key_added='umap'`` gives
    ``obsm['X_umap']``) and ``uns['umap']``.

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
        data size).
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
    # each epoch of umap-learn's layout loop is reported and is a safe point (the spectral
    # init before it is not); scanpy writes as it goes, so panel reads wait for the whole call
    with first_use("umap"), prog.writing("UMAP"), epoch_progress("UMAP epochs"):
        _umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
              init_pos, random_state, a, b, key_added, nk)


def _umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate, init_pos,
          random_state, a, b, key_added, nk):
    # umap-learn zeroes the graph's weakest edges (below max / n_epochs) in place, through the
    # COO view scanpy hands it, so a plain sc.tl.umap changes obsp['connectivities'] (and a
    # later Leiden); it gets a copy, and the kNN graph stays as em.knn wrote it
    conn_key = adata.uns[nk].get("connectivities_key", "connectivities")
    graph = adata.obsp[conn_key]
    adata.obsp[conn_key] = graph.copy()
    try:
        _scanpy_umap(adata, min_dist, spread, n_components, maxiter, alpha, gamma, negative_sample_rate,
                     init_pos, random_state, a, b, key_added, nk)
    finally:
        adata.obsp[conn_key] = graph


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
