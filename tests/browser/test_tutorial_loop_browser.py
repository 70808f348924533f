"""The tutorial loop by clicking only, in a real browser (JupyterLab + headless Chromium),
issue 10's "done when": from a raw-count h5ad written here (the start file), the Annotator
preprocesses, embeds, clusters, shows markers, excludes two clusters, re-embeds,
re-clusters, runs a tiny cNMF, colours by a program, labels cell types, shows the
composition per sample and saves -- every step a mouse click or typing on the page; the
kernel is only read.  Then, in fresh processes, the saved history replays bit-identically
from the start file (``exprmat-widgets replay``) and the exported script reproduces the
labels.  Screenshots of each stage go to tests/artifacts/loop_*.png."""

from __future__ import annotations

import re
import subprocess
import sys

import emw_browser_jupyter as jh
import numpy as np
import pytest

pytestmark = pytest.mark.browser

ANN = ".em-annotator"
SCATTER = ".emw-scatter"
LABELS = "cell.type"  # the Annotator's default "label into" column

CELLS = [
    "import anndata as ad\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = ad.read_h5ad('loop_start.h5ad')   # 400 real PBMC, raw counts, 2 samples",
    "ann = em.Annotator(adata, height=360)\nann",
]


def _click(page, kernel, sel, timeout=180):
    jh.click_and_wait(page, kernel, sel, timeout=timeout, shot="loop_timeout.png")


def _type(page, sel, text):
    """Click into a text box, select what is there, type ``text`` and leave the box (Tab)."""
    box = page.locator(f"{ANN} {sel} >> visible=true").first
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(text))
    page.keyboard.press("Tab")


def _box(label):
    """The input of the analysis panel's box labelled ``label`` (on the shown tab: see _type)."""
    return f".em-analysis-panel .widget-inline-hbox:has(> .widget-label:text-is('{label}')) input"


_tab = jh.analysis_tab


def _toggle(page, kernel, name):
    page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(f"^{re.escape(name)}$")).first.click()
    kernel.wait_for(f"{name!r} in ann.clusters.selected")


def _drawn(page):
    """The scatter has drawn the current embedding (after a new UMAP or a colour change)."""
    page.wait_for_function(
        "(s) => { const e = document.querySelector(s); return e && e.dataset.drawn === 'true'; }", arg=SCATTER)
    page.wait_for_timeout(300)


def _shot(page, name):
    jh.screenshot(page.locator(ANN).first, name)


def _commands(kernel):
    return kernel.eval("[r['command'] for r in em.history(adata).to_dict('records')]")


