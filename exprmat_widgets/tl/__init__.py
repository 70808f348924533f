"""Core routines: each works on an AnnData in place and is recorded in its history.

One module per method; this package re-exports every public routine.
"""

from ._first_knn import warm_up
from .annotation import (
    annotate,
    exclude,
    exclude_cells,
    label_cells,
    merge_clusters,
    rename_cluster,
    subset_cells,
)
from .clustering import leiden, subcluster
from .composition import proportion
from .embedding import umap
from .layers import derive_layer
from .marker_genes import filter_markers, markers, selection_markers
from .marker_summary import (
    default_marker_data,
    latest_marker_key,
    marker_data_args,
    marker_data_options,
    marker_group_means,
    marker_groups,
    marker_result_stale,
)
from .neighbors import knn
from .nmf_consensus import consensus_nmf, consensus_nmf_extract_k
from .preprocessing import harmony, highly_variable_genes, log1p, normalize_total, pca
from .sc3_clustering import sc3

__all__ = [
    "pca",
    "normalize_total",
    "log1p",
    "highly_variable_genes",
    "harmony",
    "annotate",
    "consensus_nmf",
    "consensus_nmf_extract_k",
    "default_marker_data",
    "derive_layer",
    "exclude",
    "exclude_cells",
    "filter_markers",
    "knn",
    "label_cells",
    "latest_marker_key",
    "leiden",
    "marker_data_args",
    "marker_data_options",
    "marker_group_means",
    "marker_groups",
    "marker_result_stale",
    "markers",
    "merge_clusters",
    "proportion",
    "rename_cluster",
    "sc3",
    "selection_markers",
    "subcluster",
    "subset_cells",
    "umap",
    "warm_up",
]
