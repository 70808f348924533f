"""Marker panel: marker genes of the chosen clusters, or of the lasso selection
against the rest, as one of the tutorial's four views (dot plot, matrix plot, stacked
violin, tracks plot: SVG drawn by :mod:`._marker_svg`) and a table (a small anywidget).

=======================  =================================================
control                  core routine
=======================  =================================================
Markers of clusters      ``em.markers(adata, groupby=key, groups=selected
                         clusters or 'all', method=..., layer= / use_raw=
                         (the "data" choice), pts=True)``
Markers of lasso         ``em.selection_markers(adata, cells, polygon=,
                         basis=, method=..., layer= / use_raw=)``
Recompute                ``em.markers`` again with the stale result's
                         groupby, reference, method and data, all groups
filters                  ``em.filter_markers(adata, key, n_genes,
                         min_logfoldchange, max_p_adjust, min_pct,
                         max_pct_reference)`` (not recorded: a view)
view                     what is drawn for the filtered genes and the groups
                         compared (not recorded: a view), numbers from
                         ``tl.marker_summary``: dot plot and matrix plot
                         ``marker_group_means``, stacked violin
                         ``marker_violins``, tracks plot
                         ``marker_cell_values`` (downsampled to
                         ``MAX_TRACK_CELLS`` cells, ``MAX_TRACK_GENES`` genes)
click a gene             ``scatter.color_by(gene)``
=======================  =================================================

The "data" choice defaults to a log-normalised matrix when ``X`` holds raw counts
(:func:`~exprmat_widgets.tl.marker_summary.default_marker_data`).  The dot plot
shows, for the filtered marker genes and the groups compared, the fraction of
cells expressing each gene (dot size) and its mean expression (colour) in the
matrix the result was computed on
(:func:`~exprmat_widgets.tl.marker_summary.marker_group_means`).  Warnings of the
routine (e.g. "the data look like raw counts") are shown in the panel, and a result
whose groups changed since it was computed is marked stale
(:func:`~exprmat_widgets.tl.marker_summary.marker_result_stale`).

Why no bokeh: jupyter_bokeh needs BokehJS in the page, which a notebook stores
inline in its outputs (about 4 MB per notebook); the SVG and the table widget here
cost a few kB and are re-drawn from the kernel's widget state when a notebook is
reopened.
"""

from __future__ import annotations

import html
from pathlib import Path

import anywidget
import ipywidgets as W
import numpy as np
import pandas as pd
import traitlets

from .._access import gene_labels
from ..errors import ExprmatError
from ..tl.marker_filter import unavailable_filters
from ..tl.marker_summary import (
    default_marker_data,
    latest_marker_key,
    marker_cell_values,
    marker_data_args,
    marker_data_options,
    marker_group_means,
    marker_groups,
    marker_result_stale,
    marker_violins,
    result_identity,
)
from ._controls import action_button
from ._marker_svg import dot_plot_svg, matrix_plot_svg, stacked_violin_svg, tracks_plot_svg

__all__ = ["MarkerPanel", "MarkerView", "dot_plot_svg"]

MAX_DOT_GENES = 40
MAX_TRACK_GENES = 12  # a track per gene: taller than a column, so fewer fit
MAX_TRACK_CELLS = 500  # the tracks' cells, downsampled: the SVG stays tens of kB at any size
VIOLIN_BINS = 24  # about one bin per pixel of a violin's row
VIEWS = (("dot plot", "dotplot"), ("matrix plot", "matrixplot"), ("stacked violin", "stacked_violin"),
         ("tracks plot", "tracksplot"))
STATIC = Path(__file__).resolve().parents[1] / "static"
TABLE_COLUMNS = ["group", "gene", "logFC", "p adj", "pct in", "pct out"]
# a result with scores only (logreg): the score in place of the values it lacks
SCORE_COLUMNS = ["group", "gene", "score", "pct in", "pct out"]
FILTER_LABELS = {"min_logfoldchange": "min logFC", "max_logfoldchange": "max logFC", "max_p_adjust": "max p adj",
                 "min_pct": "min pct", "max_pct_reference": "max pct rest"}


