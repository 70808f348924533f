"""The annotator's panels without a browser: clicks are simulated with ``button.click()``
(the same handlers the page triggers); results are checked in the AnnData, its history
and the panels' displayed state."""

import json

import numpy as np
import pandas as pd
import pytest
from lasso_helper import page_lasso

import exprmat_widgets as em
import exprmat_widgets.widgets  # noqa: F401  (see test_annotator_is_exported)
from exprmat_widgets.history import fingerprint


@pytest.fixture
def ann(pbmc_graph):
    return em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)


def _state(adata):
    return (
        {k: fingerprint(adata.obs[k]) for k in adata.obs.columns},
        list(adata.uns.get("commands", [])),
        adata.n_obs,
        fingerprint(np.asarray(adata.uns.get("leiden_colors", []), dtype=object)),
    )


def test_annotator_is_exported(pbmc_graph):
    assert "Annotator" in exprmat_widgets.widgets.__all__
    assert em.Annotator is exprmat_widgets.widgets.Annotator
    with pytest.raises(em.ExprmatError, match="key="):
        em.Annotator(pbmc_graph, key="nope", background=False)
    with pytest.raises(em.MissingKeyError, match="embedding"):
        em.Annotator(pbmc_graph, basis="tsne", background=False)


def test_cluster_list_counts_and_colours(ann):
    adata = ann.adata
    cp = ann.clusters
    vc = adata.obs["leiden"].value_counts()
    assert cp.counts == {str(k): int(v) for k, v in vc.items()}
    assert list(cp.counts) == list(adata.obs["leiden"].cat.categories)
    colours = dict(zip(adata.obs["leiden"].cat.categories, adata.uns["leiden_colors"]))
    for name, row in cp._rows.items():
        assert colours[name] in row.swatch.value
    assert "10 clusters" in cp.summary.value or f"{len(vc)} clusters" in cp.summary.value
    # clicking a cluster highlights its cells in the scatter
    cp._rows["3"].toggle.value = True
    hl = np.frombuffer(ann.scatter._highlight, dtype=np.uint8).astype(bool)
    assert (hl == (adata.obs["leiden"] == "3").to_numpy()).all()
    cp._rows["3"].toggle.value = False
    assert ann.scatter._highlight == b""


def test_merge_rename_label_by_clicking(ann):
    adata, cp = ann.adata, ann.clusters
    n0, n1 = int((adata.obs["leiden"] == "0").sum()), int((adata.obs["leiden"] == "1").sum())
    cp.select(["0", "1"])
    cp.name_text.value = "T cells"
    cp.merge_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert cp.counts["T cells"] == n0 + n1 and "0" not in cp.counts and "1" not in cp.counts
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "merge_clusters"
    assert rec["params"] == {"key": "leiden", "clusters": ["0", "1"], "new_name": "T cells"}
    assert len(adata.uns["leiden_colors"]) == adata.obs["leiden"].cat.categories.size

    cp.select(["2"])
    cp.name_text.value = "NK"
    cp.rename_button.click()
    assert "NK" in cp.counts and "2" not in cp.counts
    assert em.history(adata).iloc[-1]["params"] == {"key": "leiden", "old": "2", "new": "NK", "term": None}

    cp.select(["3", "NK"])
    cp.label_key_box.value = "cell.type"
    cp.label_text.value = "Lymphoid"
    cp.label_button.click()
    expected = adata.obs["leiden"].isin(["3", "NK"]).to_numpy()
    got = (adata.obs["cell.type"] == "Lymphoid").to_numpy()
    assert (got == expected).all() and adata.obs["cell.type"].isna().sum() == (~expected).sum()
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "label_cells" and rec["params"]["key"] == "cell.type"
    assert rec["params"]["cells"]["n_selected"] == expected.sum()
    # label completion offers existing labels, the key list knows the new column
    assert list(cp.label_text.options) == ["Lymphoid"]
    assert "cell.type" in cp.key_dropdown.options
    assert list(em.history(adata)["command"][-3:]) == ["merge_clusters", "rename_cluster", "label_cells"]


