"""A CELLxGENE-ready h5ad: the cell types as CL ids, and what the schema still needs.

:func:`export_cellxgene` writes a copy of the data with ``obs['cell_type_ontology_term_id']``
filled from a label column's CL terms (``obs['<label_key>_ontology_term_id']``, written by
the label commands) and lists what the CELLxGENE schema asks for that the data lack
(assay, organism, tissue ids, ...).  It never invents those values: the data say nothing
about them.  The list follows the CELLxGENE schema of the installed
``cellxgene-ontology-guide`` (7.x at the time of writing); the portal's validator
(``cellxgene-schema validate``) remains the authority.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import logg
from ..errors import ExprmatError
from . import ontology as _onto

__all__ = ["CellxgeneExport", "export_cellxgene", "REQUIRED_OBS", "REQUIRED_UNS", "RESERVED_OBS"]

CELL_TYPE_ID = "cell_type_ontology_term_id"
REQUIRED_OBS = (
    "assay_ontology_term_id", CELL_TYPE_ID, "development_stage_ontology_term_id", "disease_ontology_term_id",
    "donor_id", "is_primary_data", "self_reported_ethnicity_ontology_term_id", "sex_ontology_term_id",
    "suspension_type", "tissue_ontology_term_id", "tissue_type",
)
"""obs columns every CELLxGENE dataset has."""
REQUIRED_UNS = ("title", "organism_ontology_term_id")
"""uns keys every CELLxGENE dataset has."""
RESERVED_OBS = ("assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex",
                "tissue", "organism", "observation_joinid")
"""obs columns the portal adds from the ids: a submitted file must not have them."""


@dataclass
class CellxgeneExport:
    """What :func:`export_cellxgene` wrote: ``path``, ``n_cells``, ``mapped`` (``{label:
    CL id}``), ``unmapped`` (labels without a term), ``missing`` (what the schema still
    needs, one line each), ``renamed`` (reserved obs columns moved aside) and the CL
    release ``cl_version``."""

    path: str
    n_cells: int
    mapped: dict
    unmapped: list
    missing: list = field(default_factory=list)
    renamed: dict = field(default_factory=dict)
    cl_version: str | None = None

    def __str__(self):
        lines = [f"wrote {self.path}: {self.n_cells:,} cells, {len(self.mapped)} label(s) mapped to CL "
                 f"({self.cl_version or 'no ontology installed'})"]
        if self.unmapped:
            lines.append(f"unmapped labels (no CL term; their cells are missing in {CELL_TYPE_ID}): {self.unmapped}")
        for old, new in self.renamed.items():
            lines.append(f"obs[{old!r}] is reserved by the schema: written as obs[{new!r}]")
        if self.missing:
            lines.append("the CELLxGENE schema still needs (not in the data, not invented):")
            lines += [f"  - {m}" for m in self.missing]
        return "\n".join(lines)


def _missing(out) -> list[str]:
    need = []
    for k in REQUIRED_OBS:
        if k not in out.obs.columns:
            need.append(f"obs[{k!r}]")
        elif out.obs[k].isna().any():
            need.append(f"obs[{k!r}] for {int(out.obs[k].isna().sum()):,} cells")
    need += [f"uns[{k!r}]" for k in REQUIRED_UNS if k not in out.uns]
    if not any(str(k).startswith("X_") for k in out.obsm):
        need.append("an embedding obsm['X_<name>'] (e.g. em.umap)")
    if not pd.Index(out.var_names).astype(str).str.match(r"^ENS[A-Z]*G\d").all():
        need.append("var_names as Ensembl gene ids (these are gene symbols); keep symbols in var['feature_name']")
    return need


def export_cellxgene(adata, label_key: str, path, *, unmapped: str | None = None) -> CellxgeneExport:
    """Write an h5ad with ``obs['cell_type_ontology_term_id']`` from a label column.

    Parameters
    ----------
    adata
        Reads ``obs[label_key]`` and ``obs['<label_key>_ontology_term_id']`` (the CL ids
        the label commands record); not changed.
    label_key
        The label column, e.g. ``'cell_type'``.
    path
        The .h5ad to write.
    unmapped
        ``None`` leaves the cells of labels without a term missing (and reports them);
        ``'unknown'`` writes the schema's ``'unknown'`` for them.

    Returns
    -------
    CellxgeneExport
        What was written and what the schema still needs (print it).

    Notes
    -----
    The copy gets ``obs['cell_type_ontology_term_id']``; reserved columns (``cell_type``
    and the other names the portal adds) are renamed ``author_<name>``.  Term ids are
    checked against the shipped CL (an id not in it is an error).
    """
    from .cell_terms import term_mapping

    if label_key not in adata.obs.columns:
        raise ExprmatError(f"export_cellxgene: obs column {label_key!r} not found; pass the label column "
                           f"(have: {list(map(str, adata.obs.columns))[:12]}).")
    if unmapped not in (None, "unknown"):
        raise ExprmatError(f"export_cellxgene: unmapped must be None or 'unknown', got {unmapped!r}.")
    mapped = term_mapping(adata, label_key)
    if mapped and _onto.available():
        bad = [t for t in set(mapped.values()) if not _onto._need_parser().is_valid_term_id(t, "CL")]
        if bad:
            raise ExprmatError(f"export_cellxgene: {bad} are not ids of the shipped Cell Ontology "
                               f"{_onto.ontology_version()}; relabel those labels with current terms.")
    col = adata.obs[label_key]
    labels = [str(c) for c in (col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype)
                               else pd.unique(col.dropna()))]
    left = [c for c in labels if c not in mapped]
    out = adata.copy()
    renamed = {}
    for k in RESERVED_OBS:
        if k in out.obs.columns:
            renamed[k] = f"author_{k}"
            out.obs = out.obs.rename(columns={k: renamed[k]})
    ids = col.astype(str).map(mapped).to_numpy(dtype=object)
    if unmapped == "unknown":
        ids = np.where(pd.isna(ids), "unknown", ids)
    out.obs[CELL_TYPE_ID] = pd.Categorical(ids)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.write_h5ad(path)
    report = CellxgeneExport(str(path), out.n_obs, mapped, left, _missing(out), renamed, _onto.ontology_version())
    logg.info(str(report))
    return report
