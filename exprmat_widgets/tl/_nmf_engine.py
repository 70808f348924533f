"""Numerical core of consensus NMF: replicate factorisations, NNLS refits, consensus.

The replicates are scikit-learn's coordinate-descent NMF (``solver='cd'``,
Frobenius loss, ``init='random'``, ``tol``/``max_iter`` as in
:func:`sklearn.decomposition.non_negative_factorization`): the same random
initialisation, the same coordinate updates in the same order and the same
stopping rule, so a replicate lands where sklearn's does for the same seed (a
test checks this in float64).  What differs is how the work is done:

* the iterations run in numba kernels (:mod:`._nmf_kernels`): one fused pass over
  the rows of ``X`` computes ``X @ H.T`` for a block of cells, updates that block of
  ``W`` by coordinate descent vectorised across cells, and scatters its share of
  ``X.T @ W_new`` for the H update; sums over nonzeros are unrolled without
  changing their rounding;
* replicates of the same ``k`` are stacked side by side in a *stream* of
  ``width`` slots (one long contiguous vector per nonzero); a replicate that
  meets the stopping rule hands its slot to the next seed, so the stack stays
  wide; several streams (threads) may pull seeds from one queue;
* the factorisation runs in float32 (half the memory traffic);
* non-negative least-squares refits (``update_H=False`` in sklearn's terms)
  compute ``X @ H.T`` once instead of at every sweep: the result is the same,
  as ``H`` does not change;
* optional extra sweeps per product (``INNER_W``/``INNER_H`` > 1, Gillis &
  Glineur's accelerated HALS, on the older per-replicate path) reach the
  tolerance in fewer passes over ``X`` but move replicates to other local optima
  than sklearn's; off by default so the programs stay those of the ``cnmf``
  package.

A replicate's arithmetic does not depend on its slot, its neighbours, the width
or the thread running it, so results do not depend on the number of threads
(tested bit for bit).  Memory holds one stream per thread plus the pooled spectra.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:  # scikit-learn's compiled coordinate-descent sweep (what solver='cd' runs)
    from sklearn.decomposition._cdnmf_fast import _update_cdnmf_fast as _sk_sweep
except Exception:  # pragma: no cover - a future sklearn may move it
    _sk_sweep = None

try:  # numba kernels: stacked replicates, fused passes over X
    from . import _nmf_kernels as _kern
except Exception:  # pragma: no cover - numba missing
    _kern = None

# accelerated HALS (off: 1 = sklearn's plain coordinate descent): extra sweeps per
# product, stopped when a sweep's projected gradient falls below INNER_EPS times the first
INNER_W = 1
INNER_H = 1
INNER_EPS = 0.1
# width of a stream (replicates x k columns) and memory budget of one stream
CHUNK_COLS = 160
CHUNK_BYTES = 192 * 2**20


def _sweep_numpy(W, G, XHt, perm):
    """One cyclic coordinate-descent sweep over the columns of ``W`` (rows are
    independent, so a column at a time over all rows is the same update)."""
    viol = 0.0
    for t in perm:
        grad = W @ G[t] - XHt[:, t]
        wt = W[:, t]
        pg = np.where(wt == 0, np.minimum(grad, 0), grad)
        viol += float(np.abs(pg).sum())
        if G[t, t] != 0:
            W[:, t] = np.maximum(wt - grad / G[t, t], 0)
    return viol


def sweep(W, G, XHt, perm):
    if _sk_sweep is not None:
        return _sk_sweep(W, G, XHt, perm)
    return _sweep_numpy(W, G, XHt, perm)


def random_init(x_mean: float, n: int, g: int, k: int, seed: int, dtype):
    """sklearn's ``init='random'``: ``|N(0,1)| * sqrt(mean(X) / k)``, H drawn before W;
    returned as C-contiguous ``W`` (n x k) and ``H.T`` (g x k) of ``dtype``."""
    avg = np.sqrt(x_mean / k)
    rng = np.random.RandomState(seed)
    H = avg * rng.standard_normal(size=(k, g))
    W = avg * rng.standard_normal(size=(n, k))
    return (
        np.ascontiguousarray(np.abs(W), dtype=dtype),
        np.ascontiguousarray(np.abs(H).T, dtype=dtype),
    )


def chunk_size(k: int, n_cells: int, n_iter: int) -> int:
    """Replicates stacked per stream (its width) for ``k``, the number of cells and
    ``n_iter`` (the seeds it may get): at most ``CHUNK_COLS`` columns and ``CHUNK_BYTES``."""
    by_mem = CHUNK_BYTES // max(1, 3 * 4 * n_cells * k)
    return int(max(1, min(n_iter, CHUNK_COLS // k, by_mem)))


def factorize_chunk(X, XT, x_mean, k, seeds, tol=1e-4, max_iter=1000, inner_w=None, inner_h=None, width=None,
                    blocks=None):
    """Run one NMF per seed on ``X`` (CSR, float32 or float64; ``XT`` is only used by the
    fallback path).  See :func:`factorize_stream`; ``inner_w``/``inner_h`` > 1 use the
    older per-replicate path (extra sweeps per product).

    Returns the spectra stacked (``len(seeds) * k`` x genes, float32) and the
    number of outer iterations of each replicate.
    """
    inner_w = INNER_W if inner_w is None else inner_w
    inner_h = INNER_H if inner_h is None else inner_h
    if inner_w > 1 or inner_h > 1 or _kern is None or not sp.isspmatrix_csr(X):
        if XT is None:
            XT = X.T
        return _factorize_chunk_sweeps(X, XT, x_mean, k, seeds, tol, max_iter, inner_w, inner_h)
    todo = list(enumerate(int(s) for s in seeds))[::-1]
    width = width or chunk_size(k, X.shape[0], len(seeds))
    out = factorize_stream(X, x_mean, k, lambda: todo.pop() if todo else None, width, tol, max_iter, blocks)
    spectra = np.vstack([out[j][0].T for j in range(len(seeds))]).astype(np.float32, copy=False)
    return spectra, [out[j][1] for j in range(len(seeds))]


def csr_arrays(X):
    """What the kernels read of a CSR ``X``: its arrays and its per-block column copy."""
    return (
        np.ascontiguousarray(X.indptr),
        np.ascontiguousarray(X.indices),
        np.ascontiguousarray(X.data),
        *_kern.block_csc(X),
    )


def factorize_stream(X, x_mean, k, take, width, tol=1e-4, max_iter=1000, arrays=None, on_done=None):
    """Replicates of one ``k``, ``width`` at a time: :func:`factorize_pool` with a
    budget of ``width * k`` columns.  ``take()`` gives the next ``(index, seed)`` or
    ``None``.  Returns ``{index: (Ht (genes x k), n_iterations)}``."""

    def take_k(free):
        if free < k:
            return None
        nxt = take()
        return None if nxt is None else (nxt[0], k, nxt[1])

    return factorize_pool(X, x_mean, take_k, width * k, tol, max_iter, arrays, on_done)


def factorize_pool(X, x_mean, take, budget, tol=1e-4, max_iter=1000, arrays=None, on_done=None,
                   check=None):
    """Replicates (of any ``k``) on a CSR ``X``, stacked side by side up to ``budget``
    columns (the sum of their ``k``).

    ``take(free)`` gives the next ``(key, k, seed)`` with ``k <= free`` or ``None``
    (it may be shared by several pools running on other threads).  The stacked
    replicates advance together through the numba kernels of :mod:`._nmf_kernels`
    (one fused pass over ``X`` per iteration); when some meet the stopping rule
    their columns go to the next replicates taken, so the stack stays wide until
    the queue runs dry.  A replicate's arithmetic does not depend on its place or
    its neighbours: results are the same for any budget and any sharing of
    ``take``.  ``on_done(key)`` is called as each finishes; ``check()`` before each
    iteration (a safe point: it may raise to stop the work).

    Returns ``{key: (Ht (genes x k), n_iterations)}``.
    """
    n, g = X.shape
    dtype = X.dtype
    arrays = csr_arrays(X) if arrays is None else arrays
    out = {}
    slots = []  # [key, k, n_it, vinit] per stacked replicate, in column order
    W = np.empty((n, 0), dtype=dtype)
    Ht = np.empty((g, 0), dtype=dtype)

    def restack(keep):
        """Keep the slots ``keep`` (positions) and fill the free columns from ``take``."""
        nonlocal W, Ht, slots
        offs = np.concatenate([[0], np.cumsum([sl[1] for sl in slots])]).astype(np.int64)
        kept = [slots[c] for c in keep]
        used = sum(sl[1] for sl in kept)
        new = []
        while True:
            nxt = take(budget - used)
            if nxt is None:
                break
            new.append(nxt)
            used += nxt[1]
        if len(kept) == len(slots) and not new:
            return
        # zero columns pad the stack to a multiple of 8 (whole SIMD vectors; they stay 0)
        width = used + (-used) % 8
        W2 = np.zeros((n, width), dtype=dtype)
        H2 = np.zeros((g, width), dtype=dtype)
        o = 0
        for c in keep:
            kc = slots[c][1]
            W2[:, o : o + kc] = W[:, offs[c] : offs[c] + kc]
            H2[:, o : o + kc] = Ht[:, offs[c] : offs[c] + kc]
            o += kc
        for key, kk, seed in new:
            w0, h0 = random_init(x_mean, n, g, kk, int(seed), dtype)
            W2[:, o : o + kk] = w0
            H2[:, o : o + kk] = h0
            o += kk
            kept.append([key, kk, 0, 0.0])
        W, Ht, slots = W2, H2, kept

    restack([])
    while slots:
        if check is not None:
            check()
        offs = np.concatenate([[0], np.cumsum([sl[1] for sl in slots])]).astype(np.int64)
        XtW = np.empty_like(Ht)
        viol = np.zeros(len(slots))
        _kern.w_pass(*arrays, W, Ht, _kern.grams(Ht, offs), offs, XtW, viol)
        _kern.dense_pass(Ht, _kern.grams(W, offs), XtW, offs, viol)
        keep = []
        for c, sl in enumerate(slots):
            sl[2] += 1
            if sl[2] == 1:
                sl[3] = viol[c]
            if sl[3] == 0 or viol[c] / sl[3] <= tol or sl[2] >= max_iter:
                out[sl[0]] = (Ht[:, offs[c] : offs[c + 1]].copy(), sl[2])
                if on_done is not None:
                    on_done(sl[0])
            else:
                keep.append(c)
        if len(keep) < len(slots):
            restack(keep)
    return out


def _sweep_side(targets, others, product, active, k, inner, perm) -> dict:
    """One side of the alternating update for each active replicate ``j``: sweep
    ``targets[j]`` given the Gram matrix of ``others[j]`` and its ``k`` columns of the
    stacked ``product``; up to ``inner`` sweeps.  Returns the first sweep's violation."""
    viol = {}
    for c, j in enumerate(active):
        B = others[j]
        G = B.T @ B
        p = np.ascontiguousarray(product[:, c * k : (c + 1) * k])
        v = sweep(targets[j], G, p, perm)
        for _ in range(inner - 1):
            if sweep(targets[j], G, p, perm) <= INNER_EPS * v:
                break
        viol[j] = v
    return viol