def _em():
    import exprmat_widgets as em

    return em


class MarkerView(anywidget.AnyWidget):
    """Dot plot (``svg``) and marker table (``rows`` of pre-formatted strings); a click
    on a gene sends ``{'event': 'gene', 'gene': ..., 'row': ...}``; ``selected`` is the
    gene highlighted."""

    _esm = STATIC / "marker_view.js"
    _css = STATIC / "marker_view.css"
    svg = traitlets.Unicode("").tag(sync=True)
    columns = traitlets.List(traitlets.Unicode(), default_value=TABLE_COLUMNS).tag(sync=True)
    rows = traitlets.List(default_value=[]).tag(sync=True)
    gene_column = traitlets.Int(1).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)


def _track_genes(df, n: int = MAX_TRACK_GENES) -> list:
    """At most ``n`` genes of the marker table for the tracks: the first of every group,
    then the second, ... (so every group keeps its best markers), in the table's order."""
    per = [list(dict.fromkeys(g.astype(str))) for _, g in df.groupby("group", observed=True, sort=False)["names"]]
    picked: dict = {}  # ordered set: a gene marking two groups is taken once
    for k in range(max(map(len, per), default=0)):
        for lst in per:
            if k < len(lst):
                picked.setdefault(lst[k])
    keep = set(list(picked)[:n])
    return [g for g in dict.fromkeys(df["names"].astype(str)) if g in keep]


def _fmt(v, kind):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(v):
        return ""
    return f"{v:.2e}" if kind == "p" else f"{v:.2f}"


