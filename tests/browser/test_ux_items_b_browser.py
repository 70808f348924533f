"""Issue 11's items 10, 11, 13, 16 and 17 and the scatter's PNG download, in a real browser
(JupyterLab 4 + Debian chromium through Playwright, real mouse clicks and key presses), each
checked on the page and in the notebook's kernel.

Two notebooks share the module: an Annotator on scanpy's pbmc68k_reduced (items 10, 11,
13, 17, the PNG), and the README's "Use" snippet, started first in a second tab because
its first kNN compiles numba code for a minute or two (item 16 waits for it last).
Screenshots at 1400 and 1100 px wide and in the dark theme go to ``tests/artifacts/``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import emw_browser_jupyter as jh
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCATTER = ".emw-scatter"
REPO = Path(__file__).resolve().parents[2]
SHOTS = jh.ARTIFACTS
NB = "ux_items_b/annotator.ipynb"
README_NB = "ux_items_b/readme_use.ipynb"

CELLS = [
    "import json\nimport scanpy as sc\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()\n"
    "start = adata.copy()  # what the exported script replays from\n"
    "em.leiden(adata, resolution=1.0, random_state=0)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', label_key='manual', height=420)\nann",
]


def readme_use_snippet() -> str:
    """The README's "Use" code block, as a user would paste it."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"^## Use\n+```python\n(.*?)^```", text, re.S | re.M)
    assert m, "README.md has no '## Use' python block"
    return m.group(1)


@pytest.fixture(scope="module")
def nb(browser_ctx, jupyter_server):
    server = jupyter_server
    # the README notebook runs in its own tab (and kernel) while the other items are tested
    readme_page = browser_ctx.new_page()
    readme_page.set_viewport_size({"width": 1400, "height": 1700})
    readme_page.set_default_timeout(60_000)
    jh.write_notebook(server.root / README_NB, [readme_use_snippet()])
    jh.open_notebook(readme_page, server, README_NB, run_all=False)
    readme_page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page = browser_ctx.new_page()
    kernel = jh.open_annotator_notebook(page, server, NB, CELLS, width=1400)
    yield page, kernel, readme_page
    for p in (page, readme_page):
        p.close()
    jh.shutdown_kernels(server)


def _text(page, sel) -> str:
    return jh.text_of(page, f"{ANN} {sel}")


def _wait_text(page, sel, pattern, timeout=60_000):
    jh.wait_text(page, f"{ANN} {sel}", pattern, timeout)


def _click(page, kernel, sel, done=None):
    """Move to a button, click it and wait until its action is done: ``done`` (a kernel
    expression) is true, or else the status line or the history has changed."""
    kernel.run("_before = (ann.status_text, len(adata.uns.get('commands', [])))")
    page.locator(f"{ANN} {sel}").first.click()  # Playwright moves the mouse there and clicks
    done = done or "(ann.status_text, len(adata.uns.get('commands', []))) != _before"
    kernel.wait_for(f"not ann.busy and ({done})", timeout=90)
    page.wait_for_function("() => !document.querySelector('.em-status .em-status-busy')", timeout=30_000)


def _type(page, sel, text):
    """Click into a text box, select what is there and type ``text`` with the keyboard."""
    box = page.locator(sel).first
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    return box


def _settle(page):
    page.wait_for_function(
        """() => { const c = document.querySelector('.emw-scatter canvas'), sp = c.__emw.scatterplot;
                   return Math.abs(sp.get('width') - c.parentElement.clientWidth) < 1; }""")
    page.wait_for_timeout(400)


