"""Marker gene figures (dot plot, matrix plot, stacked violins, tracks) from a filtered marker
table; drawing is done by scanpy's plotting, on a light copy so ``adata`` is never changed."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ExprmatError, MissingKeyError
from ..tl.marker_summary import binned_density
from . import _utils as u

__all__ = ["plot_markers"]

PLOT_TYPES = ("dotplot", "matrixplot", "stacked_violin", "tracksplot")


def _marker_table(adata, key, **filters):
    from ..tl.marker_filter import filter_markers  # the one marker filter (core routine)

    return filter_markers(adata, key=key, **filters)


def _first_axes(obj):
    from matplotlib.axes import Axes

    if isinstance(obj, Axes):
        return obj
    for val in (obj.values() if isinstance(obj, dict) else obj):
        try:
            return _first_axes(val)
        except TypeError:
            continue
    raise TypeError("no Axes")


def plot_markers(
    adata,
    groupby: str | None = None,
    n_genes: int | None = 5,
    *,
    key: str = "markers",
    plot_type: str = "dotplot",
    min_logfoldchange: float | None = None,
    max_logfoldchange: float | None = None,
    max_p_adjust: float | None = None,
    min_pct: float | None = None,
    max_pct_reference: float | None = None,
    gene_symbols: str | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    cmap=None,
    standard_scale: str | None = None,
    figsize=None,
    dpi=100,
    **kwargs,
):
    """Top marker genes of each group as a dot plot, matrix plot, stacked violins or tracks.

    The genes are the filtered marker table (``em.filter_markers`` with ``n_genes``,
    ``min_logfoldchange``, ``max_logfoldchange``, ``max_p_adjust``, ``min_pct``,
    ``max_pct_reference``), grouped by the group they mark; groups left without a gene are
    named in a note under the figure, and a filter that leaves no gene at all is an error.
    Gene labels are ``var[gene_symbols]`` when given (default: the ``gene_symbol`` recorded by
    ``em.markers``).  ``groupby`` defaults to the grouping of the markers; another obs column
    shows the same genes across its groups.  Expression comes from the layer / raw
    the markers were computed on (``uns[key]['params']``) unless ``layer`` / ``use_raw`` say
    otherwise.  Drawing is scanpy's (``scanpy.pl.dotplot`` etc.); other keyword arguments go to it.

    Reads ``uns[key]``, ``obs[groupby]``, ``uns['<groupby>_colors']`` and expression; writes
    nothing.

    Parameters
    ----------
    adata
        Annotated data holding the marker result ``uns[key]``.
    groupby
        obs column whose groups are the rows; default the ``groupby`` of the markers.
    n_genes
        Top genes per group after the filters (``None``: all that pass).
    key
        ``uns`` key of the result of :func:`~exprmat_widgets.tl.markers`.
    plot_type
        ``'dotplot'``, ``'matrixplot'``, ``'stacked_violin'`` or ``'tracksplot'``.
    min_logfoldchange, max_logfoldchange, max_p_adjust, min_pct, max_pct_reference
        Filters of :func:`~exprmat_widgets.tl.filter_markers`.
    gene_symbols
        ``var`` column of gene symbols used as gene labels.
    layer
        Read expression from this layer (default: the one the markers were computed on).
    use_raw
        Read expression from ``adata.raw`` (``None``: as the markers were computed).
    cmap
        Colour map (matplotlib or d3 names).
    standard_scale
        ``'var'`` or ``'group'``: scale each gene or group to [0, 1], as in scanpy.
    figsize, dpi
        Size and resolution of the figure.
    **kwargs
        Passed to scanpy's plotting function (``scanpy.pl.dotplot`` etc.; not used by
        ``'stacked_violin'``, which is drawn here).

    Returns
    -------
    matplotlib.figure.Figure
        The marker table used is ``fig.marker_table``.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    if plot_type not in PLOT_TYPES:
        raise ExprmatError(f"plot_type must be one of {list(PLOT_TYPES)}, got {plot_type!r}.")
    if key not in adata.uns or "names" not in adata.uns[key]:
        raise MissingKeyError(f"marker results uns[{key!r}] not found: run "
                              f"em.markers(adata, groupby=..., key_added={key!r}) first.")
    params = dict(adata.uns[key].get("params", {}))
    groupby = groupby or params.get("groupby")
    if groupby is None or groupby not in adata.obs.columns:
        raise MissingKeyError(f"groupby {groupby!r} is not an obs column (have: {list(adata.obs.columns)}).")
    if n_genes is not None and (isinstance(n_genes, bool) or int(n_genes) != n_genes or n_genes < 1):
        raise ExprmatError(f"n_genes must be a positive integer or None, got {n_genes!r}.")
    if gene_symbols is None and params.get("gene_symbol") in adata.var.columns:
        gene_symbols = params["gene_symbol"]  # the symbols recorded by em.markers
    gene_symbols = u.symbol_column(adata, gene_symbols)

    table = _marker_table(
        adata, key, groupby=None, n_genes=n_genes, min_logfoldchange=min_logfoldchange,
        max_logfoldchange=max_logfoldchange, max_p_adjust=max_p_adjust, min_pct=min_pct,
        max_pct_reference=max_pct_reference, gene_symbols=gene_symbols,
    )
    all_groups = [str(g) for g in adata.uns[key]["names"].dtype.names]
    if len(table) == 0:
        used = {k: val for k, val in dict(min_logfoldchange=min_logfoldchange, max_logfoldchange=max_logfoldchange,
                                          max_p_adjust=max_p_adjust, min_pct=min_pct,
                                          max_pct_reference=max_pct_reference).items() if val is not None}
        raise ExprmatError(
            f"no marker gene of uns[{key!r}] passes the filters {used}; relax them "
            "(e.g. a lower min_logfoldchange or min_pct, a higher max_p_adjust or max_pct_reference)."
        )

    # expression source: what the markers were computed on, unless told otherwise
    if layer is None:
        layer = params.get("layer")
    if layer == "X":
        layer = None
    if use_raw is None:
        use_raw = bool(params.get("use_raw", False)) and adata.raw is not None and layer is None
    if layer is not None and layer not in adata.layers:
        raise MissingKeyError(f"layer {layer!r} not found (have: {list(adata.layers.keys())}).")

    # cells and groups present
    col = adata.obs[groupby]
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype(str).astype("category")
    counts = cat.value_counts()
    empty_groups = [str(c) for c in cat.cat.categories if counts.get(c, 0) == 0]
    if groupby == params.get("groupby", groupby):  # marker groups whose cells are gone
        have = {str(c) for c in cat.cat.categories}
        empty_groups += [g for g in all_groups if g not in have]
    cat_present = cat.cat.remove_unused_categories()

    genes = list(dict.fromkeys(table["names"].astype(str)))
    src = adata.raw if use_raw else adata
    missing = [g for g in genes if g not in src.var_names]
    if missing:
        raise MissingKeyError(f"marker genes {missing[:5]} of uns[{key!r}] are not in the data any more; "
                              "recompute markers.")
    jj = src.var_names.get_indexer(genes)
    mat = src.X if (use_raw or layer is None) else adata.layers[layer]
    sub = mat[:, jj]
    sub = sub.tocsr() if sp.issparse(sub) else np.asarray(sub)
    if gene_symbols is not None:
        sym = adata.var[gene_symbols].astype(str)
        labels = [sym.get(g, g) if g in sym.index else g for g in genes]
    else:
        labels = genes
    light = ad.AnnData(X=sub, obs=pd.DataFrame({groupby: cat_present.values}, index=adata.obs_names))
    light.var_names = pd.Index(labels).astype(str)
    light.var_names_make_unique("-")
    label_of = dict(zip(genes, light.var_names))
    cats = list(cat_present.cat.categories)
    light.uns[f"{groupby}_colors"] = [u.category_colors(adata, groupby, list(cat.cat.categories))[c] for c in cats]

    var_names: dict[str, list[str]] = {}
    for g, names in table.groupby("group", sort=False, observed=True)["names"]:
        lst = [label_of[str(x)] for x in names]
        if lst:
            var_names[str(g)] = lst
    order = [g for g in all_groups if g in var_names] + [g for g in var_names if g not in all_groups]
    var_names = {g: var_names[g] for g in order}
    no_markers = [g for g in all_groups if g not in var_names]

    kw = dict(kwargs)
    if cmap is not None:
        kw["cmap"] = u.get_cmap(cmap)
    if standard_scale is not None:
        kw["standard_scale"] = standard_scale
    with plt.rc_context({"figure.dpi": dpi} if dpi else {}):
        if plot_type == "tracksplot":
            axes = sc.pl.tracksplot(light, var_names, groupby, figsize=figsize, show=False, **kw)
            fig = _first_axes(axes).figure
        elif plot_type == "stacked_violin":
            fig = _stacked_violin(light, var_names, groupby, figsize=figsize, cmap=kw.get("cmap"))
        else:
            fn = {"dotplot": sc.pl.dotplot, "matrixplot": sc.pl.matrixplot}[plot_type]
            obj = fn(light, var_names, groupby, figsize=figsize, show=False, return_fig=True, **kw)
            axes = obj.get_axes()
            fig = axes["mainplot_ax"].figure
    if dpi:
        fig.set_dpi(dpi)
    notes = []
    if no_markers:
        notes.append(f"no marker passing the filters for: {', '.join(no_markers)}")
    if empty_groups:
        notes.append(f"no cells in: {', '.join(empty_groups)}")
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=7, color="0.35", ha="left", va="bottom",
                 gid="markers-note")
    fig.marker_table = table
    fig.marker_groups = var_names
    return fig


