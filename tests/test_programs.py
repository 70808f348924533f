"""cNMF programs after extraction: colouring by ``obsm`` columns (one look-up for pl and the
scatter), the top genes of each program and the recorded labelling by dominant program."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import exprmat_widgets as em  # noqa: E402
from exprmat_widgets._access import feature, obsm_feature_names  # noqa: E402
from exprmat_widgets.errors import ExprmatError, MissingKeyError  # noqa: E402
from exprmat_widgets.history import fingerprint, get_records, raw_records  # noqa: E402


@pytest.fixture(scope="module")
def programs():
    """700 real PBMC (counts), a kNN/UMAP, cNMF for k in (3, 4) and extraction of k=4."""
    a = em.datasets.pbmc68k_counts()
    a.layers["counts"] = a.X.copy()
    sc.pp.filter_genes(a, min_cells=3)
    b = a.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, flavor="seurat", n_top_genes=300)
    a.var["vst.all.hvg"] = b.var["highly_variable"].values
    a.layers["norm"] = b.X.expm1() if sp.issparse(b.X) else np.expm1(b.X)
    sc.pp.pca(b, n_comps=10, random_state=0)
    a.obsm["X_pca"] = b.obsm["X_pca"]
    start = a.copy()
    em.knn(a, use_rep="X_pca", n_neighbors=10, random_state=0)
    em.umap(a, random_state=0)
    em.consensus_nmf(a, ks=[3, 4], n_iter=5, random_state=1, progress=False)
    em.consensus_nmf_extract_k(a, k=4)
    return start, a


def _state(adata):
    return (list(adata.obs.columns), {k: fingerprint(adata.obs[k]) for k in adata.obs.columns},
            sorted(adata.uns.keys()), list(raw_records(adata)))


def test_feature_reads_obsm_columns(programs):
    a = programs[1]
    usage = a.obsm["cnmf.4"]
    assert list(usage.columns) == ["1", "2", "3", "4"]  # program 1 first, as extraction numbers them
    values, kind, cats = feature(a, "cnmf.4:3")
    assert kind == "continuous" and cats is None
    np.testing.assert_array_equal(values, usage["3"].to_numpy(dtype=float))
    values, kind, _ = feature(a, "X_pca:0")  # arrays: 0-based positions
    np.testing.assert_array_equal(values, a.obsm["X_pca"][:, 0].astype(float))
    values, _, _ = feature(a, "X_umap:1")
    np.testing.assert_array_equal(values, a.obsm["X_umap"][:, 1].astype(float))
    # a bare obsm key names its columns
    with pytest.raises(MissingKeyError, match=r"cnmf\.4 has 4 programs: cnmf\.4:1 \.\.\. cnmf\.4:4"):
        feature(a, "cnmf.4")
    with pytest.raises(MissingKeyError, match=r"X_pca has 10 columns: X_pca:0 \.\.\. X_pca:9"):
        feature(a, "X_pca")
    with pytest.raises(MissingKeyError, match=r"no column '9'.*4 programs"):
        feature(a, "cnmf.4:9")
    # a plain DataFrame column name counts when one obsm table has it, else says which
    b = a.copy()
    b.obsm["other"] = pd.DataFrame({"score": np.arange(b.n_obs, dtype=float)}, index=b.obs_names)
    np.testing.assert_array_equal(feature(b, "score")[0], np.arange(b.n_obs, dtype=float))
    b.obsm["other2"] = pd.DataFrame({"score": np.ones(b.n_obs)}, index=b.obs_names)
    with pytest.raises(MissingKeyError, match=r"several obsm tables.*other:score"):
        feature(b, "score")
    # obs columns and genes still win
    assert feature(a, a.var_names[0])[1] == "continuous"
    names = obsm_feature_names(a)
    assert "cnmf.4:1" in names and "X_pca:9" in names and "X_umap:0" in names


def test_plot_embedding_and_scatter_colour_by_program(programs):
    a = programs[1].copy()
    # em.plot_embedding reads the usage as it reads the same values from an obs column
    a.obs["usage.3"] = a.obsm["cnmf.4"]["3"].to_numpy()

    def pixels(color):
        fig = em.plot_embedding(a, basis="umap", color=color, random_state=0)
        for ax in fig.axes:
            ax.set_title("")
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba()).copy()

    by_obsm, by_obs = pixels("cnmf.4:3"), pixels("usage.3")
    assert by_obsm.shape == by_obs.shape and (by_obsm == by_obs).all()
    assert not (pixels("cnmf.4:1") == by_obs).all()
    from exprmat_widgets.widgets.scatter import UmapScatter

    w = UmapScatter(a, basis="umap", color=None)
    assert "cnmf.4:3" in w._keys and "X_pca:0" in w._keys
    w.color_by("cnmf.4:3")
    assert w.color == "cnmf.4:3" and w._legend["kind"] == "continuous"
    assert w._legend["vmax"] == pytest.approx(float(a.obsm["cnmf.4"]["3"].max()))
    codes = np.frombuffer(w._codes, dtype="<u2")
    assert codes[np.argmax(a.obsm["cnmf.4"]["3"].to_numpy())] == 255
    w.refresh()  # the obsm column survives a refresh
    assert w.color == "cnmf.4:3"
    with pytest.raises(MissingKeyError, match="cnmf.4 has 4 programs"):
        w.color_by("cnmf.4")


def test_label_by_program(programs):
    a = programs[1].copy()
    before = _state(a)
    counts = em.label_by_program(a, usage_key="cnmf.4", min_usage=0.5)
    col = a.obs["cnmf.4.program"]
    U = a.obsm["cnmf.4"].to_numpy()
    want = np.where(U.max(axis=1) >= 0.5, np.asarray(["1", "2", "3", "4"], dtype=object)[U.argmax(axis=1)], None)
    assert list(col.astype(object).where(col.notna(), None)) == list(want)
    assert isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == sorted(set(want) - {None})
    assert len(a.uns["cnmf.4.program_colors"]) == len(col.cat.categories)
    assert int(counts.sum()) == int(col.notna().sum())
    rec = get_records(a)[-1]
    assert rec["command"] == "label_by_program" and rec["params"]["usage_key"] == "cnmf.4"
    assert {"obs:cnmf.4.program", "uns:cnmf.4.program_colors"} <= set(rec["output"])
    # bad input: a message with the fix, nothing changed
    b = a.copy()
    before = _state(b)
    for kwargs, needle in [({"usage_key": "cnmf.9"}, "consensus_nmf_extract_k"),
                           ({"usage_key": "cnmf.4", "min_usage": 2.0}, "lower min_usage"),
                           ({"usage_key": "cnmf.4", "min_usage": -1}, "min_usage must be >= 0"),
                           ({"usage_key": "cnmf.4", "key_added": ""}, "key_added")]:
        with pytest.raises(ExprmatError, match=needle):
            em.label_by_program(b, **kwargs)
        assert _state(b) == before
    # replay from the start data repeats the labels exactly
    start = programs[0]
    out = em.replay(start, a)
    assert (out.obs["cnmf.4.program"].astype(str) == a.obs["cnmf.4.program"].astype(str)).all()
    assert "em.label_by_program(" in em.history_to_script(a)


def test_program_top_genes(programs):
    a = programs[1]
    top = em.program_top_genes(a, "cnmf.4", n_genes=5)
    assert list(top.columns) == ["1", "2", "3", "4"] and list(top.index) == [1, 2, 3, 4, 5]
    coef = a.varm["cnmf.coef.4"]
    for j, p in enumerate(top.columns):
        want = list(a.var_names[np.argsort(-coef[:, j], kind="stable")[:5]])
        assert list(top[p]) == want
    with pytest.raises(MissingKeyError, match="consensus_nmf_extract_k"):
        em.program_top_genes(a, "cnmf.7")


def test_panel_lists_programs_colours_and_labels(programs):
    a = programs[1].copy()
    ann = em.Annotator(a, key="bulk_labels", basis="umap", background=False)
    an = ann.analysis
    assert an.usage_key() is None and an.programs_box.children == ()
    assert an.label_programs_button in ann.action_buttons
    an.cnmf_k.value = "3"  # run but not extracted
    an.label_programs_button.click()
    assert ann.status_kind == "error" and "Extract k first" in ann.status_text
    an.cnmf_k.value = "4"
    an.refresh()
    assert an.usage_key() == "cnmf.4" and list(an.program_buttons) == ["1", "2", "3", "4"]
    pd.testing.assert_frame_equal(an.program_genes, em.program_top_genes(a, "cnmf.4", n_genes=10))
    assert an.program_genes["2"].iloc[0] in an.programs_box.children[1].children[1].value
    an.program_buttons["3"].click()
    assert ann.scatter.color == "cnmf.4:3" and ann.scatter._legend["kind"] == "continuous"
    assert "cnmf.4:3" in ann.status_text and "obsm column cnmf.4:3" in ann.clusters.color_info.value
    an.min_usage.value = 0.4
    an.label_programs_button.click()
    assert ann.last_error is None, ann.last_error
    rec = get_records(a)[-1]
    assert rec["command"] == "label_by_program"
    assert rec["params"] == {"usage_key": "cnmf.4", "key_added": "cnmf.4.program", "min_usage": 0.4}
    want = a.obsm["cnmf.4"].to_numpy()
    assert int(a.obs["cnmf.4.program"].notna().sum()) == int((want.max(axis=1) >= 0.4).sum())
    # the new column is the clusters listed and shown
    assert ann.clusters.key == "cnmf.4.program" and ann.scatter.color == "cnmf.4.program"
    assert sum(ann.clusters.counts.values()) == int(a.obs["cnmf.4.program"].notna().sum())
    # undo takes the labels away; the list of programs stays (the extraction is still there)
    ann.history.undo_button.click()
    assert "cnmf.4.program" not in a.obs.columns and list(an.program_buttons) == ["1", "2", "3", "4"]


def test_annotator_opens_without_embedding():
    """Raw counts, no embedding, no clusters: the scatter says what to do; Preprocess and
    Embed by clicking draw the UMAP; Leiden fills the cluster panel."""
    adata = em.datasets.pbmc_2samples()
    assert "X_umap" not in adata.obsm and "leiden" not in adata.obs.columns
    ann = em.Annotator(adata, background=False)
    sc_ = ann.scatter
    assert sc_._n == 0 and sc_._coords == b"" and "No embedding yet" in sc_.empty_message
    assert "Analysis tab" in sc_.empty_message
    assert "does not exist yet" in ann.clusters.summary.value and ann.clusters.key == "leiden"
    assert ann.clusters.color_key_button.layout.display == "none"  # no clusters to colour by yet
    an = ann.analysis
    an.keep_counts_button.click()
    an.normalize_button.click()
    an.log1p_button.click()
    an.hvg_n.value = 500
    an.hvg_button.click()
    an.pca_n.value = 10
    an.pca_button.click()
    assert ann.last_error is None, ann.last_error
    assert sc_._n == 0 and sc_.empty_message  # PCA is no 2-D embedding
    an.use_rep.value = "X_pca"
    an.knn_button.click()
    an.umap_button.click()
    assert ann.last_error is None, ann.last_error
    assert sc_.empty_message == "" and sc_._n == adata.n_obs
    assert sc_._emb_source is adata.obsm["X_umap"]
    assert abs(float(np.abs(sc_.normalized_coords).max()) - 0.95) < 1e-4  # fitted to the new UMAP
    an.leiden_button.click()
    assert ann.last_error is None, ann.last_error
    assert ann.clusters.key_dropdown.value == "leiden" and ann.scatter.color == "leiden"
    assert sum(ann.clusters.counts.values()) == adata.n_obs
    assert [r["command"] for r in get_records(adata)] == [
        "derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca", "knn", "umap", "leiden"]
    # undo the UMAP (and Leiden): the empty state comes back
    ann.history.undo_button.click()
    ann.history.undo_button.click()
    assert "X_umap" not in adata.obsm and sc_._n == 0 and "No embedding yet" in sc_.empty_message


def test_annotator_basis_typo_still_refused(programs):
    a = programs[1].copy()
    with pytest.raises(MissingKeyError, match=r"2-D embeddings here are \['X_umap'\]"):
        em.Annotator(a, key="bulk_labels", basis="tsne", background=False)
