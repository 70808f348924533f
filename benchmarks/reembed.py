"""Re-embedding at scale (issue 13 item 5): em.knn / em.umap against scanpy, and the
faster ``em.umap(subsample=m)``, on the same PCA.

Data: synthetic from mouse_10k_chr1 (``_realistic.realistic``: distinct synthetic cells
at its 1,000 genes), normalised to 1e4, log1p, PCA 30 components (``sc.pp.pca``,
random_state 0).  Numba is warmed up on 3,000 cells first, so compile time is excluded.

Per size: ``em.knn`` and ``sc.pp.neighbors`` alternate (the order flips each repeat) in
this one process, then ``em.umap`` and ``sc.tl.umap`` on that graph; results are checked
identical (graph matrices and layouts, element for element).  Then ``em.umap(subsample=m,
maxiter=e)`` for each ``e`` of ``--final-epochs``, and its quality next to the default
layout and a random one, on a sample of ``--quality-cells`` cells:

* trustworthiness (``sklearn.manifold.trustworthiness``, 15 neighbours, PCA vs 2-D);
* kNN preservation: the share of each cell's 15 graph neighbours (``obsp['distances']``)
  among its 15 nearest cells in 2-D;
* silhouette in 2-D of the Leiden clusters of the synthetic cells' own graph (igraph,
  resolution 1), and of the ones they inherit from their real cell.

Wall seconds, CPU seconds (user + sys of the process, all threads) and peak RSS (VmHWM,
reset before each call through /proc/self/clear_refs) are printed per call, with ratios.

    python benchmarks/reembed.py --sizes 50000 200000 --subsample 20000 --final-epochs 15 30 60
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time

import numpy as np
import scanpy as sc
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors

import exprmat_widgets as em

try:
    from _realistic import load_source, realistic, rss_mib
except ImportError:  # run as a module from the repository root
    from benchmarks._realistic import load_source, realistic, rss_mib


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    """(wall s, CPU s, peak RSS MiB) of ``fn()``; the peak is this call's (VmHWM reset first)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    t0, c0 = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - t0, _cpu() - c0, rss_mib("VmHWM")


def prepared(src, n_obs: int):
    """``n_obs`` synthetic cells with their PCA (30 comps) and inherited Leiden labels only."""
    syn = realistic("mouse_10k_chr1", n_obs, source=src)
    sc.pp.normalize_total(syn, target_sum=1e4)
    sc.pp.log1p(syn)
    sc.pp.pca(syn, n_comps=30, random_state=0)
    out = sc.AnnData(obs=syn.obs[["source_leiden"]].copy(), obsm={"X_pca": syn.obsm["X_pca"]})
    nnz = syn.X.nnz / syn.n_obs
    del syn
    gc.collect()
    return out, nnz


def same_graph(a, b) -> bool:
    return all((a.obsp[k] != b.obsp[k]).nnz == 0 for k in ("connectivities", "distances"))


