"""Time to render plot_embedding (to PNG) for 100k and 1M cells, against scanpy's sc.pl.umap.

Cells are resampled from scanpy's pbmc68k_reduced (real UMAP coordinates with a little jitter,
real louvain labels and expression), so the figures look like real data.  Both tools draw the
same data in one process, to an in-memory PNG at the same size and dpi; the time includes
building the figure and rendering it (what a notebook cell costs).

    python benchmarks/plot_embedding.py [--sizes 100000 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import time

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import scanpy as sc

import exprmat_widgets as em


def resampled(n: int, seed: int = 0) -> ad.AnnData:
    base = sc.datasets.pbmc68k_reduced()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, base.n_obs, n)
    genes = ["CST3", "NKG7", "CD79A"]
    a = ad.AnnData(X=np.asarray(base[:, genes].X)[idx].astype(np.float32),
                   obs=base.obs[["louvain"]].iloc[idx].reset_index(drop=True),
                   var=base[:, genes].var.copy())
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obsm["X_umap"] = (base.obsm["X_umap"][idx] + rng.normal(scale=0.08, size=(n, 2))).astype(np.float32)
    a.uns["louvain_colors"] = list(base.uns["louvain_colors"])
    return a


def timed(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fig = fn()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        best = min(best, time.perf_counter() - t0)
        plt.close("all")
    return best


def main(argv=None):
    """Prints the table; returns ``_common.row``-style dicts (time only, reference = sc.pl.umap)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import row

    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    rows = []
    kw = dict(figsize=(3, 3), dpi=100, legend=False, ptsize=2, annotate_style="text", annotate_fontsize=8)
    print(f"{'cells (resampled)':>18} {'figure':<28} {'ours (s)':>9} {'scanpy (s)':>10} {'ratio':>6}")
    for n in args.sizes:
        a = resampled(n)
        cases = [
            ("leiden-like categorical", lambda a=a: em.plot_embedding(a, "umap", "louvain", **kw),
             lambda a=a: _scanpy(a, "louvain")),
            ("categorical + contours",
             lambda a=a: em.plot_embedding(a, "umap", "louvain", contour_plot=True, **kw), None),
            ("gene, sort=True", lambda a=a: em.plot_embedding(a, "umap", "NKG7", sort=True, **kw),
             lambda a=a: _scanpy(a, "NKG7")),
        ]
        for name, ours, ref in cases:
            t_ours = timed(ours, args.repeat)
            if ref is not None:
                t_ref = timed(ref, args.repeat)
                print(f"{n:>18,} {name:<28} {t_ours:>9.2f} {t_ref:>10.2f} {t_ref / t_ours:>5.1f}x")
            else:
                t_ref = None
                print(f"{n:>18,} {name:<28} {t_ours:>9.2f} {'-':>10} {'-':>6}")
            rows.append(row(f"plot_embedding: {name}", "pbmc68k UMAP resampled", a.shape, (t_ours, None),
                            (t_ref, None) if t_ref is not None else None,
                            reference="sc.pl.umap" if t_ref is not None else "", note="PNG, 3x3 in, 100 dpi"))
    return rows


def _scanpy(a, color):
    fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
    sc.pl.umap(a, color=color, size=2, legend_loc="on data", legend_fontsize=8, ax=ax, show=False,
               sort_order=True)
    return fig


if __name__ == "__main__":
    main()
