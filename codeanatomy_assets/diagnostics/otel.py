"""OpenTelemetry for the diagnostics backbone: configuration, bootstrap, the logs sink, span helpers.

Configuration is resolved at run time from ``OTEL_*`` variables given as a mapping (normally
``os.environ``), optionally overlaid by command-line flags and a project config file, all keyed by the
``OTEL_*`` variable name. Precedence, highest first: ``flag`` > ``env`` > ``config_file`` > ``default``;
within one layer a per-signal variable (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) beats the generic one.

**Default exporter: none.** With nothing configured, no exporter runs. The OpenTelemetry SDK default
(``otlp`` to ``localhost:4318``) would make every local CLI run spray connection errors and retry
back-off delays when no collector listens. Setting any OTLP endpoint without an exporter selects
``otlp`` for the signals it applies to.

:func:`bootstrap_telemetry` builds fresh providers and never sets the global ones: library code receives
its tracer by injection (``docs/architecture/overview.md``).

>>> config = TelemetryConfig.resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
>>> config.traces_exporters, config.traces_endpoint
((<ExporterKind.OTLP: 'otlp'>,), 'http://127.0.0.1:4318/v1/traces')
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote

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
from codeanatomy_assets.diagnostics.redact import redact_headers, redact_mapping, redact_url
from codeanatomy_assets.errors import ConfigError

DEFAULT_SERVICE_NAME: Final = "codeanatomy-assets"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
INSTRUMENTATION_SCOPE: Final = "codeanatomy_assets"
LOG_SCOPE: Final = "codeanatomy_assets.diagnostics"


class Signal(StrEnum):
    """A telemetry signal this package exports (its name is the one in ``OTEL_*`` variables)."""

    TRACES = "traces"
    LOGS = "logs"

    @property
    def http_path(self) -> str:
        """The path an OTLP/HTTP collector takes the signal at (``/v1/traces``)."""
        return f"/v1/{self.value}"


class ExporterKind(StrEnum):
    """Where a signal is exported."""

    CONSOLE = "console"
    OTLP = "otlp"
    NONE = "none"


class OtlpProtocol(StrEnum):
    """The OTLP transport (``http/json`` is not supported by the Python exporters)."""

    HTTP_PROTOBUF = "http/protobuf"
    GRPC = "grpc"


class SettingSource(StrEnum):
    """Where an effective setting came from."""

    FLAG = "flag"
    ENV = "env"
    CONFIG_FILE = "config_file"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class _Found:
    value: str
    source: SettingSource
    variable: str


class _Layers:
    """The configuration layers in precedence order."""

    def __init__(
        self,
        env: Mapping[str, str],
        flags: Mapping[str, str] | None,
        config_file: Mapping[str, str] | None,
    ) -> None:
        self._layers = (
            (SettingSource.FLAG, flags or {}),
            (SettingSource.ENV, env),
            (SettingSource.CONFIG_FILE, config_file or {}),
        )

    def get(self, *variables: str) -> _Found | None:
        """The first non-empty value of ``variables`` (most specific first) in the highest layer."""
        for source, layer in self._layers:
            for variable in variables:
                value = layer.get(variable)
                if value is not None and value.strip():
                    return _Found(value.strip(), source, variable)
        return None


def _source_of(found: _Found | None) -> SettingSource:
    return found.source if found else SettingSource.DEFAULT


def _parse_pairs(text: str, *, variable: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (values percent-decoded), as used by resource attributes and OTLP headers."""
    pairs: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value pairs separated by commas, got {entry!r}", key=variable)
        pairs[key.strip()] = unquote(value.strip())
    return pairs


def _parse_exporters(found: _Found) -> tuple[ExporterKind, ...]:
    kinds: list[ExporterKind] = []
    for name in found.value.lower().split(","):
        try:
            kinds.append(ExporterKind(name.strip()))
        except ValueError:
            allowed = ", ".join(k.value for k in ExporterKind)
            raise ConfigError(
                f"exporter {name.strip()!r} is not supported (one of: {allowed})", key=found.variable
            ) from None
    return () if ExporterKind.NONE in kinds else tuple(dict.fromkeys(kinds))


