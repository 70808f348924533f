"""Cell selections: turn what a user passes (names, mask, positions, a recorded
selection) into a boolean mask, and record a selection by the cells it hits.

A recorded selection is a JSON dict, either ``{"encoding": "names", "names": [...]}``
or, for large selections, ``{"encoding": "mask", "n_obs": N, "packed": "<base64>"}``
(a zlib-compressed bit-packed mask over ``obs_names`` at that step; the step's
input fingerprint guarantees the same cells in the same order on replay).
Decoding uses only base64, zlib and numpy: no pickle.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pandas as pd

from .errors import ExprmatError, MissingKeyError

__all__ = ["resolve_selection", "encode_selection", "decode_selection", "positions_in"]

NAMES_LIMIT = 5000


def _mask_from_names(adata, names) -> np.ndarray:
    names = pd.Index([str(n) for n in names])
    pos = adata.obs_names.get_indexer(names)
    if (pos < 0).any():
        missing = list(names[pos < 0][:5])
        raise MissingKeyError(
            f"{int((pos < 0).sum())} selected cell(s) are not in the data, e.g. {missing}; "
            "select cells by their obs_names."
        )
    mask = np.zeros(adata.n_obs, dtype=bool)
    mask[pos] = True
    return mask


def decode_selection(adata, recorded: dict) -> np.ndarray:
    """Boolean mask of a recorded selection (see module docstring).

    A recorded selection comes from a file and is not trusted: a packed mask is
    decompressed only up to the ``n_obs`` bits it must hold, so a small record cannot
    expand to gigabytes.
    """
    if not isinstance(recorded, dict):
        raise ExprmatError(f"a recorded selection must be a dict, got a {type(recorded).__name__}.")
    enc = recorded.get("encoding")
    if enc == "names":
        names = recorded.get("names", [])
        if not isinstance(names, list) or len(names) > adata.n_obs or not all(isinstance(n, str) for n in names):
            raise ExprmatError(
                f"recorded selection: 'names' must be a list of at most {adata.n_obs} cell names; "
                "the record is damaged."
            )
        return _mask_from_names(adata, names)
    if enc == "mask":
        n, packed = recorded.get("n_obs"), recorded.get("packed")
        if not isinstance(n, int) or isinstance(n, bool) or not isinstance(packed, str):
            raise ExprmatError("recorded selection: a mask needs an integer 'n_obs' and a 'packed' string.")
        if n != adata.n_obs:
            raise ExprmatError(
                f"recorded selection covers {n} cells but the data have {adata.n_obs}; "
                "replay onto the data the history started from."
            )
        need = (n + 7) // 8
        # deflate never expands by more than ~0.03% + a few bytes; anything longer is not ours
        if len(packed) > 4 * ((need + need // 1000 + 64) // 3 + 1):
            raise ExprmatError(f"recorded selection: the packed mask is too long for {n} cells; the record is damaged.")
        try:
            z = zlib.decompressobj()
            raw = z.decompress(base64.b64decode(packed, validate=True), need)
            if not z.eof and not z.unconsumed_tail:  # the end marker may follow the last byte
                raw += z.decompress(b"", 1)
            complete = z.eof
        except (ValueError, zlib.error) as e:
            raise ExprmatError(f"recorded selection: the packed mask cannot be decoded ({e}); "
                               "the record is damaged.") from None
        if len(raw) != need or z.unconsumed_tail or not complete:
            raise ExprmatError(
                f"recorded selection: the packed mask does not hold exactly {n} cells; the record is damaged."
            )
        return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)
    raise ExprmatError(f"unknown selection encoding {str(enc)[:40]!r}; expected 'names' or 'mask'.")


def resolve_selection(adata, cells, *, what: str = "selection", allow_empty: bool = False) -> np.ndarray:
    """A boolean mask over ``adata.obs_names`` from a selection.

    ``cells`` may be a boolean mask (array or Series), a list of cell names,
    an integer array of positions, or a recorded selection dict.
    """
    if cells is None:
        raise ExprmatError(f"{what}: no cells given; pass cell names or a boolean mask.")
    if isinstance(cells, dict):
        mask = decode_selection(adata, cells)
    else:
        if isinstance(cells, pd.Series) and cells.dtype == bool:
            cells = cells.reindex(adata.obs_names).fillna(False).to_numpy()
        arr = np.asarray(cells)
        if arr.dtype == bool:
            if arr.shape != (adata.n_obs,):
                raise ExprmatError(
                    f"{what}: boolean mask has {arr.size} entries but the data have {adata.n_obs} cells."
                )
            mask = arr.copy()
        elif arr.dtype.kind in "iu":
            if arr.size and (arr.min() < 0 or arr.max() >= adata.n_obs):
                raise ExprmatError(f"{what}: cell positions must lie in [0, {adata.n_obs}).")
            mask = np.zeros(adata.n_obs, dtype=bool)
            mask[arr] = True
        else:
            mask = _mask_from_names(adata, arr.ravel())
    if not allow_empty and not mask.any():
        raise ExprmatError(f"{what}: the selection is empty; select at least one cell.")
    return mask


def encode_selection(adata, cells) -> dict:
    """Record a selection by the cells it hits (names when few, packed mask when many).

    A recorded dict that already carries extra keys (``polygon``, ``basis``) keeps them.
    """
    extra = {}
    if isinstance(cells, dict):
        extra = {k: v for k, v in cells.items() if k in ("polygon", "basis")}
    mask = resolve_selection(adata, cells, allow_empty=True)
    n_sel = int(mask.sum())
    if n_sel <= NAMES_LIMIT:
        out = {"encoding": "names", "names": [str(x) for x in adata.obs_names[mask]]}
    else:
        packed = base64.b64encode(zlib.compress(np.packbits(mask).tobytes(), 6)).decode("ascii")
        out = {"encoding": "mask", "n_obs": int(adata.n_obs), "packed": packed}
    out["n_selected"] = n_sel
    out.update(extra)
    return out


def positions_in(old_names: pd.Index, positions: np.ndarray, new_names: pd.Index) -> np.ndarray:
    """Sorted positions in ``new_names`` of the cells ``old_names[positions]`` still there
    (e.g. a selection kept across an exclusion).

    When an exclusion made ``new_names`` from ``old_names`` (the history remembers the rows
    it kept), this is a binary search in those rows; otherwise ``get_indexer`` (a hash table
    of every new name, ~0.1 s at a million cells).
    """
    from .history.fingerprints import subset_rows

    positions = np.unique(np.asarray(positions, dtype=np.int64))
    if positions.size == 0:
        return positions
    rows = subset_rows(old_names, new_names)
    if rows is not None:
        at = np.searchsorted(rows, positions)
        ok = at < rows.size
        ok[ok] = rows[at[ok]] == positions[ok]
        return at[ok].astype(np.int64)
    pos = new_names.get_indexer(old_names[positions])
    return np.sort(pos[pos >= 0]).astype(np.int64)
