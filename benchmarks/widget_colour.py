"""The annotator's browser actions, our UmapScatter beside jupyter-scatter: same points, same page.

The cells are **synthetic from mouse_10k_chr1** (:func:`exprmat_widgets.datasets.synthetic_from`:
each cell mixes two real neighbouring cells of the 10k mouse data, with counts drawn one sampling
away from the mix; ~59 non-zeros per cell, 1,000 genes). Their UMAP position is interpolated the
same way between the real UMAP positions of the two cells (a scanpy UMAP of the 10k real cells,
kept in ~/.cache/exprmat_widgets), so the layout has the real data's clusters and no two cells
coincide. Gene values are the log-normalised counts of genes detected in 5-40% of the cells (the
ones an annotator colours by); the categorical columns are the real cells' sample (2 groups) and
their Leiden clusters (``source_leiden``, ~25 groups), carried to the synthetic cells.

Both widgets live in one JupyterLab page in headless Chromium (SwiftShader software WebGL). A
hook on ``drawImage`` notes when each plot's canvas last received a frame (regl-scatterplot
renders in a shared WebGL canvas and copies each frame to the plot's 2-D canvas; the copy waits
for the software rasteriser, so its end is when the frame is there). Figures, each for both tools:

* first frame: from the start of the cell that builds and shows the widget (kernel clock) to the
  end of the first frame with points (page clock, same machine);
* colour by gene / by category: from the kernel's call (``w.color_by(g)`` /
  ``scatter.color(by=g)``) to the end of the last frame once the canvas has been quiet for
  ``--settle`` seconds (kernel work, transfer, the page's work and drawing);
* zoom: a Ctrl + wheel notch with the real mouse over the plot, to the last frame;
* lasso -> Python: a shift + drag lasso over the left half of the plot with real mouse moves,
  from the mouse-up to the kernel's ``selection`` observer.

The widgets are shown one after the other (each first frame has the page to itself) and the
actions alternate between the tools.

Run: ``python benchmarks/widget_colour.py [--sizes 1000000] [--rounds 3]``
(needs jupyter-scatter: ``pip install -e ".[bench]"``, benchmark only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

from _common import browser_helpers

jh = browser_helpers()
HERE = Path(__file__).resolve().parent

SETUP = """
import sys, time, numpy as np, pandas as pd, anndata as ad, scanpy as sc
sys.path.insert(0, {here!r})
import exprmat_widgets as em
from exprmat_widgets.widgets.scatter import UmapScatter
from _realistic import load_source
import jscatter
N = {n}
real = load_source('mouse_10k_chr1')  # with its Leiden clusters (obs['source_leiden'])
real.X = real.layers['counts'].copy()
real_umap = np.load({umap!r})
syn = em.datasets.synthetic_from(real, N, random_state=0, source='mouse_10k_chr1')
pos = pd.Index(real.obs_names)
del real
a = pos.get_indexer(syn.obs['source_cell'].astype(str)); b = pos.get_indexer(syn.obs['partner_cell'].astype(str))
w = syn.obs['mix_weight'].to_numpy()[:, None]
syn.obsm['X_umap'] = (w * real_umap[a] + (1 - w) * real_umap[b]).astype(np.float32)
del a, b, w
sc.pp.normalize_total(syn, target_sum=1e4); sc.pp.log1p(syn)
det = np.bincount(syn.X.indices, minlength=syn.n_vars) / syn.n_obs
genes = [str(g) for g in syn.var_names[(det > 0.05) & (det < 0.4)][:{n_genes}]]
nnz_per_cell = syn.X.nnz / syn.n_obs
CATS = ['source_leiden', 'sample']
df = pd.DataFrame({{'x': syn.obsm['X_umap'][:, 0], 'y': syn.obsm['X_umap'][:, 1],
                    **{{c: syn.obs[c].astype('category') for c in CATS}}}})
for g in genes:
    df[g] = syn[:, g].X.toarray().ravel()
arrivals = {{'ours': [], 'jupyter-scatter': []}}
t_show = {{}}
"""

SHOW = {
    "ours": """t_show['ours'] = time.time()
ours = UmapScatter(syn, basis='umap', color='sample', height=500)
ours.observe(lambda ch: arrivals['ours'].append((time.time(), len(ch['new']))), names='selection')
ours""",
    "jupyter-scatter": """t_show['jupyter-scatter'] = time.time()
theirs = jscatter.Scatter(data=df, x='x', y='y', color_by='sample', height=500)
theirs.widget.observe(lambda ch: arrivals['jupyter-scatter'].append(
    (time.time(), 0 if ch['new'] is None else len(ch['new']))), names='selection')
