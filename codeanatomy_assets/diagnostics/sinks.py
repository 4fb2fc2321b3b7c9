"""The diagnostics sink protocol and the in-process sinks.

A sink receives rows produced by :meth:`DiagnosticEvent.to_row`. ``record_events`` takes a batch of
event rows; ``record_artifact`` takes one artifact row. Durable and exporting sinks live in
:mod:`codeanatomy_assets.diagnostics.store` and :mod:`codeanatomy_assets.diagnostics.otel`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import TELEMETRY_SINK_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.errors import exception_attributes, exception_text


@runtime_checkable
class DiagnosticsSink(Protocol):
    """Where diagnostics go (the protocol of seed 003)."""

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Record a batch of event rows all named ``name``."""
        ...

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        """Record one artifact row named ``name``."""
        ...


def emit(sink: DiagnosticsSink, *events: DiagnosticEvent) -> None:
    """Send events to a sink, artifacts one by one and events grouped by name."""
    by_name: dict[str, list[Mapping[str, object]]] = defaultdict(list)
    for event in events:
        if event.kind is EventKind.ARTIFACT:
            sink.record_artifact(event.name, event.to_row())
        else:
            by_name[event.name].append(event.to_row())
    for name, rows in by_name.items():
        sink.record_events(name, rows)


class DiagnosticsCollector:
    """In-memory sink, for tests and for counting a step's events before they are flushed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._artifacts: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        with self._lock:
            self._events[name].extend(dict(r) for r in rows)

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        with self._lock:
            self._artifacts[name].append(dict(payload))

    def events_snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """A copy of every event row recorded so far, by name."""
        with self._lock:
            return {k: list(v) for k, v in self._events.items()}

    def artifacts_snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """A copy of every artifact row recorded so far, by name."""
        with self._lock:
            return {k: list(v) for k, v in self._artifacts.items()}

    def all_rows(self) -> list[dict[str, Any]]:
        """Every row (events and artifacts) in no particular order."""
        with self._lock:
            return [r for rows in (*self._events.values(), *self._artifacts.values()) for r in rows]

    def all_events(self) -> list[DiagnosticEvent]:
        """Every row parsed back into :class:`DiagnosticEvent`, oldest first."""
        return sorted(
            (DiagnosticEvent.from_row(r) for r in self.all_rows()), key=lambda e: e.event_time_unix_ms
        )


class FanoutSink:
    """Sends every record to several sinks; one failing sink never stops the others.

    A failure is reported to ``on_error(sink, exc)`` (the pipeline turns it into a ``telemetry`` warn
    event recorded on the sinks that still work) and re-raised by nobody.
    """

    def __init__(self, sinks: Iterable[DiagnosticsSink], on_error: Any = None) -> None:
        self.sinks = list(sinks)
        self._on_error = on_error
        self.failures: list[tuple[DiagnosticsSink, BaseException]] = []

    def _each(self, call: str, name: str, arg: Any) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, call)(name, arg)
            except Exception as exc:  # noqa: BLE001 - a sink's failure is itself a diagnostic, handled by on_error
                self.failures.append((sink, exc))
                if self._on_error is not None:
                    self._on_error(sink, exc)

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        self._each("record_events", name, rows)

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        self._each("record_artifact", name, payload)


def fanout_with_failure_events(sinks: Iterable[DiagnosticsSink], *, run_id: str) -> FanoutSink:
    """A :class:`FanoutSink` that turns a failing sink into a ``telemetry_sink_failed_v1`` warn event.

    The event (:func:`sink_failed_event`) goes to every other sink. A sink that also fails to take that
    event is only listed in ``failures``: failure reports are never themselves reported, so one broken sink
    cannot start a loop.
    """
    fanout: FanoutSink

    def on_error(failed: DiagnosticsSink, exc: BaseException) -> None:
        row = sink_failed_event(failed, exc, run_id=run_id).to_row()
        for other in fanout.sinks:
            if other is failed:
                continue
            try:
                other.record_events(TELEMETRY_SINK_FAILED, [row])
            except Exception as report_exc:  # noqa: BLE001 - recorded, not re-reported (see docstring)
                fanout.failures.append((other, report_exc))

    fanout = FanoutSink(sinks, on_error=on_error)
    return fanout


def sink_failed_event(failed: DiagnosticsSink, exc: BaseException, *, run_id: str) -> DiagnosticEvent:
    """The ``telemetry_sink_failed_v1`` warn event of a sink that raised ``exc`` (category ``telemetry``,
    payload ``sink``, ``error.type`` and the ``exception.*`` attributes)."""
    sink_name = type(failed).__qualname__
    return DiagnosticEvent(
        name=TELEMETRY_SINK_FAILED,
        run_id=run_id,
        severity=Severity.WARN,
        category=Category.TELEMETRY,
        message=f"diagnostics sink {sink_name} failed: {exception_text(exc)}",
        payload={"sink": sink_name, attr.ERROR_TYPE: type(exc).__qualname__, **exception_attributes(exc)},
    )
