"""Cost of the history: a recorded analysis from raw counts vs the same plain scanpy calls,
and the replay of that analysis (every fingerprint checked) from the raw-count start file,
with the peak memory of each.

Data: distinct synthetic cells from pbmc_2samples_400 (15,792 genes, real density; see
``_realistic.py``), written as the raw-count start file.  The analysis has 11 steps:
normalise, log1p, HVG, PCA, kNN, Leiden at two resolutions, a merge, a label, an exclusion
and a rename.

Each of the three runs (recorded analysis, plain scanpy, replay) is a fresh child process
that reads the start file and then works; its figures are the wall time of the work and the
peak resident memory (``VmHWM``, reset after a warm-up on 8,500 cells) of the process, and
the rise of that peak over the memory held right after reading the start.  The replay reads only
the history of the saved analysis (``uns['commands']``) and replays in place, as
``exprmat-widgets replay`` does.

    python benchmarks/replay.py [--sizes 10000 200000] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def recorded(adata):
    import exprmat_widgets as em

    em.normalize_total(adata, target_sum=1e4)
    em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=2000, flavor="seurat")
    em.pca(adata, n_comps=30, mask_var="highly_variable", random_state=0)
    em.knn(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.leiden(adata, resolution=1.0, random_state=0)
    em.leiden(adata, resolution=0.5, random_state=0, key_added="coarse")
    cats = list(adata.obs["leiden"].cat.categories)
    em.merge_clusters(adata, key="leiden", clusters=cats[:2], new_name="merged")
    em.label_cells(adata, key="manual", cells=adata.obs_names[: adata.n_obs // 3], label="A")
    em.exclude(adata, annotation="coarse", remove=[adata.obs["coarse"].cat.categories[-1]])
    em.rename_cluster(adata, key="leiden", old="merged", new="T cells")
    return adata


def plain(adata):
    import pandas as pd
    import scanpy as sc

    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=2000, flavor="seurat")
    sc.pp.pca(adata, n_comps=30, mask_var="highly_variable", random_state=0)
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca", random_state=0)
    sc.tl.leiden(adata, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2)
    sc.tl.leiden(adata, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2, key_added="coarse")
    leiden = adata.obs["leiden"].astype(str)
    leiden[leiden.isin(list(adata.obs["leiden"].cat.categories[:2]))] = "merged"
    adata.obs["leiden"] = leiden.astype("category")
    manual = pd.Series(pd.NA, index=adata.obs_names, dtype=object)
    manual.iloc[: adata.n_obs // 3] = "A"
    adata.obs["manual"] = manual.astype("category")
    adata._inplace_subset_obs((adata.obs["coarse"] != adata.obs["coarse"].cat.categories[-1]).to_numpy())
    adata.obs["leiden"] = adata.obs["leiden"].cat.rename_categories({"merged": "T cells"})
    return adata


def child(kind: str, start: str, saved: str, out: str) -> None:
    """One measured run in this (fresh) process; figures go to ``out`` as JSON."""
    import warnings

    import anndata as ad
    import scanpy as sc

    import exprmat_widgets as em

    warnings.filterwarnings("ignore")
    sc.settings.verbosity = 0
    # compile numba code (pynndescent above 8,192 cells, our kernels) on a slice: not the
    # history's cost
    tiny = ad.read_h5ad(start, backed="r")[:8500].to_memory()
    (plain if kind == "plain" else recorded)(tiny)
    del tiny
    adata = ad.read_h5ad(start)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) restarts here: the warm-up above is not counted
    base = _status("VmRSS")
    t0 = time.perf_counter()
    if kind == "replay":
        import h5py
        from anndata.io import read_elem

        with h5py.File(saved, "r") as f:
            records = [str(r) for r in read_elem(f["uns/commands"])]
        result = em.replay(adata, records, copy=False)  # as `exprmat-widgets replay` does
    else:
        result = (plain if kind == "plain" else recorded)(adata)
    dt = time.perf_counter() - t0
    figures = {"seconds": dt, "peak_mib": _status("VmHWM"), "base_mib": base, "n_obs": int(result.n_obs),
               "steps": len(em.history(result)) if kind != "plain" else None}
    if kind == "recorded":
        result.write_h5ad(saved)
    elif kind == "replay":
        saved_data = ad.read_h5ad(saved, backed="r")
        figures["same_labels"] = bool(result.obs["leiden"].astype(str).equals(saved_data.obs["leiden"].astype(str)))
    Path(out).write_text(json.dumps(figures))


def _run_child(kind, start, saved, workdir):
    out = Path(workdir) / f"{kind}.json"
    subprocess.run([sys.executable, __file__, "--child", kind, "--start", str(start), "--saved", str(saved),
                    "--out", str(out)], check=True)
    return json.loads(out.read_text())


def run(sizes=(10_000,), workdir=None):
    from _common import row
    from _realistic import load_source, print_realism, realism, realistic

    import exprmat_widgets as em

    rows = []
    src = load_source("pbmc_2samples_400")
    em.datasets.synthetic_from(src, 10)  # compile the generator outside the figures
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for n in sizes:
            syn = realistic("pbmc_2samples_400", n, source=src)
            label = syn.uns["synthetic"]["label"]
            print_realism(realism(syn, src), label)
            start, saved = Path(tmp) / "start.h5ad", Path(tmp) / "saved.h5ad"
            shape = syn.shape
            syn.write_h5ad(start)
            del syn
            figs = {k: _run_child(k, start, saved, tmp) for k in ("plain", "recorded", "replay")}
            p, r, rep = figs["plain"], figs["recorded"], figs["replay"]
            for k, f in figs.items():
                print(f"{n:>9,} cells {k:<9} {f['seconds']:8.1f} s  peak RSS {f['peak_mib']:8.0f} MiB "
                      f"(start read: {f['base_mib']:.0f} MiB; rise {f['peak_mib'] - f['base_mib']:.0f} MiB)"
                      + (f"  same labels as saved: {f['same_labels']}" if "same_labels" in f else ""), flush=True)
            print(f"  replay / recorded: time {rep['seconds'] / r['seconds']:.2f}x, peak RSS "
                  f"{rep['peak_mib'] / r['peak_mib']:.2f}x; recorded / plain: time {r['seconds'] / p['seconds']:.2f}x, "
                  f"peak RSS {r['peak_mib'] / p['peak_mib']:.2f}x", flush=True)
            rows.append(row("analysis recorded (11 steps from raw counts)", label, shape,
                            (r["seconds"], r["peak_mib"]), (p["seconds"], p["peak_mib"]),
                            reference="plain scanpy calls",
                            note="MiB = peak RSS of the process (start read included); ratio = overhead"))
            rows.append(row("replay (checked) from the raw-count file", label, shape,
                            (rep["seconds"], rep["peak_mib"]), (r["seconds"], r["peak_mib"]),
                            reference="original analysis",
                            note=f"{rep['steps']} steps, fingerprints verified; same labels {rep['same_labels']}"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--workdir", default=None, help="where the start and saved files go (default: /tmp)")
    ap.add_argument("--child", choices=["plain", "recorded", "replay"], help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    ap.add_argument("--saved", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.start, a.saved, a.out)
    else:
        from _common import print_rows

        print_rows(run(a.sizes, a.workdir))
