"""Checks shared by the core routines; each failure names the problem and the fix."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from .errors import ExprmatError, MissingKeyError


def embedding_key(adata, basis: str) -> str:
    """The ``obsm`` key of an embedding: ``basis`` itself or ``'X_' + basis``."""
    if not isinstance(basis, str):
        raise ExprmatError(f"basis must be a string naming an obsm entry, got {type(basis).__name__}.")
    for key in (basis, f"X_{basis}", basis[2:] if basis.startswith("X_") else None):
        if key is not None and key in adata.obsm:
            return key
    raise MissingKeyError(
        f"embedding {basis!r} not found in adata.obsm (have: {sorted(adata.obsm.keys())}). "
        "Compute it first (e.g. em.umap(adata) after em.knn(adata)) or pass an existing key."
    )


def embedding(adata, basis: str, *, finite: bool = True) -> np.ndarray:
    """The embedding array for ``basis``; NaN or infinite values are an error."""
    key = embedding_key(adata, basis)
    arr = np.asarray(adata.obsm[key])
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum()) if arr.ndim == 2 else -1
        raise ExprmatError(
            f"embedding {key!r} contains NaN or infinite values ({bad} cells); "
            "recompute it or drop those cells with em.exclude_cells first."
        )
    return arr


def obs_key(adata, key: str) -> pd.Series:
    if not isinstance(key, str) or key not in adata.obs.columns:
        cols = list(adata.obs.columns)
        raise MissingKeyError(f"obs column {key!r} not found (have: {cols}).")
    return adata.obs[key]


def categorical(adata, key: str) -> pd.Series:
    """``obs[key]`` as a categorical column (error if it is numeric with many values)."""
    col = obs_key(adata, key)
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col
    if col.dtype.kind == "f":
        raise ExprmatError(f"obs column {key!r} is numeric, not a clustering; pass a categorical key.")
    return col.astype(str).astype("category")


def clusters_in(adata, key: str, clusters, *, what: str = "cluster") -> list[str]:
    """Validate ``clusters`` (names or numbers) against the categories of ``obs[key]``;
    returns them as the category values."""
    col = categorical(adata, key)
    cats = list(col.cat.categories)
    by_str = {str(c): c for c in cats}
    if isinstance(clusters, (str, numbers.Number)):
        clusters = [clusters]
    out = []
    for c in clusters:
        if str(c) not in by_str:
            raise MissingKeyError(
                f"{what} {c!r} is not a category of obs[{key!r}] (categories: {[str(x) for x in cats]})."
            )
        out.append(by_str[str(c)])
    if len(set(map(str, out))) != len(out):
        dup = sorted({str(c) for c in out if [str(x) for x in out].count(str(c)) > 1})
        raise ExprmatError(f"{what}(s) {dup} named more than once; name each once.")
    return out


def number(value, name: str, *, minimum=None, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, numbers.Number) or not np.isfinite(value):
        raise ExprmatError(f"{name} must be a finite number, got {value!r}.")
    if integer and int(value) != value:
        raise ExprmatError(f"{name} must be an integer, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ExprmatError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value) if integer else value


def new_key(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ExprmatError(f"{name} must be a non-empty string, got {value!r}.")
    return value
