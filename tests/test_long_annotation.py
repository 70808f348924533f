"""Long and many labels: repeated re-clustering keeps names bounded and records their
lineage; markers on very long labels stay within a memory bound; more clusters than
the palette has colours; re-clustering cells without kNN edges; logistic regression
reports the groups scanpy reports."""

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import exprmat_widgets as em
from exprmat_widgets.colors import default_palette, sync_colors


@pytest.fixture(scope="module")
def mouse_graph(mouse10k):
    """4,000 of the shipped 10k mouse cells (fewer than 4,096: scanpy's exact kNN, so this
    file does not wait for pynndescent's uncacheable kernels) with a kNN graph and Leiden
    clusters, by our commands."""
    keep = np.sort(np.random.default_rng(0).choice(mouse10k.n_obs, 4000, replace=False))
    a = mouse10k[keep].copy()
    start = a.copy()
    em.knn(a, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.leiden(a, resolution=1.0, random_state=0)
    return start, a


def _state(a):
    return (list(a.uns.get("commands", [])), a.obs.copy(), sorted(a.uns.keys()),
            {k: list(v) for k, v in a.uns.items() if k.endswith("_colors")})


def _assert_unchanged(a, state):
    commands, obs, uns_keys, colors = state
    assert list(a.uns.get("commands", [])) == commands
    pd.testing.assert_frame_equal(a.obs, obs)
    assert sorted(a.uns.keys()) == uns_keys
    assert {k: list(v) for k, v in a.uns.items() if k.endswith("_colors")} == colors


# --------------------------------------------------------------------------- names


def _lasso(a, fraction):
    """A rectangle on the first two PCs holding ``fraction`` of the cells (a band along PC1)."""
    xy = a.obsm["X_pca"][:, :2]
    x0, x1 = xy[:, 0].min() - 1, np.quantile(xy[:, 0], fraction)
    y0, y1 = xy[:, 1].min() - 1, xy[:, 1].max() + 1
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_recluster_loop_keeps_names_bounded_and_replays(mouse_graph):
    start, a = mouse_graph
    a = a.copy()
    poly = _lasso(a, 0.7)
    rounds = []
    for _ in range(4):
        n_rows = len(a.uns.get("leiden_subclusters", []))
        em.subcluster(a, None, resolution=2.0, key="leiden", polygon=poly, basis="X_pca", random_state=0)
        cats = list(a.obs["leiden"].cat.categories)
        assert len(set(cats)) == len(cats)
        # the selection spans many labels: 'sub,<i>' (scanpy's naming reached 560,482 characters)
        assert max(map(len, cats)) <= 8
        rounds.append(list(dict.fromkeys(a.uns["leiden_subclusters"]["name"].iloc[n_rows:])))
    table = a.uns["leiden_subclusters"]
    assert list(table.columns) == ["name", "parent", "n_cells"]
    made = [n for r in rounds for n in r]
    assert len(made) == len(set(made))  # never reused across rounds
    inside = a.obs["leiden"].isin(rounds[-1]).to_numpy()
    assert 0.65 * a.n_obs < inside.sum() < 0.75 * a.n_obs
    # the same lasso each round: only the last round's sub-clusters are left, with the
    # cells the lineage says, and round k's parents are round k-1's sub-clusters
    alive = [c for c in a.obs["leiden"].cat.categories if c.startswith("sub,")]
    assert alive == rounds[-1]
    counts = a.obs["leiden"].value_counts()
    assert (table.groupby("name")["n_cells"].sum()[alive] == counts[alive]).all()
    assert set(table[table["name"].isin(rounds[2])]["parent"]) == set(rounds[1])
    first_parents = set(table[table["name"].isin(rounds[0])]["parent"])
    assert len(first_parents) > 5 and not any(p.startswith("sub,") for p in first_parents)
    cols = list(a.uns["leiden_colors"])
    assert len(cols) == len(set(cols)) == a.obs["leiden"].cat.categories.size
    out = em.replay(start, a)  # checks each step's fingerprints, the lineage table included
    assert out.obs["leiden"].equals(a.obs["leiden"])
    pd.testing.assert_frame_equal(out.uns["leiden_subclusters"], a.uns["leiden_subclusters"])


@pytest.mark.parametrize("how", ["subcluster", "restrict_to"])
def test_one_parent_keeps_its_name_and_place(mouse_graph, how):
    _, a = mouse_graph
    a = a.copy()
    cats = list(a.obs["leiden"].cat.categories)
    target = cats[2]
    if how == "subcluster":
        em.subcluster(a, (a.obs["leiden"] == target).to_numpy(), resolution=1.0, key="leiden")
    else:
        em.leiden(a, resolution=1.0, restrict_to=("leiden", [target]))
    new = list(a.obs["leiden"].cat.categories)
    subs = [c for c in new if c.startswith(f"{target},")]
    assert len(subs) >= 2 and new == cats[:2] + subs + cats[3:]
    t = a.uns["leiden_subclusters"]
    assert set(t["parent"]) == {target} and t["n_cells"].sum() == (a.obs["leiden"].isin(subs)).sum()
    # a single cluster would only rename them: refused, nothing changed
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="single cluster"):
        if how == "subcluster":
            em.subcluster(a, (a.obs["leiden"] == subs[0]).to_numpy(), resolution=0.0001, key="leiden")
        else:
            em.leiden(a, resolution=0.0001, restrict_to=("leiden", [subs[0]]))
    _assert_unchanged(a, state)
    if how == "subcluster":  # a single cluster of part of a label carves it out, as a lasso label would
        part = np.flatnonzero((a.obs["leiden"] == subs[0]).to_numpy())[::2]
        em.subcluster(a, part, resolution=0.0001, key="leiden")
        carved = a.obs["leiden"].iloc[part].unique()
        assert len(carved) >= 1 and all(c.startswith(f"{subs[0]},") for c in carved)
        assert (a.obs["leiden"] == subs[0]).sum() > 0


