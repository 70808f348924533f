"""Experiment: samples + integrated data + subsets, save / load, the modality accessor,
and the tutorial's calls as written."""

import functools
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import exprmat_widgets as em
from exprmat_widgets.experiment import Experiment, Modality, example_experiment


@pytest.fixture(scope="module")
def _expm():
    return example_experiment()


@pytest.fixture
def expm(_expm):
    e = Experiment(_expm["rna"].copy(), {k: s.copy() for k, s in _expm.samples.items()})
    return e


def test_example_experiment_is_the_shipped_two_samples(_expm):
    raw = em.datasets.pbmc_2samples()
    a = _expm["rna"]
    assert list(_expm.samples) == ["pbmc_5k", "pbmc_10k"]
    assert sum(s.n_obs for s in _expm.samples.values()) == a.n_obs == raw.n_obs
    assert set(a.obs_names) == set(raw.obs_names)
    assert list(a.obs["sample"].cat.categories) == list(_expm.samples)
    for name, s in _expm.samples.items():
        assert (a.obs["sample"] == name).sum() == s.n_obs
    # counts kept, X normalised + log1p, Harmony-corrected PCA
    counts = a.layers["counts"]
    assert np.array_equal(counts[:5].toarray(), raw[a.obs_names[:5]].X.toarray())
    tot = np.expm1(a.X[:5]).sum(axis=1)
    assert np.allclose(tot, 1e4, rtol=1e-3)
    # Harmony on the PCA: same shape, batch means pulled together, deterministic
    h, pca = a.obsm["harmony"], np.asarray(a.obsm["X_pca"])
    assert h.shape == (a.n_obs, 30) and h.dtype == np.float32 and not np.allclose(h, pca)
    s5 = (a.obs["sample"] == "pbmc_5k").to_numpy()

    def gap(x):
        return np.linalg.norm(x[s5].mean(axis=0) - x[~s5].mean(axis=0)) / np.linalg.norm(x.std(axis=0))

    assert gap(h) < 0.5 * gap(pca)
    again = Experiment.from_samples(_expm.samples)["rna"].obsm["harmony"]
    assert np.array_equal(again, h)
    single = Experiment.from_samples({"pbmc_5k": _expm.samples["pbmc_5k"]})["rna"]  # nothing to correct
    assert np.array_equal(single.obsm["harmony"], np.asarray(single.obsm["X_pca"], dtype=np.float32))
    assert a.var["vst.all.hvg"].dtype == bool and a.var["vst.all.hvg"].sum() == 2000
    assert "gene" in a.var


def test_modality_binds_routines_lazily(expm, monkeypatch):
    m = expm.rna
    assert isinstance(m, Modality)
    f = m.leiden
    assert isinstance(f, functools.partial) and f.func is em.tl.leiden and f.args[0] is expm["rna"]
    assert m.plot_embedding.func is em.pl.plot_embedding
    # a routine that appears later (another module, a reload) is found at call time
    def late(adata, x=1):
        return adata.n_obs + x

    monkeypatch.setattr(em.tl, "late_routine", late, raising=False)
    monkeypatch.setattr(em.tl, "__all__", [*em.tl.__all__, "late_routine"])
    assert expm.rna.late_routine(x=2) == expm["rna"].n_obs + 2
    with pytest.raises(AttributeError, match="no routine 'nonexistent'"):
        _ = expm.rna.nonexistent
    seen = {}

    class FakeAnnotator:
        def __init__(self, adata, **kw):
            seen["adata"], seen["kw"] = adata, kw

    monkeypatch.setitem(vars(em), "Annotator", FakeAnnotator)
    expm.rna.annotator(key="leiden", basis="umap")
    assert seen["adata"] is expm["rna"]
    assert seen["kw"] == {"key": "leiden", "basis": "umap", "experiment": expm, "slot": "rna"}
    assert "leiden" in dir(expm.rna) and "annotator" in dir(expm.rna)
    with pytest.raises(em.MissingKeyError, match="modality 'atac'"):
        expm["atac"]


