"""Cluster panel: the clusters of one obs key with counts and colours, and the
annotation buttons.

There is one current selection, and every button acts on it and says so
("Label 158 lasso cells", "Exclude 2 clusters (1,234 cells)"):

* clusters toggled in the list (this clears a lasso),
* a lasso drawn in the scatter (this clears the toggled clusters),
* the unlabelled cells: those with no label (NaN) in the "label into" column
  ("Select unlabelled"), so that "the rest" can be labelled too.

Each button calls exactly one core routine (through ``Annotator.act``); the
panel holds no analysis logic:

==========  ==========================================  =====================================
button      clusters                                    lasso / unlabelled cells
==========  ==========================================  =====================================
exclude     ``em.exclude(adata, annotation=key, ...)``  ``em.exclude_cells(adata, cells, ...)``
label       ``em.label_cells(adata, label_key, cells, label)`` (the lasso's polygon recorded)
re-cluster  ``em.subcluster(adata, cells, resolution, key=key)``
merge       ``em.merge_clusters(adata, key, clusters, new_name)`` (clusters only)
rename      ``em.rename_cluster(adata, key, old, new)`` (one cluster only)
==========  ==========================================  =====================================

The label box (:mod:`.label_box`) completes Cell Ontology names and is emptied after a label.

After a label the scatter is coloured by the label column, so the new labels
show.  The list's colour swatches are those of ``key``; while the scatter is
coloured by another column they are hidden and the panel says which column the
plot shows (with a button to colour it by ``key`` again).  Rows are widgets
kept between refreshes: only a changed count or colour is sent to the page.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import pandas as pd

from ..colors import colors_of, default_palette
from ..errors import ExprmatError
from ._controls import action_button
from .label_box import LabelBox

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
        self.toggle.observe(panel._observer("select clusters", panel._on_toggle), names="value")
        self._color = None

    def update(self, color: str, count: int, total: int, show_color: bool = True):
        self._color = color
        self.swatch.value = _swatch(color) if show_color else ""
        pct = 100.0 * count / total if total else 0.0
        self.count.value = f"{count:,} cells ({pct:.1f}%)"


def _cells(n: int) -> str:
    return f"{n:,} cell" + ("" if n == 1 else "s")


class ClusterPanel:
    """The cluster list and annotation buttons (see the module docstring).

    ``panel.widget`` is the ipywidgets box; ``panel.selected`` the selected
    cluster names; ``panel.counts`` the displayed counts by cluster;
    ``panel.selection_kind`` what the buttons act on now (``'clusters'``,
    ``'lasso'``, ``'unlabelled'`` or ``None``).
    """

    def __init__(self, annotator, key: str = "leiden", label_key: str = "cell.type"):
        self.a = annotator
        adata = annotator.adata
        self._rows: dict[str, _Row] = {}
        self._silent = False
        self._home_key = key
        self._unlabelled = False  # the current selection is the unlabelled cells
        keys = annotation_keys(adata)
        # the key may not exist yet (an Annotator opened before any clustering): no value
        # until it appears (see refresh)
        self.key_dropdown = W.Dropdown(
            options=keys, value=key if key in keys else None, description="clusters of",
            layout=W.Layout(width="95%")
        )
        self.key_dropdown.add_class("em-key")
        self.key_dropdown.observe(self._observer("clusters of", self._on_key), names="value")
        self.summary = W.HTML()
        self.summary.add_class("em-cluster-summary")
        self.color_info = W.HTML()
        self.color_info.add_class("em-color-info")
        self.color_key_button = W.Button(description="Colour plot by clusters", layout=W.Layout(width="auto"))
        self.color_key_button.add_class("em-color-by-key")
        self.color_key_button.on_click(lambda _b: self.a.when_idle("colour by", lambda: self.a.show_key(self.key)))
        self.color_row = W.HBox([self.color_info, self.color_key_button],
                                layout=W.Layout(align_items="center", flex_flow="row wrap"))
        self.list_box = W.VBox(layout=W.Layout(max_height="320px", overflow="hidden auto", width="100%"))
        self.list_box.add_class("em-cluster-list")

        # names / labels
        self.name_text = W.Text(placeholder="new name (merge / rename)", layout=W.Layout(width="95%"))
        self.name_text.add_class("em-name")
        self.label_key_box = W.Combobox(
            options=keys, value=label_key, description="label into", ensure_option=False,
            layout=W.Layout(width="95%"),
        )
        self.label_key_box.add_class("em-label-key")
        self.label_key_box.observe(lambda ch: self.a.when_idle("label into", self._on_label_key), names="value")
        self.label_box = LabelBox(annotator, lambda: self.label_key)
        # the names of earlier versions (tests and notebooks use them)
        self.label_text = self.label_box.text
        self.term_suggestions = self.label_box.suggestions
        self.term_info = self.label_box.info
        self.resolution = W.BoundedFloatText(
            value=1.0, min=0.0, max=20.0, step=0.1, description="resolution", layout=W.Layout(width="95%")
        )
        self.resolution.add_class("em-resolution")

        # one button per routine, acting on the current selection (clusters, lasso or unlabelled);
        # the old per-source CSS classes stay so that pages and tests written for them still work
        self.exclude_button = action_button("Exclude", "drop the selected cells (em.exclude / em.exclude_cells)",
                                            self.on_exclude, "em-exclude", "danger")
        self.exclude_button.add_class("em-exclude-lasso")
        self.merge_button = action_button("Merge", "merge the selected clusters (em.merge_clusters)",
                                          self.on_merge, "em-merge")
        self.rename_button = action_button("Rename", "rename the selected cluster (em.rename_cluster)",
                                           self.on_rename, "em-rename")
        self.label_button = action_button("Label", "label the selected cells (em.label_cells)",
                                          self.on_label, "em-label-clusters", "primary")
        self.label_button.add_class("em-label-lasso")
        self.recluster_button = action_button("Re-cluster", "Leiden on the selected cells (em.subcluster)",
                                              self.on_recluster, "em-recluster")
        self.recluster_button.add_class("em-recluster-lasso")
        # the lasso buttons of earlier versions are the same buttons now
        self.lasso_label_button = self.label_button
        self.lasso_exclude_button = self.exclude_button
        self.lasso_recluster_button = self.recluster_button
        self.clear_button = action_button("Clear selection", "clear the clusters, lasso or unlabelled selection",
                                          lambda: self.a.when_idle("clear", self.clear_all), "em-clear")
        self.unlabelled_button = action_button(
            "Select unlabelled", "select the cells with no label (NaN) in the 'label into' column",
            lambda: self.a.when_idle("select unlabelled", self.select_unlabelled), "em-select-unlabelled")
        self.selection_info = W.HTML()
        self.selection_info.add_class("em-selection-info")
        self.lasso_info = self.selection_info  # name of earlier versions
        self.buttons = [
            self.exclude_button, self.merge_button, self.rename_button, self.label_button,
            self.recluster_button,
        ]
        wrap = W.Layout(flex_flow="row wrap")
        self.widget = W.VBox(
            [
                W.HTML("<b>Clusters</b>"),
                self.key_dropdown,
                self.summary,
                self.color_row,
                self.list_box,
                W.HTML('<b>Selection</b>'),
                self.selection_info,
                W.HBox([self.clear_button, self.unlabelled_button], layout=wrap),
                self.label_key_box,
                self.label_box.widget,
                W.HBox([self.label_button], layout=wrap),
                self.resolution,
                W.HBox([self.recluster_button, self.exclude_button], layout=wrap),
                self.name_text,
                W.HBox([self.merge_button, self.rename_button], layout=wrap),
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-cluster-panel")
        sc = annotator.scatter
        if hasattr(sc, "observe"):
            try:
                sc.observe(lambda ch: self.a.when_idle("lasso", self._on_lasso), names="selection")
                sc.observe(lambda ch: self.a.when_idle("colour", self._refresh_colors), names="color")
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
        """The clusters' obs column (the one the annotator opened on while it does not exist)."""
        return self.key_dropdown.value or self._home_key

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

    @property
    def selection_kind(self) -> str | None:
        """What the buttons act on: ``'clusters'``, ``'lasso'``, ``'unlabelled'`` or ``None``."""
        if self.selected:
            return "clusters"
        if self._unlabelled:
            return "unlabelled"
        if self.a.lasso()[0].size:
            return "lasso"
        return None

    def unlabelled_mask(self) -> np.ndarray:
        """Cells with no label (NaN) in ``obs[label_key]``; all cells while it does not exist."""
        adata = self.a.adata
        lk = self.label_key
        if lk and lk in adata.obs.columns:
            return adata.obs[lk].isna().to_numpy()
        return np.ones(adata.n_obs, dtype=bool)

    def _set_toggles(self, names) -> None:
        self._silent = True
        try:
            for n, r in self._rows.items():
                r.toggle.value = n in names
        finally:
            self._silent = False

    def _clear_lasso(self) -> None:
        sc = self.a.scatter
        if self.a.lasso()[0].size and hasattr(sc, "clear_selection"):
            sc.clear_selection()

    def select(self, clusters) -> None:
        """Select exactly these clusters (as if clicked); this clears a lasso."""
        clusters = {str(c) for c in clusters}
        unknown = clusters - set(self._rows)
        if unknown:
            raise ExprmatError(f"cluster(s) {sorted(unknown)} are not in obs[{self.key!r}].")
        self._set_toggles(clusters)
        self._on_toggle()

    def select_unlabelled(self) -> None:
        """Make the unlabelled cells (NaN in ``obs[label_key]``) the current selection."""
        n = int(self.unlabelled_mask().sum())
        if n == 0:
            raise ExprmatError(f"every cell has a label in obs[{self.label_key!r}]; nothing to select.")
        self._set_toggles(())
        self._unlabelled = True
        self._clear_lasso()
        self.rehighlight()
        self._refresh_selection()

    def clear_selection(self, highlight: bool = True) -> None:
        """Unselect the clusters (and the unlabelled cells)."""
        self._set_toggles(())
        self._unlabelled = False
        if highlight:
            self.rehighlight()
        self._refresh_selection()

    def clear_all(self) -> None:
        """Clear whatever is selected: clusters, unlabelled cells and the lasso."""
        self.clear_selection()
        self._clear_lasso()
        self._refresh_selection()

    def _mask(self, clusters) -> np.ndarray:
        """Cells of ``clusters`` (via the category codes: no per-cell string work)."""
        col = self.a.adata.obs[self.key]
        wanted = [str(c) for c in clusters]
        if isinstance(col.dtype, pd.CategoricalDtype):
            idx = np.flatnonzero(np.isin(np.asarray(col.cat.categories.astype(str)), wanted))
            return np.isin(col.cat.codes.to_numpy(), idx)
        return col.astype(str).isin(wanted).to_numpy()

    def rehighlight(self) -> None:
        """Highlight the selected clusters or unlabelled cells in the scatter (a lasso is
        drawn by the scatter itself)."""
        sc = self.a.scatter
        if not hasattr(sc, "highlight"):
            return
        kind = self.selection_kind
        if kind == "clusters" and hasattr(sc, "highlight_groups"):
            sc.highlight_groups(self.key, self.selected)  # the scatter then says "clusters: N cells"
        elif kind == "clusters":
            sc.highlight(self._mask(self.selected))
        elif kind == "unlabelled":
            sc.highlight(self.unlabelled_mask(), label=f"unlabelled cells of {self.label_key}")
        else:
            sc.highlight(None)

    def _on_toggle(self):
        """A cluster was (un)toggled: the clusters become the one current selection."""
        if self._silent:
            return
        if self.selected:
            self._unlabelled = False
            self._clear_lasso()
        self.rehighlight()
        self._refresh_selection()

    def _on_lasso(self):
        """A lasso was drawn: it becomes the one current selection."""
        if self.a.lasso()[0].size and (self.selected or self._unlabelled):
            self._set_toggles(())
            self._unlabelled = False
            self.rehighlight()
        self._refresh_selection()

    # ------------------------------------------------------------------ CL terms of the label box

    def _on_label_key(self):
        self._refresh_labels()
        self.label_box.refresh_info()
        if self._unlabelled and not self.unlabelled_mask().any():
            self._unlabelled = False
        self.rehighlight()
        self._refresh_selection()

    def _on_key(self, change=None):
        if self._silent:
            return
        self.clear_selection(highlight=False)
        self.refresh(None)
        self.a.show_key(self.key)
        self.rehighlight()

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
                elif cur is None and self._home_key not in keys:
                    self.key_dropdown.value = None  # still waiting for the clusters
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
            # the unlabelled selection follows the data; once all are labelled it is gone
            if self._unlabelled and not self.unlabelled_mask().any():
                self._unlabelled = False
        self._refresh_colors()
        self._refresh_selection()

    def _plot_key(self) -> str | None:
        """The column (or gene) the scatter is coloured by, or ``None`` without a scatter."""
        return getattr(self.a.scatter, "color", None)

    def _refresh_colors(self):
        """Swatches only while the plot shows ``key``'s colours; otherwise say what it shows."""
        shown = self._plot_key()
        match = shown is None or shown == self.key
        for r in self._rows.values():
            want = _swatch(r._color) if match and r._color else ""
            if r.swatch.value != want:
                r.swatch.value = want
        if match:
            self.color_info.value = (
                f'<span class="em-color-match" style="font-size:90%">plot coloured by '
                f"obs[{html.escape(repr(self.key), quote=False)}] (as the swatches)</span>" if shown is not None else ""
            )
            self.color_key_button.layout.display = "none"
        elif self.key not in self.a.adata.obs.columns:
            # no clusters yet (an Annotator opened before clustering): nothing to colour by
            self.color_info.value = ""
            self.color_key_button.layout.display = "none"
        else:
            adata = self.a.adata
            gene = shown in adata.var_names or (adata.raw is not None and shown in adata.raw.var_names)
            what = (f"obs[{shown!r}]" if shown in adata.obs.columns else f"gene {shown}" if gene
                    else f"obsm column {shown}" if shown else "no column")
            self.color_info.value = (
                f'<span class="em-color-other" style="font-size:90%">plot coloured by '
                f"{html.escape(what, quote=False)}, not by these clusters</span>"
            )
            self.color_key_button.description = f"Colour plot by {self.key}"
            self.color_key_button.layout.display = None

    def _refresh_list(self):
        adata = self.a.adata
        key = self.key
        if key not in adata.obs.columns:
            self.summary.value = (f"<i>obs[{html.escape(key)!r}] does not exist yet: run Leiden (or SC3) in the "
                                  "Analysis tab's Cluster section</i>")
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
        shown = self._plot_key()
        rows = {}
        for i, c in enumerate(cats):
            row = self._rows.get(c) or _Row(self, c)
            row.update(colors[i], int(counts[i]), adata.n_obs, show_color=shown is None or shown == key)
            rows[c] = row
        self._rows = rows
        self._set_toggles(selected)
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

    def describe_selection(self) -> tuple[str | None, str]:
        """``(kind, 'what the buttons act on')``, e.g. ``('lasso', '158 lasso cells')``."""
        kind = self.selection_kind
        if kind == "clusters":
            sel = self.selected
            n = int(self._mask(sel).sum())
            what = f"cluster {sel[0]}" if len(sel) == 1 else f"{len(sel)} clusters"
            return kind, f"{what} ({_cells(n)})"
        if kind == "unlabelled":
            return kind, f"{int(self.unlabelled_mask().sum()):,} unlabelled cells"
        if kind == "lasso":
            n = int(self.a.lasso()[0].size)
            return kind, f"{n:,} lasso cell" + ("" if n == 1 else "s")
        return None, ""

    def _refresh_selection(self):
        """The selection line and the buttons' labels, from the current selection."""
        kind, what = self.describe_selection()
        sel, poly = self.a.lasso()
        lk = html.escape(repr(self.label_key), quote=False)
        if kind == "clusters":
            names = ", ".join(self.selected)
            named = f": {html.escape(names[:120], quote=False)}" if len(self.selected) > 1 else ""
            info = f'<span class="em-selection-clusters">{html.escape(what)} selected{named}</span>'
        elif kind == "unlabelled":
            info = (f'<span class="em-selection-unlabelled">{html.escape(what)} selected '
                    f"(no label in obs[{lk}])</span>")
        elif kind == "lasso":
            info = (f'<span class="em-lasso-count">{sel.size:,} cells selected</span> by lasso'
                    + (f" (polygon of {len(poly)} vertices)" if poly else ""))
        else:
            info = ('<span class="em-selection-none">nothing selected: click clusters, draw a lasso '
                    "or select the unlabelled cells</span>")
        self.selection_info.value = info
        on = f" {what}" if what else " (nothing selected)"
        # full colour only when there is something to act on (still clickable: the click says why not)
        self.label_button.button_style = "primary" if what else ""
        self.exclude_button.button_style = "danger" if what else ""
        self.label_button.description = f"Label{on}"
        self.exclude_button.description = f"Exclude{on}"
        self.recluster_button.description = f"Re-cluster{on}"
        n_sel = len(self.selected)
        self.merge_button.description = f"Merge {n_sel} clusters" if n_sel >= 2 else "Merge (2+ clusters)"
        self.rename_button.description = (f"Rename cluster {self.selected[0]}" if n_sel == 1
                                          else "Rename (1 cluster)")
        n_unl = int(self.unlabelled_mask().sum())
        self.unlabelled_button.description = (f"Select {n_unl:,} unlabelled" if n_unl
                                              else "Select unlabelled (none)")

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
            self.a.last_error = f"{name}: {self.a.busy_reason()}"
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

    def _cells_args(self) -> dict:
        """``cells=`` (and the lasso's ``polygon=``, ``basis=``) of the current selection."""
        kind = self.selection_kind
        if kind == "clusters":
            return {"cells": self._mask(self.selected)}
        if kind == "unlabelled":
            return {"cells": self.unlabelled_mask()}
        if kind == "lasso":
            return self.a.lasso_args()
        raise ExprmatError(
            "nothing selected: click clusters in the list, draw a lasso around cells, or "
            "'Select unlabelled' first."
        )

    def _excluded_note(self, n_before: int):
        def note(_result):
            n = n_before - self.a.adata.n_obs
            return f"excluded {_cells(n)} - Undo restores them"

        return note

    def on_exclude(self):
        n0 = self.a.adata.n_obs
        if self.selection_kind == "clusters":
            args = self._guard("exclude", lambda: {"annotation": self.key, "remove": self._need()})
            if args is not None:
                self.a.act("exclude", _routine("exclude"), self.a.adata, note=self._excluded_note(n0), **args)
            return
        args = self._guard("exclude_cells", self._cells_args)
        if args is not None:
            self.a.act("exclude_cells", _routine("exclude_cells"), self.a.adata,
                       note=self._excluded_note(n0), **args)

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
            # the routine says nothing: the status line names what changed, as for a merge
            self.a.act("rename_cluster", _routine("rename_cluster"), self.a.adata,
                       after=lambda r: self._after_rename(args["new"]),
                       note=lambda r: f"renamed {args['old']!r} to {args['new']!r} in obs[{args['key']!r}]", **args)

    def _after_rename(self, name):
        self.name_text.value = ""
        if name in self._rows:
            self.select([name])

    def on_label(self):
        def build():
            lk = self._label_key_checked()
            label = self._text(self.label_text, "label")
            term = self.label_box.term_param()
            return {"key": lk, "label": label, **term, **self._cells_args()}

        args = self._guard("label_cells", build)
        if args is not None:
            # the new labels show at once: the scatter takes the label column's colours
            self.a.act("label_cells", _routine("label_cells"), self.a.adata,
                       after=lambda r: self._after_label(args["key"]), **args)

    def _after_label(self, label_key):
        self.label_box.reset()  # the cells are labelled: the next selection starts empty
        self.a.show_key(label_key)
        self.rehighlight()
        self._refresh_selection()

    def on_recluster(self):
        def build():
            return {"resolution": float(self.resolution.value), "key": self.key, **self._cells_args()}

        args = self._guard("subcluster", build)
        if args is not None:
            self.a.act("subcluster", _routine("subcluster"), self.a.adata, **args)

    def _label_key_checked(self):
        lk = self.label_key
        if not lk:
            raise ExprmatError("type the obs column to label into ('label into'), e.g. cell.type.")
        return lk

    # the buttons of earlier versions: one button per routine acts on the current selection
    on_label_lasso = on_label
    on_exclude_lasso = on_exclude
    on_recluster_lasso = on_recluster
