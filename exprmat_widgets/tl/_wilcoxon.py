"""Numba kernels behind :func:`exprmat_widgets.tl.marker_genes.markers`.

Two passes over the expression matrix, both sparse-aware:

* :func:`group_stats` - per-group sums, sums of squares and non-zero counts in
  one pass over the rows (CSR or dense), plus a last row for all cells.  The
  t-test, the log fold changes and ``pts`` / ``pts_rest`` all come from these
  (the rest of a group is "all cells minus the group").
* :func:`rank_sums` - Wilcoxon rank sums of several groups at once, ranking
  each gene once over the cells that take part.  In sparse single-cell data
  most entries of a gene are zero; all zeros of a gene are one block of ties,
  so their (averaged) rank is known without sorting them: only the non-zero
  entries are sorted.  Negative values (scaled data) rank below the zero
  block, positive ones above it.  A group's rank sum is the sum of the ranks of
  its non-zero entries plus (its size - its non-zero count) x the zero rank.
  Ranks are half-integers, so every sum is exact in float64 and the result does
  not depend on summation order.  The same pass gives the tie term
  ``sum(t^3 - t)`` over all tie blocks (zeros included) for the tie correction.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

__all__ = ["group_stats", "rank_sums"]

#: code of a cell that is ranked but belongs to no tested group / is left out entirely
REST = -1
LEFT_OUT = -2


@numba.njit(cache=True)
def _stats_csr(data, indices, indptr, codes, n_groups, n_genes):
    s = np.zeros((n_groups + 1, n_genes))
    q = np.zeros((n_groups + 1, n_genes))
    nz = np.zeros((n_groups + 1, n_genes), np.int64)
    for i in range(indptr.size - 1):
        g = codes[i]
        for k in range(indptr[i], indptr[i + 1]):
            v = data[k]
            if v == 0:
                continue
            j = indices[k]
            sq = v * v  # in the data's own precision, like scanpy's mean-variance kernels
            s[n_groups, j] += v
            q[n_groups, j] += sq
            nz[n_groups, j] += 1
            if g >= 0:
                s[g, j] += v
                q[g, j] += sq
                nz[g, j] += 1
    return s, q, nz


@numba.njit(cache=True)
def _stats_dense(x, codes, n_groups):
    n_genes = x.shape[1]
    s = np.zeros((n_groups + 1, n_genes))
    q = np.zeros((n_groups + 1, n_genes))
    nz = np.zeros((n_groups + 1, n_genes), np.int64)
    for i in range(x.shape[0]):
        g = codes[i]
        for j in range(n_genes):
            v = x[i, j]
            if v == 0:
                continue
            sq = v * v
            s[n_groups, j] += v
            q[n_groups, j] += sq
            nz[n_groups, j] += 1
            if g >= 0:
                s[g, j] += v
                q[g, j] += sq
                nz[g, j] += 1
    return s, q, nz


def group_stats(x, codes: np.ndarray, n_groups: int):
    """Per-group ``(sums, sums of squares, non-zero counts)``, each ``(n_groups + 1, n_genes)``;
    row ``g`` holds the cells with ``codes == g``, the last row all cells.  ``x`` is not changed."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if sp.issparse(x):
        x = x.tocsr() if x.format != "csr" else x
        return _stats_csr(x.data, x.indices, x.indptr, codes, n_groups, x.shape[1])
    return _stats_dense(np.ascontiguousarray(x), codes, n_groups)


