"""Compare panel: the contingency table of two annotations as a heatmap.

"Compare" calls ``em.compare_annotations(adata, key_a, key_b)`` (nothing is recorded: it
changes no data) and draws the table as a grid of buttons, each shaded by the share of
its row's cells it holds; the ARI and each row label's agreement sit beside it.  Clicking
a cell of the table makes its cells the scatter's selection (``scatter.selection``, as a
lasso would), so the cluster panel's buttons (label, exclude, re-cluster) act on them.
"""

from __future__ import annotations

import html

import ipywidgets as W

from ._controls import guarded

__all__ = ["ComparePanel", "MAX_LABELS"]

MAX_LABELS = 40
"""Most labels per side drawn as a heatmap (a wider table is refused, with the fix)."""


def _shade(share: float) -> tuple[str, str]:
    """Background and text colour of a cell holding ``share`` of its row (readable in the
    light and the dark theme: the blue's opacity follows the share)."""
    alpha = 0.08 + 0.92 * share if share > 0 else 0.0
    text = "white" if share > 0.55 else "var(--jp-ui-font-color1, #222)"
    return f"rgba(33, 102, 172, {alpha:.2f})", text


class ComparePanel:
    """Two annotation columns and their heatmap (see the module docstring).

    ``panel.widget`` is the box; ``panel.result`` the last
    :class:`~exprmat_widgets.tl.compare.Comparison`; ``panel.cells[(a, b)]`` the button
    of one table cell.
    """

    def __init__(self, annotator):
        from .cluster_panel import annotation_keys

        self.a = annotator
        keys = annotation_keys(annotator.adata)
        key_b = annotator.key if annotator.key in keys else (keys[0] if keys else None)
        key_a = next((k for k in keys if k != key_b), key_b)
        self.key_a = W.Dropdown(options=keys, value=key_a, description="rows", layout=W.Layout(width="260px"))
        self.key_a.add_class("em-compare-a")
        self.key_b = W.Dropdown(options=keys, value=key_b, description="columns", layout=W.Layout(width="260px"))
        self.key_b.add_class("em-compare-b")
        self.button = W.Button(description="Compare", tooltip="contingency table of the two columns "
                               "(em.compare_annotations)", button_style="primary", layout=W.Layout(width="auto"))
        self.button.add_class("em-compare")
        self.button.on_click(lambda _b: self.a.when_idle("compare", self.compare))
        self.summary = W.HTML()
        self.summary.add_class("em-compare-summary")
        self.grid = W.GridBox(layout=W.Layout(overflow="auto", max_width="100%"))
        self.grid.add_class("em-compare-grid")
        self.result = None
        self.cells: dict[tuple[str, str], W.Button] = {}
        self.widget = W.VBox([
            W.HBox([self.key_a, self.key_b, self.button], layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.summary, self.grid,
        ], layout=W.Layout(width="100%"))
        self.widget.add_class("em-compare-panel")

    def _compute(self):
        from ..errors import ExprmatError
        from ..tl.compare import compare_annotations

        ka, kb = self.key_a.value, self.key_b.value
        if not ka or not kb:
            raise ExprmatError("choose the two obs columns to compare (rows and columns).")
        r = compare_annotations(self.a.adata, ka, kb)
        if max(r.table.shape) > MAX_LABELS:
            raise ExprmatError(
                f"the table has {r.table.shape[0]} x {r.table.shape[1]} labels, too many to draw (at most "
                f"{MAX_LABELS} a side); compare coarser columns, or use em.compare_annotations in code."
            )
        return r

    def compare(self) -> None:
        """Compare the two chosen columns and draw the table."""
        r = guarded(self.a, "compare", self._compute)
        if r is not None:
            self._draw(r)
            self.a._set_status(f"compared obs[{r.key_a!r}] with obs[{r.key_b!r}]: ARI {r.ari:.3f} over "
                               f"{r.n_cells:,} cells; click a cell of the table to select its cells", "ok")

    def _draw(self, r) -> None:
        self.result = r
        t = r.table
        rows, cols = [str(x) for x in t.index], [str(x) for x in t.columns]
        counts = t.to_numpy()
        totals = counts.sum(axis=1)
        agree = r.per_label_a["agreement"].to_numpy()

        def head(text, cls, tip=""):
            h = W.HTML(f'<div title="{html.escape(tip or text)}" style="overflow:hidden;text-overflow:ellipsis;'
                       f'white-space:nowrap;font-size:90%">{html.escape(text)}</div>',
                       layout=W.Layout(min_width="0"))
            h.add_class(cls)
            return h

        children = [head(f"{r.key_a} \\ {r.key_b}", "em-compare-corner")]
        children += [head(c, "em-compare-col") for c in cols]
        children.append(head("agreement", "em-compare-col"))
        self.cells = {}
        for i, ra in enumerate(rows):
            children.append(head(ra, "em-compare-row"))
            for j, cb in enumerate(cols):
                n = int(counts[i, j])
                share = n / totals[i] if totals[i] else 0.0
                bg, fg = _shade(share)
                b = W.Button(description=f"{n:,}" if n else "", disabled=n == 0,
                             tooltip=f"{r.key_a}={ra} and {r.key_b}={cb}: {n:,} cells ({100 * share:.0f}% of {ra})",
                             layout=W.Layout(width="auto", height="26px", margin="1px", padding="0"))
                b.style.button_color = bg
                b.style.text_color = fg
                b.add_class("em-compare-cell")
                b.on_click(lambda _b, ra=ra, cb=cb: self.a.when_idle("compare select", lambda: self.select(ra, cb)))
                self.cells[(ra, cb)] = b
                children.append(b)
            children.append(head(f"{100 * agree[i]:.0f}%", "em-compare-agree",
                                 f"{100 * agree[i]:.0f}% of {ra} in {r.per_label_a['best_match'].iloc[i]}"))
        self.grid.layout.grid_template_columns = f"minmax(80px, 180px) repeat({len(cols)}, minmax(34px, 1fr)) 70px"
        self.grid.children = children
        self.summary.value = (
            f'<span class="em-compare-ari">ARI {r.ari:.3f}</span> over {r.n_cells:,} cells'
            + (f" ({r.n_missing:,} without a label in either column left out)" if r.n_missing else "")
            + "; shade = share of the row's cells; click a cell to select those cells"
        )

    def select(self, label_a: str, label_b: str) -> None:
        """Make the cells of one table cell the scatter's selection."""
        r = self.result
        mask = r.cells(label_a, label_b)
        sc = self.a.scatter
        if not r.obs_names.equals(self.a.adata.obs_names):
            from ..errors import ExprmatError

            raise ExprmatError("the cells changed since the table was drawn; press Compare again.")
        sc.selection = mask
        self.a._set_status(f"selected {int(mask.sum()):,} cells: {r.key_a}={label_a} and {r.key_b}={label_b}", "ok")

    def refresh(self, changed=None) -> None:
        """Follow new columns; redraw a shown table whose columns or cells changed."""
        from .cluster_panel import annotation_keys

        keys = annotation_keys(self.a.adata)
        for dd in (self.key_a, self.key_b):
            if list(dd.options) != keys:
                cur = dd.value
                dd.options = keys
                dd.value = cur if cur in keys else (keys[0] if keys else None)
        r = self.result
        if r is None:
            return
        touched = changed is None or "obs_names" in changed or {f"obs:{r.key_a}", f"obs:{r.key_b}"} & set(changed)
        if touched:
            if r.key_a in keys and r.key_b in keys:
                # inside an action (busy): computed directly, a problem shown in the summary
                self.key_a.value, self.key_b.value = r.key_a, r.key_b
                try:
                    self._draw(self._compute())
                except Exception as e:
                    self.result, self.cells, self.grid.children = None, {}, ()
                    self.summary.value = f"<i>{html.escape(str(e))}</i>"
            else:
                self.result, self.cells, self.grid.children = None, {}, ()
                self.summary.value = "<i>a compared column is gone; compare again</i>"
