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


def _counted_sparse(x, rows: int):
    """A dask array over the CSR ``x`` in row chunks that counts how often each is read."""
    import dask

    reads = {}

    def load(r0):
        reads[r0] = reads.get(r0, 0) + 1
        return x[r0:r0 + rows]

    parts = [
        da.from_delayed(dask.delayed(load)(r0), shape=(min(rows, x.shape[0] - r0), x.shape[1]),
                        dtype=x.dtype, meta=x[:0])
        for r0 in range(0, x.shape[0], rows)
    ]
    return da.concatenate(parts, axis=0), reads


@pytest.mark.parametrize("method", ["wilcoxon", "t-test"])
def test_markers_on_sparse_dask_read_once(pair, method, monkeypatch):
    """Sparse cell blocks are read once each (not once per gene block), pieces of genes are
    merged back into blocks, and the result equals the in-memory one."""
    import scipy.sparse as sp

    from exprmat_widgets.tl import _gene_blocks

    a = pair[0].copy()
    a.X = sp.csr_matrix(a.X)
    b = a.copy()
    b.X, reads = _counted_sparse(a.X, 1700)
    # small stored blocks and small gene blocks: several row blocks, pieces and merges
    monkeypatch.setattr(_gene_blocks, "_ROW_BLOCK_ENTRIES", 1700 * a.n_vars)
    monkeypatch.setattr(_gene_blocks, "_GENE_BLOCK_ENTRIES", a.X.nnz // 3)
    blocks = _gene_blocks.GeneBlocks(b.X, fine=70).read()
    spans = [(first, stop) for first, stop, _ in blocks]
    blocks.close()
    assert spans[0][0] == 0 and spans[-1][1] == a.n_vars and len(spans) >= 3
    assert all(p[1] == q[0] for p, q in zip(spans, spans[1:]))
    reads.clear()
    em.markers(a, groupby="leiden", method=method, key_added="m", pts=True)
    em.markers(b, groupby="leiden", method=method, key_added="m", pts=True)
    assert sorted(reads) == list(range(0, a.n_obs, 1700)) and set(reads.values()) == {1}
    for f in ("names", "scores", "pvals", "pvals_adj", "logfoldchanges"):
        for g in a.uns["m"][f].dtype.names:
            assert np.array_equal(a.uns["m"][f][g], b.uns["m"][f][g]), (f, g)
    assert np.array_equal(a.uns["m"]["pts"].to_numpy(), b.uns["m"]["pts"].to_numpy())


def test_markers_on_dask_bad_block_changes_nothing(pair):
    """A NaN found in the second cell block: a clear error, no result, no record."""
    import scipy.sparse as sp

    a = pair[0].copy()
    x = a.X.copy()
    x[3000, 5] = np.nan
    b = a.copy()
    b.X, _ = _counted_sparse(sp.csr_matrix(x), 2500)
    n = len(b.uns.get("commands", []))
    with pytest.raises(em.ExprmatError, match="NaN"):
        em.markers(b, groupby="leiden", method="wilcoxon", key_added="m")
    assert "m" not in b.uns and len(b.uns.get("commands", [])) == n


def test_markers_under_dask_distributed(pair):
    """The same one-pass markers with a 2-worker LocalCluster on 127.0.0.1 as the scheduler:
    the cell blocks are computed by the workers, the result equals the in-memory one."""
    import scipy.sparse as sp
    from distributed import Client, LocalCluster

    a = pair[0].copy()
    a.X = sp.csr_matrix(a.X)
    b = a.copy()
    b.X = da.from_array(a.X, chunks=(2500, a.n_vars), asarray=False)
    em.markers(a, groupby="leiden", method="wilcoxon", key_added="m", pts=True)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                     processes=True) as cluster,
        Client(cluster) as client,
    ):
        em.markers(b, groupby="leiden", method="wilcoxon", key_added="m", pts=True)
        # the scheduler ran the reads (task prefixes are recorded per computed task)
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert prefixes
    for f in ("names", "scores", "pvals_adj", "logfoldchanges"):
        for g in a.uns["m"][f].dtype.names:
            assert np.array_equal(a.uns["m"][f][g], b.uns["m"][f][g]), (f, g)
    assert np.array_equal(a.uns["m"]["pts"].to_numpy(), b.uns["m"]["pts"].to_numpy())


def test_gene_block_split_is_a_stable_sort_by_piece():
    """The counting sort that splits a cell block by gene piece gives what a stable argsort
    of the pieces gives (order within each piece kept, unsorted rows and empty rows too)."""
    import scipy.sparse as sp

    from exprmat_widgets.tl._gene_blocks import _split_rows

    rng = np.random.default_rng(3)
    x = sp.random(300, 1000, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    x[5:9] = 0
    x.eliminate_zeros()
    for r in range(0, 300, 7):  # some rows with their entries out of order
        a, b = x.indptr[r], x.indptr[r + 1]
        perm = rng.permutation(b - a)
        x.indices[a:b], x.data[a:b] = x.indices[a:b][perm], x.data[a:b][perm]
    for fine in (1, 37, 1000):
        n_pieces = -(-1000 // fine)
        row_nnz = np.zeros((n_pieces, 300), np.int64)
        idx, val = np.empty(x.nnz, np.int32), np.empty(x.nnz, np.float32)
        starts = _split_rows(x.indices, x.indptr.astype(np.int64), x.data, fine, row_nnz, idx, val)
        piece = x.indices // fine
        order = np.argsort(piece, kind="stable")
        rows = np.repeat(np.arange(300), np.diff(x.indptr))
        want_nnz = np.bincount(piece * 300 + rows, minlength=n_pieces * 300).reshape(n_pieces, 300)
        assert np.array_equal(row_nnz, want_nnz)
        assert np.array_equal(idx, (x.indices - piece * fine)[order]) and np.array_equal(val, x.data[order])
        assert np.array_equal(starts, np.concatenate([[0], np.cumsum(want_nnz.sum(axis=1))]))
