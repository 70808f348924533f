"""A gene's values read from a CSR matrix (the path of every colouring by a gene)."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from exprmat_widgets._access import _dense_column, feature


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csr_array])
def test_csr_column_equals_scipy_slice(kind):
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.4, size=(300, 17)).astype(np.float32)
    dense[40:60] = 0  # empty rows, also at the end
    dense[-5:] = 0
    mat = kind(dense)
    for j in range(dense.shape[1]):
        got = _dense_column(mat, j)
        assert got.dtype == float and got.shape == (300,)
        np.testing.assert_array_equal(got, dense[:, j])


def test_csr_column_sums_duplicate_entries():
    # a non-canonical CSR matrix (two entries for one cell and gene) counts their sum, as scipy
    mat = sp.csr_matrix((np.array([1.0, 2.0, 5.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 3))
    assert not mat.has_canonical_format
    np.testing.assert_array_equal(_dense_column(mat, 1), [3.0, 0.0])
    np.testing.assert_array_equal(_dense_column(mat, 0), [0.0, 5.0])


def test_feature_reads_a_gene_of_a_csr_x():
    rng = np.random.default_rng(1)
    dense = rng.poisson(1.0, size=(50, 4)).astype(np.float32)
    a = ad.AnnData(sp.csr_matrix(dense))
    a.var_names = ["A", "B", "C", "D"]
    values, kind, _ = feature(a, "C")
    assert kind == "continuous"
    np.testing.assert_array_equal(values, dense[:, 2])
