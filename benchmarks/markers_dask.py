"""Markers on a lazy X read from disk against the same markers in memory.

The cells are synthetic from pbmc_2samples_400 (15,792 genes, see ``_realistic.py``),
log-normalised, with Leiden clusters of their source cells as groups; they are written once
to zarr (and h5ad) and ``X`` is opened lazily with ``anndata.experimental.read_elem_lazy``
(a dask array of CSR chunks). Reported per method: in memory, dask (threaded scheduler),
the ratio, and the resident memory peak of each run (VmHWM, reset before each run).

    python benchmarks/markers_dask.py [--cells 100000] [--chunk 10000] [--methods t-test wilcoxon]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
from _realistic import realistic, rss_mib

import exprmat_widgets as em


def _reset_peak() -> None:
    # writing 5 to clear_refs resets VmHWM to the current RSS (Linux)
    Path("/proc/self/clear_refs").write_text("5")


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="cells per stored chunk")
    ap.add_argument("--methods", nargs="+", default=["t-test", "wilcoxon"])
    args = ap.parse_args(argv)

    syn = realistic("pbmc_2samples_400", args.cells)
    sc.pp.normalize_total(syn, target_sum=1e4)
    sc.pp.log1p(syn)
    syn.obs["groups"] = syn.obs["source_leiden"].astype("category")
    nnz = syn.X.nnz / syn.n_obs
    print(f"{syn.uns['synthetic']['label']}: {syn.n_obs:,} cells x {syn.n_vars:,} genes, "
          f"{nnz:,.0f} non-zeros per cell, {syn.obs['groups'].nunique()} groups")
    with tempfile.TemporaryDirectory(prefix="emw-bench-") as tmp:
        store = Path(tmp) / "syn.zarr"
        syn.write_zarr(store, chunks=(args.chunk, syn.n_vars))
        import zarr

        g = zarr.open_group(store, mode="r")
        lazy = ad.AnnData(obs=syn.obs.copy(), var=syn.var.copy())
        lazy.X = ad.experimental.read_elem_lazy(g["X"], chunks=(args.chunk, syn.n_vars))
        rows = []
        for method in args.methods:
            mem = syn.copy()
            _reset_peak()
            base = rss_mib()
            t = time.perf_counter()
            em.markers(mem, groupby="groups", method=method, pts=True, key_added="m")
            t_mem, p_mem = time.perf_counter() - t, _peak_mib() - base
            del mem
            on_disk = lazy.copy()
            _reset_peak()
            base = rss_mib()
            t = time.perf_counter()
            em.markers(on_disk, groupby="groups", method=method, pts=True, key_added="m")
            t_dask, p_dask = time.perf_counter() - t, _peak_mib() - base
            ref = syn.copy()
            em.markers(ref, groupby="groups", method=method, pts=True, key_added="m")
            same = all(np.array_equal(ref.uns["m"]["scores"][k], on_disk.uns["m"]["scores"][k])
                       for k in ref.uns["m"]["scores"].dtype.names)
            rows.append((method, t_mem, t_dask, p_mem, p_dask, same))
            del on_disk, ref
    print(f"\n{'method':<10}{'in memory':>11}{'dask (zarr)':>13}{'ratio':>8}{'peak+ mem':>11}{'peak+ dask':>12}"
          f"{'identical':>11}")
    for m, a, b, pa, pb, same in rows:
        print(f"{m:<10}{a:>10.1f}s{b:>12.1f}s{b / a:>7.2f}x{pa:>9,.0f}Mi{pb:>10,.0f}Mi{str(same):>11}")
    return rows


if __name__ == "__main__":
    main()
