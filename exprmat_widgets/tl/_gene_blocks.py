"""Gene blocks of a lazy (dask) matrix from one pass over its cells.

Marker statistics are computed gene block by gene block (genes are independent), but a
cells x genes matrix on disk is stored by cells: slicing it by genes re-reads the whole
matrix for every block (cells x gene blocks of I/O: about an hour at 1M cells). This module
reads each stored cell block once (:func:`cell_blocks`), splits it by gene block and appends the pieces to
temporary files (sparse rows stay sparse: 4 bytes of column index plus the value per
non-zero), then hands back each gene block as one in-memory matrix. dask has no "transpose
a chunked sparse matrix to disk" operation, which is why it is written here; the split of a
cell block by piece and the joining of pieces into a gene block are two small numba loops
(a stable counting sort and a row-wise placement: one pass each, where numpy's stable
argsort and scipy's ``hstack`` cost most of the pass at 1M cells).

Under ``dask.distributed`` the cell blocks are computed by the cluster's workers (each
``compute`` goes to the active client); the split and the spill run in this process.
"""

from __future__ import annotations

import os
import tempfile

import numba
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


@numba.njit(cache=True, nogil=True)
def _split_rows(indices, indptr, data, fine, row_nnz, out_idx, out_val):
    """A counting sort of a CSR block's entries by piece (``indices // fine``), stable: per
    piece the entries keep their order (rows in order, each row's order kept), with column
    indices made relative to the piece.  ``row_nnz`` (pieces x rows, zeros) gets each piece's
    non-zeros per row; returns where each piece starts in ``out_idx`` / ``out_val``.  Two
    passes over the entries, where a stable argsort of the pieces cost ~30x more."""
    n_rows = indptr.size - 1
    n_pieces = row_nnz.shape[0]
    for r in range(n_rows):
        for k in range(indptr[r], indptr[r + 1]):
            row_nnz[indices[k] // fine, r] += 1
    starts = np.zeros(n_pieces + 1, np.int64)
    for q in range(n_pieces):
        total = 0
        for r in range(n_rows):
            total += row_nnz[q, r]
        starts[q + 1] = starts[q] + total
    pos = starts[:-1].copy()
    for r in range(n_rows):
        for k in range(indptr[r], indptr[r + 1]):
            q = indices[k] // fine
            at = pos[q]
            out_idx[at] = indices[k] - q * fine
            out_val[at] = data[k]
            pos[q] = at + 1
    return starts


@numba.njit(cache=True, nogil=True)
def _place_piece(row_nnz, idx, val, offset, fill, out_idx, out_val):
    """Put one spilled piece's rows into a wider CSR at ``fill`` (per row, the next free
    position; moved on), its columns shifted by ``offset``: what ``scipy.sparse.hstack``
    of the pieces gives, without its per-call conversions."""
    p = 0
    for r in range(row_nnz.size):
        at = fill[r]
        for _ in range(row_nnz[r]):
            out_idx[at] = idx[p] + offset
            out_val[at] = val[p]
            at += 1
            p += 1
        fill[r] = at


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
                # one stable counting sort of the entries by piece (rows and their order kept)
                # instead of a column slice per piece, each of which would scan every entry
                n_rows, n_pieces = r1 - r0, len(self.starts)
                row_nnz = np.zeros((n_pieces, n_rows), dtype=np.int64)
                idx = np.empty(block.nnz, dtype=np.int32)
                val = np.empty(block.nnz, dtype=self.dtype)
                data = block.data if block.dtype == self.dtype else block.data.astype(self.dtype)
                ends = _split_rows(block.indices, block.indptr.astype(np.int64, copy=False), data, self.fine,
                                   row_nnz, idx, val)
                for k in range(n_pieces):
                    sl = slice(ends[k], ends[k + 1])
                    self._row_nnz[k][r0:r1] = row_nnz[k]
                    with open(self._path(k, "idx"), "ab") as f:
                        idx[sl].tofile(f)  # no intermediate bytes copy
                    with open(self._path(k, "val"), "ab") as f:
                        val[sl].tofile(f)
                del idx, val, data, row_nnz
            else:
                block = np.asarray(block)
                for k, a in enumerate(self.starts):
                    self._dense[k][r0:r1] = block[:, a:a + self.fine]
            del block
        return self

    def _sparse_block(self, k0: int, k1: int, sizes: list[int]):
        """Pieces ``k0..k1-1`` (``sizes``: non-zeros of each piece) side by side as one CSR
        (their rows joined in piece order)."""
        n_cells = self.shape[0]
        width = min(self.shape[1], self.starts[k1 - 1] + self.fine) - self.starts[k0]
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        np.cumsum(np.sum(self._row_nnz[k0:k1], axis=0), out=indptr[1:])
        nnz = int(indptr[-1])
        out_idx = np.empty(nnz, dtype=np.int32)
        out_val = np.empty(nnz, dtype=self.dtype)
        fill = indptr[:-1].copy()
        for k in range(k0, k1):
            if not sizes[k]:
                continue
            # mapped, not read into a copy: the kernel reads the pages once
            idx = np.memmap(self._path(k, "idx"), dtype=np.int32, mode="r")
            val = np.memmap(self._path(k, "val"), dtype=self.dtype, mode="r")
            _place_piece(self._row_nnz[k], idx, val, self.starts[k] - self.starts[k0], fill, out_idx, out_val)
            del idx, val
        # sorted only when the stored rows were (real files often are not): scipy checks
        return sp.csr_matrix((out_val, out_idx, indptr), shape=(n_cells, width))

    def __iter__(self):
        """Consecutive pieces merged up to about ``_GENE_BLOCK_ENTRIES`` values."""
        if self.sparse is None:
            self.read()
        n = len(self.starts)
        sizes = ([int(r.sum()) for r in self._row_nnz] if self.sparse
                 else [self.shape[0] * min(self.fine, self.shape[1] - a) for a in self.starts])
        k = 0
        while k < n:
            k0, size = k, 0
            while k < n:
                if k > k0 and size + sizes[k] > _GENE_BLOCK_ENTRIES:
                    break
                size += sizes[k]
                k += 1
            first = self.starts[k0]
            stop = min(self.shape[1], self.starts[k - 1] + self.fine)
            if self.sparse:
                m = self._sparse_block(k0, k, sizes)
            else:
                m = np.ascontiguousarray(np.hstack([self._dense[j] for j in range(k0, k)]))
            yield first, stop, m
            del m

    def close(self) -> None:
        self._dense = None
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
