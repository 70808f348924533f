"""Fast row subsetting of the arrays an AnnData holds along its cells.

Excluding a cluster from a million cells copies every per-cell array once: the
CSR matrices (``X``, layers) row by row, the embeddings, and the kNN graphs in
``obsp`` along both axes.  scipy's ``csr_row_index`` does the row gather in one
thread and anndata's view machinery adds a second pass over the index
(uniqueness checks, category clean-up per view).  The kernels here do the
gathers in parallel with numba (the rows are split into one contiguous chunk
per thread, each thread writes its own slice of the output), which is what no
library offers for an in-place exclusion; everything else is plain numpy /
pandas.

Used by :func:`exprmat_widgets.tl.annotation._subset_inplace`.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._numba import njit_parallel

__all__ = ["can_take", "take_rows", "take_square", "warm_up"]


@contextlib.contextmanager
def _plain_pages():
    """Allocate without numpy's ``madvise(MADV_HUGEPAGE)``.

    numpy asks the kernel for huge pages on every large array; where the kernel's
    ``transparent_hugepage/defrag`` is ``madvise`` (a common default) each such
    allocation may stall in direct memory compaction.  Measured on a 1M-cell exclusion:
    the gather took 1.6-2.3 s with the advice and 0.26-0.34 s without.  The output is
    written once, front to back, so ordinary pages lose nothing here.
    """
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    setter = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)


@njit_parallel(cache=True)
def _gather_rows(indptr, indices, data, rows, new_indptr, out_indices, out_data, n_chunks):
    # each run of consecutive kept rows is one block copy (an exclusion keeps long runs)
    m = rows.size
    for c in numba.prange(n_chunks):
        hi = m * (c + 1) // n_chunks
        i = m * c // n_chunks
        while i < hi:
            j = i + 1
            while j < hi and rows[j] == rows[j - 1] + 1:
                j += 1
            a = np.int64(indptr[rows[i]])
            b = np.int64(indptr[rows[j - 1] + 1])
            o = np.int64(new_indptr[i])
            out_indices[o:o + b - a] = indices[a:b]
            out_data[o:o + b - a] = data[a:b]
            i = j


@njit_parallel(cache=True)
def _square_pass(indptr, indices, data, rows, new_col, new_indptr, out_indices, out_data, counts,
                 n_chunks, fill):
    # fill=False: count the kept entries of each kept row into counts; fill=True: write them
    m = rows.size
    for c in numba.prange(n_chunks):
        lo = m * c // n_chunks
        hi = m * (c + 1) // n_chunks
        for i in range(lo, hi):
            r = rows[i]
            o = new_indptr[i] if fill else 0
            for k in range(indptr[r], indptr[r + 1]):
                j = new_col[indices[k]]
                if j >= 0:
                    if fill:
                        out_indices[o] = j
                        out_data[o] = data[k]
                    o += 1
            if not fill:
                counts[i] = o


def _chunks() -> int:
    return max(1, numba.get_num_threads())


def _indptr_of(lengths: np.ndarray, dtype) -> np.ndarray:
    indptr = np.empty(lengths.size + 1, dtype=np.int64)
    indptr[0] = 0
    np.cumsum(lengths, out=indptr[1:])
    if np.dtype(dtype) != np.int64 and indptr[-1] <= np.iinfo(dtype).max:
        indptr = indptr.astype(dtype)
    return indptr


def _csr_like(matrix, data, indices, indptr, shape):
    """A CSR of the same class (matrix or array) as ``matrix``."""
    cls = sp.csr_array if isinstance(matrix, sp.sparray) else sp.csr_matrix
    out = cls((data, indices, indptr), shape=shape)
    if getattr(matrix, "_has_sorted_indices", False):  # known sorted: the gathers keep the order
        out.has_sorted_indices = True
    return out


def _plain_csr(value) -> bool:
    return sp.issparse(value) and value.format == "csr" and value.data.dtype.kind in "biuf"


def can_take(value) -> bool:
    """Whether :func:`take_rows` handles ``value`` without anndata's view machinery."""
    if isinstance(value, pd.DataFrame):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim >= 1 and not isinstance(value, np.ma.MaskedArray)
    return _plain_csr(value)


def take_rows(value, rows: np.ndarray):
    """The rows ``rows`` (sorted positions) of a CSR matrix, a numpy array or a DataFrame, as a new object."""
    if isinstance(value, pd.DataFrame):
        return value.iloc[rows]
    if isinstance(value, np.ndarray):
        with _plain_pages():
            return np.take(value, rows, axis=0)
    indptr = value.indptr
    lengths = indptr[rows + 1] - indptr[rows]
    new_indptr = _indptr_of(lengths, indptr.dtype)
    nnz = int(new_indptr[-1])
    with _plain_pages():
        out_indices = np.empty(nnz, dtype=value.indices.dtype)
        out_data = np.empty(nnz, dtype=value.data.dtype)
    _gather_rows(indptr, value.indices, value.data, rows, new_indptr, out_indices, out_data, _chunks())
    return _csr_like(value, out_data, out_indices, new_indptr, (rows.size, value.shape[1]))


def take_square(value, rows: np.ndarray):
    """Rows and columns ``rows`` of a square cell x cell matrix (a kNN graph in ``obsp``)."""
    if isinstance(value, np.ndarray):
        return value[np.ix_(rows, rows)]
    if not _plain_csr(value):
        return value[rows][:, rows]
    n = value.shape[0]
    new_col = np.full(n, -1, dtype=np.int64)
    new_col[rows] = np.arange(rows.size)
    counts = np.empty(rows.size, dtype=np.int64)
    no_out = np.empty(0, dtype=value.indices.dtype), np.empty(0, dtype=value.data.dtype)
    _square_pass(value.indptr, value.indices, value.data, rows, new_col, counts, *no_out, counts,
                 _chunks(), False)
    new_indptr = _indptr_of(counts, value.indptr.dtype)
    nnz = int(new_indptr[-1])
    with _plain_pages():
        out_indices = np.empty(nnz, dtype=value.indices.dtype)
        out_data = np.empty(nnz, dtype=value.data.dtype)
    _square_pass(value.indptr, value.indices, value.data, rows, new_col, new_indptr, out_indices,
                 out_data, counts, _chunks(), True)
    return _csr_like(value, out_data, out_indices, new_indptr, (rows.size, rows.size))


def warm_up(adata) -> None:
    """Load (or compile) the kernels for the dtypes of ``adata``'s CSR matrices, so that the
    first exclusion in a session does not pay numba's start-up (about half a second), and
    fingerprint the cell names once (the first recorded command then finds them cached)."""
    from .history.fingerprints import obs_names_hash

    obs_names_hash(adata)
    mats = [adata.X, *adata.layers.values(), *adata.obsp.values()]
    seen = set()
    for m in mats:
        if not _plain_csr(m):
            continue
        sig = (m.data.dtype, m.indices.dtype, m.indptr.dtype)
        if sig in seen:
            continue
        seen.add(sig)
        tiny = _csr_like(m, np.zeros(1, m.data.dtype), np.zeros(1, m.indices.dtype),
                         np.array([0, 1], m.indptr.dtype), (1, 1))
        take_rows(tiny, np.zeros(1, np.int64))
        take_square(tiny, np.zeros(1, np.int64))
