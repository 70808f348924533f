"""Categorical ``obs`` columns as integer codes: read them, write them back with unused
categories dropped, and keep ``uns['<key>_colors']`` in step (shared by the annotation,
sub-clustering and program-labelling commands)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _validate as v
from ..colors import colors_of, sync_colors

__all__ = ["codes_and_categories", "drop_unused", "previous_colors", "write_categorical"]


def codes_and_categories(adata, key: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and category names (as text) of ``obs[key]``."""
    col = v.categorical(adata, key)
    return col.cat.codes.to_numpy(), [str(c) for c in col.cat.categories]


def previous_colors(adata, key: str) -> dict:
    if key not in adata.obs.columns:
        return {}
    return {str(k): c for k, c in colors_of(adata, key).items()}


def drop_unused(codes: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes renumbered over the categories some cell uses (order kept; -1 stays -1) and the
    mask of those categories: one bincount, no sort."""
    used = np.bincount(codes[codes >= 0], minlength=n_categories) > 0 if n_categories else np.zeros(0, bool)
    if used.all():
        return codes, used
    lut = np.full(n_categories + 1, -1, dtype=np.int64)
    lut[np.flatnonzero(used)] = np.arange(int(used.sum()))
    return lut[codes], used  # code -1 indexes the trailing -1


def write_categorical(adata, key: str, codes: np.ndarray, categories: list[str], previous: dict, inherit=None):
    """Assign ``obs[key]`` from codes, dropping categories no cell uses, and sync its colours."""
    codes, used = drop_unused(codes, len(categories))
    categories = [c for c, u in zip(categories, used) if u]
    dtype = np.int8 if len(categories) < 127 else (np.int16 if len(categories) < 32767 else np.int32)
    adata.obs[key] = pd.Categorical.from_codes(codes.astype(dtype, copy=False), categories=categories)
    sync_colors(adata, key, previous=previous, inherit=inherit)
