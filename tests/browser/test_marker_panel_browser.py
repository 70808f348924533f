"""The marker panel in a real browser (JupyterLab 4, headless Debian Chromium, real mouse):
the table on the page is the current result after each new result (also when the row
count stays the same), a click on a row colours the UMAP by that result's gene, the panel
opens with an existing ``uns['markers']`` and re-draws after the page is reloaded with the
kernel alive. Each check is made on the page and in the notebook's kernel. Screenshots
(1100 and 1400 px wide, dark theme) go to ``screens/`` for a look."""

from __future__ import annotations

import re
from pathlib import Path

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
PANEL = ".em-annotator .em-marker-panel"
SCREENS = Path(__file__).resolve().parents[2] / "screens"

CELLS = [
    "import numpy as np\nimport scanpy as sc\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()\n"
    "em.leiden(adata, resolution=1.0, random_state=0)\n"
    "em.markers(adata, groupby='leiden', method='t-test')  # a result made before the panel opens",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=380)\nann",
]

PAGE_GENES = "els => els.map(e => e.dataset.gene)"


def _page_rows(page):
    return page.eval_on_selector_all(f"{PANEL} .em-marker-table tr.em-marker-row", PAGE_GENES)


def _kernel_rows(kernel, key):
    return kernel.eval(f"list(em.filter_markers(adata, key={key!r}, **ann.markers.filters())['names'])")


def _wait_rows(page, genes):
    page.wait_for_function(
        "([sel, genes]) => JSON.stringify([...document.querySelectorAll(sel)].map(e => e.dataset.gene))"
        " === JSON.stringify(genes)",
        arg=[f"{PANEL} .em-marker-table tr.em-marker-row", genes],
        timeout=30_000,
    )


def _fill(page, cls, value):
    box = page.locator(f"{PANEL} .{cls} input").first
    box.fill(value)
    box.press("Tab")


def _act(page, kernel, selector):
    n = kernel.eval("len(adata.uns['commands'])")
    page.locator(f"{PANEL} {selector}").first.click()
    kernel.wait_for(f"(not ann.busy) and (len(adata.uns['commands']) == {n + 1} or ann.status_kind == 'error')",
                    timeout=90)
    assert kernel.eval("ann.status_kind") in ("ok", "warn"), kernel.eval("ann.status_text")


def _shot(page, name):
    SCREENS.mkdir(exist_ok=True)
    page.locator(".em-annotator").first.screenshot(path=str(SCREENS / name))


def test_marker_table_follows_results_and_survives_reload(browser_ctx, jupyter_server):
    server = jupyter_server
    page = browser_ctx.new_page()
    try:
        kernel = jh.open_annotator_notebook(page, server, "markers.ipynb", CELLS)

        # item 2: the existing result is shown at once, table and dot plot
        first = _kernel_rows(kernel, "markers")
        assert first and kernel.eval("ann.markers.result_key") == "markers"
        _wait_rows(page, first)
        assert page.locator(f"{PANEL} .em-dotplot circle.em-dot").count() > 0
        page.locator(PANEL).scroll_into_view_if_needed()
        _shot(page, "markers_1400.png")

        # item 1: two results with the same number of rows; the page shows the current one
        _fill(page, "em-n-genes", "3")
        _fill(page, "em-min-lfc", "0")
        _fill(page, "em-max-padj", "1")
        _fill(page, "em-min-pct", "0")
        kernel.wait_for("ann.markers.filters()['n_genes'] == 3 and ann.markers.filters()['min_pct'] == 0")
        page.locator(".em-annotator button.em-cluster-toggle").filter(has_text=re.compile(r"^0$")).first.click()
        kernel.wait_for("ann.clusters.selected == ['0']")
        _act(page, kernel, "button.em-markers")
        clusters = _kernel_rows(kernel, "markers")
        _wait_rows(page, clusters)
        assert len(clusters) == 3
        jh.lasso_around(page, kernel, "np.flatnonzero(adata.obs['leiden'] == '2')")
        _act(page, kernel, "button.em-selection-markers")
        lasso = _kernel_rows(kernel, "markers.selection")
        assert kernel.eval("ann.markers.result_key") == "markers.selection"
        assert len(lasso) == len(clusters) and lasso != clusters
        _wait_rows(page, lasso)
        assert _page_rows(page) == lasso == kernel.eval("[r[1] for r in ann.markers.view.rows]")
        dots = page.eval_on_selector_all(f"{PANEL} .em-dotplot text.em-gene-label", PAGE_GENES)
        assert dots == list(dict.fromkeys(lasso))
        # a real click on the second row colours the UMAP by that gene of this result
        row = page.locator(f"{PANEL} .em-marker-table tr.em-marker-row").nth(1)
        gene = row.get_attribute("data-gene")
        assert gene == lasso[1]
        row.click()
        kernel.wait_for(f"ann.scatter.color == {gene!r}", timeout=30)
        page.wait_for_selector(f"{PANEL} tr.em-marker-row.em-selected[data-gene='{gene}']")

        # item 2: save, reload the page, kernel alive: the panel re-draws from the kernel's state
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
        page.reload()
        jh.open_notebook(page, server, "markers.ipynb", run_all=False)
        try:
            _wait_rows(page, lasso)
        finally:
            page.screenshot(path=str(SCREENS / "reload_page.png"))
        page.wait_for_selector(f"{PANEL} .em-dotplot circle.em-dot")
        n_dots = page.locator(f"{PANEL} .em-dotplot circle.em-dot").count()
        assert n_dots == len(set(lasso)) * 2  # selection and rest
        assert "marker genes in" in page.text_content(f"{PANEL} .em-marker-count")

        # screenshots: 1100 px wide, then the dark theme
        page.set_viewport_size({"width": 1100, "height": 1700})
        page.locator(PANEL).scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        _shot(page, "markers_1100.png")
        jh.set_theme(page, True)
        text = page.eval_on_selector(f"{PANEL} .em-marker-table td", "e => getComputedStyle(e).color")
        label = page.eval_on_selector(f"{PANEL} .em-dotplot text.em-svg-text", "e => getComputedStyle(e).fill")
        for c in (text, label):  # light text on the dark background
            rgb = [int(v) for v in re.findall(r"\d+", c)[:3]]
            assert sum(rgb) / 3 > 150, c
        _shot(page, "markers_dark.png")
        jh.set_theme(page, False)
        assert not page.emw_errors, page.emw_errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
