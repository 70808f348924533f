"""WebGL UMAP scatter (anywidget + regl-scatterplot) with lasso/box selection.

Public API (used by the Annotator panels)
=========================================

``UmapScatter(adata, basis='umap', color='leiden', *, height=500, point_size=None,
label_key=None, use_raw=None, layer=None, allow_missing_embedding=False)``
    An ``anywidget.AnyWidget``. ``basis`` is looked up by ``_validate.embedding_key`` (the
    core's: ``obsm[basis]``, then ``obsm['X_<basis>']``), so the scatter draws the embedding a
    recorded lasso refers to. ``color`` is an obs column, a gene or an ``obsm`` column
    (``'cnmf.10:3'``, ``'X_pca:0'``; ``None``: one colour), read by ``_access.feature`` as
    ``em.pl.embedding`` reads it. ``label_key`` names the obs
    column shown in the hover tooltip (default: ``color`` when it is categorical).
    ``use_raw``/``layer``: where gene expression is read (default as every core routine:
    ``X``; ``use_raw=True`` reads ``adata.raw``).  ``allow_missing_embedding=True`` (the
    Annotator's): without ``obsm[basis]`` the widget shows no points and ``empty_message``
    says how to make the embedding; ``refresh()`` draws it once it exists.

Methods and properties
    ``color_by(key, use_raw=None, layer=None, cmap='viridis', vmin=None, vmax=None)``
        Colour by a categorical (or string / bool) obs column (``uns['<key>_colors']`` when
        present and complete, else scanpy's default palette; ``adata`` is never modified), a
        numeric obs column, or a gene's expression (continuous colormap, expressing cells
        drawn on top). ``None`` = one colour. Genes are named by ``var_name`` or, when those
        are ids (exprmat's ``rna:<taxa>:<id>``), by the symbol in ``var['gene']`` (the search
        box offers the symbols); names are matched case-insensitively when unambiguous.
        Raises ``MissingKeyError`` for an unknown key, ``ExprmatError`` for a symbol of
        several genes (naming their ids). Sets the ``color`` trait.
    ``selection`` (trait) -> sorted ``numpy.int64`` array of selected cell *positions*.
        Settable from Python with positions, a boolean mask, cell names or a recorded
        selection dict; the page follows. Observe it: ``w.observe(cb, names='selection')``.
        A selection set from Python clears ``last_polygon``.
    ``selected_names`` -> ``list[str]`` of the selected cells' ``obs_names``.
    ``selection_mask`` -> boolean mask over ``obs_names``.
    ``last_polygon`` -> ``(k, 2)`` float64 array of the last lasso/box polygon in embedding
        coordinates (``None`` when the current selection was not drawn).
    ``selection_record()`` -> ``{'cells': [...names], 'polygon': [[x, y], ...] | None,
        'basis': str}``: ready for ``label_cells(..., cells=, polygon=, basis=)`` etc.
    ``highlight(cells, label=None)`` emphasise cells (mask / names / positions);
        ``highlight(None)`` clears.
    ``highlight_groups(key, groups)`` emphasise cells whose ``obs[key]`` is in ``groups``.
    One selection at a time: a non-empty highlight clears ``selection`` and a drawn (or
        Python-set) selection clears the highlight. ``current_selection`` (trait) is
        ``{'kind': 'none'|'lasso'|'cells'|'clusters'|'highlight', 'count': n,
        'description': str}``: what the next button acts on; the toolbar shows it (a lasso in
        blue, clusters in orange). A lasso fades the other cells and rings the selected ones;
        highlighted clusters are drawn larger over the faded rest, without rings.
    ``zoom_to(cells)`` zoom onto cells (``None``: all cells); ``clear_selection()``.
    ``refresh()`` re-read the AnnData after it changed (cells excluded, new labels, new
        colours, new embedding). Only buffers whose hash changed are re-sent. The selection
        is kept by cell name; highlight is cleared when the cells changed.
    ``set_adata(adata)`` point the widget at another AnnData and refresh; ``adata`` property.
    ``basis`` (trait): set it, then ``refresh()``, to show another embedding.
    ``last_polygon_normalized`` / ``normalized_coords``: the polygon and the coordinates
        exactly as the page used them (float32, [-1, 1]) for exact checks.
    ``mode`` (trait) ``'pan'`` | ``'lasso'`` | ``'box'``: what a plain mouse drag does
        (shift+drag always draws a lasso).
    ``color`` (trait, read it; change with ``color_by``), ``error`` (trait: last error, e.g.
        an unknown gene typed in the search box; shown in the widget unless
        ``inline_errors=False``, as in the Annotator, whose status line shows it),
        ``height`` (px), ``point_size`` (px, 0 = automatic from the number of cells).

The widget owns the one gene/obs search box (completion over obs columns, ``obsm`` columns
such as ``cnmf.10:3`` and genes); typing a
name and pressing Enter calls ``color_by`` in the kernel (an unknown name too: the kernel's
message is the error).  The legend (with counts) or colour bar sits beside the plot, never
over the points, and folds away.  The view fits the cells whatever the canvas aspect and
refits on resize while the user has not panned or zoomed.  The wheel scrolls the notebook;
it zooms (gently) with Ctrl/Cmd held or after a click in the plot.  Icon buttons download the
view as PNG and toggle full screen.  Colours follow JupyterLab's theme (CSS variables).

Wire format (see ``js/src/buffers.js``): coordinates travel as float32 interleaved
``x0 y0 x1 y1 ...`` normalised to [-1, 1] (aspect kept; ``_transform`` maps back),
colour codes as uint16 per cell (index into ``_palette``; the last palette entry is the
"missing" colour), highlight as uint8 per cell, the selection as a uint32 tag + payload
(uint32 positions, or a packbits mask when more than n/32 cells are selected: 125 kB for
half of 1M cells; ``encode_selection_buffer`` / ``decode_selection_buffer``) and the lasso
polygon as float32 normalised vertices. Hover asks the kernel per point (custom message) for
name, label and value. No per-cell data ever travel as JSON lists.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path

import anywidget
import numpy as np
import pandas as pd
import traitlets

from .._access import embedding_key, feature, gene_labels, obsm_column, obsm_feature_names
from ..colors import colors_of, default_palette
from ..errors import ExprmatError, MissingKeyError
from ..selection import positions_in, resolve_selection

__all__ = ["UmapScatter", "embedding_key"]

STATIC = Path(__file__).resolve().parent.parent / "static"
MISSING_COLOR = "#d3d3d3"
N_CONTINUOUS = 256
STALE_SELECTION = (
    "the selection was drawn on cells no longer shown (they changed while it was drawn) and "
    "was dropped; draw it again."
)


def _column_range(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of an (n, 2) array, one pass per column (numpy's
    ``min(axis=0)`` over two columns is ~15x slower: 44 ms against 3 ms at 1M cells)."""
    cols = range(emb.shape[1])
    return np.array([emb[:, j].min() for j in cols]), np.array([emb[:, j].max() for j in cols])


