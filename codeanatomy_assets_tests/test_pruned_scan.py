"""``delta_pruned_parquet``: exactly deltalake's rows, only the files Delta's log keeps, one pinned version.

The reference is deltalake's own reader (``pa.table(DeltaTable(uri).scan())``; never ``to_pyarrow_table``,
FACTS #24), compared order-independently after casting view types to plain ones.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.bench.provider_modes import MODES
from codeanatomy_assets.bench.tpch import QUERY_NAMES, load_query, register_delta_tables
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import (
    FARM_PREFIX,
    READER_DESCRIPTION,
    LinkFarm,
    link_files,
    open_snapshot,
)
from codeanatomy_assets.delta.registration import register_dataset, register_for_plan
from codeanatomy_assets.delta.registration_records import Registration, RegistrationPolicy
from codeanatomy_assets.diagnostics.event_names import (
    DATASET_PROVIDER_MODE,
    DELTA_PROTOCOL_COMPATIBILITY,
    SCAN_UNIT_PRUNING,
)
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.engine import CompileOptions, PlanExecution, execute_plan
from codeanatomy_assets.engine.pruning import pruning_predicates
from codeanatomy_assets.errors import DatasetError, PlanError, ProtocolIncompatibleError
from codeanatomy_assets_tests.test_tpch import ONE_MONTH, tpch_dataset

PRUNED = ProviderMode.DELTA_PRUNED_PARQUET
ONLY_PRUNED = RegistrationPolicy(modes=(PRUNED,), allow_fallback=False)

# Corpus tables with their data files that the mode reads, and the ones it refuses (with the reason).
ACCEPTED = (
    "COVID-19_NYT",
    "cdc_ict_table",
    "checkpoint-v2-table",
    "delta-0.8-empty",
    "delta-0.8.0-partitioned",
    "http_requests",
    "issue-2152",
    "simple_table",
    "simple_table_with_checkpoint",
    "table_failed_last_checkpoint_update",
    "table_with_liquid_clustering",  # deletionVectors enabled, none in use
)
REFUSED = {
    "table-with-dv-small": "deletionVectors(in use: 1 live files)",
    "table_with_column_mapping": "delta.columnMapping.mode=name",
    "spark-shredded-variant-preview-delta": "variantShredding-preview",
    "spark-variant-stable-feature-checkpoint": "variantType",
    "simple_table_features": "minReaderVersion=5",
    "checkpoints": "missing or damaged",  # data files not shipped
    "latest_not_checkpointed": "missing or damaged",
    "with_checkpoint_no_last_checkpoint": "missing or damaged",
    "table-with-domain-metadata": "missing or damaged",
}


# ------------------------------------------------------------------------------------------- helpers


def _plain_type(kind: pa.DataType) -> pa.DataType:
    return {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}.get(kind, kind)


def canonical(table: pa.Table) -> pa.Table:
    """``table`` with view types as plain ones, plain nullable fields, rows sorted by every column."""
    schema = pa.schema([pa.field(f.name, _plain_type(f.type)) for f in table.schema])
    table = table.cast(schema)
    if table.num_rows == 0:
        return table
    return table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()


def deltalake_rows(uri: str | Path, version: int | None = None) -> pa.Table:
    """deltalake's own reader (``DeltaTable.scan``)."""
    return pa.table(pa.RecordBatchReader.from_stream(DeltaTable(str(uri), version=version).scan()))


def register(uri: str | Path, name: str = "t", **kwargs: Any) -> tuple[Registration, SessionContext]:
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    registration = register_dataset(
        ctx, name=name, uri=str(uri), run_id="r", sink=DiagnosticsCollector(), **kwargs
    )
    return registration, ctx


def run(
    ctx: SessionContext, tables: dict[str, RegisteredTable], sql: str, name: str = "p"
) -> tuple[PlanExecution, list[dict[str, Any]]]:
    sink = DiagnosticsCollector()
    result = execute_plan(
        ctx, name=name, sql=sql, options=CompileOptions(run_id="r"), sink=sink, tables=tables
    )
    return result, sink.artifacts_snapshot().get(SCAN_UNIT_PRUNING, [])


def commit_lines(table: Path, version: int) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    ]


def write_commit(table: Path, version: int, actions: list[dict[str, Any]]) -> None:
    text = "\n".join(json.dumps(a) for a in actions) + "\n"
    (table / "_delta_log" / f"{version:020d}.json").write_text(text)


