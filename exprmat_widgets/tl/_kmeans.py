"""Small, deterministic k-means kernels (numba) for SC3's facilities.

* :func:`facility_kmeans` — k-means with many centres ("facilities") on up to
  millions of cells: greedy k-means++ on a sample of cells, then either Lloyd
  iterations (data that fit in one batch) or a fixed number of mini-batch
  steps followed by a last pass over all cells.  Distances to the centres
  are computed as ``||x||^2 - 2 x.c + ||c||^2``, vectorised over the centres.
* :func:`weighted_kmeans` — weighted k-means of a few hundred points (the
  facilities, weighted by their number of cells), best of several starts;
  k-means++ works on a precomputed point-to-point distance matrix.

All random numbers are drawn by the callers' ``numpy.random.Generator`` from
a seed and passed in, so results depend only on the seed (not on numba's
random state).  The kernels are single-threaded, call no BLAS and allow no
floating-point reassociation or contraction (no ``fastmath``), so the same
input and seed give bit-identical results whatever the thread settings and
the CPU's vector width.
"""

from __future__ import annotations

import numba
import numpy as np

# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _transpose_and_norms(x):  # pragma: no cover - compiled
    """``x`` transposed (C order) and the squared norm of each row of ``x``."""
    n, dim = x.shape
    xt = np.ascontiguousarray(x.T)
    sq = np.zeros(n)
    for j in range(dim):
        for i in range(n):
            sq[i] += xt[j, i] * xt[j, i]
    return xt, sq


@numba.njit(cache=True)
def _kmeanspp(x, k, first, draws):  # pragma: no cover - compiled
    """Greedy k-means++ on the rows of ``x``: ``draws.shape[1]`` candidates per centre,
    the one with the lowest potential is kept.  Returns the chosen row indices."""
    n, dim = x.shape
    n_trials = draws.shape[1]
    xt, xn = _transpose_and_norms(x)
    chosen = np.empty(k, dtype=np.int64)
    closest = np.empty(n)
    cum = np.empty(n)
    cand = np.empty(n_trials, dtype=np.int64)
    dist = np.empty((n_trials, n))
    c0 = min(int(first * n), n - 1)
    chosen[0] = c0
    for i in range(n):
        closest[i] = xn[i] + xn[c0]
    for j in range(dim):
        v = -2.0 * x[c0, j]
        for i in range(n):
            closest[i] += v * xt[j, i]
    for i in range(n):
        closest[i] = max(closest[i], 0.0)
    closest[c0] = 0.0
    for c in range(1, k):
        acc = 0.0
        for i in range(n):
            acc += closest[i]
            cum[i] = acc
        for t in range(n_trials):
            if acc > 0:
                cand[t] = min(np.searchsorted(cum, draws[c, t] * acc, side="right"), n - 1)
            else:
                cand[t] = min(int(draws[c, t] * n), n - 1)
            for i in range(n):
                dist[t, i] = xn[i] + xn[cand[t]]
        for j in range(dim):
            for t in range(n_trials):
                v = -2.0 * x[cand[t], j]
                for i in range(n):
                    dist[t, i] += v * xt[j, i]
        best_pot = np.inf
        best_t = 0
        for t in range(n_trials):
            dist[t, cand[t]] = 0.0
            pot = 0.0
            for i in range(n):
                d = min(max(dist[t, i], 0.0), closest[i])
                dist[t, i] = d
                pot += d
            if pot < best_pot:
                best_pot = pot
                best_t = t
        chosen[c] = cand[best_t]
        closest[:] = dist[best_t]
    return chosen


@numba.njit(cache=True)
def _nearest(x, centres, labels, dist):  # pragma: no cover - compiled
    """Nearest centre of each row of ``x`` (labels) and the squared distance
    (``||x||^2 - 2 x.c + ||c||^2``, the products vectorised over the centres)."""
    n, dim = x.shape
    k = centres.shape[0]
    ct, cn = _transpose_and_norms(centres)
    acc = np.empty(k)
    for i in range(n):
        xn = 0.0
        for c in range(k):
            acc[c] = cn[c]
        for j in range(dim):
            xij = x[i, j]
            xn += xij * xij
            v = -2.0 * xij
            for c in range(k):
                acc[c] += v * ct[j, c]
        bi = 0
        bd = acc[0]
        for c in range(1, k):
            if acc[c] < bd:
                bd = acc[c]
                bi = c
        labels[i] = bi
        dist[i] = max(bd + xn, 0.0)


