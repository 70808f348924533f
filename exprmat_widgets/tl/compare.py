"""Comparing two annotations of the same cells, and two histories of the same start data.

Neither routine changes the data (nothing is recorded).  Two annotations may come from
one AnnData (``key_a`` and ``key_b``) or from two files of the same cells (two
annotators' h5ads), matched by ``obs_names``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import _validate as v
from ..errors import ExprmatError
from ..history import hash_scheme, record_format

__all__ = ["Comparison", "compare_annotations", "diff_histories"]


@dataclass
class Comparison:
    """The result of :func:`compare_annotations`.

    Attributes
    ----------
    key_a, key_b
        The compared columns.
    table
        Contingency table (``DataFrame``): cells per (label of ``key_a`` = row, label of
        ``key_b`` = column); cells missing in either column are left out.
    ari
        Adjusted Rand index of the two partitions (1 = the same up to names).
    per_label_a, per_label_b
        One row per label: ``n_cells``, ``best_match`` (the label of the other
        annotation holding most of its cells) and ``agreement`` (the share of its cells
        in that label).
    n_cells, n_missing
        Cells compared; cells left out because either label is missing.
    obs_names
        The compared cells' names, in the order of the first AnnData.
    """

    key_a: str
    key_b: str
    table: pd.DataFrame
    ari: float
    per_label_a: pd.DataFrame
    per_label_b: pd.DataFrame
    n_cells: int
    n_missing: int
    codes_a: np.ndarray
    codes_b: np.ndarray
    obs_names: pd.Index

    def cells(self, label_a: str, label_b: str) -> np.ndarray:
        """Boolean mask (over :attr:`obs_names`) of the cells labelled ``label_a`` in
        ``key_a`` and ``label_b`` in ``key_b``: one cell of the table."""
        rows, cols = list(self.table.index), list(self.table.columns)
        if label_a not in rows or label_b not in cols:
            raise ExprmatError(
                f"compare: ({label_a!r}, {label_b!r}) is not a cell of the table; labels of {self.key_a}: "
                f"{rows[:10]}, of {self.key_b}: {cols[:10]}."
            )
        return (self.codes_a == rows.index(label_a)) & (self.codes_b == cols.index(label_b))


def _column(adata, key: str, where: str) -> pd.Series:
    if key not in adata.obs.columns:
        v.categorical(adata, key)  # the package's missing-key message
    col = adata.obs[key]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    return col.cat.rename_categories([str(c) for c in col.cat.categories])


def _aligned(adata, key_a: str, key_b: str, other) -> tuple[pd.Series, pd.Series]:
    a = _column(adata, key_a, "key_a")
    if other is None:
        return a, _column(adata, key_b, "key_b")
    b = _column(other, key_b, "key_b")
    names_a, names_b = adata.obs_names, other.obs_names
    if not names_a.is_unique or not names_b.is_unique:
        raise ExprmatError("compare_annotations: obs_names must be unique in both AnnDatas to match cells; "
                           "call obs_names_make_unique() first.")
    if len(names_a) != len(names_b) or not names_a.isin(names_b).all():
        only_a = names_a.difference(names_b)
        only_b = names_b.difference(names_a)
        raise ExprmatError(
            f"compare_annotations: the two annotations cover different cells ({len(only_a):,} only in the "
            f"first, e.g. {list(only_a[:3])}; {len(only_b):,} only in the second, e.g. {list(only_b[:3])}); "
            "compare the shared cells: `a = a[a.obs_names.isin(b.obs_names)].copy()` and the same for b."
        )
    return a, b.reindex(names_a)


def _per_label(table: pd.DataFrame) -> pd.DataFrame:
    n = table.sum(axis=1)
    best = table.to_numpy().argmax(axis=1) if table.shape[1] else np.zeros(len(table), int)
    top = table.to_numpy().max(axis=1) if table.shape[1] else np.zeros(len(table))
    share = np.divide(top, n.to_numpy(), out=np.zeros(len(table)), where=n.to_numpy() > 0)
    return pd.DataFrame({"n_cells": n.to_numpy(), "best_match": [str(table.columns[i]) for i in best],
                         "agreement": share}, index=table.index)


def compare_annotations(adata, key_a: str, key_b: str, other=None) -> Comparison:
    """Contingency table and agreement of two annotations of the same cells.

    Parameters
    ----------
    adata
        Reads ``obs[key_a]`` (and ``obs[key_b]`` when ``other`` is ``None``).
    key_a, key_b
        Categorical (or string) obs columns, e.g. ``'bulk_labels'`` and ``'leiden'``.
    other
        A second AnnData of the same cells (another annotator's file) holding
        ``obs[key_b]``; cells are matched by ``obs_names`` (any order).

    Returns
    -------
    Comparison
        ``table``, ``ari``, ``per_label_a`` / ``per_label_b`` (share of each label's cells
        in its best-matching label of the other annotation) and ``cells(a, b)``.

    Raises
    ------
    ExprmatError
        A missing column, or two AnnDatas over different cells.
    """
    from sklearn.metrics import adjusted_rand_score

    a, b = _aligned(adata, key_a, key_b, other)
    ca, cb = a.cat.codes.to_numpy(), b.cat.codes.to_numpy()
    both = (ca >= 0) & (cb >= 0)
    if not both.any():
        raise ExprmatError(f"compare_annotations: no cell has a label in both obs[{key_a!r}] and obs[{key_b!r}].")
    na, nb = len(a.cat.categories), len(b.cat.categories)
    counts = np.bincount(ca[both] * nb + cb[both], minlength=na * nb).reshape(na, nb)
    table = pd.DataFrame(counts, index=pd.Index(a.cat.categories, name=key_a),
                         columns=pd.Index(b.cat.categories, name=key_b))
    # labels without a compared cell would only add empty rows / columns
    keep_r, keep_c = counts.sum(axis=1) > 0, counts.sum(axis=0) > 0
    lut_r = np.where(keep_r, np.cumsum(keep_r) - 1, -1)
    lut_c = np.where(keep_c, np.cumsum(keep_c) - 1, -1)
    table = table.loc[keep_r, keep_c]
    codes_a = np.where(both, lut_r[np.maximum(ca, 0)], -1)
    codes_b = np.where(both, lut_c[np.maximum(cb, 0)], -1)
    ari = float(adjusted_rand_score(ca[both], cb[both]))
    return Comparison(key_a, key_b, table, ari, _per_label(table), _per_label(table.T),
                      int(both.sum()), int((~both).sum()), codes_a, codes_b, adata.obs_names)


def _records(h, what: str) -> list[dict]:
    from ..history import get_records

    if isinstance(h, (list, tuple)):
        recs = get_records(list(h))
    elif hasattr(h, "uns"):
        recs = get_records(h)
    else:
        raise ExprmatError(f"diff_histories: {what} must be an AnnData or a list of history records.")
    if not recs:
        raise ExprmatError(f"diff_histories: {what} has no history (adata.uns['commands'] is empty).")
    return recs


def _short(params: dict) -> str:
    text = json.dumps(params, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def _differing_params(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def diff_histories(a, b) -> pd.DataFrame:
    """The steps where two histories of the same start data part ways.

    Parameters
    ----------
    a, b
        AnnDatas (their ``uns['commands']``) or lists of records.

    Returns
    -------
    pandas.DataFrame
        One row per step from the first difference on: ``step``, ``status``
        (``'params'``: same command, other parameters; ``'command'``: another command;
        ``'result'``: same command and parameters, another result (the data had
        already parted); ``'format'``: same command and parameters, results hashed by
        two history formats, so not comparable; ``'only a'`` / ``'only b'``: one history
        is longer), the
        command and parameters of each side and ``differs`` (the parameters that
        differ).  Empty when the histories are the same.  ``attrs['common_steps']`` is
        the number of identical steps before the first difference.

    Raises
    ------
    ExprmatError
        Histories that do not start from the same data (their first steps' input
        fingerprints differ).
    """
    ra, rb = _records(a, "a"), _records(b, "b")
    if ra[0]["input"] != rb[0]["input"]:
        raise ExprmatError(
            f"diff_histories: the two histories start from different data ({ra[0]['input']} vs "
            f"{rb[0]['input']}); compare histories of the same start data (e.g. two annotators' files "
            "made from one h5ad)."
        )
    rows = []
    common = None
    for i in range(max(len(ra), len(rb))):
        x = ra[i] if i < len(ra) else None
        y = rb[i] if i < len(rb) else None
        if x is None or y is None:
            status = "only a" if y is None else "only b"
        elif x["command"] != y["command"]:
            status = "command"
        elif x["params"] != y["params"]:
            status = "params"
        elif x["output"] != y["output"] or x["input"] != y["input"]:
            scheme = {hash_scheme(record_format(r)) for r in (x, y)}
            status = "format" if len(scheme) > 1 and x["input"] == y["input"] else "result"
        else:
            status = "same"
        if status == "same" and common is None:
            continue
        if common is None:
            common = i
        rows.append({
            "step": i, "status": status,
            "command_a": x["command"] if x else None, "params_a": _short(x["params"]) if x else None,
            "command_b": y["command"] if y else None, "params_b": _short(y["params"]) if y else None,
            "differs": ", ".join(_differing_params(x["params"], y["params"])) if status == "params" else "",
        })
    cols = ["step", "status", "command_a", "params_a", "command_b", "params_b", "differs"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["common_steps"] = len(ra) if common is None else common
    return out