theirs.show()""",
}

DRAW_HOOK = """
(() => {
  // regl-scatterplot renders in one shared WebGL canvas and copies each frame to the plot's
  // visible 2-D canvas; the copy waits for the (software) rasteriser: its end is the frame
  const now = () => performance.timeOrigin + performance.now();
  const P = CanvasRenderingContext2D.prototype, orig = P.drawImage;
  P.drawImage = function (...a) {
    const c = this.canvas, r = orig.apply(this, a), t = now();
    c.__firstDraw ??= t; c.__lastDraw = t; c.__draws = (c.__draws || 0) + 1;
    return r;
  };
})();
"""

CANVAS = {
    "ours": "() => document.querySelector('.emw-scatter canvas')",
    "jupyter-scatter": """() => [...document.querySelectorAll('canvas')]
        .filter((c) => !c.closest('.emw-scatter') && c.width > 100)
        .sort((p, q) => q.width * q.height - p.width * p.height)[0]""",
}
GENE = {"ours": "ours.color_by({g!r})", "jupyter-scatter": "theirs.color(by={g!r}, map='viridis')"}
CATEGORY = {"ours": "ours.color_by({g!r})", "jupyter-scatter": "theirs.color(by={g!r}, map='auto')"}


def _quiet(page, tool: str, after_ms: float, settle_ms: float, timeout_s: float) -> float:
    """Epoch ms of the tool's last frame after ``after_ms``, once quiet for ``settle_ms``."""
    page.wait_for_function(
        f"""([after, settle]) => {{ const c = ({CANVAS[tool]})();
              const now = performance.timeOrigin + performance.now();
              return c && c.__lastDraw > after && now - c.__lastDraw > settle; }}""",
        arg=[after_ms, settle_ms], timeout=timeout_s * 1000, polling=50,
    )
    return page.evaluate(f"() => ({CANVAS[tool]})().__lastDraw")


def _run_cell(page, index: int) -> None:
    """Run the notebook's cell ``index`` (JupyterLab's own command, as a click would)."""
    page.evaluate(
        """(i) => { const nb = window.jupyterapp.shell.currentWidget.content;
                    nb.activeCellIndex = i; return window.jupyterapp.commands.execute('notebook:run-cell'); }""",
        index,
    )


def _box(page, tool: str) -> dict:
    """The tool's plot canvas, scrolled to the middle of the window (where the mouse reaches it)."""
    page.evaluate(f"() => ({CANVAS[tool]})().scrollIntoView({{block: 'center'}})")
    page.wait_for_timeout(300)
    return page.evaluate(f"() => {{ const r = ({CANVAS[tool]})().getBoundingClientRect(); "
                         "return {x: r.x, y: r.y, width: r.width, height: r.height}; }")


def _log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _lasso(page, kernel, tool: str) -> dict:
    """Shift + drag over the left half of the tool's plot; mouse-up -> the kernel's observer."""
    box = _box(page, tool)
    w, h = box["width"], box["height"]
    path = [(0.05 * w, 0.05 * h), (0.25 * w, 0.03 * h), (0.5 * w, 0.05 * h), (0.5 * w, 0.5 * h),
            (0.5 * w, 0.95 * h), (0.25 * w, 0.97 * h), (0.05 * w, 0.95 * h), (0.03 * w, 0.5 * h),
            (0.05 * w, 0.06 * h)]
    kernel.run(f"arrivals[{tool!r}].clear()")
    page.keyboard.down("Shift")
    try:
        page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        t_up = time.time()
        page.mouse.up()
    finally:
        page.keyboard.up("Shift")
    try:
        arr = kernel.wait_for(f"arrivals[{tool!r}]", timeout=120, interval=0.5)
    except TimeoutError:
        jh.screenshot(page, f"colour_lasso_{tool}_missing.png")
        _log(tool, "lasso: no selection reached the kernel in 120 s")
        return {"s": float("nan"), "cells": 0}
    return {"s": arr[0][0] - t_up, "cells": arr[0][1]}


def _zoom(page, tool: str, settle: float) -> float:
    """One Ctrl + wheel notch over the middle of the plot, to the last frame."""
    box = _box(page, tool)
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    page.keyboard.down("Control")
    try:
        t0 = time.time()
        page.mouse.wheel(0, -240)
    finally:
        page.keyboard.up("Control")
    return _quiet(page, tool, t0 * 1000, settle * 1000, 120) / 1000 - t0


