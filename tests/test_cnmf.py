"""Consensus NMF: agreement with the reference ``cnmf`` package, outputs, replay, bad input."""

import contextlib
import io
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import exprmat_widgets as em
from exprmat_widgets.errors import ExprmatError, MissingKeyError

KS = [5, 8]
N_ITER = 10


def _prepare(adata, n_top_genes=300):
    """counts layer, linear normalised 'norm' layer and a boolean 'vst.all.hvg' column."""
    adata.layers["counts"] = adata.X.copy()
    sc.pp.filter_genes(adata, min_cells=3)
    b = adata.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, flavor="seurat", n_top_genes=n_top_genes)
    adata.var["vst.all.hvg"] = b.var["highly_variable"].values
    adata.layers["norm"] = b.X.expm1() if sp.issparse(b.X) else np.expm1(b.X)
    return adata


@pytest.fixture(scope="module")
def pbmc_base():
    return _prepare(em.datasets.pbmc68k_counts())


@pytest.fixture
def pbmc_counts(pbmc_base):
    return pbmc_base.copy()


@pytest.fixture(scope="module")
def pbmc_cnmf(pbmc_base):
    """One consensus_nmf run with extraction of k=5 (shared, copy before changing)."""
    a = pbmc_base.copy()
    em.consensus_nmf(a, ks=KS, n_iter=N_ITER, ncpus=2, random_state=14, progress=False)
    em.consensus_nmf_extract_k(a, k=5)
    return a


def _run_reference(adata, ks, n_iter, seed, tmp_path):
    from cnmf import cNMF

    ad.AnnData(X=sp.csr_matrix(adata.layers["counts"]), obs=adata.obs[[]], var=adata.var[[]]).write_h5ad(
        tmp_path / "counts.h5ad"
    )
    ad.AnnData(X=sp.csr_matrix(adata.layers["norm"]), obs=adata.obs[[]], var=adata.var[[]]).write_h5ad(
        tmp_path / "tpm.h5ad"
    )
    (tmp_path / "genes.txt").write_text("\n".join(adata.var_names[adata.var["vst.all.hvg"].values]))
    ref = cNMF(output_dir=str(tmp_path), name="ref")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.prepare(
            str(tmp_path / "counts.h5ad"),
            components=ks,
            n_iter=n_iter,
            seed=seed,
            genes_file=str(tmp_path / "genes.txt"),
            tpm_fn=str(tmp_path / "tpm.h5ad"),
        )
        ref.factorize(worker_i=0, total_workers=1)
        ref.combine()
        for k in ks:
            ref.consensus(k, density_threshold=0.5, show_clustering=False)
    return ref


def test_programs_match_reference_cnmf(pbmc_cnmf, tmp_path):
    a = pbmc_cnmf.copy()
    em.consensus_nmf_extract_k(a, k=8)
    ref = _run_reference(a, KS, N_ITER, 14, tmp_path)
    for k in KS:
        usage, scores, spectra_tpm, _ = ref.load_results(K=k, density_threshold=0.5)
        ours = np.asarray(a.varm[f"cnmf.{k}"])
        theirs = spectra_tpm.loc[a.var_names].to_numpy()
        r = np.corrcoef(ours.T, theirs.T)[:k, k:]
        best = r.argmax(axis=1)
        assert (r.max(axis=1) >= 0.9).all(), (k, r.max(axis=1))
        assert len(set(best)) == k  # one-to-one
        # the matched programs' usages and gene coefficients agree too
        ou = a.obsm[f"cnmf.{k}"].to_numpy()
        tu = usage.loc[a.obs_names].to_numpy()
        ru = [np.corrcoef(ou[:, i], tu[:, best[i]])[0, 1] for i in range(k)]
        assert min(ru) >= 0.9, ru
        oc = np.asarray(a.varm[f"cnmf.coef.{k}"])
        tc = scores.loc[a.var_names].to_numpy()
        rc = [np.corrcoef(oc[:, i], tc[:, best[i]])[0, 1] for i in range(k)]
        assert min(rc) >= 0.9, rc


