"""Shared fixtures. Test modules keep their own small fixtures local; only cross-cutting ones live here."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CODEANATOMY_DELTA_CORPUS", REPO_ROOT.parent / "shared" / "delta-corpus"))


@pytest.fixture(scope="session")
def delta_corpus() -> Path:
    """The read-only corpus of real Delta tables (copy before damaging)."""
    if not CORPUS.is_dir():
        pytest.skip(f"delta corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Delta table of 1.1M rows (ids, 4,096 counties, 1,024 distinct case counts), read, never written,
    by the memory-limit and cancellation tests."""
    ids = pa.array(range(1_100_000), pa.int64())
    county = pc.binary_join_element_wise("county_", pc.cast(pc.bit_wise_and(ids, 4095), pa.string()), "")
    uri = str(tmp_path_factory.mktemp("corpus") / "big")
    write_deltalake(uri, pa.table({"id": ids, "county": county, "cases": pc.bit_wise_and(ids, 1023)}))
    return uri


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests from exporting telemetry or lineage, or writing to a real home, by accident."""
    for key in list(os.environ):
        if key.startswith(("OTEL_", "OPENLINEAGE")) or key in {"CODEANATOMY_HOME", "DAGSTER_HOME"}:
            monkeypatch.delenv(key, raising=False)
