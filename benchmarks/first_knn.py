"""Where the first ``em.knn`` of a fresh Python process spends its time (issue 11 item 18).

Each measurement runs in a fresh child process (``python -X importtime``), so numba's
in-memory compilations never carry over; the on-disk numba cache does, and is chosen
per run: ``cold`` = an empty ``NUMBA_CACHE_DIR``, ``warm`` = the same directory again,
after the cold run filled it.  The child prints one JSON line; the parent prints the
breakdown:

* ``import em``: ``import exprmat_widgets`` (scanpy, anndata, numba ...);
* ``import pynndescent`` / ``import umap.umap_``: from ``-X importtime`` (cumulative,
  self-inclusive; pynndescent's ``distances`` module compiles its njit functions with
  signatures at import);
* ``umap conn``: scanpy's call of umap's ``fuzzy_simplicial_set`` minus its import
  (the first call compiles ``smooth_knn_dist`` and ``compute_membership_strengths``);
* ``knn 1st`` / ``knn 2nd``: the first and a second ``em.knn`` in the process;
* ``umap 1st``: the first ``em.umap`` after it.

Wall seconds, and CPU seconds (user + sys of the child) in brackets: the machine is
shared, so CPU is the steadier figure.  ``--warm-up`` calls ``em.warm_up(wait=True)``
in a first child on the same cache (what the Annotator does in the background), then
measures as usual.

    python benchmarks/first_knn.py                   # 700 cells, cold + warm
    python benchmarks/first_knn.py --cells 700 10000 --modes cold warm
    python benchmarks/first_knn.py --latency         # main-thread delays during a warm-up
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out = {}
def mark(name, t0, c0):
    out[name] = (time.perf_counter() - t0, cpu() - c0)
t0, c0 = time.perf_counter(), cpu()
import exprmat_widgets as em
mark("import em", t0, c0)
out["umap loaded at import"] = "umap" in sys.modules or "pynndescent" in sys.modules
import anndata as ad
adata = ad.read_h5ad(sys.argv[1])
if sys.argv[2] == "warm_up":
    em.warm_up(wait=True)
    print(json.dumps(out))
    raise SystemExit
from scanpy.neighbors import _connectivity
_orig = _connectivity.umap
def timed(*a, **k):
    out.setdefault("_conn_imports", "umap.umap_" not in sys.modules)
    t0, c0 = time.perf_counter(), cpu()
    try:
        return _orig(*a, **k)
    finally:
        out.setdefault("_conn", (time.perf_counter() - t0, cpu() - c0))
_connectivity.umap = timed
t0, c0 = time.perf_counter(), cpu()
em.knn(adata, use_rep="X_pca", n_neighbors=15)
mark("knn 1st", t0, c0)
t0, c0 = time.perf_counter(), cpu()
em.knn(adata, use_rep="X_pca", n_neighbors=15, key_added="again")
mark("knn 2nd", t0, c0)
t0, c0 = time.perf_counter(), cpu()
em.umap(adata)
mark("umap 1st", t0, c0)
print(json.dumps(out))
"""


LATENCY = r"""
import sys, threading, time
import numpy as np
import exprmat_widgets as em
from exprmat_widgets.tl import _first_knn, _umap_compat
how = sys.argv[1]
if how == "thread":  # what a warm-up thread inside the kernel would do
    job = threading.Thread(target=lambda: (_umap_compat.import_umap(), _first_knn._run_tiny("dense")))
    job.start()
    alive = job.is_alive
elif how == "child":
    job = em.warm_up()
    alive = lambda: job.poll() is None
else:
    t_end = time.perf_counter() + 30
    alive = lambda: time.perf_counter() < t_end
t0, lat = time.perf_counter(), []
while alive():  # a 'click' every 10 ms: a little Python work after a sleep
    s = time.perf_counter(); time.sleep(0.01); sum(range(20000))
    lat.append(time.perf_counter() - s - 0.01)
lat = np.array(lat)
print(f"{how:<6} {time.perf_counter() - t0:6.1f} s  {lat.size:6d} clicks  median {np.median(lat) * 1e3:5.1f} ms"
      f"  p99 {np.percentile(lat, 99) * 1e3:5.0f} ms  max {lat.max() * 1e3:6.0f} ms  >100 ms: {np.sum(lat > 0.1)}"
      f"  >500 ms: {np.sum(lat > 0.5)}")
"""


