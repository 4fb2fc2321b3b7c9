"""OpenTelemetry for the diagnostics backbone: bootstrap, export accounting, the logs sink, span helpers.

The configuration (``OTEL_*`` variables, flags, config file) is resolved by
:mod:`~codeanatomy_assets.diagnostics.otel_config`. :func:`bootstrap_telemetry` builds fresh providers
and never sets the global ones: library code receives its tracer by injection
(``docs/architecture/overview.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, NoOpLoggerProvider, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, format_span_id, format_trace_id

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel_config import ExporterKind, OtlpProtocol, Signal, TelemetryConfig
from codeanatomy_assets.diagnostics.redact import redact_mapping

INSTRUMENTATION_SCOPE: Final = "codeanatomy_assets"
LOG_SCOPE: Final = "codeanatomy_assets.diagnostics"


class ExportTally:
    """Counts of export batches that succeeded and failed, per signal (thread-safe enough: the GIL)."""

    def __init__(self) -> None:
        self.ok: dict[str, int] = dict.fromkeys(Signal, 0)
        self.failed: dict[str, int] = dict.fromkeys(Signal, 0)

    def count(self, signal: Signal, success: bool) -> None:
        (self.ok if success else self.failed)[signal] += 1


class _TalliedSpanExporter(SpanExporter):
    """Passes spans to ``inner`` and counts whether each export succeeded."""

    def __init__(self, inner: SpanExporter, tally: ExportTally) -> None:
        self._inner = inner
        self._tally = tally

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        result = self._inner.export(spans)
        self._tally.count(Signal.TRACES, result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _TalliedLogExporter(LogRecordExporter):
    """Passes log records to ``inner`` and counts whether each export succeeded."""

    def __init__(self, inner: LogRecordExporter, tally: ExportTally) -> None:
        self._inner = inner
        self._tally = tally

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result = self._inner.export(batch)
        self._tally.count(Signal.LOGS, result is LogRecordExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """Providers built by :func:`bootstrap_telemetry`, and the tracer library code is given.

    ``exports`` counts the configured exporters' batches that succeeded and failed, so an OTLP endpoint
    that refuses connections becomes a diagnostic (``telemetry_export_failed_v1``), not a silent gap.
    """

    config: TelemetryConfig
    tracer_provider: trace.TracerProvider
    logger_provider: LoggerProvider
    tracer: trace.Tracer
    exports: ExportTally = field(default_factory=ExportTally)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything buffered; ``True`` when both providers flushed in time."""
        flushed = True
        if isinstance(self.tracer_provider, SdkTracerProvider):
            flushed = self.tracer_provider.force_flush(timeout_millis) and flushed
        if isinstance(self.logger_provider, SdkLoggerProvider):
            flushed = self.logger_provider.force_flush(timeout_millis) and flushed
        return flushed

    def shutdown(self) -> None:
        """Flush and stop every processor and exporter."""
        if isinstance(self.tracer_provider, SdkTracerProvider):
            self.tracer_provider.shutdown()
        if isinstance(self.logger_provider, SdkLoggerProvider):
            self.logger_provider.shutdown()


def _span_exporter(kind: ExporterKind, config: TelemetryConfig) -> SpanExporter:
    if kind is ExporterKind.CONSOLE:
        return ConsoleSpanExporter(out=sys.stderr)  # stdout belongs to the CLI's own output
    if config.traces_protocol is OtlpProtocol.GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(endpoint=config.traces_endpoint, headers=dict(config.traces_headers))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(endpoint=config.traces_endpoint, headers=dict(config.traces_headers))


def _log_exporter(kind: ExporterKind, config: TelemetryConfig) -> LogRecordExporter:
    if kind is ExporterKind.CONSOLE:
        return ConsoleLogRecordExporter(out=sys.stderr)
    if config.logs_protocol is OtlpProtocol.GRPC:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        return GrpcLogExporter(endpoint=config.logs_endpoint, headers=dict(config.logs_headers))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter(endpoint=config.logs_endpoint, headers=dict(config.logs_headers))


def bootstrap_telemetry(
    config: TelemetryConfig,
    *,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
) -> Telemetry:
    """Build fresh tracer and logger providers for ``config``; the global providers are left alone.

    Configured exporters get batch processors; injected exporters (tests pass the in-memory ones) get
    simple, synchronous processors so their output is visible as soon as a span ends. With
    ``OTEL_SDK_DISABLED=true`` the providers are no-ops and injected exporters are ignored too.
    """
    if config.sdk_disabled:
        tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
        return Telemetry(
            config=config,
            tracer_provider=tracer_provider,
            logger_provider=NoOpLoggerProvider(),
            tracer=tracer_provider.get_tracer(INSTRUMENTATION_SCOPE),
        )
    # Secret-looking resource attributes (api keys, tokens) would travel with every span and log: redact.
    resource = Resource({k: str(v) for k, v in redact_mapping(config.resource()).items()})
    tally = ExportTally()
    sdk_tracer_provider = _tracer_provider(config, resource, tally, span_exporter)
    return Telemetry(
        config=config,
        tracer_provider=sdk_tracer_provider,
        logger_provider=_logger_provider(config, resource, tally, log_exporter),
        tracer=sdk_tracer_provider.get_tracer(INSTRUMENTATION_SCOPE),
        exports=tally,
    )