def test_outputs_layout(pbmc_cnmf):
    a = pbmc_cnmf
    stats = a.uns["cnmf.stats"]
    assert list(stats.columns[:3]) == ["k", "stability", "error"]
    assert stats["k"].tolist() == KS
    assert np.isfinite(stats["stability"]).all() and (stats["stability"] <= 1).all()
    assert (stats["error"] > 0).all()
    # a larger k explains the scaled counts better
    assert stats["error"].iloc[1] < stats["error"].iloc[0]
    use = a.obsm["cnmf.5"]
    assert isinstance(use, pd.DataFrame)
    assert list(use.columns) == ["1", "2", "3", "4", "5"]
    assert (use.index == a.obs_names).all()
    np.testing.assert_allclose(use.sum(axis=1), 1.0, rtol=1e-10)
    assert (use.to_numpy() >= 0).all()
    # programs are ordered by decreasing total usage
    assert (np.diff(use.sum(axis=0).to_numpy()) <= 1e-9).all()
    assert a.varm["cnmf.5"].shape == (a.n_vars, 5) and (a.varm["cnmf.5"] >= 0).all()
    assert a.varm["cnmf.coef.5"].shape == (a.n_vars, 5)
    m = N_ITER * 5
    assert a.uns["cnmf.density.5"].shape == (m,)
    assert a.uns["cnmf.dist.5"].shape == (m, m)
    labels = a.uns["cnmf.5.labels"]
    assert set(np.unique(labels)) <= set(range(0, 6)) and set(range(1, 6)) <= set(labels)
    # dropped components are exactly those at or above the density threshold
    np.testing.assert_array_equal(labels == 0, a.uns["cnmf.density.5"] >= 0.5)
    st = a.uns["cnmf"]
    assert st["5"]["spectra"].shape == (m, int(a.var["vst.all.hvg"].sum()))
    # the programs recover the cell types: B cells load on one program more than others
    bulk = a.obs["bulk_labels"].astype(str)
    b = use[bulk == "CD19+ B"].mean(axis=0)
    rest = use[bulk != "CD19+ B"].mean(axis=0)
    assert (b - rest).max() > 0.3


def test_h5ad_round_trip_and_extract_again(pbmc_cnmf, tmp_path):
    path = tmp_path / "cnmf.h5ad"
    pbmc_cnmf.write_h5ad(path)
    back = ad.read_h5ad(path)
    em.consensus_nmf_extract_k(back, k=5)
    np.testing.assert_array_equal(back.obsm["cnmf.5"].to_numpy(), pbmc_cnmf.obsm["cnmf.5"].to_numpy())
    np.testing.assert_array_equal(back.varm["cnmf.5"], pbmc_cnmf.varm["cnmf.5"])
    em.consensus_nmf_extract_k(back, k=8)
    assert back.obsm["cnmf.8"].shape == (back.n_obs, 8)


def test_replay_identical_and_thread_count_independent(pbmc_counts):
    start = pbmc_counts.copy()
    a = pbmc_counts
    em.consensus_nmf(a, ks=[4, 6], n_iter=6, ncpus=50, random_state=3, progress=False)
    em.consensus_nmf_extract_k(a, k=6)
    replayed = em.replay(start, a)  # checks every output fingerprint
    np.testing.assert_array_equal(replayed.obsm["cnmf.6"].to_numpy(), a.obsm["cnmf.6"].to_numpy())
    np.testing.assert_array_equal(replayed.varm["cnmf.coef.6"], a.varm["cnmf.coef.6"])
    one = start.copy()
    em.consensus_nmf(one, ks=[4, 6], n_iter=6, ncpus=1, random_state=3, progress=False)
    for k in ("4", "6"):
        np.testing.assert_array_equal(one.uns["cnmf"][k]["spectra"], a.uns["cnmf"][k]["spectra"])
        np.testing.assert_array_equal(one.uns["cnmf"][k]["usage"], a.uns["cnmf"][k]["usage"])


def test_hvg_none_and_many_genes():
    a = _prepare(em.datasets.pbmc_2samples(), n_top_genes=500)
    em.consensus_nmf(a, ks=[3], n_iter=5, hvg=None, n_top_genes=400, progress=False, key_added="nmf")
    assert len(a.uns["nmf"]["genes"]) == 400
    assert a.uns["nmf"]["params"]["hvg"] == ""
    em.consensus_nmf_extract_k(a, k=3, key="nmf")
    assert a.varm["nmf.3"].shape == (a.n_vars, 3)
    np.testing.assert_allclose(a.obsm["nmf.3"].sum(axis=1), 1.0, rtol=1e-10)


