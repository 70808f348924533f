"""Colour by gene in the browser: our UmapScatter beside jupyter-scatter, same points, same page.

The cells are **synthetic from mouse_10k_chr1** (:func:`exprmat_widgets.datasets.synthetic_from`:
each cell mixes two real neighbouring cells of the 10k mouse data, with counts drawn one sampling
away from the mix). Their UMAP position is interpolated the same way between the real UMAP
positions of the two cells (a scanpy UMAP of the 10k real cells, kept in
~/.cache/exprmat_widgets), so the layout has the real
data's clusters and no two cells coincide. Gene values are the log-normalised counts of genes
detected in 5-40% of the cells (the ones an annotator colours by).

Both widgets live in one JupyterLab page in headless Chromium (SwiftShader software WebGL). A
draw hook notes the time of each canvas' last draw call; one figure is the time from the
kernel's assignment (``w.color = gene`` / ``scatter.color(by=gene)``) to the last draw call of
that canvas once it has been quiet for ``--settle`` seconds (kernel work, transfer, the page's
work and the drawing, for both tools alike; regl-scatterplot draws in a shared WebGL canvas
and copies each frame to the plot's 2-D canvas with ``drawImage``, which is what is timed).
Runs alternate between the tools and genes.

Run: ``python benchmarks/widget_colour.py [--sizes 1000000 5000000] [--rounds 3]``
(needs jupyter-scatter: ``pip install jupyter-scatter==1.0.1``, benchmark only).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import browser_helpers

jh = browser_helpers()

SETUP = """
import time, numpy as np, pandas as pd, scipy.sparse as sp, anndata as ad, scanpy as sc
import exprmat_widgets as em
from exprmat_widgets.widgets.scatter import UmapScatter
import jscatter
N = {n}
real = ad.read_h5ad({source!r})
real.X = real.layers['counts'].copy()
real_umap = np.load({umap!r})
syn = em.datasets.synthetic_from(real, N, random_state=0, source='mouse_10k_chr1')
pos = pd.Index(real.obs_names)
a = pos.get_indexer(syn.obs['source_cell'].astype(str)); b = pos.get_indexer(syn.obs['partner_cell'].astype(str))
w = syn.obs['mix_weight'].to_numpy()[:, None]
syn.obsm['X_umap'] = (w * real_umap[a] + (1 - w) * real_umap[b]).astype(np.float32)
sc.pp.normalize_total(syn, target_sum=1e4); sc.pp.log1p(syn)
det = np.bincount(syn.X.indices, minlength=syn.n_vars) / syn.n_obs
genes = [str(g) for g in syn.var_names[(det > 0.05) & (det < 0.4)][:{n_genes}]]
nnz_per_cell = syn.X.nnz / syn.n_obs
df = pd.DataFrame({{'x': syn.obsm['X_umap'][:, 0], 'y': syn.obsm['X_umap'][:, 1],
                    'sample': syn.obs['sample'].astype('category')}})
for g in genes:
    df[g] = syn[:, g].X.toarray().ravel()
"""

SHOW_OURS = "ours = UmapScatter(syn, basis='umap', color='sample', height=500); ours"
SHOW_THEIRS = "theirs = jscatter.Scatter(data=df, x='x', y='y', color_by='sample', height=500); theirs.show()"

WEBGL_HOOK = """
(() => {
  const mark = (gl) => { const c = gl.canvas; c.__lastDraw = performance.timeOrigin + performance.now();
                         c.__draws = (c.__draws || 0) + 1; };
  const wrap = (obj, names, gl) => { for (const f of names) { const o = obj[f]; if (!o) continue;
      obj[f] = function (...a) { mark(gl ?? this); return o.apply(this, a); }; } };
  // regl-scatterplot renders in one shared WebGL canvas and copies each frame to the plot's
  // visible 2-D canvas: the copy is the frame a user sees
  wrap(CanvasRenderingContext2D.prototype, ['drawImage']);
  for (const C of [window.WebGLRenderingContext, window.WebGL2RenderingContext]) {
    if (!C) continue;
    wrap(C.prototype, ['drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced']);
    const getExt = C.prototype.getExtension;
    C.prototype.getExtension = function (name) {
      const e = getExt.call(this, name);
      if (e && name === 'ANGLE_instanced_arrays' && !e.__emwHooked) {
        wrap(e, ['drawArraysInstancedANGLE', 'drawElementsInstancedANGLE'], this); e.__emwHooked = true;
      }
      return e;
    };
  }
})();
"""

CANVAS = {
    "ours": "() => document.querySelector('.emw-scatter canvas')",
    "jupyter-scatter": """() => [...document.querySelectorAll('canvas')]
        .filter((c) => !c.closest('.emw-scatter'))
        .sort((p, q) => q.width * q.height - p.width * p.height)[0]""",
}
ASSIGN = {"ours": "ours.color = {g!r}", "jupyter-scatter": "theirs.color(by={g!r}, map='viridis')"}


def _last_draw(page, tool: str, after_ms: float, settle_ms: float, timeout_s: float) -> float:
    """Epoch ms of the tool's last draw call after ``after_ms``, once quiet for ``settle_ms``."""
    page.wait_for_function(
        f"""([after, settle]) => {{ const c = ({CANVAS[tool]})();
              const now = performance.timeOrigin + performance.now();
              return c && c.__lastDraw > after && now - c.__lastDraw > settle; }}""",
        arg=[after_ms, settle_ms], timeout=timeout_s * 1000, polling=50,
    )
    return page.evaluate(f"() => ({CANVAS[tool]})().__lastDraw")


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


