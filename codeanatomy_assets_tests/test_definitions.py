"""The Dagster code location: it loads, validates, and its asset graph matches the golden snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from codeanatomy_assets.defs.definitions import (
    AUTOMATION_SENSOR,
    JOB_NAME,
    SCHEDULE_NAME,
    build_definitions,
)
from codeanatomy_assets.spec import load_builtin_spec

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "asset_graph.json"


def _graph(defs: dg.Definitions) -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "code_version": node.code_version,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
        }
    return {"assets": assets}


def test_asset_graph_matches_golden_snapshot() -> None:
    snapshot = json.dumps(_graph(build_definitions(load_builtin_spec())), indent=2, sort_keys=True) + "\n"
    if os.environ.get("CODEANATOMY_UPDATE_GOLDEN"):
        GOLDEN.write_text(snapshot)
    assert snapshot == GOLDEN.read_text()


def test_job_and_stopped_schedule() -> None:
    defs = build_definitions(load_builtin_spec())
    job = defs.resolve_job_def(JOB_NAME)
    assert {n.name for n in job.graph.node_defs} >= {"extract_sources", "run_diagnostics_report"}
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.default_status is dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * *"


def test_automation_sensor_is_stopped_and_targets_the_build() -> None:
    """The assets' automation conditions are evaluated by one explicit sensor, stopped until a user
    starts it (no default automation sensor runs on its own)."""
    defs = build_definitions(load_builtin_spec())
    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status is dg.DefaultSensorStatus.STOPPED
    graph = defs.resolve_asset_graph()
    targeted = sensor.asset_selection.resolve(graph)  # type: ignore[union-attr]
    with_conditions = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert with_conditions == targeted
    automation = [
        s.name
        for s in defs.get_repository_def().sensor_defs
        if isinstance(s, dg.AutomationConditionSensorDefinition)
    ]
    assert automation == [AUTOMATION_SENSOR]  # Dagster adds no default automation sensor beside it


def test_workspace_validates_with_the_dagster_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CODEANATOMY_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout
