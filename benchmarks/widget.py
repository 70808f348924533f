"""Browser benchmark of the UMAP scatter widget (UmapScatter) in JupyterLab.

Playwright drives Debian's headless Chromium (/usr/bin/chromium; WebGL through SwiftShader,
i.e. software rendering: the figures are an upper bound of what a laptop GPU gives) against a
local JupyterLab. For each size, the cells are *resampled* from pbmc68k_reduced's real UMAP
coordinates and labels (with a small jitter so points do not coincide), and we report

* display -> first frame: from the start of the cell that builds and displays the widget
  (kernel clock) to the first animation frame after the points were drawn (page clock;
  same machine, same epoch clock), plus the widget construction time in the kernel and
  the page-side render() -> first frame time;
* lasso -> Python: a lasso over ~half of the cells drawn with real mouse moves; from the
  mouse-up to the kernel's ``selection`` observer firing, split into the page part
  (lasso end, point-in-polygon, encoding, until ``save_changes`` returns), the transit
  (page -> websocket -> server -> kernel comm; includes the page's main thread finishing the
  frame it is busy with) and the kernel part (decoding, validation, observers).

Run: ``python benchmarks/widget.py [--sizes 100000 1000000]``. The side-by-side with
jupyter-scatter on cells synthetic from real ones (first frame, colour by gene and category,
zoom, lasso) is ``benchmarks/widget_colour.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import browser_helpers

jh = browser_helpers()

SETUP = """
import json, time
import numpy as np, pandas as pd, anndata as ad, scanpy as sc
from exprmat_widgets.widgets.scatter import UmapScatter
N = {n}
src = sc.datasets.pbmc68k_reduced()
rng = np.random.default_rng(0)
idx = rng.integers(0, src.n_obs, N)
umap = src.obsm['X_umap'][idx] + rng.normal(0, 0.08, (N, 2))
obs = pd.DataFrame({{'bulk_labels': src.obs['bulk_labels'].to_numpy()[idx]}},
                   index=[f'r{{i}}' for i in range(N)])
obs['bulk_labels'] = obs['bulk_labels'].astype(src.obs['bulk_labels'].dtype)
adata = ad.AnnData(obs=obs, obsm={{'X_umap': umap.astype(np.float32)}})
arrivals = []
"""

SHOW = """
t_display = time.time()
w = UmapScatter(adata, basis='umap', color='bulk_labels', height=600)
t_built = time.time()
w.observe(lambda ch: arrivals.append((time.time(), int(len(ch['new'])))), names='selection')
# instrumentation: when the update message reaches the widget's comm, and when it is handled
comm_times = []
_handle = w.comm.handle_msg
def _timed(msg):
    t = time.time()
    _handle(msg)
    comm_times.append((t, time.time()))
w.comm.handle_msg = _timed
w
"""


def bench_size(ctx, server, n: int) -> dict:
    name = f"bench_{n}.ipynb"
    jh.write_notebook(server.root / name, [SETUP.format(n=n), SHOW])
    page = ctx.new_page()
    page.set_default_timeout(300_000)
    try:
        jh.open_notebook(page, server, name, timeout=600)
        page.wait_for_selector('.emw-scatter[data-drawn="true"]', timeout=600_000)
        kernel = server.kernel_for(name)
        t_display, t_built = kernel.eval("[t_display, t_built]")
        drawn_at = int(page.get_attribute(".emw-scatter", "data-drawn-at")) / 1000.0
        first_draw_ms = int(page.get_attribute(".emw-scatter", "data-first-draw-ms"))
        timings = json.loads(page.get_attribute(".emw-scatter", "data-last-draw-timings"))
        jh.screenshot(page.locator(".emw-scatter .emw-body").first, f"bench_{n}.png")

        # lasso around the left half of the cells (split at the median projected x)
        page.click('.emw-scatter button[data-mode="lasso"]')
        xs = np.asarray(page.eval_on_selector(
            ".emw-scatter canvas",
            """(c) => { const sp = c.__emw.scatterplot, n = c.__emw.model.get('_n');
                        const step = Math.max(1, Math.floor(n / 20000)), out = [];
                        for (let i = 0; i < n; i += step) out.push(sp.getScreenPosition(i)[0]);
                        return out; }""",
        ))
        box = page.locator(".emw-scatter canvas").first.bounding_box()
        xm = float(np.median(xs))
        h = box["height"]
        path = [(2, 2), (xm / 2, 1), (xm, 2), (xm, h / 2), (xm, h - 2), (xm / 2, h - 1), (2, h - 2),
                (1, h / 2), (2, 3)]
        kernel.run("arrivals.clear(); comm_times.clear()")
        x0, y0 = path[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        t_up = time.time()
        page.mouse.up()
        # wait without executing anything in the kernel (a busy kernel would delay the
        # selection's comm message and inflate the figure)
        page.wait_for_selector(".emw-scatter[data-selection-sent-at]", timeout=300_000)
        time.sleep(2.0 + n / 500_000)
        arrivals = kernel.wait_for("arrivals", timeout=300, interval=1.0)
        sent_at = int(page.get_attribute(".emw-scatter", "data-selection-sent-at")) / 1000.0
        t_arrive, n_sel = arrivals[0]
        t_recv, t_done = kernel.eval("comm_times")[-1]
        return {
            "cells": n,
            "construct_s": t_built - t_display,
            "display_to_frame_s": drawn_at - t_display,
            "render_to_frame_s": first_draw_ms / 1000.0,
            "page_decode_s": timings["decode"] / 1000.0,
            "regl_draw_s": timings["draw"] / 1000.0,
            "lasso_selected": n_sel,
            "lasso_to_python_s": t_arrive - t_up,
            "lasso_page_s": sent_at - t_up,
            "lasso_transit_s": t_recv - sent_at,
            "lasso_kernel_s": t_done - t_recv,
        }
    finally:
        page.close()
        jh.shutdown_kernels(server)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = []
    with jh.JupyterServer() as server, jh.browser_context() as (ctx, _page):
        for n in args.sizes:
            r = bench_size(ctx, server, n)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print()
    print("UmapScatter in headless Chromium (SwiftShader software WebGL: an upper bound)")
    print(f"{'dataset':<34}{'display->frame':>15}{'construct':>11}{'render->frame':>15}"
          f"{'lasso cells':>13}{'lasso->Python':>15}{'page':>8}{'transit':>9}{'kernel':>8}")
    for r in rows:
        label = f"pbmc68k UMAP resampled to {r['cells']:,}"
        print(f"{label:<34}{r['display_to_frame_s']:>14.2f}s{r['construct_s']:>10.2f}s"
              f"{r['render_to_frame_s']:>14.2f}s{r['lasso_selected']:>13,}"
              f"{r['lasso_to_python_s']:>14.2f}s{r['lasso_page_s']:>7.2f}s"
              f"{r['lasso_transit_s']:>8.2f}s{r['lasso_kernel_s']:>7.2f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
