"""The annotator soak at full size: N random panel actions (default 500) on synthetic cells
made from the real mouse 10k cells (default 100k), ``background=True``, with concurrent
control events and notebook-cell commands, every settled action checked; then an exact
replay in a fresh process and the resident memory.  Same driver as ``tests/test_soak.py``.

    python benchmarks/soak.py [--actions 500] [--cells 100000] [--seed 0] [--max-minutes 20]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from soak_driver import Soak, prepare, report, rss_mib  # noqa: E402

import exprmat_widgets as em  # noqa: E402

log = logging.getLogger("soak")


def synthetic(n_obs, random_state=0):
    base = em.datasets.mouse_10k()
    return (em.datasets.synthetic_from(base, n_obs, random_state=random_state),
            "synthetic from mouse_10k (em.datasets.synthetic_from)")


def main(argv=None):
    import scanpy as sc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", type=int, default=500)
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop the actions after this long")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    if args.cells == 10_000:
        adata, label = em.datasets.mouse_10k(), "mouse_10k (real)"
    else:
        adata, label = synthetic(args.cells, args.seed)
    adata.layers.clear()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=20, random_state=0)
    prepare(adata)
    log.info("%s: %d cells x %d genes, graph/UMAP/Leiden (%d clusters) in %.0f s", label, adata.n_obs,
             adata.n_vars, adata.obs["leiden"].nunique(), time.perf_counter() - t0)
    soak = Soak(adata, seed=args.seed, start=adata.copy(), log=log.info)
    soak.run(args.actions, every=25, max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    peak_run = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        proc, replay_s = soak.finish(tmp)
    mem = rss_mib()
    print(f"data: {label}, {args.cells:,} cells, seed {args.seed}")
    print(report(soak, proc, replay_s, mem))
    print(f"RSS after the actions {peak_run['rss']:.0f} MiB")
    for f in soak.failures[:10] + soak.escaped[:5] + soak.unexpected[:5] + soak.long_names[:3]:
        print("  ", f.splitlines()[0])
    if proc.returncode:
        print(proc.stderr[-2000:])
    return 0 if proc.returncode == 0 and not (soak.failures or soak.escaped or soak.unexpected) else 1


if __name__ == "__main__":
    sys.exit(main())
