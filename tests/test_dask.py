"""Dask-backed AnnData: the routines that can work lazily do, with identical results."""

import dask.array as da
import numpy as np
import pytest
import scanpy as sc

import exprmat_widgets as em


@pytest.fixture(scope="module")
def pair():
    """The real mouse 10k cells with clusters: one copy in memory, one with a dask X."""
    a = em.datasets.mouse_10k()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.pca(a, n_comps=20, random_state=0)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=6, n_init=1, random_state=0).fit_predict(a.obsm["X_pca"])
    a.obs["leiden"] = np.asarray(km).astype(str)
    a.obs["leiden"] = a.obs["leiden"].astype("category")
    del a.layers["counts"]
    a.X = a.X.toarray()
    b = a.copy()
    b.X = da.from_array(a.X, chunks=(2500, 1000))
    return a, b


@pytest.mark.parametrize("method", ["wilcoxon", "t-test"])
def test_markers_on_dask_equal_in_memory(pair, method):
    a, b = pair[0].copy(), pair[1].copy()
    em.markers(a, groupby="leiden", method=method, key_added="m")
    em.markers(b, groupby="leiden", method=method, key_added="m")
    assert isinstance(b.X, da.Array)  # still lazy afterwards
    for f in ("names", "scores", "pvals", "pvals_adj", "logfoldchanges"):
        for g in a.uns["m"][f].dtype.names:
            assert np.array_equal(a.uns["m"][f][g], b.uns["m"][f][g]), (f, g)
    assert np.array_equal(a.uns["m"]["pts"].to_numpy(), b.uns["m"]["pts"].to_numpy())


def test_annotation_actions_on_dask_stay_lazy(pair):
    a, b = pair[0].copy(), pair[1].copy()
    for ad_ in (a, b):
        em.label_cells(ad_, key="manual", cells=ad_.obs_names[:500], label="x")
        em.merge_clusters(ad_, key="leiden", clusters=["0", "1"], new_name="m")
        em.exclude(ad_, annotation="leiden", remove=["2"])
    assert isinstance(b.X, da.Array)
    assert (a.obs["leiden"] == b.obs["leiden"]).all() and (a.obs_names == b.obs_names).all()
    assert np.array_equal(a.X, b.X.compute())
    pd_a = em.proportion(a, major="leiden", minor="manual")
    pd_b = em.proportion(b, major="leiden", minor="manual")
    assert pd_a.equals(pd_b)
    assert em.history(a)["output"].tolist() == em.history(b)["output"].tolist()


def test_annotation_on_backed_anndata(pair, tmp_path):
    import anndata as ad

    a = pair[0].copy()
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    em.label_cells(backed, key="manual", cells=backed.obs_names[:100], label="x")
    em.merge_clusters(backed, key="leiden", clusters=["0", "1"], new_name="m")
    assert int((backed.obs["manual"] == "x").sum()) == 100
    assert "m" in backed.obs["leiden"].cat.categories
    em.undo(backed)
    assert "m" not in backed.obs["leiden"].cat.categories
