"""A lasso set on the scatter the way the page sends one (shared by the panel tests)."""

import numpy as np
from matplotlib.path import Path as MplPath


def page_lasso(ann, center_mask):
    """Set a lasso on the scatter as the page does: a polygon (embedding coords) around the
    cells of ``center_mask`` and the cells inside it. Returns ``(inside, polygon)``."""
    emb = ann.adata.obsm["X_umap"][:, :2]
    c = emb[center_mask].mean(axis=0)
    r = 0.6 * emb[center_mask].std(axis=0).max()
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    poly = np.c_[c[0] + r * np.cos(t), c[1] + r * np.sin(t)]
    inside = np.flatnonzero(MplPath(poly).contains_points(emb))
    sc = ann.scatter
    sc.selection = inside
    tr = sc._transform
    norm = (poly - np.array([tr["cx"], tr["cy"]])) * tr["scale"]
    sc._polygon = norm.astype("<f4").tobytes()  # what the page sends with a lasso
    return inside, poly
