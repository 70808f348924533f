"""UmapScatter in a real browser: JupyterLab 4 and Notebook 7 served locally, headless
Debian Chromium driven by Playwright, lasso/box drawn with real mouse moves, results
checked in the notebook's own kernel (``@pytest.mark.browser``). The first tests check the
widget's kernel side without a browser (wire format, colours, selection, refresh)."""

from __future__ import annotations

import math

import emw_browser_jupyter as jh
import numpy as np
import pytest
import scanpy as sc
from matplotlib.path import Path as MplPath

from exprmat_widgets.errors import MissingKeyError
from exprmat_widgets.widgets.scatter import (
    UmapScatter,
    decode_selection_buffer,
    encode_selection_buffer,
)


# ---------------------------------------------------------------- kernel side, no browser
def test_selection_wire_format():
    few = encode_selection_buffer([7, 2, 900], 1000)
    assert few[:4] == b"\x00\x00\x00\x00" and len(few) == 16
    assert decode_selection_buffer(few, 1000).tolist() == [2, 7, 900]
    half = list(range(1, 1000, 2))
    many = encode_selection_buffer(half, 1000)
    assert many[:4] == b"\x01\x00\x00\x00" and len(many) == 4 + 125
    assert many[4] == 0b01010101  # numpy.packbits order, as the page encodes it
    assert decode_selection_buffer(many, 1000).tolist() == half
    assert decode_selection_buffer(b"", 10).tolist() == []


def test_scatter_state_without_browser():
    adata = sc.datasets.pbmc68k_reduced()
    adata.uns["bulk_labels_colors"] = np.array(["#000000"] * 9 + ["#ff0000"], dtype=object)
    before_uns = set(adata.uns.keys())
    w = UmapScatter(adata, basis="umap", color="bulk_labels")
    # coordinates: float32 in [-1, 1], mapped back by the transform
    xy = np.frombuffer(w._coords, dtype="<f4").reshape(-1, 2)
    assert xy.shape == (700, 2) and np.abs(xy).max() <= 1.0
    t = w._transform
    back = xy.astype(float) / t["scale"] + [t["cx"], t["cy"]]
    np.testing.assert_allclose(back, adata.obsm["X_umap"], atol=1e-5)
    # colours from uns, codes per cell, missing colour last
    assert w._palette[:10] == list(adata.uns["bulk_labels_colors"]) and len(w._palette) == 11
    codes = np.frombuffer(w._codes, dtype="<u2")
    np.testing.assert_array_equal(codes, adata.obs["bulk_labels"].cat.codes.to_numpy())
    assert sum(w._legend["counts"]) == 700
    # a gene (case-insensitive; from X unless use_raw=True, as em.pl.embedding), an unknown
    # key leaves the colour unchanged
    w.color_by("cd79a")
    assert w.color == "CD79A" and w._legend["kind"] == "continuous"
    assert w._legend["vmax"] == pytest.approx(float(adata[:, "CD79A"].X.max()))
    w.color_by("CD79A", use_raw=True)
    assert w._legend["vmax"] == pytest.approx(float(adata.raw[:, "CD79A"].X.max()))
    with pytest.raises(MissingKeyError, match="neither an obs column nor a gene"):
        w.color_by("NOT_A_GENE")
    assert w.color == "CD79A"
    w.color_by("n_counts")
    assert w._legend["vmin"] == pytest.approx(float(adata.obs["n_counts"].min()))
    assert set(adata.uns.keys()) == before_uns  # the widget never writes into the AnnData
    with pytest.raises(MissingKeyError, match="em.umap"):
        UmapScatter(adata, basis="tsne")


