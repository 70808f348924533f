"""Cell Ontology label completion and the comparison heatmap in a real browser (JupyterLab +
headless Chromium), checked on the page and in the kernel: typing in the label box lists
CL terms, picking one and labelling records its id; clicking a cell of the comparison table
selects its cells in the UMAP.  Screenshots at 1400 and 1100 px wide and in the dark theme
go to ``tests/artifacts/``."""

from __future__ import annotations

import re

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCATTER = ".emw-scatter"

CELLS = [
    "import scanpy as sc\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()\n"
    "em.leiden(adata, resolution=1.0, random_state=0)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', label_key='cell_type', height=420)\nann",
]


def _wait_text(page, sel, pattern, timeout=60_000):
    page.wait_for_function(
        "([s, p]) => { const e = document.querySelector(s); return e && new RegExp(p).test(e.textContent); }",
        arg=[f"{ANN} {sel}", pattern], timeout=timeout,
    )


def _shot(page, name):
    jh.screenshot(page.locator(ANN).first, name)


def test_label_completion_and_comparison_view(browser_ctx, jupyter_server):
    import exprmat_widgets

    server = jupyter_server
    jh.write_notebook(server.root / "ontology.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1400, "height": 1900})
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        jh.open_notebook(page, server, "ontology.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
        page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
        page.wait_for_selector(f"{ANN} .em-cluster-row")
        kernel = server.kernel_for("ontology.ipynb")
        assert kernel.eval("em.__file__") == exprmat_widgets.__file__

        # select a cluster, type part of a CL name: the ranked terms show under the box
        page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^0$")).first.click()
        kernel.wait_for("ann.clusters.selected == ['0']")
        box = page.locator(f"{ANN} .em-label input").first
        box.click()
        box.press_sequentially("monoc", delay=60)
        kernel.wait_for("ann.clusters.label_text.value == 'monoc'")
        option = page.locator(f"{ANN} .em-term-suggestions option").first
        option.wait_for()
        assert "monocyte" in option.text_content() and "CL:0000576" in option.text_content()
        _shot(page, "ontology_completion_1400.png")
        option.click()  # pick the term with the mouse
        kernel.wait_for("ann.clusters.label_box.picked is not None")
        _wait_text(page, ".em-term-info", r"CL:0000576 monocyte")
        assert page.locator(f"{ANN} .em-label input").first.input_value() == "monocyte"
        kernel.run("_before = ann.status_text")
        page.locator(f"{ANN} button.em-label-clusters").first.click()
        kernel.wait_for("not ann.busy and ann.status_text != _before", timeout=90)
        assert kernel.eval("em.term_mapping(adata, 'cell_type')") == {"monocyte": "CL:0000576"}
        assert kernel.eval("em.history(adata).iloc[-1]['params']['term']") == "CL:0000576"
        # the page's box is empty again, and its suggestions are gone
        page.wait_for_function(
            "sel => { const i = document.querySelector(sel); return i && i.value === ''; }",
            arg=f"{ANN} .em-label input")
        page.locator(f"{ANN} .em-term-suggestions").first.wait_for(state="hidden")

        # the comparison view: open it, compare bulk_labels with leiden, click a table cell
        page.locator(f"{ANN} .em-compare-box").get_by_text("Compare annotations").first.click()
        page.locator(f"{ANN} button.em-compare").first.wait_for(state="visible")
        page.locator(f"{ANN} .em-compare-a select").first.select_option("bulk_labels")
        page.locator(f"{ANN} .em-compare-b select").first.select_option("leiden")
        kernel.wait_for("ann.compare.key_a.value == 'bulk_labels' and ann.compare.key_b.value == 'leiden'")
        page.locator(f"{ANN} button.em-compare").first.click()
        kernel.wait_for("ann.compare.result is not None")
        page.wait_for_selector(f"{ANN} .em-compare-grid button.em-compare-cell")
        ari = kernel.eval("round(ann.compare.result.ari, 3)")
        _wait_text(page, ".em-compare-summary", rf"ARI {ari:.3f}")
        la, lb, n = kernel.eval(
            "(lambda r: (lambda lb: ('CD19+ B', lb, int(r.table.loc['CD19+ B', lb])))"
            "(r.per_label_a.loc['CD19+ B', 'best_match']))(ann.compare.result)")
        cell = page.locator(f"{ANN} button.em-compare-cell[title^='bulk_labels={la} and leiden={lb}:']").first
        assert cell.text_content().strip() == f"{n:,}"
        cell.click()
        kernel.wait_for(f"int(ann.scatter.selection_mask.sum()) == {n}")
        assert kernel.eval(f"bool((ann.scatter.selection_mask == ((adata.obs['bulk_labels'] == {la!r}) & "
                           f"(adata.obs['leiden'] == {lb!r})).to_numpy()).all())")
        _wait_text(page, ".em-selection-info", rf"{n:,} cells selected")
        # the cluster panel's buttons act on those cells now
        assert page.locator(f"{ANN} button.em-label-clusters").first.text_content().strip() == \
            f"Label {n:,} lasso cells"
        page.locator(f"{ANN} .em-compare-panel").scroll_into_view_if_needed()
        _shot(page, "ontology_compare_1400.png")

        page.set_viewport_size({"width": 1100, "height": 1900})
        page.wait_for_timeout(600)
        _shot(page, "ontology_compare_1100.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_timeout(800)
        color = page.eval_on_selector(f"{ANN} .em-compare-summary", "e => getComputedStyle(e).color")
        rgb = [int(v) for v in re.findall(r"\d+", color)[:3]]
        assert sum(rgb) / 3 > 150, color  # light text on the dark background
        _shot(page, "ontology_compare_dark.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Light'})")
        assert not errors, errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
