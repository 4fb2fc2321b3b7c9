"""``delta_pruned_parquet`` on an object store: Delta's statistics pick the files, DataFusion reads exactly
those by URL through the session's object store, and nothing is linked on disk.

On a local SeaweedFS (127.0.0.1): a partitioned table whose partition folders hold a space, ``%``, ``?``
and ``*`` (spelled in object keys as deltalake escapes them), and TPC-H SF 0.01 copied into the bucket.
Rows are compared with deltalake's own reader and with the Delta table provider over the same tables on
local disk (the provider cannot read an object store through DataFusion: "Object stores and the provider"
in ``docs/architecture/scan_strategy.md``).
"""

from __future__ import annotations

import decimal
import json
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.bench.tpch import QUERY_NAMES, load_query, register_delta_tables
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import FARM, OBJECT_STORE_READER_DESCRIPTION, link_files, open_snapshot
from codeanatomy_assets.delta.registration import register_dataset
from codeanatomy_assets.diagnostics.event_names import DATASET_PROVIDER_MODE, SCAN_UNIT_PRUNING
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.engine import CompileOptions, PlanExecution, execute_plan
from codeanatomy_assets.errors import PlanError
from codeanatomy_assets_tests.servers import S3Endpoint, seaweedfs
from codeanatomy_assets_tests.test_tpch import ONE_MONTH, tpch_dataset

pytestmark = pytest.mark.slow

PRUNED = ProviderMode.DELTA_PRUNED_PARQUET
BUCKET = "pruned"
PARTS = ("a b", "50%", "x?y", "star*")
"""Partition values whose folders deltalake escapes (``a%20b``, ``50%25``, ...): keys DataFusion must
read back exactly."""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    root = tmp_path_factory.mktemp("s3-pruned")
    with seaweedfs(root, access_key="codeanatomy-pruned", secret_key="pruned-test-secret") as endpoint:
        endpoint.create_bucket(BUCKET)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_EC2_METADATA_DISABLED", "true")
            yield endpoint


@pytest.fixture(scope="module")
def parted(s3: S3Endpoint) -> str:
    """Four partitions of two files each, ``x`` 0..79 (files of ten consecutive values)."""
    uri = f"s3://{BUCKET}/parted"
    for index in range(8):
        part = PARTS[index % len(PARTS)]
        batch = pa.table({"x": list(range(index * 10, index * 10 + 10)), "part": [part] * 10})
        write_deltalake(
            uri, batch, mode="append", partition_by=["part"], storage_options=s3.storage_options()
        )
    return uri


@pytest.fixture(scope="module")
def tpch_s3(
    s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], dict[str, str]]:
    """TPC-H SF 0.01 (four files per table): ``(local uris, s3 uris)`` of the same Delta tables."""
    local = tpch_dataset(tmp_path_factory)
    remote = {name: f"s3://{BUCKET}/tpch/{name}" for name in local}
    for name, path in local.items():
        pafs.copy_files(path, remote[name].removeprefix("s3://"), destination_filesystem=s3.filesystem())
    return local, remote


def _session() -> SessionContext:
    return SessionContext(SessionConfig().with_target_partitions(2))


def _register(
    ctx: SessionContext, uri: str, s3: S3Endpoint, name: str, sink: DiagnosticsCollector
) -> RegisteredTable:
    registration = register_dataset(
        ctx, name=name, uri=uri, storage_options=s3.storage_options(), run_id="r", sink=sink
    )
    return registration.registered


def _run(ctx: SessionContext, tables: dict[str, RegisteredTable], sql: str, name: str = "p") -> PlanExecution:
    return execute_plan(
        ctx,
        name=name,
        sql=sql,
        options=CompileOptions(run_id="r"),
        sink=DiagnosticsCollector(),
        tables=tables,
    )


def _farm_entries() -> set[str]:
    return set(os.listdir(FARM.root)) if FARM.root is not None else set()


