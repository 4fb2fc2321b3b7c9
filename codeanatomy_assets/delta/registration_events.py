"""The diagnostics of one registration decision: log health and findings, probes, protocol, provider mode.

:func:`build_events` turns a :class:`~codeanatomy_assets.delta.registration_records.ProviderDecision` and the
table's :class:`LogHealth` into the events :func:`~codeanatomy_assets.delta.registration.register_dataset`
emits (the doctor builds them too). Every event is cut from one skeleton (:func:`_event`): its family
(category) and kind follow from its name, and each builder supplies the outcome and the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import datafusion

from codeanatomy_assets.delta.protocol import PROTOCOL_UNKNOWN
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.diagnostics.attributes import ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_TYPE
from codeanatomy_assets.diagnostics.event_names import (
    DATASET_PROVIDER_MODE,
    DATASET_PROVIDER_PROBE,
    DELTA_LOG_FINDING,
    DELTA_LOG_HEALTH,
    DELTA_PROTOCOL_COMPATIBILITY,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

if TYPE_CHECKING:
    from codeanatomy_assets.delta.health import LogFinding, LogHealth
    from codeanatomy_assets.delta.registration_records import ProbeResult, ProviderDecision

DELTALAKE_DATAFUSION_MAJOR: Final = 55
"""The datafusion major deltalake 1.6.6's FFI table provider was built against (registering it in a session
of another major raises)."""

_FAMILY: Final = {
    DELTA_LOG_HEALTH: Category.DELTA_LOG,
    DELTA_LOG_FINDING: Category.DELTA_LOG,
    DELTA_PROTOCOL_COMPATIBILITY: Category.DELTA_PROTOCOL,
    DATASET_PROVIDER_PROBE: Category.DATAFUSION_PROVIDER,
    DATASET_PROVIDER_MODE: Category.DATAFUSION_PROVIDER,
}
"""The category (event family) of each registration event."""

_ARTIFACTS: Final = frozenset({DELTA_LOG_HEALTH, DELTA_PROTOCOL_COMPATIBILITY, DATASET_PROVIDER_MODE})
"""The registration events that are artifacts (one per decision); the others are events."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What an event says: its severity, code and message."""

    severity: Severity
    code: str
    message: str


def _event(
    name: str, run_id: str, dataset: str, outcome: _Outcome, payload: dict[str, Any]
) -> DiagnosticEvent:
    """The skeleton of every registration event: category and kind by ``name``, about ``dataset``."""
    return DiagnosticEvent(
        name=name,
        run_id=run_id,
        severity=outcome.severity,
        category=_FAMILY[name],
        kind=EventKind.ARTIFACT if name in _ARTIFACTS else EventKind.EVENT,
        code=outcome.code,
        message=outcome.message,
        payload=payload,
        dataset=dataset,
    )


def build_events(
    *,
    run_id: str,
    dataset: str,
    health: LogHealth,
    decision: ProviderDecision,
) -> tuple[DiagnosticEvent, ...]:
    """The diagnostics of one registration decision (also used by the doctor)."""
    return (
        _log_health_event(run_id, dataset, health, decision),
        *(_log_finding_event(run_id, dataset, health.uri, finding) for finding in health.findings),
        *(_probe_event(run_id, dataset, result) for result in decision.probes),
        _compatibility_event(run_id, dataset, decision, health.unreadable_reason),
        _provider_mode_event(run_id, dataset, decision),
    )


# ----------------------------------------------------------------------------------------------------
# The Delta log family


def _log_health_event(
    run_id: str, dataset: str, health: LogHealth, decision: ProviderDecision
) -> DiagnosticEvent:
    counts = {s: sum(1 for f in health.findings if f.severity is s) for s in (Severity.ERROR, Severity.WARN)}
    message = (
        f"Delta log of {dataset}: version {health.latest_version}, "
        f"checkpoint {health.last_checkpoint_version}, {counts[Severity.ERROR]} error(s), "
        f"{counts[Severity.WARN]} warning(s)"
    )
    payload = health.to_row()
    payload.update(dataset=dataset, protocol_compatible=decision.protocol_compatible)
    outcome = _Outcome(health.severity, f"log_{health.severity.value}", message)
    return _event(DELTA_LOG_HEALTH, run_id, dataset, outcome, payload)


def _log_finding_event(run_id: str, dataset: str, uri: str, finding: LogFinding) -> DiagnosticEvent:
    outcome = _Outcome(finding.severity, finding.code.value, finding.message)
    payload = {"dataset": dataset, "uri": uri, **finding.to_row()}
    return _event(DELTA_LOG_FINDING, run_id, dataset, outcome, payload)


# ----------------------------------------------------------------------------------------------------
# The protocol family


