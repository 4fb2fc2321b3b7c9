"""The events the report and the Dagster assets read, as typed records built in one place.

Each record is read from one :class:`~codeanatomy_assets.diagnostics.events.DiagnosticEvent` by its
``from_event``; the payload keys of that event are named here only. ``to_row()`` is the record's row in the
report (JSON-able). The event names are in :mod:`codeanatomy_assets.diagnostics.event_names`, which imports
nothing heavy, so reading a report does not load DataFusion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Severity

PHASES: Final = ("logical", "optimized", "physical", "execute")
"""The phases every plan records, in execution order."""
PRUNING_LOST: Final = "pruning_lost"
"""The code of a scan that read files Delta's statistics could skip (``engine.scan.PRUNING_LOST``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderModeFact:
    """A ``dataset_provider_mode_v1`` event: the provider mode that serves a dataset, and why."""

    dataset: str | None
    provider_mode: str | None
    provider_class: str | None
    fallback_reason: str | None
    filter_pushdown: bool | None
    probe_ok: bool | None
    datafusion_version: str | None
    deltalake_version: str | None
    severity: Severity

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> ProviderModeFact:
        p = event.payload
        return cls(
            dataset=event.dataset,
            provider_mode=p.get("provider_mode"),
            provider_class=p.get("provider_class"),
            fallback_reason=p.get("fallback_reason"),
            filter_pushdown=p.get("filter_pushdown"),
            probe_ok=p.get("probe_ok"),
            datafusion_version=p.get("datafusion_version"),
            deltalake_version=p.get("deltalake_version"),
            severity=event.severity,
        )

    def to_row(self) -> dict[str, Any]:
        """The dataset's row of the report's ``provider_modes`` section."""
        return {
            "dataset": self.dataset,
            "provider_mode": self.provider_mode,
            "provider_class": self.provider_class,
            "fallback_reason": self.fallback_reason,
            "filter_pushdown": self.filter_pushdown,
            "probe_ok": self.probe_ok,
            "severity": self.severity.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LogHealthFact:
    """A ``delta_log_health_v1`` event: the state of a dataset's Delta log and protocol."""

    dataset: str | None
    latest_version: Any
    last_checkpoint_version: Any
    commits_since_checkpoint: Any
    min_reader_version: Any
    min_writer_version: Any
    table_features: tuple[str, ...]
    protocol_compatible: bool | None
    severity: Severity

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> LogHealthFact:
        p = event.payload
        return cls(
            dataset=event.dataset,
            latest_version=p.get("latest_version"),
            last_checkpoint_version=p.get("last_checkpoint_version"),
            commits_since_checkpoint=p.get("commits_since_checkpoint"),
            min_reader_version=p.get("min_reader_version"),
            min_writer_version=p.get("min_writer_version"),
            table_features=tuple(p.get("table_features") or ()),
            protocol_compatible=p.get("protocol_compatible"),
            severity=event.severity,
        )

    def version_counts(self) -> dict[str, int]:
        """The log's version numbers and counts that were recorded as integers (Dagster plots these)."""
        counts = {
            "latest_version": self.latest_version,
            "commits_since_checkpoint": self.commits_since_checkpoint,
            "min_reader_version": self.min_reader_version,
            "min_writer_version": self.min_writer_version,
        }
        return {key: value for key, value in counts.items() if isinstance(value, int)}

    def to_row(self) -> dict[str, Any]:
        """The dataset's row of the report's ``delta_log_health`` section."""
        return {
            "dataset": self.dataset,
            "latest_version": self.latest_version,
            "last_checkpoint_version": self.last_checkpoint_version,
            "commits_since_checkpoint": self.commits_since_checkpoint,
            "min_reader_version": self.min_reader_version,
            "min_writer_version": self.min_writer_version,
            "table_features": list(self.table_features),
            "protocol_compatible": self.protocol_compatible,
            "severity": self.severity.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanPhaseFact:
    """A ``datafusion_plan_phase_v1`` event: one phase of a plan (its span ids default to the event's)."""

    plan: str | None
    phase: str | None
    duration_ms: Any
    plan_hash: str | None
    trace_id: str | None
    span_id: str | None
    severity: Severity
    shape_hash: str | None = None

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> PlanPhaseFact:
        p = event.payload
        return cls(
            plan=event.plan,
            phase=p.get("phase"),
            duration_ms=p.get("duration_ms"),
            plan_hash=p.get("plan_hash"),
            trace_id=p.get("trace_id") or event.trace_id,
            span_id=p.get("span_id") or event.span_id,
            severity=event.severity,
            shape_hash=p.get("shape_hash"),
        )

    @property
    def complete(self) -> bool:
        """Whether the phase was recorded with its hash, span and duration."""
        return bool(self.plan_hash and self.span_id and self.duration_ms is not None)

    def to_row(self) -> dict[str, Any]:
        """The phase's row of the report's ``plan_phases`` section."""
        return {
            "plan": self.plan,
            "phase": self.phase,
            "duration_ms": self.duration_ms,
            "plan_hash": self.plan_hash,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "status": "error" if self.severity is Severity.ERROR else "ok",
            "shape_hash": self.shape_hash,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanUnitFact:
    """A ``scan_unit_pruning_v1`` event: the files one scan of a plan read, and could have skipped."""

    plan: str | None
    dataset: str | None
    provider_mode: str | None
    total_files: Any
    candidate_files: Any
    pruned_files: Any
    delta_prunable_files: Any
    predicate: Any
    scan_filters: tuple[Any, ...]
    pruning_lost: bool

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> ScanUnitFact:
        p = event.payload
        return cls(
            plan=event.plan,
            dataset=event.dataset or p.get("dataset") or p.get("dataset_label"),
            provider_mode=p.get("provider_mode"),
            total_files=p.get("total_files"),
            candidate_files=p.get("candidate_files"),
            pruned_files=p.get("pruned_files"),
            delta_prunable_files=p.get("delta_prunable_files"),
            predicate=p.get("predicate"),
            scan_filters=tuple(p.get("scan_filters") or p.get("filters") or ()),
            pruning_lost=event.code == PRUNING_LOST or bool(p.get("pruning_lost")),
        )

    def to_row(self) -> dict[str, Any]:
        """The scan's row of the report's ``scan_units`` section (without its ``scans`` count)."""
        return {
            "plan": self.plan,
            "dataset": self.dataset,
            "provider_mode": self.provider_mode,
            "total_files": self.total_files,
            "candidate_files": self.candidate_files,
            "pruned_files": self.pruned_files,
            "delta_prunable_files": self.delta_prunable_files,
            "predicate": self.predicate,
            "scan_filters": list(self.scan_filters),
            "pruning_lost": self.pruning_lost,
        }

    def identity(self) -> tuple[str, ...]:
        """What tells two scans apart (identical scans of one table, e.g. a self-join, are one row)."""
        return tuple(json.dumps(v, sort_keys=True, default=str) for v in self.to_row().values())


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractRebuildFact:
    """An ``extract_rebuild_v1`` event: the extraction full or incremental, why, and what it changed."""

    mode: str | None
    reason: str | None
    added: int | None
    changed: int | None
    deleted: int | None
    unchanged: int | None
    modules: int | None
    """The modules whose rows the incremental extraction replaced."""
    files_parsed: int | None
    added_paths: tuple[str, ...]
    changed_paths: tuple[str, ...]
    deleted_paths: tuple[str, ...]
    tables_rewritten: tuple[str, ...]

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> ExtractRebuildFact:
        p = event.payload
        return cls(
            mode=p.get("mode"),
            reason=p.get("reason"),
            **{key: _count(p.get(key)) for key in ("added", "changed", "deleted", "unchanged", "modules")},
            files_parsed=_count(p.get("files_parsed")),
            added_paths=tuple(p.get("added_paths") or ()),
            changed_paths=tuple(p.get("changed_paths") or ()),
            deleted_paths=tuple(p.get("deleted_paths") or ()),
            tables_rewritten=tuple(p.get("tables_rewritten") or ()),
        )

    def to_row(self) -> dict[str, Any]:
        """The extraction's part of the report's ``rebuild`` section."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "added": self.added,
            "changed": self.changed,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "modules": self.modules,
            "files_parsed": self.files_parsed,
            "added_paths": list(self.added_paths),
            "changed_paths": list(self.changed_paths),
            "deleted_paths": list(self.deleted_paths),
            "tables_rewritten": list(self.tables_rewritten),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSkippedFact:
    """A ``plan_skipped_v1`` event: a plan not run, its SQL and inputs unchanged since its output's write."""

    plan: str | None
    reason: str | None
    sql_hash: str | None
    inputs: dict[str, Any]
    """Each input's Delta version, as the output was computed from them."""
    output_version: Any
    previous_run_id: str | None

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> PlanSkippedFact:
        p = event.payload
        return cls(
            plan=event.plan,
            reason=p.get("reason"),
            sql_hash=p.get("sql_hash"),
            inputs=dict(p.get("inputs") or {}),
            output_version=p.get("output_version"),
            previous_run_id=p.get("previous_run_id"),
        )

    def to_row(self) -> dict[str, Any]:
        """The plan's row of the ``rebuild`` section's ``plans_skipped``."""
        return {
            "plan": self.plan,
            "output_version": self.output_version,
            "since_run": self.previous_run_id,
            "inputs": dict(self.inputs),
            "sql_hash": self.sql_hash,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRunFact:
    """A ``plan_output_v1`` event read for the rebuild: a plan that ran and wrote its output."""

    plan: str | None
    version: Any
    rows: Any
    inputs: dict[str, Any]
    """Each input's Delta version the plan read (absent from runs recorded before it was)."""

    @classmethod
    def from_event(cls, event: DiagnosticEvent) -> PlanRunFact:
        p = event.payload
        return cls(
            plan=event.plan, version=p.get("version"), rows=p.get("rows"), inputs=dict(p.get("inputs") or {})
        )

    def to_row(self) -> dict[str, Any]:
        """The plan's row of the ``rebuild`` section's ``plans_run``."""
        return {"plan": self.plan, "version": self.version, "rows": self.rows, "inputs": dict(self.inputs)}