def test_tutorial_calls_as_written(expm, tmp_path, capsys):
    d = tmp_path / "expm" / "scrna"
    expm.save(d)
    expm = em.load_experiment(d)
    assert list(expm.samples) == ["pbmc_5k", "pbmc_10k"]  # in the order of obs['sample']
    expm.rna.knn(use_rep="harmony", n_comps=None, n_neighbors=30, knn=True, method="umap",
                 transformer=None, metric="euclidean", metric_kwds={}, random_state=42, key_added="neighbors")
    expm.rna.umap(min_dist=0.4, spread=0.9, n_components=2, maxiter=None, alpha=1, gamma=1,
                  negative_sample_rate=5, init_pos="spectral", random_state=42, a=None, b=None,
                  key_added="umap", neighbors_key="neighbors")
    expm.rna.leiden(resolution=0.8, restrict_to=None, random_state=42, key_added="leiden", adjacency=None,
                    directed=None, use_weights=True, n_iterations=2, partition_type=None,
                    neighbors_key=None, obsp=None, flavor="igraph")
    expm["rna"].layers["norm"] = em.np.expm1(expm["rna"].X)
    assert sp.issparse(expm["rna"].layers["norm"])
    expm.save()
    assert (d / "integrated.h5ad").exists() and (d / "samples" / "pbmc_5k.h5ad").exists()
    cats = list(expm["rna"].obs["leiden"].cat.categories)
    assert len(cats) >= 4
    keep = cats[:-1]
    expm.build_subset(subset_name="mono-neutro", slot="rna", keys=["leiden"], values=[keep])
    n_sub = int(expm["rna"].obs["leiden"].isin(keep).sum())
    assert f"selected {n_sub} observations from {expm['rna'].n_obs}" in capsys.readouterr().err
    assert (d / "subsets" / "mono-neutro.h5ad").exists()

    expm = em.load_experiment(d, load_samples=False, load_subset="mono-neutro")
    assert expm["rna"].n_obs == n_sub and not expm.samples
    n_left = n_sub - int((expm["rna"].obs["leiden"] == keep[0]).sum())
    expm.rna.exclude(annotation="leiden", remove=[keep[0]])
    assert f"keep {expm['rna'].n_obs} observations from {n_sub}" in capsys.readouterr().err
    assert expm["rna"].n_obs == n_left
    rest = list(expm["rna"].obs["leiden"].cat.categories)
    counts = expm.rna.annotate(annotation="cell.type", cluster="leiden", mapping={
        "A": [int(rest[0])], "B": [int(c) for c in rest[1:3]], "C": rest[3:]})
    assert isinstance(counts, pd.Series) and counts.sum() == expm["rna"].n_obs
    prop = expm.rna.proportion(major="sample", minor="cell.type", normalize="index")["integrated"]
    assert np.allclose(prop.sum(axis=1), 1) and prop.index.name == "sample"
    text = str(expm)
    assert f"subset mono-neutro of size {expm['rna'].n_obs} × {expm['rna'].n_vars}" in text
    assert "cell.type <cat>" in text and "leiden <cat>" in text and "norm <csr:f32>" in text
    assert "X_umap <arr:f32(2)>" in text and "connectivities <csr:f32>" in text
    assert "[*] samples not loaded from disk." in text
    expm.save()
    back = em.load_experiment(d, load_samples=False, load_subset="mono-neutro")
    assert back["rna"].obs["cell.type"].equals(expm["rna"].obs["cell.type"])
    assert [json.loads(r)["command"] for r in back["rna"].uns["commands"]] == [
        "derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca", "harmony",
        "knn", "umap", "leiden", "subset_cells", "exclude", "annotate"]  # from the samples' counts
    # the full integrated data are untouched on disk
    full = em.load_experiment(d, load_samples=True)
    assert full["rna"].n_obs == 400 and "cell.type" not in full["rna"].obs
    assert "[*] composed of samples:" in str(full) and "pbmc_5k rna of size 200 × 15792" in str(full)


