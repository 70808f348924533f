"""The marker panel's four views (dot plot, matrix plot, stacked violin, tracks plot) and the
core summaries they draw (``tl.marker_summary``): the numbers are checked against scanpy
(``sc.pl.matrixplot(..., return_fig=True).values_df``, ``sc.get.aggregate``) and against the
data themselves (per-group histograms, quartiles, per-cell values)."""

import re

import numpy as np
import pytest
import scanpy as sc

import exprmat_widgets as em
import exprmat_widgets.widgets  # noqa: F401
from exprmat_widgets.tl.marker_summary import binned_density, marker_groups
from exprmat_widgets.widgets import _marker_svg, marker_panel


@pytest.fixture
def logged(pbmc):
    """pbmc68k_reduced with log-normalised (not scaled) values in X and markers of bulk_labels."""
    pbmc.X = pbmc.raw[:, pbmc.var_names].X.copy()
    em.markers(pbmc, groupby="bulk_labels", method="t-test", pts=True)
    return pbmc


def _dense(x):
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)


GENES = ["CD79A", "NKG7", "LYZ", "FCER1A", "MS4A1"]


def test_matrix_values_equal_scanpy_matrixplot_and_aggregate(logged):
    groups = marker_groups(logged, "markers")
    assert list(groups) == list(logged.obs["bulk_labels"].cat.categories)  # all tested: no 'rest'
    mean, _frac = em.marker_group_means(logged, GENES, groups)
    mp = sc.pl.matrixplot(logged, GENES, "bulk_labels", return_fig=True, show=False)
    ref = mp.values_df.loc[list(groups), GENES].to_numpy()
    np.testing.assert_allclose(mean, ref, rtol=1e-5, atol=1e-6)
    agg = sc.get.aggregate(logged[:, GENES], by="bulk_labels", func="mean")
    np.testing.assert_allclose(mean, agg[list(groups)].layers["mean"], rtol=1e-5, atol=1e-6)


def test_violins_are_the_groups_histograms_and_quartiles(logged):
    groups = marker_groups(logged, "markers")
    vio = em.marker_violins(logged, GENES, groups, bins=20, sigma=0)
    X = _dense(logged[:, GENES].X)
    np.testing.assert_allclose(vio["lo"], X.min(axis=0))
    np.testing.assert_allclose(vio["hi"], X.max(axis=0))
    assert vio["density"].shape == (len(groups), len(GENES), 20)
    for i, m in enumerate(groups.values()):
        part = X[m]
        assert vio["n"][i] == m.sum()
        np.testing.assert_allclose(vio["median"][i], np.median(part, axis=0))
        np.testing.assert_allclose(vio["q1"][i], np.quantile(part, 0.25, axis=0))
        np.testing.assert_allclose(vio["q3"][i], np.quantile(part, 0.75, axis=0))
        np.testing.assert_allclose(vio["mean"][i], part.mean(axis=0), rtol=1e-6)
        for j in range(len(GENES)):
            h, _ = np.histogram(part[:, j], bins=20, range=(vio["lo"][j], vio["hi"][j]))
            np.testing.assert_allclose(vio["density"][i, j], h / h.max())
    # smoothed: same peak scale, mass still where the cells are
    smooth = em.marker_violins(logged, GENES, groups, bins=20)
    assert np.allclose(smooth["density"].max(axis=2), 1.0)
    with pytest.raises(em.ExprmatError, match="bins"):
        em.marker_violins(logged, GENES, groups, bins=1)


def test_binned_density():
    d = binned_density([0.0, 0.0, 1.0], 0.0, 1.0, bins=2, sigma=0)
    np.testing.assert_allclose(d, [1.0, 0.5])
    assert not binned_density([], 0.0, 1.0, bins=4).any()
    s = binned_density(np.r_[np.zeros(50), np.ones(5)], 0.0, 1.0, bins=10, sigma=1.5)
    assert s.argmax() == 0 and s.max() == 1.0 and 0 < s[-1] < s[0]


def test_cell_values_are_the_cells_values_downsampled_per_group(logged):
    groups = marker_groups(logged, "markers")
    X = _dense(logged[:, GENES].X)
    full = em.marker_cell_values(logged, GENES, groups, max_cells=10_000)
    assert not full["sampled"] and full["cells"].size == logged.n_obs
    order = np.concatenate([np.flatnonzero(m) for m in groups.values()])
    np.testing.assert_array_equal(full["cells"], order)
    np.testing.assert_allclose(full["values"], X[order])

    small = em.marker_cell_values(logged, GENES, groups, max_cells=100, min_per_group=3, random_state=1)
    sizes = np.array([m.sum() for m in groups.values()])
    assert small["sampled"] and 100 - len(groups) <= small["cells"].size <= 100 + 3 * len(groups)
    np.testing.assert_array_equal(small["sizes"], sizes)
    names = list(groups)
    for i, m in enumerate(groups.values()):
        mine = small["cells"][small["group"] == i]
        assert m[mine].all() and (np.diff(mine) > 0).all()  # the group's cells, in data order
        assert mine.size >= min(3, m.sum()), names[i]
        assert abs(mine.size - 100 * m.sum() / sizes.sum()) <= max(3, 1)  # its share
    assert np.all(np.diff(small["group"]) >= 0)  # groups in turn
    np.testing.assert_allclose(small["values"], X[small["cells"]])
    again = em.marker_cell_values(logged, GENES, groups, max_cells=100, min_per_group=3, random_state=1)
    np.testing.assert_array_equal(again["cells"], small["cells"])
    with pytest.raises(em.ExprmatError, match="max_cells"):
        em.marker_cell_values(logged, GENES, groups, max_cells=0)
    with pytest.raises(em.MissingKeyError, match="NOT_A_GENE"):
        em.marker_cell_values(logged, ["NOT_A_GENE"], groups)


