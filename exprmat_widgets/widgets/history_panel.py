"""History panel: every recorded command with its parameters, undo / redo, exports and
replay verification.

=================  ====================================================
button             what it calls
=================  ====================================================
Undo <command>     ``em.undo(adata, start=annotator.start)`` (the start
                   copy rebuilds a state older than the in-memory
                   checkpoints by replay; ``em.undo(adata)`` without one)
Redo <command>     the undone record's registered command with its
                   recorded parameters
                   (``registered_commands()[name].func(adata, **params)``),
                   checked against the undone record's output fingerprints
Save .h5ad         ``adata.write_h5ad(path)``
Export script      ``em.history_to_script(adata)`` written to a ``.py``
Verify             ``em.replay(start, records since the annotator
                   opened)`` on the annotator's in-memory start copy:
                   shows "ok" or the first failing step
=================  ====================================================

The newest command is listed first; commands undone in this panel stay listed (struck
through) until they are redone or a new command is made.  Save and Export refuse to
replace an existing file unless "overwrite" is ticked, and say the full path written.
The table is re-rendered only when the history changed (its length or last record), so
other refreshes send nothing.
"""

from __future__ import annotations

import copy
import html
import json
import os

import ipywidgets as W

from .._logging import logg
from ..errors import ExprmatError, ReplayError
from ..history import (
    changed_outputs,
    get_records,
    hashed_as,
    input_fingerprint,
    last_record,
    registered_commands,
)

__all__ = ["HistoryPanel", "format_params"]

_SELECTION_KEYS = ("cells",)

# a long value (a key name, local_neighborhood_size=0.3,) may break anywhere: unbroken, the
# table grows wider than the panel's column and its right edge is cut off at 1100 px
_PARAMS_STYLE = "font-size:90%;overflow-wrap:anywhere"


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


def describe(record: dict) -> str:
    """A short human name of a record, e.g. ``label_cells (Mono, 158 cells)``: the
    parameter that names the result and the number of cells it acted on."""
    name = record.get("command", "?")
    p = record.get("params", {}) or {}
    parts = []
    if p.get("old") is not None and p.get("new") is not None:
        parts.append(f"{p['old']} -> {p['new']}")
    else:
        for k in ("label", "new_name", "remove", "clusters", "groupby", "key_added"):
            v = p.get(k)
            if v is None or v == [] or v == "":
                continue
            if isinstance(v, list):
                v = ", ".join(map(str, v[:4])) + (" ..." if len(v) > 4 else "")
            parts.append(str(v))
            break
    cells = p.get("cells")
    n_in = (record.get("input") or {}).get("n_obs")
    n_out = (record.get("after") or {}).get("n_obs")
    if isinstance(cells, dict) and cells.get("encoding") in ("names", "mask"):
        parts.append(f"{cells.get('n_selected', len(cells.get('names', []))):,} cells")
    elif isinstance(n_in, int) and isinstance(n_out, int) and n_out != n_in:
        parts.append(f"{n_in - n_out:,} cells")
    text = ", ".join(parts)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{name} ({text})" if text else name


