"""A thin multi-sample container: named samples, the integrated AnnData and subsets.

On disk an experiment is a directory in one of two layouts, told apart by what is in it.
exprmat's (a ``metadata.tsv``; read and written with ``mudata``, see ``_exprmat_layout``)::

    <dir>/metadata.tsv             one row per sample: location, sample, batch, group, modality, taxa
    <dir>/integrated.h5mu          a MuData with the modality 'rna'
    <dir>/<modality>/<sample>.h5ad one file per sample, e.g. rna/distal.h5ad
    <dir>/subsets/<name>.h5mu      subsets made with Experiment.build_subset

and this package's own, for experiments built here without a metadata table::

    <dir>/integrated.h5ad          the integrated data (modality 'rna')
    <dir>/samples/<name>.h5ad      one file per sample
    <dir>/subsets/<name>.h5ad      subsets made with Experiment.build_subset

An experiment is saved back in the layout it was loaded from.

``expm.rna.<routine>(...)`` calls the core routine or figure of that name
(``em.tl.<routine>`` / ``em.pl.<routine>``) on the modality's AnnData, so every
state-changing call is recorded in its history exactly as a direct call.
"""

from __future__ import annotations

import functools
import os
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _exprmat_layout as xl
from ._logging import logg
from .errors import ExprmatError, MissingKeyError

__all__ = ["Experiment", "Modality", "example_experiment", "load_experiment"]

MODALITIES = ("rna",)
# module-level helpers that also make sense bound to a modality
_EXTRA = ("undo", "history", "history_to_script")


# --------------------------------------------------------------------------- modality accessor


class Modality:
    """``expm.rna``: the core routines and figures with this modality's AnnData bound.

    Attributes are looked up when asked for (``em.tl`` / ``em.pl`` at that
    moment), so routines added or reloaded later are found; nothing is copied.
    ``expm.rna.proportion(...)`` returns ``{'integrated': DataFrame}`` (results
    keyed by dataset, as in the tutorial); ``expm.rna.annotator(**kw)`` opens
    ``em.Annotator`` on the data.
    """

    def __init__(self, experiment: Experiment, name: str):
        self._experiment = experiment
        self._name = name

    @property
    def adata(self) -> ad.AnnData:
        return self._experiment[self._name]

    def _routine(self, name: str):
        import exprmat_widgets as em

        if name in getattr(em.tl, "__all__", ()):
            return getattr(em.tl, name)
        pl = em.pl
        if name in getattr(pl, "__all__", ()) or (callable(getattr(pl, name, None)) and not name.startswith("_")):
            return getattr(pl, name)
        if name in _EXTRA:
            return getattr(em, name)
        return None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "annotator":
            return self.annotator
        fn = self._routine(name)
        if fn is None:
            import exprmat_widgets as em

            known = sorted(set(em.tl.__all__) | set(getattr(em.pl, "__all__", ())))
            raise AttributeError(
                f"expm.{self._name} has no routine {name!r}; available: {', '.join(known)}, annotator."
            )
        if name == "proportion":
            adata = self.adata

            @functools.wraps(fn)
            def by_dataset(*args, **kwargs):
                return {"integrated": fn(adata, *args, **kwargs)}

            return by_dataset
        return functools.partial(fn, self.adata)

    def annotator(self, **kwargs):
        """``em.Annotator(adata, experiment=expm, slot=<modality>, **kwargs)``: the linked
        annotation panels on this modality, with the subset panel of the experiment."""
        import exprmat_widgets as em

        kwargs.setdefault("experiment", self._experiment)
        kwargs.setdefault("slot", self._name)
        return em.Annotator(self.adata, **kwargs)

    def __dir__(self):
        import exprmat_widgets as em

        return sorted(set(em.tl.__all__) | set(getattr(em.pl, "__all__", ())) | {"annotator", "adata", *_EXTRA})

    def __repr__(self):
        return f"<modality {self._name!r} of {self._experiment._label()}: {self.adata.n_obs} × {self.adata.n_vars}>"


# --------------------------------------------------------------------------- summary


def _dtype_tag(x) -> str:
    if isinstance(x, pd.DataFrame):
        return "df"
    if isinstance(x, (pd.Series, pd.Index)):
        dt = x.dtype
        if isinstance(dt, pd.CategoricalDtype):
            return "cat"
        if dt == np.dtype(object):
            return "o"
        if pd.api.types.is_string_dtype(dt):
            return "str"
        return _np_tag(dt)
    if sp.issparse(x):
        return f"{x.format}:{_np_tag(x.dtype)}"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        shape = tuple(x.shape)
        inner = f"({shape[1]})" if len(shape) > 1 else ""
        return f"arr:{_np_tag(x.dtype)}{inner}"
    return ""


