"""Scalable SC3 consensus clustering over several numbers of clusters.

The scheme follows the scalable SC3 variant (``sc3s``, Quah et al. 2022):

1. **Facilities.**  On the first ``d`` dimensions of a representation in
   ``obsm`` (for each ``d`` of ``d_range``), k-means with many centroids
   (``n_facility``, by default ``3 * max(n_clusters)``) is run ``n_runs``
   times with different seeds (numba kernels in ``tl/_kmeans.py``: greedy
   k-means++ on a sample, then Lloyd iterations when the cells fit in one
   batch, else 10-50 mini-batch steps and a last pass over all cells).
   Every cell is assigned to one facility per run: the cell-to-facility
   binary matrix of all runs.
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
``benchmarks/sc3.py``): mini-batches of 1,024 cells by default and a fixed
number of steps (about two passes over the data, 10 to 50 steps) followed
by one pass over all cells that also moves each facility to the mean of its
cells (plain k-means when the data fit in one batch), weighted k-means with
10 starts on the facilities, and average linkage instead of mini-batch
k-means on the consensus matrix (better and far more stable from seed to
seed).  The work runs single-threaded in numba kernels that call no BLAS
(the per-step work is small, so threads would only add overhead, and results
cannot depend on the thread count) and every random step is seeded from
``random_state``: the same input and seed give identical clusters, so a
recorded history replays exactly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import numbers

import numba
import numpy as np
import pandas as pd

from .. import _progress as prog
from .. import _validate as v
from .._logging import logg
from ..colors import sync_colors
from ..errors import ExprmatError
from ..history import command
from ._kmeans import facility_kmeans, weighted_kmeans

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
            messages.append(f"n_facility set to {n_facility}, ignoring multiplier_facility")
    else:
        if multiplier_facility is None:
            multiplier_facility = DEFAULT_MULTIPLIER
            messages.append(
                f"multiplier_facility not set, using default value of {DEFAULT_MULTIPLIER}"
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
            messages.append(f"number of facilities capped at the number of cells - 1 = {n_facility}")
        else:
            messages.append(f"number of facilities calculated as {n_facility}")
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


def _seeds(random_state, *tag, n=1):
    """Independent seeds for one step, derived from (random_state, tag)."""
    ss = np.random.SeedSequence([int(random_state), *[int(t) for t in tag]])
    return [int(s) for s in ss.generate_state(n, dtype=np.uint32) % _SEED_MAX]


def _facilities(x, dims, n_runs, n_facility, batch_size, random_state, progress):
    """One facility k-means per (d, run): centres, labels (cells -> facility), sizes."""
    trials = []
    for d in dims:
        xd = np.ascontiguousarray(x[:, :d], dtype=np.float64)
        for seed in _seeds(random_state, 0, d, n=n_runs):
            centres, labels = facility_kmeans(xd, n_facility, seed, batch_size)
            trials.append((centres, labels, np.bincount(labels, minlength=n_facility)))
            progress.update(1)
    return trials


def _facility_partitions(trials, k, random_state):
    """For each run, weighted k-means of its facilities into k groups: (cells x runs) codes."""
    seeds = _seeds(random_state, 1, k, n=len(trials))
    codes = np.empty((trials[0][1].size, len(trials)), dtype=np.int64)
    for t, ((centres, labels, sizes), seed) in enumerate(zip(trials, seeds)):
        used = np.flatnonzero(sizes > 0)
        if used.size <= k:  # fewer non-empty facilities than clusters: each is its own group
            group = np.arange(used.size)
        else:
            group = weighted_kmeans(centres[used], sizes[used], k, seed)
        fmap = np.full(sizes.size, -1, dtype=np.int64)
        fmap[used] = group
        codes[:, t] = fmap[labels]
    return codes


def _patterns(codes):
    """Distinct rows of ``codes``: (pattern of each cell, patterns x runs codes, cells per pattern)."""
    n = codes.shape[0]
    key = np.zeros(n, dtype=np.int64)
    span = 1  # key < span
    for t in range(codes.shape[1]):
        base = int(codes[:, t].max()) + 1
        if span * base >= 2**62:  # re-densify so the combined key never overflows
            _, key = np.unique(key, return_inverse=True)
            key = key.ravel().astype(np.int64)
            span = int(key.max()) + 1
        key = key * base + codes[:, t]
        span *= base
    uniq, first, key = np.unique(key, return_index=True, return_inverse=True)
    key = key.ravel().astype(np.int64)
    # patterns in lexicographic order of their codes
    return key, codes[first], np.bincount(key, minlength=uniq.size)


@numba.njit(cache=True)
def _hamming(pats):  # pragma: no cover - compiled
    """Fraction of runs in which two patterns are in different clusters (patterns x
    patterns, diagonal inf): the distance of the cell-to-cluster consensus matrix."""
    n, n_runs = pats.shape
    pt = np.empty((n_runs, n), dtype=np.int32)
    for i in range(n):
        for t in range(n_runs):
            pt[t, i] = pats[i, t]
    dist = np.empty((n, n), dtype=np.float64)
    cnt = np.empty(n, dtype=np.int32)
    for i in range(n):
        cnt[:] = 0
        for t in range(n_runs):
            v = pt[t, i]
            row = pt[t]
            for j in range(n):
                cnt[j] += row[j] != v
        for j in range(n):
            dist[i, j] = cnt[j] / n_runs
        dist[i, i] = np.inf
    return dist


@numba.njit(cache=True)
def _nn_chain_average(dist, size):  # pragma: no cover - compiled
    """Nearest-neighbour chain for average linkage; ``dist`` (symmetric, diagonal inf)
    and ``size`` are overwritten.  Returns the merges (a, b, height) in the order they
    were made; ties go to the lowest index."""
    n = dist.shape[0]
    act = np.arange(n)  # active items, in increasing order
    n_act = n
    chain = np.empty(n, dtype=np.int64)
    out_a = np.empty(n - 1, dtype=np.int64)
    out_b = np.empty(n - 1, dtype=np.int64)
    out_h = np.empty(n - 1, dtype=np.float64)
    clen = 0
    for m in range(n - 1):
        a = -1
        b = -1
        best = np.inf
        while True:
            if clen == 0:
                chain[0] = act[0]
                clen = 1
            a = chain[clen - 1]
            row = dist[a]
            best = np.inf
            b = -1
            for q in range(n_act):
                j = act[q]
                if row[j] < best:
                    best = row[j]
                    b = j
            if clen > 1:
                p = chain[clen - 2]
                if row[p] <= best:
                    b = p
                    best = row[p]
                    break
            chain[clen] = b
            clen += 1
        clen -= 2
        sa = size[a]
        sb = size[b]
        ra = dist[a]
        rb = dist[b]
        w = 0
        for q in range(n_act):
            j = act[q]
            if j == b:
                continue
            act[w] = j
            w += 1
            if j != a:
                d = (sa * ra[j] + sb * rb[j]) / (sa + sb)
                ra[j] = d
                dist[j, a] = d
        n_act = w
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
    Returns an (n - 1) x 2 array of merged items ``(a, b)`` in merge order
    (increasing height).  ``dist`` (float64, C order) is used as work space
    when ``overwrite``.
    """
    n = dist.shape[0]
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    d = dist if overwrite else np.array(dist, dtype=np.float64, order="C", copy=True)
    np.fill_diagonal(d, np.inf)
    a, b, h = _nn_chain_average(d, np.asarray(weights, dtype=np.float64).copy())
    order = np.argsort(h, kind="stable")  # ties keep merge order
    return np.stack([a[order], b[order]], axis=1)


