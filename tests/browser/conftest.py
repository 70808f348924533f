"""Fixtures for the real-browser tests: one JupyterLab server and one headless Chromium
(Debian's /usr/bin/chromium through Playwright) per test session; see jupyter.py."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

# tests/browser/jupyter.py is loaded under a unique name: a plain ``import jupyter`` would
# find jupyter_core's top-level ``jupyter`` module. Test modules ``import emw_browser_jupyter``.
_spec = importlib.util.spec_from_file_location(
    "emw_browser_jupyter", Path(__file__).with_name("jupyter.py")
)
jh = importlib.util.module_from_spec(_spec)
sys.modules["emw_browser_jupyter"] = jh
_spec.loader.exec_module(jh)

ARTIFACTS, JupyterServer = jh.ARTIFACTS, jh.JupyterServer
browser_context, shutdown_kernels = jh.browser_context, jh.shutdown_kernels


@pytest.fixture(scope="session")
def jupyter_server():
    """JupyterLab on 127.0.0.1:<free port> with a token and a temporary root; killed at the end."""
    server = JupyterServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_ctx(tmp_path_factory):
    """A headless Chromium context with a fresh user-data-dir (session-scoped)."""
    with browser_context(tmp_path_factory.mktemp("chromium")) as (ctx, _page):
        yield ctx


@pytest.fixture
def page(browser_ctx, jupyter_server):
    """A fresh browser tab; console errors collected in ``page.emw_console``; kernels of the
    test's notebooks shut down afterwards."""
    pg = browser_ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.emw_console = []
    pg.on("console", lambda m: pg.emw_console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: pg.emw_console.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.close()
        shutdown_kernels(jupyter_server)


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
