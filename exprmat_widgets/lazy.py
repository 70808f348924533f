"""Open an atlas that does not fit in memory: ``X`` (and layers) on disk as dask arrays,
everything per cell that annotation needs (``obs``, ``obsm``, graphs) in memory.

anndata's own ``anndata.experimental.read_lazy`` also makes ``obs`` lazy (an xarray
dataset), but labels, merges and exclusions rewrite ``obs`` columns; at a million cells
``obs`` and a 2-D embedding take tens of MB, while ``X`` takes 10+ GB.  So the split here
is by size: the matrices are read lazily (``anndata.experimental.read_elem_lazy``, one
dask chunk per block of cells), the rest eagerly.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ExprmatError

__all__ = ["read_lazy"]

# non-zeros (sparse) or entries (dense) of one dask chunk of cells: about 256 MB as CSR
_CHUNK_ENTRIES = 1 << 25
_EAGER = ("obs", "var", "obsm", "varm", "obsp", "varp", "uns")


def _open(path: Path):
    if path.suffix == ".h5ad" or path.is_file():
        import h5py

        return h5py.File(path, "r")
    import gc

    import zarr

    # h5py objects of an earlier lazy h5ad, left in reference cycles, must not be collected
    # on zarr's I/O thread: their finalizer waits for h5py's lock there (h5py/h5py#2019; a
    # test run hung so)
    gc.collect()

    return zarr.open_group(str(path), mode="r")


def _cells_per_chunk(elem, n_obs: int, n_vars: int, chunk_cells: int | None) -> int:
    if chunk_cells is not None:
        return chunk_cells
    target = _CHUNK_ENTRIES
    if "data" in getattr(elem, "keys", lambda: ())():  # sparse: by the mean non-zeros per cell
        per_cell = elem["data"].shape[0] / max(1, n_obs)
        stored = (getattr(elem["data"], "chunks", None) or (0,))[0]
        if target < stored <= 4 * target:
            # a dask chunk smaller than a stored one would decompress that one twice
            target = stored
    else:
        per_cell = n_vars
    return int(max(1, min(n_obs, target // max(1.0, per_cell))))


def _lazy_matrix(elem, n_obs: int, n_vars: int, chunk_cells: int | None):
    import anndata as ad

    rows = _cells_per_chunk(elem, n_obs, n_vars, chunk_cells)
    return ad.experimental.read_elem_lazy(elem, chunks=(rows, n_vars))


def read_lazy(path, *, chunk_cells: int | None = None):
    """Read an ``.h5ad`` file or a ``.zarr`` store with ``X`` and layers left on disk.

    Parameters
    ----------
    path
        A file written by ``adata.write_h5ad`` or a store written by ``adata.write_zarr``
        (e.g. :mod:`benchmarks/atlas_store.py`'s chunked writer).  Reads ``obs``, ``var``,
        ``obsm``, ``varm``, ``obsp``, ``varp`` and ``uns`` (with its history,
        ``uns['commands']``) into memory; ``X``, ``layers`` and ``raw.X`` become dask arrays
        over the stored matrices (CSR chunks for sparse data), read only when computed.
    chunk_cells
        Cells per dask chunk; by default about 32M non-zeros (sparse) or entries (dense)
        per chunk, which bounds the memory of one block read.

    Returns
    -------
    An ``AnnData`` (not backed: commands that remove cells keep ``X`` lazy, as
    ``X[kept]``).  Markers read ``X`` in one pass over its cell blocks
    (:func:`exprmat_widgets.tl.markers`); annotation commands do not read it; colouring
    the Annotator by a gene computes that gene's column only.  Save the result with
    ``adata.write_zarr(new_path)`` or ``adata.write_h5ad(new_path)``: anndata writes a
    lazy ``X`` block by block.
    """
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise ExprmatError(f"read_lazy: {path} does not exist; pass the path of an .h5ad file or a .zarr store.")
    try:
        g = _open(path)
    except Exception as e:  # h5py and zarr raise a variety of types for a foreign file
        raise ExprmatError(
            f"read_lazy: {path} is neither an h5ad file nor a zarr store ({e}); write it with "
            "adata.write_h5ad / adata.write_zarr."
        ) from None
    if "obs" not in g or "var" not in g:
        raise ExprmatError(f"read_lazy: {path} has no obs / var; it is not an AnnData store (adata.write_zarr).")
    parts = {k: ad.io.read_elem(g[k]) for k in _EAGER if k in g}
    n_obs, n_vars = len(parts["obs"]), len(parts["var"])
    x = _lazy_matrix(g["X"], n_obs, n_vars, chunk_cells) if "X" in g else None
    layers = {k: _lazy_matrix(g["layers"][k], n_obs, n_vars, chunk_cells) for k in g.get("layers", {})}
    raw = None
    if "raw" in g and hasattr(g["raw"], "keys") and "X" in g["raw"]:  # anndata stores no raw as a scalar
        raw_var = ad.io.read_elem(g["raw"]["var"])
        raw = ad.AnnData(X=_lazy_matrix(g["raw"]["X"], n_obs, len(raw_var), chunk_cells),
                         obs=parts["obs"][[]], var=raw_var)
    return ad.AnnData(X=x, layers=layers, raw=raw, **parts)
