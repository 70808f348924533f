"""What a new user's walkthrough from raw counts (issues 10 and 11) found confusing or stale,
checked on the panels from Python: a finished action's status line without the progress
notes of its wait, a marker view switch that only redraws, the composition's uncounted
cells, the Embed tab before any embedding, cNMF without its linear layer, markers before
any clusters, and the verify button's status line."""

import numpy as np
import pytest

import exprmat_widgets as em
import exprmat_widgets.widgets  # noqa: F401
from exprmat_widgets import _logging
from exprmat_widgets.history import raw_records
from exprmat_widgets.widgets import marker_panel


@pytest.fixture
def ann(pbmc_graph):
    return em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)


def test_done_status_leaves_out_the_progress_notes_of_the_wait(ann):
    def routine():
        _logging.progress("kNN: loading the numba code of the first kNN (about 7 s) ...")
        _logging.info("made 3 things")

    ann.act("thing", routine)
    assert ann.status_kind == "ok", ann.status_text
    assert "made 3 things" in ann.status_text
    assert "loading" not in ann.status_text and "..." not in ann.status_text, ann.status_text


def test_marker_view_switch_redraws_without_filtering_again(ann, monkeypatch):
    mp = ann.markers
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rows = list(mp.view.rows)
    calls = []
    real = em.filter_markers
    monkeypatch.setattr(em, "filter_markers", lambda *a, **k: calls.append(1) or real(*a, **k))
    stale = marker_panel.marker_result_stale
    monkeypatch.setattr(marker_panel, "marker_result_stale", lambda *a, **k: calls.append(2) or stale(*a, **k))
    for kind, mark in (("matrixplot", "em-matrix-cell"), ("stacked_violin", "em-violin"),
                       ("tracksplot", "em-track"), ("dotplot", "em-dot")):
        mp.kind.value = kind
        assert mp.view_values["kind"] == kind and mark in mp.view.svg
    assert calls == [] and list(mp.view.rows) == rows
    mp.n_genes.value = 2  # a filter change does filter again
    assert 1 in calls and len(mp.view.rows) < len(rows)


def test_composition_says_how_many_cells_it_leaves_out(ann):
    adata = ann.adata
    cells = adata.obs_names[adata.obs["leiden"] == adata.obs["leiden"].cat.categories[0]]
    em.label_cells(adata, "cell.type", list(cells), "B cell")
    ann.refresh()
    an = ann.analysis
    an.major.value, an.minor.value = "bulk_labels", "cell.type"
    left_out = int(adata.obs["cell.type"].isna().sum())
    assert left_out > 0
    assert an.composition is not None and np.allclose(an.composition.sum(axis=1), 1.0)
    assert f"{left_out:,} of {adata.n_obs:,} cells" in an.table.value and "cell.type" in an.table.value
    em.label_cells(adata, "cell.type", list(adata.obs_names[adata.obs["cell.type"].isna()]), "other")
    ann.refresh()
    assert "not counted" not in an.table.value


def test_embed_tab_before_any_embedding_says_so():
    raw = em.datasets.pbmc_2samples()
    ann = em.Annotator(raw, background=False)
    # "run Preprocess and Embed in the Analysis tab": the tabs are headed so
    kids = list(ann.children)
    assert "<b>Analysis</b>" in ann.analysis_title.value
    assert kids.index(ann.analysis_title) == kids.index(ann.analysis.widget) - 1
    assert "no embedding yet" in ann.analysis.stale.value
    assert "of the current cells" not in ann.analysis.stale.value


def test_cnmf_without_the_linear_layer_names_the_button():
    raw = em.datasets.pbmc_2samples()
    ann = em.Annotator(raw, background=False)
    an = ann.analysis
    for b in (an.keep_counts_button, an.normalize_button, an.log1p_button, an.hvg_button):
        b.click()
        assert ann.status_kind == "ok", ann.status_text
    n = len(raw_records(raw))
    an.cnmf_ks.value, an.cnmf_iter.value = "3", 2
    an.cnmf_button.click()
    ann.wait()
    assert ann.status_kind == "error"
    assert "Linear layer" in ann.status_text and "np.expm1" not in ann.status_text, ann.status_text
    assert len(raw_records(raw)) == n


