"""Marker panel: marker genes of the chosen clusters, or of the lasso selection
against the rest, as a dot plot and a table (bokeh, shown through jupyter_bokeh).

=======================  =================================================
control                  core routine
=======================  =================================================
Markers of clusters      ``em.markers(adata, groupby=key, groups=selected
                         clusters or 'all', method=..., pts=True)``
Markers of lasso         ``em.selection_markers(adata, cells, polygon=,
                         basis=)`` (selection vs rest)
filters                  ``em.filter_markers(adata, key, n_genes,
                         min_logfoldchange, max_p_adjust, min_pct,
                         max_pct_reference)`` (not recorded: a view)
click a gene (table)     ``scatter.color_by(gene)``
=======================  =================================================

The dot plot shows, for the filtered marker genes and the groups compared,
the fraction of cells expressing each gene (dot size) and its mean
expression in ``adata.X`` (colour); these are display summaries only.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ExprmatError
from ._controls import action_button

__all__ = ["MarkerPanel", "group_summaries"]

MAX_DOT_GENES = 40


def _em():
    import exprmat_widgets as em

    return em


def group_summaries(adata, genes: list, groups: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``adata.X`` and fraction of cells > 0 for each gene (columns) in each
    group (rows; ``groups`` maps a group name to a boolean mask)."""
    idx = adata.var_names.get_indexer(genes)
    if (idx < 0).any():
        raise ExprmatError(f"genes not in var_names: {list(np.asarray(genes)[idx < 0][:5])}")
    X = adata.X[:, idx]
    names = list(groups)
    ind = sp.csr_matrix(np.vstack([np.asarray(groups[g], dtype=np.float32) for g in names]))
    n = np.asarray(ind.sum(axis=1)).ravel()
    n[n == 0] = 1
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        sums = np.asarray((ind @ X).todense())
        nz = X.copy()
        nz.data = (nz.data > 0).astype(np.float32)
        frac = np.asarray((ind @ nz).todense())
    else:
        X = np.asarray(X, dtype=np.float32)
        sums = ind @ X
        frac = ind @ (X > 0).astype(np.float32)
    return sums / n[:, None], frac / n[:, None]


_bokehjs_loaded = False
BOKEHJS_COMPONENTS = ["bokeh", "bokeh-widgets", "bokeh-tables"]


def _load_bokehjs():
    """jupyter_bokeh renders with the page's BokehJS: load it once per kernel, inline
    (no CDN: works offline).  Only the parts the panel draws with (core, widgets, tables:
    1.9 MB) and not WebGL and MathJax (another 2 MB in every saved notebook)."""
    global _bokehjs_loaded
    if _bokehjs_loaded:
        return
    try:
        from IPython import get_ipython

        if get_ipython() is None or getattr(get_ipython(), "kernel", None) is None:
            return
        from bokeh.io import output_notebook
        from bokeh.resources import Resources

        output_notebook(resources=Resources(mode="inline", components=BOKEHJS_COMPONENTS), hide_banner=True)
        _bokehjs_loaded = True
    except Exception:  # no notebook front end: the panel still works from Python
        pass


