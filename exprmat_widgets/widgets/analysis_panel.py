"""Analysis panel: preprocessing, re-embedding, clustering of all cells, composition and
consensus NMF from the Annotator.

Each button calls exactly one recorded core routine through ``Annotator.act`` (so it is
in ``adata.uns['commands']`` and replayable); the inputs next to it are its parameters,
passed as typed.  The panel checks nothing about the data itself: a step that does not
apply (counts already normalised, one batch for Harmony, ...) is refused by the routine,
whose message (problem and fix) the status line shows, and the data stay unchanged.

=====================  ===========================================================
button                 core routine
=====================  ===========================================================
Keep counts            ``em.derive_layer(adata, key_added, source='X', transform='copy')``
Normalise              ``em.normalize_total(adata, target_sum)``
log1p                  ``em.log1p(adata)``
HVG                    ``em.highly_variable_genes(adata, flavor, n_top_genes, layer, key_added)``
PCA                    ``em.pca(adata, n_comps, mask_var)``
Harmony                ``em.harmony(adata, batch_key)``
kNN                    ``em.knn(adata, use_rep, n_neighbors)``
UMAP                   ``em.umap(adata, min_dist, spread)``; layout "fast (subsample)" adds
                       ``subsample=<cells>`` (above 100k cells the tab says how long each takes)
Re-embed               the next out-of-date one of kNN / UMAP (one command a click)
Leiden                 ``em.leiden(adata, resolution, key_added)``
SC3                    ``em.sc3(adata, basis, key_added, n_clusters=[...])``
Linear layer           ``em.derive_layer(adata, key_added=tpm, source='X', transform='expm1')``
cNMF                   ``em.consensus_nmf(adata, counts, tpm, ks, hvg, n_iter, ncpus, key_added)``
Extract k              ``em.consensus_nmf_extract_k(adata, k, key)``
Label by program       ``em.label_by_program(adata, usage_key, key_added, min_usage)``
=====================  ===========================================================

The cNMF threads box (``ncpus``) starts at the cores available less one: the replicates
run in numba threads that release the GIL, and the one core left is the kernel's, so the
panels still answer clicks (and the browser draws) while cNMF runs; the results do not
depend on it.

After an extraction the cNMF tab lists each program's top genes
(``em.program_top_genes``, read-only); clicking a program colours the UMAP by its usage
(``'<key>.<k>:<program>'``, the scatter's obsm column look-up).

The composition table is ``em.proportion(adata, major, minor)`` (read-only, not a
command), recomputed after every command, undo and refresh.

Out-of-date embedding: the history says when the cells last changed (a record with
``obs_names`` among its outputs, e.g. an exclusion) and when the kNN graph
(``obsp:connectivities``) and the shown embedding (``obsm:X_<basis>``) were last
written; an embedding written before the cells changed is the layout of cells that are
partly gone, and the panel says so and offers Re-embed.
"""

from __future__ import annotations

import functools
import html

import ipywidgets as W
import pandas as pd

from .. import _validate as v
from .._logging import on_progress
from ..errors import ExprmatError
from ..history import get_records
from ..tl._subsample_layout import seconds as umap_seconds
from ..tl.nmf_consensus import available_cores
from ._cnmf_svg import k_choice_svg
from ._controls import action_button, guarded, html_table
from .cluster_panel import annotation_keys

__all__ = ["AnalysisPanel", "embedding_status"]

_ALL_GENES = "(all genes)"
# above this many cells the Embed tab says how long the default UMAP takes and offers the
# fast one, laying out _FAST_CELLS first (benchmarks/results/reembed.md)
_SLOW_CELLS = 100_000
_FAST_CELLS = 20_000
_NORMALIZE = {"share per row": "index", "share per column": "columns", "cell counts": None}


def _em():
    import exprmat_widgets as em

    return em


def _duration(sec: float) -> str:
    return f"{max(sec, 1):.0f} s" if sec < 90 else f"{sec / 60:.0f} min"


