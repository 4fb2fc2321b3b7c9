"""Treating a table: the maintenance plan the layout findings call for, and applying it with deltalake.

The plan is a dry run by default (``codeanatomy doctor URI --fix``): which deltalake operation each
fixable finding calls for, and for vacuum the exact files it would delete. ``--fix --apply`` runs the plan
with deltalake's own operations, in this order, and re-reads the layout after each for before/after figures:

1. ``optimize.compact``: merges small files (a ``dataChange=false`` rewrite: the rows are unchanged);
2. ``vacuum``: deletes removed files past the table's retention (never below it);
3. ``create_checkpoint``: writes a checkpoint of the new state;
4. ``cleanup_metadata``: deletes log files past the log retention that a checkpoint supersedes.

It refuses, with the reason, when the log has an error finding (a damaged log is diagnosed, not written
to) or when the table's protocol needs a writer feature deltalake 1.6 does not write. The writable set was
measured on the corpus (``docs/reliability.md``): deltalake refuses ``inCommitTimestamp``,
``identityColumns``, ``domainMetadata``, ``clustering``, ``rowTracking`` and unknown features at commit, and
compaction of column-mapped tables ("Column mapping is not supported for write operation 'OPTIMIZE'").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.layout import LayoutThresholds, TableLayout, Treatment, read_table_layout
from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_text

WRITABLE_WRITER_FEATURES: Final = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "timestampNtz",
        "deletionVectors",
        "columnMapping",
    }
)
"""Writer features whose tables deltalake 1.6 commits to (measured; see the module docstring)."""
_NOT_COMPACTABLE: Final = frozenset({"columnMapping"})
"""Features deltalake writes for some operations but refuses for OPTIMIZE."""
ORDER: Final = (Treatment.COMPACT, Treatment.VACUUM, Treatment.CHECKPOINT, Treatment.CLEANUP_LOG)


@dataclass(frozen=True, slots=True)
class MaintenanceStep:
    """One planned operation: what it is, which findings call for it, and what it would touch."""

    treatment: Treatment
    reasons: tuple[str, ...]
    files: tuple[str, ...] = ()
    """For vacuum: the files its dry run lists."""

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {"treatment": self.treatment.value, "reasons": list(self.reasons), "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What applying one step did: its status, deltalake's metrics and the figures before and after."""

    treatment: Treatment
    status: str
    """``applied`` or ``failed``."""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "treatment": self.treatment.value,
            "status": self.status,
            "metrics": dict(self.metrics),
            "before": dict(self.before),
            "after": dict(self.after),
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
        }


@dataclass(frozen=True, slots=True)
class MaintenancePlan:
    """The steps for one table, or why none may run (``refused``)."""

    uri: str
    steps: tuple[MaintenanceStep, ...] = ()
    refused: str | None = None

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {"uri": self.uri, "refused": self.refused, "steps": [s.to_row() for s in self.steps]}


# ----------------------------------------------------------------------------------------------------
# Planning


def refusal(health: LogHealth) -> str | None:
    """Why no maintenance may write to this table (``None`` when it may)."""
    errors = [f.message for f in health.findings if f.severity is Severity.ERROR]
    if errors:
        return f"the log is damaged ({errors[0]}); maintenance would write on top of it"
    if health.min_writer_version is None:
        return "the log gives no protocol"
    unsupported = sorted(set(health.writer_features) - WRITABLE_WRITER_FEATURES)
    if unsupported:
        return f"deltalake cannot write tables with writer feature(s) {', '.join(unsupported)}"
    return None


def _reasons(layout: TableLayout) -> dict[Treatment, list[str]]:
    reasons: dict[Treatment, list[str]] = {}
    for finding in layout.findings:
        if finding.treatment is not Treatment.NONE:
            reasons.setdefault(finding.treatment, []).append(f"{finding.code.value}: {finding.message}")
    return reasons