def test_markers_before_any_clusters_name_the_cluster_tab():
    raw = em.datasets.pbmc_2samples()
    ann = em.Annotator(raw, background=False)
    ann.markers.clusters_button.click()
    ann.wait()
    assert ann.status_kind == "error"
    assert "Cluster" in ann.status_text and "Leiden" in ann.status_text, ann.status_text
    assert raw_records(raw) == [] or len(raw_records(raw)) == 0


def test_verify_status_says_the_verdict_not_the_replayed_messages(pbmc_graph):
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)  # keeps its start
    em.merge_clusters(pbmc_graph, "leiden", ["0", "1"], "big")
    em.rename_cluster(pbmc_graph, "leiden", "2", "two")
    ann.history.verify_button.click()
    ann.wait()
    assert ann.status_kind == "ok", ann.status_text
    assert "2 command(s) reproduced exactly" in ann.status_text
    assert "merged" not in ann.status_text, ann.status_text
    # a start the history does not replay on: red, with the step
    ann.start = ann.start.copy()
    ann.start.obs["leiden"] = ann.start.obs["leiden"].cat.rename_categories(lambda c: f"c{c}")
    ann.history.verify_button.click()
    ann.wait()
    assert ann.status_kind == "error", ann.status_text
    assert "replay failed at step" in ann.status_text
    assert "replay failed" in ann.history.verify_status.value


def test_rename_and_exclude_status_lines_read_as_one_sentence(ann):
    cp = ann.clusters
    cp.select(["0"])
    cp.name_text.value = "Mono"
    cp.rename_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert "renamed '0' to 'Mono' in obs['leiden']" in ann.status_text
    cp.select(["1"])
    n = int((ann.adata.obs["leiden"] == "1").sum())
    cp.exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert f"excluded {n} cells - Undo restores them" in ann.status_text
    assert ". -" not in ann.status_text, ann.status_text


def test_history_parameters_may_wrap_anywhere(ann):
    em.derive_layer(ann.adata, key_added="counts_before_normalisation_of_every_sample", transform="copy")
    ann.refresh()
    cells = ann.history.table.value.split("<td")
    params = [c for c in cells if "counts_before_normalisation_of_every_sample" in c]
    assert params and all("overflow-wrap:anywhere" in c for c in params)


def test_an_annotation_click_does_not_filter_or_hash_the_markers_again(ann, monkeypatch):
    """A merge changes the groups, not the marker result: the panel says it is stale from
    the table it has and a remembered fingerprint of the result (it took 1.5 s a click on
    16k genes); a filter change, or a new result, filters again."""
    from exprmat_widgets.tl import marker_summary

    mp, cp = ann.markers, ann.clusters
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    calls, hashed = [], []
    real, real_fp = em.filter_markers, marker_summary.fingerprint
    monkeypatch.setattr(em, "filter_markers", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(marker_summary, "fingerprint",
                        lambda o: (hasattr(o, "keys") and "names" in o and hashed.append(1)) or real_fp(o))
    cp.select(["0", "1"])
    cp.merge_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert mp.stale_reason and "leiden" in mp.stale_reason  # still judged: the groups changed
    assert calls == []
    n_hashed = len(hashed)
    cp.select(["2"])
    cp.name_text.value = "two"
    cp.rename_button.click()
    assert len(hashed) == n_hashed and calls == []  # the result's fingerprint is remembered
    mp.min_lfc.value = 0.5  # a filter: the table is filtered again
    assert calls == [1]
    mp.recompute_button.click()  # a new result: filtered and hashed again
    assert ann.status_kind == "ok", ann.status_text
    assert len(calls) == 2 and len(hashed) > n_hashed and mp.stale_reason is None


def test_label_and_exclude_are_in_full_colour_only_with_a_selection(ann):
    cp = ann.clusters
    assert (cp.label_button.button_style, cp.exclude_button.button_style) == ("", "")
    cp.select(["0"])
    assert (cp.label_button.button_style, cp.exclude_button.button_style) == ("primary", "danger")
    cp.clear_all()
    assert (cp.label_button.button_style, cp.exclude_button.button_style) == ("", "")
    cp.label_text.value = "T"
    cp.label_button.click()  # still clickable: the click says what is missing
    assert ann.status_kind == "error" and "select" in ann.status_text, ann.status_text