def test_tutorial_loop_by_clicking(browser_ctx, jupyter_server, tmp_path):
    import anndata as ad

    import exprmat_widgets as em

    server = jupyter_server
    root = server.root
    start = root / "loop_start.h5ad"
    em.datasets.pbmc_2samples().write_h5ad(start)
    for name in ("loop_annotated.h5ad", "loop_script.py"):
        (root / name).unlink(missing_ok=True)
    page = browser_ctx.new_page()
    try:
        kernel = jh.open_annotator_notebook(page, server, "loop.ipynb", CELLS, embedded=False)
        assert kernel.eval("len(adata.uns.get('commands', []))") == 0
        _shot(page, "loop_00_start_1400.png")

        # ---- preprocess, embed, cluster
        _tab(page, "Preprocess")
        for css in ("keep-counts", "normalize", "log1p", "hvg", "pca"):
            _click(page, kernel, f"button.em-an-{css}")
        assert _commands(kernel) == ["derive_layer", "normalize_total", "log1p", "highly_variable_genes", "pca"]
        _shot(page, "loop_01_preprocessed_1400.png")
        _tab(page, "Embed")
        _click(page, kernel, "button.em-an-knn", timeout=900)  # the first kNN may compile numba code
        _click(page, kernel, "button.em-an-umap", timeout=900)
        page.wait_for_selector(f'{SCATTER}[data-empty="false"]')
        _drawn(page)
        assert kernel.eval("ann.scatter._n") == 400
        _tab(page, "Cluster")
        _click(page, kernel, "button.em-an-leiden")
        page.wait_for_selector(f"{ANN} .em-cluster-row")
        sizes = kernel.eval("adata.obs['leiden'].value_counts().to_dict()")
        assert page.locator(f"{ANN} .em-cluster-row").count() == len(sizes) > 3
        _shot(page, "loop_02_clustered_1400.png")

        # ---- markers of all clusters (none selected)
        _click(page, kernel, "button.em-markers")
        rows = kernel.eval("[r[1] for r in ann.markers.view.rows]")
        assert rows
        page.wait_for_function(
            "([s, n]) => document.querySelectorAll(s).length === n",
            arg=[f"{ANN} .em-marker-table tr.em-marker-row", len(rows)])
        page_genes = page.eval_on_selector_all(f"{ANN} .em-marker-table tr.em-marker-row",
                                               "rs => rs.map(r => r.dataset.gene)")
        assert page_genes == rows
        page.locator(f"{ANN} .em-marker-panel").first.scroll_into_view_if_needed()
        _shot(page, "loop_03_markers_1400.png")

        # ---- exclude the two smallest clusters
        drop = sorted(sizes, key=lambda c: (sizes[c], c))[:2]
        for c in drop:
            _toggle(page, kernel, c)
        _click(page, kernel, "button.em-exclude")
        kept = 400 - sizes[drop[0]] - sizes[drop[1]]
        assert kernel.eval("adata.n_obs") == kept
        assert kernel.eval(f"sorted(set(adata.obs['leiden']) & set({drop!r}))") == []
        assert _commands(kernel)[-1] == "exclude"
        _tab(page, "Embed")
        jh.wait_text(page, f"{ANN} .em-an-stale", "kNN graph and UMAP predate")
        jh.wait_text(page, f"{ANN} button.em-an-reembed", "^Re-embed: kNN$")
        _shot(page, "loop_04_excluded_1400.png")

        # ---- re-embed (kNN, then UMAP) and re-cluster all cells
        _click(page, kernel, "button.em-an-reembed")
        jh.wait_text(page, f"{ANN} button.em-an-reembed", "^Re-embed: UMAP$")
        _click(page, kernel, "button.em-an-reembed")
        jh.wait_text(page, f"{ANN} .em-an-stale", "^embedding of the current cells$")
        assert not page.locator(f"{ANN} button.em-an-reembed").first.is_visible()
        assert _commands(kernel)[-2:] == ["knn", "umap"]
        assert kernel.eval("ann.scatter._n") == kept
        _drawn(page)
        _tab(page, "Cluster")
        _type(page, _box("into obs"), "leiden_all")
        kernel.wait_for("ann.analysis.leiden_key.value == 'leiden_all'")
        _type(page, _box("resolution"), "0.8")
        kernel.wait_for("ann.analysis.resolution.value == 0.8")
        _click(page, kernel, "button.em-an-leiden")
        assert kernel.eval("ann.clusters.key") == "leiden_all"
        n_all = kernel.eval("len(adata.obs['leiden_all'].cat.categories)")
        assert page.locator(f"{ANN} .em-cluster-row").count() == n_all > 1
        _shot(page, "loop_05_reclustered_1400.png")

        # ---- a tiny cNMF: k=3, 4 replicates, typed into the boxes; extract; colour by program 2
        _tab(page, "cNMF")
        _click(page, kernel, "button.em-an-tpm")
        _type(page, _box("k"), "3")
        _type(page, _box("replicates"), "4")
        kernel.wait_for("ann.analysis.cnmf_ks.value == '3' and ann.analysis.cnmf_iter.value == 4")
        _click(page, kernel, "button.em-an-cnmf", timeout=300)
        _click(page, kernel, "button.em-an-extract")
        page.wait_for_selector(f"{ANN} button.em-an-program")
        assert page.locator(f"{ANN} button.em-an-program").count() == 3
        page.locator(f"{ANN} button.em-an-program").filter(has_text="Program 2").first.click()
        kernel.wait_for("ann.scatter.color == 'cnmf.3:2'")
        page.wait_for_function(
            "(s) => document.querySelector(s + ' .emw-legend-title')?.textContent === 'cnmf.3:2'", arg=SCATTER)
        _drawn(page)
        _shot(page, "loop_06_program_1400.png")

        # ---- label cell types: back to the clusters, select some, type a label, Label
        page.locator(f"{ANN} button.em-color-by-key").first.click()
        kernel.wait_for("ann.scatter.color == 'leiden_all'")
        cats = kernel.eval("list(adata.obs['leiden_all'].cat.categories)")
        groups = {"Type A": cats[: len(cats) // 2], "Type B": cats[len(cats) // 2:]}
        for label, members in groups.items():
            for c in members:
                _toggle(page, kernel, c)
            _type(page, ".em-label input", label)
            kernel.wait_for(f"ann.clusters.label_text.value == {label!r}")
            _click(page, kernel, "button.em-label-clusters")
            assert _commands(kernel)[-1] == "label_cells"
            page.locator(f"{ANN} button.em-clear").first.click()
            kernel.wait_for("not ann.clusters.selected")
        want = kernel.eval(
            f"{{c: ('Type A' if c in {groups['Type A']!r} else 'Type B') for c in adata.obs['leiden_all']}}")
        got = kernel.eval(f"adata.obs[['leiden_all', {LABELS!r}]].astype(str).drop_duplicates().values.tolist()")
        assert dict(got) == want and len(got) == len(want)
        _shot(page, "loop_07_labelled_1400.png")

        # ---- composition per sample, read on the page and checked against em.proportion
        _tab(page, "Composition")
        assert kernel.eval("(ann.analysis.major.value, ann.analysis.minor.value)") == ["sample", LABELS]
        page.wait_for_selector(f"{ANN} .em-an-composition table")
        shown = page.eval_on_selector(
            f"{ANN} .em-an-composition table",
            """t => ({head: [...t.querySelectorAll('thead tr')].length,
                      corner: t.querySelector('thead th').textContent,
                      cols: [...t.querySelectorAll('thead tr:first-child th')].slice(1).map(h => h.textContent),
                      rows: [...t.querySelectorAll('tbody tr')].map(r => [r.querySelector('th').textContent,
                        ...[...r.querySelectorAll('td')].map(d => d.textContent)])})""")
        prop = kernel.eval(
            f"(lambda t: {{'cols': [str(c) for c in t.columns], 'index': [str(i) for i in t.index], "
            f"'values': t.values.tolist()}})(em.proportion(adata, 'sample', {LABELS!r}, normalize='index'))")
        assert shown["head"] == 1 and shown["corner"] == f"sample \\ {LABELS}", shown  # no empty header row
        assert shown["cols"] == prop["cols"] == ["Type A", "Type B"]
        assert [r[0] for r in shown["rows"]] == prop["index"] and len(prop["index"]) == 2
        page_vals = np.array([[float(x.rstrip("%")) / 100 for x in r[1:]] for r in shown["rows"]])
        np.testing.assert_allclose(page_vals, np.array(prop["values"]), atol=0.0006)
        np.testing.assert_allclose(page_vals.sum(axis=1), 1.0, atol=0.002)
        page.locator(f"{ANN} .em-analysis-panel").first.scroll_into_view_if_needed()
        _shot(page, "loop_08_composition_1400.png")

        # ---- save and export the script, by typing the paths and clicking
        _type(page, ".em-h5ad-path input", "loop_annotated.h5ad")
        kernel.wait_for("ann.history.h5ad_path.value == 'loop_annotated.h5ad'")
        _click(page, kernel, "button.em-save", timeout=120)
        _type(page, ".em-script-path input", "loop_script.py")
        kernel.wait_for("ann.history.script_path.value == 'loop_script.py'")
        _click(page, kernel, "button.em-script")
        jh.wait_text(page, f"{ANN} .em-written", "loop_script.py")
        assert (root / "loop_annotated.h5ad").is_file() and (root / "loop_script.py").is_file()
        n_cmds = kernel.eval("len(adata.uns['commands'])")
        page.locator(f"{ANN} .em-history-panel").first.scroll_into_view_if_needed()
        _shot(page, "loop_09_saved_1400.png")

        # the page as tall as the Annotator: an element screenshot taller than the viewport
        # would show JupyterLab's toolbar and status bar over it
        page.set_viewport_size({"width": 1100, "height": 2400})
        page.wait_for_function(
            """() => { const c = document.querySelector('.emw-scatter canvas'), sp = c.__emw.scatterplot;
                       return Math.abs(sp.get('width') - c.parentElement.clientWidth) < 1; }""")
        page.wait_for_timeout(800)
        _shot(page, "loop_10_saved_1100.png")
        jh.set_theme(page, True)
        _shot(page, "loop_11_dark_1100.png")
        jh.set_theme(page, False)
        assert not page.emw_errors, page.emw_errors
    finally:
        page.close()
        jh.shutdown_kernels(server)

    # ---- fresh processes: the CLI replays the history from the start file, the script runs
    saved = ad.read_h5ad(root / "loop_annotated.h5ad")
    assert len(saved.uns["commands"]) == n_cmds
    replayed = tmp_path / "replayed.h5ad"
    cli = [sys.executable, "-c", "import sys; from exprmat_widgets.cli import main; sys.exit(main())"]
    res = subprocess.run(cli + ["replay", str(start), str(root / "loop_annotated.h5ad"), "-o", str(replayed)],
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(" ok ") == n_cmds and "MISMATCH" not in res.stdout, res.stdout
    again = ad.read_h5ad(replayed)
    assert list(again.obs_names) == list(saved.obs_names)
    for key in ("X_pca", "X_umap", "cnmf.3"):
        assert np.array_equal(np.asarray(again.obsm[key]), np.asarray(saved.obsm[key])), key
    for col in ("leiden_all", LABELS):
        assert again.obs[col].astype(str).tolist() == saved.obs[col].astype(str).tolist(), col

    out = tmp_path / "script_out.h5ad"
    res = subprocess.run([sys.executable, str(root / "loop_script.py"), str(start), str(out)],
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    scripted = ad.read_h5ad(out)
    assert list(scripted.obs_names) == list(saved.obs_names)
    assert scripted.obs[LABELS].astype(str).tolist() == saved.obs[LABELS].astype(str).tolist()
    assert set(saved.obs[LABELS]) == {"Type A", "Type B"}
