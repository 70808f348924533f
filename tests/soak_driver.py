"""The soak driver: a seeded random sequence of panel actions on an ``em.Annotator`` running
with ``background=True`` (as in Jupyter), with control events fired while actions run and
``em.label_cells`` called from another thread (a notebook cell), checking the panels against
the data after every settled action.

Used by ``tests/test_soak.py`` (CI size) and ``benchmarks/soak.py`` (500 actions at 100k
cells).  Page messages are delivered with ``set_state`` as the comm does (a lasso with the
generation of the view it was drawn on); clicks with ``button.click()``; toggles, the key
switch and filters by setting the widget value, as the page's state updates do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath

import exprmat_widgets as em
from exprmat_widgets.errors import ExprmatError
from exprmat_widgets.history import get_records
from exprmat_widgets.widgets.scatter import encode_selection_buffer

REPO = Path(__file__).resolve().parents[1]
MAX_NAME = 200  # category names must stay short (sub-cluster names once grew exponentially)
NB_KEY = "nb.label"  # the column the "notebook cell" thread labels into
LABELS = ["T", "B", "NK", "Mono", "Neu", "Ery", "Stroma", "Endo", "x" * 40, "Très long é ü"]
LABEL_KEYS = ["cell.type", "cell.type2"]
GENE_FILTERS = ("n_genes", "min_lfc", "max_padj", "min_pct", "max_pct_ref")
ERROR_NAMES = {c.__name__ for c in (ExprmatError, *ExprmatError.__subclasses__())}


def prepare(adata, *, resolution: float = 1.0):
    """kNN graph, UMAP and Leiden with the package's routines, then the history is cleared:
    the soak's history starts on these data (the replay's START)."""
    em.knn(adata, use_rep="X_pca", n_neighbors=15, random_state=0)
    em.umap(adata, random_state=0)
    em.leiden(adata, resolution=resolution, random_state=0)
    adata.uns.pop("commands", None)
    return adata


def rss_mib() -> dict:
    """Current and peak resident memory of this process (MiB), from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss": out.get("VmRSS", float("nan")), "peak": out.get("VmHWM", float("nan"))}


