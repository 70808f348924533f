"""Embedding scatter plots (UMAP, PCA, ...): categorical or continuous colouring, cluster
labels at cluster centres, per-group density contours, and a fast raster path for large data."""

from __future__ import annotations

import math
import numbers

import matplotlib.artist as martist
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib import patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.lines import Line2D

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from . import _utils as u

__all__ = ["plot_embedding", "plot_multiple_embedding"]

#: above this many cells the points are drawn by :class:`RasterPoints` (one image per draw)
RASTER_THRESHOLD = 50_000


class RasterPoints(martist.Artist):
    """Points rasterised at draw time, at the output resolution.

    Each point is a filled disc of ``s`` square points (matplotlib's scatter unit); later
    points are drawn on top of earlier ones.  Drawing a million points takes a fraction of a
    second with any backend (PNG, PDF and SVG get one embedded image)."""

    def __init__(self, xy, rgba, s):
        super().__init__()
        self.xy = np.asarray(xy, dtype=float)
        rgba = np.asarray(rgba)
        self.rgba = (np.clip(rgba, 0, 1) * 255).round().astype(np.uint8) if rgba.dtype.kind == "f" else rgba
        self.s = float(s)
        self.set_gid("cells")
        self.set_zorder(1)
        # vector backends (PDF, SVG) hand rasterised artists an Agg renderer at the savefig dpi
        self.set_rasterized(True)

    def facecolors(self) -> np.ndarray:
        """RGBA (0..1) of each point, in drawing order (like ``PathCollection.get_facecolors``)."""
        return self.rgba.astype(float) / 255.0

    def render(self, renderer):
        """The (H, W, 4) uint8 image of the axes area (row 0 at the bottom) and its bbox."""
        ax = self.axes
        bbox = ax.get_window_extent(renderer)
        w, h = max(int(math.ceil(bbox.width)), 1), max(int(math.ceil(bbox.height)), 1)
        pix = ax.transData.transform(self.xy)
        px = np.floor(pix[:, 0] - bbox.x0).astype(np.int64)
        py = np.floor(pix[:, 1] - bbox.y0).astype(np.int64)
        radius = math.sqrt(self.s) / 2.0 * renderer.points_to_pixels(1.0)
        r = max(radius, 0.5)
        ri = int(math.ceil(r))
        offsets = [(dx, dy) for dx in range(-ri, ri + 1) for dy in range(-ri, ri + 1)
                   if dx * dx + dy * dy <= r * r + 0.25] or [(0, 0)]
        rank = np.arange(len(px), dtype=np.int64)
        best = np.full(w * h, -1, dtype=np.int64)
        tmp = np.empty_like(best)
        for dx, dy in offsets:
            x = px + dx
            y = py + dy
            ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            tmp.fill(-1)
            # plain integer-array assignment: for repeated pixels the later point wins
            tmp[(y[ok] * w + x[ok])] = rank[ok]
            np.maximum(best, tmp, out=best)
        img = np.zeros((w * h, 4), dtype=np.uint8)
        hit = best >= 0
        img[hit] = self.rgba[best[hit]]
        return img.reshape(h, w, 4), bbox

    @martist.allow_rasterization
    def draw(self, renderer):
        if not self.get_visible() or len(self.xy) == 0:
            return
        img, bbox = self.render(renderer)
        gc = renderer.new_gc()
        gc.set_clip_rectangle(self.axes.bbox)
        renderer.draw_image(gc, bbox.x0, bbox.y0, img)
        gc.restore()
        self.stale = False


def _limit(value, values, name):
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("p"):
        try:
            q = float(value[1:])
        except ValueError:
            q = -1
        if not 0 <= q <= 100:
            raise ExprmatError(f"{name}={value!r}: use a number or a percentile such as 'p99'.")
        finite = values[np.isfinite(values)]
        return float(np.percentile(finite, q)) if len(finite) else None
    if isinstance(value, numbers.Number):
        return float(value)
    raise ExprmatError(f"{name} must be a number or a percentile such as 'p99', got {value!r}.")