# ------------------------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("name", ACCEPTED)
def test_corpus_tables_read_exactly_as_deltalake(delta_corpus: Path, name: str) -> None:
    uri = delta_corpus / name
    registration, ctx = register(uri, policy=ONLY_PRUNED)
    registered = registration.registered
    assert registered.provider_mode is PRUNED
    assert registered.version == DeltaTable(str(uri)).version()
    expected = canonical(deltalake_rows(uri))
    got = ctx.sql("SELECT * FROM t").to_arrow_table()
    assert got.column_names == expected.column_names  # table order, partition columns included
    assert canonical(got).equals(expected)
    # Through a plan, with a predicate that binds the table over Delta's candidate files.
    first = expected.column_names[0]
    result, _ = run(ctx, {"t": registered}, f'SELECT * FROM t WHERE "{first}" IS NOT NULL')
    assert canonical(result.table).equals(canonical(expected.filter(pc.is_valid(expected[first]))))
    has_files = bool(DeltaTable(str(uri)).file_uris())  # an empty table is an empty in-memory table
    assert [p.dataset for p in result.delta_pruning] == (["t"] if has_files else [])


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_corpus_tables_the_mode_refuses_say_why(delta_corpus: Path, name: str) -> None:
    sink = DiagnosticsCollector()
    with pytest.raises((ProtocolIncompatibleError, DatasetError)):
        register_dataset(
            SessionContext(),
            name="t",
            uri=str(delta_corpus / name),
            run_id="r",
            sink=sink,
            policy=ONLY_PRUNED,
        )
    (mode,) = sink.artifacts_snapshot()[DATASET_PROVIDER_MODE]
    payload = json.loads(mode["payload"])
    assert (mode["severity"], mode["category"], payload["provider_mode"]) == (
        "error",
        "datafusion_provider",
        "none",
    )
    assert REFUSED[name] in payload["fallback_reason"]


def test_default_policy_falls_back_with_a_warned_reason(delta_corpus: Path) -> None:
    registration, ctx = register(delta_corpus / "table_with_column_mapping")
    assert registration.registered.provider_mode is ProviderMode.DELTA_TABLE_PROVIDER
    mode = next(e for e in registration.events if e.name == DATASET_PROVIDER_MODE)
    assert (mode.severity.value, mode.category.value, mode.code) == (
        "warn",
        "datafusion_provider",
        "provider_mode_fallback",
    )
    assert mode.payload["fallback_reason"].startswith("delta_pruned_parquet unsupported: columnMapping")
    assert mode.payload["delta_file_pruning"] is False
    compat = next(e for e in registration.events if e.name == DELTA_PROTOCOL_COMPATIBILITY)
    assert compat.payload["compatibility"]["delta_pruned_parquet"]["compatible"] is False
    assert canonical(ctx.sql("SELECT * FROM t").to_arrow_table()).equals(
        canonical(deltalake_rows(delta_corpus / "table_with_column_mapping"))
    )


def test_an_unreachable_object_store_is_refused_for_its_log_not_its_location() -> None:
    """Object stores are served by the mode (``test_s3_pruned.py``); one that cannot be reached fails as
    its log cannot be read, for every mode."""
    options = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    sink = DiagnosticsCollector()
    with pytest.raises(DatasetError):
        register_dataset(
            SessionContext(),
            name="remote",
            uri="s3://bucket/table",
            storage_options={**options, "max_retries": "0"},
            run_id="r",
            sink=sink,
            probe=False,
        )
    compat = json.loads(sink.artifacts_snapshot()[DELTA_PROTOCOL_COMPATIBILITY][0]["payload"])
    verdict = compat["compatibility"]["delta_pruned_parquet"]
    assert "object_store_location" not in verdict["unsupported"]  # the store was registered


# ------------------------------------------------------------------------------------ local tables


