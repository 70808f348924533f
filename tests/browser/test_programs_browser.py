"""The Annotator opened on raw counts without an embedding, in a real browser (JupyterLab +
headless Chromium): the scatter's empty state, then Preprocess, Embed and Leiden by clicking
(the scatter draws the new UMAP, the cluster panel lists the clusters), then a tiny cNMF
run, extraction, a click on a program (the UMAP coloured by its usage) and the labelling by
dominant program.  Checked on the page and in the kernel; screenshots at 1100 and 1400 px
wide and in the dark theme go to tests/artifacts/."""

from __future__ import annotations

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCATTER = ".emw-scatter"

CELLS = [
    "import exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = em.datasets.pbmc_2samples()   # 400 real PBMC, raw counts, no embedding",
    "ann = em.Annotator(adata, height=360)\nann",
]


def _click(page, kernel, sel, text=None, timeout=180):
    jh.click_and_wait(page, kernel, sel, text, timeout, shot="programs_timeout.png")


_tab = jh.analysis_tab


def test_programs_from_an_annotator_without_embedding(browser_ctx, jupyter_server):
    import exprmat_widgets

    server = jupyter_server
    jh.write_notebook(server.root / "programs.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1400, "height": 2400})
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        jh.open_notebook(page, server, "programs.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
        kernel = server.kernel_for("programs.ipynb")
        assert kernel.eval("em.__file__") == exprmat_widgets.__file__
        # the empty state: no points, a message saying what to do
        page.wait_for_selector(f'{SCATTER}[data-empty="true"]', timeout=90_000)
        empty = page.locator(f"{SCATTER} [data-testid=empty-state]").first
        assert empty.is_visible() and "No embedding yet: run Preprocess and Embed" in empty.text_content()
        assert "does not exist yet" in page.locator(f"{ANN} .em-cluster-summary").first.text_content()
        assert kernel.eval("ann.scatter._n") == 0
        assert not page.locator(f"{ANN} .em-color-by-key").first.is_visible()  # no clusters to colour by yet
        jh.screenshot(page.locator(ANN).first, "programs_empty_1400.png")

        # Preprocess and Embed, by clicking
        _tab(page, "Preprocess")
        for css in ("keep-counts", "normalize", "log1p"):
            _click(page, kernel, f"button.em-an-{css}")
        _click(page, kernel, "button.em-an-hvg")
        _click(page, kernel, "button.em-an-pca")
        _tab(page, "Embed")
        assert kernel.eval("ann.analysis.use_rep.value") == "X_pca"
        # the first kNN / UMAP of a process compiles numba code (or loads it from the disk
        # cache): the status line says so while it waits (issue 11, item 18); every text the
        # line shows is collected on the page
        page.evaluate("""() => { const el = document.querySelector('.em-annotator .em-status');
            window.__emStatus = [el.textContent];
            new MutationObserver(() => window.__emStatus.push(el.textContent))
              .observe(el, {subtree: true, childList: true, characterData: true}); }""")
        _click(page, kernel, "button.em-an-knn", timeout=900)
        said = page.evaluate("() => window.__emStatus")
        assert any("numba code of the first kNN" in t or "numba code for the first kNN" in t for t in said), said
        assert kernel.eval("[r['command'] for r in em.history(adata).to_dict('records')][-1]") == "knn"
        _click(page, kernel, "button.em-an-umap", timeout=900)
        page.wait_for_selector(f'{SCATTER}[data-empty="false"]')
        page.wait_for_function(
            "(s) => { const e = document.querySelector(s); return e && e.dataset.drawn === 'true' && "
            "Number(e.dataset.drawCount) > 1 && !e.querySelector('[data-testid=empty-state]').textContent; }",
            arg=SCATTER)
        assert not page.locator(f"{SCATTER} [data-testid=empty-state]").first.is_visible()
        assert kernel.eval("ann.scatter._n == adata.n_obs == 400")
        assert page.locator(f"{SCATTER} [data-testid=selection-count]").first.text_content() == \
            "No selection (400 cells)"
        _tab(page, "Cluster")
        _click(page, kernel, "button.em-an-leiden")
        page.wait_for_selector(f"{ANN} .em-cluster-row")
        n_clusters = kernel.eval("len(adata.obs['leiden'].cat.categories)")
        assert n_clusters > 1
        page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n",
                               arg=[f"{ANN} .em-cluster-row", n_clusters], timeout=30_000)
        assert kernel.eval("ann.clusters.key_dropdown.value") == "leiden"
        jh.screenshot(page.locator(ANN).first, "programs_embedded_1400.png")

        # a tiny cNMF: linear layer, k=3, 5 replicates on the HVGs; extract; click a program
        _tab(page, "cNMF")
        _click(page, kernel, "button.em-an-tpm")
        kernel.run("ann.analysis.cnmf_ks.value = '3'; ann.analysis.cnmf_iter.value = 5")
        assert kernel.eval("ann.analysis.cnmf_hvg.value") == "highly_variable"
        _click(page, kernel, "button.em-an-cnmf", timeout=300)
        _click(page, kernel, "button.em-an-extract")
        page.wait_for_selector(f"{ANN} button.em-an-program")
        assert page.locator(f"{ANN} button.em-an-program").count() == 3
        top = kernel.eval("list(ann.analysis.program_genes['2'][:3])")
        genes = page.locator(f"{ANN} .em-an-program-genes").nth(1).text_content()
        assert all(g in genes for g in top), (top, genes)
        kernel.run("_before = ann.scatter.color")
        page.locator(f"{ANN} button.em-an-program").filter(has_text="Program 2").first.click()
        kernel.wait_for("ann.scatter.color == 'cnmf.3:2'")
        page.wait_for_function(
            "(s) => document.querySelector(s + ' .emw-legend-title')?.textContent === 'cnmf.3:2'", arg=SCATTER)
        # the colour box offers the programs too
        search = page.locator(f"{SCATTER} input.emw-search").first
        search.fill("cnmf.3:")
        opts = page.eval_on_selector_all(f"{SCATTER} datalist option", "os => os.map(o => o.value)")
        assert opts[:3] == ["cnmf.3:1", "cnmf.3:2", "cnmf.3:3"], opts
        search.fill("cnmf.3:3")
        search.press("Enter")
        kernel.wait_for("ann.scatter.color == 'cnmf.3:3'")
        assert "obsm column cnmf.3:3" in page.locator(f"{ANN} .em-color-info").first.text_content()
        jh.screenshot(page.locator(ANN).first, "programs_cnmf_1400.png")
        _click(page, kernel, "button.em-an-label-programs")
        assert kernel.eval("ann.clusters.key") == "cnmf.3.program"
        assert kernel.eval("__import__('json').loads(adata.uns['commands'][-1])['command']") == "label_by_program"
        # the page's list follows the kernel's (the comm message may still be on its way)
        n_programs = kernel.eval("len(adata.obs['cnmf.3.program'].cat.categories)")
        page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n",
                               arg=[f"{ANN} .em-cluster-row", n_programs], timeout=30_000)
        jh.screenshot(page.locator(ANN).first, "programs_labelled_1400.png")

        page.set_viewport_size({"width": 1100, "height": 2400})
        page.wait_for_timeout(800)
        jh.screenshot(page.locator(ANN).first, "programs_labelled_1100.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_timeout(1500)
        jh.screenshot(page.locator(ANN).first, "programs_dark_1100.png")
        # the empty state in the dark theme: undo back before the UMAP
        for _ in range(4):  # label_by_program, extract, cNMF, linear layer ... then leiden, umap
            _click(page, kernel, "button.em-undo")
        _click(page, kernel, "button.em-undo")
        _click(page, kernel, "button.em-undo")
        page.wait_for_selector(f'{SCATTER}[data-empty="true"]')
        assert kernel.eval("'X_umap' in adata.obsm") is False
        jh.screenshot(page.locator(ANN).first, "programs_empty_dark_1100.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        assert not errors, errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
