"""The ``exprmat-widgets`` command line: demo, replay, history and export.

Exit codes: 0 success, 1 a replay step did not reproduce, 2 bad arguments or a
missing / unreadable file, 3 a file without a history, 4 a history written by
a newer history format.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

EXIT_MISMATCH, EXIT_USAGE, EXIT_NO_HISTORY, EXIT_NEWER = 1, 2, 3, 4


class CliError(Exception):
    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _read(path: str):
    import anndata as ad

    p = Path(path)
    if not p.is_file():
        raise CliError(f"file not found: {path}")
    try:
        return ad.read_h5ad(p)
    except Exception as e:  # h5py / anndata errors on non-h5ad files
        raise CliError(f"cannot read {path} as .h5ad: {e}") from e


def _read_history(path: str):
    """Only the history of an h5ad file (``uns['commands']``), as an AnnData without cells:
    replay needs nothing else of the annotated file, and its ``X`` may be gigabytes."""
    import anndata as ad
    import h5py
    from anndata.io import read_elem

    p = Path(path)
    if not p.is_file():
        raise CliError(f"file not found: {path}")
    try:
        with h5py.File(p, "r") as f:
            uns = f.get("uns")
            commands = read_elem(uns["commands"]) if uns is not None and "commands" in uns else []
    except Exception as e:  # h5py / anndata errors on non-h5ad files or odd elements
        raise CliError(f"cannot read {path} as .h5ad: {e}") from e
    return ad.AnnData(uns={"commands": commands})


def _records(adata, path):
    from .errors import ReplayError
    from .history import FORMAT, get_records

    try:
        records = get_records(adata)
    except ReplayError as e:
        code = EXIT_NEWER if "history format" in str(e) and f"0 to {FORMAT}" in str(e) else EXIT_USAGE
        raise CliError(f"{path}: {e}", code) from None
    if not records:
        raise CliError(
            f"{path} has no command history (adata.uns['commands'] is empty); "
            "it was not annotated with exprmat_widgets.",
            EXIT_NO_HISTORY,
        )
    return records


def cmd_replay(args) -> int:
    from .errors import ReplayError
    from .history import replay

    annotated = _read_history(args.annotated)
    records = _records(annotated, args.annotated)
    start = _read(args.start)

    def on_step(step, record, ok):
        fp = ", ".join(f"{k}={v}" for k, v in record.get("output", {}).items())
        print(f"step {step:>3} {record['command']:<18} {'ok' if ok else 'MISMATCH'}  {fp}")

    from .history.replay import resolve

    try:
        for i, r in enumerate(records):
            resolve(i, r)
    except ReplayError as e:  # a damaged record: nothing was run
        raise CliError(f"{args.annotated}: {e}") from None
    try:
        # in place: the start is not needed afterwards, so no second X is held
        out = replay(start, records, on_step=on_step, copy=False)
    except ReplayError as e:
        print(f"replay failed: {e}", file=sys.stderr)
        return EXIT_MISMATCH
    if args.output:
        out.write_h5ad(args.output)
        print(f"wrote {args.output} ({out.n_obs} cells x {out.n_vars} genes, {len(records)} steps reproduced)")
    else:
        print(f"{len(records)} steps reproduced")
    return 0


def cmd_history(args) -> int:
    from .errors import ReplayError
    from .history import history, history_to_script

    adata = _read(args.annotated)
    _records(adata, args.annotated)
    if args.script:
        try:
            script = history_to_script(adata, start_path=args.start_path, out_path=args.out_path)
        except ReplayError as e:
            raise CliError(f"{args.annotated}: {e}") from None
        print(script, end="")
        return 0
    table = history(adata)
    import json

    for step, row in table.iterrows():
        params = json.dumps(row["params"])
        if len(params) > 160:
            params = params[:157] + "..."
        print(f"{step:>3}  {row['time'] or '':<25} {row['command']:<18} {params}")
    return 0


def cmd_export(args) -> int:
    adata = _read(args.annotated)
    if args.labels not in adata.obs.columns:
        raise CliError(
            f"obs column {args.labels!r} not found in {args.annotated} "
            f"(have: {', '.join(map(str, adata.obs.columns))})."
        )
    col = adata.obs[[args.labels]]
    col.index.name = "cell"
    col.to_csv(args.output)
    print(f"wrote {args.output} ({len(col)} cells, column {args.labels!r})")
    return 0


def cmd_export_cellxgene(args) -> int:
    from .errors import ExprmatError
    from .tl.cellxgene import export_cellxgene

    adata = _read(args.annotated)
    try:
        report = export_cellxgene(adata, args.labels, args.output, unmapped=args.unmapped)
    except ExprmatError as e:
        raise CliError(f"{args.annotated}: {e}") from None
    print(report)
    return 0


def _example_notebook() -> Path:
    here = Path(__file__).parent
    for p in (here / "examples" / "clustering_and_annotation.ipynb",
              here.parent / "examples" / "clustering_and_annotation.ipynb"):
        if p.is_file():
            return p
    raise CliError("the example notebook is not installed (examples/clustering_and_annotation.ipynb).")


def cmd_demo(args) -> int:
    src = _example_notebook()
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    nb = workdir / src.name
    if not nb.exists():
        shutil.copy(src, nb)
    if args.execute:
        import nbformat
        from nbclient import NotebookClient

        book = nbformat.read(nb, as_version=4)
        NotebookClient(book, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
        nbformat.write(book, nb)
        print(f"executed {nb}")
        return 0
    import os

    headless = args.no_browser or not (os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32"))
    cmd = [sys.executable, "-m", "jupyter", "lab", str(nb.name), f"--ServerApp.ip={args.ip}",
           f"--ServerApp.port={args.port}", "--ServerApp.open_browser=False" if headless else "",
           "--ServerApp.allow_root=True", f"--ServerApp.root_dir={workdir}"]
    print(f"opening {nb} in JupyterLab on http://{args.ip}:{args.port} (Ctrl-C to stop)")
    return subprocess.call([c for c in cmd if c], cwd=workdir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exprmat-widgets", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="open the example notebook in JupyterLab")
    d.add_argument("--dir", default="exprmat_demo", help="working directory for the notebook")
    d.add_argument("--ip", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8888)
    d.add_argument("--no-browser", action="store_true", help="do not try to open a browser")
    d.add_argument("--execute", action="store_true", help="run the notebook headless instead of opening it")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("replay", help="replay the history of ANNOTATED onto START")
    r.add_argument("start")
    r.add_argument("annotated")
    r.add_argument("-o", "--output", help="write the replayed data here (.h5ad)")
    r.set_defaults(func=cmd_replay)
    h = sub.add_parser("history", help="print the history as a table or a Python script")
    h.add_argument("annotated")
    h.add_argument("--script", action="store_true")
    h.add_argument("--start-path", default="start.h5ad", help="input file named in the script")
    h.add_argument("--out-path", default="annotated.h5ad", help="output file named in the script")
    h.set_defaults(func=cmd_history)
    e = sub.add_parser("export", help="export a label column as CSV")
    e.add_argument("annotated")
    e.add_argument("--labels", required=True, help="obs column to export")
    e.add_argument("-o", "--output", required=True)
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("export-cellxgene", help="write a CELLxGENE-ready h5ad (cell_type_ontology_term_id) "
                       "and list what the schema still needs")
    c.add_argument("annotated")
    c.add_argument("--labels", required=True, help="label column whose CL terms fill cell_type_ontology_term_id")
    c.add_argument("-o", "--output", required=True, help="the .h5ad to write")
    c.add_argument("--unmapped", choices=["unknown"], default=None,
                   help="write 'unknown' for cells of labels without a term (default: leave them missing)")
    c.set_defaults(func=cmd_export_cellxgene)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"exprmat-widgets {args.cmd}: {e}", file=sys.stderr)
        return e.code
    except Exception as e:  # never a traceback: name the file problem and exit 2
        print(f"exprmat-widgets {args.cmd}: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