def test_restrict_to_matches_scanpy_partition(mouse_graph):
    _, a = mouse_graph
    a = a.copy()
    cats = list(a.obs["leiden"].cat.categories)
    chosen = [cats[0], cats[4]]
    ref = a.copy()
    sc.tl.leiden(ref, resolution=1.5, restrict_to=("leiden", chosen), flavor="igraph", n_iterations=2,
                 random_state=0, key_added="ref")
    em.leiden(a, resolution=1.5, restrict_to=("leiden", chosen), key_added="again")
    assert (a.obs["again"].astype(str) == ref.obs["ref"].astype(str)).all()  # short join: scanpy's names
    assert a.uns["again"]["params"] == ref.uns["ref"]["params"]
    em.leiden(a, resolution=1.0, key_added="again")  # the column is replaced: its lineage goes
    assert "again_subclusters" not in a.uns


def test_long_parent_names_give_stem(mouse_graph):
    _, a = mouse_graph
    a = a.copy()
    long = {c: f"cluster number {c} " * 3 for c in a.obs["leiden"].cat.categories}
    a.obs["long"] = a.obs["leiden"].cat.rename_categories(long)
    cats = list(a.obs["long"].cat.categories)
    sel = a.obs["long"].isin(cats[:2]).to_numpy()
    # a label taken by other cells is skipped by the numbering
    a.obs["long"] = a.obs["long"].cat.add_categories(["sub,0"])
    a.obs.loc[a.obs_names[~sel][:3], "long"] = "sub,0"
    em.subcluster(a, sel, resolution=1.0, key="long")
    new = [c for c in a.obs["long"].cat.categories if c.startswith("sub,")]
    assert "sub,0" in new and (a.obs["long"] == "sub,0").sum() == 3
    assert len(new) >= 3 and all(len(c) <= 8 for c in new)
    t = a.uns["long_subclusters"]
    assert set(t["parent"]) == set(cats[:2]) and "sub,0" not in set(t["name"])


