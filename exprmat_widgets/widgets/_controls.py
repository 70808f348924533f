"""Small ipywidgets helpers shared by the panels."""

from __future__ import annotations

import ipywidgets as W


def action_button(desc: str, tip: str, handler, css_class: str, style: str = "") -> W.Button:
    """A button that calls ``handler()`` on click; ``css_class`` lets the browser tests find it."""
    b = W.Button(description=desc, tooltip=tip, button_style=style, layout=W.Layout(width="auto"))
    b.add_class(css_class)
    b.on_click(lambda _b: handler())
    return b
