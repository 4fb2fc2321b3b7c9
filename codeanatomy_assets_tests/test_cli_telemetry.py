"""The CLI keeps its telemetry when the user mistypes: cli_parse_error_v1 in the store and over OTLP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeanatomy_assets.cli.telemetry import CliInvocation, config_file_telemetry, resolve_cli_telemetry
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets_tests.otlp_receiver import OtlpReceiver

CANARY = "canary-s3cr3t-7f3a"


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeanatomy_assets.cli.app", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unknown_flag_exits_2_and_records_cli_event_in_store_and_otlp(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with OtlpReceiver() as receiver:
        env = {
            "CODEANATOMY_HOME": str(home),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {CANARY},x-team=data",
            "OTEL_SERVICE_NAME": "ca-test",
        }
        proc = _cli(["build", "--no-such-flag", "--otel-logs-exporter", "otlp"], env, tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "Unknown option" in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr
        logs = [log for log in receiver.logs if log.attributes.get("diagnostic.name") == "cli_parse_error_v1"]
        assert receiver.requests, "nothing was exported"

    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    events = [e for e in store.read_events() if e.name == "cli_parse_error_v1"]
    assert len(events) == 1
    event = events[0]
    assert event.severity.value == "error" and event.category.value == "cli"
    assert event.payload["error.type"] == "UnknownOptionError"
    assert event.payload["command_chain"] == ["build"]
    assert event.payload["offending_tokens"] == ["--no-such-flag"]
    config = event.payload["telemetry_config"]
    assert config["logs_exporters"] == {"value": "otlp", "source": "flag"}
    assert config["service_name"] == {"value": "ca-test", "source": "env"}
    assert CANARY not in json.dumps(event.payload)
    # The run envelope says the CLI run failed, with the error type.
    runs = store.read_runs(event.run_id)
    assert [(r["status"], r["error_type"]) for r in runs] == [
        ("failed", "cyclopts.exceptions.UnknownOptionError")
    ]
    # Exported too, with severity and category attributes, and without the secret.
    assert len(logs) == 1
    assert logs[0].attributes["diagnostic.severity"] == "error"
    assert logs[0].attributes["diagnostic.category"] == "cli"
    assert CANARY not in repr(receiver.logs) + repr(receiver.spans)
    assert not any(CANARY in p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file())


def test_validation_error_is_recorded_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _cli(["report", "--format", "xml"], {"CODEANATOMY_HOME": str(home)}, tmp_path)
    assert proc.returncode == 2
    events = [
        e
        for e in DeltaDiagnosticsStore(home / "lake" / "_diagnostics").read_events()
        if e.name == "cli_parse_error_v1"
    ]
    assert [e.payload["command_chain"] for e in events] == [["report"]]
    assert events[0].payload["offending_tokens"] == ["--format"]


def test_precedence_flag_over_env_over_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[telemetry]\nservice_name = "from-file"\ntraces_exporter = "console"\nlogs_exporter = "console"\n'
    )
    resolved, problem = resolve_cli_telemetry(
        {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SERVICE_NAME": "from-env"}, config
    )
    snap = resolved.snapshot()
    assert problem is None
    assert snap["traces_exporters"] == {"value": "none", "source": "flag"}
    assert snap["service_name"] == {"value": "from-env", "source": "env"}
    assert snap["logs_exporters"] == {"value": "console", "source": "config_file"}


def test_broken_config_file_does_not_hide_the_users_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[telemetry\n")
    values, problem = config_file_telemetry(bad)
    assert values == {}
    assert problem is not None and "bad.toml" in problem


@pytest.mark.parametrize(
    ("tokens", "flags", "options"),
    [
        (
            ["build", "--otel-endpoint", "http://x:1", "--home", "/h"],
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"},
            {"--home": "/h"},
        ),
        (["nosuch", "--config=/c.toml"], {}, {"--config": "/c.toml"}),
    ],
)
def test_token_scan_fallback(tokens: list[str], flags: dict[str, str], options: dict[str, str]) -> None:
    invocation = CliInvocation(tokens=tokens, env={})
    invocation.scan_tokens()
    assert invocation.flags == flags
    assert invocation.options == options
