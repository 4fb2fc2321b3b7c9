"""Incremental plans: a plan whose SQL and input versions did not change is skipped (and says so), the
plans downstream of a changed input run again, ``full`` runs everything, and Dagster's data versions make
the downstream assets stale when an input changes and fresh after the rebuild.

The spec reads two external Delta tables written here: ``a`` and ``b``; ``a_total`` reads ``a``,
``b_names`` reads ``b``, ``joined`` reads both and ``joined_count`` reads ``joined``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.plan_skip import FINGERPRINT_KEY, RUN_ID_KEY
from codeanatomy_assets.runner import BuildRequest, instance_for, run_build, step_resource

PLANS = ("a_total", "b_names", "joined", "joined_count")
SPEC = """\
[datasets.a]
uri = "{root}/a"
[datasets.b]
uri = "{root}/b"
[plans.a_total]
sql = "select sum(v) as total from a"
[plans.b_names]
sql = "select w from b order by w"
[plans.joined]
sql = "select a.k, a.v, b.w from a join b on a.k = b.k"
[plans.joined_count]
sql = "select count(*) as n from joined"
"""


def _request(tmp_path: Path, *, full: bool = False, sql_suffix: str = "") -> BuildRequest:
    """The spec over ``a`` and ``b`` under ``tmp_path`` (written on first use)."""
    if not (tmp_path / "a").exists():
        write_deltalake(str(tmp_path / "a"), pa.table({"k": [1, 2, 3], "v": [10, 20, 30]}))
        write_deltalake(str(tmp_path / "b"), pa.table({"k": [1, 2], "w": ["x", "y"]}))
    config = tmp_path / "codeanatomy.toml"
    spec = SPEC.format(root=tmp_path)
    config.write_text(spec.replace("from joined", f"from joined{sql_suffix}"))
    return BuildRequest.resolve(config=config, home=tmp_path / "home", full=full)


def _build(request: BuildRequest) -> BuildOutcome:
    outcome = run_build(request, run_id=str(uuid.uuid4()))
    assert outcome.exit_code == 0, outcome.summary_lines()
    return outcome


def _append_to_b(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "b"), pa.table({"k": [3], "w": ["z"]}), mode="append")


def _events(request: BuildRequest, run_id: str, name: str) -> dict[str, DiagnosticEvent]:
    store = DeltaDiagnosticsStore(request.home.diagnostics)
    return {str(e.plan): e for e in store.read_events(run_id, names=[name])}


def _versions(request: BuildRequest) -> dict[str, int]:
    return {plan: DeltaTable(request.home.dataset_uri(plan)).version() for plan in PLANS}


def _latest(request: BuildRequest, name: str) -> dg.AssetMaterialization:
    event = instance_for(request.home).get_latest_materialization_event(dg.AssetKey(name))
    assert event is not None and event.asset_materialization is not None
    return event.asset_materialization


def _statuses(request: BuildRequest) -> dict[str, StaleStatus]:
    """Dagster's stale status of every asset, as the UI computes it (code and data versions)."""
    instance = instance_for(request.home)
    graph = build_definitions(request.spec, step_resource(request)).resolve_asset_graph()
    now = TemporalContext(effective_dt=get_current_datetime(), last_event_id=None)
    view = AssetGraphView(temporal_context=now, instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, view)
    return {key.to_user_string(): resolver.get_status(key) for key in graph.materializable_asset_keys}


def test_a_rebuild_with_nothing_changed_skips_every_plan(tmp_path: Path) -> None:
    request = _request(tmp_path)
    first = _build(request)
    before = _versions(request)
    history = DeltaTable(request.home.dataset_uri("joined")).history(1)[0]
    assert history[RUN_ID_KEY] == first.run_id and history[FINGERPRINT_KEY]
    second = _build(request)
    assert _versions(request) == before  # nothing was written
    skipped = _events(request, second.run_id, "plan_skipped_v1")
    assert sorted(skipped) == sorted(PLANS)
    assert _events(request, second.run_id, "plan_output_v1") == {}
    event = skipped["joined"]
    assert (event.severity, event.category) == (Severity.INFO, Category.PLAN_PHASE)
    assert event.payload["inputs"] == {"a": 0, "b": 0}
    assert event.payload["output_version"] == before["joined"]
    assert event.payload["previous_run_id"] == first.run_id
    assert "a@0, b@0" in event.payload["reason"] and len(event.payload["sql_hash"]) == 64
    report = second.report_path.read_text()
    assert "Plans skipped (4), their outputs unchanged:" in report and "Plans run (0):" in report
    assert f"| joined | {before['joined']} | {first.run_id} |" in report