def test_selection_from_page_and_python_without_browser():
    adata = sc.datasets.pbmc68k_reduced()
    w = UmapScatter(adata, color="bulk_labels")
    seen = []
    w.observe(lambda ch: seen.append(len(ch["new"])), names="selection")
    # what the page sends after a lasso: tagged selection + float32 polygon (normalised) + the
    # generation of the points it drew
    poly_n = np.array([[-1, -1], [0, -1], [0, 1], [-1, 1]], dtype="<f4")
    inside = np.flatnonzero(w.normalized_coords[:, 0] < 0)
    w.set_state({"selection": memoryview(encode_selection_buffer(inside, 700)),
                 "_polygon": memoryview(poly_n.tobytes()), "_selection_generation": w._generation})
    assert seen == [len(inside)]
    np.testing.assert_array_equal(w.selection, inside)
    poly = w.last_polygon
    assert poly.shape == (4, 2)
    emb = adata.obsm["X_umap"]
    assert (MplPath(poly).contains_points(emb) == w.selection_mask).all()
    rec = w.selection_record()
    assert rec["basis"] == "umap" and len(rec["cells"]) == len(inside)
    # from Python: names, mask, positions; the polygon no longer describes it
    w.selection = adata.obs_names[:3].tolist()
    assert w.selection.tolist() == [0, 1, 2] and w.last_polygon is None
    w.selection = np.arange(700) % 100 == 0
    assert w.selected_names == adata.obs_names[::100].tolist()
    w.highlight_groups("bulk_labels", ["CD19+ B"])
    assert np.frombuffer(w._highlight, np.uint8).sum() == (adata.obs["bulk_labels"] == "CD19+ B").sum()
    info = w._hover_info(5)
    assert info["name"] == adata.obs_names[5] and info["fields"][0][0] == "bulk_labels"


def test_refresh_resends_only_changes():
    adata = sc.datasets.pbmc68k_reduced()
    w = UmapScatter(adata, color="bulk_labels")
    sent = []
    w.observe(lambda ch: sent.append(ch["name"]), names=["_coords", "_codes", "_keys"])
    w.refresh()
    assert sent == []
    # relabel: colours change, coordinates do not
    adata.obs["bulk_labels"] = adata.obs["bulk_labels"].cat.rename_categories(
        lambda c: c.replace("Dendritic", "DC"))
    w.refresh()
    assert "_codes" not in sent and "_coords" not in sent and "_keys" not in sent
    assert "DC" in w._legend["names"]
    # exclusion: new coordinates, selection kept by name
    w.selection = adata.obs_names[::50].tolist()
    kept = [n for n in adata.obs_names[::50] if adata.obs.loc[n, "bulk_labels"] != "DC"]
    adata._inplace_subset_obs((adata.obs["bulk_labels"] != "DC").to_numpy())
    w.refresh()
    assert "_coords" in sent and w._n == adata.n_obs
    assert w.selected_names == kept


def test_larger_real_data_pca_basis(mouse10k):
    w = UmapScatter(mouse10k, basis="pca", color=None)
    assert w._n == 10_000 and len(w._coords) == 80_000
    gene = mouse10k.var_names[0]
    w.color_by(gene, use_raw=False)
    assert w.color == gene and len(w._codes) == 20_000


# ---------------------------------------------------------------- real browser

SCATTER = ".emw-scatter"
DRAWN = '.emw-scatter[data-drawn="true"]'

PBMC_CELLS = [
    (
        "import json\nimport numpy as np\nimport scanpy as sc\n"
        "from matplotlib.path import Path as MplPath\n"
        "from exprmat_widgets.widgets.scatter import UmapScatter\n"
        "adata = sc.datasets.pbmc68k_reduced()\nevents = []"
    ),
    (
        "w = UmapScatter(adata, basis='umap', color='bulk_labels', height=450)\n"
        "w.observe(lambda ch: events.append(int(len(ch['new']))), names='selection')\nw"
    ),
]

