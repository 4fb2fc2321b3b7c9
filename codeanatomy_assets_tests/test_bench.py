"""The benchmark harness on tiny inputs: the JSON document's shape and that its ratios are positive floats.

Nothing here asserts a time: the machine is shared and the inputs are too small for the figures to mean
anything; the benchmark's figures live in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.bench.engines.case import EngineSettings, measure_engines
from codeanatomy_assets.bench.engines.names import (
    CHILD_ENGINES,
    NATIVE,
    PEERS,
    PRODUCT,
    PRODUCT_NO_CAPTURE,
    query_tables,
)
from codeanatomy_assets.bench.engines.results import results_match
from codeanatomy_assets.bench.harness import geomean, median, ratio, rotated, run_case
from codeanatomy_assets.bench.provider_modes import BASELINE, DEFAULT_POLICY, MODES
from codeanatomy_assets.bench.suite import CASES, BenchSettings, evaluate_goals, run_benchmark
from codeanatomy_assets.cli.app import app


def _positive_float(value: Any) -> bool:
    return isinstance(value, float) and value > 0


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of every case on tiny inputs (TPC-H scale 0.01 generated into a temporary cache)."""
    root = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    return run_benchmark(BenchSettings.tiny(root / "cache"), work_dir=root, progress=lines.append)


def test_document_has_every_case_and_no_case_failed(document: dict[str, Any]) -> None:
    assert set(CASES) <= set(document)
    assert document["quick"] is True
    assert document["commit"] is None or len(document["commit"]) == 40
    assert isinstance(document["machine"]["cores"], int)
    assert document["machine"]["versions"]["datafusion"]
    failed = {name: document[name]["error"] for name in CASES if "error" in document[name]}
    assert not failed
    json.dumps(document)  # the document is plain JSON


def test_headline_ratios_are_positive_floats(document: dict[str, Any]) -> None:
    assert _positive_float(document["overhead"]["ratio"])
    assert _positive_float(document["overhead"]["build_ratio"])
    assert _positive_float(document["extraction"]["ratio_to_parse"])
    share = document["orchestration"]["share_of_build"]
    assert _positive_float(share)
    assert share < 1
    for mode in MODES:
        assert _positive_float(document["provider_modes"][mode]["geomean_ratio_to_baseline"]), mode


def test_provider_modes_report_each_query_and_mode(document: dict[str, Any]) -> None:
    modes = document["provider_modes"]
    assert set(modes["queries"]) == {"q1", "q6"}
    for query in modes["queries"].values():
        assert query[BASELINE]["ratio_to_baseline"] == 1.0
        for mode in MODES:
            row = query[mode]
            assert "error" in row or (
                _positive_float(row["ms_median"]) and row["rows_match_baseline"] is True
            )
    assert modes[DEFAULT_POLICY]["chosen_modes"]["lineitem"]
    delta = modes["queries"]["q6"]["delta_table_provider"]
    assert delta["files_total"] >= delta["files_read"] >= 1


def test_log_health_and_report_rows_per_size(document: dict[str, Any]) -> None:
    log = document["log_health"]
    assert {(r["commits"], r["shape"]) for r in log["results"]} == {
        (10, "no_checkpoint"),
        (10, "checkpoint"),
        (30, "no_checkpoint"),
        (30, "checkpoint"),
    }
    checkpointed = [r for r in log["results"] if r["shape"] == "checkpoint"]
    assert all(r["commits_since_checkpoint"] == 3 for r in checkpointed)
    report = document["report_scaling"]
    assert [r["runs"] for r in report["results"]] == [1, 3]
    assert all(_positive_float(r["report_ms_median"]) for r in report["results"])


def test_orchestration_measures_both_executors(document: dict[str, Any]) -> None:
    chain = document["orchestration"]["trivial_chain"]
    assert chain["in_process"]["success"] and chain["multiprocess"]["success"]
    assert _positive_float(chain["multiprocess"]["per_asset_ms"])
    assert document["orchestration"]["executor"] == "in_process"


