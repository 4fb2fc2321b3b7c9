"""The benchmark harness on tiny inputs: the JSON document's shape and that its ratios are positive floats.

Nothing here asserts a time: the machine is shared and the inputs are too small for the figures to mean
anything; the benchmark's figures live in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.bench.harness import geomean, median, ratio, rotated, run_case
from codeanatomy_assets.bench.provider_modes import DEFAULT_POLICY, MODES, NATIVE
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
        assert _positive_float(document["provider_modes"][mode]["geomean_ratio_to_native"]), mode


def test_provider_modes_report_each_query_and_mode(document: dict[str, Any]) -> None:
    modes = document["provider_modes"]
    assert set(modes["queries"]) == {"q1", "q6"}
    for query in modes["queries"].values():
        assert query[NATIVE]["ratio_to_native"] == 1.0
        for mode in MODES:
            row = query[mode]
            assert "error" in row or (_positive_float(row["ms_median"]) and row["rows_match_native"] is True)
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


def test_goals_name_every_goal(document: dict[str, Any]) -> None:
    assert set(document["goals"]) == {"overhead", "orchestration", "extraction", "log_health", "report"}
    assert evaluate_goals({})["overhead"]["met"] is None


def test_a_failing_case_is_recorded_with_its_error() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("no data")

    outcome = run_case("broken", broken).to_dict()
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
