"""Running the ``codeanatomy`` command line as a user does: a subprocess of this interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``codeanatomy ARGS...`` run in ``cwd``; its exit code, stdout and stderr (never raises on a failure)."""
    return subprocess.run(
        [sys.executable, "-m", "codeanatomy_assets.cli.app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