def quality(adata, emb, cells: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    s = np.sort(rng.choice(adata.n_obs, min(cells, adata.n_obs), replace=False))
    d = adata.obsp["distances"].tocsr()
    nn2 = NearestNeighbors(n_neighbors=16).fit(emb).kneighbors(emb[s], return_distance=False)[:, 1:]
    kept = [len(set(d.indices[d.indptr[i]:d.indptr[i + 1]]) & set(row)) / max(d.indptr[i + 1] - d.indptr[i], 1)
            for i, row in zip(s, nn2)]
    return {"trust": float(trustworthiness(adata.obsm["X_pca"][s], emb[s], n_neighbors=15)),
            "knn_kept": float(np.mean(kept)),
            "silhouette": float(silhouette_score(emb[s], adata.obs["leiden"].to_numpy()[s])),
            "silhouette_inherited": float(silhouette_score(emb[s], adata.obs["source_leiden"].to_numpy()[s]))}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[50000, 200000])
    p.add_argument("--umap-sizes", type=int, nargs="*", default=None,
                   help="sizes at which the default UMAP is run (default: all)")
    p.add_argument("--sc-umap-sizes", type=int, nargs="*", default=None,
                   help="sizes at which sc.tl.umap is run too, for the identity check (default: all)")
    p.add_argument("--repeat", type=int, default=2, help="kNN repeats (order flips each)")
    p.add_argument("--subsample", type=int, default=20000)
    p.add_argument("--final-epochs", type=int, nargs="+", default=[15, 30, 60])
    p.add_argument("--quality-cells", type=int, default=5000)
    args = p.parse_args()
    umap_sizes = args.sizes if args.umap_sizes is None else args.umap_sizes
    sc_umap_sizes = umap_sizes if args.sc_umap_sizes is None else args.sc_umap_sizes

    src = load_source("mouse_10k_chr1")
    warm, _ = prepared(src, 3000)
    em.knn(warm, use_rep="X_pca", random_state=0, transformer="pynndescent")
    em.knn(warm, use_rep="X_pca", random_state=0)
    em.umap(warm, random_state=0)
    em.umap(warm, random_state=0, subsample=1000)
    del warm
    rows = []
    for n in args.sizes:
        base, nnz = prepared(src, n)
        print(f"## {n} cells (synthetic from mouse_10k_chr1, {nnz:.0f} non-zeros per cell, 1,000 genes, "
              f"{base.obs['source_leiden'].nunique()} inherited Leiden clusters, PCA 30)", flush=True)
        ours, ref = base.copy(), base.copy()
        for r in range(args.repeat):
            order = [("em", ours), ("sc", ref)] if r % 2 == 0 else [("sc", ref), ("em", ours)]
            for who, a in order:
                fn = ((lambda a=a: em.knn(a, use_rep="X_pca", n_neighbors=15, random_state=0)) if who == "em"
                      else (lambda a=a: sc.pp.neighbors(a, use_rep="X_pca", n_neighbors=15, random_state=0)))
                w, c, m = timed(fn)
                rows.append({"n": n, "step": "knn", "who": who, "wall": w, "cpu": c, "rss": m})
                print(json.dumps(rows[-1]), flush=True)
        print(f"knn identical: {same_graph(ours, ref)}", flush=True)
        sc.tl.leiden(ours, flavor="igraph", n_iterations=2, random_state=0, key_added="leiden")
        print(f"{ours.obs['leiden'].nunique()} Leiden clusters of the synthetic cells' own graph", flush=True)
        if n not in sc_umap_sizes:
            ref = None  # not needed: free its graph
        rnd = np.random.default_rng(0).normal(size=(n, 2))
        rows.append({"n": n, "step": "quality", "who": "random", **quality(ours, rnd, args.quality_cells)})
        print(json.dumps(rows[-1]), flush=True)
        for e in args.final_epochs:
            fast = ours.copy()
            w, c, m = timed(lambda fast=fast, e=e: em.umap(fast, random_state=0, subsample=args.subsample,
                                                           maxiter=e))
            rows.append({"n": n, "step": f"umap subsample={args.subsample} maxiter={e}", "who": "em",
                         "wall": w, "cpu": c, "rss": m})
            print(json.dumps(rows[-1]), flush=True)
            rows.append({"n": n, "step": "quality", "who": f"subsample={args.subsample} maxiter={e}",
                         **quality(ours, fast.obsm["X_umap"], args.quality_cells)})
            print(json.dumps(rows[-1]), flush=True)
            del fast
        default = None
        if n in umap_sizes:
            for who, a in (("em", ours), ("sc", ref)) if n in sc_umap_sizes else (("em", ours),):
                fn = ((lambda a=a: em.umap(a, random_state=0)) if who == "em"
                      else (lambda a=a: sc.tl.umap(a, random_state=0)))
                w, c, m = timed(fn)
                rows.append({"n": n, "step": "umap", "who": who, "wall": w, "cpu": c, "rss": m})
                print(json.dumps(rows[-1]), flush=True)
            default = ours.obsm["X_umap"]
            if n in sc_umap_sizes:
                print(f"umap identical: {np.array_equal(ours.obsm['X_umap'], ref.obsm['X_umap'])}", flush=True)
            rows.append({"n": n, "step": "quality", "who": "default", **quality(ours, default, args.quality_cells)})
            print(json.dumps(rows[-1]), flush=True)
        del ref, ours, base
        gc.collect()
    for n in args.sizes:
        by = {(r["step"], r["who"]): r for r in rows if r["n"] == n and "wall" in r}
        for step in ("knn", "umap"):
            if (step, "em") in by and (step, "sc") in by:
                a, b = by[(step, "em")], by[(step, "sc")]
                print(f"{n} {step}: em/sc wall {a['wall'] / b['wall']:.2f}, cpu {a['cpu'] / b['cpu']:.2f}")
        if ("umap", "em") in by:
            for (step, _who), r in by.items():
                if step.startswith("umap subsample"):
                    print(f"{n} {step}: default/fast wall {by[('umap', 'em')]['wall'] / r['wall']:.2f}, "
                          f"cpu {by[('umap', 'em')]['cpu'] / r['cpu']:.2f}")


if __name__ == "__main__":
    main()
