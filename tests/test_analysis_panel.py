"""The Annotator's analysis panel from Python: preprocessing from raw counts, re-embedding
after an exclusion, clustering all cells, the composition table, replay of every click,
and bad input (refused by the core routines: status line error, nothing changed)."""

import numpy as np
import pandas as pd
import pytest

import exprmat_widgets as em
from exprmat_widgets.history import fingerprint, get_records, raw_records
from exprmat_widgets.tl.nmf_consensus import available_cores


@pytest.fixture(scope="module")
def opened():
    """400 real PBMC of two samples, raw counts; a first rough UMAP and Leiden (PCA of the
    counts) so the Annotator has something to show; every step is recorded from the raw
    counts (``start``), so a replay starts there."""
    start = em.datasets.pbmc_2samples()
    start.obs["one.batch"] = pd.Categorical(["b"] * start.n_obs)
    adata = start.copy()
    em.pca(adata, n_comps=10, mask_var=None, random_state=0)
    em.knn(adata, use_rep="X_pca", n_neighbors=10, random_state=0)
    em.umap(adata, random_state=0)
    em.leiden(adata, resolution=0.5, random_state=0)
    return start, adata


def _state(adata):
    return (
        fingerprint(adata.X), sorted(adata.layers.keys()), list(adata.var.columns),
        sorted(adata.obsm.keys()), list(adata.obs.columns), list(raw_records(adata)), adata.n_obs,
    )


def _ok(ann, name):
    assert ann.last_error is None, ann.last_error
    assert ann.status_kind in ("ok", "warn") and ann.status_text.startswith(f"{name} done"), ann.status_text
    assert get_records(ann.adata)[-1]["command"] == name


def _refused(ann, click, *needles):
    before = _state(ann.adata)
    click()
    ann.wait()
    assert ann.status_kind == "error", ann.status_text
    for n in needles:
        assert n in ann.status_text, (n, ann.status_text)
    assert _state(ann.adata) == before
    assert not any(b.disabled for b in ann.action_buttons)