def test_subset_history_replays_from_the_integrated_start(expm, tmp_path):
    start = expm["rna"].copy()
    expm.rna.knn(use_rep="harmony", n_neighbors=15, random_state=0)
    expm.rna.leiden(resolution=0.5, random_state=0)
    cats = list(expm["rna"].obs["leiden"].cat.categories)
    sub = expm.build_subset("first", keys=["leiden", "sample"], values=[cats[:2], ["pbmc_5k"]])
    assert expm.subsets["first"] is sub and expm["rna"].n_obs == 400  # parent untouched
    mask = expm["rna"].obs["leiden"].isin(cats[:2]) & (expm["rna"].obs["sample"] == "pbmc_5k")
    assert list(sub.obs_names) == list(expm["rna"].obs_names[mask])
    recs = [json.loads(r) for r in sub.uns["commands"]]
    prep = ["derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca", "harmony"]
    assert [r["command"] for r in recs] == prep + ["knn", "leiden", "subset_cells"]
    assert recs[:-1] == [json.loads(r) for r in expm["rna"].uns["commands"]]
    out = em.replay(start, sub)
    assert list(out.obs_names) == list(sub.obs_names)
    assert out.obs["leiden"].equals(sub.obs["leiden"])
    # no directory yet: save writes the subset with the rest
    d = expm.save(tmp_path / "e", save_samples=False)
    assert (d / "subsets" / "first.h5ad").exists() and not (d / "samples").exists()


def test_experiment_errors(expm, tmp_path):
    history_before = list(expm["rna"].uns["commands"])
    with pytest.raises(em.ExprmatError, match="no directory"):
        expm.save()
    with pytest.raises(em.ExprmatError, match="does not exist"):
        em.load_experiment(tmp_path / "missing")
    expm.save(tmp_path / "e")
    with pytest.raises(em.MissingKeyError, match="subset 'nope' not found"):
        em.load_experiment(tmp_path / "e", load_subset="nope")
    with pytest.raises(em.ExprmatError, match="subset_name"):
        expm.build_subset("a/b", keys=["sample"], values=[["pbmc_5k"]])
    with pytest.raises(em.MissingKeyError, match="not a category"):
        expm.build_subset("x", keys=["sample"], values=[["pbmc_99k"]])
    assert "x" not in expm.subsets and list(expm["rna"].uns["commands"]) == history_before
    with pytest.raises(em.ExprmatError, match="must be an AnnData"):
        expm["rna"] = "not data"


def test_annotator_on_the_experiment_builds_a_subset_of_the_selected_clusters(expm):
    """The subset panel: selected clusters -> expm.build_subset -> an Annotator on the subset
    below; the parent's data and history are unchanged, refused input changes nothing."""
    expm.rna.knn(use_rep="harmony", n_neighbors=15, random_state=0)
    expm.rna.umap(random_state=0)
    expm.rna.leiden(resolution=0.8, random_state=0)
    parent = expm["rna"]
    ann = expm.rna.annotator(key="leiden", basis="umap", background=False)
    panel = ann.subsets
    assert panel is not None and panel.widget in ann.children and panel.button in ann.action_buttons
    n_records = len(parent.uns["commands"])
    panel.button.click()  # nothing selected
    assert ann.status_kind == "error" and "select the clusters" in ann.status_text
    assert expm.subsets == {} and panel.opened is None
    cats = list(parent.obs["leiden"].cat.categories)
    ann.clusters.select(cats[:2])
    panel.name.value = "first-two"
    panel.button.click()
    assert ann.status_kind in ("ok", "warn"), ann.status_text
    sub = expm.subsets["first-two"]
    assert sub.n_obs == int(parent.obs["leiden"].isin(cats[:2]).sum()) < parent.n_obs
    assert set(sub.obs["leiden"].astype(str)) == set(cats[:2])
    assert em.history(sub).iloc[-1]["command"] == "subset_cells"
    assert len(parent.uns["commands"]) == n_records and parent.n_obs == 400  # the parent is untouched
    opened = panel.opened
    assert isinstance(opened, em.Annotator) and opened.adata is sub and opened.key == "leiden"
    assert opened in panel.below.children and "first-two" in ann.status_text
    assert opened.subsets is None  # a subset's Annotator is not on a modality of the experiment
    # the same name again is refused, and nothing changes
    panel.button.click()
    assert ann.status_kind == "error" and "exists already" in ann.status_text
    assert list(expm.subsets) == ["first-two"] and panel.opened is opened
    # the default name comes from the clusters
    panel.name.value = ""
    ann.clusters.select(cats[-1:])
    panel.button.click()
    assert f"leiden-{cats[-1]}" in expm.subsets, list(expm.subsets)
    # an Annotator on a plain AnnData has no subset panel
    assert em.Annotator(parent, key="leiden", basis="umap", background=False).subsets is None
