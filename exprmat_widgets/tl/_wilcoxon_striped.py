"""Wilcoxon rank sums on a CSR with sorted indices, without a CSC copy (the path
:func:`exprmat_widgets.tl._wilcoxon.rank_sums` takes for float32 CSR data).

The genes are cut into stripes of about equal non-zeros, one per Python thread; a thread
reads its stripe in batches of genes (a cursor per row remembers where each row stands),
packs the batch's non-zeros into uint64 keys grouped by gene (gene | order-preserving value
bits | group code), sorts them with numpy (the GIL released) and walks them with the
per-gene kernels of :mod:`._wilcoxon` (numba, ``nogil``).  The group sums of the t-test
statistics are filled in the same pass.  Written by hand: scanpy ranks a dense copy per gene
block and illico keeps a CSC copy; this reads the CSR as stored, with one batch of keys per
thread as the only large temporary.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._numba import njit_parallel
from ._wilcoxon import _CHUNK_GENES, _add_stat, _walk_ref_gene, _walk_rest_gene

__all__ = ["n_threads"]


@njit_parallel(cache=True)
def _count_by_gene_blocks(indices, indptr, data, codes, n_genes, n_blocks):
    # integer counts: the sum over row blocks is the same whatever the block count
    n_rows = indptr.size - 1
    part = np.zeros((n_blocks, n_genes), np.int64)
    for b in numba.prange(n_blocks):
        for i in range(b * n_rows // n_blocks, (b + 1) * n_rows // n_blocks):
            if codes[i] == -2:
                continue
            for k in range(indptr[i], indptr[i + 1]):
                if data[k] != 0:
                    part[b, indices[k]] += 1
    return part.sum(axis=0)


@numba.njit(cache=True, nogil=True)
def _row_starts(indices, indptr, g0, cur):
    """``cur[i]``: offset in row ``i`` (sorted indices) of its first entry of a gene >= ``g0``."""
    for i in range(indptr.size - 1):
        a = indptr[i]
        cur[i] = np.searchsorted(indices[a : indptr[i + 1]], g0)


@numba.njit(cache=True, nogil=True)
def _fill_batch_csr(indices, indptr, bits, data, codes, n_groups, cur, g0, g1, off, keys, s, q, nz, stats):
    """Keys of the genes ``[g0, g1)`` of sorted-index CSR data, grouped by gene (gene ``j``
    at ``keys[off[j - g0]:off[j - g0 + 1]]``, in cell order).  ``cur[i]``: where row ``i``
    stands (moved on to ``g1``).  With ``stats``, also the sums of :func:`group_stats` for
    these genes, added in cell order like ``_stats_csr`` (so they are the same bits)."""
    pos = off[:-1].copy()
    for i in range(indptr.size - 1):
        g = codes[i]
        code = np.uint64(g + 1)
        k = indptr[i] + cur[i]
        end = indptr[i + 1]
        while k < end:
            j = indices[k]
            if j >= g1:
                break
            v = data[k]
            k += 1
            if v == 0:
                continue
            if stats:
                _add_stat(s, q, nz, n_groups, g, j, v)
            if g == -2:
                continue
            u = np.uint64(bits[k - 1])
            if u & np.uint64(0x80000000):
                u = ~u & np.uint64(0xFFFFFFFF)
            else:
                u = u | np.uint64(0x80000000)
            jl = j - g0
            keys[pos[jl]] = (np.uint64(jl) << np.uint64(44)) | (u << np.uint64(12)) | code
            pos[jl] += 1
        cur[i] = k - indptr[i]


@numba.njit(cache=True, nogil=True)
def _walk_batch_rest(keys, off, sizes, n_total, n_groups, g0, rsum, ties):
    for jl in range(off.size - 1):
        _walk_rest_gene(keys, off[jl], off[jl + 1], g0 + jl, sizes, n_total, n_groups, rsum, ties)


@numba.njit(cache=True, nogil=True)
def _walk_batch_ref(keys, off, sizes, n_groups, ref, g0, rsum, ties):
    for jl in range(off.size - 1):
        _walk_ref_gene(keys, off[jl], off[jl + 1], g0 + jl, sizes, n_groups, ref, rsum, ties)


#: keys sorted by one numpy call: about half a core's L2 cache (8 bytes a key)
_SORT_KEYS = 1 << 15


def _sort_by_gene(keys, off):
    """Sort the keys of each gene (they are grouped by gene) in pieces that stay in cache;
    a piece holds whole genes, so sorting it (gene in the high bits) sorts each gene."""
    n_genes = off.size - 1
    a = 0
    while a < n_genes:
        b = int(np.searchsorted(off, off[a] + _SORT_KEYS, side="right")) - 1
        b = min(max(b, a + 1), n_genes)
        keys[off[a] : off[b]].sort()  # numpy releases the GIL: threads sort in parallel
        a = b


@numba.njit(cache=True, nogil=True)
def _rows_sorted(indices, indptr):
    for i in range(indptr.size - 1):
        for k in range(indptr[i] + 1, indptr[i + 1]):
            if indices[k] < indices[k - 1]:
                return False
    return True


def n_threads() -> int:
    """Threads of the Wilcoxon test: ``em.settings.n_threads``, by default numba's
    (``numba.get_num_threads()``, what scanpy uses)."""
    from .._settings import settings

    return settings.n_threads or max(1, numba.get_num_threads())


def _packed_csr(x, codes, n_groups, *, ref, n_total, stats, threads, max_entries):
    """:func:`_packed` for CSR data with sorted indices, without a CSC copy: the genes are cut
    into stripes of about equal entries, taken by ``threads`` Python threads; a thread reads
    its stripe in batches of genes (a cursor per row remembers where each row stands), packs
    the batch's keys grouped by gene, sorts them (numpy, GIL released) and walks them (numba,
    ``nogil``).  Every gene is computed alone from its own entries in cell order, so the
    result does not depend on the thread count or the batch size."""
    n_genes = x.shape[1]
    rsum = np.zeros((n_genes, n_groups))
    ties = np.zeros(n_genes) if ref is None else np.zeros((n_genes, n_groups))
    bits = x.data.view(np.uint32)
    indptr = x.indptr.astype(np.int64, copy=False)
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    cnt = _count_by_gene_blocks(x.indices, indptr, x.data, codes, n_genes, max(1, numba.get_num_threads()))
    cum = np.zeros(n_genes + 1, np.int64)
    np.cumsum(cnt, out=cum[1:])
    total = int(cum[-1])
    n_stripes = max(1, min(n_genes, 2 * threads if threads > 1 else 1))
    bounds = np.searchsorted(cum, np.linspace(0, total, n_stripes + 1), side="left")
    bounds[0], bounds[-1] = 0, n_genes
    bounds = np.unique(bounds)
    # a batch per thread: the entries of ~256 average genes (illico's chunk; 8 bytes a key is
    # less than its CSC copy), but enough that rows are not revisited too often (each visit
    # of a row is a cache miss), and bounded
    budget = int(min(max(total * 256 // max(n_genes, 1), max_entries // 2), 4 * max_entries))
    if stats:
        shape = (n_groups + 1, n_genes)
        s_out = (np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int64))
    else:
        s_out = (np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1), np.int64))

    def stripe(h0, h1):
        cur = np.empty(indptr.size - 1, np.int64)
        _row_starts(x.indices, indptr, h0, cur)
        buf = np.empty(min(budget, int(cum[h1] - cum[h0])) + 1, np.uint64)
        g0 = h0
        while g0 < h1:
            g1 = int(np.searchsorted(cum, cum[g0] + budget, side="right")) - 1
            g1 = min(max(g1, g0 + 1), h1, g0 + _CHUNK_GENES)
            off = cum[g0 : g1 + 1] - cum[g0]
            keys = buf[: off[-1]] if off[-1] <= buf.size else np.empty(int(off[-1]), np.uint64)
            _fill_batch_csr(x.indices, indptr, bits, x.data, codes, n_groups, cur, g0, g1, off, keys,
                            *s_out, stats)
            _sort_by_gene(keys, off)
            if ref is None:
                _walk_batch_rest(keys, off, sizes, n_total, n_groups, g0, rsum, ties)
            else:
                _walk_batch_ref(keys, off, sizes, n_groups, ref, g0, rsum, ties)
            g0 = g1

    pieces = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    if threads <= 1 or len(pieces) <= 1:
        for h0, h1 in pieces:
            stripe(h0, h1)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for f in [pool.submit(stripe, h0, h1) for h0, h1 in pieces]:
                f.result()
    return rsum, ties, (s_out if stats else None)