class MarkerPanel:
    """Marker genes (dot plot + table) for the chosen clusters or the lasso selection."""

    def __init__(self, annotator):
        self.a = annotator
        adata = annotator.adata
        self.result_key: str | None = None
        self.table_df = pd.DataFrame()
        self._filter_cache = None  # (result, signature, filtered table) of the last filter_markers
        self.dot_genes: list[str] = []
        self.dot_groups: list[str] = []
        self.dot_mean = self.dot_frac = None
        self.view_values: dict = {}  # the numbers behind the view drawn (from the core)
        self.stale_reason: str | None = None
        self.warnings: list[str] = []
        self.unfiltered: list[str] = []  # filters the shown result has no values for
        self.colored_by: str | None = None
        self.method = W.Dropdown(options=["t-test", "wilcoxon", "logreg"], value="t-test",
                                 description="method", layout=W.Layout(width="200px"))
        self.method.add_class("em-marker-method")
        self.data = W.Dropdown(options=marker_data_options(adata), value=default_marker_data(adata),
                               description="data", layout=W.Layout(width="200px"),
                               tooltip="matrix to test: X, a layer or raw (log-normalised values)")
        self.data.add_class("em-marker-data")

        self.clusters_button = action_button("Markers of clusters",
                                             "em.markers for the selected clusters (all if none)",
                                             self.on_markers, "em-markers", "info")
        self.lasso_button = action_button("Markers of lasso", "em.selection_markers: lasso cells vs the rest",
                                          self.on_selection_markers, "em-selection-markers", "info")
        self.recompute_button = action_button("Recompute", "em.markers again for the current groups",
                                              self.on_recompute, "em-markers-recompute", "warning")
        style = {"description_width": "initial"}
        lay = W.Layout(width="150px")
        self.n_genes = W.BoundedIntText(value=5, min=1, max=100, description="genes/group", style=style, layout=lay)
        self.min_lfc = W.FloatText(value=1.0, description="min logFC", style=style, layout=lay)
        self.max_padj = W.BoundedFloatText(value=0.05, min=0.0, max=1.0, step=0.01, description="max p adj",
                                           style=style, layout=lay)
        self.min_pct = W.BoundedFloatText(value=0.25, min=0.0, max=1.0, step=0.05, description="min pct",
                                          style=style, layout=lay)
        self.max_pct_ref = W.BoundedFloatText(value=1.0, min=0.0, max=1.0, step=0.05, description="max pct rest",
                                              style=style, layout=lay)
        for w, c in ((self.n_genes, "em-n-genes"), (self.min_lfc, "em-min-lfc"), (self.max_padj, "em-max-padj"),
                     (self.min_pct, "em-min-pct"), (self.max_pct_ref, "em-max-pct-ref")):
            w.add_class(c)
            w.observe(lambda ch: self.a.when_idle("filter markers", self.update_view), names="value")
        self.min_lfc.tooltip = "min log2 fold change of the group against the reference"
        self.min_pct.tooltip = "min fraction of the group's cells expressing (scanpy: min_in_group_fraction)"
        self.max_pct_ref.tooltip = "max fraction of the reference cells expressing (max_out_group_fraction)"
        self.kind = W.ToggleButtons(options=list(VIEWS), value="dotplot", style={"button_width": "auto"},
                                    tooltips=["fraction expressing and mean", "mean per group",
                                              "distribution per group", "each cell's value, by group"])
        self.kind.add_class("em-marker-kind")
        # another view of the same table: only the drawing changes (filtering and the
        # staleness check fingerprint the whole result, seconds on a loaded machine)
        self.kind.observe(lambda ch: self.a.when_idle("marker view", self.redraw), names="value")
        self.info = W.HTML()
        self.info.add_class("em-marker-info")
        self.notes = W.HTML()
        self.notes.add_class("em-marker-notes")
        self.stale_text = W.HTML()
        self.stale_box = W.HBox([self.stale_text, self.recompute_button],
                                layout=W.Layout(display="none", align_items="center", flex_flow="row wrap"))
        self.stale_box.add_class("em-marker-stale")
        self.buttons = [self.clusters_button, self.lasso_button, self.recompute_button]
        self.view = MarkerView(layout=W.Layout(width="100%"))
        self.view.on_msg(self._on_view_msg)
        self.widget = W.VBox(
            [
                W.HTML("<b>Marker genes</b>"),
                W.HBox([self.method, self.data, self.clusters_button, self.lasso_button],
                       layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.n_genes, self.min_lfc, self.max_padj, self.min_pct, self.max_pct_ref],
                       layout=W.Layout(flex_flow="row wrap")),
                self.info,
                self.stale_box,
                self.notes,
                self.kind,
                self.view,
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-marker-panel")
        # a result already in the data (a reopened session, markers run in the notebook) is shown
        key = latest_marker_key(adata)
        if key is not None:
            self._show(key)

    # ------------------------------------------------------------------ actions

    def _data_args(self) -> dict:
        return marker_data_args(self.data.value)

    def _keep_warnings(self):
        self.warnings = list(getattr(self.a, "last_warnings", []) or [])

    def on_markers(self):
        a = self.a
        if a.key not in a.adata.obs.columns:
            # on raw counts: the core would list the obs columns, not say what to press
            a.last_error = (f"markers: no clusters yet (obs[{a.key!r}] does not exist): run Leiden (or SC3) "
                            "in the Analysis tab's Cluster section first, or pick a column under 'clusters of'.")
            a._set_status(a.last_error, "error")
            return
        sel = a.clusters.selected
        groups = sel if sel else "all"

        def after(r):
            self._keep_warnings()
            self._show("markers")

        a.act("markers", self._routine("markers"), a.adata, groupby=a.key, groups=groups, reference="rest",
              method=self.method.value, pts=True, key_added="markers", after=after, **self._data_args())

    def on_selection_markers(self):
        a = self.a
        try:
            args = a.lasso_args()
        except ExprmatError as e:
            a.last_error = f"selection_markers: {e}"
            a._set_status(a.last_error, "error")
            return

        def after(r):
            self._keep_warnings()
            self._show("markers.selection")

        a.act("selection_markers", self._routine("selection_markers"), a.adata, key_added="markers.selection",
              method=self.method.value, after=after, **self._data_args(), **args)

    def on_recompute(self):
        """Re-run the shown (stale) result's markers on the current groups of its groupby."""
        a, key = self.a, self.result_key
        params = dict(a.adata.uns[key]["params"]) if key in a.adata.uns else {}
        groupby = params.get("groupby")
        if groupby is None or groupby not in a.adata.obs.columns:
            a.last_error = ("recompute: these are markers of a lasso selection (or of a removed column); "
                            "draw the lasso again and press 'Markers of lasso'.")
            a._set_status(a.last_error, "error")
            return
        reference = params.get("reference", "rest")
        if reference != "rest" and reference not in a.adata.obs[groupby].astype(str).unique():
            reference = "rest"

        def after(r):
            self._keep_warnings()
            self._show(key)

        a.act("markers", self._routine("markers"), a.adata, groupby=groupby, groups="all", reference=reference,
              method=params.get("method", "t-test"), pts=True, key_added=key, layer=params.get("layer"),
              use_raw=bool(params.get("use_raw", False)), after=after)

    def on_gene(self, gene: str):
        """Colour the UMAP by a gene clicked in the dot plot or table (the gene box is the
        scatter's search box: one input; its errors and results go to the status line)."""
        gene = (gene or "").strip()
        if not gene:
            return
        sc = self.a.scatter
        try:
            if hasattr(sc, "color_by"):
                # the expression of the matrix the markers were tested on
                sc.color_by(gene, **self._data_args())
        except ExprmatError as e:
            self.a.last_error = f"colour by: {e}"
            self.a._set_status(self.a.last_error, "error")
            return
        self.colored_by = gene
        self.view.selected = gene
        self.a._set_status(f"UMAP coloured by {gene}", "ok")

    @staticmethod
    def _routine(name):
        fn = getattr(_em(), name, None)
        if fn is None:
            raise ExprmatError(f"em.{name} is not available in this version of exprmat_widgets.")
        return fn

    def _on_view_msg(self, widget, content, buffers=None):
        if not isinstance(content, dict) or content.get("event") != "gene":
            return
        gene = str(content.get("gene", ""))
        # a click on a table drawn before the latest result arrived names a gene of the old one
        if gene and (gene in self.dot_genes or gene in {r[1] for r in self.view.rows}):
            self.on_gene(gene)

    def select_gene_row(self, i: int):
        """Click row ``i`` of the table (the message the page sends)."""
        rows = self.view.rows
        if 0 <= int(i) < len(rows):
            self._on_view_msg(self.view, {"event": "gene", "gene": rows[int(i)][1], "row": int(i)})

    # ------------------------------------------------------------------ view

    def _show(self, key):
        self.result_key = key
        self.update_view()

    def refresh(self, changed=None):
        """Re-draw when the shown result, its groups, the cells or the layers changed."""
        opts = marker_data_options(self.a.adata)
        if list(self.data.options) != opts:
            value = self.data.value if self.data.value in opts else default_marker_data(self.a.adata)
            self.data.options = opts
            self.data.value = value
        if self.result_key is None:
            key = latest_marker_key(self.a.adata)
            if key is None:
                return
            self.result_key = key
        params = self._params()
        watched = {"obs_names", f"uns:{self.result_key}"}
        if params.get("groupby"):
            watched.add(f"obs:{params['groupby']}")
        if changed is None or watched & set(changed) or any(str(c).startswith("layers:") for c in changed):
            self.update_view()

    def _params(self) -> dict:
        res = self.a.adata.uns.get(self.result_key) if self.result_key else None
        params = res.get("params", {}) if hasattr(res, "get") else {}
        return dict(params) if hasattr(params, "keys") else {}

    def filters(self) -> dict:
        return dict(
            n_genes=int(self.n_genes.value),
            min_logfoldchange=float(self.min_lfc.value),
            max_p_adjust=float(self.max_padj.value),
            min_pct=float(self.min_pct.value),
            max_pct_reference=None if self.max_pct_ref.value >= 1.0 else float(self.max_pct_ref.value),
        )

    def update_view(self):
        adata = self.a.adata
        key = self.result_key
        if key is None:
            return
        if key not in adata.uns:
            self.table_df = pd.DataFrame()
            self.unfiltered = []
            self._set_table(self.table_df)
            self._draw([], {})
            self._set_stale(None)
            self.info.value = f"<i>no marker result uns[{html.escape(repr(key))}] (undone?)</i>"
            return
        try:
            df = self._filtered(adata, key)
            stale = marker_result_stale(adata, key)
            self.unfiltered = unavailable_filters(adata, key)
        except Exception as e:
            self.a.last_error = f"filter_markers: {e}"
            self.a._set_status(self.a.last_error, "error")
            return
        self.table_df = df.reset_index(drop=True)
        self._set_table(self.table_df)
        self._set_stale(stale)
        params = self._params()
        self.redraw()
        ng = df["group"].nunique() if len(df) else 0
        data = "raw" if params.get("use_raw") else (params.get("layer") or "X")
        self.info.value = (
            f'<span class="em-marker-count">{len(df)} marker genes in {ng} group(s) '
            f"(uns[{html.escape(repr(key))}], {html.escape(str(params.get('method', '?')))} on "
            f"{html.escape(str(data))})</span>"
        )
        self._set_notes()

    def _filtered(self, adata, key):
        """``em.filter_markers`` of the result with the panel's filters; the last table is
        reused while the result (the same arrays) and the filters are unchanged (a label or
        a merge changes neither, and re-filtering takes about a second on 16k genes)."""
        res, filters = adata.uns[key], self.filters()
        sig = (key, result_identity(res), tuple(sorted(filters.items())))
        cached = self._filter_cache
        if cached is not None and cached[0] is res and cached[1] == sig:
            return cached[2]
        df = _em().filter_markers(adata, key=key, **filters)
        self._filter_cache = (res, sig, df)
        return df

    def redraw(self):
        """Draw the chosen view of the table last filtered by :meth:`update_view`."""
        key, df = self.result_key, self.table_df
        if key is None or key not in self.a.adata.uns:
            return
        genes = list(dict.fromkeys(df["names"].astype(str)))[:MAX_DOT_GENES] if len(df) else []
        groups = marker_groups(self.a.adata, key) if not self.stale_reason else {}
        self._draw(_track_genes(df) if self.kind.value == "tracksplot" and len(df) else genes, groups)

    def _set_stale(self, reason):
        self.stale_reason = reason
        if reason:
            self.stale_text.value = (
                '<span class="em-marker-stale-text" style="color:var(--jp-warn-color0,#9a6700)">'
                f"\u26a0 stale: {html.escape(reason)}; the table shows the old groups, the dot plot is hidden."
                "</span>"
            )
            self.stale_box.layout.display = "flex"
        else:
            self.stale_text.value = ""
            self.stale_box.layout.display = "none"

    def _set_notes(self):
        out = ""
        set_ = self.filters()
        unfiltered = [f for f in self.unfiltered if set_.get(f) is not None]
        if unfiltered:
            # e.g. logreg: scores only; filtering on the missing values would hide every gene
            method = html.escape(str(self._params().get("method", "this method")))
            names = ", ".join(FILTER_LABELS[f] for f in unfiltered)
            out += (
                '<div class="em-marker-unfiltered" style="color:var(--jp-ui-font-color1,#333);'
                'border-left:3px solid var(--jp-brand-color1,#1976d2);padding:2px 6px;margin:2px 0">'
                f"This result ({method}) has no values for {html.escape(names)}: "
                + ("these filters do not" if len(unfiltered) > 1 else "this filter does not")
                + " apply; the genes are ranked by their scores.</div>"
            )
        if self.warnings:
            items = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
            out += (
                '<div class="em-marker-warning" style="color:var(--jp-warn-color0,#9a6700);'
                'border-left:3px solid var(--jp-warn-color1,#d29922);padding:2px 6px;margin:2px 0">'
                f"<b>\u26a0 warning</b><ul style=\"margin:0;padding-left:1.2em\">{items}</ul></div>"
            )
        self.notes.value = out

    def _labels(self, names) -> list:
        """The genes as the scatter's search box offers them: symbols when ``var_names`` are
        ids (the core's ``gene_labels``; the recorded ``gene_symbol`` column when there is one)."""
        params, adata = self._params(), self.a.adata
        src = adata.raw if params.get("use_raw") and adata.raw is not None else adata
        col = params.get("gene_symbol")
        lab = pd.Series(gene_labels(src, col if col in src.var.columns else None), index=src.var_names.astype(str))
        return [str(lab.get(str(n), n)) for n in names]

    def _set_table(self, df):
        rows = []
        scores_only = "min_logfoldchange" in self.unfiltered and "max_p_adjust" in self.unfiltered
        if len(df):
            shown = self._labels(df["names"].astype(str))
            for r, gene in zip(df.itertuples(index=False), shown):
                values = ([_fmt(r.scores, "f")] if scores_only
                          else [_fmt(r.logfoldchanges, "f"), _fmt(r.pvals_adj, "p")])
                rows.append([str(r.group), gene, *values, _fmt(r.pct_nz_group, "f"),
                             _fmt(r.pct_nz_reference, "f")])
        self.view.selected = ""
        columns = SCORE_COLUMNS if scores_only else TABLE_COLUMNS
        if list(self.view.columns) != columns:
            self.view.columns = columns
        self.view.rows = rows

    def _set_dots(self, genes, groups, mean, frac):
        self.dot_genes, self.dot_groups, self.dot_mean, self.dot_frac = list(genes), list(groups), mean, frac

    def _draw(self, genes, groups: dict):
        """Draw the chosen view of ``genes`` in ``groups`` (``{name: mask}``) with the numbers
        of the core (``tl.marker_summary``) on the matrix the result was computed on."""
        params = self._params()
        data_args = {"layer": params.get("layer"), "use_raw": bool(params.get("use_raw", False))}
        data = "raw" if data_args["use_raw"] else (data_args["layer"] or "X")
        kind, names, uid = self.kind.value, list(groups), str(id(self))
        self.view_values = {}
        if not genes or not groups:
            self._set_dots([], [], None, None)
            self.view.svg = ('<div class="em-marker-empty">'
                             + ("stale result: recompute to draw the marker plot" if self.stale_reason
                                else "no marker genes pass the filters") + "</div>")
            return
        adata = self.a.adata
        shown = self._labels(genes)  # symbols where var_names are ids
        if kind == "tracksplot":
            cells = marker_cell_values(adata, genes, groups, max_cells=MAX_TRACK_CELLS, **data_args)
            title = f"tracks: each cell's value in {data}, cells grouped"
            svg = tracks_plot_svg(shown, names, cells, self._group_colors(names, params), title=title)
            self.view_values = {"kind": kind, "genes": genes, "groups": names, **cells}
        elif kind == "stacked_violin":
            vio = marker_violins(adata, genes, groups, bins=VIOLIN_BINS, **data_args)
            title = f"violins: distribution in each group of {data}, colour = median"
            svg = stacked_violin_svg(shown, names, vio, title=title, uid=uid)
            self.view_values = {"kind": kind, "genes": genes, "groups": names, **vio}
        else:
            mean, frac = marker_group_means(adata, genes, groups, **data_args)
            if kind == "matrixplot":
                title = f"colour = mean expression in {data}"
                svg = matrix_plot_svg(shown, names, mean, title=title, uid=uid)
            else:
                title = f"dot size = fraction expressing, colour = mean expression in {data}"
                svg = dot_plot_svg(shown, names, mean, frac, title=title, uid=uid)
            self.view_values = {"kind": kind, "genes": genes, "groups": names, "mean": mean, "frac": frac}
        self._set_dots(shown, names, self.view_values.get("mean"), self.view_values.get("frac"))
        self.view.svg = (f'<div class="em-svg-muted" style="font-size:11px;color:var(--jp-ui-font-color2,#555)">'
                         f"{html.escape(title)}</div>" + svg)

    def _group_colors(self, names, params) -> dict:
        """The groups' colours of the scatter's palette (``uns['<groupby>_colors']``); the rest grey."""
        from ..pl._utils import category_colors

        groupby = params.get("groupby")
        real = [g for g in names if g != "rest"]
        if groupby is None or groupby not in self.a.adata.obs.columns:
            colours = dict.fromkeys(real, "#1f77b4")  # the selection
        else:
            colours = category_colors(self.a.adata, groupby, real)
        return {**colours, "rest": "#9e9e9e"}
