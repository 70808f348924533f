"""Cost of the annotation actions at 1M cells (resampled from mouse_10k; ours only).

For each action prints the time of the routine itself ("kernel": the undecorated
function) and of the recorded call (kernel + input/output fingerprints, selection
encoding and the history record), in milliseconds, best of a few runs.

    python benchmarks/annotation_actions.py [--cells 1000000] [--repeat 3]

Data: mouse_10k normalised + log1p + PCA (20), clustered into 20 k-means
clusters on the PCA (a stand-in for Leiden, which would need a 1M-cell kNN
graph), then 1M cells resampled with ``_common.resample_cells`` (counts matrix
kept, ~69 nonzeros per cell); the first two PCs stand in for the UMAP.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scanpy as sc
from _common import resample_cells
from sklearn.cluster import KMeans

import exprmat_widgets as em
from exprmat_widgets.colors import sync_colors
from exprmat_widgets.tl import annotation as A


def build(n_cells: int):
    base = em.datasets.mouse_10k()
    counts = base.X.copy()
    sc.pp.normalize_total(base, target_sum=1e4)
    sc.pp.log1p(base)
    sc.pp.pca(base, n_comps=20, random_state=0)
    base.X = counts
    base.obs["leiden"] = pd.Categorical(
        KMeans(n_clusters=20, n_init=1, random_state=0).fit_predict(base.obsm["X_pca"]).astype(str)
    )
    base.obs["leiden"] = base.obs["leiden"].cat.reorder_categories(
        sorted(base.obs["leiden"].cat.categories, key=int)
    )
    big = resample_cells(base, n_cells, seed=0)
    big.obs = big.obs[["sample", "leiden"]].copy()
    big.obsm["X_umap"] = np.ascontiguousarray(big.obsm["X_pca"][:, :2])
    sync_colors(big, "leiden")
    big.obs["sample"] = big.obs["sample"].astype("category")
    return big


def best_ms(fn, setup=None, repeat=3):
    times = []
    for _ in range(repeat):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main(argv=None):
    """Prints the table; returns ``_common.row``-style dicts (ours = recorded call,
    reference = the undecorated kernel, so the ratio is kernel/recorded)."""
    from _common import row

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    big = build(args.cells)
    print(f"data: {big.n_obs} x {big.n_vars} cells x genes (resampled from mouse_10k), X nnz={big.X.nnz}, "
          f"20 clusters; built in {time.perf_counter() - t0:.1f}s")
    em.history(big)  # nothing recorded yet
    from exprmat_widgets.history import obs_names_hash

    t0 = time.perf_counter()
    obs_names_hash(big)
    print(f"first hash of {big.n_obs} obs_names (cached afterwards): {1e3 * (time.perf_counter() - t0):.0f} ms")

    rng = np.random.default_rng(0)
    sel = rng.random(big.n_obs) < 0.10  # 10% of cells, scattered
    small = rng.random(big.n_obs) < 0.01
    xy = big.obsm["X_umap"]
    c, s = np.median(xy, axis=0), xy.std(axis=0)
    poly = [[c[0] - s[0], c[1] - s[1]], [c[0] + s[0], c[1] - s[1]], [c[0] + s[0], c[1] + s[1]],
            [c[0] - s[0], c[1] + s[1]]]
    cats = list(big.obs["leiden"].cat.categories)
    mapping = {f"type{i}": cats[i::5] for i in range(5)}

    def fresh():
        # a private copy for actions that change the cells or a shared column; its obs_names
        # hash is warmed as in a session, where the previous command already computed it
        a = big.copy()
        obs_names_hash(a)
        return a

    actions = [
        ("label_cells (10% mask)", lambda a, f: f(a, "manual", sel, "picked"), "label_cells", False),
        ("label_cells (polygon, basis)", lambda a, f: f(a, "leiden", None, "lasso", polygon=poly, basis="umap"),
         "label_cells", True),
        ("merge_clusters (2 clusters)", lambda a, f: f(a, "leiden", [cats[3], cats[7]], new_name="m"),
         "merge_clusters", True),
        ("rename_cluster", lambda a, f: f(a, "leiden", cats[5], "renamed"), "rename_cluster", True),
        ("annotate (20 -> 5 labels)", lambda a, f: f(a, "cell.type", "leiden", mapping), "annotate", False),
        ("exclude (1 of 20 clusters)", lambda a, f: f(a, "leiden", [cats[0]]), "exclude", True),
        ("exclude_cells (1% mask)", lambda a, f: f(a, small), "exclude_cells", True),
        ("subset_cells (10 of 20)", lambda a, f: f(a, ["leiden"], [cats[:10]]), "subset_cells", True),
    ]
    rows = []
    ds = "mouse 10k resampled"
    print(f"{'action':<32} {'kernel ms':>10} {'recorded ms':>12}")
    import contextlib
    import io

    for label, call, name, needs_fresh in actions:
        kernel = getattr(A, name).__wrapped__
        recorded = getattr(em, name)
        setup = fresh if needs_fresh else (lambda: big)
        with contextlib.redirect_stdout(io.StringIO()):
            k = best_ms(lambda a, c=call, f=kernel: c(a, f), setup, args.repeat)
            r = best_ms(lambda a, c=call, f=recorded: c(a, f), setup, args.repeat)
        print(f"{label:<32} {k:>10.1f} {r:>12.1f}")
        rows.append(row(f"action {label}", ds, big.shape, (r / 1e3, None), (k / 1e3, None),
                        reference="undecorated kernel", note="ratio = kernel/recorded (history cost)"))
    t0 = time.perf_counter()
    big_c = big.copy()
    t_copy = 1e3 * (time.perf_counter() - t0)
    keep = (big.obs["leiden"] != cats[0]).to_numpy()
    t_ref = best_ms(lambda a: a._inplace_subset_obs(keep), fresh, args.repeat)
    print(f"(for scale: AnnData.copy() of these data {t_copy:.0f} ms; anndata's own in-place subset "
          f"adata._inplace_subset_obs(same mask as 'exclude') {t_ref:.0f} ms)")
    del big_c
    k = best_ms(lambda a: em.proportion(big, "sample", "leiden"), None, args.repeat)
    print(f"{'proportion (not recorded)':<32} {k:>10.1f} {'-':>12}")
    rows.append(row("action exclude: anndata subset", ds, big.shape, (t_ref / 1e3, None), None,
                    note="adata._inplace_subset_obs, same mask as 'exclude' (for scale)"))
    return rows


if __name__ == "__main__":
    main()
