"""The ``codeanatomy`` command line (cyclopts).

Each command lives in its own module and is imported lazily, so ``codeanatomy --help`` stays fast.
Exit codes: 0 success, 1 a gate, step or diagnosis failed, 2 usage error.
"""

from __future__ import annotations

import sys

from cyclopts import App

app = App(
    name="codeanatomy",
    help="Run and diagnose Delta Lake + DataFusion pipelines (CodeAnatomy build).",
    version_flags=["--version"],
)
app.command("codeanatomy_assets.cli.build:build", name="build")
app.command("codeanatomy_assets.cli.doctor:doctor", name="doctor")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    result = app(argv if argv is not None else sys.argv[1:], result_action="return_value")
    code = result if isinstance(result, int) else 0
    sys.exit(code)
