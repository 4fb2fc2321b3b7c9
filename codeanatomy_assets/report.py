"""``run_diagnostics_report.md``: one run's diagnostics read back from the durable store.

:func:`collect_report` gathers the facts of a run into sections (the JSON form has one key per section);
:func:`render_markdown` renders them; :func:`evaluate_gates` evaluates the acceptance gates of seed 000 on
them. Order is deterministic (sorted by dataset, plan, phase), so golden files can pin the output.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.home import ProjectHome

if TYPE_CHECKING:
    from codeanatomy_assets.engine.scan import ScanUnit

REPORT_FILE: Final = "run_diagnostics_report.md"
SECTIONS: Final = (
    "run",
    "provider_modes",
    "delta_log_health",
    "datasets",
    "plan_phases",
    "plans",
    "scan_units",
    "diagnostics_by_category",
    "telemetry_config",
)
PHASES: Final = ("logical", "optimized", "physical", "execute")
FIRST_MESSAGES: Final = 3
FALLBACK_MODES: Final = frozenset({"pyarrow_dataset", "delta_scan_stream", "other"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """An acceptance gate of the run (seed 000, Cross-Cutting Acceptance Gates)."""

    name: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    name: str
    passed: bool
    explanation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedReport:
    run_id: str
    markdown: str
    data: Mapping[str, Any]
    path: Path
    gates: tuple[GateResult, ...]


GATES: Final = (
    Gate(
        name="report_sections_present",
        description="The report includes the provider-mode summary, Delta log health and plan-phase timings",
    ),
    Gate(
        name="fallbacks_diagnosed_as_warn",
        description="Every fallback provider mode is diagnosed as warn in category datafusion_provider",
    ),
    Gate(
        name="protocol_incompatibilities_are_errors",
        description="Every Delta protocol incompatibility is captured with severity error",
    ),
    Gate(
        name="events_carry_severity_and_category",
        description="Every event of the run carries a severity and a category from the vocabulary",
    ),
    Gate(
        name="cli_errors_carry_telemetry_context",
        description="Every CLI parse error recorded in the store carries the telemetry configuration "
        "snapshot",
    ),
)


def collect_report(store: DeltaDiagnosticsStore, run_id: str) -> dict[str, Any]:
    """The facts of run ``run_id`` as report sections (plain JSON-able rows)."""
    events = store.read_events(run_id)
    by_name: dict[str, list[DiagnosticEvent]] = defaultdict(list)
    for event in events:
        by_name[event.name].append(event)
    return {
        "run": _run_section(store.read_runs(run_id), run_id, events),
        "provider_modes": _provider_modes(by_name["dataset_provider_mode_v1"]),
        "delta_log_health": _log_health(by_name["delta_log_health_v1"]),
        "datasets": _rows(by_name["dataset_summary_v1"], key="dataset"),
        "plan_phases": _plan_phases(by_name["datafusion_plan_phase_v1"]),
        "plans": _rows(by_name["plan_output_v1"], key="plan"),
        "scan_units": _scan_units(by_name["scan_unit_pruning_v1"]),
        "diagnostics_by_category": _by_category(events),
        "telemetry_config": _telemetry(by_name["telemetry_config_v1"]),
        "_events": events,
    }


def _run_section(runs: Sequence[Mapping[str, Any]], run_id: str, events: Sequence[DiagnosticEvent]) -> dict:
    """The run envelope's latest state (the store keeps one row per run: finished once it finished)."""
    row: Mapping[str, Any] = runs[-1] if runs else {}
    metadata = row.get("metadata") or {}
    trace_ids = sorted({e.trace_id for e in events if e.trace_id})
    start_ms = row.get("start_time_unix_ms") or (
        min(e.event_time_unix_ms for e in events) if events else None
    )
    return {
        "run_id": run_id,
        "label": row.get("label"),
        "status": row.get("status") or "unknown",
        "start": _iso(start_ms),
        "duration_ms": row.get("duration_ms"),
        "trace_id": row.get("trace_id") or metadata.get("trace_id") or (trace_ids[0] if trace_ids else None),
        "error_type": row.get("error_type"),
        "error_message": row.get("error_message"),
        "failed_checks": list(metadata.get("failed_checks") or []),
        "events": len(events),
        "cancelled_by": metadata.get("cancelled_by"),
        "engine": dict(metadata.get("engine") or {}),
    }


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


