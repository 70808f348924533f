"""Consensus NMF figures: choice of k (stability and error) and clustered distance heatmaps of
cell usages and gene spectra (modules)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.cm import ScalarMappable
from matplotlib.patches import Patch

from .. import _validate as v
from ..errors import ExprmatError, MissingKeyError
from . import _utils as u

__all__ = [
    "plot_cnmf_distance_modules",
    "plot_cnmf_distance_usages",
    "plot_cnmf_silhouette",
    "plot_cnmf_silhoutte",
]

_EUCLIDEAN_ONLY = ("ward", "centroid", "median")
_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
_BOUNDED = ("cosine", "correlation", "jaccard", "braycurtis")


def _stats_frame(adata, key):
    name = f"{key}.stats"
    if name not in adata.uns:
        raise MissingKeyError(
            f"uns[{name!r}] not found: run em.consensus_nmf(adata, ks=[...], key_added={key!r}) first."
        )
    st = adata.uns[name]
    try:
        df = st if isinstance(st, pd.DataFrame) else pd.DataFrame(dict(st) if not isinstance(st, np.ndarray) else st)
    except Exception:  # noqa: BLE001
        raise ExprmatError(f"uns[{name!r}] is not a table with columns k, stability, error.") from None
    missing = [c for c in ("k", "stability", "error") if c not in df.columns]
    if missing:
        raise ExprmatError(f"uns[{name!r}] lacks columns {missing}; it should have k, stability and error.")
    return df.sort_values("k")


def plot_cnmf_silhouette(adata, key: str = "cnmf", *, figsize=(4, 2), dpi=100, ax=None):
    """Stability (silhouette of the consensus clustering) and reconstruction error against k.

    Reads ``uns['<key>.stats']`` (columns ``k``, ``stability``, ``error``) and marks the k
    already extracted (``obsm['<key>.<k>']``).  Writes nothing.

    Parameters
    ----------
    adata
        Annotated data holding a :func:`~exprmat_widgets.tl.consensus_nmf` result.
    key
        The ``key_added`` of that result.
    figsize, dpi, ax
        Size of a new figure, or an existing Axes to draw into.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes are the stability axes (left, blue) and a twin error axes (right, red).
    """
    df = _stats_frame(adata, key)
    fig, ax = u.figure_and_axes(ax, figsize, dpi)
    ks = df["k"].to_numpy()
    c1, c2 = "#1f5fa8", "#c0392b"
    ax.plot(ks, df["stability"].to_numpy(dtype=float), "o-", color=c1, ms=3.5, lw=1.2, label="stability")
    ax.set_xlabel("k (number of programs)", fontsize=8)
    ax.set_ylabel("stability", color=c1, fontsize=8)
    ax.tick_params(axis="y", colors=c1, labelsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xticks(ks)
    ax2 = ax.twinx()
    ax2.plot(ks, df["error"].to_numpy(dtype=float), "s--", color=c2, ms=3.0, lw=1.0, label="error")
    ax2.set_ylabel("error", color=c2, fontsize=8)
    ax2.tick_params(axis="y", colors=c2, labelsize=7)
    for k in ks:
        if f"{key}.{int(k)}" in adata.obsm:
            ax.axvline(k, color="0.6", lw=0.8, ls=":", zorder=0, gid=f"extracted:{int(k)}")
    for a in (ax, ax2):
        a.spines["top"].set_visible(False)
    ax.set_title("cNMF: choice of k", fontsize=9)
    return fig


#: the tutorial's spelling
plot_cnmf_silhoutte = plot_cnmf_silhouette


def _pick(n, downsample, random_state, max_items, what):
    if isinstance(downsample, bool) or not isinstance(downsample, numbers.Number) or not downsample > 0:
        raise ExprmatError(f"downsample must be a fraction in (0, 1] or a number of {what} > 1, got {downsample!r}.")
    m = int(round(n * downsample)) if downsample <= 1 else int(downsample)
    m = max(1, min(m, n))
    if max_items is not None and m > max_items:
        warnings.warn(f"drawing {max_items} of {n} {what} (a {m} x {m} distance matrix would be too large); "
                      "pass a smaller downsample or a larger max_items.", stacklevel=3)
        m = int(max_items)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)


def _annotation_tracks(adata, names, dim, idx, cmap_annotations):
    """[(label, kind, values, extra)] for annotation bars; dim is 'obs' or 'var'."""
    if names is None:
        return []
    names = [names] if isinstance(names, str) else list(names)
    tracks = []
    frame = adata.obs if dim == "obs" else adata.var
    multi = adata.obsm if dim == "obs" else adata.varm
    names_index = adata.obs_names if dim == "obs" else adata.var_names
    for name in names:
        if name in multi:
            m = multi[name]
            if isinstance(m, pd.DataFrame):
                cols = [str(c) for c in m.columns]
            else:
                cols = [str(i + 1) for i in range(m.shape[1])]
            arr = np.asarray(m, dtype=float)[idx]
            tracks.append((name, "matrix", arr, cols))
        elif name in frame.columns:
            col = frame[name]
            if col.dtype.kind in "iuf":
                tracks.append((name, "continuous", col.to_numpy(dtype=float)[idx], None))
            else:
                cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype(str).astype("category")
                cats = list(cat.cat.categories)
                stored = u.category_colors(adata, name, cats) if dim == "obs" else {}
                if dim == "obs" and (cmap_annotations is None or f"{name}_colors" in adata.uns):
                    pal = stored
                else:
                    pal = dict(zip(cats, u.palette_from_cmap(cmap_annotations or "tab20", len(cats))))
                tracks.append((name, "categorical", np.asarray(cat.cat.codes)[idx], (cats, pal)))
        else:
            where = "obsm or obs" if dim == "obs" else "varm or var"
            raise MissingKeyError(
                f"annotation {name!r} not found in adata.{where} "
                f"(have: {sorted(multi.keys())} and {len(frame.columns)} {dim} columns)."
            )
    del names_index
    return tracks


def _clustered_heatmap(
    adata, data, labels, *, metrics, method, cmap, tracks, cmap_annotations, legend_cols, figsize, dpi,
    title, similarity, item_name, names,
):
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import pdist, squareform

    if method not in _METHODS:
        raise ExprmatError(f"method must be one of {list(_METHODS)}, got {method!r}.")
    if method in _EUCLIDEAN_ONLY and metrics != "euclidean":
        raise ExprmatError(f"method={method!r} needs metrics='euclidean' (got {metrics!r}); "
                           "use 'complete' or 'average'.")
    n = data.shape[0]
    fig = u.new_figure(figsize, dpi)
    if n < 2:
        ax = fig.add_subplot(1, 1, 1)
        u.empty_note(ax, f"fewer than 2 {item_name} to cluster")
        return fig
    try:
        with np.errstate(all="ignore"):
            d = pdist(data, metric=metrics)
    except ValueError as e:
        raise ExprmatError(f"metrics={metrics!r} is not a distance scipy knows ({e}); "
                           "use e.g. 'cosine' or 'euclidean'.") from None
    d = np.nan_to_num(d, nan=np.nanmax(d) if np.isfinite(d).any() else 1.0)
    Z = linkage(d, method=method, optimal_ordering=n <= 1500)
    order = dendrogram(Z, no_plot=True)["leaves"]
    D = squareform(d)[np.ix_(order, order)]
    if similarity is None:
        similarity = metrics in _BOUNDED
    M = 1.0 - D if similarity else D
    vlabel = f"1 - {metrics} distance" if similarity else f"{metrics} distance"

    n_track_cols = sum(t[2].shape[1] if t[1] == "matrix" else 1 for t in tracks)
    W, H = fig.get_size_inches()
    dw = 0.35  # dendrogram width (in)
    side = 1.45  # legend / colour bar column (in)
    tw = 0.11 * n_track_cols
    heat_w = max(W - dw - tw - side - 0.25, 0.8)
    heat_h = max(H - dw - 0.55, 0.8)
    gs = fig.add_gridspec(
        2, 4, width_ratios=[dw, heat_w, max(tw, 1e-3), side], height_ratios=[dw, heat_h],
        wspace=0.02, hspace=0.02, left=0.02, right=0.98, top=0.9, bottom=0.08 if not n_track_cols else 0.14,
    )
    axd_left = fig.add_subplot(gs[1, 0])
    axd_top = fig.add_subplot(gs[0, 1])
    axh = fig.add_subplot(gs[1, 1])
    dendrogram(Z, ax=axd_left, orientation="left", no_labels=True, color_threshold=0,
               above_threshold_color="0.25")
    axd_left.invert_yaxis()
    dendrogram(Z, ax=axd_top, orientation="top", no_labels=True, color_threshold=0,
               above_threshold_color="0.25")
    for a in (axd_left, axd_top):
        a.set_axis_off()
        for coll in a.collections:
            coll.set_linewidth(0.4)
    axd_left.set_gid("dendrogram-rows")
    axd_top.set_gid("dendrogram-cols")
    cm = u.get_cmap(cmap, default="Reds")
    im = axh.imshow(M, aspect="auto", cmap=cm, interpolation="antialiased" if n > 400 else "nearest")
    im.set_gid("heatmap")
    axh.set_xticks([])
    axh.set_yticks([])
    if labels is not None and n <= 60:
        lab = [str(labels[i]) for i in order]
        axh.set_yticks(range(n))
        axh.set_yticklabels(lab, fontsize=5)
        axh.yaxis.tick_right()
    axh.set_xlabel(f"{n} {item_name}", fontsize=8)
    axd_top.set_title(title, fontsize=9)
    fig.heatmap_items = [str(names[i]) for i in order]  # what each heatmap row is, top to bottom

    # annotation bars
    side_gs = gs[:, 3].subgridspec(3, 1, height_ratios=[1, 1, 1.6], hspace=0.6)
    cax = fig.add_subplot(side_gs[0])
    cax.set_gid("colorbar-heatmap")
    _small_colorbar(fig, ScalarMappable(norm=im.norm, cmap=cm), cax, vlabel)
    if n_track_cols:
        axa = fig.add_subplot(gs[1, 2])
        axa.set_gid("annotations")
        col_labels, cont_norm, cont_cmap = [], None, None
        blocks = []
        legends = []
        for name, kind, vals, extra in tracks:
            vals = vals[order]
            if kind == "matrix":
                acm = u.get_cmap(cmap_annotations, default="viridis")
                lo, hi = np.nanmin(vals), np.nanmax(vals)
                if lo < 0 < hi and _diverging(acm):
                    m = max(-lo, hi)
                    norm = mcolors.Normalize(-m, m)
                else:
                    norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1)
                blocks.append(acm(norm(vals)))
                col_labels += list(extra)
                cont_norm, cont_cmap, cont_name = norm, acm, name
            elif kind == "continuous":
                acm = u.get_cmap(cmap_annotations, default="viridis")
                lo, hi = np.nanmin(vals), np.nanmax(vals)
                norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1)
                blocks.append(acm(norm(vals))[:, None, :])
                col_labels.append(name)
                cont_norm, cont_cmap, cont_name = norm, acm, name
            else:
                cats, pal = extra
                table = np.array([mcolors.to_rgba(pal[c]) for c in cats] + [(0.9, 0.9, 0.9, 1)])
                blocks.append(table[np.where(vals >= 0, vals, len(cats))][:, None, :])
                col_labels.append(name)
                present = sorted({int(x) for x in vals if x >= 0})
                legends.append((name, [(cats[i], pal[cats[i]]) for i in present]))
        img = np.concatenate(blocks, axis=1)
        axa.imshow(img, aspect="auto", interpolation="nearest")
        axa.set_yticks([])
        axa.set_xticks(range(len(col_labels)))
        axa.set_xticklabels(col_labels, fontsize=5, rotation=90)
        axa.tick_params(length=0, pad=1)
        for s in axa.spines.values():
            s.set_linewidth(0.4)
        if cont_norm is not None:
            cax2 = fig.add_subplot(side_gs[1])
            cax2.set_gid("colorbar-annotations")
            _small_colorbar(fig, ScalarMappable(norm=cont_norm, cmap=cont_cmap), cax2, cont_name)
        if legends:
            lax = fig.add_subplot(side_gs[2])
            lax.set_axis_off()
            handles = []
            for _name, items in legends:
                handles += [Patch(facecolor=c, edgecolor="none", label=str(lbl)) for lbl, c in items]
            lax.legend(handles=handles, loc="upper left", ncol=int(legend_cols), fontsize=6, frameon=False,
                       title=", ".join(t[0] for t in legends), title_fontsize=6, handlelength=1,
                       handleheight=1, borderaxespad=0, columnspacing=0.6)
    return fig


def _diverging(cm) -> bool:
    name = getattr(cm, "name", "").lower().removesuffix("_r")
    return name in ("seismic", "bwr", "coolwarm", "rdbu", "rdylbu", "piyg", "prgn", "brbg", "puor", "rdgy",
                    "spectral", "rdylgn", "icefire", "vlag")


def _small_colorbar(fig, mappable, cax, label):
    pos = cax.get_position()
    cax.set_position([pos.x0, pos.y0, pos.width * 0.12, pos.height])
    cb = fig.colorbar(mappable, cax=cax)
    cb.ax.tick_params(labelsize=6, length=2, pad=1)
    cb.outline.set_linewidth(0.4)
    cb.set_label(label, fontsize=6)
    return cb


def _usage_matrix(adata, key, k, slot):
    name = f"{key}.{k}"
    store = adata.obsm if slot == "obsm" else adata.varm
    if name not in store:
        raise MissingKeyError(
            f"{slot}[{name!r}] not found: run em.consensus_nmf_extract_k(adata, k={k}, key={key!r}) first "
            f"(have: {sorted(store.keys())})."
        )
    return np.asarray(store[name], dtype=float)


def plot_cnmf_distance_usages(
    adata,
    k: int,
    key: str = "cnmf",
    *,
    downsample: float = 0.1,
    method: str = "complete",
    metrics: str = "cosine",
    cmap="Reds",
    annotations=None,
    cmap_annotations="turbo",
    legend_cols: int = 1,
    similarity: bool | None = None,
    max_items: int | None = 3000,
    random_state: int = 0,
    figsize=(7, 3.3),
    dpi=100,
):
    """Clustered heatmap of cell-cell distances between cNMF usage vectors.

    Cells are sampled (``downsample``: fraction in (0, 1] or a number of cells), their usages
    ``obsm['<key>.<k>']`` compared with ``metrics`` (scipy names), ordered by hierarchical
    clustering (``method``) with dendrograms on the left and top.  For bounded metrics (cosine,
    correlation) the heatmap shows the similarity ``1 - distance`` (``similarity=False`` to show
    the distance).  ``annotations`` (obsm keys such as ``'cnmf.10'`` drawn as one bar per column,
    or obs columns) are drawn as bars beside the heatmap with ``cmap_annotations``; categorical
    ones get a legend in ``legend_cols`` columns.  Writes nothing.

    Parameters
    ----------
    adata
        Annotated data with the usages ``obsm['<key>.<k>']`` of
        :func:`~exprmat_widgets.tl.consensus_nmf_extract_k`.
    k
        Number of programs of the extracted result.
    key
        The ``key`` the result was extracted from (``obsm['<key>.<k>']``).
    downsample
        Fraction of the cells in (0, 1], or a number of cells (> 1), drawn at random.
    method
        Linkage method of :func:`scipy.cluster.hierarchy.linkage` (``'complete'``,
        ``'average'``, ...; ``'ward'``, ``'centroid'``, ``'median'`` need euclidean).
    metrics
        Distance of :func:`scipy.spatial.distance.pdist`, e.g. ``'cosine'``.
    cmap
        Colour map of the heatmap (matplotlib or d3 names).
    annotations
        obsm keys (one bar per column) or obs columns drawn beside the heatmap.
    cmap_annotations
        Colour map of the annotation bars.
    legend_cols
        Columns of the legend of categorical annotations.
    similarity
        Show ``1 - distance``; ``None``: for bounded metrics (cosine, correlation) only.
    max_items
        At most this many cells are drawn (a random subset, with a warning);
        ``None``: no limit.
    random_state
        Seed of the sampling.
    figsize, dpi
        Size and resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    k = v.number(k, "k", minimum=1, integer=True)
    data = _usage_matrix(adata, key, k, "obsm")
    idx = _pick(data.shape[0], downsample, random_state, max_items, "cells")
    tracks = _annotation_tracks(adata, annotations, "obs", idx, cmap_annotations)
    return _clustered_heatmap(
        adata, data[idx], None, metrics=metrics, method=method, cmap=cmap, tracks=tracks,
        cmap_annotations=cmap_annotations, legend_cols=legend_cols, figsize=figsize, dpi=dpi,
        title=f"cNMF usages, k = {k}", similarity=similarity, item_name="cells",
        names=adata.obs_names.to_numpy()[idx],
    )


