"""Annotator UX: what the buttons act on, the unlabelled cells, colours that match the plot,
history newest first, Undo / Redo naming their command, no silent overwrite, messages
through logging.  Driven like tests/test_widgets_panels.py (``button.click()``)."""

import logging

import numpy as np
import pytest
from lasso_helper import page_lasso

import exprmat_widgets as em
import exprmat_widgets.widgets  # noqa: F401
from exprmat_widgets.history import fingerprint


@pytest.fixture
def ann(pbmc_graph):
    return em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)


def test_buttons_say_what_they_act_on_and_one_selection_is_current(ann):
    adata, cp = ann.adata, ann.clusters
    n0, n2 = (int((adata.obs["leiden"] == c).sum()) for c in ("0", "2"))
    cp.select(["0", "2"])
    assert cp.selection_kind == "clusters"
    assert cp.exclude_button.description == f"Exclude 2 clusters ({n0 + n2:,} cells)"
    assert cp.label_button.description == f"Label 2 clusters ({n0 + n2:,} cells)"
    assert cp.merge_button.description == "Merge 2 clusters"
    # a lasso replaces the clusters as the selection
    inside, _ = page_lasso(ann, (adata.obs["leiden"] == "1").to_numpy())
    assert cp.selected == [] and cp.selection_kind == "lasso"
    assert cp.label_button.description == f"Label {inside.size} lasso cells"
    assert cp.exclude_button.description == f"Exclude {inside.size} lasso cells"
    assert np.frombuffer(ann.scatter._highlight, np.uint8).size == 0  # no cluster highlight left
    # selecting a cluster clears the lasso
    cp._rows["3"].toggle.value = True
    assert ann.scatter.selection.size == 0 and cp.selection_kind == "clusters"
    n3 = int((adata.obs["leiden"] == "3").sum())
    assert cp.label_button.description == f"Label cluster 3 ({n3:,} cells)"
    assert cp.rename_button.description == "Rename cluster 3"
    # the button labels the cells it says it does
    cp.label_text.value = "X"
    cp.label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert int((adata.obs["cell.type"] == "X").sum()) == n3


def test_unlabelled_cells_can_be_selected_and_labelled(ann):
    adata, cp = ann.adata, ann.clusters
    # before any label every cell is unlabelled
    assert cp.unlabelled_button.description == f"Select {adata.n_obs:,} unlabelled"
    cp.select(["0"])
    cp.label_text.value = "T"
    cp.label_button.click()
    rest = int(adata.obs["cell.type"].isna().sum())
    assert 0 < rest < adata.n_obs
    assert cp.unlabelled_button.description == f"Select {rest:,} unlabelled"
    cp.unlabelled_button.click()
    assert cp.selection_kind == "unlabelled" and cp.selected == []
    hl = np.frombuffer(ann.scatter._highlight, np.uint8).astype(bool)
    assert (hl == adata.obs["cell.type"].isna().to_numpy()).all()
    assert cp.label_button.description == f"Label {rest:,} unlabelled cells"
    cp.label_text.value = "other"
    cp.label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert adata.obs["cell.type"].notna().all()
    assert int((adata.obs["cell.type"] == "other").sum()) == rest
    # nothing unlabelled is left: the selection is gone and the button says so
    assert cp.selection_kind is None and cp.unlabelled_button.description == "Select unlabelled (none)"
    cp.unlabelled_button.click()
    assert ann.status_kind == "error" and "every cell has a label" in ann.status_text


def test_label_colours_the_plot_and_swatches_follow_it(ann):
    adata, cp, sc = ann.adata, ann.clusters, ann.scatter
    assert sc.color == "leiden" and "plot coloured by obs['leiden']" in cp.color_info.value
    cp.select(["1"])
    cp.label_text.value = "B"
    cp.label_button.click()
    assert sc.color == "cell.type"  # the new label shows without switching by hand
    assert "plot coloured by obs['cell.type']" in cp.color_info.value
    assert all(r.swatch.value == "" for r in cp._rows.values())  # leiden colours would mislead
    assert cp.color_key_button.layout.display is None
    cp.color_key_button.click()
    assert sc.color == "leiden" and cp.color_key_button.layout.display == "none"
    colours = dict(zip(adata.obs["leiden"].cat.categories, adata.uns["leiden_colors"]))
    assert all(colours[n] in r.swatch.value for n, r in cp._rows.items())