def bench_size(ctx, server, n: int, rounds: int, settle: float, umap: Path, timeout: float = 300) -> dict:
    name = f"colour_{n}.ipynb"
    tools = list(CANVAS)
    jh.write_notebook(server.root / name, [
        SETUP.format(n=n, here=str(HERE), umap=str(umap), n_genes=2 * rounds),
        SHOW["ours"], SHOW["jupyter-scatter"]])
    page = ctx.new_page()
    page.set_default_timeout(900_000)
    page.add_init_script(DRAW_HOOK)
    try:
        jh.open_notebook(page, server, name, timeout=900, run_all=False)
        kernel = server.kernel_for(name)
        _run_cell(page, 0)
        kernel.wait_for("'t_show' in globals()", timeout=1800, interval=2.0)
        first = {}
        for i, tool in enumerate(tools):  # one at a time: each first frame has the page alone
            _run_cell(page, 1 + i)
            kernel.wait_for(f"{tool!r} in t_show", timeout=600, interval=0.5)
            try:
                _quiet(page, tool, 0, settle * 1000, 900)
            except Exception:
                jh.screenshot(page, f"colour_{n}_stuck.png")
                raise RuntimeError(f"{tool} did not draw") from None
            t_show = kernel.eval(f"t_show[{tool!r}]")
            first[tool] = page.evaluate(f"() => ({CANVAS[tool]})().__firstDraw") / 1000 - t_show
            _log(n, tool, "first frame", first[tool])
        genes = kernel.eval("genes", timeout=60)
        cats = kernel.eval("CATS")
        nnz = kernel.eval("nnz_per_cell")
        res = {key: {tool: [] for tool in tools} for key in ("gene", "category", "zoom", "lasso", "lasso_cells")}

        def timed(tool, code):
            kernel.run(f"_t0 = time.time(); {code}")
            t0 = kernel.eval("_t0")
            try:
                return _quiet(page, tool, t0 * 1000, settle * 1000, timeout) / 1000 - t0
            except Exception:
                # reported as a missing figure (NaN), the other actions still measured
                jh.screenshot(page, f"colour_{n}_{tool}_no_frame.png")
                _log(n, tool, f"no frame within {timeout} s after: {code}")
                return float("nan")

        for i, g in enumerate(genes):
            order = tools if i % 2 == 0 else tools[::-1]
            for tool in order:
                res["gene"][tool].append(timed(tool, GENE[tool].format(g=g)))
                _log(n, tool, "gene", g, res["gene"][tool][-1])
        for i in range(2 * rounds):
            order = tools if i % 2 == 0 else tools[::-1]
            for tool in order:
                res["category"][tool].append(timed(tool, CATEGORY[tool].format(g=cats[i % len(cats)])))
                _log(n, tool, "category", res["category"][tool][-1])
        for i in range(rounds):
            order = tools if i % 2 == 0 else tools[::-1]
            for tool in order:
                try:
                    res["zoom"][tool].append(_zoom(page, tool, settle))
                except Exception:
                    _log(n, tool, "zoom: no frame within 120 s")
                    res["zoom"][tool].append(float("nan"))
                _log(n, tool, "zoom", res["zoom"][tool][-1])
        for i in range(rounds):
            order = tools if i % 2 == 0 else tools[::-1]
            for tool in order:
                r = _lasso(page, kernel, tool)
                res["lasso"][tool].append(r["s"])
                res["lasso_cells"][tool].append(r["cells"])
                _log(n, tool, "lasso", r)
                with contextlib.suppress(Exception):
                    _quiet(page, tool, 0, settle * 1000, 120)  # the selection's frames are over
        jh.screenshot(page, f"colour_{n}.png")
        return {"cells": n, "nnz_per_cell": nnz, "genes": genes, "categories": cats,
                "first_frame": first, **res}
    finally:
        page.close()
        jh.shutdown_kernels(server)


SOURCE = "/work/shared/data/mouse_10k_chr1.h5ad"


def real_umap(path: Path) -> Path:
    """scanpy's UMAP of the real 10k cells (computed once, kept at ``path``)."""
    if not path.exists():
        import anndata as ad
        import numpy as np
        import scanpy as sc

        t = ad.read_h5ad(SOURCE)
        t.X = t.layers["counts"].copy()
        sc.pp.normalize_total(t, target_sum=1e4)
        sc.pp.log1p(t)
        sc.pp.pca(t, n_comps=30, random_state=0)
        sc.pp.neighbors(t, random_state=0)
        sc.tl.umap(t, random_state=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, t.obsm["X_umap"])
    return path


ACTIONS = [("first_frame", "first frame"), ("gene", "colour by gene"), ("category", "colour by category"),
           ("zoom", "zoom (Ctrl + wheel)"), ("lasso", "lasso -> Python")]


def _median(values) -> float:
    """Median of the measured values (NaN: an action that drew no frame in time)."""
    ok = [v for v in values if v == v]
    return statistics.median(ok) if ok else float("nan")


def table(rows) -> str:
    out = ["| cells | action | ours (s) | jupyter-scatter (s) | ratio (theirs / ours) |",
           "| ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        for key, label in ACTIONS:
            v = r[key]
            o, t = (v[tool] if key == "first_frame" else _median(v[tool]) for tool in CANVAS)
            out.append(f"| {r['cells']:,} | {label} | {o:.2f} | {t:.2f} | {t / o:.2f}x |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--rounds", type=int, default=3, help="genes and categories per tool = 2 x rounds")
    ap.add_argument("--settle", type=float, default=1.5, help="quiet seconds that end an action")
    ap.add_argument("--timeout", type=float, default=300, help="seconds an action may take (else NaN)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    umap = real_umap(Path.home() / ".cache" / "exprmat_widgets" / "bench_mouse_10k_umap.npy")
    rows = []
    with jh.JupyterServer() as server, jh.browser_context(viewport=(1400, 1400)) as (ctx, _page):
        for n in args.sizes:
            r = bench_size(ctx, server, n, args.rounds, args.settle, umap, args.timeout)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    print()
    print("Synthetic from mouse_10k_chr1, headless Chromium (SwiftShader); medians; "
          f"load: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(table(rows))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
