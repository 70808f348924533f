"""Scalable SC3 consensus clustering over several numbers of clusters.

The scheme follows the scalable SC3 variant (``sc3s``, Quah et al. 2022):

1. **Facilities.**  On the first ``d`` dimensions of a representation in
   ``obsm`` (for each ``d`` of ``d_range``), mini-batch k-means with many
   centroids (``n_facility``, by default ``3 * max(n_clusters)``) is run
   ``n_runs`` times with different seeds.  Every cell is assigned to one
   facility per run: the cell-to-facility binary matrix of all runs.
2. **Facilities into k clusters.**  For each requested ``k`` and each run, the
   facilities are grouped into ``k`` clusters by weighted k-means (weights:
   the number of cells of each facility); each cell inherits the cluster of
   its facility.  That gives one partition of the cells per run.
3. **Consensus.**  Cells with the same cluster in every run form one
   *pattern* (typically a few hundred patterns, whatever the number of
   cells).  The consensus distance between two patterns is the fraction of
   runs in which they are in different clusters (the Hamming distance of the
   cell-to-cluster binary consensus matrix).  Patterns are grouped into
   ``k`` clusters by average linkage weighted by their number of cells, which
   is exactly average linkage over the cells themselves (SC3's hierarchical
   clustering of the consensus matrix) without the cell-by-cell matrix.
   When there are very many patterns, the most frequent ones (up to
   ``MAX_PATTERNS``) are clustered and the rest join the cluster they agree
   with most (average agreement).  Groups of fewer than ``MIN_CELLS`` cells
   (cells the runs place inconsistently) are folded into the group they
   agree with most, cutting the tree deeper so that k groups remain.

Differences from ``sc3s`` (all deliberate, measured in
``benchmarks/sc3.py``): mini-batches of 1,024 cells by default (faster and a
lower k-means cost than 100; plain k-means when the data fit in one batch),
weighted k-means with 10 starts on the facilities, and average linkage instead
of mini-batch k-means on the consensus matrix (better and far more stable
from seed to seed).  The work runs single-threaded (BLAS / OpenMP limited to
one thread: the per-step work is small, so threads only add overhead, and
results cannot depend on the thread count) and every random step is seeded
from ``random_state``: the same input and seed give identical clusters, so a
recorded history replays exactly.
"""

from __future__ import annotations

import numbers
import warnings

import numba
import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

from .. import _validate as v
from ..colors import sync_colors
from ..errors import ExprmatError
from ..history import command

__all__ = ["sc3"]

DEFAULT_MULTIPLIER = 3
DEFAULT_BATCH_SIZE = 1024
DEFAULT_MAX_DIMS = 25
#: at most this many distinct consensus patterns are clustered by average linkage
#: (memory ~ 8 * MAX_PATTERNS**2 bytes); rarer patterns join their best cluster.
MAX_PATTERNS = 1500
_SEED_MAX = 2**31 - 1
#: consensus clusters of fewer cells are folded into their best neighbour (see _min_cells)
MIN_CELLS = 5


# --------------------------------------------------------------------------- validation


