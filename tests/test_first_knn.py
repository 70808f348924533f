"""The first kNN of a process (issue 11 item 18): umap-learn stays out of ``import
exprmat_widgets`` and of scanpy's dense Gaussian path, its numba kernels are cached on
disk, the warm-up fills that cache in a child process without touching the data, and the
wait is announced through logging (live in the panel's status line)."""

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import scanpy as sc

import exprmat_widgets as em
from exprmat_widgets._logging import on_progress, progress
from exprmat_widgets.tl import _first_knn, _umap_compat

ROOT = Path(__file__).resolve().parent.parent


def _child(code: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _small():
    adata = em.datasets.pbmc68k_counts()[:300].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    em.pca(adata, n_comps=20, mask_var=None, random_state=0)
    return adata


def test_import_does_not_load_umap_or_pynndescent():
    p = _child("import sys, exprmat_widgets, exprmat_widgets.widgets\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('umap', 'pynndescent')))")
    assert p.stdout.strip() == "[]"


def test_gauss_knn_on_dense_path_imports_neither_and_equals_scanpy():
    code = """
import sys, numpy as np, scanpy as sc, exprmat_widgets as em
a = em.datasets.pbmc68k_counts()[:300].copy()
sc.pp.log1p(a)
em.pca(a, n_comps=20, mask_var=None, random_state=0)
b = a.copy()
em.knn(a, use_rep="X_pca", n_neighbors=10, method="gauss")
sc.pp.neighbors(b, use_rep="X_pca", n_neighbors=10, method="gauss")
for k in ("connectivities", "distances"):
    assert (a.obsp[k] != b.obsp[k]).nnz == 0, k
print(sorted(m for m in sys.modules if m.split('.')[0] in ('umap', 'pynndescent')))
"""
    assert _child(code).stdout.strip() == "[]"


def test_scanpy_rule_for_pynndescent():
    f = _umap_compat.scanpy_uses_pynndescent
    assert not f(8191, transformer=None, metric="euclidean", knn=True)
    assert f(8192, transformer=None, metric="euclidean", knn=True)
    assert not f(4095, transformer=None, metric="cosine", knn=True)
    assert f(4096, transformer=None, metric="cosine", knn=True)
    assert not f(100_000, transformer=None, metric="euclidean", knn=False)
    assert f(10, transformer="pynndescent", metric="euclidean", knn=True)
    assert not f(100_000, transformer="sklearn", metric="euclidean", knn=True)


def test_progress_reaches_only_the_callbacks_of_its_thread():
    seen = []
    with on_progress(seen.append):
        t = threading.Thread(target=lambda: progress("from another thread"))
        t.start()
        t.join()
        progress("compiling %s", "now")
        em._logging.info("a plain info line")  # not a progress message
    progress("after the block")
    assert seen == ["compiling now"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("numba")


def test_warm_up_fills_the_cache_without_touching_the_data_and_is_idempotent(cache, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    monkeypatch.setattr(_first_knn, "_done", set())
    monkeypatch.setattr(_first_knn, "_child", None)
    adata = _small()
    before = adata.copy()
    child = em.warm_up(adata, wait=True)
    assert child is not None and child.returncode == 0
    d = _umap_compat.cache_dir()
    assert d is not None and d.is_relative_to(cache)
    assert list(d.rglob("*.nbi")), "no numba index files in the cache"
    rec = json.loads((d / "first_knn.json").read_text())
    assert {"dense", "umap"} <= set(rec["cached"])
    assert "pynndescent" not in rec["cached"]  # 300 cells: scanpy searches exactly
    assert em.warm_up(adata) is None  # everything cached: nothing to start
    # the data: same arrays, no new keys, no history
    assert adata.obsm.keys() == before.obsm.keys() and adata.obsp.keys() == before.obsp.keys()
    assert adata.uns.keys() == before.uns.keys()
    assert np.array_equal(adata.obsm["X_pca"], before.obsm["X_pca"])
    assert (adata.X != before.X).nnz == 0


def test_first_knn_in_a_fresh_process_loads_the_cache_and_equals_scanpy(cache):
    # after the warm-up test: the kernels come from the cache the child filled
    code = """
import logging, numpy as np, scanpy as sc, exprmat_widgets as em
msgs = []
class H(logging.Handler):
    def emit(self, r): msgs.append(r.getMessage())
logging.getLogger("exprmat_widgets").addHandler(H())
a = em.datasets.pbmc68k_counts()[:300].copy()
sc.pp.normalize_total(a, target_sum=1e4); sc.pp.log1p(a)
em.pca(a, n_comps=20, mask_var=None, random_state=0)
b = a.copy()
em.knn(a, use_rep="X_pca", n_neighbors=15)
em.knn(a, use_rep="X_pca", n_neighbors=15, key_added="again")
sc.pp.neighbors(b, use_rep="X_pca", n_neighbors=15)
for k in ("connectivities", "distances"):
    assert (a.obsp[k] != b.obsp[k]).nnz == 0, k
for m in msgs:
    print(m)
"""
    out = _child(code, cache).stdout
    first = [m for m in out.splitlines() if "numba code" in m]
    assert len(first) == 1, out  # once per process, not for the second kNN
    assert "from its disk cache" in first[0], first


def test_first_use_says_compile_then_load_and_the_annotator_warms_up(tmp_path, monkeypatch, caplog):
    _umap_compat.import_umap()  # this process's kernels, so the test does not wait for them
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_first_knn, "_done", set())
    caplog.set_level(logging.INFO, logger="exprmat_widgets")
    with _first_knn.first_use("dense"):
        pass
    with _first_knn.first_use("dense"):  # second time in the process: silent
        pass
    monkeypatch.setattr(_first_knn, "_done", set())  # as a new process with the cache on disk
    with _first_knn.first_use("dense"):
        pass
    said = [r.getMessage() for r in caplog.records if "numba code" in r.getMessage()]
    assert len(said) == 2, said
    assert "compiling numba code for the first kNN in this kernel (about " in said[0]
    assert "from its disk cache" in said[1]

    # opening the Annotator starts the warm-up; its kNN button still works
    monkeypatch.setattr(_first_knn, "_done", set())
    warmed = []
    monkeypatch.setattr("exprmat_widgets.widgets.annotator.warm_up", warmed.append)
    adata = _small()
    em.knn(adata, use_rep="X_pca")
    em.umap(adata, random_state=0)
    em.leiden(adata, random_state=0)
    monkeypatch.setattr(_first_knn, "_done", set())
    ann = em.Annotator(adata, key="leiden", basis="umap", background=False)
    assert warmed == [adata]  # opening the Annotator starts the warm-up
    shown = []
    real = ann._set_status
    monkeypatch.setattr(ann, "_set_status", lambda text, kind="info": shown.append(text) or real(text, kind))
    ann.analysis.knn_button.click()
    ann.wait()
    assert ann.last_error is None, ann.last_error
    # the wait is said while the kNN runs; the done line is the result alone
    assert any("numba code of the first kNN" in t for t in shown[:-1]), shown
    assert ann.status_text.startswith("knn done"), ann.status_text
    assert "numba code" not in ann.status_text, ann.status_text
