"""Cost of the command history itself (issue "History format 1"); the reference is
running the analysis directly.

Parts (``--parts``, default all):

* ``percmd``: ms per recorded command (label_cells, rename_cluster) when the history
  already holds 10, 100, 1,000 and 10,000 records (median of 20 calls), on the real mouse 10k.
* ``replay``: em.replay of a 1,000-command history vs its original run.
* ``cli``: ``exprmat-widgets replay START ANNOTATED`` wall time for that history.
* ``undo``: RSS and held undo bytes after each of 5 exclusions at ``--cells`` synthetic
  cells from pbmc_2samples_400 (15,792 genes), with the default budget and with none;
  then 5 em.undo (older ones rebuilt by ``start=``).
* ``replaymem``: traced peak memory of a 10-step analysis and of its replay at ``--cells``.

    python benchmarks/history.py [--parts percmd replay cli undo replaymem] [--cells 200000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _realistic import load_source, rss_mib  # noqa: E402

import exprmat_widgets as em  # noqa: E402
from exprmat_widgets.history import held_bytes, shallow_copy  # noqa: E402

FIGURES = []  # (figure, value, data)


def figure(name, value, data):
    FIGURES.append((name, value, data))
    print(f"{name}: {value}   [{data}]", flush=True)


@contextmanager
def quiet():
    # the annotation commands print a line each ("[i] labelled ..."); 1,000 of them would
    # drown the figures and cost terminal time that is not the history's
    with redirect_stdout(StringIO()):
        yield


def mouse():
    return em.datasets.mouse_10k()


def label_step(adata, i):
    """One cheap command: 10 cells labelled, alternating labels and cells."""
    lo = (i * 10) % (adata.n_obs - 10)
    em.label_cells(adata, key="manual", cells=adata.obs_names[lo:lo + 10], label="A" if i % 2 else "B")


def grow_history(adata, n, start=0):
    with quiet():
        for i in range(start, start + n):
            label_step(adata, i)


# --------------------------------------------------------------------------- parts


def part_percmd():
    data = "mouse 10k (real), 10,000 x 1,000"
    adata = mouse()
    n_done = 0
    for length in (10, 100, 1000, 10_000):
        grow_history(adata, length - n_done, start=n_done)
        n_done = length
        for name in ("label_cells", "rename_cluster"):
            times = []
            with quiet():
                for j in range(20):
                    t0 = time.perf_counter()
                    if name == "label_cells":
                        label_step(adata, n_done + j)
                    else:
                        old, new = ("A", "A1") if j % 2 == 0 else ("A1", "A")
                        em.rename_cluster(adata, key="manual", old=old, new=new)
                    times.append(time.perf_counter() - t0)
            n_hist = len(adata.uns["commands"])
            figure(f"{name} at {length:,} records (median of 20)", f"{1e3 * np.median(times):.2f} ms", data)
            # the 20 calls are in the history too; trim back so the lengths stay as stated
            adata.uns["commands"] = adata.uns["commands"][:length]
            assert n_hist == length + 20
    # the same relabelling written directly with pandas (a naive object round trip; our
    # routine works on the categorical codes), the "running it directly" reference
    import pandas as pd
    t = []
    for j in range(20):
        t0 = time.perf_counter()
        col = adata.obs["manual"].astype(object).to_numpy()
        col[j * 10:(j + 1) * 10] = "A"
        adata.obs["manual_plain"] = pd.Categorical(col)
        t.append(time.perf_counter() - t0)
    figure("same 10-cell label written directly (naive pandas, no history)", f"{1e3 * np.median(t):.2f} ms", data)


def build_1000(start):
    adata = shallow_copy(start)
    t0 = time.perf_counter()
    grow_history(adata, 1000)
    return adata, time.perf_counter() - t0


def part_replay():
    data = "mouse 10k (real); 1,000 label_cells of 10 cells each"
    start = mouse()
    annotated, t_orig = build_1000(start)
    with quiet():
        t0 = time.perf_counter()
        out = em.replay(start, annotated)
        t_rep = time.perf_counter() - t0
    assert len(out.uns["commands"]) == 1000
    assert (out.obs["manual"].astype(str) == annotated.obs["manual"].astype(str)).all()
    figure("original run of the 1,000 commands", f"{t_orig:.2f} s", data)
    figure("em.replay of them (every fingerprint checked)", f"{t_rep:.2f} s", data)
    figure("replay / original", f"{t_rep / t_orig:.2f}x", data)
    return start, annotated


def part_cli(start=None, annotated=None):
    data = "mouse 10k (real) h5ad files; 1,000 label_cells"
    if start is None:
        start = mouse()
        annotated, _ = build_1000(start)
    with tempfile.TemporaryDirectory() as d:
        s, a = os.path.join(d, "start.h5ad"), os.path.join(d, "annotated.h5ad")
        start.write_h5ad(s)
        annotated.write_h5ad(a)
        code = "import sys; from exprmat_widgets.cli import main; sys.exit(main(sys.argv[1:]))"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code, "replay", s, a], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import exprmat_widgets"], env=env, check=True)
        imp = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().endswith("1000 steps reproduced"), p.stdout[-300:]
    figure("CLI `exprmat-widgets replay START ANNOTATED` wall time", f"{wall:.2f} s", data)
    figure("of which starting Python + import exprmat_widgets", f"{imp:.2f} s", data)


def realistic_start(n_cells):
    src = load_source("pbmc_2samples_400")
    em.datasets.synthetic_from(src, 10)  # compile the kernel outside the figures
    t0 = time.perf_counter()
    adata = em.datasets.synthetic_from(src, n_cells, random_state=0, source="pbmc_2samples_400")
    label = f"{adata.uns['synthetic']['label']}, {n_cells:,} x {adata.n_vars:,}, {adata.X.nnz / 1e6:.0f}M non-zeros"
    print(f"made {label} in {time.perf_counter() - t0:.0f} s", flush=True)
    return adata, label


def _exclusion_order(adata):
    sizes = adata.obs["source_leiden"].value_counts()
    return [str(c) for c in sizes.index[::-1][:5]]  # the 5 smallest clusters, one at a time


def part_undo(adata, label):
    order = _exclusion_order(adata)
    x_mib = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    print(f"X is {x_mib:.0f} MiB; excluding clusters {order} of obs['source_leiden']", flush=True)
    for budget in ("default", None):
        em.settings.undo_max_bytes = 2 * 2**30 if budget == "default" else None
        tag = "budget 2 GiB (default)" if budget == "default" else "no budget (undo_max_bytes=None)"
        gc.collect()
        start = shallow_copy(adata)
        work = shallow_copy(adata)
        base = rss_mib()
        figure(f"[{tag}] RSS before the exclusions", f"{base:.0f} MiB", label)
        with quiet():
            for k, c in enumerate(order, 1):
                t0 = time.perf_counter()
                em.exclude(work, annotation="source_leiden", remove=[c])
                dt = time.perf_counter() - t0
                gc.collect()
                figure(f"[{tag}] after exclusion {k} ({work.n_obs:,} cells left, {dt:.1f} s)",
                       f"RSS {rss_mib():.0f} MiB (+{rss_mib() - base:.0f}), "
                       f"held_bytes {held_bytes(work) / 2**20:.0f} MiB",
                       label)
        with quiet():
            t_undo = []
            for _ in range(5):
                t0 = time.perf_counter()
                em.undo(work, start=start)
                t_undo.append(time.perf_counter() - t0)
        assert work.n_obs == adata.n_obs and list(work.obs_names[:5]) == list(adata.obs_names[:5])
        assert (work.X != adata.X).nnz == 0 if budget is None else work.X.shape == adata.X.shape
        figure(f"[{tag}] 5 x em.undo(start=...) back to the start",
               " / ".join(f"{t:.1f}" for t in t_undo) + " s", label)
        del work, start
        gc.collect()
    em.settings.undo_max_bytes = 2 * 2**30


def ten_steps(adata):
    names = adata.obs_names
    cl = adata.obs["source_leiden"].value_counts().index[::-1]
    em.label_cells(adata, key="manual", cells=names[:20_000], label="A")
    em.label_cells(adata, key="manual", cells=names[20_000:40_000], label="B")
    em.merge_clusters(adata, key="source_leiden", clusters=[str(cl[-1]), str(cl[-2])], new_name="merged")
    em.rename_cluster(adata, key="source_leiden", old="merged", new="T cells")
    em.exclude(adata, annotation="source_leiden", remove=[str(cl[0])])
    em.exclude_cells(adata, cells=adata.obs_names[::200])
    em.label_cells(adata, key="manual", cells=adata.obs_names[-20_000:], label="C")
    em.exclude(adata, annotation="source_leiden", remove=[str(cl[1])])
    em.rename_cluster(adata, key="manual", old="A", new="A1")
    em.merge_clusters(adata, key="manual", clusters=["B", "C"], new_name="BC")
    return adata


def traced(fn):
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, dt, peak


def part_replaymem(adata, label):
    start = shallow_copy(adata)
    with quiet():
        annotated, t_orig, p_orig = traced(lambda: ten_steps(shallow_copy(start)))
        replayed, t_rep, p_rep = traced(lambda: em.replay(start, annotated))
    assert replayed.n_obs == annotated.n_obs
    figure("10-step analysis, original run: peak traced memory (time)", f"{p_orig:.0f} MiB ({t_orig:.1f} s)", label)
    figure("its em.replay from the start: peak traced memory (time)", f"{p_rep:.0f} MiB ({t_rep:.1f} s)", label)
    figure("replay peak / original peak", f"{p_rep / p_orig:.2f}", label)


def print_table():
    print("\n| figure | value | data |\n|---|---|---|")
    for name, value, data in FIGURES:
        print(f"| {name} | {value} | {data} |")


if __name__ == "__main__":
    logging.getLogger("exprmat_widgets").setLevel(logging.WARNING)
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", nargs="+", default=["percmd", "replay", "cli", "undo", "replaymem"])
    ap.add_argument("--cells", type=int, default=200_000)
    args = ap.parse_args()
    s = a = None
    if "percmd" in args.parts:
        part_percmd()
    if "replay" in args.parts:
        s, a = part_replay()
    if "cli" in args.parts:
        part_cli(s, a)
    del s, a
    if "undo" in args.parts or "replaymem" in args.parts:
        big, label = realistic_start(args.cells)
        if "undo" in args.parts:
            part_undo(big, label)
        if "replaymem" in args.parts:
            part_replaymem(big, label)
    print_table()
