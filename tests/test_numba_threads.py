"""numba's ``workqueue`` threading layer (used where neither TBB nor OpenMP loads) aborts the
whole process when two Python threads launch ``parallel=True`` kernels at once.  Each test
runs a script in a fresh interpreter with ``NUMBA_THREADING_LAYER=workqueue`` and checks that
it exits cleanly with the expected results (an abort shows up as a non-zero exit code)."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np

import exprmat_widgets
from exprmat_widgets._numba import njit_parallel

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, cache_dir: Path | None = None, timeout: float = 600) -> dict:
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", PYTHONPATH=str(ROOT))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])


def test_exclude_while_the_annotator_warms_up_with_a_cold_cache(tmp_path):
    # cold cache: the warm-up thread is still compiling the exclusion kernels when the
    # worker thread runs the exclusion (this aborted 7 of 7 times before the fix)
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    out = _run("""
        import json, threading
        import numba
        import exprmat_widgets as em

        adata = em.datasets.pbmc68k_counts()
        n0 = adata.n_obs
        ann = em.Annotator(adata, key="bulk_labels", basis="umap", background=True)
        cp = ann.clusters
        victim = list(cp.counts)[-1]
        n_victim = cp.counts[victim]
        warming = any(t.name == "em-warm-up" and t.is_alive() for t in threading.enumerate())
        cp.select([victim])
        cp.exclude_button.click()
        ann.wait()
        for t in threading.enumerate():
            if t.name == "em-warm-up":
                t.join()
        print("RESULT " + json.dumps({"warming": warming, "status": ann.status_kind, "text": ann.status_text,
                          "n0": n0, "n": adata.n_obs, "n_victim": n_victim, "victim": victim,
                          "left": sorted(map(str, adata.obs["bulk_labels"].unique())),
                          "command": em.history(adata).iloc[-1]["command"],
                          "layer": numba.threading_layer()}))
        """, cache_dir=cache)
    assert out["layer"] == "workqueue"
    assert out["warming"], "the exclusion should start while the warm-up thread still runs"
    assert out["status"] == "ok", out["text"]
    assert out["n"] == out["n0"] - out["n_victim"] and out["victim"] not in out["left"]
    assert out["command"] == "exclude"
    assert any(cache.rglob("*.nbi")), "the kernels were compiled into the empty cache"


def test_parallel_kernels_called_from_several_threads_at_once():
    # every parallel kernel (markers' Wilcoxon rank sums on each input layout, the row
    # gathers of an exclusion) plus cNMF (several threads of its own) and SC3, from the
    # main thread and three more at once; results bit-identical to a one-thread run
    out = _run("""
        import json, threading
        import numba
        import numpy as np
        import scanpy as sc
        import scipy.sparse as sp
        import exprmat_widgets as em
        from exprmat_widgets import _rows
        from exprmat_widgets.tl import _wilcoxon as W

        base = em.datasets.pbmc68k_counts()
        base.var["hvg"] = np.asarray(base.X.sum(axis=0)).ravel() >= np.sort(
            np.asarray(base.X.sum(axis=0)).ravel())[-300]
        x = base.X.tocsr()
        base.layers["norm"] = sp.csr_matrix(x.multiply(1e4 / np.asarray(x.sum(axis=1))))
        codes = base.obs["bulk_labels"].cat.codes.to_numpy().astype(np.int64)
        n_groups = int(codes.max()) + 1
        ref_codes = np.where(codes < 3, codes, -1)
        graph = (x @ x.T).tocsr().astype(np.float32)
        rows = np.flatnonzero(codes != 2)

        def work():
            res = {}
            for name, m in {"csr32": x, "csc32": x.tocsc(), "csc64": x.tocsc().astype(np.float64),
                            "dense": x.toarray()}.items():
                res["rs_" + name] = W.rank_sums(m, codes, n_groups)[:2]
                if name != "dense":
                    res["ref_" + name] = W.rank_sums_vs_reference(m, ref_codes, 3, 1)
            res["rows"] = _rows.take_rows(x, rows).toarray()
            res["square"] = _rows.take_square(graph, rows).toarray()
            a = base.copy()
            em.consensus_nmf(a, ks=[3], n_iter=3, hvg="hvg", ncpus=2, random_state=1, progress=False)
            em.sc3(a, basis="pca", n_clusters=[4], d_range=[10], n_runs=2, random_state=2)
            res["cnmf"] = (a.uns["cnmf"]["3"]["spectra"], a.uns["cnmf"]["3"]["usage"])
            res["sc3"] = a.obs["sc3.4"].to_numpy().astype(str)
            return res

        def flat(res):
            return [np.asarray(v) for k in sorted(res) for v in
                    (res[k] if isinstance(res[k], tuple) else (res[k],))]

        reference = flat(work())
        got, errors = {}, []
        barrier = threading.Barrier(4)

        def run(i):
            try:
                barrier.wait()
                got[i] = flat(work())
            except Exception as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(1, 4)]
        for t in threads:
            t.start()
        run(0)
        for t in threads:
            t.join()
        same = {i: all(np.array_equal(a, b) for a, b in zip(reference, r)) for i, r in got.items()}
        print("RESULT " + json.dumps({"errors": errors, "same": same, "n": len(reference),
                          "layer": numba.threading_layer()}))
        """)
    assert out["layer"] == "workqueue"
    assert out["errors"] == []
    assert out["n"] >= 12
    assert out["same"] == {"0": True, "1": True, "2": True, "3": True}


def test_every_parallel_kernel_goes_through_the_guard():
    # a bare numba parallel=True kernel would bypass exprmat_widgets._numba (see its docstring)
    pkg = Path(exprmat_widgets.__file__).parent
    bare = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
            if p.name != "_numba.py" and re.search(r"parallel\s*=\s*True", p.read_text())]
    assert bare == []


def test_layer_is_known_before_any_parallel_launch():
    # numba.threading_layer() raises until the first parallel launch; ours chooses it
    out = _run("""
        import json
        import numba
        from exprmat_widgets import _numba
        try:
            numba.threading_layer()
            before = "known"
        except ValueError:
            before = "unknown"
        print("RESULT " + json.dumps({"before": before, "ours": _numba.threading_layer(),
                                      "numba": numba.threading_layer()}))
        """)
    assert out == {"before": "unknown", "ours": "workqueue", "numba": "workqueue"}


@njit_parallel(cache=True)
def _thread_ids(out):
    for i in numba.prange(out.size):
        out[i] = numba.get_thread_id()


def test_serial_copy_is_serial_and_cached_apart():
    # numba's disk cache does not key on parallel=: the serial copy must not load the
    # parallel machine code (it would use the threading layer from any thread)
    n = 10_000
    par = np.full(n, -1, np.int64)
    _thread_ids.parallel(par)
    ser = np.full(n, -1, np.int64)
    _thread_ids.serial(ser)
    assert set(ser) == {0}
    if numba.get_num_threads() > 1:
        assert len(set(par)) > 1
    routed = np.full(n, -1, np.int64)
    _thread_ids(routed)  # the main thread always takes the parallel copy
    assert set(routed) == set(par) or numba.get_num_threads() == 1
