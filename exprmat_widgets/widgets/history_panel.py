"""History panel: every recorded command with its parameters, undo, exports and
replay verification.

=================  ====================================================
button             what it calls
=================  ====================================================
Undo               ``em.undo(adata, start=annotator.start)`` (the start
                   copy rebuilds a state older than the in-memory
                   checkpoints by replay; ``em.undo(adata)`` without one)
Save .h5ad         ``adata.write_h5ad(path)``
Export script      ``em.history_to_script(adata)`` written to a ``.py``
Verify             ``em.replay(start, records since the annotator
                   opened)`` on the annotator's in-memory start copy:
                   shows "ok" or the first failing step
=================  ====================================================

The table is re-rendered only when the history changed (its length or last
record), so other refreshes send nothing.
"""

from __future__ import annotations

import html
import json
import os

import ipywidgets as W

from ..errors import ReplayError
from ..history import changed_outputs, get_records

__all__ = ["HistoryPanel", "format_params"]

_SELECTION_KEYS = ("cells",)


def _short(value, limit=60) -> str:
    if isinstance(value, dict) and value.get("encoding") in ("names", "mask"):
        n = value.get("n_selected", len(value.get("names", [])))
        extra = f", polygon of {len(value['polygon'])} pts" if value.get("polygon") else ""
        return f"<{n} cells{extra}>"
    s = json.dumps(value, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def format_params(params: dict) -> str:
    """One line per command: ``key=value`` for the parameters, selections and polygons
    summarised."""
    out = []
    for k, v in params.items():
        if v is None:
            continue
        if k == "polygon" and isinstance(v, list):
            out.append(f"polygon=<{len(v)} vertices>")
        else:
            out.append(f"{k}={_short(v)}")
    return ", ".join(out)


class HistoryPanel:
    """Command list, undo, save, script export and verify (see module docstring)."""

    def __init__(self, annotator):
        self.a = annotator
        self._shown = None
        self.table = W.HTML(layout=W.Layout(width="100%", height="auto"))
        self.table.add_class("em-history-table")
        self.undo_button = W.Button(description="Undo", tooltip="undo the last command (em.undo)",
                                    button_style="warning", layout=W.Layout(width="auto"))
        self.undo_button.add_class("em-undo")
        self.undo_button.on_click(lambda _b: self.on_undo())
        self.h5ad_path = W.Text(value="annotated.h5ad", description="h5ad", layout=W.Layout(width="95%"))
        self.h5ad_path.add_class("em-h5ad-path")
        self.save_button = W.Button(description="Save .h5ad", tooltip="write the annotated data",
                                    layout=W.Layout(width="auto"))
        self.save_button.add_class("em-save")
        self.save_button.on_click(lambda _b: self.on_save())
        self.script_path = W.Text(value="annotation_history.py", description="script",
                                  layout=W.Layout(width="95%"))
        self.script_path.add_class("em-script-path")
        self.script_button = W.Button(description="Export script", tooltip="em.history_to_script",
                                      layout=W.Layout(width="auto"))
        self.script_button.add_class("em-script")
        self.script_button.on_click(lambda _b: self.on_script())
        self.verify_button = W.Button(description="Verify replay",
                                      tooltip="replay the commands on the start copy and compare fingerprints",
                                      layout=W.Layout(width="auto"))
        self.verify_button.add_class("em-verify")
        self.verify_button.on_click(lambda _b: self.on_verify())
        self.verify_status = W.HTML()
        self.verify_status.add_class("em-verify-status")
        self.buttons = [self.undo_button, self.save_button, self.script_button, self.verify_button]
        self.widget = W.VBox(
            [
                W.HTML("<b>History</b>"),
                self.table,
                W.HBox([self.undo_button, self.verify_button]),
                self.verify_status,
                self.h5ad_path,
                self.save_button,
                self.script_path,
                self.script_button,
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-history-panel")
        self.refresh()

    # ------------------------------------------------------------------ display

    @property
    def records(self) -> list[dict]:
        return get_records(self.a.adata)

    def refresh(self) -> None:
        raw = list(self.a.adata.uns.get("commands", []))
        token = (len(raw), raw[-1] if raw else None)
        if token == self._shown:
            return
        self._shown = token
        recs = get_records(raw)
        start = getattr(self.a, "start_step", 0)
        rows = []
        for i, r in enumerate(recs):
            style = "" if i >= start else "color:#888"
            rows.append(
                f'<tr class="em-history-row" style="{style};vertical-align:top;border-top:1px solid #eee">'
                f"<td>{i}</td>"
                f"<td><code>{html.escape(r['command'])}</code></td>"
                f"<td style='font-size:90%'>{html.escape(format_params(r.get('params', {})))}</td></tr>"
            )
        self.table.value = (
            f'<div class="em-history-count">{len(recs)} commands</div>'
            '<div style="max-height:260px;overflow-y:auto;line-height:1.35">'
            '<table style="border-collapse:collapse;width:100%;font-size:90%">'
            "<tr><th>#</th><th>command</th><th>parameters</th></tr>" + "".join(rows) + "</table></div>"
        )
        self.verify_status.value = ""

    # ------------------------------------------------------------------ actions

    def on_undo(self):
        import exprmat_widgets as em

        adata = self.a.adata
        recs = get_records(adata)
        if len(recs) <= getattr(self.a, "start_step", 0):
            self.a.last_error = "undo: no command made in this annotator to undo."
            self.a._set_status(self.a.last_error, "error")
            return
        undone = recs[-1]
        # past the in-memory checkpoints (the last 50 commands) em.undo rebuilds the state by
        # replaying the history on the data it started from: the annotator's start copy
        start = {"start": self.a.start} if getattr(self.a, "start", None) is not None else {}

        def run():
            em.undo(adata, **start)
            return undone

        # the undone record says what to refresh
        def after(rec):

            self.a.refresh(changed_outputs(rec))

        self.a.act(f"undo {undone['command']}", run, after=after)

    def on_save(self):
        path = (self.h5ad_path.value or "").strip()
        if not path.endswith(".h5ad"):
            self.a.last_error = f"save: {path!r} is not a .h5ad path; type e.g. annotated.h5ad."
            self.a._set_status(self.a.last_error, "error")
            return
        def run():
            self.a.adata.write_h5ad(path)
            print(f"wrote {os.path.abspath(path)}")

        self.a.act("save", run)

    def on_script(self):
        import exprmat_widgets as em

        path = (self.script_path.value or "").strip()
        if not path.endswith(".py"):
            self.a.last_error = f"export script: {path!r} is not a .py path; type e.g. history.py."
            self.a._set_status(self.a.last_error, "error")
            return

        def run():
            text = em.history_to_script(self.a.adata)
            with open(path, "w") as fh:
                fh.write(text)
            print(f"wrote {os.path.abspath(path)}")
            return text

        self.a.act("export script", run)

    def on_verify(self):
        import exprmat_widgets as em

        a = self.a
        if a.start is None:
            self.verify_status.value = (
                '<span class="em-verify-error" style="color:#c62828">no start copy kept '
                "(keep_start=False): verification needs the data as they were at the start.</span>"
            )
            return
        recs = get_records(a.adata)
        start_step = a.start_step
        if len(recs) < start_step:
            self.verify_status.value = (
                '<span class="em-verify-error" style="color:#c62828">the history is shorter than when '
                "the annotator opened (commands before it were undone); cannot verify.</span>"
            )
            return
        todo = recs[start_step:]

        def run():
            try:
                em.replay(a.start, todo, check=True)
            except ReplayError as e:
                step = (e.step + start_step) if e.step is not None else None
                return ("fail", step, str(e))
            return ("ok", len(todo), "")

        def after(res):
            kind, n, msg = res
            if kind == "ok":
                self.verify_status.value = (
                    f'<span class="em-verify-ok" style="color:#1a7f37">replay ok: {n} command(s) '
                    "reproduced exactly</span>"
                )
            else:
                self.verify_status.value = (
                    f'<span class="em-verify-error" style="color:#c62828">replay failed at step {n}: '
                    f"{html.escape(msg)}</span>"
                )

        a.act("verify replay", run, after=after)