def test_partition_values_come_typed_from_the_log(tmp_path: Path) -> None:
    uri = tmp_path / "parts"
    moment = dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC)
    write_deltalake(
        uri,
        pa.table(
            {
                "v": [1, 2, 3, 4, 5],
                "s": ["a b/c=d%e", None, "x", "ü", "2024-01-01"],
                "d": pa.array([dt.date(2020, 1, 1), None, dt.date(2021, 5, 5), None, dt.date(2020, 1, 1)]),
                "i": pa.array([1, 2, None, 4, 5], pa.int32()),
                "ts": pa.array([moment, None, moment, None, moment], pa.timestamp("us", tz="UTC")),
                "n": pa.array([decimal.Decimal("1.50"), None, None, None, None], pa.decimal128(5, 2)),
            }
        ),
        partition_by=["s", "d", "i", "ts"],
    )
    registration, ctx = register(uri, policy=ONLY_PRUNED)
    got = ctx.sql("SELECT * FROM t").to_arrow_table()
    types = dict(zip(got.column_names, got.schema.types, strict=True))
    assert (types["s"], types["d"], types["i"], types["ts"]) == (
        pa.string_view(),
        pa.date32(),
        pa.int32(),
        pa.timestamp("us", tz="UTC"),
    )
    assert canonical(got).equals(canonical(deltalake_rows(uri)))
    tables = {"t": registration.registered}
    result, _ = run(ctx, tables, "SELECT v FROM t WHERE i IS NULL OR s = 'ü' ORDER BY v")
    assert result.table.column("v").to_pylist() == [3, 4]
    result, _ = run(ctx, tables, "SELECT v FROM t WHERE d IS NULL AND ts IS NULL ORDER BY v")
    assert result.table.column("v").to_pylist() == [2, 4]


