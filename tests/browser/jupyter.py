"""Real-browser test helpers: a local Jupyter server, headless Debian Chromium via
Playwright, and a kernel client attached to the notebook's own kernel.

Used by ``tests/browser/conftest.py`` and ``benchmarks/widget.py``::

    with JupyterServer(root) as server, browser_context(tmp) as (browser, page):
        write_notebook(root / "t.ipynb", ["from x import y", "w = y(); w"])
        open_notebook(page, server, "t.ipynb")          # JupyterLab 4, runs all cells
        kc = server.kernel_for("t.ipynb")               # jupyter_client on the same kernel
        kc.eval("len(w.selection)")                     # -> 0

Nothing here touches the network beyond 127.0.0.1: the server runs with a token, a
temporary root, runtime, settings and workspace directories, no news, no update check and
the read-only extension manager (no PyPI lookups); Chromium is ``/usr/bin/chromium``
(never a downloaded browser) with background networking off.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """JupyterLab (+ Notebook 7 pages, same server) on 127.0.0.1 with a token."""

    def __init__(self, root: Path | None = None, startup_timeout: float = 90.0):
        self._tmp = tempfile.TemporaryDirectory(prefix="emw-jupyter-")
        base = Path(self._tmp.name)
        self.root = Path(root) if root is not None else base / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.runtime_dir = base / "runtime"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._kernel_clients: dict = {}
        env = dict(os.environ)
        env.update(
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            JUPYTER_CONFIG_DIR=str(base / "config"),
            JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
        )
        self.env = env
        # no "official Jupyter news?" toast and no update check in the page either
        notif = base / "lab-settings" / "@jupyterlab" / "apputils-extension"
        notif.mkdir(parents=True, exist_ok=True)
        (notif / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )

    # -------------------------------------------------------------- lifecycle
    def start(self) -> JupyterServer:
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            "--ServerApp.disable_check_xsrf=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--LanguageServerManager.autodetect=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open for the server's lifetime)
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited early:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter server did not start in {self.startup_timeout}s:\n{self.log()}")

    def stop(self) -> None:
        for kc in self._kernel_clients.values():
            with contextlib.suppress(Exception):
                kc.stop_channels()
        self._kernel_clients.clear()
        if self.proc is not None and self.proc.poll() is None:
            # the server and its kernels live in their own process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    # -------------------------------------------------------------- REST
    def api(self, method: str, path: str, body=None):
        req = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def page_url(self, path: str, ui: str = "lab") -> str:
        if ui == "lab":
            return f"{self.url}/lab/tree/{path}?reset&token={self.token}"
        if ui == "notebook":
            return f"{self.url}/notebooks/{path}?token={self.token}"
        if ui == "tree":
            return f"{self.url}/tree?token={self.token}"
        raise ValueError(ui)

    def kernel_id_for(self, path: str, timeout: float = 60.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for s in self.api("GET", "/api/sessions") or []:
                if s.get("path") == path and s.get("kernel"):
                    return s["kernel"]["id"]
            time.sleep(0.3)
        raise RuntimeError(f"no kernel session for {path}")

    def kernel_for(self, path: str, timeout: float = 60.0) -> KernelHandle:
        """A jupyter_client attached to the kernel of the notebook at ``path``."""
        kid = self.kernel_id_for(path, timeout)
        if kid not in self._kernel_clients:
            from jupyter_client import BlockingKernelClient

            cf = self.runtime_dir / f"kernel-{kid}.json"
            deadline = time.time() + timeout
            while not cf.exists() and time.time() < deadline:
                time.sleep(0.2)
            kc = BlockingKernelClient()
            kc.load_connection_file(str(cf))
            kc.start_channels()
            kc.wait_for_ready(timeout=timeout)
            self._kernel_clients[kid] = kc
        return KernelHandle(self._kernel_clients[kid])


class KernelError(RuntimeError):
    pass


class KernelHandle:
    """Run code in a notebook's kernel (shared namespace with the notebook's cells)."""

    def __init__(self, kc):
        self.kc = kc

    def run(self, code: str, timeout: float = 120.0) -> str:
        """Execute ``code``; return its stdout; raise KernelError on an exception."""
        out: list[str] = []
        err: list[str] = []

        def hook(msg):
            t = msg["header"]["msg_type"]
            c = msg["content"]
            if t == "stream" and c.get("name") == "stdout":
                out.append(c["text"])
            elif t == "error":
                err.append("\n".join(c.get("traceback", [])) or c.get("evalue", ""))

        reply = self.kc.execute_interactive(
            code, timeout=timeout, output_hook=hook, store_history=False, allow_stdin=False
        )
        if err or reply["content"].get("status") != "ok":
            raise KernelError("".join(err) or str(reply["content"]))
        return "".join(out)

    def eval(self, expr: str, timeout: float = 120.0):
        """The JSON value of a Python expression evaluated in the kernel."""
        marker = "@@EMW@@"
        text = self.run(
            f"import json as _j\nprint({marker!r} + _j.dumps({expr}))", timeout=timeout
        )
        line = [ln for ln in text.splitlines() if ln.startswith(marker)][-1]
        return json.loads(line[len(marker):])

    def wait_for(self, expr: str, timeout: float = 30.0, interval: float = 0.2):
        """Poll ``expr`` in the kernel until it is truthy; return its value."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"kernel expression stayed falsy for {timeout}s: {expr} -> {value!r}")