def test_history_newest_first_undo_redo_named_and_checked(ann):
    adata, cp, hp = ann.adata, ann.clusters, ann.history
    cp.select(["0", "1"])
    cp.merge_button.click()
    cp.select(["5"])
    n5 = int(cp._mask(["5"]).sum())
    cp.label_text.value = "Mono"
    cp.label_button.click()
    table = hp.table.value
    assert table.index("label_cells") < table.index("merge_clusters")  # newest first
    assert hp.undo_button.description == f"Undo label_cells (Mono, {n5} cells)"
    assert hp.redo_button.description == "Redo (nothing undone)"
    undone = em.history(adata).iloc[-1]
    rec = hp.records[-1]
    state = fingerprint(adata.obs["cell.type"])
    hp.undo_button.click()
    assert ann.status_kind == "ok" and "undo label_cells (Mono" in ann.status_text
    assert "cell.type" not in adata.obs
    assert hp.redo_button.description == f"Redo label_cells (Mono, {n5} cells)"
    assert "em-history-undone" in hp.table.value
    hp.redo_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert "same result as before the undo" in ann.status_text
    assert fingerprint(adata.obs["cell.type"]) == state
    new = hp.records[-1]
    assert new["command"] == "label_cells" and new["params"] == rec["params"]
    assert new["output"] == rec["output"] and undone["command"] == "label_cells"
    assert hp.redo_button.description == "Redo (nothing undone)"
    # a new command after an undo drops the redo
    hp.undo_button.click()
    cp.select(["2"])
    cp.label_text.value = "NK"
    cp.label_button.click()
    assert hp.redo_records == [] and "em-history-undone" not in hp.table.value
    hp.redo_button.click()
    assert ann.status_kind == "error" and "nothing undone" in ann.status_text


def test_exclude_says_how_to_undo(ann):
    cp = ann.clusters
    cp.select(["4"])
    n = cp.counts["4"]
    assert cp.exclude_button.description == f"Exclude cluster 4 ({n:,} cells)"
    cp.exclude_button.click()
    assert ann.status_kind == "ok"
    assert f"excluded {n} cells - Undo restores them" in ann.status_text


@pytest.mark.parametrize("which", ["save", "script"])
def test_save_and_export_refuse_to_overwrite(ann, tmp_path, which):
    hp = ann.history
    path = tmp_path / ("a.h5ad" if which == "save" else "h.py")
    box, button = (hp.h5ad_path, hp.save_button) if which == "save" else (hp.script_path, hp.script_button)
    box.value = str(path)
    button.click()
    assert ann.status_kind == "ok" and f"wrote {path}" in ann.status_text
    assert str(path) in hp.written.value
    path.write_text("keep me")
    button.click()
    assert ann.status_kind == "error" and "already exists" in ann.status_text and "overwrite" in ann.status_text
    assert path.read_text() == "keep me"
    hp.overwrite.value = True
    button.click()
    assert ann.status_kind == "ok" and path.read_bytes() != b"keep me"
    assert hp.overwrite.value is False  # the confirmation holds for one write


def test_messages_go_through_logging_and_show_in_the_status(ann, capsys):
    log = logging.getLogger("exprmat_widgets")

    def routine():
        log.info("did %d things", 3)
        return 1

    ann.act("demo", routine)
    assert ann.status_kind == "ok" and "demo done" in ann.status_text and "did 3 things" in ann.status_text
    cap = capsys.readouterr()
    assert "did 3 things" not in cap.out + cap.err  # shown in the panel, not printed as well
    from exprmat_widgets import _logging

    assert not hasattr(__import__("exprmat_widgets.widgets.annotator").widgets.annotator, "_ThreadStdout")
    # outside an action the default handler prints "[i] ..." on stderr, like scanpy
    _logging.info("hello %s", "there")
    assert "[i] hello there" in capsys.readouterr().err
