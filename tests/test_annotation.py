"""Annotation commands on real data: exclusion, annotation, merge, rename, labelling,
sub-clustering, subsets and composition tables; colours in step; failures change nothing."""

import json

import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import exprmat_widgets as em
import exprmat_widgets.colors


@pytest.fixture(scope="module")
def _graph():
    a = sc.datasets.pbmc68k_reduced()
    em.knn(a, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.umap(a, random_state=0)
    em.leiden(a, resolution=1.0, random_state=0)
    return a


@pytest.fixture
def pbmc_graph(_graph):
    """conftest's pbmc_graph, computed once for this module (a fresh copy per test)."""
    return _graph.copy()


def _colors(adata, key):
    cols = list(adata.uns[f"{key}_colors"])
    assert len(cols) == adata.obs[key].cat.categories.size
    return dict(zip(map(str, adata.obs[key].cat.categories), cols))


def _state(adata):
    return (
        list(adata.uns.get("commands", [])),
        adata.obs.copy(),
        {k: np.asarray(v).copy() for k, v in adata.obsm.items()},
        {k: np.asarray(adata.uns[k]).copy() for k in adata.uns if k.endswith("_colors")},
        adata.n_obs,
    )


def _assert_unchanged(adata, state):
    cmds, obs, obsm, colors, n = state
    assert list(adata.uns.get("commands", [])) == cmds
    assert adata.n_obs == n
    pd.testing.assert_frame_equal(adata.obs, obs)
    for k, v in obsm.items():
        assert np.array_equal(np.asarray(adata.obsm[k]), v)
    for k, v in colors.items():
        assert np.array_equal(np.asarray(adata.uns[k]), v)


# --------------------------------------------------------------------------- annotate


def test_annotate_int_and_str_clusters_reports_unmapped(pbmc_graph, capsys):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    assert len(cats) >= 6
    mapping = {"T": [int(cats[0]), int(cats[1])], "B": [cats[2]], "Mono": [cats[3], int(cats[4])]}
    counts = em.annotate(a, annotation="cell.type", cluster="leiden", mapping=mapping)
    out = capsys.readouterr().err
    ct = a.obs["cell.type"]
    assert isinstance(ct.dtype, pd.CategoricalDtype)
    assert list(ct.cat.categories) == ["T", "B", "Mono"]
    leiden = a.obs["leiden"].astype(str)
    expect = leiden.map({cats[0]: "T", cats[1]: "T", cats[2]: "B", cats[3]: "Mono", cats[4]: "Mono"})
    assert (ct.astype(object).fillna("NA") == expect.fillna("NA")).all()
    left = [c for c in cats[5:] if (leiden == c).any()]
    n_left = int(leiden.isin(left).sum())
    assert int(ct.isna().sum()) == n_left > 0
    assert "not in the mapping" in out and all(repr(c) in out for c in left) and str(n_left) in out
    assert counts.name == "count" and counts.index.name == "cell.type"
    assert counts.to_dict() == ct.value_counts().to_dict() and counts.sum() == a.n_obs - n_left
    assert len(a.uns["cell.type_colors"]) == 3
    rec = em.history(a).iloc[-1]
    assert rec["command"] == "annotate" and rec["params"]["mapping"]["T"] == [int(cats[0]), int(cats[1])]


def test_annotate_overwrite_keeps_colours_of_surviving_labels(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    em.annotate(a, "cell.type", "leiden", {"T": cats[:3], "B": cats[3:5], "NK": cats[5:]})
    before = _colors(a, "cell.type")
    em.annotate(a, "cell.type", "leiden", {"NK": cats[:2], "X": cats[2:4], "T": cats[4:]})
    after = _colors(a, "cell.type")
    assert after["NK"] == before["NK"] and after["T"] == before["T"]
    assert after["X"] not in (before["NK"], before["T"])


def test_annotate_errors_change_nothing(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="named twice"):
        em.annotate(a, "cell.type", "leiden", {"T": [cats[0], cats[1]], "B": [int(cats[1])]})
    with pytest.raises(em.MissingKeyError, match="not a category") as e:
        em.annotate(a, "cell.type", "leiden", {"T": ["999"]})
    assert str(cats) in str(e.value)  # lists the categories
    with pytest.raises(em.MissingKeyError, match="not found"):
        em.annotate(a, "cell.type", "no_such_column", {"T": ["0"]})
    with pytest.raises(em.ExprmatError, match="non-empty dict"):
        em.annotate(a, "cell.type", "leiden", {})
    _assert_unchanged(a, state)
    assert "cell.type" not in a.obs


# --------------------------------------------------------------------------- exclude


def test_exclude_drops_cells_categories_and_keeps_colours(pbmc_graph, capsys):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    a.obs["bulk_labels"] = a.obs["bulk_labels"].cat.remove_unused_categories()
    em.colors.sync_colors(a, "bulk_labels")
    before_leiden, before_bulk = _colors(a, "leiden"), _colors(a, "bulk_labels")
    n0 = a.n_obs
    drop = [cats[1], int(cats[3])]
    gone = a.obs["leiden"].astype(str).isin([str(c) for c in drop])
    kept_names = a.obs_names[~gone]
    em.exclude(a, annotation="leiden", remove=drop)
    assert f"keep {len(kept_names)} observations from {n0}" in capsys.readouterr().err
    assert list(a.obs_names) == list(kept_names)
    assert a.obsm["X_umap"].shape[0] == a.obsp["connectivities"].shape[0] == a.n_obs
    assert set(map(str, a.obs["leiden"].cat.categories)) == set(cats) - {cats[1], cats[3]}
    after = _colors(a, "leiden")
    assert all(after[c] == before_leiden[c] for c in after)
    # every categorical column dropped its unused levels and its colours stayed in step
    bulk = _colors(a, "bulk_labels")
    assert set(bulk) == set(a.obs["bulk_labels"].unique())
    assert all(bulk[c] == before_bulk[c] for c in bulk)
    em.undo(a)
    assert a.n_obs == n0 and list(map(str, a.obs["leiden"].cat.categories)) == cats


def test_exclude_errors(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="every cell"):
        em.exclude(a, "leiden", cats)
    with pytest.raises(em.MissingKeyError, match="not a category"):
        em.exclude(a, "leiden", ["42"])
    with pytest.raises(em.ExprmatError, match="remove is empty"):
        em.exclude(a, "leiden", [])
    with pytest.raises(em.ExprmatError, match="every cell"):
        em.exclude_cells(a, np.ones(a.n_obs, bool))
    with pytest.raises(em.ExprmatError, match="empty"):
        em.exclude_cells(a, np.zeros(a.n_obs, bool))
    _assert_unchanged(a, state)


def test_exclude_cells_by_polygon_records_it_and_replays(pbmc_graph):
    a = pbmc_graph
    start = sc.datasets.pbmc68k_reduced()  # the data the history started from
    xy = a.obsm["X_umap"]
    lo, hi = np.percentile(xy, 20, axis=0), np.percentile(xy, 60, axis=0)
    poly = [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]
    inside = (xy[:, 0] > lo[0]) & (xy[:, 0] < hi[0]) & (xy[:, 1] > lo[1]) & (xy[:, 1] < hi[1])
    em.exclude_cells(a, None, polygon=poly, basis="umap")
    assert a.n_obs == 700 - inside.sum()
    rec = em.history(a).iloc[-1]
    assert rec["params"]["polygon"] == [[float(x), float(y)] for x, y in poly] and rec["params"]["basis"] == "umap"
    out = em.replay(start, a)
    assert list(out.obs_names) == list(a.obs_names)


# --------------------------------------------------------------------------- merge / rename


def test_merge_clusters_default_name_colours_and_order(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    before = _colors(a, "leiden")
    old = a.obs["leiden"].astype(str).copy()
    em.merge_clusters(a, "leiden", [cats[4], int(cats[2])])
    new = a.obs["leiden"].astype(str)
    assert list(a.obs["leiden"].cat.categories) == [c for c in cats if c != cats[2]]
    assert (new[old.isin([cats[2], cats[4]])] == cats[4]).all()
    assert (new[~old.isin([cats[2], cats[4]])] == old[~old.isin([cats[2], cats[4]])]).all()
    after = _colors(a, "leiden")
    assert all(after[c] == before[c] for c in after)  # the merged one keeps cats[4]'s colour
    # a fresh name inherits the first named cluster's colour and sits at the first merged position
    em.merge_clusters(a, "leiden", [cats[1], cats[0]], new_name="Tcells")
    cats2 = list(a.obs["leiden"].cat.categories)
    assert cats2[0] == "Tcells" and cats[0] not in cats2 and cats[1] not in cats2
    assert _colors(a, "leiden")["Tcells"] == before[cats[1]]


def test_merge_and_rename_refuse_silent_merges(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="already another category"):
        em.merge_clusters(a, "leiden", [cats[0], cats[1]], new_name=cats[2])
    with pytest.raises(em.ExprmatError, match="at least two"):
        em.merge_clusters(a, "leiden", [cats[0]])
    with pytest.raises(em.MissingKeyError, match="not a category"):
        em.merge_clusters(a, "leiden", [cats[0], "nope"])
    with pytest.raises(em.ExprmatError, match="silently merge"):
        em.rename_cluster(a, "leiden", cats[0], cats[1])
    with pytest.raises(em.MissingKeyError, match="not a category"):
        em.rename_cluster(a, "leiden", "nope", "x")
    with pytest.raises(em.ExprmatError, match="non-empty string"):
        em.rename_cluster(a, "leiden", cats[0], "")
    _assert_unchanged(a, state)


def test_rename_keeps_cells_order_and_colour(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    before = _colors(a, "leiden")
    codes = a.obs["leiden"].cat.codes.to_numpy().copy()
    em.rename_cluster(a, "leiden", old=int(cats[3]), new="Mono")
    assert np.array_equal(a.obs["leiden"].cat.codes.to_numpy(), codes)
    assert list(a.obs["leiden"].cat.categories) == [("Mono" if c == cats[3] else c) for c in cats]
    after = _colors(a, "leiden")
    assert after["Mono"] == before[cats[3]] and all(after[c] == before[c] for c in cats if c != cats[3])


# --------------------------------------------------------------------------- label


def test_label_cells_new_column_existing_column_and_drop_empty(pbmc_graph, capsys):
    a = pbmc_graph
    names = list(a.obs_names[10:60])
    em.label_cells(a, "manual", names, "doublets")
    col = a.obs["manual"]
    assert isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == ["doublets"]
    assert int(col.notna().sum()) == 50 and (col[names] == "doublets").all()
    assert len(a.uns["manual_colors"]) == 1
    # label inside an existing clustering: other clusters keep colours; an emptied cluster is dropped
    cats = list(a.obs["leiden"].cat.categories)
    before = _colors(a, "leiden")
    last = a.obs["leiden"].astype(str) == cats[-1]
    em.label_cells(a, "leiden", last.to_numpy() | a.obs_names.isin(names), "special")
    after = _colors(a, "leiden")
    assert cats[-1] not in after and "special" in after
    assert all(after[c] == before[c] for c in after if c != "special")
    # an existing label gains cells (reported)
    em.label_cells(a, "leiden", a.obs_names[:3], cats[0])
    assert "added to the existing category" in capsys.readouterr().err
    assert (a.obs["leiden"].iloc[:3] == cats[0]).all()


def test_label_cells_polygon_recorded_and_errors(pbmc_graph):
    a = pbmc_graph
    start = sc.datasets.pbmc68k_reduced()  # the data the history started from
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="empty"):
        em.label_cells(a, "manual", np.zeros(a.n_obs, bool), "x")
    with pytest.raises(em.ExprmatError, match="empty"):
        em.label_cells(a, "manual", [], "x")
    with pytest.raises(em.MissingKeyError, match="not in the data"):
        em.label_cells(a, "manual", ["no-such-cell"], "x")
    with pytest.raises(em.ExprmatError, match="needs the embedding"):
        em.label_cells(a, "manual", None, "x", polygon=[[0, 0], [1, 0], [1, 1]])
    with pytest.raises(em.ExprmatError, match="at least 3"):
        em.label_cells(a, "manual", None, "x", polygon=[[0, 0], [1, 0]], basis="umap")
    with pytest.raises(em.MissingKeyError, match="embedding 'tsne' not found"):
        em.label_cells(a, "manual", None, "x", polygon=[[0, 0], [1, 0], [1, 1]], basis="tsne")
    _assert_unchanged(a, state)
    xy = a.obsm["X_umap"]
    c = xy.mean(axis=0)
    poly = [[c[0] - 3, c[1] - 3], [c[0] + 3, c[1] - 3], [c[0] + 3, c[1] + 3], [c[0] - 3, c[1] + 3]]
    inside = (np.abs(xy - c) < 3).all(axis=1)
    assert 0 < inside.sum() < a.n_obs
    # the widget passes both: the cells hit and the lasso drawn
    em.label_cells(a, "manual", inside, "lasso", polygon=poly, basis="umap")
    rec = json.loads(a.uns["commands"][-1])
    assert rec["params"]["cells"]["n_selected"] == int(inside.sum())
    assert rec["params"]["polygon"] == poly and rec["params"]["basis"] == "umap"
    # or just the lasso: the cells are computed from it, identically on replay
    em.label_cells(a, "manual2", None, "lasso", polygon=poly, basis="umap")
    assert (a.obs["manual2"].notna().to_numpy() == inside).all()
    out = em.replay(start, a)
    for k in ("manual", "manual2"):
        assert out.obs[k].equals(a.obs[k])


# --------------------------------------------------------------------------- subcluster


def test_subcluster_equals_scanpy_restrict_to(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    chosen = [cats[1], cats[3]]  # category order, as scanpy's prefix joins them
    ref = a.copy()
    sc.tl.leiden(ref, resolution=0.7, random_state=3, flavor="igraph", n_iterations=2,
                 restrict_to=("leiden", chosen), key_added="ref")
    before = _colors(a, "leiden")
    sel = a.obs["leiden"].isin(chosen).to_numpy()
    em.subcluster(a, sel, resolution=0.7, key="leiden", random_state=3)
    # scanpy's partition and (for a short joined prefix) its names ...
    assert (a.obs["leiden"].astype(str) == ref.obs["ref"].astype(str)).all()
    new = [c for c in a.obs["leiden"].cat.categories if c.startswith(f"{cats[1]}-{cats[3]},")]
    assert len(new) >= 2
    # ... but the sub-clusters sit where the first parent was, not natural-sorted
    rest = [c for c in cats if c not in chosen]
    assert list(a.obs["leiden"].cat.categories) == rest[:1] + new + rest[1:]
    table = a.uns["leiden_subclusters"]
    assert set(table["name"]) == set(new) and set(table["parent"]) == set(chosen)
    assert table["n_cells"].sum() == sel.sum()
    after = _colors(a, "leiden")
    assert all(after[c] == before[c] for c in cats if c not in chosen)
    assert len(set(after.values())) == len(after)
    # key_added leaves the source column alone; a selection given by names works the same
    em.subcluster(a, list(a.obs_names[sel]), resolution=0.7, key="bulk_labels", key_added="bulk_sub", random_state=3)
    assert "bulk_sub" in a.obs and a.obs["bulk_labels"].equals(ref.obs["bulk_labels"])


def test_subcluster_partial_selection_never_reuses_a_label(pbmc_graph):
    a = pbmc_graph
    cats = list(a.obs["leiden"].cat.categories)
    in0 = np.flatnonzero(a.obs["leiden"].to_numpy() == cats[0])
    first, second = in0[: len(in0) // 2], in0[len(in0) // 2:]
    em.subcluster(a, first, resolution=0.5, random_state=0)
    labels1 = set(a.obs["leiden"].iloc[first].astype(str))
    em.subcluster(a, second, resolution=0.5, random_state=0)
    labels2 = set(a.obs["leiden"].iloc[second].astype(str))
    assert labels1 and labels2 and not (labels1 & labels2)
    assert all(lab.startswith(f"{cats[0]},") for lab in labels1 | labels2)
    assert cats[0] not in a.obs["leiden"].cat.categories  # emptied
    assert len(a.uns["leiden_colors"]) == a.obs["leiden"].cat.categories.size


def test_subcluster_errors(pbmc):
    pbmc.uns.pop("neighbors")  # pbmc68k_reduced ships a graph: start without one
    state = _state(pbmc)
    with pytest.raises(em.MissingKeyError, match="knn"):
        em.subcluster(pbmc, pbmc.obs_names[:10], key="bulk_labels")
    em.knn(pbmc, use_rep="X_pca", random_state=0)
    state = _state(pbmc)
    with pytest.raises(em.ExprmatError, match="empty"):
        em.subcluster(pbmc, np.zeros(pbmc.n_obs, bool), key="bulk_labels")
    with pytest.raises(em.MissingKeyError, match="not found"):
        em.subcluster(pbmc, pbmc.obs_names[:10], key="nope")
    _assert_unchanged(pbmc, state)


# --------------------------------------------------------------------------- subset / proportion


def test_subset_cells_and_proportion(pbmc_graph, capsys):
    a = pbmc_graph
    a.obs["half"] = pd.Categorical(np.where(np.arange(a.n_obs) % 2 == 0, "even", "odd"))
    keep = ["CD14+ Monocyte", "CD4+/CD45RO+ Memory", "CD19+ B"]
    expected = a.obs_names[a.obs["bulk_labels"].isin(keep) & (a.obs["half"] == "even")]
    em.subset_cells(a, keys=["bulk_labels", "half"], values=[keep, ["even"]])
    assert f"selected {len(expected)} observations from 700" in capsys.readouterr().err
    assert list(a.obs_names) == list(expected)
    assert set(a.obs["bulk_labels"].cat.categories) == set(keep)
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="no cell matches"):
        em.subset_cells(a, keys=["bulk_labels", "bulk_labels"], values=[["CD19+ B"], ["CD14+ Monocyte"]])
    with pytest.raises(em.MissingKeyError, match="not a category"):
        em.subset_cells(a, keys=["half"], values=[["odd"]])
    _assert_unchanged(a, state)
    p = em.proportion(a, major="leiden", minor="bulk_labels", normalize="index")
    assert p.index.name == "leiden" and p.columns.name == "bulk_labels"
    assert np.allclose(p.sum(axis=1), 1.0) and list(p.columns) == list(a.obs["bulk_labels"].cat.categories)
    counts = em.proportion(a, "leiden", "bulk_labels", normalize=None)
    assert counts.values.sum() == a.n_obs
    ref = pd.crosstab(a.obs["leiden"], a.obs["bulk_labels"])
    assert np.array_equal(counts.values, ref.values) and list(counts.index) == list(map(str, ref.index))
    assert np.allclose(em.proportion(a, "leiden", "bulk_labels", normalize="columns").sum(axis=0), 1.0)
    assert np.allclose(p.values, (counts.T / counts.sum(axis=1)).T.values)
    with pytest.raises(em.ExprmatError, match="normalize"):
        em.proportion(a, "leiden", "bulk_labels", normalize="rows")


def test_annotation_history_replays_exactly(pbmc_graph):
    a = pbmc_graph
    start = sc.datasets.pbmc68k_reduced()
    cats = list(a.obs["leiden"].cat.categories)
    em.subcluster(a, a.obs["leiden"].isin([cats[0]]).to_numpy(), resolution=0.5, random_state=1)
    em.merge_clusters(a, "leiden", [cats[1], cats[2]], new_name="m")
    em.rename_cluster(a, "leiden", "m", "merged")
    em.label_cells(a, "leiden", a.obs_names[::7], "sel")
    em.exclude(a, "leiden", [cats[3]])
    em.annotate(a, "ct", "leiden", {"A": ["merged", "sel"], "B": [cats[4]]})
    em.exclude_cells(a, a.obs_names[:5])
    out = em.replay(start, a)
    for k in ("leiden", "ct"):
        assert out.obs[k].equals(a.obs[k])
        assert list(out.uns[f"{k}_colors"]) == list(a.uns[f"{k}_colors"])
    assert list(out.obs_names) == list(a.obs_names)


def _rich(a):
    """pbmc_graph plus every kind of per-cell value the fast exclusion gathers."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    a = a.copy()
    X = sp.random(a.n_obs, a.n_vars, density=0.1, format="csr", random_state=0, dtype=np.float32)
    a.X = X
    extra = sp.random(a.n_obs, a.n_vars, density=0.05, format="csr", random_state=1).astype(bool)
    a.layers["counts"] = sp.csr_matrix(X.astype(np.int64) + extra.astype(np.int64))
    a.layers["dense"] = rng.normal(size=(a.n_obs, a.n_vars))
    a.layers["csr_array"] = sp.csr_array(X)
    a.obsm["table"] = pd.DataFrame({"u": rng.random(a.n_obs), "v": list("ab") * (a.n_obs // 2)}, index=a.obs_names)
    a.obsm["sparse"] = sp.csr_matrix(X[:, :5])
    a.obsp["dense"] = rng.random((a.n_obs, a.n_obs)).astype(np.float32)
    a.varm["loadings"] = rng.random((a.n_vars, 3))
    a.obs["text"] = [f"t{i}" for i in range(a.n_obs)]
    # categories out of lexical order (as after a merge): the subset must keep their order
    a.obs["leiden"] = a.obs["leiden"].cat.reorder_categories(a.obs["leiden"].cat.categories[::-1])
    return a


@pytest.mark.parametrize("fast", [True, False])
def test_exclude_equals_anndata_subset(pbmc_graph, fast):
    """The parallel gather of every per-cell array gives anndata's subset exactly
    (X, layers, obsm, obsp on both axes, obs with unused categories dropped); with ``raw``
    set the anndata path runs, with the same result."""
    import scipy.sparse as sp

    a = _rich(pbmc_graph)
    a.raw = a.copy()  # raw has its own X along the cells
    if not fast:  # a CSC layer is not gathered by our kernels: anndata's path runs
        a.layers["csc"] = a.X.tocsc()
    cats = list(a.obs["leiden"].cat.categories)
    keep = ~a.obs["leiden"].isin([cats[0], cats[2]]).to_numpy()
    ref = a[keep].copy()
    em.exclude(a, "leiden", [cats[0], cats[2]])
    assert list(a.obs_names) == list(ref.obs_names)
    pd.testing.assert_frame_equal(a.obs.drop(columns=[]), ref.obs, check_categorical=True)
    pd.testing.assert_frame_equal(a.var, ref.var)

    def same(x, y):
        assert type(x) is type(y), (type(x), type(y))
        if sp.issparse(x):
            assert x.shape == y.shape and x.dtype == y.dtype and (x != y).nnz == 0
            assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
        elif isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x, y)
        else:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f") and x.dtype == y.dtype

    same(a.X, ref.X)
    for m in ("layers", "obsm", "obsp", "varm"):
        assert set(getattr(a, m).keys()) == set(getattr(ref, m).keys())
        for k in getattr(a, m):
            same(getattr(a, m)[k], getattr(ref, m)[k])
    same(a.raw.X, ref.raw.X)
    pd.testing.assert_frame_equal(a.raw.var, ref.raw.var)
    # the cached fingerprint of the new names equals a fresh hash of them
    from exprmat_widgets.history.fingerprints import _names_cache, obs_names_hash

    recorded = em.history(a)["output"].iloc[-1]["obs_names"]
    _names_cache.clear()
    assert obs_names_hash(a) == recorded
    em.undo(a)
    assert a.n_obs == keep.size


def test_selection_positions_kept_across_an_exclusion(pbmc_graph):
    """positions_in maps selected cells to their new positions after an exclusion, through
    the rows the exclusion kept (no hash table of all names), and without them."""
    from exprmat_widgets.history.fingerprints import _names_cache, subset_rows
    from exprmat_widgets.selection import positions_in

    a = pbmc_graph
    old = a.obs_names
    picked = np.array([0, 3, 10, 50, 51, a.n_obs - 1])
    cats = list(a.obs["leiden"].cat.categories)
    em.exclude(a, "leiden", [cats[0]])
    new = a.obs_names
    expected = np.sort(new.get_indexer(old[picked]))
    expected = expected[expected >= 0]
    assert subset_rows(old, new) is not None and subset_rows(new, old) is None
    got = positions_in(old, picked, new)
    assert np.array_equal(got, expected) and list(new[got]) == [n for n in old[picked] if n in set(new)]
    _names_cache.clear()  # nothing remembered: the get_indexer path gives the same
    assert np.array_equal(positions_in(old, picked, new), expected)
    assert positions_in(old, np.array([], dtype=int), new).size == 0