# ------------------------------------------------------------------ notebooks
def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def browser_context(tmp_dir: Path | None = None, viewport=(1280, 1000)):
    """Playwright (sync API) on Debian's chromium with a fresh user-data-dir; yields (context, page)."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="emw-chromium-", dir=tmp_dir) as udd,
        sync_playwright() as p,
    ):
        ctx = p.chromium.launch_persistent_context(
            udd,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(60_000)
            yield ctx, page
        finally:
            ctx.close()


def open_notebook(page, server: JupyterServer, path: str, ui: str = "lab", run_all: bool = True,
                  timeout: float = 120.0) -> None:
    """Open ``path`` in JupyterLab (``ui='lab'``) or Notebook 7 (``ui='notebook'``), wait for the
    kernel, and run all cells (through the app's command registry)."""
    page.goto(server.page_url(path, ui))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout * 1000
    )
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout * 1000)
    # wait until the notebook's kernel is connected and idle
    page.wait_for_function(
        """(path) => {
            const app = window.jupyterapp;
            const w = app.shell.currentWidget;
            const ctx = w && w.sessionContext;
            const k = ctx && ctx.session && ctx.session.kernel;
            return !!(k && k.connectionStatus === 'connected' && k.status === 'idle');
        }""",
        arg=path,
        timeout=timeout * 1000,
    )
    if run_all:
        run_all_cells(page, timeout=timeout)


def set_theme(page, dark: bool) -> None:
    """Switch JupyterLab to its dark (or light) theme and wait until the page has it."""
    theme = "JupyterLab Dark" if dark else "JupyterLab Light"
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.wait_for_function("(d) => document.body.dataset.jpThemeLight === (d ? 'false' : 'true')", arg=dark)
    page.wait_for_timeout(500)  # the theme's CSS variables reach the widgets' styles


def open_annotator_notebook(page, server: JupyterServer, root, cells: list[str], *, width: int = 1400,
                            dark: bool = False, embedded: bool = True) -> KernelHandle:
    """Write ``cells`` as a notebook, open it in JupyterLab at ``width`` px (1700 px tall, file
    browser folded), run it and wait until the Annotator's scatter is drawn and its cluster
    list filled (``embedded=False``: data without an embedding yet, until the scatter shows
    its empty state); switch to the dark theme when ``dark``.  Returns the notebook's kernel.

    ``root``: where the notebook goes, under ``server.root``: a notebook path (``'x.ipynb'``,
    relative or absolute) or a folder (the notebook is then ``annotator.ipynb`` in it).
    The kernel must import the package under test (run pytest with ``PYTHONPATH=<checkout>``):
    checked here.  Page errors are collected in ``page.emw_errors``."""
    import exprmat_widgets

    path = Path(root)
    if not path.is_absolute():
        path = server.root / path
    if path.suffix != ".ipynb":
        path = path / "annotator.ipynb"
    rel = path.resolve().relative_to(server.root.resolve()).as_posix()
    write_notebook(path, cells)
    if not hasattr(page, "emw_errors"):
        page.emw_errors = []
        page.on("pageerror", lambda e: page.emw_errors.append(str(e)))
    page.set_viewport_size({"width": int(width), "height": 1700})
    page.set_default_timeout(60_000)
    open_notebook(page, server, rel)
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    if embedded:
        page.wait_for_selector('.emw-scatter[data-drawn="true"]', timeout=90_000)
        page.wait_for_selector(".em-annotator .em-cluster-row")
    else:
        page.wait_for_selector('.emw-scatter[data-empty="true"]', timeout=90_000)
    kernel = server.kernel_for(rel)
    where = kernel.eval("__import__('exprmat_widgets').__file__")
    if where != exprmat_widgets.__file__:
        raise RuntimeError(f"the notebook's kernel imports {where}, not {exprmat_widgets.__file__}: "
                           "run pytest with PYTHONPATH=<this checkout>.")
    if dark:
        set_theme(page, True)
    return kernel


def run_all_cells(page, timeout: float = 120.0) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # every code cell gets an execution count when it has run
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return k && k.status === 'idle' && prompts.length > 0 &&
                   prompts.every((p) => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout * 1000,
    )


