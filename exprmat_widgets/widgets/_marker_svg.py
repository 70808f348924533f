"""SVG drawings of the marker panel's four views (dot plot, matrix plot, stacked violin,
tracks plot), built from numbers the core computes
(:mod:`exprmat_widgets.tl.marker_summary`): this module only lays them out.

Texts and lines take JupyterLab's theme colours through CSS classes (``marker_view.css``);
every mark naming a gene carries ``data-gene`` (a click colours the UMAP by it) and every
per-group mark ``data-group``.  Numbers are written with one decimal, so a view of 40 genes
stays a few tens of kB in the widget state.
"""

from __future__ import annotations

import html

import numpy as np

__all__ = ["dot_plot_svg", "matrix_plot_svg", "stacked_violin_svg", "tracks_plot_svg"]

EMPTY = '<div class="em-marker-empty">no marker genes pass the filters</div>'
esc = html.escape


def _viridis(values: np.ndarray) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["viridis"]
    return [to_hex(cmap(float(v))) for v in values]


def dot_plot_svg(genes: list, groups: list, mean: np.ndarray, frac: np.ndarray, *, title: str = "",
                 uid: str = "0") -> str:
    """An SVG dot plot: genes (columns) x groups (rows); dot area grows with ``frac``
    (fraction of cells expressing), colour is ``mean`` on viridis from its minimum to its
    maximum.  Every dot and gene label carries ``data-gene``."""
    if not genes or not groups:
        return EMPTY
    cell = 18
    # the legends are drawn above the dots: visible however many genes scroll by
    left, top, width, height = _frame(genes, groups, cell, cell)
    plot_w, plot_h = cell * len(genes), cell * len(groups)
    lo, hi, colours = _scaled_colours(mean)
    out = [_svg_open(width, height, title, "em-dotplot-svg")]
    sx = _gradient_legend(out, lo, hi, "mean", uid)
    out.append(f'<text class="em-svg-muted" x="{sx}" y="16">% cells</text>')
    sx += 44
    for f in (0.25, 0.5, 1.0):
        rad = 1.5 + 6.5 * np.sqrt(f)
        out.append(f'<circle class="em-legend-dot" cx="{sx + rad}" cy="12" r="{rad:.2f}"/>')
        out.append(f'<text class="em-svg-muted" x="{sx + 2 * rad + 3}" y="16">{int(100 * f)}</text>')
        sx += 2 * rad + 26
    for r in range(len(groups)):
        y = top + cell * r + cell / 2
        out.append(f'<line class="em-svg-grid" x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}"/>')
    for c in range(len(genes)):
        x = left + cell * c + cell / 2
        out.append(f'<line class="em-svg-grid" x1="{x}" x2="{x}" y1="{top}" y2="{top + plot_h}"/>')
    _grid_labels(out, genes, groups, left, top, cell, cell)
    for r, grp in enumerate(groups):
        y = top + cell * r + cell / 2
        for c, gene in enumerate(genes):
            x = left + cell * c + cell / 2
            f, m = float(frac[r, c]), float(mean[r, c])
            g = esc(str(gene))
            radius = 1.5 + 6.5 * np.sqrt(f)
            out.append(f'<circle class="em-dot" data-gene="{g}" data-group="{esc(str(grp))}" cx="{x}" cy="{y}" '
                       f'r="{radius:.1f}" fill="{colours[r, c]}">'
                       f"<title>{g}, {esc(str(grp))}: {100 * f:.0f}%, mean {m:.2f}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def _svg_open(width, height, title, cls, fit: bool = False):
    # fit: shrink to the panel's width (the tracks' width is the plot's, not the genes')
    style = ' style="max-width:100%;height:auto"' if fit else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"{style} role="img" aria-label="{esc(title)}">')


def _gradient_legend(out, lo, hi, label, uid, x=4.0):
    """A viridis bar from ``lo`` to ``hi`` at the top left; returns the x after it."""
    gid = f"em-viridis-{esc(uid)}"
    stops = "".join(f'<stop offset="{t:.2f}" stop-color="{c}"/>'
                    for t, c in zip(np.linspace(0, 1, 6), _viridis(np.linspace(0, 1, 6))))
    out.append(f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="1" y2="0">{stops}</linearGradient></defs>')
    text = f"{label} {lo:.2f}"
    out.append(f'<text class="em-svg-muted" x="{x}" y="16">{esc(text)}</text>')
    lx = x + 6 * len(text) + 4
    out.append(f'<rect x="{lx}" y="7" width="60" height="10" fill="url(#{gid})"/>')
    out.append(f'<text class="em-svg-muted" x="{lx + 64}" y="16">{hi:.2f}</text>')
    return lx + 64 + 6 * len(f"{hi:.2f}") + 16


def _scaled_colours(values):
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    span = hi - lo if hi > lo else 1.0
    t = np.clip(np.nan_to_num((values - lo) / span), 0, 1)
    return lo, hi, np.asarray(_viridis(t.ravel())).reshape(values.shape)


def _grid_labels(out, genes, groups, left, top, col_w, row_h):
    """Group names left of the rows, gene names under the columns (rotated)."""
    plot_h = row_h * len(groups)
    for r, grp in enumerate(groups):
        y = top + row_h * r + row_h / 2
        out.append(f'<text class="em-svg-text em-group-label" data-group="{esc(str(grp))}" x="{left - 6}" '
                   f'y="{y + 4}" text-anchor="end">{esc(str(grp))}</text>')
    for c, gene in enumerate(genes):
        x = left + col_w * c + col_w / 2
        g = esc(str(gene))
        ly = top + plot_h + 8
        out.append(f'<text class="em-svg-text em-gene-label" data-gene="{g}" x="{x + 3}" y="{ly}" '
                   f'text-anchor="end" transform="rotate(-55 {x + 3} {ly})">{g}</text>')


def _num(v: float) -> str:
    t = f"{v:.1f}"
    t = t[:-2] if t.endswith(".0") else t
    if t == "-0":
        return "0"
    return t.replace("0.", ".", 1) if t.startswith(("0.", "-0.")) else t


def _relative_path(xs, ys) -> str:
    """A closed path through the points, in relative steps between the points rounded to
    0.1 px (small numbers: a violin costs about half the characters of absolute points)."""
    rx, ry = np.round(np.asarray(xs, float), 1), np.round(np.asarray(ys, float), 1)
    steps = " ".join(f"{_num(a)} {_num(b)}" for a, b in zip(np.diff(rx), np.diff(ry)))
    return f"M{_num(rx[0])} {_num(ry[0])}l{steps}z"


def _frame(genes, groups, col_w, row_h, top=34):
    left = 12 + 7 * max(len(str(g)) for g in groups)
    # rotated labels reach about 0.85 x their length below the plot (6.5 px a character)
    label_h = 14 + int(5.6 * max(len(str(g)) for g in genes))
    width = max(left + col_w * len(genes) + 8, 330)
    return left, top, width, top + row_h * len(groups) + label_h


def matrix_plot_svg(genes: list, groups: list, mean: np.ndarray, *, title: str = "", uid: str = "0") -> str:
    """An SVG matrix plot: genes (columns) x groups (rows), each square coloured by ``mean``
    (the group's mean expression) on viridis from its minimum to its maximum, as
    ``scanpy.pl.matrixplot`` without scaling."""
    if not genes or not groups:
        return EMPTY
    cell = 18
    left, top, width, height = _frame(genes, groups, cell, cell)
    lo, hi, colours = _scaled_colours(mean)
    out = [_svg_open(width, height, title, "em-matrixplot-svg")]
    _gradient_legend(out, lo, hi, "mean", uid)
    for r, grp in enumerate(groups):
        for c, gene in enumerate(genes):
            g, gr = esc(str(gene)), esc(str(grp))
            out.append(f'<rect class="em-matrix-cell" data-gene="{g}" data-group="{gr}" x="{left + cell * c}" '
                       f'y="{top + cell * r}" width="{cell}" height="{cell}" fill="{colours[r, c]}">'
                       f"<title>{g}, {gr}: mean {float(mean[r, c]):.2f}</title></rect>")
    _grid_labels(out, genes, groups, left, top, cell, cell)
    out.append("</svg>")
    return "".join(out)


def stacked_violin_svg(genes: list, groups: list, violins: dict, *, title: str = "", uid: str = "0") -> str:
    """An SVG stacked violin plot: genes (columns) x groups (rows); each violin is the
    group's density of the gene (``violins['density']``, on the gene's grid from
    ``violins['lo']`` at the bottom of the row to ``violins['hi']`` at its top), filled by
    the group's median on viridis, with the median marked (a layout of
    :func:`~exprmat_widgets.tl.marker_summary.marker_violins`)."""
    if not genes or not groups:
        return EMPTY
    col_w, row_h = 22, 30
    left, top, width, height = _frame(genes, groups, col_w, row_h)
    dens, med = np.asarray(violins["density"]), np.asarray(violins["median"])
    lo_v, hi_v = np.asarray(violins["lo"], float), np.asarray(violins["hi"], float)
    lo, hi, colours = _scaled_colours(med)
    out = [_svg_open(width, height, title, "em-violin-svg")]
    _gradient_legend(out, lo, hi, "median", uid)
    bins = dens.shape[2]
    half = col_w * 0.45
    for r, grp in enumerate(groups):
        y0 = top + row_h * r
        out.append(f'<line class="em-svg-grid" x1="{left}" x2="{left + col_w * len(genes)}" '
                   f'y1="{y0 + row_h}" y2="{y0 + row_h}"/>')
        for c, gene in enumerate(genes):
            d = dens[r, c]
            nz = np.flatnonzero(d > 1e-3)
            if not nz.size:
                continue
            sl = slice(nz[0], nz[-1] + 1)  # the violin spans the group's own range
            ys = (y0 + row_h - 2 - (row_h - 4) * (np.arange(bins) + 0.5) / bins)[sl]
            w = half * d[sl]
            cx = left + col_w * c + col_w / 2
            xs = np.concatenate([cx - w, (cx + w)[::-1]])
            g, gr = esc(str(gene)), esc(str(grp))
            m = float(med[r, c])
            my = y0 + row_h - 2 - (row_h - 4) * (m - lo_v[c]) / (hi_v[c] - lo_v[c])
            out.append(f'<path class="em-violin" data-gene="{g}" data-group="{gr}" '
                       f'd="{_relative_path(xs, np.concatenate([ys, ys[::-1]]))}" '
                       f'fill="{colours[r, c]}"><title>{g}, {gr}: median {m:.2f}, '
                       f'quartiles {float(violins["q1"][r, c]):.2f} - {float(violins["q3"][r, c]):.2f}</title>'
                       "</path>")
            out.append(f'<line class="em-violin-median" x1="{cx - 3}" x2="{cx + 3}" y1="{my:.1f}" y2="{my:.1f}"/>')
    _grid_labels(out, genes, groups, left, top, col_w, row_h)
    out.append("</svg>")
    return "".join(out)


def tracks_plot_svg(genes: list, groups: list, cells: dict, colors: dict, *, title: str = "",
                    width: int = 620) -> str:
    """An SVG tracks plot: one track per gene (rows), the cells along x grouped by group
    (``cells['group']``), each track the cells' values (``cells['values']``, scaled to the
    gene's range) filled in the group's colour; a colour band names the groups (a layout
    of :func:`~exprmat_widgets.tl.marker_summary.marker_cell_values`)."""
    values = np.asarray(cells.get("values", np.zeros((0, 0))), dtype=float)
    if not genes or not groups or values.shape[0] == 0:
        return EMPTY
    code = np.asarray(cells["group"])
    track_h, top, band = 24, 24, 12
    left = 14 + 7 * max(len(str(g)) for g in genes)
    n = values.shape[0]
    plot_w = max(width - left - 8, 200)
    step = plot_w / n
    height = top + track_h * len(genes) + band + 20 + 14 * ((len(groups) + 5) // 6)
    out = [_svg_open(left + plot_w + 8, height, title, "em-tracks-svg", fit=True)]
    shown = f"{n:,} of {int(np.sum(cells['sizes'])):,} cells" if cells.get("sampled") else f"{n:,} cells"
    out.append(f'<text class="em-svg-muted em-tracks-count" x="4" y="14">{esc(shown)}, '
               "each track scaled to its gene's range</text>")
    vmin, vmax = values.min(axis=0), values.max(axis=0)
    vmin = np.minimum(vmin, 0.0)
    span = np.where(vmax > vmin, vmax - vmin, 1.0)
    bounds = np.flatnonzero(np.diff(code)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n]])
    for j, gene in enumerate(genes):
        g = esc(str(gene))
        base = top + track_h * (j + 1) - 1
        scale = (track_h - 3) / span[j]
        out.append(f'<text class="em-svg-text em-gene-label" data-gene="{g}" x="{left - 6}" '
                   f'y="{base - track_h / 2 + 4}" text-anchor="end">{g}</text>')
        out.append(f'<line class="em-svg-grid" x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}"/>')
        for a, b in zip(starts, ends):
            grp = str(groups[int(code[a])])
            ys = base - (values[a:b, j] - vmin[j]) * scale
            xs = left + (np.arange(a, b) + 0.5) * step
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
            out.append(f'<polygon class="em-track" data-gene="{g}" data-group="{esc(grp)}" '
                       f'points="{left + a * step:.1f},{base} {pts} {left + b * step:.1f},{base}" '
                       f'fill="{colors.get(grp, "#888888")}"><title>{g} in {esc(grp)}</title></polygon>')
    by = top + track_h * len(genes) + 2
    for a, b in zip(starts, ends):
        grp = str(groups[int(code[a])])
        out.append(f'<rect class="em-track-band" data-group="{esc(grp)}" x="{left + a * step:.1f}" y="{by}" '
                   f'width="{(b - a) * step:.1f}" height="{band}" fill="{colors.get(grp, "#888888")}">'
                   f"<title>{esc(grp)}: {b - a} cells shown</title></rect>")
    # the legend: group names with their colour (narrow groups cannot hold their name)
    for k, grp in enumerate(groups):
        lx = left + (k % 6) * max(plot_w / 6, 40)
        ly = by + band + 14 + 14 * (k // 6)
        out.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="9" height="9" fill="{colors.get(str(grp), "#888888")}"/>'
                   f'<text class="em-svg-text em-group-label" data-group="{esc(str(grp))}" x="{lx + 12:.1f}" '
                   f'y="{ly}">{esc(str(grp))}</text>')
    out.append("</svg>")
    return "".join(out)
