"""The cost of reading a Delta log versus its history: the project's log-health reader and ``DeltaTable``.

Tables of 10, 100, 1,000 and 10,000 commits are built fast: one real ``write_deltalake`` (protocol,
metadata, one small Parquet file), then commit files written directly into ``_delta_log``, each a
``commitInfo`` and an ``add`` of that same file (re-adding a path replaces it: one live file whatever the
history, so only the log grows). Two shapes per size:

- ``no_checkpoint``: every commit must be replayed (commits since the checkpoint = the history);
- ``checkpoint``: a checkpoint ``tail`` commits before the latest (deltalake's ``create_checkpoint``),
  so replay covers ``tail`` commits whatever the history.

Timed per table (median of ``repeats``, interleaved): :func:`~codeanatomy_assets.delta.log.read_log_health`
and ``DeltaTable(uri)`` (open: log replay, no data read). A reader whose cost follows commits since the
checkpoint is flat across the ``checkpoint`` rows; one that lists or parses the whole log is not.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.bench.harness import interleave, median, ratio, rounded
from codeanatomy_assets.delta.log import read_log_health

SHAPES: Final = ("no_checkpoint", "checkpoint")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogHealthSettings:
    """Sizes (total commits) and repetitions."""

    commits: tuple[int, ...] = (10, 100, 1_000, 10_000)
    tail: int = 5
    """Commits after the checkpoint in the ``checkpoint`` shape."""
    repeats: int = 7

    @classmethod
    def quick(cls) -> LogHealthSettings:
        """Up to 1,000 commits."""
        return cls(commits=(10, 100, 1_000))

    @classmethod
    def tiny(cls) -> LogHealthSettings:
        """For tests."""
        return cls(commits=(10, 30), tail=3, repeats=2)


def _commit_line(add: dict[str, Any], version: int) -> str:
    info = {
        "commitInfo": {
            "timestamp": 1_700_000_000_000 + version,
            "operation": "WRITE",
            "operationParameters": {"mode": "Append"},
        }
    }
    add["add"]["modificationTime"] = 1_700_000_000_000 + version
    return json.dumps(info) + "\n" + json.dumps(add) + "\n"


def build_history(root: Path, commits: int, *, checkpoint_at: int | None = None) -> Path:
    """A Delta table at ``root`` with versions ``0 .. commits - 1``; optionally a checkpoint at one."""
    if commits < 1:
        raise ValueError(f"a table has at least one commit, got {commits}")
    shutil.rmtree(root, ignore_errors=True)
    write_deltalake(str(root), pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    log = root / "_delta_log"
    first = (log / f"{0:020d}.json").read_text("utf-8").splitlines()
    add = next(json.loads(line) for line in first if line.startswith('{"add"'))
    if checkpoint_at == 0:
        DeltaTable(str(root)).create_checkpoint()
    for version in range(1, commits):
        (log / f"{version:020d}.json").write_text(_commit_line(add, version), encoding="utf-8")
        if checkpoint_at == version:
            DeltaTable(str(root)).create_checkpoint()
    return root


def _table_for(work_dir: Path, commits: int, shape: str, tail: int) -> Path:
    checkpoint_at = max(0, commits - 1 - tail) if shape == "checkpoint" else None
    return build_history(work_dir / f"log-{commits}-{shape}", commits, checkpoint_at=checkpoint_at)


def _measure_table(root: Path, commits: int, shape: str, repeats: int) -> dict[str, Any]:
    uri = str(root)
    health = read_log_health(uri)
    samples = interleave(
        {"log_health": lambda: read_log_health(uri), "deltalake_open": lambda: DeltaTable(uri)}, repeats
    )
    log_files = sum(1 for _ in (root / "_delta_log").iterdir())
    return {
        "commits": commits,
        "shape": shape,
        "latest_version": health.latest_version,
        "checkpoint_version": health.last_checkpoint_version,
        "commits_since_checkpoint": health.commits_since_checkpoint,
        "log_files": log_files,
        "live_files": health.live_files,
        "findings": sorted({f.code.value for f in health.findings}),
        "log_health_ms_median": rounded(median(samples["log_health"]) * 1000),
        "deltalake_open_ms_median": rounded(median(samples["deltalake_open"]) * 1000),
    }


def _growth(rows: Sequence[dict[str, Any]], shape: str, key: str) -> float | None:
    """Time at the largest history over time at the smallest, for one shape."""
    chosen = sorted((r for r in rows if r["shape"] == shape), key=lambda r: r["commits"])
    if len(chosen) < 2:
        return None
    return rounded(ratio(chosen[-1][key], chosen[0][key]), 2)


def measure_log_health(work_dir: Path, settings: LogHealthSettings) -> dict[str, Any]:
    """Build the tables under ``work_dir`` and time both readers on each (medians, ms)."""
    rows = []
    for commits in settings.commits:
        for shape in SHAPES:
            root = _table_for(work_dir, commits, shape, settings.tail)
            rows.append(_measure_table(root, commits, shape, settings.repeats))
            shutil.rmtree(root, ignore_errors=True)
    growth = {
        f"{reader}_{shape}": _growth(rows, shape, f"{reader}_ms_median")
        for reader in ("log_health", "deltalake_open")
        for shape in SHAPES
    }
    return {
        "commits": list(settings.commits),
        "checkpoint_tail": settings.tail,
        "repeats": settings.repeats,
        "results": rows,
        "growth_largest_over_smallest": growth,
        "flat_in_history": _is_flat(growth["log_health_checkpoint"]),
    }


FLAT_LIMIT: Final = 1.5
"""Checkpointed read time at the largest history at most this times the smallest counts as flat."""


def _is_flat(growth: float | None) -> bool | None:
    return None if growth is None else growth <= FLAT_LIMIT
