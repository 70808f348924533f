"""Notebook widgets: thin front ends that call the core routines.

``Annotator`` composes the linked panels (UMAP scatter, clusters, markers,
history); the panels can also be used on their own through it.
"""

from .analysis_panel import AnalysisPanel
from .annotator import Annotator
from .cluster_panel import ClusterPanel
from .compare_panel import ComparePanel
from .history_panel import HistoryPanel
from .marker_panel import MarkerPanel

__all__ = ["Annotator", "AnalysisPanel", "ClusterPanel", "ComparePanel", "MarkerPanel", "HistoryPanel", "UmapScatter"]


def __getattr__(name):
    if name == "UmapScatter":  # the WebGL scatter (anywidget): imported when asked for
        from .scatter import UmapScatter

        return UmapScatter
    raise AttributeError(f"module 'exprmat_widgets.widgets' has no attribute {name!r}")