# run in the kernel: how the selection relates to the lasso polygon
CHECK_POLYGON = """
def _poly_check():
    mask = w.selection_mask
    # 1) exact: the page's float32 coordinates against the polygon as drawn
    pn = w.last_polygon_normalized.astype(np.float64)
    inside_n = MplPath(pn).contains_points(w.normalized_coords.astype(np.float64))
    # 2) the embedding's own coordinates against the polygon in embedding coordinates
    pe = w.last_polygon
    emb = adata.obsm['X_' + w.basis][:, :2]
    inside_e = MplPath(pe).contains_points(emb)
    span = float(np.ptp(emb, axis=0).max())
    bad = np.flatnonzero(inside_e != mask)
    # distance of each disagreeing cell to the polygon's boundary, relative to the span
    def seg_dist(p):
        a = pe; b = np.roll(pe, -1, axis=0); ab = b - a
        t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-300), 0, 1)
        return float(np.sqrt((((a + t[:, None] * ab) - p) ** 2).sum(1)).min())
    far = [i for i in bad if seg_dist(emb[i]) > 1e-5 * span]
    return {
        'n': int(mask.sum()),
        'mismatch_normalized': int((inside_n != mask).sum()),
        'mismatch_embedding_far_from_edge': len(far),
        'n_vertices': int(len(pe)),
        'basis': w.basis,
        'record_cells': len(w.selection_record()['cells']),
    }
"""


def _open(ctx, server, name, cells, ui="lab"):
    jh.write_notebook(server.root / name, cells)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.emw_console = []
    page.on("console", lambda m: page.emw_console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.emw_console.append(f"pageerror: {e}"))
    jh.open_notebook(page, server, name, ui=ui)
    page.wait_for_selector(DRAWN, timeout=90_000)
    kernel = server.kernel_for(name)
    return page, kernel


@pytest.fixture(scope="module")
def pbmc_nb(browser_ctx, jupyter_server):
    page, kernel = _open(browser_ctx, jupyter_server, "pbmc_scatter.ipynb", PBMC_CELLS)
    kernel.run(CHECK_POLYGON)
    yield page, kernel
    page.close()
    jh.shutdown_kernels(jupyter_server)


def _screen_positions(page) -> np.ndarray:
    """Each cell's position on the canvas (CSS px), as regl-scatterplot projects it."""
    pos = page.eval_on_selector(
        f"{SCATTER} canvas",
        """(c) => { const sp = c.__emw.scatterplot, n = c.__emw.model.get('_n'), out = [];
                    for (let i = 0; i < n; i++) out.push(sp.getScreenPosition(i));
                    return out; }""",
    )
    return np.asarray(pos, dtype=float)


def _set_mode(page, kernel, mode):
    page.click(f'{SCATTER} button[data-mode="{mode}"]')
    page.wait_for_selector(f'{SCATTER}[data-mode="{mode}"]')
    kernel.wait_for(f"w.mode == {mode!r}")


def _dist_to_polyline(points, poly):
    a = np.asarray(poly, float)
    b = np.roll(a, -1, axis=0)
    ab = b - a
    out = np.empty(len(points))
    for k, p in enumerate(points):
        t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
        out[k] = np.sqrt((((a + t[:, None] * ab) - p) ** 2).sum(1)).min()
    return out


def _lasso_around(page, kernel, center, radius, n_vertices=16):
    canvas = page.locator(f"{SCATTER} canvas").first
    box = canvas.bounding_box()
    cx = min(max(center[0], radius + 2), box["width"] - radius - 2)
    cy = min(max(center[1], radius + 2), box["height"] - radius - 2)
    # a slightly irregular polygon, closed by returning to the start
    poly = [
        (cx + radius * (1 + 0.2 * math.sin(3 * t)) * math.cos(t),
         cy + radius * (1 + 0.2 * math.sin(3 * t)) * math.sin(t))
        for t in np.linspace(0, 2 * math.pi, n_vertices, endpoint=False)
    ]
    kernel.run("events.clear()")
    jh.drag_path(page, poly + [poly[0]], steps=4, box=box)
    return poly


@pytest.mark.browser
def test_canvas_draws(pbmc_nb, artifacts):
    page, kernel = pbmc_nb
    shot = jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_scatter.png")
    assert jh.non_background_fraction(shot) > 0.01, "the WebGL canvas drew (almost) nothing"
    assert kernel.eval("w._n") == 700
    # legend lists the categories with their counts
    names = page.eval_on_selector_all(
        f"{SCATTER} .emw-legend-item", "els => els.map(e => e.dataset.category)"
    )
    assert names == kernel.eval("list(adata.obs['bulk_labels'].cat.categories)")
    assert page.text_content('[data-testid="selection-count"]').startswith("No selection (700 cells)")
    assert not [m for m in page.emw_console if m.startswith("pageerror")], page.emw_console


