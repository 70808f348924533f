"""Exclusion, annotation, merging, renaming, labelling and sub-clustering of cells.

Every routine here is a recorded command (see :mod:`exprmat_widgets.history`).
They work on the integer codes of categorical ``obs`` columns (vectorised numpy,
no per-cell Python loops), build a *new* column and assign it, and keep
``uns['<key>_colors']`` in step with the categories: categories that survive
keep their colour, merged / renamed ones inherit it, new ones get unused
colours of scanpy's default palette.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _rows
from .. import _validate as v
from .._logging import logg
from ..colors import colors_of, sync_colors
from ..errors import ExprmatError, MissingKeyError
from ..history import carry_obs_names_hash, command, is_replaying, record_resolved
from ..selection import resolve_selection
from . import ontology as _onto
from ._categorical import codes_and_categories, drop_unused, previous_colors, write_categorical
from .cell_terms import resolve_label, term_mapping, write_terms

__all__ = [
    "annotate",
    "term_mapping",
    "exclude",
    "exclude_cells",
    "label_cells",
    "merge_clusters",
    "rename_cluster",
    "subset_cells",
]


# --------------------------------------------------------------------------- helpers


def _label(value, name: str) -> str:
    """A category label: a non-empty string (integers are accepted and turned into text)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if not isinstance(value, str) or not value:
        raise ExprmatError(f"{name} must be a non-empty string (or an integer), got {value!r}.")
    return value


def _cluster_name(value) -> str:
    """How a cluster given by the user is matched against the categories (as text;
    ``14`` and ``14.0`` both match ``'14'``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _check_polygon(adata, polygon, basis) -> np.ndarray | None:
    if polygon is None:
        if basis is not None:
            v.embedding_key(adata, basis)  # a recorded basis must at least exist
        return None
    try:
        poly = np.asarray(polygon, dtype=float)
    except (TypeError, ValueError):
        poly = None
    if poly is None or poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3 or not np.isfinite(poly).all():
        raise ExprmatError(
            "polygon must be a list of at least 3 finite [x, y] vertices, e.g. [[0, 0], [1, 0], [1, 1]]."
        )
    if basis is None:
        raise ExprmatError("a polygon needs the embedding it was drawn on: pass basis='umap' (an obsm key).")
    v.embedding_key(adata, basis)
    return poly


def _selection(adata, cells, polygon, basis, what: str) -> np.ndarray:
    """Boolean mask of the selected cells.

    ``cells`` wins when given (the history records it by the cells it hits);
    otherwise the cells of ``obsm[basis]`` inside ``polygon`` are selected.
    """
    poly = _check_polygon(adata, polygon, basis)
    if cells is None:
        if poly is None:
            raise ExprmatError(
                f"{what}: no cells given; pass cells (names or a boolean mask) or a polygon and its basis."
            )
        from matplotlib.path import Path

        xy = v.embedding(adata, basis)[:, :2]
        mask = Path(poly).contains_points(xy)
    else:
        mask = resolve_selection(adata, cells, what=what, allow_empty=True)
    if not mask.any():
        raise ExprmatError(f"{what}: the selection is empty; select at least one cell.")
    return mask


def _fast_subset_possible(adata) -> bool:
    """Whether every per-cell array is one :mod:`exprmat_widgets._rows` gathers (in memory,
    CSR / numpy / DataFrame values); otherwise anndata's own subsetting is used."""
    if adata.isbacked:
        return False
    values = [*adata.layers.values(), *adata.obsm.values()]
    if adata.X is not None:
        values.append(adata.X)
    if adata.raw is not None:
        values.append(adata.raw.X)
    return all(_rows.can_take(x) for x in values) and all(
        isinstance(x, np.ndarray) or sp.issparse(x) for x in adata.obsp.values()
    )