def _digest(buf: bytes) -> str:
    return hashlib.blake2b(buf, digest_size=16).hexdigest()


NO_SELECTION = {"kind": "none", "count": 0, "description": "no selection"}

SELECTION_POSITIONS, SELECTION_MASK = 0, 1


def encode_selection_buffer(positions, n_obs: int) -> bytes:
    """Wire format of a selection: uint32 tag + payload (tag 0: uint32 positions; tag 1:
    ``numpy.packbits`` mask over ``n_obs`` cells), whichever is smaller."""
    pos = np.asarray(positions if positions is not None else [], dtype=np.int64)
    if n_obs > 0 and pos.size * 32 > n_obs:
        mask = np.zeros(n_obs, dtype=bool)
        mask[pos] = True
        return np.uint32(SELECTION_MASK).astype("<u4").tobytes() + np.packbits(mask).tobytes()
    return np.concatenate([[SELECTION_POSITIONS], pos]).astype("<u4").tobytes()


def decode_selection_buffer(buf, n_obs: int) -> np.ndarray:
    """Sorted int64 positions from the wire format (see ``encode_selection_buffer``)."""
    buf = bytes(buf) if buf is not None else b""
    if len(buf) < 4:
        return np.empty(0, dtype=np.int64)
    tag = int(np.frombuffer(buf[:4], dtype="<u4")[0])
    if tag == SELECTION_MASK:
        bits = np.unpackbits(np.frombuffer(buf[4:], dtype=np.uint8), count=n_obs)
        return np.flatnonzero(bits).astype(np.int64)
    if tag != SELECTION_POSITIONS:
        raise ExprmatError(f"unknown selection encoding tag {tag} from the page.")
    return np.sort(np.frombuffer(buf[4:], dtype="<u4").astype(np.int64))


def _selection_to_json(value, widget):
    return memoryview(encode_selection_buffer(value, widget._n))


def _selection_from_json(value, widget):
    return decode_selection_buffer(value, widget._n)


def _bytes_from_json(value, widget):
    return b"" if value is None else bytes(value)