def _factorize_chunk_sweeps(X, XT, x_mean, k, seeds, tol, max_iter, inner_w, inner_h):
    n, g = X.shape
    dtype = X.dtype
    Ws, Hts = [], []
    for s in seeds:
        W, Ht = random_init(x_mean, n, g, k, int(s), dtype)
        Ws.append(W)
        Hts.append(Ht)
    perm = np.arange(k, dtype=np.intp)
    active = list(range(len(seeds)))
    vinit = [0.0] * len(seeds)
    n_it = [0] * len(seeds)
    for it in range(1, max_iter + 1):
        if not active:
            break
        Hb = np.hstack([Hts[j] for j in active]) if len(active) > 1 else Hts[active[0]]
        XH = X @ Hb
        viol = _sweep_side(Ws, Hts, XH, active, k, inner_w, perm)
        del XH, Hb
        Wb = np.hstack([Ws[j] for j in active]) if len(active) > 1 else Ws[active[0]]
        XW = XT @ Wb
        del Wb
        for j, v in _sweep_side(Hts, Ws, XW, active, k, inner_h, perm).items():
            viol[j] += v
        del XW
        still = []
        for j in active:
            if it == 1:
                vinit[j] = viol[j]
            n_it[j] = it
            if vinit[j] == 0 or viol[j] / vinit[j] <= tol:
                Ws[j] = None  # usages are not kept: memory stays one chunk
                continue
            still.append(j)
        active = still
    spectra = np.vstack([Ht.T for Ht in Hts]).astype(np.float32, copy=False)
    return spectra, n_it


