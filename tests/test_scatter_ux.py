"""The scatter's UX contract without a browser: one current selection (kind + count), one
colour box whose errors go to the Annotator's status line, and the same data access as the
core (embedding key, feature look-up).  The page side is in tests/browser/."""

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

import exprmat_widgets as em
from exprmat_widgets import _access, _validate
from exprmat_widgets.errors import MissingKeyError
from exprmat_widgets.pl import _utils as plu
from exprmat_widgets.widgets import scatter as scmod
from exprmat_widgets.widgets.scatter import UmapScatter, encode_selection_buffer


def _page_lasso(w, inside, poly_norm):
    """What the page sends after a lasso: selection, polygon, generation of its points."""
    w.set_state({"selection": memoryview(encode_selection_buffer(inside, w._n)),
                 "_polygon": memoryview(np.asarray(poly_norm, dtype="<f4").tobytes()),
                 "_selection_generation": w._generation})


LEFT_HALF = [[-1, -1], [0, -1], [0, 1], [-1, 1]]


# ------------------------------------------------------------------ data access (design item)
def test_scatter_draws_the_embedding_the_core_records(pbmc):
    # both keys present and different: tl records a lasso against obsm['umap'], so the
    # scatter must draw obsm['umap'] too
    pbmc.obsm["umap"] = pbmc.obsm["X_umap"][:, ::-1] * 3.0 + 7.0
    assert scmod.embedding_key is _validate.embedding_key is _access.embedding_key
    w = UmapScatter(pbmc, basis="umap", color="bulk_labels")
    xy = np.frombuffer(w._coords, dtype="<f4").reshape(-1, 2).astype(float)
    t = w._transform
    np.testing.assert_allclose(xy / t["scale"] + [t["cx"], t["cy"]], pbmc.obsm["umap"], rtol=1e-5, atol=1e-4)
    # a lasso drawn on the page selects, through the recorded polygon, the same cells
    inside = np.flatnonzero(w.normalized_coords[:, 0] < 0)
    _page_lasso(w, inside, LEFT_HALF)
    rec = w.selection_record()
    em.label_cells(pbmc, "blob", cells=None, polygon=rec["polygon"], basis=rec["basis"], label="L")
    hit = MplPath(np.asarray(rec["polygon"])).contains_points(pbmc.obsm["umap"])
    assert (pbmc.obs["blob"] == "L").to_numpy().sum() == hit.sum()
    np.testing.assert_array_equal(np.flatnonzero((pbmc.obs["blob"] == "L").to_numpy()), inside)


def test_scatter_feature_lookup_is_the_cores(pbmc):
    assert plu.feature is _access.feature  # one function for pl and widgets
    w = UmapScatter(pbmc, color="bulk_labels")
    # a gene in X and in raw (different values): X by default, as em.pl.embedding
    w.color_by("CD79A")
    core, kind, _ = _access.feature(pbmc, "CD79A")
    assert kind == "continuous"
    assert w._legend["vmin"] == pytest.approx(core.min()) and w._legend["vmax"] == pytest.approx(core.max())
    assert core.max() != pytest.approx(float(pbmc.raw[:, "CD79A"].X.max()))
    w.color_by("CD79A", use_raw=True)
    assert w._legend["vmax"] == pytest.approx(float(pbmc.raw[:, "CD79A"].X.max()))
    # a gene only in raw: the message names the fix
    sub = pbmc[:, pbmc.var_names != "CD79A"].copy()  # raw keeps every gene
    with pytest.raises(MissingKeyError, match="use_raw=True"):
        UmapScatter(sub, color=None).color_by("CD79A")
    # gene symbols in a var column are found, as by the core
    pbmc.var["gene_symbols"] = [f"sym{i}" for i in range(pbmc.n_vars)]
    w.color_by("sym3")
    np.testing.assert_allclose(w._legend["vmax"], np.asarray(pbmc.X[:, 3]).max())


