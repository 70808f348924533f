"""exprmat's on-disk experiments (metadata.tsv + .h5mu, read and written with mudata) and gene
symbols (``rna:hsa:<id>`` names, symbols in ``var['gene']``) wherever a gene is named."""

import json

import anndata as ad
import matplotlib
import mudata as mu
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from exprmat_dir import FOREIGN_COMMANDS, SAMPLES, write_exprmat_dir

import exprmat_widgets as em
from exprmat_widgets import _access
from exprmat_widgets.experiment import FOREIGN_HISTORY

matplotlib.use("Agg")

FEATURES = ["CD14", "LYZ", "MS4A1", "CD3E", "NKG7", "FCGR3A", "CST3", "GNLY"]


@pytest.fixture(scope="module")
def _built(tmp_path_factory):
    return write_exprmat_dir(tmp_path_factory.mktemp("exprmat") / "expm" / "scrna")


@pytest.fixture
def xdir(_built, tmp_path):
    import shutil

    d = tmp_path / "expm" / "scrna"
    shutil.copytree(_built, d)
    return d


def _column(adata, gene_id):
    return np.asarray(adata[:, gene_id].X.todense()).ravel()


def _files(d):
    return {p.relative_to(d): p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}


def test_tutorial_on_an_exprmat_directory(xdir, capsys):
    d = xdir
    meta_before = pd.read_csv(d / "metadata.tsv", sep="\t", dtype=str)
    expm = em.load_experiment(d)
    assert expm.layout == "exprmat" and list(expm.samples) == SAMPLES
    a = expm["rna"]
    assert a.var_names[0] == "rna:hsa:g00000" and "gene" in a.var
    # exprmat's own uns['commands'] is kept aside; our history starts empty
    assert dict(a.uns[FOREIGN_HISTORY]) == FOREIGN_COMMANDS and "commands" not in a.uns
    text = str(expm)
    assert "[*] composed of samples:" in text
    assert "pbmc_5k rna hsa batch b1 of size 200 × 15792" in text
    assert "pbmc_10k rna hsa batch b2 of size 200 × 15792" in text
    assert "integrated dataset of size 400 × 15792" in text

    expm.rna.knn(use_rep="harmony", n_comps=None, n_neighbors=100, knn=True, method="umap",
                 transformer=None, metric="euclidean", metric_kwds={}, random_state=42, key_added="neighbors")
    expm.rna.umap(min_dist=0.4, spread=0.9, n_components=2, maxiter=None, alpha=1, gamma=1,
                  negative_sample_rate=5, init_pos="spectral", random_state=42, a=None, b=None,
                  key_added="umap", neighbors_key="neighbors")
    expm.rna.leiden(resolution=0.8, restrict_to=None, random_state=42, key_added="leiden", adjacency=None,
                    directed=None, use_weights=True, n_iterations=2, partition_type=None,
                    neighbors_key=None, obsp=None, flavor="igraph")
    expm.save()
    assert (d / "integrated.h5mu").exists() and not (d / "integrated.h5ad").exists()
    assert not (d / "samples").exists()  # exprmat's layout: rna/<sample>.h5ad
    cats = list(expm["rna"].obs["leiden"].cat.categories)
    keep = cats[:-1]
    expm.build_subset(subset_name="mono-neutro", slot="rna", keys=["leiden"], values=[keep])
    n_sub = int(expm["rna"].obs["leiden"].isin(keep).sum())
    assert (d / "subsets" / "mono-neutro.h5mu").exists() and not (d / "subsets" / "mono-neutro.h5ad").exists()

    expm = em.load_experiment(d, load_samples=False, load_subset="mono-neutro")
    assert expm["rna"].n_obs == n_sub and not expm.samples
    assert "[*] samples not loaded from disk." in str(expm)
    assert f"subset mono-neutro of size {n_sub} × 15792" in str(expm)
    for _ in range(2):  # before and after the exclusion, as the tutorial
        expm.rna.knn(use_rep="harmony", n_comps=None, n_neighbors=100, knn=True, method="umap",
                     transformer=None, metric="euclidean", metric_kwds={}, random_state=42,
                     key_added="neighbors")
        expm.rna.umap(min_dist=0.4, spread=0.9, n_components=2, maxiter=None, alpha=1, gamma=1,
                      negative_sample_rate=5, init_pos="spectral", random_state=42, a=None, b=None,
                      key_added="umap", neighbors_key="neighbors")
        if _ == 0:
            expm.rna.leiden(resolution=1, restrict_to=None, random_state=42, key_added="leiden", adjacency=None,
                            directed=None, use_weights=True, n_iterations=2, partition_type=None,
                            neighbors_key=None, obsp=None, flavor="igraph")
            # genes by symbol, as the tutorial names them; each panel shows that gene's expression
            fig = expm.rna.plot_multiple_embedding(
                basis="umap", features=FEATURES, ncols=4, sort=True, figsize=(10, 5), dpi=100, legend=False,
                annotate_style="text", annotate_fontsize=8, ptsize=4)
            titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
            assert titles[: len(FEATURES)] == FEATURES
            a = expm["rna"]
            gid = a.var_names[a.var["gene"].astype(str) == "CD14"][0]
            values, kind, _ = _access.feature(a, "CD14")
            assert kind == "continuous" and np.array_equal(values, _column(a, gid)) and values.max() > 0
            last = expm["rna"].obs["leiden"].cat.categories[-1]
            expm.rna.exclude(annotation="leiden", remove=[last])
    rest = list(expm["rna"].obs["leiden"].cat.categories)
    expm.rna.annotate(annotation="cell.type", cluster="leiden",
                      mapping={"A": [int(rest[0])], "B": [int(c) for c in rest[1:3]], "C": rest[3:]})
    expm.rna.markers(groupby="cell.type", mask_var=None, groups="all", reference="rest", n_genes=None,
                     rankby_abs=False, pts=True, key_added="markers", method="t-test",
                     corr_method="benjamini-hochberg", tie_correct=False, gene_symbol="gene", layer="X")
    a = expm["rna"]
    top = em.filter_markers(a, key="markers", n_genes=3, min_logfoldchange=1, max_p_adjust=0.05)
    assert len(top) and top["names"].str.startswith("rna:hsa:").all()
    assert list(top["symbol"]) == list(a.var.loc[top["names"], "gene"].astype(str))
    fig = expm.rna.plot_markers(n_genes=3, groupby="cell.type", min_logfoldchange=1, max_logfoldchange=None,
                                max_p_adjust=0.05, min_pct=0.25, max_pct_reference=0.75, key="markers",
                                gene_symbols="gene", figsize=(8, 2.5), dpi=100, plot_type="dotplot")
    shown = [g for genes in fig.marker_groups.values() for g in genes]
    assert shown and not any(g.startswith("rna:") for g in shown)
    assert set(shown) <= set(a.var["gene"].astype(str))
    expm.save()

    # read back as exprmat does: mudata for the .h5mu, anndata for the samples, pandas for the table
    back = mu.read_h5mu(d / "subsets" / "mono-neutro.h5mu")
    assert list(back.mod) == ["rna"]
    b = back["rna"]
    assert b.obs["cell.type"].equals(a.obs["cell.type"]) and list(b.var_names) == list(a.var_names)
    assert b.var["gene"].astype(str).equals(a.var["gene"].astype(str))
    assert "markers" in b.uns and dict(b.uns[FOREIGN_HISTORY]) == FOREIGN_COMMANDS
    assert [json.loads(r)["command"] for r in b.uns["commands"]] == [
        "knn", "umap", "leiden", "subset_cells", "knn", "umap", "leiden", "exclude", "knn", "umap",
        "annotate", "markers"]
    full = mu.read_h5mu(d / "integrated.h5mu")["rna"]
    assert full.n_obs == 400 and "leiden" in full.obs and "cell.type" not in full.obs
    for name in SAMPLES:
        s = ad.read_h5ad(d / "rna" / f"{name}.h5ad")
        assert s.n_obs == 200 and s.var_names[0] == "rna:hsa:g00000" and set(s.obs["sample"]) == {name}
    assert pd.read_csv(d / "metadata.tsv", sep="\t", dtype=str).equals(meta_before)
    # and our reader again: the saved subset's history replays on the integrated data it came from
    again = em.load_experiment(d, load_subset="mono-neutro")
    assert again["rna"].obs["cell.type"].equals(a.obs["cell.type"])
    start = em.load_experiment(d, load_samples=False)["rna"]
    del start.uns["commands"]  # the integrated data as exprmat wrote them
    start.obs = start.obs.drop(columns="leiden")
    for k in ("neighbors", "umap", "leiden"):
        start.uns.pop(k, None)
    out = em.replay(start, again["rna"])
    assert out.obs["cell.type"].equals(again["rna"].obs["cell.type"])


