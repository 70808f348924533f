"""How long Cancel may wait during a kNN (issue 10): scanpy's pynndescent search has no
safe point (see ``exprmat_widgets/tl/neighbors.py``), so a Cancel asked one second into
``em.knn`` is honoured only when scanpy returns.  For each size this starts a recorded
``em.knn`` in a worker thread inside a progress scope, cancels it after ``--after`` s, and
reports the seconds from the cancel to the command's return, and that data and history
were left as they were.  A plain ``sc.pp.neighbors`` on the same input is timed too.

Data: ``--cells`` cells synthetic from mouse_10k_chr1 (``_realistic.realistic``),
normalised, log1p, 500 HVGs, 50 PCs (plain scanpy, outside the timing); 15 neighbours on
``X_pca`` (n >= 8192: pynndescent).

    python benchmarks/knn_cancel_wait.py [--cells 50000,200000] [--after 1]
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from pathlib import Path

import scanpy as sc

sys.path.insert(0, str(Path(__file__).parent))
from _realistic import load_source, realistic, rss_mib  # noqa: E402

import exprmat_widgets as em  # noqa: E402
from exprmat_widgets import _progress as prog  # noqa: E402
from exprmat_widgets.history import fingerprint, get_records  # noqa: E402


def _prepared(src, n):
    a = realistic("mouse_10k_chr1", n, source=src)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=500)
    sc.pp.pca(a, n_comps=50, mask_var="highly_variable", random_state=0)
    return a


def _state(a):
    return fingerprint({"obsp": dict(a.obsp), "uns": dict(a.uns), "obsm": dict(a.obsm)})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="50000,200000")
    p.add_argument("--after", type=float, default=1.0)
    args = p.parse_args(argv)
    src = load_source("mouse_10k_chr1", leiden=False)
    em.knn(_prepared(src, 9000), use_rep="X_pca")  # the first kNN compiles numba code: not timed
    for n in [int(x) for x in args.cells.split(",")]:
        a = _prepared(src, n)
        before, n_rec = _state(a), len(get_records(a))
        token, out = prog.CancelToken(), {}

        def run(a=a, token=token, out=out):
            with prog.scope(None, token):
                try:
                    em.knn(a, use_rep="X_pca", n_neighbors=15, random_state=0)
                except prog.Cancelled:
                    out["cancelled"] = True
            out["end"] = time.perf_counter()

        t0 = time.perf_counter()
        worker = threading.Thread(target=run)
        worker.start()
        threading.Event().wait(args.after)
        t_cancel = time.perf_counter()
        token.cancel()
        worker.join()
        same = _state(a) == before and len(get_records(a)) == n_rec
        ref = a.copy()
        t1 = time.perf_counter()
        sc.pp.neighbors(ref, use_rep="X_pca", n_neighbors=15, random_state=0)
        plain = time.perf_counter() - t1
        print(f"{n:>7,} cells: cancelled {args.after:.0f} s in -> returned {out['end'] - t_cancel:6.1f} s after "
              f"the cancel (run {out['end'] - t0:6.1f} s; cancelled={out.get('cancelled', False)}, "
              f"data+history unchanged={same}); plain sc.pp.neighbors {plain:6.1f} s; RSS {rss_mib():.0f} MiB")
        del a, ref
        gc.collect()


if __name__ == "__main__":
    main()