def _unchanged(a, before_uns, before_hist):
    assert set(a.uns.keys()) == before_uns
    assert len(em.history(a)) == before_hist


@pytest.mark.parametrize(
    "change, kwargs, exc, words",
    [
        (None, dict(counts="norm"), ExprmatError, "non-integer"),
        ("negative", {}, ExprmatError, "negative"),
        (None, dict(counts="raw"), MissingKeyError, "not found"),
        (None, dict(tpm="missing"), MissingKeyError, "expm1"),
        ("empty", {}, ExprmatError, "no nonzero"),
        (None, dict(hvg="nohvg"), MissingKeyError, "highly_variable_genes"),
        ("few_hvg", dict(ks=[5]), ExprmatError, "highly variable genes"),
        ("few_cells", dict(ks=[5]), ExprmatError, "larger than the number of cells"),
        ("zero_cell", {}, ExprmatError, "zero counts"),
        (None, dict(ks=[1]), ExprmatError, "k in ks"),
        (None, dict(n_iter=1), ExprmatError, "n_iter"),
        (None, dict(density_threshold=0), ExprmatError, "density_threshold"),
        (None, dict(density_threshold=1e-6), ExprmatError, "pass density_threshold"),
    ],
)
def test_bad_input_leaves_data_unchanged(pbmc_cnmf, change, kwargs, exc, words):
    a = pbmc_cnmf.copy()  # has a history and earlier cNMF results
    if change == "negative":
        c = a.layers["counts"].copy()
        c.data[0] = -1
        a.layers["counts"] = c
    elif change == "empty":
        a.layers["counts"] = sp.csr_matrix(a.shape, dtype=np.float32)
    elif change == "few_hvg":
        h = np.zeros(a.n_vars, dtype=bool)
        h[:3] = True
        a.var["vst.all.hvg"] = h
    elif change == "few_cells":
        a = a[:4].copy()
        a.uns.pop("commands", None)  # a hand-made subset starts a history of its own
    elif change == "zero_cell":
        c = a.layers["counts"].tolil()
        c[0, np.flatnonzero(a.var["vst.all.hvg"].values)] = 0
        a.layers["counts"] = c.tocsr()
    before_uns, before_hist = set(a.uns.keys()), len(em.history(a))
    args = dict(ks=[3], n_iter=4, progress=False, key_added="bad")
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        em.consensus_nmf(a, **args)
    _unchanged(a, before_uns, before_hist)


def test_extract_errors(pbmc_cnmf):
    a = pbmc_cnmf.copy()
    before_uns, before_hist = set(a.uns.keys()), len(em.history(a))
    with pytest.raises(ExprmatError, match="ks run"):
        em.consensus_nmf_extract_k(a, k=7)
    with pytest.raises(MissingKeyError, match="consensus_nmf"):
        em.consensus_nmf_extract_k(a, k=5, key="other")
    _unchanged(a, before_uns, before_hist)
    sub = a[10:].copy()
    with pytest.raises(ExprmatError, match="does not belong to these data"):
        em.consensus_nmf_extract_k(sub, k=5)  # the history refuses a hand-made subset first
    sub.uns.pop("commands")
    with pytest.raises(ExprmatError, match="cells differ"):
        em.consensus_nmf_extract_k(sub, k=5)


def test_replicates_are_sklearn_coordinate_descent(pbmc_base):
    """In float64 a chunk of replicates reproduces sklearn's NMF (solver='cd', random init)."""
    from sklearn.decomposition import non_negative_factorization

    from exprmat_widgets.tl import _nmf_engine as eng

    a = pbmc_base
    X = a.layers["counts"][:, a.var["vst.all.hvg"].values].astype(np.float64).tocsr()
    var = np.asarray(X.power(2).mean(0)).ravel() - np.asarray(X.mean(0)).ravel() ** 2
    X = sp.csr_matrix(X.multiply(1 / np.sqrt(var)))
    seeds = [11, 12, 13]
    spectra, n_it = eng.factorize_chunk(X, X.T, float(X.mean()), 4, seeds, tol=1e-4, max_iter=1000)
    for j, s in enumerate(seeds):
        W, H, n = non_negative_factorization(
            X, n_components=4, init="random", solver="cd", beta_loss="frobenius", tol=1e-4, max_iter=1000,
            random_state=s,
        )
        assert n_it[j] == n
        np.testing.assert_allclose(spectra[j * 4 : (j + 1) * 4], H, rtol=1e-4, atol=1e-5 * H.max())


