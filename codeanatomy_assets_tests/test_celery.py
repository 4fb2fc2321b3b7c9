"""The build under the Celery executor (``dagster-celery``): a distributed deployment on one machine.

Redis (Debian's ``redis-server``, with a password) on 127.0.0.1 is the broker and result backend; two
Celery worker processes (``celery -A dagster_celery.app worker``, one task at a time each) run the steps;
the Dagster instance is on PostgreSQL (a throwaway cluster) and the lake, with the diagnostics store, on
SeaweedFS's S3 API: nothing is shared between the launching process and the workers but those servers
(and the fixture tree they analyse). The test starts and stops every one of them.

It proves that every step ran in a worker (Dagster's step-start records name the workers' process ids,
never the test's), that the store holds every step's events under the build's run id and the report is
complete with every gate passed, that every dataset and plan output holds the rows of an in-process
build of the same tree, and that the broker's password is recorded nowhere (the run config names the
environment variables that hold the URLs, the run envelope has them redacted).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.celery_settings import CELERY_BACKEND_ENV, CELERY_BROKER_ENV, CelerySettings
from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET
from codeanatomy_assets.defs.resources import RUN_ID_TAG
from codeanatomy_assets.diagnostics.redact import REDACTED
from codeanatomy_assets.home import LAKE_OPTIONS_ENV, ProjectHome
from codeanatomy_assets.runner import BuildRequest, Executor, instance_for, run_build
from codeanatomy_assets_tests.servers import (
    PostgresEndpoint,
    S3Endpoint,
    Server,
    celery_workers,
    postgres,
    redis,
    seaweedfs,
)
from codeanatomy_assets_tests.test_multiprocess import markdown_rows
from codeanatomy_assets_tests.test_postgres import PASSWORD_ENV, dagster_yaml

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
REPO_ROOT = Path(__file__).resolve().parent.parent
RUN = "00000000-0000-4000-8000-00000000ce1e"
REFERENCE_RUN = "00000000-0000-4000-8000-00000000ce1f"
REDIS_PASSWORD = "canary-redis-ce1e-do-not-leak"
ACCESS_KEY = "codeanatomy-celery-test"
S3_SECRET = "canary-s3-secret-ce1e-do-not-leak"
LAKE = "s3://lake/celery"
WORKERS = 2
DATASETS = ("calls", "imports", "source_files", "symbols")
PLANS = ("call_edges", "module_dependencies", "module_metrics", "package_hotspots")
STEPS = (EXTRACT_ASSET, *DATASETS, *PLANS, REPORT_ASSET, "changes_since_last_run")


@dataclass(frozen=True, slots=True, kw_only=True)
class CeleryBuild:
    home: ProjectHome
    endpoint: S3Endpoint
    database: PostgresEndpoint
    workers: list[Server]
    outcome: BuildOutcome

    @property
    def dagster_run_id(self) -> str:
        return str(self.outcome.dagster_run_id)

    def instance(self) -> dg.DagsterInstance:
        return instance_for(self.home)

    def records(self, kind: dg.DagsterEventType) -> list[dg.EventLogRecord]:
        return list(self.instance().get_records_for_run(self.dagster_run_id, of_type=kind).records)

    def table(self, name: str) -> pa.Table:
        """An output of the lake, read with deltalake's own scan."""
        delta = DeltaTable(self.home.dataset_uri(name), storage_options=self.endpoint.storage_options())
        return pa.RecordBatchReader.from_stream(delta.scan()).read_all()