def _fast_subset(adata, rows: np.ndarray) -> None:
    """Keep the cells at positions ``rows`` (sorted), gathering every per-cell array in
    parallel; the same result as ``adata[rows].copy()`` (categories left without cells
    are dropped), without the view and its second pass."""
    old_names = adata.obs_names
    obs = adata.obs.iloc[rows].copy(deep=False)  # a frame of its own, not a "slice"
    for k in obs.columns:
        col = obs[k]
        if isinstance(col.dtype, pd.CategoricalDtype):
            # pandas' remove_unused_categories sorts the codes (np.unique), and
            # remove_categories may reorder the rest
            codes, used = drop_unused(col.cat.codes.to_numpy(), len(col.cat.categories))
            if not used.all():
                dtype = pd.CategoricalDtype(col.cat.categories[used], ordered=col.cat.ordered)
                obs[k] = pd.Categorical.from_codes(codes.astype(col.cat.codes.dtype), dtype=dtype)
    X = None if adata.X is None else _rows.take_rows(adata.X, rows)
    obsm = {k: _rows.take_rows(x, rows) for k, x in adata.obsm.items()}
    obsp = {k: _rows.take_square(x, rows) for k, x in adata.obsp.items()}
    layers = {k: _rows.take_rows(x, rows) for k, x in adata.layers.items()}
    raw = None
    if adata.raw is not None:
        raw = (_rows.take_rows(adata.raw.X, rows), adata.raw.var, dict(adata.raw.varm))
    # install the subset in place: obs first (it sets n_obs), then the per-cell arrays through
    # anndata's setters (which check their shapes against it).  Not _init_as_actual: its obs
    # checks (string and NaN tests of every name, ~0.1 s at 1M cells) are known to hold here,
    # since the names are a subset of names anndata already accepted.
    adata._obs = obs
    adata._X = X
    adata.obsm = obsm
    adata.obsp = obsp
    adata.layers = layers
    if raw is not None:
        from anndata._core.raw import Raw

        adata._raw = Raw(adata, X=raw[0], var=raw[1], varm=raw[2])
    carry_obs_names_hash(old_names, adata.obs_names, rows)


def _subset_inplace(adata, keep: np.ndarray, *, verb: str) -> None:
    """Keep the cells of ``keep`` in place; every categorical obs column drops the
    categories left without cells and its colours follow (survivors keep theirs)."""
    n0 = adata.n_obs
    cat_cols = [k for k in adata.obs.columns if isinstance(adata.obs[k].dtype, pd.CategoricalDtype)]
    previous = {k: colors_of(adata, k) for k in cat_cols if f"{k}_colors" in adata.uns}
    if not keep.all():
        if _fast_subset_possible(adata):
            _fast_subset(adata, np.flatnonzero(keep))
        else:
            # anndata's subset drops the categories left without cells in every categorical
            # column; a dask-backed X stays lazy (.copy keeps dask arrays)
            adata._init_as_actual(adata[keep].copy())
    for k, prev in previous.items():
        sync_colors(adata, k, previous=prev)
    logg.info(f"{verb} {adata.n_obs} observations from {n0}.")


def _colored_categoricals(p, adata):
    out = []
    for k in adata.obs.columns:
        if isinstance(adata.obs[k].dtype, pd.CategoricalDtype) and f"{k}_colors" in adata.uns:
            out += [("obs", k), ("uns", f"{k}_colors")]
    return out


# --------------------------------------------------------------------------- exclusion


def _writes_exclude(p, adata):
    out = [("obs_names", None)]
    if p.get("annotation") in adata.obs.columns:
        out.append(("obs", p["annotation"]))
    return out + [w for w in _colored_categoricals(p, adata) if w not in out]


@command("exclude", writes=_writes_exclude, in_memory=True)
def exclude(adata, annotation: str, remove: list):
    """Drop the cells whose ``obs[annotation]`` is one of ``remove``, in place.

    Parameters
    ----------
    adata
        Reads ``obs[annotation]``.
    annotation
        Categorical obs column, e.g. ``'leiden'``.
    remove
        Categories to drop (strings or numbers: ``['8', '15']`` or ``[8, 15]``).

    Notes
    -----
    Every obs / obsm / obsp / layer row of the dropped cells goes; every
    categorical obs column drops the categories left without cells, and
    ``uns['<key>_colors']`` keeps the colours of the survivors.  Prints
    ``keep N observations from M``.  Removing every cell is an error.
    """
    codes, cats = codes_and_categories(adata, annotation)
    if isinstance(remove, (str, numbers.Number)):
        remove = [remove]
    if remove is None or len(remove) == 0:
        raise ExprmatError("exclude: remove is empty; name the categories to drop, e.g. remove=['8', '15'].")
    rm = v.clusters_in(adata, annotation, [_cluster_name(c) for c in remove])
    rm_codes = pd.Index(cats).get_indexer([str(c) for c in rm])
    drop = np.zeros(len(cats) + 1, dtype=bool)
    drop[rm_codes] = True
    keep = ~drop[codes]
    if not keep.any():
        raise ExprmatError(
            f"exclude: removing {[str(c) for c in rm]} of obs[{annotation!r}] would drop every cell; "
            "keep at least one category."
        )
    _subset_inplace(adata, keep, verb="keep")


