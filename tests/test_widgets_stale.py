"""Stale state in the annotator: a selection drawn on a previous view of the cells, controls
used while a background action runs, and undo past the in-memory checkpoints.

The annotator runs with ``background=True`` (as in Jupyter); page messages are delivered
with ``set_state`` as the comm does, actions are held mid-way with events."""

import threading

import numpy as np
from matplotlib.path import Path as MplPath

import exprmat_widgets as em
from exprmat_widgets.history import fingerprint, get_records
from exprmat_widgets.widgets.scatter import STALE_SELECTION, encode_selection_buffer


def _page_lasso(sc, center_mask):
    """What the page sends after a lasso around the cells of ``center_mask``: positions in
    the cells it draws, the polygon in its normalised coordinates, its generation."""
    emb = sc.adata.obsm["X_umap"][:, :2]
    c = emb[center_mask].mean(axis=0)
    # wide enough to catch cells of the nearest other cluster too
    r = 1.05 * np.sort(np.hypot(*(emb[~center_mask] - c).T))[10]
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    poly = np.c_[c[0] + r * np.cos(t), c[1] + r * np.sin(t)]
    inside = np.flatnonzero(MplPath(poly).contains_points(emb))
    tr = sc._transform
    norm = ((poly - np.array([tr["cx"], tr["cy"]])) * tr["scale"]).astype("<f4")
    msg = {
        "selection": memoryview(encode_selection_buffer(inside, sc.adata.n_obs)),
        "_polygon": memoryview(norm.tobytes()),
        "_selection_generation": sc._generation,
    }
    return inside, poly, msg


def _wait_idle(ann, timeout=120):
    ann.wait(timeout)
    assert not ann.busy, ann.status_text


def _lassoed_mixed(ann):
    """A lasso over cluster 1 that also catches cells of other clusters; returns the names
    lassoed, the message and a cluster to exclude that takes some (not all) of them."""
    adata = ann.adata
    inside, _poly, msg = _page_lasso(ann.scatter, (adata.obs["leiden"] == "1").to_numpy())
    names = adata.obs_names[inside]
    clusters = adata.obs["leiden"].iloc[inside].astype(str).value_counts()
    assert len(clusters) >= 2, clusters
    drop = clusters.index[1]  # a cluster with lassoed cells, not the main one
    return names, msg, drop


def _label_lasso(ann, label):
    cp = ann.clusters
    cp.label_key_box.value = "cell.type"
    cp.label_text.value = label
    cp.lasso_label_button.click()
    _wait_idle(ann)


def test_selection_from_a_previous_view_is_remapped_by_cell(pbmc_graph):
    ann = em.Annotator(pbmc_graph, background=True)
    sc, cp = ann.scatter, ann.clusters
    names, msg, drop = _lassoed_mixed(ann)
    g0 = sc._generation
    cp.select([drop])
    cp.exclude_button.click()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    assert sc._generation > g0 and drop not in set(pbmc_graph.obs["leiden"].astype(str))
    # the lasso the page drew on the cells it showed before the exclusion arrives now
    sc.set_state(msg)
    kept = names[names.isin(pbmc_graph.obs_names)]
    assert 0 < len(kept) < len(names)
    assert sc.selected_names == list(kept)
    assert sc.error == ""
    # its polygon is carried over to the current view: the same embedding vertices
    poly = np.frombuffer(bytes(msg["_polygon"]), dtype="<f4").astype(float).reshape(-1, 2)
    t0 = ann.scatter._views[g0][1]
    np.testing.assert_allclose(sc.last_polygon, poly / t0["scale"] + [t0["cx"], t0["cy"]], rtol=1e-5)
    _label_lasso(ann, "lassoed")
    assert ann.status_kind == "ok", ann.status_text
    got = pbmc_graph.obs_names[(pbmc_graph.obs["cell.type"] == "lassoed").to_numpy()]
    assert list(got) == list(kept)  # exactly the lassoed cells still present, none other


def test_selection_from_an_unknown_view_is_refused(pbmc_graph):
    ann = em.Annotator(pbmc_graph, background=True)
    sc = ann.scatter
    _names, msg, _drop = _lassoed_mixed(ann)
    n_cmd = len(pbmc_graph.uns["commands"])
    for gen in (sc._generation + 7, None):  # a view the kernel no longer knows, or none said
        bad = dict(msg)
        if gen is None:
            bad.pop("_selection_generation")
        else:
            bad["_selection_generation"] = gen
        sc.set_state(bad)
        assert len(sc.selection) == 0 and sc.last_polygon is None
        assert sc.error == STALE_SELECTION
        assert ann.status_kind == "error" and "draw it again" in ann.status_text
        _label_lasso(ann, "never")
        assert ann.status_kind == "error" and "nothing selected" in ann.status_text
        assert len(pbmc_graph.uns["commands"]) == n_cmd
    # a lasso on the current view is taken as drawn and clears the message
    sc.set_state(msg)
    assert sc.error == "" and len(sc.selection) > 0


def _hold(monkeypatch, module, name):
    """Make ``module.name`` wait mid-action: returns (reached, release) events."""
    reached, release = threading.Event(), threading.Event()
    orig = getattr(module, name)

    def held(*args, **kwargs):
        out = orig(*args, **kwargs)
        reached.set()
        assert release.wait(60)
        return out

    monkeypatch.setattr(module, name, held)
    return reached, release