def drag_path(page, points, steps: int = 4, box=None) -> None:
    """Press the left button at ``points[0]``, move through the points with real mouse moves
    (``steps`` intermediate moves per segment) and release at the last point. ``box``: a
    bounding box dict (x, y) added to every point (points relative to an element)."""
    ox, oy = (box["x"], box["y"]) if box else (0.0, 0.0)
    x0, y0 = points[0]
    page.mouse.move(ox + x0, oy + y0)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(ox + x, oy + y, steps=steps)
    page.mouse.up()


def lasso_around(page, kernel, members: str, radius: float = 40.0, scatter: str = "ann.scatter") -> None:
    """Draw a lasso (real mouse drag, a 14-gon of ``radius`` px) on the Annotator's scatter
    around the median screen position of the cells ``members`` (a kernel expression giving
    their int positions), wait until the kernel has the selection, and go back to pan."""
    import math

    import numpy as np

    page.click('.emw-scatter button[data-mode="lasso"]')
    kernel.wait_for(f"{scatter}.mode == 'lasso'")
    screen = np.asarray(page.eval_on_selector(
        ".emw-scatter canvas",
        """(c) => { const sp = c.__emw.scatterplot, n = c.__emw.model.get('_n'), out = [];
                    for (let i = 0; i < n; i++) out.push(sp.getScreenPosition(i)); return out; }""",
    ), dtype=float)
    idx = np.asarray(kernel.eval(f"[int(i) for i in {members}]"), dtype=int)
    cx, cy = np.median(screen[idx], axis=0)
    box = page.locator(".emw-scatter canvas").first.bounding_box()
    poly = [(cx + radius * math.cos(t), cy + radius * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 14, endpoint=False)]
    drag_path(page, poly + [poly[0]], steps=4, box=box)
    kernel.wait_for(f"int({scatter}.selection.size) > 2", timeout=30)
    page.click('.emw-scatter button[data-mode="pan"]')


def click_and_wait(page, kernel, sel: str, text: str | None = None, timeout: float = 180,
                   shot: str = "click_timeout.png", root: str = ".em-annotator") -> None:
    """Click the Annotator's button ``sel`` (the first whose text matches the regular
    expression ``text``, when given) with the mouse and wait until its action is done: the
    Annotator idle with a new status line or a new history record, the page's busy mark
    gone and no error (``ann.last_error``).  On a time-out the page is saved as ``shot``."""
    import re

    kernel.run("_before = (ann.status_text, len(adata.uns.get('commands', [])))")
    loc = page.locator(f"{root} {sel}")
    if text is not None:
        loc = loc.filter(has_text=re.compile(text))
    loc.first.click()
    try:
        kernel.wait_for("not ann.busy and (ann.status_text, len(adata.uns.get('commands', []))) != _before",
                        timeout=timeout)
    except TimeoutError:
        screenshot(page, shot)
        raise AssertionError(f"{sel}: still {kernel.eval('ann.status_text')!r}") from None
    page.wait_for_function("() => !document.querySelector('.em-status .em-status-busy')", timeout=30_000)
    err = kernel.eval("ann.last_error")
    assert err is None, err


def analysis_tab(page, title: str, root: str = ".em-annotator") -> None:
    """Click the Annotator's analysis tab named ``title`` (Preprocess, Embed, Cluster, ...)."""
    import re

    page.locator(f"{root} .em-analysis-panel .lm-TabBar-tab").filter(
        has_text=re.compile(f"^{re.escape(title)}$")).first.click()


def shutdown_kernels(server: JupyterServer) -> None:
    """Delete every session (and its kernel) on the server."""
    for s in server.api("GET", "/api/sessions") or []:
        with contextlib.suppress(Exception):
            server.api("DELETE", f"/api/sessions/{s['id']}")


def cell_errors(page) -> list[str]:
    """Texts of error outputs shown in the notebook."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent)",
    )


def text_of(page, selector: str) -> str:
    """The stripped text of the first element matching ``selector``."""
    return page.locator(selector).first.text_content().strip()


def wait_text(page, selector: str, pattern: str, timeout: float = 60_000) -> None:
    """Wait until the first element matching ``selector`` has a text matching the regular
    expression ``pattern`` (JavaScript syntax; ``timeout`` in ms)."""
    page.wait_for_function(
        "([s, p]) => { const e = document.querySelector(s); return e && new RegExp(p).test(e.textContent.trim()); }",
        arg=[selector, pattern], timeout=timeout,
    )


def screenshot(page_or_locator, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page_or_locator.screenshot(path=str(path))
    return path


def non_background_fraction(png_path: Path, background=(255, 255, 255), tol: int = 12) -> float:
    """Fraction of pixels that differ from the background colour (has anything been drawn?)."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png_path).convert("RGB"), dtype=np.int16)
    diff = np.abs(img - np.array(background, dtype=np.int16)).max(axis=2)
    return float((diff > tol).mean())
