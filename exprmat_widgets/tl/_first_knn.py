"""The first kNN / UMAP of a Python process: cached numba code, a warm-up, and a message.

Without this the first ``em.knn`` of a kernel waits silently while numba compiles
umap-learn's and pynndescent's kernels (``benchmarks/first_knn.py`` has the figures).
:func:`first_use` wraps the scanpy call in ``em.knn`` / ``em.umap``: it imports
umap-learn with its kernels cached on disk (:mod:`._umap_compat`) and, the first time in
the process, says through :func:`~exprmat_widgets._logging.progress` what it waits for
and about how long (the seconds the last such wait took here, kept beside the cache).

:func:`warm_up` fills that cache in a child process while the user reads: compiling in a
thread of the kernel itself holds the kernel's GIL for seconds at a time (a panel click
then waits; ``benchmarks/first_knn.py --latency``) and would launch umap's parallel
kernels from a second thread, which numba's ``workqueue`` layer does not allow (see
:mod:`exprmat_widgets._numba`).  The child compiles on tiny synthetic data of the dtypes
scanpy passes, so the kernel then loads every kernel from disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .._logging import progress
from . import _umap_compat

__all__ = ["first_use", "warm_up", "KINDS"]

#: what a first call compiles: umap connectivities on exact (sklearn) neighbours,
#: pynndescent's approximate search, and the UMAP layout
KINDS = ("dense", "pynndescent", "umap")

# seconds when nothing was measured on this machine yet (2 busy cores, benchmarks/first_knn.py)
_GUESS = {"compile": {"dense": 40, "pynndescent": 120, "umap": 20},
          "load": {"dense": 5, "pynndescent": 25, "umap": 5}}
_WHAT = {"dense": "kNN", "pynndescent": "kNN", "umap": "UMAP"}

_NICE = 10
_done: set[str] = set()  # kinds already run in this process (numba keeps them in memory)
_lock = threading.Lock()
_child: subprocess.Popen | None = None


def _record_path() -> Path | None:
    d = _umap_compat.cache_dir()
    return None if d is None else d / "first_knn.json"


def _records() -> dict:
    path = _record_path()
    try:
        return json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}


def _remember(kind: str, how: str, seconds: float) -> None:
    path = _record_path()
    if path is None:
        return
    rec = _records()
    rec.setdefault(how, {})[kind] = round(seconds, 1)
    rec.setdefault("cached", [])
    if kind not in rec["cached"]:
        rec["cached"].append(kind)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, path)  # atomic: a warm-up child and a kernel may write at once
    except OSError:
        pass


def _run_tiny(kind: str) -> None:
    """Run scanpy's step of ``kind`` on tiny synthetic data (compiles its kernels)."""
    import anndata as ad
    import numpy as np
    import scanpy as sc

    rng = np.random.default_rng(0)
    # float32 like a PCA, the dtype scanpy's kNN and umap's kernels are compiled for
    tiny = ad.AnnData(np.zeros((300, 2), np.float32))
    tiny.obsm["X_pca"] = rng.normal(size=(300, 20)).astype(np.float32)
    sc.pp.neighbors(tiny, use_rep="X_pca", n_neighbors=15,
                    transformer="pynndescent" if kind == "pynndescent" else None)
    if kind == "umap":
        sc.tl.umap(tiny)


@contextlib.contextmanager
def first_use(kind: str):
    """Around scanpy's kNN (``kind`` ``'dense'`` or ``'pynndescent'``) or UMAP (``'umap'``):
    import umap-learn with cached kernels and, the first time in this process, tell the
    user what the wait is (and remember how long it took, for the next estimate).  Waits
    for a warm-up child that is still filling the cache."""
    with _lock:
        first = kind not in _done
        child = _child
    if not first:
        yield
        return
    if child is not None and child.poll() is None:
        progress("%s: waiting for the warm-up to finish compiling the numba code of the first %s "
                 "in this kernel ...", _WHAT[kind], _WHAT[kind])
        _hurry(child)
        child.wait()
    rec = _records()
    how = "load" if kind in rec.get("cached", []) else "compile"
    seconds = rec.get(how, {}).get(kind, _GUESS[how][kind])
    if how == "compile":
        progress("%s: compiling numba code for the first %s in this kernel (about %d s; "
                 "cached on disk for the next kernels) ...", _WHAT[kind], _WHAT[kind], seconds)
    else:
        progress("%s: loading the numba code of the first %s in this kernel from its disk cache "
                 "(about %d s) ...", _WHAT[kind], _WHAT[kind], seconds)
    t0 = time.perf_counter()
    _umap_compat.import_umap()
    yield
    with _lock:
        _done.add(kind)
    _remember(kind, how, time.perf_counter() - t0)


def _hurry(child) -> None:
    """The kernel now waits for the child: give it back normal priority where allowed."""
    with contextlib.suppress(AttributeError, OSError):  # not on this platform, or not permitted
        os.setpriority(os.PRIO_PROCESS, child.pid, os.getpriority(os.PRIO_PROCESS, 0))


def warm_up(adata=None, *, wait: bool = False):
    """Compile, in a child process, the numba code the first ``em.knn`` and ``em.umap`` of
    this kernel need, and cache it on disk (the kernel then loads it in seconds).

    Reads only ``adata.n_obs`` (no data is changed or copied): with 4,096 cells or more
    scanpy may search neighbours with pynndescent, whose kernels are compiled too.  Calling
    it again while the child runs, or once everything is cached, does nothing; so does a
    kernel that imported umap-learn itself before (it compiled its own kernels already).

    Parameters
    ----------
    adata
        The data the kNN will run on, or ``None`` (exact neighbours, under 4,096 cells).
    wait
        Wait for the child to finish (``False``: return at once; the first ``em.knn``
        waits for it if it is still running, and says so).

    Returns
    -------
    subprocess.Popen or None
        The child process, or ``None`` when nothing needed compiling.
    """
    global _child
    kinds = ["dense", "umap"]
    if adata is not None and adata.n_obs >= 4096:
        kinds.insert(1, "pynndescent")
    with _lock:
        todo = [k for k in kinds if k not in _done and k not in _records().get("cached", [])]
        if _child is not None and _child.poll() is None:
            child = _child
        elif not todo or _umap_compat.cache_dir() is None or not _umap_compat.uses_cache():
            return None
        else:
            env = dict(os.environ)
            # the child imports this very package, wherever it was imported from
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
            # in the background the user's clicks come first (and the kernel's own work)
            preexec = (lambda: os.nice(_NICE)) if hasattr(os, "nice") and not wait else None
            log = open(_umap_compat.cache_dir() / "warm_up.log", "ab")  # noqa: SIM115 (the child's)
            try:
                child = _child = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, *todo],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=preexec)
            finally:
                log.close()
    if wait:
        _hurry(child)
        child.wait()
    return child


def _main(kinds) -> None:
    for kind in [k for k in kinds if k in KINDS]:
        t0 = time.perf_counter()
        _umap_compat.import_umap()
        _run_tiny(kind)
        _remember(kind, "compile", time.perf_counter() - t0)


# not ``-m`` on this module: the package's __init__ imports it first (runpy then warns)
_CHILD = "import sys; from exprmat_widgets.tl._first_knn import _main; _main(sys.argv[1:])"