@command("exclude_cells", writes=_writes_exclude, selections=("cells",), in_memory=True)
def exclude_cells(adata, cells, polygon=None, basis: str | None = None):
    """Drop an explicit selection of cells, in place.

    Parameters
    ----------
    adata
        Annotated data, changed in place (in memory, not backed); reads
        ``obsm[basis]`` when a polygon is given.
    cells
        Cell names, a boolean mask, positions, or ``None`` to take the cells
        of ``obsm[basis]`` inside ``polygon``.  Recorded by the cells it hits.
    polygon, basis
        The lasso drawn (vertices ``[[x, y], ...]``) and the embedding it was
        drawn on; recorded with the command.

    Notes
    -----
    Same bookkeeping as :func:`exclude` (categories and colours follow).
    """
    mask = _selection(adata, cells, polygon, basis, "exclude_cells")
    if mask.all():
        raise ExprmatError("exclude_cells: the selection covers every cell; excluding it would leave no data.")
    _subset_inplace(adata, ~mask, verb="keep")


def _writes_subset(p, adata):
    out = [("obs_names", None)]
    for k in p.get("keys") or []:
        if isinstance(k, str) and k in adata.obs.columns:
            out.append(("obs", k))
    return out + [w for w in _colored_categoricals(p, adata) if w not in out]


@command("subset_cells", writes=_writes_subset, in_memory=True)
def subset_cells(adata, keys: list, values: list):
    """Keep only the cells whose ``obs[keys[i]]`` is in ``values[i]`` for every ``i``, in place.

    Parameters
    ----------
    adata
        Annotated data, changed in place (in memory, not backed); reads
        ``obs[keys[i]]``.
    keys
        Categorical obs columns, e.g. ``['leiden']`` (a single string is accepted).
    values
        One list of categories per key, e.g. ``[['0', '1', '2']]``.

    Notes
    -----
    Used by :meth:`Experiment.build_subset`; prints ``selected N observations
    from M``.  Categories and colours follow as in :func:`exclude`.
    """
    if isinstance(keys, str):
        keys = [keys]
        if values and not isinstance(values[0], (list, tuple)):
            values = [values]
    if not keys or values is None or len(keys) != len(values):
        raise ExprmatError(
            "subset_cells: keys and values must be lists of the same length, one list of categories "
            "per key, e.g. keys=['leiden'], values=[['0', '1']]."
        )
    keep = np.ones(adata.n_obs, dtype=bool)
    for k, vals in zip(keys, values):
        if isinstance(vals, (str, numbers.Number)):
            vals = [vals]
        if not vals:
            raise ExprmatError(f"subset_cells: no values given for obs[{k!r}].")
        codes, cats = codes_and_categories(adata, k)
        chosen = v.clusters_in(adata, k, [_cluster_name(x) for x in vals], what="value")
        lut = np.zeros(len(cats) + 1, dtype=bool)
        lut[pd.Index(cats).get_indexer([str(c) for c in chosen])] = True
        keep &= lut[codes]
    if not keep.any():
        raise ExprmatError("subset_cells: no cell matches every condition; check keys and values.")
    _subset_inplace(adata, keep, verb="selected")


# --------------------------------------------------------------------------- ontology terms


# --------------------------------------------------------------------------- annotation


def _writes_key(name):
    def writes(p, adata):
        out = [("obs", p[name]), ("uns", f"{p[name]}_colors")]
        tc = _onto.term_column(p[name])
        return out + ([("obs", tc)] if tc in adata.obs.columns else [])

    return writes


