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
  For float32 data the non-zero entries of a chunk of genes are packed into one
  uint64 key each (gene | order-preserving value bits | group code) and sorted
  by numpy's vectorised sort, which is several times faster than sorting gene
  by gene; CSR input is read directly in a few gene chunks (no CSC copy, the
  keys of one chunk are the only large temporary; a CSR with sorted indices takes the
  threaded, striped path of :mod:`._wilcoxon_striped`); other dtypes use a per-gene
  argsort on a CSC copy.
* :func:`rank_sums_vs_reference` - the same for "each group against one
  reference group": one sort per gene serves every group, since the rank of an
  entry of group g among (g + reference) only counts the entries of g and of
  the reference below it (running counts per group while walking the sorted
  values).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from .._numba import njit_parallel

__all__ = ["group_stats", "rank_sums", "rank_sums_vs_reference"]

#: code of a cell that is ranked but belongs to no tested group / is left out entirely
REST = -1
LEFT_OUT = -2


@numba.njit(cache=True, inline="always")
def _add_stat(s, q, nz, n_groups, g, j, v):
    """Add the non-zero ``v`` of a cell of group ``g`` (or none, ``g < 0``) to gene ``j``."""
    sq = v * v  # in the data's own precision, like scanpy's mean-variance kernels
    s[n_groups, j] += v
    q[n_groups, j] += sq
    nz[n_groups, j] += 1
    if g >= 0:
        s[g, j] += v
        q[g, j] += sq
        nz[g, j] += 1


@numba.njit(cache=True, nogil=True)  # runs beside the read-ahead of the next cell block
def _stats_csr(data, indices, indptr, codes, n_groups, s, q, nz):
    for i in range(indptr.size - 1):
        g = codes[i]
        for k in range(indptr[i], indptr[i + 1]):
            v = data[k]
            if v == 0:
                continue
            _add_stat(s, q, nz, n_groups, g, indices[k], v)


@numba.njit(cache=True, nogil=True)
def _stats_dense(x, codes, n_groups, s, q, nz):
    n_genes = x.shape[1]
    for i in range(x.shape[0]):
        g = codes[i]
        for j in range(n_genes):
            v = x[i, j]
            if v == 0:
                continue
            _add_stat(s, q, nz, n_groups, g, j, v)


