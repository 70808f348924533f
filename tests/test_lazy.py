"""An atlas opened with ``em.read_lazy`` (X on disk, obs in memory): every command the
annotation of an atlas needs gives the in-memory result, X stays lazy, the history replays."""

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import exprmat_widgets as em

CHUNK = 90  # cells per dask chunk: 5 chunks over the 400 cells, the last one short


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The real pbmc_2samples_400 cells (15,792 genes), log-normalised, with k-means
    clusters and a 2-D embedding, written once as zarr and as h5ad."""
    a = em.datasets.pbmc_2samples()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.pca(a, n_comps=15, random_state=0)
    from sklearn.cluster import KMeans

    a.obs["clusters"] = pd.Categorical(KMeans(n_clusters=5, n_init=1, random_state=0)
                                       .fit_predict(a.obsm["X_pca"]).astype(str))
    a.obsm["X_umap"] = a.obsm["X_pca"][:, :2].copy()
    del a.layers["counts"], a.obsm["protein_expression"]
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    d = tmp_path_factory.mktemp("lazy")
    import gc

    gc.collect()  # h5py garbage of earlier tests is not left to zarr's I/O thread (h5py#2019)
    a.write_zarr(d / "a.zarr")
    a.write_h5ad(d / "a.h5ad")
    return d / "a.zarr", d / "a.h5ad"


def _open(path):
    return em.read_lazy(path, chunk_cells=CHUNK)


def _same_markers(a, b, key="m"):
    for f in ("names", "scores", "pvals", "pvals_adj", "logfoldchanges"):
        for g in a.uns[key][f].dtype.names:
            assert np.array_equal(a.uns[key][f][g], b.uns[key][f][g]), (f, g)
    assert np.array_equal(a.uns[key]["pts"].to_numpy(), b.uns[key]["pts"].to_numpy())


def test_read_lazy_leaves_x_on_disk(stores):
    for path in stores:
        lz = _open(path)
        mem = ad.read_zarr(stores[0])
        assert isinstance(lz.X, da.Array) and lz.X.chunks[0] == (90, 90, 90, 90, 40)
        assert isinstance(lz.obs, pd.DataFrame) and isinstance(lz.obsm["X_umap"], np.ndarray)
        assert (lz.obs["clusters"] == mem.obs["clusters"]).all()
        assert (lz.X[100:200].compute() != mem.X[100:200]).nnz == 0


def test_read_lazy_default_chunks_bound_the_block(stores):
    from exprmat_widgets import lazy

    lz = em.read_lazy(stores[0])
    per_cell = ad.read_zarr(stores[0]).X.nnz / 400
    assert lz.X.chunks[0][0] == min(400, int(lazy._CHUNK_ENTRIES // per_cell))


def test_read_lazy_bad_path(tmp_path):
    with pytest.raises(em.ExprmatError, match="does not exist"):
        em.read_lazy(tmp_path / "missing.zarr")
    (tmp_path / "notes.txt").write_text("not an AnnData")
    with pytest.raises(em.ExprmatError, match="neither an h5ad file nor a zarr store"):
        em.read_lazy(tmp_path / "notes.txt")


@pytest.mark.parametrize("method", ["t-test", "wilcoxon"])
def test_markers_lazy_equal_in_memory(stores, method):
    mem, lz = ad.read_zarr(stores[0]), _open(stores[1])
    em.markers(mem, groupby="clusters", method=method, pts=True, key_added="m")
    em.markers(lz, groupby="clusters", method=method, pts=True, key_added="m")
    assert isinstance(lz.X, da.Array)
    _same_markers(mem, lz)


def _session(adata):
    """An annotation session on an atlas: labels, merge, rename, annotate, exclusions."""
    em.label_cells(adata, key="manual", cells=adata.obs_names[10:60], label="doublets")
    em.merge_clusters(adata, key="clusters", clusters=["0", "1"], new_name="01")
    em.rename_cluster(adata, key="clusters", old="2", new="B")
    em.annotate(adata, annotation="cell_type", cluster="clusters",
                mapping={"T": ["01"], "Bcell": ["B"], "Mono": ["3", "4"]})
    em.exclude_cells(adata, cells=adata.obs_names[10:60])
    em.exclude(adata, annotation="clusters", remove=["4"])
    em.subset_cells(adata, keys=["sample"], values=[[str(adata.obs["sample"].iloc[0])]])
    em.markers(adata, groupby="cell_type", method="wilcoxon", pts=True, key_added="m")
    return em.proportion(adata, major="cell_type", minor="sample")


def test_annotation_session_lazy_equal_in_memory(stores, tmp_path):
    mem, lz = ad.read_zarr(stores[0]), _open(stores[0])
    x_disk = lz.X
    p_mem, p_lz = _session(mem), _session(lz)
    assert p_mem.equals(p_lz)
    # the exclusions kept X lazy: X[kept] of the stored matrix, nothing computed
    assert isinstance(lz.X, da.Array) and lz.X is not x_disk and lz.n_obs == mem.n_obs < 400
    assert (lz.obs_names == mem.obs_names).all()
    for k in ("clusters", "cell_type", "manual"):
        assert lz.obs[k].astype(str).tolist() == mem.obs[k].astype(str).tolist(), k
    assert (lz.X.compute() != mem.X).nnz == 0
    _same_markers(mem, lz)
    assert em.history(lz)["output"].tolist() == em.history(mem)["output"].tolist()
    # the subset written to a new store, chunk by chunk, reads back as the in-memory subset
    lz.write_zarr(tmp_path / "subset.zarr")
    back = ad.read_zarr(tmp_path / "subset.zarr")
    assert (back.X != mem.X).nnz == 0 and (back.obs_names == mem.obs_names).all()
    assert len(back.uns["commands"]) == len(mem.uns["commands"])


def test_lazy_history_replays(stores):
    lz = _open(stores[0])
    _session(lz)
    # on the store opened again (lazily) and on the same data in memory
    for start in (_open(stores[0]), ad.read_zarr(stores[0])):
        out = em.replay(start, lz)
        assert out.n_obs == lz.n_obs and (out.obs_names == lz.obs_names).all()
        assert out.obs["cell_type"].astype(str).tolist() == lz.obs["cell_type"].astype(str).tolist()
        _same_markers(lz, out)


def test_lazy_x_fingerprint_equals_in_memory(stores):
    """A command that writes X records its fingerprint: the same bits for a lazy X (one
    pass over the cell blocks, spilled to a temporary file) as for the matrix in memory."""
    from exprmat_widgets.history.fingerprints import fingerprint

    mem, lz = ad.read_zarr(stores[0]), _open(stores[0])
    assert fingerprint(lz.X) == fingerprint(mem.X)
    assert fingerprint(lz.X[:, :200].map_blocks(lambda b: b.toarray(), dtype=np.float32,
                                                  meta=np.empty((0, 0), np.float32))) \
        == fingerprint(mem.X[:, :200].toarray())
    assert fingerprint(lz.X[5:]) != fingerprint(lz.X)


def test_annotator_opens_with_x_on_disk(stores):
    """The Annotator on a lazy atlas: coordinates and obs in memory, X left as the dask
    array, and colouring by a gene computes that gene only (the values of the matrix)."""
    mem, lz = ad.read_zarr(stores[0]), _open(stores[0])
    ann = em.Annotator(lz, key="clusters", basis="umap", background=False)
    assert ann.adata.X is lz.X and isinstance(lz.X, da.Array)
    gene = str(lz.var_names[int(np.argmax(np.asarray((mem.X > 0).sum(axis=0)).ravel()))])
    ann.scatter.color_by(gene)
    assert ann.scatter.color == gene and not ann.scatter.error
    from exprmat_widgets._access import feature

    values, kind, _ = feature(lz, gene)
    assert kind == "continuous" and np.array_equal(values, mem[:, gene].X.toarray().ravel())
    assert isinstance(lz.X, da.Array)


def test_markers_lazy_store_under_dask_distributed(stores):
    """The zarr store's chunks are read by the workers of a LocalCluster on 127.0.0.1."""
    from distributed import Client, LocalCluster

    mem, lz = ad.read_zarr(stores[0]), _open(stores[0])
    em.markers(mem, groupby="clusters", method="t-test", pts=True, key_added="m")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                     processes=True) as cluster,
        Client(cluster) as client,
    ):
        em.markers(lz, groupby="clusters", method="t-test", pts=True, key_added="m")
        em.exclude(lz, annotation="clusters", remove=["0"])
        counted = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes))
    assert counted > 0
    _same_markers(mem, lz)
    assert isinstance(lz.X, da.Array)


def test_backed_exclusion_points_to_read_lazy(stores):
    """A backed AnnData cannot drop cells; the message names em.read_lazy, which can."""
    backed = ad.read_h5ad(stores[1], backed="r")
    with pytest.raises(em.ExprmatError, match=r"em\.read_lazy\(path\)"):
        em.exclude(backed, annotation="clusters", remove=["0"])
    assert backed.n_obs == 400 and "commands" not in backed.uns
    lz = _open(stores[1])
    em.exclude(lz, annotation="clusters", remove=["0"])
    assert lz.n_obs == int((backed.obs["clusters"] != "0").sum()) and isinstance(lz.X, da.Array)