@numba.njit(cache=True)
def _find(parent, i):  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _roots(merges, n, n_merges):  # pragma: no cover - compiled
    """Union-find root of each item after the first ``n_merges`` merges."""
    parent = np.arange(n)
    for m in range(n_merges):
        parent[_find(parent, merges[m, 1])] = _find(parent, merges[m, 0])
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = _find(parent, i)
    return out


@numba.njit(cache=True)
def _n_big(merges, n, weights, min_size):  # pragma: no cover - compiled
    """Number of groups weighing at least ``min_size`` after each number of merges
    (0 .. n - 1)."""
    parent = np.arange(n)
    size = weights.copy()
    out = np.empty(merges.shape[0] + 1, dtype=np.int64)
    big = 0
    for i in range(n):
        big += size[i] >= min_size
    out[0] = big
    for m in range(merges.shape[0]):
        ra = _find(parent, merges[m, 0])
        rb = _find(parent, merges[m, 1])
        big -= (size[ra] >= min_size) + (size[rb] >= min_size)
        parent[rb] = ra
        size[ra] += size[rb]
        big += size[ra] >= min_size
        out[m + 1] = big
    return out


def _cut(merges, n, k):
    """Clusters 0..k-1 of n items after the first n - k merges."""
    merges = np.asarray(merges, dtype=np.int64).reshape(-1, 2)
    roots = _roots(merges, n, min(max(n - k, 0), merges.shape[0]))
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
        # the fewest groups (>= k) of which at least k have min_cells cells
        n_big = _n_big(merges, n_core, counts[core].astype(np.float64), float(min_cells))
        ok = np.flatnonzero(n_big[: n_core - k + 1] >= k)
        groups = _cut(merges, n_core, n_core - (int(ok[-1]) if ok.size else 0))
        sizes = np.bincount(groups, weights=counts[core])
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
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    uniq = np.flatnonzero(counts)
    first = np.full(counts.size, labels.size, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(labels.size))
    order = np.lexsort((first[uniq], -counts[uniq]))
    rank = np.full(counts.size, -1, dtype=np.int64)
    rank[uniq[order]] = np.arange(uniq.size)
    new = rank[labels]
    cats = [str(i) for i in range(uniq.size)]
    return pd.Categorical.from_codes(new, categories=cats)


