"""Cost of the history: a recorded session vs the same plain scanpy calls, and the
replay of that session (with every fingerprint checked) from the starting data.

Data: the real mouse 10k cells (log-normalised, 30 PCs), or resampled from them.

    python benchmarks/replay.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import scanpy as sc

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure, print_rows, resample_cells, row  # noqa: E402
from leiden import base_data  # noqa: E402

import exprmat_widgets as em  # noqa: E402


def session(adata):
    em.knn(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.leiden(adata, resolution=1.0, random_state=0)
    em.leiden(adata, resolution=0.5, random_state=0, key_added="coarse")
    cats = list(adata.obs["leiden"].cat.categories)
    if hasattr(em, "merge_clusters"):
        em.merge_clusters(adata, key="leiden", clusters=cats[:2], new_name="merged")
        em.label_cells(adata, key="manual", cells=adata.obs_names[: adata.n_obs // 3], label="A")
        em.exclude(adata, annotation="coarse", remove=[adata.obs["coarse"].cat.categories[-1]])
    return adata


def plain(adata):
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca", random_state=0)
    sc.tl.leiden(adata, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2)
    sc.tl.leiden(adata, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2, key_added="coarse")
    return adata


def run(sizes=(10_000,)):
    base = base_data()
    rows = []
    for n in sizes:
        start = base if n == base.n_obs else resample_cells(base, n, seed=2)
        label = "mouse 10k (real)" if n == base.n_obs else "mouse 10k resampled"
        plain(start.copy())  # warm-up: numba compilation of pynndescent/umap is not the history's cost
        t_sess = measure(lambda start=start: session(start.copy()), memory=False)
        annotated = t_sess[2]
        t_plain = measure(lambda start=start: plain(start.copy()), memory=False)
        steps = len(em.history(annotated))
        rows.append(row("session recorded", label, start.shape, t_sess[:2], t_plain[:2],
                        reference="plain scanpy calls", note=f"{steps} steps; ratio = recording overhead"))
        t_rep = measure(lambda start=start, annotated=annotated: em.replay(start, annotated),
                        memory=False)
        rows.append(row("replay (checked)", label, start.shape, t_rep[:2], t_sess[:2],
                        reference="original session", note=f"{steps} steps, fingerprints verified"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    print_rows(run(ap.parse_args().sizes))
