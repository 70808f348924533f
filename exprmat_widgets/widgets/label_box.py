"""The label box of the cluster panel: a text box that completes Cell Ontology (CL) names
and synonyms (``em.tl.ontology.complete``, ranked: exact name, exact synonym, prefixes, then
other matches) in a short list under it, and a line saying which CL id the label will record.

Picking a term sends it as ``term=`` to the label command (the box keeps the text, which may
then be shortened, e.g. "Mo"); a label already in the "label into" column keeps its id.
Without the ``ontology`` extra the line says how to install it.  After a label the box is
emptied, so the next selection does not inherit the last label or its term.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as W

from ..errors import ExprmatError
from ..tl import ontology as _onto

__all__ = ["LabelBox"]


def _em():
    import exprmat_widgets as em

    return em


class LabelBox:
    """``box.widget`` is the ipywidgets box; ``box.text`` the label text, ``box.suggestions``
    the CL completions, ``box.info`` the line naming the id; ``label_key()`` gives the column
    the label goes into (its labels' ids are looked up there)."""

    def __init__(self, annotator, label_key: Callable[[], str | None]):
        self.a = annotator
        self._label_key = label_key
        self._silent = False
        self.picked = None  # the CL term picked from the suggestions (a tl.ontology.Term)
        self.text = W.Combobox(
            options=[], placeholder="label (e.g. Neu)", ensure_option=False, description="label",
            layout=W.Layout(width="95%"),
        )
        self.text.add_class("em-label")
        self.text.observe(lambda ch: self.a.when_idle("label term", self._on_text), names="value")
        self.suggestions = W.Select(options=[], rows=5, layout=W.Layout(width="95%", display="none"))
        self.suggestions.add_class("em-term-suggestions")
        self.suggestions.observe(self._on_pick, names="value")
        self.info = W.HTML()
        self.info.add_class("em-term-info")
        self.widget = W.VBox([self.text, self.suggestions, self.info], layout=W.Layout(width="100%"))
        self.refresh_info()

    def term_param(self) -> dict:
        """``{'term': id}`` of a picked term (for the label command), else ``{}``."""
        return {"term": self.picked.id} if self.picked is not None else {}

    def reset(self) -> None:
        """Empty the box, its suggestions and the picked term."""
        self.picked = None
        self.text.value = ""  # observed: clears the suggestions and the line
        self._on_text()

    def _on_text(self):
        text = (self.text.value or "").strip()
        if not text:
            self.picked = None
        opts = []
        if text and _onto.available():
            for t in _onto.complete(text, n=8):
                also = f"  (synonym: {t.matched})" if t.kind == "synonym" else ""
                opts.append((f"{t.label}  {t.id}{also}", t.id))
        self._silent = True
        try:
            if list(self.suggestions.options) != opts:
                self.suggestions.options = opts
            self.suggestions.value = None
        finally:
            self._silent = False
        self.suggestions.layout.display = None if opts else "none"
        self.refresh_info()

    def _on_pick(self, change):
        if self._silent or not change["new"]:
            return
        self.picked = _onto.resolve_term(change["new"])
        self._silent = True
        try:
            self.text.value = self.picked.label
        finally:
            self._silent = False
        self.a.when_idle("label term", self._on_text)

    def _term(self) -> tuple[str, str]:
        """``(kind, text)`` of the term the label will record."""
        text = (self.text.value or "").strip()
        if not _onto.available():
            return "none", (f"Cell Ontology completion needs the ontology extra: {_onto.INSTALL_HINT}")
        if self.picked is not None:
            return "term", f"{self.picked.id} {self.picked.label} (picked; empty the box to drop it)"
        if not text:
            return "none", "type a label; Cell Ontology names and synonyms are suggested"
        key = self._label_key()
        known = _em().term_mapping(self.a.adata, key).get(text) if key else None
        if known:
            return "term", f"{known} {_onto.term_label(known)} (the term of this label in obs[{key!r}])"
        try:
            t = _onto.try_resolve(text)
        except ExprmatError as e:
            return "error", str(e)
        if t is not None:
            return "term", f"{t.id} {t.label}" + (f" (synonym {t.matched!r})" if t.kind == "synonym" else "")
        return "none", f"{text!r} has no CL term: it stays unmapped; pick a term above to map it"

    def refresh_info(self) -> None:
        """Say again which id the label will record (after the data or the column changed)."""
        kind, text = self._term()
        color = {"term": "#1a7f37", "error": "#c62828"}.get(kind, "var(--jp-ui-font-color2, #666)")
        self.info.value = (f'<span class="em-term-{kind}" style="font-size:90%;color:{color}">'
                           f"{html.escape(text)}</span>")