def latency() -> None:
    """How late a 'click' of the kernel's main thread is answered while the warm-up
    compiles: nothing running, compiling in a thread of the kernel, or in a child (cold
    cache each)."""
    for how in ("none", "thread", "child"):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
            p = subprocess.run([sys.executable, "-c", LATENCY, how], env=env, capture_output=True,
                               text=True, cwd=ROOT, check=False)
            print(p.stdout.strip() or p.stderr[-2000:], flush=True)


def prepare(n_cells: int, path: Path) -> None:
    """Log-normalised data with ``obsm['X_pca']`` (50 PCs): the tutorial's 700 PBMC or the
    10k mouse cells."""
    import scanpy as sc

    import exprmat_widgets as em

    adata = em.datasets.pbmc68k_counts() if n_cells <= 700 else em.datasets.mouse_10k()
    if n_cells < adata.n_obs:
        adata = adata[:n_cells].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=50, random_state=0)
    adata.write_h5ad(path)


def _importtime(stderr: str) -> dict:
    """Cumulative microseconds of the modules we care about, from ``-X importtime``."""
    found = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)$", line.rstrip())
        if m and m.group(2).strip() in ("pynndescent", "umap.umap_"):
            found[m.group(2).strip()] = int(m.group(1)) / 1e6
    return found


def child(h5ad: Path, cache: Path, mode: str = "measure") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD, str(h5ad), mode],
                       env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    imp = _importtime(p.stderr)
    res["import pynndescent"] = imp.get("pynndescent")
    res["import umap.umap_"] = imp.get("umap.umap_")
    if "_conn" in res:
        wall, cpu_ = res.pop("_conn")
        # umap.umap_ (and pynndescent with it) is imported inside scanpy's wrapper when the
        # kNN path did not import it before
        inside = res["import umap.umap_"] if res.pop("_conn_imports") else 0.0
        res["umap conn"] = (wall - (inside or 0.0), None)
    return res


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        wall, cpu_ = v
        return f"{wall:6.1f}" + (f" [{cpu_:5.1f}]" if cpu_ is not None else "        ")
    if isinstance(v, bool):
        return str(v)
    return f"{v:6.1f}        "


COLUMNS = ["import em", "import pynndescent", "import umap.umap_", "umap conn", "knn 1st",
           "knn 2nd", "umap 1st"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[700])
    ap.add_argument("--modes", nargs="+", default=["cold", "warm"], choices=["cold", "warm"])
    ap.add_argument("--warm-up", action="store_true", help="run em.warm_up(wait=True) first")
    ap.add_argument("--latency", action="store_true", help="click latency during the warm-up only")
    a = ap.parse_args(argv)
    if a.latency:
        latency()
        return
    with open("/proc/loadavg") as f:
        print("load average at start:", " ".join(f.read().split()[:3]))
    print(f"{'cells':>6} {'cache':<6} " + " ".join(f"{c:>14}" for c in COLUMNS))
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.cells:
            h5ad = Path(tmp) / f"cells{n}.h5ad"
            prepare(n, h5ad)
            cache = Path(tmp) / f"numba{n}"  # one cache per size: 'warm' reuses the cold run's
            cache.mkdir()
            for mode in a.modes:
                if a.warm_up:
                    child(h5ad, cache, "warm_up")
                r = child(h5ad, cache)
                print(f"{n:>6} {mode:<6} " + " ".join(f"{_fmt(r.get(c)):>14}" for c in COLUMNS),
                      flush=True)
    with open("/proc/loadavg") as f:
        print("load average at end:", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