def test_workbench_from_raw_counts_replays(opened):
    start, adata = opened[0], opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", start=start, background=False)
    an = ann.analysis
    assert all(b in ann.action_buttons for b in an.buttons)
    assert an.widget in ann.children
    x0 = adata.X

    an.keep_counts_button.click()
    _ok(ann, "derive_layer")
    assert (adata.layers["counts"] != x0).nnz == 0
    an.target_sum.value = 1e4
    an.normalize_button.click()
    _ok(ann, "normalize_total")
    an.log1p_button.click()
    _ok(ann, "log1p")
    assert adata.X is not x0 and np.allclose(np.expm1(adata.X[:5].toarray()).sum(axis=1), 1e4, rtol=1e-3)

    # seurat_v3 on the log data in X: the core says to pass the counts layer
    an.hvg_flavor.value = "seurat_v3"
    assert an.hvg_layer.value == "counts"  # seurat_v3 reads the counts by default
    an.hvg_layer.value = "X"
    _refused(ann, an.hvg_button.click, "needs raw counts", "layer='counts'")
    an.hvg_flavor.value = "seurat"
    assert an.hvg_layer.value == "X"
    an.hvg_n.value = 800
    an.hvg_key.value = "vst.all.hvg"
    an.hvg_button.click()
    _ok(ann, "highly_variable_genes")
    assert int(adata.var["vst.all.hvg"].sum()) == 800
    assert an.pca_mask.value == "vst.all.hvg" == an.cnmf_hvg.value  # the flags just made
    an.pca_n.value = 20
    an.pca_button.click()
    _ok(ann, "pca")
    assert adata.obsm["X_pca"].shape == (400, 20)

    an.batch_key.value = "one.batch"
    _refused(ann, an.harmony_button.click, "single batch", "one.batch")
    an.batch_key.value = "sample"
    an.harmony_button.click()
    _ok(ann, "harmony")

    # embedding of the preprocessed data: the scatter shows the new UMAP
    assert an.use_rep.value == "harmony" == an.sc3_basis.value and "X_umap" not in an.use_rep.options
    an.n_neighbors.value = 10
    an.knn_button.click()
    _ok(ann, "knn")
    assert get_records(adata)[-1]["params"]["use_rep"] == "harmony"
    an.min_dist.value = 0.3
    an.umap_button.click()
    _ok(ann, "umap")
    assert ann.scatter._emb_source is adata.obsm["X_umap"]
    assert an.reembed_button.layout.display == "none"

    an.resolution.value = 0.8
    an.leiden_key.value = "clusters"
    an.leiden_button.click()
    _ok(ann, "leiden")
    cp = ann.clusters
    assert "clusters" in cp.key_dropdown.options and cp.key == "clusters"
    assert cp.counts == {str(k): int(n) for k, n in adata.obs["clusters"].value_counts().items()}
    assert ann.scatter.color == "clusters"

    # labelling: the composition table follows the label column
    cp.select(["0"])
    cp.label_text.value = "A"
    cp.label_button.click()
    _ok(ann, "label_cells")
    assert an.minor.value == "cell.type" and an.major.value == "sample"
    pd.testing.assert_frame_equal(an.composition, em.proportion(adata, "sample", "cell.type"))
    assert "sample" in an.table.value and "A" in an.table.value

    # an exclusion makes the embedding out of date; Re-embed runs kNN, then UMAP
    cp.select(["1"])
    n_drop = int((adata.obs["clusters"] == "1").sum())
    cp.exclude_button.click()
    _ok(ann, "exclude")
    assert adata.n_obs == 400 - n_drop
    assert "predate" in an.stale.value and "exclude" in an.stale.value
    assert an.reembed_button.layout.display is None and an.reembed_button.description == "Re-embed: kNN"
    pd.testing.assert_frame_equal(an.composition, em.proportion(adata, "sample", "cell.type"))
    old_umap = adata.obsm["X_umap"]
    an.reembed_button.click()
    _ok(ann, "knn")
    assert an.reembed_button.description == "Re-embed: UMAP" and "UMAP predate" in an.stale.value
    an.reembed_button.click()
    _ok(ann, "umap")
    assert "predate" not in an.stale.value and an.reembed_button.layout.display == "none"
    assert adata.obsm["X_umap"] is not old_umap and adata.obsm["X_umap"].shape == (adata.n_obs, 2)
    assert ann.scatter._emb_source is adata.obsm["X_umap"]

    # every click is one command, and a replay from the raw counts gives the same data
    cmds = [r["command"] for r in get_records(adata)]
    assert cmds[4:] == ["derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca", "harmony",
                        "knn", "umap", "leiden", "label_cells", "exclude", "knn", "umap"]
    out = em.replay(start, adata)
    assert list(out.obs_names) == list(adata.obs_names)
    for k in ("clusters", "cell.type"):
        assert (out.obs[k].astype(str) == adata.obs[k].astype(str)).all(), k
    for k in ("harmony", "X_umap"):
        np.testing.assert_array_equal(out.obsm[k], adata.obsm[k])


def test_clustering_and_bad_input(opened):
    adata = opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", background=False)
    an = ann.analysis
    an.sc3_basis.value = "X_pca"
    for ks, needle in [("1", "between 2 and"), ("5,4000", "between 2 and"), ("five", "whole numbers")]:
        an.sc3_ks.value = ks
        _refused(ann, an.sc3_button.click, "sc3", needle)
    an.sc3_ks.value = "3,5"
    an.sc3_button.click()
    _ok(ann, "sc3")
    assert {"sc3.3", "sc3.5"} <= set(ann.clusters.key_dropdown.options)
    assert ann.clusters.key == "sc3.3" and len(ann.clusters.counts) == 3
    # the clusters of the composition table are any obs columns
    an.minor.value = "sc3.5"
    pd.testing.assert_frame_equal(an.composition, em.proportion(adata, "sample", "sc3.5"))
    an.normalize.value = "cell counts"
    assert an.composition.to_numpy().sum() == adata.n_obs
    an.leiden_key.value = ""
    _refused(ann, an.leiden_button.click, "leiden", "type the obs column")
    an.hvg_flavor.value = "seurat"  # X holds raw counts here
    _refused(ann, an.hvg_button.click, "holds raw counts", "em.normalize_total")
    an.pca_mask.value = "(all genes)"
    an.pca_n.value = 5
    an.pca_button.click()
    _ok(ann, "pca")
    assert get_records(adata)[-1]["params"]["mask_var"] is None