class HistoryPanel:
    """Command list, undo / redo, save, script export and verify (see module docstring).

    ``panel.redo_records`` are the records undone here that Redo can run again (the last
    one first).
    """

    def __init__(self, annotator):
        self.a = annotator
        self._shown = None
        self.redo_records: list[dict] = []
        self._expect = None  # the history as our own undo / redo left it
        self.table = W.HTML(layout=W.Layout(width="100%", height="auto"))
        self.table.add_class("em-history-table")
        self.undo_button = W.Button(description="Undo", tooltip="undo the last command (em.undo)",
                                    button_style="warning", layout=W.Layout(width="auto"))
        self.undo_button.add_class("em-undo")
        self.undo_button.on_click(lambda _b: self.on_undo())
        self.redo_button = W.Button(description="Redo", tooltip="run the undone command again, as recorded",
                                    layout=W.Layout(width="auto"))
        self.redo_button.add_class("em-redo")
        self.redo_button.on_click(lambda _b: self.on_redo())
        self.h5ad_path = W.Text(value="annotated.h5ad", description="h5ad",
                                layout=W.Layout(width="auto", flex="1 1 auto"))
        self.h5ad_path.add_class("em-h5ad-path")
        self.save_button = W.Button(description="Save .h5ad", tooltip="write the annotated data",
                                    layout=W.Layout(width="auto"))
        self.save_button.add_class("em-save")
        self.save_button.on_click(lambda _b: self.on_save())
        self.script_path = W.Text(value="annotation_history.py", description="script",
                                  layout=W.Layout(width="auto", flex="1 1 auto"))
        self.script_path.add_class("em-script-path")
        self.script_button = W.Button(description="Export script", tooltip="em.history_to_script",
                                      layout=W.Layout(width="auto"))
        self.script_button.add_class("em-script")
        self.script_button.on_click(lambda _b: self.on_script())
        self.overwrite = W.Checkbox(value=False, description="overwrite an existing file (once)", indent=False,
                                    layout=W.Layout(width="auto"))
        self.overwrite.add_class("em-overwrite")
        self.written = W.HTML()
        self.written.add_class("em-written")
        self.verify_button = W.Button(description="Verify replay",
                                      tooltip="replay the commands on the start copy and compare fingerprints",
                                      layout=W.Layout(width="auto"))
        self.verify_button.add_class("em-verify")
        self.verify_button.on_click(lambda _b: self.on_verify())
        self.verify_status = W.HTML()
        self.verify_status.add_class("em-verify-status")
        self.buttons = [self.undo_button, self.redo_button, self.save_button, self.script_button,
                        self.verify_button]
        wrap = W.Layout(flex_flow="row wrap", align_items="center", width="100%")
        self.widget = W.VBox(
            [
                W.HTML("<b>History</b>"),
                self.table,
                W.HBox([self.undo_button, self.redo_button, self.verify_button], layout=wrap),
                self.verify_status,
                W.HBox([self.h5ad_path, self.save_button], layout=wrap),
                W.HBox([self.script_path, self.script_button], layout=wrap),
                self.overwrite,
                self.written,
            ],
            layout=W.Layout(width="100%", padding="0 6px"),
        )
        self.widget.add_class("em-history-panel")
        self.refresh()

    # ------------------------------------------------------------------ display

    @property
    def records(self) -> list[dict]:
        return get_records(self.a.adata)

    def _token(self):
        raw = list(self.a.adata.uns.get("commands", []))
        return (len(raw), raw[-1] if raw else None), raw

    def refresh(self) -> None:
        token, raw = self._token()
        if token == self._shown:
            return
        self._shown = token
        if token != self._expect:
            # a command made since our undo: redoing the undone one would fork the history
            self.redo_records = []
            self._expect = None
        recs = get_records(raw)
        start = getattr(self.a, "start_step", 0)
        rows = []
        # the newest first: what was just done is in view without scrolling
        for j, r in enumerate(reversed(self.redo_records)):
            nxt = " em-history-next-redo" if j == len(self.redo_records) - 1 else ""
            cls = "em-history-row em-history-undone" + nxt
            rows.append(
                f'<tr class="{cls}" style="color:var(--jp-ui-font-color3, #999);'
                'text-decoration:line-through;vertical-align:top">'
                "<td>undone</td>"
                f"<td style='padding-right:6px'><code>{html.escape(r['command'])}</code></td>"
                f"<td style='{_PARAMS_STYLE}'>{html.escape(format_params(r.get('params', {})))}</td></tr>"
            )
        for i in range(len(recs) - 1, -1, -1):
            r = recs[i]
            style = "" if i >= start else "color:#888"
            rows.append(
                f'<tr class="em-history-row" style="{style};vertical-align:top;'
                'border-top:1px solid var(--jp-border-color2, #eee)">'
                f"<td>{i}</td>"
                f"<td style='padding-right:6px'><code>{html.escape(r['command'])}</code></td>"
                f"<td style='{_PARAMS_STYLE}'>{html.escape(format_params(r.get('params', {})))}</td></tr>"
            )
        undone = f", {len(self.redo_records)} undone" if self.redo_records else ""
        self.table.value = (
            f'<div class="em-history-count">{len(recs)} commands{undone} (newest first)</div>'
            '<div style="max-height:260px;overflow-y:auto;line-height:1.35">'
            '<table style="border-collapse:collapse;width:100%;font-size:90%">'
            "<tr><th>#</th><th>command</th><th>parameters</th></tr>" + "".join(rows) + "</table></div>"
        )
        self.verify_status.value = ""
        mine = len(recs) > start
        self.undo_button.description = f"Undo {describe(recs[-1])}" if mine else "Undo (nothing to undo)"
        self.undo_button.tooltip = ("undo the last command (em.undo)" if mine
                                    else "no command made in this annotator to undo")
        self.redo_button.description = (f"Redo {describe(self.redo_records[-1])}" if self.redo_records
                                        else "Redo (nothing undone)")

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
        # (read back from its file only when no checkpoint is held)
        copy = getattr(self.a, "start_copy", None)
        start = {"start": copy.get} if copy is not None else {}

        def run():
            em.undo(adata, **start)
            self.redo_records.append(undone)
            self._expect = self._token()[0]
            return undone

        # the undone record says what to refresh
        def after(rec):
            self.a.refresh(changed_outputs(rec))

        self.a.act(f"undo {describe(undone)}", run, after=after,
                   note=lambda rec: f"Redo runs {rec['command']} again")

    def on_redo(self):
        """Run the last undone command again with its recorded parameters, on the data it
        was first run on (checked by the input fingerprint), and compare the outputs."""
        adata = self.a.adata
        if not self.redo_records:
            self.a.last_error = "redo: nothing undone in this panel to redo."
            self.a._set_status(self.a.last_error, "error")
            return
        rec = self.redo_records[-1]

        def run():
            spec = registered_commands().get(rec["command"])
            if spec is None:
                raise ExprmatError(f"{rec['command']!r} is not a registered command of this version.")
            if input_fingerprint(adata) != rec["input"]:
                raise ExprmatError(
                    "the data differ from those the undone command ran on (changed since the "
                    "undo); make the change again with the panel's buttons instead."
                )
            # a copy: the routine may change its arguments, and the record must stay as it was
            with hashed_as(rec):
                spec.func(adata, **copy.deepcopy(rec["params"]))
            self.redo_records.pop()
            self._expect = self._token()[0]
            new = last_record(adata)
            same = new["output"] == rec["output"]
            if not same:
                diff = sorted(k for k in set(new["output"]) | set(rec["output"])
                              if new["output"].get(k) != rec["output"].get(k))
                logg.warning("redo: the result differs from the undone run in %s", ", ".join(diff))
            return same

        self.a.act(f"redo {describe(rec)}", run,
                   note=lambda same: "same result as before the undo (fingerprints match)" if same else "")

    def _target(self, widget, suffix: str, what: str, example: str):
        """The absolute path to write, or ``None`` (the reason shown) when it is not a
        ``suffix`` file or exists and 'overwrite' is not ticked."""
        path = (widget.value or "").strip()
        if not path.endswith(suffix):
            self.a.last_error = f"{what}: {path!r} is not a {suffix} path; type e.g. {example}."
            self.a._set_status(self.a.last_error, "error")
            return None
        full = os.path.abspath(os.path.expanduser(path))
        if os.path.exists(full) and not self.overwrite.value:
            self.a.last_error = (f"{what}: {full} already exists; tick 'overwrite an existing file' to "
                                 "replace it, or type another name.")
            self.a._set_status(self.a.last_error, "error")
            return None
        return full

    def _wrote(self, full: str):
        # the confirmation holds for one write only
        self.overwrite.value = False
        self.written.value = (f'<span class="em-written-path" style="font-size:90%">last written: '
                              f"<code>{html.escape(full)}</code></span>")

    def on_save(self):
        full = self._target(self.h5ad_path, ".h5ad", "save", "annotated.h5ad")
        if full is None:
            return
        adata = self.a.adata

        def run():
            adata.write_h5ad(full)
            logg.info("wrote %s (%s cells, %d commands)", full, f"{adata.n_obs:,}",
                      len(adata.uns.get("commands", [])))

        self.a.act("save", run, after=lambda _r: self._wrote(full))

    def on_script(self):
        import exprmat_widgets as em

        full = self._target(self.script_path, ".py", "export script", "history.py")
        if full is None:
            return

        def run():
            text = em.history_to_script(self.a.adata)
            with open(full, "w") as fh:
                fh.write(text)
            logg.info("wrote %s", full)
            return text

        self.a.act("export script", run, after=lambda _r: self._wrote(full))

    def on_verify(self):
        import exprmat_widgets as em

        a = self.a
        if a.start_copy is None:
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
                self.verify_status.value = (
                    f'<span class="em-verify-error" style="color:#c62828">replay failed at step {step}: '
                    f"{html.escape(str(e))}</span>"
                )
                # red in the status line too, not a green "done" above a failed replay
                raise ExprmatError(f"replay failed at step {step}: {e}") from None
            return len(todo)

        def after(n):
            self.verify_status.value = (
                f'<span class="em-verify-ok" style="color:#1a7f37">replay ok: {n} command(s) '
                "reproduced exactly</span>"
            )

        # the verdict, not the replayed routines' own messages ("normalised 400 cells ...")
        a.act("verify replay", run, after=after, quiet=True,
              note=lambda n: f"replay ok: {n} command(s) reproduced exactly")
