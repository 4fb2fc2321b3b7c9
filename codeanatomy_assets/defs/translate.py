"""Outcomes of the plain pipeline steps translated into Dagster metadata and check results.

Dagster's standard metadata keys are used where they exist (``dagster/row_count``, ``dagster/uri``,
``dagster/table_name``, ``dagster/column_schema``). Numbers stay numbers so the UI plots them across runs.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import dagster as dg
import pyarrow as pa

from codeanatomy_assets.delta.layout import TableLayout
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.diagnostics.event_names import (
    DATAFUSION_PLAN_PHASE,
    DATASET_PROVIDER_MODE,
    DELTA_LOG_HEALTH,
    SCAN_UNIT_PRUNING,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import clean_error_text
from codeanatomy_assets.extract.analysis import ParseStatus
from codeanatomy_assets.plan_skip import PlanSkip
from codeanatomy_assets.report.facts import (
    PHASES,
    PRUNING_LOST,
    LogHealthFact,
    PlanPhaseFact,
    ProviderModeFact,
)
from codeanatomy_assets.report.tables import markdown_table, render_scan_units_markdown
from codeanatomy_assets.step import StepDiagnostics


def step_metadata(step: StepDiagnostics) -> dict[str, Any]:
    """Counts of the step's events by severity, its trace id, and any sink failure."""
    meta: dict[str, Any] = {f"diagnostics/{sev}": n for sev, n in step.severity_counts().items()}
    if step.trace_id:
        meta["trace_id"] = step.trace_id
    if step.sink_failures:
        meta["diagnostics/sink_failures"] = dg.MetadataValue.text("\n".join(step.sink_failures))
    return meta


def delta_data_version(uri: str, version: int | None) -> dg.DataVersion | None:
    """A Delta table's Dagster data version: its version and a short sha of its URI (``v3@1a2b...``);
    ``None`` (Dagster's own) when the version is unknown. Downstream assets are stale when it changes."""
    if version is None:
        return None
    return dg.DataVersion(f"v{version}@{hashlib.sha256(uri.encode('utf-8')).hexdigest()[:12]}")


def column_schema(schema: pa.Schema | None) -> dict[str, Any]:
    if schema is None:
        return {}
    columns = [dg.TableColumn(name=f.name, type=str(f.type)) for f in schema]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


def check(
    name: str,
    *,
    passed: bool,
    severity: Severity,
    explanation: str,
    metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """An asset check result; ``severity`` is WARN or ERROR (Dagster has no other check severities)."""
    dagster_severity = (
        dg.AssetCheckSeverity.ERROR if severity is Severity.ERROR else dg.AssetCheckSeverity.WARN
    )
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=dagster_severity,
        description=explanation,
        metadata={"explanation": explanation, **(metadata or {})},
    )


# --- extract -------------------------------------------------------------------------------------------


def extract_metadata(outcome: Any) -> dict[str, Any]:
    """Rows per extract dataset, file counts and time, and whether the rebuild was full or incremental."""
    stats = outcome.result.stats
    meta: dict[str, Any] = {f"rows/{name}": rows for name, rows in stats.rows.items()}
    meta["seconds"] = round(outcome.seconds, 3)
    meta["files"] = stats.files
    meta["files_failed"] = stats.failed_files
    meta["lines"] = stats.lines
    if outcome.rebuild is not None:
        rebuild = outcome.rebuild.to_row()
        meta["rebuild"] = rebuild["mode"]
        meta["rebuild_reason"] = rebuild["reason"]
        meta["files_parsed"] = rebuild["files_parsed"]
        meta["tables_rewritten"] = ", ".join(rebuild["tables_rewritten"]) or "(none)"
    return meta


def tree_version(outcome: Any) -> dg.DataVersion:
    """The tree's data version: a hash of every file's path and content hash (same tree, same version)."""
    files = outcome.result.source_files.select(["path", "content_hash"]).sort_by("path")
    digest = hashlib.sha256()
    for path, content in zip(
        files.column("path").to_pylist(), files.column("content_hash").to_pylist(), strict=True
    ):
        digest.update(f"{path}\0{content}\n".encode())
    return dg.DataVersion(digest.hexdigest()[:16])


