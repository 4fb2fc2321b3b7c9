"""Sending a build's OpenLineage events: an event not sent is a warn diagnostic, never a failed build.

Each process keeps one client per configuration (:class:`~codeanatomy_assets.lineage.config.LineageConfig`
key): the HTTP transport's connections are reused from one event to the next. An event the transport
could not deliver (the endpoint unreachable, a file not writable, the client not buildable) makes this
process stop sending the run's events: each one after it is a warn too (code ``transport_given_up``),
without another attempt, so an unreachable endpoint costs a build one attempt (with the client's retries)
per process, not one per event. An endpoint that answered with an error status is tried again for the
next event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunEvent

from codeanatomy_assets.delta.registration_errors import qualified_type, redact
from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import OPENLINEAGE_EMIT_FAILED
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import exception_text
from codeanatomy_assets.lineage.config import LineageConfig, new_client

_CLIENTS: dict[str, OpenLineageClient] = {}
"""This process's clients, by configuration key."""
_GIVEN_UP: dict[str, str] = {}
"""Build run id -> why this process stopped sending its events (the latest run only)."""
_GIVEN_UP_TEXT: Final = "not tried: an earlier event of this run could not be delivered (code emit_failed)"


class Report(Protocol):
    """Records a diagnostic event from its fields (``StepDiagnostics.emit``, or the runner's sink)."""

    def __call__(self, **fields: Any) -> object: ...


@dataclass(slots=True, kw_only=True)
class LineageEmitter:
    """Sends one build's (or one plan step's) events through its configuration's client."""

    config: LineageConfig
    run_id: str
    """The build's run id (the diagnostics run id)."""
    report: Report
    secrets: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    """Values that never appear in a recorded error text (storage options, the API key)."""
    plan: str | None = None

    def send(self, event: RunEvent) -> bool:
        """Emit ``event``; ``False`` (and a warn diagnostic) when it was not sent."""
        if self.run_id in _GIVEN_UP:
            self._not_sent(event, "transport_given_up", _GIVEN_UP_TEXT)
            return False
        try:
            _client(self.config).emit(event)
        except Exception as exc:  # noqa: BLE001 - lineage never fails a build: recorded as a warn below
            self._failed(event, exc)
            return False
        return True

    def warn(self, code: str, message: str, **payload: Any) -> None:
        """Record a warn about this run's lineage (``openlineage_emit_failed_v1``)."""
        self.report(
            name=OPENLINEAGE_EMIT_FAILED,
            severity=Severity.WARN,
            category=Category.TELEMETRY,
            code=code,
            message=self.redact(message),
            plan=self.plan,
            payload={"transport": self.config.source, "target": self.config.target, **payload},
        )

    def redact(self, text: str) -> str:
        """``text`` without any of :attr:`secrets` (nor URI user info)."""
        return redact(text, self.secrets)

    def _failed(self, event: RunEvent, exc: Exception) -> None:
        error = self.redact(exception_text(exc, limit=400))
        if getattr(exc, "response", None) is None:  # not an answer from the endpoint: it is not reachable
            _GIVEN_UP.clear()
            _GIVEN_UP[self.run_id] = error
        self._not_sent(event, "emit_failed", error, **{attr.ERROR_TYPE: qualified_type(exc)})

    def _not_sent(self, event: RunEvent, code: str, why: str, **payload: Any) -> None:
        state = event.eventType.value if event.eventType is not None else "event"
        self.warn(
            code,
            f"OpenLineage {state} event of job {event.job.name} not sent to {self.config.target}: {why}",
            event_type=state,
            job=event.job.name,
            openlineage_run_id=event.run.runId,
            **payload,
        )


def _client(config: LineageConfig) -> OpenLineageClient:
    client = _CLIENTS.get(config.key)
    if client is None:
        client = _CLIENTS[config.key] = new_client(config)
    return client
