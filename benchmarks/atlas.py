"""An atlas on disk: every annotation step on a lazily opened store, with wall time and
peak resident memory, and markers on disk against markers in memory.

The store is written by ``atlas_store.py`` (synthetic from pbmc_2samples_400, 15,792 genes,
about 1,570 non-zeros per cell, log-normalised, ``obs['sample']``, ``obs['clusters']`` and
``obsm['X_umap']``) and opened with ``em.read_lazy`` (X on disk as dask CSR chunks, obs
and obsm in memory).  Peak RSS is sampled from /proc every 50 ms over this process and
its children (the workers of a ``dask.distributed`` LocalCluster), together with this
process's own VmHWM (reset before each step), so a spike between samples still counts.

The in-memory comparison takes the first ``--compare`` cells of the store into memory
(a size that fits) and runs markers in memory and on the lazy prefix, alternating.

    python benchmarks/atlas.py /work/scratch/atlas/atlas_1m.zarr [--compare 200000]
        [--cells N] [--parts steps compare distributed] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import psutil

import exprmat_widgets as em

ROWS: list[tuple] = []


class _Peak:
    """Peak of RSS summed over this process and its children, sampled in a thread."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._me = psutil.Process()

    def _total(self) -> int:
        total = self._me.memory_info().rss
        for c in self._me.children(recursive=True):
            with suppress(psutil.Error):
                total += c.memory_info().rss
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(self.interval)

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.peak = self._total()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        hwm = _hwm()
        children = self._total() - self._me.memory_info().rss
        self.peak = max(self.peak, hwm + max(0, children))


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def step(name: str, scheduler: str = "threaded", n_obs: int | None = None):
    t = time.perf_counter()
    with _Peak() as p:
        yield
    dt = time.perf_counter() - t
    ROWS.append((name, scheduler, n_obs, dt, p.peak / 2**30))
    print(f"  {name:<38}{scheduler:<12}{dt:>9.1f} s  peak RSS {p.peak / 2**30:5.2f} GiB", flush=True)


def _open(path: Path, n_cells: int | None):
    """The store opened lazily; with ``n_cells``, its first cells only (X stays lazy)."""
    lz = em.read_lazy(path)
    return lz if not n_cells or n_cells >= lz.n_obs else lz[:n_cells].copy()


def _markers(adata, method, key):
    em.markers(adata, groupby="clusters", method=method, pts=True, key_added=key)