def test_lasso_label_keeps_polygon_and_exclude_recluster(ann):
    adata, cp = ann.adata, ann.clusters
    inside, poly = page_lasso(ann, (adata.obs["leiden"] == "1").to_numpy())
    assert inside.size > 5
    assert f"{inside.size} cells selected" in cp.lasso_info.value
    cp.label_text.value = "blob"
    cp.lasso_label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "label_cells"
    assert rec["params"]["basis"] == "umap"
    assert np.allclose(rec["params"]["polygon"], poly, atol=1e-4 * np.ptp(poly))
    assert rec["params"]["cells"]["n_selected"] == inside.size
    assert (np.flatnonzero((adata.obs["cell.type"] == "blob").to_numpy()) == inside).all()

    # re-cluster the lasso cells at a chosen resolution
    cp.resolution.value = 0.5
    cp.lasso_recluster_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "subcluster" and rec["params"]["resolution"] == 0.5
    assert rec["params"]["polygon"] is not None and rec["params"]["key"] == "leiden"
    assert set(cp.counts) == set(adata.obs["leiden"].cat.categories)

    # exclude selected clusters: cells dropped, counts follow, scatter shrinks
    victim = list(cp.counts)[-1]
    n_victim = cp.counts[victim]
    n0 = adata.n_obs
    cp.select([victim])
    cp.exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert adata.n_obs == n0 - n_victim and victim not in cp.counts
    assert ann.scatter._n == adata.n_obs
    assert sum(cp.counts.values()) == adata.n_obs
    assert em.history(adata).iloc[-1]["params"] == {"annotation": "leiden", "remove": [victim]}
    assert f"excluded {n_victim} cells - Undo restores them" in ann.status_text

    # exclude the lasso cells
    inside, _ = page_lasso(ann, (adata.obs["leiden"] == list(cp.counts)[0]).to_numpy())
    n0 = adata.n_obs
    cp.lasso_exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert adata.n_obs == n0 - inside.size
    assert em.history(adata).iloc[-1]["command"] == "exclude_cells"
    assert ann.scatter.selection.size == 0  # the excluded cells are gone from the selection


def test_errors_are_shown_and_change_nothing(ann):
    adata, cp = ann.adata, ann.clusters
    before = _state(adata)
    # a core routine refuses (rename onto an existing cluster): message shown in red
    cp.select(["2"])
    cp.name_text.value = "3"
    cp.rename_button.click()
    assert ann.status_kind == "error" and "already a category" in ann.status_text
    assert "#c62828" in ann.status.value
    assert _state(adata) == before
    assert cp.counts["2"] == int((adata.obs["leiden"] == "2").sum())
    # panel-level checks: nothing selected, one cluster for a merge, empty label
    cp.clear_selection()
    cp.merge_button.click()
    assert ann.status_kind == "error" and "select at least 2 clusters" in ann.status_text
    cp.select(["4"])
    cp.label_text.value = "  "
    cp.label_button.click()
    assert ann.status_kind == "error" and "type a label" in ann.status_text
    cp.label_text.value = "Mono"
    cp.clear_all()  # one button acts on the current selection: with none it says how to make one
    cp.lasso_label_button.click()
    assert ann.status_kind == "error" and "draw a lasso" in ann.status_text
    # excluding every cluster is refused by the routine and rolled back
    cp.select(list(cp.counts))
    cp.exclude_button.click()
    assert ann.status_kind == "error", ann.status_text
    assert _state(adata) == before
    assert not any(b.disabled for b in ann.action_buttons)


def test_marker_panel(ann):
    adata, cp, mp = ann.adata, ann.clusters, ann.markers
    cp.select(["0", "3"])
    mp.min_lfc.value = 0.5
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "markers" and rec["params"]["groups"] == ["0", "3"]
    df = mp.table_df
    assert len(df) > 0 and set(df["group"]) <= {"0", "3"}
    ref = em.filter_markers(adata, key="markers", **mp.filters())
    assert list(df["names"]) == list(ref["names"])
    assert (df["logfoldchanges"] >= 0.5).all() and (df["pvals_adj"] <= 0.05).all()
    assert [r[1] for r in mp.view.rows] == list(df["names"])
    # dot plot: genes x groups, fraction expressing as in the data
    g = mp.dot_genes[0]
    grp = mp.dot_groups[0]
    cells = (adata.obs["leiden"].astype(str) == grp).to_numpy()
    frac = float((np.asarray(adata[cells, g].X).ravel() != 0).mean())
    assert mp.dot_frac[0, 0] == pytest.approx(frac, abs=1e-6)
    # stricter filter: fewer rows, no new command recorded
    n_cmd = len(adata.uns["commands"])
    mp.n_genes.value = 2
    assert len(mp.table_df) <= 4 and len(adata.uns["commands"]) == n_cmd
    # clicking a gene in the table colours the UMAP by it
    mp.select_gene_row(1)
    gene = mp.view.rows[1][1]
    assert ann.scatter.color == gene
    # lasso vs rest
    page_lasso(ann, (adata.obs["leiden"] == "2").to_numpy())
    mp.lasso_button.click()
    assert ann.status_kind == "ok", ann.status_text
    rec = em.history(adata).iloc[-1]
    assert rec["command"] == "selection_markers" and rec["params"]["polygon"] is not None
    assert mp.result_key == "markers.selection" and len(mp.table_df) > 0
    assert len(mp.dot_groups) == 2
    # a gene clicked in the table recolours with the matrix the markers were tested on
    mp.on_gene("CD79A")
    assert ann.scatter.color == "CD79A" and ann.status_kind == "ok"


