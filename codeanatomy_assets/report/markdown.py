"""The markdown of a run's report: the run's header, then one renderer per section."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from codeanatomy_assets.report.gates import GateResult
from codeanatomy_assets.report.tables import markdown_table

RUN_COLUMNS: Final = ("run_id", "label", "status", "start", "duration_ms", "trace_id", "events")
PROVIDER_MODE_COLUMNS: Final = (
    "dataset",
    "provider_mode",
    "provider_class",
    "fallback_reason",
    "filter_pushdown",
    "probe_ok",
)
LOG_HEALTH_COLUMNS: Final = (
    "dataset",
    "latest_version",
    "last_checkpoint_version",
    "commits_since_checkpoint",
    "min_reader_version",
    "min_writer_version",
    "table_features",
    "protocol_compatible",
)
DATASET_COLUMNS: Final = ("dataset", "rows", "files", "version", "uri")
PLAN_COLUMNS: Final = (
    "plan",
    "rows",
    "files",
    "version",
    "write_ms",
    "peak_mem_bytes",
    "spill_count",
    "spilled_bytes",
    "result_bytes",
)
PHASE_COLUMNS: Final = ("plan", "phase", "duration_ms", "plan_hash", "status", "trace_id", "span_id")
SCAN_COLUMNS: Final = (
    "plan",
    "dataset",
    "scans",
    "provider_mode",
    "total_files",
    "candidate_files",
    "pruned_files",
    "delta_prunable_files",
    "predicate",
)
SLOWEST_PHASES: Final = 10
CHANGE_COLUMNS: Final = ("added", "changed", "deleted", "unchanged", "modules", "files_parsed")
TOP_OPERATOR_COLUMNS: Final = ("plan", "operator", "elapsed_compute_ms", "output_rows")
CHANGES_COLUMNS: Final = ("severity", "kind", "category", "asset", "message")
SKIPPED_COLUMNS: Final = ("plan", "output_version", "since_run", "reason")
PATHS_SHOWN: Final = 20
"""Paths listed per kind of change (added, changed, deleted); the rest are counted."""


def render_markdown(data: Mapping[str, Any], gates: Sequence[GateResult]) -> str:
    """The report of a collected run: its header, then one ``##`` section each."""
    lines = _run_header(data["run"])
    for heading, body in _sections(data, gates):
        lines += ["", f"## {heading}", "", *body]
    return "\n".join(lines) + "\n"


def _sections(data: Mapping[str, Any], gates: Sequence[GateResult]) -> list[tuple[str, list[str]]]:
    """Every section of the report in order: its heading and its lines."""
    return [
        ("Acceptance gates", [_gates_table(gates)]),
        ("Changes since the last run", _changes_section(data["changes"])),
        ("Rebuild", _rebuild_section(data["rebuild"])),
        ("Provider modes", [markdown_table(data["provider_modes"], PROVIDER_MODE_COLUMNS)]),
        ("Delta log health", [markdown_table(data["delta_log_health"], LOG_HEALTH_COLUMNS)]),
        ("Datasets", [markdown_table(data["datasets"], DATASET_COLUMNS)]),
        ("Plans", [markdown_table(data["plans"], PLAN_COLUMNS)]),
        ("Engine", [_engine_table(data["run"]["engine"])]),
        ("Plan-phase timings", _phase_section(data["plan_phases"])),
        (
            "Top operators by compute time",
            [markdown_table(_top_operators(data["plans"]), TOP_OPERATOR_COLUMNS)],
        ),
        ("Scan pruning", _scan_section(data["scan_units"])),
        ("Warnings and errors by category", [_category_table(data["diagnostics_by_category"])]),
        ("Telemetry configuration", [_telemetry_table(data["telemetry_config"])]),
    ]


def _run_header(run: Mapping[str, Any]) -> list[str]:
    """The title, the run's table, and how it failed or was cancelled."""
    lines = [f"# Run diagnostics report: {run['label'] or 'run'}", "", markdown_table([run], RUN_COLUMNS)]
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
    return lines


def _gates_table(gates: Sequence[GateResult]) -> str:
    rows = [
        {"gate": g.name, "passed": "yes" if g.passed else "**NO**", "explanation": g.explanation}
        for g in gates
    ]
    return markdown_table(rows, ["gate", "passed", "explanation"])