def worker_env(home: ProjectHome, broker: str, backend: str) -> dict[str, str]:
    """What a worker host would set: the broker, the instance's password, the lake's credentials, and
    this checkout on the path (the steps import ``codeanatomy_assets.runner``)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CODEANATOMY_CELERY_", "CELERY_"))
    }
    path = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env | {
        "PYTHONPATH": path,
        "DAGSTER_HOME": str(home.dagster_home),
        CELERY_BROKER_ENV: broker,
        CELERY_BACKEND_ENV: backend,
    }


@pytest.fixture(scope="module")
def celery_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryBuild]:
    pytest.importorskip("dagster_celery", reason="pip install dagster-celery[redis] (part of the test extra)")
    pytest.importorskip("dagster_postgres", reason="pip install dagster-postgres (part of the test extra)")
    root = tmp_path_factory.mktemp("celery")
    home = ProjectHome.resolve(root / "home", lake=LAKE)
    with ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        database = stack.enter_context(postgres())
        endpoint = stack.enter_context(seaweedfs(root, access_key=ACCESS_KEY, secret_key=S3_SECRET))
        endpoint.create_bucket("lake")
        env.setenv(PASSWORD_ENV, "trust-auth-accepts-any")
        env.setenv(LAKE_OPTIONS_ENV, json.dumps(endpoint.storage_options()))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata service for anything
        home.dagster_home.mkdir(parents=True)
        (home.dagster_home / "dagster.yaml").write_text(dagster_yaml(database))
        base = stack.enter_context(redis(root, password=REDIS_PASSWORD))
        settings = CelerySettings.resolve(broker=f"{base}/0", backend=f"{base}/1")
        env_ = worker_env(home, settings.broker, settings.backend)
        workers = stack.enter_context(celery_workers(WORKERS, root=root, env=env_))
        request = BuildRequest.resolve(source=FIXTURE, home=home.root, lake=LAKE)
        outcome = run_build(request, run_id=RUN, executor=Executor.CELERY, celery=settings)
        home = ProjectHome.resolve(home.root, lake=LAKE)  # with the storage options now in the environment
        yield CeleryBuild(home=home, endpoint=endpoint, database=database, workers=workers, outcome=outcome)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ProjectHome:
    """The same tree built in-process, on local disk with the default instance."""
    home = ProjectHome.resolve(tmp_path_factory.mktemp("celery-reference"))
    outcome = run_build(BuildRequest.resolve(source=FIXTURE, home=home.root), run_id=REFERENCE_RUN)
    assert outcome.success, outcome.failed_steps
    return home


def test_the_build_succeeds(celery_build: CeleryBuild) -> None:
    outcome = celery_build.outcome
    assert outcome.success, (outcome.failed_steps, outcome.step_failures)
    assert outcome.failed_steps == []
    assert outcome.failed_gates == []
    # The sample tree holds two files that do not parse; the lake's tables are served by the pruned reader
    # on object storage too, so no dataset falls back.
    assert outcome.failed_checks == ["extract_sources:all_files_parsed (WARN)"]


def test_every_step_ran_in_a_worker_process(celery_build: CeleryBuild) -> None:
    pids = {
        r.event_log_entry.step_key: r.event_log_entry.dagster_event.pid
        for r in celery_build.records(dg.DagsterEventType.STEP_START)
    }
    assert set(pids) == set(STEPS)
    worker_pids = {w.popen.pid for w in celery_build.workers}
    assert set(pids.values()) == worker_pids  # each step in a worker, and both workers took steps
    assert os.getpid() not in pids.values()


def test_each_step_was_a_task_of_a_named_worker(celery_build: CeleryBuild) -> None:
    """The task's own engine event names the Celery worker that ran the step."""
    by_step: dict[str, str] = {}
    for record in celery_build.records(dg.DagsterEventType.ENGINE_EVENT):
        entry = record.event_log_entry
        message = entry.dagster_event.message or ""
        if "Executing steps" in message and "in celery worker" in message and entry.step_key:
            metadata = entry.dagster_event.event_specific_data.metadata
            by_step[entry.step_key] = str(metadata["Celery worker"].value)
    assert set(by_step) == set(STEPS)
    assert {name.split("@", 1)[0] for name in by_step.values()} == {"codeanatomy-1", "codeanatomy-2"}


