"""The sections of a run's report: the facts of the run, read back from the store as JSON-able rows.

:func:`collect_report` returns one key per section (the JSON form's keys, :data:`SECTIONS`) plus ``_events``,
every event of the run, from which :mod:`~codeanatomy_assets.report.gates` decides the gates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from codeanatomy_assets.diagnostics.event_names import (
    DATAFUSION_PLAN_PHASE,
    DATASET_PROVIDER_MODE,
    DATASET_SUMMARY,
    DELTA_LOG_HEALTH,
    EXTRACT_REBUILD,
    PLAN_OUTPUT,
    PLAN_SKIPPED,
    SCAN_UNIT_PRUNING,
    TELEMETRY_CONFIG,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.report.facts import (
    PHASES,
    ExtractRebuildFact,
    LogHealthFact,
    PlanPhaseFact,
    PlanRunFact,
    PlanSkippedFact,
    ProviderModeFact,
    ScanUnitFact,
)

SECTIONS: Final = (
    "run",
    "changes",
    "rebuild",
    "provider_modes",
    "delta_log_health",
    "datasets",
    "plan_phases",
    "plans",
    "scan_units",
    "diagnostics_by_category",
    "telemetry_config",
)
FIRST_MESSAGES: Final = 3


def collect_report(store: DeltaDiagnosticsStore, run_id: str) -> dict[str, Any]:
    """The facts of run ``run_id`` as report sections (plain JSON-able rows)."""
    events, runs = store.read_events(run_id), store.read_runs(run_id)
    by_name: dict[str, list[DiagnosticEvent]] = defaultdict(list)
    for event in events:
        by_name[event.name].append(event)
    return {
        "run": _run_section(runs, run_id, events),
        "rebuild": _rebuild(runs, by_name),
        "provider_modes": _per_dataset(by_name[DATASET_PROVIDER_MODE], ProviderModeFact),
        "delta_log_health": _per_dataset(by_name[DELTA_LOG_HEALTH], LogHealthFact),
        "datasets": _rows(by_name[DATASET_SUMMARY], key="dataset"),
        "plan_phases": _plan_phases(by_name[DATAFUSION_PLAN_PHASE]),
        "plans": _rows(by_name[PLAN_OUTPUT], key="plan"),
        "scan_units": _scan_units(by_name[SCAN_UNIT_PRUNING]),
        "diagnostics_by_category": _by_category(events),
        "telemetry_config": _telemetry(by_name[TELEMETRY_CONFIG]),
        "_events": events,
    }


def _run_section(runs: Sequence[Mapping[str, Any]], run_id: str, events: Sequence[DiagnosticEvent]) -> dict:
    """The run envelope's latest state (the store keeps one row per run: finished once it finished)."""
    row: Mapping[str, Any] = runs[-1] if runs else {}
    metadata = row.get("metadata") or {}
    return {
        "run_id": run_id,
        "label": row.get("label"),
        "status": row.get("status") or "unknown",
        "start": _iso(row.get("start_time_unix_ms") or _first_event_ms(events)),
        "duration_ms": row.get("duration_ms"),
        "trace_id": row.get("trace_id") or metadata.get("trace_id") or _first_trace_id(events),
        "error_type": row.get("error_type"),
        "error_message": row.get("error_message"),
        "failed_checks": list(metadata.get("failed_checks") or []),
        "events": len(events),
        "cancelled_by": metadata.get("cancelled_by"),
        "engine": dict(metadata.get("engine") or {}),
    }


NO_EXTRACT_REASONS: Final = {
    "full": "full rebuild requested (--full): every plan runs",
    "incremental": "no extraction (the spec has no [extract]): each plan runs when its SQL or an input "
    "table's Delta version changed",
}


def _rebuild(runs: Sequence[Mapping[str, Any]], by_name: Mapping[str, list[DiagnosticEvent]]) -> dict:
    """Full or incremental and why (the extraction's ``extract_rebuild_v1``, else the build's request),
    what the extraction changed, and the plans run and skipped."""
    extracts = by_name.get(EXTRACT_REBUILD, [])
    extract = ExtractRebuildFact.from_event(extracts[-1]) if extracts else None
    requested = ((runs[-1].get("metadata") or {}) if runs else {}).get("rebuild")
    mode = extract.mode if extract is not None else requested
    reason = extract.reason if extract is not None else NO_EXTRACT_REASONS.get(requested or "")
    run = [PlanRunFact.from_event(e).to_row() for e in _latest_per(by_name.get(PLAN_OUTPUT, []), "plan")]
    skipped = [PlanSkippedFact.from_event(e) for e in _latest_per(by_name.get(PLAN_SKIPPED, []), "plan")]
    return {
        "mode": mode,
        "reason": reason,
        "extract": extract.to_row() if extract is not None else None,
        "plans_run": run,
        "plans_skipped": [fact.to_row() for fact in skipped],
    }


def _first_event_ms(events: Sequence[DiagnosticEvent]) -> int | None:
    return min(e.event_time_unix_ms for e in events) if events else None


def _first_trace_id(events: Sequence[DiagnosticEvent]) -> str | None:
    """The smallest trace id among the events (``None`` when none carries one)."""
    trace_ids = sorted({e.trace_id for e in events if e.trace_id})
    return trace_ids[0] if trace_ids else None


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _latest_per(events: Sequence[DiagnosticEvent], attr: str) -> list[DiagnosticEvent]:
    latest: dict[str, DiagnosticEvent] = {}
    for event in events:
        key = getattr(event, attr) or ""
        latest[key] = event
    return [latest[k] for k in sorted(latest)]


def _per_dataset(
    events: Sequence[DiagnosticEvent], record: type[ProviderModeFact] | type[LogHealthFact]
) -> list[dict[str, Any]]:
    """The row of each dataset's latest event, read as ``record``."""
    return [record.from_event(e).to_row() for e in _latest_per(events, "dataset")]


def _rows(events: Sequence[DiagnosticEvent], *, key: str) -> list[dict[str, Any]]:
    return [{key: getattr(e, key), **dict(e.payload)} for e in _latest_per(events, key)]


def _plan_phases(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(PHASES)}
    rows = [PlanPhaseFact.from_event(e).to_row() for e in events]
    return sorted(rows, key=lambda r: (r["plan"] or "", order.get(r["phase"], 99), r["phase"] or ""))


def _scan_units(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    """One row per distinct scan of a plan (identical scans of one table, e.g. a self-join, are counted)."""
    scans: dict[tuple[str, ...], list[ScanUnitFact]] = defaultdict(list)
    for e in events:
        fact = ScanUnitFact.from_event(e)
        scans[fact.identity()].append(fact)
    rows = [{**same[0].to_row(), "scans": len(same)} for same in scans.values()]
    return sorted(rows, key=lambda r: (r["plan"] or "", r["dataset"] or "", str(r["predicate"])))


def _by_category(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[DiagnosticEvent]] = defaultdict(list)
    for e in events:
        if e.severity in (Severity.WARN, Severity.ERROR):
            groups[(e.category.value, e.severity.value)].append(e)
    rows = [
        {
            "category": category,
            "severity": severity,
            "count": len(items),
            "first_messages": [e.message or e.name for e in items[:FIRST_MESSAGES]],
        }
        for (category, severity), items in groups.items()
    ]
    rank = {s.value: s.rank for s in Severity}
    return sorted(rows, key=lambda r: (-rank[r["severity"]], r["category"]))


def _telemetry(events: Sequence[DiagnosticEvent]) -> dict[str, Any]:
    return dict(events[-1].payload) if events else {}