def test_incremental_case_measured_every_variant(document: dict[str, Any]) -> None:
    body = document["incremental"]
    assert set(body["median_seconds"]) == {"full", "one_file", "no_change", "no_change_run"}
    assert body["rebuild_modes"]["up_to_date"] == body["rounds"]
    assert all(seconds > 0 for seconds in body["median_seconds"].values())
    # The ratio is of the unrounded medians: equal to the rounded ones' within rounding.
    one_file = body["median_seconds"]["one_file"] / body["median_seconds"]["full"]
    assert body["one_file_over_full"] == pytest.approx(one_file, abs=0.002)


def test_goals_name_every_goal(document: dict[str, Any]) -> None:
    assert set(document["goals"]) == {
        "overhead",
        "orchestration",
        "extraction",
        "log_health",
        "report",
        "incremental_one_file",
        "incremental_no_change",
        "engines_product_build",
        "engines_capture_cost",
        "engines_results",
    }
    assert evaluate_goals({})["overhead"]["met"] is None
    assert evaluate_goals({})["engines_product_build"]["met"] is None
    assert document["goals"]["engines_results"]["met"] is True


def test_engines_case_in_the_suite_reports_every_engine(document: dict[str, Any]) -> None:
    engines = document["engines"]
    assert set(engines["per_query"]) == {"q1", "q6"}
    assert set(engines["engines"]) == {*CHILD_ENGINES, PRODUCT, PRODUCT_NO_CAPTURE}
    assert engines["engines"][NATIVE]["geomean_ratio_to_native"] == 1.0
    assert _positive_float(engines["product_geomean_ratio_to_native"])
    assert _positive_float(engines["capture_over_no_capture"])


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The engines case alone, tiny: scale 0.01, q1 and q6, one round, the ablation on."""
    root = tmp_path_factory.mktemp("engines")
    return measure_engines(EngineSettings.tiny(root / "cache"), root)


def test_engines_every_engine_and_the_product_return_native_rows(engines: dict[str, Any]) -> None:
    assert "error" not in engines, engines.get("error")
    assert engines["results_equal_native"] is True and engines["result_problems"] == []
    assert engines["round_errors"] == [] and engines["warmup_errors"] == {}
    for query, by_engine in engines["per_query"].items():
        assert set(by_engine) == {*CHILD_ENGINES, PRODUCT, PRODUCT_NO_CAPTURE}, query
        native_rows = by_engine[NATIVE]["rows"]
        assert native_rows >= 1
        # The baseline is not checked against itself.
        assert "multiset_match_baseline" not in by_engine[NATIVE]
        for engine, row in by_engine.items():
            assert "error" not in row, (query, engine, row.get("error"))
            assert row["rows"] == native_rows and row["rows_match_native"] is True, (query, engine)
            if engine != NATIVE:
                assert row["multiset_match_baseline"] is True, (query, engine)
            assert _positive_float(row["ms_median"]) and _positive_float(row["ratio_to_native"])


def test_engines_product_rows_carry_phases_and_step_time(engines: dict[str, Any]) -> None:
    for variant in (PRODUCT, PRODUCT_NO_CAPTURE):
        row = engines["per_query"]["q6"][variant]
        assert {"logical", "physical", "execute"} <= set(row["phases_ms_median"])
        assert _positive_float(row["step_ms_median"]) and _positive_float(row["step_ratio_to_native"])
        summary = engines["engines"][variant]
        assert summary["queries_failed"] == [] and _positive_float(summary["geomean_ratio_to_native"])
        assert _positive_float(summary["build_wall_seconds_median"])
    assert "optimized" in engines["per_query"]["q6"][PRODUCT]["phases_ms_median"]
    assert [b["exit_code"] for b in engines["builds"]] == [0, 0]
    assert {b["variant"] for b in engines["builds"]} == {PRODUCT, PRODUCT_NO_CAPTURE}
    assert "--no-capture" in next(
        b["command"] for b in engines["builds"] if b["variant"] == PRODUCT_NO_CAPTURE
    )


def test_engines_summary_machine_and_native_sources(engines: dict[str, Any]) -> None:
    for engine in (*CHILD_ENGINES, PRODUCT):
        summary = engines["engines"][engine]
        assert summary["queries_compared"] == 2 and summary["queries_failed"] == [], engine
        assert _positive_float(summary["total_ms"]), engine
    assert set(PEERS) <= set(engines["engines"])
    # Every engine runs the queries in the order the product's build ran its plans (an untimed probe).
    assert engines["query_order"]["source"].startswith("probe build ")
    assert sorted(engines["query_order"]["queries"]) == ["q1", "q6"]
    assert engines["machine"]["cores"] and engines["load_average_at_start"] is not None
    assert engines["commit"] is None or len(engines["commit"]) == 40
    lineitem = engines["native_sources"]["lineitem"]
    assert lineitem["log_removes"] == 0 and lineitem["folder_is_live_files"] is True
    assert lineitem["linked"] is False and lineitem["path"] == lineitem["uri"]
    json.dumps(engines)


def test_engines_ablation_varies_one_setting_at_a_time(engines: dict[str, Any]) -> None:
    ablation = engines["ablation"]
    assert ablation["settings"]["defaults"] == {}
    assert all(len(v) == 1 for name, v in ablation["settings"].items() if name != "defaults")
    assert {"pushdown_filters=true", "target_partitions=1", "batch_size=32768"} <= set(ablation["variants"])
    # DataFusion's own allocator default, in a child started with it.
    assert ablation["settings"]["allow_thp=1"] == {"MIMALLOC_ALLOW_THP": "1"}
    for name, variant in ablation["variants"].items():
        assert variant["queries_failed"] == [] and variant["result_mismatches"] == [], name
        assert _positive_float(variant["geomean_ratio_to_defaults"]), name
    for query, by_variant in ablation["per_query"].items():
        for name, row in by_variant.items():
            if name != "defaults":  # checked against the results ``defaults`` kept in round 0
                assert row["multiset_match_baseline"] is True, (query, name)


def test_native_listing_links_exactly_the_live_files_after_an_overwrite(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from codeanatomy_assets.bench.engines.native_sources import native_sources

    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"a": [1, 2]}))
    write_deltalake(uri, pa.table({"a": [3]}), mode="overwrite")  # the first file stays on disk, removed
    source = native_sources({"t": uri}, tmp_path / "links")["t"]
    assert source.log_removes == 1 and source.folder_is_live_files is False and source.linked is True
    assert [p.name for p in Path(source.path).iterdir()] == ["000000.parquet"]


def test_results_match_and_query_tables() -> None:
    from decimal import Decimal

    import pyarrow as pa

    decimal = pa.table({"k": ["a", "b"], "v": pa.array([Decimal(1), Decimal(2)], pa.decimal128(10, 6))})
    assert results_match(decimal, pa.table({"x": ["b", "a"], "y": [2.0000001, 1.0]}))
    assert not results_match(decimal, pa.table({"x": ["a", "b"], "y": [1.0, 2.1]}))
    assert not results_match(decimal, pa.table({"x": ["a"], "y": [1.0]}))
    assert query_tables("select * from nation n, region -- lineitem") == ("nation", "region")


def test_a_failing_case_is_recorded_with_its_error() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("no data")

    outcome = run_case("broken", broken).to_row()
    assert outcome["error"]["error.type"] == "RuntimeError"
    assert outcome["error"]["message"] == "no data"


def test_statistics_helpers() -> None:
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([]) is None
    assert ratio(1.0, None) is None
    assert rotated(["a", "b"], 3) == ["b", "a"]


def test_cli_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = app(
        ["bench", "--quick", "--case", "log_health", "--out", str(out), "--cache-dir", str(tmp_path / "c")],
        exit_on_error=False,
        result_action="return_value",
    )
    assert code == 0
    written = json.loads(out.read_text("utf-8"))
    assert written["quick"] is True
    assert "log_health" in written and "overhead" not in written