def extract_check(outcome: Any) -> dg.AssetCheckResult:
    files = outcome.result.source_files
    failed = _failed_files(files)
    return check(
        "all_files_parsed",
        passed=not failed,
        severity=Severity.WARN,
        explanation=f"{len(failed)} of {files.num_rows} files could not be analysed; each is recorded in "
        "source_files with its status and error, and as an extract_file_failed_v1 warn event.",
        metadata={
            "failed_files": dg.MetadataValue.md(
                markdown_table(sorted(failed, key=lambda r: r["path"])[:50], ["path", "status", "error"])
            )
        },
    )


def _failed_files(files: pa.Table) -> list[dict[str, Any]]:
    """The files of ``source_files`` that were not parsed: path, status and error."""
    return [
        {"path": p, "status": s, "error": e}
        for p, s, e in zip(
            files.column("path").to_pylist(),
            files.column("parse_status").to_pylist(),
            files.column("error").to_pylist(),
            strict=True,
        )
        if s != ParseStatus.OK
    ]


# --- datasets ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetFacts:
    """The registration facts a dataset step recorded for its dataset."""

    mode: ProviderModeFact | None
    """The provider mode chosen (its latest ``dataset_provider_mode_v1``); ``None`` when none was recorded."""
    health: LogHealthFact | None
    log_problems: tuple[DiagnosticEvent, ...]
    """The warn and error events on the dataset's Delta log."""
    protocol_errors: tuple[DiagnosticEvent, ...]

    @property
    def provider(self) -> str:
        """The provider mode's name, ``none`` when no mode was recorded."""
        return str(self.mode.provider_mode) if self.mode is not None else ProviderMode.NONE.value


def _step_events(
    collector: DiagnosticsCollector, name: str, *, dataset: str | None = None, plan: str | None = None
) -> list[DiagnosticEvent]:
    """The ``name`` events this step recorded (of ``dataset`` or ``plan`` when given), in recording order."""
    rows = [*collector.events_snapshot().get(name, []), *collector.artifacts_snapshot().get(name, [])]
    events = [DiagnosticEvent.from_row(row) for row in rows]
    return [
        e for e in events if (dataset is None or e.dataset == dataset) and (plan is None or e.plan == plan)
    ]


def dataset_facts(collector: DiagnosticsCollector, name: str) -> DatasetFacts:
    """The registration facts recorded by this step for dataset ``name``."""
    modes = _step_events(collector, DATASET_PROVIDER_MODE, dataset=name)
    health = _step_events(collector, DELTA_LOG_HEALTH, dataset=name)
    recorded = [e for e in map(DiagnosticEvent.from_row, collector.all_rows()) if e.dataset == name]
    return DatasetFacts(
        mode=ProviderModeFact.from_event(modes[-1]) if modes else None,
        health=LogHealthFact.from_event(health[-1]) if health else None,
        log_problems=tuple(
            e
            for e in recorded
            if e.category is Category.DELTA_LOG and e.severity in (Severity.WARN, Severity.ERROR)
        ),
        protocol_errors=tuple(
            e for e in recorded if e.category is Category.DELTA_PROTOCOL and e.severity is Severity.ERROR
        ),
    )


def dataset_metadata(facts: DatasetFacts, outcome: Any) -> dict[str, Any]:
    """The provider mode, the Delta log's state and, once registered, the table's URI, rows and schema."""
    mode, health = facts.mode, facts.health
    meta = _provider_metadata(mode)
    meta["table_features"] = ", ".join(health.table_features if health else ()) or "(none)"
    if health is not None:
        meta.update(health.version_counts())
    if mode is not None and mode.fallback_reason:
        meta["fallback_reason"] = str(mode.fallback_reason)
    if outcome is not None:
        meta.update(_registered_metadata(outcome))
        meta.update(layout_metadata(outcome.layout))
    return meta


LAYOUT_FIGURES: Final = (
    "file_count",
    "total_bytes",
    "small_files",
    "files_with_stats",
    "partition_count",
    "tombstones_present",
    "files_with_deletion_vectors",
    "commits_since_checkpoint",
    "delta_log_bytes",
)
"""The layout figures a dataset materialization carries as numbers (Dagster plots them across runs)."""


def layout_metadata(layout: TableLayout | None) -> dict[str, Any]:
    """``layout/<figure>`` numbers and the layout's worst severity."""
    if layout is None:
        return {}
    figures = {f"layout/{name}": getattr(layout, name) for name in LAYOUT_FIGURES}
    return {
        **{k: dg.MetadataValue.int(v) for k, v in figures.items() if v is not None},
        "layout/severity": layout.severity.value,
    }


