"""Outcomes of the plain pipeline steps translated into Dagster metadata and check results.

Dagster's standard metadata keys are used where they exist (``dagster/row_count``, ``dagster/uri``,
``dagster/table_name``, ``dagster/column_schema``). Numbers stay numbers so the UI plots them across runs.
"""

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import clean_error_text
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
    """Rows per extract dataset, file counts and time."""
    meta: dict[str, Any] = {f"rows/{name}": table.num_rows for name, table in outcome.result.tables.items()}
    meta["seconds"] = round(outcome.seconds, 3)
    files = outcome.result.tables["source_files"]
    statuses = files.column("parse_status").to_pylist()
    meta["files"] = len(statuses)
    meta["files_failed"] = sum(1 for s in statuses if s != "ok")
    meta["lines"] = int(pc.sum(files.column("lines")).as_py() or 0)
    return meta


def extract_check(outcome: Any) -> dg.AssetCheckResult:
    files = outcome.result.tables["source_files"]
    failed = [
        {"path": p, "status": s, "error": e}
        for p, s, e in zip(
            files.column("path").to_pylist(),
            files.column("parse_status").to_pylist(),
            files.column("error").to_pylist(),
            strict=True,
        )
        if s != "ok"
    ]
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


# --- datasets ------------------------------------------------------------------------------------------


def _payloads(
    collector: DiagnosticsCollector, name: str, *, dataset: str | None = None, plan: str | None = None
) -> list[dict[str, Any]]:
    rows = [*collector.events_snapshot().get(name, []), *collector.artifacts_snapshot().get(name, [])]
    out = []
    for row in rows:
        if dataset is not None and row.get("dataset") != dataset:
            continue
        if plan is not None and row.get("plan") != plan:
            continue
        out.append(
            {
                **json.loads(row["payload"]),
                "_severity": row["severity"],
                "_code": row.get("code"),
                "_message": row.get("message"),
                "_category": row["category"],
            }
        )
    return out


def dataset_facts(collector: DiagnosticsCollector, name: str) -> dict[str, Any]:
    """The registration facts recorded by this step for dataset ``name``."""
    modes = _payloads(collector, "dataset_provider_mode_v1", dataset=name)
    health = _payloads(collector, "delta_log_health_v1", dataset=name)
    compat = _payloads(collector, "delta_protocol_compatibility_v1", dataset=name)
    log_problems = [
        r
        for r in collector.all_rows()
        if r.get("dataset") == name and r["category"] == "delta_log" and r["severity"] in ("warn", "error")
    ]
    protocol_errors = [
        r
        for r in collector.all_rows()
        if r.get("dataset") == name and r["category"] == "delta_protocol" and r["severity"] == "error"
    ]
    return {
        "mode": modes[-1] if modes else {},
        "health": health[-1] if health else {},
        "compatibility": compat,
        "log_problems": log_problems,
        "protocol_errors": protocol_errors,
    }


def dataset_metadata(facts: Mapping[str, Any], outcome: Any) -> dict[str, Any]:
    mode, health = facts["mode"], facts["health"]
    meta: dict[str, Any] = {
        "provider_mode": str(mode.get("provider_mode", "none")),
        "provider_class": str(mode.get("provider_class", "")),
        "filter_pushdown": bool(mode.get("filter_pushdown", False)),
        "datafusion_version": str(mode.get("datafusion_version", "")),
        "deltalake_version": str(mode.get("deltalake_version", "")),
        "table_features": ", ".join(health.get("table_features") or []) or "(none)",
    }
    for key in ("latest_version", "commits_since_checkpoint", "min_reader_version", "min_writer_version"):
        if isinstance(health.get(key), int):
            meta[key] = health[key]
    if mode.get("fallback_reason"):
        meta["fallback_reason"] = str(mode["fallback_reason"])
    if outcome is not None:
        meta["dagster/uri"] = outcome.uri
        meta["dagster/table_name"] = outcome.registration.registered.dataset
        if outcome.row_count is not None:
            meta["dagster/row_count"] = outcome.row_count
        meta.update(column_schema(outcome.schema))
    return meta


