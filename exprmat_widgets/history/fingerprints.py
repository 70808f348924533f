"""Fingerprints: short content hashes of arrays, columns and tables, and a cache of the
per-name hashes of ``obs_names`` (an index is immutable, so its hashes are computed once;
an exclusion gathers the kept rows' hashes instead of re-hashing a million names).

Hashing is hand-written because the fingerprint must be canonical across storage details
(an h5ad round trip changes sparse index dtypes, matrix vs array classes, categorical
storage) and stable across pandas and numpy versions, which ``pandas.util.hash_pandas_object``
and pickling-based hashers do not promise.

Formats 0 and 1 hashed numeric columns and tables (a Series' ``.array``) as the text of
their values, which takes seconds for a genes x groups table; format 2 hashes their bytes.
A record is checked with the scheme of its own format (:func:`fingerprint_format`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "fingerprint",
    "obs_names_hash",
    "carry_obs_names_hash",
    "subset_rows",
    "input_fingerprint",
    "output_fingerprint",
    "names_are_unique",
    "fingerprint_format",
    "current_format",
    "hash_scheme",
]

NEWEST = 2  # records.FORMAT: the scheme new records are hashed with
_format = contextvars.ContextVar("exprmat_widgets_fingerprint_format", default=NEWEST)


def hash_scheme(fmt: int) -> int:
    """The hashing scheme of record format ``fmt`` (formats 0 and 1 share one)."""
    return max(1, min(int(fmt), NEWEST))


def current_format() -> int:
    """The record format whose hashing scheme fingerprints use now."""
    return _format.get()


@contextlib.contextmanager
def fingerprint_format(fmt: int):
    """Hash as format ``fmt`` did (formats 0 and 1 share a scheme): a replayed or redone
    record is reproduced, fingerprints and ``format`` field alike, as it was written."""
    token = _format.set(hash_scheme(fmt))
    try:
        yield
    finally:
        _format.reset(token)



def _h():
    return hashlib.blake2b(digest_size=12)


def _update(h, obj):
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, (str, bytes)):
        h.update(b"S")
        h.update(obj.encode() if isinstance(obj, str) else obj)
    elif isinstance(obj, (bool, np.bool_, int, float, np.integer, np.floating)):
        h.update(b"V" + repr(obj.item() if hasattr(obj, "item") else obj).encode())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"D")
        _update(h, obj.index)
        for c in obj.columns:
            _update(h, str(c))
            _update(h, obj[c])
    elif isinstance(obj, (pd.Series, pd.Index)):
        _update(h, obj.array if not isinstance(obj.dtype, pd.CategoricalDtype) else obj.values)
    elif isinstance(obj, pd.Categorical):
        h.update(b"C")
        _update(h, np.asarray(obj.categories.astype(str)))
        _update(h, obj.codes)
    elif isinstance(obj, pd.api.extensions.ExtensionArray):
        if (isinstance(obj, pd.arrays.NumpyExtensionArray) and obj.dtype.kind in "biuf"
                and _format.get() >= 2):
            _update(h, obj.to_numpy())  # its bytes (format 2), not the text of each value
        else:
            _update(h, np.asarray(obj, dtype=object))
    elif sp.issparse(obj):
        # canonical form, so that storage details (index order and dtype after an h5ad
        # round trip, matrix vs array classes) do not change the fingerprint of the values
        obj = sp.csr_matrix(obj) if obj.format not in ("csr", "csc") else obj
        if not obj.has_sorted_indices:
            obj = obj.copy()
            obj.sort_indices()
        h.update(f"sparse{obj.format}{obj.shape}".encode())
        _update(h, obj.data)
        _update(h, obj.indices.astype(np.int64, copy=False))
        _update(h, obj.indptr.astype(np.int64, copy=False))
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype.str}{obj.shape}".encode())
        if obj.dtype.names:  # structured (scanpy's rank_genes_groups record arrays)
            for f in obj.dtype.names:
                _update(h, np.asarray(obj[f]))
        elif obj.dtype.kind in "OUS":
            h.update("\x1f".join(map(str, obj.ravel().tolist())).encode())
        else:
            h.update(memoryview(np.ascontiguousarray(obj)).cast("B"))
    elif isinstance(obj, dict) or hasattr(obj, "keys"):
        h.update(b"M")
        for k in sorted(obj.keys(), key=str):
            _update(h, str(k))
            _update(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L")
        for v in obj:
            _update(h, v)
    elif hasattr(obj, "dask") and hasattr(obj, "chunks"):
        _update_dask(h, obj)
    elif hasattr(obj, "shape") and hasattr(obj, "dtype"):  # other array-likes
        _update(h, np.asarray(obj))
    else:
        h.update(repr(type(obj)).encode())


def _row_bands(x):
    """``x`` (dask) in consecutive bands of its stored cell chunks, each computed once."""
    start = 0
    for size in x.chunks[0]:
        yield x[start:start + size].compute()
        start += size


def _update_dask(h, x) -> None:
    """The fingerprint of ``x.compute()`` without holding it: one pass over the cell bands.

    Dense bands are hashed as they come (C order is band after band).  A sparse matrix is
    hashed as data, then indices, then indptr, so one pass spills data and indices to a
    temporary file (``TMPDIR``, 8 bytes per non-zero) and hashes them after; that is what
    a command which writes a lazy ``X`` costs to record (scanpy's ``normalize_total`` on a
    dask ``X``, for one): one read of ``X``.  Commands that only read ``X`` (markers) or
    remove cells (exclusions keep ``X[kept]`` lazy) never fingerprint it.
    """
    import os
    import tempfile

    meta = getattr(x, "_meta", None)
    if not sp.issparse(meta):
        h.update(f"A{np.dtype(x.dtype).str}{tuple(int(s) for s in x.shape)}".encode())
        for band in _row_bands(x):
            h.update(memoryview(np.ascontiguousarray(np.asarray(band, dtype=x.dtype))).cast("B"))
        return
    shape = tuple(int(s) for s in x.shape)
    row_nnz, nnz, dtype = [], 0, None
    with tempfile.TemporaryDirectory(prefix="exprmat-fingerprint-") as tmp:
        paths = (os.path.join(tmp, "data"), os.path.join(tmp, "indices"))
        with open(paths[0], "wb") as fd, open(paths[1], "wb") as fi:
            for band in _row_bands(x):
                band = sp.csr_matrix(band)
                if not band.has_sorted_indices:
                    band = band.copy()
                    band.sort_indices()
                dtype = band.data.dtype
                band.data.tofile(fd)
                band.indices.astype(np.int64, copy=False).tofile(fi)
                row_nnz.append(np.diff(band.indptr).astype(np.int64))
                nnz += band.nnz
        dtype = np.dtype(x.dtype) if dtype is None else dtype
        h.update(f"sparsecsr{shape}".encode())
        for path, dt in zip(paths, (dtype, np.dtype(np.int64))):
            h.update(f"A{dt.str}{(nnz,)}".encode())
            step = max(1, (1 << 24) // dt.itemsize)
            for off in range(0, nnz, step):
                h.update(memoryview(np.fromfile(path, dtype=dt, count=min(step, nnz - off),
                                                offset=off * dt.itemsize)).cast("B"))
    indptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(np.concatenate(row_nnz or [np.zeros(0, np.int64)]))])
    _update(h, indptr)


def fingerprint(obj) -> str:
    """A short content hash of an array, column, table or nested dict."""
    h = _h()
    _update(h, obj)
    return h.hexdigest()


_names_cache: dict[int, tuple] = {}  # id(index) -> (index, per-name hashes, digest, parent, unique)
_names_lock = threading.Lock()


def _names_entry(idx, element_hashes: np.ndarray, parent=None, unique=None) -> str:
    """Cache the per-name hashes of the (immutable) index ``idx`` and return its fingerprint;
    ``parent`` is ``(old_index, rows)`` when ``idx`` is ``old_index[rows]``."""
    h = _h()
    h.update(b"names")
    h.update(memoryview(np.ascontiguousarray(element_hashes)).cast("B"))
    value = h.hexdigest()
    with _names_lock:
        if len(_names_cache) > 16:  # at 1M cells an entry holds ~16 MB (hashes, kept rows)
            _names_cache.clear()
        _names_cache[id(idx)] = (idx, element_hashes, value, parent, unique)
    return value


def _names_hit(idx):
    hit = _names_cache.get(id(idx))
    return hit if hit is not None and hit[0] is idx else None


def obs_names_hash(adata) -> str:
    """Fingerprint of ``adata.obs_names``: a hash of the 64-bit hashes of the names
    (pandas' ``hash_array``, fixed key), cached for the index object, which is immutable."""
    idx = adata.obs_names
    hit = _names_hit(idx)
    if hit is not None:
        return hit[2]
    names = np.asarray(idx, dtype=object)
    return _names_entry(idx, pd.util.hash_array(names, categorize=False))


def names_are_unique(adata) -> bool:
    """Whether ``adata.obs_names`` has no duplicates; known without a hash table for an
    index an exclusion made from a unique one."""
    idx = adata.obs_names
    obs_names_hash(adata)
    hit = _names_hit(idx)
    if hit is not None and hit[4] is not None:
        return hit[4]
    unique = bool(idx.is_unique)
    if hit is not None:
        with _names_lock:
            _names_cache[id(idx)] = hit[:4] + (unique,)
    return unique


def carry_obs_names_hash(old_index, new_index, rows: np.ndarray) -> None:
    """After ``new_index = old_index[rows]``, seed the fingerprint cache of ``new_index``
    from the cached per-name hashes of ``old_index`` (a gather instead of re-hashing
    every name: exclusions on a million cells stay cheap) and remember ``rows``
    (strictly increasing, so a unique index stays unique)."""
    hit = _names_hit(old_index)
    if hit is not None:
        _names_entry(new_index, hit[1][rows], parent=(old_index, rows), unique=True if hit[4] else None)


def subset_rows(old_index, new_index) -> np.ndarray | None:
    """``rows`` with ``new_index = old_index[rows]`` if an exclusion made ``new_index`` from
    ``old_index`` in this session (see :func:`carry_obs_names_hash`), else None."""
    hit = _names_hit(new_index)
    if hit is None or hit[3] is None or hit[3][0] is not old_index:
        return None
    return hit[3][1]


def input_fingerprint(adata) -> dict:
    return {"n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars), "obs_names": obs_names_hash(adata)}


def output_fingerprint(adata, writes: list) -> dict:
    out = {}
    for slot, key in writes:
        if slot == "obs_names":
            out["obs_names"] = obs_names_hash(adata)
            continue
        if slot == "X":
            out["X"] = fingerprint(adata.X) if adata.X is not None else "absent"
            continue
        container = getattr(adata, slot)
        label = f"{slot}:{key}"
        if slot in ("obs", "var"):
            out[label] = fingerprint(container[key]) if key in container.columns else "absent"
        else:
            out[label] = fingerprint(container[key]) if key in container else "absent"
    return out


