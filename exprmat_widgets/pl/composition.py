"""Composition figure: proportion of each minor category (e.g. cell type) within each major
category (e.g. sample), as stacked or grouped bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from .. import _validate as v
from ..errors import ExprmatError
from . import _utils as u

__all__ = ["plot_proportion"]

_NORMALIZE = ("index", "columns", "all", None)


def _table(adata, major, minor, normalize):
    """(counts, shown) tables: majors as rows, minors as columns, every category kept."""
    a = v.categorical(adata, major)
    b = v.categorical(adata, minor)
    counts = pd.crosstab(a, b, dropna=False).reindex(index=a.cat.categories, columns=b.cat.categories, fill_value=0)
    try:  # the core routine, when it is available (helper A's em.proportion)
        from ..tl.composition import proportion
    except ImportError:
        proportion = None
    shown = None
    if proportion is not None:
        res = proportion(adata, major=major, minor=minor, normalize=normalize)
        if isinstance(res, pd.DataFrame):
            shown = res.reindex(index=counts.index, columns=counts.columns)
    if shown is None:
        c = counts.astype(float)
        if normalize == "index":
            shown = c.div(c.sum(axis=1).replace(0, np.nan), axis=0)
        elif normalize == "columns":
            shown = c.div(c.sum(axis=0).replace(0, np.nan), axis=1)
        elif normalize == "all":
            shown = c / max(c.to_numpy().sum(), 1)
        else:
            shown = c
    return counts, shown.fillna(0.0)


def plot_proportion(
    adata,
    major: str,
    minor: str,
    *,
    plot: str = "bar",
    normalize: str | None = "index",
    stacked: bool = True,
    cmap=None,
    legend: bool = True,
    legend_cols: int = 1,
    show_n: bool = False,
    figsize=(3, 2.5),
    dpi=100,
    ax=None,
):
    """Bars of the composition of each ``major`` category (e.g. sample) in ``minor`` categories
    (e.g. cell type).

    ``normalize='index'`` shows the fraction of each major's cells in each minor category,
    ``'columns'`` the fraction of each minor category's cells in each major, ``'all'`` the
    fraction of all cells, ``None`` the cell counts.  ``plot`` is ``'bar'`` (vertical) or
    ``'barh'``; ``stacked=False`` draws grouped bars.  Colours: ``cmap`` (matplotlib or d3 names,
    e.g. ``'category20c'``) or else ``uns['<minor>_colors']``.  A major category without cells
    keeps its place with a "no cells" note.  ``show_n`` writes the number of cells per bar.

    Reads ``obs[major]``, ``obs[minor]`` (and ``uns['<minor>_colors']``); writes nothing.

    Parameters
    ----------
    adata
        Annotated data.
    major, minor
        obs columns: one bar per ``major`` category, split by ``minor`` category.
    plot
        ``'bar'`` (vertical) or ``'barh'`` (horizontal).
    normalize
        ``'index'``, ``'columns'``, ``'all'`` or ``None`` (see above).
    stacked
        Stack the ``minor`` categories in one bar (``False``: bars side by side).
    cmap
        Colours of the ``minor`` categories (matplotlib or d3 names); default
        ``uns['<minor>_colors']``.
    legend, legend_cols
        Draw a legend of the ``minor`` categories, in this many columns.
    show_n
        Write the number of cells above each bar.
    figsize, dpi, ax
        Size of a new figure, or an existing Axes to draw into.

    Returns
    -------
    matplotlib.figure.Figure
        The table drawn is ``fig.proportion_table``.
    """
    if plot not in ("bar", "barh"):
        raise ExprmatError(f"plot must be 'bar' or 'barh', got {plot!r}.")
    if normalize not in _NORMALIZE:
        raise ExprmatError(f"normalize must be 'index', 'columns', 'all' or None, got {normalize!r}.")
    if major == minor:
        raise ExprmatError("major and minor must be different obs columns.")
    counts, shown = _table(adata, major, minor, normalize)
    minors = list(shown.columns)
    majors = list(shown.index)
    if cmap is not None:
        pal = dict(zip(minors, u.palette_from_cmap(cmap, len(minors))))
    else:
        pal = u.category_colors(adata, minor, minors)

    fig, ax = u.figure_and_axes(ax, figsize, dpi)
    pos = np.arange(len(majors), dtype=float)
    vals = shown.to_numpy(dtype=float)
    horizontal = plot == "barh"
    bar = ax.barh if horizontal else ax.bar
    if stacked:
        width = 0.75
        base = np.zeros(len(majors))
        for j, m in enumerate(minors):
            kw = {"left": base} if horizontal else {"bottom": base}
            cont = bar(pos, vals[:, j], width, color=pal[m], label=str(m), linewidth=0.3, edgecolor="white", **kw)
            for patch in cont:
                patch.set_gid(f"minor:{m}")
            base = base + vals[:, j]
    else:
        width = 0.8 / max(len(minors), 1)
        for j, m in enumerate(minors):
            cont = bar(pos - 0.4 + width * (j + 0.5), vals[:, j], width, color=pal[m], label=str(m), linewidth=0)
            for patch in cont:
                patch.set_gid(f"minor:{m}")
    tick_set, lim_set = (ax.set_yticks, ax.set_xlim) if horizontal else (ax.set_xticks, ax.set_ylim)
    tick_set(pos)
    (ax.set_yticklabels if horizontal else ax.set_xticklabels)(
        [str(m) for m in majors], fontsize=7, rotation=0 if horizontal else (45 if len(majors) > 3 else 0),
        ha="right" if (not horizontal and len(majors) > 3) else "center" if not horizontal else "right",
    )
    if horizontal:
        ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    label = {"index": f"fraction of {major} cells", "columns": f"fraction of {minor} cells",
             "all": "fraction of all cells", None: "cells"}[normalize]
    (ax.set_xlabel if horizontal else ax.set_ylabel)(label, fontsize=8)
    (ax.set_ylabel if horizontal else ax.set_xlabel)(major, fontsize=8)
    if normalize is not None and stacked:
        lim_set(0, 1)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    totals = counts.sum(axis=1).to_numpy()
    for i, t in enumerate(totals):
        if t == 0:
            xy = (0.02, pos[i]) if horizontal else (pos[i], 0.02)
            ax.annotate("no cells", xy, ha="left" if horizontal else "center", va="center" if horizontal else "bottom",
                        fontsize=6, color="0.35", rotation=0 if horizontal else 90, gid=f"empty:{majors[i]}",
                        xycoords=("axes fraction", "data") if horizontal else ("data", "axes fraction"))
        elif show_n:
            top = vals[i].sum() if stacked else vals[i].max()
            xy = (top, pos[i]) if horizontal else (pos[i], top)
            ax.annotate(f"n={int(t)}", xy, xytext=(2, 0) if horizontal else (0, 2), textcoords="offset points",
                        ha="left" if horizontal else "center", va="center" if horizontal else "bottom", fontsize=6)
    if legend:
        handles = [Patch(facecolor=pal[m], edgecolor="none", label=str(m)) for m in minors]
        if stacked and not horizontal:
            handles = handles[::-1]  # same order as the stack, top to bottom
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=int(legend_cols),
                  frameon=False, fontsize=7, title=minor, title_fontsize=7, handlelength=1, handleheight=1)
    fig.proportion_table = shown
    return fig