@command("annotate", writes=_writes_key("annotation"))
def annotate(adata, annotation: str, cluster: str, mapping: dict, terms: dict | None = None):
    """Name clusters: a categorical ``obs[annotation]`` from ``obs[cluster]`` and a mapping.

    Parameters
    ----------
    adata
        Annotated data; reads ``obs[cluster]``.
    annotation
        Column to create or overwrite, e.g. ``'cell.type'``.
    cluster
        Categorical obs column with the clusters, e.g. ``'leiden'``.
    mapping
        ``{label: [clusters]}``; clusters may be strings or integers
        (``{'Prog': [14], 'MDP': ['11', '12']}``).  Naming a cluster twice is
        an error; clusters left out become missing (NaN) and are reported.  A label
        written as a CL id (``'CL:0000576'``) becomes the term's name; a label that is
        exactly a term name or synonym takes that term.
    terms
        ``{label: CL id or term name}`` for labels whose text is not a term
        (``{'Mo': 'CL:0000576'}``); ``''`` marks a label as unmapped.  Recorded as
        resolved ids for every label.

    Returns
    -------
    pandas.Series
        ``obs[annotation].value_counts()``: cells per label.

    Notes
    -----
    Writes ``obs[annotation]`` (categories in mapping order, labels without
    cells dropped) and ``uns['<annotation>_colors']`` (labels that existed
    before keep their colour); with any term, ``obs['<annotation>_ontology_term_id']``
    (the CL id of each cell's label; unmapped labels are missing and reported).
    """
    v.new_key("annotation", annotation)
    codes, cats = codes_and_categories(adata, cluster)
    if not isinstance(mapping, dict) or not mapping:
        raise ExprmatError("annotate: mapping must be a non-empty dict {label: [clusters]}, e.g. {'T': ['0', '3']}.")
    if terms is not None and not isinstance(terms, dict):
        raise ExprmatError("annotate: terms must be a dict {label: CL id or term name}, e.g. {'Mo': 'CL:0000576'}.")
    given = {} if terms is None else {str(k): t for k, t in terms.items()}
    unknown = sorted(set(given) - {str(k) for k in mapping})
    if unknown:
        raise ExprmatError(f"annotate: terms names labels {unknown} that are not keys of mapping; "
                           "give terms only for labels of the mapping.")
    resolved_mapping: dict[str, list] = {}
    resolved_terms: dict[str, str] = {}
    for raw_label, clusters in mapping.items():
        label = _label(raw_label, "annotate: each mapping key (label)")
        label, tid = resolve_label(label, given.get(label) if terms is not None else None, None, "annotate")
        if label in resolved_mapping:
            raise ExprmatError(f"annotate: label {label!r} appears twice in the mapping; list its clusters once.")
        resolved_mapping[label] = clusters
        resolved_terms[label] = tid or ""
    mapping = resolved_mapping
    if terms is not None or any(resolved_terms.values()):
        record_resolved(mapping=mapping, terms=resolved_terms)
    pos = {c: i for i, c in enumerate(cats)}
    labels: list[str] = []
    lut = np.full(len(cats) + 1, -1, dtype=np.int64)
    seen: dict[str, str] = {}
    for raw_label, clusters in mapping.items():
        label = _label(raw_label, "annotate: each mapping key (label)")
        if label in labels:
            raise ExprmatError(f"annotate: label {label!r} appears twice in the mapping; list its clusters once.")
        labels.append(label)
        if isinstance(clusters, (str, numbers.Number)):
            clusters = [clusters]
        for c in clusters:
            name = _cluster_name(c)
            if name not in pos:
                raise MissingKeyError(
                    f"annotate: cluster {c!r} (mapping[{label!r}]) is not a category of obs[{cluster!r}] "
                    f"(categories: {cats})."
                )
            if name in seen:
                raise ExprmatError(
                    f"annotate: cluster {name!r} is named twice in the mapping (under {seen[name]!r} and "
                    f"{label!r}); give each cluster one label."
                )
            seen[name] = label
            lut[pos[name]] = len(labels) - 1
    counts = np.bincount(codes[codes >= 0], minlength=len(cats))
    left = [(c, int(n)) for c, n in zip(cats, counts) if c not in seen and n > 0]
    previous = previous_colors(adata, annotation)
    if _onto.term_column(annotation) in adata.obs.columns:
        del adata.obs[_onto.term_column(annotation)]  # the labels are new: so are their terms
    write_categorical(adata, annotation, lut[codes], labels, previous)
    write_terms(adata, annotation, resolved_terms)
    if left:
        n_left = sum(n for _, n in left)
        logg.warning(
            f"{len(left)} cluster(s) of obs[{cluster!r}] not in the mapping are left unannotated (NaN) "
            f"in obs[{annotation!r}]: {[c for c, _ in left]} ({n_left} cells)."
        )
    return adata.obs[annotation].value_counts()


