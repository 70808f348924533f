"""Leiden clustering and sub-clustering of a selection (scanpy's ``tl.leiden``)."""

from __future__ import annotations

import leidenalg
import pandas as pd
import scanpy as sc

from .. import _validate as v
from ..colors import colors_of, sync_colors
from ..errors import ExprmatError, MissingKeyError
from ..history import command

__all__ = ["leiden"]


def _writes(p, adata):
    return [("obs", p["key_added"]), ("uns", f"{p['key_added']}_colors")]


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
    ``obs[key]``; their cells get labels ``'<cluster>,<i>'`` and the rest keep
    theirs.  Reads ``obsp['connectivities']`` (or the graph of
    ``neighbors_key`` / ``obsp``).  Writes ``obs[key_added]`` (categorical),
    ``uns[key_added]['params']`` and ``uns['<key_added>_colors']``.
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
    previous = {}
    if restrict_to is not None:
        if not (isinstance(restrict_to, (list, tuple)) and len(restrict_to) == 2):
            raise ExprmatError("restrict_to must be (obs_key, [clusters]), e.g. ('leiden', ['3', '5']).")
        rkey, rclusters = restrict_to
        rclusters = [str(c) for c in v.clusters_in(adata, rkey, rclusters)]
        if not isinstance(adata.obs[rkey].dtype, pd.CategoricalDtype):
            raise ExprmatError(f"obs[{rkey!r}] must be categorical to restrict clustering to some of its clusters.")
        restrict_to = (rkey, rclusters)
        previous = colors_of(adata, rkey)
    kwargs = {}
    if flavor == "igraph":
        if directed:
            raise ExprmatError("flavor='igraph' clusters undirected graphs; pass directed=None or False.")
        if partition_type is not None:
            raise ExprmatError("partition_type needs flavor='leidenalg'.")
    else:
        kwargs["partition_type"] = _partition_class(partition_type)
        kwargs["directed"] = directed
    sc.tl.leiden(
        adata,
        resolution=resolution,
        restrict_to=restrict_to,
        random_state=random_state,
        key_added=key_added,
        use_weights=use_weights,
        n_iterations=n_iterations,
        neighbors_key=neighbors_key,
        obsp=obsp,
        flavor=flavor,
        **kwargs,
    )
    if restrict_to is not None and key_added == "leiden":  # scanpy writes 'leiden_R' in that case
        adata.obs["leiden"] = adata.obs.pop("leiden_R")
        if "leiden_R" in adata.uns:
            adata.uns["leiden"] = adata.uns.pop("leiden_R")
    # clusters left as they were keep their colours; sub-clusters get unused ones
    sync_colors(adata, key_added, previous=previous)
