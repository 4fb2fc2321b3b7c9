"""Faults in the middle of a run, concurrency on one home, and sinks that fail.

Promise under test (docs/reliability.md): every Delta table (datasets and store) still opens and reads,
no partial batch is visible, the run's record says failed with the cause, the next build succeeds, and
the failed run's report can still be rendered.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from datafusion import SessionContext
from deltalake import DeltaTable
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from codeanatomy_assets.diagnostics.otel import bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.runner import BuildRequest, run_build

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
STORE_TABLES = ("diagnostics_events_v1", "datafusion_runs_v1", "datafusion_plan_artifacts_v1")


def _cli(*args: str, home: Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "codeanatomy_assets.cli.app", *args, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def _assert_every_table_reads(home: Path) -> None:
    """Every Delta table under the lake opens with deltalake and is fully readable through DataFusion."""
    tables = [p.parent for p in (home / "lake").rglob("_delta_log")]
    assert tables
    for table in tables:
        dt = DeltaTable(str(table))
        ctx = SessionContext()
        ctx.register_table("t", dt)
        ctx.sql("select * from t").to_arrow_table()  # reads every live file


def _no_duplicate_events(home: Path) -> int:
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    events = store.read_events()
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "an event was committed twice"
    return len(ids)


@pytest.mark.slow
def test_sigkill_mid_build_leaves_readable_tables_a_failed_record_and_a_working_next_build(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    proc = _cli("build", home=home, start_new_session=True)  # the stdlib: long enough to be killed mid-way
    deadline = time.monotonic() + 120
    while not (home / "lake" / "symbols" / "_delta_log").is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the build never wrote its first dataset"
        time.sleep(0.05)
    time.sleep(0.5)  # into the dataset steps: registrations, probes and store commits in flight
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (marker,) = (home / "runs").glob("*.json")
    killed = marker.stem

    _assert_every_table_reads(home)
    _no_duplicate_events(home)

    following = _cli("build", "--source", str(FIXTURE), home=home)
    _out, err = following.communicate(timeout=300)
    assert following.returncode == 0, err[-3000:]
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    (run,) = store.read_runs(killed)
    assert run["status"] == "failed"
    assert run["error_type"].endswith("ProcessKilled")
    assert not marker.exists()
    _assert_every_table_reads(home)

    report = _cli("report", "--run-id", killed, home=home)
    text, err = report.communicate(timeout=120)
    assert report.returncode == 1, err  # renders, and says the run failed
    assert "ProcessKilled" in text

    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.runner import instance_for

    dagster_run = instance_for(ProjectHome.resolve(home)).get_run_by_id(killed)
    assert dagster_run is not None and dagster_run.is_failure


def test_two_builds_at_once_on_one_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # Both full: the builds are the same work whichever takes the lock first (incremental, the second
    # would parse nothing and skip every plan).
    first = _cli("build", "--full", "--source", str(FIXTURE), home=home)
    second = _cli("build", "--full", "--source", str(FIXTURE), home=home)
    results = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [err[-2000:] for _, err in results]
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    runs = store.read_runs()
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert max(r["metadata"]["waited_for_lock_s"] for r in runs) > 0  # one waited for the other
    counts = {r["run_id"]: len(store.read_events(r["run_id"])) for r in runs}
    assert len(set(counts.values())) == 1, counts  # same build, same number of events: none lost
    assert _no_duplicate_events(home) == sum(counts.values())
    _assert_every_table_reads(home)


def test_report_renders_while_a_build_appends(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_build(BuildRequest.resolve(source=FIXTURE, home=home), run_id=_uuid(1)).success
    build = _cli("build", "--source", str(FIXTURE), home=home)
    renders = 0
    while build.poll() is None:
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "codeanatomy_assets.cli.app",
                "report",
                "--home",
                str(home),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert report.returncode in (0, 1), report.stderr[-2000:]
        assert "Traceback" not in report.stderr
        renders += 1
    assert build.returncode == 0
    assert renders >= 1
    _no_duplicate_events(home)


@contextmanager
def _immutable(path: Path) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr to make a folder read-only for root")
    subprocess.run(["chattr", "-R", "+i", str(path)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True, capture_output=True)


def test_read_only_store_is_reported_and_the_build_still_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_build(BuildRequest.resolve(source=FIXTURE, home=home), run_id=_uuid(2)).success
    store_dir = home / "lake" / "_diagnostics"
    before = {t: DeltaTable(str(store_dir / t)).version() for t in STORE_TABLES}
    logs = InMemoryLogRecordExporter()
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), log_exporter=logs)
    with _immutable(store_dir):
        outcome = run_build(
            BuildRequest.resolve(source=FIXTURE, home=home), run_id=_uuid(3), telemetry=telemetry
        )
    assert outcome.success  # the user's datasets and plans were built ...
    assert outcome.store_failures and outcome.exit_code == 1  # ... but the lost record is not hidden
    failures = [
        r
        for r in logs.get_finished_logs()
        if r.log_record.attributes.get("diagnostic.name") == "telemetry_sink_failed_v1"
    ]
    assert failures and all(r.log_record.attributes["diagnostic.severity"] == "warn" for r in failures)
    assert {
        t: DeltaTable(str(store_dir / t)).version() for t in STORE_TABLES
    } == before  # nothing half-written
    _assert_every_table_reads(home)
    # Writable again: the next build records normally, and the earlier run's report still renders.
    assert run_build(BuildRequest.resolve(source=FIXTURE, home=home), run_id=_uuid(4)).exit_code == 0
    assert [r["status"] for r in DeltaDiagnosticsStore(store_dir).read_runs(_uuid(2))] == ["completed"]


def test_otlp_endpoint_refusing_connections_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    config = TelemetryConfig.resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
        }
    )
    home = tmp_path / "home"
    outcome = run_build(
        BuildRequest.resolve(source=FIXTURE, home=home), run_id=_uuid(5), telemetry_config=config
    )
    assert outcome.exit_code == 0
    events = DeltaDiagnosticsStore(home / "lake" / "_diagnostics").read_events(
        _uuid(5), names=["telemetry_export_failed_v1"]
    )
    assert {e.payload["signal"] for e in events} == {"traces", "logs"}
    assert {e.severity for e in events} == {Severity.WARN}


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"
