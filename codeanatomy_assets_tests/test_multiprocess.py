"""The build under Dagster's multiprocess executor: every step in its own process (two at a time), the
diagnostics of all of them in the one store under the build's run id, and a complete report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET
from codeanatomy_assets.defs.resources import RUN_ID_TAG
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import BuildRequest, Executor, instance_for, run_build

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"
RUN = "00000000-0000-4000-8000-0000000000a2"
DATASETS = ("calls", "imports", "source_files", "symbols")
PLANS = ("call_edges", "module_dependencies", "module_metrics", "package_hotspots")
STEPS = (EXTRACT_ASSET, *DATASETS, *PLANS, REPORT_ASSET, "changes_since_last_run")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelBuild:
    home: ProjectHome
    outcome: BuildOutcome

    @property
    def store(self) -> DeltaDiagnosticsStore:
        return self.home.diagnostics_store()

    def step_pids(self) -> dict[str, int]:
        """Each step's process id, from Dagster's own record of the step starting."""
        records = instance_for(self.home).get_records_for_run(
            str(self.outcome.dagster_run_id), of_type=dg.DagsterEventType.STEP_START
        )
        return {
            r.event_log_entry.step_key or "": r.event_log_entry.dagster_event.pid for r in records.records
        }


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> ParallelBuild:
    home = ProjectHome.resolve(tmp_path_factory.mktemp("multiprocess"))
    request = BuildRequest.resolve(source=FIXTURE, home=home.root)
    outcome = run_build(request, run_id=RUN, executor=Executor.MULTIPROCESS, max_concurrent=2)
    return ParallelBuild(home=home, outcome=outcome)


def test_the_build_succeeds(parallel: ParallelBuild) -> None:
    outcome = parallel.outcome
    assert outcome.success, outcome.failed_steps
    assert outcome.failed_steps == []
    assert outcome.failed_gates == []
    assert outcome.failed_checks == ["extract_sources:all_files_parsed (WARN)"]


def test_every_step_ran_in_a_process_of_its_own(parallel: ParallelBuild) -> None:
    pids = parallel.step_pids()
    assert set(pids) == set(STEPS)
    assert len(set(pids.values())) == len(STEPS)
    assert os.getpid() not in pids.values()


def test_the_dagster_run_carries_the_diagnostics_run_id(parallel: ParallelBuild) -> None:
    run = instance_for(parallel.home).get_run_by_id(str(parallel.outcome.dagster_run_id))
    assert run is not None
    assert run.tags[RUN_ID_TAG] == RUN
    [envelope] = parallel.store.read_runs(RUN)
    assert envelope["status"] == "completed"
    assert envelope["metadata"]["executor"] == "multiprocess"
    assert envelope["metadata"]["dagster_run_id"] == run.run_id


def test_the_store_holds_the_diagnostics_of_every_step(parallel: ParallelBuild) -> None:
    events = parallel.store.read_events(RUN)
    assert {e.run_id for e in events} == {RUN}
    names = {(e.name, e.dataset or e.plan or e.asset_key) for e in events}
    assert ("extract_completed_v1", None) in names
    for dataset in DATASETS:  # one dataset step each
        assert ("dataset_provider_mode_v1", dataset) in names
        assert ("dataset_summary_v1", dataset) in names
    for plan in PLANS:  # one plan step each
        assert ("plan_output_v1", plan) in names
        phases = {
            e.payload.get("phase") for e in events if e.name == "datafusion_plan_phase_v1" and e.plan == plan
        }
        assert phases >= {"logical", "optimized", "physical", "execute"}, plan


def test_the_report_step_saw_every_other_step(parallel: ParallelBuild) -> None:
    event = instance_for(parallel.home).get_latest_materialization_event(dg.AssetKey(REPORT_ASSET))
    assert event is not None and event.asset_materialization is not None
    assert event.run_id == parallel.outcome.dagster_run_id
    markdown = str(event.asset_materialization.metadata["report"].value)
    modes = markdown.split("## Provider modes", 1)[1].split("## ", 1)[0]
    timings = markdown.split("## Plan-phase timings", 1)[1].split("## ", 1)[0]
    chosen = {cells[0]: cells[1] for cells in markdown_rows(modes)}
    for dataset in DATASETS:
        assert chosen[dataset] not in {"", "none"}, dataset
    for plan in PLANS:
        phases = {cells[1] for cells in markdown_rows(timings) if cells[0] == plan}
        assert phases >= {"logical", "optimized", "physical", "execute"}, plan
    assert "| no |" not in markdown.split("## Acceptance gates", 1)[1].split("## ", 1)[0]


def markdown_rows(section: str) -> list[list[str]]:
    """The body rows of the markdown table in ``section``, as lists of cells."""
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def test_the_results_are_those_of_the_in_process_build(parallel: ParallelBuild) -> None:
    ctx = SessionContext()
    ctx.register_table("deps", DeltaTable(parallel.home.dataset_uri("module_dependencies")))
    edges = ctx.sql("select count(*) as n, sum(import_count) as imports from deps").to_pylist()
    assert edges == [{"n": 12, "imports": 15}]
