"""The statistics of :func:`~exprmat_widgets.tl.markers`: per-group means, fractions and
rest statistics from the group sums, the t-tests (scipy) and Wilcoxon scores from the rank
sums of :mod:`._wilcoxon`, p-value corrections and log fold changes, the same operations in
the same order as scanpy's so the bits match, with few groups x genes temporaries.  A dask
``X`` is read once by cell blocks (:mod:`._gene_blocks`)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ._gene_blocks import GeneBlocks, cell_blocks
from ._wilcoxon import group_stats, rank_sums, rank_sums_vs_reference


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of each row, a row at a time (the temporaries
    are one row, not five groups x genes tables; each row's operations are the same)."""
    p = np.asarray(p)
    if p.ndim == 1:
        return _bh(p[None])[0]
    n = p.shape[-1]
    rank = np.arange(1, n + 1) / float(n)
    out = np.empty(p.shape, dtype=np.result_type(p.dtype, rank.dtype))
    for i in range(p.shape[0]):
        order = np.argsort(p[i])
        adj = p[i][order] / rank
        adj = np.minimum.accumulate(adj[::-1])[::-1]
        out[i, order] = np.minimum(adj, 1.0)
    return out


def _mean_var(s, q, n, *, in_place=False):
    if in_place:  # s is a temporary of the caller's: it becomes the means
        s /= n
        mean = s
    else:
        mean = s / n
    if q is None:  # only the means wanted (the Wilcoxon test): no variance temporaries
        return mean, None
    var = q / n - mean**2
    if np.ndim(n) == 0:
        if n != 1:
            var = var * (n / (n - 1))
    else:
        var = var * np.where(n != 1, n / np.maximum(n - 1, 1), 1.0)
    return mean, var


