"""Consensus NMF: ``em.consensus_nmf`` + ``em.consensus_nmf_extract_k`` vs the reference
``cnmf`` package (1.7.1: prepare, factorize, combine, k_selection_plot, consensus) on the
same data, HVGs, ks, replicates and seed, in one process.

Both sides get the same counts, the same linear-normalised ("tpm") matrix and the same
HVG list; the reference writes its intermediate files to a temporary directory (that is
how it works).  Printed: wall time and CPU time of each side, peak traced memory
(``--memory``, a second traced run), the speed-up, and how well the programs of the
extracted k match (best Pearson correlation of each of our TPM spectra with a reference
spectrum).  Workers: ours uses ``ncpus`` threads; the reference runs ``factorize`` with the
same number of worker processes (``factorize_multi_process``; 1 = in process).
CPU time counts all threads of this process plus the reference's worker processes.

Data: the real mouse 10k cells (``em.datasets.mouse_10k``, 1k genes) or the real
400 PBMCs x 15.8k genes (``--data pbmc2``); with ``--cells N``, N distinct synthetic cells made from
them (em.datasets.synthetic_from, labelled "synthetic from ...").

    python benchmarks/cnmf.py [--ks 5 10 15 20] [--n-iter 20] [--k 10] [--ncpus 1] [--cells N] [--memory]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scanpy as sc
import scipy.sparse as sp

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from _common import measure, print_rows, row  # noqa: E402

# this file is named like the reference package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import anndata as ad  # noqa: E402

import exprmat_widgets as em  # noqa: E402


def base_data(n_cells=None, n_top_genes=500, data="mouse"):
    if data == "mouse":
        adata, label = em.datasets.mouse_10k(), "mouse 10k (real)"
    else:
        adata, label = em.datasets.pbmc_2samples(), "pbmc 2 samples (real)"
        adata = ad.AnnData(X=adata.layers["counts"].copy(), obs=adata.obs[[]], var=adata.var[[]])
    if n_cells and n_cells != adata.n_obs:
        name = label.replace(" (real)", "")
        adata = em.datasets.synthetic_from(adata, n_cells, random_state=1, source=name)
        adata = ad.AnnData(X=adata.X, obs=adata.obs[[]], var=adata.var)
        label = f"synthetic from {name}, {n_cells} cells"
    sc.pp.filter_genes(adata, min_cells=3)
    adata.layers["counts"] = adata.X.copy()
    b = adata.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, flavor="seurat", n_top_genes=n_top_genes)
    hv = b.var["highly_variable"].values
    keep = np.asarray(adata.layers["counts"][:, hv].sum(axis=1)).ravel() > 0  # cNMF needs counts on the HVGs
    adata, b = adata[keep].copy(), b[keep].copy()
    adata.var["vst.all.hvg"] = hv
    adata.layers["norm"] = b.X.expm1()  # the tutorial's expm1 of log-normalised data
    return adata, label


def run_ours(adata, ks, n_iter, k, ncpus, seed):
    a = adata.copy()
    em.consensus_nmf(
        a, counts="counts", tpm="norm", ks=ks, hvg="vst.all.hvg", n_iter=n_iter, ncpus=ncpus,
        key_added="cnmf", min_counts=0, random_state=seed, progress=False,
    )
    em.consensus_nmf_extract_k(a, k=k)
    return a


def reference_inputs(adata, d):
    obs, var = adata.obs[[]], adata.var[[]]
    ad.AnnData(X=sp.csr_matrix(adata.layers["counts"]), obs=obs, var=var).write_h5ad(d / "counts.h5ad")
    ad.AnnData(X=sp.csr_matrix(adata.layers["norm"]), obs=obs, var=var).write_h5ad(d / "tpm.h5ad")
    (d / "genes.txt").write_text("\n".join(adata.var_names[adata.var["vst.all.hvg"].values]))


def run_reference(d, ks, n_iter, k, ncpus, seed):
    from cnmf import cNMF

    out = Path(tempfile.mkdtemp(dir=d))
    ref = cNMF(output_dir=str(out), name="ref")
    from threadpoolctl import threadpool_limits

    # BLAS on 1 thread per worker, as ours: both sides use ncpus cores (forked workers inherit it)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        ref.prepare(
            str(d / "counts.h5ad"), components=ks, n_iter=n_iter, seed=seed,
            genes_file=str(d / "genes.txt"), tpm_fn=str(d / "tpm.h5ad"),
        )
        if ncpus > 1:
            ref.factorize_multi_process(ncpus)
        else:
            ref.factorize(worker_i=0, total_workers=1)
        ref.combine()
        ref.k_selection_plot(close_fig=True)
        ref.consensus(k, density_threshold=0.5, show_clustering=False, close_clustergram_fig=True)
        return ref.load_results(K=k, density_threshold=0.5)


def _cpu():
    """CPU seconds of this process (all threads) and of its reaped child processes."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def timed(fn):
    c0, t0 = _cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, _cpu() - c0, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 15, 20])
    p.add_argument("--n-iter", type=int, default=20)
    p.add_argument("--k", type=int, default=10, help="k extracted (tutorial: 10)")
    p.add_argument("--ncpus", type=int, default=1)
    p.add_argument("--data", choices=["mouse", "pbmc2"], default="mouse",
                   help="mouse: 10k cells x 1k genes; pbmc2: 400 cells x 15.8k genes")
    p.add_argument("--cells", type=int, default=None)
    p.add_argument("--hvg", type=int, default=500)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--memory", action="store_true", help="also trace peak memory (a second run of each)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    adata, label = base_data(args.cells, args.hvg, args.data)
    print(f"data: {label}: {adata.n_obs} cells x {adata.n_vars} genes, {int(adata.var['vst.all.hvg'].sum())} HVGs; "
          f"ks={args.ks} n_iter={args.n_iter} extract k={args.k} ncpus={args.ncpus}")
    print(f"workers: ours {args.ncpus} thread(s) running numba kernels that release the GIL (ncpus={args.ncpus}); "
          f"cnmf " + (f"{args.ncpus} worker processes (factorize_multi_process({args.ncpus}))" if args.ncpus > 1
                      else "1 worker in process (factorize(worker_i=0, total_workers=1))")
          + "; BLAS limited to 1 thread on both sides")
    d = Path(tempfile.mkdtemp(prefix="cnmf_bench_"))
    try:
        reference_inputs(adata, d)
        run_ours(adata, [2], 2, 2, 1, 0)  # warm-up: imports

        ours_wall, ours_cpu, a = timed(lambda: run_ours(adata, args.ks, args.n_iter, args.k, args.ncpus, args.seed))
        ref_wall, ref_cpu, res = timed(lambda: run_reference(d, args.ks, args.n_iter, args.k, args.ncpus, args.seed))
        ours_mem = ref_mem = None
        if args.memory:
            ours_mem = measure(lambda: run_ours(adata, args.ks, args.n_iter, args.k, args.ncpus, args.seed))[1]
            ref_mem = measure(lambda: run_reference(d, args.ks, args.n_iter, args.k, args.ncpus, args.seed))[1]
    finally:
        shutil.rmtree(d, ignore_errors=True)

    usage, scores, spectra_tpm, _ = res
    ours = np.asarray(a.varm[f"cnmf.{args.k}"])
    theirs = spectra_tpm.loc[a.var_names].to_numpy()
    r = np.corrcoef(ours.T, theirs.T)[: args.k, args.k :].max(axis=1)
    print(f"programs k={args.k}: best Pearson r with a reference spectrum per our program: "
          f"min {r.min():.3f}, median {np.median(r):.3f} ({int((r >= 0.9).sum())}/{args.k} >= 0.9)")
    print("our stats:\n" + a.uns["cnmf.stats"].to_string(index=False))
    print(f"wall: ours {ours_wall:.1f}s, cnmf {ref_wall:.1f}s -> {ref_wall / ours_wall:.2f}x faster; "
          f"CPU: ours {ours_cpu:.1f}s, cnmf {ref_cpu:.1f}s (incl. worker processes) -> {ref_cpu / ours_cpu:.2f}x")
    rows = [row("consensus_nmf+extract_k", label, adata.shape, (ours_wall, ours_mem), (ref_wall, ref_mem),
                reference="cnmf 1.7.1", note=f"ks={args.ks} n_iter={args.n_iter} ncpus={args.ncpus}")]
    print_rows(rows)
    if ours_mem and ref_mem:
        print(f"peak traced memory: ours {ours_mem:.0f} MiB, cnmf {ref_mem:.0f} MiB -> ratio {ref_mem / ours_mem:.2f}")
    return rows


if __name__ == "__main__":
    main()
