"""Cost of the annotation actions at 1M cells (ours only: recorded call vs the bare routine).

For each action prints the time of the routine itself ("kernel": the undecorated
function) and of the recorded call (kernel + input/output fingerprints, selection
encoding and the history record), in milliseconds, best of a few runs.

    python benchmarks/annotation_actions.py [--cells 1000000] [--source mouse_10k_chr1] [--repeat 3]

Data: distinct synthetic cells (``_realistic.realistic``, "synthetic from <source>", counts at
the real density) from mouse_10k_chr1 (1,000 genes) or pbmc_2samples_400 (15,792 genes).
Clusters: ``obs['source_leiden']``, the Leiden clusters of each cell's main real cell.  The
"UMAP" is the real cells' first two PCs (log-normalised, 20 PCs), each synthetic cell placed
between its two real parents with their mixing weight, so the layout keeps the real clusters.
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
from _realistic import load_source, print_realism, realism, realistic

import exprmat_widgets as em
from exprmat_widgets.colors import sync_colors
from exprmat_widgets.tl import annotation as A


def build(n_cells: int, source: str = "mouse_10k_chr1"):
    src = load_source(source)
    norm = src.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.pca(norm, n_comps=20, random_state=0)
    pos = pd.DataFrame(norm.obsm["X_pca"][:, :2], index=src.obs_names)
    big = realistic(source, n_cells, seed=0, source=src)
    print_realism(realism(big, src), big.uns["synthetic"]["label"])
    w = big.obs["mix_weight"].to_numpy()[:, None]
    xy = w * pos.loc[big.obs["source_cell"]].to_numpy() + (1 - w) * pos.loc[big.obs["partner_cell"]].to_numpy()
    big.obsm["X_umap"] = np.ascontiguousarray(xy, dtype=np.float32)
    leiden = big.obs["source_leiden"].astype(str)
    big.obs = pd.DataFrame({"sample": pd.Categorical(big.obs["sample"]) if "sample" in big.obs else "s1",
                            "leiden": pd.Categorical(leiden, categories=sorted(set(leiden), key=int))},
                           index=big.obs_names)
    big.obs["sample"] = big.obs["sample"].astype("category")
    sync_colors(big, "leiden")
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
    p.add_argument("--source", default="mouse_10k_chr1", choices=["mouse_10k_chr1", "pbmc_2samples_400"])
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    big = build(args.cells, args.source)
    ds = big.uns["synthetic"]["label"]
    print(f"data: {big.n_obs} x {big.n_vars} cells x genes ({ds}), X nnz={big.X.nnz}, "
          f"{big.obs['leiden'].nunique()} clusters; built in {time.perf_counter() - t0:.1f}s")
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
        (f"annotate ({len(cats)} -> 5 labels)", lambda a, f: f(a, "cell.type", "leiden", mapping), "annotate", False),
        (f"exclude (1 of {len(cats)} clusters)", lambda a, f: f(a, "leiden", [cats[0]]), "exclude", True),
        ("exclude_cells (1% mask)", lambda a, f: f(a, small), "exclude_cells", True),
        (f"subset_cells ({len(cats) // 2} of {len(cats)})",
         lambda a, f: f(a, ["leiden"], [cats[: len(cats) // 2]]), "subset_cells", True),
    ]
    rows = []
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
