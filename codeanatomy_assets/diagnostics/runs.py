"""The run envelope (seed 003): a correlation id and a start/finish record around every DataFusion run.

>>> from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
>>> sink = DiagnosticsCollector()
>>> run = start_run(label="build", sink=sink)
>>> finished = finish_run(run, sink=sink)
>>> finished.status, finished.to_row()["duration_ms"] >= 0
(<RunStatus.COMPLETED: 'completed'>, True)
>>> sorted(sink.artifacts_snapshot())
['datafusion_run_finished_v1', 'datafusion_run_started_v1']
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import DATAFUSION_RUN_FINISHED, DATAFUSION_RUN_STARTED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent, now_unix_ms
from codeanatomy_assets.diagnostics.otel import current_trace_ids
from codeanatomy_assets.diagnostics.redact import redact_mapping
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

ERROR_MESSAGE_KEY: Final = "error_message"
"""Payload key of a failed run's error message (``error.type`` holds the exception type)."""


class RunStatus(StrEnum):
    """Where a run is in its lifecycle."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Stopped on request (SIGINT, SIGTERM, Terminate in the UI); ``metadata.cancelled_by`` says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFusionRun:
    """One run envelope. Immutable: :func:`finish_run` returns the finished copy.

    ``metadata`` is redacted (:func:`~codeanatomy_assets.diagnostics.redact.redact_mapping`) when the run
    is started or finished, before it is recorded.
    """

    run_id: str
    label: str
    start_time_unix_ms: int
    end_time_unix_ms: int | None = None
    status: RunStatus = RunStatus.RUNNING
    metadata: Mapping[str, Any] = field(default_factory=dict[str, Any])
    error_type: str | None = None
    error_message: str | None = None

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to finish, ``None`` while running."""
        if self.end_time_unix_ms is None:
            return None
        return self.end_time_unix_ms - self.start_time_unix_ms

    def to_row(self) -> dict[str, Any]:
        """The payload recorded with the run events (and routed to ``datafusion_runs_v1`` by the store)."""
        payload: dict[str, Any] = {
            "run_id": self.run_id,
            "label": self.label,
            "start_time_unix_ms": self.start_time_unix_ms,
            "end_time_unix_ms": self.end_time_unix_ms,
            "status": self.status.value,
            "duration_ms": self.duration_ms,
            "metadata": dict(self.metadata),
        }
        if self.error_type is not None:
            payload[attr.ERROR_TYPE] = self.error_type
            payload[ERROR_MESSAGE_KEY] = self.error_message
        return payload


def error_type_name(error: BaseException) -> str:
    """The ``error.type`` value of an exception: its fully qualified class name (builtins unqualified)."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _record(
    run: DataFusionRun, *, name: str, sink: DiagnosticsSink, severity: Severity, message: str
) -> None:
    trace_id, span_id = current_trace_ids()
    emit(
        sink,
        DiagnosticEvent(
            name=name,
            run_id=run.run_id,
            severity=severity,
            category=Category.RUN_LIFECYCLE,
            kind=EventKind.ARTIFACT,
            payload=run.to_row(),
            message=message,
            trace_id=trace_id,
            span_id=span_id,
        ),
    )


def start_run(
    *,
    label: str,
    sink: DiagnosticsSink,
    metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    start_time_unix_ms: int | None = None,
) -> DataFusionRun:
    """Open a run (a new uuid4 hex id unless ``run_id`` is given) and record ``datafusion_run_started_v1``.

    ``start_time_unix_ms`` defaults to now; a run recorded after the fact (launched from the Dagster UI)
    passes its real start.
    """
    run = DataFusionRun(
        run_id=run_id or uuid.uuid4().hex,
        label=label,
        start_time_unix_ms=start_time_unix_ms if start_time_unix_ms is not None else now_unix_ms(),
        metadata=redact_mapping(metadata or {}),
    )
    _record(
        run, name=DATAFUSION_RUN_STARTED, sink=sink, severity=Severity.INFO, message=f"run {label!r} started"
    )
    return run


def finish_run(
    run: DataFusionRun,
    *,
    sink: DiagnosticsSink,
    status: RunStatus | str = RunStatus.COMPLETED,
    metadata: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
    end_time_unix_ms: int | None = None,
) -> DataFusionRun:
    """Close ``run`` and record ``datafusion_run_finished_v1``; returns the finished envelope.

    ``end_time_unix_ms`` defaults to now; a run closed after the fact (found killed) passes when it was
    last seen alive, so that its duration is true.

    An ``error`` makes the run ``failed`` (severity error) with ``error.type`` and the error message in
    the payload. ``metadata`` is merged over the run's metadata. A ``cancelled`` run is recorded at
    severity warn (a request was honoured, nothing went wrong).
    """
    final_status = RunStatus.FAILED if error is not None else RunStatus(status)
    finished = dataclasses.replace(
        run,
        end_time_unix_ms=max(end_time_unix_ms or now_unix_ms(), run.start_time_unix_ms),
        status=final_status,
        metadata=redact_mapping({**run.metadata, **(metadata or {})}),
        error_type=error_type_name(error) if error is not None else None,
        error_message=str(error) if error is not None else None,
    )
    severity = _FINISHED_SEVERITY.get(final_status, Severity.INFO)
    _record(
        finished,
        name=DATAFUSION_RUN_FINISHED,
        sink=sink,
        severity=severity,
        message=_finished_message(finished),
    )
    return finished


_FINISHED_SEVERITY: Final = {RunStatus.FAILED: Severity.ERROR, RunStatus.CANCELLED: Severity.WARN}


def _finished_message(finished: DataFusionRun) -> str:
    """``run 'label' completed in 12 ms``, with the error of a failed run."""
    message = f"run {finished.label!r} {finished.status.value} in {finished.duration_ms} ms"
    if finished.error_type is not None:
        message += f": {finished.error_type}: {finished.error_message}"
    return message


@contextmanager
def tracked_run(
    *,
    label: str,
    sink: DiagnosticsSink,
    metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Generator[DataFusionRun, None, None]:
    """Start a run, yield it, finish it: ``completed`` on success, ``failed`` (then re-raise) on an exception.

    The yielded envelope is the running one (it is immutable); the finished one is what the sink records.
    """
    run = start_run(label=label, sink=sink, metadata=metadata, run_id=run_id)
    try:
        yield run
    except BaseException as error:
        finish_run(run, sink=sink, error=error)
        raise
    finish_run(run, sink=sink)
