"""Static figures of the tutorial (matplotlib); each returns the Figure.

One module per figure family; this package re-exports every public figure.
"""

from importlib import import_module

_MODULES = (
    "embedding",  # plot_embedding, plot_multiple_embedding
    "cnmf",  # plot_cnmf_silhouette (alias plot_cnmf_silhoutte), plot_cnmf_distance_usages/_modules
    "markers",  # plot_markers
    "composition",  # plot_proportion
)

__all__ = []
for _name in _MODULES:
    _mod = import_module(f"{__name__}.{_name}")
    for _fn in _mod.__all__:
        globals()[_fn] = getattr(_mod, _fn)
        __all__.append(_fn)
del _name, _mod, _fn