# --------------------------------------------------------------------------- markers


def test_markers_on_long_labels_stay_in_memory(mouse10k):
    a = mouse10k.copy()
    n_groups, length = 6, 100_000
    rng = np.random.default_rng(0)
    codes = rng.integers(0, n_groups, a.n_obs)
    short = [f"g{i}" for i in range(n_groups)]
    long = [f"{i}" + "x" * length for i in range(n_groups)]
    a.obs["short"] = pd.Categorical.from_codes(codes, categories=short)
    a.obs["long"] = pd.Categorical.from_codes(codes, categories=long)
    em.markers(a, "short", key_added="m_short", method="wilcoxon")
    tracemalloc.start()
    try:
        em.markers(a, "long", key_added="m_long", method="wilcoxon")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a fixed-width copy of the labels alone would be 10,000 x 100,001 x 4 bytes = 4 GB
    assert peak < 300e6, f"peak {peak / 1e6:.0f} MB"
    s, l_ = a.uns["m_short"], a.uns["m_long"]
    for g_s, g_l in zip(short, long):
        assert list(s["names"][g_s]) == list(l_["names"][g_l])
        np.testing.assert_array_equal(s["scores"][g_s], l_["scores"][g_l])
        np.testing.assert_array_equal(s["pvals_adj"][g_s], l_["pvals_adj"][g_l])
    assert list(l_["pts"].columns) == long


# --------------------------------------------------------------------------- colours


@pytest.mark.parametrize("n", [103, 250, 1500])
def test_palette_has_as_many_distinct_colours_as_asked(n):
    pal = default_palette(n)
    assert len(pal) == len(set(pal)) == n
    assert pal[:102] == default_palette(102) and pal == default_palette(n)  # deterministic, extends


def test_more_clusters_than_colours(mouse_graph):
    _, a = mouse_graph
    a = a.copy()
    em.leiden(a, resolution=25.0, key_added="fine", random_state=0)
    n = a.obs["fine"].cat.categories.size
    assert n > 102
    cols = list(a.uns["fine_colors"])
    assert len(cols) == len(set(cols)) == n
    before = dict(zip(a.obs["fine"].cat.categories, cols))
    big = a.obs["fine"].value_counts().index[0]
    em.subcluster(a, (a.obs["fine"] == big).to_numpy(), resolution=2.0, key="fine")
    after = dict(zip(a.obs["fine"].cat.categories, a.uns["fine_colors"]))
    assert len(set(after.values())) == len(after) > n
    assert all(after[c] == before[c] for c in after if c in before)
    # sync_colors with every palette colour already taken by other categories
    a.obs["many"] = pd.Categorical.from_codes(np.arange(a.n_obs) % 400, categories=[f"c{i}" for i in range(400)])
    sync_colors(a, "many", previous={f"c{i}": c for i, c in enumerate(default_palette(102))})
    assert len(set(a.uns["many_colors"])) == 400