def _provider_metadata(mode: ProviderModeFact | None) -> dict[str, Any]:
    if mode is None:
        return {
            "provider_mode": ProviderMode.NONE.value,
            "provider_class": "",
            "filter_pushdown": False,
            "datafusion_version": "",
            "deltalake_version": "",
        }
    return {
        "provider_mode": str(mode.provider_mode),
        "provider_class": str(mode.provider_class),
        "filter_pushdown": bool(mode.filter_pushdown),
        "datafusion_version": str(mode.datafusion_version),
        "deltalake_version": str(mode.deltalake_version),
    }


def _registered_metadata(outcome: Any) -> dict[str, Any]:
    """Dagster's standard keys for a registered table: URI, table name, row count, column schema."""
    meta: dict[str, Any] = {
        "dagster/uri": outcome.uri,
        "dagster/table_name": outcome.registration.registered.dataset,
    }
    if outcome.row_count is not None:
        meta["dagster/row_count"] = outcome.row_count
    meta.update(column_schema(outcome.schema))
    return meta


def dataset_data_version(outcome: Any) -> dg.DataVersion | None:
    """The data version of a registered dataset (its Delta version); ``None`` when not registered."""
    if outcome is None:
        return None
    return delta_data_version(outcome.uri, outcome.registration.registered.version)


def dataset_checks(
    facts: DatasetFacts, error: Exception | None = None, layout: TableLayout | None = None
) -> list[dg.AssetCheckResult]:
    return [
        _provider_mode_check(facts),
        _protocol_check(facts, error),
        _log_checkpoint_check(facts),
        layout_check(layout),
    ]


def layout_check(layout: TableLayout | None) -> dg.AssetCheckResult:
    """``delta_layout_healthy`` (WARN): no layout finding at warn or above; each one with its action."""
    if layout is None:
        return check(
            "delta_layout_healthy",
            passed=False,
            severity=Severity.WARN,
            explanation="layout not measured: the dataset was not registered",
        )
    problems = [f for f in layout.findings if f.severity.rank >= Severity.WARN.rank]
    explanation = "; ".join(f"{f.code.value}: {f.message} -> {f.action}" for f in problems[:5])
    return check(
        "delta_layout_healthy",
        passed=not problems,
        severity=Severity.WARN,
        explanation=explanation or "layout healthy",
        metadata={"findings": dg.MetadataValue.json([f.to_row() for f in layout.findings])},
    )


def _provider_mode_check(facts: DatasetFacts) -> dg.AssetCheckResult:
    provider = facts.provider
    fallback = facts.mode.fallback_reason if facts.mode is not None else None
    return check(
        "provider_mode",
        passed=not fallback and provider not in (ProviderMode.NONE, ProviderMode.PYARROW_DATASET),
        severity=Severity.WARN,
        explanation=f"served by {provider}" + (f"; fallback because {fallback}" if fallback else ""),
        metadata={"provider_mode": provider},
    )


def _protocol_check(facts: DatasetFacts, error: Exception | None) -> dg.AssetCheckResult:
    compatible = (
        error is None
        and facts.mode is not None
        and not facts.protocol_errors
        and facts.provider != ProviderMode.NONE
    )
    reasons = [str(e.message or e.code) for e in facts.protocol_errors]
    if error is not None:  # the root cause: the events above are in the report
        reasons = [clean_error_text(getattr(error, "reason", None) or str(error))]
    return check(
        "delta_protocol_compatible",
        passed=compatible,
        severity=Severity.ERROR,
        explanation="a provider reads this table's protocol correctly"
        if compatible
        else "; ".join(reasons) or "no provider reads this table correctly: registration failed",
    )


def _log_checkpoint_check(facts: DatasetFacts) -> dg.AssetCheckResult:
    problems = facts.log_problems
    return check(
        "delta_log_checkpoint",
        passed=not problems,
        severity=Severity.WARN,
        explanation="Delta log healthy"
        if not problems
        else "; ".join(f"{e.severity.value}: {e.message or e.code}" for e in problems[:5]),
        metadata={"problems": len(problems)},
    )


# --- plans ---------------------------------------------------------------------------------------------


