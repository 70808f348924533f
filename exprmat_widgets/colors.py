"""Category colours in ``uns['<key>_colors']``, kept in step with the categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from scanpy.plotting import palettes

__all__ = ["default_palette", "sync_colors", "colors_of"]


def default_palette(n: int) -> list[str]:
    """scanpy's default categorical palette for ``n`` categories."""
    if n <= 20:
        base = palettes.default_20
    elif n <= 28:
        base = palettes.default_28
    else:
        base = palettes.default_102
    return [mcolors.to_hex(base[i % len(base)]) for i in range(n)]


def colors_of(adata, key: str) -> dict:
    """Mapping category -> colour from ``uns['<key>_colors']`` (empty if absent or stale)."""
    col = adata.obs.get(key) if key in adata.obs.columns else None
    cols = adata.uns.get(f"{key}_colors")
    if col is None or cols is None or not isinstance(col.dtype, pd.CategoricalDtype):
        return {}
    cats = list(col.cat.categories)
    cols = list(cols)
    if len(cols) < len(cats):
        return {}
    return dict(zip(cats, cols))


def sync_colors(adata, key: str, previous: dict | None = None, inherit: dict | None = None) -> None:
    """Write ``uns['<key>_colors']`` in category order.

    Categories keep the colour they had in ``previous`` (category -> colour);
    ``inherit`` maps a new category to an old one whose colour it takes (e.g.
    a merge or rename); the rest get unused colours of the default palette.
    """
    previous = previous or {}
    inherit = inherit or {}
    cats = list(adata.obs[key].cat.categories)
    out: list[str | None] = []
    for c in cats:
        if c in previous:
            out.append(previous[c])
        elif c in inherit and inherit[c] in previous:
            out.append(previous[inherit[c]])
        else:
            out.append(None)
    used = {c for c in out if c is not None}
    pool = [c for c in default_palette(max(len(cats) + len(used), 20)) if c not in used]
    if len(pool) < out.count(None):
        pool += default_palette(102)
    it = iter(pool)
    adata.uns[f"{key}_colors"] = np.array([c if c is not None else next(it) for c in out], dtype=object)