def nnls(XHt, G, tol=1e-4, max_iter=1000):
    """Non-negative least squares ``min_W ||X - W H||`` given ``XHt = X @ H.T`` and
    ``G = H @ H.T``: sklearn's coordinate descent with ``H`` fixed, from ``W = 0``."""
    XHt = np.ascontiguousarray(XHt, dtype=np.float64)
    G = np.ascontiguousarray(G, dtype=np.float64)
    W = np.zeros(XHt.shape, dtype=np.float64)
    perm = np.arange(G.shape[0], dtype=np.intp)
    vinit = None
    for _ in range(max_iter):
        v = sweep(W, G, XHt, perm)
        if vinit is None:
            vinit = v
        if vinit == 0 or v / vinit <= tol:
            break
    return W


def matmul_t(X, B):
    """``X.T @ B`` for a sparse or dense ``X`` (n x g) and dense ``B`` (n x k)."""
    if sp.issparse(X):
        return np.asarray(X.T @ B)
    return X.T @ B


def sq_frobenius_error(X, U, S):
    """``||X - U S||_F^2`` without densifying a sparse ``X``."""
    if sp.issparse(X):
        xx = float((X.data.astype(np.float64) ** 2).sum())
    else:
        xx = float((np.asarray(X, dtype=np.float64) ** 2).sum())
    cross = float((U * np.asarray(X @ S.T)).sum())
    quad = float(((U.T @ U) * (S @ S.T)).sum())
    return xx - 2 * cross + quad


def l2_rows(A):
    A = np.asarray(A, dtype=np.float64)
    norms = np.sqrt((A**2).sum(axis=1))
    norms[norms == 0] = 1.0
    return A / norms[:, None]


def local_density(D, n_neighbors):
    """Mean distance of each component to its ``n_neighbors`` nearest others."""
    part = np.partition(D, n_neighbors, axis=1)[:, : n_neighbors + 1]
    return part.sum(axis=1) / n_neighbors
