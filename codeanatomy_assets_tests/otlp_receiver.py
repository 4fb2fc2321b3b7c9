"""A minimal OTLP/HTTP receiver for tests: decodes trace and log export requests on 127.0.0.1.

There is no collector package in the reachable registries (FACTS #16); this is the smallest thing that
speaks the protocol: ``POST /v1/traces`` and ``POST /v1/logs`` with ``application/x-protobuf`` bodies
(optionally gzip), answered with an empty export response.

>>> receiver = OtlpReceiver().start()          # doctest: +SKIP
>>> receiver.endpoint                           # doctest: +SKIP
'http://127.0.0.1:40123'
>>> receiver.stop()                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from codeanatomy_assets_tests.http_receiver import LoopbackReceiver

_PROTOBUF: Final = "application/x-protobuf"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedSpan:
    """One span as received (ids in hex)."""

    name: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    parent_span_id: str = ""
    start_unix_nano: int = 0
    end_unix_nano: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedLog:
    """One log record as received (ids in hex, empty string when absent)."""

    body: Any
    severity_number: int
    severity_text: str
    trace_id: str
    span_id: str
    event_name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


class OtlpReceiver(LoopbackReceiver):
    """An OTLP/HTTP endpoint on ``127.0.0.1`` (free port) collecting spans and logs in memory."""

    thread_name = "otlp-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []
        self.logs: list[ReceivedLog] = []
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def endpoint(self) -> str:
        """The base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return self.base_url

    def _handle(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        with self._lock:
            self.requests.append((path, headers))
            if path == "/v1/traces":
                self._collect_spans(ExportTraceServiceRequest.FromString(body))
                return 200, ExportTraceServiceResponse().SerializeToString(), _PROTOBUF
            if path == "/v1/logs":
                self._collect_logs(ExportLogsServiceRequest.FromString(body))
                return 200, ExportLogsServiceResponse().SerializeToString(), _PROTOBUF
        return 404, b"", _PROTOBUF

    def _collect_spans(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        parent_span_id=span.parent_span_id.hex(),
                        start_unix_nano=span.start_time_unix_nano,
                        end_unix_nano=span.end_time_unix_nano,
                    )
                    for span in scope_spans.spans
                )

    def _collect_logs(self, request: ExportLogsServiceRequest) -> None:
        for resource_logs in request.resource_logs:
            resource = _attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                self.logs.extend(
                    ReceivedLog(
                        body=_value(record.body),
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        event_name=record.event_name,
                        attributes=_attributes(record.attributes),
                        resource=resource,
                    )
                    for record in scope_logs.log_records
                )
