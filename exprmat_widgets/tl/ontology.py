"""Cell Ontology (CL) terms for labels: resolve an id, a term name or a synonym; complete a
typed prefix.

The ontology comes from the optional ``cellxgene-ontology-guide`` package
(``pip install 'exprmat_widgets[ontology]'``), which ships the CL releases used by the
CELLxGENE schema offline: nothing is downloaded at run time.  Ids, labels, synonyms,
deprecation and replacements are read through its ``OntologyParser``.  Its API answers
"the label of an id" and "the id of an exact label", but has no search over synonyms and
no prefix completion, so a name index (lower-cased label and synonyms -> ids) is built
once per process from the terms the parser loads (``OntologyParser.cxg_schema.ontology``,
the package's own decoded data; nothing is parsed here).

Without the package, :func:`available` is ``False``, :func:`complete` returns nothing and
resolving a term raises :class:`OntologyUnavailable`, which says how to install it; labels
without terms keep working.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .._logging import logg
from ..errors import ExprmatError

__all__ = [
    "INSTALL_HINT",
    "OntologyUnavailable",
    "Term",
    "available",
    "complete",
    "is_term_id",
    "ontology_version",
    "resolve_term",
    "term_column",
    "term_label",
]

INSTALL_HINT = "pip install 'exprmat_widgets[ontology]'"
"""How to get the Cell Ontology (the ``cellxgene-ontology-guide`` package)."""

ONTOLOGY = "CL"
_ID = re.compile(r"^\s*CL[:_](\d{7})\s*$", re.IGNORECASE)


class OntologyUnavailable(ExprmatError):
    """The optional ``cellxgene-ontology-guide`` package is not installed."""


@dataclass(frozen=True)
class Term:
    """A resolved Cell Ontology term: ``id`` (``'CL:0000576'``), ``label`` (its name),
    ``matched`` (the text that matched) and ``kind`` (``'id'``, ``'label'`` or ``'synonym'``)."""

    id: str
    label: str
    matched: str
    kind: str


def term_column(key: str) -> str:
    """The obs column holding the CL ids of the labels in ``obs[key]``:
    ``'<key>_ontology_term_id'`` (``'cell_type_ontology_term_id'`` for ``'cell_type'``)."""
    return f"{key}_ontology_term_id"


def is_term_id(text) -> bool:
    """Whether ``text`` is written like a CL id (``CL:0000576`` or ``CL_0000576``)."""
    return isinstance(text, str) and _ID.match(text) is not None


def _normal_id(text: str) -> str:
    return f"CL:{_ID.match(text).group(1)}"


@functools.cache
def _parser():
    try:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser
    except ImportError:
        return None
    return OntologyParser()


def available() -> bool:
    """Whether the Cell Ontology is installed (the ``ontology`` extra)."""
    return _parser() is not None


def _need_parser():
    p = _parser()
    if p is None:
        raise OntologyUnavailable(
            "Cell Ontology terms need the cellxgene-ontology-guide package, which is not installed; "
            f"install it with `{INSTALL_HINT}` (labels without a term work without it)."
        )
    return p


def _terms() -> dict:
    return _need_parser().cxg_schema.ontology(ONTOLOGY)


def ontology_version() -> str | None:
    """The CL release in use (e.g. ``'v2026-03-26'``), or ``None`` without the package."""
    p = _parser()
    return None if p is None else str(p.cxg_schema.supported_ontologies[ONTOLOGY]["version"])


@functools.cache
def _index() -> tuple[dict, list]:
    """``({lower-cased name: [(id, kind), ...]}, [(lower name, name, id, kind), ...])`` over
    the current (not obsolete) terms; built once per process (about 10,000 names)."""
    by_name: dict[str, list] = {}
    entries: list[tuple] = []
    for tid, meta in _terms().items():
        if meta.get("deprecated"):
            continue
        names = [(meta["label"], "label")] + [(s, "synonym") for s in meta.get("synonyms", []) or []]
        for name, kind in names:
            low = name.lower()
            hits = by_name.setdefault(low, [])
            if all(t != tid for t, _ in hits):
                hits.append((tid, kind))
                entries.append((low, name, tid, kind))
    entries.sort(key=lambda e: (len(e[0]), e[0]))
    return by_name, entries


def term_label(term_id: str) -> str:
    """The name of a CL id (``'CL:0000576'`` -> ``'monocyte'``)."""
    return _need_parser().get_term_label(term_id)


def _obsolete_message(tid: str, what: str) -> str:
    p = _need_parser()
    label = p.get_term_label(tid)
    repl = p.get_term_replacement(tid)
    if repl:
        try:
            repl_name = f"{repl} ({p.get_term_label(repl)})"
        except ValueError:  # replaced by a term of another ontology (e.g. CLO)
            repl_name = repl
        fix = f"it was replaced by {repl_name}; use that instead"
    else:
        consider = p.get_term_metadata(tid).get("consider") or []
        fix = (f"consider {', '.join(consider)}" if consider else "pick a current term") + " instead"
    return f"{what} is the obsolete Cell Ontology term {tid} ({label!r}); {fix}."


def resolve_term(text: str, *, what: str = "term") -> Term:
    """Resolve a CL id, an exact term name or an exact synonym (case-insensitive).

    Parameters
    ----------
    text
        ``'CL:0000576'`` (or ``'CL_0000576'``), ``'monocyte'`` or a synonym such as
        ``'nerve cell'``.
    what
        How the caller names the value in error messages.

    Returns
    -------
    Term
        The current term.  A name that is the label or a synonym of several current terms
        (CL has such names, e.g. 'substantia nigra dopaminergic neuron') is refused: the
        id says which one is meant.

    Raises
    ------
    ExprmatError
        An unknown id or name (the message lists the closest completions), a name shared by
        several terms (pass the id), an obsolete term (names its replacement), or
        :class:`OntologyUnavailable` without the package.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExprmatError(f"{what} must be a CL id (e.g. 'CL:0000576') or a term name, got {text!r}.")
    p = _need_parser()
    if is_term_id(text):
        tid = _normal_id(text)
        if not p.is_valid_term_id(tid, ONTOLOGY):
            raise ExprmatError(
                f"{what}: {tid} is not a term of the Cell Ontology {ontology_version()}; check the id "
                "(e.g. 'CL:0000576' is monocyte) or give the term name."
            )
        if p.is_term_deprecated(tid):
            raise ExprmatError(_obsolete_message(tid, f"{what} {tid}"))
        return Term(tid, p.get_term_label(tid), text, "id")
    name = text.strip()
    by_name, _ = _index()
    hits = by_name.get(name.lower(), [])
    if len(hits) == 1:
        tid, kind = hits[0]
        return Term(tid, p.get_term_label(tid), name, kind)
    if len(hits) > 1:
        opts = ", ".join(f"{t} ({p.get_term_label(t)!r}, by {kind})" for t, kind in hits[:8])
        raise ExprmatError(
            f"{what} {name!r} names {len(hits)} Cell Ontology terms: {opts}; pass the id of the one you mean."
        )
    obsolete = [t for t, m in _terms().items() if m.get("deprecated") and m["label"].lower() in
                (name.lower(), f"obsolete {name.lower()}")]
    if obsolete:
        raise ExprmatError(_obsolete_message(obsolete[0], f"{what} {name!r}"))
    near = complete(name, n=5)
    hint = f" Closest: {', '.join(f'{c.label!r} ({c.id})' for c in near)}." if near else ""
    raise ExprmatError(
        f"{what} {name!r} is not a Cell Ontology term name, synonym or id; give the exact name or the "
        f"CL id, or leave the term out to keep the label unmapped.{hint}"
    )


