"""Kernel time of the annotator's actions (label, merge, exclude, undo) through the panel
handlers, at 100k and 1M cells **synthetic from mouse_10k_chr1**
(:func:`exprmat_widgets.datasets.synthetic_from`: distinct cells, each mixing a real cell with
one of its neighbours, counts one sampling away; ~59 non-zeros per cell, 1,000 genes). The real
cells are log-normalised and get a PCA, kNN graph, UMAP and Leiden clusters; each synthetic cell
carries the Leiden cluster of its main real cell and a UMAP position interpolated between its two
real cells' positions with the mixing weight, and is log-normalised itself.

For each action three figures, in one process on equal data:

* ``panel``: the button handler (``button.click()``) of ``em.Annotator`` with the real
  WebGL scatter widget: validation, the recorded core routine, panel refresh (counts,
  legend, history) and the scatter refresh (only changed buffers are re-encoded);
* ``core``: the same recorded core routine called directly on a copy;
* ``bare``: the equivalent plain pandas / anndata operation without history, colours or
  checks (the reference a script would otherwise write).

The browser side (sending buffers, WebGL redraw) is not included: see
``benchmarks/widget_colour.py`` for that.

    python benchmarks/widget_actions.py [--sizes 100000 1000000] [--graph]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from matplotlib.path import Path as MplPath

sys.path.insert(0, str(Path(__file__).parent))

import exprmat_widgets as em  # noqa: E402
import exprmat_widgets.widgets  # noqa: E402,F401


def base_data(cache=None):
    """The real mouse 10k cells: log-normalised, 30 PCs, kNN, UMAP, Leiden (0.5).
    ``cache``: an .h5ad path reused between runs."""
    import anndata as ad

    if cache and Path(cache).exists():
        return ad.read_h5ad(cache)
    adata = _prepare()
    if cache:
        adata.write_h5ad(cache)
    return adata


def _prepare():
    adata = em.datasets.mouse_10k()  # raw counts in X and layers['counts'] (kept: the source of the synthetic cells)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca", random_state=0)
    sc.tl.umap(adata, random_state=0)
    em.leiden(adata, resolution=0.5, random_state=0)
    return adata


def synthetic(base, n, graph: bool = False):
    """``n`` cells synthetic from ``base`` (see the module docstring); with ``graph``, also what
    a real session holds along the cells: a counts layer and 15-neighbour kNN graphs in obsp
    (each cell's neighbours are synthetic cells made from its main real cell's neighbours), so
    an exclusion copies those too."""
    import scipy.sparse as sp

    data = em.datasets.synthetic_from(base, n, random_state=1, layer="counts", source="mouse_10k_chr1")
    src = base.obs_names.get_indexer(data.obs["source_cell"].astype(str))
    partner = base.obs_names.get_indexer(data.obs["partner_cell"].astype(str))
    w = data.obs["mix_weight"].to_numpy()[:, None]
    umap = np.asarray(base.obsm["X_umap"])
    data.obsm["X_umap"] = (w * umap[src] + (1 - w) * umap[partner]).astype(np.float32)
    if graph:
        data.layers["counts"] = data.X.copy()
    sc.pp.normalize_total(data, target_sum=1e4)
    sc.pp.log1p(data)
    data.obs = data.obs[["leiden"]].copy()
    data.uns["leiden_colors"] = np.asarray(base.uns["leiden_colors"], dtype=object)
    if graph:
        rng = np.random.default_rng(2)
        order = np.argsort(src, kind="stable")
        first = np.searchsorted(src[order], np.arange(base.n_obs))
        count = np.bincount(src, minlength=base.n_obs)
        for key in ("connectivities", "distances"):
            g = base.obsp[key].tocsr()
            lens = np.diff(g.indptr)[src]
            pos = np.repeat(g.indptr[src], lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
            nbr_src = g.indices[pos]
            ok = count[nbr_src] > 0
            pick = order[first[nbr_src[ok]] + (rng.random(ok.sum()) * count[nbr_src[ok]]).astype(np.int64)]
            rows = np.repeat(np.arange(n), lens)[ok]
            m = sp.csr_matrix((g.data[pos][ok].astype(np.float32), (rows, pick)), shape=(n, n))
            m.sum_duplicates()
            data.obsp[key] = m
    return data


# the report's stream: a redirection of sys.stdout (below, or on a worker thread while a timed
# action runs) can outlive the action and would swallow the report's lines
REPORT = sys.stdout


def report(*args) -> None:
    print(*args, file=REPORT, flush=True)


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fn()
    return time.perf_counter() - t0


def lasso_around(data, cluster):
    emb = np.asarray(data.obsm["X_umap"])[:, :2]
    m = (data.obs["leiden"] == cluster).to_numpy()
    c = np.median(emb[m], axis=0)
    r = 0.5 * emb[m].std(axis=0).max()
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    poly = np.c_[c[0] + r * np.cos(t), c[1] + r * np.sin(t)]
    inside = np.flatnonzero(MplPath(poly).contains_points(emb))
    return inside, poly


def run(sizes, cache=None, graph=False):
    t0 = time.perf_counter()
    base = base_data(cache)
    report(f"base: mouse 10k (real), {base.obs['leiden'].cat.categories.size} Leiden clusters, "
          f"prepared in {time.perf_counter() - t0:.1f} s")
    rows = []
    for n in sizes:
        data = synthetic(base, n, graph=graph)
        ref = data.copy()  # for the core-routine and bare timings
        bare = data.copy()
        cats = list(data.obs["leiden"].cat.categories)
        big = data.obs["leiden"].value_counts().index.tolist()
        t0 = time.perf_counter()
        ann = em.Annotator(data, key="leiden", basis="umap", background=False)
        t_build = time.perf_counter() - t0
        cp, hp = ann.clusters, ann.history
        out = {}

        # label two clusters into cell.type
        pair = [big[0], big[1]]
        cp.select(pair)
        cp.label_text.value = "A"
        out["label clusters"] = [timed(cp.label_button.click)]
        mask = ref.obs["leiden"].isin(pair).to_numpy()
        out["label clusters"].append(timed(lambda ref=ref, mask=mask: em.label_cells(ref, "cell.type", mask, "A")))

        def bare_label(bare=bare, mask=mask):
            bare.obs["cell.type"] = pd.Categorical(np.where(mask, "A", None), categories=["A"])

        out["label clusters"].append(timed(bare_label))

        # label a lasso selection (with its polygon)
        inside, poly = lasso_around(data, big[2])
        sc_ = ann.scatter
        sc_.selection = inside
        tr = sc_._transform
        sc_._polygon = ((poly - np.array([tr["cx"], tr["cy"]])) * tr["scale"]).astype("<f4").tobytes()
        cp.label_text.value = "B"
        out["label lasso"] = [timed(cp.lasso_label_button.click)]
        out["label lasso"].append(timed(lambda ref=ref, inside=inside, poly=poly: em.label_cells(
            ref, "cell.type", inside, "B", polygon=poly.tolist(), basis="umap")))

        def bare_lasso(bare=bare, inside=inside):
            col = bare.obs["cell.type"].cat.add_categories(["B"])
            arr = col.to_numpy(copy=True)
            arr[inside] = "B"
            bare.obs["cell.type"] = pd.Categorical(arr, categories=["A", "B"])

        out["label lasso"].append(timed(bare_lasso))
        n_sel = inside.size

        # merge two clusters
        pair = [cats[-1], cats[-2]]
        cp.select(pair)
        cp.name_text.value = ""
        out["merge"] = [timed(cp.merge_button.click)]
        out["merge"].append(timed(lambda ref=ref, pair=pair: em.merge_clusters(ref, "leiden", pair)))

        def bare_merge(bare=bare, pair=pair):
            col = bare.obs["leiden"].to_numpy()
            bare.obs["leiden"] = pd.Categorical(np.where(col == pair[1], pair[0], col))

        out["merge"].append(timed(bare_merge))

        # exclude one cluster
        victim = big[3]
        cp.select([victim])
        out["exclude"] = [timed(cp.exclude_button.click)]
        out["exclude"].append(timed(lambda ref=ref, victim=victim: em.exclude(ref, "leiden", [victim])))

        def bare_exclude(bare=bare, victim=victim):
            keep = (bare.obs["leiden"] != victim).to_numpy()
            bare._inplace_subset_obs(keep)

        out["exclude"].append(timed(bare_exclude))

        # undo the exclusion (exact, from the in-memory checkpoint)
        out["undo exclude"] = [timed(hp.undo_button.click), None, None]
        assert ann.status_kind == "ok", ann.status_text
        assert data.n_obs == n, (data.n_obs, n)
        cmds = list(em.history(data)["command"])
        assert cmds[-3:] == ["label_cells", "label_cells", "merge_clusters"], cmds
        rows.append((n, t_build, n_sel, out))
        extra = ", counts layer + 2 kNN graphs in obsp" if graph else ""
        report(f"\n{n:,} cells x {data.n_vars} genes (synthetic from mouse_10k_chr1{extra}), lasso {n_sel:,} cells; "
              f"Annotator built in {t_build:.2f} s (incl. shallow start copy)")
        report(f"  {'action':<16} {'panel':>9} {'core':>9} {'bare':>9}  panel/core  panel/bare")
        for k, (p, c, b) in out.items():
            cs = f"{c:.3f}s" if c is not None else "-"
            bs = f"{b:.3f}s" if b is not None else "-"
            pc = f"{p / c:.2f}x" if c else "-"
            pb = f"{p / b:.1f}x" if b else "-"
            report(f"  {k:<16} {p:>8.3f}s {cs:>9} {bs:>9}  {pc:>10}  {pb:>10}")
        ann = data = ref = bare = None  # free the copies before the next size
        gc.collect()
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--cache", default=None, help="h5ad path to keep the prepared 10k cells")
    ap.add_argument("--graph", action="store_true",
                    help="also a counts layer and kNN graphs in obsp (what exclusion must copy in a real session)")
    args = ap.parse_args()
    run(args.sizes, args.cache, args.graph)