@pytest.mark.browser
def test_lasso_selection_matches_polygon(pbmc_nb, artifacts):
    page, kernel = pbmc_nb
    _set_mode(page, kernel, "lasso")
    screen = _screen_positions(page)
    mono = np.asarray(kernel.eval(
        "np.flatnonzero(adata.obs['bulk_labels'] == 'CD14+ Monocyte').tolist()"))
    center = np.median(screen[mono], axis=0)
    poly = _lasso_around(page, kernel, center, radius=60)
    n = kernel.wait_for("int(w.selection.size)", timeout=30)
    jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_lasso.png")
    assert n > 0
    # the observe-able trait fired once with the full selection
    assert kernel.eval("events") == [n]
    res = kernel.eval("_poly_check()")
    assert res["n"] == n and res["record_cells"] == n and res["basis"] == "umap"
    assert res["n_vertices"] >= 8
    assert res["mismatch_normalized"] == 0, res
    assert res["mismatch_embedding_far_from_edge"] == 0, res
    # and the cells are those whose on-screen positions lie inside the drawn mouse path
    sel = np.asarray(kernel.eval("w.selection.tolist()"))
    mask = np.zeros(len(screen), bool)
    mask[sel] = True
    inside = MplPath(np.asarray(poly)).contains_points(screen)
    clear = _dist_to_polyline(screen, poly) > 4.0  # mouse-path sampling tolerance (px)
    assert (inside[clear] == mask[clear]).all()
    assert inside.sum() > 0
    # the page shows the count
    page.wait_for_selector(f'[data-testid="selection-count"][data-count="{n}"]')


@pytest.mark.browser
def test_box_selection(pbmc_nb):
    page, kernel = pbmc_nb
    _set_mode(page, kernel, "box")
    screen = _screen_positions(page)
    b = np.asarray(kernel.eval("np.flatnonzero(adata.obs['bulk_labels'] == 'CD19+ B').tolist()"))
    c = np.median(screen[b], axis=0)
    x0, y0, x1, y1 = c[0] - 50, c[1] - 40, c[0] + 50, c[1] + 40
    kernel.run("events.clear()")
    box = page.locator(f"{SCATTER} canvas").first.bounding_box()
    jh.drag_path(page, [(x0, y0), (x1, y0 + 10), (x1, y1)], steps=6, box=box)
    kernel.wait_for("len(events) > 0")
    res = kernel.eval("_poly_check()")
    assert res["n"] > 0 and res["mismatch_normalized"] == 0, res
    sel = np.asarray(kernel.eval("w.selection.tolist()"))
    inside = (screen[:, 0] > x0 - 3) & (screen[:, 0] < x1 + 3) & (screen[:, 1] > y0 - 3) & (
        screen[:, 1] < y1 + 3)
    assert inside[sel].all()
    # in pan/zoom mode, shift+drag still draws a lasso (around other cells: the selection
    # must change for the observer to fire)
    _set_mode(page, kernel, "pan")
    mono = np.asarray(kernel.eval(
        "np.flatnonzero(adata.obs['bulk_labels'] == 'CD14+ Monocyte').tolist()"))
    page.keyboard.down("Shift")
    try:
        _lasso_around(page, kernel, np.median(screen[mono], axis=0), radius=45)
    finally:
        page.keyboard.up("Shift")
    kernel.wait_for("w.last_polygon is not None")
    res = kernel.eval("_poly_check()")
    assert res["n"] > 0 and res["mismatch_normalized"] == 0, res
    assert kernel.eval("w.mode") == "pan"


