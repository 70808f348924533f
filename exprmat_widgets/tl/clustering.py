"""Leiden clustering and sub-clustering of a selection (scanpy's ``tl.leiden``)."""

from __future__ import annotations

import anndata as ad
import leidenalg
import numpy as np
import pandas as pd
import scanpy as sc

from .. import _validate as v
from .._logging import logg
from ..colors import sync_colors
from ..errors import ExprmatError, MissingKeyError
from ..history import command
from .annotation import _selection
from .ontology import term_column
from .subclusters import write_subclusters

__all__ = ["leiden", "subcluster"]


def _term_writes(adata, source: str | None, out: str) -> list:
    """The term column of ``out`` when sub-clustering ``source`` writes or replaces it."""
    tc = term_column(out)
    has = tc in adata.obs.columns or (source is not None and term_column(source) in adata.obs.columns)
    return [("obs", tc)] if has else []


def _writes(p, adata):
    k = p["key_added"]
    r = p.get("restrict_to")
    source = r[0] if isinstance(r, (list, tuple)) and r and isinstance(r[0], str) else None
    return [("obs", k), ("uns", f"{k}_colors"), ("uns", f"{k}_subclusters"), *_term_writes(adata, source, k)]


def _partition_class(name):
    if name is None:
        return None
    cls = getattr(leidenalg, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, leidenalg.VertexPartition.MutableVertexPartition)):
        raise ExprmatError(
            f"partition_type {name!r} is not a leidenalg partition; use e.g. "
            "'RBConfigurationVertexPartition' or 'CPMVertexPartition' (with flavor='leidenalg')."
        )
    return cls


def check_graph(adata, neighbors_key, obsp):
    if obsp is not None:
        if obsp not in adata.obsp:
            raise MissingKeyError(f"obsp[{obsp!r}] not found (have: {sorted(adata.obsp.keys())}).")
        return
    nk = neighbors_key or "neighbors"
    if nk not in adata.uns:
        raise MissingKeyError(f"no kNN graph {nk!r}: run em.knn(adata, use_rep=...) before clustering.")
    conn = adata.uns[nk].get("connectivities_key", "connectivities")
    if conn not in adata.obsp:
        raise MissingKeyError(f"obsp[{conn!r}] of graph {nk!r} is missing: run em.knn(adata) again.")


def graph_of(adata, neighbors_key, obsp):
    """The adjacency matrix :func:`check_graph` vouched for."""
    if obsp is not None:
        return adata.obsp[obsp]
    nk = neighbors_key or "neighbors"
    return adata.obsp[adata.uns[nk].get("connectivities_key", "connectivities")]


def leiden_subgraph(adjacency, mask: np.ndarray, where: str, **leiden_kwargs) -> np.ndarray:
    """Leiden groups (0, 1, ...) of the cells of ``mask`` on their own rows and columns of
    ``adjacency``: what ``sc.tl.leiden(restrict_to=...)`` clusters, through scanpy itself
    (on a throw-away AnnData) so the partition is scanpy's.

    scanpy fails on a subgraph without edges (``'csr_matrix' object has no attribute
    'ravel'``), so that case is refused here with the reason and the fix.
    """
    sub = adjacency[mask, :][:, mask]
    n = int(mask.sum())
    n_edges = sub.count_nonzero() if hasattr(sub, "count_nonzero") else np.count_nonzero(sub)
    if n_edges == 0:  # explicit zeros are no edges either (scanpy reads .nonzero())
        raise ExprmatError(
            f"{where}: the {n} selected cell(s) share no kNN edge, so there is no graph to cluster; "
            "select more (neighbouring) cells, or recompute the graph with more neighbours "
            "(em.knn(adata, n_neighbors=...))."
        )
    tmp = ad.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(n).astype(str)))
    sc.tl.leiden(tmp, adjacency=sub, key_added="sub", **leiden_kwargs)
    return tmp.obs["sub"].astype(str).astype(np.int64).to_numpy()


