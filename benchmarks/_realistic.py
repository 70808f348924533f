"""Realistic large inputs for the benchmarks: distinct synthetic cells made from real ones
by :func:`exprmat_widgets.datasets.synthetic_from` (a real cell mixed with one of its 15
nearest real neighbours, a real library size, counts one sampling layer away from the
expression), labelled "synthetic from <source>".  The older ``_common.resample_cells``
copies real cells with count noise; figures made with it say "resampled".

    python benchmarks/_realistic.py [--source pbmc_2samples_400] [--sizes 200000] [--leiden 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scanpy as sc

import exprmat_widgets as em

SOURCES = {
    "pbmc_2samples_400": "/work/shared/data/pbmc_2samples_400.h5ad",  # 400 x 15,792 genes
    "mouse_10k_chr1": "/work/shared/data/mouse_10k_chr1.h5ad",  # 10,000 x 1,000 genes
}


def load_source(name: str, *, leiden: bool = True):
    """The real data of ``name``; with ``leiden``, ``obs['source_leiden']`` holds its own
    Leiden clusters (so synthetic cells carry the cluster of their main real cell)."""
    import anndata as ad

    path = SOURCES[name]
    try:
        adata = ad.read_h5ad(path)
    except FileNotFoundError:
        adata = ad.read_h5ad(em.datasets.data_path(path.rsplit("/", 1)[1]))
    if leiden:
        tmp = adata.copy()
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
        sc.pp.pca(tmp, n_comps=30, random_state=0)
        sc.pp.neighbors(tmp, n_neighbors=15, random_state=0)
        sc.tl.leiden(tmp, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, key_added="source_leiden")
        adata.obs["source_leiden"] = tmp.obs["source_leiden"]
    return adata


def realistic(name: str, n_obs: int, *, seed: int = 0, source=None):
    """``n_obs`` synthetic cells from the source ``name`` (pass ``source`` when loaded)."""
    src = load_source(name) if source is None else source
    return em.datasets.synthetic_from(src, n_obs, random_state=seed, source=name)


def rss_mib(field: str = "VmRSS") -> float:
    """Resident memory of this process (``VmRSS``; ``VmHWM``: its peak), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def realism(syn, src, *, leiden_cells: int = 0, seed: int = 0) -> dict:
    """Non-zeros per cell and library-size quantiles of ``syn`` next to the real ``src``;
    with ``leiden_cells``, the Leiden cluster count of a subsample of each, of the same size
    (at most ``leiden_cells``; the count grows with the number of cells) and pipeline."""
    def stats(a):
        X = a.X.tocsr()
        nnz = np.diff(X.indptr)
        lib = np.asarray(X.sum(axis=1)).ravel()
        return {"nnz_mean": float(nnz.mean()), "nnz_median": float(np.median(nnz)),
                "lib_q": [float(q) for q in np.quantile(lib, [0.05, 0.25, 0.5, 0.75, 0.95])]}

    out = {"real": stats(src), "synthetic": stats(syn)}
    if leiden_cells:
        n = min(leiden_cells, src.n_obs, syn.n_obs)
        for key, a in (("real", src), ("synthetic", syn)):
            if a.n_obs > n:
                a = a[np.random.default_rng(seed).choice(a.n_obs, n, replace=False)]
            out[key]["leiden_cells"] = int(a.n_obs)
            out[key]["leiden_clusters"] = _leiden_count(a)
    return out


def _leiden_count(a) -> int:
    a = a.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.pca(a, n_comps=30, random_state=0)
    sc.pp.neighbors(a, n_neighbors=15, random_state=0)
    sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2)
    return int(a.obs["leiden"].nunique())


def print_realism(r: dict, label: str) -> None:
    print(f"realism of {label}:")
    for key in ("real", "synthetic"):
        s = r[key]
        extra = (f"; Leiden (res 1) on {s['leiden_cells']} cells: {s['leiden_clusters']} clusters"
                 if "leiden_clusters" in s else "")
        print(f"  {key:<9} nnz/cell mean {s['nnz_mean']:.0f} median {s['nnz_median']:.0f}; library "
              f"q05/25/50/75/95 {' / '.join(f'{q:.0f}' for q in s['lib_q'])}{extra}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="pbmc_2samples_400", choices=sorted(SOURCES))
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000])
    ap.add_argument("--leiden", type=int, default=0, help="cells of the Leiden subsample (0: skip)")
    args = ap.parse_args()
    src = load_source(args.source)
    em.datasets.synthetic_from(src, 10)  # compile the kernel once, outside the timing
    for n in args.sizes:
        before = rss_mib()
        t0 = time.perf_counter()
        syn = realistic(args.source, n, source=src)
        dt = time.perf_counter() - t0
        print(f"{syn.uns['synthetic']['label']}: {n:,} x {syn.n_vars:,}, {syn.X.nnz:,} non-zeros, "
              f"{dt:.1f} s, RSS +{rss_mib() - before:.0f} MiB (X is "
              f"{(syn.X.data.nbytes + syn.X.indices.nbytes + syn.X.indptr.nbytes) / 2**20:.0f} MiB)")
        print_realism(realism(syn, src, leiden_cells=args.leiden), syn.uns["synthetic"]["label"])
        del syn
