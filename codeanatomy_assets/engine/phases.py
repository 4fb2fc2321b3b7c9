"""Plan phases as they happen: each timed in its own OpenTelemetry span, hashed, and recorded.

:class:`PhaseLog` runs one phase's work inside a ``datafusion.plan.<phase>`` span (a child of the
caller's current span), keeps its plan text and fingerprint, and sends a ``datafusion_plan_phase_v1``
event for it, including when the work raised (then a :class:`~codeanatomy_assets.errors.PlanError`
naming the plan and the phase follows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.delta.pruned import FARM
from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_PHASE
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.engine.failures import SUMMARY_LIMIT, error_type
from codeanatomy_assets.engine.fingerprint import plan_fingerprint, shape_fingerprint
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.errors import PlanError, clean_error_text, error_text

LINKS_ROOT: Final = "delta_pruned_parquet_links"
"""The name fingerprints give the folder of ``delta_pruned_parquet`` links (``<table:NAME>``)."""

_T = TypeVar("_T")

SpanIds = tuple[str | None, str | None]
"""``(trace_id, span_id)`` of a span, hex (``None`` when the span is not recording)."""


class PlanPhase(StrEnum):
    """The phases of a plan, in order."""

    LOGICAL = "logical"
    OPTIMIZED = "optimized"
    PHYSICAL = "physical"
    EXECUTE = "execute"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseRecord:
    """One phase as it happened (also the payload of ``datafusion_plan_phase_v1``)."""

    phase: PlanPhase
    duration_ms: float
    plan_hash: str | None
    trace_id: str | None
    span_id: str | None
    target_partitions: int | None
    error_type: str | None = None
    error_message: str | None = None
    shape_hash: str | None = None
    """The plan's fingerprint without its file names (``engine.fingerprint.shape_fingerprint``)."""

    @property
    def failed(self) -> bool:
        """Whether this phase raised."""
        return self.error_type is not None

    def to_row(self) -> dict[str, Any]:
        """The event payload."""
        payload: dict[str, Any] = {
            "plan_hash": self.plan_hash,
            "phase": self.phase.value,
            "duration_ms": self.duration_ms,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "target_partitions": self.target_partitions,
            "shape_hash": self.shape_hash,
        }
        if self.failed:
            payload[attr.ERROR_TYPE] = self.error_type
            payload[attr.EXCEPTION_MESSAGE] = self.error_message
        return payload


def table_roots(tables: Mapping[str, RegisteredTable]) -> dict[str, str]:
    """The locations fingerprints replace by ``<table:NAME>``, the link folder included."""
    roots = {name: table.uri for name, table in tables.items()}
    if FARM.root is not None:  # delta_pruned_parquet scans read links in a per-process folder
        roots[LINKS_ROOT] = FARM.root
    return roots


def _span_ids(span: Span) -> SpanIds:
    context = span.get_span_context()
    if not context.is_valid:
        return None, None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


