"""The diagnostics of one registration decision: log health and findings, probes, protocol, provider mode.

:func:`build_events` turns a :class:`~codeanatomy_assets.delta.registration.ProviderDecision` and the
table's :class:`LogHealth` into the events :func:`~codeanatomy_assets.delta.registration.register_dataset`
emits (the doctor builds them too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import datafusion

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.diagnostics.attributes import ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_TYPE
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

if TYPE_CHECKING:
    from codeanatomy_assets.delta.health import LogHealth
    from codeanatomy_assets.delta.registration import ProviderDecision

DATASET_PROVIDER_MODE: Final = "dataset_provider_mode_v1"
DELTA_LOG_HEALTH: Final = "delta_log_health_v1"
DELTA_LOG_FINDING: Final = "delta_log_finding_v1"
DELTA_PROTOCOL_COMPATIBILITY: Final = "delta_protocol_compatibility_v1"
DATASET_PROVIDER_PROBE: Final = "dataset_provider_probe_v1"

DELTALAKE_DATAFUSION_MAJOR: Final = 55
"""The datafusion major deltalake 1.6.6's FFI table provider was built against (registering it in a session
of another major raises)."""


def _datafusion_major() -> int | None:
    head = datafusion.__version__.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _deltalake_version() -> str:
    import deltalake

    return str(deltalake.__version__)


def build_events(
    *,
    run_id: str,
    dataset: str,
    health: LogHealth,
    decision: ProviderDecision,
) -> tuple[DiagnosticEvent, ...]:
    """The diagnostics of one registration decision (also used by the doctor)."""
    events: list[DiagnosticEvent] = []
    health_payload = health.to_row()
    health_payload.update(dataset=dataset, protocol_compatible=decision.protocol_compatible)
    counts = {s: sum(1 for f in health.findings if f.severity is s) for s in (Severity.ERROR, Severity.WARN)}
    events.append(
        DiagnosticEvent(
            name=DELTA_LOG_HEALTH,
            run_id=run_id,
            severity=health.severity,
            category=Category.DELTA_LOG,
            kind=EventKind.ARTIFACT,
            code=f"log_{health.severity.value}",
            message=(
                f"Delta log of {dataset}: version {health.latest_version}, "
                f"checkpoint {health.last_checkpoint_version}, {counts[Severity.ERROR]} error(s), "
                f"{counts[Severity.WARN]} warning(s)"
            ),
            payload=health_payload,
            dataset=dataset,
        )
    )
    for finding in health.findings:
        events.append(
            DiagnosticEvent(
                name=DELTA_LOG_FINDING,
                run_id=run_id,
                severity=finding.severity,
                category=Category.DELTA_LOG,
                code=finding.code.value,
                message=finding.message,
                payload={"dataset": dataset, "uri": health.uri, **finding.to_row()},
                dataset=dataset,
            )
        )
    for result in decision.probes:
        payload: dict[str, Any] = {"dataset": dataset, **result.to_row()}
        if not result.ok:
            payload[ERROR_TYPE] = result.error_type
            payload[EXCEPTION_TYPE] = result.error_type
            payload[EXCEPTION_MESSAGE] = result.error
        events.append(
            DiagnosticEvent(
                name=DATASET_PROVIDER_PROBE,
                run_id=run_id,
                severity=Severity.INFO if result.ok else Severity.WARN,
                category=Category.DATAFUSION_PROVIDER,
                code="probe_ok" if result.ok else "probe_failed",
                message=(
                    f"{result.mode.value} probe read {result.rows} row(s) in {result.ms:.0f} ms"
                    if result.ok
                    else f"{result.mode.value} probe failed: {result.error}"
                ),
                payload=payload,
                dataset=dataset,
            )
        )
    events.append(_compatibility_event(run_id, dataset, decision, health.unreadable_reason))
    events.append(_provider_mode_event(run_id, dataset, decision))
    return tuple(events)


def _compatibility_event(
    run_id: str, dataset: str, decision: ProviderDecision, unreadable: str | None = None
) -> DiagnosticEvent:
    verdicts = decision.compatibility
    statically_readable = any(not c.unsupported for c in verdicts.values())
    chosen_ok = decision.protocol_compatible
    severity = Severity.INFO if chosen_ok else Severity.ERROR
    unsupported = sorted({u for c in verdicts.values() for u in c.unsupported})
    if chosen_ok:
        code, message = "protocol_compatible", f"{dataset}: protocol readable by {decision.mode.value}"
    elif all(c.unsupported == ("protocol_unknown",) for c in verdicts.values()):
        code = "protocol_unknown"
        reason = unreadable or "the table's protocol could not be read"
        message = f"{dataset}: {reason} (so no provider mode can be chosen)"
    elif statically_readable:
        # The protocol is supported but every probe failed: a damaged table or an unreachable store.
        code = "no_mode_reads_table"
        message = f"{dataset}: the protocol is supported but no provider mode could read the table"
    else:
        code = "protocol_incompatible"
        message = f"{dataset}: no provider mode supports the protocol (unsupported: {', '.join(unsupported)})"
    return DiagnosticEvent(
        name=DELTA_PROTOCOL_COMPATIBILITY,
        run_id=run_id,
        severity=severity,
        category=Category.DELTA_PROTOCOL,
        kind=EventKind.ARTIFACT,
        code=code,
        message=message,
        payload={
            "dataset": dataset,
            "provider_mode": decision.mode.value,
            "protocol_compatible": chosen_ok,
            "unsupported": unsupported,
            "compatibility": {m.value: c.to_row() for m, c in verdicts.items()},
        },
        dataset=dataset,
    )


def _short(reason: str | None, limit: int = 160) -> str:
    parts = [p if len(p) <= limit else p[: limit - 1] + "…" for p in (reason or "").split("; ") if p]
    return "; ".join(parts)


def _provider_mode_event(run_id: str, dataset: str, decision: ProviderDecision) -> DiagnosticEvent:
    probe = decision.chosen_probe
    major = _datafusion_major()
    if decision.mode is ProviderMode.NONE:
        severity, code = Severity.ERROR, "provider_mode_none"
        message = f"{dataset}: no provider mode could read the table ({_short(decision.fallback_reason)})"
    elif decision.mode is decision.default_mode:
        severity, code = Severity.INFO, "provider_mode_default"
        message = f"{dataset}: registered as {decision.mode.value}"
    else:
        severity, code = Severity.WARN, "provider_mode_fallback"
        message = f"{dataset}: fell back to {decision.mode.value} ({_short(decision.fallback_reason)})"
    failed = [p for p in decision.probes if not p.ok]
    return DiagnosticEvent(
        name=DATASET_PROVIDER_MODE,
        run_id=run_id,
        severity=severity,
        category=Category.DATAFUSION_PROVIDER,
        kind=EventKind.ARTIFACT,
        code=code,
        message=message,
        payload={
            "dataset": dataset,
            "provider_mode": decision.mode.value,
            "provider_class": decision.provider_class,
            "ffi_capsule_present": decision.ffi_capsule_present,
            "datafusion_version": datafusion.__version__,
            "deltalake_version": _deltalake_version(),
            "majors_match": major == DELTALAKE_DATAFUSION_MAJOR,
            "object_store_registered": decision.object_store_registered,
            "fallback_reason": decision.fallback_reason,
            "filter_pushdown": decision.filter_pushdown,
            "scan_filter_pushdown": decision.scan_filter_pushdown,
            "delta_file_pruning": decision.delta_file_pruning,
            "probe_ok": probe.ok if probe is not None else None,
            "probe_error": probe.error
            if probe is not None and not probe.ok
            else (failed[-1].error if failed and decision.mode is ProviderMode.NONE else None),
            "probe_ms": round(probe.ms, 3) if probe is not None else None,
            "probed": decision.probed,
            "version": decision.version,
        },
        dataset=dataset,
    )


__all__ = [
    "DATASET_PROVIDER_MODE",
    "DATASET_PROVIDER_PROBE",
    "DELTALAKE_DATAFUSION_MAJOR",
    "DELTA_LOG_FINDING",
    "DELTA_LOG_HEALTH",
    "DELTA_PROTOCOL_COMPATIBILITY",
    "build_events",
]
