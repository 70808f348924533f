"""k-nearest-neighbour graph on any representation (scanpy's ``pp.neighbors``).

Cancel during a kNN waits for scanpy's call to return: the call is one progress step with a
safe point before and after it, none inside.  Why: under 8192 cells (euclidean) scanpy
computes exact sklearn distances, one vectorised call; from 8192 cells it builds a
``pynndescent.NNDescent`` index, whose work (the random-projection forest, then the
neighbour descent with its iterations) runs in numba-compiled functions.  pynndescent 0.6
takes no callback and has no tqdm bar (its ``verbose`` prints from inside numba); the
descent's iteration loop is itself compiled, so no Python name is looked up per iteration
that a hook like :func:`._umap_compat.epoch_progress` could use.  Wrapping its module-level
``make_forest`` / ``nn_descent`` would add one safe point between the two phases, not per
iteration, and would reach into internals for that.  How long the wait is
(``benchmarks/knn_cancel_wait.py``, 2 cores under load 13-18, synthetic from the mouse 10k
cells, 50 PCs, 15 neighbours): a Cancel 1 s into ``em.knn`` returned 98 s later at 50,000
cells (a plain ``sc.pp.neighbors``: 51 s); 200,000 cells did not fit the measuring run,
and pynndescent's work grows a little faster than the cells, so expect minutes there.  The panel says
"cancelling at the next safe point" meanwhile, and the data and history come back as before.
"""

from __future__ import annotations

import contextlib

import scanpy as sc

from .. import _progress as prog
from .. import _validate as v
from ..errors import ExprmatError
from ..history import command
from ._first_knn import first_use
from ._umap_compat import scanpy_uses_pynndescent

__all__ = ["knn"]


def _graph_keys(key_added):
    if key_added in (None, "neighbors"):
        return "neighbors", "connectivities", "distances"
    return key_added, f"{key_added}_connectivities", f"{key_added}_distances"


def _writes(p, adata):
    uns, conn, dist = _graph_keys(p["key_added"])
    return [("obsp", conn), ("obsp", dist), ("uns", uns)]


@command("knn", writes=_writes, gated=True)
def knn(
    adata,
    use_rep: str | None = "X_pca",
    n_comps: int | None = None,
    n_neighbors: int = 15,
    knn: bool = True,
    method: str = "umap",
    transformer: str | None = None,
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    random_state: int = 0,
    key_added: str | None = "neighbors",
):
    """Build the kNN graph of the cells on ``obsm[use_rep]``.

    Reads ``obsm[use_rep]`` (bare names like ``'harmony'`` also find
    ``'X_harmony'``).  Writes ``obsp['connectivities']``, ``obsp['distances']``
    and ``uns['neighbors']`` (or ``<key_added>_connectivities`` ... when
    ``key_added`` is not ``'neighbors'``).

    Parameters
    ----------
    adata
        Annotated data with the representation in ``obsm``.
    use_rep
        ``obsm`` key of the representation, e.g. ``'X_pca'`` or ``'harmony'``;
        ``'X'`` or ``None`` use ``X`` (scanpy: a PCA of ``X`` when it has many genes).
    n_comps
        Use the first ``n_comps`` columns of ``obsm[use_rep]`` (``None``: all).
    n_neighbors
        The size of the local neighbourhood (in number of neighbouring cells) used
        for manifold approximation; at least 2 and fewer than the cells.
    knn
        If ``True``, use a hard threshold to restrict the number of neighbours to
        ``n_neighbors`` (a kNN graph); otherwise a Gaussian kernel gives low weights
        to neighbours further than the ``n_neighbors``-th.
    method
        How to compute the connectivities: ``'umap'`` or ``'gauss'``.
    transformer
        Approximate kNN search: ``None`` (scanpy's choice), ``'pynndescent'``,
        ``'sklearn'`` or ``'rapids'``.
    metric
        Distance metric, e.g. ``'euclidean'`` or ``'cosine'``.
    metric_kwds
        Options for the metric.
    random_state
        Seed of the approximate neighbour search.
    key_added
        Name of the graph: ``uns[key_added]`` and ``obsp['<key_added>_connectivities']``
        / ``obsp['<key_added>_distances']`` (``None`` / ``'neighbors'``: the defaults).
    """
    n_neighbors = v.number(n_neighbors, "n_neighbors", minimum=2, integer=True)
    if n_neighbors >= adata.n_obs:
        raise ExprmatError(f"n_neighbors={n_neighbors} must be smaller than the number of cells ({adata.n_obs}).")
    if transformer is not None and not isinstance(transformer, str):
        raise ExprmatError("transformer must be None or the name of a scanpy transformer "
                           "('pynndescent', 'sklearn', 'rapids').")
    rep = None
    if use_rep is not None and use_rep != "X":
        rep = v.embedding_key(adata, use_rep)
        v.embedding(adata, rep)
        if n_comps is not None:
            n_comps = v.number(n_comps, "n_comps", minimum=1, integer=True)
            if n_comps > adata.obsm[rep].shape[1]:
                raise ExprmatError(f"n_comps={n_comps} exceeds the {adata.obsm[rep].shape[1]} "
                                   f"columns of obsm[{rep!r}].")
    elif use_rep == "X":
        rep = "X"
    nndescent = scanpy_uses_pynndescent(adata.n_obs, transformer=transformer, metric=metric, knn=knn)
    # umap-learn is needed for its connectivities or pynndescent's search; scanpy's
    # dense Gaussian path needs neither, so it does not import them here either
    first = (first_use("pynndescent" if nndescent else "dense") if method == "umap" or nndescent
             else contextlib.nullcontext())
    # scanpy has no step counts to report nor a place to stop: one step, cancelled before or
    # after it; it writes as it goes, so panel reads wait for the whole call
    with first, prog.bar(1, "kNN", enabled=False) as bar, prog.writing("kNN"):
        _neighbors(adata, n_neighbors, n_comps, rep, knn, method, transformer, metric, metric_kwds,
                   random_state, key_added)
        bar.update(1)


def _neighbors(adata, n_neighbors, n_comps, rep, knn, method, transformer, metric, metric_kwds,
               random_state, key_added):
    sc.pp.neighbors(
        adata,
        n_neighbors=n_neighbors,
        n_pcs=n_comps,
        use_rep=rep,
        knn=knn,
        method=method,
        transformer=transformer,
        metric=metric,
        metric_kwds=dict(metric_kwds or {}),
        random_state=random_state,
        key_added=None if key_added in (None, "neighbors") else key_added,
    )
