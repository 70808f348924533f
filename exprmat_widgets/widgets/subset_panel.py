"""Subset panel: where the Annotator was opened on an :class:`~exprmat_widgets.Experiment`
(``expm.rna.annotator()``), keep the selected clusters as a named subset and open the
Annotator on it below.

=========================  ===========================================================
button                     core routine
=========================  ===========================================================
Subset of selected         ``expm.build_subset(name, slot, keys=[key],
                           values=[selected clusters])``: a copy whose history is the
                           parent's followed by a recorded ``subset_cells``; the
                           parent's data and history are not changed
=========================  ===========================================================

The subset's Annotator (same key, basis and label column) is shown under this panel and
kept in :attr:`SubsetPanel.opened`; the subset itself is ``expm.subsets[name]``.
"""

from __future__ import annotations

import re

import ipywidgets as W

from ..errors import ExprmatError
from ._controls import action_button, guarded

__all__ = ["SubsetPanel"]


class SubsetPanel:
    """Build a subset of the experiment from the selected clusters and annotate it."""

    def __init__(self, annotator, experiment, slot: str = "rna"):
        self.a = annotator
        self.experiment = experiment
        self.slot = slot
        self.opened = None  # the Annotator on the last subset built
        self.name = W.Text(value="", placeholder="subset name (default: from the clusters)",
                           description="subset", layout=W.Layout(width="260px"))
        self.name.add_class("em-subset-name")
        self.button = action_button("Subset of selected", "expm.build_subset: keep the selected clusters "
                                    "and open the Annotator on them", self.on_subset, "em-build-subset", "info")
        self.buttons = [self.button]
        self.below = W.VBox([], layout=W.Layout(width="100%"))
        self.below.add_class("em-subset-annotator")
        self.widget = W.VBox([
            W.HTML("<b>Subsets</b> <span style='color:var(--jp-ui-font-color2,#666)'>of the experiment: "
                   "select clusters in the list, then</span>"),
            W.HBox([self.name, self.button], layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.below,
        ], layout=W.Layout(width="100%", padding="4px 6px"))
        self.widget.add_class("em-subset-panel")

    def _args(self):
        a = self.a
        selected = list(a.clusters.selected)
        if not selected:
            raise ExprmatError(f"no clusters selected: select the clusters of obs[{a.key!r}] to keep "
                               "in the cluster list first.")
        name = self.name.value.strip() or re.sub(r"[^\w.+-]+", "_", f"{a.key}-{'+'.join(selected)}")
        if name in self.experiment.subsets:
            raise ExprmatError(f"a subset named {name!r} exists already; type another name in the subset box.")
        return name, selected

    def on_subset(self):
        a = self.a
        args = guarded(a, "build_subset", self._args)
        if args is None:
            return
        name, selected = args

        def after(sub):
            self.open(sub)

        a.act("build_subset", self.experiment.build_subset, name, slot=self.slot, keys=[a.key],
              values=[selected], after=after,
              note=lambda sub: f"subset {name!r}: {sub.n_obs:,} cells, its Annotator is shown below")

    def open(self, sub):
        """Open the Annotator on ``sub`` (a subset of the experiment) under this panel."""
        from .annotator import Annotator

        a = self.a
        self.opened = Annotator(sub, key=a.key, basis=a.basis, label_key=a.label_key, background=a.background)
        self.below.children = [W.HTML(f"<b>Annotator of the subset</b> ({sub.n_obs:,} cells)"), self.opened]
        return self.opened
