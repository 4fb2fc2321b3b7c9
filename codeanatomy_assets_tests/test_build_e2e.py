"""End to end: a real build of the fixture tree through Dagster, Delta Lake and DataFusion.

Expected numbers come from ``fixtures/sample_tree/EXPECTED.md`` (the extraction contract) and from reading
the fixture's code by hand (the derived relations).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.diagnostics.otel import bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.runner import BuildRequest, run_build
from codeanatomy_assets_tests.cli import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
EXPECTED: dict[str, Any] = json.loads(
    re.search(r"```json\n(.*?)```", (FIXTURE / "EXPECTED.md").read_text(), re.DOTALL).group(1)  # type: ignore[union-attr]
)


def _read(uri: str) -> pa.Table:
    ctx = SessionContext()
    ctx.register_table("t", DeltaTable(uri))
    return ctx.sql("select * from t").to_arrow_table()


class Built:
    def __init__(self, home: Path, outcome: BuildOutcome, spans: InMemorySpanExporter) -> None:
        self.home = home
        self.outcome = outcome
        self.spans = spans
        self.store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")

    def table(self, name: str) -> pa.Table:
        return _read(str(self.home / "lake" / name))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    home = tmp_path_factory.mktemp("home")
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), span_exporter=spans, log_exporter=logs)
    request = BuildRequest.resolve(source=FIXTURE, home=home)
    outcome = run_build(request, run_id="00000000-0000-4000-8000-0000000e2e01", telemetry=telemetry)
    return Built(home, outcome, spans)


def test_build_succeeds_and_writes_the_report(built: Built) -> None:
    assert built.outcome.success, built.outcome.failed_steps
    assert built.outcome.failed_steps == []
    assert built.outcome.failed_gates == []
    assert built.outcome.exit_code == 0
    assert (
        built.outcome.report_path
        == built.home / "reports" / "00000000-0000-4000-8000-0000000e2e01" / "run_diagnostics_report.md"
    )
    text = built.outcome.report_path.read_text()
    for section in ("## Provider modes", "## Delta log health", "## Plan-phase timings", "## Scan pruning"):
        assert section in text
    assert "| 00000000-0000-4000-8000-0000000e2e01 | codeanatomy_build | completed |" in text


def test_extract_datasets_hold_the_expected_rows(built: Built) -> None:
    for name, rows in EXPECTED["rows"].items():
        assert built.table(name).num_rows == rows, name
    files = built.table("source_files").to_pylist()
    failed = {r["path"]: (r["parse_status"], r["error"]) for r in files if r["parse_status"] != "ok"}
    assert set(failed) == set(EXPECTED["failures"])
    for path, expected in EXPECTED["failures"].items():
        assert failed[path][0] == expected["status"]
        assert failed[path][1].startswith(expected["error_prefix"])


def test_module_dependencies_resolve_imports_inside_the_tree(built: Built) -> None:
    edges = {
        (r["source_module"], r["target_module"]): r["import_count"]
        for r in built.table("module_dependencies").to_pylist()
    }
    assert edges == {
        ("app", "shop"): 1,
        ("app", "shop.checkout"): 1,
        ("app", "shop.models"): 1,
        ("shop", "shop.cart"): 1,
        ("shop", "shop.models"): 1,
        ("shop.cart", "shop.models"): 2,
        ("shop.checkout", "shop.cart"): 1,
        ("shop.checkout", "util.text"): 3,
        ("shop.payments", "shop.cart"): 1,
        ("shop.payments", "shop.models"): 1,
        ("shop.payments", "shop.payments.card"): 1,
        ("util", "util.text"): 1,
    }


def test_call_edges_resolve_local_imported_and_module_attribute_calls(built: Built) -> None:
    rows = built.table("call_edges").to_pylist()
    assert len(rows) == EXPECTED["rows"]["calls"]  # every call kept, resolved or not
    resolved = {
        (r["caller_module"], r["callee_expression"]): (
            r["callee_module"],
            r["callee_qualname"],
            r["resolution"],
        )
        for r in rows
        if r["resolution"] != "unresolved"
    }
    assert resolved[("shop.checkout", "Cart.total")] == ("shop.cart", "Cart.total", "imported_name")
    assert resolved[("shop.checkout", "util.text.slugify")] == ("util.text", "slugify", "module_attribute")
    assert resolved[("app", "main")] == ("app", "main", "local")
    assert resolved[("app", "Item")] == ("shop.models", "Item", "imported_name")


def test_module_metrics_and_selective_plan(built: Built) -> None:
    metrics = {r["module"]: r for r in built.table("module_metrics").to_pylist()}
    assert set(metrics) == {
        "app",
        "shop",
        "shop.cart",
        "shop.checkout",
        "shop.models",
        "shop.payments",
        "shop.payments.card",
        "util",
        "util.text",
    }
    assert (metrics["shop.models"]["fan_in"], metrics["shop.models"]["fan_out"]) == (4, 0)
    assert metrics["shop.cart"]["symbol_count"] == 6
    # The built-in hotspots plan ranks the tree's packages by symbol count: shop (16), util (2), app (1);
    # its rows are their functions and methods (the 3 classes, all in shop, are left out).
    hotspots = built.table("package_hotspots").to_pylist()
    assert {r["package"] for r in hotspots} == {"shop", "util", "app"}
    assert len(hotspots) == sum(EXPECTED["rows_by_package"]["symbols"].values()) - 3


def test_every_stored_event_has_run_id_severity_and_category(built: Built) -> None:
    events = built.store.read_events("00000000-0000-4000-8000-0000000e2e01")
    assert len(events) > 40
    categories = {c.value for c in Category}
    for event in events:
        assert event.run_id == "00000000-0000-4000-8000-0000000e2e01"
        assert event.severity in set(Severity)
        assert event.category.value in categories
    names = {e.name for e in events}
    assert {
        "dataset_provider_mode_v1",
        "delta_log_health_v1",
        "datafusion_plan_phase_v1",
        "scan_unit_pruning_v1",
        "extract_file_failed_v1",
        "telemetry_config_v1",
    } <= names
    failed_files = [e for e in events if e.name == "extract_file_failed_v1"]
    assert {(e.severity, e.category) for e in failed_files} == {(Severity.WARN, Category.EXTRACT)}


def test_run_envelope_completed_with_duration(built: Built) -> None:
    (run,) = built.store.read_runs("00000000-0000-4000-8000-0000000e2e01")
    assert run["status"] == "completed"
    assert run["duration_ms"] > 0
    assert run["label"] == "codeanatomy_build"


def test_every_plan_has_four_phases_with_hash_duration_and_span(built: Built) -> None:
    phases = list(
        built.store.read_events("00000000-0000-4000-8000-0000000e2e01", names=["datafusion_plan_phase_v1"])
    )
    by_plan: dict[str, set[str]] = {}
    for e in phases:
        assert e.payload["plan_hash"] and e.payload["span_id"] and e.payload["duration_ms"] >= 0
        by_plan.setdefault(e.plan or "", set()).add(e.payload["phase"])
    assert by_plan == {
        p: {"logical", "optimized", "physical", "execute"}
        for p in ("module_dependencies", "call_edges", "module_metrics", "package_hotspots")
    }


def test_one_span_per_asset_step_with_run_and_asset_attributes(built: Built) -> None:
    steps = [s for s in built.spans.get_finished_spans() if s.name.startswith("asset ")]
    keys = sorted(s.attributes["dagster.asset_key"] for s in steps)
    assert keys == sorted(
        [
            "extract_sources",
            "source_files",
            "symbols",
            "imports",
            "calls",
            "module_dependencies",
            "call_edges",
            "module_metrics",
            "package_hotspots",
            "run_diagnostics_report",
        ]
    )
    assert {s.attributes["dagster.run_id"] for s in steps} == {"00000000-0000-4000-8000-0000000e2e01"}
    root = [s for s in built.spans.get_finished_spans() if s.name == "codeanatomy build"]
    assert len(root) == 1
    assert {s.context.trace_id for s in steps} == {root[0].context.trace_id}


def test_dagster_instance_has_the_run_and_materializations(built: Built) -> None:
    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.runner import instance_for

    instance = instance_for(ProjectHome.resolve(built.home))
    run = instance.get_run_by_id("00000000-0000-4000-8000-0000000e2e01")
    assert run is not None and run.is_success
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey("run_diagnostics_report"))
    assert event is not None
    metadata = event.asset_materialization.metadata
    assert "## Provider modes" in metadata["report"].value
    plan = instance.get_latest_materialization_event(dg.AssetKey("call_edges")).asset_materialization
    assert plan.metadata["dagster/row_count"].value == EXPECTED["rows"]["calls"]
    assert {"phase_ms/logical", "phase_ms/optimized", "phase_ms/physical", "phase_ms/execute"} <= set(
        plan.metadata
    )
    assert isinstance(plan.metadata["phase_ms/execute"].value, float)


def test_a_rebuild_compares_each_plan_hash_with_the_plan_before(tmp_path: Path) -> None:
    import dagster as dg

    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.runner import instance_for

    request = BuildRequest.resolve(source=FIXTURE, home=tmp_path)
    first = run_build(request, run_id="00000000-0000-4000-8000-0000000e2e02")
    assert first.success
    instance = instance_for(ProjectHome.resolve(tmp_path))
    plans = ("call_edges", "module_dependencies", "module_metrics", "package_hotspots")
    for name in plans:  # nothing to compare with in a first build
        meta = instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.metadata
        assert "plan_hash_changed" not in meta, name
    full = BuildRequest.resolve(source=FIXTURE, home=tmp_path, full=True)  # else nothing changed: skipped
    second = run_build(full, run_id="00000000-0000-4000-8000-0000000e2e03")
    assert second.success
    for name in plans:  # the same tree and SQL: the same optimized plan
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert event.run_id == "00000000-0000-4000-8000-0000000e2e03"
        assert event.asset_materialization.metadata["plan_hash_changed"].value is False, name


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "missing_dir"], "missing_dir: source tree does not exist"),
        (["--source", "empty"], "empty: source tree holds no Python files"),
        (["--config", "bad.toml"], "bad.toml: plans.p.bogus: unknown key"),
        (["--config", "typed.toml"], "typed.toml: datasets.d.uri: must be a string, not int"),
        (["--config", "unknown.toml"], "unknown.toml: plans.p: the SQL names no declared dataset or plan"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.toml").write_text("[datasets.d]\nuri='x'\n[plans.p]\nsql='select * from d'\nbogus=1\n")
    (tmp_path / "typed.toml").write_text("[datasets.d]\nuri=3\n")
    (tmp_path / "unknown.toml").write_text("[datasets.d]\nuri='x'\n[plans.p]\nsql='select * from nosuch'\n")
    proc = run_cli("build", "--home", str(tmp_path / "home"), *args, cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert not (tmp_path / "home" / "lake" / "source_files").exists()


def test_failing_plans_fail_the_run_and_leave_earlier_datasets_intact(built: Built, tmp_path: Path) -> None:
    """Invalid SQL and an unknown table fail their plans; the other plan and the datasets are untouched."""
    lake = built.home / "lake"
    before = DeltaTable(str(lake / "symbols")).version()
    config = tmp_path / "codeanatomy.toml"
    config.write_text(
        f'[datasets.symbols]\nuri = "{lake / "symbols"}"\n'
        f'[datasets.files]\nuri = "{lake / "source_files"}"\n'
        '[plans.good]\nsql = "select package, count(*) as n from symbols group by package"\n'
        '[plans.bad_sql]\nsql = "select from where symbols"\n'
        '[plans.unknown_table]\nsql = "select * from files join nosuch on true"\n'
        '[plans.after_bad]\nsql = "select * from bad_sql"\n'
    )
    home = tmp_path / "home"
    outcome = run_build(
        BuildRequest.resolve(config=config, home=home), run_id="00000000-0000-4000-8000-0000000fa110"
    )
    assert not outcome.success
    assert outcome.exit_code == 1
    assert "bad_sql" in outcome.failed_steps and "unknown_table" in outcome.failed_steps
    assert "good" not in outcome.failed_steps
    assert _read(str(home / "lake" / "good")).num_rows == 3
    assert not (home / "lake" / "after_bad").exists()  # skipped: its input failed
    assert DeltaTable(str(lake / "symbols")).version() == before
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    (run,) = store.read_runs("00000000-0000-4000-8000-0000000fa110")
    assert run["status"] == "failed"
    assert run["error_type"] == "PlanError"
    assert "failed in phase logical" in run["error_message"]
    phases = store.read_events("00000000-0000-4000-8000-0000000fa110", names=["datafusion_plan_phase_v1"])
    failed = {(e.plan, e.payload["phase"]) for e in phases if e.severity is Severity.ERROR}
    assert failed == {("bad_sql", "logical"), ("unknown_table", "logical")}
    assert {e.payload["phase"] for e in phases if e.plan == "good"} == {
        "logical",
        "optimized",
        "physical",
        "execute",
    }
    # The report was still written, and says where the run stopped.
    text = outcome.report_path.read_text()
    assert "| failed |" in text
    assert "PlanError" in text
