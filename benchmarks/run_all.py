"""Run every benchmark of this folder and write ``benchmarks/RESULTS.md``.

Each benchmark runs in its own child process (ours and the reference tool side by side
in that one process, as the benchmark scripts do), with a time limit; its rows
(``_common.row`` format) come back as JSON and the report is rewritten after each
benchmark, so a partial run still leaves a readable report.  The console output of each
benchmark is kept in ``benchmarks/logs/<name>.log`` (not committed).

    python benchmarks/run_all.py            # full mode (sizes below, ~30 min on 2 busy cores)
    python benchmarks/run_all.py --quick    # small sizes: a smoke run (~5 min)
    python benchmarks/run_all.py --only markers leiden

Memory: "MiB" is the peak of Python-visible allocations (tracemalloc, a second run) except
for markers, where it is the peak rise of the process RSS during the call (see the notes).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MOUSE_GENES = 1000  # em.datasets.mouse_10k(): 10,000 cells x 1,000 genes

# name -> (arguments per mode, time limit in seconds per mode)
PLAN = {
    "markers": ({"full": {"sizes": [10_000, 100_000, 1_000_000]}, "quick": {"sizes": [2_000]}}, (1500, 300)),
    "leiden": ({"full": {"sizes": [10_000, 100_000, 1_000_000]}, "quick": {"sizes": [2_000]}}, (900, 300)),
    "widget_actions": ({"full": {"sizes": [10_000, 100_000, 1_000_000]}, "quick": {"sizes": [5_000]}},
                       (900, 300)),
    "annotation_actions": ({"full": ["--cells", "1000000", "--repeat", "1"],
                            "quick": ["--cells", "20000", "--repeat", "1"]}, (600, 300)),
    "replay": ({"full": {"sizes": [10_000]}, "quick": {"sizes": [2_000]}}, (600, 300)),
    "plot_embedding": ({"full": ["--sizes", "100000", "1000000"], "quick": ["--sizes", "10000"]}, (600, 300)),
    "sc3": ({"full": ["--n-cells", "20000", "--seeds", "3", "--repeats", "1"],
             "quick": ["--n-cells", "2000", "--seeds", "1", "--repeats", "1"]}, (900, 300)),
    "cnmf": ({"full": ["--ks", "5", "10", "15", "20", "--n-iter", "10", "--k", "10", "--memory"],
              "quick": ["--cells", "2000", "--ks", "5", "--n-iter", "5", "--k", "5"]}, (1500, 300)),
    "widget": ({"full": ["--sizes", "100000", "1000000"], "quick": ["--sizes", "10000"]}, (600, 400)),
}

# sizes that the full mode leaves out on purpose (written into the report)
NOT_MEASURED = [
    ("markers", 1_000_000, "not run: at 100k cells one Wilcoxon comparison already takes tens of "
     "seconds per tool on this shared 2-core machine and grows ~linearly; 1M (x 4 cases x 2 tools) does not "
     "fit the time budget of this run."),
    ("leiden", 1_000_000, "tried, not finished within the time limit of this run: it needs a 1M-cell kNN graph "
     "(sc.pp.neighbors / pynndescent on 30 PCs), which did not fit on the shared machine; a graph made by "
     "copying the neighbours of resampled cells would not be an honest Leiden input, so none was made. "
     "The series stops at 100k."),
]


# --------------------------------------------------------------------------- worker side
def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def collect(name: str, args, emit=lambda rows: None) -> list[dict]:
    """Run benchmark ``name`` in this process and return its rows (``_common.row`` dicts);
    ``emit(rows so far)`` is called after each size where the benchmark allows it (so a run
    stopped at the time limit keeps the sizes it finished)."""
    from _common import row

    mod = _load(name)
    if name == "markers":
        out = []
        for r in mod.run(args["sizes"]):
            ours, ref = r["ours"], r["ref"]
            out.append(row(f"markers {r['case']}", r["label"], (r["n"], r.get("genes", MOUSE_GENES)),
                           ours[:2], ref[:2], reference="sc.tl.rank_genes_groups",
                           note=f"MiB = peak RSS rise; same names={r['same']} max|diff|={r['diff']:.1e}"))
        return out
    if name in ("leiden", "replay"):
        out = []
        for n in args["sizes"]:
            out += mod.run([n])
            emit(out)
        return out
    if name == "widget_actions":
        out = []
        for n, t_build, n_sel, acts in mod.run(args["sizes"]):
            for k, (panel, core, bare) in acts.items():
                note = f"core routine {core:.3f}s" if core is not None else "no core/bare equivalent"
                if k == "label lasso":
                    note += f"; lasso {n_sel:,} cells"
                out.append(row(f"annotator {k} (panel)", "mouse 10k resampled", (n, MOUSE_GENES),
                               (panel, None), (bare, None) if bare is not None else None,
                               reference="bare pandas/anndata" if bare is not None else "",
                               note=note))
            out.append(row("annotator build (Annotator())", "mouse 10k resampled", (n, MOUSE_GENES),
                           (t_build, None), None, note="incl. shallow start copy"))
        return out
    if name == "widget":
        out = []
        for r in mod.main(list(args)):
            n = r["cells"]
            out.append(row("UmapScatter display -> first frame", "pbmc68k UMAP resampled", (n, 0),
                           (r["display_to_frame_s"], None), None,
                           note=f"construct {r['construct_s']:.2f}s, render->frame {r['render_to_frame_s']:.2f}s; "
                                "headless Chromium, SwiftShader"))
            out.append(row("UmapScatter lasso -> Python", "pbmc68k UMAP resampled", (n, 0),
                           (r["lasso_to_python_s"], None), None,
                           note=f"{r['lasso_selected']:,} cells; page {r['lasso_page_s']:.2f}s transit "
                                f"{r['lasso_transit_s']:.2f}s kernel {r['lasso_kernel_s']:.2f}s"))
        return out
    return mod.main(list(args))  # annotation_actions, plot_embedding, sc3, cnmf


def worker(name, mode, json_out):
    args = PLAN[name][0][mode]
    rows = collect(name, args, lambda rows: Path(json_out).write_text(json.dumps(rows, default=str)))
    Path(json_out).write_text(json.dumps(rows, default=str))


# --------------------------------------------------------------------------- report side
def _sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


def machine_info():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for p in ("exprmat_widgets", "numpy", "scipy", "pandas", "anndata", "scanpy", "scikit-learn", "numba",
              "igraph", "leidenalg", "pynndescent", "umap-learn", "matplotlib", "cnmf", "sc3s", "playwright",
              "jupyterlab", "anywidget"):
        try:
            vers[p] = version(p)
        except PackageNotFoundError:
            vers[p] = "not installed"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "mem": mem,
        "load": os.getloadavg(),
        "python": platform.python_version(),
        "chromium": _sh(["/usr/bin/chromium", "--version"]),
        "versions": vers,
    }


def _f(x, fmt):
    return "-" if x is None else format(x, fmt)


def _mr(r):
    # a ratio of tiny peaks (RSS rise of ~0 MiB) is noise, not a result
    if r["mem_ratio"] is None or min(r["ours_mib"], r["ref_mib"]) < 1:
        return "-"
    return f"{r['mem_ratio']:.2f}"


def _t(x):
    if x is None:
        return "-"
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def _note(s):
    return str(s).replace("|", "\\|")


def _shape(r):
    return f"{r['cells']:,} x {r['genes']:,}" if r["genes"] else f"{r['cells']:,} points"


def render(info, mode, results, status, t_total, load_end, extra=()):
    L = []
    L.append("# Benchmark results\n")
    L.append(f"Generated by `python benchmarks/run_all.py{' --quick' if mode == 'quick' else ''}` "
             f"({mode} mode) on {info['date']}; total wall time of the benchmarks "
             f"{sum(v[1] for v in status.values()) / 60:.1f} min.\n")
    la = info["load"]
    L.append(f"- Machine: {info['cores']} cores, {info['cpu']}, {info['mem']} RAM; Python {info['python']}; "
             f"{info['chromium']}")
    L.append(f"- Load average at start: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1/5/15 min); "
             f"at the end: {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}")
    for e in extra:
        L.append(f"- {e}")
    if max(la[0], la[1], load_end[0]) > 0.5 * info["cores"]:
        L.append(f"- **The machine was shared** (load average above {0.5 * info['cores']:.0f} on "
                 f"{info['cores']} cores: other jobs, e.g. the test suite, ran at the same time). Absolute "
                 "times are inflated and noisy; the ratios (ours and the reference measured back to back in "
                 "one process) are the meaningful figures.")
    L.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    L.append("")
    L.append("Each benchmark ran in its own process; inside it our routine and the reference tool run on "
             "the same data, one after the other. *ratio* = reference / ours (>1: ours is faster or "
             "smaller). Time: wall clock (best of the runs the script makes). MiB: peak traced "
             "(tracemalloc) allocations of a second run, except markers (peak RSS rise). \"resampled\" "
             "= cells drawn with replacement from the real data set named (with small noise).\n")
    L.append("## Status\n")
    L.append("| benchmark | status | wall | rows |")
    L.append("|---|---|---|---|")
    for name in PLAN:
        if name in status:
            st, dt = status[name]
            L.append(f"| {name} | {st} | {dt:.0f} s | {len(results.get(name, []))} |")
    L.append("")
    L.append("## All measurements\n")
    L.append("| benchmark | data set | cells x genes | ours time | ours MiB | reference | ref time | ref MiB "
             "| time ratio | mem ratio | note |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in PLAN:
        for r in results.get(name, []):
            L.append(f"| {r['benchmark']} | {r['dataset']} | {_shape(r)} | {_t(r['ours_s'])} | "
                     f"{_f(r['ours_mib'], '.0f')} | {r['reference'] or '-'} | {_t(r['ref_s'])} | "
                     f"{_f(r['ref_mib'], '.0f')} | {_f(r['speedup'], '.2f')} | {_mr(r)} | "
                     f"{_note(r['note'])} |")
    L.append("")
    L.append("## Scaling series (markers, Leiden, annotator label / merge / exclude)\n")
    L.append("Growth = time at this size / time at the previous size of the same benchmark (cells grow 10x).\n")
    L.append("| benchmark | cells | ours time | growth | reference | ref time | growth | ratio |")
    L.append("|---|---|---|---|---|---|---|---|")
    series = {}
    for name in ("markers", "leiden", "widget_actions"):
        for r in results.get(name, []):
            series.setdefault(r["benchmark"], []).append(r)
    for bench, rs in series.items():
        if len({r["cells"] for r in rs}) < 2:
            continue
        rs = sorted(rs, key=lambda r: r["cells"])
        prev = None
        for r in rs:
            g_o = f"{r['ours_s'] / prev['ours_s']:.1f}x" if prev else ""
            g_r = f"{r['ref_s'] / prev['ref_s']:.1f}x" if prev and r["ref_s"] and prev["ref_s"] else ""
            L.append(f"| {bench} | {r['cells']:,} | {_t(r['ours_s'])} | {g_o} | {r['reference'] or '-'} | "
                     f"{_t(r['ref_s'])} | {g_r} | {_f(r['speedup'], '.2f')} |")
            prev = r
    L.append("")
    missing = [(b, size, why) for b, size, why in NOT_MEASURED
               if not any(r["cells"] == size for r in results.get(b, []))]
    if mode == "full" and missing:
        L.append("## Not measured\n")
        for b, size, why in missing:
            L.append(f"- {b} at {size:,} cells: {why}")
        L.append("")
    L.append("## Notes\n")
    L.append("- markers: t-test and Wilcoxon (one-vs-rest; at 10k also tie correction and a reference "
             "group) against `sc.tl.rank_genes_groups(pts=True)`; 8 k-means groups; results are checked "
             "identical (names, |diff|).")
    L.append("- leiden: `em.leiden` (recorded, colours, fingerprints) against `sc.tl.leiden(flavor='igraph')` "
             "on the same kNN graph (15 neighbours, 30 PCs); the partitions must be identical (note column).")
    L.append("- leiden, caveat on the resampled sizes: the 100k input repeats each real cell ~10 times with "
             "only a 1e-3 jitter on the PCs, so a cell's 15 neighbours are mostly its own copies and the "
             "graph falls apart into near-cliques (hence thousands of clusters at 100k). The timing is that "
             "of this graph, identical for both tools; it is not what a real 100k-cell data set gives. The "
             "same holds, more so, at 1M (~100 copies per cell): the cluster count is then about the number "
             "of distinct real cells. At 1M the kNN graph (sc.pp.neighbors, pynndescent) was built in the "
             "run but its time is not reported, and memory was not traced (leiden.py traces up to 100k).")
    L.append("- annotator actions (widget_actions): the panel button handler of `em.Annotator` (recorded "
             "routine + panel and scatter refresh) against the bare pandas/anndata operation a script "
             "would write (no history, colours, or checks); the core routine time is in the note. "
             "annotation_actions: each recorded routine against its undecorated kernel (history cost).")
    L.append("- replay: a recorded session against the same plain scanpy calls, and the replay (with "
             "fingerprint checks) against the original session.")
    L.append("- sc3 / cnmf: reference packages sc3s and cnmf, same inputs and seeds; 1 thread / 1 worker "
             "each. UmapScatter (widget): browser timings only, no reference tool.")
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", nargs="+", choices=list(PLAN), help="run only these benchmarks")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--budget-min", type=float, default=None,
                    help="overall time budget: later benchmarks get the time left (default: none)")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: keep the other benchmarks' rows from the last run (logs/results_<mode>.json)")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the report from the last run's rows (logs/results_<mode>.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    if args.worker:
        worker(args.worker, mode, args.json)
        return
    logs = HERE / "logs"
    if args.render:
        old = json.loads((logs / f"results_{mode}.json").read_text())
        status = {k: tuple(v) for k, v in old["status"].items()}
        Path(args.out).write_text(render(old["info"], mode, old["results"], status, 0.0,
                                         old.get("load_end", os.getloadavg()), old.get("extra", [])))
        return
    info = machine_info()
    logs.mkdir(exist_ok=True)
    results, status, extra = {}, {}, []
    store = logs / f"results_{mode}.json"
    if args.merge and store.exists():
        old = json.loads(store.read_text())
        results = {k: v for k, v in old["results"].items() if k not in (args.only or PLAN)}
        status = {k: tuple(v) for k, v in old["status"].items() if k not in (args.only or PLAN)}
        la = info["load"]
        extra = old.get("extra", []) + [
            f"{', '.join(args.only or PLAN)} re-run separately on {info['date']} "
            f"(load average at its start {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f})"]
        info = old["info"]
    t_all = time.perf_counter()
    for name in args.only or PLAN:
        limit = PLAN[name][1][0 if mode == "full" else 1]
        if args.budget_min is not None:
            left = args.budget_min * 60 - (time.perf_counter() - t_all)
            if left < 30:
                status[name] = ("skipped: overall time budget of this run used up", 0.0)
                results[name] = []
                print(f"== {name}: skipped (budget)", flush=True)
                continue
            limit = int(min(limit, left))
        fd, js = tempfile.mkstemp(suffix=".json", prefix=f"bench_{name}_")
        os.close(fd)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--json", js]
        if args.quick:
            cmd.append("--quick")
        print(f"== {name} (limit {limit}s)", flush=True)
        t0 = time.perf_counter()
        with open(logs / f"{name}.log", "w") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent,
                                 start_new_session=True)
            try:
                rc = p.wait(timeout=limit)
                st = "ok" if rc == 0 else f"failed (exit {rc}, see logs/{name}.log)"
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
                st = f"stopped at the time limit ({limit} s): not measured"
        dt = time.perf_counter() - t0
        try:
            results[name] = json.loads(Path(js).read_text() or "[]")
        except (OSError, ValueError):
            results[name] = []
        Path(js).unlink(missing_ok=True)
        status[name] = (st, dt)
        print(f"   {st} in {dt:.0f}s, {len(results[name])} rows", flush=True)
        Path(args.out).write_text(render(info, mode, results, status, time.perf_counter() - t_all,
                                         os.getloadavg(), extra))
        store.write_text(json.dumps({"info": info, "results": results, "status": status, "extra": extra,
                                     "load_end": os.getloadavg()}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
