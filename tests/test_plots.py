"""Figures of the tutorial, rendered to PNG on real data and checked for what they draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

import exprmat_widgets as em
from exprmat_widgets.errors import ExprmatError, MissingKeyError
from exprmat_widgets.pl import _utils
from exprmat_widgets.pl.embedding import RasterPoints

EMBED_KW = dict(figsize=(3, 3), dpi=100, legend_col=2, legend=False, ptsize=2, annotate_style="text",
                annotate_fontsize=8, contour_plot=True)
MARKER_KW = dict(n_genes=3, min_logfoldchange=1, max_logfoldchange=None, max_p_adjust=0.05, min_pct=0.25,
                 max_pct_reference=0.75, key="markers", dpi=100)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def render(fig, path, dpi=100):
    """Save as PNG (like the notebook: bbox_inches='tight') and read the pixels back."""
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    img = mimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.02, "blank figure"
    return img


def pixels_near(img, color, tol=0.04):
    rgb = np.asarray(mcolors.to_rgb(color))
    return int((np.abs(img[..., :3] - rgb).max(axis=-1) < tol).sum())


def hexes(rgba):
    return {mcolors.to_hex(c) for c in np.asarray(rgba)}


def cells_artist(ax):
    hits = [a for a in ax.get_children() if a.get_gid() == "cells"]
    assert len(hits) == 1
    return hits[0]


def all_axes(fig):
    out = []
    for a in fig.axes:
        out += [a] + list(a.child_axes)
    return out


def colorbars(fig):
    return [a for a in all_axes(fig) if a.get_gid() == "colorbar"]


def panel_axes(fig):
    """The embedding panels of a figure (not colour bars, not switched-off slots)."""
    return [a for a in fig.axes if a.get_visible() and a.axison and a.get_gid() != "colorbar"
            and any(c.get_gid() == "cells" for c in a.get_children())]


# --------------------------------------------------------------------------------------------
# colour maps


def test_colormap_names_are_mapped():
    assert _utils.get_cmap("reds").name == "Reds"
    assert _utils.get_cmap("Reds_r").name == "Reds_r"
    assert _utils.get_cmap("reds_r").name == "Reds_r"
    assert _utils.get_cmap("turbo").name == "turbo"
    # d3's category20c is matplotlib's tab20c, colour for colour
    assert _utils.palette_from_cmap("category20c", 5) == [mcolors.to_hex(c) for c in plt.cm.tab20c.colors[:5]]
    assert _utils.palette_from_cmap("Category20c", 3) == _utils.palette_from_cmap("tab20c", 3)
    with pytest.raises(ExprmatError, match="unknown colour map 'redz'.*Reds"):
        _utils.get_cmap("redz")


# --------------------------------------------------------------------------------------------
# plot_embedding


def test_embedding_tutorial_call_categorical(pbmc, tmp_path):
    uns_before = set(pbmc.uns.keys())
    fig = em.plot_embedding(pbmc, basis="umap", color="louvain", **EMBED_KW)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "UMAP1" and ax.get_ylabel() == "UMAP2"
    assert ax.get_title() == "louvain"
    assert ax.get_legend() is None  # legend=False
    cats = list(pbmc.obs["louvain"].cat.categories)
    stored = dict(zip(cats, pbmc.uns["louvain_colors"]))
    pts = cells_artist(ax)
    fc = pts.get_facecolors()
    assert len(fc) == pbmc.n_obs
    # every cell has the colour of its cluster in uns['louvain_colors'] (cells are drawn shuffled)
    offs = pts.get_offsets()
    xy = pbmc.obsm["X_umap"]
    pos = {tuple(np.round(p, 5)): i for i, p in enumerate(xy)}
    for k in range(0, len(offs), 37):
        i = pos[tuple(np.round(offs[k], 5))]
        assert mcolors.to_hex(fc[k]) == mcolors.to_hex(stored[pbmc.obs["louvain"].iloc[i]])
    assert hexes(fc) == {mcolors.to_hex(c) for c in stored.values()}
    # one label per cluster, placed on a cell of that cluster near its middle
    labels = {t.get_text(): t for t in ax.texts if (t.get_gid() or "").startswith("label:")}
    assert set(labels) == set(cats)
    for c, t in labels.items():
        cxy = xy[(pbmc.obs["louvain"] == c).to_numpy()]
        p = np.asarray(t.get_position())
        assert np.min(np.linalg.norm(cxy - p, axis=1)) < 1e-6
        assert np.linalg.norm(p - np.median(cxy, axis=0)) < np.ptp(cxy, axis=0).max()
        assert t.get_fontsize() == 8
    # density contours, drawn in the cluster colour, for every cluster with >= 10 cells
    cont = {a.get_gid(): a for a in ax.get_children() if (a.get_gid() or "").startswith("contour:")}
    big = [i for i, c in enumerate(cats) if (pbmc.obs["louvain"] == c).sum() >= 10]
    assert set(cont) == {f"contour:{i}" for i in big}
    for gid, cs in cont.items():
        col = stored[cats[int(gid.split(":")[1])]]
        assert mcolors.to_hex(cs.get_edgecolor()[0]) == mcolors.to_hex(col)
    img = render(fig, tmp_path / "umap_louvain.png")
    assert img.shape[0] == pytest.approx(300, abs=40)
    img = render(fig, tmp_path / "umap_louvain_300dpi.png", dpi=300)
    for i in big:
        assert pixels_near(img, stored[cats[i]]) > 0, cats[i]
    assert set(pbmc.uns.keys()) == uns_before  # plotting writes nothing


def test_embedding_legend_and_label_style(pbmc, tmp_path):
    fig = em.plot_embedding(pbmc, basis="X_umap", color="bulk_labels", legend=True, legend_col=2,
                            annotate_style="label", figsize=(5, 3))
    ax = fig.axes[0]
    leg = ax.get_legend()
    cats = list(pbmc.obs["bulk_labels"].cat.categories)
    assert [t.get_text() for t in leg.get_texts()] == cats
    assert leg._ncols == 2
    stored = dict(zip(cats, pbmc.uns["bulk_labels_colors"]))
    for h, c in zip(leg.legend_handles, cats):
        assert mcolors.to_hex(h.get_markerfacecolor()) == mcolors.to_hex(stored[c])
    boxes = [t for t in ax.texts if (t.get_gid() or "").startswith("label:")]
    assert len(boxes) == len(cats)
    for t in boxes:
        c = t.get_text()
        assert mcolors.to_hex(t.get_bbox_patch().get_facecolor()) == mcolors.to_hex(stored[c])
    render(fig, tmp_path / "umap_legend.png")
    # after drawing, the labels (crowded in the T-cell island) do not overlap each other
    r = fig.canvas.get_renderer()
    bbs = [t.get_bbox_patch().get_window_extent(r) for t in boxes]
    for i in range(len(bbs)):
        for j in range(i + 1, len(bbs)):
            ov_x = min(bbs[i].x1, bbs[j].x1) - max(bbs[i].x0, bbs[j].x0)
            ov_y = min(bbs[i].y1, bbs[j].y1) - max(bbs[i].y0, bbs[j].y0)
            assert ov_x <= 1.5 or ov_y <= 1.5, (boxes[i].get_text(), boxes[j].get_text())
    # labels off
    fig = em.plot_embedding(pbmc, basis="umap", color="bulk_labels", annotate_style=None, legend=False)
    assert not [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("label:")]


def test_embedding_gene_sorted_continuous(pbmc, tmp_path):
    fig = em.plot_embedding(pbmc, basis="umap", color="CD79A", sort=True, ptsize=4, figsize=(3, 3))
    ax = fig.axes[0]
    pts = cells_artist(ax)
    vals = pbmc[:, "CD79A"].X.toarray().ravel() if hasattr(pbmc.X, "toarray") else pbmc[:, "CD79A"].X.ravel()
    offs = pts.get_offsets()
    xy = pbmc.obsm["X_umap"]
    # drawn in increasing expression: the highest values are on top
    order = [np.flatnonzero((np.abs(xy - o).sum(axis=1)) < 1e-6)[0] for o in offs]
    assert np.all(np.diff(vals[order]) >= 0)
    assert ax.get_title() == "CD79A" and ax.title.get_fontstyle() == "italic"
    cbar = colorbars(fig)
    assert len(cbar) == 1
    lo, hi = cbar[0].get_ylim()
    assert lo == pytest.approx(vals.min(), abs=1e-6) and hi == pytest.approx(vals.max(), abs=1e-6)
    # colour of each cell is the colour map at its value: the top cell has the top colour
    top = _utils.EXPRESSION_CMAP(1.0)
    assert mcolors.to_hex(pts.get_facecolors()[-1]) == mcolors.to_hex(top)
    img = render(fig, tmp_path / "umap_cd79a.png")
    assert pixels_near(img, top, tol=0.06) > 0
    # a numeric obs column is continuous too; vmax as a percentile
    fig = em.plot_embedding(pbmc, basis="umap", color="n_counts", sort=True, vmax="p99")
    cb = colorbars(fig)[0]
    assert cb.get_ylim()[1] == pytest.approx(np.percentile(pbmc.obs["n_counts"], 99))


def test_embedding_groups_and_bad_input(pbmc):
    fig = em.plot_embedding(pbmc, basis="umap", color="bulk_labels", groups=["CD19+ B", "CD34+"])
    fc = hexes(cells_artist(fig.axes[0]).get_facecolors())
    cats = list(pbmc.obs["bulk_labels"].cat.categories)
    stored = dict(zip(cats, pbmc.uns["bulk_labels_colors"]))
    assert fc == {mcolors.to_hex(stored["CD19+ B"]), mcolors.to_hex(stored["CD34+"]), "#e0e0e0"}
    with pytest.raises(MissingKeyError, match="embedding 'tsne' not found"):
        em.plot_embedding(pbmc, basis="tsne", color="louvain")
    with pytest.raises(MissingKeyError, match="feature 'CD79' is neither an obs column nor a gene.*CD79A"):
        em.plot_embedding(pbmc, basis="umap", color="CD79")
    with pytest.raises(MissingKeyError, match="groups \\['B cells'\\]"):
        em.plot_embedding(pbmc, basis="umap", color="bulk_labels", groups=["B cells"])
    with pytest.raises(ExprmatError, match="annotate_style"):
        em.plot_embedding(pbmc, basis="umap", color="louvain", annotate_style="arrows")
    # a category without cells: an empty panel with a visible note, no error
    pbmc.obs["bulk_labels"] = pbmc.obs["bulk_labels"].cat.add_categories(["empty"])
    fig = em.plot_embedding(pbmc, basis="umap", color="bulk_labels", groups=["empty"])
    assert any(t.get_gid() == "empty-note" and "no cells" in t.get_text() for t in fig.axes[0].texts)
    # zero cells
    fig = em.plot_embedding(pbmc[:0].copy(), basis="umap", color="louvain")
    assert any(t.get_gid() == "empty-note" for t in fig.axes[0].texts)


def test_embedding_gene_symbols_and_shipped_data(tmp_path):
    adata = em.datasets.pbmc68k_counts()  # no colours stored: scanpy's default palette, nothing written
    adata.var["symbol"] = ["sym_" + g for g in adata.var_names]
    fig = em.plot_embedding(adata, basis="umap", color="bulk_labels", legend=True)
    assert "bulk_labels_colors" not in adata.uns
    n = adata.obs["bulk_labels"].cat.categories.size
    assert hexes(cells_artist(fig.axes[0]).get_facecolors()) == set(em.colors.default_palette(n))
    # colours stored the exprmat way ('<key>.colors') are used too
    adata.uns["bulk_labels.colors"] = em.colors.default_palette(n + 5)[5:]
    fig = em.plot_embedding(adata, basis="umap", color="bulk_labels")
    assert hexes(cells_artist(fig.axes[0]).get_facecolors()) == set(adata.uns["bulk_labels.colors"])
    # a boolean column is categorical
    adata.obs["high"] = adata.obs["n_counts"] > adata.obs["n_counts"].median()
    fig = em.plot_embedding(adata, basis="umap", color="high", legend=True)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["False", "True"]
    fig = em.plot_embedding(adata, basis="umap", color="sym_CST3", gene_symbols="symbol")
    assert fig.axes[0].get_title() == "sym_CST3"
    render(fig, tmp_path / "symbol.png")
    with pytest.raises(MissingKeyError, match="gene_symbols column 'nope'"):
        em.plot_embedding(adata, basis="umap", color="CST3", gene_symbols="nope")


def test_embedding_pca_mouse(mouse10k, tmp_path):
    a = mouse10k
    gene = a.var_names[int(np.argmax(np.asarray((a.X > 0).sum(axis=0)).ravel()))]
    fig = em.plot_embedding(a, basis="pca", color=gene, sort=True, contour_plot=True)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PC1", "PC2")
    assert len(cells_artist(ax).get_offsets()) == a.n_obs
    assert [c for c in ax.get_children() if c.get_gid() == "contour:0"]  # one density for all cells
    render(fig, tmp_path / "pca.png")


def test_raster_path_large_data(pbmc, tmp_path):
    """Above the threshold the cells are rasterised at draw time; colours and order are kept."""
    import anndata as ad

    rng = np.random.default_rng(0)
    idx = rng.integers(0, pbmc.n_obs, 150_000)  # resampled real cells
    small = pbmc[:, ["CST3", "NKG7"]]
    big = ad.AnnData(X=np.asarray(small.X)[idx], obs=pbmc.obs.iloc[idx].reset_index(drop=True),
                     var=small.var.copy(), uns={"louvain_colors": pbmc.uns["louvain_colors"]})
    big.obs_names = big.obs_names.astype(str)
    big.obsm["X_umap"] = pbmc.obsm["X_umap"][idx] + rng.normal(scale=0.05, size=(len(idx), 2))
    fig = em.plot_embedding(big, basis="umap", color="louvain", **EMBED_KW)
    art = cells_artist(fig.axes[0])
    assert isinstance(art, RasterPoints)
    stored = dict(zip(big.obs["louvain"].cat.categories, big.uns["louvain_colors"]))
    assert hexes(art.facecolors()) == {mcolors.to_hex(c) for c in stored.values()}
    img = render(fig, tmp_path / "big.png")
    for c in stored.values():
        assert pixels_near(img, c, tol=0.02) > 0, c
    labels = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("label:")]
    assert len(labels) == len(stored)
    # continuous on the raster path, sorted
    fig = em.plot_embedding(big, basis="umap", color="CST3", sort=True)
    art = cells_artist(fig.axes[0])
    assert isinstance(art, RasterPoints)
    render(fig, tmp_path / "big_gene.png")


def test_raster_points_later_point_on_top():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=100)
    xy = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.2]])
    rgba = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1]], float)
    art = RasterPoints(xy, rgba, s=30)
    ax.add_artist(art)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.canvas.draw()
    img, bbox = art.render(fig.canvas.get_renderer())
    h, w = img.shape[:2]
    assert tuple(img[h // 2, w // 2]) == (0, 0, 255, 255)  # the blue point was drawn last
    assert tuple(img[int(h * 0.2), int(w * 0.2)]) == (0, 255, 0, 255)
    assert tuple(img[int(h * 0.9), int(w * 0.9)]) == (0, 0, 0, 0)
    # disc diameter ~ sqrt(30) pt = 7.6 px at 100 dpi
    blue = (img[..., 2] == 255).any(axis=0).sum()
    assert 5 <= blue <= 10


def test_multiple_embedding_obs_and_genes(pbmc, tmp_path):
    feats = ["louvain", "bulk_labels", "CD79A", "n_counts", "NKG7"]
    fig = em.plot_multiple_embedding(pbmc, basis="umap", features=feats, ncols=4, figsize=(10, 5.2), dpi=100,
                                     legend_col=2, legend=False, ptsize=2, annotate_style="text",
                                     annotate_fontsize=8, sort=True)
    panels = panel_axes(fig)
    assert [a.get_title() for a in panels] == feats
    assert len(colorbars(fig)) == 3  # genes and the numeric column
    assert sum(1 for a in fig.axes if not a.axison) == 3  # 8 slots, 5 used
    assert fig.get_size_inches() == pytest.approx((10, 5.2))
    stored = dict(zip(pbmc.obs["bulk_labels"].cat.categories, pbmc.uns["bulk_labels_colors"]))
    assert hexes(cells_artist(panels[1]).get_facecolors()) == {mcolors.to_hex(c) for c in stored.values()}
    render(fig, tmp_path / "multi.png")
    before = plt.get_fignums()
    with pytest.raises(MissingKeyError, match="'Procr'"):
        em.plot_multiple_embedding(pbmc, basis="umap", features=["louvain", "Procr"])
    assert plt.get_fignums() == before  # checked before drawing anything


# --------------------------------------------------------------------------------------------
# cNMF figures (outputs in the agreed layout)


def _cnmf_outputs(adata, ks=(3, 5, 7), extract=5):
    """Real consensus NMF (small n_iter) on real counts, then extraction of one k."""
    sc.pp.normalize_total(adata, target_sum=1e4)
    adata.layers["norm"] = adata.X.copy()
    em.consensus_nmf(adata, counts="counts", tpm="norm", ks=list(ks), hvg=None, n_iter=10, n_top_genes=500,
                     max_nmf_iter=200, random_state=0, progress=False)
    em.consensus_nmf_extract_k(adata, k=extract)
    return adata


@pytest.fixture(scope="module")
def cnmf_data():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _cnmf_outputs(em.datasets.pbmc68k_counts())
    return a


def test_cnmf_silhouette(cnmf_data, tmp_path):
    fig = em.plot_cnmf_silhoutte(cnmf_data, figsize=(4, 2))
    assert em.plot_cnmf_silhoutte is em.plot_cnmf_silhouette
    ax, ax2 = fig.axes
    st = cnmf_data.uns["cnmf.stats"]
    assert ax.get_ylabel() == "stability" and ax2.get_ylabel() == "error"
    assert "k" in ax.get_xlabel()
    (l1,), (l2,) = ax.get_lines()[:1], ax2.get_lines()
    assert list(l1.get_xdata()) == list(st["k"]) and np.allclose(l1.get_ydata(), st["stability"])
    assert np.allclose(l2.get_ydata(), st["error"])
    assert [c.get_gid() for c in ax.get_lines() if (c.get_gid() or "").startswith("extracted")] == ["extracted:5"]
    render(fig, tmp_path / "silhouette.png")
    with pytest.raises(MissingKeyError, match="consensus_nmf"):
        em.plot_cnmf_silhouette(em.datasets.pbmc68k_counts())


def test_cnmf_distance_usages(cnmf_data, tmp_path):
    a = cnmf_data
    a.uns["bulk_labels_colors"] = em.colors.default_palette(a.obs["bulk_labels"].cat.categories.size)
    pal_ = dict(zip(a.obs["bulk_labels"].cat.categories, a.uns["bulk_labels_colors"]))
    fig = em.plot_cnmf_distance_usages(a, k=5, downsample=0.1, method="complete", cmap="reds",
                                       cmap_annotations="turbo", annotations=["cnmf.5", "bulk_labels"],
                                       metrics="cosine", legend_cols=1, figsize=(7, 3.3))
    del a.uns["bulk_labels_colors"]
    gids = {ax.get_gid(): ax for ax in fig.axes if ax.get_gid()}
    assert {"dendrogram-rows", "dendrogram-cols", "annotations", "colorbar-heatmap",
            "colorbar-annotations"} <= set(gids)
    heat = [ax for ax in fig.axes if any(i.get_gid() == "heatmap" for i in ax.images)][0]
    im = [i for i in heat.images if i.get_gid() == "heatmap"][0]
    n = 70
    assert im.get_array().shape == (n, n)
    assert len(set(fig.heatmap_items)) == n and set(fig.heatmap_items) <= set(a.obs_names)
    assert im.get_cmap().name == "Reds"
    M = np.asarray(im.get_array())
    assert np.allclose(np.diag(M), 1.0)  # similarity of a cell with itself
    assert np.allclose(M, M.T)
    ann = gids["annotations"].images[0].get_array()
    assert ann.shape[:2] == (n, 6)  # 5 programs + bulk_labels
    # rows are the sampled cells in dendrogram order: similarities and usage bars match them
    U = np.asarray(a.obsm["cnmf.5"].loc[fig.heatmap_items], dtype=float)
    Un = U / np.linalg.norm(U, axis=1, keepdims=True)
    assert np.allclose(M, Un @ Un.T, atol=1e-6)
    expect = plt.get_cmap("turbo")(mcolors.Normalize(U.min(), U.max())(U))
    assert np.allclose(ann[:, :5], expect, atol=1e-6)
    lab = a.obs["bulk_labels"].loc[fig.heatmap_items]
    assert [mcolors.to_hex(c) for c in ann[:, 5]] == [pal_[x] for x in lab]
    assert [t.get_text() for t in gids["annotations"].get_xticklabels()] == ["1", "2", "3", "4", "5", "bulk_labels"]
    leg = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None][0]
    cats = list(a.obs["bulk_labels"].cat.categories)
    assert {t.get_text() for t in leg.get_texts()} <= set(cats)
    pal = dict(zip(cats, em.colors.default_palette(len(cats))))
    for h, t in zip(leg.legend_handles, leg.get_texts()):
        assert mcolors.to_hex(h.get_facecolor()) == pal[t.get_text()]
    # the dendrogram order groups cells: neighbours in the order are more similar than random pairs
    assert np.mean(np.diag(M, 1)) > np.mean(M) + 0.05
    render(fig, tmp_path / "usages.png")
    with pytest.raises(MissingKeyError, match="consensus_nmf_extract_k\\(adata, k=9"):
        em.plot_cnmf_distance_usages(a, k=9)
    with pytest.raises(ExprmatError, match="method='ward' needs metrics='euclidean'"):
        em.plot_cnmf_distance_usages(a, k=5, method="ward")
    with pytest.raises(MissingKeyError, match="annotation 'nope'"):
        em.plot_cnmf_distance_usages(a, k=5, annotations="nope")


def test_cnmf_distance_modules(cnmf_data, tmp_path):
    a = cnmf_data
    fig = em.plot_cnmf_distance_modules(a, k=5, downsample=1, method="complete", cmap="reds",
                                        cmap_annotations="seismic", annotations="cnmf.coef.5", metrics="cosine",
                                        legend_cols=1, figsize=(5, 3))
    n_ok = int((np.abs(np.asarray(a.varm["cnmf.5"])).sum(axis=1) > 0).sum())
    heat = [i for ax in fig.axes for i in ax.images if i.get_gid() == "heatmap"][0]
    assert heat.get_array().shape == (n_ok, n_ok)
    ann = [ax for ax in fig.axes if ax.get_gid() == "annotations"][0].images[0].get_array()
    assert ann.shape[:2] == (n_ok, 5)
    cb = [ax for ax in fig.axes if ax.get_gid() == "colorbar-annotations"][0]
    lo, hi = cb.get_ylim()
    assert lo == pytest.approx(-hi)  # diverging map centred at 0
    render(fig, tmp_path / "modules.png")
    with pytest.warns(UserWarning, match="drawing the 100 most program-specific of"):
        fig = em.plot_cnmf_distance_modules(a, k=5, max_items=100, annotations="cnmf.coef.5")
    heat = [i for ax in fig.axes for i in ax.images if i.get_gid() == "heatmap"][0]
    assert heat.get_array().shape == (100, 100)
    coef = np.asarray(a.varm["cnmf.coef.5"]).max(axis=1)
    ann = [ax for ax in fig.axes if ax.get_gid() == "annotations"][0]
    assert ann.images[0].get_array().shape[0] == 100
    # the genes kept are the 100 with the highest coefficient
    top = set(a.var_names[np.argsort(-coef, kind="stable")[:100]])
    assert set(fig.heatmap_items) == top


# --------------------------------------------------------------------------------------------
# markers


def _markers(adata, groupby, **kw):
    if hasattr(em, "markers"):
        em.markers(adata, groupby=groupby, method="t-test", pts=True, key_added="markers", **kw)
    else:
        sc.tl.rank_genes_groups(adata, groupby, method="t-test", pts=True, key_added="markers", use_raw=False)
    return adata


@pytest.fixture(scope="module")
def pbmc_markers():
    a = sc.datasets.pbmc68k_reduced()
    a.X = a.raw[:, a.var_names].X.copy()  # log-normalised expression, not scaled
    a.var["gene"] = ["sym-" + g for g in a.var_names]
    return _markers(a, "bulk_labels")


@pytest.mark.parametrize("plot_type", ["dotplot", "matrixplot", "stacked_violin", "tracksplot"])
def test_markers_tutorial_calls(pbmc_markers, plot_type, tmp_path):
    a = pbmc_markers
    figsize = (8, 5) if plot_type == "tracksplot" else (8, 2.5)
    fig = em.plot_markers(a, groupby="bulk_labels", gene_symbols="gene", figsize=figsize, plot_type=plot_type,
                          **MARKER_KW)
    table = fig.marker_table
    assert len(table) > 0
    assert (table["logfoldchanges"] >= 1).all() and (table["pvals_adj"] <= 0.05).all()
    assert (table["pct_nz_group"] >= 0.25).all() and (table["pct_nz_reference"] <= 0.75).all()
    assert table.groupby("group", observed=True).size().max() <= 3
    shown = [f"sym-{g}" for g in table["names"]]
    if plot_type in ("dotplot", "matrixplot"):
        main = [ax for ax in fig.axes if ax.get_xticklabels() and
                [t.get_text() for t in ax.get_xticklabels()] == shown]
        assert len(main) == 1  # genes in the table's order, labelled with symbols
        ylabels = [t.get_text() for t in main[0].get_yticklabels()]
        assert ylabels == list(a.obs["bulk_labels"].cat.categories)
    elif plot_type == "stacked_violin":
        ax = [ax for ax in fig.axes if ax.get_gid() == "mainplot"][0]
        assert [t.get_text() for t in ax.get_xticklabels()] == shown
        n_groups = a.obs["bulk_labels"].cat.categories.size
        violins = [c for c in ax.collections if c.get_gid() == "violins"][0]
        assert len(violins.get_paths()) == len(shown) * n_groups
        brackets = [t.get_text() for t in fig.texts + [t for x in fig.axes for t in x.texts]
                    if (t.get_gid() or "").startswith("bracket:")]
        assert brackets == list(fig.marker_groups)
        strip = [ax for ax in fig.axes if ax.get_gid() == "group-colors"][0]
        rgb = strip.images[0].get_array()[:, 0, :3]
        stored = [mcolors.to_rgb(c) for c in a.uns["bulk_labels_colors"]]
        assert np.allclose(rgb, stored, atol=1e-3)  # group colours from uns
    else:
        labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
        assert labels[: len(shown)] == shown  # one track per gene, in the table's order
    assert fig.get_size_inches() == pytest.approx(figsize)
    render(fig, tmp_path / f"markers_{plot_type}.png")


def test_markers_bad_input_and_empty_groups(pbmc_markers):
    a = pbmc_markers
    with pytest.raises(ExprmatError, match="no marker gene.*relax"):
        em.plot_markers(a, n_genes=3, min_logfoldchange=100, key="markers")
    with pytest.raises(ExprmatError, match="plot_type"):
        em.plot_markers(a, plot_type="heatmap")
    with pytest.raises(MissingKeyError, match="uns\\['nope'\\]"):
        em.plot_markers(a, key="nope")
    # a group whose cells are gone: the figure says so
    sub = a[a.obs["bulk_labels"] != "CD34+"].copy()
    fig = em.plot_markers(sub, groupby="bulk_labels", n_genes=2, plot_type="matrixplot")
    notes = [t.get_text() for t in fig.texts if t.get_gid() == "markers-note"]
    assert notes and "no cells in: CD34+" in notes[0]
    # groups left without markers by the filters are named
    best = sc.get.rank_genes_groups_df(a, group=None, key="markers").groupby("group", observed=True)[
        "logfoldchanges"].max()
    cut = float(np.median(best))  # about half of the groups keep a marker
    fig = em.plot_markers(a, n_genes=2, min_logfoldchange=cut, plot_type="dotplot")
    assert set(fig.marker_groups) == {str(g) for g in best.index[best > cut]}
    missing = sorted(set(a.obs["bulk_labels"].cat.categories) - set(fig.marker_groups))
    assert missing
    notes = [t.get_text() for t in fig.texts if t.get_gid() == "markers-note"]
    assert all(m in notes[0] for m in missing)


# --------------------------------------------------------------------------------------------
# shipped two-sample data: clusters, markers and composition end to end


@pytest.fixture(scope="module")
def two_samples():
    """The shipped two-sample data with PCA, a kNN graph and Leiden clusters (no UMAP: keeps the file fast)."""
    a = em.datasets.pbmc_2samples()
    a.layers["counts"] = a.X.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=1000)
    a.obsm["X_pca"] = sc.pp.pca(a[:, a.var["highly_variable"]].X.toarray(), n_comps=15, random_state=0)
    em.knn(a, use_rep="X_pca", n_neighbors=15, method="gauss", random_state=0)  # no numba compile
    em.leiden(a, resolution=0.8, random_state=0)
    return a


def test_proportion_tutorial_call(two_samples, tmp_path):
    a = two_samples
    a.obs["cell.type"] = a.obs["leiden"]
    fig = em.plot_proportion(a, major="sample", minor="cell.type", plot="bar", cmap="category20c",
                             normalize="index", figsize=(3, 2.5), stacked=True, legend=True)
    ax = fig.axes[0]
    minors = list(a.obs["cell.type"].cat.categories)
    majors = list(a.obs["sample"].cat.categories)
    tab = pd.crosstab(a.obs["sample"], a.obs["cell.type"], normalize="index")
    pal = _utils.palette_from_cmap("category20c", len(minors))
    for j, m in enumerate(minors):
        bars = [p for p in ax.patches if p.get_gid() == f"minor:{m}"]
        assert len(bars) == len(majors)
        assert np.allclose([b.get_height() for b in bars], tab[m].reindex(majors).to_numpy())
        assert all(mcolors.to_hex(b.get_facecolor()) == pal[j] for b in bars)
    stacks = np.zeros(len(majors))
    for p in ax.patches:
        stacks[int(round(p.get_x() + p.get_width() / 2))] += p.get_height()
    assert np.allclose(stacks, 1.0)
    leg = ax.get_legend()
    assert [t.get_text() for t in leg.get_texts()] == minors[::-1]
    assert [t.get_text() for t in ax.get_xticklabels()] == majors
    assert ax.get_ylabel() == "fraction of sample cells"
    img = render(fig, tmp_path / "proportion.png")
    for c in pal:
        assert pixels_near(img, c, tol=0.03) > 0
    # counts, grouped bars, uns colours, an empty sample
    a.obs["sample2"] = a.obs["sample"].cat.add_categories(["empty"])
    fig = em.plot_proportion(a, major="sample2", minor="leiden", plot="barh", normalize=None, stacked=False,
                             show_n=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "cells"
    stored = dict(zip(a.obs["leiden"].cat.categories, a.uns["leiden_colors"]))
    for m, col in stored.items():
        bars = [p for p in ax.patches if p.get_gid() == f"minor:{m}"]
        assert mcolors.to_hex(bars[0].get_facecolor()) == mcolors.to_hex(col)
        assert sum(b.get_width() for b in bars) == (a.obs["leiden"] == m).sum()
    assert [t for t in ax.texts if t.get_gid() == "empty:empty" and t.get_text() == "no cells"]
    render(fig, tmp_path / "proportion_counts.png")
    with pytest.raises(MissingKeyError, match="'cell_type'"):
        em.plot_proportion(a, major="sample", minor="cell_type")
    with pytest.raises(ExprmatError, match="normalize"):
        em.plot_proportion(a, major="sample", minor="leiden", normalize="rows")


def test_two_samples_embedding_and_markers(two_samples, tmp_path):
    a = two_samples
    fig = em.plot_embedding(a, basis="pca", color="leiden", **EMBED_KW)
    assert fig.axes[0].get_xlabel() == "PC1"
    stored = dict(zip(a.obs["leiden"].cat.categories, a.uns["leiden_colors"]))
    assert hexes(cells_artist(fig.axes[0]).get_facecolors()) == {mcolors.to_hex(c) for c in stored.values()}
    render(fig, tmp_path / "two_umap.png")
    _markers(a, "leiden")
    fig = em.plot_markers(a, groupby="leiden", n_genes=3, min_logfoldchange=1, max_p_adjust=0.05,
                          plot_type="dotplot", figsize=(8, 2.5))
    assert set(fig.marker_groups) <= set(a.obs["leiden"].cat.categories)
    render(fig, tmp_path / "two_dotplot.png")
    # the same marker genes shown across another grouping (the samples)
    fig = em.plot_markers(a, groupby="sample", n_genes=2, plot_type="matrixplot")
    main = [ax for ax in fig.axes if [t.get_text() for t in ax.get_yticklabels()] ==
            list(a.obs["sample"].cat.categories)]
    assert len(main) == 1
    assert [t.get_text() for t in main[0].get_xticklabels()] == list(fig.marker_table["names"])


def test_experiment_accessor_and_vector_output(pbmc, tmp_path):
    """The tutorial's ``expm.rna.plot_*`` calls reach these figures; PDF/SVG output works for
    both drawing paths."""
    import warnings

    expm = em.Experiment(pbmc)
    fig = expm.rna.plot_embedding(basis="umap", color="louvain", **EMBED_KW)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "louvain"
    bound = expm.rna.plot_cnmf_silhoutte
    assert getattr(bound, "func", bound) is em.plot_cnmf_silhouette
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Rasterization ... will be ignored"
        for thr in (10**9, 10):  # matplotlib scatter, then the raster artist
            fig = em.plot_embedding(pbmc, basis="umap", color="bulk_labels", raster_threshold=thr)
            for ext in ("pdf", "svg"):
                fig.savefig(tmp_path / f"e{thr}.{ext}", dpi=150)
                assert (tmp_path / f"e{thr}.{ext}").stat().st_size > 5000
    with pytest.raises(ExprmatError, match="unknown colour map 'nope'"):
        em.plot_proportion(pbmc, major="phase", minor="bulk_labels", cmap="nope")
    with pytest.raises(ExprmatError, match="ptsize must be >= 0"):
        em.plot_embedding(pbmc, basis="umap", color="louvain", ptsize=-1)
