"""em.datasets.synthetic_from: distinct synthetic cells that keep the real data's density
and depth (the inputs of the large benchmarks)."""

import numpy as np
import pytest
import scipy.sparse as sp

import exprmat_widgets as em
from exprmat_widgets.errors import ExprmatError


@pytest.fixture(scope="module")
def source():
    """400 real PBMC x 15,792 genes, raw counts (2 samples)."""
    return em.datasets.pbmc_2samples()


@pytest.fixture(scope="module")
def synth(source):
    return em.datasets.synthetic_from(source, 3000, random_state=7, source="pbmc_2samples_400")


def _row_keys(X):
    return {
        (X.indices[X.indptr[i]:X.indptr[i + 1]].tobytes(), X.data[X.indptr[i]:X.indptr[i + 1]].tobytes())
        for i in range(X.shape[0])
    }


def test_format(synth, source):
    X = synth.X
    assert sp.isspmatrix_csr(X) or isinstance(X, sp.csr_array)
    assert X.dtype == np.float32 and synth.shape == (3000, source.n_vars)
    X2 = X.copy()
    X2.has_sorted_indices = False
    X2.sort_indices()
    assert np.array_equal(X2.indices, X.indices)  # indices were already sorted
    assert np.all(X.data > 0) and np.all(X.data == np.round(X.data))
    assert synth.obs_names.is_unique
    assert set(synth.obs["sample"].cat.categories) <= set(source.obs["sample"])
    assert set(synth.obs["source_cell"].astype(str)) <= set(source.obs_names)
    assert set(synth.obs["partner_cell"].astype(str)) <= set(source.obs_names)
    # two different real cells are mixed into each synthetic one
    assert (synth.obs["partner_cell"].astype(str) != synth.obs["source_cell"].astype(str)).all()
    assert synth.uns["synthetic"]["label"] == "synthetic from pbmc_2samples_400"
    np.testing.assert_allclose(synth.obs["n_counts"], np.asarray(X.sum(axis=1)).ravel())


def test_realistic_density_and_depth(synth, source):
    real_nnz = np.diff(source.X.tocsr().indptr)
    nnz = np.diff(synth.X.indptr)
    assert abs(nnz.mean() / real_nnz.mean() - 1) < 0.25
    assert abs(np.median(nnz) / np.median(real_nnz) - 1) < 0.25
    real_lib = np.asarray(source.X.sum(axis=1)).ravel()
    assert abs(np.median(synth.obs["n_counts"]) / np.median(real_lib) - 1) < 0.25


def test_cells_are_distinct(synth, source):
    rows = _row_keys(synth.X)
    assert len(rows) == synth.n_obs  # no two synthetic cells share their counts
    assert not rows & _row_keys(source.X.tocsr().astype(np.float32))  # and none copies a real cell


def test_same_seed_same_cells(source, synth):
    again = em.datasets.synthetic_from(source, 3000, random_state=7)
    assert (again.X != synth.X).nnz == 0
    other = em.datasets.synthetic_from(source, 3000, random_state=8)
    assert (other.X != synth.X).nnz > 0


def test_bad_input(source):
    with pytest.raises(ExprmatError, match="n_obs"):
        em.datasets.synthetic_from(source, 0)
    logged = source.copy()
    logged.X = logged.X.copy()
    logged.X.data = np.log1p(logged.X.data)
    with pytest.raises(ExprmatError, match="raw counts"):
        em.datasets.synthetic_from(logged, 10)


def test_duplicate_names_refused(source):
    dup = source[:20].copy()
    dup.obs_names = ["c"] * 10 + [f"d{i}" for i in range(10)]
    with pytest.raises(ExprmatError, match="obs_names_make_unique"):
        em.datasets.synthetic_from(dup, 10)
