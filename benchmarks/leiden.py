"""Leiden through exprmat_widgets (recorded, with colours and fingerprints) vs
``scanpy.tl.leiden(flavor='igraph')`` on the same kNN graph, in one process.

The partitions must be identical; the ratio shows the cost of recording.
Data: the real mouse 10k cells and larger inputs of distinct synthetic cells made from
them (``_realistic.realistic``, "synthetic from mouse_10k_chr1", at the real density),
each log-normalised with 30 PCs and scanpy's kNN graph (15 neighbours) before timing.

    python benchmarks/leiden.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scanpy as sc

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure, print_rows, row  # noqa: E402
from _realistic import load_source, print_realism, realism, realistic  # noqa: E402

import exprmat_widgets as em  # noqa: E402


def log_pca(adata):
    """Log-normalised counts and 30 PCs, in place (data preparation, not timed)."""
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    return adata


def run(sizes=(10_000, 100_000)):
    src = load_source("mouse_10k_chr1")
    rows = []
    for n in sizes:
        if n == src.n_obs:
            data, label = log_pca(src.copy()), "mouse 10k (real)"
        else:
            data = realistic("mouse_10k_chr1", n, seed=1, source=src)
            label = data.uns["synthetic"]["label"]
            print_realism(realism(data, src), label)
            log_pca(data)
        sc.pp.neighbors(data, n_neighbors=15, use_rep="X_pca", random_state=0)
        ours = measure(lambda data=data: em.leiden(data, resolution=1.0, random_state=0, key_added="ours"),
                       memory=n <= 100_000)
        ref = measure(
            lambda data=data: sc.tl.leiden(data, resolution=1.0, random_state=0, key_added="ref",
                                           flavor="igraph", n_iterations=2),
            memory=n <= 100_000,
        )
        same = bool(np.array_equal(data.obs["ours"].astype(str).values, data.obs["ref"].astype(str).values))
        rows.append(row("leiden", label, data.shape, ours[:2], ref[:2], reference="scanpy.tl.leiden",
                        note=f"identical={same} clusters={data.obs['ours'].nunique()}"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    print_rows(run(ap.parse_args().sizes))