@numba.njit(cache=True)
def _means(x, labels, centres, dist):  # pragma: no cover - compiled
    """New centres = means of their rows; an empty centre takes the worst-served row
    (of a centre with more than one row).  Returns the number of centres per row count."""
    n, dim = x.shape
    k = centres.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    for i in range(n):
        counts[labels[i]] += 1
    for c in range(k):
        if counts[c] == 0:
            far = -1
            fd = -1.0
            for i in range(n):
                if counts[labels[i]] > 1 and dist[i] > fd:
                    fd = dist[i]
                    far = i
            if far >= 0:
                counts[labels[far]] -= 1
                labels[far] = c
                counts[c] = 1
                dist[far] = 0.0
    sums = np.zeros((k, dim))
    for i in range(n):
        for j in range(dim):
            sums[labels[i], j] += x[i, j]
    for c in range(k):
        if counts[c] > 0:
            for j in range(dim):
                centres[c, j] = sums[c, j] / counts[c]
    return counts


@numba.njit(cache=True)
def _lloyd(x, centres, max_iter):  # pragma: no cover - compiled
    """Lloyd iterations from ``centres`` (overwritten) until no row changes centre."""
    n = x.shape[0]
    labels = np.empty(n, dtype=np.int64)
    old = np.full(n, -1, dtype=np.int64)
    dist = np.empty(n)
    for it in range(max_iter):
        _nearest(x, centres, labels, dist)
        if it > 0 and np.array_equal(labels, old):
            break
        _means(x, labels, centres, dist)
        old[:] = labels
    _nearest(x, centres, labels, dist)
    return labels


@numba.njit(cache=True)
def _assign_and_average(x, centres):  # pragma: no cover - compiled
    """Labels of the rows (nearest centre); then each centre moves to the mean of its rows."""
    n = x.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n)
    _nearest(x, centres, labels, dist)
    _means(x, labels, centres, dist)
    return labels


@numba.njit(cache=True)
def _minibatch(x, centres, batches):  # pragma: no cover - compiled
    """Mini-batch k-means steps (Sculley 2010): each centre moves to the running mean
    of all the rows assigned to it so far; ``batches`` holds the row indices per step."""
    n_steps, b = batches.shape
    k, dim = centres.shape
    counts = np.zeros(k)
    xb = np.empty((b, dim))
    labels = np.empty(b, dtype=np.int64)
    dist = np.empty(b)
    for s in range(n_steps):
        for i in range(b):
            r = batches[s, i]
            for j in range(dim):
                xb[i, j] = x[r, j]
        _nearest(xb, centres, labels, dist)
        sums = np.zeros((k, dim))
        nb = np.zeros(k)
        for i in range(b):
            c = labels[i]
            nb[c] += 1.0
            for j in range(dim):
                sums[c, j] += xb[i, j]
        for c in range(k):
            if nb[c] > 0:
                counts[c] += nb[c]
                for j in range(dim):
                    centres[c, j] += (sums[c, j] - nb[c] * centres[c, j]) / counts[c]


@numba.njit(cache=True)
def _sq_distances(x):  # pragma: no cover - compiled
    """Squared Euclidean distances between the rows of ``x`` (a few hundred)."""
    n, dim = x.shape
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            d = 0.0
            for j in range(dim):
                diff = x[a, j] - x[b, j]
                d += diff * diff
            out[a, b] = d
            out[b, a] = d
    return out


