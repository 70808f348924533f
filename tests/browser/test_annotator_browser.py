"""em.Annotator in a real browser: JupyterLab served locally, headless Debian Chromium
driven by Playwright. A lasso is drawn with real mouse moves on the WebGL canvas, then
cells are labelled, clusters merged, excluded, re-clustered and the last step undone by
clicking the panels' buttons in the page. Each result is checked in the notebook's own
kernel (obs columns, history records) and in the page (cluster rows, counts, legend).
Finally the annotated data are saved by clicking "Save .h5ad" and the history replays
exactly in a fresh Python process."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap

import emw_browser_jupyter as jh
import numpy as np
import pytest

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
ANN = ".em-annotator"

CELLS = [
    "import numpy as np\nimport scanpy as sc\nimport exprmat_widgets as em\n"
    "import exprmat_widgets.widgets  # em.Annotator needs it until em.__getattr__ uses importlib\n"
    "adata = sc.datasets.pbmc68k_reduced()  # 700 real PBMCs with a kNN graph and X_umap\n"
    "adata.write_h5ad('start.h5ad')\n"
    "em.leiden(adata, resolution=1.0, random_state=0)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=420)\nann",
]


@pytest.fixture(scope="module")
def nb(browser_ctx, jupyter_server):
    server = jupyter_server
    jh.write_notebook(server.root / "annotator.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1280, "height": 1800})  # the whole annotator in view
    page.set_default_timeout(60_000)
    page.emw_console = []
    page.on("pageerror", lambda e: page.emw_console.append(f"pageerror: {e}"))
    jh.open_notebook(page, server, "annotator.ipynb")
    # more room for the panels: hide JupyterLab's file browser
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
    page.wait_for_selector(f"{ANN} .em-cluster-row")
    kernel = server.kernel_for("annotator.ipynb")
    yield {"page": page, "kernel": kernel, "server": server, "done": False}
    page.close()
    jh.shutdown_kernels(server)


# ------------------------------------------------------------------ page helpers


def _n_commands(kernel) -> int:
    return kernel.eval("len(adata.uns['commands'])")


def _click_and_wait(page, kernel, selector, n_before, expect_new=1):
    """Click a panel button; wait until the kernel finished the action (recorded or failed)."""
    page.locator(f"{ANN} {selector}").first.click()
    kernel.wait_for(
        f"(not ann.busy) and (len(adata.uns['commands']) == {n_before + expect_new} "
        "or ann.status_kind == 'error')",
        timeout=90,
    )
    page.wait_for_function(
        "() => !document.querySelector('.em-status .em-status-busy')", timeout=30_000
    )


def _toggle(page, name):
    page.locator(f"{ANN} button.em-cluster-toggle").filter(
        has_text=re.compile(rf"^{re.escape(name)}$")
    ).first.click()


def _fill(page, cls, value):
    box = page.locator(f"{ANN} .{cls} input").first
    box.fill(value)
    box.press("Tab")  # commits number fields


def _row_texts(page) -> dict:
    rows = page.eval_on_selector_all(
        f"{ANN} .em-cluster-row",
        "els => els.map(e => [e.querySelector('.em-cluster-toggle').textContent.trim(),"
        " e.querySelector('.em-cluster-count').textContent.trim()])",
    )
    return dict(rows)


def _legend(page) -> list:
    return page.eval_on_selector_all(
        f"{SCATTER} .emw-legend-item", "els => els.map(e => e.dataset.category)"
    )


def _screen_positions(page) -> np.ndarray:
    pos = page.eval_on_selector(
        f"{SCATTER} canvas",
        """(c) => { const sp = c.__emw.scatterplot, n = c.__emw.model.get('_n'), out = [];
                    for (let i = 0; i < n; i++) out.push(sp.getScreenPosition(i));
                    return out; }""",
    )
    return np.asarray(pos, dtype=float)


def _status(page) -> str:
    return page.text_content(f"{ANN} .em-status").strip()


def _wait_status(page, kind):
    page.wait_for_selector(f"{ANN} .em-status .em-status-{kind}", timeout=60_000)


# ------------------------------------------------------------------ the session


def _annotate_by_clicking(st, artifacts):
    page, kernel = st["page"], st["kernel"]
    page.locator(f"{SCATTER} canvas").first.scroll_into_view_if_needed()
    # the cluster list matches obs['leiden'], with counts
    counts = kernel.eval("{str(k): int(v) for k, v in adata.obs['leiden'].value_counts().items()}")
    rows = _row_texts(page)
    assert set(rows) == set(counts)
    for k, v in counts.items():
        assert rows[k].startswith(f"{v:,} cells")
    assert _legend(page) == kernel.eval("list(adata.obs['leiden'].cat.categories)")

    # 1) lasso around cluster '1' with real mouse moves, then label it
    page.click(f'{SCATTER} button[data-mode="lasso"]')
    kernel.wait_for("ann.scatter.mode == 'lasso'")
    screen = _screen_positions(page)
    members = np.asarray(kernel.eval("np.flatnonzero(adata.obs['leiden'] == '1').tolist()"))
    cx, cy = np.median(screen[members], axis=0)
    box = page.locator(f"{SCATTER} canvas").first.bounding_box()
    r = 45
    poly = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 14,
                                                                            endpoint=False)]
    jh.drag_path(page, poly + [poly[0]], steps=4, box=box)
    n_sel = kernel.wait_for("int(ann.scatter.selection.size)", timeout=30)
    page.wait_for_function(
        "(n) => (document.querySelector('.em-lasso-count')||{}).textContent"
        "?.startsWith(`${n} cells selected`)",
        arg=n_sel,
    )
    _fill(page, "em-label", "lasso blob")
    kernel.wait_for("ann.clusters.label_text.value == 'lasso blob'")
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-label-lasso", n)
    _wait_status(page, "ok")
    rec = kernel.eval("json.loads(adata.uns['commands'][-1])" if False else
                      "__import__('json').loads(adata.uns['commands'][-1])")
    assert rec["command"] == "label_cells" and rec["params"]["key"] == "cell.type"
    assert rec["params"]["label"] == "lasso blob" and rec["params"]["basis"] == "umap"
    assert len(rec["params"]["polygon"]) >= 8
    assert rec["params"]["cells"]["n_selected"] == n_sel
    sel = kernel.eval("ann.scatter.selection.tolist()")
    labelled = kernel.eval("np.flatnonzero(adata.obs['cell.type'] == 'lasso blob').tolist()")
    assert labelled == sel
    jh.screenshot(page.locator(ANN).first, "annotator_lasso_label.png")
    # the new label shows at once (the plot takes the label column); back to the clusters
    assert kernel.eval("ann.scatter.color") == "cell.type"
    page.locator(f"{ANN} button.em-color-by-key").first.click()
    kernel.wait_for("ann.scatter.color == 'leiden'")

    # 2) merge clusters '0' and '2' into 'T cells'
    page.click(f'{SCATTER} button[data-mode="pan"]')
    merged = counts["0"] + counts["2"]
    _toggle(page, "0")
    _toggle(page, "2")
    kernel.wait_for("ann.clusters.selected == ['0', '2']")
    _fill(page, "em-name", "T cells")
    kernel.wait_for("ann.clusters.name_text.value == 'T cells'")
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-merge", n)
    _wait_status(page, "ok")
    assert kernel.eval("__import__('json').loads(adata.uns['commands'][-1])['params']") == {
        "key": "leiden", "clusters": ["0", "2"], "new_name": "T cells"}
    assert kernel.eval("int((adata.obs['leiden'] == 'T cells').sum())") == merged
    page.wait_for_function(
        "() => [...document.querySelectorAll('.em-cluster-toggle')].some(b => b.textContent.trim() === 'T cells')"
    )
    rows = _row_texts(page)
    assert "0" not in rows and "2" not in rows and rows["T cells"].startswith(f"{merged:,} cells")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.emw-legend-item')].some(e => e.dataset.category === 'T cells')"
    )
    assert _legend(page) == kernel.eval("list(adata.obs['leiden'].cat.categories)")
    jh.screenshot(page.locator(ANN).first, "annotator_merge.png")

    # 3) exclude cluster '9'
    n_obs = kernel.eval("adata.n_obs")
    n9 = counts["9"]
    page.locator(f"{ANN} button.em-clear").first.click()
    kernel.wait_for("ann.clusters.selected == []")
    _toggle(page, "9")
    kernel.wait_for("ann.clusters.selected == ['9']")
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-exclude", n)
    _wait_status(page, "ok")
    assert kernel.eval("adata.n_obs") == n_obs - n9
    assert kernel.eval("'9' not in adata.obs['leiden'].cat.categories")
    assert kernel.eval("ann.scatter._n") == n_obs - n9
    page.wait_for_function(
        "(n) => document.querySelector('.em-summary').textContent.includes(`${n.toLocaleString('en-US')} cells`)",
        arg=n_obs - n9,
    )
    assert "9" not in _row_texts(page) and "9" not in _legend(page)
    assert f"excluded {n9:,} cells - Undo restores them" in _status(page)

    # 4) re-cluster cluster '3' at resolution 0.5
    _toggle(page, "3")
    kernel.wait_for("ann.clusters.selected == ['3']")
    _fill(page, "em-resolution", "0.5")
    kernel.wait_for("ann.clusters.resolution.value == 0.5")
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-recluster", n)
    _wait_status(page, "ok")
    rec = kernel.eval("__import__('json').loads(adata.uns['commands'][-1])")
    assert rec["command"] == "subcluster" and rec["params"]["resolution"] == 0.5
    subs = kernel.eval("[c for c in adata.obs['leiden'].cat.categories if c.startswith('3,')]")
    assert len(subs) >= 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('.em-cluster-toggle')].some(b => b.textContent.trim() === '3,0')"
    )
    assert set(subs) <= set(_row_texts(page)) and "3" not in _row_texts(page)
    jh.screenshot(page.locator(ANN).first, "annotator_recluster.png")

    # 5) undo the re-clustering
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-undo", n, expect_new=-1)
    _wait_status(page, "ok")
    assert kernel.eval("'3' in adata.obs['leiden'].cat.categories")
    assert kernel.eval("__import__('json').loads(adata.uns['commands'][-1])['command']") == "exclude"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.em-cluster-toggle')].some(b => b.textContent.trim() === '3')"
    )
    assert not any(k.startswith("3,") for k in _row_texts(page))
    page.wait_for_function(
        "(n) => document.querySelector('.em-history-count').textContent.startsWith(`${n} commands`)",
        arg=n - 1,
    )

    # 6) a refused action: rename '3' onto the existing 'T cells' -> red message, nothing changed
    before = kernel.eval("[len(adata.uns['commands']), adata.obs['leiden'].astype(str).tolist()]")
    _toggle(page, "3")  # the row came back unselected with the undo
    kernel.wait_for("ann.clusters.selected == ['3']")
    _fill(page, "em-name", "T cells")
    kernel.wait_for("ann.clusters.name_text.value == 'T cells'")
    _click_and_wait(page, kernel, "button.em-rename", before[0], expect_new=0)
    _wait_status(page, "error")
    assert "already a category" in _status(page)
    color = page.eval_on_selector(f"{ANN} .em-status .em-status-error", "e => getComputedStyle(e).color")
    assert color == "rgb(198, 40, 40)"
    assert kernel.eval("[len(adata.uns['commands']), adata.obs['leiden'].astype(str).tolist()]") == before
    jh.screenshot(page.locator(ANN).first, "annotator_error.png")

    # 7) markers of cluster '3'; click a gene in the table -> UMAP coloured by it
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-markers", n)
    _wait_status(page, "ok")
    assert kernel.eval("__import__('json').loads(adata.uns['commands'][-1])['params']['groups']") == ["3"]
    page.wait_for_function("() => document.querySelector('.em-marker-count')")
    n_rows = kernel.eval("len(ann.markers.table_df)")
    assert n_rows > 0
    row = page.locator(f"{ANN} .em-marker-table tr.em-marker-row").first
    gene = row.get_attribute("data-gene")
    assert gene == row.locator("td").nth(1).text_content().strip()
    row.click()
    kernel.wait_for(f"ann.scatter.color == {gene!r}", timeout=30)
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    jh.screenshot(page.locator(ANN).first, "annotator_markers.png")

    # 8) verify replay in the kernel, then save the annotated data by clicking
    n = _n_commands(kernel)
    _click_and_wait(page, kernel, "button.em-verify", n, expect_new=0)
    page.wait_for_selector(f"{ANN} .em-verify-ok")
    assert "reproduced exactly" in page.text_content(f"{ANN} .em-verify-status")
    _click_and_wait(page, kernel, "button.em-save", n, expect_new=0)
    _wait_status(page, "ok")
    assert "wrote" in _status(page) and "annotated.h5ad" in _status(page)
    assert not [m for m in page.emw_console if m.startswith("pageerror")], page.emw_console
    st["done"] = True
    st["commands"] = kernel.eval("[__import__('json').loads(r)['command'] for r in adata.uns['commands']]")


def test_annotate_by_clicking(nb, artifacts):
    _annotate_by_clicking(nb, artifacts)
    assert nb["commands"] == ["leiden", "label_cells", "merge_clusters", "exclude", "markers"]


REPLAY = textwrap.dedent(
    """
    import json, sys
    import anndata as ad, numpy as np
    import exprmat_widgets as em
    start = ad.read_h5ad(sys.argv[1])
    annotated = ad.read_h5ad(sys.argv[2])
    out = em.replay(start, annotated)
    same = {}
    for k in annotated.obs.columns:
        a = annotated.obs[k].astype(str).tolist()
        b = out.obs[k].astype(str).tolist() if k in out.obs else None
        same[k] = a == b
    print(json.dumps({
        "n_obs": [int(out.n_obs), int(annotated.n_obs)],
        "names": bool((out.obs_names == annotated.obs_names).all()),
        "same": same,
        "colors": list(map(str, out.uns["leiden_colors"])) == list(map(str, annotated.uns["leiden_colors"])),
        "markers": bool(np.array_equal(out.uns["markers"]["names"], annotated.uns["markers"]["names"])),
        "steps": len(annotated.uns["commands"]),
    }))
    """
)


def test_clicked_history_replays_in_fresh_process(nb, artifacts, tmp_path):
    if not nb["done"]:
        _annotate_by_clicking(nb, artifacts)
    root = nb["server"].root
    script = tmp_path / "replay.py"
    script.write_text(REPLAY)
    res = subprocess.run(
        [sys.executable, str(script), str(root / "start.h5ad"), str(root / "annotated.h5ad")],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n_obs"][0] == out["n_obs"][1] and out["names"]
    assert out["same"] and all(out["same"].values()), out["same"]
    assert out["colors"] and out["markers"] and out["steps"] == 5