def _provider_modes(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": e.dataset,
            "provider_mode": e.payload.get("provider_mode"),
            "provider_class": e.payload.get("provider_class"),
            "fallback_reason": e.payload.get("fallback_reason"),
            "filter_pushdown": e.payload.get("filter_pushdown"),
            "probe_ok": e.payload.get("probe_ok"),
            "severity": e.severity.value,
        }
        for e in _latest_per(events, "dataset")
    ]


def _log_health(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    rows = []
    for e in _latest_per(events, "dataset"):
        p = e.payload
        rows.append(
            {
                "dataset": e.dataset,
                "latest_version": p.get("latest_version"),
                "last_checkpoint_version": p.get("last_checkpoint_version"),
                "commits_since_checkpoint": p.get("commits_since_checkpoint"),
                "min_reader_version": p.get("min_reader_version"),
                "min_writer_version": p.get("min_writer_version"),
                "table_features": list(p.get("table_features") or []),
                "protocol_compatible": p.get("protocol_compatible"),
                "severity": e.severity.value,
            }
        )
    return rows


def _rows(events: Sequence[DiagnosticEvent], *, key: str) -> list[dict[str, Any]]:
    return [{key: getattr(e, key), **dict(e.payload)} for e in _latest_per(events, key)]


def _plan_phases(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(PHASES)}
    rows = [
        {
            "plan": e.plan,
            "phase": e.payload.get("phase"),
            "duration_ms": e.payload.get("duration_ms"),
            "plan_hash": e.payload.get("plan_hash"),
            "trace_id": e.payload.get("trace_id") or e.trace_id,
            "span_id": e.payload.get("span_id") or e.span_id,
            "status": "error" if e.severity is Severity.ERROR else "ok",
        }
        for e in events
    ]
    return sorted(rows, key=lambda r: (r["plan"] or "", order.get(r["phase"], 99), r["phase"] or ""))


def _scan_units(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    """One row per distinct scan of a plan (identical scans of one table, e.g. a self-join, are counted)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for e in events:
        p = e.payload
        row = {
            "plan": e.plan,
            "dataset": e.dataset or p.get("dataset") or p.get("dataset_label"),
            "provider_mode": p.get("provider_mode"),
            "total_files": p.get("total_files"),
            "candidate_files": p.get("candidate_files"),
            "pruned_files": p.get("pruned_files"),
            "delta_prunable_files": p.get("delta_prunable_files"),
            "predicate": p.get("predicate"),
            "scan_filters": list(p.get("scan_filters") or p.get("filters") or []),
            "pruning_lost": e.code == "pruning_lost" or bool(p.get("pruning_lost")),
        }
        key = tuple(json.dumps(v, sort_keys=True, default=str) for v in row.values())
        if key in rows:
            rows[key]["scans"] += 1
        else:
            rows[key] = {**row, "scans": 1}
    return sorted(rows.values(), key=lambda r: (r["plan"] or "", r["dataset"] or "", str(r["predicate"])))


def _by_category(events: Sequence[DiagnosticEvent]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[DiagnosticEvent]] = defaultdict(list)
    for e in events:
        if e.severity in (Severity.WARN, Severity.ERROR):
            groups[(e.category.value, e.severity.value)].append(e)
    rows = []
    for (category, severity), items in groups.items():
        rows.append(
            {
                "category": category,
                "severity": severity,
                "count": len(items),
                "first_messages": [e.message or e.name for e in items[:FIRST_MESSAGES]],
            }
        )
    rank = {s.value: s.rank for s in Severity}
    return sorted(rows, key=lambda r: (-rank[r["severity"]], r["category"]))


def _telemetry(events: Sequence[DiagnosticEvent]) -> dict[str, Any]:
    return dict(events[-1].payload) if events else {}


# --- gates ---------------------------------------------------------------------------------------------


def evaluate_gates(data: Mapping[str, Any]) -> tuple[GateResult, ...]:
    """Evaluate every gate on a collected report."""
    events: list[DiagnosticEvent] = data["_events"]
    results = []
    # A table no provider mode reads is not a fallback: it is diagnosed by its own error event.
    unreadable = [
        r["dataset"]
        for r in data["provider_modes"]
        if r["provider_mode"] == "none" and r["severity"] == Severity.ERROR.value
    ]
    missing = [s for s in ("provider_modes", "delta_log_health", "plan_phases") if not data[s]]
    excused = "plan_phases" in missing and bool(unreadable)  # its plans did not run
    missing = [s for s in missing if not (excused and s == "plan_phases")]
    present = "all present"
    if excused:
        present += f" (no plan ran: unreadable dataset(s) {', '.join(unreadable)}, each an error)"
    results.append(
        GateResult(
            name="report_sections_present",
            passed=not missing,
            explanation=present if not missing else f"empty sections: {', '.join(missing)}",
        )
    )
    fallbacks = [
        r
        for r in data["provider_modes"]
        if (r["fallback_reason"] or r["provider_mode"] in FALLBACK_MODES) and r["dataset"] not in unreadable
    ]
    bad_fallbacks = [r["dataset"] for r in fallbacks if r["severity"] != Severity.WARN.value]
    all_warn = f"{len(fallbacks)} fallback(s), all warn in datafusion_provider"
    if unreadable:
        all_warn += f"; {len(unreadable)} unreadable table(s) diagnosed as error, not fallbacks"
    results.append(
        GateResult(
            name="fallbacks_diagnosed_as_warn",
            passed=not bad_fallbacks,
            explanation=all_warn
            if not bad_fallbacks
            else f"fallbacks not diagnosed as warn: {bad_fallbacks}",
        )
    )
    incompat = [
        e
        for e in events
        if e.name == "delta_protocol_compatibility_v1" and e.payload.get("protocol_compatible") is False
    ]
    not_error = [e.dataset for e in incompat if e.severity is not Severity.ERROR]
    results.append(
        GateResult(
            name="protocol_incompatibilities_are_errors",
            passed=not not_error,
            explanation=f"{len(incompat)} incompatibility record(s), all error"
            if not not_error
            else f"incompatibilities not at error: {not_error}",
        )
    )
    categories = {c.value for c in Category}
    untyped = [e.event_id for e in events if e.category.value not in categories or e.severity is None]
    results.append(
        GateResult(
            name="events_carry_severity_and_category",
            passed=not untyped,
            explanation=f"{len(events)} events, all with severity and category"
            if not untyped
            else f"{len(untyped)} events without a valid severity/category",
        )
    )
    cli = [e for e in events if e.category is Category.CLI and e.severity is Severity.ERROR]
    without = [e.event_id for e in cli if not e.payload.get("telemetry_config")]
    results.append(
        GateResult(
            name="cli_errors_carry_telemetry_context",
            passed=not without,
            explanation=(
                f"{len(cli)} CLI error event(s) in this run, all with the configuration snapshot"
                if cli
                else "no CLI parse error in this run (the test suite exercises this gate)"
            )
            if not without
            else f"{len(without)} CLI error events without configuration context",
        )
    )
    return tuple(results)


# --- rendering -----------------------------------------------------------------------------------------


def to_json(data: Mapping[str, Any], gates: Sequence[GateResult]) -> dict[str, Any]:
    """The JSON form: one key per section, plus the gates."""
    out = {key: data[key] for key in SECTIONS}
    out["gates"] = [{"name": g.name, "passed": g.passed, "explanation": g.explanation} for g in gates]
    return out


def render_markdown(data: Mapping[str, Any], gates: Sequence[GateResult]) -> str:
    run = data["run"]
    lines = [
        f"# Run diagnostics report: {run['label'] or 'run'}",
        "",
        markdown_table([run], ["run_id", "label", "status", "start", "duration_ms", "trace_id", "events"]),
    ]
    if run.get("error_type"):
        lines += ["", f"**Failed:** `{run['error_type']}`: {run['error_message']}"]
    if run.get("failed_checks"):
        lines += ["", "**Failed checks:** " + ", ".join(f"`{c}`" for c in run["failed_checks"])]
    if run.get("cancelled_by"):
        lines += [
            "",
            f"**Cancelled** by {run['cancelled_by']} after {run['duration_ms']} ms: "
            "a plan stopped on the way wrote nothing.",
        ]
    lines += [
        "",
        "## Acceptance gates",
        "",
        markdown_table(
            [
                {"gate": g.name, "passed": "yes" if g.passed else "**NO**", "explanation": g.explanation}
                for g in gates
            ],
            ["gate", "passed", "explanation"],
        ),
    ]
    lines += [
        "",
        "## Provider modes",
        "",
        markdown_table(
            data["provider_modes"],
            ["dataset", "provider_mode", "provider_class", "fallback_reason", "filter_pushdown", "probe_ok"],
        ),
    ]
    lines += [
        "",
        "## Delta log health",
        "",
        markdown_table(
            data["delta_log_health"],
            [
                "dataset",
                "latest_version",
                "last_checkpoint_version",
                "commits_since_checkpoint",
                "min_reader_version",
                "min_writer_version",
                "table_features",
                "protocol_compatible",
            ],
        ),
    ]
    lines += [
        "",
        "## Datasets",
        "",
        markdown_table(data["datasets"], ["dataset", "rows", "files", "version", "uri"]),
    ]
    lines += [
        "",
        "## Plans",
        "",
        markdown_table(
            data["plans"],
            [
                "plan",
                "rows",
                "files",
                "version",
                "write_ms",
                "peak_mem_bytes",
                "spill_count",
                "spilled_bytes",
                "result_bytes",
            ],
        ),
    ]
    lines += ["", "## Engine", "", _engine_table(run["engine"])]
    lines += ["", "## Plan-phase timings", "", *_phase_section(data["plan_phases"])]
    lines += ["", "## Scan pruning", "", *_scan_section(data["scan_units"])]
    lines += [
        "",
        "## Warnings and errors by category",
        "",
        markdown_table(
            [
                {**r, "first_messages": " / ".join(r["first_messages"])}
                for r in data["diagnostics_by_category"]
            ],
            ["severity", "category", "count", "first_messages"],
        ),
    ]
    lines += [
        "",
        "## Telemetry configuration",
        "",
        _telemetry_table(data["telemetry_config"]),
    ]
    return "\n".join(lines) + "\n"


def _phase_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r["plan"] or ""] += float(r["duration_ms"] or 0)
    total_rows = [
        {"plan": p, "total_ms": round(t, 3)} for p, t in sorted(totals.items(), key=lambda x: -x[1])
    ]
    slowest = sorted(rows, key=lambda r: -(r["duration_ms"] or 0))[:10]
    return [
        markdown_table(rows, ["plan", "phase", "duration_ms", "plan_hash", "status", "trace_id", "span_id"]),
        "",
        "Totals per plan (slowest first):",
        "",
        markdown_table(total_rows, ["plan", "total_ms"]),
        "",
        "Slowest phases:",
        "",
        markdown_table(slowest, ["plan", "phase", "duration_ms"]),
    ]


def _scan_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    per_dataset: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        totals = per_dataset[r["dataset"] or ""]
        totals[0] += (r["total_files"] or 0) * r["scans"]
        totals[1] += (r["pruned_files"] or 0) * r["scans"]
        totals[2] += (r["delta_prunable_files"] or 0) * r["scans"]
    top = sorted(
        (
            {
                "dataset": dataset,
                "files_scanned_live": live,
                "pruned": pruned,
                "pruning_ratio": round(pruned / live, 3) if live else 0.0,
                "delta_could_skip": prunable,
            }
            for dataset, (live, pruned, prunable) in per_dataset.items()
        ),
        key=lambda r: (-r["pruning_ratio"], -r["delta_could_skip"], r["dataset"]),
    )
    lost = [r for r in rows if r["pruning_lost"]]
    return [
        markdown_table(
            rows,
            [
                "plan",
                "dataset",
                "scans",
                "provider_mode",
                "total_files",
                "candidate_files",
                "pruned_files",
                "delta_prunable_files",
                "predicate",
            ],
        ),
        "",
        "Datasets by pruning ratio (files skipped / live files over all scans):",
        "",
        markdown_table(top, ["dataset", "files_scanned_live", "pruned", "pruning_ratio", "delta_could_skip"]),
        "",
        "Pruning lost (Delta's statistics could skip files the scan read):",
        "",
        markdown_table(lost, ["plan", "dataset", "candidate_files", "delta_prunable_files", "predicate"]),
    ]


def _scan_cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_scan_units_markdown(units: Sequence[ScanUnit]) -> str:
    """A markdown table of scan units, one row per scan, for reports and Dagster metadata."""
    from codeanatomy_assets.engine.scan import PRUNING_LOST, PRUNING_PARTIAL  # loads DataFusion: on use

    header = (
        "| plan | dataset | provider | live files | read | skipped | Delta could skip | row groups read |"
        " bytes scanned | predicate | status |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|\n"
    )
    rows = []
    for unit in units:
        status = PRUNING_LOST if unit.pruning_lost else PRUNING_PARTIAL if unit.pruning_partial else "ok"
        if unit.errors:
            status += " (" + "; ".join(unit.errors) + ")"
        groups = None
        if unit.row_groups_total is not None:
            groups = f"{unit.row_groups_matched}/{unit.row_groups_total}" + (
                "" if unit.row_groups_exact else " ≈"
            )
        rows.append(
            "| "
            + " | ".join(
                _scan_cell(v)
                for v in (
                    unit.plan,
                    unit.dataset_label,
                    unit.provider_mode.value if unit.provider_mode else None,
                    unit.total_files,
                    unit.candidate_files,
                    unit.pruned_files,
                    unit.delta_prunable_files,
                    groups,
                    unit.bytes_scanned,
                    unit.delta_predicate or unit.predicate,
                    status,
                )
            )
            + " |\n"
        )
    return header + "".join(rows)


def _engine_table(engine: Mapping[str, Any]) -> str:
    """The effective engine settings of the run (memory limit, spill folder, DataFusion options)."""
    if not engine:
        return "(not recorded)"
    rows = [{"setting": key, "value": value} for key, value in sorted(engine.items())]
    return markdown_table(rows, ["setting", "value"])


def _telemetry_table(config: Mapping[str, Any]) -> str:
    rows = []
    for key, value in sorted(config.items()):
        if isinstance(value, Mapping) and "value" in value:
            rows.append({"setting": key, "value": value["value"], "source": value.get("source")})
        else:
            rows.append({"setting": key, "value": value, "source": None})
    return markdown_table(rows, ["setting", "value", "source"])


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` (cells escaped, lists joined, floats to 3 places)."""
    if not rows:
        return "_none recorded_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, *body])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:.3f}"
    elif isinstance(value, (dict,)):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def build_report(
    store: DeltaDiagnosticsStore, run_id: str
) -> tuple[dict[str, Any], str, tuple[GateResult, ...]]:
    """Collect, evaluate gates and render the markdown of one run."""
    data = collect_report(store, run_id)
    gates = evaluate_gates(data)
    return data, render_markdown(data, gates), gates


def write_run_report(home: ProjectHome, run_id: str, *, label: str | None = None) -> RenderedReport:
    """Render run ``run_id`` and write ``<home>/reports/<run_id>/run_diagnostics_report.md``.

    The newest report is also copied to ``<home>/run_diagnostics_report.md``.
    """
    store = home.diagnostics_store()
    data, markdown, gates = build_report(store, run_id)
    if label and not data["run"]["label"]:
        data["run"]["label"] = label
        markdown = render_markdown(data, gates)
    folder = home.reports / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_FILE
    _atomic_write(path, markdown)
    _atomic_write(home.root / REPORT_FILE, markdown)
    return RenderedReport(run_id=run_id, markdown=markdown, data=to_json(data, gates), path=path, gates=gates)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
