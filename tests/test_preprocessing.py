"""Recorded preprocessing against scanpy / harmonypy on the same real data, replay from the
raw counts, the exported script, and bad input."""

import subprocess
import sys

import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

import exprmat_widgets as em
from exprmat_widgets.history import raw_records


@pytest.fixture(scope="module")
def raw():
    """400 real PBMC of two samples, raw counts, all 15,792 genes."""
    return em.datasets.pbmc_2samples()


def _same(a, b):
    if sp.issparse(a):
        return a.shape == b.shape and (a != b).nnz == 0 and a.dtype == b.dtype
    return np.array_equal(np.asarray(a), np.asarray(b))


def _preprocess(adata, flavor="seurat"):
    em.derive_layer(adata, key_added="counts", source="X", transform="copy")
    em.normalize_total(adata, target_sum=1e4)
    em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=800, flavor=flavor, key_added="vst.all.hvg",
                             layer="counts" if flavor == "seurat_v3" else None)
    em.pca(adata, n_comps=20, mask_var="vst.all.hvg", random_state=0)
    em.harmony(adata, batch_key="sample", random_state=0)


@pytest.mark.parametrize("flavor", ["seurat", "seurat_v3"])
def test_each_command_gives_what_scanpy_gives(raw, flavor):
    ours, ref = raw.copy(), raw.copy()
    _preprocess(ours, flavor)
    ref.layers["counts"] = ref.X.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    assert _same(ours.layers["counts"], ref.layers["counts"])
    sc.pp.log1p(ref)
    assert _same(ours.X, ref.X)
    sc.pp.highly_variable_genes(ref, n_top_genes=800, flavor=flavor, layer="counts" if flavor == "seurat_v3" else None)
    hvg_cols = [c for c in ref.var.columns if c not in raw.var.columns]
    for c in hvg_cols:
        np.testing.assert_array_equal(ours.var[c].to_numpy(), ref.var[c].to_numpy(), err_msg=c)
    assert (ours.var["vst.all.hvg"] == ref.var["highly_variable"]).all()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # em.pca's one BLAS thread
        sc.pp.pca(ref, n_comps=20, mask_var="highly_variable", random_state=0)
    assert _same(ours.obsm["X_pca"], ref.obsm["X_pca"]) and _same(ours.varm["PCs"], ref.varm["PCs"])
    np.testing.assert_array_equal(ours.uns["pca"]["variance_ratio"], ref.uns["pca"]["variance_ratio"])
    import harmonypy

    ho = harmonypy.run_harmony(ref.obsm["X_pca"].astype(np.float64), ref.obs[["sample"]], "sample",
                               random_state=0, verbose=False)
    z = np.asarray(ho.Z_corr)
    z = z if z.shape == ref.obsm["X_pca"].shape else z.T
    np.testing.assert_array_equal(ours.obsm["harmony"], z.astype(np.float32))


def test_history_from_raw_counts_replays_and_its_script_runs(raw, tmp_path):
    start = raw.copy()
    adata = raw.copy()
    _preprocess(adata)
    em.knn(adata, use_rep="harmony", n_neighbors=10, random_state=0)
    em.leiden(adata, resolution=0.8, random_state=0)
    assert em.history(adata)["command"].tolist()[:6] == [
        "derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca", "harmony"]
    out = em.replay(start, adata)
    assert _same(out.obsm["harmony"], adata.obsm["harmony"])
    assert (out.obs["leiden"] == adata.obs["leiden"]).all()
    start.write_h5ad(tmp_path / "raw.h5ad")
    (tmp_path / "replay.py").write_text(em.history_to_script(adata))
    done = subprocess.run([sys.executable, str(tmp_path / "replay.py"), str(tmp_path / "raw.h5ad"),
                           str(tmp_path / "out.h5ad")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    back = sc.read_h5ad(tmp_path / "out.h5ad")
    assert (back.obs["leiden"].astype(str) == adata.obs["leiden"].astype(str)).all()


def test_inputs_are_not_written_into(raw):
    adata = raw.copy()
    x0 = adata.X
    data0 = x0.data.copy()
    em.normalize_total(adata)
    em.log1p(adata)
    assert adata.X is not x0 and np.array_equal(x0.data, data0)  # undo snapshots stay exact
    em.undo(adata)
    em.undo(adata)
    assert adata.X is x0 and not raw_records(adata)


@pytest.mark.parametrize("call, message", [
    (lambda a: em.highly_variable_genes(a, flavor="seurat"), "holds raw counts"),
    (lambda a: em.highly_variable_genes(a, flavor="nope"), "flavor must be one of"),
    (lambda a: em.harmony(a, batch_key="nope"), "nope"),
    (lambda a: em.pca(a, mask_var="nope"), "em.highly_variable_genes first"),
    (lambda a: em.normalize_total(a, target_sum=-1), "target_sum"),
    (lambda a: em.normalize_total(a, layer="nope"), "layer 'nope' not found"),
])
def test_bad_input_changes_nothing(raw, call, message):
    adata = raw.copy()
    before = (adata.X, list(adata.var.columns), dict(adata.obsm), list(raw_records(adata)))
    with pytest.raises(em.ExprmatError, match=message):
        call(adata)
    assert (adata.X, list(adata.var.columns), dict(adata.obsm), list(raw_records(adata))) == before


def test_harmony_with_one_batch_and_hvg_v3_on_log_data(raw):
    adata = raw.copy()
    em.normalize_total(adata)
    em.log1p(adata)
    with pytest.raises(em.ExprmatError, match="needs raw counts"):
        em.highly_variable_genes(adata, flavor="seurat_v3")
    with pytest.raises(em.ExprmatError, match="already log-transformed"):
        em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=300)
    em.pca(adata, n_comps=10)
    one = adata[adata.obs["sample"] == adata.obs["sample"].iloc[0]].copy()
    one.uns.pop("commands")
    with pytest.raises(em.ExprmatError, match="single batch"):
        em.harmony(one, batch_key="sample")


def test_pca_is_the_same_on_any_number_of_blas_threads(raw):
    # scanpy's own PCA differs in the last bits between thread counts on these cells (a
    # history made on one machine failed to replay on another, and in CI)
    from threadpoolctl import threadpool_limits

    a = raw.copy()
    em.normalize_total(a)
    em.log1p(a)
    em.highly_variable_genes(a)
    ours, scanpys = [], []
    for n in (1, 2, 4):
        with threadpool_limits(limits=n, user_api="blas"):
            b = a.copy()
            em.pca(b)
            ours.append(b.obsm["X_pca"])
            c = a.copy()
            sc.pp.pca(c, random_state=0)
            scanpys.append(c.obsm["X_pca"])
    assert all(np.array_equal(ours[0], o) for o in ours[1:])
    np.testing.assert_array_equal(ours[0], scanpys[0])  # scanpy's on one thread
