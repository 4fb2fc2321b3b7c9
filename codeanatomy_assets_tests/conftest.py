"""Shared fixtures. Test modules keep their own small fixtures local; only cross-cutting ones live here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CODEANATOMY_DELTA_CORPUS", REPO_ROOT.parent / "shared" / "delta-corpus"))


@pytest.fixture(scope="session")
def delta_corpus() -> Path:
    """The read-only corpus of real Delta tables (copy before damaging)."""
    if not CORPUS.is_dir():
        pytest.skip(f"delta corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests from exporting telemetry or writing to a real home by accident."""
    for key in list(os.environ):
        if key.startswith("OTEL_") or key in {"CODEANATOMY_HOME", "DAGSTER_HOME"}:
            monkeypatch.delenv(key, raising=False)
