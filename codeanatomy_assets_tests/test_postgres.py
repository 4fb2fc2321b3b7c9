"""The Dagster instance on PostgreSQL: a ``dagster.yaml`` of the user's in ``<home>/dagster`` is used as it
is, so a build's runs, events and checks go to a PostgreSQL server (a throwaway cluster on 127.0.0.1) and
are read back from there; nothing goes to the SQLite files of the default instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import BuildRequest, instance_for, run_build
from codeanatomy_assets_tests.servers import PostgresEndpoint, postgres

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
RUN = "00000000-0000-4000-8000-0000000009d5"
PASSWORD_ENV = "CODEANATOMY_TEST_PG_PASSWORD"
ASSETS = (
    EXTRACT_ASSET,
    "source_files",
    "symbols",
    "imports",
    "calls",
    "module_dependencies",
    "call_edges",
    "module_metrics",
    "package_hotspots",
    REPORT_ASSET,
)


def dagster_yaml(server: PostgresEndpoint) -> str:
    """The documented shape (docs/deployment.md): Postgres storage, the password from the environment.

    ``scheme`` names the driver dagster-postgres installs (psycopg2): SQLAlchemy 2.1 reads a bare
    ``postgresql`` as psycopg 3, which nothing installs.
    """
    return f"""\
storage:
  postgres:
    postgres_db:
      scheme: postgresql+psycopg2
      username: {server.user}
      password:
        env: {PASSWORD_ENV}
      hostname: {server.host}
      port: {server.port}
      db_name: {server.database}
telemetry:
  enabled: false
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresBuild:
    home: ProjectHome
    server: PostgresEndpoint
    config: str
    outcome: BuildOutcome


@pytest.fixture(scope="module")
def pg_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresBuild]:
    pytest.importorskip("dagster_postgres", reason="pip install dagster-postgres (part of the test extra)")
    home = ProjectHome.resolve(tmp_path_factory.mktemp("pg") / "home")
    with postgres() as server, pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, "trust-auth-accepts-any")
        home.dagster_home.mkdir(parents=True)
        config = dagster_yaml(server)
        (home.dagster_home / "dagster.yaml").write_text(config)
        outcome = run_build(BuildRequest.resolve(source=FIXTURE, home=home.root), run_id=RUN)
        yield PostgresBuild(home=home, server=server, config=config, outcome=outcome)


def test_the_build_uses_the_users_dagster_yaml(pg_build: PostgresBuild) -> None:
    assert pg_build.outcome.success, pg_build.outcome.failed_steps
    assert (pg_build.home.dagster_home / "dagster.yaml").read_text() == pg_build.config  # left as written
    instance = instance_for(pg_build.home)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    sqlite_files = [p.name for p in pg_build.home.dagster_home.rglob("*.db")]
    assert sqlite_files == []  # the default instance would keep runs.db and event logs here


def test_the_run_its_materializations_and_checks_read_back(pg_build: PostgresBuild) -> None:
    instance = instance_for(pg_build.home)
    run = instance.get_run_by_id(RUN)
    assert run is not None
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert [r.run_id for r in instance.get_runs()] == [RUN]
    for asset in ASSETS:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.run_id == RUN, asset
    evaluations = instance.get_records_for_run(
        RUN, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = {
        r.event_log_entry.dagster_event.event_specific_data.asset_check_key.name
        for r in evaluations
        if not r.event_log_entry.dagster_event.event_specific_data.passed
    }
    # 26, +4 delta_layout_healthy (datasets), +8 no_change_since_last_run (datasets and plans)
    assert len(evaluations) == 38
    assert failed == {"all_files_parsed"}


def test_the_rows_are_in_postgres_itself(pg_build: PostgresBuild) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    server = pg_build.server
    connect = {"host": server.host, "port": server.port, "user": server.user, "dbname": server.database}
    with closing(psycopg2.connect(**connect)) as connection, connection.cursor() as cursor:
        cursor.execute("select run_id, status from runs")
        assert cursor.fetchall() == [(RUN, "SUCCESS")]
        cursor.execute("select count(*) from event_logs where run_id = %s", (RUN,))
        (events,) = cursor.fetchone()
    assert events > 50
