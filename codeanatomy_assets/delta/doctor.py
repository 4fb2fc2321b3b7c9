"""``codeanatomy doctor``: one Delta table diagnosed without a build.

:func:`diagnose` reads the log directly, applies the protocol rules, walks the provider policy with read
probes in a throwaway ``SessionContext`` (a ``delta_scan_stream`` decision is probed, never materialized) and
returns a JSON-ready report with exactly the keys of :data:`REPORT_KEYS`. A damaged table is never an
exception: the damage is the diagnosis. Storage option values never appear in the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.treatment import (
    DoctorTreatment,
    examine_layout,
    layout_markdown,
    maintenance_markdown,
)
from codeanatomy_assets.diagnostics.attributes import DIAGNOSTIC_CATEGORY, DIAGNOSTIC_SEVERITY
from codeanatomy_assets.diagnostics.event_names import DOCTOR_INTERNAL_ERROR
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import exception_attributes, exception_text

if TYPE_CHECKING:
    from codeanatomy_assets.delta.health import LogHealth
    from codeanatomy_assets.delta.registration_records import ProviderDecision

REPORT_KEYS: Final = (
    "uri",
    "delta_log_present",
    "latest_version",
    "last_checkpoint_version",
    "commits_since_checkpoint",
    "min_reader_version",
    "min_writer_version",
    "reader_features",
    "writer_features",
    "table_features",
    "provider_mode",
    "protocol_compatible",
    "compatibility",
    "diagnostics",
    "layout",
    "maintenance",
)
"""The keys of a doctor report, in output order."""

DIAGNOSTIC_KEYS: Final = ("name", DIAGNOSTIC_SEVERITY, DIAGNOSTIC_CATEGORY, "code", "message")
"""The keys of one entry of ``report["diagnostics"]``."""

_DATASET: Final = "doctor"


def _dataset_name(uri: str) -> str:
    """A readable dataset name for the doctor's events: the table folder's name."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name or _DATASET


def _diagnostic_row(event: DiagnosticEvent) -> dict[str, Any]:
    return {
        "name": event.name,
        DIAGNOSTIC_SEVERITY: event.severity.value,
        DIAGNOSTIC_CATEGORY: event.category.value,
        "code": event.code,
        "message": event.message,
    }


def _redact_all(value: Any, storage_options: Mapping[str, str] | None) -> Any:
    from codeanatomy_assets.delta.registration_errors import redact

    if isinstance(value, str):
        return redact(value, storage_options)
    if isinstance(value, dict):
        return {k: _redact_all(v, storage_options) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all(v, storage_options) for v in value]
    return value


def _empty_report(uri: str) -> dict[str, Any]:
    return {
        "uri": uri,
        "delta_log_present": False,
        "latest_version": None,
        "last_checkpoint_version": None,
        "commits_since_checkpoint": None,
        "min_reader_version": None,
        "min_writer_version": None,
        "reader_features": [],
        "writer_features": [],
        "table_features": [],
        "provider_mode": ProviderMode.NONE.value,
        "protocol_compatible": False,
        "compatibility": {},
        "diagnostics": [],
        "layout": None,
        "maintenance": None,
    }


def diagnose(
    uri: str,
    storage_options: Mapping[str, str] | None = None,
    *,
    treatment: DoctorTreatment | None = None,
) -> dict[str, Any]:
    """Diagnose the Delta table at ``uri``; never raises for a damaged or unreadable table. With a
    ``treatment`` the report also holds the maintenance plan (and, when applying, what each step did).

    >>> report = diagnose("/no/such/table")
    >>> report["delta_log_present"], report["provider_mode"], exit_code(report)
    (False, 'none', 1)
    """
    report = _empty_report(uri)
    run_id = f"doctor-{uuid.uuid4().hex[:12]}"
    try:
        _fill_report(report, uri, storage_options, run_id, treatment or DoctorTreatment())
    except Exception as exc:  # noqa: BLE001 - a doctor bug must still end as a diagnosis, not a traceback
        report["diagnostics"].append(_diagnostic_row(_internal_error(run_id, exc)))
    return _redact_all(report, storage_options)


def _internal_error(run_id: str, exc: Exception) -> DiagnosticEvent:
    """The event of the doctor itself failing."""
    return DiagnosticEvent(
        name=DOCTOR_INTERNAL_ERROR,
        run_id=run_id,
        severity=Severity.ERROR,
        category=Category.CLI,
        code="doctor_internal_error",
        message=f"the doctor itself failed: {exception_text(exc)}",
        payload=exception_attributes(exc),
        dataset=_DATASET,
    )