@dataclass(slots=True, kw_only=True)
class PhaseLog:
    """The phases of one plan run so far: their records, plan texts and hashes."""

    plan: str
    sql: str
    options: CompileOptions
    sink: DiagnosticsSink
    tracer: Tracer
    tables: Mapping[str, RegisteredTable]
    target_partitions: int | None
    records: list[PhaseRecord] = field(default_factory=list)
    texts: dict[PlanPhase, str] = field(default_factory=dict)
    """Each phase's plan, rendered right after it (the physical text afterwards would hold dynamic
    filters' values)."""
    hashes: dict[str, str] = field(default_factory=dict)
    execute_ids: SpanIds = (None, None)
    """The span of the execute phase, once it succeeded."""
    execute_span: Span | None = None
    """That span itself (ended): the parent of the operator spans."""

    @property
    def trace_id(self) -> str | None:
        """The trace of the run (its first phase's)."""
        return self.records[0].trace_id if self.records else None

    @property
    def executed(self) -> bool:
        """Whether the execute phase succeeded."""
        return any(p.phase is PlanPhase.EXECUTE and not p.failed for p in self.records)

    def run(self, phase: PlanPhase, work: Callable[[], _T], text: Callable[[_T], str] | None = None) -> _T:
        """Time ``work`` in its span and record the phase; a failure is recorded, then :class:`PlanError`."""
        with self._span(phase) as span:
            ids = _span_ids(span)
            started = time.perf_counter()
            try:
                result = work()
            except Exception as exc:  # every failure of a phase is recorded, then re-raised as PlanError
                raise self._failed(phase, span, ids, _elapsed_ms(started), exc) from exc
            duration = _elapsed_ms(started)
            if text is not None and self.options.keeps_plan_texts:
                self.texts[phase] = text(result)
            self._succeeded(phase, span, ids, duration)
            return result

    def _failed(
        self, phase: PlanPhase, span: Span, ids: SpanIds, duration: float, exc: Exception
    ) -> PlanError:
        kind, message = error_type(exc), error_text(exc)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, clean_error_text(message, SUMMARY_LIMIT)))
        span.set_attribute(attr.ERROR_TYPE, kind)
        self._record(self._phase_record(phase, ids, duration, plan_hash=None, failure=(kind, message)))
        summary = f"{kind}: {clean_error_text(message, SUMMARY_LIMIT)}"
        return PlanError(summary, plan=self.plan, phase=phase.value)

    def _succeeded(self, phase: PlanPhase, span: Span, ids: SpanIds, duration: float) -> None:
        plan_hash = self._hash(phase)
        if plan_hash is not None:
            self.hashes[phase.value] = plan_hash
            span.set_attribute(attr.PLAN_HASH, plan_hash)
        if phase is PlanPhase.EXECUTE:
            self.execute_ids, self.execute_span = ids, span
        self._record(self._phase_record(phase, ids, duration, plan_hash=plan_hash))

    def _hash(self, phase: PlanPhase) -> str | None:
        if phase is PlanPhase.EXECUTE:
            return self.hashes.get(PlanPhase.PHYSICAL.value)  # the plan that ran
        if phase in self.texts and self.options.fingerprints:
            return plan_fingerprint(phase.value, self.texts[phase], table_roots=table_roots(self.tables))
        return None

    def _phase_record(
        self,
        phase: PlanPhase,
        ids: SpanIds,
        duration: float,
        *,
        plan_hash: str | None,
        failure: tuple[str, str] | None = None,
    ) -> PhaseRecord:
        """The record of ``phase``; ``failure`` is its ``(error.type, message)`` when it raised."""
        trace_id, span_id = ids
        kind, message = failure if failure is not None else (None, None)
        return PhaseRecord(
            phase=phase,
            duration_ms=duration,
            plan_hash=plan_hash,
            trace_id=trace_id,
            span_id=span_id,
            target_partitions=self.target_partitions,
            error_type=kind,
            error_message=message,
            shape_hash=self._shape_hash(phase) if plan_hash else None,
        )

    def _shape_hash(self, phase: PlanPhase) -> str | None:
        source = PlanPhase.PHYSICAL if phase is PlanPhase.EXECUTE else phase
        if source not in self.texts:
            return None
        return shape_fingerprint(source.value, self.texts[source], table_roots=table_roots(self.tables))

    def _record(self, record: PhaseRecord) -> None:
        self.records.append(record)
        emit(self.sink, self._event(record))

    def _event(self, record: PhaseRecord) -> DiagnosticEvent:
        failed = record.failed
        return DiagnosticEvent(
            name=DATAFUSION_PLAN_PHASE,
            run_id=self.options.run_id,
            severity=Severity.ERROR if failed else Severity.INFO,
            category=Category.PLAN_PHASE,
            code="plan_phase_failed" if failed else None,
            message=f"plan {self.plan!r} failed in phase {record.phase}: {record.error_message}"
            if failed
            else None,
            plan=self.plan,
            trace_id=record.trace_id,
            span_id=record.span_id,
            payload=record.to_row(),
        )

    @contextmanager
    def _span(self, phase: PlanPhase) -> Iterator[Span]:
        attributes: dict[str, Any] = {
            attr.PLAN: self.plan,
            attr.PLAN_PHASE: phase.value,
            attr.RUN_ID: self.options.run_id,
            attr.DB_SYSTEM: "datafusion",
        }
        if phase is PlanPhase.LOGICAL:
            attributes[attr.DB_QUERY_TEXT] = self.sql
        with self.tracer.start_as_current_span(
            f"datafusion.plan.{phase.value}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span