@command("merge_clusters", writes=_writes_key("key"))
def merge_clusters(adata, key: str, clusters: list, new_name: str | None = None):
    """Merge several categories of ``obs[key]`` into one.

    Parameters
    ----------
    adata
        Annotated data; reads and writes ``obs[key]``.
    key
        Categorical obs column.
    clusters
        At least two of its categories (strings or numbers).
    new_name
        Name of the merged category; default the first of ``clusters``.  A
        name that is another existing category is refused (it would merge
        more than asked): include it in ``clusters`` instead.

    Notes
    -----
    Writes ``obs[key]`` (the merged category takes the place of ``new_name``
    when it is one of ``clusters``, else of the first merged one in category order) and ``uns['<key>_colors']`` (other
    categories keep their colour; the merged one keeps the colour of
    ``new_name`` if it was one of ``clusters``, else of the first cluster) and,
    when it exists, ``obs['<key>_ontology_term_id']`` (the merged category keeps the
    term of ``new_name`` if it was one of ``clusters``, else the term all merged ones
    shared; none when they differed).
    """
    codes, cats = codes_and_categories(adata, key)
    if isinstance(clusters, (str, numbers.Number)) or clusters is None or len(clusters) < 2:
        raise ExprmatError(
            "merge_clusters: name at least two clusters to merge, e.g. clusters=['3', '5'] "
            "(use em.rename_cluster to rename one)."
        )
    merged = [str(c) for c in v.clusters_in(adata, key, [_cluster_name(c) for c in clusters])]
    name = merged[0] if new_name is None else _label(new_name, "merge_clusters: new_name")
    if name in cats and name not in merged:
        raise ExprmatError(
            f"merge_clusters: new_name {name!r} is already another category of obs[{key!r}]; merging "
            f"into it would silently absorb it. Pick a new name, or add {name!r} to clusters."
        )
    merged_set = set(merged)
    new_cats: list[str] = []
    lut = np.full(len(cats) + 1, -1, dtype=np.int64)
    # the merged category sits where `name` was (a merged cluster) or else where the first
    # merged cluster was in category order
    anchor = name if name in merged_set else next(c for c in cats if c in merged_set)
    target = -1
    for i, c in enumerate(cats):
        if c == anchor:
            new_cats.append(name)
            target = len(new_cats) - 1
        elif c not in merged_set:
            new_cats.append(c)
            lut[i] = len(new_cats) - 1
    for i, c in enumerate(cats):
        if c in merged_set:
            lut[i] = target
    previous = previous_colors(adata, key)
    inherit = {} if name in merged_set else {name: merged[0]}
    new_codes = lut[codes]
    terms = term_mapping(adata, key)
    ids = {terms.get(c) for c in merged}
    merged_id = terms.get(name) if name in merged_set else (ids.pop() if len(ids) == 1 else None)
    for c in merged:
        terms.pop(c, None)
    terms[name] = merged_id
    write_categorical(adata, key, new_codes, new_cats, previous, inherit)
    write_terms(adata, key, terms)
    n = int((new_codes == target).sum())
    logg.info(f"merged {merged} of obs[{key!r}] into {name!r} ({n} cells).")