def test_subcluster_colours_are_unlike_their_neighbours():
    """Item 9: new sub-cluster colours differ from every kept colour and from each other at
    least as much as the two closest colours of scanpy's own 20-colour palette (the next
    unused palette entries were near-twins: CIE76 distance 10)."""
    from matplotlib.colors import to_hex
    from scanpy.plotting import palettes

    from exprmat_widgets.colors import lab

    ref = lab([to_hex(c) for c in palettes.default_20])
    d = np.sqrt(((ref[:, None] - ref[None]) ** 2).sum(-1))
    bar = d[np.triu_indices(len(ref), 1)].min()
    a = sc.datasets.pbmc68k_reduced()
    em.leiden(a, resolution=1.0, random_state=0)
    before = dict(zip(a.obs["leiden"].cat.categories, a.uns["leiden_colors"]))
    em.subcluster(a, (a.obs["leiden"] == "1").to_numpy(), resolution=1.0, key="leiden")
    after = dict(zip(a.obs["leiden"].cat.categories, a.uns["leiden_colors"]))
    new = [c for c in after if c not in before]
    assert len(new) >= 3 and all(after[c] == before[c] for c in after if c in before)
    labs = lab(list(after.values()))
    dist = np.sqrt(((labs[:, None] - labs[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    idx = [list(after).index(c) for c in new]
    assert dist[idx].min() >= bar, (dist[idx].min(), bar)
    assert all(25 <= lab([after[c]])[0, 0] <= 85 for c in new)  # visible on light and dark


# --------------------------------------------------------------------------- no edges


def _edgeless_cells(a, k=6):
    conn = a.obsp["connectivities"].tocsr()
    chosen = []
    for i in range(a.n_obs):
        if not any(conn[i, j] for j in chosen):
            chosen.append(i)
        if len(chosen) == k:
            return np.array(chosen)
    raise AssertionError("no independent set found")


@pytest.mark.parametrize("how", ["subcluster", "restrict_to"])
def test_cells_without_edges_are_refused(mouse_graph, how):
    _, a = mouse_graph
    a = a.copy()
    idx = _edgeless_cells(a)
    mask = np.zeros(a.n_obs, bool)
    mask[idx] = True
    a.obs["pick"] = pd.Categorical(np.where(mask, "x", "y"))
    ref = a.copy()
    with pytest.raises(AttributeError, match="ravel"):  # what scanpy does: no behaviour to match
        sc.tl.leiden(ref, restrict_to=("pick", ["x"]), flavor="igraph", n_iterations=2)
    state = _state(a)
    with pytest.raises(em.ExprmatError, match="share no kNN edge.*em.knn"):
        if how == "subcluster":
            em.subcluster(a, mask, key="pick")
        else:
            em.leiden(a, restrict_to=("pick", ["x"]), key_added="pick2")
    _assert_unchanged(a, state)


# --------------------------------------------------------------------------- logreg


@pytest.fixture(scope="module")
def pbmc_raw():
    return sc.datasets.pbmc68k_reduced()


@pytest.mark.parametrize(
    "groupby, groups, reference",
    [
        ("two", "all", "rest"),
        ("bulk_labels", ["CD19+ B", "CD14+ Monocyte"], "rest"),
        ("bulk_labels", ["CD14+ Monocyte", "CD19+ B"], "rest"),
        ("bulk_labels", ["CD14+ Monocyte"], "CD19+ B"),
        ("bulk_labels", ["CD14+ Monocyte", "CD56+ NK"], "CD19+ B"),
        ("bulk_labels", "all", "CD19+ B"),
        ("two", "all", "b"),
    ],
)
def test_logreg_reports_what_scanpy_reports(pbmc_raw, groupby, groups, reference):
    a = pbmc_raw.copy()
    a.obs["two"] = pd.Categorical(np.where(a.obs["bulk_labels"].str.contains("CD4"), "b", "a"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em.markers(a, groupby, groups=groups, reference=reference, method="logreg", use_raw=True, key_added="ours")
        sc.tl.rank_genes_groups(a, groupby, groups=groups, reference=reference, method="logreg", use_raw=True,
                                key_added="ref", pts=True)
    ours, ref = a.uns["ours"], a.uns["ref"]
    assert ours["names"].dtype.names == ref["names"].dtype.names
    assert ours["scores"].dtype.names == ref["scores"].dtype.names
    for g in ref["names"].dtype.names:
        assert list(ours["names"][g]) == list(ref["names"][g]), g
        np.testing.assert_array_equal(np.asarray(ours["scores"][g]), np.asarray(ref["scores"][g]))
    # scanpy's logreg stores no fractions; ours are those its t-test stores for the same groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(a, groupby, groups=groups, reference=reference, method="t-test", use_raw=True,
                                key_added="tt", pts=True)
    tt = a.uns["tt"]
    assert ("pts_rest" in ours) == ("pts_rest" in tt)
    pd.testing.assert_frame_equal(ours["pts"], tt["pts"], check_exact=False, atol=1e-7)