def _fill_report(
    report: dict[str, Any],
    uri: str,
    storage_options: Mapping[str, str] | None,
    run_id: str,
    treatment: DoctorTreatment,
) -> None:
    """The log health of the table at ``uri``, the provider a build would choose, then its layout and the
    maintenance it calls for; the events of each appended to the diagnostics."""
    from codeanatomy_assets.delta.log import read_log_health

    health = read_log_health(uri, storage_options)
    report.update(_health_fields(health))
    report.update(_provider_fields(uri, storage_options, health, run_id))
    layout, maintenance, events = examine_layout(
        uri, storage_options, health, run_id=run_id, dataset=_dataset_name(uri), treatment=treatment
    )
    report.update(layout=layout, maintenance=maintenance)
    report["diagnostics"].extend(_diagnostic_row(e) for e in events)


def _health_fields(health: LogHealth) -> dict[str, Any]:
    """The report's fields read from the log."""
    return {
        "delta_log_present": health.delta_log_present,
        "latest_version": health.latest_version,
        "last_checkpoint_version": health.last_checkpoint_version,
        "commits_since_checkpoint": health.commits_since_checkpoint,
        "min_reader_version": health.min_reader_version,
        "min_writer_version": health.min_writer_version,
        "reader_features": list(health.reader_features),
        "writer_features": list(health.writer_features),
        "table_features": list(health.table_features),
    }


def _provider_fields(
    uri: str, storage_options: Mapping[str, str] | None, health: LogHealth, run_id: str
) -> dict[str, Any]:
    """The report's fields from the provider decision and the events of the decision."""
    from codeanatomy_assets.delta.registration_events import build_events

    decision = _decide(uri, storage_options, health)
    events = build_events(run_id=run_id, dataset=_dataset_name(uri), health=health, decision=decision)
    return {
        "provider_mode": decision.mode.value,
        "protocol_compatible": decision.protocol_compatible,
        "compatibility": {mode.value: verdict.to_row() for mode, verdict in decision.compatibility.items()},
        "diagnostics": [_diagnostic_row(e) for e in events],
    }


def _decide(uri: str, storage_options: Mapping[str, str] | None, health: LogHealth) -> ProviderDecision:
    """The provider policy walked with read probes in a throwaway session (no scan stream materialized)."""
    import datafusion

    from codeanatomy_assets.delta.provider_policy import decide_provider
    from codeanatomy_assets.delta.registration_records import RegistrationPolicy

    return decide_provider(
        datafusion.SessionContext(),
        name=_dataset_name(uri),
        uri=uri,
        health=health,
        storage_options=storage_options,
        probe=True,
        policy=RegistrationPolicy(materialize_scan_stream=False),
    )


def exit_code(report: Mapping[str, Any]) -> int:
    """0 when no diagnostic is at error severity, 1 otherwise."""
    errors = [d for d in report.get("diagnostics", ()) if d.get(DIAGNOSTIC_SEVERITY) == Severity.ERROR.value]
    return 1 if errors else 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown (a summary table, the compatibility per mode, then the diagnostics)."""
    verdict = "no errors" if exit_code(report) == 0 else "errors found"
    lines = [f"# codeanatomy doctor: `{report['uri']}`", "", f"**Verdict:** {verdict}", ""]
    lines += _summary_lines(report)
    lines += _compatibility_lines(report["compatibility"])
    lines += layout_markdown(report.get("layout"))
    lines += maintenance_markdown(report.get("maintenance"))
    lines += _diagnostic_lines(report["diagnostics"])
    return "\n".join(lines) + "\n"


def _summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The table of the report's plain fields."""
    return [
        "| field | value |",
        "|---|---|",
        *(
            f"| {key} | {_cell(report[key])} |"
            for key in REPORT_KEYS
            if key not in {"uri", "compatibility", "diagnostics", "layout", "maintenance"}
        ),
    ]


def _compatibility_lines(compatibility: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The section of the verdict per provider mode."""
    lines = [
        "",
        "## Provider modes",
        "",
        "| mode | compatible | unsupported | probe error |",
        "|---|---|---|---|",
    ]
    for mode, row in compatibility.items():
        lines.append(
            f"| {mode} | {_cell(row['compatible'])} | {_cell(row['unsupported'])} | "
            f"{_cell(row['probe_error'])} |"
        )
    return lines


def _diagnostic_lines(diagnostics: list[Mapping[str, Any]]) -> list[str]:
    """The section of the diagnostics, one row each."""
    lines = [
        "",
        "## Diagnostics",
        "",
        "| severity | category | name | code | message |",
        "|---|---|---|---|---|",
    ]
    for diag in diagnostics:
        lines.append(
            f"| {diag[DIAGNOSTIC_SEVERITY]} | {diag[DIAGNOSTIC_CATEGORY]} | {diag['name']} | "
            f"{_cell(diag['code'])} | {_cell(diag['message'])} |"
        )
    return lines