@pytest.mark.browser
def test_color_by_gene_via_search_box(pbmc_nb, artifacts):
    page, kernel = pbmc_nb
    search = page.locator(f"{SCATTER} input.emw-search").first
    search.click()
    search.fill("cd79")
    # completion offers the gene
    page.wait_for_function(
        "() => [...document.querySelectorAll('.emw-scatter datalist option')]"
        ".some(o => o.value === 'CD79A')"
    )
    search.fill("cd79a")  # case-insensitive, resolved to the gene name
    search.press("Enter")
    kernel.wait_for("w.color == 'CD79A'")
    page.wait_for_selector(f"{SCATTER} .emw-gradient")
    legend = kernel.eval("w._legend")
    expr = kernel.eval("float(adata[:, 'CD79A'].X.max())")
    assert legend["kind"] == "continuous" and legend["key"] == "CD79A"
    assert legend["vmax"] == pytest.approx(expr)
    # expressing cells are drawn last (on top)
    order = page.eval_on_selector(f"{SCATTER} canvas", "c => c.__emw.scatterplot.get('pointOrder')")
    codes = np.asarray(kernel.eval("np.frombuffer(w._codes, '<u2').tolist()"))
    assert sorted(order) == list(range(700))
    assert codes[order[-1]] == codes[codes < 256].max() and codes[order[0]] == codes.min()
    jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_cd79a.png")
    # an unknown name is reported in the widget and leaves the colour unchanged
    search.fill("NOT_A_GENE")
    search.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.emw-scatter .emw-error').textContent.includes('NOT_A_GENE')"
    )
    assert kernel.eval("w.color") == "CD79A"
    # back to clusters from Python
    kernel.run("w.color_by('bulk_labels')")
    page.wait_for_selector(f"{SCATTER} .emw-legend-item")


@pytest.mark.browser
def test_selection_from_python_shows_in_page(pbmc_nb, artifacts):
    page, kernel = pbmc_nb
    kernel.run("w.selection = adata.obs_names[:25].tolist()")
    page.wait_for_selector('[data-testid="selection-count"][data-count="25"]')
    assert kernel.eval("w.last_polygon is None")
    # the page's scatterplot has exactly those points selected
    sel = page.eval_on_selector(
        f"{SCATTER} canvas", "c => [...c.__emw.scatterplot.get('selectedPoints')].sort((a,b)=>a-b)"
    )
    assert sel == list(range(25))
    jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_python_selection.png")
    kernel.run("w.selection = []")
    page.wait_for_selector('[data-testid="selection-count"][data-count="0"]')


@pytest.mark.browser
def test_hover_shows_cell(pbmc_nb):
    page, kernel = pbmc_nb
    screen = _screen_positions(page)
    box = page.locator(f"{SCATTER} canvas").first.bounding_box()
    i = int(kernel.eval("int(np.flatnonzero(adata.obs['bulk_labels'] == 'CD34+')[0])"))
    x, y = screen[i]
    page.mouse.move(box["x"] + x + 30, box["y"] + y + 30)
    page.mouse.move(box["x"] + x, box["y"] + y, steps=5)
    tip = page.locator(f"{SCATTER} .emw-tooltip").first
    tip.wait_for(state="visible", timeout=15_000)
    text = tip.text_content()
    # the hovered point is the nearest cell; it must be named and its label shown
    names = kernel.eval("adata.obs_names.tolist()")
    assert any(text.startswith(nm) for nm in names), text
    assert "bulk_labels: " in text


