"""``em.Annotator``: the linked annotation panels over one AnnData.

Layout (an ``ipywidgets.VBox``)::

    status line (running / done / error in red)
    [ UMAP scatter (WebGL, lasso) ] [ cluster panel ]
    [ marker panel                ] [ history panel ]
      (two columns, each stacked without gaps)
    [ progress bar of the running action | Cancel ]  (shown when it reports steps)
    [ compare annotations (folded): heatmap of two columns ]
    [ analysis: preprocess | embed | cluster | composition | cNMF ]

Every button of every panel calls exactly one core routine through
:meth:`Annotator.act`, which

* refuses a second action while one runs, disables all action buttons and
  shows "running <command>..." in the status line;
* holds back every other control that reads the data (cluster toggles, the key
  switch, marker filters: :meth:`Annotator.when_idle`) until the action and the
  refresh after it are done, so no panel ever reads the data half-changed;
* runs the routine (in a worker thread inside a kernel, so the page stays
  responsive; synchronously when ``background=False``, e.g. in tests) inside a
  progress scope (:mod:`exprmat_widgets._progress`): its tqdm bars move the
  progress row, and Cancel (:meth:`Annotator.cancel`) stops it at its next safe
  point, after which data and history are as before;
* while a ``gated`` command (cNMF, SC3, kNN, UMAP) computes, the controls that
  only read the data run at once instead of waiting (they wait only while the
  routine writes its results);
* on error shows the message in red in the status line: the core routines
  roll back on error, so data and history are unchanged;
* on success refreshes only what the command changed: the command's history
  record names the outputs it wrote (``obs:<key>``, ``obs_names``, ``uns:...``);
  the cluster list, legend, label completion and history are updated from
  those, and the scatter is told to refresh (it re-sends only buffers whose
  content changed).

Memory: the annotator keeps the AnnData as it was when it opened
(``Annotator.start``), used by the history panel's "verify" button to replay
the commands made since then and check each fingerprint.  By default this is
a shallow copy that shares every array with the data (no memory cost: the
recorded commands replace arrays and columns instead of writing into them);
``keep_start='deep'`` takes a full copy instead (for sessions that also write
into arrays by hand), ``keep_start=False`` keeps nothing (verification is
then unavailable) and ``start=`` passes an existing copy.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from .. import _progress as prog
from .. import _rows
from ..errors import ExprmatError
from ..history import changed_outputs, get_records, shallow_copy
from ..history.start_copy import StartCopy
from ..tl import warm_up
from ._capture import capture_action
from .analysis_panel import AnalysisPanel
from .cluster_panel import ClusterPanel
from .compare_panel import ComparePanel
from .history_panel import HistoryPanel
from .marker_panel import MarkerPanel
from .progress_row import ProgressRow
from .subset_panel import SubsetPanel

__all__ = ["Annotator"]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except Exception:
        return False


def _make_scatter(adata, basis, key, height):
    """The WebGL scatter (anywidget + regl-scatterplot) coloured by ``key`` (one colour while
    ``key`` does not exist); empty, with a message, while there is no embedding."""
    from .scatter import UmapScatter

    color = key if key in adata.obs.columns else None
    return UmapScatter(adata, basis=basis, color=color, height=height, allow_missing_embedding=True)


def _has_embedding(adata, basis) -> bool:
    """Whether ``obsm`` has ``basis``; ``False`` when it has no 2-D embedding at all (a fresh
    start); an error naming the 2-D embeddings there when ``basis`` is not one of them."""
    from .. import _validate as v
    from ..errors import MissingKeyError

    try:
        v.embedding_key(adata, basis)
        return True
    except MissingKeyError as e:
        two_d = [str(k) for k in adata.obsm if getattr(adata.obsm[k], "shape", (0, 0))[1:] == (2,)]
        if two_d:
            raise MissingKeyError(f"{e} The 2-D embeddings here are {two_d}: pass basis= one of them.") from None
        return False


class Annotator(W.VBox):
    """Linked panels to annotate the cells of ``adata`` with the mouse.

    Parameters
    ----------
    adata
        The AnnData, changed in place by the panels' commands (each recorded in
        ``adata.uns['commands']``).  The scatter shows ``obsm['X_<basis>']`` (or
        ``obsm[basis]``); data without any 2-D embedding (e.g. raw counts) open too: the
        scatter says to run Preprocess and Embed in the Analysis tab, and draws the
        embedding once made.  The cluster panel lists the categories of ``obs[key]``
        (it waits for them while the data have no embedding and no ``obs[key]``).
    key
        The categorical obs column whose clusters are listed (merge, rename,
        exclude, re-cluster act on it); changeable in the panel.
    basis
        The 2-D embedding shown and lasso-selected (e.g. ``'umap'``).
    label_key
        The obs column that "label" writes into (created on first use);
        changeable in the panel.  Defaults to ``'cell.type'``.
    start
        A copy of the data as they were before the commands to verify; by
        default a shallow copy is taken now (see the memory note in the module).
    keep_start
        ``True`` (shallow copy, shares the arrays), ``'deep'`` (full copy) or
        ``False`` (no copy: the "verify" button then explains why it cannot run).
    background
        Run actions in a worker thread (default: only inside a Jupyter kernel).
    scatter
        An existing scatter widget to use instead of building one.
    height
        Height of the scatter in pixels.
    experiment
        The :class:`~exprmat_widgets.Experiment` whose modality ``slot`` is ``adata``
        (set by ``expm.rna.annotator()``): adds the subset panel (selected clusters ->
        ``expm.build_subset`` -> an Annotator on the subset, shown below).
    slot
        The experiment's modality holding ``adata``.

    Reads ``obs[key]``, ``obsm['X_<basis>']``, ``uns['<key>_colors']``,
    ``uns['commands']``; writes only through the core routines it calls.
    """

    def __init__(
        self,
        adata,
        key: str = "leiden",
        basis: str = "umap",
        *,
        label_key: str = "cell.type",
        start=None,
        keep_start: bool | str = True,
        background: bool | None = None,
        scatter=None,
        height: int = 480,
        experiment=None,
        slot: str = "rna",
    ):
        if getattr(adata, "is_view", False):
            raise ExprmatError(
                "Annotator: the AnnData is a view; make it an AnnData of its own first "
                "with `adata = adata.copy()`."
            )
        # no embedding yet (e.g. raw counts): the scatter says how to make one and the
        # Analysis tab makes it; a missing basis beside other 2-D embeddings is a typo
        embedded = _has_embedding(adata, basis)
        # without an embedding the clusters come after it: the cluster panel waits for obs[key]
        if key not in adata.obs.columns and embedded:
            cats = [c for c in adata.obs.columns if _is_categorical(adata.obs[c])]
            raise ExprmatError(
                f"Annotator: obs column {key!r} not found; cluster first (e.g. em.leiden(adata)) or "
                f"pass key= one of {cats}."
            )
        self.adata = adata
        self.basis = basis
        self.background = _in_kernel() if background is None else bool(background)
        if keep_start not in (True, False, "deep"):
            raise ExprmatError(f"Annotator: keep_start must be True, 'deep' or False, got {keep_start!r}.")
        # commands to verify: those made from now on, or all of them on a given start copy
        self.start_step = len(get_records(adata)) if start is None else 0
        if start is None and keep_start:
            start = adata.copy() if keep_start == "deep" else shallow_copy(adata)
        self.start_copy = StartCopy(adata, start) if start is not None else None
        self.busy = False
        self.last_error: str | None = None
        self.last_result: Any = None
        self.last_message = ""
        self.last_warnings: list[str] = []
        self.status_kind = "info"
        self.status_text = ""
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[set], None]] = []
        # controls used while an action runs wait here (name -> latest callback) until it is done
        self._idle_lock = threading.Lock()
        self._queued: dict[str, Callable[[], Any]] = {}
        self.running: str | None = None  # the action running now
        self.cancelled = False  # the last action was cancelled
        self._token: prog.CancelToken | None = None
        # the scope of a running gated command: reads may take its data lock meanwhile
        self._live: prog.Scope | None = None

        # the exclusion kernels load while the user looks at the first frame (from this thread
        # they load the copies that background actions run: see exprmat_widgets/_numba.py)
        threading.Thread(target=_rows.warm_up, args=(adata,), name="em-warm-up", daemon=True).start()
        # umap-learn's numba code compiles in a child process while the user reads (the first
        # kNN / UMAP then loads it from disk; see exprmat_widgets/tl/_first_knn.py)
        warm_up(adata)
        self.status = W.HTML(value="", layout=W.Layout(min_height="1.6em"))
        self.status.add_class("em-status")
        self.scatter = scatter if scatter is not None else _make_scatter(adata, basis, key, height)
        self.clusters = ClusterPanel(self, key=key, label_key=label_key)
        self.markers = MarkerPanel(self)
        self.history = HistoryPanel(self)
        self.analysis = AnalysisPanel(self)
        self.progress = ProgressRow(self.cancel)
        self.subsets = SubsetPanel(self, experiment, slot) if experiment is not None else None
        self.compare = ComparePanel(self)

        view = self.scatter if isinstance(self.scatter, W.Widget) else W.HTML("<i>(no scatter view)</i>")
        # two columns, not two rows: the marker panel sits right under the scatter whatever
        # the height of the cluster panel beside it (rows left a gap as tall as the difference).
        # min_width 0 and hidden overflow: the WebGL canvas follows its box's width, so a box
        # sized by its content would grow without end
        def column(children, flex, min_width):
            return W.VBox(children, layout=W.Layout(flex=flex, min_width=min_width, width="0",
                                                    overflow="hidden", align_items="stretch"))

        left = column([view, self.markers.widget], "3 1 0%", "360px")
        right = column([self.clusters.widget, self.history.widget], "2 1 0%", "300px")
        body = W.HBox([left, right], layout=W.Layout(width="100%", align_items="flex-start"))
        body.add_class("em-annotator-body")
        # folded until opened: the heatmap is a review step, not part of every session
        self.compare_box = W.Accordion(children=[self.compare.widget], selected_index=None)
        self.compare_box.set_title(0, "Compare annotations")
        self.compare_box.add_class("em-compare-box")
        extra = [self.subsets.widget] if self.subsets is not None else []
        # the empty scatter and the cluster panel send a new user to "the Analysis tab": name it
        self.analysis_title = W.HTML("<b>Analysis</b> (one recorded command a button; on raw counts "
                                     "start with Preprocess, then Embed and Cluster)")
        self.analysis_title.add_class("em-analysis-title")
        super().__init__([self.status, body, self.progress.widget, self.compare_box, self.analysis_title,
                          self.analysis.widget, *extra])
        self.add_class("em-annotator")
        if hasattr(self.scatter, "observe") and hasattr(self.scatter, "error"):
            # e.g. a lasso refused because it was drawn on cells no longer shown
            self.scatter.observe(self._on_scatter_error, names="error")
            # one gene/colour box (the scatter's), its errors and results in the status line
            self.scatter.inline_errors = False
            self.scatter.observe(self._on_scatter_color, names="color")
        self._set_status(f"{adata.n_obs:,} cells; annotating obs[{key!r}]", "info")

    # ------------------------------------------------------------------ state shared by panels

    @property
    def key(self) -> str:
        return self.clusters.key

    @property
    def label_key(self) -> str:
        return self.clusters.label_key

    def _on_scatter_error(self, change):
        if change["new"]:
            self.last_error = str(change["new"])
            self._set_status(self.last_error, "error")

    def _on_scatter_color(self, change):
        if change["new"]:
            self._set_status(f"UMAP coloured by {change['new']}", "ok")

    def lasso(self) -> tuple[np.ndarray, list | None]:
        """The scatter's current selection (int positions in the current cells) and its
        polygon (or None)."""
        sc = self.scatter
        # positions in the current cells: the scatter's own lag while an action changes them
        sel = sc.selection_now if hasattr(sc, "selection_now") else getattr(sc, "selection", None)
        sel = np.asarray(sel if sel is not None else [], dtype=np.int64).ravel()
        poly = getattr(self.scatter, "last_polygon", None)
        if poly is not None:
            poly = np.asarray(poly, dtype=float).reshape(-1, 2).tolist()
            if not poly:
                poly = None
        return sel, poly

    def lasso_args(self) -> dict:
        """``cells=..., polygon=..., basis=...`` for a routine acting on the lasso selection."""
        sel, poly = self.lasso()
        if sel.size == 0:
            raise ExprmatError(
                "no cells selected in the UMAP: draw a lasso around cells first "
                "(or select clusters in the list and use the cluster buttons)."
            )
        if sel.max() >= self.adata.n_obs:
            raise ExprmatError("the lasso selection is out of date (cells were removed); draw it again.")
        return {"cells": sel, "polygon": poly, "basis": self.basis if poly is not None else None}

    def on_change(self, callback: Callable[[set], None]) -> None:
        """Call ``callback(changed)`` after every command, undo and refresh."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ running one action

    @property
    def action_buttons(self) -> list:
        subsets = self.subsets.buttons if self.subsets is not None else []
        return self.clusters.buttons + self.markers.buttons + self.history.buttons + self.analysis.buttons + subsets

    def _set_status(self, text: str, kind: str = "info") -> None:
        color = {"info": "#555", "busy": "#b36b00", "ok": "#1a7f37", "warn": "#9a6700", "error": "#c62828"}[kind]
        icon = {"info": "", "busy": "\u21bb ", "ok": "\u2713 ", "warn": "\u26a0 ", "error": "\u2717 "}[kind]
        self.status.value = (
            f'<div class="em-status-{kind}" style="color:{color};white-space:pre-wrap">'
            f"{icon}{html.escape(text)}</div>"
        )
        self.status_kind = kind
        self.status_text = text

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for b in self.action_buttons:
            b.disabled = busy

    def when_idle(self, name: str, func: Callable[[], Any]) -> bool:
        """Run ``func()`` (a panel control reading the data) now, or, while an action runs,
        once it and the refresh after it are done (the latest call per ``name`` wins).

        While a gated command computes (its results not yet being written), ``func`` runs now,
        holding the command's data lock so the results wait for it.
        An error goes to the status line; nothing is raised into the widget callback.
        Returns ``True`` when ``func`` ran now.
        """
        live = None
        with self._idle_lock:
            if self.busy:
                live = self._live
                if live is None or not live.data_lock.acquire(blocking=False):
                    self._queued[name] = func
                    return False
        try:
            self._run_guarded(name, func)
        finally:
            if live is not None:
                live.data_lock.release()
        return True

    def cancel(self) -> bool:
        """Stop the running action at its next safe point (data and history stay as they
        were).  Returns ``False`` when nothing runs."""
        token = self._token
        if not self.busy or token is None:
            return False
        # said before the token is set: the routine may stop, and say so, at once
        self.progress.cancelling()
        self._set_status(f"cancelling {self.running} at its next safe point ...", "busy")
        token.cancel()
        return True

    def _run_guarded(self, name: str, func: Callable[[], Any]) -> None:
        try:
            func()
        except Exception as e:  # a widget callback must not raise into the comm handler
            self.last_error = f"{name}: {e}"
            self._debug_tb = traceback.format_exc()
            self._set_status(self.last_error, "error")

    def _go_idle(self) -> None:
        """Run the controls used during the action, then free the buttons.  Still busy while
        they run: an action started from one of them is refused rather than interleaved."""
        while True:
            with self._idle_lock:
                queued, self._queued = self._queued, {}
                if not queued:
                    self._set_busy(False)
                    self.running = self._token = None
                    return
            for name, func in queued.items():
                self._run_guarded(name, func)

    @property
    def start(self):
        """The data as they were at the start (``None`` with ``keep_start=False``); read back
        from a temporary file when it was written out to keep within the undo budget."""
        return self.start_copy.get() if self.start_copy is not None else None

    @start.setter
    def start(self, value):
        self.start_copy = StartCopy(self.adata, value) if value is not None else None

    def act(self, name: str, func: Callable, *args, after: Callable | None = None,
            note: Callable | None = None, quiet: bool = False, **kwargs):
        """Run one core routine ``func(*args, **kwargs)`` as the action ``name``.

        Shows progress, catches errors (shown in red; the routines leave data and
        history unchanged on error) and refreshes the panels from what the new
        history record says was written.  ``after(result)`` runs on success;
        ``note(result)`` returns a line added to the status (e.g. how to undo it).
        What the routine logs (``exprmat_widgets`` logger, INFO and up) during the action
        is shown in the status line instead of being printed (``quiet``: its INFO lines are
        not shown, e.g. those of the commands a replay re-runs; warnings still are).
        Returns ``True`` when the action was started (it may still be running
        in the background: see :meth:`wait`).
        """
        with self._idle_lock:
            if self.busy:
                self._set_status(f"{name}: {self.busy_reason()}", "error")
                return False
            self._set_busy(True)
            self.running = name
        self.last_error = None
        self.last_warnings = []
        self.cancelled = False
        self._token = token = prog.CancelToken()
        self.progress.start(name)
        # the long commands (the gated ones) report steps: their bar shows Cancel
        gated = bool(getattr(func, "__exprmat_gated__", False))
        hint = " (the other actions wait for it; Cancel stops it)" if gated else ""
        self._set_status(f"running {name} on {self.adata.n_obs:,} cells ...{hint}", "busy")
        n_before = len(self.adata.uns.get("commands", []))

        def work():
            t0 = time.perf_counter()
            try:
                # the routine's messages and warnings go to the status line, its bars to the row
                with capture_action() as said, prog.scope(self.progress.report, token) as live:
                    if gated:
                        self._live = live
                    try:
                        result = func(*args, **kwargs)
                    finally:
                        self._end_live_reads()
                self.last_warnings = said.warnings
            except prog.Cancelled:
                self.cancelled = True
                n = len(get_records(self.adata))
                self.progress.finish("cancelled; nothing changed", "cancelled")
                self._set_status(f"{name} cancelled after {time.perf_counter() - t0:.1f} s: the data and the "
                                 f"history ({n} commands) are as they were before.", "warn")
                self._finish(set())
                return
            except Exception as e:  # shown in the panel, not raised into the comm handler
                msg = str(e)
                self.last_error = msg if msg.startswith((name + ":", name + "(")) else f"{name}: {msg}"
                self.progress.finish("failed (see the status line)", "error")
                self._set_status(self.last_error, "error")
                self._finish(set())
                self._debug_tb = traceback.format_exc()
                return
            self.progress.finish(f"done in {time.perf_counter() - t0:.1f} s", "ok")
            self.last_result = result
            try:
                recs = self.adata.uns.get("commands", [])
                changed = set()
                if len(recs) > n_before:
                    changed = changed_outputs(get_records(list(recs)[n_before:])[-1])
                self.refresh(changed)
                if after is not None:
                    after(result)
                said_ = "" if quiet else " ".join(m.strip() for m in said.info if m.strip())
                extra = note(result) if note is not None else ""
                self.last_message = said_
                warned = "; ".join(self.last_warnings)
                if extra or warned:  # "from 400. - excluded 20 cells": one sentence, no stray full stop
                    said_ = said_.rstrip(".")
                self._set_status(f"{name} done in {time.perf_counter() - t0:.2f} s"
                                 + (f": {said_}" if said_ else f" ({self.adata.n_obs:,} cells in the data)")
                                 + (f" - {extra}" if extra else "")
                                 + (f" - warning: {warned}" if warned else ""), "warn" if warned else "ok")
            except Exception as e:  # a display problem: the command itself went through
                self.last_error = f"{name} done, but the panels could not refresh: {e}"
                self._debug_tb = traceback.format_exc()
                self._set_status(self.last_error, "error")
            finally:
                self._go_idle()

        if self.background:
            self._thread = threading.Thread(target=work, name=f"em-{name}", daemon=True)
            self._thread.start()
        else:
            work()
        return True

    def _end_live_reads(self) -> None:
        """No more reads during the action: the refresh after it must not meet one."""
        with self._idle_lock:
            live, self._live = self._live, None
        if live is not None:
            with live.data_lock:  # a read that began before waits to end here
                pass

    def busy_reason(self) -> str:
        """Why an action is refused now (names the running one)."""
        return (f"{self.running or 'another action'} is still running; wait for it to finish "
                "or press Cancel.")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background action to finish."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _finish(self, changed: set) -> None:
        try:
            self.refresh(changed)
        except Exception:  # the error of the command is what the status line shows
            self._debug_tb = traceback.format_exc()
        finally:
            self._go_idle()

    def refresh(self, changed: set | None = None) -> None:
        """Bring every panel in line with the data.

        ``changed`` (from a history record, e.g. ``{'obs:leiden', 'obs_names'}``)
        limits the work: ``None`` means "anything may have changed".
        """
        self.clusters.refresh(changed)
        self.markers.refresh(changed)
        self.history.refresh()
        self.compare.refresh(changed)
        self._refresh_scatter(changed)
        for cb in list(self._listeners):
            cb(changed if changed is not None else set())

    def _refresh_scatter(self, changed):
        """The scatter re-reads the AnnData and re-sends only the buffers whose content
        changed (coordinates after an exclusion, colour codes after a relabel); its lasso
        selection is kept by cell name.  The clusters (or unlabelled cells) still selected are
        highlighted again."""
        sc = self.scatter
        if hasattr(sc, "refresh"):
            sc.refresh()
            # the column the plot showed is gone (e.g. a label undone): show the clusters
            if getattr(sc, "color", None) == "" and self.key in self.adata.obs.columns:
                self.show_key(self.key)
        if changed is None or changed & {"obs_names", f"obs:{self.key}", f"obs:{self.label_key}"}:
            self.clusters.rehighlight()

    # ------------------------------------------------------------------ small conveniences

    def show_key(self, key: str) -> None:
        """Colour the scatter by ``key`` (obs column or gene)."""
        if hasattr(self.scatter, "color_by"):
            self.scatter.color_by(key)

    def __repr__(self):
        return (
            f"Annotator({self.adata.n_obs} cells, key={self.key!r}, label_key={self.label_key!r}, "
            f"basis={self.basis!r}, {len(get_records(self.adata))} commands)"
        )


def _is_categorical(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or col.dtype == bool