def plan_maintenance(
    uri: str,
    storage_options: Mapping[str, str] | None = None,
    *,
    health: LogHealth | None = None,
    layout: TableLayout | None = None,
) -> MaintenancePlan:
    """The dry-run plan for ``uri``: one step per treatment its layout findings call for."""
    health = health if health is not None else read_log_health(uri, storage_options)
    refused = refusal(health)
    if refused is not None:
        return MaintenancePlan(uri, refused=refused)
    layout = layout if layout is not None else read_table_layout(uri, storage_options, health=health)
    reasons = _reasons(layout)
    if Treatment.COMPACT in reasons and set(health.writer_features) & _NOT_COMPACTABLE:
        reasons.pop(Treatment.COMPACT)
    steps = [_step(uri, storage_options, t, reasons[t]) for t in ORDER if t in reasons]
    return MaintenancePlan(uri, steps=tuple(steps))


def _step(
    uri: str, storage_options: Mapping[str, str] | None, treatment: Treatment, reasons: Sequence[str]
) -> MaintenanceStep:
    files: tuple[str, ...] = ()
    if treatment is Treatment.VACUUM:
        files = tuple(
            sorted(_open(uri, storage_options).vacuum(dry_run=True, enforce_retention_duration=True))
        )
    return MaintenanceStep(treatment, tuple(reasons), files)


def _open(uri: str, storage_options: Mapping[str, str] | None) -> Any:
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=dict(storage_options or {}))


# ----------------------------------------------------------------------------------------------------
# Applying


def _figures(layout: TableLayout) -> dict[str, Any]:
    """The figures a treatment changes, as shown before and after it."""
    return {
        "version": layout.version,
        "file_count": layout.file_count,
        "small_files": layout.small_files,
        "total_rows": layout.total_rows,
        "tombstones_present": layout.tombstones_present,
        "commits_since_checkpoint": layout.commits_since_checkpoint,
        "delta_log_files": layout.delta_log_files,
    }


def _operation(treatment: Treatment) -> Callable[[Any], Mapping[str, Any]]:
    """The deltalake call of a treatment, returning its metrics."""
    operations: dict[Treatment, Callable[[Any], Mapping[str, Any]]] = {
        Treatment.COMPACT: lambda table: dict(table.optimize.compact()),
        Treatment.VACUUM: lambda table: {
            "files_deleted": len(table.vacuum(dry_run=False, enforce_retention_duration=True))
        },
        Treatment.CHECKPOINT: lambda table: table.create_checkpoint() or {},
        Treatment.CLEANUP_LOG: lambda table: table.cleanup_metadata() or {},
    }
    return operations[treatment]


def apply_plan(
    plan: MaintenancePlan,
    storage_options: Mapping[str, str] | None = None,
    thresholds: LayoutThresholds | None = None,
) -> list[StepOutcome]:
    """Run each step of ``plan`` in order; a failed step stops the rest (deltalake commits atomically, so
    the table stays at the last good version)."""
    if plan.refused is not None:
        return []
    outcomes: list[StepOutcome] = []
    before = read_table_layout(plan.uri, storage_options, thresholds=thresholds)
    for step in plan.steps:
        outcome = _apply_step(plan.uri, storage_options, step.treatment, before, thresholds)
        outcomes.append(outcome)
        if outcome.status != "applied":
            break
        before = read_table_layout(plan.uri, storage_options, thresholds=thresholds)
    return outcomes


def _apply_step(
    uri: str,
    storage_options: Mapping[str, str] | None,
    treatment: Treatment,
    before: TableLayout,
    thresholds: LayoutThresholds | None,
) -> StepOutcome:
    started = time.perf_counter()
    try:
        metrics = _operation(treatment)(_open(uri, storage_options))
    except Exception as exc:  # noqa: BLE001 - a refused or failed operation is an outcome, not a crash
        elapsed = (time.perf_counter() - started) * 1000
        return StepOutcome(
            treatment, "failed", before=_figures(before), error=exception_text(exc), duration_ms=elapsed
        )
    elapsed = (time.perf_counter() - started) * 1000
    after = read_table_layout(uri, storage_options, thresholds=thresholds)
    return StepOutcome(
        treatment, "applied", _json_ready(metrics), _figures(before), _figures(after), None, elapsed
    )


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
