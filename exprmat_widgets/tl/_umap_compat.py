"""The one place that reaches into numba, umap-learn and pynndescent for the first kNN.

Why: the first ``em.knn`` / ``em.umap`` of a Python process waits for numba to compile
umap-learn's and pynndescent's kernels (measured in ``benchmarks/first_knn.py``): about
two thirds of it is ``import pynndescent``, whose ``distances`` module compiles dozens of
njit functions with explicit signatures at import time, and most of the rest is the first
call of umap's ``fuzzy_simplicial_set``.  Neither library asks numba to cache these
kernels on disk, so every new kernel pays again.

What: :func:`import_umap` imports ``umap.umap_`` (which imports pynndescent) while
``numba.njit`` / ``numba.jit`` add ``cache=True`` to the module-level kernels those
imports define, and ``numba.config.CACHE_DIR`` points at :func:`cache_dir` (a directory
per numba / umap-learn / pynndescent version, so an upgrade of one never loads the machine
code of another: numba's own cache check looks only at the file of each kernel).  The
kernels and their results are unchanged: the cache holds the same machine code numba
would compile (it is keyed by signature, CPU and source file).  Kernels made later (umap
builds some inside functions) are untouched.  Nothing else is patched, and only while the
import runs; if umap-learn was imported before, it is used as it is.

Epochs of a recorded UMAP: scanpy gives umap-learn no epoch callback, but umap-learn 0.5's
``umap.layouts.optimize_layout_*`` loop over ``tqdm(range(n_epochs), **tqdm_kwds)``, looking
the module's ``tqdm`` name up at each call.  :func:`epoch_progress` puts a dispatcher under
that name while a recorded UMAP runs: in the context that entered it, the loop walks a
:func:`exprmat_widgets._progress.bar` (each epoch reported to the panel, each next epoch a
safe point where Cancel stops); everywhere else (a plain ``umap.UMAP`` or ``sc.tl.umap`` in
another thread, or in this one outside the block) it calls the ``tqdm`` it replaced with the
same arguments, so those calls behave as before.  The loop gets the same epoch numbers in the
same order either way, so the embedding is bit-identical.  The dispatcher is installed by the
first of any concurrent blocks and the original put back by the last one (also on error);
if someone else replaced the name meanwhile, theirs is left in place.  The switch is a
contextvar, which every other thread sees unset (a thread starts with an empty context), so
a plain call there gets the original bar even while a recorded UMAP runs here; a thread
umap-learn started itself would too (0.5.12 starts none: its epochs run in numba), which
only loses that run's progress, never its result.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import tempfile
import threading
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["cache_dir", "epoch_progress", "import_umap", "scanpy_uses_pynndescent", "umap_imported",
           "uses_cache"]

_lock = threading.RLock()
_cached_import = False  # umap.umap_ was imported here, with its kernels cached


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}-{threading.get_ident()}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def cache_dir() -> Path | None:
    """Where the umap-learn / pynndescent kernels are cached: under ``NUMBA_CACHE_DIR`` when
    set, else the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``), else the temp dir; one
    sub-directory per numba / umap-learn / pynndescent / Python version.  ``None`` when
    none of them is writable (the kernels are then compiled as before, not cached)."""
    import numba

    key = (f"numba-{numba.__version__}_umap-{_version('umap-learn')}_pynndescent-{_version('pynndescent')}"
           f"_py{sys.version_info[0]}{sys.version_info[1]}")
    roots = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.append(Path(os.environ["NUMBA_CACHE_DIR"]) / "exprmat_widgets")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    roots.append(Path(xdg) / "exprmat_widgets" / "numba")
    roots.append(Path(tempfile.gettempdir()) / f"exprmat_widgets-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")
    for root in roots:
        if _writable(root / key):
            return root / key
    return None


def umap_imported() -> bool:
    """Whether ``umap.umap_`` is loaded in this process (its import-time kernels are built)."""
    return "umap.umap_" in sys.modules


def uses_cache() -> bool:
    """Whether this process takes (or will take) umap-learn's kernels from the disk cache:
    not when umap-learn was imported before, without :func:`import_umap`."""
    return _cached_import or not umap_imported()


@contextlib.contextmanager
def _cached_kernels(directory: Path):
    import numba
    import numba.core.config as config

    njit, jit, old_dir = numba.njit, numba.jit, config.CACHE_DIR

    def cached(decorator):
        def wrapper(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return wrapper

    numba.njit, numba.jit = cached(njit), cached(jit)
    config.CACHE_DIR = str(directory)  # read when each kernel is decorated (its cache locator)
    try:
        yield
    finally:
        numba.njit, numba.jit, config.CACHE_DIR = njit, jit, old_dir


def import_umap():
    """Import ``umap.umap_`` with its and pynndescent's kernels cached on disk (see the
    module docstring); a no-op when it is already imported.  Returns the module."""
    global _cached_import
    with _lock:
        if umap_imported():
            return sys.modules["umap.umap_"]
        directory = cache_dir()
        ctx = _cached_kernels(directory) if directory is not None else contextlib.nullcontext()
        with ctx, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Tensorflow not installed")  # as scanpy does
            import umap.umap_
        _cached_import = directory is not None
        return umap.umap_


def scanpy_uses_pynndescent(n_obs: int, *, transformer, metric: str, knn: bool) -> bool:
    """Whether ``scanpy.pp.neighbors`` will search neighbours with pynndescent (scanpy 1.11's
    ``Neighbors._handle_transformer``: exact sklearn distances for euclidean under 8192 cells,
    for ``knn=False`` and for any metric under 4096 cells)."""
    if transformer == "pynndescent":
        return True
    if transformer is not None:
        return False
    dense = (metric == "euclidean" and n_obs < 8192) or not knn
    return not (dense or n_obs < 4096)


# -- epochs of a recorded UMAP (see the module docstring)

_epoch_bar: contextvars.ContextVar[str | None] = contextvars.ContextVar("exprmat_umap_epochs", default=None)
_hook_lock = threading.Lock()
_hook_users = 0
_replaced = None  # the module's tqdm before the dispatcher went in


def _dispatch(*args, **kwargs):
    desc = _epoch_bar.get()
    if desc is None:
        # a call that found the dispatcher just before the last block put the original back
        # still reaches it: _replaced keeps it
        return _replaced(*args, **kwargs)
    from .. import _progress as prog

    iterable = args[0] if args else kwargs.get("iterable")
    total = kwargs.get("total")
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return prog.bar(total, desc, enabled=False, iterable=iterable)


@contextlib.contextmanager
def epoch_progress(desc: str = "UMAP epochs"):
    """While the block runs, umap-learn's epoch loops in this context walk a progress bar
    named ``desc`` (reported to the current :func:`exprmat_widgets._progress.scope`; each
    epoch a safe point); calls from other threads are untouched.  ``umap.layouts`` is put
    back as it was when the last concurrent block ends, also on error."""
    global _hook_users, _replaced
    import umap.layouts as layouts

    with _hook_lock:
        if _hook_users == 0:
            _replaced = layouts.tqdm
            layouts.tqdm = _dispatch
        _hook_users += 1
    reset = _epoch_bar.set(desc)
    try:
        yield
    finally:
        _epoch_bar.reset(reset)
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0 and layouts.tqdm is _dispatch:
                layouts.tqdm = _replaced