@command("rename_cluster", writes=_writes_key("key"))
def rename_cluster(adata, key: str, old: str, new: str, term: str | None = None):
    """Rename one category of ``obs[key]``.

    ``new`` must not be an existing category (that would silently merge two
    clusters; use :func:`merge_clusters` for that).

    Parameters
    ----------
    adata
        Annotated data; reads and writes ``obs[key]``.
    key
        Categorical obs column, e.g. ``'leiden'``.
    old
        The category to rename (a string or a number: ``'3'`` or ``3``).
    new
        Its new name (a non-empty string or an integer), not already a category.  A CL
        id becomes the term's name; an exact term name or synonym takes that term.
    term
        The CL id or term name of ``new`` when its text is not one (``'Mo'`` with
        ``term='CL:0000576'``); ``''`` for none.  By default the category keeps the term
        it had.  Recorded as the resolved id.

    Notes
    -----
    Writes ``obs[key]`` (same cells, same category order),
    ``uns['<key>_colors']`` (the renamed category keeps its colour) and, once a label
    has a term, ``obs['<key>_ontology_term_id']``.
    """
    codes, cats = codes_and_categories(adata, key)
    old = str(v.clusters_in(adata, key, [_cluster_name(old)])[0])
    new = _label(new, "rename_cluster: new")
    terms = term_mapping(adata, key)
    resolved = None if is_replaying() and term is None else _onto.try_resolve(new)
    new, tid = resolve_label(new, term, None if resolved else terms.get(old), "rename_cluster")
    if new == old:
        raise ExprmatError(f"rename_cluster: {old!r} already has that name; pass a different new name.")
    if new in cats:
        raise ExprmatError(
            f"rename_cluster: {new!r} is already a category of obs[{key!r}]; renaming {old!r} to it would "
            f"silently merge the two. Use em.merge_clusters(adata, {key!r}, [{old!r}, {new!r}], "
            f"new_name={new!r}) to merge them, or pick another name."
        )
    new_cats = [new if c == old else c for c in cats]
    previous = previous_colors(adata, key)
    if term is not None or tid or terms:
        record_resolved(new=new, term=tid or "")
    terms.pop(old, None)
    terms[new] = tid
    write_categorical(adata, key, codes, new_cats, previous, {new: old})
    write_terms(adata, key, terms)


@command("label_cells", writes=_writes_key("key"), selections=("cells",))
def label_cells(adata, key: str, cells, label: str, polygon=None, basis: str | None = None,
                term: str | None = None):
    """Give a selection of cells the label ``label`` in ``obs[key]``.

    Parameters
    ----------
    adata
        Annotated data; reads ``obsm[basis]`` when a polygon is given.
    key
        Categorical obs column; created when missing (unlabelled cells are
        missing / NaN).
    cells
        Cell names, a boolean mask, positions, or ``None`` to take the cells
        of ``obsm[basis]`` inside ``polygon``.  Recorded by the cells it hits.
    label
        The label.  An existing category gains the selected cells (reported);
        categories left without cells are dropped.  A CL id (``'CL:0000576'``)
        becomes the term's name; an exact term name or synonym takes that term.
    polygon, basis
        The lasso drawn and the embedding it was drawn on (recorded).
    term
        The CL id or term name of ``label`` when its text is not one (``label='Mo'``,
        ``term='CL:0000576'``); ``''`` for none.  By default an existing label keeps
        its term.  Recorded as the resolved id.

    Notes
    -----
    Writes ``obs[key]`` and ``uns['<key>_colors']`` (other categories keep
    their colour; a new label gets an unused one) and, once a label has a term,
    ``obs['<key>_ontology_term_id']`` (the CL id of each cell's label; unmapped labels
    missing there, and reported).  An existing label given another term is refused.
    """
    v.new_key("key", key)
    label = _label(label, "label_cells: label")
    terms = term_mapping(adata, key)
    label, tid = resolve_label(label, term, terms.get(label), "label_cells")
    if term is not None and tid != terms.get(label) and label in terms:
        raise ExprmatError(
            f"label_cells: label {label!r} of obs[{key!r}] already stands for {terms[label]}, not {tid}; "
            "use another label, or em.rename_cluster(..., term=...) to change the term of all its cells."
        )
    if term is not None or tid or terms:
        record_resolved(label=label, term=tid or "")
    terms[label] = tid
    mask = _selection(adata, cells, polygon, basis, "label_cells")
    if key in adata.obs.columns:
        codes, cats = codes_and_categories(adata, key)
    else:
        codes, cats = np.full(adata.n_obs, -1, dtype=np.int64), []
    existed = label in cats
    if not existed:
        cats = cats + [label]
    li = cats.index(label)
    new_codes = np.where(mask, li, codes)
    previous = previous_colors(adata, key)
    write_categorical(adata, key, new_codes, cats, previous)
    write_terms(adata, key, terms)
    n = int(mask.sum())
    note = f" (added to the existing category, now {int((new_codes == li).sum())} cells)" if existed else ""
    logg.info(f"labelled {n} cells {label!r} in obs[{key!r}]{note}.")