@contextlib.contextmanager
def quiet_sc3s():
    """Run the reference ``sc3s`` (or our ``sc3``) without output: stdout / stderr are
    swallowed and the root logger is restored afterwards (``sc3s`` calls
    ``logging.basicConfig(level=INFO)``).  Used by the tests and the benchmark
    that compare ``sc3`` with ``sc3s``; not part of ``em.*``."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


# --------------------------------------------------------------------------- command


def _writes(p, adata):
    key = p["key_added"]
    ks = p["n_clusters"]
    ks = sorted({int(k) for k in (ks if isinstance(ks, list) else [ks])})
    out = [("uns", key)]
    for k in ks:
        out += [("obs", f"{key}.{k}"), ("uns", f"{key}.{k}_colors")]
    return out


@command("sc3", writes=_writes, gated=True)
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
        Cells per mini-batch of the facility k-means (default 1,024; about
        ``2 * n_cells / batch_size`` steps, 10 to 50).  With no more cells
        than that, the facilities come from plain k-means (Lloyd).
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
        logg.info(m)
    x = np.asarray(x)  # each d_range subset is copied to float64 once, in _facilities
    n_trials = len(dims) * n_runs
    results = {}
    n_patterns = {}
    # each update (a facility run, a k's consensus) is a safe point to cancel from a panel
    with prog.bar(n_trials + len(ks), "sc3", enabled=x.shape[0] >= 5000) as progress:
        trials = _facilities(x, dims, n_runs, n_facility, batch_size, random_state, progress)
        for k in ks:
            codes = _facility_partitions(trials, k, random_state)
            labels, n_patterns[k] = _consensus(codes, k)
            results[k] = _relabel_by_size(labels)
            progress.update(1)
    # all work done: write the results (new columns, no in-place edits)
    with prog.writing("sc3"):
        for k in ks:
            col = f"{key_added}.{k}"
            adata.obs[col] = pd.Series(results[k], index=adata.obs_names)
            sync_colors(adata, col)
            n_found = len(results[k].categories)
            if n_found < k:
                logg.info(f"{col}: the runs agree on only {n_found} distinct groups, so {col} has {n_found} clusters")
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