def test_svg_views_escape_names_and_mark_each_gene_and_group():
    genes, groups = ["G<1>", "B&2"], ["a\"x", "rest"]
    mean = np.array([[0.0, 1.0], [2.0, 3.0]])
    svg = _marker_svg.matrix_plot_svg(genes, groups, mean)
    assert "G&lt;1&gt;" in svg and "B&amp;2" in svg and "<1>" not in svg
    cells = re.findall(r'class="em-matrix-cell" data-gene="([^"]+)" data-group="([^"]+)"[^>]*fill="([^"]+)"', svg)
    assert len(cells) == 4 and cells[0][2] != cells[3][2]  # lowest and highest mean differ in colour
    vio = {"density": np.ones((2, 2, 8)), "median": mean, "q1": mean, "q3": mean,
           "lo": np.zeros(2), "hi": np.full(2, 3.0)}
    svg = _marker_svg.stacked_violin_svg(genes, groups, vio)
    assert svg.count('class="em-violin"') == 4 and svg.count("em-violin-median") == 4
    assert re.search(r'class="em-violin"[^>]* d="M[-.0-9]+ [-.0-9]+l[-. 0-9]+z"', svg)
    tr = {"values": np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), "group": np.array([0, 0, 1]),
          "sizes": np.array([20, 10]), "sampled": True}
    svg = _marker_svg.tracks_plot_svg(genes, groups, tr, {"a\"x": "#ff0000", "rest": "#9e9e9e"})
    assert svg.count('class="em-track"') == 4  # 2 genes x 2 groups
    assert "3 of 30 cells" in svg and 'fill="#ff0000"' in svg
    assert _marker_svg.matrix_plot_svg([], groups, mean) == _marker_svg.EMPTY


@pytest.fixture
def ann(pbmc_graph):
    pbmc_graph.X = pbmc_graph.raw[:, pbmc_graph.var_names].X.copy()  # log values: fractions expressing mean something
    return em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)


def test_panel_switches_between_the_four_views(ann):
    adata, mp = ann.adata, ann.markers
    assert [v for _label, v in mp.kind.options] == ["dotplot", "matrixplot", "stacked_violin", "tracksplot"]
    mp.max_pct_ref.value = 0.75  # the tutorial's filters
    mp.n_genes.value = 3
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    table = em.filter_markers(adata, key="markers", **mp.filters())
    assert len(table) >= 6
    assert mp.filters()["max_pct_reference"] == 0.75 and (table["pct_nz_reference"] < 0.75).all()
    genes = list(dict.fromkeys(table["names"]))
    groups = marker_groups(adata, "markers")
    n_commands = len(adata.uns["commands"])
    sizes = {}
    for kind, mark in (("matrixplot", "em-matrix-cell"), ("stacked_violin", "em-violin"),
                       ("tracksplot", "em-track"), ("dotplot", "em-dot")):
        mp.kind.value = kind
        svg = mp.view.get_state()["svg"]  # what the page draws
        sizes[kind] = len(svg)
        assert mp.view_values["kind"] == kind and mp.view_values["groups"] == list(groups)
        marks = re.findall(rf'class="{mark}" data-gene="([^"]+)" data-group="([^"]+)"', svg)
        shown = marker_panel._track_genes(table) if kind == "tracksplot" else genes
        assert list(dict.fromkeys(g for g, _ in marks)) == shown, kind
        assert {grp for _, grp in marks} == set(groups), kind
        if kind == "matrixplot":
            mean, _ = em.marker_group_means(adata, genes, groups)
            np.testing.assert_allclose(mp.view_values["mean"], mean)
        if kind == "stacked_violin":
            X = _dense(adata[:, genes].X)
            m0 = next(iter(groups.values()))
            np.testing.assert_allclose(mp.view_values["median"][0], np.median(X[m0], axis=0))
        if kind == "tracksplot":
            n = mp.view_values["cells"].size  # 700 cells, over the bound: downsampled
            assert mp.view_values["sampled"] and n <= marker_panel.MAX_TRACK_CELLS + 3 * len(groups)
            assert f"{n} of 700 cells" in svg
    assert len(adata.uns["commands"]) == n_commands  # a view, not a command
    assert max(sizes.values()) < 150_000, sizes


def test_tracks_keep_the_best_markers_of_every_group():
    import pandas as pd

    df = pd.DataFrame({"group": pd.Categorical(["a"] * 4 + ["b"] * 2 + ["c"], categories=["a", "b", "c"]),
                       "names": ["a1", "a2", "a3", "a4", "a2", "b1", "c1"]})
    assert marker_panel._track_genes(df, 4) == ["a1", "a2", "b1", "c1"]  # a2 (of a and b) once; table order
    assert marker_panel._track_genes(df, 100) == ["a1", "a2", "a3", "a4", "b1", "c1"]


def test_tracks_are_bounded_on_large_data(logged):
    import anndata as ad

    big = ad.concat([logged] * 8, index_unique="-")
    groups = {k: np.tile(m, 8) for k, m in marker_groups(logged, "markers").items()}
    out = em.marker_cell_values(big, GENES, groups, max_cells=marker_panel.MAX_TRACK_CELLS)
    assert big.n_obs == 5600 and out["sampled"]
    assert out["cells"].size <= marker_panel.MAX_TRACK_CELLS + 3 * len(groups)
    svg = _marker_svg.tracks_plot_svg(GENES, list(groups), out, {})
    assert len(svg) < 20_000 * len(GENES)  # bounded by the cells drawn, not the cells in the data