def test_files_missing_newer_columns_read_them_as_nulls(tmp_path: Path) -> None:
    uri = tmp_path / "evolving"
    write_deltalake(uri, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    write_deltalake(
        uri, pa.table({"a": [3], "b": ["z"], "c": pa.array([3.5])}), mode="append", schema_mode="merge"
    )
    registration, ctx = register(uri, policy=ONLY_PRUNED)
    got = ctx.sql("SELECT * FROM t").to_arrow_table()
    assert got.column_names == ["a", "b", "c"]
    assert canonical(got).equals(canonical(deltalake_rows(uri)))
    result, _ = run(ctx, {"t": registration.registered}, "SELECT a FROM t WHERE c IS NULL ORDER BY a")
    assert result.table.column("a").to_pylist() == [1, 2]


def test_int96_and_ntz_timestamps(tmp_path: Path) -> None:
    """Spark's legacy INT96 timestamps and timestamp_ntz read as deltalake reads them."""
    uri = tmp_path / "times"
    noon = dt.datetime(2020, 1, 1, 12)
    write_deltalake(
        uri,
        pa.table(
            {
                "id": [1, 2, 3],
                "ts": pa.array([noon, None, dt.datetime(1900, 1, 1)], pa.timestamp("us")).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "ntz": pa.array([noon, dt.datetime(2021, 6, 1), None], pa.timestamp("us")),
            }
        ),
    )
    (path,) = DeltaTable(str(uri)).file_uris()
    pq.write_table(pq.read_table(path), path, use_deprecated_int96_timestamps=True)
    actions = commit_lines(uri, 0)
    for action in actions:
        if "add" in action:
            action["add"]["size"] = os.path.getsize(path)  # the log records the rewritten file's size
    write_commit(uri, 0, actions)
    assert pq.read_schema(path).field("ts").type == pa.timestamp("ns")  # INT96 in the file
    registration, ctx = register(uri, policy=ONLY_PRUNED)
    assert registration.registered.provider_mode is PRUNED
    assert "timestampNtz" in registration.health.reader_features
    assert canonical(ctx.sql("SELECT * FROM t").to_arrow_table()).equals(canonical(deltalake_rows(uri)))
    result, _ = run(
        ctx, {"t": registration.registered}, "SELECT id FROM t WHERE ts > TIMESTAMP '2000-01-01T00:00:00Z'"
    )
    assert result.table.column("id").to_pylist() == [1]


def test_removed_files_are_never_read(tmp_path: Path) -> None:
    uri = tmp_path / "overwritten"
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))
    write_deltalake(uri, pa.table({"x": [10, 20]}), mode="overwrite")  # the first file stays on disk
    _, ctx = register(uri, policy=ONLY_PRUNED)
    assert ctx.sql("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 30}]


def test_damaged_files_are_refused_and_glob_paths_read_exactly(tmp_path: Path) -> None:
    uri = tmp_path / "damaged"
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))
    (path,) = DeltaTable(str(uri)).file_uris()
    with open(path, "ab") as handle:
        handle.write(b"trailing bytes")  # deltalake refuses a file whose size is not the logged one
    with pytest.raises(DatasetError, match="missing or damaged"):
        register(uri, policy=ONLY_PRUNED)

    globbed = tmp_path / "globbed"
    write_deltalake(globbed, pa.table({"x": [1]}))
    write_deltalake(globbed, pa.table({"x": [2]}), mode="append")
    first = commit_lines(globbed, 0)
    add = next(a["add"] for a in first if "add" in a)
    os.rename(globbed / add["path"], globbed / ("u?" + add["path"]))
    add["path"] = "u%3F" + add["path"]
    write_commit(globbed, 0, first)
    # DataFusion would expand "u?..." as a glob and also read this file, which no add action names.
    pq.write_table(pa.table({"x": [1000]}), globbed / ("uX" + add["path"]))
    _, ctx = register(globbed, policy=ONLY_PRUNED)
    assert ctx.sql("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 3}]
    assert canonical(ctx.sql("SELECT * FROM t").to_arrow_table()).equals(canonical(deltalake_rows(globbed)))


def test_a_file_gone_after_registration_fails_the_plan(tmp_path: Path) -> None:
    """DataFusion's listing skips a dangling link silently; a plan checks its links and fails instead,
    and a table it bound before the failure is registered whole again."""
    ctx = SessionContext()
    tables: dict[str, RegisteredTable] = {}
    for name in ("a", "b"):
        uri = tmp_path / name
        write_deltalake(uri, pa.table({"x": [1, 2]}))
        write_deltalake(uri, pa.table({"x": [10, 20]}), mode="append")
        tables[name] = register_dataset(
            ctx, name=name, uri=str(uri), run_id="r", sink=DiagnosticsCollector()
        ).registered
    gone = open_snapshot(str(tmp_path / "b"), version=1)
    (folder,) = link_files(gone, gone.files)
    os.unlink(folder.links[0][0])  # as if a symbolic link's file had been vacuumed
    with pytest.raises(PlanError, match="are gone"):
        run(ctx, tables, "SELECT count(*) AS n FROM a CROSS JOIN b WHERE a.x > 5")
    assert ctx.sql("SELECT sum(x) AS s FROM a").to_pylist() == [{"s": 33}]


def test_vacuum_protocol_check_is_read_and_pruned(tmp_path: Path) -> None:
    """Readers only acknowledge vacuumProtocolCheck (spec); the provider refuses it (FACTS #6), this mode not."""
    uri = tmp_path / "vacuum"
    write_deltalake(uri, pa.table({"x": [1, 2]}))
    write_deltalake(uri, pa.table({"x": [10, 20]}), mode="append")
    actions = commit_lines(uri, 0)
    for action in actions:
        if "protocol" in action:
            action["protocol"] = {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["vacuumProtocolCheck"],
                "writerFeatures": ["vacuumProtocolCheck"],
            }
    write_commit(uri, 0, actions)
    registration, ctx = register(uri)
    assert registration.registered.provider_mode is PRUNED
    assert registration.compatibility[ProviderMode.DELTA_TABLE_PROVIDER].unsupported == (
        "vacuumProtocolCheck",
    )
    result, _ = run(ctx, {"t": registration.registered}, "SELECT x FROM t WHERE x > 5 ORDER BY x")
    assert result.table.column("x").to_pylist() == [10, 20]
    (bound,) = result.delta_pruning
    assert (bound.rebound, bound.files, bound.live_files, bound.reason) == (True, 1, 2, None)


def test_a_commit_between_planning_and_scanning_is_not_read(tmp_path: Path) -> None:
    uri = tmp_path / "moving"
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))
    write_deltalake(uri, pa.table({"x": [4]}), mode="append")
    registration, ctx = register(uri)
    pinned = registration.registered
    assert (pinned.provider_mode, pinned.version) == (PRUNED, 1)
    write_deltalake(uri, pa.table({"x": [100, 200]}), mode="append")  # version 2, after registration
    write_deltalake(uri, pa.table({"x": [7]}), mode="overwrite")  # version 3 removes every file
    result, units = run(ctx, {"t": pinned}, "SELECT sum(x) AS s, count(*) AS n FROM t WHERE x >= 2")
    assert result.table.to_pylist() == [{"s": 9, "n": 3}]
    assert [p.version for p in result.delta_pruning] == [1]
    assert json.loads(units[0]["payload"])["table_version"] == 1
    # The replayed decision reads the same version in another session.
    other = SessionContext()
    register_for_plan(other, pinned)
    assert other.sql("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 10}]
    # A plan that re-registered its table left every live file registered again.
    assert ctx.sql("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 10}]


def test_pinned_snapshots_never_move(tmp_path: Path) -> None:
    uri = tmp_path / "pin"
    write_deltalake(uri, pa.table({"x": [1]}))
    first = open_snapshot(str(uri), version=None)
    write_deltalake(uri, pa.table({"x": [2]}), mode="append")
    assert open_snapshot(str(uri), version=0) is first
    assert (first.version, len(first.files)) == (0, 1)
    assert (open_snapshot(str(uri), version=None).version, len(open_snapshot(str(uri), version=1).files)) == (
        1,
        2,
    )


# -------------------------------------------------------------------------------------------- TPC-H


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tpch_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def pruned_session(tpch: dict[str, str]) -> tuple[SessionContext, dict[str, RegisteredTable]]:
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    sink = DiagnosticsCollector()
    tables = {
        name: register_dataset(ctx, name=name, uri=uri, run_id="r", sink=sink).registered
        for name, uri in tpch.items()
    }
    assert {t.provider_mode for t in tables.values()} == {PRUNED}  # the default policy's choice
    return ctx, tables


def _normalized(table: pa.Table) -> list[tuple[object, ...]]:
    def cell(value: object) -> object:
        return round(value, 6) if isinstance(value, (float, decimal.Decimal)) else value

    return sorted((tuple(cell(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def test_every_tpch_query_matches_the_delta_provider(
    pruned_session: tuple[SessionContext, dict[str, RegisteredTable]], tpch: dict[str, str]
) -> None:
    ctx, tables = pruned_session
    provider = SessionContext(SessionConfig().with_target_partitions(2))
    register_delta_tables(provider, tpch)
    rebound = 0
    for query in QUERY_NAMES:
        sql = load_query(query)
        expected = _normalized(provider.sql(sql).to_arrow_table())
        result, _ = run(ctx, tables, sql, name=query)
        assert _normalized(result.table) == expected, query
        assert _normalized(ctx.sql(sql).to_arrow_table()) == expected, query  # the registration itself
        rebound += sum(p.rebound for p in result.delta_pruning)
        for unit in result.scan_units:
            assert unit.provider_mode is PRUNED
            assert not unit.pruning_lost, (query, unit.dataset)
    assert rebound >= 10  # the selective predicates of Q3, Q5, Q6, Q7, Q10, Q12, Q14, Q20, ...


def test_a_selective_predicate_reads_exactly_the_files_delta_keeps(
    pruned_session: tuple[SessionContext, dict[str, RegisteredTable]], tpch: dict[str, str]
) -> None:
    ctx, tables = pruned_session
    sql = (
        "select count(*) as n, sum(l_quantity) as q from lineitem "
        "where l_shipdate >= date '1994-01-01' and l_shipdate < date '1994-02-01'"
    )
    result, rows = run(ctx, tables, sql)
    kept = DeltaTable(tpch["lineitem"]).file_uris(file_pruning_predicate=ONE_MONTH)
    (unit,) = result.scan_units
    assert (unit.total_files, unit.delta_candidate_files, unit.delta_prunable_files) == (4, len(kept), 3)
    assert unit.files_bound == len(kept) == 1
    assert unit.candidate_files == 1
    assert unit.pruned_files == 3
    assert not unit.pruning_lost
    assert unit.attribution == "files"
    (bound,) = result.delta_pruning
    assert (bound.dataset, bound.rebound, bound.files, bound.live_files) == ("lineitem", True, 1, 4)
    assert bound.predicate == unit.delta_predicate
    payload = json.loads(rows[0]["payload"])
    assert (rows[0]["severity"], payload["provider_mode"], payload["files_bound"]) == (
        "info",
        "delta_pruned_parquet",
        1,
    )
    assert result.table.to_pylist() == ctx.sql(sql).to_pylist()  # and the whole registration agrees


def test_plans_with_several_output_partitions_return_every_row_once(
    pruned_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = pruned_session
    result, _ = run(ctx, tables, "select l_orderkey, l_linenumber from lineitem where l_quantity > 10")
    assert result.partition_count > 1
    expected = ctx.sql("select count(*) as n from lineitem where l_quantity > 10").to_pylist()[0]["n"]
    assert result.table.num_rows == expected
    assert (
        len(set(zip(*(result.table.column(c).to_pylist() for c in result.table.column_names), strict=True)))
        == expected
    )


def test_subquery_scans_and_self_joins_keep_their_files(
    pruned_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = pruned_session
    # The subquery reads every order: its scan must not be pruned by the outer predicate.
    sql = (
        "select count(*) as n from orders where o_orderdate < date '1992-03-01' "
        "and o_totalprice > (select avg(o_totalprice) from orders)"
    )
    predicates = pruning_predicates(ctx.sql(sql).optimized_logical_plan(), ["orders"])
    assert predicates["orders"].sql is None
    assert predicates["orders"].reason == "a scan sits inside a subquery expression"
    result, _ = run(ctx, tables, sql)
    assert result.table.to_pylist() == ctx.sql(sql).to_pylist()
    both = (
        "select count(*) as n from lineitem a join lineitem b on a.l_orderkey = b.l_orderkey "
        "where a.l_shipdate < date '1992-06-01' and b.l_shipdate > date '1998-06-01'"
    )
    predicates = pruning_predicates(ctx.sql(both).optimized_logical_plan(), ["lineitem"])
    assert " OR " in (predicates["lineitem"].sql or "")
    result, _ = run(ctx, tables, both)
    assert result.table.to_pylist() == ctx.sql(both).to_pylist()
    assert result.delta_pruning[0].files == 2


def test_the_benchmark_measures_the_mode() -> None:
    assert PRUNED.value in MODES


def test_registration_event_records_the_mode(delta_corpus: Path) -> None:
    registration, _ = register(delta_corpus / "simple_table")
    mode = next(e for e in registration.events if e.name == DATASET_PROVIDER_MODE)
    assert mode.payload["provider_mode"] == "delta_pruned_parquet"
    assert mode.payload["filter_pushdown"] is True
    assert mode.payload["delta_file_pruning"] is True
    assert mode.payload["provider_class"] == READER_DESCRIPTION


def test_a_failed_plan_restores_its_tables_and_odd_names_bind(tmp_path: Path) -> None:
    uri = tmp_path / "odd"
    write_deltalake(uri, pa.table({"x": [1, 2]}))
    write_deltalake(uri, pa.table({"x": [10, 20]}), mode="append")
    name = 'odd "name".with dot'
    registration, ctx = register(uri, name=name)
    tables = {name: registration.registered}
    quoted = '"odd ""name"".with dot"'
    result, _ = run(ctx, tables, f"SELECT sum(x) AS s FROM {quoted} WHERE x > 5")
    assert result.table.to_pylist() == [{"s": 30}]
    assert [(p.dataset, p.files, p.rebound) for p in result.delta_pruning] == [(name, 1, True)]
    with pytest.raises(PlanError):
        run(ctx, tables, f"SELECT x / (x - x) AS boom FROM {quoted} WHERE x > 5")
    assert ctx.sql(f"SELECT sum(x) AS s FROM {quoted}").to_pylist() == [{"s": 33}]


def test_link_farms_of_ended_processes_are_removed(tmp_path: Path) -> None:
    base = Path(tempfile.gettempdir())
    orphan = base / f"{FARM_PREFIX}orphan-test"
    alive = base / f"{FARM_PREFIX}alive-test"
    for farm in (orphan, alive):
        farm.mkdir(exist_ok=True)
        (farm / ".owner").write_text("")
    with open(alive / ".owner") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live process holds its farm's lock
        write_deltalake(tmp_path / "t", pa.table({"x": [1]}))
        snapshot = open_snapshot(str(tmp_path / "t"), version=0)
        folder = LinkFarm().folder(snapshot, snapshot.files)  # a new farm starts: it cleans up first
        assert not orphan.exists()
        assert alive.exists()
    shutil.rmtree(alive)
    assert [os.path.basename(link) for link, _ in folder.links] == ["000000.parquet"]
    assert folder.hard  # same filesystem here: a hard link keeps the file readable at this version


def test_nested_binary_and_decimal_columns(tmp_path: Path) -> None:
    uri = tmp_path / "nested"
    table = pa.table(
        {
            "id": [1, 2, 3],
            "s": pa.array(
                [{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}],
                pa.struct([("a", pa.int64()), ("b", pa.string())]),
            ),
            "l": pa.array([[1, 2], [], None], pa.list_(pa.int32())),
            "m": pa.array([[("k", 1)], None, [("q", 2), ("r", None)]], pa.map_(pa.string(), pa.int64())),
            "bin": pa.array([b"\x00\x01", None, b""], pa.binary()),
            "dec": pa.array([None, decimal.Decimal("1.5"), decimal.Decimal("-2.25")], pa.decimal128(10, 3)),
        }
    )
    write_deltalake(uri, table)
    write_deltalake(uri, table.slice(0, 1), mode="append")
    _, ctx = register(uri, policy=ONLY_PRUNED)

    def rows(result: pa.Table) -> list[dict[str, Any]]:  # struct fields: string vs string_view
        return sorted(result.to_pylist(), key=repr)

    assert rows(ctx.sql("SELECT * FROM t").to_arrow_table()) == rows(deltalake_rows(uri))


def test_statements_run_once(tmp_path: Path) -> None:
    """Binding plans queries only: DDL, which ``ctx.sql`` runs at once, is left to the logical phase."""
    write_deltalake(tmp_path / "t", pa.table({"x": [1, 2]}))
    registration, ctx = register(tmp_path / "t")
    result, _ = run(ctx, {"t": registration.registered}, "CREATE VIEW big AS SELECT x FROM t WHERE x > 1")
    (bound,) = result.delta_pruning
    assert bound.reason is not None
    assert bound.reason.startswith("not planned as a query")
    assert ctx.sql("SELECT x FROM big").to_pylist() == [{"x": 2}]


# ------------------------------------------------------------------------------- paths deltalake encodes

# file_uris() spells a file as the table folder percent-encoded (space %20, "?" %3F, "#" %23, "%" %25,
# non-ASCII as UTF-8 escapes; "*", "[" and "]" as they are) followed by the file's path inside the table as
# it is on disk (a partition folder "part=k%20v" stays "%20"): neither fully encoded nor a path to open.
ODD_FOLDERS = ("a b", "q?x", "h#x", "p%x", "s*x", "b[1]", "ü ñ", "all of ?#%*[] in one")


@pytest.mark.parametrize("folder", ODD_FOLDERS)
def test_local_paths_deltalake_encodes_are_served_by_the_mode(tmp_path: Path, folder: str) -> None:
    written = tmp_path / "written"  # deltalake 1.6.6 panics writing to a path holding "[" (reading is fine)
    write_deltalake(written, pa.table({"x": [1, 2], "part": ["k v", "k%v"]}), partition_by=["part"])
    write_deltalake(written, pa.table({"x": [3], "part": ["z?#"]}), mode="append", partition_by=["part"])
    uri = tmp_path / "tables" / folder
    uri.parent.mkdir()
    written.rename(uri)
    snapshot = open_snapshot(str(uri), version=None)
    assert all(f.path is not None and os.path.isfile(f.path) for f in snapshot.files)
    for spelled in (str(uri), uri.as_uri()):  # a path, and a file:// URI (percent-encoded)
        registration, ctx = register(spelled, policy=ONLY_PRUNED)
        assert registration.registered.provider_mode is PRUNED
        assert canonical(ctx.sql("SELECT * FROM t").to_arrow_table()).equals(canonical(deltalake_rows(uri)))
        result, _ = run(ctx, {"t": registration.registered}, "SELECT sum(x) AS s FROM t WHERE x > 2")
        assert result.table.to_pylist() == [{"s": 3}]
        assert [(p.dataset, p.files) for p in result.delta_pruning] == [("t", 1)]


def test_a_partition_predicate_binds_only_that_partitions_files(tmp_path: Path) -> None:
    uri = tmp_path / "parted"
    for part in ("a", "b", "c"):
        for i in range(2):  # two files per partition
            batch = pa.table({"x": [i * 10 + j for j in range(5)], "part": [part] * 5})
            write_deltalake(uri, batch, mode="append", partition_by=["part"])
    registration, ctx = register(uri)
    tables = {"t": registration.registered}
    assert registration.registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET
    sql = "select part, count(*) as n, sum(x) as s from t where part = 'b' group by part"
    result, rows = run(ctx, tables, sql)
    (bound,) = result.delta_pruning
    assert (bound.rebound, bound.files, bound.live_files) == (True, 2, 6)
    assert "part" in (bound.predicate or "")
    assert result.table.to_pylist() == [{"part": "b", "n": 10, "s": 70}]
    payload = json.loads(rows[0]["payload"])
    assert (payload["files_bound"], payload["delta_prunable_files"]) == (2, 4)
    # The table is whole again afterwards: a query of every partition reads every row.
    assert ctx.sql("select count(*) as n from t").to_pylist() == [{"n": 30}]
