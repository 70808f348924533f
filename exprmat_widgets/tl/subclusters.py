"""Writing sub-clusters into a label column: bounded, never reused names, the parent's place
in the category order, a table of where each sub-cluster came from, and the parent's Cell
Ontology id when all its parents share one (used by ``em.subcluster`` and ``em.leiden`` with
``restrict_to``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ExprmatError
from . import ontology as _onto
from ._categorical import codes_and_categories, previous_colors, write_categorical
from .cell_terms import term_mapping, write_terms

__all__ = ["MAX_JOINED_PARENTS", "MAX_JOINED_PREFIX", "SUBCLUSTER_STEM", "write_subclusters"]

SUBCLUSTER_STEM = "sub"
"""Prefix of sub-clusters drawn from several labels whose joined names would be long."""
MAX_JOINED_PREFIX = 24
"""Longest ``'<a>-<b>'`` prefix (scanpy's naming) kept for a selection spanning several labels."""
MAX_JOINED_PARENTS = 3
"""Most labels joined into such a prefix."""
_TABLE_COLUMNS = ["name", "parent", "n_cells"]


def _subclusters_table(adata, out_key: str) -> pd.DataFrame | None:
    t = adata.uns.get(f"{out_key}_subclusters")
    return t if isinstance(t, pd.DataFrame) and list(t.columns) == _TABLE_COLUMNS else None


def _subcluster_prefix(parents: list[str]) -> str:
    if len(parents) == 1:
        return parents[0]
    joined = "-".join(parents)
    # joining every label of a selection multiplies name lengths with each round
    # (560,482 characters after four re-clusters), so only short joins are kept
    short = 0 < len(parents) <= MAX_JOINED_PARENTS and len(joined) <= MAX_JOINED_PREFIX
    return joined if short else SUBCLUSTER_STEM


def _first_free_index(prefix: str, n: int, taken: set) -> int:
    head = f"{prefix},"
    used = {int(t[len(head):]) for t in taken if t.startswith(head) and t[len(head):].isdigit()}
    return 0 if not any(i in used for i in range(n)) else max(used) + 1


def _inherited_terms(adata, key, out_key, new_labels, pair, n_unlabelled, cats) -> dict | None:
    """``{label: CL id}`` for ``obs[out_key]`` after sub-clustering, or ``None`` when neither
    column carries ids."""
    if _onto.term_column(key) not in adata.obs.columns and _onto.term_column(out_key) not in adata.obs.columns:
        return None
    known = term_mapping(adata, key)
    terms = dict(known)
    for g, name in enumerate(new_labels):
        ids = {known.get(cats[p]) for p in np.flatnonzero(pair[g])}
        terms[name] = ids.pop() if len(ids) == 1 and None not in ids and not n_unlabelled[g] else None
    return terms


def write_subclusters(adata, key: str, out_key: str, mask: np.ndarray, groups: np.ndarray, *,
                      where: str, resolution: float) -> list[str]:
    """Write the Leiden ``groups`` (0, 1, ...) of the ``mask`` cells into ``obs[out_key]``, the
    other cells keeping their ``obs[key]`` label; shared by :func:`subcluster` and
    :func:`exprmat_widgets.tl.clustering.leiden` with ``restrict_to``.

    Names are ``'<parent>,<i>'`` when the selection lies within one label,
    ``'<a>-<b>,<i>'`` (scanpy's naming) when it spans at most
    :data:`MAX_JOINED_PARENTS` labels whose joined name is at most
    :data:`MAX_JOINED_PREFIX` characters, else ``'sub,<i>'``;
    unlabelled cells only give ``'sub,<i>'`` too.  The numbering skips names used by
    the other cells or recorded in ``uns['<out_key>_subclusters']``, so names are
    never reused.  The sub-clusters take the place of their (first) parent in the
    category order; the other categories keep theirs.  One row per (sub-cluster,
    parent) is appended to ``uns['<out_key>_subclusters']`` (DataFrame ``name``,
    ``parent``, ``n_cells``: how many of its cells had that parent label).

    When ``obs['<key>_ontology_term_id']`` exists, ``obs['<out_key>_ontology_term_id']`` is
    written too: the other cells keep their label's id, and a sub-cluster takes its parents'
    id when all of them (and no unlabelled cell) share one; otherwise it has none.

    A single group that is all the cells of its parent label(s) would only rename them:
    that is refused (nothing changes); a single group of part of a label is written.
    Returns the new names.
    """
    n_groups = int(groups.max()) + 1
    codes, cats = codes_and_categories(adata, key)
    n_cats = len(cats)
    sel = codes[mask]
    labelled = sel >= 0
    rest = codes[~mask]
    rest_used = np.bincount(rest[rest >= 0], minlength=n_cats) > 0
    # cells per (group, parent) in one bincount; parents in category order
    pair = np.bincount(groups[labelled] * n_cats + sel[labelled], minlength=n_groups * n_cats)
    pair = pair.reshape(n_groups, n_cats)
    parents = np.flatnonzero(pair.sum(axis=0))
    if n_groups < 2 and labelled.all() and not rest_used[parents].any():
        # (a single group of part of a label still carves the selection out of it)
        raise ExprmatError(
            f"{where}: Leiden at resolution {resolution:g} finds a single cluster in the {int(mask.sum())} "
            f"selected cells, all the cells of {[cats[i] for i in parents]}, so re-clustering would only "
            "rename them; nothing changed. Raise the resolution to split them (em.merge_clusters merges labels)."
        )
    prefix = _subcluster_prefix([cats[i] for i in parents])
    table = _subclusters_table(adata, out_key)
    taken = {cats[i] for i in np.flatnonzero(rest_used)}
    if table is not None:
        taken |= set(table["name"].astype(str))
    first = _first_free_index(prefix, n_groups, taken)
    new_labels = [f"{prefix},{first + i}" for i in range(n_groups)]
    anchor = int(parents[0]) if len(parents) else -1
    out_cats: list[str] = []
    lut = np.full(n_cats + 1, -1, dtype=np.int64)
    new_pos = -1
    for i, c in enumerate(cats):
        if rest_used[i]:
            lut[i] = len(out_cats)
            out_cats.append(c)
        if i == anchor:
            new_pos = len(out_cats)
            out_cats.extend(new_labels)
    if new_pos < 0:
        new_pos = len(out_cats)
        out_cats.extend(new_labels)
    new_codes = lut[codes]
    new_codes[mask] = new_pos + groups
    g_idx, p_idx = np.nonzero(pair)
    rows = pd.DataFrame({
        "name": [new_labels[g] for g in g_idx],
        "parent": [cats[p] for p in p_idx],
        "n_cells": pair[g_idx, p_idx].astype(np.int64),
    })
    n_unlabelled = np.bincount(groups[~labelled], minlength=n_groups)
    terms = _inherited_terms(adata, key, out_key, new_labels, pair, n_unlabelled, cats)
    previous = previous_colors(adata, key)
    write_categorical(adata, out_key, new_codes, out_cats, previous)
    if terms is not None:
        write_terms(adata, out_key, terms)
    adata.uns[f"{out_key}_subclusters"] = rows if table is None else pd.concat([table, rows], ignore_index=True)
    return new_labels