def _ints(text: str, what: str) -> list[int]:
    """``'5, 10'`` -> ``[5, 10]``; the routine checks the range of each number."""
    parts = [p for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        out = [int(p) for p in parts]
    except ValueError:
        raise ExprmatError(f"{what}: type whole numbers separated by commas, e.g. 5,10 "
                           f"(got {text!r}).") from None
    if not out:
        raise ExprmatError(f"{what}: type at least one number, e.g. 5,10.")
    return out


def _last(records, pred) -> int | None:
    for i in range(len(records) - 1, -1, -1):
        if pred(set((records[i].get("output") or {}).keys())):
            return i
    return None


def embedding_status(adata, obsm_key: str = "X_umap") -> dict:
    """When the cells, the kNN graph and ``obsm[obsm_key]`` were last written, by history step.

    Reads ``adata.uns['commands']`` only.  Returns ``{'cells': i, 'knn': j, 'embedding': k,
    'knn_stale': bool, 'embedding_stale': bool}`` (0-based record positions or ``None``);
    a part is stale when the cells changed after it was written (a part made before the
    history began counts as written at its start).
    """
    recs = get_records(adata)
    cells = _last(recs, lambda out: "obs_names" in out)
    knn = _last(recs, lambda out: "obsp:connectivities" in out)
    emb = _last(recs, lambda out: f"obsm:{obsm_key}" in out)
    knn_at = -1 if knn is None else knn
    emb_at = -1 if emb is None else emb
    return {
        "cells": cells, "knn": knn, "embedding": emb,
        "knn_stale": cells is not None and knn_at < cells,
        "embedding_stale": cells is not None and emb_at < cells,
        "commands": [r["command"] for r in recs],
    }


def _small(widget, width="160px"):
    widget.layout.width = width
    return widget


class AnalysisPanel:
    """Preprocess / embed / cluster / composition / cNMF controls (see the module docstring).

    ``panel.widget`` is the ipywidgets box (a Tab); ``panel.buttons`` its action buttons
    (disabled while an action runs); ``panel.composition`` the last composition table
    shown (a DataFrame, or ``None`` with the reason in ``panel.composition_html``).
    """

    def __init__(self, annotator):
        self.a = annotator
        self._silent = False
        self.composition: pd.DataFrame | None = None
        self.buttons: list[W.Button] = []

        def btn(desc, tip, handler, css, style=""):
            b = action_button(desc, tip, handler, f"em-an-{css}", style)
            self.buttons.append(b)
            return b

        st = {"description_width": "initial"}
        # ---- preprocess
        self.counts_layer = _small(W.Text(value="counts", description="counts layer", style=st))
        self.target_sum = _small(W.FloatText(value=1e4, description="target sum", style=st))
        self.hvg_flavor = _small(W.Dropdown(options=["seurat", "cell_ranger", "seurat_v3"], value="seurat",
                                            description="flavor", style=st))
        self.hvg_layer = _small(W.Dropdown(options=["X"], value="X", description="of", style=st), "120px")
        self.hvg_n = _small(W.BoundedIntText(value=2000, min=1, max=10**7, description="top genes", style=st))
        self.hvg_key = _small(W.Text(value="highly_variable", description="into var", style=st), "220px")
        self.pca_n = _small(W.BoundedIntText(value=50, min=1, max=10**4, description="components", style=st))
        self.pca_mask = _small(W.Dropdown(options=[_ALL_GENES], value=_ALL_GENES, description="genes",
                                          style=st), "220px")
        self.batch_key = _small(W.Dropdown(options=[], description="batch", style=st), "200px")
        self.keep_counts_button = btn("Keep counts", "copy X (raw counts) to a layer (em.derive_layer)",
                                      self.on_keep_counts, "keep-counts")
        self.normalize_button = btn("Normalise", "scale each cell to the target sum (em.normalize_total)",
                                    self.on_normalize, "normalize")
        self.log1p_button = btn("log1p", "log(1 + x) of X (em.log1p)", self.on_log1p, "log1p")
        self.hvg_button = btn("HVG", "flag highly variable genes (em.highly_variable_genes)", self.on_hvg, "hvg")
        self.pca_button = btn("PCA", "principal components (em.pca)", self.on_pca, "pca")
        self.harmony_button = btn("Harmony", "integrate the PCA over the batch column (em.harmony)",
                                  self.on_harmony, "harmony")
        # seurat_v3 ranks raw counts: point it at the counts layer (shown, and changeable)
        self.hvg_flavor.observe(self._on_flavor, names="value")
        row = lambda *c: W.HBox(list(c), layout=W.Layout(flex_flow="row wrap", align_items="center"))  # noqa: E731
        preprocess = W.VBox([
            row(self.keep_counts_button, self.counts_layer),
            row(self.normalize_button, self.target_sum, self.log1p_button),
            row(self.hvg_button, self.hvg_flavor, self.hvg_layer, self.hvg_n, self.hvg_key),
            row(self.pca_button, self.pca_n, self.pca_mask),
            row(self.harmony_button, self.batch_key),
        ])

        # ---- embed
        self.use_rep = _small(W.Dropdown(options=[], description="representation", style=st), "240px")
        self.n_neighbors = _small(W.BoundedIntText(value=15, min=2, max=1000, description="neighbours",
                                                   style=st))
        self.min_dist = _small(W.BoundedFloatText(value=0.5, min=0.0, max=10.0, step=0.05,
                                                  description="min_dist", style=st))
        self.spread = _small(W.BoundedFloatText(value=1.0, min=0.01, max=10.0, step=0.1,
                                                description="spread", style=st))
        self.umap_mode = _small(W.Dropdown(options=[("default (scanpy)", "default"), ("fast (subsample)", "fast")],
                                           value="default", description="layout", style=st), "200px")
        self.umap_mode.tooltip = ("default: scanpy's UMAP of every cell (200 epochs each). fast: lay out a "
                                  "random subsample, place the other cells by their neighbours, then 30 "
                                  "epochs over all: minutes less at 200k+ cells, a little less local detail")
        self.umap_subsample = _small(W.BoundedIntText(value=_FAST_CELLS, min=2, max=10**9, description="cells",
                                                      tooltip="cells laid out first (em.umap subsample=)",
                                                      style=st))
        self.umap_subsample.layout.display = "none"
        self.umap_mode.add_class("em-an-umap-mode")
        self.umap_subsample.add_class("em-an-umap-subsample")
        for w in (self.umap_mode, self.umap_subsample):
            w.observe(lambda _c: self._refresh_umap_note(), names="value")
        self.umap_note = W.HTML()
        self.umap_note.add_class("em-an-umap-note")
        self.knn_button = btn("kNN", "k-nearest-neighbour graph of the current cells (em.knn)",
                              self.on_knn, "knn")
        self.umap_button = btn("UMAP", "UMAP of the kNN graph (em.umap); the scatter shows it",
                               self.on_umap, "umap")
        self.stale = W.HTML()
        self.stale.add_class("em-an-stale")
        self.reembed_button = btn("Re-embed", "run the next out-of-date step (kNN, then UMAP)",
                                  self.on_reembed, "reembed", "warning")
        embed = W.VBox([
            row(self.knn_button, self.use_rep, self.n_neighbors),
            row(self.umap_button, self.min_dist, self.spread, self.umap_mode, self.umap_subsample),
            row(self.umap_note),
            row(self.stale, self.reembed_button),
        ])

        # ---- cluster all cells
        self.resolution = _small(W.BoundedFloatText(value=1.0, min=0.0, max=20.0, step=0.1,
                                                    description="resolution", style=st))
        self.leiden_key = _small(W.Text(value="leiden", description="into obs", style=st), "200px")
        self.sc3_basis = _small(W.Dropdown(options=[], description="of", style=st), "200px")
        self.sc3_ks = _small(W.Text(value="5,10", description="k", style=st), "140px")
        self.sc3_key = _small(W.Text(value="sc3", description="into obs", style=st), "180px")
        self.leiden_button = btn("Leiden", "Leiden clustering of all cells (em.leiden)", self.on_leiden, "leiden")
        self.sc3_button = btn("SC3", "SC3 consensus clustering for each k (em.sc3)", self.on_sc3, "sc3")
        cluster = W.VBox([
            row(self.leiden_button, self.resolution, self.leiden_key),
            row(self.sc3_button, self.sc3_basis, self.sc3_ks, self.sc3_key),
        ])

        # ---- composition (read-only)
        self.major = _small(W.Dropdown(options=[], description="rows", style=st), "200px")
        self.minor = _small(W.Dropdown(options=[], description="columns", style=st), "220px")
        self.normalize = _small(W.Dropdown(options=list(_NORMALIZE), value="share per row",
                                           description="show", style=st), "220px")
        self.table = W.HTML(layout=W.Layout(max_height="260px", overflow="auto"))
        self.table.add_class("em-an-composition")
        for w in (self.major, self.minor, self.normalize):
            w.observe(self._on_composition_input, names="value")
        # the columns follow the label column until the user picks one
        self._minor_auto = True
        self.minor.observe(self._on_minor_picked, names="value")
        composition = W.VBox([row(self.major, self.minor, self.normalize), self.table])

        # ---- consensus NMF
        self.tpm_layer = _small(W.Text(value="norm", description="linear layer", style=st), "200px")
        self.cnmf_ks = _small(W.Text(value="5,10", description="k", style=st), "140px")
        self.cnmf_iter = _small(W.BoundedIntText(value=10, min=1, max=10**4, description="replicates",
                                                 style=st))
        self.cnmf_hvg = _small(W.Dropdown(options=[], description="genes", style=st), "220px")
        self.cnmf_threads = _small(W.BoundedIntText(value=max(1, available_cores() - 1), min=1,
                                                    max=available_cores(), description="threads", style=st),
                                   "140px")
        self.cnmf_threads.add_class("em-an-cnmf-threads")
        self.cnmf_key = _small(W.Text(value="cnmf", description="into uns", style=st), "180px")
        self.cnmf_k = _small(W.Dropdown(options=[], description="pick k", style=st), "140px")
        self.cnmf_stats = W.HTML()
        self.tpm_button = btn("Linear layer", "expm1 of log-normalised X into a layer (em.derive_layer)",
                              self.on_tpm, "tpm")
        self.cnmf_button = btn("cNMF", "consensus NMF for each k (em.consensus_nmf)", self.on_cnmf, "cnmf")
        self.extract_button = btn("Extract k", "usages and spectra of the picked k "
                                  "(em.consensus_nmf_extract_k)", self.on_extract, "extract")
        cnmf = W.VBox([
            row(self.tpm_button, self.tpm_layer),
            row(self.cnmf_button, self.cnmf_ks, self.cnmf_iter, self.cnmf_threads, self.cnmf_hvg, self.cnmf_key),
            self.cnmf_stats,
            row(self.extract_button, self.cnmf_k),
            *self._program_controls(btn, row, st),
        ])

        self.widget = W.Tab(children=[preprocess, embed, cluster, composition, cnmf],
                            layout=W.Layout(width="100%"))
        for i, t in enumerate(["Preprocess", "Embed", "Cluster", "Composition", "cNMF"]):
            self.widget.set_title(i, t)
        self.widget.add_class("em-analysis-panel")
        self.refresh(None)
        annotator.on_change(self.refresh)

    # ------------------------------------------------------------------ inputs from the data

    def _categorical(self, adata) -> list[str]:
        return annotation_keys(adata)

    def _set_options(self, dd, options, prefer=(), follow_new=False):
        """New options for ``dd``, keeping its value when it is still there (else the first
        preferred one present), without firing the panel's observers.  ``follow_new``: a
        preferred option that has just appeared (the step before made it, e.g. ``harmony``
        after Harmony) is taken, so the next step reads what the last one wrote."""
        options = list(options)
        old, cur = list(dd.options), dd.value
        if old == options and (cur in options or not options):
            return
        fresh = [p for p in prefer if p in options and p not in old] if follow_new and old else []
        self._silent = True
        try:
            dd.options = options
            if fresh:
                dd.value = fresh[0]
            elif cur in options:
                dd.value = cur
            else:
                dd.value = next((p for p in prefer if p in options), options[0] if options else None)
        finally:
            self._silent = False

    def refresh(self, changed=None) -> None:
        """Options from the data (obsm keys, var flags, obs columns), the out-of-date notice
        and the composition table."""
        adata = self.a.adata
        obsm = [str(k) for k in adata.obsm if getattr(adata.obsm[k], "ndim", 2) == 2]
        reps = [k for k in obsm if k != self._shown_key()] or obsm
        self._set_options(self.use_rep, reps, prefer=("harmony", "X_harmony", "X_pca"), follow_new=True)
        self._set_options(self.sc3_basis, reps, prefer=("harmony", "X_harmony", "X_pca"), follow_new=True)
        flags = [str(c) for c in adata.var.columns if adata.var[c].dtype == bool]
        self._set_options(self.pca_mask, [_ALL_GENES] + flags,
                          prefer=(self.hvg_key.value, "highly_variable", _ALL_GENES), follow_new=True)
        self._set_options(self.cnmf_hvg, [_ALL_GENES] + flags,
                          prefer=(self.hvg_key.value, "highly_variable", _ALL_GENES), follow_new=True)
        self._set_options(self.hvg_layer, ["X"] + [str(k) for k in adata.layers])
        cats = self._categorical(adata)
        self._set_options(self.batch_key, cats, prefer=("sample", "batch"))
        self._set_options(self.major, cats, prefer=("sample", "batch"))
        self._set_options(self.minor, cats, prefer=(self.a.label_key, self.a.key))
        if self._minor_auto and self.a.label_key in cats and self.minor.value != self.a.label_key:
            self._silent = True
            try:
                self.minor.value = self.a.label_key
            finally:
                self._silent = False
        self._refresh_stale()
        self._refresh_umap_note()
        self._refresh_cnmf()
        self._refresh_composition()

    def _shown_key(self) -> str:
        """The obsm key of the scatter's embedding; ``'X_<basis>'``, where em.umap writes,
        while it does not exist yet."""
        try:
            return v.embedding_key(self.a.adata, self.a.basis)
        except ExprmatError:
            return f"X_{self.a.basis}"

    def _refresh_stale(self):
        st = embedding_status(self.a.adata, self._shown_key())
        self.embedding_state = st
        if st["knn_stale"] or st["embedding_stale"]:
            what = st["commands"][st["cells"]]
            todo = "kNN graph and UMAP predate" if st["knn_stale"] else "UMAP predates"
            self.stale.value = (
                f'<span class="em-an-stale-text" style="color:#9a6700">\u26a0 the {todo} the '
                f"cells' change at step {st['cells'] + 1} ({html.escape(what)}): re-embed the "
                f"current {self.a.adata.n_obs:,} cells</span>"
            )
            self.reembed_button.description = "Re-embed: kNN" if st["knn_stale"] else "Re-embed: UMAP"
            self.reembed_button.layout.display = None
        else:
            made = st["embedding"] is not None or self._shown_key() in self.a.adata.obsm
            text = "embedding of the current cells" if made else "no embedding yet: kNN, then UMAP"
            self.stale.value = f'<span class="em-an-stale-text">{text}</span>'
            self.reembed_button.layout.display = "none"

    def _refresh_umap_note(self):
        """Above ``_SLOW_CELLS`` cells: how long the default UMAP takes here, and the fast option."""
        fast = self.umap_mode.value == "fast"
        self.umap_subsample.layout.display = None if fast else "none"
        n = self.a.adata.n_obs
        if n <= _SLOW_CELLS:
            self.umap_note.value = ""
            return
        m = min(int(self.umap_subsample.value or _FAST_CELLS), n - 1)
        slow, quick = umap_seconds(n), umap_seconds(n, subsample=m)
        self.umap_note.value = (
            f'<span class="em-an-umap-note-text">UMAP of {n:,} cells: about {_duration(slow)} with the '
            f"default, about {_duration(quick)} with layout \u201cfast (subsample)\u201d of {m:,} cells "
            "(measured rate)</span>")

    def _refresh_cnmf(self):
        key = (self.cnmf_key.value or "").strip()
        run = self.a.adata.uns.get(key) if key else None
        ks = []
        if isinstance(run, dict) and isinstance(run.get("params"), dict):
            ks = [str(k) for k in run["params"].get("ks", [])]
        self._set_options(self.cnmf_k, ks)
        stats = self.a.adata.uns.get(f"{key}.stats") if key else None
        if isinstance(stats, pd.DataFrame) and {"k", "stability", "error"} <= set(stats.columns):
            # the choice of k as the tutorial plots it (plot_cnmf_silhouette), beside the table
            plot = k_choice_svg(stats["k"], stats["stability"], stats["error"])
            table = html_table(stats, index=False, float_format=lambda x: f"{x:.3g}")
            self.cnmf_stats.value = f'<div style="display:flex;gap:12px;align-items:flex-start">{table}{plot}</div>'
        else:
            self.cnmf_stats.value = ""

        self._refresh_programs()

    # ------------------------------------------------------------------ cNMF programs

    def _program_controls(self, btn, row, st) -> list:
        """Top genes per program (a click colours the UMAP by its usage) and the
        dominant-program labelling."""
        self.programs_info = W.HTML()
        self.programs_info.add_class("em-an-programs-info")
        self.programs_box = W.HBox(layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.programs_box.add_class("em-an-programs")
        self.program_buttons: dict[str, W.Button] = {}
        self.program_genes: pd.DataFrame | None = None
        self._programs_of = None  # (usage key, coefficient array) the list was made from
        self.min_usage = _small(W.BoundedFloatText(value=0.0, min=0.0, max=1.0, step=0.05,
                                                   description="min usage", style=st))
        self.program_key = _small(W.Text(value="", placeholder="<usage>.program", description="into obs",
                                         style=st), "240px")
        self.label_programs_button = btn("Label cells by dominant program",
                                         "obs column of each cell's largest program (em.label_by_program)",
                                         self.on_label_programs, "label-programs")
        return [self.programs_info, self.programs_box,
                row(self.label_programs_button, self.min_usage, self.program_key)]

    def usage_key(self) -> str | None:
        """``'<key>.<k>'`` of the picked k when it has been extracted, else ``None``."""
        key, k = (self.cnmf_key.value or "").strip(), self.cnmf_k.value
        usage = f"{key}.{k}" if key and k else None
        return usage if usage in self.a.adata.obsm else None

    def _refresh_programs(self):
        usage = self.usage_key()
        run, _, k = (usage or "").rpartition(".")
        coef = self.a.adata.varm.get(f"{run}.coef.{k}") if usage else None
        if self._programs_of is not None and self._programs_of[0] == usage and self._programs_of[1] is coef:
            return
        self._programs_of = (usage, coef)
        self.program_buttons = {}
        self.program_genes = None
        if usage is None:
            self.programs_info.value = "<i>extract a k to see its programs</i>"
            self.programs_box.children = ()
            return
        try:
            top = _em().program_top_genes(self.a.adata, usage, n_genes=10)
        except ExprmatError as e:
            self.programs_info.value = f'<i class="em-an-programs-error">{html.escape(str(e))}</i>'
            self.programs_box.children = ()
            return
        self.program_genes = top
        self.programs_info.value = (f"<b>{len(top.columns)} programs of obsm[{html.escape(repr(usage))}]</b>: "
                                    "top genes by coefficient; click a program to colour the UMAP by its usage")
        cols = []
        for p in top.columns:
            b = W.Button(description=f"Program {p}", tooltip=f"colour the UMAP by {usage}:{p}",
                         layout=W.Layout(width="auto"))
            b.add_class("em-an-program")
            b.on_click(lambda _b, f=f"{usage}:{p}": self.a.when_idle("colour by program", lambda: self.a.show_key(f)))
            self.program_buttons[str(p)] = b
            genes = W.HTML("<br>".join(html.escape(str(g)) for g in top[p]))
            genes.add_class("em-an-program-genes")
            cols.append(W.VBox([b, genes], layout=W.Layout(width="120px", margin="0 6px 6px 0")))
        self.programs_box.children = tuple(cols)

    def on_label_programs(self):
        def build():
            usage = self.usage_key()
            if usage is None:
                raise ExprmatError("no extracted programs: run cNMF, pick k and click Extract k first.")
            key = (self.program_key.value or "").strip() or f"{usage}.program"
            return {"usage_key": usage, "key_added": key, "min_usage": float(self.min_usage.value)}

        def after(_r):
            self._show_clusters((self.program_key.value or "").strip() or f"{self.usage_key()}.program")

        self._run("label_by_program", build, after=after)

    def _on_flavor(self, change):
        counts = (self.counts_layer.value or "").strip()
        want = counts if str(change["new"]).startswith("seurat_v3") else "X"
        if want in self.hvg_layer.options:
            self.hvg_layer.value = want

    def _on_minor_picked(self, change):
        if not self._silent:
            self._minor_auto = False

    def _on_composition_input(self, change):
        if not self._silent:
            self.a.when_idle("composition", self._refresh_composition)

    def _refresh_composition(self):
        major, minor = self.major.value, self.minor.value
        if not major or not minor:
            self.composition = None
            self.table.value = "<i>no categorical obs columns to tabulate</i>"
            return
        try:
            table = _em().proportion(self.a.adata, major, minor, normalize=_NORMALIZE[self.normalize.value])
        except ExprmatError as e:
            self.composition = None
            self.table.value = f'<i class="em-an-composition-error">{html.escape(str(e))}</i>'
            return
        self.composition = table
        shares = _NORMALIZE[self.normalize.value] is not None
        # both axis names in the corner cell: pandas would give the index name a header row
        # of its own, an empty row above the first sample
        shown = table.rename_axis(index=None, columns=f"{major} \\ {minor}")
        self.table.value = html_table(shown, float_format=(lambda x: f"{100 * x:.1f}%") if shares else None)
        obs = self.a.adata.obs
        missing = int((obs[major].isna() | obs[minor].isna()).sum())
        if missing:
            # shares of the labelled cells only: 100% B cell must not read as "all cells are B"
            self.table.value += (
                '<div class="em-an-composition-missing" style="color:var(--jp-warn-color0,#9a6700)">'
                f"{missing:,} of {obs.shape[0]:,} cells have no {html.escape(minor)} (or "
                f"{html.escape(major)}) value and are not counted.</div>"
            )
        shown_rows = set(map(str, table.index))
        absent = [c for c in pd.Series(obs[major]).dropna().astype(str).unique() if c not in shown_rows]
        if absent:
            # a sample with cells but no labelled ones has no row: say so, not leave it out silently
            names = ", ".join(html.escape(c) for c in absent[:10]) + (" ..." if len(absent) > 10 else "")
            self.table.value += (
                '<div class="em-an-composition-absent" style="color:var(--jp-warn-color0,#9a6700)">'
                f"no row for {html.escape(major)} {names}: none of its cells has a "
                f"{html.escape(minor)} value yet.</div>"
            )

    # ------------------------------------------------------------------ actions (one routine each)

    def _run(self, name, build, after=None):
        args = guarded(self.a, name, build)
        if args is not None:
            self.a.act(name, self._live(getattr(_em(), name)), self.a.adata, after=after, **args)

    def _live(self, func):
        # what the routine waits for (e.g. the first kNN's numba compilation) shows while it runs;
        # wraps keeps the routine's marks (a gated command stays gated: its bar and Cancel show)
        @functools.wraps(func)
        def run(*args, **kwargs):
            with on_progress(lambda msg: self.a._set_status(msg, "busy")):
                return func(*args, **kwargs)

        return run

    def _text(self, widget, what):
        s = (widget.value or "").strip()
        if not s:
            raise ExprmatError(f"type the {what} first.")
        return s

    def on_keep_counts(self):
        self._run("derive_layer", lambda: {"key_added": self._text(self.counts_layer, "counts layer name"),
                                           "source": "X", "transform": "copy"})

    def on_normalize(self):
        self._run("normalize_total", lambda: {"target_sum": float(self.target_sum.value)})

    def on_log1p(self):
        self._run("log1p", lambda: {})

    def on_hvg(self):
        def build():
            layer = self.hvg_layer.value
            return {"flavor": self.hvg_flavor.value, "n_top_genes": int(self.hvg_n.value),
                    "layer": None if layer in (None, "X") else layer,
                    "key_added": self._text(self.hvg_key, "var column for the flags")}

        self._run("highly_variable_genes", build)

    def on_pca(self):
        def build():
            mask = self.pca_mask.value
            return {"n_comps": int(self.pca_n.value), "mask_var": None if mask == _ALL_GENES else mask}

        self._run("pca", build)

    def on_harmony(self):
        def build():
            if not self.batch_key.value:
                raise ExprmatError("pick the obs column of the batches (e.g. 'sample') first.")
            return {"batch_key": self.batch_key.value}

        self._run("harmony", build)

    def on_knn(self):
        def build():
            if not self.use_rep.value:
                raise ExprmatError("no representation in obsm: run PCA (and Harmony) first.")
            return {"use_rep": self.use_rep.value, "n_neighbors": int(self.n_neighbors.value)}

        self._run("knn", build)

    def on_umap(self):
        def build():
            args = {"min_dist": float(self.min_dist.value), "spread": float(self.spread.value)}
            if self.umap_mode.value == "fast":
                args["subsample"] = int(self.umap_subsample.value)
            return args

        self._run("umap", build)

    def on_reembed(self):
        st = getattr(self, "embedding_state", None) or {}
        (self.on_knn if st.get("knn_stale") else self.on_umap)()

    def _show_clusters(self, key):
        """The new clustering in the cluster panel and the scatter (after the refresh)."""
        cp = self.a.clusters
        if key not in cp.key_dropdown.options:
            return
        # switched here, not through the dropdown's observer (which would wait for the action
        # to end and then overwrite the action's result in the status line)
        cp._silent = True
        try:
            cp.key_dropdown.value = key
        finally:
            cp._silent = False
        cp._on_key()

    def on_leiden(self):
        def build():
            return {"resolution": float(self.resolution.value),
                    "key_added": self._text(self.leiden_key, "obs column for the clusters")}

        self._run("leiden", build, after=lambda r: self._show_clusters(self.leiden_key.value.strip()))

    def on_sc3(self):
        def build():
            if not self.sc3_basis.value:
                raise ExprmatError("no representation in obsm: run PCA (and Harmony) first.")
            return {"basis": self.sc3_basis.value, "key_added": self._text(self.sc3_key, "obs prefix"),
                    "n_clusters": _ints(self.sc3_ks.value, "SC3 numbers of clusters")}

        def after(_r):
            ks = _ints(self.sc3_ks.value, "k")
            self._show_clusters(f"{self.sc3_key.value.strip()}.{ks[0]}")

        self._run("sc3", build, after=after)

    def on_tpm(self):
        self._run("derive_layer", lambda: {"key_added": self._text(self.tpm_layer, "linear layer name"),
                                           "source": "X", "transform": "expm1"})

    def on_cnmf(self):
        def build():
            hvg = self.cnmf_hvg.value
            tpm = self._text(self.tpm_layer, "linear layer name")
            if tpm not in self.a.adata.layers:
                # the core's message gives the line of code; here the fix is a button
                raise ExprmatError(f"no layer {tpm!r} yet: press 'Linear layer' first (it writes expm1 of "
                                   f"the log-normalised X into layers[{tpm!r}]), then cNMF.")
            return {"counts": self._text(self.counts_layer, "counts layer (Preprocess tab)"),
                    "tpm": tpm,
                    "ks": _ints(self.cnmf_ks.value, "cNMF numbers of programs"),
                    "hvg": None if hvg in (None, _ALL_GENES) else hvg,
                    "n_iter": int(self.cnmf_iter.value), "ncpus": int(self.cnmf_threads.value),
                    "progress": False,
                    "key_added": self._text(self.cnmf_key, "uns key")}

        self._run("consensus_nmf", build)

    def on_extract(self):
        def build():
            if not self.cnmf_k.value:
                raise ExprmatError("no cNMF run under this key: run cNMF first, then pick k.")
            return {"k": int(self.cnmf_k.value), "key": self._text(self.cnmf_key, "uns key")}

        self._run("consensus_nmf_extract_k", build)
