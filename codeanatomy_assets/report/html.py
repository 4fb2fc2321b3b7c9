"""The report as one self-contained HTML file: the run's tables and its plots as inline SVG.

No script, no stylesheet or font from the network: the file opens offline (tested in Chromium with the
network blocked). Every text from the store is HTML-escaped. Every build writes it next to the markdown
(``run_diagnostics_report.html``); ``codeanatomy report --format html`` renders it for any past run.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Final

from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_PHASE
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.report import plots
from codeanatomy_assets.report.changes import same_pipeline
from codeanatomy_assets.report.gates import GateResult
from codeanatomy_assets.report.markdown import (
    CHANGE_COLUMNS,
    CHANGES_COLUMNS,
    DATASET_COLUMNS,
    PHASE_COLUMNS,
    PLAN_COLUMNS,
    RUN_COLUMNS,
    SCAN_COLUMNS,
    SKIPPED_COLUMNS,
)

HTML_FILE: Final = "run_diagnostics_report.html"
TREND_RUNS: Final = 20
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;"
    "font-size:13px;text-align:left;vertical-align:top}th{background:#f0f0f0}.fail{color:#b30000;"
    "font-weight:bold}.plot{margin:1em 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"
)


def run_history(store: DeltaDiagnosticsStore, run_id: str, count: int = TREND_RUNS) -> list[dict[str, Any]]:
    """The last ``count`` completed runs of the pipeline of ``run_id`` (it included), oldest first: each
    run's duration and its plans' execute milliseconds."""
    runs = store.read_runs()
    current = next((r for r in runs if r["run_id"] == run_id), None)
    if current is None:
        return []
    chosen = [
        r
        for r in runs
        if r["run_id"] == run_id or (r.get("status") == "completed" and same_pipeline(r, current))
    ]
    chosen = [r for r in chosen if r["start_time_unix_ms"] <= current["start_time_unix_ms"]][-count:]
    return [_history_row(store, r) for r in chosen]


def _history_row(store: DeltaDiagnosticsStore, run: Mapping[str, Any]) -> dict[str, Any]:
    phases = store.read_events(run["run_id"], names=[DATAFUSION_PLAN_PHASE])
    execute = {
        e.plan: e.payload.get("duration_ms") for e in phases if e.payload.get("phase") == "execute" and e.plan
    }
    return {
        "run_id": run["run_id"],
        "label": run["run_id"],
        "duration_ms": run.get("duration_ms"),
        "execute_ms": execute,
    }


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _gates(gates: Sequence[GateResult]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(g.name)}</td><td class='{'' if g.passed else 'fail'}'>"
        f"{'yes' if g.passed else 'NO'}</td><td>{html.escape(g.explanation)}</td></tr>"
        for g in gates
    )
    head = "<thead><tr><th>gate</th><th>passed</th><th>explanation</th></tr></thead>"
    return f"<table>{head}<tbody>{rows}</tbody></table>"


def _plot(title: str, svg: str | None) -> str:
    body = svg if svg is not None else "<p><em>nothing to plot</em></p>"
    return f"<h2>{html.escape(title)}</h2><div class='plot'>{body}</div>"


def _changes(changes: Mapping[str, Any]) -> str:
    compared = changes.get("compared_with")
    if compared is None:
        return "<p>No earlier completed run of this pipeline to compare with.</p>"
    return f"<p>Compared with run <code>{html.escape(compared)}</code>.</p>" + _table(
        changes["changes"], CHANGES_COLUMNS
    )


def _rebuild(rebuild: Mapping[str, Any]) -> str:
    """Full or incremental and why, what the extraction changed, the plans run and the plans skipped."""
    mode = html.escape(str(rebuild.get("mode") or "not recorded"))
    parts = [
        f"<p><strong>{mode}</strong>: {html.escape(str(rebuild.get('reason') or 'no reason recorded'))}</p>"
    ]
    extract = rebuild.get("extract")
    if extract is None:
        parts.append("<p>No extraction in this run.</p>")
    else:
        parts.append(_table([extract], [c for c in CHANGE_COLUMNS if extract.get(c) is not None]))
        rewritten = ", ".join(extract.get("tables_rewritten") or ()) or "none"
        parts.append(f"<p>Tables rewritten: {html.escape(rewritten)}</p>")
        for kind in ("added", "changed", "deleted"):
            if paths := extract.get(f"{kind}_paths"):
                parts.append(f"<p>Files {kind}: {html.escape(', '.join(paths))}</p>")
    run, skipped = rebuild.get("plans_run") or [], rebuild.get("plans_skipped") or []
    parts.append(f"<h3>Plans run ({len(run)})</h3>" + _table(run, ("plan", "version", "rows")))
    parts.append(f"<h3>Plans skipped ({len(skipped)}), their outputs unchanged</h3>")
    return "".join([*parts, _table(skipped, SKIPPED_COLUMNS)])


def render_html(
    data: Mapping[str, Any], gates: Sequence[GateResult], history: Sequence[Mapping[str, Any]]
) -> str:
    """The whole report: run, gates, changes, rebuild, plots, then the plans, datasets, phases and scans."""
    run = data["run"]
    sections = [
        f"<h1>Run diagnostics report: {html.escape(str(run.get('label') or 'run'))}</h1>",
        _table([run], RUN_COLUMNS),
        "<h2>Acceptance gates</h2>" + _gates(gates),
        "<h2>Changes since the last run</h2>" + _changes(data["changes"]),
        "<h2>Rebuild</h2>" + _rebuild(data["rebuild"]),
        _plot("Plan phases", plots.phase_timings(data["plan_phases"])),
        _plot("Files read and skippable per scan", plots.scan_files(data["scan_units"])),
        _plot("Trends", plots.trends(history)),
        "<h2>Plans</h2>" + _table(data["plans"], PLAN_COLUMNS),
        "<h2>Datasets</h2>" + _table(data["datasets"], DATASET_COLUMNS),
        "<h2>Plan-phase timings</h2>" + _table(data["plan_phases"], PHASE_COLUMNS),
        "<h2>Scan pruning</h2>" + _table(data["scan_units"], SCAN_COLUMNS),
        "<h2>Warnings and errors by category</h2>"
        + _table(data["diagnostics_by_category"], ("category", "severity", "count", "first_messages")),
    ]
    title = html.escape(f"Run diagnostics report {run.get('run_id')}")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
