"""OpenTelemetry configuration: the effective exporters, endpoints and headers, and where each came from.

Configuration is resolved at run time from ``OTEL_*`` variables given as a mapping (normally
``os.environ``), optionally overlaid by command-line flags and a project config file, all keyed by the
``OTEL_*`` variable name. Precedence, highest first: ``flag`` > ``env`` > ``config_file`` > ``default``;
within one layer a per-signal variable (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) beats the generic one.

**Default exporter: none.** With nothing configured, no exporter runs. The OpenTelemetry SDK default
(``otlp`` to ``localhost:4318``) would make every local CLI run spray connection errors and retry
back-off delays when no collector listens. Setting any OTLP endpoint without an exporter selects
``otlp`` for the signals it applies to.

>>> config = TelemetryConfig.resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
>>> config.traces_exporters, config.traces_endpoint
((<ExporterKind.OTLP: 'otlp'>,), 'http://127.0.0.1:4318/v1/traces')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import unquote

from codeanatomy_assets.diagnostics.redact import redact_headers, redact_mapping, redact_url
from codeanatomy_assets.errors import ConfigError

DEFAULT_SERVICE_NAME: Final = "codeanatomy-assets"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"


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
