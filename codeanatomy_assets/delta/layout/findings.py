"""Layout figures → findings, each with a severity, a message and a one-line recommended action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codeanatomy_assets.delta.layout.records import (
    MIB,
    LayoutFinding,
    LayoutFindingCode,
    LayoutThresholds,
    TableLayout,
    Treatment,
)
from codeanatomy_assets.diagnostics.taxonomy import Severity

# ----------------------------------------------------------------------------------------------------
# Findings


def finding(
    code: LayoutFindingCode,
    severity: Severity,
    message: str,
    action: str,
    treatment: Treatment = Treatment.NONE,
    **detail: Any,
) -> LayoutFinding:
    return LayoutFinding(code, severity, message, action, treatment, detail)


def _file_findings(
    layout: TableLayout, thresholds: LayoutThresholds, compactable: int
) -> list[LayoutFinding]:
    found: list[LayoutFinding] = []
    if compactable >= thresholds.small_file_warn_count:
        found.append(
            finding(
                LayoutFindingCode.MANY_SMALL_FILES,
                Severity.WARN,
                f"{layout.small_files} of {layout.file_count} live files are under "
                f"{thresholds.small_file_bytes // MIB} MiB "
                f"({compactable} share a partition with another small file)",
                "compact small files (codeanatomy doctor URI --fix --apply, or deltalake optimize.compact)",
                Treatment.COMPACT,
                small_files=layout.small_files,
                compactable_files=compactable,
            )
        )
    missing = layout.file_count - layout.files_with_stats
    if missing:
        found.append(
            finding(
                LayoutFindingCode.FILES_WITHOUT_STATS,
                Severity.WARN,
                f"{missing} of {layout.file_count} live files carry no statistics: "
                "no predicate can skip them",
                "rewrite those files with a writer that collects statistics (compaction does)",
                Treatment.COMPACT,
                files_without_stats=missing,
            )
        )
    return found


def _stats_findings(layout: TableLayout) -> list[LayoutFinding]:
    if not layout.files_with_stats:
        return []
    never = [c.column for c in layout.column_stats if c.files_with_min_max == 0]
    partial = [c.column for c in layout.column_stats if 0 < c.files_with_min_max < layout.files_with_stats]
    found: list[LayoutFinding] = []
    if partial:
        found.append(
            finding(
                LayoutFindingCode.STATS_PARTIAL,
                Severity.WARN,
                f"{len(partial)} column(s) have min/max in only some files: {', '.join(partial[:10])}",
                "files without min/max on a column are read by every filter on it; recompute statistics",
                columns=partial,
            )
        )
    if never:
        found.append(
            finding(
                LayoutFindingCode.COLUMNS_WITHOUT_STATS,
                Severity.INFO,
                f"{len(never)} column(s) never have min/max, so filters on them never skip a file: "
                f"{', '.join(never[:10])}",
                "if these columns are filtered on, raise delta.dataSkippingNumIndexedCols or list them in "
                "delta.dataSkippingStatsColumns",
                columns=never,
            )
        )
    return found


def _partition_findings(layout: TableLayout, thresholds: LayoutThresholds) -> list[LayoutFinding]:
    median = layout.median_partition_bytes
    skewed = (
        layout.partition_count >= 3
        and layout.largest_partition_bytes >= thresholds.small_file_bytes
        and layout.largest_partition_bytes >= thresholds.partition_skew_ratio * max(median, 1.0)
    )
    if not skewed:
        return []
    ratio = layout.largest_partition_bytes / max(median, 1.0)
    return [
        finding(
            LayoutFindingCode.PARTITION_SKEW,
            Severity.WARN,
            f"the largest of {layout.partition_count} partitions holds {ratio:.0f}x "
            "the median partition's bytes",
            "one task reads the largest partition alone; "
            "partition on a better-balanced column or cluster the table",
            ratio=round(ratio, 2),
        )
    ]


def _tombstone_findings(layout: TableLayout) -> list[LayoutFinding]:
    if layout.tombstones_past_retention:
        return [
            finding(
                LayoutFindingCode.VACUUM_DEBT,
                Severity.WARN,
                f"{layout.tombstones_past_retention} removed file(s) past the "
                f"{layout.deleted_file_retention_s / 3600:g} h retention are still on storage "
                f"({layout.tombstones_present_bytes} bytes of removed files present in all)",
                "vacuum the table (codeanatomy doctor URI --fix --apply, or deltalake vacuum)",
                Treatment.VACUUM,
                files=layout.tombstones_past_retention,
            )
        ]
    return []


def _deletion_vector_findings(layout: TableLayout, thresholds: LayoutThresholds) -> list[LayoutFinding]:
    if not layout.files_with_deletion_vectors:
        return []
    share = layout.rows_deleted_by_deletion_vectors / layout.total_rows if layout.total_rows else None
    severity = (
        Severity.WARN
        if share is not None and share >= thresholds.deletion_vector_warn_share
        else Severity.INFO
    )
    shown = f"{share:.1%} of the rows" if share is not None else "an unknown share of the rows"
    return [
        finding(
            LayoutFindingCode.DELETION_VECTORS,
            severity,
            f"{layout.files_with_deletion_vectors} file(s) carry deletion vectors deleting "
            f"{layout.rows_deleted_by_deletion_vectors} rows ({shown}); every read filters them out",
            "purge the deletion vectors by rewriting the files (REORG TABLE ... APPLY (PURGE) in Spark)",
            rows_share=share,
        )
    ]


def _log_findings(layout: TableLayout, thresholds: LayoutThresholds) -> list[LayoutFinding]:
    found: list[LayoutFinding] = []
    limit = thresholds.checkpoint_lag_commits or layout.checkpoint_interval
    if layout.commits_since_checkpoint > limit:
        found.append(
            finding(
                LayoutFindingCode.CHECKPOINT_LAG,
                Severity.WARN,
                f"{layout.commits_since_checkpoint} commits "
                f"({layout.json_bytes_since_checkpoint} bytes of JSON) "
                f"are replayed on every open (threshold {limit}, "
                f"checkpoint interval {layout.checkpoint_interval})",
                "write a checkpoint (codeanatomy doctor URI --fix --apply, or deltalake create_checkpoint)",
                Treatment.CHECKPOINT,
                commits=layout.commits_since_checkpoint,
            )
        )
    if layout.expired_commits:
        found.append(
            finding(
                LayoutFindingCode.EXPIRED_LOG_FILES,
                Severity.INFO,
                f"{layout.expired_commits} commit file(s) before the checkpoint are past the log retention",
                "clean up expired log files (deltalake cleanup_metadata)",
                Treatment.CLEANUP_LOG,
                commits=layout.expired_commits,
            )
        )
    return found


def all_findings(
    layout: TableLayout, thresholds: LayoutThresholds, compactable: int, problems: Sequence[str]
) -> list[LayoutFinding]:
    """Every finding the figures of ``layout`` give (``problems``: what the replay could not read)."""
    found = [
        *_log_findings(layout, thresholds),
        *_file_findings(layout, thresholds, compactable),
        *_stats_findings(layout),
        *_partition_findings(layout, thresholds),
        *_tombstone_findings(layout),
        *_deletion_vector_findings(layout, thresholds),
    ]
    if problems:
        found.append(
            finding(
                LayoutFindingCode.LAYOUT_INCOMPLETE,
                Severity.WARN,
                f"the layout is partial: {'; '.join(problems[:3])}",
                "fix the log first (see the delta_log findings)",
                problems=list(problems[:20]),
            )
        )
    return found
