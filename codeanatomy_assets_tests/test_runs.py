"""The run envelope: start, finish, the tracked context manager and its failure path."""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import DATAFUSION_RUN_FINISHED, DATAFUSION_RUN_STARTED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.redact import REDACTED
from codeanatomy_assets.diagnostics.runs import (
    DataFusionRun,
    RunStatus,
    finish_run,
    start_run,
    tracked_run,
)
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.errors import PlanError


def _only(sink: DiagnosticsCollector, name: str) -> DiagnosticEvent:
    (row,) = sink.artifacts_snapshot()[name]
    return DiagnosticEvent.from_row(row)


def test_start_records_a_run_lifecycle_artifact() -> None:
    sink = DiagnosticsCollector()
    run = start_run(label="build", sink=sink, metadata={"spec": "builtin"})
    assert len(run.run_id) == 32
    int(run.run_id, 16)  # uuid4 hex
    assert run.status is RunStatus.RUNNING
    assert run.duration_ms is None
    started = _only(sink, DATAFUSION_RUN_STARTED)
    assert started.kind is EventKind.ARTIFACT
    assert started.category is Category.RUN_LIFECYCLE
    assert started.severity is Severity.INFO
    assert started.run_id == run.run_id
    assert started.payload == run.to_row()
    assert started.payload["status"] == "running"
    assert started.payload["metadata"] == {"spec": "builtin"}


def test_given_run_id_is_kept() -> None:
    assert start_run(label="x", sink=DiagnosticsCollector(), run_id="dagster-run-1").run_id == "dagster-run-1"


def test_finish_returns_the_finished_envelope_and_records_it() -> None:
    sink = DiagnosticsCollector()
    run = start_run(label="build", sink=sink, metadata={"a": 1})
    finished = finish_run(run, sink=sink, metadata={"b": 2})
    assert run.status is RunStatus.RUNNING  # immutable
    assert finished.status is RunStatus.COMPLETED
    assert finished.end_time_unix_ms is not None
    assert finished.end_time_unix_ms >= run.start_time_unix_ms
    assert finished.to_row()["duration_ms"] == finished.end_time_unix_ms - run.start_time_unix_ms
    event = _only(sink, DATAFUSION_RUN_FINISHED)
    assert event.severity is Severity.INFO
    assert event.payload["metadata"] == {"a": 1, "b": 2}
    assert attr.ERROR_TYPE not in event.payload
    with pytest.raises(dataclasses.FrozenInstanceError):
        finished.status = RunStatus.FAILED  # type: ignore[misc]


def test_finish_with_an_error_is_a_failed_error_event() -> None:
    sink = DiagnosticsCollector()
    run = start_run(label="build", sink=sink)
    finished = finish_run(run, sink=sink, error=PlanError("division by zero", plan="p", phase="execute"))
    assert finished.status is RunStatus.FAILED
    event = _only(sink, DATAFUSION_RUN_FINISHED)
    assert event.severity is Severity.ERROR
    assert event.payload["status"] == "failed"
    assert event.payload[attr.ERROR_TYPE] == "codeanatomy_assets.errors.PlanError"
    assert "division by zero" in event.payload["error_message"]
    assert "PlanError" in (event.message or "")


def test_tracked_run_completes() -> None:
    sink = DiagnosticsCollector()
    with tracked_run(label="ok", sink=sink) as run:
        assert isinstance(run, DataFusionRun)
    assert _only(sink, DATAFUSION_RUN_FINISHED).payload["status"] == "completed"


def test_tracked_run_failure_records_error_type_and_reraises() -> None:
    sink = DiagnosticsCollector()
    with pytest.raises(KeyError), tracked_run(label="bad", sink=sink) as run:
        raise KeyError("missing_table")
    event = _only(sink, DATAFUSION_RUN_FINISHED)
    assert event.run_id == run.run_id
    assert event.payload["status"] == "failed"
    assert event.payload[attr.ERROR_TYPE] == "KeyError"  # builtins stay unqualified
    assert event.payload["error_message"] == "'missing_table'"
    assert event.severity is Severity.ERROR


def test_metadata_is_redacted_before_recording() -> None:
    sink = DiagnosticsCollector()
    with tracked_run(label="s3", sink=sink, metadata={"AWS_SECRET_ACCESS_KEY": "canary-1", "region": "x"}):
        pass
    for name in (DATAFUSION_RUN_STARTED, DATAFUSION_RUN_FINISHED):
        assert _only(sink, name).payload["metadata"] == {"AWS_SECRET_ACCESS_KEY": REDACTED, "region": "x"}
    assert "canary-1" not in repr(sink.all_rows())


def test_run_events_carry_the_active_trace() -> None:
    spans = InMemorySpanExporter()
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), span_exporter=spans)
    sink = DiagnosticsCollector()
    with telemetry.tracer.start_as_current_span("build") as span, tracked_run(label="t", sink=sink):
        pass
    telemetry.shutdown()
    expected = format(span.get_span_context().trace_id, "032x")
    assert {_only(sink, name).trace_id for name in (DATAFUSION_RUN_STARTED, DATAFUSION_RUN_FINISHED)} == {
        expected
    }