def test_selection_arriving_mid_exclusion_keeps_the_lassoed_cells(pbmc_graph, monkeypatch):
    import exprmat_widgets.tl.annotation as annotation

    ann = em.Annotator(pbmc_graph, background=True)
    sc, cp = ann.scatter, ann.clusters
    names, msg, drop = _lassoed_mixed(ann)
    # held inside em.exclude: the cells are gone from the AnnData, the page still shows them
    reached, release = _hold(monkeypatch, annotation, "sync_colors")
    cp.select([drop])
    cp.exclude_button.click()
    assert reached.wait(60)
    sc.set_state(msg)  # drawn on the view the page shows: accepted as those cells
    release.set()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    kept = names[names.isin(pbmc_graph.obs_names)]
    assert 0 < len(kept) < len(names)
    assert sc.selected_names == list(kept)
    _label_lasso(ann, "lassoed")
    got = pbmc_graph.obs_names[(pbmc_graph.obs["cell.type"] == "lassoed").to_numpy()]
    assert list(got) == list(kept)


def _summary_matches(ann):
    adata, cp = ann.adata, ann.clusters
    col = adata.obs[cp.key].astype("category")
    vc = col.value_counts()
    assert cp.counts == {str(k): int(v) for k, v in vc.items()}
    assert f"{len(col.cat.categories)} clusters in obs[" in cp.summary.value
    assert f"{adata.n_obs:,} cells" in cp.summary.value


def test_toggle_and_key_switch_during_a_background_exclusion(pbmc_graph, monkeypatch):
    import exprmat_widgets.tl.annotation as annotation

    ann = em.Annotator(pbmc_graph, background=True)
    sc, cp = ann.scatter, ann.clusters
    reached, release = _hold(monkeypatch, annotation, "sync_colors")
    cp.select(["0"])
    cp.exclude_button.click()
    assert reached.wait(60)
    # mid-exclusion: clicking a cluster neither raises nor reads the half-changed data
    highlight = sc._highlight
    cp._rows["2"].toggle.value = True
    assert sc._highlight == highlight and ann.busy
    release.set()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    _summary_matches(ann)
    assert cp.selected == ["2"]
    hl = np.frombuffer(sc._highlight, dtype=np.uint8).astype(bool)
    assert (hl == (pbmc_graph.obs["leiden"] == "2").to_numpy()).all()

    # a key switch during the next exclusion: the summary follows the key and the data after it
    reached.clear()
    release.clear()
    cp.select(["3"])
    cp.exclude_button.click()
    assert reached.wait(60)
    cp.key_dropdown.value = "bulk_labels"
    cp.key_dropdown.value = "louvain"
    release.set()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    assert cp.key == "louvain" and sc.color == "louvain" and cp.selected == []
    _summary_matches(ann)
    assert sc._highlight == b"" and sc._n == pbmc_graph.n_obs


def test_filter_edit_during_background_markers(pbmc_graph, monkeypatch):
    ann = em.Annotator(pbmc_graph, background=True)
    mp = ann.markers
    mp.clusters_button.click()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    shown = mp.table_df.copy()
    reached, release = _hold(monkeypatch, em, "markers")
    mp.method.value = "wilcoxon"
    mp.clusters_button.click()
    assert reached.wait(120)
    mp.n_genes.value = 3
    mp.min_lfc.value = 0.5
    assert mp.table_df.equals(shown)  # held back until the new result is there
    release.set()
    _wait_idle(ann)
    assert ann.status_kind == "ok", ann.status_text
    assert pbmc_graph.uns["markers"]["params"]["method"] == "wilcoxon"
    want = em.filter_markers(pbmc_graph, key="markers", **mp.filters()).reset_index(drop=True)
    assert mp.filters()["n_genes"] == 3 and mp.filters()["min_logfoldchange"] == 0.5
    assert len(want) and mp.table_df.equals(want)
    assert [r[1] for r in mp.view.rows] == want["names"].astype(str).tolist()  # what the page shows


def _fingerprints(adata):
    return (
        adata.n_obs,
        {k: fingerprint(adata.obs[k]) for k in adata.obs.columns},
        {k: fingerprint(adata.obsm[k]) for k in adata.obsm},
        [(r["command"], r["params"], r["output"]) for r in get_records(adata)],
    )


def test_undo_past_the_checkpoints_replays_on_the_start_copy(pbmc_graph):
    adata = pbmc_graph
    adata.uns.pop("commands")  # the history starts here, on the annotator's start copy
    start = adata.copy()
    ann = em.Annotator(adata, background=True, start=start)
    assert ann.start_step == 0
    states = [_fingerprints(adata)]
    leiden = adata.obs["leiden"].astype(str).to_numpy()
    n = 52  # two past the 50 in-memory checkpoints
    for i in range(n):
        em.label_cells(adata, "cell.type", cells=leiden == str(i % 5), label=f"L{i}")
        states.append(_fingerprints(adata))
    for k in range(n, 0, -1):
        ann.history.undo_button.click()
        _wait_idle(ann)
        assert ann.status_kind == "ok", (k, ann.status_text)
        assert _fingerprints(adata) == states[k - 1], k
    assert "cell.type" not in adata.obs
    assert ann.clusters.counts == {str(c): int(v) for c, v in adata.obs["leiden"].value_counts().items()}