def test_the_run_records_the_executor_with_the_urls_redacted(celery_build: CeleryBuild) -> None:
    run = celery_build.instance().get_run_by_id(celery_build.dagster_run_id)
    assert run is not None and run.status is dg.DagsterRunStatus.SUCCESS
    assert run.tags[RUN_ID_TAG] == RUN
    execution = run.run_config["execution"]["config"]
    assert execution == {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": CELERY_BACKEND_ENV}}
    [envelope] = celery_build.home.diagnostics_store().read_runs(RUN)
    assert envelope["status"] == "completed"
    assert envelope["metadata"]["executor"] == "celery"
    assert envelope["metadata"]["dagster_run_id"] == run.run_id
    broker = envelope["metadata"]["celery"]["broker"]
    assert broker.startswith(f"redis://{REDACTED}@127.0.0.1:") and broker.endswith("/0")


def test_the_store_holds_the_diagnostics_of_every_step(celery_build: CeleryBuild) -> None:
    events = celery_build.home.diagnostics_store().read_events(RUN)
    assert {e.run_id for e in events} == {RUN}
    names = {(e.name, e.dataset or e.plan or e.asset_key) for e in events}
    assert ("extract_completed_v1", None) in names
    for dataset in DATASETS:
        assert ("dataset_provider_mode_v1", dataset) in names
        assert ("dataset_summary_v1", dataset) in names
    for plan in PLANS:
        assert ("plan_output_v1", plan) in names
        phases = {
            e.payload.get("phase") for e in events if e.name == "datafusion_plan_phase_v1" and e.plan == plan
        }
        assert phases >= {"logical", "optimized", "physical", "execute"}, plan


def test_the_report_is_complete_and_its_gates_pass(celery_build: CeleryBuild) -> None:
    event = celery_build.instance().get_latest_materialization_event(dg.AssetKey(REPORT_ASSET))
    assert event is not None and event.asset_materialization is not None
    assert event.run_id == celery_build.dagster_run_id  # written by the report step, in a worker
    final = celery_build.outcome.report_path.read_text()  # written by the launching process after the job
    for markdown in (str(event.asset_materialization.metadata["report"].value), final):
        modes = markdown.split("## Provider modes", 1)[1].split("## ", 1)[0]
        timings = markdown.split("## Plan-phase timings", 1)[1].split("## ", 1)[0]
        chosen = {cells[0]: cells[1] for cells in markdown_rows(modes)}
        assert all(chosen[d] not in {"", "none"} for d in DATASETS), chosen
        for plan in PLANS:
            phases = {cells[1] for cells in markdown_rows(timings) if cells[0] == plan}
            assert phases >= {"logical", "optimized", "physical", "execute"}, plan
        gates = markdown_rows(markdown.split("## Acceptance gates", 1)[1].split("## ", 1)[0])
        assert gates and all(cells[1] == "yes" for cells in gates), gates


def rows(table: pa.Table) -> Counter[str]:
    """The table's rows as a multiset (each row as canonical JSON)."""
    return Counter(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


def test_every_output_holds_the_rows_of_the_in_process_build(
    celery_build: CeleryBuild, reference: ProjectHome
) -> None:
    for name in (*DATASETS, *PLANS):
        expected = DeltaTable(reference.dataset_uri(name)).to_pyarrow_table()
        got = celery_build.table(name)
        assert got.num_rows == expected.num_rows > 0, name
        assert rows(got) == rows(expected), name


def test_the_brokers_password_is_recorded_nowhere(celery_build: CeleryBuild) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    server = celery_build.database
    connect = {"host": server.host, "port": server.port, "user": server.user, "dbname": server.database}
    with closing(psycopg2.connect(**connect)) as connection, connection.cursor() as cursor:
        cursor.execute("select run_body from runs")
        recorded = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute("select event from event_logs")
        recorded += [str(row[0]) for row in cursor.fetchall()]
    assert len(recorded) > 50 and any(CELERY_BROKER_ENV in text for text in recorded)
    assert not [text for text in recorded if REDIS_PASSWORD in text]
    store = celery_build.home.diagnostics_store()
    recorded_events: list[Any] = [e.to_row() for e in store.read_events(RUN)] + store.read_runs(RUN)
    assert REDIS_PASSWORD not in json.dumps(recorded_events, default=str)
    files = [p for p in celery_build.home.root.rglob("*") if p.is_file()]
    assert files and not [p for p in files if REDIS_PASSWORD.encode() in p.read_bytes()]
