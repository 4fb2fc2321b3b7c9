"""The diagnostics backbone: one event record, sinks, the durable Delta store, OpenTelemetry, runs.

Every public name is declared once in ``__all__`` (sorted; a test keeps it honest). Names are loaded on
first use (PEP 562), so importing ``codeanatomy_assets.diagnostics.events`` does not pay for deltalake
or the OpenTelemetry SDK, and CLI ``--help`` stays instant.

See ``docs/architecture/diagnostics_policy.md`` for severities, categories and the event catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from codeanatomy_assets.exports import lazy_exports

if TYPE_CHECKING:
    from codeanatomy_assets.diagnostics.events import EVENT_SCHEMA_VERSION, DiagnosticEvent, now_unix_ms
    from codeanatomy_assets.diagnostics.otel import (
        OTelLogSink,
        Telemetry,
        bootstrap_telemetry,
        current_trace_ids,
        span_attributes_for_step,
    )
    from codeanatomy_assets.diagnostics.otel_config import (
        ExporterKind,
        OtlpProtocol,
        SettingSource,
        TelemetryConfig,
    )
    from codeanatomy_assets.diagnostics.redact import (
        REDACTED,
        is_secret_key,
        redact_headers,
        redact_mapping,
        redact_url,
    )
    from codeanatomy_assets.diagnostics.runs import (
        DataFusionRun,
        RunStatus,
        finish_run,
        start_run,
        tracked_run,
    )
    from codeanatomy_assets.diagnostics.schemas import (
        DATAFUSION_PLAN_ARTIFACTS_TABLE,
        DATAFUSION_PLAN_ARTIFACTS_V1,
        DATAFUSION_RUNS_TABLE,
        DATAFUSION_RUNS_V1,
        DIAGNOSTICS_EVENTS_TABLE,
        DIAGNOSTICS_EVENTS_V1,
        TABLE_SCHEMAS,
    )
    from codeanatomy_assets.diagnostics.sinks import (
        DiagnosticsCollector,
        DiagnosticsSink,
        FanoutSink,
        emit,
        fanout_with_failure_events,
    )
    from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
    from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

_MODULE_OF: Final = {
    "Category": "taxonomy",
    "DATAFUSION_PLAN_ARTIFACTS_TABLE": "schemas",
    "DATAFUSION_PLAN_ARTIFACTS_V1": "schemas",
    "DATAFUSION_RUNS_TABLE": "schemas",
    "DATAFUSION_RUNS_V1": "schemas",
    "DIAGNOSTICS_EVENTS_TABLE": "schemas",
    "DIAGNOSTICS_EVENTS_V1": "schemas",
    "DataFusionRun": "runs",
    "DeltaDiagnosticsStore": "store",
    "DiagnosticEvent": "events",
    "DiagnosticsCollector": "sinks",
    "DiagnosticsSink": "sinks",
    "EVENT_SCHEMA_VERSION": "events",
    "EventKind": "taxonomy",
    "ExporterKind": "otel_config",
    "FanoutSink": "sinks",
    "OTelLogSink": "otel",
    "OtlpProtocol": "otel_config",
    "REDACTED": "redact",
    "RunStatus": "runs",
    "SettingSource": "otel_config",
    "Severity": "taxonomy",
    "TABLE_SCHEMAS": "schemas",
    "Telemetry": "otel",
    "TelemetryConfig": "otel_config",
    "bootstrap_telemetry": "otel",
    "current_trace_ids": "otel",
    "emit": "sinks",
    "fanout_with_failure_events": "sinks",
    "finish_run": "runs",
    "is_secret_key": "redact",
    "now_unix_ms": "events",
    "redact_headers": "redact",
    "redact_mapping": "redact",
    "redact_url": "redact",
    "span_attributes_for_step": "otel",
    "start_run": "runs",
    "tracked_run": "runs",
}

__all__ = [
    "DATAFUSION_PLAN_ARTIFACTS_TABLE",
    "DATAFUSION_PLAN_ARTIFACTS_V1",
    "DATAFUSION_RUNS_TABLE",
    "DATAFUSION_RUNS_V1",
    "DIAGNOSTICS_EVENTS_TABLE",
    "DIAGNOSTICS_EVENTS_V1",
    "EVENT_SCHEMA_VERSION",
    "REDACTED",
    "TABLE_SCHEMAS",
    "Category",
    "DataFusionRun",
    "DeltaDiagnosticsStore",
    "DiagnosticEvent",
    "DiagnosticsCollector",
    "DiagnosticsSink",
    "EventKind",
    "ExporterKind",
    "FanoutSink",
    "OTelLogSink",
    "OtlpProtocol",
    "RunStatus",
    "SettingSource",
    "Severity",
    "Telemetry",
    "TelemetryConfig",
    "bootstrap_telemetry",
    "current_trace_ids",
    "emit",
    "fanout_with_failure_events",
    "finish_run",
    "is_secret_key",
    "now_unix_ms",
    "redact_headers",
    "redact_mapping",
    "redact_url",
    "span_attributes_for_step",
    "start_run",
    "tracked_run",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF)
