"""The Annotator's progress row: the bar of the running action and its Cancel button.

Fed by the action's tqdm bars (:mod:`exprmat_widgets._progress` hands their counts to
:meth:`ProgressRow.report`), never by printed text.  Hidden until the running routine
reports a step; after the action it keeps its last state (done, cancelled, failed) until
the next one starts.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as W

__all__ = ["ProgressRow"]


class ProgressRow:
    """``row.widget`` (an HBox: bar, text, Cancel); ``row.fraction`` the last fraction shown
    (0..1), ``row.text`` the last text; ``row.cancel_button`` stops the running action."""

    def __init__(self, on_cancel):
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                   layout=W.Layout(width="240px"))
        self.bar.add_class("em-progress-bar")
        self.label = W.HTML(layout=W.Layout(margin="0 12px"))
        self.label.add_class("em-progress-text")
        self.cancel_button = W.Button(description="Cancel", button_style="danger", icon="stop",
                                      tooltip="stop at the next safe point; data and history stay as before",
                                      layout=W.Layout(width="auto"))
        self.cancel_button.add_class("em-cancel")
        self.cancel_button.on_click(lambda _b: on_cancel())
        self.widget = W.HBox([self.bar, self.label, self.cancel_button],
                             layout=W.Layout(align_items="center", display="none", width="100%"))
        self.widget.add_class("em-progress")
        self.fraction = 0.0
        self.text = ""
        self.name = ""
        self._t0 = time.perf_counter()
        # reports come from the routine's threads (cNMF workers) as well as the action's
        self._lock = threading.Lock()
        self._running = False
        self._shown_at: float | None = None

    def start(self, name: str) -> None:
        """A new action: reset, stay hidden until it reports a step."""
        with self._lock:
            self.name, self._t0, self._running = name, time.perf_counter(), True
            self.fraction, self.text = 0.0, ""
            self._shown_at = None
        self.widget.layout.display = "none"
        self.cancel_button.disabled = False
        self.cancel_button.layout.display = None
        self.bar.bar_style = "info"

    def report(self, desc: str, n: float, total: float | None) -> None:
        """A tqdm bar of the running action moved to ``n`` of ``total``."""
        with self._lock:
            if not self._running:
                return
            frac = min(max(float(n) / float(total), 0.0), 1.0) if total else 0.0
            elapsed = time.perf_counter() - self._t0
            left = ""
            if total and 0.05 <= frac < 1:  # earlier guesses are far off (big k go first)
                left = f", about {elapsed * (1 - frac) / frac:.0f} s left"
            steps = f"{int(n)}/{int(total)}" if total else f"{int(n)}"
            self.fraction = frac
            self.text = f"{self.name}: {desc} {steps} ({elapsed:.0f} s{left})"
            cancelling = self.cancel_button.disabled
            # at most ten messages a second to the page, plus the first and the last step
            now = time.perf_counter()
            if self._shown_at is not None and now - self._shown_at < 0.1 and frac < 1:
                return
            self._shown_at = now
        self.bar.value = frac
        self.label.value = html.escape(self.text + (" - cancelling at the next safe point ..." if cancelling else ""))
        self.widget.layout.display = None

    def cancelling(self) -> None:
        self.cancel_button.disabled = True
        self.label.value = html.escape(self.text + " - cancelling at the next safe point ...")

    def finish(self, outcome: str, kind: str) -> None:
        """The action ended (``kind``: ``'ok'``, ``'cancelled'``, ``'error'``); a row that was
        shown says how."""
        with self._lock:
            self._running = False
            shown = self.widget.layout.display != "none"
            self.text = f"{self.name}: {outcome}"
        self.cancel_button.layout.display = "none"
        if shown:
            self.bar.bar_style = {"ok": "success", "cancelled": "warning", "error": "danger"}[kind]
            if kind == "ok":
                self.fraction = self.bar.value = 1.0
            self.label.value = html.escape(self.text)