def test_history_panel_undo_export_verify(ann, tmp_path):
    adata, cp, hp = ann.adata, ann.clusters, ann.history
    n_start = len(adata.uns["commands"])
    before = _state(adata)
    cp.select(["0", "1"])
    cp.merge_button.click()
    cp.select(["5"])
    cp.label_text.value = "Mono"
    cp.label_button.click()
    assert len(adata.uns["commands"]) == n_start + 2
    assert "merge_clusters" in hp.table.value and f"{n_start + 2} commands" in hp.table.value
    # verify: replay on the start copy reproduces every fingerprint
    hp.verify_button.click()
    assert "replay ok: 2 command(s)" in hp.verify_status.value
    # export the script and the data
    hp.script_path.value = str(tmp_path / "h.py")
    hp.script_button.click()
    text = (tmp_path / "h.py").read_text()
    assert "em.merge_clusters(" in text and "em.label_cells(" in text
    hp.h5ad_path.value = str(tmp_path / "a.h5ad")
    hp.save_button.click()
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert list(back.uns["commands"]) == list(adata.uns["commands"])
    # undo twice: exactly the state before, panels follow
    hp.undo_button.click()
    assert "cell.type" not in adata.obs and ann.status_kind == "ok"
    hp.undo_button.click()
    assert _state(adata) == before
    assert cp.counts["0"] == int((adata.obs["leiden"] == "0").sum())
    assert f"{n_start} commands" in hp.table.value
    # nothing of this annotator's left to undo
    hp.undo_button.click()
    assert ann.status_kind == "error" and _state(adata) == before
    # verify detects a start copy that does not match the history
    cp.select(["0", "1"])
    cp.merge_button.click()
    start_cats = ann.start.obs["leiden"].cat.rename_categories(lambda c: f"x{c}")
    ann.start.obs["leiden"] = start_cats
    hp.verify_button.click()
    assert f"replay failed at step {n_start}" in hp.verify_status.value


def test_background_actions_keep_state_consistent(pbmc_graph):
    ann = em.Annotator(pbmc_graph, background=True)
    cp = ann.clusters
    cp.select(["0", "1"])
    cp.merge_button.click()
    ann.wait(60)
    assert ann.status_kind == "ok" and not ann.busy
    assert not any(b.disabled for b in ann.action_buttons)
    assert "1" not in cp.counts
    assert em.history(pbmc_graph).iloc[-1]["command"] == "merge_clusters"


def test_record_params_are_json(ann):
    cp = ann.clusters
    cp.select(["4"])
    cp.label_text.value = "x"
    cp.label_button.click()
    rec = json.loads(ann.adata.uns["commands"][-1])
    assert rec["params"]["cells"]["encoding"] in ("names", "mask")
    assert isinstance(pd.Series(rec["params"]["cells"].get("names", [])).tolist(), list)


def _record_sends(monkeypatch):
    import ipywidgets as W

    sent = []
    orig = W.Widget.send_state

    def rec(self, key=None):
        keys = [key] if isinstance(key, str) else list(key or [])
        sent.extend((self, k) for k in keys)
        return orig(self, key)

    monkeypatch.setattr(W.Widget, "send_state", rec)
    return sent


def test_actions_send_only_what_changed(ann, monkeypatch):
    cp, sc_ = ann.clusters, ann.scatter
    rows_before = dict(cp._rows)
    sent = _record_sends(monkeypatch)
    # labelling into another column: the cluster counts and the coordinates stay as they are;
    # the scatter shows the new label column (its colour codes), the list hides its swatches
    cp.select(["4"])
    sent.clear()
    cp.label_text.value = "x"
    cp.label_button.click()
    assert ann.status_kind == "ok", ann.status_text
    keys = {k for w, k in sent if w is sc_}
    assert not keys & {"_coords", "_n"}, keys
    assert sc_.color == "cell.type" and "_codes" in keys
    assert not [k for w, k in sent if any(w in (r.count, r.toggle) for r in cp._rows.values())]
    assert all(r.swatch.value == "" for r in cp._rows.values())
    assert {k for w, k in sent if w is ann.history.table} == {"value"}
    cp.color_key_button.click()  # back to the clusters' colours
    assert sc_.color == "leiden" and all("em-swatch" in r.swatch.value for r in cp._rows.values())
    # a merge re-sends the colour codes and the legend, never the coordinates
    sent.clear()
    cp.select(["5", "6"])
    cp.merge_button.click()
    keys = {k for w, k in sent if w is sc_}
    assert "_codes" in keys and "_coords" not in keys, keys
    # rows of untouched clusters are the same widgets and sent nothing
    for name in ("0", "1", "2", "3"):
        r = cp._rows[name]
        assert r is rows_before[name]
        assert not [k for w, k in sent if w in (r.count, r.swatch)]
    # an exclusion re-sends the coordinates, and the remaining cells stay where they were
    # on the screen (same transform), also after excluding the outermost cells
    before = pd.DataFrame(sc_.normalized_coords, index=ann.adata.obs_names)
    transform = dict(sc_._transform)
    sent.clear()
    cp.select(["7"])
    cp.exclude_button.click()
    assert "_coords" in {k for w, k in sent if w is sc_}
    assert sc_._transform == transform
    np.testing.assert_array_equal(sc_.normalized_coords, before.loc[ann.adata.obs_names].to_numpy())
    x = before[0].loc[ann.adata.obs_names]
    edge = ann.adata.obs["leiden"].astype(str)[x.idxmax()]
    cp.select([edge])
    cp.exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    np.testing.assert_array_equal(sc_.normalized_coords, before.loc[ann.adata.obs_names].to_numpy())
    # undo re-sends the coordinates shown before (same arrays: from the cache, same buffer)
    coords_before_undo = sc_._coords
    ann.history.undo_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert sc_._coords != coords_before_undo
    np.testing.assert_array_equal(sc_.normalized_coords, before.loc[ann.adata.obs_names].to_numpy())
    # a new embedding of the same cells is framed anew
    ann.adata.obsm["X_umap"] = ann.adata.obsm["X_umap"] * 10
    ann.refresh()
    assert sc_._transform["scale"] == pytest.approx(transform["scale"] / 10, rel=0.2)