def replay_fresh(start_path, final_path, timeout=1800):
    """``exprmat-widgets replay START FINAL`` in a fresh interpreter (this worktree's package)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "exprmat_widgets.cli", "replay", str(start_path), str(final_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


class Soak:
    """Drives one annotator; ``failures`` lists broken invariants, ``escaped`` exceptions
    that got out of a widget callback or a thread."""

    def __init__(self, adata, *, seed: int = 0, start=None, log=None):
        self.adata = adata
        self.rng = np.random.default_rng(seed)
        self.start = start if start is not None else adata.copy()
        self.n0 = adata.n_obs
        self.ann = em.Annotator(adata, background=True, start=self.start)
        self.log = log or (lambda s: None)
        self.failures: list[str] = []
        self.long_names: list[str] = []  # category names of MAX_NAME chars or more
        self.escaped: list[str] = []
        self.unexpected: list[str] = []  # actions that failed with a non-ExprmatError
        self.stats = {"actions": 0, "done": 0, "refused": 0, "concurrent_events": 0,
                      "events_while_busy": 0, "notebook_cells": 0, "notebook_refused": 0,
                      "undo": 0, "checks": 0}
        self.by_kind: dict[str, list] = {}
        self._old_msgs: list[dict] = []
        self._nb_thread = None
        self.trace: list[str] = []  # one line per action: what it was and what the status said

    # ------------------------------------------------------------------ plumbing

    def _ui(self, what, fn, *args):
        """A page event: whatever it does, nothing may be raised into the comm handler."""
        try:
            fn(*args)
        except Exception as e:
            self.escaped.append(f"{what}: {type(e).__name__}: {e}\n{traceback.format_exc()}")

    def _clusters(self):
        return list(self.ann.clusters._rows)

    def _pick(self, seq, k=1):
        seq = list(seq)
        k = min(k, len(seq))
        return [seq[i] for i in self.rng.choice(len(seq), size=k, replace=False)] if k else []

    def _select(self, names):
        cp = self.ann.clusters
        self._ui("select", cp.select, [n for n in names if n in cp._rows])

    def _lasso_msg(self, *, small=False):
        """What the page sends after a lasso: a circle around part of a random cluster, on the
        view the page shows now."""
        sc, adata = self.ann.scatter, self.adata
        emb = adata.obsm["X_umap"][:, :2]
        col = adata.obs.get(self.ann.key, None)
        if col is not None and self._clusters():
            c = self._pick(self._clusters())[0]
            # by category code: astype(str) of 100k cells with a 175k-char name takes 65 GiB
            cats = [str(x) for x in col.astype("category").cat.categories]
            code = cats.index(c) if c in cats else -2
            members = np.flatnonzero(col.astype("category").cat.codes.to_numpy() == code)
        else:
            members = np.arange(adata.n_obs)
        if members.size == 0:
            members = np.arange(adata.n_obs)
        center = emb[self.rng.choice(members)]
        d = np.sort(np.hypot(*(emb - center).T))
        k = int(self.rng.integers(5, max(6, min(adata.n_obs // (40 if small else 8), 4000))))
        r = d[min(k, d.size - 1)] * 1.01
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        poly = np.c_[center[0] + r * np.cos(t), center[1] + r * np.sin(t)]
        inside = np.flatnonzero(MplPath(poly).contains_points(emb))
        tr = sc._transform
        norm = ((poly - np.array([tr["cx"], tr["cy"]])) * tr["scale"]).astype("<f4")
        msg = {
            "selection": memoryview(encode_selection_buffer(inside, sc._n)),
            "_polygon": memoryview(norm.tobytes()),
            "_selection_generation": sc._generation,
        }
        self._old_msgs = [msg, *self._old_msgs[:3]]
        return msg

    def _send_lasso(self, *, small=False):
        """A lasso message: mostly on the current view, else one drawn on an earlier view
        (remapped or refused by the scatter), else from a view the kernel never had."""
        u = self.rng.random()
        if u < 0.7 or not self._old_msgs:
            msg = self._lasso_msg(small=small)
        elif u < 0.9:
            msg = self._pick(self._old_msgs)[0]
        else:
            msg = dict(self._lasso_msg(small=small), _selection_generation=self.ann.scatter._generation + 99)
        self._ui("lasso message", self.ann.scatter.set_state, msg)

    # ------------------------------------------------------------------ control events

    def _event(self):
        """One control event, as the page sends it (possibly while an action runs)."""
        a, cp, mp, sc = self.ann, self.ann.clusters, self.ann.markers, self.ann.scatter
        self.stats["concurrent_events"] += 1
        if a.busy:
            self.stats["events_while_busy"] += 1
        kind = self._pick(["toggle", "key", "filter", "lasso", "hover", "color", "click", "label_key"])[0]
        if kind == "toggle":
            rows = list(cp._rows.values())
            if rows:
                row = self._pick(rows)[0]
                self._ui("toggle", setattr, row.toggle, "value", not row.toggle.value)
        elif kind == "key":
            self._switch_key()
        elif kind == "filter":
            self._filter_edit()
        elif kind == "lasso":
            self._send_lasso()
        elif kind == "hover":
            index = int(self.rng.integers(-2, self.n0 + 2))
            self._ui("hover", sc._on_custom_msg, sc, {"type": "hover", "index": index}, [])
        elif kind == "color":
            self._colour_by()
        elif kind == "click":  # a second action while one runs: refused, never interleaved
            b = self._pick(cp.buttons + mp.buttons)[0]
            self._ui("click", b.click)
        else:
            self._ui("label into", setattr, cp.label_key_box, "value", self._pick(LABEL_KEYS)[0])

    def _switch_key(self):
        cp = self.ann.clusters
        opts = [k for k in cp.key_dropdown.options if k != NB_KEY and k in ("leiden", "sample", *LABEL_KEYS)]
        if opts:
            self._ui("key switch", setattr, cp.key_dropdown, "value", self._pick(opts)[0])

    def _filter_edit(self):
        mp = self.ann.markers
        which = self._pick(GENE_FILTERS)[0]
        value = {
            "n_genes": int(self.rng.integers(1, 12)),
            "min_lfc": float(self.rng.choice([0.0, 0.25, 0.5, 1.0, 2.0])),
            "max_padj": float(self.rng.choice([0.01, 0.05, 0.2, 1.0])),
            "min_pct": float(self.rng.choice([0.0, 0.1, 0.25, 0.5])),
            "max_pct_ref": float(self.rng.choice([0.3, 0.6, 1.0])),
        }[which]
        w = {"n_genes": mp.n_genes, "min_lfc": mp.min_lfc, "max_padj": mp.max_padj, "min_pct": mp.min_pct,
             "max_pct_ref": mp.max_pct_ref}[which]
        self._ui(f"filter {which}", setattr, w, "value", value)

    def _colour_by(self):
        sc, mp = self.ann.scatter, self.ann.markers
        gene = str(self._pick(self.adata.var_names[:200])[0])
        u = self.rng.random()
        if u < 0.4:  # the scatter's own search box
            self._ui("colour by (page)", sc._on_custom_msg, sc, {"type": "color_by", "key": gene}, [])
        elif u < 0.7:
            self._ui("colour by (marker panel)", mp.on_gene, gene)
        elif u < 0.85 and mp.view.rows:
            self._ui("marker table row", mp.select_gene_row, int(self.rng.integers(0, len(mp.view.rows))))
        else:
            self._ui("colour by (page)", sc._on_custom_msg, sc, {"type": "color_by", "key": self.ann.key}, [])

    # ------------------------------------------------------------------ actions

    def _can_exclude(self, n):
        return self.adata.n_obs - n >= 0.5 * self.n0

    def _action(self):
        """Start one action; returns its name."""
        a, cp, mp = self.ann, self.ann.clusters, self.ann.markers
        kinds = ["label", "merge", "rename", "exclude", "recluster", "lasso_label", "lasso_exclude",
                 "lasso_recluster", "markers", "lasso_markers", "filter", "key", "colour", "undo", "notebook"]
        weights = np.array([10, 7, 5, 4, 6, 8, 3, 4, 4, 3, 5, 5, 4, 6, 5], dtype=float)
        kind = kinds[self.rng.choice(len(kinds), p=weights / weights.sum())]
        clusters = self._clusters()
        counts = cp.counts
        if kind == "label":
            self._select(self._pick(clusters, int(self.rng.integers(1, 4))))
            cp.label_key_box.value = self._pick(LABEL_KEYS)[0]
            cp.label_text.value = self._pick(LABELS + ["", " "])[0]
            self._ui("label", cp.label_button.click)
        elif kind == "merge":
            self._select(self._pick(clusters, int(self.rng.integers(1, 4))))
            cp.name_text.value = self._pick(["", "merged", f"m{self.stats['actions']}", *clusters[:2]])[0]
            self._ui("merge", cp.merge_button.click)
        elif kind == "rename":
            self._select(self._pick(clusters, int(self.rng.choice([1, 1, 1, 2]))))
            cp.name_text.value = self._pick(["", f"r{self.stats['actions']}", *clusters[:1]])[0]
            self._ui("rename", cp.rename_button.click)
        elif kind == "exclude":
            small = [c for c in clusters if counts.get(c, 0) < 0.05 * self.adata.n_obs]
            pick = self._pick(small or clusters)
            if pick and not self._can_exclude(sum(counts.get(c, 0) for c in pick)):
                pick = []  # keep most cells: the soak is about annotation, not emptying the data
            self._select(pick)
            self._ui("exclude", cp.exclude_button.click)
        elif kind == "recluster":
            self._select(self._pick(clusters, int(self.rng.integers(1, 3))))
            cp.resolution.value = float(self.rng.choice([0.2, 0.5, 1.0, 1.5]))
            self._ui("re-cluster", cp.recluster_button.click)
        elif kind.startswith("lasso_"):
            self._send_lasso(small=kind == "lasso_exclude")
            if kind == "lasso_label":
                cp.label_text.value = self._pick(LABELS)[0]
                self._ui("lasso label", cp.lasso_label_button.click)
            elif kind == "lasso_exclude":
                if self._can_exclude(int(a.lasso()[0].size)):
                    self._ui("lasso exclude", cp.lasso_exclude_button.click)
            elif kind == "lasso_recluster":
                cp.resolution.value = float(self.rng.choice([0.3, 0.8, 1.2]))
                self._ui("lasso re-cluster", cp.lasso_recluster_button.click)
            else:
                mp.method.value = self._pick(["t-test", "wilcoxon", "logreg"])[0]
                self._ui("lasso markers", mp.lasso_button.click)
        elif kind == "markers":
            self._select(self._pick(clusters, int(self.rng.integers(0, 4))))
            mp.method.value = self._pick(["t-test", "t-test", "wilcoxon", "logreg"])[0]
            self._ui("markers", mp.clusters_button.click)
        elif kind == "filter":
            self._filter_edit()
        elif kind == "key":
            self._switch_key()
        elif kind == "colour":
            self._colour_by()
        elif kind == "undo":
            self.stats["undo"] += 1
            self._ui("undo", a.history.undo_button.click)
        elif kind == "notebook":
            # a background action, and a notebook cell labelling cells while it runs
            self._select(self._pick(clusters, 2))
            cp.name_text.value = ""
            self._ui("merge", cp.merge_button.click)
            self._notebook_cell()
        return kind

    def _notebook_cell(self):
        names = list(self._pick(self.adata.obs_names, int(self.rng.integers(1, 200))))
        label = self._pick(LABELS)[0]
        self.stats["notebook_cells"] += 1

        def cell():
            try:
                em.label_cells(self.adata, NB_KEY, cells=names, label=label)
            except ExprmatError:  # e.g. its cells were excluded meanwhile: the cell's own error
                self.stats["notebook_refused"] += 1

        self._nb_thread = threading.Thread(target=cell, name="notebook-cell")
        self._nb_thread.start()

    def step(self, i):
        a = self.ann
        a._debug_tb = None
        n_cmd = len(a.adata.uns.get("commands", []))
        kind = self._action()
        self.stats["actions"] += 1
        if self.rng.random() < 0.6:  # fire controls while it runs, without waiting first
            for _ in range(int(self.rng.integers(1, 5))):
                self._event()
                if self.rng.random() < 0.3:
                    time.sleep(float(self.rng.random()) * 0.02)
        a.wait(600)
        if self._nb_thread is not None:
            self._nb_thread.join(600)
            self._nb_thread = None
        if a.busy:
            self.failures.append(f"action {i} ({kind}): still busy after 600 s")
            return
        tb = getattr(a, "_debug_tb", None)
        if tb:
            last = tb.strip().splitlines()[-1]
            etype = last.split(":")[0].rsplit(".", 1)[-1]
            if etype not in ERROR_NAMES:
                self.unexpected.append(f"action {i} ({kind}): {last}\n{tb}")
        refused = a.status_kind == "error"
        if "could not refresh" in (a.status_text or ""):
            self.failures.append(f"action {i} ({kind}): {a.status_text}")
        changed = len(a.adata.uns.get("commands", [])) != n_cmd
        self.stats["refused" if refused and not changed else "done"] += 1
        self.by_kind.setdefault(kind, [0, 0])[0 if changed else 1] += 1
        self.trace.append(f"{i} {kind}: {a.status_kind} {a.status_text[:160]}")
        self.check(f"action {i} ({kind})")

    # ------------------------------------------------------------------ invariants

    def check(self, where):
        self.stats["checks"] += 1
        a, cp, mp, sc, adata = self.ann, self.ann.clusters, self.ann.markers, self.ann.scatter, self.adata
        bad = []
        if any(b.disabled for b in a.action_buttons):
            bad.append("buttons still disabled")
        key = cp.key
        if key in adata.obs:
            col = adata.obs[key].astype("category")
            want = {str(k): int(v) for k, v in col.value_counts(sort=False).items()}
            if cp.counts != want:
                bad.append(f"cluster counts {cp.counts} != value_counts {want}")
            ncat = len(col.cat.categories)
            if f"{ncat} clusters in obs[" not in cp.summary.value or f"{adata.n_obs:,} cells" not in cp.summary.value:
                bad.append(f"summary {cp.summary.value!r} != {ncat} clusters, {adata.n_obs} cells")
        elif "does not exist" not in cp.summary.value:
            bad.append(f"key {key!r} missing but summary says {cp.summary.value!r}")
        for c in adata.obs.columns:
            s = adata.obs[c]
            if str(s.dtype) != "category":
                continue
            cats = s.cat.categories
            colours = adata.uns.get(f"{c}_colors")
            if colours is not None and len(colours) != len(cats):
                bad.append(f"uns['{c}_colors'] has {len(colours)} colours for {len(cats)} categories")
            long = [x for x in cats if len(str(x)) >= MAX_NAME]
            if long:  # kept apart: em.subcluster's naming is being fixed on its own branch
                self.long_names.append(f"{where}: obs[{c!r}] has category names of "
                                       f"{max(map(len, map(str, long)))} chars")
        if "leiden" in adata.obs and "leiden_colors" not in adata.uns:
            bad.append("uns['leiden_colors'] is gone")
        if sc._n != adata.n_obs or len(sc._coords) != 8 * adata.n_obs:
            bad.append(f"scatter _n={sc._n} ({len(sc._coords)} coord bytes) for {adata.n_obs} cells")
        if len(sc._codes) != 2 * adata.n_obs:
            bad.append(f"scatter has {len(sc._codes)} code bytes for {adata.n_obs} cells")
        if sc._highlight and len(sc._highlight) != adata.n_obs:
            bad.append(f"highlight of {len(sc._highlight)} cells for {adata.n_obs}")
        if len(sc.selection) and int(np.max(sc.selection)) >= adata.n_obs:
            bad.append("selection positions past the cells")
        if mp.result_key is not None:
            if mp.result_key in adata.uns:
                want = em.filter_markers(adata, key=mp.result_key, **mp.filters()).reset_index(drop=True)
                if not mp.table_df.equals(want):
                    bad.append(f"marker table ({len(mp.table_df)} rows) != filter_markers ({len(want)} rows)")
                if [r[1] for r in mp.view.rows] != want["names"].astype(str).tolist():
                    bad.append("marker table on the page != filter_markers names")
            elif len(mp.table_df):
                bad.append(f"marker table shows {len(mp.table_df)} rows of a result no longer in uns")
        recs = get_records(adata)
        last_is_nb = bool(recs) and recs[-1]["command"] == "label_cells" and recs[-1]["params"].get("key") == NB_KEY
        if f"{len(recs)} commands" not in a.history.table.value and not last_is_nb:
            bad.append(f"history panel does not show {len(recs)} commands")
        for b in bad:
            self.failures.append(f"{where}: {b}")

    # ------------------------------------------------------------------ run

    def run(self, n_actions: int, every: int = 50, max_seconds: float | None = None):
        hooks = (threading.excepthook, sys.unraisablehook)

        def thread_hook(args):
            self.escaped.append(f"thread {args.thread.name}: {args.exc_type.__name__}: {args.exc_value}")

        def unraisable_hook(args):
            self.escaped.append(f"unraisable: {args.exc_type.__name__}: {args.exc_value} ({args.object!r})")

        threading.excepthook, sys.unraisablehook = thread_hook, unraisable_hook
        t0 = time.perf_counter()
        try:
            self.check("start")
            for i in range(n_actions):
                if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                    self.log(f"time budget of {max_seconds:.0f} s spent after {i} actions")
                    break
                self.step(i)
                if every and (i + 1) % every == 0:
                    self.log(f"{i + 1} actions in {time.perf_counter() - t0:.0f} s, {self.adata.n_obs:,} cells, "
                             f"{len(get_records(self.adata))} commands, rss {rss_mib()['rss']:.0f} MiB, "
                             f"{len(self.failures)} failures")
        finally:
            threading.excepthook, sys.unraisablehook = hooks
        self.stats["seconds"] = time.perf_counter() - t0
        return self

    def finish(self, tmpdir):
        """Write START and FINAL and replay FINAL's history onto START in a fresh process."""
        tmpdir = Path(tmpdir)
        start_path, final_path = tmpdir / "soak_start.h5ad", tmpdir / "soak_final.h5ad"
        self.start.write_h5ad(start_path)
        self.adata.write_h5ad(final_path)
        t0 = time.perf_counter()
        proc = replay_fresh(start_path, final_path)
        return proc, time.perf_counter() - t0


