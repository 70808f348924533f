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