def test_gene_column_and_colormap_fast_paths_give_the_same_values(pbmc):
    """A colour change by gene reads one CSR column in one vectorised pass and a cached
    colormap; both give what scipy's column slice and the per-value colormap calls gave."""
    import scipy.sparse as sp
    from matplotlib import colormaps
    from matplotlib import colors as mcolors

    rng = np.random.default_rng(0)
    dense = rng.poisson(0.3, size=(300, 40)).astype(np.float32)
    m = sp.csr_matrix(dense)
    # a non-canonical CSR (a duplicate entry in row 5): the slice sums duplicates, so must we
    rows, cols = np.r_[m.nonzero()[0], 5], np.r_[m.nonzero()[1], 7]
    dup = sp.csr_matrix((np.r_[m.data, np.float32(2.5)], (rows, cols)), shape=m.shape)
    dup.has_canonical_format = False
    for mat in (m, dup):
        for j in range(mat.shape[1]):
            got = _access._dense_column(mat, j)
            want = np.asarray(mat[:, j].toarray(), dtype=float).ravel()
            assert got.dtype == np.float64 and got.tobytes() == want.tobytes(), j
    assert _access._dense_column(dup, 7)[5] == dense[5, 7] + 2.5
    for name in ("viridis", "magma"):
        want = [mcolors.to_hex(colormaps[name](x)) for x in np.linspace(0.0, 1.0, scmod.N_CONTINUOUS)]
        assert scmod._colormap(name, scmod.N_CONTINUOUS) == want
    # a gene after a gene: new codes, the same palette, which is not sent again
    w = UmapScatter(pbmc, color="CD79A")
    sent = []
    w.observe(lambda ch: sent.append(ch["name"]), names=["_palette", "_codes_hash"])
    w.color_by(str(pbmc.var_names[0]))
    assert sent == ["_codes_hash"]
    w.color_by("bulk_labels")
    assert "_palette" in sent


# ------------------------------------------------------------------ item 7: one selection
def test_one_current_selection_kind_and_count(pbmc):
    w = UmapScatter(pbmc, color="bulk_labels")
    assert w.current_selection["kind"] == "none"
    mono = (pbmc.obs["bulk_labels"] == "CD14+ Monocyte").to_numpy()
    w.highlight_groups("bulk_labels", ["CD14+ Monocyte"])
    assert w.current_selection["kind"] == "clusters" and w.current_selection["count"] == mono.sum()
    assert "CD14+ Monocyte" in w.current_selection["description"]
    # a lasso from the page replaces the highlighted clusters
    inside = np.flatnonzero(w.normalized_coords[:, 0] < 0)
    _page_lasso(w, inside, LEFT_HALF)
    assert w._highlight == b""
    assert w.current_selection == {"kind": "lasso", "count": inside.size,
                                   "description": f"lasso: {inside.size:,} cells"}
    # and highlighting clusters again clears the lasso
    w.highlight_groups("bulk_labels", ["CD14+ Monocyte", "Dendritic"])
    assert len(w.selection) == 0 and w.last_polygon is None
    assert w.current_selection["kind"] == "clusters"
    assert w.current_selection["count"] == pbmc.obs["bulk_labels"].isin(["CD14+ Monocyte", "Dendritic"]).sum()
    # cells set from Python
    w.selection = np.arange(5)
    assert w.current_selection["kind"] == "cells" and w.current_selection["count"] == 5
    w.clear_selection()
    assert w.current_selection["kind"] == "none"


def test_annotator_cluster_toggles_and_lasso_are_exclusive(pbmc_graph):
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)
    cp, sc = ann.clusters, ann.scatter
    cp.select(["0", "1"])
    assert sc.current_selection["kind"] == "clusters"
    assert sc.current_selection["count"] == pbmc_graph.obs["leiden"].isin(["0", "1"]).sum()
    inside = np.flatnonzero(sc.normalized_coords[:, 0] < 0)
    _page_lasso(sc, inside, LEFT_HALF)
    # the lasso is now the one selection: toggles off, highlight gone
    assert cp.selected == [] and sc._highlight == b""
    assert sc.current_selection["kind"] == "lasso" and sc.current_selection["count"] == inside.size
    cp.select(["2"])
    assert len(sc.selection) == 0 and sc.current_selection["kind"] == "clusters"
    assert cp.selected == ["2"]