def group_stats(x, codes: np.ndarray, n_groups: int, *, out=None):
    """Per-group ``(sums, sums of squares, non-zero counts)``, each ``(n_groups + 1, n_genes)``;
    row ``g`` holds the cells with ``codes == g``, the last row all cells.  ``x`` is not changed.

    ``out``: the result for the cells before ``x`` (consecutive cell blocks, in order); the
    sums go on in the same order as for one matrix, so blocks give the same bits."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if out is None:
        shape = (n_groups + 1, x.shape[1])
        out = (np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int64))
    if sp.issparse(x):
        x = x.tocsr() if x.format != "csr" else x
        _stats_csr(x.data, x.indices, x.indptr, codes, n_groups, *out)
    else:
        _stats_dense(np.ascontiguousarray(x), codes, n_groups, *out)
    return out


@numba.njit(cache=True)
def _close_zero_block_rest(j, n_neg, n_zero, cnt, sizes, tie, rsum, ties):
    """Add the zero block of gene ``j`` (after the ``n_neg`` negative values) to every group's
    rank sum (``cnt[g]``: the group's entries ranked so far) and close its tie term."""
    zero_rank = n_neg + (n_zero + 1) / 2.0
    for g in range(rsum.shape[1]):
        rsum[j, g] += (sizes[g] - cnt[g]) * zero_rank
    w = np.float64(n_zero)
    ties[j] = tie + (w * w * w - w)


@njit_parallel(cache=True)
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
        _close_zero_block_rest(j, n_neg, n_zero, cnt, sizes, tie, rsum, ties)
    return rsum, ties


@njit_parallel(cache=True)
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


@numba.njit(cache=True)
def _close_tie_block_ref(j, positive, touched, n_t, bc, below, nnz, sizes, ref, zero_ref, rsum, ties):
    """Add one block of tied non-zero values of gene ``j`` (``bc[g]`` entries of each touched
    group ``g``) to the rank sums of "group vs reference"; returns the reference's tie term."""
    bref = bc[ref]
    fref = np.float64(bref)
    ref_tie = fref * fref * fref - fref
    for u in range(n_t):
        g = touched[u]
        if g == ref:
            continue
        zeros = 0
        if positive:  # the zero block of g and of the reference ranks below this block
            zeros = (sizes[g] - nnz[g]) + zero_ref
        base = below[g] + below[ref] + zeros
        w = bc[g] + bref
        rsum[j, g] += bc[g] * (base + (w + 1) / 2.0)
        fw = np.float64(w)
        ties[j, g] += (fw * fw * fw - fw) - ref_tie
    for u in range(n_t):
        g = touched[u]
        below[g] += bc[g]
        bc[g] = 0
    return ref_tie


@numba.njit(cache=True)
def _close_zero_block_ref(j, n_groups, ref, nnz, neg, sizes, zero_ref, common, rsum, ties):
    """Add the zero block of gene ``j`` (ranked after the negative values) for every group."""
    for g in range(n_groups):
        if g == ref:
            continue
        zc = (sizes[g] - nnz[g]) + zero_ref
        zero_rank = neg[g] + neg[ref] + (zc + 1) / 2.0
        rsum[j, g] += (sizes[g] - nnz[g]) * zero_rank
        fz = np.float64(zc)
        ties[j, g] += common + (fz * fz * fz - fz)


@njit_parallel(cache=True)
def _rank_sums_ref_csc(data, indices, indptr, codes, sizes, n_groups, ref):
    # every group against one reference group, one sort per gene: the rank of an entry of
    # group g within (g + reference) counts only entries of g and of the reference below it
    n_genes = indptr.size - 1
    rsum = np.zeros((n_genes, n_groups))
    ties = np.zeros((n_genes, n_groups))
    for j in numba.prange(n_genes):
        a = indptr[j]
        b = indptr[j + 1]
        vals = np.empty(b - a, data.dtype)
        grp = np.empty(b - a, np.int64)
        nnz = np.zeros(n_groups, np.int64)
        neg = np.zeros(n_groups, np.int64)
        c = 0
        for k in range(a, b):
            g = codes[indices[k]]
            v = data[k]
            if g < 0 or v == 0:
                continue
            vals[c] = v
            grp[c] = g
            nnz[g] += 1
            if v < 0:
                neg[g] += 1
            c += 1
        vals = vals[:c]
        order = np.argsort(vals)
        below = np.zeros(n_groups, np.int64)
        bc = np.zeros(n_groups, np.int64)
        touched = np.empty(n_groups, np.int64)
        common = 0.0
        zero_ref = sizes[ref] - nnz[ref]
        t0 = 0
        while t0 < c:
            v0 = vals[order[t0]]
            t1 = t0 + 1
            while t1 < c and vals[order[t1]] == v0:
                t1 += 1
            n_t = 0
            for t in range(t0, t1):
                g = grp[order[t]]
                if bc[g] == 0:
                    touched[n_t] = g
                    n_t += 1
                bc[g] += 1
            common += _close_tie_block_ref(j, v0 > 0, touched, n_t, bc, below, nnz, sizes, ref,
                                           zero_ref, rsum, ties)
            t0 = t1
        _close_zero_block_ref(j, n_groups, ref, nnz, neg, sizes, zero_ref, common, rsum, ties)
    return rsum, ties


def rank_sums_vs_reference(x, codes: np.ndarray, n_groups: int, ref: int, *, with_stats: bool = False):
    """Wilcoxon rank sums of each group ranked together with the reference group ``ref`` only.

    ``codes`` as in :func:`rank_sums` (cells of other groups: any negative code).  Returns
    ``(rank_sums, tie_sums)``, both ``(n_groups, n_genes)``; row ``ref`` is unused.  Sparse
    input is ranked in one pass; dense input falls back to one :func:`rank_sums` per group.
    ``with_stats``: also return :func:`group_stats` of ``x`` and ``codes`` (from the same
    pass over sorted CSR data, else computed apart).
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out = _rank_sums_vs_reference(x, codes, n_groups, ref, with_stats)
    if not with_stats:
        return out[:2]
    return out if out[2] is not None else (*out[:2], group_stats(x, codes, n_groups))


def _rank_sums_vs_reference(x, codes, n_groups, ref, with_stats):
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    if _packable(x, n_groups):
        # the stats treat every negative code alike (all-cells row only)
        rs, ties, st = _packed(x, np.where(codes >= 0, codes, LEFT_OUT), n_groups, ref=ref, stats=with_stats)
        return np.ascontiguousarray(rs.T), np.ascontiguousarray(ties.T), st
    if sp.issparse(x):
        x = x.tocsc() if x.format != "csc" else x
        rs, ties = _rank_sums_ref_csc(x.data, x.indices, x.indptr, codes, sizes, n_groups, ref)
        return np.ascontiguousarray(rs.T), np.ascontiguousarray(ties.T), None
    rs = np.zeros((n_groups, x.shape[1]))
    ties = np.zeros((n_groups, x.shape[1]))
    for g in range(n_groups):
        if g == ref:
            continue
        sub = np.full(codes.size, LEFT_OUT, dtype=np.int64)
        sub[codes == ref] = REST
        sub[codes == g] = 0
        r, t, _ = rank_sums(x, sub, 1)
        rs[g], ties[g] = r[0], t
    return rs, ties, None


# ---- float32 sparse data: one packed key per entry, sorted by numpy (SIMD) instead of
# per-gene argsorts.  key = local gene (20 bits) | order-preserving value bits (32) | code + 1 (12)

_CODE_BITS = 12
_MAX_GROUPS = (1 << _CODE_BITS) - 2
_CHUNK_GENES = 1 << 20


@njit_parallel(cache=True)
def _count_included(indices, indptr, data, codes, g0, g1):
    out = np.zeros(g1 - g0, np.int64)
    for jl in numba.prange(g1 - g0):
        j = g0 + jl
        n = 0
        for k in range(indptr[j], indptr[j + 1]):
            if codes[indices[k]] != -2 and data[k] != 0:
                n += 1
        out[jl] = n
    return out


@njit_parallel(cache=True)
def _fill_keys(indices, indptr, bits, data, codes, g0, g1, off, keys):
    for jl in numba.prange(g1 - g0):
        j = g0 + jl
        p = off[jl]
        hi = np.uint64(jl) << np.uint64(44)
        for k in range(indptr[j], indptr[j + 1]):
            g = codes[indices[k]]
            if g == -2 or data[k] == 0:
                continue
            u = np.uint64(bits[k])
            if u & np.uint64(0x80000000):
                u = ~u & np.uint64(0xFFFFFFFF)
            else:
                u = u | np.uint64(0x80000000)
            keys[p] = hi | (u << np.uint64(12)) | np.uint64(g + 1)
            p += 1


@numba.njit(cache=True, nogil=True)
def _walk_rest_gene(keys, a, b, j, sizes, n_total, n_groups, rsum, ties):
    """Rank sums of gene ``j`` from its sorted keys ``keys[a:b]`` (each group against the rest)."""
    c = b - a
    n_neg = 0
    while n_neg < c and ((keys[a + n_neg] >> np.uint64(12)) & np.uint64(0xFFFFFFFF)) < np.uint64(0x80000000):
        n_neg += 1
    n_zero = n_total - c
    cnt = np.zeros(n_groups, np.int64)
    tie = 0.0
    t0 = 0
    while t0 < c:
        v0 = keys[a + t0] >> np.uint64(12)
        t1 = t0 + 1
        while t1 < c and (keys[a + t1] >> np.uint64(12)) == v0:
            t1 += 1
        base = t0 if t0 < n_neg else t0 + n_zero
        r = base + (t1 - t0 + 1) / 2.0
        for t in range(t0, t1):
            g = np.int64(keys[a + t] & np.uint64(0xFFF)) - 1
            if g >= 0:
                rsum[j, g] += r
                cnt[g] += 1
        w = np.float64(t1 - t0)
        tie += w * w * w - w
        t0 = t1
    _close_zero_block_rest(j, n_neg, n_zero, cnt, sizes, tie, rsum, ties)


@numba.njit(cache=True, nogil=True)
def _walk_ref_gene(keys, a, b, j, sizes, n_groups, ref, rsum, ties):
    """Rank sums of gene ``j`` from its sorted keys ``keys[a:b]`` (each group against ``ref``)."""
    c = b - a
    nnz = np.zeros(n_groups, np.int64)
    neg = np.zeros(n_groups, np.int64)
    for t in range(c):
        g = np.int64(keys[a + t] & np.uint64(0xFFF)) - 1
        nnz[g] += 1
        if ((keys[a + t] >> np.uint64(12)) & np.uint64(0xFFFFFFFF)) < np.uint64(0x80000000):
            neg[g] += 1
    below = np.zeros(n_groups, np.int64)
    bc = np.zeros(n_groups, np.int64)
    touched = np.empty(n_groups, np.int64)
    common = 0.0
    zero_ref = sizes[ref] - nnz[ref]
    t0 = 0
    while t0 < c:
        v0 = keys[a + t0] >> np.uint64(12)
        positive = (v0 & np.uint64(0xFFFFFFFF)) >= np.uint64(0x80000000)
        t1 = t0 + 1
        while t1 < c and (keys[a + t1] >> np.uint64(12)) == v0:
            t1 += 1
        n_t = 0
        for t in range(t0, t1):
            g = np.int64(keys[a + t] & np.uint64(0xFFF)) - 1
            if bc[g] == 0:
                touched[n_t] = g
                n_t += 1
            bc[g] += 1
        common += _close_tie_block_ref(j, positive, touched, n_t, bc, below, nnz, sizes, ref,
                                       zero_ref, rsum, ties)
        t0 = t1
    _close_zero_block_ref(j, n_groups, ref, nnz, neg, sizes, zero_ref, common, rsum, ties)


@njit_parallel(cache=True)
def _walk_rest(keys, off, sizes, n_total, n_groups, g0, rsum, ties):
    for jl in numba.prange(off.size - 1):
        _walk_rest_gene(keys, off[jl], off[jl + 1], g0 + jl, sizes, n_total, n_groups, rsum, ties)


@njit_parallel(cache=True)
def _walk_ref(keys, off, sizes, n_groups, ref, g0, rsum, ties):
    for jl in numba.prange(off.size - 1):
        _walk_ref_gene(keys, off[jl], off[jl + 1], g0 + jl, sizes, n_groups, ref, rsum, ties)


@numba.njit(cache=True)
def _count_by_gene_csr(indices, indptr, data, codes, n_genes):
    cnt = np.zeros(n_genes, np.int64)
    for i in range(indptr.size - 1):
        if codes[i] == -2:
            continue
        for k in range(indptr[i], indptr[i + 1]):
            if data[k] != 0:
                cnt[indices[k]] += 1
    return cnt


@numba.njit(cache=True)
def _fill_keys_csr(indices, indptr, bits, data, codes, g0, g1, sorted_indices, keys):
    # keys of the genes [g0, g1) in any order (they are sorted afterwards)
    p = 0
    for i in range(indptr.size - 1):
        g = codes[i]
        if g == -2:
            continue
        code = np.uint64(g + 1)
        a = indptr[i]
        b = indptr[i + 1]
        if sorted_indices:
            a = a + np.searchsorted(indices[a:b], g0)
        for k in range(a, b):
            j = indices[k]
            if j >= g1:
                if sorted_indices:
                    break
                continue
            if j < g0 or data[k] == 0:
                continue
            u = np.uint64(bits[k])
            if u & np.uint64(0x80000000):
                u = ~u & np.uint64(0xFFFFFFFF)
            else:
                u = u | np.uint64(0x80000000)
            keys[p] = (np.uint64(j - g0) << np.uint64(44)) | (u << np.uint64(12)) | code
            p += 1




def _packed(x, codes, n_groups, *, ref=None, n_total=0, max_entries=4_000_000, stats=False, threads=None):
    """Rank sums of float32 CSC or CSR data via sorted packed keys, in gene chunks.

    A chunk holds at most ``max(max_entries, entries / 8)`` keys (8 bytes each), so the
    extra memory stays well below one copy of the matrix; CSR input is read once per
    chunk (at most 8 chunks unless the data are small) without a CSC copy.
    """
    from ._wilcoxon_striped import _packed_csr, _rows_sorted, n_threads  # it imports this module

    # the striped kernels index by the row order: a CSR only flagged as sorted (the flag can
    # be set by hand) is checked, so it cannot make them read or write out of bounds
    if x.format == "csr" and x.has_sorted_indices and _rows_sorted(x.indices, x.indptr):
        return _packed_csr(x, codes, n_groups, ref=ref, n_total=n_total, stats=stats,
                           threads=n_threads() if threads is None else threads, max_entries=max_entries)
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    n_genes = x.shape[1]
    rsum = np.zeros((n_genes, n_groups))
    ties = np.zeros(n_genes) if ref is None else np.zeros((n_genes, n_groups))
    bits = x.data.view(np.uint32)
    indptr = x.indptr.astype(np.int64, copy=False)
    csr = x.format == "csr"
    if csr:
        cnt_all = _count_by_gene_csr(x.indices, indptr, x.data, codes, n_genes)
    else:
        cnt_all = _count_included(x.indices, indptr, x.data, codes, 0, n_genes)
    cum = np.zeros(n_genes + 1, np.int64)
    np.cumsum(cnt_all, out=cum[1:])
    budget = max(max_entries, int(cum[-1]) // 8 + 1)
    g0 = 0
    while g0 < n_genes:
        # as many genes as fit in the budget (at least one)
        g1 = int(np.searchsorted(cum, cum[g0] + budget, side="right")) - 1
        g1 = min(max(g1, g0 + 1), n_genes, g0 + _CHUNK_GENES)
        off = cum[g0 : g1 + 1] - cum[g0]
        keys = np.empty(int(off[-1]), np.uint64)
        if csr:
            _fill_keys_csr(x.indices, indptr, bits, x.data, codes, g0, g1, bool(x.has_sorted_indices), keys)
        else:
            _fill_keys(x.indices, indptr, bits, x.data, codes, g0, g1, off, keys)
        keys.sort()
        if ref is None:
            _walk_rest(keys, off, sizes, n_total, n_groups, g0, rsum, ties)
        else:
            _walk_ref(keys, off, sizes, n_groups, ref, g0, rsum, ties)
        del keys
        g0 = g1
    return rsum, ties, None


def _packable(x, n_groups):
    return sp.issparse(x) and x.format in ("csr", "csc") and x.dtype == np.float32 and n_groups <= _MAX_GROUPS


def rank_sums(x, codes: np.ndarray, n_groups: int, *, chunk: int = 2_000_000, with_stats: bool = False):
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

    with_stats
        also return :func:`group_stats` of ``x`` and ``codes`` (from the same pass over
        sorted CSR data, else computed apart).

    Returns
    -------
    ``(rank_sums, tie_sums, n_total)``: ``rank_sums`` is ``(n_groups, n_genes)``,
    ``tie_sums[j] = sum(t^3 - t)`` over the tie blocks of gene ``j``, ``n_total`` the
    number of ranked cells; with ``with_stats``, :func:`group_stats` follows.
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out = _rank_sums(x, codes, n_groups, chunk, with_stats)
    if not with_stats:
        return out[:3]
    return out if out[3] is not None else (*out[:3], group_stats(x, codes, n_groups))


def _rank_sums(x, codes, n_groups, chunk, with_stats):
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    n_total = int((codes != -2).sum())
    if _packable(x, n_groups):
        rs, ties, st = _packed(x, codes, n_groups, n_total=n_total, stats=with_stats)
        return np.ascontiguousarray(rs.T), ties, n_total, st
    if sp.issparse(x):
        x = x.tocsc() if x.format != "csc" else x  # one sparse copy; no dense block is ever made
        rs, ties = _rank_sums_csc(x.data, x.indices, x.indptr, codes, sizes, n_total, n_groups)
        return np.ascontiguousarray(rs.T), ties, n_total, None
    x = np.asarray(x)
    step = max(1, chunk // max(1, x.shape[0]))
    parts, tparts = [], []
    for left in range(0, x.shape[1], step):
        block = np.asfortranarray(x[:, left : left + step])
        rs, ties = _rank_sums_dense(block, codes, sizes, n_total, n_groups)
        parts.append(rs)
        tparts.append(ties)
    if not parts:
        return np.zeros((n_groups, 0)), np.zeros(0), n_total, None
    return np.ascontiguousarray(np.concatenate(parts).T), np.concatenate(tparts), n_total, None
