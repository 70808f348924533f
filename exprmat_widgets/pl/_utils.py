"""Helpers shared by the figure modules: colour maps, palettes, feature look-up."""

from __future__ import annotations

import difflib

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors

from .._access import _dense_column, _gene_index, feature, symbol_column  # noqa: F401 (one look-up for tl, pl, widgets)
from ..colors import colors_of, default_palette
from ..errors import ExprmatError

# d3 / bokeh / plotly style names -> matplotlib names (same colours)
_CMAP_ALIASES = {
    "category10": "tab10",
    "category20": "tab20",
    "category20b": "tab20b",
    "category20c": "tab20c",
    "d3": "tab10",
    "greys": "Greys",
    "grays": "Greys",
    "gray": "gray",
}

#: light grey -> dark red; the default for gene expression and numeric obs
EXPRESSION_CMAP = mcolors.LinearSegmentedColormap.from_list(
    "exprmat_grey_red", ["#d9d9d9", "#fcbba1", "#fb6a4a", "#cb181d", "#67000d"]
)


def _registered_cmaps() -> dict:
    return {name.lower(): name for name in matplotlib.colormaps}


def get_cmap(cmap, *, default=None) -> mcolors.Colormap:
    """A matplotlib Colormap from a Colormap, a matplotlib name in any letter case
    (``'reds'`` -> ``'Reds'``), a d3/bokeh palette name (``'category20c'``) or a list of colours."""
    if cmap is None:
        cmap = default if default is not None else EXPRESSION_CMAP
    if isinstance(cmap, mcolors.Colormap):
        return cmap
    if isinstance(cmap, (list, tuple, np.ndarray)):
        try:
            return mcolors.ListedColormap([mcolors.to_rgba(c) for c in cmap])
        except ValueError as e:
            raise ExprmatError(f"cmap: could not read the colour list {list(cmap)!r} ({e}).") from None
    if not isinstance(cmap, str):
        raise ExprmatError(f"cmap must be a colour map name or a list of colours, got {type(cmap).__name__}.")
    if cmap in matplotlib.colormaps:
        return matplotlib.colormaps[cmap]
    low = cmap.lower()
    reverse = low.endswith("_r")
    base = low[:-2] if reverse else low
    name = _CMAP_ALIASES.get(base) or _registered_cmaps().get(base)
    if name is not None:
        cm = matplotlib.colormaps[name]
        return cm.reversed() if reverse else cm
    # bokeh palettes (Category20c_20, Viridis256, Set3, ...), case-insensitive
    try:
        import bokeh.palettes as bp

        names = {n.lower(): n for n in dir(bp) if not n.startswith("_")}
        pal = getattr(bp, names[base]) if base in names else None
        if isinstance(pal, dict):
            pal = pal[max(pal)]
        if isinstance(pal, (list, tuple)) and pal and isinstance(pal[0], str):
            cm = mcolors.ListedColormap(list(pal), name=cmap)
            return cm.reversed() if reverse else cm
    except ImportError:  # pragma: no cover - bokeh is a dependency
        pass
    close = difflib.get_close_matches(low, list(_registered_cmaps()) + list(_CMAP_ALIASES), n=3)
    raise ExprmatError(
        f"unknown colour map {cmap!r}; use a matplotlib name (e.g. 'Reds', 'viridis', 'tab20c')"
        + (f" - did you mean {close}?" if close else ".")
    )


def palette_from_cmap(cmap, n: int) -> list[str]:
    """``n`` colours from a colour map: the first ``n`` colours of a qualitative (listed) map with
    enough colours, evenly spaced samples otherwise."""
    cm = get_cmap(cmap)
    if n <= 0:
        return []
    if isinstance(cm, mcolors.ListedColormap) and cm.N < 256 and n <= cm.N:
        return [mcolors.to_hex(cm(i)) for i in range(n)]
    if isinstance(cm, mcolors.ListedColormap) and cm.N < 256:
        return [mcolors.to_hex(cm(i % cm.N)) for i in range(n)]
    pos = np.linspace(0, 1, n) if n > 1 else np.array([0.5])
    return [mcolors.to_hex(cm(p)) for p in pos]


def category_colors(adata, key: str, categories, palette=None) -> dict:
    """Category -> colour: ``palette`` (cmap name, list or dict) if given, else
    ``uns['<key>_colors']`` (or exprmat's ``uns['<key>.colors']``) when it matches the
    categories, else scanpy's default palette.
    Never writes to ``adata``."""
    cats = list(categories)
    if palette is not None:
        if isinstance(palette, dict):
            missing = [c for c in cats if c not in palette and str(c) not in palette]
            if missing:
                raise ExprmatError(f"palette has no colour for categories {missing} of {key!r}.")
            return {c: mcolors.to_hex(palette.get(c, palette.get(str(c)))) for c in cats}
        if isinstance(palette, (list, tuple)) and len(palette) >= len(cats):
            return {c: mcolors.to_hex(p) for c, p in zip(cats, palette)}
        return dict(zip(cats, palette_from_cmap(palette, len(cats))))
    stored = colors_of(adata, key) if key in adata.obs.columns else {}
    if stored and all(c in stored for c in cats):
        return {c: mcolors.to_hex(stored[c]) for c in cats}
    # files written by exprmat name the colours '<key>.colors'
    dotted = adata.uns.get(f"{key}.colors")
    col = adata.obs[key] if key in adata.obs.columns else None
    if dotted is not None and col is not None and isinstance(col.dtype, pd.CategoricalDtype):
        full = list(col.cat.categories)
        if len(dotted) >= len(full):
            m = dict(zip(full, list(dotted)))
            if all(c in m for c in cats):
                return {c: mcolors.to_hex(m[c]) for c in cats}
    return dict(zip(cats, default_palette(len(cats))))


def basis_label(basis: str) -> str:
    b = basis.removeprefix("X_")
    low = b.lower()
    if low.startswith("umap"):
        return "UMAP"
    if low.startswith("tsne"):
        return "tSNE"
    if low.startswith("pca"):
        return "PC"
    if low.startswith("draw_graph") or low.startswith("fa"):
        return "FA"
    return b


def new_figure(figsize, dpi):
    import matplotlib.pyplot as plt

    kw = {}
    if figsize is not None:
        kw["figsize"] = tuple(figsize)
    if dpi is not None:
        kw["dpi"] = dpi
    return plt.figure(**kw)


def figure_and_axes(ax, figsize, dpi):
    """``(fig, ax)``: the given axes and its figure, or one new axes in a constrained figure."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(figsize, dpi)
    fig.set_layout_engine("constrained")
    return fig, fig.add_subplot(1, 1, 1)


def empty_note(ax, text: str):
    """Mark an axes as intentionally empty with a visible note."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8,
            color="0.35", wrap=True, gid="empty-note")
    ax.set_xticks([])
    ax.set_yticks([])
