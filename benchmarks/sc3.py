"""SC3 consensus clustering: exprmat_widgets ``em.sc3`` against the reference ``sc3s``.

Both run in this process on the same representation, with the same seeds and
the same thread limit (default 1 thread each, the fair setting on a shared
machine; ``--threads 0`` leaves both libraries at their defaults).

1. Accuracy on real labels: ``em.datasets.pbmc68k_counts()`` (700 PBMC,
   ``obsm['X_pca']``, 10 cell types in ``obs['bulk_labels']``).  Adjusted Rand
   index at k = 10 (the true number of types) against the labels, mean over
   ``--seeds`` seeds, for ``n_clusters=[10]`` and for the tutorial's
   ``[5, 10, 20, 30]``.
2. Speed and memory: ``--n-cells 700`` runs on the 700 real cells above;
   larger sizes use ``em.datasets.mouse_10k()`` (10,000 real mouse cells),
   log-normalised, 30 PCs, resampled with replacement to ``--n-cells`` cells
   (labelled "resampled" below).  Tutorial setting:
   ``n_clusters=[5, 10, 20, 30]``, ``n_runs=5``, default facilities (90).
   Wall time (best of ``--repeats``) and peak traced memory (tracemalloc, a
   separate run) for each tool, the ratios, and CPU times (less sensitive to
   a loaded machine).  Agreement (ARI) with the cell types (700 cells) or
   with Leiden clusters of the 10,000 original cells (resampled data: a
   sanity check, not a ground truth) is printed too.

Measured 2026-11-25 18:36 UTC on the shared 2-core build machine (load ~3),
sc3s 0.1.1, scikit-learn 1.9.1, numpy 2.4, numba 0.68, --threads 1 (both), best of 3:
  accuracy, ARI at k=10 vs bulk_labels (mean of 10 seeds): n_clusters=[10] ours 0.561
    (sd 0.052) vs sc3s 0.486 (sd 0.076); n_clusters=[5,10,20,30] ours 0.519 (sd 0.044)
    vs sc3s 0.434 (sd 0.050) (ours >= sc3s on 9/10 seeds for both).
  speed, n_clusters=[5,10,20,30] (wall time; peak traced memory):
    700 real cells          ours 0.047 s vs sc3s 0.167 s (3.53x);  1 vs 2 MiB
    10,000 resampled cells  ours 0.164 s vs sc3s 0.482 s (2.95x); 19 vs 33 MiB
    50,000 resampled cells  ours 0.359 s vs sc3s 3.80 s (10.6x);  23 vs 155 MiB
    100,000 resampled cells ours 0.505 s vs sc3s 12.3 s (24.4x);  28 vs 332 MiB
  (2,000 and 5,000 resampled cells: 2.3x and 2.6x; peak memory there is ~13-19 MiB
    vs sc3s 7-17 MiB, the pattern distance matrix of average linkage.)
  --threads 0 (library defaults; sc3s's tiny OpenMP mini-batches oversubscribe
    a busy machine, ours always limits itself to one thread): 50,000 cells
    2.51 s vs 134.8 s (earlier version of ours).

Run:  python benchmarks/sc3.py [--n-cells 700 10000 50000 100000] [--seeds 10] [--threads 1]
Needs the reference: pip install --no-deps sc3s  (its numpy<2 pin is not needed:
sc3s 0.1.1 runs with numpy 2).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
import tracemalloc
import warnings

import anndata as ad
import numpy as np
import scanpy as sc
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

import exprmat_widgets as em
from exprmat_widgets.tl.sc3_clustering import quiet_sc3s

warnings.filterwarnings("ignore")
TUTORIAL_KS = [5, 10, 20, 30]


def run_ours(adata, ks, seed, basis="X_pca"):
    with quiet_sc3s():
        em.sc3(adata, basis=basis, n_clusters=ks, random_state=seed)
    return {k: adata.obs[f"sc3.{k}"] for k in ks}


def run_sc3s(adata, ks, seed):
    import sc3s

    with quiet_sc3s():
        sc3s.tl.consensus(adata, n_clusters=ks, random_state=seed)
    return {k: adata.obs[f"sc3s_{k}"] for k in ks}


def limits(threads):
    return threadpool_limits(limits=threads) if threads > 0 else contextlib.nullcontext()


def accuracy(seeds, threads):
    base = em.datasets.pbmc68k_counts()
    truth = base.obs["bulk_labels"]
    k_true = truth.nunique()
    print(f"== accuracy: pbmc68k_counts, {base.n_obs} cells, {k_true} cell types (bulk_labels), "
          f"X_pca {base.obsm['X_pca'].shape[1]} dims, seeds 0..{seeds - 1}")
    rows = []
    for ks in ([k_true], TUTORIAL_KS):
        res = {"ours": [], "sc3s": []}
        times = {"ours": 0.0, "sc3s": 0.0}
        for s in range(seeds):
            for name, fn in (("ours", run_ours), ("sc3s", run_sc3s)):
                a = base.copy()
                with limits(threads):
                    t = time.perf_counter()
                    out = fn(a, ks, s)
                    times[name] += time.perf_counter() - t
                res[name].append(adjusted_rand_score(truth, out[k_true]))
        o, r = np.array(res["ours"]), np.array(res["sc3s"])
        print(f"n_clusters={ks}: ARI at k={k_true}  ours mean {o.mean():.3f} (sd {o.std():.3f}, "
              f"min {o.min():.3f})  sc3s mean {r.mean():.3f} (sd {r.std():.3f}, min {r.min():.3f})  "
              f"ours better or equal on {(o >= r).sum()}/{seeds} seeds; "
              f"time ours {times['ours']:.2f}s sc3s {times['sc3s']:.2f}s")
        rows.append((ks, o.mean(), r.mean(), times['ours'], times['sc3s']))
    return rows


def resampled(n_cells):
    m = em.datasets.mouse_10k()
    sc.pp.normalize_total(m, target_sum=1e4)
    sc.pp.log1p(m)
    sc.pp.pca(m, n_comps=30, random_state=0)
    with threadpool_limits(limits=1):
        sc.pp.neighbors(m, n_neighbors=15, random_state=0)
        sc.tl.leiden(m, resolution=1.0, flavor="igraph", n_iterations=2, random_state=0)
    idx = np.random.default_rng(0).choice(m.n_obs, n_cells, replace=True)
    big = ad.AnnData(obsm={"X_pca": np.asarray(m.obsm["X_pca"][idx])})
    big.obs_names = [f"c{i}" for i in range(n_cells)]
    return big, np.asarray(m.obs["leiden"])[idx]


def dataset(n_cells):
    """(AnnData with obsm['X_pca'], reference labels, description).  700 cells: the real
    pbmc68k_counts cells (labels: bulk_labels); otherwise mouse_10k resampled (labels:
    Leiden clusters of the original cells)."""
    if n_cells == 700:
        base = em.datasets.pbmc68k_counts()
        a = ad.AnnData(obsm={"X_pca": np.asarray(base.obsm["X_pca"])})
        a.obs_names = list(base.obs_names)
        return a, np.asarray(base.obs["bulk_labels"]), "pbmc68k_counts, 700 real cells, 50 PCs", "cell types"
    big, leiden = resampled(n_cells)
    return (big, leiden, f"mouse_10k resampled to {n_cells} cells (resampled), 30 PCs",
            "Leiden of the original cells (sanity, not ground truth)")


def speed(n_cells, repeats, threads, seed=0):
    big, ref_labels, what, ref_name = dataset(n_cells)
    print(f"\n== speed: {what}, n_clusters={TUTORIAL_KS}, n_runs=5, 90 facilities, "
          f"threads={threads or 'default'} for both")
    times = {"ours": [], "sc3s": []}
    cpu = {"ours": [], "sc3s": []}
    outs = {}
    for _ in range(repeats):
        for name, fn in (("ours", run_ours), ("sc3s", run_sc3s)):
            a = big.copy()
            gc.collect()
            with limits(threads):
                t, c = time.perf_counter(), time.process_time()
                outs[name] = fn(a, TUTORIAL_KS, seed)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    mem = {}
    for name, fn in (("ours", run_ours), ("sc3s", run_sc3s)):
        a = big.copy()
        gc.collect()
        tracemalloc.start()
        with limits(threads):
            fn(a, TUTORIAL_KS, seed)
        mem[name] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    to, tr = min(times["ours"]), min(times["sc3s"])
    co, cr = min(cpu["ours"]), min(cpu["sc3s"])
    print(f"time (best of {repeats}): ours {to:.3f}s  sc3s {tr:.3f}s  -> ours is {tr / to:.2f}x faster"
          f"  (CPU time: ours {co:.3f}s  sc3s {cr:.3f}s, {cr / co:.2f}x)")
    print(f"peak traced memory: ours {mem['ours']:.0f} MiB  sc3s {mem['sc3s']:.0f} MiB  "
          f"-> ratio sc3s/ours {mem['sc3s'] / mem['ours']:.2f}")
    line = f"ARI vs {ref_name}:"
    for k in TUTORIAL_KS:
        line += (f"  k={k}: ours {adjusted_rand_score(ref_labels, outs['ours'][k]):.3f}"
                 f" sc3s {adjusted_rand_score(ref_labels, outs['sc3s'][k]):.3f}")
    print(line)
    return to, tr, mem, line.split(":", 1)[1].strip()


def main(argv=None):
    """Prints the report; returns ``_common.row``-style dicts."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import row

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cells", type=int, nargs="+", default=[700, 10000, 50000, 100000],
                   help="700: the real pbmc68k_counts cells; otherwise mouse_10k resampled")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="thread limit for both (0: library defaults)")
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args(argv)
    rows = []
    # warm-up (numba compilation of our linkage, imports of both) outside the timings
    warm = em.datasets.pbmc68k_counts()
    run_ours(warm.copy(), [5], 0)
    run_sc3s(warm.copy(), [5], 0)
    if not args.skip_accuracy:
        for ks, o, r, t_o, t_r in accuracy(args.seeds, args.threads):
            rows.append(row(f"sc3 accuracy n_clusters={ks}", "pbmc68k_counts (real)", (700, 50),
                            (t_o, None), (t_r, None), reference="sc3s",
                            note=f"total time of {args.seeds} seeds; ARI vs bulk_labels ours {o:.3f} sc3s {r:.3f}"))
    for n in args.n_cells:
        to, tr, mem, ari = speed(n, args.repeats, args.threads)
        data = "pbmc68k_counts (real, 50 PCs)" if n == 700 else "mouse 10k resampled (30 PCs)"
        rows.append(row(f"sc3 n_clusters={TUTORIAL_KS}", data, (n, 50 if n == 700 else 30),
                        (to, mem["ours"]), (tr, mem["sc3s"]), reference="sc3s",
                        note=f"threads={args.threads or 'default'}; ARI vs reference labels: {ari}"))
    return rows


if __name__ == "__main__":
    main()