def _int(value, name, *, minimum=None, maximum=None, fix=""):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise ExprmatError(f"{name} must be an integer, got {value!r}.{fix}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ExprmatError(f"{name} must be >= {minimum}, got {value}.{fix}")
    if maximum is not None and value > maximum:
        raise ExprmatError(f"{name} must be <= {maximum}, got {value}.{fix}")
    return value


def _int_list(value, name, *, minimum, maximum, fix):
    if isinstance(value, (numbers.Number, np.integer)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ExprmatError(f"{name} must be an integer or a list of integers, got {value!r}.{fix}")
    out = [_int(x, f"each value of {name}", minimum=minimum, maximum=maximum, fix=fix) for x in value]
    if not out:
        raise ExprmatError(f"{name} is empty; pass at least one value.{fix}")
    return sorted(set(out))


def _check(adata, basis, key_added, n_clusters, d_range, n_runs, n_facility,
           multiplier_facility, batch_size, random_state):
    """Validate everything before any work; returns the resolved settings."""
    v.new_key("key_added", key_added)
    x = v.embedding(adata, basis)
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise ExprmatError(
            f"obsm[{v.embedding_key(adata, basis)!r}] must be a numeric cells x dimensions array "
            f"(got {x.dtype} with shape {x.shape}); pass a PCA-like representation such as 'pca' or 'harmony'."
        )
    n_cells, n_dims = x.shape
    if n_cells < 3:
        raise ExprmatError(f"sc3 needs at least 3 cells, the data have {n_cells}.")
    if n_dims < 2:
        raise ExprmatError(
            f"the representation {basis!r} has {n_dims} dimension(s); sc3 needs at least 2 "
            "(use a PCA or harmony embedding with more components)."
        )
    ks = _int_list(
        n_clusters, "n_clusters", minimum=2, maximum=n_cells - 1,
        fix=f" Pass numbers of clusters between 2 and {n_cells - 1}, e.g. n_clusters=[5, 10].",
    )
    if d_range is None:
        dims = [min(DEFAULT_MAX_DIMS, n_dims)]
    else:
        dims = _int_list(
            d_range, "d_range", minimum=2, maximum=n_dims,
            fix=f" d_range gives the numbers of leading dimensions of {basis!r} to use (2..{n_dims}).",
        )
    n_runs = _int(n_runs, "n_runs", minimum=1, fix=" Use e.g. n_runs=5.")
    messages = []
    if n_facility is not None:
        n_facility = _int(
            n_facility, "n_facility", minimum=max(ks), maximum=n_cells - 1,
            fix=f" The number of facilities must be between max(n_clusters) = {max(ks)} and "
            f"the number of cells - 1 = {n_cells - 1}.",
        )
        if multiplier_facility is not None:
            messages.append(f"[i] n_facility set to {n_facility}, ignoring multiplier_facility")
    else:
        if multiplier_facility is None:
            multiplier_facility = DEFAULT_MULTIPLIER
            messages.append(
                f"[i] multiplier_facility not set, using default value of {DEFAULT_MULTIPLIER}"
            )
        elif (isinstance(multiplier_facility, bool) or not isinstance(multiplier_facility, numbers.Real)
              or not np.isfinite(multiplier_facility) or multiplier_facility < 1):
            raise ExprmatError(
                f"multiplier_facility must be a number >= 1, got {multiplier_facility!r}; "
                "the number of facilities is multiplier_facility * max(n_clusters) (default 3)."
            )
        n_facility = round(max(ks) * float(multiplier_facility))
        if n_facility >= n_cells:
            n_facility = n_cells - 1
            messages.append(f"[i] number of facilities capped at the number of cells - 1 = {n_facility}")
        else:
            messages.append(f"[i] number of facilities calculated as {n_facility}")
    if batch_size is None:
        batch_size = min(DEFAULT_BATCH_SIZE, n_cells)
    else:
        batch_size = _int(batch_size, "batch_size", minimum=10,
                          fix=" It is the number of cells per k-means mini-batch (default 1024).")
        batch_size = min(batch_size, n_cells)
    if random_state is None:
        raise ExprmatError(
            "random_state must be an integer (e.g. 42): sc3 is random, and a fixed seed is what "
            "makes the recorded history replay to the same clusters."
        )
    random_state = _int(random_state, "random_state", minimum=0, maximum=2**32 - 1)
    return x, ks, dims, n_runs, n_facility, batch_size, random_state, messages


# --------------------------------------------------------------------------- algorithm

_controller = None


def _single_thread():
    """Limit BLAS / OpenMP to one thread (the controller, slow to build, is reused)."""
    global _controller
    if _controller is None:
        import sklearn.cluster  # noqa: F401  (loads sklearn's OpenMP runtime first)

        _controller = ThreadpoolController()
    return _controller.limit(limits=1)



def _seeds(random_state, *tag, n=1):
    """Independent seeds for one step, derived from (random_state, tag)."""
    ss = np.random.SeedSequence([int(random_state), *[int(t) for t in tag]])
    return [int(s) for s in ss.generate_state(n, dtype=np.uint32) % _SEED_MAX]


def _facilities(x, dims, n_runs, n_facility, batch_size, random_state, progress):
    """One mini-batch k-means per (d, run): labels (cells -> facility), centres, sizes."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    trials = []
    for d in dims:
        xd = np.ascontiguousarray(x[:, :d])
        for seed in _seeds(random_state, 0, d, n=n_runs):
            if batch_size >= xd.shape[0]:  # one batch holds every cell: plain k-means
                km = KMeans(n_clusters=n_facility, n_init=1, random_state=seed)
            else:
                km = MiniBatchKMeans(
                    n_clusters=n_facility, batch_size=batch_size, n_init=1, random_state=seed,
                    init_size=min(xd.shape[0], max(batch_size, 3 * n_facility)),
                )
            with warnings.catch_warnings():  # duplicated cells: fewer distinct facilities, handled below
                warnings.simplefilter("ignore", ConvergenceWarning)
                km.fit(xd)
            labels = km.labels_.astype(np.int64)
            sizes = np.bincount(labels, minlength=n_facility)
            trials.append((km.cluster_centers_, labels, sizes))
            progress.update(1)
    return trials


@numba.njit(cache=True)
def _lloyd_weighted(x, w, k, first, draws, max_iter):  # pragma: no cover - compiled
    """Weighted k-means++ (greedy, ``draws.shape[2]`` candidates per centre) and Lloyd
    iterations for each start; ``first`` / ``draws`` are uniform numbers in [0, 1)
    drawn by the caller.  Returns the labels of the start with the lowest cost."""
    n, dim = x.shape
    n_init, _, n_trials = draws.shape
    best = np.zeros(n, dtype=np.int64)
    best_cost = np.inf
    cum = np.empty(n)
    closest = np.empty(n)
    trial = np.empty(n)
    best_trial = np.empty(n)
    centres = np.empty((k, dim))
    labels = np.empty(n, dtype=np.int64)
    for s in range(n_init):
        # --- k-means++: first centre by weight, then by weight * squared distance
        acc = 0.0
        for i in range(n):
            acc += w[i]
            cum[i] = acc
        c0 = min(np.searchsorted(cum, first[s] * acc, side="right"), n - 1)
        for j in range(dim):
            centres[0, j] = x[c0, j]
        for i in range(n):
            d = 0.0
            for j in range(dim):
                diff = x[i, j] - centres[0, j]
                d += diff * diff
            closest[i] = d
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
                    d = 0.0
                    for j in range(dim):
                        diff = x[i, j] - x[cand, j]
                        d += diff * diff
                    trial[i] = min(closest[i], d)
                    pot += trial[i] * w[i]
                if pot < best_pot:
                    best_pot = pot
                    best_cand = cand
                    best_trial[:] = trial
            for j in range(dim):
                centres[c, j] = x[best_cand, j]
            closest[:] = best_trial
        # --- Lloyd
        for it in range(max_iter):
            changed = False
            for i in range(n):
                bi = 0
                bd = np.inf
                for c in range(k):
                    d = 0.0
                    for j in range(dim):
                        diff = x[i, j] - centres[c, j]
                        d += diff * diff
                    if d < bd:
                        bd = d
                        bi = c
                if it == 0 or labels[i] != bi:
                    changed = True
                labels[i] = bi
                closest[i] = bd
            if not changed and it > 0:
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


def _weighted_kmeans(x, w, k, seed, n_init=10, max_iter=100):
    """Weighted k-means of a few hundred points (the facilities): greedy k-means++
    starts then Lloyd iterations, best of ``n_init``; deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    n_trials = 2 + int(np.log(k))
    first = rng.random(n_init)
    draws = rng.random((n_init, k, n_trials))
    return _lloyd_weighted(
        np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(w, dtype=np.float64),
        int(k), first, draws, int(max_iter),
    )


def _facility_partitions(trials, k, random_state):
    """For each run, weighted k-means of its facilities into k groups: (cells x runs) codes."""
    seeds = _seeds(random_state, 1, k, n=len(trials))
    codes = np.empty((trials[0][1].size, len(trials)), dtype=np.int64)
    for t, ((centres, labels, sizes), seed) in enumerate(zip(trials, seeds)):
        used = np.flatnonzero(sizes > 0)
        if used.size <= k:  # fewer non-empty facilities than clusters: each is its own group
            group = np.arange(used.size)
        else:
            group = _weighted_kmeans(
                np.asarray(centres[used], dtype=np.float64), sizes[used].astype(np.float64), k, seed
            )
        fmap = np.full(sizes.size, -1, dtype=np.int64)
        fmap[used] = group
        codes[:, t] = fmap[labels]
    return codes


def _patterns(codes):
    """Distinct rows of ``codes``: (pattern of each cell, patterns x runs codes, cells per pattern)."""
    key = np.zeros(codes.shape[0], dtype=np.int64)
    for t in range(codes.shape[1]):
        # re-densify after each run so the combined key never overflows
        _, key = np.unique(key * (int(codes[:, t].max()) + 1) + codes[:, t], return_inverse=True)
        key = key.ravel().astype(np.int64)
    n_pat = int(key.max()) + 1
    counts = np.bincount(key, minlength=n_pat)
    first = np.full(n_pat, codes.shape[0], dtype=np.int64)
    np.minimum.at(first, key, np.arange(codes.shape[0]))
    return key, codes[first], counts


@numba.njit(cache=True)
def _hamming(pats):  # pragma: no cover - compiled
    """Fraction of runs in which two patterns are in different clusters (patterns x
    patterns, diagonal inf): the distance of the cell-to-cluster consensus matrix."""
    n, n_runs = pats.shape
    dist = np.empty((n, n), dtype=np.float64)
    for i in range(n):
        dist[i, i] = np.inf
        for j in range(i + 1, n):
            c = 0
            for t in range(n_runs):
                if pats[i, t] != pats[j, t]:
                    c += 1
            dist[i, j] = c / n_runs
            dist[j, i] = c / n_runs
    return dist


@numba.njit(cache=True)
def _nn_chain_average(dist, size):  # pragma: no cover - compiled
    """Nearest-neighbour chain for average linkage; ``dist`` (diagonal inf) and ``size``
    are overwritten.  Returns the merges (a, b, height) in the order they were made."""
    n = dist.shape[0]
    active = np.ones(n, dtype=np.bool_)
    chain = np.empty(n, dtype=np.int64)
    out_a = np.empty(n - 1, dtype=np.int64)
    out_b = np.empty(n - 1, dtype=np.int64)
    out_h = np.empty(n - 1, dtype=np.float64)
    clen = 0
    nxt = 0
    for m in range(n - 1):
        a = -1
        b = -1
        best = np.inf
        while True:
            if clen == 0:
                while not active[nxt]:
                    nxt += 1
                chain[0] = nxt
                clen = 1
            a = chain[clen - 1]
            best = np.inf
            b = -1
            for j in range(n):
                if active[j] and j != a and dist[a, j] < best:
                    best = dist[a, j]
                    b = j
            if clen > 1:
                p = chain[clen - 2]
                if dist[a, p] <= best:
                    b = p
                    best = dist[a, p]
                    break
            chain[clen] = b
            clen += 1
        clen -= 2
        sa = size[a]
        sb = size[b]
        for j in range(n):
            if active[j] and j != a and j != b:
                d = (sa * dist[a, j] + sb * dist[b, j]) / (sa + sb)
                dist[a, j] = d
                dist[j, a] = d
        active[b] = False
        size[a] = sa + sb
        out_a[m] = a
        out_b[m] = b
        out_h[m] = best
    return out_a, out_b, out_h


def _average_linkage(dist, weights, overwrite=False):
    """Average linkage (UPGMA) of items of size ``weights``: the merges, by height.

    Nearest-neighbour-chain algorithm (exact for average linkage, O(n^2)); the
    Lance-Williams update uses the item sizes, so it equals average linkage
    over the cells the items stand for.  Ties go to the lowest index.
    Returns ``[(a, b), ...]`` in merge order (increasing height).  ``dist``
    (float64, C order) is used as work space when ``overwrite``.
    """
    n = dist.shape[0]
    if n < 2:
        return []
    d = dist if overwrite else np.array(dist, dtype=np.float64, order="C", copy=True)
    np.fill_diagonal(d, np.inf)
    a, b, h = _nn_chain_average(d, np.asarray(weights, dtype=np.float64).copy())
    order = np.argsort(h, kind="stable")  # ties keep merge order
    return list(zip(a[order].tolist(), b[order].tolist()))


def _cut(merges, n, k):
    """Clusters 0..k-1 of n items after the first n - k merges."""
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in merges[: max(n - k, 0)]:
        parent[find(b)] = find(a)
    roots = np.array([find(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1].ravel()


def _best_group(pats, groups, counts, targets):
    """For each row of ``targets`` (patterns), the group of ``pats`` it agrees with most:
    the largest mean fraction of runs in the same cluster, weighted by cells."""
    n_groups = int(groups.max()) + 1
    weight = np.bincount(groups, weights=counts, minlength=n_groups)
    agree = np.zeros((targets.shape[0], n_groups))
    for t in range(pats.shape[1]):
        m = np.zeros((n_groups, int(max(pats[:, t].max(), targets[:, t].max())) + 1))
        np.add.at(m, (groups, pats[:, t]), counts)
        agree += m[:, targets[:, t]].T
    return np.argmax(agree / weight, axis=1)


def _min_cells(n_cells, k):
    """Smallest consensus cluster kept as such (smaller ones are unstable cells)."""
    return int(max(1, min(MIN_CELLS, n_cells // (2 * k))))


def _consensus(codes, k, max_patterns=MAX_PATTERNS):
    """Cluster the cells (rows of ``codes``, one partition per run) into (at most) k groups.

    Groups of fewer than ``_min_cells`` cells are cells that the runs place
    inconsistently: the dendrogram is cut deeper until k groups of at least
    that size exist, and the small groups join the one they agree with most.
    """
    cell_pattern, pats, counts = _patterns(codes)
    n_pat = pats.shape[0]
    if n_pat <= max_patterns:
        core = np.arange(n_pat)
    else:  # most frequent patterns (ties: first seen)
        core = np.sort(np.argsort(-counts, kind="stable")[:max_patterns])
    n_core = core.size
    groups = np.arange(n_core)
    if n_core > k:
        merges = _average_linkage(
            _hamming(np.ascontiguousarray(pats[core])), counts[core], overwrite=True
        )
        min_cells = _min_cells(codes.shape[0], k)
        for kk in range(k, n_core + 1):
            groups = _cut(merges, n_core, kk)
            sizes = np.bincount(groups, weights=counts[core])
            if (sizes >= min_cells).sum() >= k:
                break
        big = sizes >= min_cells
        if not big.all() and big.any():
            keep = big[groups]
            remap = np.cumsum(big) - 1
            fixed = remap[groups[keep]]
            small = np.flatnonzero(~keep)
            moved = _best_group(pats[core[keep]], fixed, counts[core[keep]], pats[core[small]])
            groups = np.empty(n_core, dtype=np.int64)
            groups[keep] = fixed
            groups[small] = moved
    out = np.empty(n_pat, dtype=np.int64)
    out[core] = groups
    if n_core < n_pat:
        rest = np.setdiff1d(np.arange(n_pat), core)
        out[rest] = _best_group(pats[core], groups, counts[core], pats[rest])
    return out[cell_pattern], n_pat


def _relabel_by_size(labels):
    """Labels '0', '1', ... by decreasing cluster size (ties: first cell)."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[order] = np.arange(uniq.size)
    new = rank[np.searchsorted(uniq, labels)]
    cats = [str(i) for i in range(uniq.size)]
    return pd.Categorical.from_codes(new, categories=cats)


# --------------------------------------------------------------------------- command


def _writes(p, adata):
    key = p["key_added"]
    ks = p["n_clusters"]
    ks = sorted({int(k) for k in (ks if isinstance(ks, list) else [ks])})
    out = [("uns", key)]
    for k in ks:
        out += [("obs", f"{key}.{k}"), ("uns", f"{key}.{k}_colors")]
    return out


@command("sc3", writes=_writes)
def sc3(
    adata,
    basis: str = "harmony",
    key_added: str = "sc3",
    n_clusters=(5, 10),
    d_range=None,
    n_runs: int = 5,
    n_facility: int | None = None,
    multiplier_facility: float | None = None,
    batch_size: int | None = None,
    random_state: int = 42,
):
    """Scalable SC3 consensus clustering for several numbers of clusters at once.

    Parameters
    ----------
    adata
        The AnnData; changed in place.
    basis
        Representation in ``obsm`` (``'harmony'``, ``'pca'``, ``'X_pca'``, ...);
        ``'X_' + basis`` is tried too.
    key_added
        Prefix of the output columns: ``obs['<key_added>.<k>']`` for each k.
    n_clusters
        Number(s) of clusters, e.g. ``[5, 10, 20, 30]`` (each 2 .. n_cells - 1).
    d_range
        Number(s) of leading dimensions of ``basis`` to cluster on, e.g.
        ``[15, 20, 25]``; each is a feature subset with ``n_runs`` runs of its
        own.  Default: ``min(25, n_dims)``.
    n_runs
        Runs of the facility k-means per feature subset (default 5).
    n_facility
        Number of facilities (k-means micro-clusters) per run, between
        ``max(n_clusters)`` and ``n_cells - 1``.  Overrides ``multiplier_facility``.
    multiplier_facility
        ``n_facility = multiplier_facility * max(n_clusters)`` when
        ``n_facility`` is not given (default 3, capped at ``n_cells - 1``).
    batch_size
        Cells per mini-batch of the facility k-means (default 1,024).  With
        no more cells than that, the facilities come from plain k-means.
    random_state
        Integer seed; the same seed gives the same clusters.

    Returns
    -------
    None.  Reads ``obsm[basis]``.  Writes, for each ``k``:
    ``obs['<key_added>.<k>']`` (categorical, clusters ``'0'``, ``'1'``, ... by
    decreasing size) and ``uns['<key_added>.<k>_colors']``; and
    ``uns[key_added]`` = ``{'params': {...}, 'n_facility': int, 'd_range': [...],
    'n_patterns': {k: int}}``.  Prints the number of facilities chosen.
    """
    x, ks, dims, n_runs, n_facility, batch_size, random_state, messages = _check(
        adata, basis, key_added, n_clusters, d_range, n_runs, n_facility,
        multiplier_facility, batch_size, random_state,
    )
    for m in messages:
        print(m)
    x = np.asarray(x, dtype=np.float64)
    n_trials = len(dims) * n_runs
    results = {}
    n_patterns = {}
    with _single_thread(), tqdm(
        total=n_trials + len(ks), desc="sc3", leave=False, disable=x.shape[0] < 5000
    ) as progress:
        trials = _facilities(x, dims, n_runs, n_facility, batch_size, random_state, progress)
        for k in ks:
            codes = _facility_partitions(trials, k, random_state)
            labels, n_patterns[k] = _consensus(codes, k)
            results[k] = _relabel_by_size(labels)
            progress.update(1)
    # all work done: write the results (new columns, no in-place edits)
    for k in ks:
        col = f"{key_added}.{k}"
        adata.obs[col] = pd.Series(results[k], index=adata.obs_names)
        sync_colors(adata, col)
        n_found = len(results[k].categories)
        if n_found < k:
            print(f"[i] {col}: the runs agree on only {n_found} distinct groups, so {col} has {n_found} clusters")
    adata.uns[key_added] = {
        "params": {
            "basis": v.embedding_key(adata, basis),
            "n_clusters": ks,
            "d_range": dims,
            "n_runs": n_runs,
            "n_facility": n_facility,
            "batch_size": batch_size,
            "random_state": random_state,
        },
        "n_facility": n_facility,
        "d_range": dims,
        "n_patterns": {str(k): int(n) for k, n in n_patterns.items()},
    }
