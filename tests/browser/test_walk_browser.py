"""A new user's first clicks on raw counts (the walkthrough of issues 10 and 11), in a real
browser at 1100 px: the Analysis tabs headed as the empty scatter names them, the Embed tab
before any embedding, Markers before any clusters and cNMF before its linear layer say which
button or tab to use (on the page, nothing recorded), the composition says how many cells it
leaves out, and a long history parameter wraps inside the history panel instead of running
past its right edge.  Screenshots: walkfix_*.png."""

from __future__ import annotations

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
CELLS = [
    "import exprmat_widgets as em\nadata = em.datasets.pbmc_2samples()   # 400 real PBMC, raw counts",
    "ann = em.Annotator(adata, height=320)\nann",
]


def _status_is(page, pattern):
    jh.wait_text(page, f"{ANN} .em-status", pattern)


def test_first_clicks_on_raw_counts_say_what_to_press(page, jupyter_server):
    kernel = jh.open_annotator_notebook(page, jupyter_server, "walkfix", CELLS, width=1100, embedded=False)
    jh.wait_text(page, f"{ANN} .em-analysis-title", "^Analysis \\(.*start with Preprocess")
    jh.analysis_tab(page, "Embed")
    jh.wait_text(page, f"{ANN} .em-an-stale", "^no embedding yet")

    page.locator(f"{ANN} button.em-markers").first.click()
    _status_is(page, "no clusters yet.*Cluster section")
    assert "Leiden" in kernel.eval("ann.last_error")

    jh.analysis_tab(page, "cNMF")
    page.locator(f"{ANN} button.em-an-cnmf").first.click()
    _status_is(page, "press 'Linear layer' first")
    assert kernel.eval("len(adata.uns.get('commands', []))") == 0  # nothing recorded
    jh.screenshot(page.locator(ANN).first, "walkfix_01_cnmf_refused_1100.png")

    # a labelled minority: the shares are of the labelled cells, and the page says so
    kernel.run("em.derive_layer(adata, key_added='counts_before_normalisation_of_every_sample', "
               "transform='copy')\nem.label_cells(adata, 'cell.type', list(adata.obs_names[:30]), 'B cell')\n"
               "ann.refresh()")
    jh.analysis_tab(page, "Composition")
    jh.wait_text(page, f"{ANN} .em-an-composition-missing", "^370 of 400 cells have no cell.type")
    shares = page.eval_on_selector_all(f"{ANN} .em-an-composition table tbody td", "ds => ds.map(d => d.textContent)")
    assert shares and all(s == "100.0%" for s in shares), shares

    # the history's long parameter wraps: the table stays inside its panel
    page.wait_for_function(
        "() => [...document.querySelectorAll('.em-history-table td')].some(t => t.textContent.includes("
        "'counts_before_normalisation_of_every_sample'))")
    box = page.eval_on_selector(
        f"{ANN} .em-history-panel",
        "p => ({panel: p.getBoundingClientRect().right, table: p.querySelector('.em-history-table table')"
        ".getBoundingClientRect().right})")
    assert box["table"] <= box["panel"] + 0.5, box
    page.locator(f"{ANN} .em-history-panel").first.scroll_into_view_if_needed()
    jh.screenshot(page.locator(ANN).first, "walkfix_02_composition_history_1100.png")
    jh.set_theme(page, True)
    jh.screenshot(page.locator(ANN).first, "walkfix_03_dark_1100.png")
    jh.set_theme(page, False)
    assert not page.emw_errors, page.emw_errors