def report(soak, proc, replay_s, mem) -> str:
    s = soak.stats
    lines = [
        f"actions {s['actions']}: {s['done']} changed the data, {s['refused']} refused or no-op; "
        f"{s['undo']} undo clicks; {s['notebook_cells']} notebook cells ({s['notebook_refused']} refused)",
        f"control events {s['concurrent_events']} ({s['events_while_busy']} while an action ran); "
        f"{s['checks']} invariant checks in {s['seconds']:.0f} s",
        f"final: {soak.adata.n_obs:,} of {soak.n0:,} cells, {len(get_records(soak.adata))} commands",
        "by kind (changed, not): " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(soak.by_kind.items())),
        f"invariant failures {len(soak.failures)}, escaped exceptions {len(soak.escaped)}, "
        f"non-ExprmatError action errors {len(soak.unexpected)}, checks with names of {MAX_NAME}+ chars "
        f"{len(soak.long_names)}" + (f" (first: {soak.long_names[0]})" if soak.long_names else ""),
        f"fresh-process replay: exit {proc.returncode} in {replay_s:.0f} s; {proc.stdout.strip().splitlines()[-1:]}",
        f"RSS end {mem['rss']:.0f} MiB, peak {mem['peak']:.0f} MiB",
    ]
    return "\n".join(lines)