def test_our_layout_is_still_ours(tmp_path):
    a = ad.AnnData(sp.csr_matrix(np.eye(4, 3, dtype=np.float32)),
                   obs=pd.DataFrame({"sample": pd.Categorical(list("aabb"))}, index=list("wxyz")))
    expm = em.experiment.Experiment(a, {"a": a[:2].copy()})
    assert expm.layout == "exprmat_widgets"
    d = expm.save(tmp_path / "ours")
    assert (d / "integrated.h5ad").exists() and (d / "samples" / "a.h5ad").exists()
    assert not (d / "metadata.tsv").exists()
    back = em.load_experiment(d)
    assert back.layout == "exprmat_widgets" and back["rna"].n_obs == 4 and list(back.samples) == ["a"]


def test_gene_symbols_one_lookup_and_ambiguity(xdir):
    a = em.load_experiment(xdir, load_samples=False)["rna"]
    ids = a.var_names
    labels = _access.gene_labels(a)
    assert labels[list(a.var["gene"]).index("CD14")] == "CD14" and not any(lab.startswith("rna:") for lab in labels)
    # ids still work; a symbol of two genes is refused naming both ids, in pl, tl and the widget
    assert np.array_equal(_access.feature(a, ids[5])[0], _column(a, ids[5]))
    a.var["gene"] = a.var["gene"].astype(str)
    a.var.loc[ids[[10, 20]], "gene"] = "TWIN"
    labels = _access.gene_labels(a)
    assert list(labels[[10, 20]]) == [ids[10], ids[20]]  # shown by id, each reachable
    msg = rf"gene symbol 'TWIN' \(var\['gene'\]\) names 2 genes: \['{ids[10]}', '{ids[20]}'\]"
    with pytest.raises(em.ExprmatError, match=msg):
        _access.feature(a, "TWIN")
    a.obsm["X_umap"] = np.asarray(a.obsm["pca"][:, :2])
    with pytest.raises(em.ExprmatError, match=msg):
        em.plot_embedding(a, basis="umap", color="TWIN")
    with pytest.raises(em.ExprmatError, match=msg):
        em.plot_multiple_embedding(a, basis="umap", features=["CD14", "TWIN"], gene_symbols="gene")
    from exprmat_widgets.widgets.scatter import UmapScatter

    w = UmapScatter(a, basis="umap", color=None)
    assert "CD14" in w._keys and ids[10] in w._keys and "TWIN" not in w._keys
    assert str(ids[list(a.var["gene"]).index("CD14")]) not in w._keys
    w.color_by("cd14")  # the search box's case-insensitive match, then the core's symbol look-up
    assert w.color == "CD14"
    with pytest.raises(em.ExprmatError, match=msg):
        w.color_by("TWIN")
    assert w.color == "CD14"