@numba.njit(parallel=True, cache=True)
def _rank_sums_csc(data, indices, indptr, codes, sizes, n_total, n_groups):
    n_genes = indptr.size - 1
    rsum = np.zeros((n_genes, n_groups))
    ties = np.zeros(n_genes)
    for j in numba.prange(n_genes):
        a = indptr[j]
        b = indptr[j + 1]
        vals = np.empty(b - a, data.dtype)
        grp = np.empty(b - a, np.int64)
        c = 0
        n_neg = 0
        for k in range(a, b):
            g = codes[indices[k]]
            v = data[k]
            if g == -2 or v == 0:
                continue
            vals[c] = v
            grp[c] = g
            if v < 0:
                n_neg += 1
            c += 1
        vals = vals[:c]
        order = np.argsort(vals)
        n_zero = n_total - c
        cnt = np.zeros(n_groups, np.int64)
        tie = 0.0
        t0 = 0
        while t0 < c:
            v0 = vals[order[t0]]
            t1 = t0 + 1
            while t1 < c and vals[order[t1]] == v0:
                t1 += 1
            base = t0 if v0 < 0 else t0 + n_zero
            r = base + (t1 - t0 + 1) / 2.0
            for t in range(t0, t1):
                g = grp[order[t]]
                if g >= 0:
                    rsum[j, g] += r
                    cnt[g] += 1
            w = np.float64(t1 - t0)
            tie += w * w * w - w
            t0 = t1
        zero_rank = n_neg + (n_zero + 1) / 2.0
        for g in range(n_groups):
            rsum[j, g] += (sizes[g] - cnt[g]) * zero_rank
        w = np.float64(n_zero)
        ties[j] = tie + (w * w * w - w)
    return rsum, ties


@numba.njit(parallel=True, cache=True)
def _rank_sums_dense(x, codes, sizes, n_total, n_groups):
    # dense data: the same ranking with every entry taking part (zeros sort as values)
    n_genes = x.shape[1]
    keep = np.flatnonzero(codes != -2)
    rsum = np.zeros((n_genes, n_groups))
    ties = np.zeros(n_genes)
    for j in numba.prange(n_genes):
        vals = np.empty(keep.size, x.dtype)
        grp = np.empty(keep.size, np.int64)
        for t in range(keep.size):
            vals[t] = x[keep[t], j]
            grp[t] = codes[keep[t]]
        order = np.argsort(vals)
        c = keep.size
        tie = 0.0
        t0 = 0
        while t0 < c:
            v0 = vals[order[t0]]
            t1 = t0 + 1
            while t1 < c and vals[order[t1]] == v0:
                t1 += 1
            r = t0 + (t1 - t0 + 1) / 2.0
            for t in range(t0, t1):
                g = grp[order[t]]
                if g >= 0:
                    rsum[j, g] += r
            w = np.float64(t1 - t0)
            tie += w * w * w - w
            t0 = t1
        ties[j] = tie
    return rsum, ties


def rank_sums(x, codes: np.ndarray, n_groups: int, *, chunk: int = 2_000_000):
    """Wilcoxon rank sums of each group, ranking every gene once.

    Parameters
    ----------
    x
        cells x genes (CSR, CSC or dense); never changed.
    codes
        per cell: group index ``0..n_groups-1``, ``-1`` ranked but in no group,
        ``-2`` left out of the ranking.
    n_groups
        number of groups.
    chunk
        dense input is processed in column blocks of about this many entries.

    Returns
    -------
    ``(rank_sums, tie_sums, n_total)``: ``rank_sums`` is ``(n_groups, n_genes)``,
    ``tie_sums[j] = sum(t^3 - t)`` over the tie blocks of gene ``j``, ``n_total`` the
    number of ranked cells.
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    n_total = int((codes != -2).sum())
    if sp.issparse(x):
        x = x.tocsc() if x.format != "csc" else x  # one sparse copy; no dense block is ever made
        rs, ties = _rank_sums_csc(x.data, x.indices, x.indptr, codes, sizes, n_total, n_groups)
        return np.ascontiguousarray(rs.T), ties, n_total
    x = np.asarray(x)
    step = max(1, chunk // max(1, x.shape[0]))
    parts, tparts = [], []
    for left in range(0, x.shape[1], step):
        block = np.asfortranarray(x[:, left : left + step])
        rs, ties = _rank_sums_dense(block, codes, sizes, n_total, n_groups)
        parts.append(rs)
        tparts.append(ties)
    if not parts:
        return np.zeros((n_groups, 0)), np.zeros(0), n_total
    return np.ascontiguousarray(np.concatenate(parts).T), np.concatenate(tparts), n_total
