"""The layout and maintenance diagnostics: one event skeleton per family.

- ``delta_layout_v1`` (artifact, ``delta_layout``): every layout figure; the severity of the worst finding.
- ``delta_layout_finding_v1`` (event, ``delta_layout``): one finding, its recommended action in the payload.
- ``delta_maintenance_v1`` (event, ``delta_maintenance``): a maintenance plan refused, a step planned (dry
  run), applied or failed, with the figures before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codeanatomy_assets.delta.layout.records import TableLayout
from codeanatomy_assets.delta.maintenance import MaintenancePlan, StepOutcome
from codeanatomy_assets.diagnostics.event_names import DELTA_LAYOUT, DELTA_LAYOUT_FINDING, DELTA_MAINTENANCE
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity


def layout_events(*, run_id: str, dataset: str, uri: str, layout: TableLayout) -> list[DiagnosticEvent]:
    """The layout artifact, then one event per finding."""
    artifact = DiagnosticEvent(
        name=DELTA_LAYOUT,
        kind=EventKind.ARTIFACT,
        run_id=run_id,
        severity=layout.severity,
        category=Category.DELTA_LAYOUT,
        code=f"layout_{layout.severity.value}",
        message=f"{layout.file_count} live files, {layout.total_bytes} bytes, "
        f"{len(layout.findings)} finding(s)",
        payload={"dataset": dataset, "uri": uri, **layout.to_row()},
        dataset=dataset,
    )
    findings = [
        DiagnosticEvent(
            name=DELTA_LAYOUT_FINDING,
            run_id=run_id,
            severity=finding.severity,
            category=Category.DELTA_LAYOUT,
            code=finding.code.value,
            message=finding.message,
            payload={"dataset": dataset, "uri": uri, **finding.to_row()},
            dataset=dataset,
        )
        for finding in layout.findings
    ]
    return [artifact, *findings]


def _maintenance_event(
    *, run_id: str, dataset: str, severity: Severity, code: str, message: str, payload: dict[str, Any]
) -> DiagnosticEvent:
    return DiagnosticEvent(
        name=DELTA_MAINTENANCE,
        run_id=run_id,
        severity=severity,
        category=Category.DELTA_MAINTENANCE,
        code=code,
        message=message,
        payload={"dataset": dataset, **payload},
        dataset=dataset,
    )


def maintenance_events(
    *, run_id: str, dataset: str, plan: MaintenancePlan, outcomes: Sequence[StepOutcome] | None
) -> list[DiagnosticEvent]:
    """A refusal, or one event per step: planned (dry run, ``outcomes is None``), applied or failed."""
    if plan.refused is not None:
        return [
            _maintenance_event(
                run_id=run_id,
                dataset=dataset,
                severity=Severity.WARN,
                code="maintenance_refused",
                message=f"maintenance refused: {plan.refused}",
                payload=plan.to_row(),
            )
        ]
    if outcomes is None:
        return [
            _maintenance_event(
                run_id=run_id,
                dataset=dataset,
                severity=Severity.INFO,
                code="maintenance_planned",
                message=f"would run {step.treatment.value} ({len(step.reasons)} finding(s))",
                payload=step.to_row(),
            )
            for step in plan.steps
        ]
    return [_outcome_event(run_id=run_id, dataset=dataset, outcome=o) for o in outcomes]


def _outcome_event(*, run_id: str, dataset: str, outcome: StepOutcome) -> DiagnosticEvent:
    applied = outcome.status == "applied"
    message = (
        f"{outcome.treatment.value} applied in {outcome.duration_ms:.0f} ms"
        if applied
        else f"{outcome.treatment.value} failed: {outcome.error}"
    )
    return _maintenance_event(
        run_id=run_id,
        dataset=dataset,
        severity=Severity.INFO if applied else Severity.ERROR,
        code=f"maintenance_{outcome.status}",
        message=message,
        payload=outcome.to_row(),
    )