def test_second_lasso_on_the_same_points_is_kept(pbmc):
    # Backbone sends only changed attributes: the second lasso (and a Clear) on the same
    # points arrive without _selection_generation and must not be refused as stale
    w = UmapScatter(pbmc, color="bulk_labels")
    inside = np.flatnonzero(w.normalized_coords[:, 0] < 0)
    _page_lasso(w, inside, LEFT_HALF)
    w.set_state({"selection": memoryview(encode_selection_buffer([], w._n)), "_polygon": memoryview(b"")})
    assert w.error == "" and w.current_selection["kind"] == "none"
    w.set_state({"selection": memoryview(encode_selection_buffer(inside[:7], w._n)),
                 "_polygon": memoryview(np.asarray(LEFT_HALF, dtype="<f4").tobytes())})
    assert w.error == "" and w.current_selection == {"kind": "lasso", "count": 7, "description": "lasso: 7 cells"}


# ------------------------------------------------------------------ item 11: one colour box
def test_one_colour_box_errors_in_the_status_line(pbmc_graph):
    ann = em.Annotator(pbmc_graph, key="leiden", basis="umap", background=False)
    sc = ann.scatter
    # the marker panel has no gene box of its own
    assert not hasattr(ann.markers, "gene_text") and not hasattr(ann.markers, "gene_button")
    assert sc.inline_errors is False  # the page shows no second error line
    sc._on_custom_msg(sc, {"type": "color_by", "key": "NOT_A_GENE"}, [])
    assert ann.status_kind == "error" and "NOT_A_GENE" in ann.status_text
    # a success from the search box is reported there too
    sc._on_custom_msg(sc, {"type": "color_by", "key": "cd79a"}, [])
    assert sc.color == "CD79A"
    assert ann.status_kind == "ok" and "CD79A" in ann.status_text
    # the same mistake twice is reported twice
    sc._on_custom_msg(sc, {"type": "color_by", "key": "NOT_A_GENE"}, [])
    ann._set_status("something else", "info")
    sc._on_custom_msg(sc, {"type": "color_by", "key": "NOT_A_GENE"}, [])
    assert ann.status_kind == "error" and "NOT_A_GENE" in ann.status_text


def test_standalone_scatter_keeps_inline_errors(pbmc):
    w = UmapScatter(pbmc, color=None)
    assert w.inline_errors is True
    w._on_custom_msg(w, {"type": "color_by", "key": "nope"}, [])
    assert "nope" in w.error


# ------------------------------------------------------------------ a page event beside an action
def test_colour_by_from_the_page_during_an_exclusion_leaves_fresh_codes(pbmc, monkeypatch):
    # the soak's race: the page colours by a gene (comm thread) while an action excludes cells
    # and refreshes the scatter (worker thread); the colour read the cells before the
    # exclusion and must not write its codes over the refresh's
    import threading

    w = UmapScatter(pbmc, basis="umap", color="bulk_labels")
    gene = str(pbmc.var_names[0])
    read, release = threading.Event(), threading.Event()
    real = scmod.feature

    def slow_feature(a, key, **kw):
        out = real(a, key, **kw)
        if key == gene:  # read the 700 cells, then wait while the exclusion happens
            read.set()
            release.wait(10)
        return out

    monkeypatch.setattr(scmod, "feature", slow_feature)
    page = threading.Thread(target=w.color_by, args=(gene,))
    page.start()
    assert read.wait(10)
    em.exclude(pbmc, "bulk_labels", ["Dendritic"])
    threading.Timer(0.3, release.set).start()
    w.refresh()  # the action's refresh: waits for the page's colour, then writes last
    page.join(10)
    assert w.color == gene
    assert len(w._codes) == 2 * pbmc.n_obs
    assert w._n == pbmc.n_obs