@numba.njit(cache=True)
def _weighted_lloyd(dmat, x, w, k, first, draws, max_iter):  # pragma: no cover - compiled
    """Weighted greedy k-means++ (on the squared distances ``dmat`` between the rows of
    ``x``) then Lloyd iterations, for each start; labels of the start of lowest cost."""
    n, dim = x.shape
    n_init, _, n_trials = draws.shape
    best = np.zeros(n, dtype=np.int64)
    best_cost = np.inf
    cum = np.empty(n)
    closest = np.empty(n)
    best_trial = np.empty(n)
    centres = np.empty((k, dim))
    labels = np.empty(n, dtype=np.int64)
    old = np.empty(n, dtype=np.int64)
    for s in range(n_init):
        acc = 0.0
        for i in range(n):
            acc += w[i]
            cum[i] = acc
        c0 = min(np.searchsorted(cum, first[s] * acc, side="right"), n - 1)
        centres[0, :] = x[c0]
        closest[:] = dmat[c0]
        for c in range(1, k):
            acc = 0.0
            for i in range(n):
                acc += closest[i] * w[i]
                cum[i] = acc
            best_pot = np.inf
            best_cand = 0
            for t in range(n_trials):
                if acc > 0:
                    cand = min(np.searchsorted(cum, draws[s, c, t] * acc, side="right"), n - 1)
                else:
                    cand = min(int(draws[s, c, t] * n), n - 1)
                pot = 0.0
                for i in range(n):
                    pot += min(closest[i], dmat[cand, i]) * w[i]
                if pot < best_pot:
                    best_pot = pot
                    best_cand = cand
            for i in range(n):
                best_trial[i] = min(closest[i], dmat[best_cand, i])
            centres[c, :] = x[best_cand]
            closest[:] = best_trial
        for it in range(max_iter):
            old[:] = labels
            _nearest(x, centres, labels, closest)
            if it > 0 and np.array_equal(labels, old):
                break
            mass = np.zeros(k)
            for i in range(n):
                mass[labels[i]] += w[i]
            for c in range(k):  # an empty cluster takes the worst-served point
                if mass[c] == 0:
                    far = 0
                    fd = -1.0
                    for i in range(n):
                        if mass[labels[i]] > w[i] and closest[i] * w[i] > fd:
                            fd = closest[i] * w[i]
                            far = i
                    mass[labels[far]] -= w[far]
                    labels[far] = c
                    mass[c] = w[far]
                    closest[far] = 0.0
            centres[:] = 0.0
            for i in range(n):
                for j in range(dim):
                    centres[labels[i], j] += w[i] * x[i, j]
            for c in range(k):
                for j in range(dim):
                    centres[c, j] /= mass[c]
        cost = 0.0
        for i in range(n):
            d = 0.0
            for j in range(dim):
                diff = x[i, j] - centres[labels[i], j]
                d += diff * diff
            cost += d * w[i]
        if cost < best_cost:
            best_cost = cost
            best[:] = labels
    return best


# --------------------------------------------------------------------------- wrappers


def _n_trials(k):
    return 2 + int(np.log(k))


def facility_kmeans(x, k, seed, batch_size, n_steps=None, n_refine=0, max_iter=100):
    """k-means of the rows of ``x`` (float64, C order) into ``k`` centres.

    Greedy k-means++ on ``min(n, max(batch_size, 3k))`` random rows.  When
    ``batch_size >= n``: Lloyd iterations until no row changes centre (at
    most ``max_iter``).  Otherwise ``n_steps`` mini-batch steps of
    ``batch_size`` rows drawn with replacement (default: about two passes
    over the data, 10 to 50 steps), ``n_refine`` Lloyd iterations over all
    rows, then every row goes to its nearest centre and the centres become
    the means of their rows.  Deterministic for ``seed``.
    Returns ``(centres, labels)``.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    m = min(n, max(batch_size, 3 * k))
    sample = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
    xs = np.ascontiguousarray(x[sample])
    chosen = _kmeanspp(xs, int(k), float(rng.random()), rng.random((k, _n_trials(k))))
    centres = np.ascontiguousarray(xs[chosen])
    if batch_size >= n:
        return centres, _lloyd(x, centres, int(max_iter))
    if n_steps is None:
        n_steps = int(np.clip(np.ceil(2 * n / batch_size), 10, 50))
    _minibatch(x, centres, rng.integers(0, n, size=(n_steps, batch_size)))
    if n_refine:
        _lloyd(x, centres, int(n_refine))
    return centres, _assign_and_average(x, centres)


def weighted_kmeans(x, w, k, seed, n_init=10, max_iter=100):
    """Weighted k-means of a few hundred points (e.g. facilities weighted by their
    cells): greedy k-means++ starts then Lloyd iterations, best of ``n_init``;
    deterministic for ``seed``.  Returns the labels."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    dmat = _sq_distances(x)
    rng = np.random.default_rng(seed)
    first = rng.random(n_init)
    draws = rng.random((n_init, k, _n_trials(k)))
    return _weighted_lloyd(
        dmat, x, np.ascontiguousarray(w, dtype=np.float64), int(k), first, draws, int(max_iter)
    )
