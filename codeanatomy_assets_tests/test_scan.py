"""Scan units: files read against live files, Delta's skippable files, and their diagnostics."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable
from hypothesis import given
from hypothesis import strategies as st

from codeanatomy_assets.bench.tpch import load_query, register_delta_tables, register_native_tables
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.diagnostics.event_names import SCAN_UNIT_PRUNING
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.engine import (
    CompileOptions,
    PlanExecution,
    ScanUnit,
    execute_plan,
    render_scan_units_markdown,
    translate_predicate,
)
from codeanatomy_assets.engine.predicates import logical_scans
from codeanatomy_assets.engine.scan_metrics import parse_pruning
from codeanatomy_assets_tests.test_tpch import ONE_MONTH, tpch_dataset

SELECTIVE = (
    "select count(*) as n, sum(l_quantity) as q from lineitem "
    "where l_shipdate >= date '1994-01-01' and l_shipdate < date '1994-02-01'"
)


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tpch_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def delta_session(tpch: dict[str, str]) -> tuple[SessionContext, dict[str, RegisteredTable]]:
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    return ctx, register_delta_tables(ctx, tpch)


@pytest.fixture(scope="module")
def native_session(tpch: dict[str, str]) -> tuple[SessionContext, dict[str, RegisteredTable]]:
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    return ctx, register_native_tables(ctx, tpch)


def _run(
    session: tuple[SessionContext, dict[str, RegisteredTable]], name: str, sql: str
) -> tuple[PlanExecution, list[dict[str, Any]]]:
    ctx, tables = session
    sink = DiagnosticsCollector()
    result = execute_plan(
        ctx, name=name, sql=sql, options=CompileOptions(run_id="r-scan"), sink=sink, tables=tables
    )
    return result, sink.artifacts_snapshot().get(SCAN_UNIT_PRUNING, [])


def test_every_scan_has_a_unit_with_the_live_file_count(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]], tpch: dict[str, str]
) -> None:
    result, rows = _run(delta_session, "q5", load_query(5))
    by_dataset = {u.dataset: u for u in result.scan_units}
    assert set(by_dataset) == {"customer", "orders", "lineitem", "supplier", "nation", "region"}
    assert len(rows) == len(result.scan_units) == 6
    for unit in result.scan_units:
        assert unit.dataset is not None
        live = DeltaTable(tpch[unit.dataset]).file_uris()
        assert unit.total_files == len(live)
        assert unit.candidate_files == len(live)  # the Delta provider reads every file (FACTS #2)
        assert unit.provider_mode is ProviderMode.DELTA_TABLE_PROVIDER
        assert unit.protocol_compatible is True
        assert unit.operator == "DeltaScanExec"
        assert unit.attribution == "files"
        assert unit.row_groups_total is not None
        assert unit.row_groups_exact
        assert unit.bytes_scanned
        assert unit.output_rows
        assert unit.errors == ()
    assert by_dataset["region"].delta_predicate == "\"r_name\" = 'ASIA'"


def test_selective_ship_date_shows_what_delta_would_skip(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]], tpch: dict[str, str]
) -> None:
    result, rows = _run(delta_session, "one_month", SELECTIVE)
    (unit,) = result.scan_units
    delta_candidates = len(DeltaTable(tpch["lineitem"]).file_uris(file_pruning_predicate=ONE_MONTH))
    assert delta_candidates == 1
    assert (unit.total_files, unit.candidate_files, unit.pruned_files) == (4, 4, 0)
    assert (unit.delta_candidate_files, unit.delta_prunable_files) == (1, 3)
    assert (
        unit.delta_predicate == "\"l_shipdate\" >= DATE '1994-01-01' AND \"l_shipdate\" < DATE '1994-02-01'"
    )
    assert unit.scan_filters == ()  # nothing reached the provider
    assert unit.predicate is not None
    assert "l_shipdate" in unit.predicate
    assert unit.pruning_lost
    (row,) = rows
    assert (row["severity"], row["category"], row["code"], row["dataset"]) == (
        "warn",
        "scan_pruning",
        "pruning_lost",
        "lineitem",
    )
    payload = json.loads(row["payload"])
    assert (payload["candidate_files"], payload["delta_prunable_files"]) == (4, 3)
    assert row["span_id"] == result.phase("execute").span_id
    markdown = render_scan_units_markdown(result.scan_units)
    assert markdown.count("\n") == 3
    assert "| one_month | lineitem | delta_table_provider | 4 | 4 | 0 | 3 |" in markdown
    assert "pruning_lost" in markdown


def test_native_parquet_over_the_same_files_skips_them(
    native_session: tuple[SessionContext, dict[str, RegisteredTable]],
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    native, rows = _run(native_session, "one_month", SELECTIVE)
    delta, _ = _run(delta_session, "one_month", SELECTIVE)
    assert native.table.to_pylist() == delta.table.to_pylist()
    (unit,) = native.scan_units  # four per-file scans folded into one unit of the table
    assert unit.merged_scans == 4
    assert (unit.total_files, unit.candidate_files, unit.pruned_files, unit.delta_prunable_files) == (
        4,
        1,
        3,
        3,
    )
    assert unit.file_ranges_total == 4
    assert unit.file_ranges_matched == 1
    assert unit.scan_filters  # the filters reached the native scan
    assert not unit.pruning_lost
    assert rows[0]["severity"] == "info"
    assert rows[0]["code"] is None


def test_scans_of_one_table_with_different_predicates(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    both, _ = _run(
        delta_session,
        "ends",
        "select count(*) from lineitem a join lineitem b on a.l_orderkey = b.l_orderkey "
        "where a.l_shipdate < date '1992-06-01' and b.l_shipdate > date '1998-06-01'",
    )
    assert len(both.scan_units) == 2
    for unit in both.scan_units:
        assert unit.delta_predicate is not None
        assert " OR " in unit.delta_predicate  # the physical scans cannot be told apart: either predicate
        assert unit.delta_candidate_files == 2
        assert unit.errors == ()
    one_open, _ = _run(
        delta_session,
        "half",
        "select count(*) from lineitem a join lineitem b on a.l_orderkey = b.l_orderkey "
        "where a.l_shipdate < date '1992-06-01'",
    )
    for unit in one_open.scan_units:
        assert unit.delta_prunable_files is None
        assert any("cannot be told apart" in e for e in unit.errors)


def test_untranslatable_predicates_are_reported(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    result, _ = _run(delta_session, "like", "select count(*) from part where p_name like '%green%'")
    (unit,) = result.scan_units
    assert unit.delta_predicate is None
    assert unit.delta_prunable_files is None
    assert unit.untranslated_predicates
    assert "LIKE" in unit.untranslated_predicates[0]
    assert unit.errors[0].startswith("predicate could not be translated")


def test_a_scan_of_an_unregistered_table_says_so(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, _ = delta_session
    ctx.from_pydict({"x": [1, 2, 3]}, name="scratch")
    result, rows = _run(delta_session, "mem", "select sum(x) from scratch where x > 1")
    (unit,) = result.scan_units
    assert unit.dataset == "scratch"
    assert unit.attribution == "only_scan"
    assert unit.total_files is None
    assert unit.provider_mode is None
    assert "not in the registered tables" in unit.errors[0]
    assert json.loads(rows[0]["payload"])["errors"] == list(unit.errors)


def _predicate_exprs(sql: str, *, optimized: bool) -> list[Any]:
    ctx = SessionContext()
    ctx.register_record_batches(
        "t",
        [
            [
                pa.record_batch(
                    {"a": [1], "s": ["x"], "d": pa.array([0], pa.date32()), "n": pa.array([None], pa.int64())}
                )
            ]
        ],
    )
    df = ctx.sql(sql)
    plan = df.optimized_logical_plan() if optimized else df.logical_plan()
    (scan,) = logical_scans(plan)
    return list(scan.exprs)


@pytest.mark.parametrize(
    ("where", "translated", "untranslated"),
    [
        ("a > 1 and s = 'o''k'", "\"a\" > 1 AND \"s\" = 'o''k'", 0),
        ("1 < a", '"a" > 1', 0),
        ("a between 1 and 3 and a not between 7 and 9", '"a" BETWEEN 1 AND 3 AND "a" NOT BETWEEN 7 AND 9', 0),
        ("s in ('p', 'q') and a not in (4, 5)", "\"s\" IN ('p', 'q') AND \"a\" NOT IN (4, 5)", 0),
        ("n is null or a >= 2", '("n" IS NULL OR "a" >= 2)', 0),
        ("s like 'x%' and a = 3", '"a" = 3', 1),
        ("a > n", None, 1),
        ("a + 1 > 2 or s = 'x'", None, 1),
    ],
)
def test_translate_predicate(where: str, translated: str | None, untranslated: int) -> None:
    # The unoptimized plan keeps BETWEEN (the optimizer rewrites it into two comparisons).
    predicate = translate_predicate(_predicate_exprs(f"select a from t where {where}", optimized=False))
    assert predicate.sql == translated
    assert len(predicate.untranslated) == untranslated


def test_translate_dates_after_constant_folding() -> None:
    exprs = _predicate_exprs(
        "select a from t where d >= date '2020-01-01' and d < date '2020-02-01'", optimized=True
    )
    assert translate_predicate(exprs).sql == "\"d\" >= DATE '2020-01-01' AND \"d\" < DATE '2020-02-01'"


def test_translated_predicates_are_accepted_by_delta(tpch: dict[str, str]) -> None:
    ctx = SessionContext()
    register_delta_tables(ctx, {"lineitem": tpch["lineitem"]})
    plan = ctx.sql(load_query(6)).optimized_logical_plan()
    (scan,) = logical_scans(plan)
    predicate = translate_predicate(scan.exprs)
    assert predicate.sql is not None
    assert predicate.untranslated == ()
    assert len(DeltaTable(tpch["lineitem"]).file_uris(file_pruning_predicate=predicate.sql)) == 1


def test_parse_pruning_is_exact_below_a_thousand_and_flags_rounding() -> None:
    assert parse_pruning("1 total → 1 matched -> 1 fully matched") == parse_pruning("1 total → 1 matched")
    rounded = parse_pruning("3.00 K total → 1.00 K matched")
    assert rounded is not None
    assert not rounded.exact
    assert parse_pruning("12.5%") is None


@given(st.integers(0, 999), st.integers(0, 999))
def test_parse_pruning_round_trips_small_counts(total: int, matched: int) -> None:
    parsed = parse_pruning(f"{total} total → {matched} matched")
    assert parsed is not None
    assert (parsed.total, parsed.matched, parsed.exact) == (total, matched, True)


def test_markdown_escapes_and_marks_missing_values() -> None:
    unit = ScanUnit(
        plan="p|1",
        dataset=None,
        operator="DataSourceExec",
        provider_mode=None,
        protocol_compatible=None,
        table_version=None,
        total_files=None,
        candidate_files=None,
        pruned_files=None,
        files_opened=None,
        scan_filters=(),
        predicate=None,
        delta_predicate=None,
        untranslated_predicates=(),
        delta_candidate_files=None,
        delta_prunable_files=None,
        row_groups_total=None,
        row_groups_matched=None,
        row_groups_exact=True,
        file_ranges_total=None,
        file_ranges_matched=None,
        bytes_scanned=None,
        output_rows=None,
        merged_scans=1,
        attribution="unattributed",
        errors=("no table",),
    )
    line = render_scan_units_markdown([unit]).splitlines()[-1]
    # A scan tied to no table still says what it is (an in-memory scan of no registered dataset).
    assert line.startswith("| p\\|1 | (in-memory: no registered dataset) | - |")
    assert line.endswith("| ok (no table) |")


def test_scans_inside_subquery_expressions_are_flagged(
    delta_session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    """Q11 keeps a scalar subquery as an expression; its plan is not reachable from Python."""
    result, _ = _run(delta_session, "q11", load_query(11))
    nation = [u for u in result.scan_units if u.dataset == "nation"]
    assert len(nation) == 2
    for unit in nation:
        assert unit.delta_prunable_files is None
        assert any("subquery expression" in e for e in unit.errors)
