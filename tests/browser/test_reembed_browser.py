"""The Embed tab's fast UMAP in a real browser (JupyterLab + headless Chromium): the layout
box switched to "fast (subsample)" with the mouse shows its cells box, the note says how
long each layout takes (the threshold lowered to these 400 cells), and UMAP then records
``subsample=<cells>`` and redraws the scatter.  Checked on the page and in the kernel;
screenshots at 1400 and 1100 px wide and in the dark theme go to tests/artifacts/."""

from __future__ import annotations

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"

CELLS = [
    "import exprmat_widgets as em\nfrom exprmat_widgets.widgets import analysis_panel\n"
    "adata = em.datasets.pbmc_2samples()\n"
    "em.pca(adata, n_comps=10, mask_var=None, random_state=0)\n"
    "em.knn(adata, use_rep='X_pca', n_neighbors=10, random_state=0)\n"
    "em.umap(adata, random_state=0)\nem.leiden(adata, resolution=0.5, random_state=0)\n"
    "analysis_panel._SLOW_CELLS = 100   # the 'large data' note, shown for these 400 cells",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=360)\nann",
]


def test_fast_umap_from_the_embed_tab(browser_ctx, jupyter_server):
    server = jupyter_server
    page = browser_ctx.new_page()
    kernel = jh.open_annotator_notebook(page, server, "reembed.ipynb", CELLS, width=1400)
    jh.analysis_tab(page, "Embed")
    note = f"{ANN} .em-an-umap-note-text"
    jh.wait_text(page, note, "UMAP of 400 cells: about .* with the default, about .* with layout .fast \\(subsample\\)")
    cells_box = page.locator(f"{ANN} .em-an-umap-subsample").first
    assert not cells_box.is_visible()
    layout = page.locator(f"{ANN} .em-an-umap-mode select").first
    box = layout.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
    layout.select_option("fast (subsample)")
    cells_box.wait_for(state="visible")
    assert kernel.eval("ann.analysis.umap_mode.value") == "fast"
    field = cells_box.locator("input").first
    field.click()
    field.fill("150")
    field.press("Enter")
    kernel.wait_for("ann.analysis.umap_subsample.value == 150", timeout=30)
    jh.wait_text(page, note, "of 150 cells")
    drawn = int(page.locator(".emw-scatter").first.get_attribute("data-draw-count") or 0)
    panel = page.locator(f"{ANN} .em-analysis-panel").first
    panel.scroll_into_view_if_needed()
    jh.screenshot(panel, "reembed_fast_1400.png")
    jh.click_and_wait(page, kernel, "button.em-an-umap", shot="reembed_timeout.png")
    rec = kernel.eval("em.history(adata).iloc[-1][['command', 'params']].tolist()")
    assert rec[0] == "umap" and rec[1]["subsample"] == 150, rec
    assert kernel.eval("adata.uns['umap']['params']['subsample']") == 150
    page.wait_for_function(
        "([s, n]) => Number(document.querySelector(s).dataset.drawCount) > n", arg=[".emw-scatter", drawn])
    assert "umap done" in jh.text_of(page, f"{ANN} .em-status")
    page.set_viewport_size({"width": 1100, "height": 1700})
    page.wait_for_timeout(500)
    assert cells_box.is_visible() and page.locator(note).first.is_visible()
    panel.scroll_into_view_if_needed()
    jh.screenshot(panel, "reembed_fast_1100.png")
    jh.set_theme(page, True)
    jh.screenshot(panel, "reembed_fast_dark.png")
    jh.set_theme(page, False)
    assert not page.emw_errors, page.emw_errors
