"""The layout figures computed from live add actions and tombstones (pure functions)."""

from __future__ import annotations

import json
import statistics
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.layout.records import (
    DEFAULT_DELETED_FILE_RETENTION_S,
    DEFAULT_LOG_RETENTION_S,
    DURATION_UNITS,
    SIZE_BUCKETS,
    ColumnStats,
    LayoutThresholds,
    as_int,
    version_count,
)
from codeanatomy_assets.delta.layout.replay import LogFile

# ----------------------------------------------------------------------------------------------------
# The figures


def histogram(sizes: Sequence[int]) -> dict[str, int]:
    counts = dict.fromkeys((label for label, _ in SIZE_BUCKETS), 0)
    for size in sizes:
        label = next(label for label, bound in SIZE_BUCKETS if bound is None or size < bound)
        counts[label] += 1
    return counts


def _parse_stats(add: Mapping[str, Any]) -> dict[str, Any] | None:
    """The add action's statistics (JSON ``stats``, or a checkpoint's ``stats_parsed``); else ``None``."""
    stats = add.get("stats")
    if isinstance(stats, str) and stats.strip():
        try:
            parsed = json.loads(stats)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    parsed = add.get("stats_parsed")
    return parsed if isinstance(parsed, dict) else None


def _leaf_paths(values: object, prefix: str = "") -> set[str]:
    """Dotted paths of the leaves of a nested stats dict (``minValues`` → ``{"a", "s.b"}``)."""
    if not isinstance(values, dict):
        return set()
    paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths |= _leaf_paths(value, f"{path}.") if isinstance(value, dict) else {path}
    return paths


