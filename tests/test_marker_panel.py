"""The annotator's marker panel without a browser: buttons are clicked with ``.click()``,
a click in the page's table is the message the page sends (``{'event': 'gene', ...}``);
results are checked in the AnnData, its history and the widget state sent to the page
(what a reopened notebook re-draws from)."""

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from lasso_helper import page_lasso

import exprmat_widgets as em
import exprmat_widgets.widgets  # noqa: F401
from exprmat_widgets.widgets import marker_panel

ROOT = Path(__file__).parents[1]


@pytest.fixture
def ann(pbmc_graph):
    return em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)


@pytest.fixture
def counts_ann():
    """The README's flow: raw counts in X, a log layer derived from them."""
    adata = em.datasets.pbmc68k_counts()
    em.derive_layer(adata, key_added="lognorm", transform="log1p")
    em.knn(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.leiden(adata, resolution=0.8, random_state=42)
    return em.Annotator(adata, key="leiden", basis="umap", background=False)


def _summary():
    # imported in the tests: each test fails on its own when the routines are missing
    from exprmat_widgets.tl import marker_summary

    return marker_summary


def _page_genes(mp):
    """Genes of the table as the page receives it (the synced widget state)."""
    return [r[1] for r in mp.view.get_state()["rows"]]


def _click_row(mp, i):
    gene = mp.view.get_state()["rows"][i][1]
    mp._on_view_msg(mp.view, {"event": "gene", "gene": gene, "row": i})
    return gene


def test_table_follows_each_new_result_and_click_colours_its_gene(ann):
    """Item 1: the table shown is the latest result even when the row count is unchanged."""
    adata, mp = ann.adata, ann.markers
    mp.n_genes.value = 3
    mp.min_lfc.value = 0.0
    mp.max_padj.value = 1.0
    mp.min_pct.value = 0.0
    ann.clusters.select(["0"])
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    first = _page_genes(mp)
    assert first == list(em.filter_markers(adata, key="markers", **mp.filters())["names"])
    page_lasso(ann, (adata.obs["leiden"] == "2").to_numpy())
    mp.lasso_button.click()
    assert ann.status_kind == "ok", ann.status_text
    second = _page_genes(mp)
    ref = list(em.filter_markers(adata, key="markers.selection", **mp.filters())["names"])
    assert len(second) == len(first) == 3 and second == ref and second != first
    # the dot plot draws the same genes
    assert re.findall(r'class="em-svg-text em-gene-label" data-gene="([^"]+)"', mp.view.svg) == second
    gene = _click_row(mp, 1)
    assert gene == ref[1] and ann.scatter.color == gene and mp.view.selected == gene
    # a click on a row of the previous table (sent before the new rows arrived) is ignored
    stale_gene = next(g for g in first if g not in second)
    mp._on_view_msg(mp.view, {"event": "gene", "gene": stale_gene, "row": 0})
    assert ann.scatter.color == gene


def test_panel_opens_with_the_existing_result_and_redraws_from_its_state(pbmc_graph):
    """Item 2: uns['markers'] made in the notebook is shown at once; the state the page
    re-draws from (reopened notebook, live kernel) holds the table and the dot plot."""
    em.markers(pbmc_graph, groupby="leiden", method="t-test")
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)
    mp = ann.markers
    assert mp.result_key == "markers"
    ref = list(em.filter_markers(pbmc_graph, key="markers", **mp.filters())["names"])
    state = mp.view.get_state()
    assert [r[1] for r in state["rows"]] == ref and len(ref) > 0
    n_dots = state["svg"].count('class="em-dot"')
    genes = list(dict.fromkeys(ref))[: marker_panel.MAX_DOT_GENES]
    assert n_dots == len(genes) * len(_summary().marker_groups(pbmc_graph, "markers"))
    assert "marker genes in" in mp.info.value


def test_lasso_markers_use_the_method_dropdown(ann):
    """Item 3."""
    adata, mp = ann.adata, ann.markers
    page_lasso(ann, (adata.obs["leiden"] == "1").to_numpy())
    mp.method.value = "t-test"
    mp.lasso_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "selection_markers" and rec["params"]["method"] == "t-test"
    assert adata.uns["markers.selection"]["params"]["method"] == "t-test"


def test_counts_in_x_default_to_the_log_layer_and_warn_in_the_panel(counts_ann):
    """Item 4: with counts in X the panel tests the log layer; choosing X anyway shows the
    routine's warning in the panel and the status (not a plain success)."""
    ann = counts_ann
    adata, mp = ann.adata, ann.markers
    assert mp.data.value == "lognorm" and set(mp.data.options) >= {"X", "lognorm", "counts"}
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["params"]["layer"] == "lognorm"
    assert mp.notes.value == "" and "on lognorm" in mp.info.value
    mp.data.value = "X"
    mp.clusters_button.click()
    assert ann.status_kind == "warn", ann.status_text
    assert "raw counts" in ann.status_text and "\u2713" not in ann.status.value
    assert "raw counts" in mp.notes.value and "em-marker-warning" in mp.notes.value
    assert em.history(adata).iloc[-1]["params"]["layer"] is None