def _label_positions(xy, codes, n_groups, extent, bins=64):
    """Where to write each group's name: the cell of the group nearest to the peak of its
    smoothed density (on the cluster's dense core even for curved or scattered groups)."""
    grid = _density_grid(xy, codes, n_groups, extent, bins, 1.5)
    x0, x1, y0, y1 = extent
    out = {}
    for g in range(n_groups):
        members = xy[codes == g]
        if len(members) == 0:
            continue
        iy, ix = np.unravel_index(int(np.argmax(grid[g])), grid[g].shape)
        peak = np.array([x0 + (ix + 0.5) * (x1 - x0) / bins, y0 + (iy + 0.5) * (y1 - y0) / bins])
        out[g] = members[int(np.argmin(((members - peak) ** 2).sum(axis=1)))]
    return out


class LabelRepel(martist.Artist):
    """Moves overlapping cluster labels apart at draw time, after the layout is known, using
    the real text extents; labels that do not overlap stay at their cluster.  Drawn before
    the labels themselves (lowest zorder), it starts again from the original positions at
    every draw, so the result does not depend on how often the figure is drawn."""

    def __init__(self, texts, iterations=150):
        super().__init__()
        self.texts = list(texts)
        self.origin = [t.get_position() for t in self.texts]
        self.iterations = iterations
        self.set_zorder(-100)
        self.set_in_layout(False)

    def draw(self, renderer):
        ax = self.axes
        for t, p in zip(self.texts, self.origin):
            t.set_position(p)
        if len(self.texts) < 2:
            return
        boxes = []
        for t in self.texts:
            bb = t.get_window_extent(renderer)
            patch = t.get_bbox_patch()
            pad = 0.3 * t.get_fontsize() * renderer.points_to_pixels(1.0) if patch is not None else 1.0
            boxes.append((bb.width + 2 * pad, bb.height + 2 * pad))
        w = np.array([b[0] for b in boxes])
        h = np.array([b[1] for b in boxes])
        P = ax.transData.transform(np.array(self.origin, dtype=float))
        frame = ax.get_window_extent(renderer)
        for _ in range(self.iterations):
            moved = False
            for i in range(len(P)):
                for j in range(i + 1, len(P)):
                    d = P[j] - P[i]
                    ox = (w[i] + w[j]) / 2 - abs(d[0])
                    oy = (h[i] + h[j]) / 2 - abs(d[1])
                    if ox > 0.5 and oy > 0.5:
                        moved = True
                        if oy <= ox:  # usually cheaper to separate vertically
                            step = (oy / 2 + 0.5) * (1 if d[1] >= 0 else -1)
                            P[i, 1] -= step
                            P[j, 1] += step
                        else:
                            step = (ox / 2 + 0.5) * (1 if d[0] >= 0 else -1)
                            P[i, 0] -= step
                            P[j, 0] += step
            P[:, 0] = np.clip(P[:, 0], frame.x0 + np.minimum(w / 2, frame.width / 2),
                              frame.x1 - np.minimum(w / 2, frame.width / 2))
            P[:, 1] = np.clip(P[:, 1], frame.y0 + np.minimum(h / 2, frame.height / 2),
                              frame.y1 - np.minimum(h / 2, frame.height / 2))
            if not moved:
                break
        for t, q in zip(self.texts, ax.transData.inverted().transform(P)):
            t.set_position((float(q[0]), float(q[1])))

    def get_window_extent(self, renderer=None):
        from matplotlib.transforms import Bbox

        return Bbox.null()


def _density_grid(xy, codes, n_groups, extent, bins, smooth):
    """Smoothed 2-D histograms, one per group code (codes < 0 ignored): (n_groups, bins, bins)."""
    from scipy.ndimage import gaussian_filter

    x0, x1, y0, y1 = extent
    ix = np.clip(((xy[:, 0] - x0) / (x1 - x0) * bins).astype(np.int64), 0, bins - 1)
    iy = np.clip(((xy[:, 1] - y0) / (y1 - y0) * bins).astype(np.int64), 0, bins - 1)
    ok = codes >= 0
    flat = codes[ok].astype(np.int64) * bins * bins + iy[ok] * bins + ix[ok]
    grid = np.bincount(flat, minlength=n_groups * bins * bins).reshape(n_groups, bins, bins).astype(float)
    if smooth > 0:
        for g in range(n_groups):
            grid[g] = gaussian_filter(grid[g], smooth)
    return grid


