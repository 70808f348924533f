"""exprmat_widgets: clustering and annotation of single-cell RNA-seq data in JupyterLab,
with every action recorded as a replayable command in the AnnData.

``import exprmat_widgets as em``; routines follow scanpy's conventions
(``adata`` first, ``key_added``, ``random_state``).
"""

import numpy as np  # noqa: F401  (the tutorial calls em.np.expm1)

from . import datasets, pl, tl  # noqa: F401
from . import history as _history_module  # noqa: F401
from ._settings import settings  # noqa: F401
from ._version import __version__  # noqa: F401
from .errors import ExprmatError, MissingKeyError, ReplayError  # noqa: F401
from .history import history, history_to_script, replay, undo  # noqa: F401
from .lazy import read_lazy  # noqa: F401
from .pl import *  # noqa: F403
from .selection import decode_selection, encode_selection  # noqa: F401
from .tl import *  # noqa: F403


def version() -> str:
    """The package version."""
    return __version__


def __getattr__(name):
    # the widgets pull in anywidget and bokeh; load them only when asked for
    # (import_module, not `from . import`, which would call this function again)
    from importlib import import_module

    if name in ("Annotator", "widgets"):
        widgets = import_module(f"{__name__}.widgets")
        return widgets if name == "widgets" else getattr(widgets, name)
    if name in ("Experiment", "load_experiment", "experiment"):
        experiment = import_module(f"{__name__}.experiment")
        return experiment if name == "experiment" else getattr(experiment, name)
    raise AttributeError(f"module 'exprmat_widgets' has no attribute {name!r}")
