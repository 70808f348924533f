"""The cNMF tab's choice-of-k plot as inline SVG: stability (left axis) and error (right
axis) against k, as :func:`~exprmat_widgets.pl.plot_cnmf_silhouette` draws them, without
matplotlib or bokeh in the notebook (a few hundred bytes per plot)."""

from __future__ import annotations

import html

import numpy as np

W, H, L, R, T, B = 300, 140, 42, 48, 10, 26


def _scale(v, lo, hi, a, b):
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def k_choice_svg(ks, stability, error, *, picked=None) -> str:
    """SVG of ``stability`` and ``error`` per ``k`` (equal-length sequences); ``picked`` (a k)
    is marked with a dashed line. Colours follow JupyterLab's theme variables."""
    ks = np.asarray(ks, dtype=float)
    series = [("stability", np.asarray(stability, dtype=float), "var(--jp-brand-color1,#1976d2)", L),
              ("error", np.asarray(error, dtype=float), "var(--jp-error-color1,#d32f2f)", W - R)]
    if not ks.size:
        return ""
    k0, k1 = (ks.min() - 0.5, ks.max() + 0.5)
    x = [_scale(k, k0, k1, L, W - R) for k in ks]
    out = [f'<svg class="em-cnmf-k" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" style="font:10px sans-serif;fill:var(--jp-ui-font-color1,#333)">',
           f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" '
           'stroke="var(--jp-border-color1,#bbb)"/>']
    for k, xi in zip(ks, x):
        out.append(f'<text x="{xi:.1f}" y="{H - B + 12}" text-anchor="middle">{int(k)}</text>')
    out.append(f'<text x="{(L + W - R) / 2:.1f}" y="{H - 2}" text-anchor="middle">k</text>')
    for name, v, colour, axis in series:
        ok = np.isfinite(v)
        if not ok.any():
            continue
        lo, hi = float(v[ok].min()), float(v[ok].max())
        y = [_scale(val, lo, hi, H - B - 4, T + 4) if np.isfinite(val) else None for val in v]
        pts = " ".join(f"{xi:.1f},{yi:.1f}" for xi, yi in zip(x, y) if yi is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'data-series="{name}"/>')
        for xi, yi in zip(x, y):
            if yi is not None:
                out.append(f'<circle cx="{xi:.1f}" cy="{yi:.1f}" r="2.5" fill="{colour}"/>')
        anchor, dx = ("end", -4) if axis == L else ("start", 4)
        for val, yy in ((hi, T + 4), (lo, H - B - 4)):
            out.append(f'<text x="{axis + dx}" y="{yy + 3:.1f}" text-anchor="{anchor}" '
                       f'style="fill:{colour}">{val:.3g}</text>')
        label_x = 10 if axis == L else W - 8
        out.append(f'<text transform="translate({label_x},{(T + H - B) / 2:.0f}) rotate(-90)" '
                   f'text-anchor="middle" style="fill:{colour}">{html.escape(name)}</text>')
    if picked is not None and float(picked) in set(ks.tolist()):
        xp = _scale(float(picked), k0, k1, L, W - R)
        out.append(f'<line x1="{xp:.1f}" x2="{xp:.1f}" y1="{T}" y2="{H - B}" stroke-dasharray="3,3" '
                   'stroke="var(--jp-ui-font-color2,#777)" data-picked="true"/>')
    out.append("</svg>")
    return "".join(out)