def _parse_protocol(found: _Found) -> OtlpProtocol:
    try:
        return OtlpProtocol(found.value.lower())
    except ValueError:
        allowed = ", ".join(p.value for p in OtlpProtocol)
        raise ConfigError(
            f"OTLP protocol {found.value!r} is not supported (one of: {allowed})", key=found.variable
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Signal:
    exporters: tuple[ExporterKind, ...]
    endpoint: str
    protocol: OtlpProtocol
    headers: Mapping[str, str]
    sources: Mapping[str, SettingSource]


def _resolve_signal(layers: _Layers, signal: Signal) -> _Signal:
    """Resolve exporter, protocol, endpoint and headers of ``signal``."""
    protocol_found = layers.get(f"OTEL_EXPORTER_OTLP_{signal.name}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = _parse_protocol(protocol_found) if protocol_found else OtlpProtocol.HTTP_PROTOBUF
    endpoint_found = layers.get(f"OTEL_EXPORTER_OTLP_{signal.name}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    exporters, exporter_source = _signal_exporters(layers, signal, endpoint_found)
    headers_found = layers.get(f"OTEL_EXPORTER_OTLP_{signal.name}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    headers = _parse_pairs(headers_found.value, variable=headers_found.variable) if headers_found else {}
    return _Signal(
        exporters=exporters,
        endpoint=_signal_endpoint(signal, endpoint_found, protocol),
        protocol=protocol,
        headers=headers,
        sources={
            f"{signal}_exporters": exporter_source,
            f"{signal}_endpoint": _source_of(endpoint_found),
            f"{signal}_protocol": _source_of(protocol_found),
            f"{signal}_headers": _source_of(headers_found),
        },
    )


def _signal_endpoint(signal: Signal, found: _Found | None, protocol: OtlpProtocol) -> str:
    """The endpoint ``signal`` is exported to: the default one of ``protocol`` unless one is set."""
    if found is None:
        return (
            DEFAULT_GRPC_ENDPOINT
            if protocol is OtlpProtocol.GRPC
            else DEFAULT_HTTP_ENDPOINT + signal.http_path
        )
    if found.variable == "OTEL_EXPORTER_OTLP_ENDPOINT" and protocol is OtlpProtocol.HTTP_PROTOBUF:
        # The generic endpoint is a base URL: the signal path is appended (OTLP exporter spec).
        return found.value.rstrip("/") + signal.http_path
    return found.value


def _signal_exporters(
    layers: _Layers, signal: Signal, endpoint_found: _Found | None
) -> tuple[tuple[ExporterKind, ...], SettingSource]:
    """The exporters of ``signal`` and where they came from: ``OTEL_<SIGNAL>_EXPORTER``, else ``otlp`` when
    an endpoint is set, else none."""
    exporter_found = layers.get(f"OTEL_{signal.name}_EXPORTER")
    if exporter_found is not None:
        return _parse_exporters(exporter_found), exporter_found.source
    if endpoint_found is not None:
        return (ExporterKind.OTLP,), endpoint_found.source
    return (), SettingSource.DEFAULT


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryConfig:
    """The effective telemetry configuration, with the source of every value.

    Build it with :meth:`resolve`; :meth:`snapshot` is safe to record (secrets redacted).
    """

    sdk_disabled: bool = False
    service_name: str = DEFAULT_SERVICE_NAME
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    traces_exporters: tuple[ExporterKind, ...] = ()
    traces_endpoint: str = DEFAULT_HTTP_ENDPOINT + Signal.TRACES.http_path
    traces_protocol: OtlpProtocol = OtlpProtocol.HTTP_PROTOBUF
    traces_headers: Mapping[str, str] = field(default_factory=dict)
    logs_exporters: tuple[ExporterKind, ...] = ()
    logs_endpoint: str = DEFAULT_HTTP_ENDPOINT + Signal.LOGS.http_path
    logs_protocol: OtlpProtocol = OtlpProtocol.HTTP_PROTOBUF
    logs_headers: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, SettingSource] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        flags: Mapping[str, str] | None = None,
        config_file: Mapping[str, str] | None = None,
    ) -> TelemetryConfig:
        """Resolve from ``env`` (default: ``os.environ``, read now), ``flags`` and ``config_file``.

        All three are keyed by ``OTEL_*`` variable names. Raises :class:`ConfigError` naming the variable
        on an unknown exporter or protocol or a malformed ``key=value`` list.
        """
        layers = _Layers(os.environ if env is None else env, flags, config_file)
        general = _resolve_general(layers)
        traces = _resolve_signal(layers, Signal.TRACES)
        logs = _resolve_signal(layers, Signal.LOGS)
        return cls(
            sdk_disabled=general.sdk_disabled,
            service_name=general.service_name,
            resource_attributes=general.resource_attributes,
            traces_exporters=traces.exporters,
            traces_endpoint=traces.endpoint,
            traces_protocol=traces.protocol,
            traces_headers=traces.headers,
            logs_exporters=logs.exporters,
            logs_endpoint=logs.endpoint,
            logs_protocol=logs.protocol,
            logs_headers=logs.headers,
            sources={**general.sources, **traces.sources, **logs.sources},
        )

    def resource(self) -> dict[str, str]:
        """The resource attributes, with ``service.name`` set."""
        return {**self.resource_attributes, "service.name": self.service_name}

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every effective value with its source, secrets redacted; sorted keys, JSON-serializable.

        >>> TelemetryConfig.resolve({}).snapshot()["traces_exporters"]
        {'value': 'none', 'source': 'default'}
        """
        values: dict[str, object] = {
            "sdk_disabled": self.sdk_disabled,
            "service_name": self.service_name,
            "resource_attributes": redact_mapping(self.resource_attributes),
            **_signal_values(
                Signal.TRACES,
                self.traces_exporters,
                self.traces_endpoint,
                self.traces_protocol,
                self.traces_headers,
            ),
            **_signal_values(
                Signal.LOGS, self.logs_exporters, self.logs_endpoint, self.logs_protocol, self.logs_headers
            ),
        }
        return {
            key: {"value": values[key], "source": self.sources.get(key, SettingSource.DEFAULT).value}
            for key in sorted(values)
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _General:
    """The settings that are not per signal, with their sources."""

    sdk_disabled: bool
    service_name: str
    resource_attributes: Mapping[str, str]
    sources: Mapping[str, SettingSource]


def _resolve_general(layers: _Layers) -> _General:
    disabled = layers.get("OTEL_SDK_DISABLED")
    service = layers.get("OTEL_SERVICE_NAME")
    resource = layers.get("OTEL_RESOURCE_ATTRIBUTES")
    attributes = _parse_pairs(resource.value, variable=resource.variable) if resource else {}
    return _General(
        sdk_disabled=bool(disabled and disabled.value.lower() == "true"),
        service_name=service.value if service else attributes.get("service.name", DEFAULT_SERVICE_NAME),
        resource_attributes=attributes,
        sources={
            "sdk_disabled": _source_of(disabled),
            "service_name": _source_of(service or _service_from(resource, attributes)),
            "resource_attributes": _source_of(resource),
        },
    )


def _signal_values(
    signal: Signal,
    exporters: tuple[ExporterKind, ...],
    endpoint: str,
    protocol: OtlpProtocol,
    headers: Mapping[str, str],
) -> dict[str, object]:
    """The snapshot values of one signal's settings, secrets redacted."""
    return {
        f"{signal}_exporters": ",".join(exporters) or ExporterKind.NONE.value,
        f"{signal}_endpoint": redact_url(endpoint),
        f"{signal}_protocol": protocol.value,
        f"{signal}_headers": redact_headers(_format_pairs(headers)),
    }


def _service_from(resource: _Found | None, attributes: Mapping[str, str]) -> _Found | None:
    """The resource attributes setting when it is what named the service."""
    return resource if "service.name" in attributes else None


def _format_pairs(pairs: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in pairs.items())


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
