"""Changes since the last run: a rebuild of the same inputs reports none; a rebuild where one plan's SQL
changed, one plan got slower (its input grew) and a new warning appeared reports exactly those, in the
report's section and as WARN checks on the affected assets."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.runner import BuildRequest, run_build

PLANS = {
    "a": "select count(*) as n from small",
    "b": "select k, count(distinct v) as d, sum(v) as s from big group by k",
    "c": "select x from small where x > 50",
}


def _big(rows: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table({"k": pc.bit_wise_and(ids, 7), "v": ids})


def _spec(root: Path, plans: dict[str, str], *, mapped: bool = False) -> Path:
    lines = [f'[datasets.small]\nuri = "{root / "small"}"', f'[datasets.big]\nuri = "{root / "big"}"']
    if mapped:
        lines.append(f'[datasets.mapped]\nuri = "{root / "mapped"}"')
    lines += [f'[plans.{name}]\nsql = "{sql}"' for name, sql in plans.items()]
    config = root / "codeanatomy.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _build(config: Path, home: Path) -> BuildOutcome:
    request = BuildRequest.resolve(config=config, home=home, full=True)
    outcome = run_build(request, run_id=str(uuid.uuid4()))
    assert outcome.success, outcome.summary_lines()
    return outcome


def _changes(outcome: BuildOutcome) -> dict[str, Any]:
    folder = outcome.report_path.parent
    markdown = outcome.report_path.read_text()
    assert "## Changes since the last run" in markdown
    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.report.run_report import build_report

    home = ProjectHome.resolve(folder.parent.parent)
    data, _, _ = build_report(home.diagnostics_store(), outcome.run_id)
    return data["changes"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, delta_corpus: Path) -> tuple[BuildOutcome, ...]:
    root = tmp_path_factory.mktemp("changes")
    write_deltalake(str(root / "small"), pa.table({"x": pa.array(range(100), pa.int64())}))
    write_deltalake(str(root / "big"), _big(10_000))
    shutil.copytree(delta_corpus / "table_with_column_mapping", root / "mapped")
    home = root / "home"
    first = _build(_spec(root, PLANS), home)
    same = _build(_spec(root, PLANS), home)
    write_deltalake(str(root / "big"), _big(3_000_000), mode="append")
    changed = {**PLANS, "a": "select count(*) as n, max(x) as m from small"}
    third = _build(_spec(root, changed, mapped=True), home)
    return first, same, third


def test_first_run_has_nothing_to_compare_with(runs: tuple[BuildOutcome, ...]) -> None:
    assert _changes(runs[0])["compared_with"] is None


def test_an_unchanged_rebuild_reports_no_change(runs: tuple[BuildOutcome, ...]) -> None:
    changes = _changes(runs[1])
    assert changes["compared_with"] == runs[0].run_id
    assert changes["changes"] == [], json.dumps(changes["changes"], indent=1)
    assert not [c for c in runs[1].failed_checks if "no_change_since_last_run" in c]


def test_the_changes_are_exactly_those_made(runs: tuple[BuildOutcome, ...]) -> None:
    changes = _changes(runs[2])
    assert changes["compared_with"] == runs[1].run_id
    found = {(c["kind"], c["asset"]) for c in changes["changes"]}
    plan_changes = {c["message"] for c in changes["changes"] if c["kind"] == "plan_changed"}
    # a's SQL changed: every phase. b read a table grown from one file to several: its physical plan
    # (file groups, input partitions) changed with the data, its logical and optimized plans did not.
    assert {
        f"a: the {p} plan changed" for p in ("logical", "optimized", "physical", "execute")
    } <= plan_changes
    assert plan_changes <= {
        f"{a}: the {p} plan changed" for a in "ab" for p in ("logical", "optimized", "physical", "execute")
    }
    assert not {f"b: the {p} plan changed" for p in ("logical", "optimized")} & plan_changes
    assert {(k, a) for k, a in found if k != "plan_changed"} == {
        ("phase_slower", "b"),
        ("rows_changed", "big"),
        ("diagnostic_new", "mapped"),
    }, json.dumps(changes["changes"], indent=1)
    slower = next(c for c in changes["changes"] if c["kind"] == "phase_slower")
    assert slower["severity"] == "warn" and slower["category"] == "plan_phase"
    assert slower["after"] >= 1.5 * slower["before"] and slower["after"] - slower["before"] >= 100
    failed = {c.split(":")[0] for c in runs[2].failed_checks if "no_change_since_last_run" in c}
    assert failed == {"b", "mapped"}