def _mass_levels(density, fractions):
    """Density thresholds whose super-level sets hold the given fractions of the mass."""
    vals = np.sort(density.ravel())[::-1]
    total = vals.sum()
    if total <= 0:
        return []
    cum = np.cumsum(vals) / total
    out = []
    for f in sorted(fractions, reverse=True):
        i = min(int(np.searchsorted(cum, f)), len(vals) - 1)
        out.append(vals[i])
    lv = sorted({float(x) for x in out if x > 0})
    return lv


def _draw_contours(ax, xy, codes, colors, extent, *, levels, linewidth, bins, smooth, min_cells):
    n_groups = len(colors)
    if n_groups == 0 or len(xy) == 0:
        return []
    grid = _density_grid(xy, codes, n_groups, extent, bins, smooth)
    counts = np.bincount(codes[codes >= 0], minlength=n_groups)
    x0, x1, y0, y1 = extent
    gx = x0 + (np.arange(bins) + 0.5) * (x1 - x0) / bins
    gy = y0 + (np.arange(bins) + 0.5) * (y1 - y0) / bins
    drawn = []
    for g in range(n_groups):
        if counts[g] < min_cells:
            continue
        lv = _mass_levels(grid[g], levels)
        if not lv:
            continue
        cs = ax.contour(gx, gy, grid[g], levels=lv, colors=[colors[g]], linewidths=linewidth, zorder=2)
        cs.set_gid(f"contour:{g}")
        drawn.append(cs)
    return drawn


