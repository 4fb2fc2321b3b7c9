"""The lint floor: ruff's rule set and pyright's type check (pyproject.toml) hold on the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_check_and_format_are_clean() -> None:
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "codeanatomy_assets", "codeanatomy_assets_tests"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_pyright_reports_no_error() -> None:
    """pyright ([tool.pyright]: standard mode, strict where a module is listed) finds no error.

    The test extra installs pyright with node as a wheel (``pyright[nodejs]``): nothing is downloaded.
    """
    proc = subprocess.run(
        # --outputjson also keeps the wrapper from asking PyPI whether a newer pyright exists.
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # 0: no error, 1: errors (listed below); anything else is pyright itself failing (configuration, node).
    assert proc.returncode in (0, 1), (
        f"pyright exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    )
    report = json.loads(proc.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    shown = [
        f"{d['file'].removeprefix(f'{REPO}/')}:{d['range']['start']['line'] + 1}: {d['message']}"
        f" ({d.get('rule', '')})"
        for d in errors
    ]
    assert not shown, f"{len(shown)} pyright error(s):\n" + "\n".join(shown[:60])
    package_files = len(list((REPO / "codeanatomy_assets").rglob("*.py")))
    assert report["summary"]["filesAnalyzed"] >= package_files, report["summary"]