def test_background_actions(opened):
    adata = opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", background=True)
    an = ann.analysis
    an.normalize_button.click()
    assert ann.busy or ann.status_kind == "ok"
    an.log1p_button.click()  # refused while normalisation runs, or run after it
    ann.wait(120)
    if get_records(adata)[-1]["command"] != "log1p":
        an.log1p_button.click()
        ann.wait(120)
    _ok(ann, "log1p")
    assert [r["command"] for r in get_records(adata)][-2:] == ["normalize_total", "log1p"]
    _refused(ann, an.log1p_button.click, "already log-transformed")
    an.batch_key.value = "one.batch"
    _refused(ann, an.harmony_button.click, "single batch")
    an.batch_key.value = "sample"
    an.harmony_button.click()
    ann.wait(120)
    _ok(ann, "harmony")
    an.use_rep.value = "harmony"
    an.knn_button.click()
    ann.wait(120)
    _ok(ann, "knn")
    an.umap_button.click()
    ann.wait(120)
    _ok(ann, "umap")
    assert ann.scatter._emb_source is adata.obsm["X_umap"]
    # an exclusion in the background: the notice comes with the refresh after it
    ann.clusters.select(["0"])
    ann.clusters.exclude_button.click()
    ann.wait(120)
    _ok(ann, "exclude")
    assert an.reembed_button.description == "Re-embed: kNN" and "predate" in an.stale.value
    for name in ("knn", "umap"):
        an.reembed_button.click()
        ann.wait(120)
        _ok(ann, name)
    assert an.reembed_button.layout.display == "none"
    assert ann.scatter._emb_source is adata.obsm["X_umap"] and len(adata.obsm["X_umap"]) == adata.n_obs < 400


def test_cnmf_run_pick_k_extract(opened):
    adata = opened[1].copy()
    em.normalize_total(adata)
    em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=300, key_added="vst.all.hvg")
    ann = em.Annotator(adata, key="leiden", basis="umap", background=False)
    an = ann.analysis
    assert an.cnmf_k.options == () and an.counts_layer.value == "counts"
    _refused(ann, an.extract_button.click, "run cNMF first")
    an.cnmf_ks.value = "3,4"
    an.cnmf_iter.value = 5
    an.cnmf_hvg.value = "vst.all.hvg"
    _refused(ann, an.cnmf_button.click, "consensus_nmf", "'norm'")  # no linear layer yet
    an.tpm_button.click()
    _ok(ann, "derive_layer")
    np.testing.assert_allclose(adata.layers["norm"].data, np.expm1(adata.X.data))
    an.cnmf_ks.value = "1"
    _refused(ann, an.cnmf_button.click, "consensus_nmf")
    an.cnmf_ks.value = "3,4"
    cores = available_cores()
    # one core is left to the kernel by default; the box holds no more than there are
    assert an.cnmf_threads.value == max(1, cores - 1) and an.cnmf_threads.max == cores
    an.cnmf_threads.value = cores
    an.cnmf_button.click()
    _ok(ann, "consensus_nmf")
    assert get_records(adata)[-1]["params"]["ncpus"] == cores  # recorded like any parameter
    assert list(an.cnmf_k.options) == ["3", "4"] and "stability" in an.cnmf_stats.value
    # the choice-of-k plot beside the table: one line per statistic, one point per k, drawn
    # from uns['cnmf.stats'] (the highest stability at the top of its axis)
    svg = an.cnmf_stats.value
    assert svg.count('data-series="stability"') == 1 and svg.count('data-series="error"') == 1
    assert svg.count("<circle") == 2 * 2
    stats = ann.adata.uns["cnmf.stats"]
    top = f">{stats['stability'].max():.3g}</text>"
    assert top in svg
    an.cnmf_k.value = "4"
    an.extract_button.click()
    _ok(ann, "consensus_nmf_extract_k")
    usage = adata.obsm["cnmf.4"]
    assert usage.shape == (adata.n_obs, 4) and np.allclose(usage.to_numpy().sum(axis=1), 1)
    assert get_records(adata)[-2]["params"]["ks"] == [3, 4]


