"""Core routines: each works on an AnnData in place and is recorded in its history.

One module per method; this package re-exports every public routine.
"""

from . import ontology  # noqa: F401  (em.tl.ontology: Cell Ontology look-ups)
from ._first_knn import warm_up
from .annotation import (
    annotate,
    exclude,
    exclude_cells,
    label_cells,
    merge_clusters,
    rename_cluster,
    subset_cells,
    term_mapping,
)
from .cellxgene import export_cellxgene
from .clustering import leiden, subcluster
from .compare import compare_annotations, diff_histories
from .composition import proportion
from .embedding import umap
from .layers import derive_layer
from .marker_filter import filter_markers, unavailable_filters
from .marker_genes import markers, selection_markers
from .marker_summary import (
    default_marker_data,
    latest_marker_key,
    marker_cell_values,
    marker_data_args,
    marker_data_options,
    marker_group_means,
    marker_groups,
    marker_result_stale,
    marker_violins,
)
from .neighbors import knn
from .nmf_consensus import consensus_nmf, consensus_nmf_extract_k
from .preprocessing import harmony, highly_variable_genes, log1p, normalize_total, pca
from .programs import label_by_program, program_top_genes
from .sc3_clustering import sc3

__all__ = [
    "pca",
    "normalize_total",
    "log1p",
    "highly_variable_genes",
    "harmony",
    "annotate",
    "compare_annotations",
    "consensus_nmf",
    "consensus_nmf_extract_k",
    "default_marker_data",
    "derive_layer",
    "diff_histories",
    "exclude",
    "exclude_cells",
    "export_cellxgene",
    "filter_markers",
    "knn",
    "label_by_program",
    "label_cells",
    "latest_marker_key",
    "leiden",
    "marker_data_args",
    "marker_data_options",
    "marker_cell_values",
    "marker_group_means",
    "marker_groups",
    "marker_result_stale",
    "marker_violins",
    "markers",
    "merge_clusters",
    "program_top_genes",
    "proportion",
    "rename_cluster",
    "sc3",
    "selection_markers",
    "subcluster",
    "subset_cells",
    "term_mapping",
    "umap",
    "unavailable_filters",
    "warm_up",
]
