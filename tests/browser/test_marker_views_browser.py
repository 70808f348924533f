"""The marker panel's four views in a real browser (JupyterLab 4, headless Debian Chromium,
real mouse): a click on each view button draws that view; the genes and groups of the SVG
on the page are the kernel's filtered markers and groups, and the numbers behind the view
in the kernel are scanpy's (matrix plot) or the data's (violins, tracks). Screenshots
(1400 and 1100 px wide, dark theme) go to tests/artifacts/ for a look."""

from __future__ import annotations

import re

import emw_browser_jupyter as jh
import pytest

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
PANEL = ".em-annotator .em-marker-panel"

CELLS = [
    "import numpy as np\nimport scanpy as sc\nimport exprmat_widgets as em\nimport exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()\n"
    "adata.X = adata.raw[:, adata.var_names].X.copy()  # log values\n"
    "em.leiden(adata, resolution=0.6, random_state=0)\n"
    "em.markers(adata, groupby='leiden', method='t-test', pts=True)\n"
    "dense = lambda x: x.toarray() if hasattr(x, 'toarray') else np.asarray(x)",
    "ann = em.Annotator(adata, key='leiden', basis='umap', height=320)\n"
    "ann.markers.n_genes.value = 3\nann.markers.max_pct_ref.value = 0.75  # the tutorial's filters\nann",
]

VIEWS = {  # button label -> (kind, class of the svg, class of the per-gene-and-group marks)
    "dot plot": ("dotplot", "em-dotplot-svg", "em-dot"),
    "matrix plot": ("matrixplot", "em-matrixplot-svg", "em-matrix-cell"),
    "stacked violin": ("stacked_violin", "em-violin-svg", "em-violin"),
    "tracks plot": ("tracksplot", "em-tracks-svg", "em-track"),
}


def _marks(page, svg_cls, mark):
    return page.eval_on_selector_all(
        f"{PANEL} svg.{svg_cls} .{mark}", "els => els.map(e => [e.dataset.gene, e.dataset.group])")


def _show(page, kernel, label):
    kind, svg_cls, mark = VIEWS[label]
    button = page.locator(f"{PANEL} .em-marker-kind button").filter(has_text=re.compile(f"^{label}$")).first
    box = button.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    kernel.wait_for(f"ann.markers.view_values.get('kind') == {kind!r}", timeout=60)
    page.wait_for_selector(f"{PANEL} svg.{svg_cls} .{mark}", timeout=30_000)
    return _marks(page, svg_cls, mark)


def _shot(page, name):
    page.locator(PANEL).scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    return jh.screenshot(page.locator(PANEL).first, name)


def test_switch_between_the_four_marker_views(browser_ctx, jupyter_server):
    server = jupyter_server
    jh.write_notebook(server.root / "marker_views.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1400, "height": 1700})
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        jh.open_notebook(page, server, "marker_views.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
        page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
        kernel = server.kernel_for("marker_views.ipynb")
        assert kernel.eval("em.__file__") == __import__("exprmat_widgets").__file__
        kernel.wait_for("ann.markers.filters()['max_pct_reference'] == 0.75 and not ann.busy")
        genes = kernel.eval("list(dict.fromkeys(em.filter_markers(adata, key='markers', "
                            "**ann.markers.filters())['names']))")
        groups = kernel.eval("list(adata.obs['leiden'].cat.categories)")  # all tested: no 'rest'
        assert len(genes) >= 6 and kernel.eval("ann.markers.view_values['groups']") == groups

        for label in ("matrix plot", "stacked violin", "tracks plot", "dot plot"):
            kind = VIEWS[label][0]
            marks = _show(page, kernel, label)
            shown = kernel.eval("ann.markers.view_values['genes']")
            want = genes
            if kind == "tracksplot":  # at most MAX_TRACK_GENES, the best of every group
                want = kernel.eval("em.widgets.marker_panel._track_genes(em.filter_markers(adata, key='markers', "
                                   "**ann.markers.filters()))")
                assert len(want) == 12 and set(want) < set(genes)
            assert shown == want, label
            assert list(dict.fromkeys(g for g, _ in marks)) == want, label  # on the page
            assert {grp for _, grp in marks} == set(groups), label
            if kind != "tracksplot":  # one mark per gene and group
                assert len(marks) == len(want) * len(groups), label
            if kind == "matrixplot":
                # the numbers behind the matrix are scanpy's matrix plot values
                assert kernel.eval(
                    "bool(np.allclose(ann.markers.view_values['mean'], sc.pl.matrixplot(adata, "
                    "ann.markers.view_values['genes'], 'leiden', return_fig=True, show=False)"
                    ".values_df.loc[ann.markers.view_values['groups'], ann.markers.view_values['genes']]"
                    ".to_numpy(), rtol=1e-5, atol=1e-6))")
            if kind == "stacked_violin":
                assert kernel.eval(
                    "all(bool(np.allclose(ann.markers.view_values['median'][i], np.median(dense(adata[adata.obs"
                    "['leiden'] == g, ann.markers.view_values['genes']].X), axis=0))) "
                    "for i, g in enumerate(ann.markers.view_values['groups']))")
            if kind == "tracksplot":
                n = kernel.eval("int(ann.markers.view_values['cells'].size)")
                assert 0 < n <= 500 + 3 * len(groups)
                count = page.text_content(f"{PANEL} .em-tracks-count")
                assert f"{n} of 700 cells" in count
                # the track values are the cells' values
                assert kernel.eval(
                    "bool(np.allclose(ann.markers.view_values['values'], dense(adata[ann.markers.view_values"
                    "['cells'], ann.markers.view_values['genes']].X)))")
            path = _shot(page, f"marker_view_{kind}_1400.png")
            assert jh.non_background_fraction(path) > 0.05, label

        # a gene label of the violin view colours the UMAP by it (real click)
        _show(page, kernel, "stacked violin")
        label = page.locator(f"{PANEL} svg.em-violin-svg text.em-gene-label").nth(1)
        gene = label.get_attribute("data-gene")
        label.click()
        kernel.wait_for(f"ann.scatter.color == {gene!r}", timeout=30)
        assert gene == genes[1]
        n_commands = kernel.eval("len(adata.uns['commands'])")

        page.set_viewport_size({"width": 1100, "height": 1700})
        _shot(page, "marker_view_stacked_violin_1100.png")
        _show(page, kernel, "tracks plot")
        _shot(page, "marker_view_tracksplot_1100.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_timeout(800)
        fill = page.eval_on_selector(f"{PANEL} svg.em-tracks-svg text.em-gene-label", "e => getComputedStyle(e).fill")
        rgb = [int(v) for v in re.findall(r"\d+", fill)[:3]]
        assert sum(rgb) / 3 > 150, fill  # light text on the dark background
        _shot(page, "marker_view_tracksplot_dark.png")
        _show(page, kernel, "matrix plot")
        _shot(page, "marker_view_matrixplot_dark.png")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Light'})")
        assert kernel.eval("len(adata.uns['commands'])") == n_commands  # views are not commands
        assert not errors, errors
    finally:
        page.close()
        jh.shutdown_kernels(server)