def _stacked_violin(light, var_names, groupby, *, figsize=None, cmap=None, bins=64):
    """Violins of each marker gene (columns) in each group (rows), drawn from binned, smoothed
    histograms (one numpy pass per gene, so fast at any number of cells or violins); each
    violin is filled by the group's mean expression scaled to the gene's range over groups."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    cols = [(g, gene) for g, genes in var_names.items() for gene in genes]
    cat = light.obs[groupby]
    groups = list(cat.cat.categories)
    codes = np.asarray(cat.cat.codes)
    gcol = dict(zip(groups, light.uns.get(f"{groupby}_colors", u.palette_from_cmap("tab20", len(groups)))))
    X = light.X
    cm = u.get_cmap(cmap, default="Reds")
    n_rows, n_cols = len(groups), len(cols)
    if figsize is None:
        figsize = (0.35 * n_cols + 2.5, 0.3 * n_rows + 1.8)
    fig = plt.figure(figsize=figsize)
    # fixed grid (like scanpy's marker plots): long labels may reach past the figure edge and
    # are kept by bbox_inches='tight' (the notebook default)
    fw = fig.get_size_inches()[0] * (0.9 - 0.18)
    gs = fig.add_gridspec(2, 3, height_ratios=[0.12, 1], width_ratios=[0.12, max(fw - 0.4, 0.5), 0.12],
                          left=0.18, right=0.9, bottom=0.08, top=0.9, wspace=0.02, hspace=0.04)
    axb = fig.add_subplot(gs[0, 1])
    ax = fig.add_subplot(gs[1, 1])
    ax.set_gid("mainplot")
    axg = fig.add_subplot(gs[1, 0])
    cax = fig.add_subplot(gs[1, 2])
    axg.set_gid("group-colors")
    polys, faces = [], []
    ygrid = np.linspace(0, 1, bins)
    half = 0.42
    for j, (_, gene) in enumerate(cols):
        v = X[:, light.var_names.get_loc(gene)]
        v = np.asarray(v.toarray() if sp.issparse(v) else v, dtype=float).ravel()
        lo, hi = float(np.nanmin(v)) if len(v) else 0.0, float(np.nanmax(v)) if len(v) else 1.0
        if hi <= lo:
            hi = lo + 1.0
        means = np.array([v[codes == i].mean() if (codes == i).any() else np.nan for i in range(n_rows)])
        mlo, mhi = np.nanmin(means), np.nanmax(means)
        scaled = (means - mlo) / (mhi - mlo) if mhi > mlo else np.zeros_like(means)
        for i in range(n_rows):
            d = binned_density(v[codes == i], lo, hi, bins, sigma=2.0)
            if not d.any():
                continue
            nz = np.flatnonzero(d > 1e-3)
            sl = slice(nz[0], nz[-1] + 1)  # the violin spans the group's own range
            y = (i + 0.45 - 0.9 * ygrid)[sl]
            w = half * d[sl]
            xs = np.concatenate([j - w, (j + w)[::-1]])
            ys = np.concatenate([y, y[::-1]])
            polys.append(np.column_stack([xs, ys]))
            faces.append(cm(scaled[i]))
    pc = PolyCollection(polys, facecolors=faces, edgecolors="0.25", linewidths=0.3)
    pc.set_gid("violins")
    ax.add_collection(pc)
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels([gene for _, gene in cols], rotation=90, fontsize=7)
    ax.set_yticks([])
    from matplotlib.colors import to_rgba

    axg.imshow(np.array([[to_rgba(gcol.get(g, "white"))] for g in groups]), aspect="auto",
               extent=(0, 1, n_rows - 0.5, -0.5), interpolation="nearest")
    axg.set_xticks([])
    axg.set_ylim(n_rows - 0.5, -0.5)
    axg.set_yticks(range(n_rows))
    axg.set_yticklabels(groups, fontsize=7)
    axg.tick_params(length=0, pad=2)
    for sp_ in axg.spines.values():
        sp_.set_visible(False)
    for i in range(1, n_rows):
        ax.axhline(i - 0.5, color="0.85", lw=0.4, zorder=0)
    ax.tick_params(length=0, pad=2)
    # brackets naming the group each block of genes marks
    axb.set_axis_off()
    axb.set_ylim(0, 1)
    axb.set_xlim(-0.6, n_cols - 0.4)
    start = 0
    for g, genes in var_names.items():
        end = start + len(genes) - 1
        axb.plot([start - 0.35, start - 0.35, end + 0.35, end + 0.35], [0.05, 0.3, 0.3, 0.05], color="black", lw=0.8)
        axb.text((start + end) / 2, 0.38, g, rotation=90 if max(len(str(x)) for x in var_names) > 3 * len(genes) else 0,
                 ha="center", va="bottom", fontsize=7, gid=f"bracket:{g}")
        if start > 0:
            ax.axvline(start - 0.5, color="0.7", lw=0.5, zorder=0)
        start = end + 1
    cb = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cm), cax=cax)
    cb.set_label("mean in group\n(scaled per gene)", fontsize=6)
    cb.ax.tick_params(labelsize=6, length=2)
    cb.outline.set_linewidth(0.4)
    return fig