def _deltalake_rows(uri: str, s3: S3Endpoint) -> list[tuple[Any, ...]]:
    table = pa.table(
        pa.RecordBatchReader.from_stream(DeltaTable(uri, storage_options=s3.storage_options()).scan())
    )
    return sorted(tuple(row.values()) for row in table.to_pylist())


def test_an_object_store_table_is_served_by_the_mode_without_a_fallback(parted: str, s3: S3Endpoint) -> None:
    farm_before = _farm_entries()
    ctx, sink = _session(), DiagnosticsCollector()
    table = _register(ctx, parted, s3, "t", sink)
    assert (table.provider_mode, table.provider_class) == (PRUNED, OBJECT_STORE_READER_DESCRIPTION)
    (event,) = sink.artifacts_snapshot()[DATASET_PROVIDER_MODE]
    payload = json.loads(event["payload"])
    assert (event["severity"], payload["fallback_reason"], payload["object_store_registered"]) == (
        "info",
        None,
        True,
    )
    rows = ctx.sql("select x, part from t").to_arrow_table()
    assert sorted(tuple(r.values()) for r in rows.to_pylist()) == _deltalake_rows(parted, s3)
    snapshot = open_snapshot(parted, version=table.version, storage_options=s3.storage_options())
    assert len(snapshot.files) == 8
    assert link_files(snapshot, snapshot.files) == ()
    assert _farm_entries() == farm_before  # no folder of links was made for it


@pytest.mark.parametrize(
    ("predicate", "sql_filter"),
    [
        ("part = 'x?y'", "part = 'x?y'"),  # a partition: its two files
        ("x >= 25 AND x < 35", "x >= 25 and x < 35"),  # statistics: two files of two partitions
        ("part = '50%' AND x < 15", "part = '50%' and x < 15"),  # both: one file
    ],
)
def test_a_plan_reads_exactly_the_files_delta_keeps(
    parted: str, s3: S3Endpoint, predicate: str, sql_filter: str
) -> None:
    ctx, sink = _session(), DiagnosticsCollector()
    tables = {"t": _register(ctx, parted, s3, "t", sink)}
    kept = DeltaTable(parted, storage_options=s3.storage_options()).file_uris(
        file_pruning_predicate=predicate
    )
    assert 0 < len(kept) < 8
    sql = f"select part, count(*) as n, sum(x) as s from t where {sql_filter} group by part"
    result = _run(ctx, tables, sql)
    (bound,) = result.delta_pruning
    assert (bound.rebound, bound.files, bound.live_files) == (True, len(kept), 8)
    (unit,) = result.scan_units
    assert (unit.provider_mode, unit.attribution, unit.total_files) == (PRUNED, "files", 8)
    assert unit.files_bound == unit.candidate_files == unit.delta_candidate_files == len(kept)
    assert not unit.pruning_lost
    expected = ctx.sql(sql).to_arrow_table()  # the whole registration (every live file) agrees
    assert sorted(map(repr, result.table.to_pylist())) == sorted(map(repr, expected.to_pylist()))
    assert ctx.sql("select count(*) as n from t").to_pylist() == [{"n": 80}]  # whole again afterwards


def test_an_object_gone_after_registration_fails_the_plan(s3: S3Endpoint) -> None:
    uri = f"s3://{BUCKET}/gone"
    for index in range(3):
        batch = pa.table({"x": list(range(index * 10, index * 10 + 10))})
        write_deltalake(uri, batch, mode="append", storage_options=s3.storage_options())
    ctx, sink = _session(), DiagnosticsCollector()
    tables = {"t": _register(ctx, uri, s3, "t", sink)}
    assert tables["t"].provider_mode is PRUNED
    victim = DeltaTable(uri, storage_options=s3.storage_options()).file_uris(file_pruning_predicate="x >= 20")
    (file,) = victim
    s3.filesystem().delete_file(file.removeprefix("s3://"))
    with pytest.raises(PlanError, match="are gone"):
        _run(ctx, tables, "select sum(x) as s from t where x >= 20")


# -------------------------------------------------------------------------------------------- TPC-H


