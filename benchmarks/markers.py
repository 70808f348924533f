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

``--illico``: Wilcoxon one-vs-rest against ``illico.asymptotic_wilcoxon`` (the reference to
beat; ``pip install -e .[bench]``) at equal work: same data, same groups, same thread count
(``numba.get_num_threads()``, which ``em.settings.n_threads`` follows), no tie correction and
no continuity correction for both, illico's scanpy-shaped output (``return_as_scanpy``, so
it sorts the genes of each group like ours).  Data: distinct synthetic cells from the real
``pbmc_2samples_400`` (15,792 genes, log-normalised), grouped by k-means (10 PCs) of the
real cell each comes from.  Ours runs without and with ``pts`` (the tutorial's call), the
tools alternate, best of ``--repeat`` runs each; scanpy (with ``pts``) runs once where
``n <= --scanpy-max`` for the identity check, and the t-test against scanpy's at the first
size.  "rss" is the peak rise of the resident set during the call.

    python benchmarks/markers.py --illico --sizes 50000 200000 --groups 10 40 80
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
import pandas as pd

os.environ.setdefault("TQDM_DISABLE", "1")  # illico's progress bars (read when tqdm is imported)
import scanpy as sc  # noqa: E402
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


def _trim():
    """Give freed heap back to the OS, so the next call's RSS rise is its own (otherwise a
    tool run after another reuses the memory the first one freed and shows no rise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _one_run(fn):
    gc.collect()
    _trim()
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


def pbmc_groups(n, group_counts, seed=1):
    """Synthetic cells from pbmc_2samples_400, log-normalised, with ``obs['g<k>']``: k-means
    groups of the real cells (10 PCs), carried by each synthetic cell's main real cell."""
    from _realistic import load_source

    src = load_source("pbmc_2samples_400", leiden=False)
    real = lognorm(src.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.pca(real, n_comps=10, random_state=0)
        data = em.datasets.synthetic_from(src, n, random_state=seed, source="pbmc_2samples_400")
    lognorm(data)
    pos = src.obs_names.get_indexer(data.obs["source_cell"].astype(str))
    for k in group_counts:
        km = KMeans(k, random_state=0, n_init=3).fit_predict(real.obsm["X_pca"])
        data.obs[f"g{k}"] = pd.Categorical([f"c{i}" for i in km[pos]])
    return data


def run_illico(sizes, group_counts, repeat=2, scanpy_max=50_000):
    """Ours (without / with pts) vs illico, alternating; scanpy where small enough."""
    from illico import asymptotic_wilcoxon
    from loguru import logger

    logger.remove()  # illico logs every call at INFO
    from exprmat_widgets.tl._wilcoxon_striped import n_threads

    threads = n_threads()
    print(f"threads: ours {threads}, illico {threads}; load: {os.getloadavg()}", flush=True)

    def ours(d, key, pts, method="wilcoxon"):
        return lambda: em.markers(d, key, method=method, pts=pts, key_added="ours")

    def scanpy_call(d, key, **kw):
        return lambda: sc.tl.rank_genes_groups(d, key, pts=True, use_raw=False, key_added="ref", **kw)

    def illico(d, key):
        def go():
            d.uns["illico"] = asymptotic_wilcoxon(
                d, is_log1p=True, group_keys=key, n_threads=threads, tie_correct=False,
                use_continuity=False, return_as_scanpy=True, corr_method="benjamini-hochberg")
        return go

    warm = pbmc_groups(2000, [5])  # few groups: none too small to test at 2,000 cells
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = "g5"
        for f in (ours(warm, key, False), illico(warm, key)):
            f()
        em.markers(warm, key, method="t-test")
    rows = []
    for n in sizes:
        data = pbmc_groups(n, group_counts)
        nnz = data.X.nnz / data.n_obs
        print(f"synthetic from pbmc_2samples_400: {n:,} x {data.n_vars:,}, {nnz:.0f} non-zeros per cell", flush=True)
        for k in group_counts:
            key = f"g{k}"
            best = {"ours": [np.inf, 0.0, np.inf], "ours pts": [np.inf, 0.0, np.inf], "illico": [np.inf, 0.0, np.inf]}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(repeat):
                    for name, fn in (("ours", ours(data, key, False)), ("illico", illico(data, key)),
                                     ("ours pts", ours(data, key, True))):
                        c0 = time.process_time()
                        dt, rise = _one_run(fn)
                        cpu = time.process_time() - c0
                        best[name][0] = min(best[name][0], dt)
                        best[name][1] = max(best[name][1], rise)
                        best[name][2] = min(best[name][2], cpu)
            check = ""
            if n <= scanpy_max:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t_sc, r_sc = _one_run(scanpy_call(data, key, method="wilcoxon", tie_correct=False))
                same, diff = max_diff(data.uns["ours"], data.uns["ref"])
                check = f" | scanpy {t_sc:6.1f}s rss+{r_sc:5.0f}MiB names identical={same} max|diff|={diff:.1e}"
                del data.uns["ref"]
            o, op, il = best["ours"], best["ours pts"], best["illico"]
            print(f"{n:>7} cells {k:>3} groups | wall (cpu) s: ours {o[0]:6.2f} ({o[2]:6.2f}) rss+{o[1]:5.0f}MiB | "
                  f"ours pts {op[0]:6.2f} ({op[2]:6.2f}; +{100 * (op[0] / o[0] - 1):.0f}%) rss+{op[1]:5.0f}MiB | "
                  f"illico {il[0]:6.2f} ({il[2]:6.2f}) rss+{il[1]:5.0f}MiB | illico/ours {il[0] / o[0]:.2f}x "
                  f"(cpu {il[2] / o[2]:.2f}x), illico/ours-pts {il[0] / op[0]:.2f}x (cpu {il[2] / op[2]:.2f}x)"
                  f"{check}", flush=True)
            rows.append((n, k, best))
            for f in ("ours", "illico"):
                data.uns.pop(f, None)
        if n == sizes[0]:
            key = f"g{group_counts[len(group_counts) // 2]}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_o, r_o = _one_run(ours(data, key, True, method="t-test"))
                t_s, r_s = _one_run(scanpy_call(data, key, method="t-test"))
            same, diff = max_diff(data.uns["ours"], data.uns["ref"])
            print(f"{n:>7} cells {key[1:]:>3} groups t-test | ours {t_o:.2f}s rss+{r_o:.0f}MiB | scanpy {t_s:.2f}s "
                  f"rss+{r_s:.0f}MiB | speedup {t_s / t_o:.1f}x | names identical={same} max|diff|={diff:.1e}",
                  flush=True)
        del data
        gc.collect()
    print(f"load after: {os.getloadavg()}")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--tracemalloc", action="store_true", help="also report traced (numpy) peak memory")
    ap.add_argument("--repeat", type=int, default=None, help="best of N runs (default 3 at 10k cells, else 1)")
    ap.add_argument("--illico", action="store_true", help="Wilcoxon vs illico on synthetic pbmc cells")
    ap.add_argument("--groups", type=int, nargs="+", default=[10, 40, 80])
    ap.add_argument("--scanpy-max", type=int, default=50_000, help="largest size scanpy runs at (--illico)")
    args = ap.parse_args()
    if args.illico:
        run_illico(args.sizes or [50_000], args.groups, repeat=args.repeat or 2, scanpy_max=args.scanpy_max)
    else:
        run(args.sizes or [10_000, 50_000, 100_000], traced=args.tracemalloc, repeat=args.repeat)
