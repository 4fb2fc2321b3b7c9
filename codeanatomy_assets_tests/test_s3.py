"""The lake on an object store: builds whose datasets and diagnostics store live in ``s3://`` on a local
SeaweedFS (127.0.0.1), with the credentials in ``CODEANATOMY_LAKE_STORAGE_OPTIONS``.

It proves that a build writes and reads everything there with correct results, that the provider policy
serves every table with ``delta_pruned_parquet`` (DataFusion reads Delta's candidate files by URL through
the object store registered with the session, no fallback, its probe read rows; the Delta table provider,
which cannot reach the object store, FACTS #8, is never tried), and that the S3 secret key appears
nowhere: not in the store, the report, Dagster's storage and metadata, OpenTelemetry, the build's output
or the Delta logs. ``test_s3_pruned.py`` holds the mode's reads on S3 to Delta's candidate files.

Two builds: ``run_build`` in this process, and ``codeanatomy build --lake ... --executor multiprocess`` in
a process of its own, into another prefix of the same bucket. There every step process reads the
credentials from its environment and appends to the one store in the bucket (the shape of a deployment
whose steps run in pods or Celery workers), and the command exits 0. It runs as a command because step
processes fork from a forkserver that keeps the environment it started with, and this test process may
have started one (for an earlier build's extraction) before the credentials were set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.delta.pruned import OBJECT_STORE_READER_DESCRIPTION
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.home import LAKE_OPTIONS_ENV
from codeanatomy_assets.runner import BuildRequest, run_build
from codeanatomy_assets_tests.servers import VENV_BIN, S3Endpoint, seaweedfs

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
EXPECTED: dict[str, Any] = json.loads(
    re.search(r"```json\n(.*?)```", (FIXTURE / "EXPECTED.md").read_text(), re.DOTALL).group(1)  # type: ignore[union-attr]
)
RUN = "00000000-0000-4000-8000-0000000005e1"
ACCESS_KEY = "codeanatomy-s3-test"
SECRET = "canary-s3-secret-5e1f-do-not-leak"
BUCKET = "lake"
LAKE = f"s3://{BUCKET}/in-process"
PARALLEL_LAKE = f"s3://{BUCKET}/multiprocess"
EXTRACTED = ("calls", "imports", "source_files", "symbols")
PLANS = ("call_edges", "module_dependencies", "module_metrics", "package_hotspots")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Build:
    """One build into the bucket: its run, where it wrote, what it printed and what it reported."""

    run_id: str
    lake: str
    home: Path
    endpoint: S3Endpoint
    success: bool
    failed_checks: list[str]
    report_path: Path
    output: str

    @classmethod
    def from_outcome(cls, outcome: BuildOutcome, **fields: Any) -> S3Build:
        """A build run in this process (``run_build``): success means no failed step and no failed gate."""
        return cls(
            run_id=outcome.run_id,
            success=outcome.success and not outcome.failed_steps and not outcome.failed_gates,
            failed_checks=outcome.failed_checks,
            report_path=outcome.report_path,
            **fields,
        )

    @classmethod
    def from_cli(cls, done: subprocess.CompletedProcess[str], **fields: Any) -> S3Build:
        """A ``codeanatomy build``: summary lines, then the report's path; exit 0 means no failure."""
        lines = done.stdout.strip().splitlines()
        match = re.match(r"run (\S+): ", lines[0]) if lines else None
        assert match, done.stdout + done.stderr
        return cls(
            run_id=match.group(1),
            success=done.returncode == 0,
            failed_checks=[line.split("failed check: ", 1)[1] for line in lines if "failed check: " in line],
            report_path=Path(lines[-1]),
            output=done.stdout + done.stderr,
            **fields,
        )

    @property
    def store(self) -> DeltaDiagnosticsStore:
        return DeltaDiagnosticsStore(
            f"{self.lake}/_diagnostics", storage_options=self.endpoint.storage_options()
        )

    def table(self, name: str) -> pa.Table:
        """A dataset of the lake, read with deltalake's own scan (not the pyarrow path: FACTS #24)."""
        delta = DeltaTable(f"{self.lake}/{name}", storage_options=self.endpoint.storage_options())
        return pa.RecordBatchReader.from_stream(delta.scan()).read_all()

    def chosen_modes(self) -> dict[str | None, DiagnosticEvent]:
        """The ``dataset_provider_mode_v1`` event of each dataset registered in the run."""
        return {e.dataset: e for e in self.store.read_events(self.run_id, names=["dataset_provider_mode_v1"])}


@contextmanager
def captured_output(path: Path) -> Iterator[Path]:
    """Everything this process writes to fd 1 and 2 (Python and native code) goes to ``path``."""
    saved = [os.dup(1), os.dup(2)]
    with path.open("wb") as sink:
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            yield path
        finally:
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Endpoint, Path]]:
    """SeaweedFS with the lake's bucket, its credentials in ``CODEANATOMY_LAKE_STORAGE_OPTIONS``."""
    root = tmp_path_factory.mktemp("s3")
    with (
        seaweedfs(root, access_key=ACCESS_KEY, secret_key=SECRET) as endpoint,
        pytest.MonkeyPatch.context() as env,
    ):
        endpoint.create_bucket(BUCKET)
        env.setenv(LAKE_OPTIONS_ENV, json.dumps(endpoint.storage_options()))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata service for anything
        yield endpoint, root


