"""Long work in a real browser (JupyterLab + headless Chromium): cNMF started from the
Annotator's cNMF tab moves the progress bar on the page while it runs, a cluster click is
answered meanwhile, and Cancel stops it: the kernel's history and data are as before and
the page says it was cancelled.  Screenshots at 1400 and 1100 px wide and in the dark
theme go to ``tests/artifacts/``."""

from __future__ import annotations

import re

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCATTER = ".emw-scatter"

CELLS = [
    "import scanpy as sc\nimport exprmat_widgets as em\nfrom exprmat_widgets.history import fingerprint\n"
    "adata = em.datasets.pbmc68k_counts()\n"
    "b = sc.AnnData(adata.layers['counts'].copy(), obs=adata.obs[[]], var=adata.var[[]])\n"
    "sc.pp.normalize_total(b, target_sum=1e4)\n"
    "adata.layers['norm'] = b.X.copy()\n"
    "sc.pp.log1p(b)\n"
    "sc.pp.highly_variable_genes(b, flavor='seurat', n_top_genes=300)\n"
    "adata.var['vst.all.hvg'] = b.var['highly_variable'].values",
    "ann = em.Annotator(adata, key='bulk_labels', basis='umap', height=380)\n"
    "an = ann.analysis\n"
    "an.cnmf_ks.value, an.cnmf_iter.value, an.cnmf_hvg.value = '5,6,7,8', 400, 'vst.all.hvg'\n"
    "ann",
]


def _bar_percent(page) -> float:
    """The width of the progress bar's filled part on the page, in percent."""
    return page.evaluate(
        """(sel) => { const b = document.querySelector(sel);
             return b ? parseFloat(b.style.width || '0') : -1; }""",
        f"{ANN} .em-progress-bar .progress-bar",
    )


def _shot(page, artifacts, name):
    page.locator(ANN).first.screenshot(path=str(artifacts / name))


def test_cnmf_progress_and_cancel_in_the_browser(page, jupyter_server, artifacts):
    import exprmat_widgets

    server = jupyter_server
    jh.write_notebook(server.root / "progress.ipynb", CELLS)
    page.set_viewport_size({"width": 1400, "height": 1600})
    jh.open_notebook(page, server, "progress.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
    kernel = server.kernel_for("progress.ipynb")
    assert kernel.eval("em.__file__") == exprmat_widgets.__file__
    n0 = kernel.eval("len(adata.uns.get('commands', []))")
    fp0 = kernel.eval("fingerprint({k: adata.uns[k] for k in adata.uns})")
    assert page.locator(f"{ANN} .em-progress").first.is_hidden()  # nothing runs yet

    # start cNMF from its tab with the mouse
    tab = page.locator(f"{ANN} .em-analysis-panel .lm-TabBar-tab").filter(has_text=re.compile(r"^cNMF$"))
    tab.first.click()
    # the threads box (ncpus) sits in the cNMF row, shows the kernel's value and takes a typed one
    threads = page.locator(f"{ANN} .em-an-cnmf-threads input").first
    threads.wait_for(state="visible", timeout=30_000)
    assert threads.input_value() == str(kernel.eval("an.cnmf_threads.value"))
    box, row = threads.bounding_box(), page.locator(f"{ANN} .em-analysis-panel").first.bounding_box()
    assert box["width"] > 20 and box["x"] + box["width"] <= row["x"] + row["width"]
    threads.click()
    threads.press("Control+a")
    most = kernel.eval("an.cnmf_threads.max")
    threads.type(str(most))
    threads.press("Enter")
    kernel.wait_for(f"an.cnmf_threads.value == {most}", timeout=10)
    button = page.locator(f"{ANN} button.em-an-cnmf").first
    button.hover()
    button.click()
    kernel.wait_for("ann.busy and ann.running == 'consensus_nmf'", timeout=30)

    # the bar appears and moves on the page while the kernel computes
    page.wait_for_selector(f"{ANN} .em-progress", state="visible", timeout=120_000)
    page.wait_for_function(
        "(sel) => { const b = document.querySelector(sel); return b && parseFloat(b.style.width) > 0; }",
        arg=f"{ANN} .em-progress-bar .progress-bar", timeout=120_000,
    )
    first = _bar_percent(page)
    page.wait_for_function(
        "([sel, v]) => parseFloat(document.querySelector(sel).style.width) > v",
        arg=[f"{ANN} .em-progress-bar .progress-bar", first], timeout=120_000,
    )
    assert first < _bar_percent(page) < 100
    assert re.search(r"cNMF \d+/1604", page.locator(f"{ANN} .em-progress-text").first.text_content())
    assert page.locator(f"{ANN} button.em-an-leiden").first.is_disabled()  # other actions wait
    assert "Cancel stops it" in page.locator(f"{ANN} .em-status").first.text_content()
    _shot(page, artifacts, "progress_running_1400.png")

    # a click in the cluster panel is answered while cNMF runs
    page.locator(f"{ANN} button.em-cluster-toggle").first.click()
    kernel.wait_for("len(ann.clusters.selected) == 1 and ann.busy", timeout=10)
    page.set_viewport_size({"width": 1100, "height": 1600})
    page.wait_for_timeout(600)
    _shot(page, artifacts, "progress_running_1100.png")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_timeout(1500)
    _shot(page, artifacts, "progress_running_dark_1100.png")
    assert kernel.eval("ann.busy")  # still running: the screenshots show the bar

    # Cancel: the kernel stops, nothing changed, the page says so
    cancel = page.locator(f"{ANN} button.em-cancel").first
    cancel.hover()
    cancel.click()
    kernel.wait_for("not ann.busy", timeout=120)
    assert kernel.eval("ann.cancelled") is True
    assert kernel.eval("len(adata.uns.get('commands', []))") == n0
    assert kernel.eval("fingerprint({k: adata.uns[k] for k in adata.uns})") == fp0
    assert kernel.eval("'cnmf' in adata.uns") is False
    page.wait_for_function(
        "(sel) => /consensus_nmf cancelled/.test(document.querySelector(sel).textContent)",
        arg=f"{ANN} .em-status", timeout=30_000,
    )
    assert "cancelled" in page.locator(f"{ANN} .em-progress-text").first.text_content()
    assert page.locator(f"{ANN} button.em-cancel").first.is_hidden()
    assert not page.locator(f"{ANN} button.em-an-leiden").first.is_disabled()
    _shot(page, artifacts, "progress_cancelled_dark_1100.png")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.wait_for_timeout(1500)
    _shot(page, artifacts, "progress_cancelled_1400.png")
    errors = [m for m in page.emw_console if m.startswith("pageerror")]
    assert not errors, errors