class UmapScatter(anywidget.AnyWidget):
    """WebGL scatter of an embedding with lasso/box selection; see the module docstring."""

    _esm = STATIC / "scatter.js"
    _css = STATIC / "scatter.css"

    # per-cell data (binary)
    _n = traitlets.Int(0).tag(sync=True)
    _coords = traitlets.Bytes(b"").tag(sync=True)
    _coords_hash = traitlets.Unicode("").tag(sync=True)
    _codes = traitlets.Bytes(b"").tag(sync=True)
    _codes_hash = traitlets.Unicode("").tag(sync=True)
    _highlight = traitlets.Bytes(b"").tag(sync=True)
    # echo_update=False: a lasso over 1M cells need not travel back to the page
    _polygon = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json, echo_update=False)
    selection = traitlets.Any(np.empty(0, dtype=np.int64)).tag(
        sync=True, to_json=_selection_to_json, from_json=_selection_from_json, echo_update=False
    )
    # small JSON state
    _palette = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    _legend = traitlets.Dict(default_value={"kind": "none"}).tag(sync=True)
    _keys = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    _transform = traitlets.Dict(default_value={}).tag(sync=True)
    basis = traitlets.Unicode("umap").tag(sync=True)
    color = traitlets.Unicode("").tag(sync=True)
    mode = traitlets.Enum(("pan", "lasso", "box"), default_value="pan").tag(sync=True)
    height = traitlets.Int(500).tag(sync=True)
    point_size = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    # shown over the (empty) plot while obsm has no such embedding (allow_missing_embedding)
    empty_message = traitlets.Unicode("").tag(sync=True)
    # False inside the Annotator: its status line is the one place errors are shown
    inline_errors = traitlets.Bool(True).tag(sync=True)
    # the one current selection (see _update_current): what the next button acts on
    current_selection = traitlets.Dict(default_value=dict(NO_SELECTION)).tag(sync=True)
    # which cells (and which view transform) the page shows: bumped whenever the set or order
    # of cells, or the transform, changes; the page echoes the generation its drawn points
    # belong to with every selection, so a lasso drawn on a previous view is never read as
    # positions in the current cells
    _generation = traitlets.Int(0).tag(sync=True)
    _selection_generation = traitlets.Int(-1).tag(sync=True, echo_update=False)

    def __init__(
        self,
        adata,
        basis: str = "umap",
        color: str | None = "leiden",
        *,
        height: int = 500,
        point_size: float | None = None,
        label_key: str | None = None,
        use_raw: bool | None = None,
        layer: str | None = None,
        allow_missing_embedding: bool = False,
        **kwargs,
    ):
        super().__init__(height=int(height), point_size=float(point_size or 0.0), **kwargs)
        self._adata = adata
        # a page event (colour by) runs beside an action's refresh (worker thread): one at a
        # time, so the refresh after an action is the last to write the buffers
        self._lock = threading.RLock()
        self._allow_missing = bool(allow_missing_embedding)
        self._use_raw = use_raw
        self._layer = layer
        self._label_key = label_key
        self._color_kwargs: dict = {}
        self._hover_values: np.ndarray | None = None
        self._names_ref = None
        self.basis = basis
        self._send_coords()
        self._send_keys()
        self._names_ref = adata.obs_names  # immutable Index: identity/equality tells changes
        self._selection_names_index = adata.obs_names
        # generation -> (obs_names, transform) of the last few views, to remap a late selection
        self._views = {0: (adata.obs_names, dict(self._transform))}
        if color == "leiden" and "leiden" not in adata.obs.columns:
            color = None  # the default key may be absent: one colour rather than an error
        self.color_by(color)
        if self._label_key is None and color is not None and self._is_categorical(color):
            self._label_key = color
        self.on_msg(self._on_custom_msg)

    # ------------------------------------------------------------------ data access
    @property
    def adata(self):
        """The AnnData shown (the same object, not a copy)."""
        return self._adata

    def _cells_changed(self) -> bool:
        now, ref = self._adata.obs_names, self._names_ref
        return not (now is ref or (ref is not None and now.equals(ref)))

    def _embedding(self) -> np.ndarray:
        key = embedding_key(self._adata, self.basis)
        emb = self._adata.obsm[key]
        emb = emb.to_numpy() if isinstance(emb, pd.DataFrame) else np.asarray(emb)
        if emb.ndim != 2 or emb.shape[1] < 2:
            raise ExprmatError(
                f"obsm['{key}'] must have at least 2 columns to be plotted (shape {emb.shape})."
            )
        return np.asarray(emb[:, :2], dtype=np.float64)

    _emb_source = None

    def _send_coords(self) -> None:
        try:
            key = embedding_key(self._adata, self.basis)
        except MissingKeyError:
            if not self._allow_missing:
                raise
            self._send_empty()
            return
        if self.empty_message:
            self.empty_message = ""
        # the same obsm array object (routines replace arrays, never write into them) and the
        # same cells: nothing to recompute or send (saves ~0.2 s per action at 1M cells)
        source = self._adata.obsm[key]
        if source is self._emb_source and self._coords_hash and not self._cells_changed():
            return
        names = self._adata.obs_names
        t = self._transform
        for entry in self._coords_cache:
            # back to arrays shown before (an undo restores the same objects): re-send those
            if entry[0] is source and entry[1] is names and entry[2] == t and self.basis == entry[3]:
                self._install_coords(source, *entry[2:])
                return
        emb = self._embedding()
        lo, hi = _column_range(emb)
        finite = None  # every cell finite: min and max are (NaN and inf would show there)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            finite = np.isfinite(emb).all(axis=1)
            lo, hi = _column_range(emb[finite]) if finite.any() else (np.zeros(2), np.zeros(2))
        if t and self.basis == self._transform_basis and self._cells_changed() and self._within(lo, hi, t):
            # the same embedding with fewer (or the same) cells, e.g. after an exclusion:
            # keep the view still, so the remaining cells do not jump on the screen
            center, scale = np.array([t["cx"], t["cy"]]), float(t["scale"])
        else:
            center = (lo + hi) / 2.0
            span = float(max(hi[0] - lo[0], hi[1] - lo[1]))
            scale = 1.9 / span if span > 0 else 1.0  # a 5% margin around the cells
        norm = ((emb - center) * scale).astype(np.float32)
        if finite is not None:
            norm[~finite] = np.nan
        buf = np.ascontiguousarray(norm, dtype="<f4").tobytes()
        transform = {"cx": float(center[0]), "cy": float(center[1]), "scale": float(scale)}
        entry = (source, names, transform, self.basis, norm, buf, _digest(buf))
        self._coords_cache = [entry, *self._coords_cache[:2]]
        self._install_coords(source, *entry[2:])

    EMPTY_MESSAGE = "No embedding yet: run Preprocess and Embed in the Analysis tab"

    def _send_empty(self) -> None:
        """No points: the embedding does not exist (yet); the page shows ``empty_message``."""
        with self.hold_sync():
            self._install_coords(None, {}, self.basis, np.empty((0, 2), dtype=np.float32), b"", "empty")
            self.empty_message = f"{self.EMPTY_MESSAGE} (no obsm[{self.basis!r}] or obsm['X_{self.basis}'])."

    _transform_basis = None
    _coords_cache: list = []  # (obsm array, obs_names, transform, basis, norm, buffer, digest)

    def _install_coords(self, source, transform, basis, norm, buf, digest) -> None:
        self._norm = norm
        self._emb_source = source
        self._transform = transform
        self._transform_basis = basis
        if digest != self._coords_hash:
            with self.hold_sync():
                self._n = int(norm.shape[0])
                self._coords = buf
                self._coords_hash = digest

    @staticmethod
    def _within(lo, hi, t) -> bool:
        """Whether the box ``lo``-``hi`` still fits the view of transform ``t`` (inside the
        [-1, 1] square) without being much smaller than it (a new embedding rescales)."""
        c = np.array([t["cx"], t["cy"]])
        a, b = (lo - c) * t["scale"], (hi - c) * t["scale"]
        fits = bool((a >= -1.0).all() and (b <= 1.0).all())
        return fits and float(max(b - a)) >= 0.5

    def _send_keys(self) -> None:
        keys = [str(c) for c in self._adata.obs.columns]
        keys += obsm_feature_names(self._adata)  # e.g. cNMF usages 'cnmf.10:3'
        seen = set(keys)
        keys += [g for g in self._gene_names() if g not in seen]
        if keys != list(self._keys):
            self._keys = keys

    def _gene_names(self, use_raw=None) -> list[str]:
        """The genes offered in the search box, by symbol when ``var_names`` are ids (the core's
        ``gene_labels``: ``var['gene']`` of exprmat's ``rna:<taxa>:<id>`` names)."""
        use_raw = bool(self._use_raw) if use_raw is None else use_raw
        names = list(gene_labels(self._adata))
        if use_raw and self._adata.raw is not None:
            seen = set(names)
            names += [g for g in gene_labels(self._adata.raw) if g not in seen]
        return names

    def _is_gene(self, key, use_raw=None) -> bool:
        a = self._adata
        use_raw = bool(self._use_raw) if use_raw is None else use_raw
        return key in a.var_names or (use_raw and a.raw is not None and key in a.raw.var_names) \
            or key in set(self._gene_names(use_raw))

    def _is_obsm_column(self, key) -> bool:
        try:
            return obsm_column(self._adata, key) is not None
        except MissingKeyError:
            return False

    def _is_categorical(self, key) -> bool:
        if key not in self._adata.obs.columns:
            return False
        col = self._adata.obs[key]
        return pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col)

    def _resolve_key(self, key: str, use_raw=None) -> str:
        """``key`` itself when it is an obs column or gene, else the one key equal to it up to
        letter case; anything else is left to ``feature`` (gene symbols, its message)."""
        a = self._adata
        if key in a.obs.columns or self._is_gene(key, use_raw):
            return key
        low = key.lower()
        hits = [k for k in self._keys if k.lower() == low]
        return hits[0] if len(hits) == 1 else key

    # ------------------------------------------------------------------ colour
    def color_by(
        self,
        key: str | None,
        use_raw: bool | None = None,
        layer: str | None = None,
        cmap: str = "viridis",
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> UmapScatter:
        """Colour the cells by an obs column, a gene or an ``obsm`` column (see the module
        docstring)."""
        with self._lock:
            return self._color_by(key, use_raw, layer, cmap, vmin, vmax)

    def _color_by(self, key, use_raw, layer, cmap, vmin, vmax) -> UmapScatter:
        a = self._adata
        n = a.n_obs
        use_raw = bool(self._use_raw) if use_raw is None else bool(use_raw)
        layer = self._layer if layer is None else layer
        if key is None or key == "":
            codes = np.zeros(n, dtype="<u2")
            palette = ["#1f77b4", MISSING_COLOR]
            legend = {"kind": "none"}
            hover = None
            key = ""
        else:
            key = self._resolve_key(str(key), use_raw)
            # the core's look-up (obs column first, then gene; use_raw as em.pl.embedding)
            values, kind, _cats = feature(a, key, layer=layer, use_raw=bool(use_raw))
            if kind == "categorical":
                col = pd.Series(values, index=a.obs_names)
                cats = [str(c) for c in col.cat.categories]
                if len(cats) > 65000:
                    raise ExprmatError(
                        f"obs['{key}'] has {len(cats)} categories; colour by a column with fewer."
                    )
                in_obs = key in a.obs.columns and isinstance(a.obs[key].dtype, pd.CategoricalDtype)
                cmap_ = colors_of(a, key) if in_obs else {}
                palette = [cmap_.get(c) for c in col.cat.categories] if cmap_ else []
                if not palette or any(p is None for p in palette):
                    palette = default_palette(len(cats))
                palette = [_to_hex(p) for p in palette] + [MISSING_COLOR]
                raw_codes = col.cat.codes.to_numpy()
                codes = np.where(raw_codes < 0, len(cats), raw_codes).astype("<u2")
                counts = np.bincount(raw_codes[raw_codes >= 0], minlength=len(cats))
                legend = {
                    "kind": "categorical",
                    "key": key,
                    "names": cats,
                    "colors": palette[:-1],
                    "counts": [int(c) for c in counts],
                }
                hover = col
            else:
                finite = np.isfinite(values)
                lo = float(np.min(values[finite])) if vmin is None and finite.any() else vmin
                hi = float(np.max(values[finite])) if vmax is None and finite.any() else vmax
                lo = 0.0 if lo is None else float(lo)
                hi = lo + 1.0 if hi is None else float(hi)
                rng = hi - lo if hi > lo else 1.0
                scaled = np.clip((np.nan_to_num(values, nan=lo) - lo) / rng, 0.0, 1.0)
                codes = np.rint(scaled * (N_CONTINUOUS - 1)).astype("<u2")
                codes[~finite] = N_CONTINUOUS
                palette = _colormap(cmap, N_CONTINUOUS) + [MISSING_COLOR]
                legend = {
                    "kind": "continuous",
                    "key": key,
                    "vmin": lo,
                    "vmax": hi,
                    "colors": palette[: N_CONTINUOUS : 32] + [palette[N_CONTINUOUS - 1]],
                }
                hover = values
        buf = np.ascontiguousarray(codes, dtype="<u2").tobytes()
        digest = _digest(buf + "\x00".join(palette).encode())
        self._hover_values = hover
        self._color_kwargs = {"use_raw": use_raw, "layer": layer, "cmap": cmap, "vmin": vmin,
                              "vmax": vmax}
        with self.hold_sync():
            if digest != self._codes_hash:
                if palette != self._palette:  # a gene after a gene keeps it: no re-validation
                    self._palette = palette
                self._codes = buf
                self._codes_hash = digest
            self._legend = legend
            self.color = key
            self.error = ""
        return self

    # ------------------------------------------------------------------ selection
    @traitlets.validate("selection")
    def _validate_selection(self, proposal):
        value = proposal["value"]
        from_page = "selection" in getattr(self, "_property_lock", {})
        if from_page and isinstance(value, np.ndarray) and value.dtype == np.int64:
            # positions in the cells the page shows (set_state checked the generation); these
            # may lag the AnnData while an action changes it, refresh() carries them over
            pos = value[value < self._n]  # decoded, sorted and unique already
            if pos.size > 1 and not (np.diff(pos) > 0).all():
                pos = np.unique(pos)
            pos.flags.writeable = False  # change the selection by assigning, not in place
            self._selection_names_index = self._names_ref
            return pos
        if value is None or (not isinstance(value, dict) and len(value) == 0):
            pos = np.empty(0, dtype=np.int64)
        else:
            mask = resolve_selection(self._adata, value, what="selection", allow_empty=True)
            pos = np.flatnonzero(mask).astype(np.int64)
        if hasattr(self, "_adata"):
            self._compound += 1  # the selection observer updates current_selection after
            try:
                self._polygon = b""  # a selection made in Python has no polygon
            finally:
                self._compound -= 1
            self._selection_names_index = self._adata.obs_names
        pos.flags.writeable = False
        return pos

    def set_state(self, sync_data):
        """State from the page: a selection drawn on a previous view (its generation is not
        the current one) is remapped by cell identity when that view is still known, else
        refused with a message; it is never read as positions in other cells."""
        if "selection" not in sync_data:
            return super().set_state(sync_data)
        sync_data = dict(sync_data)
        # the page sends only what changed: no generation means the one it sent last (a
        # second lasso on the same points), not an unknown view
        gen = sync_data.get("_selection_generation", self._selection_generation)
        if gen == self._generation:
            if self.error == STALE_SELECTION:
                self.error = ""
            return super().set_state(sync_data)
        view = self._views.get(gen) if isinstance(gen, int) else None
        if view is None:
            sync_data["selection"] = encode_selection_buffer([], self._n)
            sync_data["_polygon"] = b""
            super().set_state(sync_data)
            self.error = ""  # each refusal is reported, also a repeated one
            self.error = STALE_SELECTION
        else:
            names, transform = view
            pos = decode_selection_buffer(sync_data["selection"], len(names))
            pos = positions_in(names, pos[pos < len(names)], self._names_ref)
            sync_data["selection"] = encode_selection_buffer(pos, self._n)
            poly = sync_data.get("_polygon")
            if poly:
                sync_data["_polygon"] = _retransform(bytes(poly), transform, self._transform)
            super().set_state(sync_data)
        # the page still shows its own (stale) selection: send it the one kept
        self.send_state(["selection", "_polygon"])

    @property
    def selection_now(self) -> np.ndarray:
        """The selection as positions in the AnnData's current cells (``selection`` refers to
        the cells shown, which lag the AnnData while an action changes it)."""
        pos, ref, now = self.selection, self._selection_names_index, self._adata.obs_names
        if ref is None or ref is now or ref.equals(now):
            return pos
        return positions_in(ref, pos, now)

    @property
    def selection_mask(self) -> np.ndarray:
        """Boolean mask over the current ``obs_names`` of the selected cells."""
        mask = np.zeros(self._adata.n_obs, dtype=bool)
        mask[self.selection_now] = True
        return mask

    @property
    def selected_names(self) -> list[str]:
        """``obs_names`` of the selected cells (in obs order)."""
        ref = self._selection_names_index
        ref = self._adata.obs_names if ref is None else ref
        return [str(x) for x in ref[self.selection]]

    @property
    def last_polygon(self) -> np.ndarray | None:
        """The lasso/box polygon of the current selection in embedding coordinates, or None."""
        if not self._polygon:
            return None
        poly = np.frombuffer(self._polygon, dtype="<f4").astype(np.float64).reshape(-1, 2)
        if len(poly) < 3:
            return None
        t = self._transform
        return poly / t["scale"] + np.array([t["cx"], t["cy"]])

    @property
    def last_polygon_normalized(self) -> np.ndarray | None:
        """The polygon in the page's normalised coordinates (float32 values, as drawn)."""
        if not self._polygon:
            return None
        poly = np.frombuffer(self._polygon, dtype="<f4").reshape(-1, 2)
        return poly if len(poly) >= 3 else None

    @property
    def normalized_coords(self) -> np.ndarray:
        """The float32 coordinates the page draws (``[-1, 1]``, aspect kept)."""
        return self._norm

    def selection_record(self) -> dict:
        """``{'cells': names, 'polygon': vertices or None, 'basis': basis}`` of the selection."""
        poly = self.last_polygon
        return {
            "cells": self.selected_names,
            "polygon": None if poly is None else [[float(x), float(y)] for x, y in poly],
            "basis": self.basis,
        }

    def clear_selection(self) -> None:
        self.selection = np.empty(0, dtype=np.int64)

    def zoom_to(self, cells=None, padding: float = 0.1) -> None:
        """Zoom the view onto ``cells`` (mask / names / positions); ``None``: show all cells."""
        if cells is None:
            self.send({"type": "zoom", "reset": True})
            return
        mask = resolve_selection(self._adata, cells, what="zoom_to")
        pos = np.flatnonzero(mask).astype("<u4")
        self.send({"type": "zoom", "reset": False, "padding": float(padding)}, [pos.tobytes()])

    # ------------------------------------------------------------------ highlight
    def highlight(self, cells=None, *, label: str | None = None) -> None:
        """Emphasise ``cells`` (mask / names / positions); ``None`` or empty clears.

        One selection at a time: a non-empty highlight clears the drawn selection
        (``selection``), and drawing one clears the highlight.  ``label`` names what is
        highlighted in ``current_selection`` (e.g. ``"clusters 1, 3 of leiden"``)."""
        if cells is None or (not isinstance(cells, dict) and len(cells) == 0):
            self._set_highlight(None, "")
            return
        mask = resolve_selection(self._adata, cells, what="highlight", allow_empty=True)
        self._set_highlight(mask, label or "highlighted cells")

    def highlight_groups(self, key: str, groups) -> None:
        """Emphasise cells whose ``obs[key]`` is one of ``groups`` (empty clears); the
        current selection becomes ``{'kind': 'clusters', ...}``."""
        if key not in self._adata.obs.columns:
            raise MissingKeyError(f"no obs column '{key}'; pass an existing obs column.")
        groups = [groups] if isinstance(groups, str) else [str(g) for g in (groups or [])]
        if not groups:
            self.highlight(None)
            return
        col = self._adata.obs[key]
        if isinstance(col.dtype, pd.CategoricalDtype):
            # category codes: no per-cell string work at 1M cells
            idx = np.flatnonzero(np.isin(np.asarray(col.cat.categories.astype(str)), groups))
            mask = np.isin(col.cat.codes.to_numpy(), idx)
        else:
            mask = col.astype(str).isin(groups).to_numpy()
        self._set_highlight(mask, f"{'cluster' if len(groups) == 1 else 'clusters'} "
                                  f"{', '.join(groups)} of {key}", kind="clusters")

    _highlight_label = ""
    _highlight_kind = "none"
    _highlight_count = 0

    _compound = 0  # > 0 while several traits change together: current_selection waits

    def _set_highlight(self, mask, label: str, kind: str = "highlight") -> None:
        self._compound += 1
        try:
            self._set_highlight_now(mask, label, kind)
        finally:
            self._compound -= 1
        self._update_current()

    def _set_highlight_now(self, mask, label, kind) -> None:
        with self.hold_sync():
            if mask is None:
                self._highlight_kind, self._highlight_label, self._highlight_count = "none", "", 0
                self._highlight = b""
            else:
                self._highlight_kind, self._highlight_label = kind, label
                self._highlight_count = int(np.count_nonzero(mask))
                self._highlight = mask.astype(np.uint8).tobytes()
                if self._highlight_count and len(self.selection):
                    self.selection = np.empty(0, dtype=np.int64)

    @traitlets.observe("selection")
    def _on_selection(self, change):
        if len(change["new"]) and self._highlight:
            # a drawn selection replaces the highlighted clusters (one selection at a time)
            self._highlight_kind, self._highlight_label, self._highlight_count = "none", "", 0
            self._highlight = b""
        self._update_current()

    @traitlets.observe("_polygon")
    def _on_polygon(self, change):
        self._update_current()

    def _update_current(self) -> None:
        """``current_selection`` = ``{'kind', 'count', 'description'}``: ``kind`` is 'lasso'
        (drawn on the page: lasso or box), 'cells' (set from Python or clicked), 'clusters'
        / 'highlight' (``highlight_groups`` / ``highlight``) or 'none'."""
        if self._compound:
            return
        n_sel = len(self.selection)
        if n_sel:
            kind = "lasso" if self.last_polygon_normalized is not None else "cells"
            what = "lasso" if kind == "lasso" else "selected"
            cur = {"kind": kind, "count": n_sel, "description": f"{what}: {n_sel:,} cells"}
        elif self._highlight and self._highlight_count:
            c = self._highlight_count
            cur = {"kind": self._highlight_kind, "count": c,
                   "description": f"{self._highlight_label}: {c:,} cells"}
        else:
            cur = dict(NO_SELECTION)
        if cur != self.current_selection:
            self.current_selection = cur

    # ------------------------------------------------------------------ refresh
    def set_adata(self, adata) -> None:
        """Show another AnnData (e.g. a subset) and refresh."""
        self._adata = adata
        self.refresh()

    def refresh(self) -> None:
        """Re-read the AnnData: only changed buffers are re-sent (hash comparison)."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        a = self._adata
        cells_changed = self._cells_changed()
        old, pos = self._selection_names_index, self.selection
        transform = dict(self._transform)
        with self.hold_sync():
            self._send_coords()
            self._send_keys()
            key = self.color
            if key and not (key in a.obs.columns or self._is_gene(key, self._color_kwargs.get("use_raw"))
                            or self._is_obsm_column(key)):
                key = None
            self.color_by(key, **self._color_kwargs)
            if cells_changed:
                self._names_ref = a.obs_names
                self._set_highlight(None, "")
                # the selected cells that are still there stay selected
                if old is None or len(pos) == 0:
                    self.selection = np.empty(0, dtype=np.int64)
                else:
                    self.selection = positions_in(old, pos[pos < len(old)], a.obs_names)
            if cells_changed or transform != self._transform:
                # sent with the coordinates (one message): the page's points and their
                # generation always arrive together
                self._generation += 1
                self._views[self._generation] = (self._names_ref, dict(self._transform))
                for g in [g for g in self._views if g < self._generation - 3]:
                    del self._views[g]  # a few views back: each holds an obs_names index

    _selection_names_index = None

    # ------------------------------------------------------------------ messages
    def _on_custom_msg(self, widget, content, buffers):
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        # never raise into the comm handler: the AnnData may be mid-change under an action
        try:
            if kind == "color_by":
                self.color_by(str(content.get("key", "")))
            elif kind == "hover":
                self.send(self._hover_info(content.get("index")))
        except Exception as e:
            self.error = ""  # a repeated error is reported again
            self.error = str(e) if isinstance(e, ExprmatError) else f"{kind}: {type(e).__name__}: {e}"

    def _hover_info(self, index) -> dict:
        a = self._adata
        try:
            i = int(index)
        except (TypeError, ValueError):
            return {"type": "hover", "index": index, "name": "", "fields": []}
        if not 0 <= i < a.n_obs:
            return {"type": "hover", "index": i, "name": "", "fields": []}
        fields = []
        if self._label_key and self._label_key in a.obs.columns and self._label_key != self.color:
            fields.append([self._label_key, _jsonable(a.obs[self._label_key].iloc[i])])
        if self.color and self._hover_values is not None:
            v = self._hover_values
            fields.append([self.color, _jsonable(v.iloc[i] if hasattr(v, "iloc") else v[i])])
        return {"type": "hover", "index": i, "name": str(a.obs_names[i]), "fields": fields}


def _retransform(poly: bytes, old: dict, new: dict) -> bytes:
    """Polygon vertices (float32, normalised by transform ``old``) normalised by ``new``."""
    p = np.frombuffer(poly, dtype="<f4").astype(np.float64).reshape(-1, 2)
    if not old or not new:
        return poly
    emb = p / old["scale"] + np.array([old["cx"], old["cy"]])
    return ((emb - np.array([new["cx"], new["cy"]])) * new["scale"]).astype("<f4").tobytes()


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _to_hex(c) -> str:
    from matplotlib import colors as mcolors

    return mcolors.to_hex(c, keep_alpha=False)


def _colormap(name: str, n: int) -> list[str]:
    return list(_colormap_hex(name, n))


@functools.lru_cache(maxsize=32)
def _colormap_hex(name: str, n: int) -> tuple[str, ...]:
    # built once per colormap: 256 scalar colormap calls were 100 ms of every colour change
    # by a gene; the array call gives the same RGBA rows
    from matplotlib import colormaps
    from matplotlib import colors as mcolors

    try:
        cm = colormaps[name]
    except KeyError as e:
        raise ExprmatError(f"unknown colormap '{name}'; pass a matplotlib colormap name.") from e
    return tuple(mcolors.to_hex(c) for c in cm(np.linspace(0.0, 1.0, n)))