def _compatibility_outcome(dataset: str, decision: ProviderDecision, unreadable: str | None) -> _Outcome:
    verdicts = decision.compatibility.values()
    if decision.protocol_compatible:
        message = f"{dataset}: protocol readable by {decision.mode.value}"
        return _Outcome(Severity.INFO, "protocol_compatible", message)
    if all(c.unsupported == (PROTOCOL_UNKNOWN,) for c in verdicts):
        reason = unreadable or "the table's protocol could not be read"
        return _Outcome(
            Severity.ERROR, PROTOCOL_UNKNOWN, f"{dataset}: {reason} (so no provider mode can be chosen)"
        )
    if any(not c.unsupported for c in verdicts):
        # The protocol is supported but every probe failed: a damaged table or an unreachable store.
        message = f"{dataset}: the protocol is supported but no provider mode could read the table"
        return _Outcome(Severity.ERROR, "no_mode_reads_table", message)
    unsupported = ", ".join(_unsupported(decision))
    message = f"{dataset}: no provider mode supports the protocol (unsupported: {unsupported})"
    return _Outcome(Severity.ERROR, "protocol_incompatible", message)


def _unsupported(decision: ProviderDecision) -> list[str]:
    """Everything that stands in any mode's way, sorted."""
    return sorted({u for c in decision.compatibility.values() for u in c.unsupported})


def _compatibility_event(
    run_id: str, dataset: str, decision: ProviderDecision, unreadable: str | None = None
) -> DiagnosticEvent:
    payload = {
        "dataset": dataset,
        "provider_mode": decision.mode.value,
        "protocol_compatible": decision.protocol_compatible,
        "unsupported": _unsupported(decision),
        "compatibility": {m.value: c.to_row() for m, c in decision.compatibility.items()},
    }
    outcome = _compatibility_outcome(dataset, decision, unreadable)
    return _event(DELTA_PROTOCOL_COMPATIBILITY, run_id, dataset, outcome, payload)


# ----------------------------------------------------------------------------------------------------
# The provider family


def _probe_outcome(result: ProbeResult) -> _Outcome:
    mode = result.mode.value
    if result.ok:
        message = f"{mode} probe read {result.rows} row(s) in {result.ms:.0f} ms"
        return _Outcome(Severity.INFO, "probe_ok", message)
    return _Outcome(Severity.WARN, "probe_failed", f"{mode} probe failed: {result.error}")


def _probe_event(run_id: str, dataset: str, result: ProbeResult) -> DiagnosticEvent:
    payload: dict[str, Any] = {"dataset": dataset, **result.to_row()}
    if not result.ok:
        # The probe's error is a record (it may come from a child process), not an exception object.
        payload[ERROR_TYPE] = result.error_type
        payload[EXCEPTION_TYPE] = result.error_type
        payload[EXCEPTION_MESSAGE] = result.error
    return _event(DATASET_PROVIDER_PROBE, run_id, dataset, _probe_outcome(result), payload)


def _short(reason: str | None, limit: int = 160) -> str:
    parts = [p if len(p) <= limit else p[: limit - 1] + "…" for p in (reason or "").split("; ") if p]
    return "; ".join(parts)


def _provider_mode_outcome(dataset: str, decision: ProviderDecision) -> _Outcome:
    if decision.mode is ProviderMode.NONE:
        message = f"{dataset}: no provider mode could read the table ({_short(decision.fallback_reason)})"
        return _Outcome(Severity.ERROR, "provider_mode_none", message)
    if decision.mode is decision.default_mode:
        message = f"{dataset}: registered as {decision.mode.value}"
        return _Outcome(Severity.INFO, "provider_mode_default", message)
    message = f"{dataset}: fell back to {decision.mode.value} ({_short(decision.fallback_reason)})"
    return _Outcome(Severity.WARN, "provider_mode_fallback", message)


def _engine_versions() -> dict[str, Any]:
    """The installed datafusion and deltalake, and whether deltalake's FFI provider fits this datafusion."""
    import deltalake

    head = datafusion.__version__.split(".", 1)[0]
    major = int(head) if head.isdigit() else None
    return {
        "datafusion_version": datafusion.__version__,
        "deltalake_version": str(deltalake.__version__),
        "majors_match": major == DELTALAKE_DATAFUSION_MAJOR,
    }


def _probe_fields(decision: ProviderDecision) -> dict[str, Any]:
    """The chosen mode's probe; without a chosen mode, the error of the last failed probe."""
    probe = decision.chosen_probe
    failed = [p for p in decision.probes if not p.ok]
    if probe is not None and not probe.ok:
        error = probe.error
    else:
        error = failed[-1].error if failed and decision.mode is ProviderMode.NONE else None
    return {
        "probe_ok": probe.ok if probe is not None else None,
        "probe_error": error,
        "probe_ms": round(probe.ms, 3) if probe is not None else None,
    }


def _provider_mode_event(run_id: str, dataset: str, decision: ProviderDecision) -> DiagnosticEvent:
    payload = {
        "dataset": dataset,
        "provider_mode": decision.mode.value,
        "provider_class": decision.provider_class,
        "ffi_capsule_present": decision.ffi_capsule_present,
        **_engine_versions(),
        "object_store_registered": decision.object_store_registered,
        "fallback_reason": decision.fallback_reason,
        "filter_pushdown": decision.filter_pushdown,
        "scan_filter_pushdown": decision.scan_filter_pushdown,
        "delta_file_pruning": decision.delta_file_pruning,
        **_probe_fields(decision),
        "probed": decision.probed,
        "version": decision.version,
    }
    outcome = _provider_mode_outcome(dataset, decision)
    return _event(DATASET_PROVIDER_MODE, run_id, dataset, outcome, payload)


__all__ = [
    "DELTALAKE_DATAFUSION_MAJOR",
    "build_events",
]
