"""The doctor's layout and treatment sections: the layout read, the maintenance planned or applied, their
events, and their Markdown.

``codeanatomy doctor URI`` reads the layout; ``--fix`` adds the maintenance plan (a dry run: nothing is
written); ``--fix --apply`` runs it (:mod:`codeanatomy_assets.delta.maintenance`) and re-reads the layout,
so the report's ``layout`` is the table as it is after the treatment and ``maintenance.outcomes`` holds the
figures before and after each step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.layout import LayoutThresholds, read_table_layout
from codeanatomy_assets.delta.layout.events import layout_events, maintenance_events
from codeanatomy_assets.delta.maintenance import StepOutcome, apply_plan, plan_maintenance
from codeanatomy_assets.diagnostics.events import DiagnosticEvent


@dataclass(frozen=True, slots=True)
class DoctorTreatment:
    """What the doctor does beyond diagnosing: plan maintenance (``fix``), run it (``apply``)."""

    fix: bool = False
    apply: bool = False
    thresholds: LayoutThresholds | None = None


def examine_layout(
    uri: str,
    storage_options: Mapping[str, str] | None,
    health: LogHealth,
    *,
    run_id: str,
    dataset: str,
    treatment: DoctorTreatment,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[DiagnosticEvent]]:
    """(the ``layout`` key, the ``maintenance`` key, their events) of a doctor report."""
    layout = read_table_layout(uri, storage_options, health=health, thresholds=treatment.thresholds)
    if not (treatment.fix or treatment.apply):
        return layout.to_row(), None, layout_events(run_id=run_id, dataset=dataset, uri=uri, layout=layout)
    plan = plan_maintenance(uri, storage_options, health=health, layout=layout)
    outcomes: list[StepOutcome] | None = None
    if treatment.apply:
        outcomes = apply_plan(plan, storage_options, treatment.thresholds)
        if outcomes:
            layout = read_table_layout(uri, storage_options, thresholds=treatment.thresholds)
    events = [
        *layout_events(run_id=run_id, dataset=dataset, uri=uri, layout=layout),
        *maintenance_events(run_id=run_id, dataset=dataset, plan=plan, outcomes=outcomes),
    ]
    return layout.to_row(), _maintenance_row(plan.to_row(), outcomes, applied=treatment.apply), events


def _maintenance_row(
    plan: dict[str, Any], outcomes: Sequence[StepOutcome] | None, *, applied: bool
) -> dict[str, Any]:
    return {
        "mode": "apply" if applied else "dry_run",
        **plan,
        "outcomes": [o.to_row() for o in outcomes] if outcomes is not None else None,
    }


# ----------------------------------------------------------------------------------------------------
# Markdown

_FIGURES = (
    ("files", "file_count"),
    ("bytes", "total_bytes"),
    ("small files", "small_files"),
    ("files with statistics", "files_with_stats"),
    ("rows", "total_rows"),
    ("partitions", "partition_count"),
    ("largest / median partition bytes", ("largest_partition_bytes", "median_partition_bytes")),
    (
        "tombstones (on storage, past retention)",
        ("tombstones", "tombstones_present", "tombstones_past_retention"),
    ),
    (
        "files with deletion vectors (rows deleted)",
        ("files_with_deletion_vectors", "rows_deleted_by_deletion_vectors"),
    ),
    ("commits since checkpoint (interval)", ("commits_since_checkpoint", "checkpoint_interval")),
    ("_delta_log files / bytes", ("delta_log_files", "delta_log_bytes")),
    (".crc files (checked)", ("crc_files", "crc_checked")),
)


def _figure(layout: Mapping[str, Any], keys: str | tuple[str, ...]) -> str:
    if isinstance(keys, str):
        return str(layout.get(keys, "-"))
    return " / ".join(str(layout.get(k, "-")) for k in keys)


def layout_markdown(layout: Mapping[str, Any] | None) -> list[str]:
    """The layout section: the figures, the size histogram, then each finding with its action."""
    if not layout:
        return []
    lines = ["", "## Layout", "", "| figure | value |", "|---|---|"]
    lines += [f"| {label} | {_figure(layout, keys)} |" for label, keys in _FIGURES]
    histogram = ", ".join(f"{bucket}: {n}" for bucket, n in (layout.get("size_histogram") or {}).items())
    lines += [f"| size histogram | {histogram or '-'} |"]
    findings = layout.get("findings") or []
    if findings:
        lines += ["", "| severity | finding | message | action |", "|---|---|---|---|"]
        lines += [_finding_line(f) for f in findings]
    return lines


def _finding_line(finding: Mapping[str, Any]) -> str:
    cells = (finding["severity"], finding["code"], finding["message"], finding["action"])
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def maintenance_markdown(maintenance: Mapping[str, Any] | None) -> list[str]:
    """The maintenance section: the refusal, or each step planned, then what applying it did."""
    if not maintenance:
        return []
    title = "Maintenance (applied)" if maintenance["mode"] == "apply" else "Maintenance plan (dry run)"
    lines = ["", f"## {title}", ""]
    if maintenance.get("refused"):
        return [*lines, f"Refused: {maintenance['refused']}"]
    if not maintenance["steps"]:
        return [*lines, "Nothing to do: no finding calls for maintenance."]
    lines += [
        f"{i}. `{s['treatment']}` for {'; '.join(s['reasons'])}"
        for i, s in enumerate(maintenance["steps"], 1)
    ]
    lines += [f"   - vacuum would delete `{f}`" for s in maintenance["steps"] for f in s["files"][:20]]
    return lines + _outcome_lines(maintenance.get("outcomes"))


def _outcome_lines(outcomes: Sequence[Mapping[str, Any]] | None) -> list[str]:
    if outcomes is None:
        return ["", "Dry run: nothing was written. Apply with `--fix --apply`."]
    lines = [
        "",
        "| step | status | files before → after | commits since checkpoint | error |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o['treatment']} | {o['status']} | {_change(o, 'file_count')} | "
            f"{_change(o, 'commits_since_checkpoint')} | {o['error'] or '-'} |"
        )
    return lines


def _change(outcome: Mapping[str, Any], figure: str) -> str:
    """``before → after`` of one figure of a step's outcome (``-`` after a failed step)."""
    return f"{outcome['before'].get(figure, '-')} → {(outcome['after'] or {}).get(figure, '-')}"
