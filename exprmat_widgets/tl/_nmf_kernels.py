"""Numba kernels of the consensus-NMF replicates: one coordinate-descent iteration for a
stack of replicates, with the sparse products fused into the pass over the rows.

Math: scikit-learn's ``solver='cd'`` iteration (Frobenius loss, no regularisation,
cyclic order): the W update uses ``X @ H.T`` and ``H @ H.T``, then the H update uses
``X.T @ W`` (of the *updated* W) and ``W.T @ W``.  Each coordinate update is the
same expression as sklearn's ``_update_cdnmf_fast``:

    grad = -XHt[i, t] + sum_r HHt[t, r] * W[i, r]      (r in increasing order)
    pg   = min(grad, 0) if W[i, t] == 0 else grad      (violation += |pg|)
    W[i, t] = max(W[i, t] - grad / HHt[t, t], 0)      (if HHt[t, t] != 0)

What differs is only where the work happens:

* rows are independent, so a block of ``B`` rows is updated together, with the
  block held transposed (``k x B``) so the inner loops run over rows (SIMD lanes);
* one pass over the CSR rows of ``X`` computes ``X @ H.T`` for a block, updates the
  block of W and immediately scatters ``X.T @ W_new`` for the same rows: ``X`` is
  read once per iteration instead of twice;
* ``R`` replicates (of any ``k``) are stacked side by side (``W`` is
  ``n x sum(k)``) so the per-nonzero work is one long contiguous vector.

Every quantity is computed in a fixed order that depends only on the shapes (not on
threads), so a run is bit-identical on replay.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 64  # rows per block: a k x BLOCK tile of W and of X @ H.T stays in L1


@njit(nogil=True, cache=True, error_model="numpy")
def _cd_block(wT, xhT, G, offs, nb, vacc, grad):
    """Coordinate-descent sweep of ``nb`` rows held transposed (``wT``: m x B; replicate
    ``r`` owns rows ``offs[r]:offs[r+1]``) with ``xhT`` (m x B) the matching rows of
    ``X @ H.T`` and ``G`` (R x kmax x kmax) the Grams.

    The gradient sum runs over ``s`` in increasing order, four terms per pass
    (``(((g + a) + b) + c) + d`` keeps the sequential rounding)."""
    n_rep = offs.shape[0] - 1
    for r in range(n_rep):
        base = offs[r]
        k = offs[r + 1] - base
        k4 = k - k % 4
        for t in range(k):
            c = base + t
            Gt = G[r, t]
            for ii in range(nb):
                grad[ii] = -xhT[c, ii]
            for s in range(0, k4, 4):
                g0 = Gt[s]
                g1 = Gt[s + 1]
                g2 = Gt[s + 2]
                g3 = Gt[s + 3]
                a0 = wT[base + s]
                a1 = wT[base + s + 1]
                a2 = wT[base + s + 2]
                a3 = wT[base + s + 3]
                for ii in range(nb):
                    grad[ii] = (((grad[ii] + g0 * a0[ii]) + g1 * a1[ii]) + g2 * a2[ii]) + g3 * a3[ii]
            for s in range(k4, k):
                gts = Gt[s]
                src = wT[base + s]
                for ii in range(nb):
                    grad[ii] += gts * src[ii]
            row = wT[c]
            hess = Gt[t]
            va = vacc[r]
            if hess != 0:
                for ii in range(nb):
                    w = row[ii]
                    gr = grad[ii]
                    pg = gr if (w != 0 or gr < 0) else 0
                    va[ii] += abs(pg)
                    row[ii] = max(w - gr / hess, 0)
            else:
                for ii in range(nb):
                    w = row[ii]
                    gr = grad[ii]
                    pg = gr if (w != 0 or gr < 0) else 0
                    va[ii] += abs(pg)


SUPER = 16 * BLOCK  # rows per scatter block: their share of W stays in L2


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _add_scaled_rows(out, vals, idx, M, offset, p0, p1):
    """``out += sum(vals[p] * M[offset + idx[p]] for p in p0..p1)``, four terms per pass as
    ``(((a + x) + y) + z) + w``, which keeps the rounding of the plain sequential sum."""
    m = out.shape[0]
    p4 = p0 + (p1 - p0) // 4 * 4
    for p in range(p0, p4, 4):
        v0 = vals[p]
        v1 = vals[p + 1]
        v2 = vals[p + 2]
        v3 = vals[p + 3]
        r0 = M[offset + idx[p]]
        r1 = M[offset + idx[p + 1]]
        r2 = M[offset + idx[p + 2]]
        r3 = M[offset + idx[p + 3]]
        for c in range(m):
            out[c] = (((out[c] + v0 * r0[c]) + v1 * r1[c]) + v2 * r2[c]) + v3 * r3[c]
    for p in range(p4, p1):
        v = vals[p]
        r = M[offset + idx[p]]
        for c in range(m):
            out[c] += v * r[c]


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _sweep_rows(W, i0, nb, xh_rows, G, offs, xhT, wT, vacc, grad):
    """Coordinate-descent sweep of rows ``i0:i0+nb`` of ``W`` given their ``X @ H.T`` rows
    (``xh_rows[ii]`` for row ``i0+ii``): transposed into lane-major buffers, swept by
    :func:`_cd_block`, written back."""
    m = W.shape[1]
    for ii in range(nb):
        wrow = W[i0 + ii]
        xrow = xh_rows[ii]
        for c in range(m):
            xhT[c, ii] = xrow[c]
            wT[c, ii] = wrow[c]
    _cd_block(wT, xhT, G, offs, nb, vacc, grad)
    for ii in range(nb):
        wrow = W[i0 + ii]
        for c in range(m):
            wrow[c] = wT[c, ii]


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _add_lanes(vacc, viol):
    """Add each replicate's violation, summed lane by lane in a fixed order, to ``viol``."""
    for r in range(vacc.shape[0]):
        acc = 0.0
        for ii in range(vacc.shape[1]):
            acc += vacc[r, ii]
        viol[r] += acc


