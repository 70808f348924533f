"""How long a panel click takes to be answered while consensus NMF runs in the background.

The Annotator runs cNMF (started with its cNMF button) in a worker thread; meanwhile this
script plays the comm handler of the page: it toggles a cluster in the cluster panel
(the toggle's value set, as a click on the page does) and changes the scatter's colour
(the scatter's ``color_by`` message), a few times a second, and times each until the
kernel has answered it (the handler ran, nothing left queued).  The same clicks are timed
with nothing running first, as the reference.  Prints median and p95 per kind of click,
and how long Cancel takes to stop a second run.

Data: the 10,000 real mouse cells shipped with the package (1,000 genes, raw counts),
normalised with the recorded commands; the scatter shows the first two PCA components and
the cluster list is ``obs['sample']`` (a kNN + UMAP + Leiden would add minutes of setup
and change nothing about the clicks).

    PYTHONPATH=. python benchmarks/click_latency.py [--ks 5,10] [--n-iter 10]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import exprmat_widgets as em


def prepare():
    adata = em.datasets.mouse_10k()
    empty = np.asarray(adata.X.sum(axis=1)).ravel() == 0
    if empty.any():  # cNMF refuses cells without counts
        em.exclude_cells(adata, cells=np.flatnonzero(empty))
    em.normalize_total(adata, target_sum=1e4)
    em.log1p(adata)
    em.highly_variable_genes(adata, n_top_genes=800, key_added="vst.all.hvg")
    em.derive_layer(adata, "norm", source="X", transform="expm1")
    em.pca(adata, n_comps=10, mask_var="vst.all.hvg", random_state=0)
    return adata


def _answered(ann, name, started):
    """Seconds until the control ``name`` ran (queued ones run when the action ends)."""
    pause = threading.Event()
    while name in ann._queued:
        pause.wait(0.001)
    return time.perf_counter() - started


def click_cluster(ann, cluster):
    row = ann.clusters._rows[cluster]
    t0 = time.perf_counter()
    row.toggle.value = not row.toggle.value
    return _answered(ann, "select clusters", t0)


def change_colour(ann, key):
    t0 = time.perf_counter()
    ann.scatter._on_custom_msg(ann.scatter, {"type": "color_by", "key": key}, [])
    return _answered(ann, "colour", t0)


def clicks(ann, genes, clusters, until, gap=0.2, limit=200):
    out = {"cluster click": [], "colour change": []}
    pause = threading.Event()
    i = 0
    while until() and i < limit:
        out["cluster click"].append(click_cluster(ann, clusters[i % len(clusters)]))
        out["colour change"].append(change_colour(ann, genes[i % len(genes)]))
        i += 1
        pause.wait(gap)
    return out


def summary(times):
    ms = 1000 * np.asarray(times)
    return (f"n={ms.size:4d}  median {np.median(ms):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms  "
            f"max {ms.max():7.1f} ms")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", default="5,10")
    p.add_argument("--n-iter", type=int, default=10)
    args = p.parse_args(argv)

    adata = prepare()
    ann = em.Annotator(adata, key="sample", basis="pca", background=True, keep_start=False)
    genes = list(adata.var_names[adata.var["vst.all.hvg"]][:20])
    clusters = list(ann.clusters._rows)
    for g in genes[:3]:  # first calls pay for imports and caches
        change_colour(ann, g)
    n = [0]
    idle = clicks(ann, genes, clusters, until=lambda: n.__setitem__(0, n[0] + 1) or n[0] <= 30, gap=0.02)

    an = ann.analysis
    an.cnmf_ks.value = args.ks
    an.cnmf_iter.value = args.n_iter
    an.cnmf_hvg.value = "vst.all.hvg"
    an.counts_layer.value = "counts"
    t0 = time.perf_counter()
    an.cnmf_button.click()
    busy = clicks(ann, genes, clusters, until=lambda: ann.busy)
    ann.wait()
    took = time.perf_counter() - t0
    if ann.last_error:
        raise SystemExit(f"cNMF failed: {ann.last_error}")

    done_text = ann.progress.text
    # Cancel: from the click to the buttons being free again, data and history as before
    n_rec = len(adata.uns["commands"])
    an.cnmf_key.value = "cnmf.again"
    an.cnmf_button.click()
    threading.Event().wait(3.0)
    t1 = time.perf_counter()
    ann.progress.cancel_button.click()
    ann.wait()
    to_idle = time.perf_counter() - t1
    assert ann.cancelled and len(adata.uns["commands"]) == n_rec and "cnmf.again" not in adata.uns

    print(f"{adata.n_obs:,} real mouse cells, cNMF ks={args.ks} n_iter={args.n_iter} (one thread, the panel's) "
          f"ran {took:.1f} s in the background; last progress: {done_text}")
    for kind in idle:
        print(f"  {kind:14s} idle:        {summary(idle[kind])}")
        print(f"  {kind:14s} during cNMF: {summary(busy[kind])}")
    print(f"  Cancel 3 s into a second run: idle again {1000 * to_idle:.0f} ms after the click")


if __name__ == "__main__":
    main()