def schema_columns(metadata: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(logical dotted path, physical dotted path) of every leaf column that is not a partition column."""
    if metadata is None:
        return []
    try:
        schema = json.loads(metadata.get("schemaString") or "{}")
    except ValueError:
        return []
    partitions = set(metadata.get("partitionColumns") or ())
    leaves = _schema_leaves(schema.get("fields") or [], "", "")
    return [(logical, physical) for logical, physical in leaves if logical not in partitions]


def _schema_leaves(fields: Iterable[Any], logical: str, physical: str) -> list[tuple[str, str]]:
    leaves: list[tuple[str, str]] = []
    for item in fields:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        meta = item.get("metadata") or {}
        physical_name = meta.get("delta.columnMapping.physicalName", item["name"])
        names = (f"{logical}{item['name']}", f"{physical}{physical_name}")
        kind = item.get("type")
        if isinstance(kind, dict) and kind.get("type") == "struct":
            leaves.extend(_schema_leaves(kind.get("fields") or [], f"{names[0]}.", f"{names[1]}."))
        else:
            leaves.append(names)
    return leaves


def column_stats(
    adds: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> tuple[int, int | None, tuple[ColumnStats, ...]]:
    """(files with statistics, total rows when every file has a count, per-column coverage)."""
    with_min_max = dict.fromkeys((p for _, p in columns), 0)
    with_nulls = dict.fromkeys((p for _, p in columns), 0)
    files_with_stats, rows, rows_known = 0, 0, True
    for add in adds:
        stats = _parse_stats(add)
        count = as_int(stats.get("numRecords")) if stats else None
        if stats is None or count is None:
            rows_known = False
            continue
        files_with_stats, rows = files_with_stats + 1, rows + count
        bounded = _leaf_paths(stats.get("minValues")) & _leaf_paths(stats.get("maxValues"))
        nulls = _leaf_paths(stats.get("nullCount"))
        for physical in with_min_max:
            with_min_max[physical] += physical in bounded
            with_nulls[physical] += physical in nulls
    coverage = tuple(ColumnStats(logical, with_min_max[p], with_nulls[p]) for logical, p in columns)
    return files_with_stats, (rows if rows_known else None), coverage


def partition_figures(adds: Iterable[Mapping[str, Any]]) -> tuple[int, int, float, int, float]:
    """(partitions, largest bytes, median bytes, largest files, median files) of a partitioned table."""
    by_bytes: dict[tuple[tuple[str, Any], ...], int] = {}
    by_files: dict[tuple[tuple[str, Any], ...], int] = {}
    for add in adds:
        key = tuple(sorted((add.get("partitionValues") or {}).items()))
        by_bytes[key] = by_bytes.get(key, 0) + (as_int(add.get("size")) or 0)
        by_files[key] = by_files.get(key, 0) + 1
    if not by_bytes:
        return 0, 0, 0.0, 0, 0.0
    bytes_, files = list(by_bytes.values()), list(by_files.values())
    return (
        len(bytes_),
        max(bytes_),
        float(statistics.median(bytes_)),
        max(files),
        float(statistics.median(files)),
    )


def parse_duration_s(text: object, default: float) -> float:
    """A Delta ``interval`` property (``interval 1 week``, ``interval 36 hours``) in seconds.

    >>> parse_duration_s("interval 2 days", 0), parse_duration_s("interval 36 hours", 0)
    (172800.0, 129600.0)
    >>> parse_duration_s(None, 5.0), parse_duration_s("soon", 5.0)
    (5.0, 5.0)
    """
    if not isinstance(text, str):
        return default
    words = text.lower().replace("interval", " ").split()
    if len(words) != 2:
        return default
    try:
        amount = float(words[0])
    except ValueError:
        return default
    unit = DURATION_UNITS.get(words[1].rstrip("s"))
    return amount * unit if unit is not None else default


def _data_path(root: str, path: str) -> str | None:
    """Where a relative (percent-encoded) action path lives under ``root``; ``None`` for absolute URIs."""
    if "://" in path:
        return None
    return f"{root}/{urllib.parse.unquote(path)}"


@dataclass(frozen=True, slots=True)
class Tombstones:
    count: int
    bytes: int
    present: int | None
    present_bytes: int | None
    past_retention: int
    oldest_ms: int | None


def tombstone_figures(
    fs: pafs.FileSystem,
    root: str,
    removes: Mapping[str, Mapping[str, Any]],
    *,
    limit: int,
    retention_s: float,
    now_ms: int,
) -> Tombstones:
    stamps = [t for r in removes.values() if (t := as_int(r.get("deletionTimestamp"))) is not None]
    sizes = {path: as_int(r.get("size")) or 0 for path, r in removes.items()}
    locations = {path: loc for path in list(removes)[:limit] if (loc := _data_path(root, path)) is not None}
    present, present_bytes, past = None, None, 0
    if len(locations) == len(removes):
        infos = fs.get_file_info(list(locations.values())) if locations else []
        on_disk = [p for p, info in zip(locations, infos, strict=True) if info.type != pafs.FileType.NotFound]
        present, present_bytes = len(on_disk), sum(sizes[p] for p in on_disk)
        cutoff = now_ms - retention_s * 1000
        past = sum(1 for p in on_disk if (as_int(removes[p].get("deletionTimestamp")) or now_ms) < cutoff)
    return Tombstones(
        len(removes), sum(sizes.values()), present, present_bytes, past, min(stamps, default=None)
    )


def deletion_vectors(adds: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(files carrying a deletion vector, rows those vectors delete)."""
    files = rows = 0
    for add in adds:
        dv = add.get("deletionVector")
        if isinstance(dv, dict):
            files += 1
            rows += as_int(dv.get("cardinality")) or 0
    return files, rows


def log_figures(
    log_files: Mapping[str, LogFile], health: LogHealth, *, retention_s: float, now_ms: int
) -> tuple[int, int, int]:
    """(JSON bytes since the checkpoint, expired commits, total ``_delta_log`` bytes)."""
    checkpoint = health.checkpoint.version if health.checkpoint is not None else None
    cutoff = now_ms - retention_s * 1000
    since = expired = 0
    for name, info in log_files.items():
        if not (name.endswith(".json") and name[:20].isdigit() and len(name) == 25):
            continue
        version = int(name[:20])
        if checkpoint is None or version > checkpoint:
            since += info.size
        elif version < checkpoint and info.mtime_ms is not None and info.mtime_ms < cutoff:
            expired += 1
    return since, expired, sum(f.size for f in log_files.values())


def compactable(adds: Iterable[Mapping[str, Any]], small_bytes: int) -> int:
    """Small files that share a partition with another small file (what compaction can merge)."""
    per_partition: dict[tuple[tuple[str, Any], ...], int] = {}
    for add in adds:
        if (as_int(add.get("size")) or 0) < small_bytes:
            key = tuple(sorted((add.get("partitionValues") or {}).items()))
            per_partition[key] = per_partition.get(key, 0) + 1
    return sum(n for n in per_partition.values() if n >= 2)


# ----------------------------------------------------------------------------------------------------
# Figures grouped as TableLayout fields


def file_fields(adds: Sequence[Mapping[str, Any]], thresholds: LayoutThresholds) -> dict[str, Any]:
    """File count, bytes, size histogram and small files."""
    sizes = [as_int(a.get("size")) or 0 for a in adds]
    small = sum(1 for s in sizes if s < thresholds.small_file_bytes)
    return {
        "file_count": len(adds),
        "total_bytes": sum(sizes),
        "size_histogram": histogram(sizes),
        "small_file_threshold_bytes": thresholds.small_file_bytes,
        "small_files": small,
        "small_file_share": round(small / len(adds), 4) if adds else 0.0,
    }


def stats_fields(adds: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Files with statistics, total rows and per-column coverage."""
    files, rows, coverage = column_stats(adds, schema_columns(metadata))
    return {"files_with_stats": files, "total_rows": rows, "column_stats": coverage}


def partition_fields(adds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Partition count and the largest and median partitions by bytes and by files."""
    count, largest_bytes, median_bytes, largest_files, median_files = partition_figures(adds)
    return {
        "partition_count": count,
        "largest_partition_bytes": largest_bytes,
        "median_partition_bytes": median_bytes,
        "largest_partition_files": largest_files,
        "median_partition_files": median_files,
    }


def tombstone_fields(
    fs: pafs.FileSystem,
    root: str,
    *,
    removes: Mapping[str, Mapping[str, Any]],
    configuration: Mapping[str, str],
    thresholds: LayoutThresholds,
    now_ms: int,
) -> dict[str, Any]:
    """Tombstones, those still on storage and those past ``delta.deletedFileRetentionDuration``."""
    retention = parse_duration_s(
        configuration.get("delta.deletedFileRetentionDuration"), DEFAULT_DELETED_FILE_RETENTION_S
    )
    found = tombstone_figures(
        fs, root, removes, limit=thresholds.tombstone_check_limit, retention_s=retention, now_ms=now_ms
    )
    return {
        "tombstones": found.count,
        "tombstone_bytes": found.bytes,
        "tombstones_present": found.present,
        "tombstones_present_bytes": found.present_bytes,
        "tombstones_past_retention": found.past_retention,
        "oldest_deletion_timestamp_ms": found.oldest_ms,
        "deleted_file_retention_s": retention,
    }


def log_fields(log_files: Mapping[str, LogFile], health: LogHealth, now_ms: int) -> dict[str, Any]:
    """Checkpoint lag, ``_delta_log`` size, expired commits and checksum files."""
    retention = parse_duration_s(
        health.configuration.get("delta.logRetentionDuration"), DEFAULT_LOG_RETENTION_S
    )
    json_since, expired, log_bytes = log_figures(log_files, health, retention_s=retention, now_ms=now_ms)
    pending = health.commits_since_checkpoint if health.checkpoint else version_count(health.latest_version)
    return {
        "commits_since_checkpoint": pending,
        "json_bytes_since_checkpoint": json_since,
        "checkpoint_interval": health.checkpoint_interval,
        "delta_log_bytes": log_bytes,
        "delta_log_files": len(log_files),
        "expired_commits": expired,
        "crc_files": sum(1 for n in log_files if n.endswith(".crc")),
    }