@command("leiden", writes=_writes)
def leiden(
    adata,
    resolution: float = 1.0,
    restrict_to=None,
    random_state: int = 0,
    key_added: str = "leiden",
    adjacency=None,
    directed: bool | None = None,
    use_weights: bool = True,
    n_iterations: int = 2,
    partition_type: str | None = None,
    neighbors_key: str | None = None,
    obsp: str | None = None,
    flavor: str = "igraph",
):
    """Leiden clustering of the kNN graph.

    ``restrict_to=(key, [clusters])`` re-clusters only those clusters of
    ``obs[key]`` (scanpy's partition of their subgraph); the rest keep their
    labels and the new ones are bounded and never reused, as in
    :func:`exprmat_widgets.tl.annotation.write_subclusters`: ``'<cluster>,<i>'``
    for one cluster, ``'<a>-<b>,<i>'`` for up to 3 short ones, else ``'sub,<i>'``,
    in place of the (first) restricted cluster in the category order.  Refused,
    changing nothing, when those cells share no kNN edge or form a single cluster.

    Reads ``obsp['connectivities']`` (or the graph of ``neighbors_key`` /
    ``obsp``).  Writes ``obs[key_added]`` (categorical), ``uns[key_added]['params']``,
    ``uns['<key_added>_colors']`` and ``uns['<key_added>_subclusters']`` (with
    ``restrict_to``: rows ``name``, ``parent``, ``n_cells`` appended; without: removed,
    since the column it described is replaced).

    Parameters
    ----------
    adata
        Annotated data with a kNN graph (:func:`~exprmat_widgets.tl.knn`).
    resolution
        A parameter value controlling the coarseness of the clustering: higher
        values lead to more clusters.
    restrict_to
        ``(obs_key, [clusters])``: re-cluster only the cells of those categories of
        ``obs[obs_key]``; the other cells keep their ``obs[obs_key]`` label.
    random_state
        Change the initialisation of the optimisation.
    key_added
        ``adata.obs`` key under which to add the cluster labels.
    adjacency
        Not supported (an explicit matrix cannot be recorded in the history): store
        the graph in ``adata.obsp`` and pass ``obsp`` instead.  Kept for scanpy's
        signature; anything but ``None`` is refused.
    directed
        Treat the graph as directed (only with ``flavor='leidenalg'``).
    use_weights
        Use the edge weights of the graph (``False``: every edge counts one).
    n_iterations
        How many iterations of the Leiden algorithm to perform; a negative value
        runs until it reaches an optimal partition.
    partition_type
        Name of a ``leidenalg`` partition class, e.g.
        ``'RBConfigurationVertexPartition'`` (only with ``flavor='leidenalg'``).
    neighbors_key
        Use the graph of ``uns[neighbors_key]`` (its ``connectivities_key``) instead
        of ``obsp['connectivities']``.
    obsp
        Use ``adata.obsp[obsp]`` as the adjacency matrix (not together with
        ``neighbors_key``).
    flavor
        ``'igraph'`` (default, fast, undirected) or ``'leidenalg'``.
    """
    v.number(resolution, "resolution", minimum=0)
    v.number(n_iterations, "n_iterations", integer=True)
    v.new_key("key_added", key_added)
    if adjacency is not None:
        raise ExprmatError(
            "adjacency matrices cannot be recorded in the history; store the graph in adata.obsp "
            "and pass obsp='<key>' instead."
        )
    if flavor not in ("igraph", "leidenalg"):
        raise ExprmatError(f"flavor must be 'igraph' or 'leidenalg', got {flavor!r}.")
    check_graph(adata, neighbors_key, obsp)
    if restrict_to is not None:
        if not (isinstance(restrict_to, (list, tuple)) and len(restrict_to) == 2):
            raise ExprmatError("restrict_to must be (obs_key, [clusters]), e.g. ('leiden', ['3', '5']).")
        rkey, rclusters = restrict_to
        rclusters = [str(c) for c in v.clusters_in(adata, rkey, rclusters)]
        if not isinstance(adata.obs[rkey].dtype, pd.CategoricalDtype):
            raise ExprmatError(f"obs[{rkey!r}] must be categorical to restrict clustering to some of its clusters.")
        restrict_to = (rkey, rclusters)
    kwargs = {}
    if flavor == "igraph":
        if directed:
            raise ExprmatError("flavor='igraph' clusters undirected graphs; pass directed=None or False.")
        if partition_type is not None:
            raise ExprmatError("partition_type needs flavor='leidenalg'.")
    else:
        kwargs["partition_type"] = _partition_class(partition_type)
        kwargs["directed"] = directed
    common = dict(resolution=resolution, random_state=random_state, use_weights=use_weights,
                  n_iterations=n_iterations, flavor=flavor, **kwargs)
    if restrict_to is None:
        sc.tl.leiden(adata, key_added=key_added, neighbors_key=neighbors_key, obsp=obsp, **common)
        adata.uns.pop(f"{key_added}_subclusters", None)  # the lineage of the column just replaced
        if term_column(key_added) in adata.obs.columns:  # ids of the labels just replaced
            del adata.obs[term_column(key_added)]
        sync_colors(adata, key_added)
        return
    rkey, rclusters = restrict_to
    col = adata.obs[rkey]
    chosen = pd.Index([str(c) for c in col.cat.categories]).get_indexer(rclusters)
    mask = np.isin(col.cat.codes.to_numpy(), chosen)
    groups = leiden_subgraph(graph_of(adata, neighbors_key, obsp), mask, "leiden", **common)
    write_subclusters(adata, rkey, key_added, mask, groups, where="leiden", resolution=resolution)
    adata.uns[key_added] = {"params": {"resolution": resolution, "random_state": random_state,
                                       "n_iterations": n_iterations}}


