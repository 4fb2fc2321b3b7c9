"""Telemetry configuration for the CLI, resolved while arguments are parsed.

A cyclopts ``App.config`` hook runs after tokenizing and before conversion and validation, so the telemetry
configuration is known even when the user mistyped an argument. Precedence: command-line flags, then the
environment (``OTEL_*``), then the ``[telemetry]`` table of the config file; the snapshot records where each
value came from. A parse or validation error is recorded as ``cli_parse_error_v1`` (category ``cli``,
severity error) in the store and the configured exporters before the CLI exits with code 2.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cyclopts import Parameter

from codeanatomy_assets.diagnostics.event_names import CLI_PARSE_ERROR

if TYPE_CHECKING:
    from codeanatomy_assets.diagnostics.events import DiagnosticEvent
    from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig

TELEMETRY_FLAGS: Final[Mapping[str, str]] = {
    "--otel-traces-exporter": "OTEL_TRACES_EXPORTER",
    "--otel-logs-exporter": "OTEL_LOGS_EXPORTER",
    "--otel-endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "--otel-protocol": "OTEL_EXPORTER_OTLP_PROTOCOL",
    "--otel-service-name": "OTEL_SERVICE_NAME",
}
CONFIG_FILE_KEYS: Final[Mapping[str, str]] = {
    "traces_exporter": "OTEL_TRACES_EXPORTER",
    "logs_exporter": "OTEL_LOGS_EXPORTER",
    "endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "protocol": "OTEL_EXPORTER_OTLP_PROTOCOL",
    "headers": "OTEL_EXPORTER_OTLP_HEADERS",
    "service_name": "OTEL_SERVICE_NAME",
    "resource_attributes": "OTEL_RESOURCE_ATTRIBUTES",
}


@Parameter(name="*")
@dataclass(kw_only=True)
class TelemetryOptions:
    """OpenTelemetry settings that override the ``OTEL_*`` environment for one command."""

    otel_traces_exporter: str | None = None
    "Span exporter: otlp, console or none (OTEL_TRACES_EXPORTER)."
    otel_logs_exporter: str | None = None
    "Log exporter: otlp, console or none (OTEL_LOGS_EXPORTER)."
    otel_endpoint: str | None = None
    "OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)."
    otel_protocol: str | None = None
    "OTLP protocol: http/protobuf or grpc (OTEL_EXPORTER_OTLP_PROTOCOL)."
    otel_service_name: str | None = None
    "Service name (OTEL_SERVICE_NAME)."

    def as_flags(self) -> dict[str, str]:
        """The given options keyed by their ``OTEL_*`` variable."""
        values = {
            "--otel-traces-exporter": self.otel_traces_exporter,
            "--otel-logs-exporter": self.otel_logs_exporter,
            "--otel-endpoint": self.otel_endpoint,
            "--otel-protocol": self.otel_protocol,
            "--otel-service-name": self.otel_service_name,
        }
        return {TELEMETRY_FLAGS[k]: v for k, v in values.items() if v is not None}


def config_file_telemetry(path: str | Path | None) -> tuple[dict[str, str], str | None]:
    """The ``[telemetry]`` table of a spec file as ``OTEL_*`` settings, and a problem reading it if any."""
    if path is None:
        path = Path("codeanatomy.toml")
        if not path.is_file():
            return {}, None
    try:
        doc = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, f"{path}: {type(exc).__name__}: {exc}"
    table = doc.get("telemetry", {})
    if not isinstance(table, Mapping):
        return {}, f"{path}: telemetry: must be a table"
    return {CONFIG_FILE_KEYS[k]: str(v) for k, v in table.items() if k in CONFIG_FILE_KEYS}, None


@dataclass(slots=True)
class CliInvocation:
    """One run of the CLI: the tokens, and what the config hook learned while parsing them."""

    tokens: Sequence[str]
    env: Mapping[str, str]
    commands: tuple[str, ...] = ()
    flags: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    hook_ran: bool = False

    def hook(self, apps: Any, commands: tuple[str, ...], arguments: Iterable[Any]) -> None:
        """cyclopts ``App.config`` entry: read telemetry flags, --config and --home before validation."""
        self.hook_ran = True
        self.commands = tuple(commands)
        for argument in arguments:
            names = tuple(getattr(argument.parameter, "name", ()) or ())
            for token in getattr(argument, "tokens", ()):
                for name in names:
                    if name in TELEMETRY_FLAGS:
                        self.flags[TELEMETRY_FLAGS[name]] = str(token.value)
                    elif name in ("--config", "--home"):
                        self.options[name] = str(token.value)

    def scan_tokens(self) -> None:
        """Fallback when the hook did not run (an unknown command): read flags from the raw tokens."""
        wanted = {**{k: k for k in TELEMETRY_FLAGS}, "--config": "--config", "--home": "--home"}
        tokens = list(self.tokens)
        for i, token in enumerate(tokens):
            name, eq, value = token.partition("=")
            if name not in wanted:
                continue
            if not eq:
                if i + 1 >= len(tokens):
                    continue
                value = tokens[i + 1]
            if name in TELEMETRY_FLAGS:
                self.flags[TELEMETRY_FLAGS[name]] = value
            else:
                self.options[name] = value
        if not self.commands:
            self.commands = tuple(t for t in tokens[:1] if not t.startswith("-"))


def resolve_cli_telemetry(
    flags: Mapping[str, str], env: Mapping[str, str], config: str | Path | None
) -> tuple[TelemetryConfig, str | None]:
    """The effective :class:`TelemetryConfig` (flags > env > config file) and a config-file problem."""
    from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig

    from_file, problem = config_file_telemetry(config)
    try:
        return TelemetryConfig.resolve(env, flags=flags, config_file=from_file), problem
    except Exception as exc:  # noqa: BLE001 - a bad OTEL_* value must not hide the user's own error
        fallback = TelemetryConfig.resolve({}, flags={}, config_file={})
        return fallback, f"{type(exc).__name__}: {exc}"


def record_parse_error(invocation: CliInvocation, error: Exception) -> str:
    """Record ``cli_parse_error_v1`` in the home's store and the configured exporters; return the run id."""
    from codeanatomy_assets.diagnostics.otel import OTelLogSink, bootstrap_telemetry
    from codeanatomy_assets.diagnostics.runs import finish_run, start_run
    from codeanatomy_assets.diagnostics.sinks import FanoutSink, emit
    from codeanatomy_assets.home import ProjectHome

    if not invocation.hook_ran:
        invocation.scan_tokens()
    config, problem = resolve_cli_telemetry(
        invocation.flags, invocation.env, invocation.options.get("--config")
    )
    telemetry = bootstrap_telemetry(config)
    home = ProjectHome.resolve(invocation.options.get("--home"), env=invocation.env)
    failures: list[str] = []
    store = home.ensure().diagnostics_store()
    sink = FanoutSink(
        [store, OTelLogSink(telemetry.logger_provider)],
        on_error=lambda s, exc: failures.append(f"{type(s).__name__}: {exc}"),
    )
    run_id = str(uuid.uuid4())
    with telemetry.tracer.start_as_current_span("codeanatomy cli", attributes={"codeanatomy.run_id": run_id}):
        run = start_run(label="cli", sink=sink, run_id=run_id, metadata={"argv": _redacted_argv(invocation)})
        emit(sink, _parse_error_event(invocation, error, run_id, config, problem))
        finish_run(run, sink=sink, error=error)
    try:
        store.flush()
    except Exception as exc:  # noqa: BLE001 - the exporters still got the event; say the store did not
        failures.append(f"DeltaDiagnosticsStore: {exc}")
    telemetry.force_flush()
    telemetry.shutdown()
    for failure in failures:
        print(f"codeanatomy: could not record the CLI error in {failure}")
    return run_id