def test_numpy_sweep_fallback_equals_sklearn_kernel(rng):
    from exprmat_widgets.tl import _nmf_engine as eng

    W = np.abs(rng.normal(size=(200, 6)))
    H = np.abs(rng.normal(size=(6, 40)))
    X = np.abs(W @ H + rng.normal(scale=0.1, size=(200, 40)))
    W0 = np.abs(rng.normal(size=(200, 6)))
    G, XH, perm = H @ H.T, X @ H.T, np.arange(6, dtype=np.intp)
    a, b = W0.copy(), W0.copy()
    va, vb = eng.sweep(a, G, XH, perm), eng._sweep_numpy(b, G, XH, perm)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert va == pytest.approx(vb, rel=1e-10)


def test_replicate_streams_do_not_depend_on_width_sharing_or_neighbours(pbmc_base):
    """The numba kernels stack replicates side by side; a replicate's result is the same
    bit for bit whatever the stack width or the streams sharing the seeds, and matches
    the per-replicate path built on sklearn's compiled sweep."""
    from exprmat_widgets.tl import _nmf_engine as eng

    a = pbmc_base
    X = a.layers["counts"][:, a.var["vst.all.hvg"].values].astype(np.float32).tocsr()
    X = X[np.asarray(X.sum(axis=1)).ravel() > 0]
    x_mean = float(X.mean())
    seeds = [5, 6, 7, 8, 9]
    one, n1 = eng.factorize_chunk(X, None, x_mean, 4, seeds, width=1)
    three, n3 = eng.factorize_chunk(X, None, x_mean, 4, seeds, width=3)
    np.testing.assert_array_equal(one, three)
    assert n1 == n3
    # two streams pulling from one queue (the first stops after 3 seeds), in order 2, 0, 4, 1, 3
    todo = [(j, seeds[j]) for j in (2, 0, 4, 1, 3)][::-1]
    taken = []

    def take_first():
        if len(taken) == 3 or not todo:
            return None
        taken.append(todo[-1])
        return todo.pop()

    arrays = eng.csr_arrays(X)
    got = eng.factorize_stream(X, x_mean, 4, take_first, 2, arrays=arrays)
    got.update(eng.factorize_stream(X, x_mean, 4, lambda: todo.pop() if todo else None, 1, arrays=arrays))
    np.testing.assert_array_equal(np.vstack([got[j][0].T for j in range(5)]), one)
    assert [got[j][1] for j in range(5)] == n1
    # one pool mixing two k (budget 7 columns: a k=4 and a k=3 replicate side by side)
    three_k, n3k = eng.factorize_chunk(X, None, x_mean, 3, seeds[:3])
    items = [((4, j), 4, seeds[j]) for j in range(3)] + [((3, j), 3, seeds[j]) for j in range(3)]

    def take_mixed(free):
        for q, it in enumerate(items):
            if it[1] <= free:
                return items.pop(q)
        return None

    mixed = eng.factorize_pool(X, x_mean, take_mixed, 7, arrays=arrays)
    np.testing.assert_array_equal(np.vstack([mixed[(4, j)][0].T for j in range(3)]), one[:12])
    np.testing.assert_array_equal(np.vstack([mixed[(3, j)][0].T for j in range(3)]), three_k)
    assert [mixed[(3, j)][1] for j in range(3)] == n3k
    old, n_old = eng._factorize_chunk_sweeps(X, X.T, x_mean, 4, seeds, 1e-4, 1000, 1, 1)
    assert n_old == n1
    np.testing.assert_allclose(old, one, rtol=1e-4, atol=1e-5 * float(old.max()))


def test_dense_input_takes_the_sweep_path_with_the_same_result():
    """Dense input runs the per-replicate sweep path (not the CSR kernels); it reaches the
    same replicates, iteration for iteration."""
    import scipy.sparse as sp

    import exprmat_widgets.tl._nmf_engine as eng

    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, (300, 60)).astype(np.float64))
    sparse, n_sparse = eng.factorize_chunk(X, None, float(X.mean()), 4, [1, 2, 3])
    dense, n_dense = eng.factorize_chunk(X.toarray(), X.T.toarray(), float(X.mean()), 4, [1, 2, 3])
    assert n_sparse == n_dense
    np.testing.assert_allclose(dense, sparse, atol=1e-5)