def _shots(page, name):
    """The Annotator at 1400 and 1100 px, light and dark; back to 1400 px light."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = []
    for dark in (False, True):
        if dark:
            jh.set_theme(page, True)
        for width in (1400, 1100):
            page.set_viewport_size({"width": width, "height": 1700})
            _settle(page)
            path = SHOTS / f"items_b_{name}_{'dark' if dark else 'light'}_{width}.png"
            page.locator(ANN).first.screenshot(path=str(path))
            out.append(path)
    jh.set_theme(page, False)
    page.set_viewport_size({"width": 1400, "height": 1700})
    _settle(page)
    return out


def _rgb(css: str):
    return [int(float(x)) for x in re.findall(r"[\d.]+", css)[:3]]


def _hex_rgb(h: str):
    h = h.lstrip("#")
    return [int(h[i:i + 2], 16) for i in (0, 2, 4)]


def test_item10_label_the_unlabelled_and_colours_follow(nb):
    page, kernel, _ = nb
    n_obs = kernel.eval("adata.n_obs")
    # label cluster 0 into 'manual': the plot then shows the labels, the list says so
    page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^0$")).first.click()
    kernel.wait_for("ann.clusters.selected == ['0']")
    n0 = kernel.eval("int((adata.obs['leiden'] == '0').sum())")
    _wait_text(page, "button.em-select-unlabelled", rf"^Select {n_obs:,} unlabelled$")
    _type(page, f"{ANN} .em-label input", "T1")
    page.keyboard.press("Tab")
    kernel.wait_for("ann.clusters.label_text.value == 'T1'")
    _click(page, kernel, "button.em-label-clusters")
    assert kernel.eval("ann.scatter.color") == "manual"
    assert kernel.eval("int((adata.obs['manual'] == 'T1').sum())") == n0
    page.wait_for_function(
        "() => document.querySelector('.emw-scatter .emw-legend-title').textContent === 'manual'")
    _wait_text(page, ".em-color-info", r"plot coloured by obs\['manual'\], not by these clusters")
    # the list's swatches are leiden's: hidden while the plot shows another column
    assert page.locator(f"{ANN} .em-cluster-row .em-swatch").count() == 0
    rest = n_obs - n0
    _wait_text(page, "button.em-select-unlabelled", rf"^Select {rest:,} unlabelled$")

    # the unlabelled cells become the current selection, and "the rest" can be labelled
    _click(page, kernel, "button.em-select-unlabelled", "ann.clusters.selection_kind == 'unlabelled'")
    assert kernel.eval("ann.clusters.selection_kind") == "unlabelled"
    assert kernel.eval("int(ann.clusters.unlabelled_mask().sum())") == rest
    _wait_text(page, "button.em-label-clusters", rf"^Label {rest:,} unlabelled cells$")
    _wait_text(page, ".em-selection-info", rf"^{rest:,} unlabelled cells selected")
    page.wait_for_function(
        "(n) => { const c = document.querySelector('[data-testid=selection-count]');"
        " return c.dataset.kind === 'highlight' && Number(c.dataset.count) === n; }", arg=rest)
    shots = _shots(page, "item10_unlabelled")
    _type(page, f"{ANN} .em-label input", "Rest")
    page.keyboard.press("Tab")
    kernel.wait_for("ann.clusters.label_text.value == 'Rest'")
    _click(page, kernel, "button.em-label-clusters")
    assert kernel.eval("int(adata.obs['manual'].isna().sum())") == 0
    assert kernel.eval("adata.obs['manual'].value_counts().to_dict()") == {"Rest": rest, "T1": n0}
    assert kernel.eval("json.loads(adata.uns['commands'][-1])['command']") == "label_cells"
    _wait_text(page, "button.em-select-unlabelled", r"^Select unlabelled \(none\)$")
    legend = page.eval_on_selector_all(
        f"{SCATTER} .emw-legend-item", "els => els.map(e => [e.dataset.category, e.textContent])")
    assert sorted(legend) == sorted([["T1", f"T1({n0})"], ["Rest", f"Rest({rest})"]])

    # back to the clusters: the list's swatches are the plot's legend colours, cluster by cluster
    _click(page, kernel, "button.em-color-by-key", "ann.scatter.color == 'leiden'")
    assert kernel.eval("ann.scatter.color") == "leiden"
    _wait_text(page, ".em-color-info", r"plot coloured by obs\['leiden'\] \(as the swatches\)")
    page.wait_for_function(
        "() => document.querySelector('.emw-scatter .emw-legend-title').textContent === 'leiden'")
    rows = page.eval_on_selector_all(
        f"{ANN} .em-cluster-row",
        "rows => rows.map(r => [r.querySelector('.em-cluster-toggle').textContent.trim(),"
        " getComputedStyle(r.querySelector('.em-swatch')).backgroundColor])")
    items = dict(page.eval_on_selector_all(
        f"{SCATTER} .emw-legend-item",
        "els => els.map(e => [e.dataset.category, getComputedStyle(e.querySelector('.emw-swatch')).backgroundColor])"))
    assert len(rows) == kernel.eval("adata.obs['leiden'].nunique()") == len(items)
    for name, colour in rows:
        assert _rgb(colour) == _rgb(items[name]), (name, colour, items[name])
    kernel_colours = kernel.eval("dict(zip(ann.scatter._legend['names'], ann.scatter._legend['colors']))")
    for name, colour in rows:
        assert _rgb(colour) == _hex_rgb(kernel_colours[name])
    shots += _shots(page, "item10_colours")
    assert all(p.exists() for p in shots)


def test_item11_one_colour_box_reports_in_status_line(nb):
    page, kernel, _ = nb
    # one colour / gene box in the whole Annotator
    assert page.locator(f"{ANN} input.emw-search").count() == 1
    assert page.locator(f"{ANN} input[placeholder*='gene' i]").count() == 1
    search = f"{SCATTER} input.emw-search"
    _type(page, search, "NOT_A_GENE")
    page.keyboard.press("Enter")
    _wait_text(page, ".em-status", r"NOT_A_GENE")
    assert kernel.eval("ann.status_kind") == "error"
    assert "NOT_A_GENE" in kernel.eval("ann.status_text")
    assert kernel.eval("ann.scatter.color") == "leiden"  # the plot kept its colouring
    page.wait_for_selector(f"{ANN} .em-status .em-status-error")
    # the error is in one place: the status line, not beside the box too
    assert page.eval_on_selector(f"{SCATTER} .emw-error", "e => e.textContent") == ""
    shots = _shots(page, "item11_error")
    # a gene typed in lower case: the status line follows the box
    _type(page, search, "cd79a")
    page.keyboard.press("Enter")
    kernel.wait_for("ann.scatter.color == 'CD79A'")
    _wait_text(page, ".em-status", r"coloured by CD79A")
    assert kernel.eval("ann.status_kind") == "ok"
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    # an obs column from the same box
    _type(page, search, "manual")
    page.keyboard.press("Enter")
    kernel.wait_for("ann.scatter.color == 'manual'")
    _wait_text(page, ".em-status", r"coloured by manual")
    shots += _shots(page, "item11_column")
    kernel.run("ann.show_key('leiden')")
    page.wait_for_function(
        "() => document.querySelector('.emw-scatter .emw-legend-title').textContent === 'leiden'")
    assert all(p.exists() for p in shots)


def _download_png(page, tmp_path):
    with page.expect_download() as dl:
        page.locator(f"{SCATTER} button[data-action='png']").first.click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    return path


def _has_colour(arr, rgb, tol=6) -> int:
    return int((np.abs(arr - np.array(rgb, dtype=np.int16)).max(axis=2) <= tol).sum())


def test_png_download_holds_title_and_legend(nb, tmp_path):
    page, kernel, _ = nb
    assert kernel.eval("ann.scatter.color") == "leiden"
    path = _download_png(page, tmp_path)
    assert path.name == "umap_leiden.png"
    (SHOTS / "items_b_png_leiden.png").write_bytes(path.read_bytes())
    img = Image.open(path)
    w, h = page.eval_on_selector(f"{SCATTER} canvas", "c => [c.width, c.height]")
    assert img.format == "PNG"
    assert img.size[0] > w + 40 and img.size[1] > h, (img.size, w, h)  # legend beside, title above
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    title_h = img.size[1] - h
    legend = arr[title_h:, w:]
    # every category's swatch colour is in the legend strip (anti-aliased disc: its centre is exact)
    colours = kernel.eval("ann.scatter._legend['colors']")
    assert len(colours) == kernel.eval("adata.obs['leiden'].nunique()")
    missing = [c for c in colours if _has_colour(legend, _hex_rgb(c)) < 8]
    assert not missing, missing
    # the title line above the points has text on it
    bg = arr[1, -2]
    assert (np.abs(arr[:title_h] - bg).max(axis=2) > 90).sum() > 50
    # the points are in the plot part
    assert (np.abs(arr[title_h:, :w] - bg).max(axis=2) > 30).mean() > 0.01

    # a gene: the colour bar instead of the categories
    search = f"{SCATTER} input.emw-search"
    _type(page, search, "CD79A")
    page.keyboard.press("Enter")
    kernel.wait_for("ann.scatter.color == 'CD79A'")
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    page.wait_for_timeout(300)
    path = _download_png(page, tmp_path)
    assert path.name == "umap_CD79A.png"
    (SHOTS / "items_b_png_gene.png").write_bytes(path.read_bytes())
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    # the page's colour bar is wider than the categories: the canvas is narrower now
    w, h = page.eval_on_selector(f"{SCATTER} canvas", "c => [c.width, c.height]")
    assert arr.shape[1] > w + 100 and arr.shape[0] > h
    bar = arr[arr.shape[0] - h:, w:]
    stops = kernel.eval("ann.scatter._legend['colors']")
    assert _has_colour(bar, _hex_rgb(stops[-1]), tol=10) >= 4 and _has_colour(bar, _hex_rgb(stops[0]), tol=10) >= 4
    # the dark theme: the image takes the theme's background, the text stays readable
    jh.set_theme(page, True)
    page.wait_for_selector(f'{SCATTER}[data-theme="dark"]')
    page.wait_for_timeout(300)
    path = _download_png(page, tmp_path)
    (SHOTS / "items_b_png_gene_dark.png").write_bytes(path.read_bytes())
    dark = np.asarray(Image.open(path).convert("L"))
    assert np.median(dark) < 80
    assert (dark[: dark.shape[0] - h] > 180).sum() > 50  # light title text on the dark background
    jh.set_theme(page, False)
    kernel.run("ann.show_key('leiden')")
    page.wait_for_function(
        "() => document.querySelector('.emw-scatter .emw-legend-title').textContent === 'leiden'")


def test_item13_exported_script_replays_from_start_out(nb, jupyter_server, tmp_path):
    page, kernel, _ = nb
    root = jupyter_server.root
    start = root / "ux_items_b" / "start_b.h5ad"
    kernel.run(f"start.write_h5ad({str(start)!r})")
    script = root / "ux_items_b" / "replay_b.py"
    if script.exists():
        script.unlink()
    _type(page, f"{ANN} .em-script-path input", str(script))
    page.keyboard.press("Tab")
    kernel.wait_for(f"ann.history.script_path.value == {str(script)!r}")
    _click(page, kernel, "button.em-script")
    page.wait_for_selector(f"{ANN} .em-status .em-status-ok")
    # the page names the file it wrote; that is the file run below
    written = page.locator(f"{ANN} .em-written-path code").first.text_content().strip()
    assert written == str(script) and script.exists()
    shots = _shots(page, "item13_exported")
    text = script.read_text()
    assert "sys.argv[1]" in text and "sys.argv[2]" in text
    assert max(len(line) for line in text.splitlines()) <= 200  # no line of thousands of names
    out = tmp_path / "replayed.h5ad"
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    run = subprocess.run([sys.executable, written, str(start), str(out)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists()
    n_cmds = kernel.eval("len(adata.uns['commands'])")
    assert f"{n_cmds} step(s)" in run.stdout
    # the kernel compares the replayed labels with its own
    kernel.run(f"import anndata as _ad\n_r = _ad.read_h5ad({str(out)!r})")
    assert kernel.eval("list(_r.obs_names) == list(adata.obs_names)")
    for col in ("leiden", "manual"):
        assert kernel.eval(f"bool((_r.obs[{col!r}].astype(str) == adata.obs[{col!r}].astype(str)).all())"), col
    assert kernel.eval("[json.loads(c)['command'] for c in _r.uns['commands']]") == kernel.eval(
        "[json.loads(c)['command'] for c in adata.uns['commands']]")
    assert all(p.exists() for p in shots)


def test_item17_saved_notebook_small_without_bokehjs(nb, jupyter_server):
    page, kernel, _ = nb
    path = jupyter_server.root / NB
    before = path.stat().st_mtime_ns
    # the worst case: JupyterLab also saves the widgets' state (Settings > Save Widget State
    # Automatically), which holds every model of the Annotator, the scatter's buffers too
    save_state = "@jupyter-widgets/jupyterlab-manager:saveWidgetState"
    toggled = "(c) => window.jupyterapp.commands.isToggled(c)"
    page.evaluate("(c) => window.jupyterapp.commands.execute(c)", save_state)
    page.wait_for_function(toggled, arg=save_state)
    try:
        # save with the keyboard, from the notebook (command mode), as a user does
        page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget; return w && !w.context.model.dirty; }")
        nb_json = None
        for _ in range(100):  # the server may still be writing the file: wait until it parses
            if path.stat().st_mtime_ns != before:
                data = path.read_bytes()
                try:
                    nb_json = json.loads(data)
                    break
                except ValueError:
                    pass
            page.wait_for_timeout(200)
    finally:
        if page.evaluate(toggled, save_state):
            page.evaluate("(c) => window.jupyterapp.commands.execute(c)", save_state)
    assert nb_json is not None, "Ctrl+S did not write the notebook"
    outputs = [o for c in nb_json["cells"] for o in c.get("outputs", [])]
    # the Annotator's cell output is saved (a widget view) with the widgets' state, and it is small
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    state = nb_json["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert len(state) > 20 and any(m.get("model_name") == "AnyModel" for m in state.values())
    assert len(data) < 1_500_000, len(data)
    assert b"BokehJS" not in data and b"Bokeh.set_log_level" not in data
    # the kernel's Annotator does not use bokeh at all
    assert kernel.eval("any(m == 'bokeh' or m.startswith('bokeh.') for m in __import__('sys').modules)") is False
    assert kernel.eval("type(ann.markers).__name__") == "MarkerPanel"
    shots = _shots(page, "item17_saved")
    (SHOTS / "items_b_item17_size.txt").write_text(f"{len(data)} bytes\n")
    assert all(p.exists() for p in shots)


def test_item16_readme_use_snippet_runs_without_warnings(nb, jupyter_server):
    _, _, rpage = nb
    rpage.bring_to_front()
    # the snippet's first kNN compiles numba code in a fresh kernel: wait for the run to end
    rpage.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
                   const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                   return k && k.status === 'idle' && p.length > 0 &&
                          p.every((e) => /\\[\\d+\\]/.test(e.textContent)); }""",
        timeout=600_000,
    )
    rpage.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
    kernel = jupyter_server.kernel_for(README_NB)
    assert kernel.eval("em.__file__") == str(REPO / "exprmat_widgets" / "__init__.py")
    # stderr and error outputs on the page: the info lines ('[i] ...') only
    streams = jh.cell_errors(rpage)
    bad = [t for t in streams if re.search(r"warn|\[!\]|error|traceback", t, re.I)]
    assert not bad, bad
    (SHOTS / "items_b_item16_stderr.txt").write_text("\n----\n".join(streams))
    # the kernel: every cluster annotated, the trial merge taken back, the replay done
    cmds = kernel.eval("[__import__('json').loads(c)['command'] for c in adata.uns['commands']]")
    assert cmds[-1] == "annotate" and "merge_clusters" not in cmds, cmds
    assert kernel.eval("int(adata.obs['cell.type'].isna().sum())") == 0
    assert kernel.eval("sorted(adata.obs['cell.type'].cat.categories)") == ["B", "CD34+", "DC", "Mono", "T/NK"]
    assert {"4", "5"} <= set(kernel.eval("list(adata.obs['leiden'].cat.categories)"))
    assert kernel.eval("replayed.n_obs == adata.n_obs and "
                       "bool((replayed.obs['cell.type'].astype(str) == adata.obs['cell.type'].astype(str)).all())")
    # markers on the log layer: the logFCs are those of log data, not of counts
    assert kernel.eval("float(abs(adata.uns['markers']['logfoldchanges'][0][0]))") < 20
    # the Annotator the snippet opens, in both widths and the dark theme
    for dark in (False, True):
        if dark:
            jh.set_theme(rpage, True)
        for width in (1400, 1100):
            rpage.set_viewport_size({"width": width, "height": 1700})
            rpage.wait_for_timeout(800)
            rpage.locator(ANN).first.screenshot(
                path=str(SHOTS / f"items_b_item16_{'dark' if dark else 'light'}_{width}.png"))
    jh.set_theme(rpage, False)
