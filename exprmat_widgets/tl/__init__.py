"""Core routines: each works on an AnnData in place and is recorded in its history.

One module per method; this package re-exports every public routine.
"""

from importlib import import_module

_MODULES = (
    "neighbors",  # knn
    "embedding",  # umap
    "clustering",  # leiden
    "annotation",  # exclude, annotate, merge_clusters, rename_cluster, label_cells, subcluster
    "marker_genes",  # markers, selection_markers, filter_markers
    "marker_summary",  # marker_groups, marker_group_means, marker_result_stale (display, read-only)
    "composition",  # proportion
    "sc3_clustering",  # sc3
    "nmf_consensus",  # consensus_nmf, consensus_nmf_extract_k
    "layers",  # derive_layer
)

__all__ = []
for _name in _MODULES:
    _mod = import_module(f"{__name__}.{_name}")
    for _fn in _mod.__all__:
        globals()[_fn] = getattr(_mod, _fn)
        __all__.append(_fn)
del _name, _mod, _fn