def _normalized(table: pa.Table) -> list[tuple[object, ...]]:
    def cell(value: object) -> object:
        return round(value, 6) if isinstance(value, (float, decimal.Decimal)) else value

    return sorted((tuple(cell(v) for v in row.values()) for row in table.to_pylist()), key=repr)


@pytest.fixture(scope="module")
def tpch_session(
    tpch_s3: tuple[dict[str, str], dict[str, str]], s3: S3Endpoint
) -> tuple[SessionContext, dict[str, RegisteredTable]]:
    _, remote = tpch_s3
    ctx, sink = _session(), DiagnosticsCollector()
    tables = {name: _register(ctx, uri, s3, name, sink) for name, uri in remote.items()}
    assert {t.provider_mode for t in tables.values()} == {PRUNED}  # the default policy's choice
    return ctx, tables


def test_every_tpch_query_on_s3_matches_the_delta_provider(
    tpch_session: tuple[SessionContext, dict[str, RegisteredTable]],
    tpch_s3: tuple[dict[str, str], dict[str, str]],
) -> None:
    ctx, tables = tpch_session
    provider = _session()
    register_delta_tables(provider, tpch_s3[0])  # the same tables on local disk
    farm_before = _farm_entries()
    rebound = 0
    for query in QUERY_NAMES:
        sql = load_query(query)
        result = _run(ctx, tables, sql, name=query)
        assert _normalized(result.table) == _normalized(provider.sql(sql).to_arrow_table()), query
        rebound += sum(p.rebound for p in result.delta_pruning)
        bound = {p.dataset: p.files for p in result.delta_pruning}
        for unit in result.scan_units:
            assert unit.provider_mode is PRUNED, (query, unit.dataset)
            # tied by the files it read (Q17's lineitem scans read none: the join ends before them)
            assert unit.attribution in {"files", "only_scan"}, (query, unit.dataset)
            assert unit.candidate_files is not None and unit.candidate_files <= bound[unit.dataset], query
            assert not unit.pruning_lost, (query, unit.dataset)
    assert rebound >= 10
    assert _farm_entries() == farm_before


def test_a_selective_tpch_predicate_reads_delta_candidates_only(
    tpch_session: tuple[SessionContext, dict[str, RegisteredTable]],
    tpch_s3: tuple[dict[str, str], dict[str, str]],
    s3: S3Endpoint,
) -> None:
    ctx, tables = tpch_session
    sql = (
        "select count(*) as n, sum(l_quantity) as q from lineitem "
        "where l_shipdate >= date '1994-01-01' and l_shipdate < date '1994-02-01'"
    )
    result = _run(ctx, tables, sql)
    remote = tpch_s3[1]["lineitem"]
    kept = DeltaTable(remote, storage_options=s3.storage_options()).file_uris(
        file_pruning_predicate=ONE_MONTH
    )
    (unit,) = result.scan_units
    assert (unit.total_files, unit.delta_candidate_files, unit.files_bound) == (4, len(kept), len(kept))
    assert unit.candidate_files == len(kept) == 1
    assert unit.pruned_files == 3
    rows = [json.loads(r["payload"]) for r in result_rows(ctx, tables, sql)]
    assert [(r["provider_mode"], r["files_bound"], r["candidate_files"]) for r in rows] == [
        ("delta_pruned_parquet", 1, 1)
    ]
    provider = _session()
    register_delta_tables(provider, {"lineitem": tpch_s3[0]["lineitem"]})
    assert result.table.to_pylist() == provider.sql(sql).to_pylist()


def result_rows(ctx: SessionContext, tables: dict[str, RegisteredTable], sql: str) -> list[dict[str, Any]]:
    """The ``scan_unit_pruning_v1`` records of one plan (what the report's Scan pruning section reads)."""
    sink = DiagnosticsCollector()
    execute_plan(ctx, name="p", sql=sql, options=CompileOptions(run_id="r"), sink=sink, tables=tables)
    return sink.artifacts_snapshot().get(SCAN_UNIT_PRUNING, [])
