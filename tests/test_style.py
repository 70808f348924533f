"""The repository passes ``ruff check`` with the rules of ``pyproject.toml``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_ruff_check_passes():
    res = _ruff()
    assert res.returncode == 0, f"ruff check failed:\n{res.stdout}\n{res.stderr}"


def test_ruff_config_selects_more_than_errors(tmp_path):
    # guards the check above: the project's rules must catch unsorted imports (I),
    # a mutable default (B) and a loop-variable closure (B023)
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sys\nimport os\n\n\n"
        "def f(x=[]):\n"
        "    fns = []\n"
        "    for i in range(3):\n"
        "        fns.append(lambda: i)\n"
        "    return x, fns, os, sys\n"
    )
    res = _ruff("--config", str(ROOT / "pyproject.toml"), str(bad))
    assert res.returncode == 1, res.stdout + res.stderr
    for code in ("I001", "B006", "B023"):
        assert code in res.stdout, f"{code} not reported:\n{res.stdout}"