def plot_embedding(
    adata,
    basis: str = "umap",
    color: str | None = None,
    *,
    figsize=(4, 4),
    dpi=100,
    ax=None,
    title: str | None = None,
    legend: bool = True,
    legend_col: int = 1,
    legend_loc: str = "right margin",
    legend_fontsize: float | None = None,
    ptsize: float | None = None,
    palette=None,
    cmap=None,
    vmin=None,
    vmax=None,
    sort: bool = False,
    groups=None,
    annotate: bool = True,
    annotate_style: str | None = "text",
    annotate_fontsize: float | None = None,
    annotate_foreground: str = "black",
    repel_labels: bool = True,
    contour_plot: bool = False,
    contour_levels=(0.5, 0.9),
    contour_linewidth: float = 0.6,
    contour_bins: int = 160,
    contour_smooth: float = 2.5,
    contour_min_cells: int = 10,
    na_color: str = "#e0e0e0",
    layer: str | None = None,
    use_raw: bool = False,
    gene_symbols: str | None = None,
    colorbar: bool = True,
    frameon: bool = True,
    shuffle: bool = True,
    random_state: int = 0,
    raster_threshold: int = RASTER_THRESHOLD,
    components=(0, 1),
):
    """Scatter of cells on an embedding, coloured by an obs column or a gene.

    Categorical colours come from ``uns['<color>_colors']`` (scanpy's default palette when
    absent; nothing is written to ``adata``).  Cluster labels are placed at cluster centres
    (``annotate_style='text'``: text with a white halo; ``'label'``: a box in the cluster's
    colour; ``None``: no labels).  ``contour_plot=True`` draws, for each group, the density
    contours holding ``contour_levels`` of its cells.  Genes and numeric obs columns get a
    continuous colour map (``sort=True`` draws the highest values on top) and a colour bar.
    Above ``raster_threshold`` cells the points are rasterised at draw time (a million cells
    render in about a second); below, a rasterised matplotlib scatter is used.

    Parameters
    ----------
    adata
        Reads ``obsm[basis]`` (or ``obsm['X_' + basis]``), ``obs[color]`` and
        ``uns['<color>_colors']``, or the expression of gene ``color`` (``X``, ``layer`` or
        ``raw``; looked up in ``var_names`` then in ``var[gene_symbols]``).  Writes nothing.
    basis
        Embedding name (``'umap'``, ``'X_umap'``, ``'pca'``, ...).
    color
        obs column or gene; ``None`` draws every cell in grey.
    figsize, dpi, ax
        Size of a new figure, or an existing Axes to draw into.
    legend, legend_col, legend_loc, legend_fontsize
        Legend of a categorical colouring (``legend_loc='right margin'`` puts it beside the plot,
        ``'on data'`` is the same as labels on the clusters, other values are matplotlib ``loc``).
    ptsize
        Point area in points^2 (matplotlib's ``s``); default ``min(20, 50000 / n_cells)``.
    palette, cmap, vmin, vmax
        Categorical palette (name, list or dict) and continuous colour map (any matplotlib name
        in any case, d3 names such as ``'category20c'``); ``vmin``/``vmax`` may be ``'p1'``/``'p99'``.
    groups
        Only these categories are coloured; the other cells are drawn in ``na_color`` below.
    title
        Title of the axes; default the name of ``color`` (in italics for a gene).
    sort
        For a continuous colouring, draw the cells with the highest values on top.
    annotate, annotate_style, annotate_fontsize, annotate_foreground
        Labels at the cluster centres of a categorical colouring: on/off, ``'text'``
        (text with a white halo), ``'label'`` (a box in the cluster's colour) or ``None``,
        the font size (default 8) and the text colour of ``'text'`` labels.
    repel_labels
        Move overlapping cluster labels apart when the figure is drawn.
    contour_plot
        Draw density contours of each group (of all cells for a continuous colouring).
    contour_levels
        Fractions of a group's cells inside its contours, e.g. ``(0.5, 0.9)``.
    contour_linewidth
        Line width of the contours.
    contour_bins, contour_smooth
        Bins per axis of the 2-D histogram the densities are estimated on, and the
        standard deviation (in bins) of its Gaussian smoothing.
    contour_min_cells
        Groups with fewer cells get no contour.
    na_color
        Colour of cells without a value (and of cells outside ``groups``).
    layer
        Read gene expression from this layer instead of ``X``.
    use_raw
        Read gene expression from ``adata.raw``.
    gene_symbols
        ``var`` column of gene symbols in which ``color`` is also looked up.
    colorbar
        Draw a colour bar for a continuous colouring.
    frameon
        Draw the axes frame.
    shuffle
        Draw the coloured cells of a categorical colouring in random order, so no
        category hides the others.
    random_state
        Seed of that order.
    raster_threshold
        Above this many cells, points are rasterised at draw time (:class:`RasterPoints`).
    components
        The two (0-based) columns of the embedding to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    xy_all = v.embedding(adata, basis)
    key = v.embedding_key(adata, basis)
    if xy_all.ndim != 2 or xy_all.shape[1] < 2:
        raise ExprmatError(f"embedding {key!r} has fewer than 2 dimensions; pick a 2-D embedding.")
    c0, c1 = components
    xy = np.asarray(xy_all[:, [c0, c1]], dtype=float)
    n = xy.shape[0]
    if legend_col is None or int(legend_col) < 1:
        raise ExprmatError(f"legend_col must be a positive integer, got {legend_col!r}.")
    if annotate_style not in (None, "none", "text", "label"):
        raise ExprmatError(f"annotate_style must be 'text', 'label' or None, got {annotate_style!r}.")
    if ptsize is None:
        ptsize = min(20.0, 50000.0 / max(n, 1))
    ptsize = v.number(ptsize, "ptsize", minimum=0)

    kind, cats, values = None, None, None
    if color is not None:
        values, kind, cats = u.feature(adata, color, layer=layer, gene_symbols=gene_symbols, use_raw=use_raw)

    fig, ax = u.figure_and_axes(ax, figsize, dpi)

    rng = np.random.default_rng(random_state)
    na_rgba = np.array(mcolors.to_rgba(na_color), dtype=float)
    rgba = np.tile(na_rgba, (n, 1))
    order = np.arange(n)
    codes = np.full(n, -1, dtype=np.int64)
    present, pal, mappable = [], {}, None
    if kind == "categorical":
        codes = np.asarray(pd.Categorical(values, categories=cats).codes, dtype=np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=len(cats))
        if groups is not None:
            gl = [groups] if isinstance(groups, (str, numbers.Number)) else list(groups)
            by = {str(c): i for i, c in enumerate(cats)}
            bad = [g for g in gl if str(g) not in by]
            if bad:
                raise MissingKeyError(f"groups {bad} are not categories of {color!r} "
                                      f"(categories: {[str(c) for c in cats]}).")
            keep = np.zeros(len(cats), bool)
            keep[[by[str(g)] for g in gl]] = True
            codes = np.where((codes >= 0) & keep[np.maximum(codes, 0)], codes, -1)
            counts = np.where(keep, counts, 0)
        present = [i for i in range(len(cats)) if counts[i] > 0]
        pal_all = u.category_colors(adata, color, cats, palette)
        pal = {i: pal_all[cats[i]] for i in range(len(cats))}
        table = np.array([mcolors.to_rgba(pal[i]) for i in range(len(cats))] + [tuple(na_rgba)], dtype=float)
        rgba = table[np.where(codes >= 0, codes, len(cats))]
        back = np.flatnonzero(codes < 0)
        front = np.flatnonzero(codes >= 0)
        if shuffle:
            front = rng.permutation(front)
        order = np.concatenate([back, front])
    elif kind == "continuous":
        vals = np.asarray(values, dtype=float)
        lo, hi = _limit(vmin, vals, "vmin"), _limit(vmax, vals, "vmax")
        finite = vals[np.isfinite(vals)]
        if lo is None:
            lo = float(finite.min()) if len(finite) else 0.0
        if hi is None:
            hi = float(finite.max()) if len(finite) else 1.0
        if hi <= lo:
            hi = lo + 1.0
        norm = mcolors.Normalize(vmin=lo, vmax=hi)
        cm = u.get_cmap(cmap)
        ok = np.isfinite(vals)
        rgba = np.tile(na_rgba, (n, 1))
        rgba[ok] = cm(norm(vals[ok]))
        nan_idx, fin_idx = np.flatnonzero(~ok), np.flatnonzero(ok)
        if sort:
            fin_idx = fin_idx[np.argsort(vals[fin_idx], kind="stable")]
        order = np.concatenate([nan_idx, fin_idx])
        mappable = ScalarMappable(norm=norm, cmap=cm)

    xo, ro = xy[order], rgba[order]
    if n > raster_threshold:
        art = RasterPoints(xo, ro, ptsize)
        ax.add_artist(art)
    elif n:
        art = ax.scatter(xo[:, 0], xo[:, 1], c=ro, s=ptsize, linewidths=0, rasterized=True, zorder=1)
        art.set_gid("cells")

    # limits with a small margin, no ticks, axis names
    if n:
        lo_xy, hi_xy = xy.min(axis=0), xy.max(axis=0)
        span = np.where(hi_xy - lo_xy > 0, hi_xy - lo_xy, 1.0)
        pad = 0.04 * span
        extent = (lo_xy[0] - pad[0], hi_xy[0] + pad[0], lo_xy[1] - pad[1], hi_xy[1] + pad[1])
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    else:
        extent = (0, 1, 0, 1)
        u.empty_note(ax, "no cells to draw")
    ax.set_xticks([])
    ax.set_yticks([])
    lab = u.basis_label(key)
    ax.set_xlabel(f"{lab}{c0 + 1}", fontsize=8)
    ax.set_ylabel(f"{lab}{c1 + 1}", fontsize=8)
    if not frameon:
        for s in ax.spines.values():
            s.set_visible(False)
    if title is None:
        title = color if color is not None else ""
    is_gene = color is not None and color not in adata.obs.columns
    ax.set_title(title, fontsize=9, fontstyle="italic" if is_gene else "normal")

    if kind == "categorical" and groups is not None and not present:
        u.empty_note(ax, f"no cells in groups {list(groups) if not isinstance(groups, str) else [groups]}")

    if contour_plot and n:
        if kind == "categorical":
            _draw_contours(ax, xy, codes, [pal[i] for i in range(len(cats))], extent,
                           levels=contour_levels, linewidth=contour_linewidth, bins=contour_bins,
                           smooth=contour_smooth, min_cells=contour_min_cells)
        else:
            _draw_contours(ax, xy, np.zeros(n, dtype=np.int64), ["#404040"], extent,
                           levels=contour_levels, linewidth=contour_linewidth, bins=contour_bins,
                           smooth=contour_smooth, min_cells=contour_min_cells)

    if kind == "categorical":
        fs = annotate_fontsize or 8
        on_data = legend and legend_loc == "on data"
        if (annotate and annotate_style not in (None, "none")) or on_data:
            style = annotate_style if annotate_style not in (None, "none") else "text"
            centres = _label_positions(xy, codes, len(cats), extent)
            label_texts = []
            for i in present:
                cx, cy = centres[i]
                kw = dict(ha="center", va="center", fontsize=fs, zorder=5, gid=f"label:{cats[i]}")
                if style == "label":
                    fg = "white" if _dark(pal[i]) else "black"
                    t = ax.text(cx, cy, str(cats[i]), color=fg, fontweight="bold",
                                bbox=dict(boxstyle="round,pad=0.2", fc=pal[i], ec="none", alpha=0.85), **kw)
                else:
                    t = ax.text(cx, cy, str(cats[i]), color=annotate_foreground, fontweight="bold", **kw)
                    t.set_path_effects([patheffects.withStroke(linewidth=2.0, foreground="white")])
                t.set_in_layout(False)  # a long label near the edge must not shrink the panel
                label_texts.append(t)
            if repel_labels and len(label_texts) > 1:
                ax.add_artist(LabelRepel(label_texts))
        if legend and not on_data and present:
            handles = [Line2D([], [], linestyle="", marker="o", markersize=5, markerfacecolor=pal[i],
                              markeredgewidth=0, label=str(cats[i])) for i in present]
            lf = legend_fontsize or 7
            if legend_loc == "right margin":
                ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=int(legend_col),
                          frameon=False, fontsize=lf, handletextpad=0.2, columnspacing=0.6, borderaxespad=0.2)
            else:
                ax.legend(handles=handles, loc=legend_loc, ncol=int(legend_col), frameon=False, fontsize=lf)
    elif kind == "continuous" and colorbar and mappable is not None:
        cax = ax.inset_axes([1.02, 0.05, 0.035, 0.4])
        cb = fig.colorbar(mappable, cax=cax)
        cb.ax.tick_params(labelsize=6, length=2, pad=1)
        cb.outline.set_linewidth(0.4)
        cax.set_gid("colorbar")
    return fig


def _dark(c) -> bool:
    r, g, b, _ = mcolors.to_rgba(c)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def plot_multiple_embedding(
    adata,
    basis: str = "umap",
    features=(),
    *,
    ncols: int = 4,
    figsize=None,
    dpi=100,
    layer: str | None = None,
    use_raw: bool = False,
    gene_symbols: str | None = None,
    **kwargs,
):
    """A grid of :func:`plot_embedding` panels, one per feature (obs columns and genes alike).

    Every feature is checked before anything is drawn; an unknown one raises an error naming it.
    Reads what :func:`plot_embedding` reads; writes nothing.

    Parameters
    ----------
    adata
        Annotated data with the embedding ``obsm[basis]``.
    basis
        Embedding name (``'umap'``, ``'X_umap'``, ``'pca'``, ...).
    features
        obs columns and genes, one panel each (a single string is accepted).
    ncols
        Panels per row.
    figsize, dpi
        Size of the figure (default 2.6 x 2.5 inches per panel) and its resolution.
    layer, use_raw, gene_symbols
        Where gene expression is read, as in :func:`plot_embedding`.
    **kwargs
        Passed to each :func:`plot_embedding` panel (``legend``, ``legend_col``,
        ``ptsize``, ``annotate_style``, ``sort``, ``contour_plot``, ``cmap``, ...; not
        ``ax`` or ``color``, which are set per panel).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(features, str):
        features = [features]
    features = list(features)
    if not features:
        raise ExprmatError("features is empty: pass a list of obs columns or genes, e.g. features=['leiden', 'CD3E'].")
    ncols = v.number(ncols, "ncols", minimum=1, integer=True)
    v.embedding(adata, basis)
    for f in features:  # validate all before drawing
        u.feature(adata, f, layer=layer, gene_symbols=gene_symbols, use_raw=use_raw)
    for bad in ("ax", "color"):
        if bad in kwargs:
            raise ExprmatError(f"{bad!r} is set per panel by plot_multiple_embedding; pass features=[...] instead.")
    nrows = int(math.ceil(len(features) / ncols))
    ncols_used = min(ncols, len(features))
    if figsize is None:
        figsize = (2.6 * ncols_used, 2.5 * nrows)
    fig = u.new_figure(figsize, dpi)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(nrows, ncols_used, squeeze=False)
    for i, f in enumerate(features):
        plot_embedding(adata, basis, color=f, ax=axes[i // ncols_used][i % ncols_used], layer=layer,
                       use_raw=use_raw, gene_symbols=gene_symbols, **kwargs)
    for j in range(len(features), nrows * ncols_used):
        axes[j // ncols_used][j % ncols_used].set_axis_off()
    return fig