def _parse_error_event(
    invocation: CliInvocation, error: Exception, run_id: str, config: TelemetryConfig, problem: str | None
) -> DiagnosticEvent:
    """The ``cli_parse_error_v1`` event of ``error``: what was mistyped, in which command, with the
    telemetry configuration the CLI resolved anyway."""
    from codeanatomy_assets.diagnostics.events import DiagnosticEvent
    from codeanatomy_assets.diagnostics.redact import redact_mapping
    from codeanatomy_assets.diagnostics.taxonomy import Category, Severity

    text = str(error).strip()
    return DiagnosticEvent(
        name=CLI_PARSE_ERROR,
        run_id=run_id,
        severity=Severity.ERROR,
        category=Category.CLI,
        code=type(error).__name__,
        message=text.splitlines()[0] if text else type(error).__name__,
        payload={
            "error.type": type(error).__name__,
            "command_chain": list(getattr(error, "command_chain", None) or invocation.commands),
            "offending_tokens": _offending_tokens(error),
            "argv": _redacted_argv(invocation),
            "telemetry_config": config.snapshot(),
            "telemetry_config_problem": problem,
            "options": redact_mapping(invocation.options),
        },
    )


def _offending_tokens(error: Exception) -> list[str]:
    """The token cyclopts blames for ``error`` (its keyword, else its value), if any."""
    token = getattr(error, "token", None)
    return [str(getattr(token, "keyword", None) or getattr(token, "value", ""))] if token else []


def _redacted_argv(invocation: CliInvocation) -> list[str]:
    """The argv with credentials in URLs and secret-looking ``KEY=VALUE`` values redacted."""
    from codeanatomy_assets.diagnostics.redact import redact_mapping, redact_url

    out = []
    for token in invocation.tokens:
        key, eq, value = token.partition("=")
        if "://" in token and not eq:
            out.append(redact_url(token))
        elif eq and "://" in value:
            out.append(f"{key}={redact_url(value)}")
        elif eq:
            out.append(f"{key}={redact_mapping({key.lstrip('-'): value})[key.lstrip('-')]}")
        else:
            out.append(token)
    return out
