"""The layout records: thresholds, findings, per-column statistics coverage and the table layout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from codeanatomy_assets.delta.health import DEFAULT_CHECKPOINT_INTERVAL
from codeanatomy_assets.diagnostics.taxonomy import Severity

MIB: Final = 1024 * 1024
SIZE_BUCKETS: Final = (
    ("<1MiB", 1 * MIB),
    ("1-8MiB", 8 * MIB),
    ("8-32MiB", 32 * MIB),
    ("32-128MiB", 128 * MIB),
    ("128-512MiB", 512 * MIB),
    (">=512MiB", None),
)
"""The file-size histogram's buckets: (label, exclusive upper bound in bytes; ``None`` for the last)."""
DEFAULT_DELETED_FILE_RETENTION_S: Final = 7 * 24 * 3600
"""``delta.deletedFileRetentionDuration`` default (one week): vacuum removes tombstoned files older."""
DEFAULT_LOG_RETENTION_S: Final = 30 * 24 * 3600
"""``delta.logRetentionDuration`` default (30 days): older commits before a checkpoint expire."""
DURATION_UNITS: Final = {
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
}


class LayoutFindingCode(StrEnum):
    """What a layout finding is about (closed vocabulary; documented in ``docs/reliability.md``)."""

    CHECKPOINT_LAG = "checkpoint_lag"
    MANY_SMALL_FILES = "many_small_files"
    FILES_WITHOUT_STATS = "files_without_stats"
    STATS_PARTIAL = "stats_partial"
    COLUMNS_WITHOUT_STATS = "columns_without_stats"
    PARTITION_SKEW = "partition_skew"
    VACUUM_DEBT = "vacuum_debt"
    DELETION_VECTORS = "deletion_vectors"
    EXPIRED_LOG_FILES = "expired_log_files"
    CRC_MISMATCH = "crc_mismatch"
    CRC_UNREADABLE = "crc_unreadable"
    LAYOUT_INCOMPLETE = "layout_incomplete"


class Treatment(StrEnum):
    """The deltalake operation that fixes a finding (``none``: advice only)."""

    CHECKPOINT = "create_checkpoint"
    COMPACT = "optimize_compact"
    VACUUM = "vacuum"
    CLEANUP_LOG = "cleanup_metadata"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutThresholds:
    """When a layout figure becomes a finding (every threshold is configurable; defaults documented)."""

    small_file_bytes: int = 8 * MIB
    """A live file under this size is small: opening it costs about as much as reading it."""
    small_file_warn_count: int = 32
    """``many_small_files`` warns from this many small files that compaction could merge."""
    partition_skew_ratio: float = 10.0
    """``partition_skew`` warns when the largest partition holds this many times the median's bytes."""
    deletion_vector_warn_share: float = 0.10
    """``deletion_vectors`` warns when this share of the rows is deleted through deletion vectors."""
    tombstone_check_limit: int = 10_000
    """At most this many tombstoned paths are checked for presence on storage."""
    checkpoint_lag_commits: int | None = None
    """``checkpoint_lag`` warns past this many commits since the checkpoint (``None``: the table's
    ``delta.checkpointInterval``, 100 when unset)."""


@dataclass(frozen=True, slots=True)
class LayoutFinding:
    """One layout problem: code, severity, a one-line message and a one-line recommended action."""

    code: LayoutFindingCode
    severity: Severity
    message: str
    action: str
    treatment: Treatment = Treatment.NONE
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "message": self.message,
            "action": self.action,
            "treatment": self.treatment.value,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """How many live files carry statistics for one column."""

    column: str
    files_with_min_max: int
    files_with_null_count: int

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "column": self.column,
            "files_with_min_max": self.files_with_min_max,
            "files_with_null_count": self.files_with_null_count,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TableLayout:
    """The layout figures of one table version and the findings they give."""

    version: int | None
    file_count: int = 0
    total_bytes: int = 0
    size_histogram: Mapping[str, int] = field(default_factory=dict)
    small_file_threshold_bytes: int = 8 * MIB
    small_files: int = 0
    small_file_share: float = 0.0
    files_with_stats: int = 0
    total_rows: int | None = None
    column_stats: tuple[ColumnStats, ...] = ()
    partition_columns: tuple[str, ...] = ()
    partition_count: int = 0
    largest_partition_bytes: int = 0
    median_partition_bytes: float = 0.0
    largest_partition_files: int = 0
    median_partition_files: float = 0.0
    tombstones: int = 0
    tombstone_bytes: int = 0
    tombstones_present: int | None = None
    tombstones_present_bytes: int | None = None
    tombstones_past_retention: int = 0
    oldest_deletion_timestamp_ms: int | None = None
    deleted_file_retention_s: float = DEFAULT_DELETED_FILE_RETENTION_S
    files_with_deletion_vectors: int = 0
    rows_deleted_by_deletion_vectors: int = 0
    commits_since_checkpoint: int = 0
    json_bytes_since_checkpoint: int = 0
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    delta_log_bytes: int = 0
    delta_log_files: int = 0
    expired_commits: int = 0
    crc_files: int = 0
    crc_checked: int = 0
    findings: tuple[LayoutFinding, ...] = ()

    @property
    def severity(self) -> Severity:
        """The highest severity among the findings (info when there are none)."""
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=Severity.INFO)

    def to_row(self) -> dict[str, Any]:
        """Every figure, JSON-ready (the doctor's ``layout`` key and the ``delta_layout_v1`` payload)."""
        row: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("column_stats", "findings"):
                value = [item.to_row() for item in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            row[name] = value
        row["severity"] = self.severity.value
        return row


def as_int(value: object) -> int | None:
    """An integer action field (a JSON number, or digits in a string); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def version_count(latest_version: int | None) -> int:
    """How many versions a log holds up to ``latest_version`` (0 when it holds none).

    >>> version_count(0), version_count(None)
    (1, 0)
    """
    return latest_version + 1 if latest_version is not None else 0
