"""The entry point: a table's layout read from its log."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

import pyarrow.fs as pafs

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.layout.figures import (
    compactable,
    deletion_vectors,
    file_fields,
    log_fields,
    partition_fields,
    stats_fields,
    tombstone_fields,
)
from codeanatomy_assets.delta.layout.findings import all_findings, finding
from codeanatomy_assets.delta.layout.records import (
    LayoutFindingCode,
    LayoutThresholds,
    TableLayout,
)
from codeanatomy_assets.delta.layout.replay import Replayer, list_log_files
from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.delta.storage import open_filesystem
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_text

# ----------------------------------------------------------------------------------------------------
# The entry point


def read_table_layout(
    uri: str,
    storage_options: Mapping[str, str] | None = None,
    *,
    health: LogHealth | None = None,
    thresholds: LayoutThresholds | None = None,
    now_ms: int | None = None,
) -> TableLayout:
    """The layout of the table at ``uri`` (its latest version), replayed from its log. Never raises on a
    damaged table: what could not be read is a ``layout_incomplete`` finding."""
    health = health if health is not None else read_log_health(uri, storage_options)
    if health.latest_version is None:
        return _incomplete(health, "the log holds no readable version")
    try:
        fs, root = open_filesystem(uri, storage_options)
        replayer = Replayer(fs, f"{root}/_delta_log", list_log_files(fs, f"{root}/_delta_log"))
        replayer.run(health)
    except Exception as exc:  # noqa: BLE001 - an unreachable store is a diagnosis, not a crash
        return _incomplete(health, exception_text(exc))
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return _assemble(health, fs, root, replayer, thresholds or LayoutThresholds(), now)


def _incomplete(health: LogHealth, reason: str) -> TableLayout:
    incomplete = finding(
        LayoutFindingCode.LAYOUT_INCOMPLETE,
        Severity.WARN,
        f"layout not measured: {reason}",
        "fix the log first (see the delta_log findings)",
    )
    return TableLayout(version=health.latest_version, findings=(incomplete,))


def _assemble(  # noqa: PLR0917 - one call site; each argument a different noun
    health: LogHealth,
    fs: pafs.FileSystem,
    root: str,
    replayer: Replayer,
    thresholds: LayoutThresholds,
    now_ms: int,
) -> TableLayout:
    replay = replayer.replay
    adds = list(replay.adds.values())
    layout = TableLayout(
        version=health.latest_version,
        partition_columns=tuple(health.partition_columns),
        **file_fields(adds, thresholds),
        **stats_fields(adds, replay.metadata),
        **partition_fields(adds) if health.partition_columns else {},
        **tombstone_fields(
            fs,
            root,
            removes=replay.removes,
            configuration=health.configuration,
            thresholds=thresholds,
            now_ms=now_ms,
        ),
        **log_fields(replayer.log_files, health, now_ms),
        files_with_deletion_vectors=deletion_vectors(adds)[0],
        rows_deleted_by_deletion_vectors=deletion_vectors(adds)[1],
        crc_checked=replayer.crc_checked,
    )
    problems = replay.problems
    found = all_findings(layout, thresholds, compactable(adds, thresholds.small_file_bytes), problems)
    ordered = sorted([*found, *replayer.crc_findings], key=lambda f: -f.severity.rank)
    return replace(layout, findings=tuple(ordered))
