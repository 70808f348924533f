"""Category colours in ``uns['<key>_colors']``, kept in step with the categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from scanpy.plotting import palettes

__all__ = ["default_palette", "sync_colors", "colors_of"]


_GOLDEN = 0.6180339887498949
# (saturation, value) rings the generated hues cycle through, so that hues that come
# close on the colour wheel still differ in shade
_RINGS = ((0.75, 0.85), (0.45, 0.95), (0.9, 0.55), (0.6, 0.7), (0.35, 0.6))


def _more_colors(k: int, skip: set) -> list[str]:
    """``k`` further colours, distinct from ``skip`` and each other: golden-ratio hue steps
    (hues never repeat) over a few saturation/brightness rings, then (once the hex
    resolution of those rings runs out, ~ a thousand colours) quasi-random saturation
    and brightness too; deterministic."""
    out: list[str] = []
    i = 0
    while len(out) < k:
        if i < 100 * len(_RINGS):
            s, v = _RINGS[i % len(_RINGS)]
        else:
            s, v = 0.3 + 0.65 * ((i * 0.7548776662466927) % 1.0), 0.45 + 0.5 * ((i * 0.5698402909980532) % 1.0)
        c = mcolors.to_hex(mcolors.hsv_to_rgb(((0.11 + i * _GOLDEN) % 1.0, s, v)))
        if c not in skip:
            skip.add(c)
            out.append(c)
        i += 1
    return out


# new colours beside existing ones are picked among this many palette colours at most
_PICK_POOL = 4096
# lightness range (CIELAB L*) of picked colours: points stay visible on JupyterLab's light
# and dark backgrounds
_PICK_LIGHTNESS = (25.0, 85.0)


def lab(colors) -> np.ndarray:
    """CIELAB (D65) coordinates of matplotlib colours, an ``(n, 3)`` array; the Euclidean
    distance between two rows is the CIE76 colour difference (about 2.3 is just noticeable)."""
    rgb = np.array([mcolors.to_rgb(c) for c in colors], dtype=float).reshape(-1, 3)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.c_[116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])]


def _distinct_picks(k: int, used: list[str], pool: list[str]) -> list[str] | None:
    """``k`` colours of ``pool``, each in turn the one farthest (CIE76) from ``used`` and the
    ones picked before: new categories beside existing ones (sub-clusters) get colours
    unlike their neighbours', where the palette's next unused entries may be near-twins
    (scanpy's 28-colour palette starts with pale greys).  ``None`` when the pool has too
    few candidates."""
    cand = [c for c in dict.fromkeys(pool) if c not in set(used)]
    lab_c = lab(cand) if cand else np.zeros((0, 3))
    ok = (lab_c[:, 0] >= _PICK_LIGHTNESS[0]) & (lab_c[:, 0] <= _PICK_LIGHTNESS[1])
    cand, lab_c = [c for c, o in zip(cand, ok) if o], lab_c[ok]
    if len(cand) < k:
        return None
    nearest = np.full(len(cand), np.inf)
    for ref in lab(used):
        nearest = np.minimum(nearest, np.sqrt(((lab_c - ref) ** 2).sum(axis=1)))
    out = []
    for _ in range(k):
        j = int(np.argmax(nearest))  # ties: the earlier palette colour
        out.append(cand[j])
        nearest = np.minimum(nearest, np.sqrt(((lab_c - lab_c[j]) ** 2).sum(axis=1)))
        nearest[j] = -np.inf
    return out


def default_palette(n: int) -> list[str]:
    """``n`` distinct colours: scanpy's default categorical palette for ``n`` categories,
    continued by generated colours beyond its 102 (scanpy would repeat them)."""
    if n <= 20:
        base = palettes.default_20
    elif n <= 28:
        base = palettes.default_28
    else:
        base = palettes.default_102
    out = [mcolors.to_hex(c) for c in base[:n]]
    return out + _more_colors(n - len(out), set(out)) if n > len(out) else out


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
    a merge or rename); the rest get unused colours of :func:`default_palette`
    (which has as many distinct colours as needed).
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
    missing = sum(c is None for c in out)
    picks = None
    if used and missing and len(cats) + len(used) <= _PICK_POOL:
        # categories beside kept colours: as unlike those (and each other) as the palette allows
        picks = _distinct_picks(missing, [c for c in out if c is not None],
                                default_palette(max(len(cats) + len(used), 102)))
    if picks is None:
        # len(cats) + len(used) distinct colours leave at least len(cats) unused ones
        picks = [c for c in default_palette(max(len(cats) + len(used), 20)) if c not in used]
    it = iter(picks)
    adata.uns[f"{key}_colors"] = np.array([c if c is not None else next(it) for c in out], dtype=object)
