"""Cell Ontology ids beside a label column: ``obs['<key>_ontology_term_id']`` read as
``{label: CL id}``, written from such a mapping, and the id a new label takes (used by the
label, annotate, merge, rename and sub-clustering commands)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ExprmatError
from ..history import is_replaying
from . import ontology as _onto
from ._categorical import codes_and_categories

__all__ = ["resolve_label", "term_mapping", "write_terms"]


def term_mapping(adata, key: str) -> dict[str, str]:
    """``{label: CL id}`` of the labels of ``obs[key]`` that carry a Cell Ontology term,
    read from ``obs['<key>_ontology_term_id']`` (empty when that column does not exist).

    Parameters
    ----------
    adata
        Reads ``obs[key]`` and ``obs['<key>_ontology_term_id']``.
    key
        The label column.

    Returns
    -------
    dict
        One id per label (that of its first cell: the label commands give every cell of a
        label the same id).
    """
    tc = _onto.term_column(key)
    if key not in adata.obs.columns or tc not in adata.obs.columns:
        return {}
    codes, cats = codes_and_categories(adata, key)
    used, first = np.unique(codes, return_index=True)
    ids = adata.obs[tc].to_numpy()[first]
    return {cats[c]: str(i) for c, i in zip(used, ids) if c >= 0 and isinstance(i, str) and i}


def write_terms(adata, key: str, terms: dict) -> None:
    """``obs['<key>_ontology_term_id']`` from ``obs[key]`` and ``{label: id}`` (labels
    without an id are missing there); written once some label has an id."""
    tc = _onto.term_column(key)
    if tc not in adata.obs.columns and not any(terms.values()):
        return
    codes, cats = codes_and_categories(adata, key)
    ids = [terms.get(c) or None for c in cats]
    uniq = sorted({i for i in ids if i})
    pos = {t: j for j, t in enumerate(uniq)}
    lut = np.array([pos[i] if i else -1 for i in ids] + [-1], dtype=np.int64)
    adata.obs[tc] = pd.Categorical.from_codes(lut[codes], categories=uniq)
    unmapped = [c for c, i in zip(cats, ids) if not i]
    if unmapped:
        _onto.log_unmapped(key, unmapped)


def resolve_label(label: str, term, existing: str | None, what: str) -> tuple[str, str | None]:
    """``(label, CL id or None)`` for a label and its optional ``term``.

    ``term`` (a CL id or exact name / synonym) wins; ``''`` means "no term".  Without it a
    label written as a CL id becomes the term's name, a label that is exactly a term name or
    synonym takes that term (when the ontology is installed), and a label that already
    exists keeps its id.  Replaying a record written before terms existed (no ``term``)
    resolves nothing, as that run did not.
    """
    if term is not None:
        if not isinstance(term, str):
            raise ExprmatError(f"{what}: term must be a CL id or a term name (or '' for none), got {term!r}.")
        if not term.strip():
            return label, None
        if is_replaying() and _onto.is_term_id(term):
            return label, term.strip()  # checked when recorded: replay needs no ontology
        return label, _onto.resolve_term(term, what=f"{what}: term").id
    if is_replaying():
        return label, existing
    if _onto.is_term_id(label):
        t = _onto.resolve_term(label, what=f"{what}: label")
        return t.label, t.id
    if existing:
        return label, existing
    t = _onto.try_resolve(label)
    return label, (t.id if t else None)