@pytest.mark.browser
def test_highlight_and_refresh_after_exclusion(pbmc_nb, artifacts):
    page, kernel = pbmc_nb
    before = int(page.get_attribute(SCATTER, "data-draw-count"))
    kernel.run("w.highlight_groups('bulk_labels', ['CD19+ B'])")
    page.wait_for_function(
        f"() => Number(document.querySelector('{SCATTER}').dataset.drawCount) > {before}"
    )
    jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_highlight.png")
    # zoom onto the B cells: their on-screen extent grows; zoom_to(None) shows all again
    b = np.asarray(kernel.eval("np.flatnonzero(adata.obs['bulk_labels'] == 'CD19+ B').tolist()"))
    spread0 = np.ptp(_screen_positions(page)[b], axis=0).max()
    kernel.run("w.zoom_to(adata.obs['bulk_labels'] == 'CD19+ B')")
    page.wait_for_timeout(1500)
    spread1 = np.ptp(_screen_positions(page)[b], axis=0).max()
    assert spread1 > 1.5 * spread0
    kernel.run("w.zoom_to(None)")
    page.wait_for_timeout(1500)
    assert np.ptp(_screen_positions(page)[b], axis=0).max() == pytest.approx(spread0, rel=0.05)
    # exclude the dendritic cells in place (as em.exclude does), keep a selection by name
    kernel.run(
        "keep_sel = adata.obs_names[adata.obs['bulk_labels'] != 'Dendritic'][:30].tolist()\n"
        "w.selection = keep_sel + adata.obs_names[adata.obs['bulk_labels'] == 'Dendritic'][:5].tolist()\n"
        "old_hash = w._coords_hash\n"
        "adata._inplace_subset_obs((adata.obs['bulk_labels'] != 'Dendritic').to_numpy())\n"
        "w.refresh()"
    )
    n = kernel.eval("adata.n_obs")
    assert n == 460
    page.wait_for_function(
        "(n) => document.querySelector('[data-testid=\"selection-count\"]').textContent"
        ".endsWith(`of ${n} cells`)",
        arg=n,
    )
    assert kernel.eval("w._coords_hash != old_hash and w._n == adata.n_obs")
    assert kernel.eval("w.selected_names == keep_sel")
    assert kernel.eval("w._highlight == b''")
    page.wait_for_selector('[data-testid="selection-count"][data-count="30"]')
    # a refresh with nothing changed re-sends nothing
    kernel.run("h = (w._coords_hash, w._codes_hash); w.refresh()")
    assert kernel.eval("(w._coords_hash, w._codes_hash) == h")
    jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "pbmc_after_exclusion.png")


MOUSE_CELLS = [
    (
        "import numpy as np\nimport scanpy as sc\nimport exprmat_widgets as em\n"
        "from matplotlib.path import Path as MplPath\n"
        "from exprmat_widgets.widgets.scatter import UmapScatter\n"
        "adata = em.datasets.mouse_10k()\n"
        "sc.pp.normalize_total(adata, target_sum=1e4)\nsc.pp.log1p(adata)\n"
        "sc.pp.pca(adata, n_comps=10, random_state=0)\nevents = []"
    ),
    (
        "w = UmapScatter(adata, basis='pca', color=None, height=420)\n"
        "w.observe(lambda ch: events.append(int(len(ch['new']))), names='selection')\nw"
    ),
]


@pytest.mark.browser
def test_notebook7_smoke_larger_data(browser_ctx, jupyter_server, artifacts):
    """Notebook 7 UI (/tree and /notebooks), 10,000 real cells (PCA coordinates)."""
    server = jupyter_server
    jh.write_notebook(server.root / "mouse_scatter.ipynb", MOUSE_CELLS)
    tree = browser_ctx.new_page()
    try:
        tree.goto(server.page_url("", "tree"))
        tree.wait_for_selector("text=mouse_scatter.ipynb", timeout=60_000)
    finally:
        tree.close()
    page, kernel = _open(browser_ctx, server, "mouse_scatter.ipynb", MOUSE_CELLS, ui="notebook")
    try:
        assert "/notebooks/" in page.url
        kernel.run(CHECK_POLYGON)
        shot = jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "mouse10k_nb7.png")
        assert jh.non_background_fraction(shot) > 0.01
        assert kernel.eval("w._n") == 10_000
        _set_mode(page, kernel, "lasso")
        box = page.locator(f"{SCATTER} canvas").first.bounding_box()
        screen = _screen_positions(page)
        center = np.median(screen, axis=0)
        _lasso_around(page, kernel, center, radius=80)
        n = kernel.wait_for("int(w.selection.size)", timeout=30)
        res = kernel.eval("_poly_check()")
        assert res["n"] == n > 0 and res["mismatch_normalized"] == 0, res
        assert res["mismatch_embedding_far_from_edge"] == 0, res
        assert box["width"] > 100
        kernel.run("w.color_by('Xkr4' if 'Xkr4' in adata.var_names else adata.var_names[0])")
        page.wait_for_selector(f"{SCATTER} .emw-gradient")
        jh.screenshot(page.locator(f"{SCATTER} .emw-body").first, "mouse10k_nb7_lasso.png")
    finally:
        page.close()
        jh.shutdown_kernels(server)