def try_resolve(text: str) -> Term | None:
    """:func:`resolve_term` of a label that may simply be free text: ``None`` when the text
    names no term or the package is missing; an id, obsolete or ambiguous name still raises."""
    if not available():
        if is_term_id(text):
            _need_parser()
        return None
    if is_term_id(text):
        return resolve_term(text, what="label")
    by_name, _ = _index()
    if text.strip().lower() not in by_name:
        return None
    return resolve_term(text, what="label")


def complete(text: str, n: int = 10) -> list[Term]:
    """Current CL terms for a typed prefix, best first: the exact name, an exact synonym,
    names then synonyms starting with the text, then names and synonyms containing it
    (each tier shorter names first); one entry per term.  An id prefix (``'CL:00005'``)
    lists ids.  Empty without the package or for empty text.

    Parameters
    ----------
    text
        What was typed.
    n
        At most this many terms.

    Returns
    -------
    list of Term
        ``matched`` is the name or synonym that matched.
    """
    q = (text or "").strip().lower()
    if not q or not available():
        return []
    by_name, entries = _index()
    if q.startswith("cl:") or q.startswith("cl_"):
        digits = q[3:]
        out = [Term(t, m["label"], t, "id") for t, m in _terms().items()
               if not m.get("deprecated") and t[3:].startswith(digits)]
        return sorted(out, key=lambda t: t.id)[:n]
    tiers: list[list[Term]] = [[] for _ in range(6)]
    for low, name, tid, kind in entries:
        syn = kind == "synonym"
        if low == q:
            tier = 1 if syn else 0
        elif low.startswith(q):
            tier = 3 if syn else 2
        elif q in low:
            tier = 5 if syn else 4
        else:
            continue
        tiers[tier].append(Term(tid, "", name, kind))
    out: list[Term] = []
    seen: set[str] = set()
    p = _need_parser()
    for tier in tiers:
        for t in tier:
            if t.id not in seen:
                seen.add(t.id)
                out.append(Term(t.id, p.get_term_label(t.id), t.matched, t.kind))
                if len(out) >= n:
                    return out
    return out


def log_unmapped(key: str, labels) -> None:
    """Say which labels of ``obs[key]`` carry no CL term."""
    labels = list(labels)
    if labels:
        logg.info(f"{len(labels)} label(s) of obs[{key!r}] have no Cell Ontology term (unmapped): {labels[:10]}.")