def plan_metadata(outcome: Any, previous_hash: Any) -> dict[str, Any]:
    """The plan's result, phases, memory, joins and scans; a skipped plan's output and why it was skipped."""
    execution = outcome.execution
    if outcome.skipped is not None or execution is None:
        return skipped_plan_metadata(outcome)
    meta: dict[str, Any] = {
        "dagster/uri": outcome.uri,
        "dagster/table_name": execution.name,
        "dagster/row_count": execution.table.num_rows,
        "delta_version": outcome.version,
        "partition_count": int(execution.partition_count or 0),
        "write_ms": round(outcome.write_ms, 3),
    }
    meta.update(column_schema(execution.table.schema))
    meta.update(_phase_metadata(execution, previous_hash))
    meta.update(_memory_metadata(execution))
    meta["join_operators"] = dg.MetadataValue.json([j.to_row() for j in execution.join_operators])
    meta["scan_units"] = dg.MetadataValue.md(render_scan_units_markdown(execution.scan_units))
    if execution.trace_id:
        meta["trace_id"] = execution.trace_id
    return meta


def skipped_plan_metadata(outcome: Any) -> dict[str, Any]:
    """A skipped plan's materialization: ``skipped`` and why, its output's URI and Delta version."""
    skip: PlanSkip = outcome.skipped
    meta: dict[str, Any] = {
        "skipped": True,
        "skip_reason": skip.reason,
        "dagster/uri": outcome.uri,
        "delta_version": outcome.version,
        "sql_hash": skip.fingerprint.sql_hash,
        "inputs": dg.MetadataValue.json(dict(skip.fingerprint.inputs)),
    }
    if skip.previous_run_id:
        meta["skipped_since_run"] = skip.previous_run_id
    return meta


def _phase_metadata(execution: Any, previous_hash: Any) -> dict[str, Any]:
    """Each phase's time and plan hash, and whether the optimized plan changed since the last run."""
    meta: dict[str, Any] = {f"phase_ms/{phase.phase}": float(phase.duration_ms) for phase in execution.phases}
    for phase, digest in execution.plan_hashes.items():
        meta[f"plan_hash/{phase}"] = str(digest)
    current = execution.plan_hashes.get("optimized")
    if previous_hash is not None and current is not None:
        meta["plan_hash_changed"] = bool(previous_hash != current)
    return meta


def _memory_metadata(execution: Any) -> dict[str, Any]:
    """The plan's memory figures as numbers, so the UI plots them across runs."""
    if execution.memory is None:
        return {}
    return {
        f"memory/{key}": value for key, value in execution.memory.to_row().items() if isinstance(value, int)
    }


def plan_checks(
    collector: DiagnosticsCollector, name: str, skipped: PlanSkip | None = None
) -> list[dg.AssetCheckResult]:
    """``plan_phases_recorded`` and ``scan_pruning_effective``; both passed, saying so, for a skipped plan."""
    if skipped is not None:
        return _skipped_checks(skipped)
    phases = [PlanPhaseFact.from_event(e) for e in _step_events(collector, DATAFUSION_PLAN_PHASE, plan=name)]
    lost = [e for e in _step_events(collector, SCAN_UNIT_PRUNING, plan=name) if e.code == PRUNING_LOST]
    return [_phases_check(phases), _pruning_check(lost)]


def _phases_check(phases: Sequence[PlanPhaseFact]) -> dg.AssetCheckResult:
    missing = [p.phase for p in phases if not p.complete]
    seen = {p.phase for p in phases}
    absent = [p for p in PHASES if p not in seen]
    return check(
        "plan_phases_recorded",
        passed=not missing and not absent,
        severity=Severity.ERROR,
        explanation="every phase recorded with hash, duration and span"
        if not (missing or absent)
        else f"phases missing: {absent}; without hash/duration/span: {missing}",
    )


def _pruning_check(lost: Sequence[DiagnosticEvent]) -> dg.AssetCheckResult:
    return check(
        "scan_pruning_effective",
        passed=not lost,
        severity=Severity.WARN,
        explanation="no scan lost pruning it could have had"
        if not lost
        else "; ".join(str(e.message) for e in lost[:5]),
        metadata={"scans_with_lost_pruning": len(lost)},
    )


def _skipped_checks(skip: PlanSkip) -> list[dg.AssetCheckResult]:
    """The plan checks of a skipped plan: passed, saying it did not run and since which run."""
    since = f" since run {skip.previous_run_id}" if skip.previous_run_id else ""
    explanation = f"plan skipped, its output unchanged{since}: {skip.reason}"
    return [
        check(name, passed=True, severity=severity, explanation=explanation, metadata={"skipped": True})
        for name, severity in (
            ("plan_phases_recorded", Severity.ERROR),
            ("scan_pruning_effective", Severity.WARN),
        )
    ]
