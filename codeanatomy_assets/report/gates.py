"""The acceptance gates of a run (seed 000, Cross-Cutting Acceptance Gates), decided on its collected report.

:func:`evaluate_gates` reads the sections of :func:`~codeanatomy_assets.report.sections.collect_report`
(``provider_modes``, ``delta_log_health``, ``plan_phases``, ``rebuild``) and its ``_events``; each gate is
one function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.diagnostics.event_names import DELTA_PROTOCOL_COMPATIBILITY
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity

FALLBACK_MODES: Final = frozenset(
    {ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_SCAN_STREAM, ProviderMode.OTHER}
)
REQUIRED_SECTIONS: Final = ("provider_modes", "delta_log_health", "plan_phases")


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

    def to_row(self) -> dict[str, Any]:
        """The gate's entry in the report's JSON form."""
        return {"name": self.name, "passed": self.passed, "explanation": self.explanation}


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


def evaluate_gates(data: Mapping[str, Any]) -> tuple[GateResult, ...]:
    """Evaluate every gate on a collected report."""
    events: list[DiagnosticEvent] = data["_events"]
    unreadable = _unreadable_datasets(data["provider_modes"])
    return (
        _sections_present(data, unreadable),
        _fallbacks_diagnosed_as_warn(data["provider_modes"], unreadable),
        _protocol_incompatibilities_are_errors(events),
        _events_carry_severity_and_category(events),
        _cli_errors_carry_telemetry_context(events),
    )


def _unreadable_datasets(modes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tables no provider mode reads: not fallbacks, as each is diagnosed by its own error event."""
    return [
        r["dataset"]
        for r in modes
        if r["provider_mode"] == ProviderMode.NONE and r["severity"] == Severity.ERROR.value
    ]


def _sections_present(data: Mapping[str, Any], unreadable: Sequence[str]) -> GateResult:
    missing = [s for s in REQUIRED_SECTIONS if not data[s]]
    excuse = _why_no_plan_ran(data, unreadable) if "plan_phases" in missing else None
    if excuse is not None:  # no phase to record: its plans did not run, and the report says why
        missing.remove("plan_phases")
    present = "all present" + (f" ({excuse})" if excuse else "")
    return GateResult(
        name="report_sections_present",
        passed=not missing,
        explanation=present if not missing else f"empty sections: {', '.join(missing)}",
    )


def _why_no_plan_ran(data: Mapping[str, Any], unreadable: Sequence[str]) -> str | None:
    """Why the run has no plan phase, when that is said elsewhere: unreadable datasets (each an error), or
    every plan skipped (each a ``plan_skipped_v1``); ``None`` otherwise."""
    if unreadable:
        return f"no plan ran: unreadable dataset(s) {', '.join(unreadable)}, each an error"
    rebuild = data.get("rebuild") or {}
    skipped = rebuild.get("plans_skipped") or []
    if skipped and not rebuild.get("plans_run"):
        return f"no plan ran: {len(skipped)} plan(s) skipped, their SQL and input versions unchanged"
    return None


def _fallbacks_diagnosed_as_warn(modes: Sequence[Mapping[str, Any]], unreadable: Sequence[str]) -> GateResult:
    fallbacks = [
        r
        for r in modes
        if (r["fallback_reason"] or r["provider_mode"] in FALLBACK_MODES) and r["dataset"] not in unreadable
    ]
    bad_fallbacks = [r["dataset"] for r in fallbacks if r["severity"] != Severity.WARN.value]
    all_warn = f"{len(fallbacks)} fallback(s), all warn in datafusion_provider"
    if unreadable:
        all_warn += f"; {len(unreadable)} unreadable table(s) diagnosed as error, not fallbacks"
    return GateResult(
        name="fallbacks_diagnosed_as_warn",
        passed=not bad_fallbacks,
        explanation=all_warn if not bad_fallbacks else f"fallbacks not diagnosed as warn: {bad_fallbacks}",
    )


def _protocol_incompatibilities_are_errors(events: Sequence[DiagnosticEvent]) -> GateResult:
    incompat = [
        e
        for e in events
        if e.name == DELTA_PROTOCOL_COMPATIBILITY and e.payload.get("protocol_compatible") is False
    ]
    not_error = [e.dataset for e in incompat if e.severity is not Severity.ERROR]
    return GateResult(
        name="protocol_incompatibilities_are_errors",
        passed=not not_error,
        explanation=f"{len(incompat)} incompatibility record(s), all error"
        if not not_error
        else f"incompatibilities not at error: {not_error}",
    )


def _events_carry_severity_and_category(events: Sequence[DiagnosticEvent]) -> GateResult:
    categories = {c.value for c in Category}
    untyped = [e.event_id for e in events if e.category.value not in categories or e.severity is None]
    return GateResult(
        name="events_carry_severity_and_category",
        passed=not untyped,
        explanation=f"{len(events)} events, all with severity and category"
        if not untyped
        else f"{len(untyped)} events without a valid severity/category",
    )


def _cli_errors_carry_telemetry_context(events: Sequence[DiagnosticEvent]) -> GateResult:
    cli = [e for e in events if e.category is Category.CLI and e.severity is Severity.ERROR]
    without = [e.event_id for e in cli if not e.payload.get("telemetry_config")]
    if without:
        explanation = f"{len(without)} CLI error events without configuration context"
    elif cli:
        explanation = f"{len(cli)} CLI error event(s) in this run, all with the configuration snapshot"
    else:
        explanation = "no CLI parse error in this run (the test suite exercises this gate)"
    return GateResult(name="cli_errors_carry_telemetry_context", passed=not without, explanation=explanation)
