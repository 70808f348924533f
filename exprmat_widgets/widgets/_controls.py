"""Small ipywidgets helpers shared by the panels."""

from __future__ import annotations

import ipywidgets as W


def action_button(desc: str, tip: str, handler, css_class: str, style: str = "") -> W.Button:
    """A button that calls ``handler()`` on click; ``css_class`` lets the browser tests find it."""
    b = W.Button(description=desc, tooltip=tip, button_style=style, layout=W.Layout(width="auto"))
    b.add_class(css_class)
    b.on_click(lambda _b: handler())
    return b


def guarded(annotator, name: str, build):
    """``build()`` (the panel inputs turned into a routine's arguments), or ``None`` after
    showing the problem in the status line.  Refused while an action runs: the data may be
    half-changed, so nothing is read from them."""
    if annotator.busy:
        annotator.last_error = f"{name}: {annotator.busy_reason()}"
        annotator._set_status(annotator.last_error, "error")
        return None
    try:
        return build()
    except Exception as e:  # never raised into the click handler
        annotator.last_error = f"{name}: {e}"
        annotator._set_status(annotator.last_error, "error")
        return None


# pandas' to_html draws a double border round every cell; this is the look of the panels'
# own tables (light rules between rows, the theme's colours)
_TABLE_STYLE = (
    "<style>.em-df{border-collapse:collapse;border:none;font-size:90%}"
    ".em-df th,.em-df td{border:none;border-bottom:1px solid var(--jp-border-color2,#e0e0e0);"
    "padding:2px 8px;text-align:right}"
    ".em-df thead th{border-bottom:1px solid var(--jp-border-color1,#bdbdbd)}</style>"
)


def html_table(df, **to_html) -> str:
    """``df.to_html(...)`` in the panels' table style."""
    return _TABLE_STYLE + df.to_html(border=0, classes="em-df", **to_html)
