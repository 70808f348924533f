"""Cluster panel: the clusters of one obs key with counts and colours, and the
annotation buttons.

Each button calls exactly one core routine (through ``Annotator.act``); the
panel holds no analysis logic:

=====================  ==================================================
button                 core routine
=====================  ==================================================
exclude                ``em.exclude(adata, annotation=key, remove=[...])``
merge                  ``em.merge_clusters(adata, key, clusters, new_name)``
rename                 ``em.rename_cluster(adata, key, old, new)``
label                  ``em.label_cells(adata, label_key, cells, label)``
re-cluster             ``em.subcluster(adata, cells, resolution, key=key)``
lasso: label           ``em.label_cells(..., polygon=, basis=)``
lasso: exclude         ``em.exclude_cells(adata, cells, polygon, basis)``
lasso: re-cluster      ``em.subcluster(adata, cells, ..., polygon, basis)``
=====================  ==================================================

Clicking a cluster toggles it in the selection, which the scatter
highlights (``scatter.highlight(mask)``).  Rows are widgets kept between
refreshes: only a changed count or colour is sent to the page.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import pandas as pd

from ..colors import colors_of, default_palette
from ..errors import ExprmatError
from ._controls import action_button

__all__ = ["ClusterPanel"]


def _em():
    import exprmat_widgets as em

    return em


def _routine(name):
    fn = getattr(_em(), name, None)
    if fn is None:
        raise ExprmatError(f"em.{name} is not available in this version of exprmat_widgets.")
    return fn


def _swatch(color: str) -> str:
    return (
        f'<span class="em-swatch" style="display:inline-block;width:12px;height:12px;'
        f'border-radius:2px;margin-top:9px;background:{html.escape(color)}"></span>'
    )


def annotation_keys(adata) -> list[str]:
    """obs columns that look like annotations (categorical, string or bool)."""
    out = []
    for c in adata.obs.columns:
        col = adata.obs[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or col.dtype == bool:
            out.append(str(c))
    return out


class _Row:
    """One cluster: colour swatch, toggle button (name), count."""

    def __init__(self, panel, name: str):
        self.name = name
        self.swatch = W.HTML(layout=W.Layout(width="18px"))
        self.toggle = W.ToggleButton(
            description=name, tooltip=f"select cluster {name}", layout=W.Layout(width="auto", min_width="90px")
        )
        self.toggle.add_class("em-cluster-toggle")
        self.count = W.Label(layout=W.Layout(width="auto"))
        self.count.add_class("em-cluster-count")
        self.box = W.HBox([self.swatch, self.toggle, self.count], layout=W.Layout(align_items="center"))
        self.box.add_class("em-cluster-row")
        self.toggle.observe(panel._observer("highlight clusters", panel._on_toggle), names="value")

    def update(self, color: str, count: int, total: int):
        self.swatch.value = _swatch(color)
        pct = 100.0 * count / total if total else 0.0
        self.count.value = f"{count:,} cells ({pct:.1f}%)"


class ClusterPanel:
    """The cluster list and annotation buttons (see the module docstring).

    ``panel.widget`` is the ipywidgets box; ``panel.selected`` the selected
    cluster names; ``panel.counts`` the displayed counts by cluster.
    """

    def __init__(self, annotator, key: str = "leiden", label_key: str = "cell.type"):
        self.a = annotator
        adata = annotator.adata
        self._rows: dict[str, _Row] = {}
        self._silent = False
        self._home_key = key
        keys = annotation_keys(adata)
        self.key_dropdown = W.Dropdown(
            options=keys, value=key, description="clusters of", layout=W.Layout(width="95%")
        )
        self.key_dropdown.add_class("em-key")
        self.key_dropdown.observe(self._observer("clusters of", self._on_key), names="value")
        self.summary = W.HTML()
        self.summary.add_class("em-cluster-summary")
        self.list_box = W.VBox(layout=W.Layout(max_height="320px", overflow_y="auto", width="100%"))
        self.list_box.add_class("em-cluster-list")

        # names / labels
        self.name_text = W.Text(placeholder="new name (merge / rename)", layout=W.Layout(width="95%"))
        self.name_text.add_class("em-name")
        self.label_key_box = W.Combobox(
            options=keys, value=label_key, description="label into", ensure_option=False,
            layout=W.Layout(width="95%"),
        )
        self.label_key_box.add_class("em-label-key")
        self.label_key_box.observe(lambda ch: self.a.when_idle("label into", self._refresh_labels),
                                   names="value")
        self.label_text = W.Combobox(
            options=[], placeholder="label (e.g. Neu)", ensure_option=False, description="label",
            layout=W.Layout(width="95%"),
        )
        self.label_text.add_class("em-label")
        self.resolution = W.BoundedFloatText(
            value=1.0, min=0.0, max=20.0, step=0.1, description="resolution", layout=W.Layout(width="95%")
        )
        self.resolution.add_class("em-resolution")

        self.exclude_button = action_button("Exclude", "drop the cells of the selected clusters (em.exclude)",
                                     self.on_exclude, "em-exclude", "danger")
        self.merge_button = action_button("Merge", "merge the selected clusters (em.merge_clusters)",
                                   self.on_merge, "em-merge")
        self.rename_button = action_button("Rename", "rename the selected cluster (em.rename_cluster)",
                                    self.on_rename, "em-rename")
        self.label_button = action_button("Label", "label the cells of the selected clusters (em.label_cells)",
                                   self.on_label, "em-label-clusters", "primary")
        self.recluster_button = action_button("Re-cluster", "Leiden on the selected clusters (em.subcluster)",
                                       self.on_recluster, "em-recluster")
        self.clear_button = action_button("Clear", "clear the cluster selection",
                                          lambda: self.a.when_idle("clear", self.clear_selection), "em-clear")
        self.lasso_info = W.HTML()
        self.lasso_info.add_class("em-lasso-info")
        self.lasso_label_button = action_button("Label lasso", "label the lasso-selected cells (em.label_cells)",
                                         self.on_label_lasso, "em-label-lasso", "primary")
        self.lasso_exclude_button = action_button("Exclude lasso", "drop the lasso-selected cells (em.exclude_cells)",
                                           self.on_exclude_lasso, "em-exclude-lasso", "danger")
        self.lasso_recluster_button = action_button("Re-cluster lasso", "Leiden on the lasso cells (em.subcluster)",
                                             self.on_recluster_lasso, "em-recluster-lasso")
        self.buttons = [
            self.exclude_button, self.merge_button, self.rename_button, self.label_button,
            self.recluster_button, self.lasso_label_button, self.lasso_exclude_button,
            self.lasso_recluster_button,
        ]
        self.widget = W.VBox(
            [
                W.HTML("<b>Clusters</b>"),
                self.key_dropdown,
                self.summary,
                self.list_box,
                W.HBox([self.clear_button, self.exclude_button, self.merge_button, self.rename_button,
                        self.recluster_button], layout=W.Layout(flex_flow="row wrap")),
                self.name_text,
                self.resolution,
                self.label_key_box,
                self.label_text,
                W.HBox([self.label_button]),
                W.HTML("<b>Lasso selection</b>"),
                self.lasso_info,
                W.HBox([self.lasso_label_button, self.lasso_exclude_button, self.lasso_recluster_button],
                       layout=W.Layout(flex_flow="row wrap")),
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-cluster-panel")
        sc = annotator.scatter
        if hasattr(sc, "observe"):
            try:
                sc.observe(lambda ch: self.a.when_idle("lasso", self._refresh_lasso), names="selection")
                if hasattr(sc, "current_selection"):
                    sc.observe(self._on_scatter_current, names="current_selection")
            except Exception:
                pass
        self.refresh(None)

    def _observer(self, name, func):
        """A widget observer: ignores the changes the panel makes itself (``_silent``) and runs
        ``func`` through :meth:`Annotator.when_idle` (after a running action, never raising)."""
        def observe(change):
            if not self._silent:
                self.a.when_idle(name, func)

        return observe

    # ------------------------------------------------------------------ state

    @property
    def key(self) -> str:
        return self.key_dropdown.value

    @property
    def label_key(self) -> str:
        return (self.label_key_box.value or "").strip()

    @property
    def selected(self) -> list[str]:
        return [n for n, r in self._rows.items() if r.toggle.value]

    @property
    def counts(self) -> dict[str, int]:
        """Displayed cluster -> count (parsed back from the rows)."""
        return {n: int(r.count.value.split()[0].replace(",", "")) for n, r in self._rows.items()}

    def select(self, clusters) -> None:
        """Select exactly these clusters (as if clicked)."""
        clusters = {str(c) for c in clusters}
        unknown = clusters - set(self._rows)
        if unknown:
            raise ExprmatError(f"cluster(s) {sorted(unknown)} are not in obs[{self.key!r}].")
        self._silent = True
        try:
            for n, r in self._rows.items():
                r.toggle.value = n in clusters
        finally:
            self._silent = False
        self._on_toggle()

    def clear_selection(self, highlight: bool = True) -> None:
        self._silent = True
        try:
            for r in self._rows.values():
                r.toggle.value = False
        finally:
            self._silent = False
        if highlight:
            self._on_toggle()

    def _mask(self, clusters) -> np.ndarray:
        """Cells of ``clusters`` (via the category codes: no per-cell string work)."""
        col = self.a.adata.obs[self.key]
        wanted = [str(c) for c in clusters]
        if isinstance(col.dtype, pd.CategoricalDtype):
            idx = np.flatnonzero(np.isin(np.asarray(col.cat.categories.astype(str)), wanted))
            return np.isin(col.cat.codes.to_numpy(), idx)
        return col.astype(str).isin(wanted).to_numpy()

    def _on_toggle(self):
        if self._silent:
            return
        sel = self.selected
        sc = self.a.scatter
        if hasattr(sc, "highlight_groups"):
            # one selection at a time: highlighting clusters clears the scatter's lasso
            sc.highlight_groups(self.key, sel)
        elif hasattr(sc, "highlight"):
            sc.highlight(self._mask(sel) if sel else None)

    def _on_scatter_current(self, change):
        """A lasso (or cells set from Python) replaces the toggled clusters: untoggle them."""
        if (change["new"] or {}).get("kind") in ("lasso", "cells") and self.selected:
            self.clear_selection(highlight=False)

    def _on_key(self, change=None):
        if self._silent:
            return
        self.clear_selection(highlight=False)
        self.refresh(None)
        self.a.show_key(self.key)
        sc = self.a.scatter
        if hasattr(sc, "highlight"):
            sc.highlight(None)

    # ------------------------------------------------------------------ refresh

    def refresh(self, changed=None) -> None:
        adata = self.a.adata
        keys = annotation_keys(adata)
        key_gone = False
        if list(self.key_dropdown.options) != keys:
            self._silent = True
            try:
                cur = self.key_dropdown.value
                self.key_dropdown.options = keys
                if cur in keys:
                    self.key_dropdown.value = cur
                elif keys:
                    # the shown column is gone (e.g. the command that made it was undone): back
                    # to the column the annotator opened on, else the first one
                    key_gone = True
                    self.key_dropdown.value = self._home_key if self._home_key in keys else keys[0]
            finally:
                self._silent = False
        if key_gone:
            # a key switch the user did not make: the list, selection and colours follow it
            self.clear_selection(highlight=False)
            changed = None
            self.a.show_key(self.key)
        if list(self.label_key_box.options) != keys:
            self.label_key_box.options = keys
        if changed is None or "obs_names" in changed or f"obs:{self.key}" in changed or any(
            c == f"uns:{self.key}_colors" for c in changed
        ):
            self._refresh_list()
        if changed is None or f"obs:{self.label_key}" in changed:
            self._refresh_labels()
        self._refresh_lasso()

    def _refresh_list(self):
        adata = self.a.adata
        key = self.key
        if key not in adata.obs.columns:
            self.summary.value = f"<i>obs[{html.escape(key)!r}] does not exist yet</i>"
            self.list_box.children = ()
            self._rows = {}
            return
        col = adata.obs[key]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(str).astype("category")
        cats = [str(c) for c in col.cat.categories]
        counts = np.bincount(col.cat.codes.to_numpy()[col.cat.codes.to_numpy() >= 0], minlength=len(cats))
        cmap = colors_of(adata, key)
        pal = default_palette(len(cats))
        colors = [cmap.get(c, pal[i]) if cmap else pal[i] for i, c in enumerate(col.cat.categories)]
        selected = set(self.selected)
        rows = {}
        for i, c in enumerate(cats):
            row = self._rows.get(c) or _Row(self, c)
            row.update(colors[i], int(counts[i]), adata.n_obs)
            rows[c] = row
        self._silent = True
        try:
            for c, r in rows.items():
                r.toggle.value = c in selected
        finally:
            self._silent = False
        self._rows = rows
        children = tuple(r.box for r in rows.values())
        if children != tuple(self.list_box.children):
            self.list_box.children = children
        n_na = int(col.isna().sum())
        extra = f", {n_na:,} unlabelled" if n_na else ""
        self.summary.value = (
            f'<span class="em-summary">{len(cats)} clusters in obs[{html.escape(repr(key))}], '
            f"{adata.n_obs:,} cells{extra}</span>"
        )

    def _refresh_labels(self):
        adata = self.a.adata
        lk = self.label_key
        opts = []
        if lk in adata.obs.columns:
            col = adata.obs[lk]
            opts = [str(c) for c in (col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype)
                                     else pd.unique(col.dropna()))]
        if list(self.label_text.options) != opts:
            self.label_text.options = opts

    def _refresh_lasso(self):
        sel, poly = self.a.lasso()
        if sel.size:
            self.lasso_info.value = (
                f'<span class="em-lasso-count">{sel.size:,} cells selected</span>'
                + (f" (polygon of {len(poly)} vertices)" if poly else "")
            )
        else:
            self.lasso_info.value = '<span class="em-lasso-count">no cells selected: draw a lasso</span>'

    # ------------------------------------------------------------------ actions (one routine each)

    def _need(self, n_min=1, n_max=None, what="cluster"):
        sel = self.selected
        if len(sel) < n_min or (n_max is not None and len(sel) > n_max):
            if n_max == 1:
                need = f"exactly one {what}"
            else:
                need = f"at least {n_min} {what}s"
            raise ExprmatError(f"select {need} in the list first (selected: {sel or 'none'}).")
        return sel

    def _guard(self, name, build):
        """Validate the panel inputs; show a problem in the status line instead of raising.
        While an action runs the data may be half-changed: refuse before reading them."""
        if self.a.busy:
            self.a.last_error = f"{name}: another action is still running; wait for it to finish."
            self.a._set_status(self.a.last_error, "error")
            return None
        try:
            return build()
        except Exception as e:  # never raised into the click handler
            self.a.last_error = f"{name}: {e}"
            self.a._set_status(self.a.last_error, "error")
            return None

    def _text(self, widget, what):
        s = (widget.value or "").strip()
        if not s:
            raise ExprmatError(f"type a {what} first.")
        return s

    def on_exclude(self):
        args = self._guard("exclude", lambda: {"annotation": self.key, "remove": self._need()})
        if args is not None:
            self.a.act("exclude", _routine("exclude"), self.a.adata, **args)

    def on_merge(self):
        def build():
            sel = self._need(2)
            name = (self.name_text.value or "").strip() or None
            return {"key": self.key, "clusters": sel, "new_name": name}

        args = self._guard("merge_clusters", build)
        if args is not None:
            self.a.act("merge_clusters", _routine("merge_clusters"), self.a.adata,
                       after=lambda r: self._after_rename(args["new_name"] or args["clusters"][0]), **args)

    def on_rename(self):
        def build():
            old = self._need(1, 1)[0]
            return {"key": self.key, "old": old, "new": self._text(self.name_text, "new name")}

        args = self._guard("rename_cluster", build)
        if args is not None:
            self.a.act("rename_cluster", _routine("rename_cluster"), self.a.adata,
                       after=lambda r: self._after_rename(args["new"]), **args)

    def _after_rename(self, name):
        self.name_text.value = ""
        if name in self._rows:
            self.select([name])

    def on_label(self):
        def build():
            sel = self._need()
            lk = self._label_key_checked()
            return {"key": lk, "cells": self._mask(sel), "label": self._text(self.label_text, "label")}

        args = self._guard("label_cells", build)
        if args is not None:
            self.a.act("label_cells", _routine("label_cells"), self.a.adata, **args)

    def on_recluster(self):
        def build():
            sel = self._need()
            return {"cells": self._mask(sel), "resolution": float(self.resolution.value), "key": self.key}

        args = self._guard("subcluster", build)
        if args is not None:
            self.a.act("subcluster", _routine("subcluster"), self.a.adata, **args)

    def _label_key_checked(self):
        lk = self.label_key
        if not lk:
            raise ExprmatError("type the obs column to label into ('label into'), e.g. cell.type.")
        return lk

    def on_label_lasso(self):
        def build():
            lk = self._label_key_checked()
            label = self._text(self.label_text, "label")
            return {"key": lk, "label": label, **self.a.lasso_args()}

        args = self._guard("label_cells", build)
        if args is not None:
            self.a.act("label_cells", _routine("label_cells"), self.a.adata, **args)

    def on_exclude_lasso(self):
        args = self._guard("exclude_cells", self.a.lasso_args)
        if args is not None:
            self.a.act("exclude_cells", _routine("exclude_cells"), self.a.adata, **args)

    def on_recluster_lasso(self):
        def build():
            return {"resolution": float(self.resolution.value), "key": self.key, **self.a.lasso_args()}

        args = self._guard("subcluster", build)
        if args is not None:
            self.a.act("subcluster", _routine("subcluster"), self.a.adata, **args)
