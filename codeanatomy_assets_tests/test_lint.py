"""The lint floor: ruff's rule set and pyright's type check (pyproject.toml) hold on the package."""

from __future__ import annotations

import ast
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


def _lengths() -> tuple[dict[str, int], list[tuple[int, str]]]:
    """(lines per package module, (length, where) per function: def line to last line, docstring included)."""
    modules: dict[str, int] = {}
    functions: list[tuple[int, str]] = []
    for path in sorted((REPO / "codeanatomy_assets").rglob("*.py")):
        source = path.read_text()
        where = str(path.relative_to(REPO))
        modules[where] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                functions.append((node.end_lineno - node.lineno + 1, f"{where}:{node.lineno} {node.name}"))
    return modules, functions


def test_modules_and_functions_stay_short() -> None:
    """No module over 600 lines, no function over 60, and 90% of the functions at most 20 lines long."""
    modules, functions = _lengths()
    assert not {m: n for m, n in modules.items() if n > 600}
    assert not [f for f in functions if f[0] > 60]
    lengths = sorted(length for length, _ in functions)
    p90 = lengths[int(0.9 * (len(lengths) - 1))]
    assert p90 <= 20, f"p90 {p90}; longest: {sorted(functions, reverse=True)[:15]}"
