"""Subsets of cells.

The recorded in-place subset, :func:`~exprmat_widgets.tl.annotation.subset_cells`,
lives with the other cell-removing commands in :mod:`.annotation`;
:meth:`exprmat_widgets.experiment.Experiment.build_subset` writes subsets of an
experiment to disk.  Nothing is exported from here.
"""

from importlib import import_module

# Import the experiment module with the package, so that ``em.load_experiment`` /
# ``em.Experiment`` resolve: the lazy ``from . import experiment`` in the package's
# ``__getattr__`` recurses into ``__getattr__`` itself when the submodule is not
# loaded yet (it is cheap: anndata, numpy and pandas only).
import_module("exprmat_widgets.experiment")

__all__: list[str] = []