def _np_tag(dt) -> str:
    dt = np.dtype(dt) if not isinstance(dt, pd.api.extensions.ExtensionDtype) else dt
    if isinstance(dt, pd.api.extensions.ExtensionDtype):
        return str(dt)
    if dt.kind == "b":
        return "bool"
    if dt.kind in "iuf":
        return f"{dt.kind}{dt.itemsize * 8}"
    if dt.kind in "OUS":
        return "o"
    return dt.str


def _uns_tag(x) -> str:
    if isinstance(x, dict):
        return "dict"
    if isinstance(x, pd.DataFrame):
        return "df"
    if isinstance(x, (list, tuple)):
        return "list"
    if isinstance(x, np.ndarray):
        return "o" if x.dtype.kind in "OUS" else _np_tag(x.dtype)
    return type(x).__name__


def _wrapped(label: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{label} : (none)"]
    return textwrap.wrap(" ".join(items), width=100, initial_indent=f"{label} : ", subsequent_indent="  ")


def summary_lines(adata: ad.AnnData) -> list[str]:
    """Keys of every slot of ``adata`` with short dtype tags (``<cat>``, ``<f64>``, ``<arr:f32(30)>`` ...)."""
    lines = []
    lines += _wrapped("obs", [f"{k} <{_dtype_tag(adata.obs[k])}>" for k in adata.obs.columns])
    lines += _wrapped("var", [f"{k} <{_dtype_tag(adata.var[k])}>" for k in adata.var.columns])
    lines += _wrapped("layers", [f"{k} <{_dtype_tag(adata.layers[k])}>" for k in adata.layers])
    for slot in ("obsm", "varm", "obsp"):
        m = getattr(adata, slot)
        lines += _wrapped(slot, [f"{k} <{_dtype_tag(m[k])}>" for k in sorted(m.keys())])
    lines += _wrapped("uns", [f"{k} <{_uns_tag(adata.uns[k])}>" for k in sorted(adata.uns.keys())])
    return lines


# --------------------------------------------------------------------------- experiment


class Experiment:
    """Named samples (``dict`` name -> AnnData), the integrated AnnData (modality
    ``'rna'``) and named subsets.

    ``expm['rna']`` is the AnnData; ``expm.rna`` binds it to the core routines
    (``expm.rna.leiden(resolution=0.8)`` is ``em.leiden(expm['rna'], resolution=0.8)``).
    When loaded with ``load_subset=name`` the modality is that subset and
    :meth:`save` writes it back to ``subsets/<name>.h5ad``.

    Parameters
    ----------
    rna
        The integrated AnnData (modality ``'rna'``), or ``None``.
    samples
        ``{name: AnnData}`` of the samples it was built from.
    path
        Directory the experiment was loaded from / is saved to.
    subset
        Name of the subset loaded as modality ``'rna'`` (``None``: the integrated data).
    samples_loaded
        Whether the samples were read (``False`` when loaded with ``load_samples=False``).
    metadata
        exprmat's sample table (one row per sample: ``location``, ``sample``, ``batch``,
        ``group``, ``modality``, ``taxa``).  An experiment with a table is saved in exprmat's
        layout (``metadata.tsv``, ``integrated.h5mu``, ``<modality>/<sample>.h5ad``,
        ``subsets/<name>.h5mu``); without one, in this package's (``integrated.h5ad`` ...).
    """

    def __init__(
        self,
        rna: ad.AnnData | None = None,
        samples: dict | None = None,
        *,
        path: str | os.PathLike | None = None,
        subset: str | None = None,
        samples_loaded: bool = True,
        metadata: pd.DataFrame | None = None,
    ):
        self.modalities: dict[str, ad.AnnData] = {}
        if rna is not None:
            self.modalities["rna"] = rna
        self.samples: dict[str, ad.AnnData] = dict(samples or {})
        self.subsets: dict[str, ad.AnnData] = {}
        self.path = None if path is None else Path(path)
        self.subset = subset
        self.samples_loaded = samples_loaded
        self.metadata = None if metadata is None else xl.validate_metadata(metadata, "the metadata")
        # modalities of a loaded .h5mu other than 'rna' (e.g. 'atac'): written back unchanged
        self.other_modalities: dict[str, ad.AnnData] = {}

    @property
    def layout(self) -> str:
        """``'exprmat'`` (saved as ``metadata.tsv`` + ``.h5mu``) or ``'exprmat_widgets'`` (``.h5ad``)."""
        return "exprmat" if self.metadata is not None else "exprmat_widgets"

    # -- access ---------------------------------------------------------------------------

    def __getitem__(self, name: str) -> ad.AnnData:
        if name not in self.modalities:
            raise MissingKeyError(
                f"modality {name!r} is not in this experiment (have: {sorted(self.modalities)})."
            )
        return self.modalities[name]

    def __setitem__(self, name: str, adata: ad.AnnData) -> None:
        if name not in MODALITIES:
            raise ExprmatError(f"unknown modality {name!r}; expected one of {list(MODALITIES)}.")
        if not isinstance(adata, ad.AnnData):
            raise ExprmatError(f"expm[{name!r}] must be an AnnData, got {type(adata).__name__}.")
        self.modalities[name] = adata

    def __contains__(self, name) -> bool:
        return name in self.modalities

    @property
    def rna(self) -> Modality:
        """The routines and figures bound to ``expm['rna']`` (see :class:`Modality`)."""
        self["rna"]  # clear error if absent
        return Modality(self, "rna")

    # -- summary --------------------------------------------------------------------------

    def _label(self) -> str:
        return f"subset {self.subset}" if self.subset else "integrated dataset"

    def __repr__(self) -> str:
        lines = []
        if "rna" in self.modalities:
            a = self.modalities["rna"]
            lines.append(f"annotated data of size {a.n_obs} × {a.n_vars}")
            lines.append(f"{self._label()} of size {a.n_obs} × {a.n_vars}")
        else:
            lines.append("experiment without integrated data")
        lines.append(f"contains modalities: {', '.join(self.modalities) or '(none)'}")
        for name, a in self.modalities.items():
            lines.append(f"modality [{name}]")
            lines += summary_lines(a)
        if self.metadata is not None and self.samples_loaded:
            lines.append("[*] composed of samples:")
            for row in self.metadata.itertuples(index=False):
                s = self.samples.get(str(row.sample)) if str(row.modality) in MODALITIES else None
                size = f"of size {s.n_obs} × {s.n_vars}" if s is not None else "not loaded"
                lines.append(f"{row.sample} {row.modality} {row.taxa} batch {row.batch} {size}")
        elif self.samples:
            lines.append("[*] composed of samples:")
            for name, s in self.samples.items():
                lines.append(f"{name} rna of size {s.n_obs} × {s.n_vars}")
        elif not self.samples_loaded:
            lines.append("[*] samples not loaded from disk.")
        else:
            lines.append("[*] no samples.")
        return "\n".join(lines)

    __str__ = __repr__

    # -- disk -----------------------------------------------------------------------------

    def _dir(self, path) -> Path:
        if path is not None:
            return Path(path)
        if self.path is None:
            raise ExprmatError("this experiment has no directory yet; pass one: expm.save('path/to/expm').")
        return self.path

    def save(self, path: str | os.PathLike | None = None, save_samples: bool = True) -> Path:
        """Write the experiment under ``path`` (default: where it was loaded from), in its layout.

        exprmat's layout (an experiment with ``metadata``): ``metadata.tsv``,
        ``integrated.h5mu`` (or ``subsets/<name>.h5mu`` when a subset is loaded; a MuData
        whose modality ``'rna'`` is ``expm['rna']``, beside the file's other modalities),
        ``<modality>/<sample>.h5ad`` for each sample in memory and ``subsets/<name>.h5mu``
        for subsets built in this session.  This package's layout: ``integrated.h5ad``
        (or ``subsets/<name>.h5ad``), ``samples/<name>.h5ad`` and ``subsets/<name>.h5ad``.
        Samples are skipped with ``save_samples=False``.

        Parameters
        ----------
        path
            Directory to write to (created when missing); default the experiment's.
        save_samples
            Also write the samples held in memory.

        Returns
        -------
        pathlib.Path
            The directory, which becomes the experiment's ``path``.
        """
        out = self._dir(path)
        if self.layout == "exprmat":
            return self._save_exprmat(out, save_samples)
        out.mkdir(parents=True, exist_ok=True)
        if "rna" in self.modalities:
            target = out / "subsets" / f"{self.subset}.h5ad" if self.subset else out / "integrated.h5ad"
            target.parent.mkdir(parents=True, exist_ok=True)
            self.modalities["rna"].write_h5ad(target)
            logg.info("main dataset written to %s", target)
        if save_samples and self.samples:
            (out / "samples").mkdir(exist_ok=True)
            logg.info("saving individual samples. (pass `save_samples = False` to skip)")
            for name, s in self.samples.items():
                s.write_h5ad(out / "samples" / f"{name}.h5ad")
        for name, s in self.subsets.items():
            (out / "subsets").mkdir(exist_ok=True)
            s.write_h5ad(out / "subsets" / f"{name}.h5ad")
        self.path = out
        return out

    def _sample_modality(self) -> dict:
        """``{sample: modality}`` of every sample in memory, from the metadata (checked first)."""
        meta = xl.validate_metadata(self.metadata, "expm.metadata")
        known = dict(zip(meta["sample"].astype(str), meta["modality"].astype(str)))
        extra = [n for n in self.samples if n not in known]
        if extra:
            raise ExprmatError(
                f"the sample(s) {extra} are not in expm.metadata (have: {list(known)}); add a row for each "
                f"(columns {list(xl.METADATA_COLUMNS)}) or remove them from expm.samples."
            )
        return known

    def _save_exprmat(self, out: Path, save_samples: bool) -> Path:
        modality_of = self._sample_modality()  # every check before the first file is written
        out.mkdir(parents=True, exist_ok=True)
        xl.write_metadata(self.metadata, out)
        if "rna" in self.modalities:
            target = out / "subsets" / f"{self.subset}.h5mu" if self.subset else out / "integrated.h5mu"
            xl.write_modality(self.modalities["rna"], target, "rna", self.other_modalities)
        if save_samples and self.samples:
            from tqdm.auto import tqdm

            logg.info("saving individual samples. (pass `save_samples = False` to skip)")
            for name, s in tqdm(self.samples.items(), desc="modality [rna]", leave=False):
                f = xl.sample_file(out, modality_of[name], name)
                f.parent.mkdir(parents=True, exist_ok=True)
                s.write_h5ad(f)
        for name, s in self.subsets.items():
            xl.write_modality(s, out / "subsets" / f"{name}.h5mu")
        self.path = out
        return out

    def build_subset(self, subset_name: str, slot: str = "rna", keys: list | None = None, values: list | None = None):
        """Keep the cells of ``expm[slot]`` whose ``obs[keys[i]]`` is in ``values[i]`` as a named subset.

        The subset is a copy whose history is the parent's records followed by a
        recorded ``subset_cells`` step, so it replays from the parent's starting
        data.  It is written to ``<dir>/subsets/<subset_name>.h5mu`` (exprmat's layout;
        ``.h5ad`` in this package's) when the experiment has a directory, and kept in
        ``expm.subsets``; load it with
        ``em.load_experiment(dir, load_subset=subset_name)``.

        Parameters
        ----------
        subset_name
            Name of the subset (a file name, no slashes).
        slot
            The modality to subset.
        keys
            Categorical obs columns, e.g. ``['leiden']``.
        values
            One list of categories per key, e.g. ``[['0', '1', '2']]``.

        Returns
        -------
        anndata.AnnData
            The subset (also in ``expm.subsets[subset_name]``).
        """
        from .tl.annotation import subset_cells

        if not isinstance(subset_name, str) or not subset_name or any(c in subset_name for c in "/\\"):
            raise ExprmatError(f"subset_name must be a non-empty file name without slashes, got {subset_name!r}.")
        if keys is None or values is None:
            raise ExprmatError("build_subset needs keys and values, e.g. keys=['leiden'], values=[['0', '1']].")
        sub = self[slot].copy()
        subset_cells(sub, keys=keys, values=values)
        self.subsets[subset_name] = sub
        if self.path is not None and self.layout == "exprmat":
            xl.write_modality(sub, self.path / "subsets" / f"{subset_name}.h5mu")
        elif self.path is not None:
            target = self.path / "subsets" / f"{subset_name}.h5ad"
            target.parent.mkdir(parents=True, exist_ok=True)
            sub.write_h5ad(target)
        else:
            logg.warning("the experiment has no directory yet: the subset is written by expm.save(path).")
        return sub

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_samples(
        cls,
        samples: dict,
        integrate: bool = True,
        *,
        sample_key: str = "sample",
        n_top_genes: int = 2000,
        n_comps: int = 30,
        random_state: int = 0,
    ) -> Experiment:
        """An experiment from raw-count samples (``{name: AnnData}``).

        The samples are concatenated (inner join of genes; ``obs[sample_key]``
        categorical in the given order; raw counts kept in ``layers['counts']``).
        With ``integrate=True``, counts are normalised to 10,000 per cell and
        log1p-transformed (in ``X``), highly variable genes flagged in
        ``var['vst.all.hvg']`` (scanpy ``flavor='seurat'`` on log data, the
        tutorial's column name), PCA on them written to ``obsm['X_pca']`` and
        batch-corrected with Harmony (harmonypy, over ``obs[sample_key]``) into
        ``obsm['harmony']`` (plain PCA when there is a single sample).
        ``var['gene']`` holds the gene names.

        Parameters
        ----------
        samples
            ``{name: AnnData}`` of raw counts; the order sets the categories of
            ``obs[sample_key]``.
        integrate
            Run the recorded preprocessing and Harmony (above); ``False`` only
            concatenates.
        sample_key
            obs column naming each cell's sample.
        n_top_genes
            Number of highly variable genes.
        n_comps
            Number of principal components.
        random_state
            Seed of the PCA and of Harmony.

        Returns
        -------
        Experiment
            Its ``'rna'`` modality is the concatenated data; ``samples`` the input.
        """
        if not isinstance(samples, dict) or not samples:
            raise ExprmatError("from_samples needs a non-empty dict {sample name: AnnData}.")
        names = [str(k) for k in samples]
        obs_names = pd.Index(np.concatenate([np.asarray(s.obs_names) for s in samples.values()]))
        adata = ad.concat(
            {str(k): s for k, s in samples.items()},
            join="inner",
            label=sample_key,
            index_unique=None if obs_names.is_unique else "-",
            merge="same",
        )
        adata.obs[sample_key] = pd.Categorical(adata.obs[sample_key].astype(str), categories=names)
        if "gene" not in adata.var.columns:
            adata.var["gene"] = adata.var_names.astype(str)
        if sp.issparse(adata.X):
            # canonical storage (as after an h5ad round trip), so that a replay on freshly
            # built data sums in the same order as on data read from disk
            adata.X.sort_indices()
        if integrate:
            # recorded commands: the experiment's history starts at its samples' counts
            from . import tl

            tl.derive_layer(adata, key_added="counts", source="X", transform="copy")
            tl.normalize_total(adata, target_sum=1e4)
            tl.log1p(adata)
            tl.highly_variable_genes(adata, flavor="seurat", n_top_genes=n_top_genes, key_added="vst.all.hvg")
            tl.pca(adata, n_comps=n_comps, mask_var="vst.all.hvg", random_state=random_state)
            tl.harmony(adata, batch_key=sample_key, random_state=random_state, allow_single_batch=True)
        return cls(adata, samples={str(k): s for k, s in samples.items()})


def example_experiment(integrate: bool = True) -> Experiment:
    """The shipped two-sample PBMC data (``em.datasets.pbmc_2samples()``, 400 cells)
    split by ``obs['sample']`` and rebuilt with :meth:`Experiment.from_samples`
    (Harmony-corrected PCA in ``obsm['harmony']``).

    Parameters
    ----------
    integrate
        Passed to :meth:`Experiment.from_samples`.

    Returns
    -------
    Experiment
    """
    from .datasets import pbmc_2samples

    full = pbmc_2samples()
    samples = {}
    for name in full.obs["sample"].astype("category").cat.categories:
        s = full[full.obs["sample"] == name].copy()
        s.obs = s.obs.drop(columns="sample")
        samples[str(name)] = s
    return Experiment.from_samples(samples, integrate=integrate)


def load_experiment(path: str | os.PathLike, load_samples: bool = True, load_subset: str | None = None) -> Experiment:
    """Read an experiment directory, in exprmat's layout or this package's (told apart by its files).

    A directory with ``metadata.tsv`` is exprmat's: the samples are the table's rows
    (``<modality>/<sample>.h5ad``), modality ``'rna'`` of ``integrated.h5mu`` (or of
    ``subsets/<name>.h5mu``) is ``expm['rna']``.  Otherwise it is this package's, as
    :meth:`Experiment.save` writes it without metadata (``integrated.h5ad``,
    ``samples/*.h5ad``, ``subsets/*.h5ad``).

    Parameters
    ----------
    path
        The directory.
    load_samples
        Also read the samples.
    load_subset
        Name of a subset (``subsets/<name>.h5mu``, or ``.h5ad``) to load as modality
        ``'rna'`` instead of the integrated data.

    Returns
    -------
    Experiment
    """
    root = Path(path)
    if not root.is_dir():
        raise ExprmatError(f"experiment directory {str(root)!r} does not exist; save one with expm.save(path).")
    if xl.is_exprmat_dir(root):
        return _load_exprmat(root, load_samples, load_subset)
    if not any((root / f).exists() for f in ("integrated.h5ad", "samples", "subsets")):
        found = sorted(p.name for p in root.iterdir())[:10]
        raise ExprmatError(
            f"{str(root)!r} holds no experiment (it has: {found}): exprmat's layout needs "
            f"{str(root / xl.METADATA)!r} (one row per sample, columns {list(xl.METADATA_COLUMNS)}) beside "
            "integrated.h5mu; this package's needs integrated.h5ad or samples/."
        )
    if load_subset is None:
        main = root / "integrated.h5ad"
    else:
        main = root / "subsets" / f"{load_subset}.h5ad"
        if not main.exists():
            raise MissingKeyError(f"subset {load_subset!r} not found in {str(root)!r} (have: {_subsets(root)}).")
    rna = ad.read_h5ad(main) if main.exists() else None
    if rna is None:
        logg.warning("no %s in %s.", main.name, root)
    samples = {}
    if load_samples:
        sdir = root / "samples"
        files = sorted(sdir.glob("*.h5ad")) if sdir.is_dir() else []
        if not files:
            logg.warning("samples are not dumped in the experiment directory.")
        else:
            order = []
            if rna is not None and isinstance(rna.obs.get("sample", pd.Series(dtype=float)).dtype, pd.CategoricalDtype):
                order = [str(c) for c in rna.obs["sample"].cat.categories]
            rank = {n: i for i, n in enumerate(order)}
            files.sort(key=lambda f: (rank.get(f.stem, len(rank)), f.stem))
            samples = _read_samples({f.stem: f for f in files})
    return Experiment(rna, samples, path=root, subset=load_subset, samples_loaded=load_samples)


def _subsets(root: Path) -> list[str]:
    sdir = root / "subsets"
    return sorted({p.stem for p in sdir.iterdir() if p.suffix in (".h5ad", ".h5mu")}) if sdir.is_dir() else []


def _read_samples(files: dict) -> dict:
    from tqdm.auto import tqdm

    return {name: ad.read_h5ad(f) for name, f in tqdm(files.items(), desc="loading samples", leave=False)}


FOREIGN_HISTORY = "exprmat.commands"


def _set_aside_foreign_history(adata: ad.AnnData, where: Path) -> None:
    """Move a ``uns['commands']`` that is not this package's history (exprmat keeps its own
    there) to ``uns['exprmat.commands']``, where it is kept and written back as it was."""
    from .history.records import UNS_KEY, get_records

    if UNS_KEY not in adata.uns:
        return
    try:
        get_records(adata)
    except ExprmatError:
        adata.uns[FOREIGN_HISTORY] = adata.uns.pop(UNS_KEY)
        logg.warning("uns['commands'] of %s is exprmat's own record, not this package's history: kept as "
                     "uns[%r]; the history starts here.", where, FOREIGN_HISTORY)


def _load_exprmat(root: Path, load_samples: bool, load_subset: str | None) -> Experiment:
    meta = xl.read_metadata(root)
    if load_subset is None:
        main = root / "integrated.h5mu"
    else:
        main = root / "subsets" / f"{load_subset}.h5mu"
        if not main.exists():
            raise MissingKeyError(
                f"subset {load_subset!r} not found: no {str(main)!r} (have: {_subsets(root)}); "
                "make it with expm.build_subset(subset_name, keys=..., values=...)."
            )
    rna, others = xl.read_modality(main, "rna") if main.exists() else (None, {})
    if rna is None:
        logg.warning("no %s in %s.", main.name, root)
    else:
        _set_aside_foreign_history(rna, main)
    samples = {}
    if load_samples:
        files, missing = {}, []
        for row in meta.itertuples(index=False):
            f = xl.sample_file(root, row.modality, row.sample)
            if row.modality not in MODALITIES:
                continue
            if f.exists():
                files[str(row.sample)] = f
            else:
                missing.append(f"{row.modality}/{row.sample}.h5ad")
        if missing:
            logg.warning("sample dump(s) %s missing in %s.", missing, root)
        samples = _read_samples(files)
    expm = Experiment(rna, samples, path=root, subset=load_subset, samples_loaded=load_samples, metadata=meta)
    expm.other_modalities = others
    return expm