def _changes_section(changes: Mapping[str, Any]) -> list[str]:
    """Which run this one was compared with, and each change (warnings first)."""
    compared = changes.get("compared_with")
    if compared is None:
        return ["No earlier completed run of this pipeline to compare with."]
    against = "the pinned baseline" if changes.get("baseline") else "the previous completed run"
    rows = changes["changes"]
    lines = [f"Compared with {against}, `{compared}`: {len(rows)} change(s).", ""]
    return [*lines, markdown_table(rows, CHANGES_COLUMNS)] if rows else lines[:1]


def _rebuild_section(rebuild: Mapping[str, Any]) -> list[str]:
    """Full or incremental and why, what the extraction changed, the plans run and the plans skipped."""
    lines = [f"**{rebuild['mode'] or 'not recorded'}**: {rebuild['reason'] or 'no reason recorded'}", ""]
    lines += _extract_changes(rebuild["extract"])
    run, skipped = rebuild["plans_run"], rebuild["plans_skipped"]
    lines += [f"Plans run ({len(run)}):", "", markdown_table(run, ["plan", "version", "rows"]), ""]
    lines += [f"Plans skipped ({len(skipped)}), their outputs unchanged:", ""]
    return [*lines, markdown_table(skipped, SKIPPED_COLUMNS)]


def _extract_changes(extract: Mapping[str, Any] | None) -> list[str]:
    """The files the extraction found added, changed and deleted, and the tables it rewrote."""
    if extract is None:
        return ["No extraction in this run.", ""]
    rewritten = ", ".join(f"`{t}`" for t in extract["tables_rewritten"]) or "none"
    counted = [c for c in CHANGE_COLUMNS if extract[c] is not None]  # a full extraction compares nothing
    lines = [markdown_table([extract], counted), "", f"Tables rewritten: {rewritten}", ""]
    for kind in ("added", "changed", "deleted"):
        paths = extract[f"{kind}_paths"]
        if paths:
            more = (extract[kind] or len(paths)) - min(len(paths), PATHS_SHOWN)
            shown = ", ".join(f"`{p}`" for p in paths[:PATHS_SHOWN]) + (
                f" and {more} more" if more > 0 else ""
            )
            lines += [f"Files {kind}: {shown}", ""]
    return lines


def _top_operators(plans: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each plan's operators with the most compute time (from its ``plan_output_v1``)."""
    return [{"plan": p["plan"], **op} for p in plans for op in p.get("top_operators") or ()]


def _phase_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every phase, the total per plan (slowest first), and the slowest phases."""
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r["plan"] or ""] += float(r["duration_ms"] or 0)
    total_rows = [
        {"plan": p, "total_ms": round(t, 3)} for p, t in sorted(totals.items(), key=lambda x: -x[1])
    ]
    slowest = sorted(rows, key=lambda r: -(r["duration_ms"] or 0))[:SLOWEST_PHASES]
    return [
        markdown_table(rows, PHASE_COLUMNS),
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
    """Every distinct scan, the datasets by pruning ratio, and the scans that lost pruning."""
    lost = [r for r in rows if r["pruning_lost"]]
    return [
        markdown_table(rows, SCAN_COLUMNS),
        "",
        "Datasets by pruning ratio (files skipped / live files over all scans):",
        "",
        markdown_table(
            _pruning_by_dataset(rows),
            ["dataset", "files_scanned_live", "pruned", "pruning_ratio", "delta_could_skip"],
        ),
        "",
        "Pruning lost (Delta's statistics could skip files the scan read):",
        "",
        markdown_table(lost, ["plan", "dataset", "candidate_files", "delta_prunable_files", "predicate"]),
    ]


def _pruning_by_dataset(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset over all its scans: live files, files pruned and files Delta could skip, best first."""
    per_dataset: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        totals = per_dataset[r["dataset"] or ""]
        totals[0] += (r["total_files"] or 0) * r["scans"]
        totals[1] += (r["pruned_files"] or 0) * r["scans"]
        totals[2] += (r["delta_prunable_files"] or 0) * r["scans"]
    return sorted(
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


def _category_table(rows: Sequence[Mapping[str, Any]]) -> str:
    joined = [{**r, "first_messages": " / ".join(r["first_messages"])} for r in rows]
    return markdown_table(joined, ["severity", "category", "count", "first_messages"])


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