def _compute(x, codes, n_groups, ref, method, tie_correct, corr_method, expm1, known=None):
    """Statistics of every tested group.  ``codes``: group index per cell (-1 for cells
    in no tested group); ``ref``: index of the reference group or None for 'rest';
    ``known``: :func:`group_stats` of ``x`` when already computed (``x`` is then only read by
    the Wilcoxon test)."""
    n_cells = codes.size
    ranked = None
    if method == "wilcoxon" and known is None:
        # one pass over sorted CSR data gives the rank sums and the group sums together
        if ref is None:
            rs, ties, _, known = rank_sums(x, codes, n_groups, with_stats=True)
        else:
            rs, ties, known = rank_sums_vs_reference(x, codes, n_groups, ref, with_stats=True)
        ranked = rs, ties
    s, q, nz = group_stats(x, codes, n_groups) if known is None else known
    known = None
    sizes = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.int64)
    t_test = method in ("t-test", "t-test_overestim_var")
    if not t_test:
        q = None  # the rank tests need no sums of squares
    mean, var = _mean_var(s[:n_groups], q[:n_groups] if t_test else None, sizes[:, None].astype(float))
    pts = nz[:n_groups] / sizes[:, None]
    tested = [g for g in range(n_groups) if g != ref]
    out = {"pts": pts, "tested": tested}
    if ref is None:
        n_rest = n_cells - sizes
        # the rest = all - group, divided in place: the same values with one temporary each
        mean_r = np.subtract(s[-1], s[:n_groups])
        s = None
        mean_r, var_r = _mean_var(mean_r, q[-1] - q[:n_groups] if t_test else None, n_rest[:, None].astype(float),
                                  in_place=True)
        rest = np.subtract(nz[-1], nz[:n_groups], dtype=np.float64)
        nz = None
        rest /= n_rest[:, None]
        out["pts_rest"] = rest
    else:
        mean_r = np.broadcast_to(mean[ref], mean.shape)
        var_r = np.broadcast_to(var[ref], var.shape) if t_test else None
        n_rest = np.full(n_groups, sizes[ref])
    # the group sums (3 x groups x genes) are not needed past here: freed before the tests
    # allocate theirs (peak memory at many groups)
    s = q = nz = None
    if method == "logreg":
        return out
    lfc = None
    if not t_test:  # the means are needed only here: freed before the rank statistics
        lfc = _log_fold_changes(mean, mean_r, expm1)
        del mean, mean_r

    if t_test:
        n_other = n_rest if method == "t-test" else sizes
        with np.errstate(invalid="ignore", divide="ignore"):
            scores, pvals = stats.ttest_ind_from_stats(
                mean1=mean,
                std1=np.sqrt(var),
                nobs1=sizes[:, None],
                mean2=mean_r,
                std2=np.sqrt(var_r),
                nobs2=n_other[:, None],
                equal_var=False,
            )
        scores = np.asarray(scores, dtype=np.float64).copy()
        pvals = np.asarray(pvals, dtype=np.float64).copy()
        scores[np.isnan(scores)] = 0
        pvals[np.isnan(pvals)] = 1
    else:  # wilcoxon
        n_genes = x.shape[1]
        scores = np.zeros((n_groups, n_genes))
        if ref is None:
            rs, ties = ranked if ranked is not None else rank_sums(x, codes, n_groups)[:2]
            coef = _tie_coef(ties, n_cells) if tie_correct else None
            for g in tested:
                n_a = int(sizes[g])
                if tie_correct:
                    std = np.sqrt(coef * n_a * (n_cells - n_a) * (n_cells + 1) / 12.0)
                else:
                    std = np.sqrt(1 * n_a * (n_cells - n_a) * (n_cells + 1) / 12.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    scores[g] = (rs[g] - (n_a * (n_cells + 1) / 2.0)) / std
        else:
            rs, ties = ranked if ranked is not None else rank_sums_vs_reference(x, codes, n_groups, ref)
            m_a = int(sizes[ref])
            for g in tested:
                n_a = int(sizes[g])
                coef = _tie_coef(ties[g], n_a + m_a) if tie_correct else 1
                std = np.sqrt(coef * n_a * m_a * (n_a + m_a + 1) / 12.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    scores[g] = (rs[g] - (n_a * ((n_a + m_a + 1) / 2.0))) / std
        ranked = rs = ties = None
        scores[np.isnan(scores)] = 0
        # stats.norm.sf(|z|) is special.ndtr(-|z|); computed in place, without its temporaries
        pvals = np.abs(scores)
        np.negative(pvals, out=pvals)
        special.ndtr(pvals, out=pvals)
        pvals *= 2

    padj = _correct(pvals, corr_method)
    if lfc is None:
        lfc = _log_fold_changes(mean, mean_r, expm1)
    out.update(scores=scores, pvals=pvals, pvals_adj=padj, logfoldchanges=lfc)
    return out


def _log_fold_changes(mean, mean_r, expm1):
    """scanpy's ``log2((expm1(mean) + 1e-9) / (expm1(mean_rest) + 1e-9))``, in place: the
    same operations in the same order (same bits), two temporaries instead of five."""
    lfc = expm1(mean)
    lfc += 1e-9
    rest = expm1(mean_r)
    rest += 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(lfc, rest, out=lfc)
        np.log2(lfc, out=lfc)
    return lfc


def _correct(pvals, corr_method):
    """Adjusted p-values over all genes of each group (None: left to the caller)."""
    if corr_method is None:
        return None
    if corr_method == "benjamini-hochberg":
        return _bh(pvals)
    return np.minimum(pvals * pvals.shape[1], 1.0)


def _is_dask(x) -> bool:
    return type(x).__module__.split(".")[0] == "dask"


def _compute_blocks(x, codes, n_groups, ref, method, tie_correct, corr_method, expm1, check):
    """:func:`_compute` for in-memory matrices; a dask array is read once, by cell blocks,
    into gene blocks on disk (:mod:`._gene_blocks`), and tested one gene block at a time
    (genes are independent), so only a block is in memory at once; the correction runs over
    all genes at the end.  The results are identical to the in-memory ones."""
    if not _is_dask(x):
        return _compute(x, codes, n_groups, ref, method, tie_correct, corr_method, expm1)
    if method != "wilcoxon":  # group sums are all the t-tests need: one pass, nothing spilled
        known = None
        for r0, r1, block in cell_blocks(x, check):
            known = group_stats(block, codes[r0:r1], n_groups, out=known)
        return _compute(None, codes, n_groups, ref, method, tie_correct, corr_method, expm1, known=known)
    parts = []
    with GeneBlocks(x, check=check) as blocks:
        for _first, _stop, xb in blocks:
            parts.append(_compute(xb, codes, n_groups, ref, method, tie_correct, None, expm1))
            del xb
    out = {"tested": parts[0]["tested"]}
    for f in ("pts", "pts_rest", "scores", "pvals", "logfoldchanges"):
        if f in parts[0]:
            out[f] = np.concatenate([np.asarray(p_[f]) for p_ in parts], axis=1)
    if "pvals" in out:
        out["pvals_adj"] = _correct(out["pvals"], corr_method)
    return out


def _tie_coef(ties, n):
    size = np.float64(n)
    if n < 2:
        return np.ones_like(ties)
    return 1.0 - ties / (size**3 - size)
