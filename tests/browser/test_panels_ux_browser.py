"""The Annotator's panels in a real browser (JupyterLab + headless Chromium): buttons named
after the current selection, Undo / Redo naming their command (Redo re-runs the record and
reproduces its output), Save refusing to overwrite until "overwrite" is ticked; checked on
the page and in the notebook's kernel.  Screenshots at 1400 and 1100 px wide and in the
dark theme go to ``screens/`` (for a person to look at)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCREENS = Path(__file__).resolve().parents[2] / "screens"

CELLS = [
    "import scanpy as sc\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()\n"
    "em.leiden(adata, resolution=1.0, random_state=0)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=420)\nann",
]


def _text(page, sel) -> str:
    return jh.text_of(page, f"{ANN} {sel}")


def _wait_text(page, sel, pattern, timeout=60_000):
    jh.wait_text(page, f"{ANN} {sel}", pattern, timeout)


def _click(page, kernel, sel):
    """Click a button and wait until its action is done (the status line has changed)."""
    kernel.run("_before = ann.status_text")
    page.locator(f"{ANN} {sel}").first.click()
    kernel.wait_for("not ann.busy and ann.status_text != _before", timeout=90)
    page.wait_for_function("() => !document.querySelector('.em-status .em-status-busy')", timeout=30_000)


def _shot(page, name):
    SCREENS.mkdir(exist_ok=True)
    page.locator(ANN).first.screenshot(path=str(SCREENS / name))


def test_panels_ux_in_the_browser(browser_ctx, jupyter_server):
    server = jupyter_server
    page = browser_ctx.new_page()
    try:
        kernel = jh.open_annotator_notebook(page, server, "panels_ux.ipynb", CELLS)

        # the buttons say what they act on
        page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^0$")).first.click()
        page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^2$")).first.click()
        kernel.wait_for("ann.clusters.selected == ['0', '2']")
        n = kernel.eval("int(adata.obs['leiden'].isin(['0', '2']).sum())")
        _wait_text(page, "button.em-exclude", rf"^Exclude 2 clusters \({n:,} cells\)$")
        assert _text(page, "button.em-label-clusters") == f"Label 2 clusters ({n:,} cells)"
        assert _text(page, "button.em-merge") == "Merge 2 clusters"
        _shot(page, "panels_1400.png")

        # label cluster 1; the plot shows the label column; Undo / Redo name the command
        page.locator(f"{ANN} button.em-clear").first.click()
        kernel.wait_for("ann.clusters.selected == []")
        page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^1$")).first.click()
        kernel.wait_for("ann.clusters.selected == ['1']")
        n1 = kernel.eval("int((adata.obs['leiden'] == '1').sum())")
        box = page.locator(f"{ANN} .em-label input").first
        box.fill("Mono")
        box.press("Tab")
        kernel.wait_for("ann.clusters.label_text.value == 'Mono'")
        _click(page, kernel, "button.em-label-clusters")
        assert kernel.eval("ann.scatter.color") == "cell.type"
        _wait_text(page, "button.em-undo", rf"^Undo label_cells \(Mono, {n1} cells\)$")
        _wait_text(page, ".em-color-info", r"plot coloured by obs\['cell.type'\]")
        _shot(page, "panels_after_label_1400.png")
        rec = kernel.eval("__import__('json').loads(adata.uns['commands'][-1])")
        _click(page, kernel, "button.em-undo")
        assert kernel.eval("'cell.type' in adata.obs") is False
        _wait_text(page, "button.em-redo", rf"^Redo label_cells \(Mono, {n1} cells\)$")
        page.wait_for_selector(f"{ANN} .em-history-undone")
        _click(page, kernel, "button.em-redo")
        new = kernel.eval("__import__('json').loads(adata.uns['commands'][-1])")
        assert new["command"] == "label_cells" and new["params"] == rec["params"]
        assert new["output"] == rec["output"]
        assert "same result as before the undo" in _text(page, ".em-status")
        _wait_text(page, "button.em-redo", r"^Redo \(nothing undone\)$")

        # Save refuses to overwrite until "overwrite" is ticked, and says the full path
        target = server.root / "annotated.h5ad"
        if target.exists():  # written by an earlier test of this server session
            target.unlink()
        assert not target.exists()
        _click(page, kernel, "button.em-save")
        assert target.exists() and f"wrote {target}" in _text(page, ".em-status")
        mtime = os.path.getmtime(target)
        _click(page, kernel, "button.em-save")
        page.wait_for_selector(f"{ANN} .em-status .em-status-error")
        assert "already exists" in _text(page, ".em-status") and os.path.getmtime(target) == mtime
        page.locator(f"{ANN} .em-overwrite input").first.check()
        kernel.wait_for("ann.history.overwrite.value")
        _click(page, kernel, "button.em-save")
        page.wait_for_selector(f"{ANN} .em-status .em-status-ok")
        assert os.path.getmtime(target) > mtime
        assert kernel.eval("ann.history.overwrite.value") is False
        _shot(page, "panels_saved_1400.png")

        # narrower window and dark theme: screenshots to look at; no gap under the scatter
        page.set_viewport_size({"width": 1100, "height": 1700})
        page.wait_for_timeout(800)
        _shot(page, "panels_1100.png")
        gap = page.evaluate(
            """(sel) => { const a = document.querySelector(sel);
                 const sc = a.querySelector('.emw-scatter').getBoundingClientRect();
                 const mk = a.querySelector('.em-marker-panel').getBoundingClientRect();
                 return mk.top - sc.bottom; }""",
            ANN,
        )
        assert gap < 40, f"{gap}px between the scatter and the marker panel"
        jh.set_theme(page, True)
        _shot(page, "panels_dark_1100.png")
        page.set_viewport_size({"width": 1400, "height": 1700})
        page.wait_for_timeout(800)
        _shot(page, "panels_dark_1400.png")
        jh.set_theme(page, False)
        assert not page.emw_errors, page.emw_errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
