"""The Annotator on an atlas opened with ``em.read_lazy`` (X on disk as dask chunks, obs and
the embedding in memory), in a real browser (JupyterLab 4, headless Chromium, real mouse
and keyboard): the page draws the cells, the gene typed in the search box colours them by
that gene's expression computed from the store, a lasso labels cells, and X stays lazy
in the kernel throughout.  Screenshots at 1400 and 1100 px wide and in the dark theme go
to tests/artifacts/."""

from __future__ import annotations

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
ANN = ".em-annotator"

CELLS = [
    "import json, numpy as np, pandas as pd, scanpy as sc, scipy.sparse as sp\n"
    "import exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "from exprmat_widgets._access import feature\n"
    "a = em.datasets.pbmc_2samples()  # 400 real PBMCs, 15,792 genes\n"
    "sc.pp.normalize_total(a, target_sum=1e4); sc.pp.log1p(a)\n"
    "sc.pp.pca(a, n_comps=15, random_state=0); sc.pp.neighbors(a, random_state=0); sc.tl.umap(a, random_state=0)\n"
    "sc.tl.leiden(a, resolution=0.5, random_state=0, flavor='igraph', n_iterations=2)\n"
    "del a.layers['counts'], a.obsm['protein_expression'], a.obsp['connectivities'], a.obsp['distances']\n"
    "a.X = sp.csr_matrix(a.X, dtype=np.float32); a.write_zarr('atlas.zarr')\n"
    "mem = a\nadata = em.read_lazy('atlas.zarr', chunk_cells=90)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=420)\nann",
]


def _colour_by_gene(page, kernel, gene):
    search = page.locator(f"{SCATTER} input.emw-search").first
    search.hover()  # a real pointer move onto the box, then a click
    search.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(gene, delay=30)
    page.keyboard.press("Enter")
    kernel.wait_for(f"ann.scatter.color == {gene!r}", timeout=60)
    page.wait_for_function(f"(k) => document.querySelector('{SCATTER} .emw-legend-title').textContent === k",
                           arg=gene)
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    # the values drawn are the gene's column of the stored matrix, and X is still lazy
    assert kernel.eval(f"bool(np.array_equal(ann.scatter._hover_values, mem[:, {gene!r}].X.toarray().ravel()))")
    assert kernel.eval("hasattr(adata.X, 'dask')")


def test_annotator_on_lazy_atlas(browser_ctx, jupyter_server):
    server = jupyter_server
    page = browser_ctx.new_page()
    try:
        kernel = jh.open_annotator_notebook(page, server, "lazy_atlas.ipynb", CELLS, width=1400)
        assert kernel.eval("hasattr(adata.X, 'dask') and adata.X.numblocks[0] == 5")
        n_page = page.eval_on_selector(f"{ANN} .em-cluster-row", "e => e.parentElement.children.length")
        assert n_page >= kernel.eval("adata.obs['leiden'].nunique()")
        det = kernel.eval("str(mem.var_names[int(np.argmin(np.abs(np.asarray((mem.X > 0).mean(axis=0)).ravel()"
                          " - 0.4)))])")
        _colour_by_gene(page, kernel, det)
        jh.screenshot(page.locator(ANN).first, "lazy_atlas_gene_1400.png")

        # a lasso around the cells of one cluster labels them; X stays on disk
        jh.lasso_around(page, kernel, "np.flatnonzero(adata.obs['leiden'].astype(str) == '0')")
        box = page.locator(f"{ANN} .em-label input").first
        box.click()
        box.fill("lassoed")
        box.press("Tab")
        kernel.wait_for("ann.clusters.label_text.value == 'lassoed'")
        jh.click_and_wait(page, kernel, "button.em-label-lasso")
        assert kernel.eval("int((adata.obs['cell.type'].astype(str) == 'lassoed').sum())") \
            == kernel.eval("int(ann.scatter.selection.size)")
        assert kernel.eval("json.loads(adata.uns['commands'][-1])['command']") == "label_cells"
        assert kernel.eval("hasattr(adata.X, 'dask')")

        page.set_viewport_size({"width": 1100, "height": 1700})
        page.wait_for_timeout(800)
        jh.screenshot(page.locator(ANN).first, "lazy_atlas_gene_1100.png")
        jh.set_theme(page, True)
        jh.screenshot(page.locator(ANN).first, "lazy_atlas_gene_dark.png")
        jh.set_theme(page, False)
        assert not getattr(page, "emw_errors", []), page.emw_errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
