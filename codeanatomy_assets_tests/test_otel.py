"""Telemetry configuration, bootstrap, the OTel logs sink, and export over real OTLP/HTTP to 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import (
    OTelLogSink,
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
from codeanatomy_assets.diagnostics.redact import REDACTED
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets_tests.otlp_receiver import OtlpReceiver

CANARY = "canary-7f3e9d"


# --- configuration ------------------------------------------------------------------------------------


def test_nothing_set_means_no_exporter() -> None:
    config = TelemetryConfig.resolve({})
    assert config.traces_exporters == ()
    assert config.logs_exporters == ()
    assert not config.sdk_disabled
    assert config.service_name == "codeanatomy-assets"
    assert all(entry["source"] == "default" for entry in config.snapshot().values())


def test_generic_endpoint_selects_otlp_and_appends_signal_paths() -> None:
    config = TelemetryConfig.resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert config.traces_exporters == (ExporterKind.OTLP,)
    assert config.logs_exporters == (ExporterKind.OTLP,)
    assert config.traces_endpoint == "http://collector:4318/v1/traces"
    assert config.logs_endpoint == "http://collector:4318/v1/logs"
    assert config.sources["traces_exporters"] is SettingSource.ENV


def test_per_signal_endpoint_is_used_as_is_and_only_for_its_signal() -> None:
    config = TelemetryConfig.resolve({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/custom"})
    assert config.logs_exporters == (ExporterKind.OTLP,)
    assert config.logs_endpoint == "http://logs:9999/custom"
    assert config.traces_exporters == ()


def test_grpc_protocol_keeps_the_base_endpoint() -> None:
    config = TelemetryConfig.resolve(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert config.traces_protocol is OtlpProtocol.GRPC
    assert config.traces_endpoint == "http://collector:4317"


def test_explicit_exporter_wins_and_lists_are_accepted() -> None:
    config = TelemetryConfig.resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_TRACES_EXPORTER": "console,otlp",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    assert config.traces_exporters == (ExporterKind.CONSOLE, ExporterKind.OTLP)
    assert config.logs_exporters == ()


def test_precedence_flag_over_env_over_config_file() -> None:
    config = TelemetryConfig.resolve(
        {"OTEL_SERVICE_NAME": "from-env", "OTEL_TRACES_EXPORTER": "otlp"},
        flags={"OTEL_TRACES_EXPORTER": "console"},
        config_file={"OTEL_SERVICE_NAME": "from-file", "OTEL_LOGS_EXPORTER": "console"},
    )
    snapshot = config.snapshot()
    assert snapshot["traces_exporters"] == {"value": "console", "source": "flag"}
    assert snapshot["service_name"] == {"value": "from-env", "source": "env"}
    assert snapshot["logs_exporters"] == {"value": "console", "source": "config_file"}


def test_resource_attributes_and_service_name() -> None:
    config = TelemetryConfig.resolve(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=svc,deployment.environment=ci"}
    )
    assert config.service_name == "svc"
    assert config.resource()["deployment.environment"] == "ci"
    assert config.sources["service_name"] is SettingSource.ENV


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign"}, "OTEL_EXPORTER_OTLP_HEADERS"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        TelemetryConfig.resolve(env)
    assert info.value.key == variable


def test_disabled_sdk() -> None:
    config = TelemetryConfig.resolve({"OTEL_SDK_DISABLED": "TRUE"})
    telemetry = bootstrap_telemetry(config, span_exporter=InMemorySpanExporter())
    with telemetry.tracer.start_as_current_span("noop") as span:
        assert not span.get_span_context().is_valid
    assert telemetry.force_flush()
    telemetry.shutdown()


def test_snapshot_redacts_secrets_and_is_json() -> None:
    config = TelemetryConfig.resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{CANARY}@collector:4318/?api_key={CANARY}",
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{CANARY},x-tenant={CANARY}",
            "OTEL_RESOURCE_ATTRIBUTES": f"team=obs,secret_token={CANARY}",
        }
    )
    # The effective config keeps the real values (the exporters need them)...
    assert config.traces_headers["Authorization"] == f"Bearer {CANARY}"
    text = json.dumps(config.snapshot())
    # ...the snapshot never does.
    assert CANARY not in text
    assert REDACTED in text
    snapshot = config.snapshot()
    assert snapshot["traces_headers"]["value"] == f"Authorization={REDACTED},x-tenant={REDACTED}"
    assert snapshot["resource_attributes"]["value"] == {"team": "obs", "secret_token": REDACTED}
    assert snapshot["traces_endpoint"]["source"] == "env"
    assert set(snapshot) >= {"sdk_disabled", "service_name", "logs_endpoint", "logs_protocol"}


def test_resolve_reads_os_environ_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "late")
    assert TelemetryConfig.resolve().service_name == "late"


# --- bootstrap and sink (in memory) ---------------------------------------------------------------------


@pytest.fixture
def in_memory() -> Iterator[tuple[object, InMemorySpanExporter, InMemoryLogRecordExporter]]:
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), span_exporter=spans, log_exporter=logs)
    yield telemetry, spans, logs
    telemetry.shutdown()


def test_bootstrap_builds_fresh_providers_and_leaves_globals_alone(in_memory: tuple) -> None:
    telemetry, spans, _ = in_memory
    assert isinstance(telemetry.tracer_provider, SdkTracerProvider)
    assert isinstance(telemetry.logger_provider, SdkLoggerProvider)
    assert trace.get_tracer_provider() is not telemetry.tracer_provider
    with telemetry.tracer.start_as_current_span(
        "step", attributes=span_attributes_for_step("r1", "a/b", "s")
    ):
        pass
    (span,) = spans.get_finished_spans()
    assert span.attributes == {attr.RUN_ID: "r1", attr.ASSET_KEY: "a/b", attr.STEP_KEY: "s"}


def test_current_trace_ids_inside_and_outside_a_span(in_memory: tuple) -> None:
    telemetry, _, _ = in_memory
    assert current_trace_ids() == (None, None)
    with telemetry.tracer.start_as_current_span("s") as span:
        trace_id, span_id = current_trace_ids()
        assert trace_id == format(span.get_span_context().trace_id, "032x")
        assert span_id == format(span.get_span_context().span_id, "016x")


def test_span_attributes_leave_out_missing_values() -> None:
    assert span_attributes_for_step("r1", None, None) == {attr.RUN_ID: "r1"}


def test_log_sink_maps_severity_attributes_and_correlation(in_memory: tuple) -> None:
    telemetry, _, logs = in_memory
    sink = OTelLogSink(telemetry.logger_provider)
    with telemetry.tracer.start_as_current_span("s"):
        trace_id, span_id = current_trace_ids()
        event = DiagnosticEvent(
            name="dataset_provider_mode_v1",
            run_id="r1",
            severity=Severity.WARN,
            category=Category.DATAFUSION_PROVIDER,
            code="DF001",
            message="provider gets no filters",
            dataset="symbols",
            trace_id=trace_id,
            span_id=span_id,
        )
    # Emitted outside the span: correlation must come from the row, not the current context.
    emit(sink, event, DiagnosticEvent(name="quiet_v1", run_id="r1", severity="debug", category="cli"))
    first, second = (data.log_record for data in logs.get_finished_logs())
    assert first.severity_number.value == 13
    assert first.severity_text == "WARN"
    assert first.body == "provider gets no filters"
    assert first.attributes[attr.DIAGNOSTIC_SEVERITY] == "warn"
    assert first.attributes[attr.DIAGNOSTIC_CATEGORY] == "datafusion_provider"
    assert first.attributes[attr.DIAGNOSTIC_CODE] == "DF001"
    assert first.attributes[attr.DATASET] == "symbols"
    assert first.attributes[attr.RUN_ID] == "r1"
    assert format(first.trace_id, "032x") == trace_id
    assert format(first.span_id, "016x") == span_id
    assert first.timestamp == event.event_time_unix_ms * 1_000_000
    assert second.body == "quiet_v1"  # no message: the name
    assert second.severity_number.value == 5
    assert not second.trace_id


def test_log_sink_rejects_invalid_rows(in_memory: tuple) -> None:
    telemetry, _, _ = in_memory
    with pytest.raises(ValueError, match="severity"):
        OTelLogSink(telemetry.logger_provider).record_events(
            "x_v1", [{"name": "x_v1", "run_id": "r", "event_time_unix_ms": 0, "category": "cli"}]
        )


# --- over the wire --------------------------------------------------------------------------------------


def test_spans_and_logs_reach_an_otlp_http_receiver() -> None:
    with OtlpReceiver() as receiver:
        config = TelemetryConfig.resolve(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={CANARY}",
                "OTEL_SERVICE_NAME": "otlp-test",
            }
        )
        telemetry = bootstrap_telemetry(config)
        sink = OTelLogSink(telemetry.logger_provider)
        with telemetry.tracer.start_as_current_span(
            "build", attributes=span_attributes_for_step("r9", "k", "s")
        ):
            trace_id, span_id = current_trace_ids()
            emit(
                sink,
                DiagnosticEvent(
                    name="plan_failed_v1",
                    run_id="r9",
                    severity=Severity.ERROR,
                    category=Category.PLAN_PHASE,
                    plan="calls_by_module",
                    message="boom",
                    payload={attr.ERROR_TYPE: "PlanError"},
                    trace_id=trace_id,
                    span_id=span_id,
                ),
            )
        assert telemetry.force_flush(10_000)
        telemetry.shutdown()

    (span,) = receiver.spans
    assert span.name == "build"
    assert span.trace_id == trace_id
    assert span.attributes[attr.RUN_ID] == "r9"
    assert span.resource["service.name"] == "otlp-test"
    (log,) = receiver.logs
    assert log.body == "boom"
    assert log.severity_number == 17
    assert log.severity_text == "ERROR"
    assert log.attributes[attr.DIAGNOSTIC_SEVERITY] == "error"
    assert log.attributes[attr.DIAGNOSTIC_CATEGORY] == "plan_phase"
    assert log.attributes[attr.PLAN] == "calls_by_module"
    assert log.attributes[attr.ERROR_TYPE] == "PlanError"
    assert (log.trace_id, log.span_id) == (trace_id, span_id)
    assert log.event_name == "plan_failed_v1"
    assert {path for path, _ in receiver.requests} == {"/v1/traces", "/v1/logs"}
    assert all(headers.get("x-api-key") == CANARY for _, headers in receiver.requests)
