"""The scatter's UX inside the Annotator, in a real browser (JupyterLab + headless Chromium,
real mouse moves and wheel events): one current selection drawn and named, the legend beside
the points, the view fitted on resize, the wheel scrolling the notebook unless asked to zoom,
faded unselected cells, PNG download, full screen, one colour box with its errors in the
status line, and JupyterLab's dark theme.  Results are checked in the kernel and on the page;
screenshots go to ``$EMW_SCREENS`` (default ``tests/browser/artifacts``)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import emw_browser_jupyter as jh
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

SCATTER = ".emw-scatter"
ANN = ".em-annotator"
SCREENS = Path(os.environ.get("EMW_SCREENS", str(jh.ARTIFACTS)))

CELLS = [
    "import numpy as np\nimport scanpy as sc\nimport exprmat_widgets as em\n"
    "import exprmat_widgets.widgets\n"
    "adata = sc.datasets.pbmc68k_reduced()",
    "ann = em.Annotator(adata, key='louvain', basis='umap', height=420)\nsc_ = ann.scatter\nann",
    # a long output below: the notebook has something to scroll
    "print('\\n'.join(f'line {i}' for i in range(400)))",
]


@pytest.fixture(scope="module")
def nb(browser_ctx, jupyter_server):
    server = jupyter_server
    jh.write_notebook(server.root / "scatter_ux.ipynb", CELLS)
    page = browser_ctx.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.emw_console = []
    page.on("pageerror", lambda e: page.emw_console.append(f"pageerror: {e}"))
    jh.open_notebook(page, server, "scatter_ux.ipynb")
    page.wait_for_selector(f'{SCATTER}[data-drawn="true"]', timeout=90_000)
    page.wait_for_selector(f"{ANN} .em-cluster-row")
    kernel = server.kernel_for("scatter_ux.ipynb")
    yield page, kernel
    page.close()
    jh.shutdown_kernels(server)


def _shot(page, name):
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / name
    page.locator(ANN).first.screenshot(path=str(path))
    return path


def _rects(page):
    return page.eval_on_selector(
        SCATTER,
        """(el) => { const r = (s) => { const b = el.querySelector(s).getBoundingClientRect();
                       return [b.left, b.top, b.right, b.bottom]; };
                     return { canvas: r('canvas'), legend: r('.emw-legend'), body: r('.emw-body') }; }""",
    )


def _screen_positions(page):
    return np.asarray(page.eval_on_selector(
        f"{SCATTER} canvas",
        """(c) => { const sp = c.__emw.scatterplot, n = c.__emw.model.get('_n'), out = [];
                    for (let i = 0; i < n; i++) out.push(sp.getScreenPosition(i));
                    return out; }""",
    ), dtype=float)


def _all_points_inside(page, margin=1.0):
    pos = _screen_positions(page)
    w, h = page.eval_on_selector(f"{SCATTER} canvas", "c => [c.clientWidth, c.clientHeight]")
    ok = (pos[:, 0] >= margin) & (pos[:, 0] <= w - margin) & (pos[:, 1] >= margin) & (pos[:, 1] <= h - margin)
    # the view is fitted, not just inside: the cells span most of the limiting dimension
    span = max(np.ptp(pos[:, 0]) / w, np.ptp(pos[:, 1]) / h)
    return int((~ok).sum()), span


def _wait_size_settled(page):
    page.wait_for_function(
        """() => { const c = document.querySelector('.emw-scatter canvas'), sp = c.__emw.scatterplot;
                   return Math.abs(sp.get('width') - c.parentElement.clientWidth) < 1; }""")
    page.wait_for_timeout(300)


@pytest.mark.parametrize("width", [1400, 1100])
def test_legend_beside_points_and_view_fitted(nb, width):
    page, kernel = nb
    assert kernel.eval("em.__file__").startswith(str(Path(__file__).resolve().parents[2]))
    page.set_viewport_size({"width": width, "height": 1000})
    _wait_size_settled(page)
    r = _rects(page)
    # the legend never covers the points: it is beside the canvas, inside the plot's box
    assert r["legend"][0] >= r["canvas"][2] - 0.5, r
    assert page.eval_on_selector_all(f"{SCATTER} .emw-legend-item", "e => e.length") == \
        kernel.eval("adata.obs['louvain'].nunique()")
    outside, span = _all_points_inside(page)
    assert outside == 0 and span > 0.8, (outside, span)
    _shot(page, f"annotator_{width}.png")
    # folding the legend widens the canvas and the view refits (no "Reset view" needed)
    before = r["canvas"][2] - r["canvas"][0]
    page.click(f"{SCATTER} .emw-legend-toggle")
    _wait_size_settled(page)
    r2 = _rects(page)
    assert r2["canvas"][2] - r2["canvas"][0] > before + 40
    outside, span = _all_points_inside(page)
    assert outside == 0 and span > 0.8
    page.click(f"{SCATTER} .emw-legend-toggle")
    _wait_size_settled(page)


def _view(page):
    return page.eval_on_selector(f"{SCATTER} canvas", "c => Array.from(c.__emw.scatterplot.get('cameraView'))")


def _scroller_top(page):
    return page.evaluate(
        """() => { const el = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                   || document.querySelector('.jp-NotebookPanel .jp-Notebook');
                   return el.scrollTop; }""")


def test_wheel_scrolls_the_notebook_unless_ctrl_or_clicked(nb):
    page, kernel = nb
    page.set_viewport_size({"width": 1400, "height": 1000})
    _wait_size_settled(page)
    page.click(f"{SCATTER} button[data-action='reset']")
    box = page.locator(f"{SCATTER} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] + 300, cy)  # leave the plot: not armed
    page.mouse.move(cx, cy)
    v0, top0 = _view(page), _scroller_top(page)
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(400)
    assert _view(page) == v0, "a plain wheel over the plot zoomed it"
    assert _scroller_top(page) > top0, "a plain wheel over the plot did not scroll the notebook"
    assert page.is_visible(f"{SCATTER} .emw-hint.emw-show")
    # scroll back so the plot is under the mouse again
    page.locator(SCATTER).first.scroll_into_view_if_needed()
    box = page.locator(f"{SCATTER} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    # Ctrl + wheel zooms, gently: one notch (deltaY 100) < 12% (regl-scatterplot's own: 23%)
    d0 = _view(page)[0]
    top1 = _scroller_top(page)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    page.wait_for_timeout(400)
    d1 = _view(page)[0]
    assert d1 > d0 * 1.02 and d1 < d0 * 1.12, (d0, d1)
    assert _scroller_top(page) == top1
    # after a click in the plot a plain wheel zooms too (until the mouse leaves)
    page.mouse.click(cx, cy)
    page.mouse.wheel(0, -100)
    page.wait_for_timeout(400)
    d2 = _view(page)[0]
    assert d2 > d1 * 1.02, (d1, d2)
    page.mouse.move(box["x"] + box["width"] + 300, cy)
    page.click(f"{SCATTER} button[data-action='reset']")


def _strong_pixels(path, bg):
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    return int((np.abs(img - np.array(bg, dtype=np.int16)).max(axis=2) > 90).sum())


def _lasso(page, frac_center=(0.5, 0.5), radius=40):
    canvas = page.locator(f"{SCATTER} canvas").first
    box = canvas.bounding_box()
    cx, cy = box["width"] * frac_center[0], box["height"] * frac_center[1]
    pts = [(cx + radius * math.cos(t), cy + radius * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 16)]
    page.keyboard.down("Shift")
    jh.drag_path(page, pts + [pts[0]], steps=3, box=box)
    page.keyboard.up("Shift")


def test_one_current_selection_named_and_drawn(nb):
    page, kernel = nb
    count = page.locator(f"{SCATTER} [data-testid='selection-count']")
    # toggled clusters: the scatter names them as the current selection
    page.locator(f"{ANN} button.em-cluster-toggle").filter(has_text=re.compile(r"^1$")).first.click()
    kernel.wait_for("sc_.current_selection['kind'] == 'clusters'")
    n1 = kernel.eval("int((adata.obs['louvain'] == '1').sum())")
    page.wait_for_function("() => document.querySelector('[data-testid=selection-count]').dataset.kind === 'clusters'")
    assert count.text_content().startswith(f"Clusters: {n1} of 700")
    # a lasso replaces them: toggles off in the page and in the kernel, highlight cleared
    _lasso(page, (0.35, 0.5), 60)
    kernel.wait_for("sc_.current_selection['kind'] == 'lasso'")
    n = kernel.eval("len(sc_.selection)")
    assert n > 0 and kernel.eval("ann.clusters.selected") == [] and kernel.eval("sc_._highlight == b''")
    page.wait_for_function("() => document.querySelector('[data-testid=selection-count]').dataset.kind === 'lasso'")
    assert count.text_content().startswith(f"Lasso: {n} of 700")
    assert page.locator(f"{ANN} button.em-cluster-toggle.mod-active").count() == 0
    # the unselected cells fade: far fewer strongly coloured pixels than with no selection
    shot_sel = _shot(page, "selection_lasso.png")
    page.click(f"{SCATTER} button[data-action='clear']")
    kernel.wait_for("sc_.current_selection['kind'] == 'none'")
    page.wait_for_timeout(300)
    shot_none = _shot(page, "selection_none.png")
    body = page.locator(f"{SCATTER} .emw-plot").first
    body.screenshot(path=str(SCREENS / "plot_none.png"))
    strong_none = _strong_pixels(SCREENS / "plot_none.png", (255, 255, 255))
    _lasso(page, (0.35, 0.5), 60)
    kernel.wait_for("sc_.current_selection['kind'] == 'lasso'")
    page.wait_for_timeout(300)
    body.screenshot(path=str(SCREENS / "plot_lasso.png"))
    strong_sel = _strong_pixels(SCREENS / "plot_lasso.png", (255, 255, 255))
    assert strong_sel < 0.7 * strong_none, (strong_sel, strong_none)
    assert shot_sel.exists() and shot_none.exists()
    page.click(f"{SCATTER} button[data-action='clear']")
    kernel.wait_for("sc_.current_selection['kind'] == 'none'")


def test_png_download_and_full_screen(nb, tmp_path):
    page, kernel = nb
    with page.expect_download() as dl:
        page.click(f"{SCATTER} button[data-action='png']")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert dl.value.suggested_filename == "umap_louvain.png"
    img = Image.open(path)
    w, h = page.eval_on_selector(f"{SCATTER} canvas", "c => [c.width, c.height]")
    # the plot plus its title above and its legend beside (test_ux_items_b_browser checks them)
    assert img.format == "PNG" and img.size[0] > w and img.size[1] > h
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert (np.abs(arr - 255).max(axis=2) > 30).mean() > 0.01  # the cells are in it
    # full screen: the plot fills the window, the cells stay fitted; the button leaves it
    page.click(f"{SCATTER} button[data-action='fullscreen']")
    page.wait_for_selector(f'{SCATTER}[data-fullscreen="true"]')
    _wait_size_settled(page)
    vh = page.evaluate("() => window.innerHeight")
    ch = page.eval_on_selector(f"{SCATTER} canvas", "c => c.clientHeight")
    assert ch > 0.8 * vh, (ch, vh)
    outside, span = _all_points_inside(page)
    assert outside == 0 and span > 0.8
    page.screenshot(path=str(SCREENS / "fullscreen.png"))
    page.click(f"{SCATTER} button[data-action='fullscreen']")
    page.wait_for_selector(f'{SCATTER}[data-fullscreen="false"]')
    _wait_size_settled(page)
    assert page.eval_on_selector(f"{SCATTER} canvas", "c => c.clientHeight") < 500


def test_one_colour_box_errors_in_status_line(nb):
    page, kernel = nb
    assert page.locator(f"{ANN} .em-gene").count() == 0  # no second gene box
    search = page.locator(f"{SCATTER} input.emw-search").first
    search.fill("NOT_A_GENE")
    search.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.em-annotator .em-status').textContent.includes('NOT_A_GENE')")
    assert kernel.eval("ann.status_kind") == "error"
    assert page.eval_on_selector(f"{SCATTER} .emw-error", "e => e.textContent") == ""
    search.fill("cd79a")
    search.press("Enter")
    kernel.wait_for("sc_.color == 'CD79A'")
    page.wait_for_function(
        "() => document.querySelector('.em-annotator .em-status').textContent.includes('coloured by CD79A')")
    assert kernel.eval("ann.status_kind") == "ok"
    kernel.run("sc_.color_by('louvain')")
    page.wait_for_selector(f"{SCATTER} .emw-legend-item")


def _contrast(fg, bg):
    def lum(c):
        c = [x / 255 for x in c[:3]]
        c = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    a, b = sorted([lum(fg), lum(bg)], reverse=True)
    return (a + 0.05) / (b + 0.05)


def _rgb(s):
    return [float(x) for x in re.findall(r"[\d.]+", s)[:3]]


def test_dark_theme_readable(nb):
    page, kernel = nb
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
    page.wait_for_selector(f'{SCATTER}[data-theme="dark"]')
    page.wait_for_timeout(500)
    colours = page.eval_on_selector_all(
        f"{SCATTER} .emw-toolbar button, {SCATTER} .emw-legend-item, {SCATTER} .emw-count",
        "els => els.map(e => { const s = getComputedStyle(e); let n = e, bg = 'rgba(0, 0, 0, 0)';"
        " while (n && /rgba\\(0, 0, 0, 0\\)|transparent/.test(bg)) {"
        " bg = getComputedStyle(n).backgroundColor; n = n.parentElement; }"
        " return [s.color, bg]; })",
    )
    for fg, bg in colours:
        assert _contrast(_rgb(fg), _rgb(bg)) >= 4.5, (fg, bg)
    for width in (1400, 1100):
        page.set_viewport_size({"width": width, "height": 1000})
        _wait_size_settled(page)
        shot = _shot(page, f"annotator_dark_{width}.png")
        outside, _ = _all_points_inside(page)
        assert outside == 0
    # the canvas background is the theme's, not a white box
    page.locator(f"{SCATTER} .emw-plot").first.screenshot(path=str(SCREENS / "plot_dark.png"))
    img = np.asarray(Image.open(SCREENS / "plot_dark.png").convert("L"))
    assert np.median(img) < 80
    assert shot.exists()
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=60_000)