def _tracer_provider(
    config: TelemetryConfig, resource: Resource, tally: ExportTally, injected: SpanExporter | None
) -> SdkTracerProvider:
    """A tracer provider with a batch processor per configured exporter and a simple one for ``injected``."""
    provider = SdkTracerProvider(resource=resource)
    for kind in config.traces_exporters:
        exporter = _TalliedSpanExporter(_span_exporter(kind, config), tally)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if injected is not None:
        provider.add_span_processor(SimpleSpanProcessor(injected))
    return provider


def _logger_provider(
    config: TelemetryConfig, resource: Resource, tally: ExportTally, injected: LogRecordExporter | None
) -> SdkLoggerProvider:
    """A logger provider with a batch processor per configured exporter and a simple one for ``injected``."""
    provider = SdkLoggerProvider(resource=resource)
    for kind in config.logs_exporters:
        exporter = _TalliedLogExporter(_log_exporter(kind, config), tally)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    if injected is not None:
        provider.add_log_record_processor(SimpleLogRecordProcessor(injected))
    return provider


def current_trace_ids() -> tuple[str | None, str | None]:
    """Hex ``(trace_id, span_id)`` of the active span, or ``(None, None)`` outside a valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format_trace_id(span_context.trace_id), format_span_id(span_context.span_id)


def span_attributes_for_step(
    run_id: str, asset_key: str | None = None, step_key: str | None = None
) -> dict[str, str]:
    """Span attributes that tie a span to a pipeline run and a Dagster step (absent values left out)."""
    values = {attr.RUN_ID: run_id, attr.ASSET_KEY: asset_key, attr.STEP_KEY: step_key}
    return {key: value for key, value in values.items() if value is not None}


def _parse_hex_id(value: str | None, width: int) -> int | None:
    """An id from its hex form, ``None`` when absent or malformed (the record then loses correlation)."""
    if not value or len(value) != width:
        return None
    try:
        parsed = int(value, 16)
    except ValueError:
        return None
    return parsed or None


def _correlation_context(event: DiagnosticEvent) -> Context | None:
    """A context holding the event's trace and span ids; ``None`` (use the current one) when it has none."""
    trace_id = _parse_hex_id(event.trace_id, 32)
    if trace_id is None:
        return None
    span_id = _parse_hex_id(event.span_id, 16) or 0
    span_context = SpanContext(
        trace_id=trace_id, span_id=span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def log_attributes(event: DiagnosticEvent) -> dict[str, Any]:
    """The OpenTelemetry log attributes of a diagnostic (absent values left out)."""
    values: dict[str, Any] = {
        attr.DIAGNOSTIC_SEVERITY: event.severity.value,
        attr.DIAGNOSTIC_CATEGORY: event.category.value,
        attr.DIAGNOSTIC_NAME: event.name,
        attr.DIAGNOSTIC_KIND: event.kind.value,
        attr.DIAGNOSTIC_CODE: event.code,
        attr.RUN_ID: event.run_id,
        attr.DATASET: event.dataset,
        attr.PLAN: event.plan,
        attr.ASSET_KEY: event.asset_key,
        attr.ERROR_TYPE: event.payload.get(attr.ERROR_TYPE),
    }
    return {key: value for key, value in values.items() if value is not None}


class OTelLogSink:
    """A ``DiagnosticsSink`` writing each diagnostic row as an OpenTelemetry log record.

    Severity maps to ``SeverityNumber`` (debug 5, info 9, warn 13, error 17); the body is the message,
    else the event name; the record carries the row's trace and span ids, so a backend links it to the
    span that produced it. Rows are validated like everywhere else (``ValueError`` on a bad row).
    """

    def __init__(self, logger_provider: LoggerProvider, *, scope: str = LOG_SCOPE) -> None:
        self._logger = logger_provider.get_logger(scope)

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Emit one log record per row."""
        for event in [DiagnosticEvent.from_row(row) for row in rows]:
            self._emit(event)

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        """Emit one log record for the artifact row."""
        self._emit(DiagnosticEvent.from_row(payload))

    def _emit(self, event: DiagnosticEvent) -> None:
        self._logger.emit(
            timestamp=event.event_time_unix_ms * 1_000_000,
            context=_correlation_context(event),
            severity_number=SeverityNumber(event.severity.otel_severity_number),
            severity_text=event.severity.name,
            body=event.message or event.name,
            attributes=log_attributes(event),
            event_name=event.name,
        )
