"""An experiment directory laid out as exprmat writes it, built with ``mudata`` / ``anndata`` /
scanpy only (never with exprmat_widgets), from the shipped two-sample PBMC data:

    metadata.tsv               pbmc_5k, pbmc_10k (location, sample, batch, group, modality, taxa)
    rna/<sample>.h5ad          raw counts of each sample
    integrated.h5mu            modality 'rna': log-normalised X, layers['counts'], var['vst.all.hvg'],
                               obsm['pca'], obsm['harmony'] (Harmony over the samples)
    subsets/first-5k.h5mu      the pbmc_5k cells of the integrated data

Gene names are ``rna:hsa:g<5 digits>`` (exprmat's ``rna:<taxa>:<id>`` form; the shipped data
have no Ensembl ids, so the ids are positions) with the real symbols in ``var['gene']``
(categorical, as exprmat stores it).  Used by tests/test_exprmat_layout.py and the browser test.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as mu
import numpy as np
import pandas as pd

SAMPLES = ["pbmc_5k", "pbmc_10k"]
# a uns['commands'] that is not this package's history (exprmat keeps its own there)
FOREIGN_COMMANDS = {"0": "integrate(method='harmony')"}


def gene_ids(n: int) -> pd.Index:
    return pd.Index([f"rna:hsa:g{i:05d}" for i in range(n)])


def write_exprmat_dir(root: Path) -> Path:
    import harmonypy
    import scanpy as sc

    from exprmat_widgets.datasets import pbmc_2samples

    root = Path(root)
    raw = pbmc_2samples()
    symbols = raw.var_names.astype(str)
    var = pd.DataFrame({"gene": pd.Categorical(symbols)}, index=gene_ids(raw.n_vars))
    meta = pd.DataFrame({
        "location": [f"/data/10x/{s}" for s in SAMPLES], "sample": SAMPLES, "batch": ["b1", "b2"],
        "group": ["5k", "10k"], "modality": "rna", "taxa": "hsa"})
    root.mkdir(parents=True, exist_ok=True)
    meta.to_csv(root / "metadata.tsv", sep="\t", index=False)
    (root / "rna").mkdir(exist_ok=True)
    samples = {}
    for i, name in enumerate(SAMPLES):
        cells = (raw.obs["sample"] == name).to_numpy()
        s = ad.AnnData(raw.layers["counts"][cells].astype(np.float32), obs=raw.obs[cells].copy(), var=var.copy())
        for col in ("sample", "batch", "group", "modality", "taxa"):
            s.obs[col] = pd.Categorical([meta[col][i]] * s.n_obs)
        s.write_h5ad(root / "rna" / f"{name}.h5ad")
        samples[name] = s
    a = ad.concat(samples, join="inner", merge="same")
    a.obs["sample"] = pd.Categorical(a.obs["sample"].astype(str), categories=SAMPLES)
    a.layers["counts"] = a.X.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=2000, flavor="seurat")
    a.var["vst.all.hvg"] = a.var.pop("highly_variable")
    sc.pp.pca(a, n_comps=30, mask_var="vst.all.hvg", random_state=0)
    a.obsm["pca"] = a.obsm.pop("X_pca")
    pcs = np.asarray(a.obsm["pca"], dtype=np.float64)
    z = np.asarray(harmonypy.run_harmony(pcs, a.obs[["sample"]], "sample", random_state=0, verbose=False).Z_corr)
    a.obsm["harmony"] = np.ascontiguousarray(z if z.shape == pcs.shape else z.T, dtype=np.float32)
    a.uns["commands"] = dict(FOREIGN_COMMANDS)
    with mu.set_options(pull_on_update=False):
        mu.MuData({"rna": a}).write_h5mu(root / "integrated.h5mu")
        (root / "subsets").mkdir(exist_ok=True)
        first = a[a.obs["sample"] == SAMPLES[0]].copy()
        mu.MuData({"rna": first}).write_h5mu(root / "subsets" / "first-5k.h5mu")
    return root