def test_long_action_shows_progress_and_blocks_a_second_one(pbmc_graph):
    import threading

    ann = em.Annotator(pbmc_graph, background=True, keep_start=False)
    go = threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        assert go.wait(30)
        return em.merge_clusters(pbmc_graph, "leiden", ["0", "1"])

    n0 = len(pbmc_graph.uns["commands"])
    assert ann.act("merge_clusters", slow)
    assert started.wait(30)
    # while it runs: buttons disabled, status says so, a second action is refused
    assert ann.busy and all(b.disabled for b in ann.action_buttons)
    assert ann.status_kind == "busy" and "running merge_clusters" in ann.status_text
    assert ann.act("label_cells", lambda: None) is False
    assert "still running" in ann.status_text
    go.set()
    ann.wait(60)
    assert not ann.busy and not any(b.disabled for b in ann.action_buttons)
    assert ann.status_kind == "ok" and len(pbmc_graph.uns["commands"]) == n0 + 1
    assert "1" not in ann.clusters.counts
    # verify without a start copy explains itself
    ann.history.verify_button.click()
    ann.wait(60)
    assert "no start copy" in ann.history.verify_status.value


def test_start_copy_is_shallow_and_stays_as_it_was(pbmc_graph):
    """The default start copy shares the arrays (no memory cost) and is not changed by the
    actions (routines replace arrays, never write into them): verify replays from it."""
    before = _state(pbmc_graph)
    names = list(pbmc_graph.obs_names)
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)
    start = ann.start
    assert start.X is pbmc_graph.X and start.obsm["X_umap"] is pbmc_graph.obsm["X_umap"]
    assert start.obsp["connectivities"] is pbmc_graph.obsp["connectivities"]
    cp, hp = ann.clusters, ann.history
    cp.select(["0", "1"])
    cp.merge_button.click()
    cp.select(["3"])
    cp.label_text.value = "T"
    cp.label_button.click()
    cp.select(["2"])
    cp.exclude_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert pbmc_graph.n_obs < len(names)
    assert _state(start) == before and list(start.obs_names) == names
    hp.verify_button.click()
    assert "replay ok: 3 command(s)" in hp.verify_status.value, hp.verify_status.value
    deep = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False, keep_start="deep")
    assert deep.start.X is not pbmc_graph.X
    with pytest.raises(em.ExprmatError, match="keep_start"):
        em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False, keep_start="yes")


def test_shown_key_undone_away_falls_back_and_list_follows(ann):
    """Undoing the command that made the column the list shows: the panel goes back to the
    key it opened on and lists that column (not the rows of the column that is gone)."""
    adata, cp = ann.adata, ann.clusters
    cp.select(["0"])
    cp.label_key_box.value = "cell.type"
    cp.label_text.value = "T"
    cp.label_button.click()
    cp.key_dropdown.value = "bulk_labels"
    cp.key_dropdown.value = "cell.type"
    assert list(cp.counts) == ["T"]
    ann.history.undo_button.click()
    assert ann.status_kind == "ok", ann.status_text
    assert "cell.type" not in adata.obs and cp.key == "leiden"
    assert cp.counts == {str(k): int(v) for k, v in adata.obs["leiden"].value_counts(sort=False).items()}
    assert ann.scatter.color == "leiden" and cp.selected == []