def test_undo_of_an_exclusion_clears_the_notice(opened):
    adata = opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", background=False)
    an = ann.analysis
    assert an.reembed_button.layout.display == "none" and "current cells" in an.stale.value
    ann.clusters.select(["0"])
    ann.clusters.exclude_button.click()
    _ok(ann, "exclude")
    assert "kNN graph and UMAP predate" in an.stale.value and "step 5 (exclude)" in an.stale.value
    assert an.minor.value == "leiden" and "0" not in an.composition.columns
    ann.history.undo_button.click()
    ann.wait()
    assert ann.last_error is None and adata.n_obs == 400
    assert an.reembed_button.layout.display == "none" and "predate" not in an.stale.value
    assert "0" in an.composition.columns
    pd.testing.assert_frame_equal(an.composition, em.proportion(adata, "sample", "leiden"))


def test_fast_umap_option_is_recorded_and_replays(opened, monkeypatch):
    from exprmat_widgets.widgets import analysis_panel

    start, adata = opened[0], opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", start=start, background=False)
    an = ann.analysis
    assert an.umap_mode.value == "default" and an.umap_subsample.layout.display == "none"
    assert an.umap_note.value == ""  # 400 cells: nothing to say
    an.umap_mode.value = "fast"
    assert an.umap_subsample.layout.display is None and "subsample" in an.umap_mode.tooltip
    # too many cells for the data: the routine's message in the status line, nothing changed
    an.umap_subsample.value = 400
    _refused(ann, an.umap_button.click, "smaller than the number of cells")
    an.umap_subsample.value = 150
    an.umap_button.click()
    ann.wait()
    _ok(ann, "umap")
    assert get_records(adata)[-1]["params"]["subsample"] == 150
    out = em.replay(start, adata)
    np.testing.assert_array_equal(out.obsm["X_umap"], adata.obsm["X_umap"])
    # a large data set (here: the threshold lowered to these cells) gets both estimates
    monkeypatch.setattr(analysis_panel, "_SLOW_CELLS", 100)
    an.umap_subsample.value = 200
    an.refresh(None)
    note = an.umap_note.value
    assert "400 cells" in note and "with the default" in note and "of 200 cells" in note
    an.umap_mode.value = "default"
    assert "of 200 cells" in an.umap_note.value and an.umap_subsample.layout.display == "none"


def test_composition_names_the_samples_without_labelled_cells(opened):
    adata = opened[1].copy()
    ann = em.Annotator(adata, key="leiden", basis="umap", background=False)
    an = ann.analysis
    samples = list(adata.obs["sample"].cat.categories)
    # label only cells of the first sample: the second has cells, but no row in the table
    em.label_cells(adata, key="cell.type", cells=adata.obs_names[adata.obs["sample"] == samples[0]][:50],
                   label="T")
    ann.refresh()
    an.minor.value = "cell.type"
    an._refresh_composition()
    assert list(an.composition.index) == [samples[0]]
    assert "no row for sample" in an.table.value and samples[1] in an.table.value
    # once it has a labelled cell, its row is there and the note is gone
    em.label_cells(adata, key="cell.type", cells=adata.obs_names[adata.obs["sample"] == samples[1]][:5],
                   label="B")
    an._refresh_composition()
    assert list(an.composition.index) == samples and "no row for" not in an.table.value