def test_a_skipped_plan_still_materializes_with_passed_checks(tmp_path: Path) -> None:
    request = _request(tmp_path)
    first = _build(request)
    _build(request)
    meta = _latest(request, "joined").metadata
    assert meta["skipped"].value is True
    assert "a@0, b@0" in meta["skip_reason"].value
    assert meta["skipped_since_run"].value == first.run_id
    instance = instance_for(request.home)
    keys = [
        dg.AssetCheckKey(dg.AssetKey("joined"), c) for c in ("plan_phases_recorded", "scan_pruning_effective")
    ]
    for record in instance.event_log_storage.get_latest_asset_check_execution_by_key(keys).values():
        evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert evaluation.passed is True
        assert f"plan skipped, its output unchanged since run {first.run_id}" in evaluation.description


def test_an_input_change_reruns_only_the_plans_that_read_it(tmp_path: Path) -> None:
    request = _request(tmp_path)
    _build(request)
    before = _versions(request)
    _append_to_b(tmp_path)
    second = _build(request)
    ran = _events(request, second.run_id, "plan_output_v1")
    assert sorted(ran) == ["b_names", "joined", "joined_count"]  # joined_count through joined
    assert sorted(_events(request, second.run_id, "plan_skipped_v1")) == ["a_total"]
    assert ran["joined"].payload["inputs"] == {"a": 0, "b": 1}
    after = _versions(request)
    assert after == {**before, **{p: before[p] + 1 for p in ("b_names", "joined", "joined_count")}}
    rows = DeltaTable(request.home.dataset_uri("joined_count")).to_pyarrow_table().to_pylist()
    assert rows == [{"n": 3}]
    third = _build(request)  # and then nothing changed again
    assert sorted(_events(request, third.run_id, "plan_skipped_v1")) == sorted(PLANS)


def test_full_runs_every_plan(tmp_path: Path) -> None:
    request = _request(tmp_path)
    _build(request)
    before = _versions(request)
    full = _build(_request(tmp_path, full=True))
    assert sorted(_events(request, full.run_id, "plan_output_v1")) == sorted(PLANS)
    assert _events(request, full.run_id, "plan_skipped_v1") == {}
    assert _versions(request) == {p: v + 1 for p, v in before.items()}
    assert "**full**: full rebuild requested (--full)" in full.report_path.read_text()


def test_a_changed_sql_reruns_its_plan_and_is_stale_before(tmp_path: Path) -> None:
    request = _request(tmp_path)
    _build(request)
    changed = _request(tmp_path, sql_suffix=" where k > 0")
    assert _statuses(changed)["joined_count"] is StaleStatus.STALE  # its code version changed
    outcome = _build(changed)
    assert sorted(_events(changed, outcome.run_id, "plan_output_v1")) == ["joined_count"]
    assert set(_statuses(changed).values()) == {StaleStatus.FRESH}


def test_dagster_shows_the_plans_downstream_of_a_changed_input_stale(tmp_path: Path) -> None:
    request = _request(tmp_path)
    _build(request)
    assert set(_statuses(request).values()) == {StaleStatus.FRESH}
    _build(request)  # all skipped: same data versions, still fresh
    assert set(_statuses(request).values()) == {StaleStatus.FRESH}
    _append_to_b(tmp_path)
    job = build_definitions(request.spec, step_resource(request)).resolve_job_def(JOB_NAME)
    result = job.execute_in_process(instance=instance_for(request.home), asset_selection=[dg.AssetKey("b")])
    assert result.success
    statuses = _statuses(request)
    stale = sorted(name for name, status in statuses.items() if status is StaleStatus.STALE)
    # Dagster marks the assets that read b directly; joined_count reads joined, whose data is unchanged yet.
    assert stale == ["b_names", "joined", "run_diagnostics_report"]
    assert statuses["a_total"] is statuses["joined_count"] is StaleStatus.FRESH
    _build(request)
    assert set(_statuses(request).values()) == {StaleStatus.FRESH}


@pytest.mark.parametrize("name", ["a", "joined"])
def test_data_versions_follow_the_delta_versions(tmp_path: Path, name: str) -> None:
    request = _request(tmp_path)
    _build(request)
    first = _latest(request, name).tags["dagster/data_version"]
    _build(request)
    assert _latest(request, name).tags["dagster/data_version"] == first  # unchanged (plan: skipped)
    _append_to_b(tmp_path)
    write_deltalake(str(tmp_path / "a"), pa.table({"k": [4], "v": [40]}), mode="append")
    _build(request)
    assert _latest(request, name).tags["dagster/data_version"] != first
    assert _latest(request, name).tags["dagster/data_version"].startswith("v1@")
