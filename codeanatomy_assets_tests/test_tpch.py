"""TPC-H over Delta: generation, the 22 queries, and the native Parquet registration of live files."""

from __future__ import annotations

import decimal
from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.bench.tpch import (
    CLUSTER_KEYS,
    QUERY_NAMES,
    TPCH_TABLES,
    generate_tpch_delta,
    load_query,
    native_parquet_register,
    register_delta_tables,
    register_native_tables,
)
from codeanatomy_assets.delta.provider import ProviderMode

SCALE = 0.01
FILES_PER_TABLE = 4
# Row counts of TPC-H at scale factor 0.01 (dbgen and tpchgen agree).
ROWS = {
    "customer": 1_500,
    "lineitem": 60_175,
    "nation": 25,
    "orders": 15_000,
    "part": 2_000,
    "partsupp": 8_000,
    "region": 5,
    "supplier": 100,
}
ONE_MONTH = "l_shipdate >= '1994-01-01' and l_shipdate < '1994-02-01'"


def tpch_dataset(factory: pytest.TempPathFactory) -> dict[str, str]:
    """TPC-H SF 0.01 as Delta tables, generated once per test session (shared by the engine tests)."""
    root = factory.getbasetemp() / f"tpch-sf{SCALE}"
    ready = root / "_READY"
    if not ready.exists():
        generate_tpch_delta(root, scale=SCALE, files_per_table=FILES_PER_TABLE)
        ready.touch()
    return {name: str(root / name) for name in TPCH_TABLES}


@pytest.fixture(scope="session")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tpch_dataset(tmp_path_factory)


def _ctx() -> SessionContext:
    return SessionContext(SessionConfig().with_target_partitions(2))


def test_generate_writes_each_table_as_several_delta_files(tpch: dict[str, str]) -> None:
    ctx = _ctx()
    register_delta_tables(ctx, tpch)
    for name, uri in tpch.items():
        table = DeltaTable(uri)
        assert len(table.file_uris()) == min(FILES_PER_TABLE, ROWS[name]), name
        assert table.protocol().min_reader_version == 1
        assert ctx.sql(f"select count(*) as n from {name}").to_pylist() == [{"n": ROWS[name]}]
        # string_view was cast to string before writing (FACTS #19).
        assert pa.string_view() not in {f.type for f in pa.schema(table.schema())}


@pytest.mark.parametrize(
    ("table", "predicate"), [("lineitem", ONE_MONTH), ("orders", "o_orderdate < '1992-03-01'")]
)
def test_fact_tables_are_clustered_so_file_statistics_prune(
    tpch: dict[str, str], table: str, predicate: str
) -> None:
    dt = DeltaTable(tpch[table])
    assert table in CLUSTER_KEYS
    assert len(dt.file_uris(file_pruning_predicate=predicate)) == 1 < len(dt.file_uris())


def test_generate_rejects_zero_files_per_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="files_per_table"):
        generate_tpch_delta(tmp_path, scale=SCALE, files_per_table=0)


def test_load_query_by_name_or_number() -> None:
    assert len(QUERY_NAMES) == 22
    assert load_query(6) == load_query("Q6")
    assert "lineitem" in load_query("q1")
    with pytest.raises(KeyError, match="q23"):
        load_query(23)


def _normalized(table: pa.Table) -> list[tuple[object, ...]]:
    def cell(value: object) -> object:
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, decimal.Decimal):
            return round(value, 6)
        return value

    return sorted((tuple(cell(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def test_all_22_queries_run_and_native_parquet_gives_the_same_answers(tpch: dict[str, str]) -> None:
    delta_ctx, native_ctx = _ctx(), _ctx()
    register_delta_tables(delta_ctx, tpch)
    native = register_native_tables(native_ctx, tpch)
    assert {t.provider_mode for t in native.values()} == {ProviderMode.OTHER}
    non_empty = 0
    for name in QUERY_NAMES:
        sql = load_query(name)
        through_delta = delta_ctx.sql(sql).to_arrow_table()
        through_native = native_ctx.sql(sql).to_arrow_table()
        assert _normalized(through_delta) == _normalized(through_native), name
        non_empty += through_delta.num_rows > 0
    assert non_empty == 22


def test_native_register_reads_live_files_only(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))
    write_deltalake(uri, pa.table({"x": [10, 20]}), mode="overwrite")  # the first file stays on disk
    assert len(list(Path(uri).glob("*.parquet"))) == 2
    ctx = SessionContext()
    files = native_parquet_register(ctx, "t", uri)
    assert len(files) == 1
    assert ctx.sql("select sum(x) as s from t").to_pylist() == [{"s": 30}]
    assert native_parquet_register(ctx, "none", uri, file_pruning_predicate="x > 100") == ()
    assert ctx.sql("select count(*) as n from none").to_pylist() == [{"n": 0}]


def test_native_register_refuses_partitioned_tables(tmp_path: Path) -> None:
    uri = str(tmp_path / "p")
    write_deltalake(uri, pa.table({"x": [1, 2], "part": ["a", "b"]}), partition_by=["part"])
    with pytest.raises(ValueError, match="partition"):
        native_parquet_register(SessionContext(), "p", uri)