def bench_size(ctx, server, n: int, rounds: int, settle: float, umap: Path) -> dict:
    name = f"colour_{n}.ipynb"
    jh.write_notebook(server.root / name, [SETUP.format(n=n, source=SOURCE, umap=str(umap), n_genes=2 * rounds),
                                           SHOW_OURS, SHOW_THEIRS])
    page = ctx.new_page()
    page.set_default_timeout(900_000)
    page.add_init_script(WEBGL_HOOK)
    try:
        jh.open_notebook(page, server, name, timeout=900)
        page.wait_for_selector('.emw-scatter[data-drawn="true"]', timeout=900_000)
        kernel = server.kernel_for(name)
        kernel.wait_for("'theirs' in globals()", timeout=900, interval=1.0)
        for tool in CANVAS:  # both have drawn their first frame and gone quiet
            try:
                _last_draw(page, tool, 0, settle * 1000, 900)
            except Exception:
                jh.screenshot(page, f"colour_{n}_stuck.png")
                info = page.evaluate("""() => [...document.querySelectorAll('canvas')].map((c) =>
                    ({w: c.width, h: c.height, ours: !!c.closest('.emw-scatter'), draws: c.__draws ?? 0}))""")
                raise RuntimeError(f"{tool} did not draw: canvases {info}") from None
        genes = kernel.eval("genes", timeout=60)
        nnz = kernel.eval("nnz_per_cell")
        times = {tool: [] for tool in CANVAS}
        for i, g in enumerate(genes):
            order = list(CANVAS) if i % 2 == 0 else list(CANVAS)[::-1]
            for tool in order:
                kernel.run(f"_t0 = time.time(); {ASSIGN[tool].format(g=g)}")
                t0 = kernel.eval("_t0")
                done = _last_draw(page, tool, t0 * 1000, settle * 1000, 600)
                times[tool].append(done / 1000 - t0)
        jh.screenshot(page, f"colour_{n}.png")
        return {"cells": n, "nnz_per_cell": nnz, "genes": genes,
                **{f"{tool}_s": times[tool] for tool in CANVAS}}
    finally:
        page.close()
        jh.shutdown_kernels(server)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--rounds", type=int, default=3, help="genes per tool = 2 x rounds")
    ap.add_argument("--settle", type=float, default=1.5, help="quiet seconds that end a recolour")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    umap = real_umap(Path.home() / ".cache" / "exprmat_widgets" / "bench_mouse_10k_umap.npy")
    rows = []
    with jh.JupyterServer() as server, jh.browser_context(viewport=(1400, 1400)) as (ctx, _page):
        for n in args.sizes:
            r = bench_size(ctx, server, n, args.rounds, args.settle, umap)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print()
    print("Colour by gene, kernel assignment -> last frame (median of the genes), headless Chromium")
    print(f"{'data':<44}{'ours':>9}{'jupyter-scatter':>17}{'ratio (theirs/ours)':>22}")
    for r in rows:
        o, t = statistics.median(r["ours_s"]), statistics.median(r["jupyter-scatter_s"])
        label = f"synthetic from mouse_10k_chr1, {r['cells']:,} cells"
        print(f"{label:<44}{o:>8.2f}s{t:>16.2f}s{t / o:>21.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