class MarkerPanel:
    """Marker genes (dot plot + table) for the chosen clusters or the lasso selection."""

    def __init__(self, annotator):
        from bokeh.models import (
            ColumnDataSource, ColorBar, DataTable, FactorRange, HoverTool, LinearColorMapper,
            NumberFormatter, ScientificFormatter, TableColumn,
        )
        from bokeh.layouts import column
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure
        from jupyter_bokeh.widgets import BokehModel

        _load_bokehjs()
        self.a = annotator
        self.result_key: str | None = None
        self.table_df = pd.DataFrame()
        self._lasso_mask = None
        self.method = W.Dropdown(options=["t-test", "wilcoxon", "logreg"], value="t-test",
                                 description="method", layout=W.Layout(width="200px"))
        self.method.add_class("em-marker-method")

        self.clusters_button = action_button("Markers of clusters", "em.markers for the selected clusters (all if none)",
                                      self.on_markers, "em-markers", "info")
        self.lasso_button = action_button("Markers of lasso", "em.selection_markers: lasso cells vs the rest",
                                   self.on_selection_markers, "em-selection-markers", "info")
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
        self.gene_text = W.Combobox(placeholder="gene", ensure_option=False, description="gene",
                                    layout=W.Layout(width="220px"))
        self.gene_text.add_class("em-gene")
        self.gene_button = action_button("Colour UMAP", "colour the UMAP by this gene", self.on_gene, "em-gene-color")
        self.info = W.HTML()
        self.info.add_class("em-marker-info")
        self.buttons = [self.clusters_button, self.lasso_button]

        # bokeh: dot plot + table
        self.dot_source = ColumnDataSource(dict(gene=[], group=[], size=[], frac=[], mean=[]))
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        fig = figure(x_range=FactorRange(factors=[]), y_range=FactorRange(factors=[]), height=260,
                     sizing_mode="stretch_width", toolbar_location=None, tools="tap",
                     title="marker genes: dot size = fraction expressing, colour = mean expression")
        fig.scatter("gene", "group", size="size", source=self.dot_source,
                    fill_color={"field": "mean", "transform": self.mapper}, line_color="#444")
        fig.add_tools(HoverTool(tooltips=[("gene", "@gene"), ("group", "@group"),
                                          ("fraction", "@frac{0.00}"), ("mean", "@mean{0.00}")]))
        fig.xaxis.major_label_orientation = 0.9
        fig.add_layout(ColorBar(color_mapper=self.mapper, width=8), "right")
        self.dot_fig = fig
        self.table_source = ColumnDataSource(dict(group=[], names=[], logfoldchanges=[], pvals_adj=[],
                                                  pct_nz_group=[], pct_nz_reference=[]))
        fmt = NumberFormatter(format="0.00")
        self.table = DataTable(
            source=self.table_source, height=240, sizing_mode="stretch_width", index_position=None,
            selectable=True,
            columns=[
                TableColumn(field="group", title="group"),
                TableColumn(field="names", title="gene"),
                TableColumn(field="logfoldchanges", title="logFC", formatter=fmt),
                TableColumn(field="pvals_adj", title="p adj", formatter=ScientificFormatter(precision=2)),
                TableColumn(field="pct_nz_group", title="pct in", formatter=fmt),
                TableColumn(field="pct_nz_reference", title="pct out", formatter=fmt),
            ],
        )
        self.table.css_classes = ["em-marker-table"]
        self.table_source.selected.on_change("indices", self._on_table_select)
        self.dot_source.selected.on_change("indices", self._on_dot_select)
        self.bokeh = BokehModel(column(fig, self.table, sizing_mode="stretch_width"))
        self.bokeh.layout = W.Layout(width="100%")
        self.widget = W.VBox(
            [
                W.HTML("<b>Marker genes</b>"),
                W.HBox([self.method, self.clusters_button, self.lasso_button], layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.n_genes, self.min_lfc, self.max_padj, self.min_pct, self.max_pct_ref],
                       layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.gene_text, self.gene_button]),
                self.info,
                self.bokeh,
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-marker-panel")
        self.gene_text.options = [str(g) for g in annotator.adata.var_names[:5000]]

    # ------------------------------------------------------------------ actions

    def on_markers(self):
        a = self.a
        sel = a.clusters.selected
        groups = sel if sel else "all"
        key = a.key
        a.act("markers", self._routine("markers"), a.adata, groupby=key, groups=groups, reference="rest",
              method=self.method.value, pts=True, key_added="markers",
              after=lambda r: self._show("markers"))

    def on_selection_markers(self):
        a = self.a
        try:
            args = a.lasso_args()
        except ExprmatError as e:
            a.last_error = f"selection_markers: {e}"
            a._set_status(a.last_error, "error")
            return
        mask = np.zeros(a.adata.n_obs, dtype=bool)
        mask[args["cells"]] = True

        def after(r):
            self._lasso_mask = mask
            self._show("markers.selection")

        a.act("selection_markers", self._routine("selection_markers"), a.adata,
              key_added="markers.selection", after=after, **args)

    def on_gene(self, gene: str | None = None):
        gene = (gene if gene is not None else self.gene_text.value or "").strip()
        if not gene:
            return
        adata = self.a.adata
        if gene not in adata.var_names and gene not in adata.obs.columns:
            self.a.last_error = f"colour by: {gene!r} is neither a gene (var_names) nor an obs column."
            self.a._set_status(self.a.last_error, "error")
            return
        self.a.show_key(gene)
        self.colored_by = gene
        self.a._set_status(f"UMAP coloured by {gene}", "ok")

    @staticmethod
    def _routine(name):
        fn = getattr(_em(), name, None)
        if fn is None:
            raise ExprmatError(f"em.{name} is not available in this version of exprmat_widgets.")
        return fn

    def _on_table_select(self, attr, old, new):
        if new:
            i = new[0]
            names = self.table_source.data["names"]
            if 0 <= i < len(names):
                self.gene_text.value = str(names[i])
                self.on_gene(str(names[i]))

    def _on_dot_select(self, attr, old, new):
        if new:
            i = new[0]
            genes = self.dot_source.data["gene"]
            if 0 <= i < len(genes):
                self.on_gene(str(genes[i]))

    def select_gene_row(self, i: int):
        """Select row ``i`` of the table (what a click does)."""
        self.table_source.selected.indices = [int(i)]

    # ------------------------------------------------------------------ view

    def _show(self, key):
        self.result_key = key
        self.update_view()

    def refresh(self, changed=None):
        """Re-draw when the shown result changed (e.g. undone) or cells were removed."""
        if self.result_key is None:
            return
        if changed is None or "obs_names" in changed or f"uns:{self.result_key}" in changed:
            self.update_view()

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
            self._set_table(self.table_df)
            self._set_dots([], [], None, None)
            self.info.value = f"<i>no marker result uns[{html.escape(repr(key))}] (undone?)</i>"
            return
        try:
            df = _em().filter_markers(adata, key=key, **self.filters())
        except Exception as e:
            self.a.last_error = f"filter_markers: {e}"
            self.a._set_status(self.a.last_error, "error")
            return
        self.table_df = df.reset_index(drop=True)
        self._set_table(self.table_df)
        genes = list(dict.fromkeys(df["names"].astype(str)))[:MAX_DOT_GENES]
        groups = self._groups(key, df)
        if genes and groups:
            mean, frac = group_summaries(adata, genes, groups)
            self._set_dots(genes, list(groups), mean, frac)
        else:
            self._set_dots([], [], None, None)
        ng = df["group"].nunique() if len(df) else 0
        self.info.value = (
            f'<span class="em-marker-count">{len(df)} marker genes in {ng} group(s) '
            f"(uns[{html.escape(repr(key))}])</span>"
        )

    def _groups(self, key, df) -> dict:
        adata = self.a.adata
        params = adata.uns[key].get("params", {}) if hasattr(adata.uns[key], "get") else {}
        groupby = params.get("groupby")
        shown = [str(g) for g in pd.unique(df["group"].astype(str))] if len(df) else []
        if groupby is not None and groupby in adata.obs.columns:
            col = adata.obs[groupby].astype(str).to_numpy()
            names = [str(n) for n in adata.uns[key]["names"].dtype.names]
            out = {g: col == g for g in names if (col == g).any()}
            if out and str(params.get("reference", "rest")) == "rest":
                rest = ~np.logical_or.reduce(list(out.values()))
                if rest.any():  # some groups against the rest: show the rest too
                    out["rest"] = rest
            return out
        mask = self._lasso_mask
        if mask is not None and mask.shape == (adata.n_obs,) and shown:
            return {shown[0]: mask, "rest": ~mask}
        return {}

    def _set_table(self, df):
        cols = ["group", "names", "logfoldchanges", "pvals_adj", "pct_nz_group", "pct_nz_reference"]
        data = {c: (df[c].astype(str).tolist() if c in ("group", "names") else
                    pd.to_numeric(df[c], errors="coerce").astype(float).tolist()) if c in df.columns
                else [] for c in cols}
        self.table_source.selected.indices = []
        self.table_source.data = data

    def _set_dots(self, genes, groups, mean, frac):
        from bokeh.models import FactorRange  # noqa: F401

        if not genes:
            self.dot_source.data = dict(gene=[], group=[], size=[], frac=[], mean=[])
            self.dot_fig.x_range.factors = []
            self.dot_fig.y_range.factors = []
            return
        gg, gr = np.meshgrid(np.arange(len(genes)), np.arange(len(groups)))
        f = frac.ravel()
        m = mean.ravel()
        self.dot_fig.x_range.factors = genes
        self.dot_fig.y_range.factors = groups
        self.mapper.low = float(m.min())
        self.mapper.high = float(max(m.max(), m.min() + 1e-6))
        self.dot_source.data = dict(
            gene=[genes[i] for i in gg.ravel()],
            group=[groups[i] for i in gr.ravel()],
            size=(4 + 18 * f).tolist(),
            frac=f.tolist(),
            mean=m.tolist(),
        )
