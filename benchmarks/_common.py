"""Shared pieces of the benchmarks: resampled inputs and side-by-side measurement.

Larger inputs are built by resampling real cells (with small count noise); every
report labels them "resampled".  Time is wall-clock of one run without tracing;
peak memory is measured in a second, traced run (tracemalloc sees numpy's
allocations) so tracing does not distort the times.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp


def resample_cells(adata, n_obs: int, *, noise: float = 0.05, seed: int = 0, counts: bool = True):
    """``n_obs`` cells drawn with replacement from ``adata``; counts get +/- Poisson-like noise
    (``noise`` is the fraction of nonzero entries perturbed by one count). Names are unique."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, adata.n_obs, n_obs)
    X = adata.X[idx]
    X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr(copy=True)
    if noise and X.nnz:
        flip = rng.random(X.nnz) < noise
        step = rng.choice(np.array([-1, 1], dtype=X.dtype), size=int(flip.sum()))
        data = X.data.copy()
        data[flip] = np.maximum(data[flip] + step, 0 if counts else data[flip].min())
        X.data = data
        X.eliminate_zeros()
    out = ad.AnnData(X=X, obs=adata.obs.iloc[idx].reset_index(drop=True), var=adata.var.copy())
    out.obs_names = [f"r{i}-{n}" for i, n in enumerate(adata.obs_names[idx])]
    for k, v in adata.obsm.items():
        arr = np.asarray(v)[idx]
        if arr.dtype.kind == "f":
            arr = arr + rng.normal(0, 1e-3 * (arr.std() or 1), size=arr.shape).astype(arr.dtype)
        out.obsm[k] = arr
    return out


def measure(fn, *, memory: bool = True, repeat: int = 1):
    """(seconds, peak MiB or None, result) of ``fn()``: best of ``repeat`` untraced runs,
    then one traced run for the peak of Python-visible allocations."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    peak = None
    if memory:
        gc.collect()
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return best, peak, result


def row(benchmark, dataset, shape, ours, ref, *, reference="", note=""):
    """One result row: ``ours``/``ref`` are (seconds, peak MiB) pairs (ref may be None)."""
    r = {
        "benchmark": benchmark,
        "dataset": dataset,
        "cells": int(shape[0]),
        "genes": int(shape[1]),
        "ours_s": ours[0],
        "ours_mib": ours[1],
        "reference": reference,
        "ref_s": ref[0] if ref else None,
        "ref_mib": ref[1] if ref else None,
        "note": note,
    }
    r["speedup"] = (r["ref_s"] / r["ours_s"]) if r["ref_s"] else None
    r["mem_ratio"] = (r["ref_mib"] / r["ours_mib"]) if (r["ref_mib"] and r["ours_mib"]) else None
    return r


def print_rows(rows):
    for r in rows:
        sp_ = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        ref = f"{r['ref_s']:.3f}s" if r["ref_s"] is not None else "-"
        mem = f"{r['ours_mib']:.0f}" if r["ours_mib"] is not None else "-"
        rmem = f"{r['ref_mib']:.0f}" if r["ref_mib"] is not None else "-"
        print(
            f"{r['benchmark']:<28} {r['dataset']:<28} {r['cells']:>8}x{r['genes']:<6} "
            f"ours {r['ours_s']:.3f}s {mem}MiB | {r['reference'] or 'ref'} {ref} {rmem}MiB | speedup {sp_} {r['note']}"
        )


def browser_helpers():
    """``tests/browser/jupyter.py`` (JupyterLab + Debian chromium helpers) as a module; it is
    loaded under a unique name, since ``import jupyter`` would find jupyter_core's module."""
    import importlib.util
    import sys
    from pathlib import Path

    if "emw_browser_jupyter" not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "tests" / "browser" / "jupyter.py"
        spec = importlib.util.spec_from_file_location("emw_browser_jupyter", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["emw_browser_jupyter"] = module
        spec.loader.exec_module(module)
    return sys.modules["emw_browser_jupyter"]
