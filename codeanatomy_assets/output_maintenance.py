"""Maintenance of the pipeline's own output tables: which need it, and treating them.

The pipeline's own outputs are the tables a build writes under its lake: the extract datasets and every
plan's result (external datasets are never written to). :func:`tables_needing_care` reads each one's layout
against the spec's ``[maintenance]`` thresholds (the sensor's question); :func:`maintain_outputs` plans and
applies the treatment of each (the maintenance job's work), recording the layout before, each step and its
before/after figures as ``delta_layout_v1`` / ``delta_maintenance_v1`` events of the running step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from codeanatomy_assets.delta.layout import TableLayout, Treatment, read_table_layout
from codeanatomy_assets.delta.layout.events import layout_events, maintenance_events
from codeanatomy_assets.delta.maintenance import StepOutcome, apply_plan, plan_maintenance
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics


@dataclass(frozen=True, slots=True)
class OutputTable:
    """One table the pipeline writes: its name, where it lives and how to reach it."""

    name: str
    uri: str
    storage_options: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TableCare:
    """What maintenance did to one table: the plan's refusal, or the outcome of each step."""

    table: str
    version_before: int | None
    refused: str | None
    outcomes: tuple[StepOutcome, ...]

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "table": self.table,
            "version_before": self.version_before,
            "refused": self.refused,
            "outcomes": [o.to_row() for o in self.outcomes],
        }


def own_output_names(spec: PipelineSpec) -> list[str]:
    """The tables ``spec`` writes: its extract datasets and plan results (never an external dataset)."""
    return [d.name for d in spec.datasets if d.uri is None] + [p.name for p in spec.plans]


def own_output_tables(spec: PipelineSpec, home: ProjectHome) -> list[OutputTable]:
    """The tables ``spec`` writes (:func:`own_output_names`), under ``home``'s lake."""
    return [OutputTable(n, home.dataset_uri(n), home.storage_options) for n in own_output_names(spec)]


def _treatable(layout: TableLayout) -> bool:
    return any(f.treatment is not Treatment.NONE for f in layout.findings)


def tables_needing_care(spec: PipelineSpec, home: ProjectHome) -> list[tuple[OutputTable, TableLayout]]:
    """The output tables (that exist) whose layout has a finding maintenance can treat."""
    found: list[tuple[OutputTable, TableLayout]] = []
    for table in own_output_tables(spec, home):
        layout = read_table_layout(table.uri, table.storage_options, thresholds=spec.layout_thresholds)
        if layout.version is not None and _treatable(layout):
            found.append((table, layout))
    return found


def _record(step: StepDiagnostics, events: list[DiagnosticEvent]) -> None:
    for event in events:
        emit(
            step.sink, replace(event, asset_key=step.asset_key, trace_id=step.trace_id, span_id=step.span_id)
        )


def maintain_outputs(spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics) -> list[TableCare]:
    """Plan and apply the treatment of every output table that needs one; each step recorded as events."""
    cared: list[TableCare] = []
    thresholds = spec.layout_thresholds
    for table, layout in tables_needing_care(spec, home):
        plan = plan_maintenance(table.uri, table.storage_options, layout=layout)
        outcomes = apply_plan(plan, table.storage_options, thresholds)
        after = read_table_layout(table.uri, table.storage_options, thresholds=thresholds)
        _record(step, layout_events(run_id=step.run_id, dataset=table.name, uri=table.uri, layout=after))
        _record(
            step, maintenance_events(run_id=step.run_id, dataset=table.name, plan=plan, outcomes=outcomes)
        )
        cared.append(TableCare(table.name, layout.version, plan.refused, tuple(outcomes)))
    return cared