def dataset_checks(facts: Mapping[str, Any], error: Exception | None = None) -> list[dg.AssetCheckResult]:
    mode = facts["mode"]
    provider = str(mode.get("provider_mode", "none"))
    fallback = mode.get("fallback_reason")
    compatible = error is None and bool(mode) and not facts["protocol_errors"] and provider != "none"
    problems = facts["log_problems"]
    reasons = [str(r.get("message") or r.get("code")) for r in facts["protocol_errors"]]
    if error is not None:  # the root cause: the events above are in the report
        reasons = [clean_error_text(getattr(error, "reason", None) or str(error))]
    return [
        check(
            "provider_mode",
            passed=not fallback and provider not in ("none", "pyarrow_dataset"),
            severity=Severity.WARN,
            explanation=f"served by {provider}" + (f"; fallback because {fallback}" if fallback else ""),
            metadata={"provider_mode": provider},
        ),
        check(
            "delta_protocol_compatible",
            passed=compatible,
            severity=Severity.ERROR,
            explanation="a provider reads this table's protocol correctly"
            if compatible
            else "; ".join(reasons) or "no provider reads this table correctly: registration failed",
        ),
        check(
            "delta_log_checkpoint",
            passed=not problems,
            severity=Severity.WARN,
            explanation="Delta log healthy"
            if not problems
            else "; ".join(f"{r['severity']}: {r.get('message') or r.get('code')}" for r in problems[:5]),
            metadata={"problems": len(problems)},
        ),
    ]


# --- plans ---------------------------------------------------------------------------------------------


def plan_metadata(outcome: Any, previous_hash: Any) -> dict[str, Any]:
    execution = outcome.execution
    meta: dict[str, Any] = {
        "dagster/uri": outcome.uri,
        "dagster/table_name": execution.name,
        "dagster/row_count": execution.table.num_rows,
        "delta_version": outcome.version,
        "partition_count": int(execution.partition_count or 0),
        "write_ms": round(outcome.write_ms, 3),
    }
    meta.update(column_schema(execution.table.schema))
    for phase in execution.phases:
        meta[f"phase_ms/{phase.phase}"] = float(phase.duration_ms)
    for phase, digest in execution.plan_hashes.items():
        meta[f"plan_hash/{phase}"] = str(digest)
    current = execution.plan_hashes.get("optimized")
    if previous_hash is not None and current is not None:
        meta["plan_hash_changed"] = bool(previous_hash != current)
    if execution.memory is not None:  # numbers, so the UI plots them across runs
        for key, value in execution.memory.to_row().items():
            if isinstance(value, int):
                meta[f"memory/{key}"] = value
    meta["join_operators"] = dg.MetadataValue.json([j.to_row() for j in execution.join_operators])
    meta["scan_units"] = dg.MetadataValue.md(render_scan_units_markdown(execution.scan_units))
    if execution.trace_id:
        meta["trace_id"] = execution.trace_id
    return meta


def plan_checks(collector: DiagnosticsCollector, name: str) -> list[dg.AssetCheckResult]:
    phases = _payloads(collector, "datafusion_plan_phase_v1", plan=name)
    missing = [
        p.get("phase")
        for p in phases
        if not (p.get("plan_hash") and p.get("span_id") and p.get("duration_ms") is not None)
    ]
    seen = {p.get("phase") for p in phases}
    absent = [p for p in ("logical", "optimized", "physical", "execute") if p not in seen]
    lost = [
        r for r in _payloads(collector, "scan_unit_pruning_v1", plan=name) if r["_code"] == "pruning_lost"
    ]
    return [
        check(
            "plan_phases_recorded",
            passed=not missing and not absent,
            severity=Severity.ERROR,
            explanation="every phase recorded with hash, duration and span"
            if not (missing or absent)
            else f"phases missing: {absent}; without hash/duration/span: {missing}",
        ),
        check(
            "scan_pruning_effective",
            passed=not lost,
            severity=Severity.WARN,
            explanation="no scan lost pruning it could have had"
            if not lost
            else "; ".join(str(r["_message"]) for r in lost[:5]),
            metadata={"scans_with_lost_pruning": len(lost)},
        ),
    ]
