"""The Annotator on an experiment read from exprmat's layout (metadata.tsv + integrated.h5mu,
genes named ``rna:hsa:<id>`` with symbols in ``var['gene']``), in a real browser (JupyterLab 4,
headless Debian Chromium, real mouse and keyboard): the gene search offers and accepts the
symbols, the page colours the cells by the gene's expression, and the marker table shows
symbols whose click colours the UMAP.  Each check is made on the page and in the kernel.
Screenshots (1400 and 1100 px wide, dark theme) go to tests/artifacts/."""

from __future__ import annotations

import sys
from pathlib import Path

import emw_browser_jupyter as jh
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/exprmat_dir.py
from exprmat_dir import write_exprmat_dir  # noqa: E402

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
ANN = ".em-annotator"
PANEL = ".em-annotator .em-marker-panel"

CELLS = [
    "import numpy as np\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "from exprmat_widgets._access import feature\n"
    "expm = em.load_experiment('expm/scrna')\n"
    "expm.rna.knn(use_rep='harmony', n_neighbors=15, random_state=0)\n"
    "expm.rna.umap(random_state=0)\n"
    "expm.rna.leiden(resolution=0.5, random_state=0)\n"
    "expm.rna.markers(groupby='leiden', method='t-test', gene_symbol='gene', key_added='markers')",
    "ann = expm.rna.annotator(key='leiden', basis='umap', height=420)\nann",
]

PAGE_CODES = """(c) => { const v = c.__emw.model.get('_codes');
    const u = new Uint16Array(v.buffer, v.byteOffset, v.byteLength / 2); return Array.from(u); }"""


def _centre(page, selector):
    box = page.locator(selector).first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _click(page, selector):
    x, y = _centre(page, selector)
    page.mouse.move(x - 30, y - 10)
    page.mouse.move(x, y, steps=5)
    page.mouse.click(x, y)


def _shot(page, name):
    jh.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = jh.ARTIFACTS / name
    page.locator(ANN).first.screenshot(path=str(path))
    return path


def _status(page):
    return page.text_content(f"{ANN} .em-status") or ""


def _coloured_by(page, kernel, gene):
    """The kernel coloured by ``gene`` (a symbol) with its expression, and the page shows it."""
    kernel.wait_for(f"ann.scatter.color == {gene!r}")
    page.wait_for_function(f"() => document.querySelector('{ANN} .em-status').textContent"
                           f".includes('coloured by {gene}')")
    a = "expm['rna']"
    gid = kernel.eval(f"str({a}.var_names[list({a}.var['gene'].astype(str)).index({gene!r})])")
    assert gid.startswith("rna:hsa:g")
    assert kernel.eval(f"bool(np.array_equal(ann.scatter._hover_values, feature({a}, {gid!r})[0]))")
    # the page draws the colour codes the kernel computed from that gene: not one colour
    page.wait_for_function(f"(k) => document.querySelector('{SCATTER} .emw-legend-title').textContent === k",
                           arg=gene)
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    want = kernel.eval("np.frombuffer(ann.scatter._codes, dtype='<u2').tolist()")
    page.wait_for_function(f"(w) => {{ const f = {PAGE_CODES}; const c = document.querySelector("
                           f"'{SCATTER} canvas'); return f(c).join(',') === w; }}", arg=",".join(map(str, want)))
    assert len(set(want)) > 10


def test_annotator_finds_genes_by_symbol(browser_ctx, jupyter_server):
    server = jupyter_server
    write_exprmat_dir(server.root / "expm" / "scrna")
    jh.write_notebook(server.root / "exprmat_layout.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ok = False
    try:
        jh.open_notebook(page, server, "exprmat_layout.ipynb", timeout=300)
        page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=120_000)
        page.wait_for_selector(f"{PANEL} .em-marker-table tr.em-marker-row")
        kernel = server.kernel_for("exprmat_layout.ipynb")
        assert kernel.eval("expm.layout") == "exprmat"
        assert kernel.eval("str(expm['rna'].var_names[0])") == "rna:hsa:g00000"
        assert not [e for e in jh.cell_errors(page) if "Traceback" in e or "Error" in e], jh.cell_errors(page)

        # the search box: a real click, typed letters; the page offers the symbol, not the id
        search = f"{SCATTER} input.emw-search"
        _click(page, search)
        page.keyboard.press("Control+A")  # the box shows the current colour key ('leiden')
        page.keyboard.type("CD1", delay=40)
        page.wait_for_function(f"() => [...document.querySelectorAll('{SCATTER} datalist option')]"
                               ".some(o => o.value === 'CD14')")
        offered = page.eval_on_selector_all(f"{SCATTER} datalist option", "els => els.map(e => e.value)")
        assert offered and not any(o.startswith("rna:") for o in offered), offered
        page.keyboard.type("4", delay=40)
        page.keyboard.press("Enter")
        _coloured_by(page, kernel, "CD14")
        assert kernel.eval("ann.status_kind") == "ok"
        _shot(page, "exprmat_symbol_search_1400.png")

        # lower case resolves to the one symbol too
        _click(page, search)
        page.keyboard.press("Control+A")
        page.keyboard.type("lyz", delay=40)
        page.keyboard.press("Enter")
        _coloured_by(page, kernel, "LYZ")

        # the marker table shows symbols; a click on a row colours the UMAP by that gene
        rows = page.eval_on_selector_all(f"{PANEL} .em-marker-table tr.em-marker-row",
                                         "els => els.map(e => e.dataset.gene)")
        assert rows and rows == kernel.eval("[r[1] for r in ann.markers.view.rows]")
        assert not any(g.startswith("rna:") for g in rows), rows[:5]
        assert kernel.eval("sorted(set(ann.markers.table_df['names'].str[:8]))") == ["rna:hsa:"]
        target = next(g for g in rows if g not in ("CD14", "LYZ"))
        row = f"{PANEL} .em-marker-table tr.em-marker-row[data-gene='{target}']"
        page.locator(row).first.scroll_into_view_if_needed()
        _click(page, row)
        _coloured_by(page, kernel, target)

        page.set_viewport_size({"width": 1100, "height": 1100})
        page.wait_for_timeout(800)
        page.locator(ANN).first.scroll_into_view_if_needed()
        _shot(page, "exprmat_symbol_search_1100.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
        page.wait_for_selector(f'{SCATTER}[data-theme="dark"]')
        page.wait_for_timeout(800)
        _shot(page, "exprmat_symbol_search_dark.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Light'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=60_000)
        assert not errors, errors
        ok = True
    finally:
        if not ok:
            page.screenshot(path=str(jh.ARTIFACTS / "exprmat_symbol_search_failed.png"))
        page.close()
        jh.shutdown_kernels(server)