@pytest.fixture(scope="module")
def telemetry_exporters() -> tuple[InMemorySpanExporter, InMemoryLogRecordExporter]:
    return InMemorySpanExporter(), InMemoryLogRecordExporter()


@pytest.fixture(scope="module")
def s3_build(
    s3: tuple[S3Endpoint, Path], telemetry_exporters: tuple[InMemorySpanExporter, InMemoryLogRecordExporter]
) -> S3Build:
    endpoint, root = s3
    spans, logs = telemetry_exporters
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), span_exporter=spans, log_exporter=logs)
    home = root / "home"
    request = BuildRequest.resolve(source=FIXTURE, home=home, lake=LAKE)
    with captured_output(root / "build-output.txt") as output:
        outcome = run_build(request, run_id=RUN, telemetry=telemetry)
    return S3Build.from_outcome(
        outcome, lake=LAKE, home=home, endpoint=endpoint, output=output.read_text(errors="replace")
    )


@pytest.fixture(scope="module")
def s3_parallel(s3: tuple[S3Endpoint, Path]) -> S3Build:
    endpoint, root = s3
    home = root / "parallel-home"
    argv = [str(VENV_BIN / "codeanatomy"), "build", "--source", str(FIXTURE), "--home", str(home)]
    argv += ["--lake", PARALLEL_LAKE, "--executor", "multiprocess"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=root)
    return S3Build.from_cli(done, lake=PARALLEL_LAKE, home=home, endpoint=endpoint)


@pytest.fixture(params=["in_process", "multiprocess"])
def any_build(request: pytest.FixtureRequest) -> S3Build:
    return request.getfixturevalue("s3_build" if request.param == "in_process" else "s3_parallel")


def test_the_build_succeeds_with_everything_in_the_bucket(any_build: S3Build) -> None:
    assert any_build.success, any_build.output[-3000:]
    assert not (any_build.home / "lake").exists()  # nothing of the lake was written locally
    fs = any_build.endpoint.filesystem()
    listing = fs.get_file_info(pafs.FileSelector(any_build.lake.removeprefix("s3://")))
    assert {Path(info.path).name for info in listing} == {"_diagnostics", *EXTRACTED, *PLANS}
    [run] = any_build.store.read_runs(any_build.run_id)
    assert run["status"] == "completed"
    assert run["metadata"]["lake"] == any_build.lake


def test_results_read_from_the_bucket_are_correct(any_build: S3Build) -> None:
    for name, rows in EXPECTED["rows"].items():
        assert any_build.table(name).num_rows == rows, name
    edges = {
        (r["source_module"], r["target_module"]): r["import_count"]
        for r in any_build.table("module_dependencies").to_pylist()
    }
    assert len(edges) == 12
    assert edges[("shop.cart", "shop.models")] == 2
    assert edges[("shop.checkout", "util.text")] == 3
    metrics = {r["module"]: r for r in any_build.table("module_metrics").to_pylist()}
    assert (metrics["shop.models"]["fan_in"], metrics["shop.models"]["fan_out"]) == (4, 0)
    assert metrics["shop.cart"]["symbol_count"] == 6
    assert any_build.table("call_edges").num_rows == EXPECTED["rows"]["calls"]


def test_every_table_is_served_by_the_pruned_reader_without_a_fallback(any_build: S3Build) -> None:
    modes = any_build.chosen_modes()
    # The four extract datasets, and module_dependencies (a plan output that module_metrics reads).
    assert set(modes) == {*EXTRACTED, "module_dependencies"}
    for dataset, event in modes.items():
        assert (event.severity, event.category, event.code) == (
            Severity.INFO,
            Category.DATAFUSION_PROVIDER,
            "provider_mode_default",
        ), dataset
        assert event.payload["provider_mode"] == "delta_pruned_parquet"
        assert event.payload["provider_class"] == OBJECT_STORE_READER_DESCRIPTION
        assert (event.payload["object_store_registered"], event.payload["fallback_reason"]) == (True, None)
    assert sorted(any_build.failed_checks) == ["extract_sources:all_files_parsed (WARN)"]


def test_each_probe_says_what_its_reader_did(s3_build: S3Build) -> None:
    probes: dict[tuple[str | None, str], Any] = {
        (e.dataset, e.payload["mode"]): e
        for e in s3_build.store.read_events(RUN, names=["dataset_provider_probe_v1"])
    }
    for dataset in s3_build.chosen_modes():
        assert (dataset, "delta_table_provider") not in probes  # the first mode served: no other tried
        probe = probes[dataset, "delta_pruned_parquet"]
        assert (probe.severity, probe.payload["ok"]) == (Severity.INFO, True)
        assert probe.payload["rows"] > 0


