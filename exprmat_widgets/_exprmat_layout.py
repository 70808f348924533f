"""The on-disk layout of exprmat experiments, read and written with ``mudata`` (scverse)::

    <dir>/metadata.tsv               one row per sample: location, sample, batch, group, modality, taxa
    <dir>/integrated.h5mu            a MuData whose modality 'rna' is the integrated AnnData
    <dir>/<modality>/<sample>.h5ad   one file per sample, e.g. rna/distal.h5ad
    <dir>/subsets/<name>.h5mu        subsets (MuData with modality 'rna')

Gene names there are ``rna:<taxa>:<id>`` with the symbols in ``var['gene']``.  Every
check runs before anything is written; files are written next to their target and moved
over it, so a failed write leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd

from ._logging import logg
from .errors import ExprmatError, MissingKeyError

__all__ = [
    "METADATA",
    "METADATA_COLUMNS",
    "is_exprmat_dir",
    "read_metadata",
    "read_modality",
    "sample_file",
    "write_metadata",
    "write_modality",
]

METADATA = "metadata.tsv"
METADATA_COLUMNS = ("location", "sample", "batch", "group", "modality", "taxa")


def is_exprmat_dir(root: Path) -> bool:
    """Whether ``root`` is laid out as exprmat writes it (it has ``metadata.tsv``)."""
    return (Path(root) / METADATA).is_file()


def validate_metadata(meta: pd.DataFrame, where: str) -> pd.DataFrame:
    """``meta`` itself when it has the six columns exprmat requires and unique samples per modality."""
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ExprmatError(
            f"{where} misses the column(s) {missing} (have: {list(meta.columns)}); exprmat's metadata.tsv "
            f"has one row per sample with the columns {list(METADATA_COLUMNS)}: add them."
        )
    dup = meta.duplicated(["modality", "sample"])
    if dup.any():
        raise ExprmatError(
            f"{where} lists the sample(s) {sorted(set(meta.loc[dup, 'sample'].astype(str)))} more than once "
            "for one modality; give each sample one row."
        )
    return meta


def read_metadata(root: Path) -> pd.DataFrame:
    """``<root>/metadata.tsv`` as strings (tab-separated, a header row), validated."""
    path = Path(root) / METADATA
    if not path.is_file():
        raise ExprmatError(
            f"{str(path)!r} not found: an exprmat experiment directory needs its metadata.tsv "
            f"(one row per sample, columns {list(METADATA_COLUMNS)})."
        )
    try:
        meta = pd.read_csv(path, sep="\t", header=0, index_col=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ExprmatError(f"{str(path)!r} is not a readable tab-separated table ({e}); fix or rewrite it.") from e
    return validate_metadata(meta, repr(str(path)))


def write_metadata(meta: pd.DataFrame, root: Path) -> Path:
    """Write ``meta`` to ``<root>/metadata.tsv`` as exprmat does (tab-separated, header, no index)."""
    path = Path(root) / METADATA
    with _replacing(path) as tmp:
        meta.to_csv(tmp, sep="\t", index=False, header=True)
    return path


def sample_file(root: Path, modality: str, sample: str) -> Path:
    """Where exprmat keeps one sample: ``<root>/<modality>/<sample>.h5ad``."""
    return Path(root) / str(modality) / f"{sample}.h5ad"


def _mudata():
    import mudata

    return mudata


def read_modality(path: Path, modality: str = "rna"):
    """Modality ``modality`` of the MuData in ``path``, and the MuData's other modalities.

    Returns
    -------
    ``(adata, others)``: the AnnData and ``{name: AnnData}`` of the rest (kept to be
    written back unchanged).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingKeyError(f"{str(path)!r} not found.")
    mu = _mudata()
    try:
        mdata = mu.read_h5mu(path)
    except (OSError, KeyError, ValueError) as e:
        raise ExprmatError(f"{str(path)!r} is not a readable .h5mu file ({e}); write it again with exprmat.") from e
    if modality not in mdata.mod:
        raise MissingKeyError(
            f"{str(path)!r} has no modality {modality!r} (has: {sorted(mdata.mod)}); "
            f"an exprmat experiment keeps its integrated RNA data as modality 'rna'."
        )
    others = {k: v for k, v in mdata.mod.items() if k != modality}
    return mdata.mod[modality], others


def write_modality(adata, path: Path, modality: str = "rna", others: dict | None = None) -> Path:
    """Write ``adata`` as modality ``modality`` of a MuData in ``path`` (with ``others`` beside it)."""
    mu = _mudata()
    mods = {modality: adata, **{k: v for k, v in (others or {}).items() if k != modality}}
    # the modality's own obs / var stay where exprmat reads them (mdata['rna']); not pulling
    # them into the global tables also keeps mudata 0.3 from warning about its 0.4 default
    with mu.set_options(pull_on_update=False):
        mdata = mu.MuData(mods)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _replacing(path) as tmp:
            mdata.write_h5mu(tmp)
    logg.info("main dataset write to %s", path)
    return path


@contextlib.contextmanager
def _replacing(path: Path):
    """A temporary name beside ``path``, moved over it once written (removed on failure)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.writing{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
