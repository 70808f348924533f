"""Loaders for the small real data sets shipped in ``exprmat_widgets/data`` (see its README)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad

__all__ = ["data_path", "pbmc68k_counts", "pbmc_2samples", "mouse_10k"]

DATA_DIR = Path(__file__).parent / "data"


def data_path(name: str) -> Path:
    """Path of a shipped file, e.g. ``data_path('pbmc68k_reduced_counts.h5ad')``."""
    return DATA_DIR / name


def pbmc68k_counts() -> ad.AnnData:
    """700 human PBMC x 765 genes, UMI counts in ``X``, cell types in ``obs['bulk_labels']``."""
    return ad.read_h5ad(data_path("pbmc68k_reduced_counts.h5ad"))


def pbmc_2samples() -> ad.AnnData:
    """400 PBMC (2 samples, ``obs['sample']``) x 15,792 genes, raw counts."""
    return ad.read_h5ad(data_path("pbmc_2samples_400.h5ad"))


def mouse_10k() -> ad.AnnData:
    """10,000 mouse cells x 1,000 genes (chromosome 1), raw counts in ``X`` and ``layers['counts']``."""
    return ad.read_h5ad(data_path("mouse_10k_chr1.h5ad"))
