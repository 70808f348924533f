"""Recording overhead of the preprocessing / clustering commands (issue 10): each recorded
``em`` command against the plain scanpy (harmonypy for Harmony) call with the same
parameters, on the same input, in one process.

Steps, in order, each starting from the previous step's (recorded) result:
normalize_total -> log1p -> highly_variable_genes -> pca -> harmony (batch key 'sample')
-> knn -> umap -> leiden.  Every run gets its own copy of the step's input (copied outside
the timing); runs alternate ours / reference (the order flips every round) and the median
is reported (``--repeat``, default 3; UMAP ``--repeat-umap``, default 1).  Both results must
be identical (our commands call scanpy); the script says so per step, or the largest
difference.

Data: (a) the real mouse 10k cells (counts); (b) ``--cells`` cells synthetic from
mouse_10k_chr1 (``_realistic.realistic``).  The mouse file holds one sample, and Harmony
needs two batches, so ``obs['sample']`` is replaced by a seeded random split into two
halves (the same split for both sides; it is the cost that is measured, not the biology).

``em.pca`` runs scanpy's PCA on one BLAS thread (so a history replays bit for bit on any
core count); the reference is scanpy with its default threads, so the PCA row shows what
that costs, and its results differ from ours in the last bits where the thread count matters.
``--until STEP`` stops after that step.

    python benchmarks/recording.py [--cells 200000] [--repeat 3] [--repeat-umap 1] [--skip-real] [--until pca]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import scanpy as sc
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from _realistic import load_source, print_realism, realism, realistic  # noqa: E402

import exprmat_widgets as em  # noqa: E402

N_TOP = 500  # the mouse file has 1,000 genes
N_PCS = 30


def _harmony_plain(a):
    import harmonypy

    ho = harmonypy.run_harmony(np.asarray(a.obsm["X_pca"], dtype=np.float64), a.obs[["sample"]], "sample",
                               max_iter_harmony=10, random_state=0, verbose=False)
    z = np.asarray(ho.Z_corr)
    a.obsm["harmony"] = np.ascontiguousarray(z if z.shape == a.obsm["X_pca"].shape else z.T, dtype=np.float32)


# (name, ours, reference, what to compare: (store, key) pairs)
STEPS = [
    ("normalize_total",
     lambda a: em.normalize_total(a, target_sum=1e4),
     lambda a: sc.pp.normalize_total(a, target_sum=1e4),
     [("X", None)]),
    ("log1p",
     lambda a: em.log1p(a),
     lambda a: sc.pp.log1p(a),
     [("X", None)]),
    ("highly_variable_genes",
     lambda a: em.highly_variable_genes(a, n_top_genes=N_TOP, flavor="seurat"),
     lambda a: sc.pp.highly_variable_genes(a, n_top_genes=N_TOP, flavor="seurat"),
     [("var", "highly_variable"), ("var", "dispersions_norm")]),
    ("pca",
     lambda a: em.pca(a, n_comps=N_PCS, mask_var="highly_variable", random_state=0),
     lambda a: sc.pp.pca(a, n_comps=N_PCS, mask_var="highly_variable", random_state=0),
     [("obsm", "X_pca"), ("varm", "PCs")]),
    ("harmony",
     lambda a: em.harmony(a, batch_key="sample", max_iter_harmony=10, random_state=0),
     _harmony_plain,
     [("obsm", "harmony")]),
    ("knn",
     lambda a: em.knn(a, use_rep="harmony", n_neighbors=15, random_state=0),
     lambda a: sc.pp.neighbors(a, use_rep="harmony", n_neighbors=15, random_state=0),
     [("obsp", "connectivities"), ("obsp", "distances")]),
    ("umap",
     lambda a: em.umap(a, min_dist=0.5, random_state=0),
     lambda a: sc.tl.umap(a, min_dist=0.5, random_state=0),
     [("obsm", "X_umap")]),
    ("leiden",
     lambda a: em.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2),
     lambda a: sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2),
     [("obs", "leiden")]),
]


def _get(a, store, key):
    if store == "X":
        return a.X
    return getattr(a, store)[key]


def _difference(x, y) -> float:
    """0.0 when identical, else the largest absolute difference (inf for labels/shapes)."""
    if sp.issparse(x) or sp.issparse(y):
        x, y = sp.csr_matrix(x), sp.csr_matrix(y)
        if x.shape != y.shape:
            return float("inf")
        d = (x - y).tocsr()
        d.eliminate_zeros()
        return float(abs(d).max()) if d.nnz else 0.0
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        return float("inf")
    if x.dtype.kind in "fc" or y.dtype.kind in "fc":
        eq = (x == y) | (np.isnan(x) & np.isnan(y))
        return 0.0 if eq.all() else float(np.nanmax(np.abs(x - y)))
    return 0.0 if np.array_equal(x.astype(str), y.astype(str)) else float("inf")


def _timed(fn, a):
    gc.collect()
    t0 = time.perf_counter()
    fn(a)
    return time.perf_counter() - t0


def run_pipeline(start, label, *, repeat=3, repeat_umap=1, out=None, until=None):
    """Time every step on ``start`` (counts); append result rows to ``out``."""
    out = [] if out is None else out
    state = start
    names = [s[0] for s in STEPS]
    for name, ours, ref, checks in STEPS[: names.index(until) + 1 if until else len(STEPS)]:
        n = repeat_umap if name == "umap" else repeat
        t_ours, t_ref = [], []
        for r in range(n):
            order = ((ours, t_ours), (ref, t_ref)) if r % 2 == 0 else ((ref, t_ref), (ours, t_ours))
            for fn, times in order:
                a = state.copy()
                times.append(_timed(fn, a))
                if fn is ours:
                    a_ours = a
                else:
                    a_ref = a
        diffs = [_difference(_get(a_ours, s, k), _get(a_ref, s, k)) for s, k in checks]
        worst = max(diffs)
        assert len(a_ours.uns["commands"]) == len(state.uns.get("commands", [])) + 1
        rec = {"step": name, "data": label, "cells": state.n_obs, "ours": float(np.median(t_ours)),
               "ref": float(np.median(t_ref)), "runs": n,
               "equal": "identical" if worst == 0 else f"max |diff| {worst:.3g}"}
        rec["ratio"] = rec["ours"] / rec["ref"]
        out.append(rec)
        print(f"{name:<22} {label:<34} {state.n_obs:>7,} cells  ours {rec['ours']:8.3f} s  "
              f"plain {rec['ref']:8.3f} s  ratio {rec['ratio']:.2f}  (median of {n})  {rec['equal']}",
              flush=True)
        state = a_ours
    return out


def two_batches(adata, seed=0):
    """``obs['sample']`` as a seeded random split into two halves (Harmony needs two)."""
    rng = np.random.default_rng(seed)
    adata.obs["sample"] = np.where(rng.random(adata.n_obs) < 0.5, "half_a", "half_b")
    adata.obs["sample"] = adata.obs["sample"].astype("category")
    return adata


def warm_up(src):
    """Run both sides once on 5,000 cells so neither pays numba's compilation in the figures
    (above 4,096 cells scanpy's kNN goes through pynndescent, which compiles its own kernels)."""
    small = two_batches(src[:5000].copy())
    small.uns.pop("commands", None)
    run_pipeline(small, "warm-up (not reported)", repeat=1, repeat_umap=1, out=[])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=200_000, help="synthetic cells (0: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-umap", type=int, default=1)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--until", choices=[s[0] for s in STEPS], default=None, help="stop after this step")
    args = ap.parse_args(argv)
    logging.getLogger("exprmat_widgets").setLevel(logging.WARNING)
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    src = load_source("mouse_10k_chr1")  # counts, with obs['source_leiden'] for synthetic_from
    real = src.copy()
    real.X = real.layers["counts"].copy() if "counts" in real.layers else real.X
    rows = []
    warm_up(real)
    if not args.skip_real:
        print_realism(realism(real, src), "mouse_10k_chr1 (real)")
        run_pipeline(two_batches(real.copy()), "mouse_10k_chr1 (real)", repeat=args.repeat,
                     repeat_umap=args.repeat_umap, out=rows, until=args.until)
    if args.cells:
        em.datasets.synthetic_from(src, 10)  # compile its kernel outside the figures
        syn = realistic("mouse_10k_chr1", args.cells, source=src)
        label = syn.uns["synthetic"]["label"]
        print_realism(realism(syn, src), label)
        syn.uns.pop("synthetic", None)
        run_pipeline(two_batches(syn), label, repeat=args.repeat, repeat_umap=args.repeat_umap, out=rows,
                     until=args.until)
    print(f"load average at the end {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| step | data | cells | ours (s) | plain scanpy (s) | ours / plain | runs | results |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['data']} | {r['cells']:,} | {r['ours']:.3f} | {r['ref']:.3f} | "
              f"{r['ratio']:.2f} | {r['runs']} | {r['equal']} |")
    return rows


if __name__ == "__main__":
    main()