def run_steps(path: Path, out_dir: Path, methods, n_cells: int | None = None) -> None:
    with step("open (read_lazy)"):
        lz = _open(path, n_cells)
    n = lz.n_obs
    print(f"{n:,} cells x {lz.n_vars:,} genes, X chunks of {lz.X.chunks[0][0]:,} cells", flush=True)
    for method in methods:
        with step(f"markers {method}", n_obs=n):
            _markers(lz, method, f"m_{method}")
    with step("proportion", n_obs=n):
        em.proportion(lz, major="clusters", minor="sample")
    ann = _open(path, n_cells)  # a history of annotation commands only, for the replay below
    rng = np.random.default_rng(0)
    cells = ann.obs_names[np.sort(rng.choice(n, n // 20, replace=False))]
    cats = [str(c) for c in ann.obs["clusters"].cat.categories]
    with step("label_cells (5% of cells)", n_obs=n):
        em.label_cells(ann, key="manual", cells=cells, label="doublets")
    with step("merge_clusters", n_obs=n):
        em.merge_clusters(ann, key="clusters", clusters=cats[:2], new_name="m01")
    with step("rename_cluster", n_obs=n):
        em.rename_cluster(ann, key="clusters", old=cats[2], new="B")
    with step("annotate", n_obs=n):
        em.annotate(ann, annotation="cell_type", cluster="clusters",
                    mapping={"T": ["m01"], "Bcell": ["B"], "other": cats[3:]})
    with step("exclude_cells (the 5%, lazy)", n_obs=n):
        em.exclude_cells(ann, cells=cells)
    with step("exclude (a cluster, lazy)", n_obs=ann.n_obs):
        em.exclude(ann, annotation="clusters", remove=[cats[-1]])
    with step("subset_cells (a sample, lazy)", n_obs=ann.n_obs):
        em.subset_cells(ann, keys=["sample"], values=[[str(ann.obs["sample"].cat.categories[0])]])
    assert hasattr(ann.X, "dask"), "the exclusions must leave X lazy"
    with step("write subset to a new zarr store", n_obs=ann.n_obs):
        ann.write_zarr(out_dir / "subset.zarr")
    with step("replay the annotation history", n_obs=n):
        out = em.replay(_open(path, n_cells), ann)
    assert out.n_obs == ann.n_obs
    del out
    import shutil

    shutil.rmtree(out_dir / "subset.zarr", ignore_errors=True)
    import exprmat_widgets.widgets  # noqa: F401  (the import is not the opening)

    with step("Annotator opens (X on disk)", n_obs=n):
        a = em.Annotator(lz, key="clusters", basis="umap", background=False)
    det = np.asarray(lz.X[:20_000].compute().getnnz(axis=0)) / 20_000
    gene = str(lz.var_names[int(np.argmin(np.abs(det - 0.3)))])
    with step(f"Annotator colour by a gene ({gene})", n_obs=n):
        a.scatter.color_by(gene)
    assert a.scatter.color == gene and not a.scatter.error
    del a, lz, ann


def run_compare(path: Path, n_cells: int, methods) -> None:
    """Markers on the first ``n_cells`` in memory and lazily, alternating."""
    import anndata as ad

    full = em.read_lazy(path)
    n_cells = min(n_cells, full.n_obs)
    lazy = ad.AnnData(X=full.X[:n_cells], obs=full.obs.iloc[:n_cells].copy(), var=full.var)
    with step("load prefix into memory", n_obs=n_cells):
        mem = ad.AnnData(X=lazy.X.compute(), obs=lazy.obs.copy(), var=full.var)
    del full
    for method in methods:
        with step(f"markers {method} in memory", "in memory", n_obs=n_cells):
            _markers(mem, method, "m")
        with step(f"markers {method} on disk", n_obs=n_cells):
            _markers(lazy, method, "m")
        same = all(np.array_equal(mem.uns["m"]["scores"][g], lazy.uns["m"]["scores"][g])
                   for g in mem.uns["m"]["scores"].dtype.names)
        r_mem, r_disk = ROWS[-2][3], ROWS[-1][3]
        print(f"    {method}: on disk / in memory = {r_disk / r_mem:.2f}x, identical: {same}", flush=True)
    del mem, lazy


def run_distributed(path: Path, methods, workers: int, n_cells: int | None = None) -> None:
    from distributed import Client, LocalCluster

    lz = _open(path, n_cells)
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                     processes=True) as cluster,
        Client(cluster),
    ):
        for method in methods:
            with step(f"markers {method}", f"distributed/{workers}", n_obs=lz.n_obs):
                _markers(lz, method, f"d_{method}")
        with step("exclude (a cluster, lazy)", f"distributed/{workers}", n_obs=lz.n_obs):
            em.exclude(lz, annotation="clusters", remove=[str(lz.obs["clusters"].cat.categories[0])])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--cells", type=int, default=None, help="use the first CELLS cells of the store")
    ap.add_argument("--compare", type=int, default=200_000, help="cells of the in-memory comparison")
    ap.add_argument("--parts", nargs="+", default=["steps", "compare", "distributed"])
    ap.add_argument("--methods", nargs="+", default=["t-test", "wilcoxon"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    out_dir = args.store.parent
    print(f"store {args.store}; load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} "
          f"{os.getloadavg()[2]:.1f} on {os.cpu_count()} cores", flush=True)
    if "steps" in args.parts:
        run_steps(args.store, out_dir, args.methods, args.cells)
    if "compare" in args.parts:
        run_compare(args.store, args.compare, args.methods)
    if "distributed" in args.parts:
        run_distributed(args.store, args.methods, args.workers, args.cells)
    print("\n| step | scheduler | cells | wall (s) | peak RSS (GiB) |\n|---|---|---:|---:|---:|")
    for name, sched, n, dt, peak in ROWS:
        print(f"| {name} | {sched} | {n:,} | {dt:.1f} | {peak:.2f} |" if n else
              f"| {name} | {sched} |  | {dt:.1f} | {peak:.2f} |")
    print(f"load at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return ROWS


if __name__ == "__main__":
    main()