def test_markers_are_marked_stale_after_reclustering_and_recomputed(ann):
    """Item 5."""
    adata, mp = ann.adata, ann.markers
    mp.clusters_button.click()
    assert mp.stale_reason is None and mp.stale_box.layout.display == "none"
    assert _summary().marker_result_stale(adata, "markers") is None
    em.leiden(adata, resolution=0.4, random_state=1)  # re-clustered in the notebook
    ann.refresh()
    assert mp.stale_reason and "obs['leiden'] changed" in mp.stale_reason
    assert mp.stale_box.layout.display == "flex" and "stale" in mp.stale_text.value
    assert 'class="em-dot"' not in mp.view.svg  # not drawn against the new groups
    n = len(adata.uns["commands"])
    mp.recompute_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert len(adata.uns["commands"]) == n + 1 and mp.stale_reason is None
    assert list(adata.uns["markers"]["names"].dtype.names) == list(adata.obs["leiden"].cat.categories)
    assert 'class="em-dot"' in mp.view.svg
    # undoing the recompute brings the stale result (and its mark) back
    ann.history.undo_button.click()
    assert mp.stale_reason is not None
    # cells removed after a lasso result: stale too
    page_lasso(ann, (adata.obs["leiden"] == "1").to_numpy())
    mp.lasso_button.click()
    assert mp.stale_reason is None
    ann.clusters.select([adata.obs["leiden"].cat.categories[-1]])
    ann.clusters.exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert mp.stale_reason and "cells changed" in mp.stale_reason


def test_panel_opens_on_a_scanpy_logreg_result_with_its_scores(pbmc_graph):
    """A logreg result (scores, no p-values) opens with its genes and scores, not "0 marker
    genes"; the panel says which filters do not apply."""
    import scanpy as sc

    sc.tl.rank_genes_groups(pbmc_graph, "leiden", method="logreg")
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)
    mp = ann.markers
    assert mp.result_key == "rank_genes_groups"
    state = mp.view.get_state()
    ref = em.filter_markers(pbmc_graph, key="rank_genes_groups", n_genes=mp.n_genes.value)
    assert [r[1] for r in state["rows"]] == list(ref["names"]) and len(ref) > 0
    assert state["columns"] == ["group", "gene", "score", "pct in", "pct out"]
    assert [r[2] for r in state["rows"]] == [f"{v:.2f}" for v in ref["scores"]]
    assert f"{len(ref)} marker genes in" in mp.info.value
    notes = mp.notes.value
    assert "em-marker-unfiltered" in notes and "min logFC, max p adj, min pct" in notes
    assert "do not apply" in notes and 'class="em-dot"' in state["svg"]
    # a t-test result afterwards: the usual columns, no note
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert mp.view.get_state()["columns"][2:4] == ["logFC", "p adj"] and mp.notes.value == ""


def test_group_means_come_from_the_core(pbmc_graph):
    """One group-mean routine (the core's group_stats) for the panel and the markers."""
    assert not hasattr(marker_panel, "group_summaries")
    marker_group_means, marker_groups = _summary().marker_group_means, _summary().marker_groups
    em.markers(pbmc_graph, groupby="leiden", layer=None)
    groups = marker_groups(pbmc_graph, "markers")
    genes = ["CD79A", "NKG7", "LYZ"]
    mean, frac = marker_group_means(pbmc_graph, genes, groups)
    X = pbmc_graph[:, genes].X
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    for i, m in enumerate(groups.values()):
        np.testing.assert_allclose(mean[i], X[m].mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(frac[i], (X[m] != 0).mean(axis=0), atol=1e-9)
    # the fraction is the result's own pts
    pts = pbmc_graph.uns["markers"]["pts"]
    for i, g in enumerate(k for k in groups if k != "rest"):
        np.testing.assert_allclose(frac[i], pts.loc[genes, g].to_numpy(), atol=1e-9)
    everyone = np.ones(pbmc_graph.n_obs, bool)
    with pytest.raises(em.ExprmatError, match="overlap"):
        marker_group_means(pbmc_graph, genes, {"a": everyone, "b": everyone.copy()})


def test_colours_follow_the_jupyterlab_theme():
    css = (ROOT / "exprmat_widgets" / "static" / "marker_view.css").read_text()
    decls = re.findall(r"(?:^|[;{\s])(color|background|fill|stroke|border(?:-\w+)?)\s*:\s*([^;}]+)", css)
    coloured = [(p, v) for p, v in decls if "#" in v or "rgb" in v]
    assert coloured and all("var(--jp-" in v for _p, v in coloured), coloured


def test_saved_notebook_with_an_annotator_is_small(tmp_path):
    """Item 17: no BokehJS in the outputs; one executed Annotator cell stays well under 1 MB
    (with the bokeh panel it saved 4.6 MB: BokehJS inline twice, 2 MB each)."""
    from nbclient import NotebookClient

    cells = [
        "import scanpy as sc, exprmat_widgets as em, exprmat_widgets.widgets\n"
        "adata = sc.datasets.pbmc68k_reduced()\nem.leiden(adata, resolution=1.0, random_state=0)\n"
        "em.markers(adata, groupby='leiden')\nprint(em.__file__)",
        "em.Annotator(adata, key='leiden', basis='umap')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    assert str(ROOT / "exprmat_widgets") in nb.cells[0].outputs[0]["text"]  # this checkout ran
    path = tmp_path / "ann.ipynb"
    nbformat.write(nb, path)
    outputs = json.dumps(nb.cells[1].outputs)
    assert "application/vnd.jupyter.widget-view+json" in outputs
    assert "Bokeh" not in outputs and len(outputs) < 20_000
    assert path.stat().st_size < 1_000_000