def test_the_report_shows_the_modes_and_the_files_read(s3_build: S3Build) -> None:
    text = s3_build.report_path.read_text()
    section = text.split("## Provider modes", 1)[1].split("##", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    for dataset in s3_build.chosen_modes():
        assert "| delta_pruned_parquet |" in rows[dataset]
    scans = [
        e.payload
        for e in s3_build.store.read_events(RUN, names=["scan_unit_pruning_v1"])
        if e.payload["provider_mode"] == "delta_pruned_parquet"
    ]
    assert scans  # the plans' scans of object-store tables report the files they read
    for scan in scans:
        assert scan["candidate_files"] is not None and scan["files_bound"] is not None
        assert scan["candidate_files"] <= scan["files_bound"] <= scan["total_files"]
    assert "## Scan pruning" in text
    assert f"{LAKE}/calls" in text


def test_step_processes_shared_the_store_in_the_bucket(s3_parallel: S3Build) -> None:
    events = s3_parallel.store.read_events(s3_parallel.run_id)
    by_subject = {(e.name, e.dataset or e.plan) for e in events}
    for dataset in EXTRACTED:
        assert ("dataset_summary_v1", dataset) in by_subject
    for plan in PLANS:
        assert ("plan_output_v1", plan) in by_subject
    [run] = s3_parallel.store.read_runs(s3_parallel.run_id)
    assert run["metadata"]["executor"] == "multiprocess"
    assert run["metadata"]["dagster_run_id"] != s3_parallel.run_id  # Dagster's own id, for execute_job


def _leaks(text: str) -> bool:
    return SECRET in text


def test_the_secret_key_is_recorded_nowhere(any_build: S3Build) -> None:
    assert _leaks(os.environ.get(LAKE_OPTIONS_ENV, ""))  # the scanner finds the canary where it is
    leaked = [
        str(p) for p in sorted(any_build.home.rglob("*")) if p.is_file() and SECRET.encode() in p.read_bytes()
    ]
    assert leaked == []  # Dagster's run and event storage (SQLite), compute logs, dagster.yaml, the reports
    assert not _leaks(any_build.output)  # what the build printed, Dagster's console logs included
    store, run_id = any_build.store, any_build.run_id
    assert not _leaks(json.dumps([e.to_row() for e in store.read_events(run_id)], default=str))
    assert not _leaks(json.dumps(store.read_runs(run_id), default=str))
    assert not _leaks(json.dumps(store.read_plan_artifacts(run_id), default=str))
    assert not _leaks(_delta_logs_text(any_build))


def test_the_secret_key_is_in_no_telemetry(
    s3_build: S3Build, telemetry_exporters: tuple[InMemorySpanExporter, InMemoryLogRecordExporter]
) -> None:
    spans, logs = telemetry_exporters
    finished_spans, finished_logs = spans.get_finished_spans(), logs.get_finished_logs()
    assert finished_spans and finished_logs  # OpenTelemetry saw the build: its spans and logs are scanned
    assert not _leaks(json.dumps([span.to_json() for span in finished_spans]))
    assert not _leaks(json.dumps([record.to_json() for record in finished_logs]))


def _delta_logs_text(build: S3Build) -> str:
    """Every ``_delta_log`` commit of the build's lake (commit info carries custom metadata)."""
    fs = build.endpoint.filesystem()
    infos = fs.get_file_info(pafs.FileSelector(build.lake.removeprefix("s3://"), recursive=True))
    commits = [i.path for i in infos if "/_delta_log/" in i.path and i.path.endswith(".json")]
    assert commits
    return "\n".join(fs.open_input_stream(path).read().decode() for path in commits)


def test_the_same_cli_build_again_is_up_to_date_from_the_bucket(s3_parallel: S3Build) -> None:
    """Nothing changed: the check reads the tables' versions, the plans' fingerprints and ``source_files``
    from the bucket, launches no run, records ``build_up_to_date_v1`` in the bucket's store, and prints
    the first build's report. No dataset or plan output gets a commit."""
    assert s3_parallel.success, s3_parallel.output[-3000:]
    before = _versions(s3_parallel)
    argv = [str(VENV_BIN / "codeanatomy"), "build", "--source", str(FIXTURE), "--home", str(s3_parallel.home)]
    argv += ["--lake", PARALLEL_LAKE, "--executor", "multiprocess"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"up to date: nothing changed since run {s3_parallel.run_id}")
    assert lines[-1] == str(s3_parallel.home / "reports" / s3_parallel.run_id / "run_diagnostics_report.md")
    events = s3_parallel.store.read_events(names=["build_up_to_date_v1"])
    assert [e.payload["stamped_run_id"] for e in events] == [s3_parallel.run_id]
    assert _versions(s3_parallel) == before
    assert not _leaks(done.stdout + done.stderr)


def _versions(build: S3Build) -> dict[str, int]:
    """The Delta version of every dataset and plan output of the build's lake."""
    options = build.endpoint.storage_options()
    return {
        name: DeltaTable(f"{build.lake}/{name}", storage_options=options).version()
        for name in (*EXTRACTED, *PLANS)
    }
