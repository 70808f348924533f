"""Marker genes: ``em.markers`` vs ``scanpy.tl.rank_genes_groups`` in one process.

Same data, same parameters, t-test and Wilcoxon (one-vs-rest; at 10k cells also
Wilcoxon with tie correction and against a named reference group).  Prints wall
time, peak memory and the ratio, and checks that the results are identical
(names in the same order; max abs difference of scores, log fold changes,
p-values, adjusted p-values and pts).

Data: the real mouse 10k cells (log-normalised; 8 k-means groups of 20 PCs) and
larger inputs of distinct synthetic cells made from them before normalisation
(``em.datasets.synthetic_from``, labelled "synthetic from mouse 10k"; each takes the
group of the real cell it mostly comes from).

Memory: "rss" is the peak rise of the process's resident set during the call,
sampled every 2 ms by a thread (it sees numba's allocations, which tracemalloc
does not); with ``--tracemalloc`` a second, traced run adds the peak of
Python-visible (numpy) allocations.  Times are the best of 3 runs at 10k cells and
single runs above (``--repeat``), after a warm-up (numba compilation excluded for
both tools).  Ours includes recording the command in the history.

    python benchmarks/markers.py [--sizes 10000 50000 100000] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scanpy as sc
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).parent))

import exprmat_widgets as em

FIELDS = ("scores", "logfoldchanges", "pvals", "pvals_adj")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def run_measured(fn, *, traced: bool = False, repeat: int = 1):
    """(best seconds of ``repeat`` calls, peak RSS rise MiB of the first, peak traced MiB or None)."""
    best = float("inf")
    rise = None
    for _ in range(repeat):
        dt, r = _one_run(fn)
        best = min(best, dt)
        rise = r if rise is None else rise
    traced_mib = None
    if traced:
        gc.collect()
        tracemalloc.start()
        fn()
        traced_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return best, rise, traced_mib


def _one_run(fn):
    gc.collect()
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    peak[0] = max(peak[0], _rss())
    return dt, (peak[0] - base) / 2**20


def max_diff(ours: dict, ref: dict) -> tuple[bool, float]:
    """(names identical, max abs difference over all numeric fields and pts)."""
    same_names = ours["names"].dtype.names == ref["names"].dtype.names
    worst = 0.0
    for g in ref["names"].dtype.names:
        same_names &= bool(np.array_equal(np.asarray(ours["names"][g]), np.asarray(ref["names"][g])))
        for f in FIELDS:
            a = np.asarray(ours[f][g], dtype=float)
            b = np.asarray(ref[f][g], dtype=float)
            both_nan = np.isnan(a) & np.isnan(b)
            worst = max(worst, float(np.max(np.where(both_nan, 0, np.abs(a - b)), initial=0)))
    for f in ("pts", "pts_rest"):
        if f in ref:
            worst = max(worst, float(np.abs(ours[f].to_numpy() - ref[f][ours[f].columns].to_numpy()).max()))
    return same_names, worst


def base_data():
    adata = em.datasets.mouse_10k()
    adata.X = adata.layers["counts"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = adata.copy()
        sc.pp.normalize_total(norm, target_sum=1e4)
        sc.pp.log1p(norm)
        sc.pp.pca(norm, n_comps=20, random_state=0)
    km = KMeans(8, random_state=0, n_init=3).fit_predict(norm.obsm["X_pca"])
    adata.obs["km"] = [f"k{i}" for i in km]
    adata.obs["km"] = adata.obs["km"].astype("category")
    del adata.layers["counts"]
    return adata


def lognorm(adata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    return adata


def compare(data, label, kw, traced, repeat):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = run_measured(lambda: em.markers(data, "km", key_added="ours", **kw), traced=traced, repeat=repeat)
        ref = run_measured(
            lambda: sc.tl.rank_genes_groups(data, "km", key_added="ref", pts=True, use_raw=False, **kw),
            traced=traced, repeat=repeat,
        )
    same, diff = max_diff(data.uns["ours"], data.uns["ref"])
    case = kw["method"] + ("" if kw.get("reference", "rest") == "rest" else f" ref={kw['reference']}")
    case += " tie_correct" if kw.get("tie_correct") else ""
    tr = f" traced ours {ours[2]:.0f} / scanpy {ref[2]:.0f} MiB" if traced else ""
    print(
        f"{label:<26} {data.n_obs:>7}x{data.n_vars:<5} {case:<28} ours {ours[0]:7.3f}s rss+{ours[1]:6.0f}MiB | "
        f"scanpy {ref[0]:7.3f}s rss+{ref[1]:6.0f}MiB | speedup {ref[0] / ours[0]:6.1f}x | "
        f"names identical={same} max|diff|={diff:.2e}{tr}",
        flush=True,
    )
    return {"label": label, "n": data.n_obs, "genes": data.n_vars, "case": case, "ours": ours, "ref": ref,
            "same": same, "diff": diff}


def run(sizes, traced=False, repeat=None):
    base = base_data()
    # warm-up: compile numba kernels of both tools on a small slice
    warm = lognorm(base[:600].copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in ("t-test", "wilcoxon"):
            for ref in ("rest", "k1"):
                for tc in (False, True):
                    em.markers(warm, "km", method=m, reference=ref, tie_correct=tc)
                    sc.tl.rank_genes_groups(warm, "km", method=m, reference=ref, tie_correct=tc, pts=True)
    results = []
    for n in sizes:
        if n == base.n_obs:
            data, label = lognorm(base.copy()), "mouse 10k (real)"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = em.datasets.synthetic_from(base, n, random_state=1, source="mouse 10k")
                data, label = lognorm(data), "synthetic from mouse 10k"
        cases = [{"method": "t-test"}, {"method": "wilcoxon"}]
        if n == base.n_obs:
            cases += [{"method": "wilcoxon", "tie_correct": True}, {"method": "wilcoxon", "reference": "k3"}]
        for kw in cases:
            reps = repeat if repeat is not None else (3 if n <= 10_000 else 1)
            results.append(compare(data, label, kw, traced, reps))
        del data
        gc.collect()
    bad = [r for r in results if not r["same"] or r["diff"] > 1e-6]
    print("all results identical to scanpy (names, |diff| <= 1e-6):", not bad)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--tracemalloc", action="store_true", help="also report traced (numpy) peak memory")
    ap.add_argument("--repeat", type=int, default=None, help="best of N runs (default 3 at 10k cells, else 1)")
    args = ap.parse_args()
    run(args.sizes, traced=args.tracemalloc, repeat=args.repeat)