def plot_cnmf_distance_modules(
    adata,
    k: int,
    key: str = "cnmf",
    *,
    downsample: float = 1,
    method: str = "complete",
    metrics: str = "cosine",
    cmap="Reds",
    annotations=None,
    cmap_annotations="seismic",
    legend_cols: int = 1,
    similarity: bool | None = None,
    max_items: int | None = 3000,
    gene_symbols: str | None = None,
    random_state: int = 0,
    figsize=(5, 3),
    dpi=100,
):
    """Clustered heatmap of gene-gene distances between cNMF gene spectra (modules).

    Genes are the rows of ``varm['<key>.<k>']`` with a non-zero spectrum (others cannot be
    compared), sampled by ``downsample``; beyond ``max_items`` genes the most program-specific
    ones are kept (highest value in ``varm['<key>.coef.<k>']``), with a warning.
    ``annotations`` (varm keys such as ``'cnmf.coef.10'``: one bar per program, a diverging
    ``cmap_annotations`` centred at 0; or var columns) are drawn beside the heatmap.  Otherwise as
    :func:`plot_cnmf_distance_usages`.  Writes nothing.

    Parameters
    ----------
    adata
        Annotated data with the spectra ``varm['<key>.<k>']`` of
        :func:`~exprmat_widgets.tl.consensus_nmf_extract_k`.
    k
        Number of programs of the extracted result.
    key
        The ``key`` the result was extracted from (``varm['<key>.<k>']``).
    downsample
        Fraction of the genes in (0, 1], or a number of genes (> 1), drawn at random.
    annotations
        varm keys (one bar per program) or var columns drawn beside the heatmap.
    cmap_annotations
        Colour map of the annotation bars (diverging maps are centred at 0).
    max_items
        At most this many genes are drawn: the most program-specific ones (highest
        ``varm['<key>.coef.<k>']``, else spectrum share), with a warning; ``None``: no limit.
    gene_symbols
        ``var`` column of gene symbols used as row labels.
    method, metrics, cmap, legend_cols, similarity, random_state, figsize, dpi
        As in :func:`plot_cnmf_distance_usages`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    k = v.number(k, "k", minimum=1, integer=True)
    data = _usage_matrix(adata, key, k, "varm")
    ok = np.flatnonzero(np.isfinite(data).all(axis=1) & (np.abs(data).sum(axis=1) > 0))
    sub = _pick(len(ok), downsample, random_state, None, "genes")
    idx = ok[sub]
    if max_items is not None and len(idx) > max_items:
        # keep the most program-specific genes: highest coefficient (or spectrum share) in any program
        coef = f"{key}.coef.{k}"
        if coef in adata.varm:
            score = np.nan_to_num(np.asarray(adata.varm[coef], dtype=float)[idx]).max(axis=1)
        else:
            d = data[idx]
            score = (d / d.sum(axis=1, keepdims=True)).max(axis=1)
        keep = np.sort(np.argsort(-score, kind="stable")[: int(max_items)])
        warnings.warn(f"drawing the {int(max_items)} most program-specific of {len(idx)} genes (highest "
                      f"{'varm[' + repr(coef) + ']' if coef in adata.varm else 'spectrum share'}); pass "
                      "a smaller downsample or a larger max_items.", stacklevel=2)
        idx = idx[keep]
    tracks = _annotation_tracks(adata, annotations, "var", idx, cmap_annotations)
    labels = adata.var_names.to_numpy()[idx] if gene_symbols is None else \
        adata.var[u.symbol_column(adata, gene_symbols)].astype(str).to_numpy()[idx]
    return _clustered_heatmap(
        adata, data[idx], labels, metrics=metrics, method=method, cmap=cmap, tracks=tracks,
        cmap_annotations=cmap_annotations, legend_cols=legend_cols, figsize=figsize, dpi=dpi,
        title=f"cNMF gene modules, k = {k}", similarity=similarity, item_name="genes",
        names=adata.var_names.to_numpy()[idx],
    )