def block_csc(X, super_rows=SUPER):
    """Column-major copy of ``X`` (CSR) per block of ``super_rows`` rows: ``ptr``
    (n_blocks x (g+1)) offsets into ``rows`` (row within the block, increasing) and
    ``vals``.  Used to scatter ``X.T @ W`` one block at a time."""
    n, g = X.shape
    nblk = (n + super_rows - 1) // super_rows
    ptr = np.empty((nblk, g + 1), dtype=np.int64)
    rows, vals = [], []
    off = 0
    for b in range(nblk):
        blk = X[b * super_rows : (b + 1) * super_rows].tocsc()
        blk.sort_indices()
        ptr[b] = blk.indptr.astype(np.int64) + off
        rows.append(blk.indices.astype(np.int32))
        vals.append(np.asarray(blk.data, dtype=X.dtype))
        off += blk.nnz
    return ptr, np.concatenate(rows), np.concatenate(vals)


@njit(nogil=True, cache=True, error_model="numpy")
def w_pass(indptr, indices, data, bptr, brows, bvals, W, Ht, G, offs, XtW, viol):
    """Update W (n x m, in place) for ``R`` stacked replicates (replicate ``r`` owns
    columns ``offs[r]:offs[r+1]``) given ``Ht`` (g x m) and ``G`` (R x kmax x kmax,
    ``H_r @ H_r.T``); fills ``XtW`` (g x m) with ``X.T @ W_new`` and adds each
    replicate's violation to ``viol`` (R).

    ``indptr/indices/data``: CSR of X; ``bptr/brows/bvals``: :func:`block_csc` of X.
    Sums over nonzeros run four terms per pass, ``(((a + x) + y) + z) + w``, which
    keeps the rounding of the plain sequential sum."""
    n, m = W.shape
    g = Ht.shape[0]
    n_rep = offs.shape[0] - 1
    dt = W.dtype
    xh = np.empty((BLOCK, m), dtype=dt)
    xhT = np.empty((m, BLOCK), dtype=dt)
    wT = np.empty((m, BLOCK), dtype=dt)
    grad = np.empty(BLOCK, dtype=dt)
    vacc = np.zeros((n_rep, BLOCK))
    XtW[:, :] = 0
    for s0 in range(0, n, SUPER):
        s1 = min(n, s0 + SUPER)
        for i0 in range(s0, s1, BLOCK):
            nb = min(BLOCK, s1 - i0)
            # X @ H.T for the block (row-major, contiguous over the stacked columns)
            for ii in range(nb):
                acc = xh[ii]
                acc[:] = 0
                i = i0 + ii
                _add_scaled_rows(acc, data, indices, Ht, 0, indptr[i], indptr[i + 1])
            _sweep_rows(W, i0, nb, xh, G, offs, xhT, wT, vacc, grad)
        # X.T @ W_new, this block of rows' share (rows in increasing order per gene)
        b = s0 // SUPER
        for j in range(g):
            e0 = bptr[b, j]
            e1 = bptr[b, j + 1]
            if e0 == e1:
                continue
            _add_scaled_rows(XtW[j], bvals, brows, W, s0, e0, e1)

    _add_lanes(vacc, viol)


@njit(nogil=True, cache=True, error_model="numpy")
def dense_pass(W, G, XH, offs, viol):
    """Coordinate-descent sweep of ``W`` (rows x m, in place; replicate ``r`` owns
    columns ``offs[r]:offs[r+1]``) given ``XH`` (same shape) and ``G`` (R x kmax x
    kmax); adds each replicate's violation to ``viol``."""
    n, m = W.shape
    n_rep = offs.shape[0] - 1
    dt = W.dtype
    xhT = np.empty((m, BLOCK), dtype=dt)
    wT = np.empty((m, BLOCK), dtype=dt)
    grad = np.empty(BLOCK, dtype=dt)
    vacc = np.zeros((n_rep, BLOCK))
    for i0 in range(0, n, BLOCK):
        nb = min(BLOCK, n - i0)
        _sweep_rows(W, i0, nb, XH[i0:i0 + nb], G, offs, xhT, wT, vacc, grad)

    _add_lanes(vacc, viol)


def grams(A, offs):
    """``A_r.T @ A_r`` of each stacked replicate (columns ``offs[r]:offs[r+1]`` of ``A``)
    as an R x kmax x kmax array (zero padded)."""
    n_rep = len(offs) - 1
    kmax = int(np.max(np.diff(offs)))
    out = np.zeros((n_rep, kmax, kmax), dtype=A.dtype)
    for r in range(n_rep):
        blk = A[:, offs[r] : offs[r + 1]]
        out[r, : blk.shape[1], : blk.shape[1]] = blk.T @ blk
    return out
