"""Plan phases, fingerprints and plan artifacts over TPC-H SF 0.01 served by the Delta table provider."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext, udf
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, Tracer, format_span_id, format_trace_id

from codeanatomy_assets import engine
from codeanatomy_assets.bench.tpch import (
    QUERY_NAMES,
    load_query,
    register_delta_tables,
    register_native_tables,
)
from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_PHASE
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.table_rows import plan_artifact_row
from codeanatomy_assets.engine import (
    CAPTURE_ERROR_TYPE,
    CompileOptions,
    PlanPhase,
    execute_plan,
    normalize_plan_text,
    plan_fingerprint,
)
from codeanatomy_assets.errors import PlanError
from codeanatomy_assets_tests.test_tpch import tpch_dataset

PHASES = [p.value for p in PlanPhase]
ARTIFACTS = "datafusion_plan_artifacts_v1"


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tpch_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def session(tpch: dict[str, str]) -> tuple[SessionContext, dict[str, RegisteredTable]]:
    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    return ctx, register_delta_tables(ctx, tpch)


@pytest.fixture
def spans() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("codeanatomy-tests"), exporter
    provider.shutdown()


def _phase_rows(sink: DiagnosticsCollector) -> list[dict[str, Any]]:
    return sink.events_snapshot().get(DATAFUSION_PLAN_PHASE, [])


# --- phases, hashes, spans -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERY_NAMES)
def test_every_query_records_four_phases_with_hash_duration_and_spans(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
    spans: tuple[Tracer, InMemorySpanExporter],
    query: str,
) -> None:
    ctx, tables = session
    tracer, exporter = spans
    sink = DiagnosticsCollector()
    with tracer.start_as_current_span("test-parent") as parent:
        result = execute_plan(
            ctx,
            name=query,
            sql=load_query(query),
            options=CompileOptions(run_id="r-phases"),
            sink=sink,
            tables=tables,
            tracer=tracer,
            target_partitions=2,
        )
    assert result.table.num_rows > 0
    assert [p.phase.value for p in result.phases] == PHASES
    finished: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    parent_ctx = parent.get_span_context()
    rows = {row["payload_obj"]["phase"]: row for row in _with_payload(_phase_rows(sink))}
    for record in result.phases:
        assert len(record.plan_hash or "") == 64
        assert isinstance(record.duration_ms, float)
        assert record.duration_ms > 0
        span = finished[f"datafusion.plan.{record.phase.value}"]
        assert span.parent is not None
        assert span.parent.span_id == parent_ctx.span_id  # a child of the caller's span
        assert span.context.trace_id == parent_ctx.trace_id
        assert record.span_id == format_span_id(span.context.span_id)
        assert record.trace_id == format_trace_id(parent_ctx.trace_id)
        assert span.attributes is not None
        assert span.attributes["codeanatomy.plan.hash"] == record.plan_hash
        row = rows[record.phase.value]
        assert (row["severity"], row["category"], row["plan"]) == ("info", "plan_phase", query)
        assert row["span_id"] == record.span_id
        assert row["payload_obj"] == record.to_row()
        assert row["payload_obj"]["target_partitions"] == 2
    # The execute phase ran the physical plan: same hash.
    assert result.plan_hashes["execute"] == result.plan_hashes["physical"]
    assert result.trace_id == format_trace_id(parent_ctx.trace_id)


def _with_payload(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "payload_obj": json.loads(row["payload"])} for row in rows]


_HASH_SCRIPT = """
import json, sys
from datafusion import SessionConfig, SessionContext
from codeanatomy_assets.bench.tpch import TPCH_TABLES, load_query, register_delta_tables
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.engine import CompileOptions, execute_plan

root = sys.argv[1]
ctx = SessionContext(SessionConfig().with_target_partitions(2))
tables = register_delta_tables(ctx, {name: f"{root}/{name}" for name in TPCH_TABLES})
out = {}
for query in sys.argv[2:]:
    result = execute_plan(ctx, name=query, sql=load_query(query), options=CompileOptions(run_id="other"),
                          sink=DiagnosticsCollector(), tables=tables, target_partitions=2)
    out[query] = dict(result.plan_hashes)