def test_annotator_marker_table_shows_symbols(xdir):
    expm = em.load_experiment(xdir, load_samples=False)
    expm.rna.knn(use_rep="harmony", n_neighbors=15, random_state=0)
    expm.rna.umap(random_state=0)
    expm.rna.leiden(resolution=0.5, random_state=0)
    ann = expm.rna.annotator(key="leiden", basis="umap")
    mp, a = ann.markers, expm["rna"]
    ann.clusters.select(list(a.obs["leiden"].cat.categories[:2]))
    mp.clusters_button.click()
    assert ann.status_kind == "ok", ann.status_text
    df = mp.table_df
    assert len(df) and df["names"].str.startswith("rna:hsa:").all()
    sym = a.var["gene"].astype(str)
    assert [r[1] for r in mp.view.rows] == list(sym[df["names"]])  # the page shows symbols
    assert mp.dot_genes and not any(g.startswith("rna:") for g in mp.dot_genes)
    mp.select_gene_row(0)  # a click on a symbol colours the UMAP by that gene
    gene = mp.view.rows[0][1]
    assert ann.scatter.color == gene and ann.status_kind == "ok", ann.status_text


def test_bad_exprmat_directories_name_the_file(xdir, tmp_path):
    # no metadata.tsv beside integrated.h5mu
    d = tmp_path / "nometa"
    d.mkdir()
    (d / "integrated.h5mu").write_bytes((xdir / "integrated.h5mu").read_bytes())
    before = _files(d)
    with pytest.raises(em.ExprmatError, match=r"nometa/metadata\.tsv'.*columns \['location', 'sample'"):
        em.load_experiment(d)
    assert _files(d) == before
    # a metadata.tsv without the taxa column
    meta = pd.read_csv(xdir / "metadata.tsv", sep="\t")
    meta.drop(columns="taxa").to_csv(xdir / "metadata.tsv", sep="\t", index=False)
    with pytest.raises(em.ExprmatError, match=r"metadata\.tsv' misses the column\(s\) \['taxa'\]"):
        em.load_experiment(xdir)
    meta.to_csv(xdir / "metadata.tsv", sep="\t", index=False)
    # a subset that does not exist
    with pytest.raises(em.MissingKeyError, match=r"subset 'nope' not found: no '.*subsets/nope\.h5mu' "
                                                 r"\(have: \['first-5k'\]\)"):
        em.load_experiment(xdir, load_subset="nope")
    # an .h5mu without the modality 'rna'
    other = ad.read_h5ad(xdir / "rna" / "pbmc_5k.h5ad")
    with mu.set_options(pull_on_update=False):
        mu.MuData({"atac": other}).write_h5mu(xdir / "subsets" / "atac-only.h5mu")
    with pytest.raises(em.MissingKeyError, match=r"atac-only\.h5mu' has no modality 'rna' \(has: \['atac'\]\)"):
        em.load_experiment(xdir, load_subset="atac-only")
    # saving a sample the metadata does not list writes nothing
    expm = em.load_experiment(xdir, load_subset="first-5k")
    expm.samples["extra"] = other
    before = _files(xdir)
    with pytest.raises(em.ExprmatError, match=r"sample\(s\) \['extra'\] are not in expm.metadata"):
        expm.save()
    assert _files(xdir) == before
    # an empty directory is neither layout
    (tmp_path / "empty").mkdir()
    with pytest.raises(em.ExprmatError, match="holds no experiment"):
        em.load_experiment(tmp_path / "empty")
