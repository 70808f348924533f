"""Gene blocks of a lazy (dask) matrix from one pass over its cells.

Marker statistics are computed gene block by gene block (genes are independent), but a
cells x genes matrix on disk is stored by cells: slicing it by genes re-reads the whole
matrix for every block (cells x gene blocks of I/O: about an hour at 1M cells). This module
reads each stored cell block once (:func:`cell_blocks`), splits it by gene block and appends the pieces to
temporary files (sparse rows stay sparse: 4 bytes of column index plus the value per
non-zero), then hands back each gene block as one in-memory matrix. dask has no "transpose
a chunked sparse matrix to disk" operation, which is why it is written here.

Under ``dask.distributed`` the cell blocks are computed by the cluster's workers (each
``compute`` goes to the active client); the split and the spill run in this process.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import scipy.sparse as sp

# one cell block read at a time holds at most about this many matrix entries (dense) or
# non-zeros (sparse) beside the pieces being written
_ROW_BLOCK_ENTRIES = 1 << 26
# a gene block handed back holds at most about this many non-zeros (sparse) / entries (dense)
_GENE_BLOCK_ENTRIES = 1 << 27


def _row_bounds(x) -> list[tuple[int, int]]:
    """Row ranges aligned to the stored chunks (each chunk is read once), small chunks
    merged up to about ``_ROW_BLOCK_ENTRIES`` entries."""
    target = max(1, _ROW_BLOCK_ENTRIES // max(1, x.shape[1]))
    bounds, start, stop = [], 0, 0
    for size in x.chunks[0]:
        if stop > start and stop - start + size > target:
            bounds.append((start, stop))
            start = stop
        stop += size
    if stop > start:
        bounds.append((start, stop))
    return bounds


def _read(x, r0: int, r1: int):
    return x[r0:r1].compute()


def cell_blocks(x, check=None, *, prefetch: bool = True):
    """``(first, stop, block)`` for consecutive cell blocks of the dask array ``x``, each
    stored chunk computed once; ``check(block)`` is called on each before it is yielded.

    With ``prefetch`` the next block is read in a thread while the caller works on this
    one (reading and decompressing is as slow as the statistics of a block), so two blocks
    are in memory at once."""
    bounds = _row_bounds(x)
    if not prefetch or len(bounds) < 2:
        for r0, r1 in bounds:
            block = _read(x, r0, r1)
            if check is not None:
                check(block)
            yield r0, r1, block
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="em-read-ahead") as pool:
        ahead = pool.submit(_read, x, *bounds[0])
        for k, (r0, r1) in enumerate(bounds):
            block = ahead.result()
            ahead = pool.submit(_read, x, *bounds[k + 1]) if k + 1 < len(bounds) else None
            if check is not None:
                check(block)
            yield r0, r1, block
            del block


class GeneBlocks:
    """The gene blocks of ``x`` (cells x genes, dask), built by :meth:`read`.

    ``check(block)`` is called on every cell block as it is read (e.g. a validation that
    raises). ``fine`` genes per spilled piece; iterating yields ``(first, stop, matrix)``
    with CSR (sparse input) or C-ordered dense matrices of consecutive genes.
    """

    def __init__(self, x, *, check=None, fine: int | None = None, dir: str | None = None):
        self.shape = tuple(int(s) for s in x.shape)
        n_cells, n_genes = self.shape
        self.fine = max(1, min(n_genes, fine or (1 << 26) // max(1, n_cells)))
        self.starts = list(range(0, n_genes, self.fine)) or [0]
        self._x, self._check = x, check
        self._tmp = tempfile.TemporaryDirectory(prefix="exprmat-gene-blocks-", dir=dir)
        self.sparse = None
        self.dtype = None
        self._row_nnz = None  # per piece: non-zeros of every cell (sparse)
        self._dense = None  # per piece: memmap (dense)

    def _path(self, k: int, part: str) -> str:
        return os.path.join(self._tmp.name, f"{k}.{part}")

    def read(self) -> GeneBlocks:
        """One pass over the cells of ``x``."""
        n_cells, n_genes = self.shape
        for r0, r1, block in cell_blocks(self._x, self._check):
            if self.sparse is None:
                self.sparse = sp.issparse(block)
                self.dtype = block.dtype
                if self.sparse:
                    self._row_nnz = [np.zeros(n_cells, dtype=np.int64) for _ in self.starts]
                else:
                    self._dense = [
                        np.lib.format.open_memmap(
                            self._path(k, "npy"), mode="w+", dtype=block.dtype,
                            shape=(n_cells, min(n_genes, a + self.fine) - a),
                        )
                        for k, a in enumerate(self.starts)
                    ]
            if self.sparse:
                block = block.tocsr() if block.format != "csr" else block
                # one stable sort of the entries by piece (rows and their order kept) instead of
                # a column slice per piece, each of which would scan every entry of the block
                n_rows, n_pieces = r1 - r0, len(self.starts)
                piece = block.indices // self.fine
                order = np.argsort(piece, kind="stable")
                rows = np.repeat(np.arange(n_rows), np.diff(block.indptr))
                row_nnz = np.bincount(piece * n_rows + rows, minlength=n_pieces * n_rows).reshape(n_pieces, n_rows)
                idx, val = block.indices[order], block.data[order]
                ends = np.cumsum(row_nnz.sum(axis=1))
                for k, a in enumerate(self.starts):
                    sl = slice(ends[k] - row_nnz[k].sum(), ends[k])
                    self._row_nnz[k][r0:r1] = row_nnz[k]
                    with open(self._path(k, "idx"), "ab") as f:
                        f.write((idx[sl] - a).astype(np.int32).tobytes())
                    with open(self._path(k, "val"), "ab") as f:
                        f.write(np.ascontiguousarray(val[sl], dtype=self.dtype).tobytes())
                del piece, order, rows, idx, val
            else:
                block = np.asarray(block)
                for k, a in enumerate(self.starts):
                    self._dense[k][r0:r1] = block[:, a:a + self.fine]
            del block
        return self

    def _piece(self, k: int):
        n_cells = self.shape[0]
        width = min(self.shape[1], self.starts[k] + self.fine) - self.starts[k]
        if not self.sparse:
            return np.array(self._dense[k])
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        np.cumsum(self._row_nnz[k], out=indptr[1:])
        idx = np.fromfile(self._path(k, "idx"), dtype=np.int32) if indptr[-1] else np.zeros(0, np.int32)
        val = np.fromfile(self._path(k, "val"), dtype=self.dtype) if indptr[-1] else np.zeros(0, self.dtype)
        # sorted only when the stored rows were (real files often are not): scipy checks
        return sp.csr_matrix((val, idx, indptr), shape=(n_cells, width))

    def __iter__(self):
        """Consecutive pieces merged up to about ``_GENE_BLOCK_ENTRIES`` values."""
        if self.sparse is None:
            self.read()
        k, n = 0, len(self.starts)
        while k < n:
            group, size = [], 0
            while k < n:
                piece_size = (int(self._row_nnz[k].sum()) if self.sparse
                              else self.shape[0] * min(self.fine, self.shape[1] - self.starts[k]))
                if group and size + piece_size > _GENE_BLOCK_ENTRIES:
                    break
                group.append(self._piece(k))
                size += piece_size
                k += 1
            first = self.starts[k - len(group)]
            stop = min(self.shape[1], self.starts[k - 1] + self.fine)
            if len(group) == 1:
                m = group[0]
            elif self.sparse:
                m = sp.hstack(group, format="csr")
            else:
                m = np.ascontiguousarray(np.hstack(group))
            del group
            yield first, stop, m

    def close(self) -> None:
        self._dense = None
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