print(json.dumps(out))
"""


def test_hashes_are_identical_in_another_process(
    session: tuple[SessionContext, dict[str, RegisteredTable]], tpch: dict[str, str]
) -> None:
    ctx, tables = session
    queries = ["q1", "q3", "q5", "q6", "q14"]
    here = {
        q: dict(
            execute_plan(
                ctx,
                name=q,
                sql=load_query(q),
                options=CompileOptions(run_id="here"),
                sink=DiagnosticsCollector(),
                tables=tables,
                target_partitions=2,
            ).plan_hashes
        )
        for q in queries
    }
    root = str(Path(tpch["lineitem"]).parent)
    done = subprocess.run(
        [sys.executable, "-c", _HASH_SCRIPT, root, *queries],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # also: no abort at exit (FACTS #24)
    assert json.loads(done.stdout) == here
    assert len({h["optimized"] for h in here.values()}) == len(queries)


def test_physical_hash_survives_moving_the_tables(tpch: dict[str, str], tmp_path: Path) -> None:
    """Native Parquet plans print file paths; the fingerprint replaces each table root."""
    copy = tmp_path / "elsewhere" / "lineitem"
    shutil.copytree(tpch["lineitem"], copy)
    hashes, texts = [], []
    for uri in (tpch["lineitem"], str(copy)):
        ctx = SessionContext(SessionConfig().with_target_partitions(2))
        tables = register_native_tables(ctx, {"lineitem": uri})
        result = execute_plan(
            ctx,
            name="q6",
            sql=load_query(6),
            options=CompileOptions(run_id="r"),
            sink=DiagnosticsCollector(),
            tables=tables,
        )
        assert result.artifacts is not None
        texts.append(result.artifacts["physical_plan"])
        hashes.append(result.plan_hashes["physical"])
    assert texts[0] != texts[1]
    assert hashes[0] == hashes[1]


def test_normalization_strips_runtime_noise() -> None:
    before = (
        "HashJoinExec: on=[(a@0, b@0)]\n"
        "  DataSourceExec: file_groups={2 groups: "
        "[[/data/t/b.parquet, /data/t/a.parquet], [/data/t/c.parquet]]}, "
        "predicate=DynamicFilter [ a@0 >= 3 AND a@0 IN (SET) ([1, 2]) ]  \n"
        "  MemoryExec: 0x7f12ab34cd56\n\n"
    )
    after = normalize_plan_text(before, table_roots={"t": "file:///data/t"})
    assert after == (
        "HashJoinExec: on=[(a@0, b@0)]\n"
        "  DataSourceExec: file_groups={2 groups: "
        "[[<table:t>/a.parquet, <table:t>/b.parquet], [<table:t>/c.parquet]]}, "
        "predicate=DynamicFilter [ ]\n"
        "  MemoryExec: 0x?"
    )
    assert plan_fingerprint("logical", "x") != plan_fingerprint("optimized", "x")


# --- one execution -------------------------------------------------------------------------------------


def test_each_query_executes_once_while_metrics_are_captured(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    """A volatile Python UDF counts the rows it sees: every lineitem row exactly once, and the operator
    metrics read afterwards describe that same pass (Substrait, unparsing, EXPLAIN run nothing)."""
    ctx, tables = session
    seen = {"rows": 0, "calls": 0}

    def count_rows(values: pa.Array) -> pa.Array:
        seen["rows"] += len(values)
        seen["calls"] += 1
        return values

    ctx.register_udf(udf(count_rows, [pa.int64()], pa.int64(), "volatile", name="count_rows"))
    sql = (
        "select l_returnflag, sum(count_rows(l_orderkey)) as s, count(*) as n from lineitem "
        "where l_shipdate >= date '1995-01-01' group by l_returnflag"
    )
    expected = ctx.sql(
        "select count(*) as n from lineitem where l_shipdate >= date '1995-01-01'"
    ).to_pylist()[0]["n"]
    hook_payloads: list[Mapping[str, Any]] = []
    result = execute_plan(
        ctx,
        name="counted",
        sql=sql,
        options=CompileOptions(run_id="r-once", plan_artifacts_hook=hook_payloads.append),
        sink=DiagnosticsCollector(),
        tables=tables,
    )
    assert seen["rows"] == expected  # one pass over the filtered rows, not two
    assert sum(result.table.column("n").to_pylist()) == expected
    filters = [m for m in result.operator_metrics if m.operator.startswith("FilterExec")]
    assert [m.metrics["output_rows"] for m in filters] == [expected]  # metrics of that same pass
    scans = [m for m in result.operator_metrics if "DeltaScanExec" in m.operator]
    assert scans[0].metrics["output_rows"] == 60_175
    assert result.artifacts is not None
    assert hook_payloads == [result.artifacts]
    assert f"output_rows={expected}" in result.artifacts["explain_analyze"]
    assert seen["rows"] == expected  # still: building the artifacts executed nothing


# --- artifacts -----------------------------------------------------------------------------------------


def test_artifacts_hold_every_capture_or_an_explicit_error(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = session
    sink = DiagnosticsCollector()
    result = execute_plan(
        ctx, name="q3", sql=load_query(3), options=CompileOptions(run_id="r-art"), sink=sink, tables=tables
    )
    art = result.artifacts
    assert art is not None
    assert (art["run_id"], art["plan"], art["status"]) == ("r-art", "q3", "succeeded")
    assert art["plan_hash"] == result.plan_hashes["optimized"]
    assert art["sql"] == load_query(3)
    assert art["explain"].startswith("logical_plan:\n")
    assert "physical_plan:\n" in art["explain"]
    assert "DeltaScanExec" in art["physical_plan"]
    assert "metrics=[" in art["explain_analyze"]
    assert art["operator_metrics"][0]["depth"] == 0
    assert base64.b64decode(art["substrait_b64"])
    assert art["substrait_roundtrip_ok"] is True
    assert art["unparsed_sql"].upper().startswith("SELECT")
    assert art["unparsed_sql_parses"] is True
    assert "digraph" in art["graphviz"]
    assert art["partition_count"] == result.partition_count >= 1
    joins = art["join_operators"]
    assert joins == [j.to_row() for j in result.join_operators]
    assert {j["operator"] for j in joins} == {"HashJoinExec"}
    assert all(j["join_type"] == "Inner" and j["on"] for j in joins)
    assert {tuple(sorted(k)) for j in art["logical_joins"] for k in j["on"]} >= {
        ("customer.c_custkey", "orders.o_custkey"),
        ("lineitem.l_orderkey", "orders.o_orderkey"),
    }
    assert set(art["capture_status"].values()) == {"ok"}
    assert art["capture_errors"] == {}
    assert art["error_type"] is None
    rows = sink.artifacts_snapshot()[ARTIFACTS]
    assert len(rows) == 1
    assert (rows[0]["kind"], rows[0]["category"], rows[0]["plan"]) == ("artifact", "plan_phase", "q3")
    # The durable store accepts the row as a typed datafusion_plan_artifacts_v1 row.
    typed = plan_artifact_row(DiagnosticEvent.from_row(rows[0]))
    assert typed["substrait_roundtrip_ok"] is True
    assert json.loads(str(typed["join_operators"])) == joins


def test_unsupported_substrait_is_an_explicit_error(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = session
    result = execute_plan(
        ctx,
        name="q4",
        sql=load_query(4),
        options=CompileOptions(run_id="r"),
        sink=DiagnosticsCollector(),
        tables=tables,
    )
    art = result.artifacts
    assert art is not None
    assert art["status"] == "succeeded"
    assert art["capture_status"]["substrait"] == "error"
    assert "OuterReferenceColumn" in art["capture_errors"]["substrait"]
    assert art["capture_status"]["substrait_roundtrip"] == "not_reached"
    assert art["substrait_b64"] is None
    assert art["substrait_roundtrip_ok"] is None
    assert art["error_type"] == CAPTURE_ERROR_TYPE
    assert art["error_message"].startswith("substrait: ")
    assert art["unparsed_sql"]  # the other captures still happened


def test_disabled_captures_are_marked_disabled(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = session
    options = CompileOptions(
        run_id="r",
        capture_substrait=False,
        capture_graphviz=False,
        capture_unparsed_sql=False,
        explain_analyze=False,
    )
    result = execute_plan(
        ctx, name="q6", sql=load_query(6), options=options, sink=DiagnosticsCollector(), tables=tables
    )
    art = result.artifacts
    assert art is not None
    for step in ("substrait", "graphviz", "unparsed_sql", "explain_analyze"):
        assert art["capture_status"][step] == "disabled"
    assert art["substrait_b64"] is art["graphviz"] is art["unparsed_sql"] is art["explain_analyze"] is None
    assert result.scan_units  # scan units still read the metrics
    assert art["capture_status"]["explain"] == "ok"


def test_off_records_only_phase_durations(session: tuple[SessionContext, dict[str, RegisteredTable]]) -> None:
    ctx, tables = session
    sink = DiagnosticsCollector()
    result = execute_plan(
        ctx, name="q6", sql=load_query(6), options=CompileOptions.off("r-off"), sink=sink, tables=tables
    )
    assert result.table.num_rows == 1
    assert [p.phase.value for p in result.phases] == ["logical", "physical", "execute"]
    assert all(p.plan_hash is None and p.duration_ms > 0 for p in result.phases)
    assert (result.artifacts, result.scan_units, result.operator_metrics, dict(result.plan_hashes)) == (
        None,
        (),
        (),
        {},
    )
    assert set(sink.events_snapshot()) == {DATAFUSION_PLAN_PHASE}
    assert len(_phase_rows(sink)) == 3
    assert sink.artifacts_snapshot() == {}


def test_a_failing_hook_is_reported_and_the_plan_stands(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = session
    sink = DiagnosticsCollector()

    def broken(_payload: Mapping[str, Any]) -> None:
        raise RuntimeError("hook down")

    result = execute_plan(
        ctx,
        name="q6",
        sql=load_query(6),
        options=CompileOptions(run_id="r", plan_artifacts_hook=broken),
        sink=sink,
        tables=tables,
    )
    assert result.table.num_rows == 1
    (row,) = sink.events_snapshot()["plan_artifacts_hook_failed_v1"]
    assert (row["severity"], row["category"]) == ("warn", "telemetry")
    assert "hook down" in row["message"]


# --- failures ------------------------------------------------------------------------------------------

FAILURES = [
    pytest.param("selec l_orderkey frm lineitem", "logical", "datafusion.sql_error", id="invalid-sql"),
    pytest.param(
        "select * from no_such_table", "logical", "datafusion.error_during_planning", id="unknown-table"
    ),
    pytest.param(
        "select l_orderkey + cast('abc' as int) from lineitem",
        "optimized",
        "datafusion.arrow_error",
        id="type-error-at-optimization",
    ),
    pytest.param(
        "select lag(l_orderkey, 1, 'abc') over (order by l_orderkey) from lineitem",
        "physical",
        "datafusion.arrow_error",
        id="type-error-at-physical-planning",
    ),
    pytest.param(
        "select l_orderkey / (l_linenumber - l_linenumber) from lineitem",
        "execute",
        "datafusion.arrow_error",
        id="division-by-zero-at-run-time",
    ),
    pytest.param(
        "select cast(l_comment as int) from lineitem",
        "execute",
        "datafusion.arrow_error",
        id="bad-cast-at-run-time",
    ),
]


@pytest.mark.parametrize(("sql", "phase", "error_type"), FAILURES)
def test_a_failing_phase_is_recorded_and_raised_as_plan_error(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
    spans: tuple[Tracer, InMemorySpanExporter],
    sql: str,
    phase: str,
    error_type: str,
) -> None:
    ctx, tables = session
    tracer, exporter = spans
    sink = DiagnosticsCollector()
    with pytest.raises(PlanError) as raised:
        execute_plan(
            ctx,
            name="broken",
            sql=sql,
            options=CompileOptions(run_id="r-fail"),
            sink=sink,
            tables=tables,
            tracer=tracer,
        )
    err = raised.value
    assert (err.plan, err.phase) == ("broken", phase)
    assert "'broken'" in str(err)
    assert phase in str(err)
    rows = _with_payload(_phase_rows(sink))
    recorded = [r["payload_obj"]["phase"] for r in rows]
    assert recorded == PHASES[: PHASES.index(phase) + 1]  # earlier phases kept, nothing after
    *earlier, failed = rows
    assert all(r["severity"] == "info" and len(r["payload_obj"]["plan_hash"]) == 64 for r in earlier)
    assert (failed["severity"], failed["category"], failed["code"]) == (
        "error",
        "plan_phase",
        "plan_phase_failed",
    )
    assert failed["payload_obj"]["error.type"] == error_type
    assert failed["payload_obj"]["exception.message"]
    assert failed["payload_obj"]["plan_hash"] is None
    failed_span = next(s for s in exporter.get_finished_spans() if s.name == f"datafusion.plan.{phase}")
    assert failed_span.status.status_code is StatusCode.ERROR
    (artifact,) = sink.artifacts_snapshot()[ARTIFACTS]
    payload = json.loads(artifact["payload"])
    assert (payload["status"], payload["failed_phase"], payload["error_type"]) == (
        "failed",
        phase,
        error_type,
    )
    assert payload["sql"] == sql


def test_target_partitions_must_be_positive(
    session: tuple[SessionContext, dict[str, RegisteredTable]],
) -> None:
    ctx, tables = session
    with pytest.raises(ValueError, match="target_partitions"):
        execute_plan(
            ctx,
            name="x",
            sql="select 1",
            options=CompileOptions(run_id="r"),
            sink=DiagnosticsCollector(),
            tables=tables,
            target_partitions=0,
        )


def _isort_key(name: str) -> tuple[int, str]:
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_engine_public_names_are_sorted_and_resolve() -> None:
    assert engine.__all__ == sorted(engine.__all__, key=_isort_key)
    assert len(set(engine.__all__)) == len(engine.__all__)
    for name in engine.__all__:
        assert getattr(engine, name) is not None