def _writes_subcluster(p, adata):
    out = p.get("key_added") or p["key"]
    return [("obs", out), ("uns", f"{out}_colors"), ("uns", f"{out}_subclusters"), *_term_writes(adata, p["key"], out)]


@command("subcluster", writes=_writes_subcluster, selections=("cells",))
def subcluster(
    adata,
    cells,
    resolution: float = 1.0,
    key: str = "leiden",
    key_added: str | None = None,
    random_state: int = 0,
    neighbors_key: str | None = None,
    polygon=None,
    basis: str | None = None,
    n_iterations: int = 2,
    use_weights: bool = True,
):
    """Leiden clustering of a selection of cells on its own part of the kNN graph.

    The selected cells' rows and columns of ``obsp['connectivities']`` (or
    the graph of ``neighbors_key``) are clustered with igraph's Leiden
    (scanpy's ``flavor='igraph'``; selecting all cells of clusters X gives
    the partition of ``sc.tl.leiden(restrict_to=(key, X), flavor='igraph')``);
    the other cells keep their label.  New labels are bounded (see
    :func:`write_subclusters`): ``'<old>,<i>'`` for a selection within one label
    ``<old>``, ``'<a>-<b>,<i>'`` for up to 3 short labels, else ``'sub,<i>'``, and
    never reuse a name.

    Parameters
    ----------
    adata
        Annotated data with a kNN graph (:func:`~exprmat_widgets.tl.knn`).
    cells
        Cell names, boolean mask, positions, or ``None`` with ``polygon`` and
        ``basis``.  Recorded by the cells it hits.
    resolution
        Leiden resolution: higher values give more (smaller) sub-clusters.
    key
        Categorical obs column holding the current clusters.
    key_added
        Column to write (default ``key``, overwritten).
    random_state
        Seed of Leiden's optimisation.
    neighbors_key
        Use the graph of ``uns[neighbors_key]`` (its ``connectivities_key``)
        instead of ``obsp['connectivities']``.
    polygon, basis
        The lasso drawn (vertices ``[[x, y], ...]``) and the embedding it was
        drawn on, used when ``cells`` is ``None``; recorded with the command.
    n_iterations
        Leiden iterations; a negative value runs until the partition is stable.
    use_weights
        Use the graph's edge weights (``False``: every edge counts one).

    Notes
    -----
    Reads ``obs[key]`` and the kNN graph.  Writes ``obs[key_added or key]``
    (the sub-clusters in place of their parent in the category order),
    its ``uns[..._colors]`` (untouched clusters keep their colours) and appends
    to ``uns['<key_added or key>_subclusters']`` (DataFrame ``name``, ``parent``,
    ``n_cells``: where each sub-cluster's cells came from).  When the labels carry Cell
    Ontology ids (``obs['<key>_ontology_term_id']``), writes that column of the output:
    a sub-cluster keeps the id its parents share (none when they differ).  Refused, changing
    nothing, when the selected cells share no kNN edge, or when Leiden finds a
    single cluster in them and they are all the cells of their label(s).
    """
    v.number(resolution, "resolution", minimum=0)
    n_iterations = v.number(n_iterations, "n_iterations", integer=True)
    out_key = key if key_added is None else v.new_key("key_added", key_added)
    check_graph(adata, neighbors_key, None)
    v.categorical(adata, key)  # a missing or non-categorical key fails before the work
    mask = _selection(adata, cells, polygon, basis, "subcluster")
    groups = leiden_subgraph(
        graph_of(adata, neighbors_key, None), mask, "subcluster", resolution=resolution,
        random_state=random_state, n_iterations=n_iterations, use_weights=use_weights, flavor="igraph",
    )
    new_labels = write_subclusters(adata, key, out_key, mask, groups, where="subcluster", resolution=resolution)
    logg.info(f"sub-clustered {int(mask.sum())} cells into {len(new_labels)} clusters ({new_labels[0]} ...).")
