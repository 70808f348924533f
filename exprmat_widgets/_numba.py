"""Every ``parallel=True`` numba kernel of the package is made with :func:`njit_parallel`.

Why: numba runs parallel kernels on one of three threading layers, picked at run time at
the first parallel launch: ``tbb``, ``omp`` or ``workqueue`` (the fallback where neither
TBB nor OpenMP loads, e.g. on many macOS and minimal Linux installs).  ``tbb`` and ``omp``
accept launches from several Python threads at once; ``workqueue`` does not: two threads
inside parallel kernels at the same time abort the whole process ("Numba workqueue
threading layer is terminating: Concurrent access has been detected"), taking the user's
Jupyter kernel and unsaved work with it.  The package does launch kernels from several
threads: the Annotator loads the exclusion kernels in a warm-up thread and runs the user's
actions in a worker thread, and users call the routines from thread pools.

What: :func:`njit_parallel` compiles the kernel with ``parallel=True`` and, only when needed,
a second copy with ``parallel=False``.  Under ``tbb`` / ``omp`` every call takes the
parallel copy (no change in speed).  Under ``workqueue`` only the main thread takes it and
every other thread runs the serial copy, so at most one thread (the main one) ever uses the
workqueue pool: threads never wait on each other and never abort.  This is the convention
scanpy's own ``njit`` follows, so our kernels and scanpy's keep out of each other's way.
A lock around parallel launches would not do: it cannot cover third-party kernels (scanpy,
pynndescent, umap) launched from the main thread while one of our threads holds it.

Both copies give bit-identical results: every ``prange`` iteration of our kernels writes
its own outputs and none accumulates across iterations (no ``prange`` reductions, whose
partial sums would depend on the thread count) - keep it so when adding a kernel.

The serial copy is a clone of the Python function under another ``__qualname__``: numba's
on-disk cache keys a kernel by module, qualified name, line and signature but not by
``parallel``, so two dispatchers of one function with ``cache=True`` would load each
other's machine code.  The threading layer is chosen lazily and
:func:`numba.threading_layer` raises until then; :func:`threading_layer` makes numba
choose it (``numba.get_num_threads()`` initialises the layer without running a kernel).

Serial kernels (``numba.njit`` without ``parallel``; the cNMF, SC3 and k-means kernels)
never touch the threading layer and are safe from any number of threads as they are.
"""

from __future__ import annotations

import functools
import threading
import types

import numba

__all__ = ["njit_parallel", "threading_layer", "uses_parallel_copy"]

#: layers whose pool accepts parallel launches from several Python threads at once
_THREADSAFE_LAYERS = frozenset({"tbb", "omp"})

_layer: str | None = None


def threading_layer() -> str:
    """numba's threading layer (``'tbb'``, ``'omp'`` or ``'workqueue'``), choosing it now if
    no parallel kernel has run yet (it cannot change once chosen)."""
    global _layer
    if _layer is None:
        try:
            name = numba.threading_layer()
        except ValueError:  # not chosen yet: numba picks it at the first parallel launch
            numba.get_num_threads()  # initialises the layer without launching a kernel
            name = numba.threading_layer()
        _layer = name
    return _layer


def uses_parallel_copy() -> bool:
    """Whether a kernel called from the current thread runs its parallel copy."""
    return threading_layer() in _THREADSAFE_LAYERS or threading.current_thread() is threading.main_thread()


class ParallelKernel:
    """A numba kernel compiled with ``parallel=True``, plus a serial copy for the threads
    that must not use the threading layer's pool (see the module docstring)."""

    def __init__(self, func, options: dict):
        self.py_func = func
        self._options = options
        self.parallel = numba.njit(parallel=True, **options)(func)
        self._serial = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, func)

    @property
    def serial(self):
        """The ``parallel=False`` copy, made on first use (only ``workqueue`` needs it)."""
        if self._serial is None:
            with self._lock:
                if self._serial is None:
                    f = self.py_func
                    clone = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                                               f.__defaults__, f.__closure__)
                    clone.__qualname__ = f.__qualname__ + "_serial"  # its own cache entry
                    clone.__module__ = f.__module__
                    self._serial = numba.njit(parallel=False, **self._options)(clone)
        return self._serial

    def __call__(self, *args):
        if _layer in _THREADSAFE_LAYERS:  # the common case first: one global look-up
            return self.parallel(*args)
        return (self.parallel if uses_parallel_copy() else self.serial)(*args)


def njit_parallel(**options):
    """Decorator: ``numba.njit(parallel=True, **options)`` made safe to call from any thread
    whatever numba's threading layer (see the module docstring).  The kernel is called from
    Python only (not from other numba kernels)."""

    def decorate(func) -> ParallelKernel:
        return ParallelKernel(func, options)

    return decorate
