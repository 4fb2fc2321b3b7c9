"""Diagnostics for one pipeline step: the sinks, the step span, and the flush at the end.

A step (a Dagster asset body, or a CLI phase) opens :func:`step_diagnostics`; everything it records goes to
an in-memory collector (for counts in asset metadata), the durable Delta store and the OpenTelemetry logs
sink. The store is flushed once when the step ends, so a step makes few commits; a sink that fails is
itself recorded as a ``telemetry`` warn event on the sinks that still work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import TELEMETRY_SINK_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import OTelLogSink, Telemetry
from codeanatomy_assets.diagnostics.sinks import (
    DiagnosticsCollector,
    DiagnosticsSink,
    emit,
    fanout_with_failure_events,
)
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.home import ProjectHome


@dataclass(slots=True, kw_only=True)
class StepDiagnostics:
    """What a step records through, and what it learned about its own diagnostics."""

    run_id: str
    asset_key: str
    sink: DiagnosticsSink
    collector: DiagnosticsCollector
    tracer: trace.Tracer
    span: trace.Span
    sink_failures: list[str] = field(default_factory=list)

    @property
    def trace_id(self) -> str | None:
        ctx = self.span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None

    @property
    def span_id(self) -> str | None:
        ctx = self.span.get_span_context()
        return format(ctx.span_id, "016x") if ctx.is_valid else None

    def severity_counts(self) -> dict[str, int]:
        """Events recorded by this step, by severity (every severity present, zeros included)."""
        counts = Counter(row["severity"] for row in self.collector.all_rows())
        return {s.value: counts.get(s.value, 0) for s in Severity}

    def event(self, **fields: Any) -> DiagnosticEvent:
        """A :class:`DiagnosticEvent` for this run, asset and span."""
        fields.setdefault("run_id", self.run_id)
        fields.setdefault("asset_key", self.asset_key)
        fields.setdefault("trace_id", self.trace_id)
        fields.setdefault("span_id", self.span_id)
        return DiagnosticEvent(**fields)

    def emit(self, **fields: Any) -> DiagnosticEvent:
        event = self.event(**fields)
        emit(self.sink, event)
        return event


@contextmanager
def step_diagnostics(
    *,
    home: ProjectHome,
    run_id: str,
    asset_key: str,
    telemetry: Telemetry,
    step_key: str | None = None,
    span_attributes: Mapping[str, Any] | None = None,
) -> Iterator[StepDiagnostics]:
    """Open the sinks and the span of one step; flush the store when the step ends (also on failure)."""
    collector = DiagnosticsCollector()
    store = home.diagnostics_store()
    otel_sink = OTelLogSink(telemetry.logger_provider)
    fanout = fanout_with_failure_events([collector, store, otel_sink], run_id=run_id)
    attributes = _span_attributes(run_id, asset_key, step_key, span_attributes or {})
    with telemetry.tracer.start_as_current_span(f"asset {asset_key}", attributes=attributes) as span:
        step = StepDiagnostics(
            run_id=run_id,
            asset_key=asset_key,
            sink=fanout,
            collector=collector,
            tracer=telemetry.tracer,
            span=span,
        )
        try:
            yield step
        finally:
            _flush(step, store, otel_sink)
            step.sink_failures.extend(f"{type(s).__name__}: {exc}" for s, exc in fanout.failures)


def _span_attributes(
    run_id: str, asset_key: str, step_key: str | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The step span's attributes: the run, the asset, the Dagster step when known, and ``extra``."""
    attributes: dict[str, Any] = {attr.DAGSTER_RUN_ID: run_id, attr.RUN_ID: run_id, attr.ASSET_KEY: asset_key}
    if step_key:
        attributes[attr.STEP_KEY] = step_key
    return attributes | dict(extra)


def _flush(step: StepDiagnostics, store: DeltaDiagnosticsStore, otel_sink: OTelLogSink) -> None:
    """Commit the step's buffered rows; a store that cannot commit is reported on the other sinks."""
    try:
        store.flush()
    except Exception as exc:  # noqa: BLE001 - the store failing is itself a diagnostic, never silent
        failure = step.event(
            name=TELEMETRY_SINK_FAILED,
            severity=Severity.WARN,
            category=Category.TELEMETRY,
            code="store_flush_failed",
            message=f"diagnostics store {store.root} could not commit this step's events: {exc}",
            payload={"sink": "DeltaDiagnosticsStore", attr.ERROR_TYPE: type(exc).__qualname__},
        )
        emit(step.collector, failure)
        emit(otel_sink, failure)
        step.sink_failures.append(f"DeltaDiagnosticsStore: {exc}")
