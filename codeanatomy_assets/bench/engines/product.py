"""The product as a user runs it: a pipeline spec of the TPC-H plans, ``codeanatomy build`` subprocesses,
and what each build recorded per plan (phase durations, output, Dagster step time)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codeanatomy_assets.bench.engines.names import (
    PRODUCT_NO_CAPTURE,
    PRODUCT_VARIANTS,
    plan_name,
    query_tables,
)
from codeanatomy_assets.bench.engines.results import output_matches, result_path
from codeanatomy_assets.bench.engines.table import Samples
from codeanatomy_assets.bench.harness import failure, rounded
from codeanatomy_assets.bench.tpch import load_query
from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_PHASE, PLAN_OUTPUT

if TYPE_CHECKING:
    from codeanatomy_assets.diagnostics.events import DiagnosticEvent
    from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
    from codeanatomy_assets.home import ProjectHome

BUILD_TIMEOUT_S: Final = 3600
_DROPPED_ENV_PREFIXES: Final = ("CODEANATOMY_", "OTEL_")
_RUN_LINE: Final = re.compile(r"^run (\S+): ")


# ------------------------------------------------------------------------------------------ the spec


def codeanatomy_command() -> list[str]:
    """The ``codeanatomy`` command a user of this environment runs (the venv's script first)."""
    beside = Path(sys.executable).parent / "codeanatomy"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("codeanatomy")
    return [found] if found else [sys.executable, "-m", "codeanatomy_assets.cli.app"]


def write_spec(folder: Path, uris: Mapping[str, str], queries: Iterable[str]) -> Path:
    """A pipeline spec: the tables the queries name as datasets by uri, each query as plan ``tpch_qN``."""
    sql_dir = folder / "sql"
    sql_dir.mkdir(parents=True, exist_ok=True)
    lines = ['[pipeline]\nlabel = "tpch"\n']
    plans, tables = [], set()
    for query in queries:
        sql = load_query(query)
        tables.update(query_tables(sql))
        (sql_dir / f"{query}.sql").write_text(sql, encoding="utf-8")
        plans.append(f'[plans.{plan_name(query)}]\nsql_file = "sql/{query}.sql"\n')
    lines += [f"[datasets.{name}]\nuri = {json.dumps(uris[name])}\n" for name in sorted(tables)]
    path = folder / "spec.toml"
    path.write_text("\n".join([*lines, *plans]), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ a build


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRecord:
    """One ``codeanatomy build`` of a product variant: its command, exit code, wall time and run id."""

    variant: str
    round_index: int
    command: str
    exit_code: int
    wall_seconds: float | None
    run_id: str | None
    stderr_tail: str | None
    """The end of the build's stderr when it failed."""

    def to_row(self) -> dict[str, Any]:
        """The JSON record (``round`` for the round index)."""
        row = asdict(self)
        row["round"] = row.pop("round_index")
        return row


def _build_env() -> dict[str, str]:
    """This environment without project-home, lake and OpenTelemetry settings (the flags say where)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}


def run_product_build(spec: Path, home: Path, *, variant: str, round_index: int) -> BuildRecord:
    """One ``codeanatomy build`` subprocess of ``variant`` (capturing or not: :data:`PRODUCT_VARIANTS`)."""
    # --full: every round runs every plan (a rebuild would skip the plans whose inputs did not change).
    command = [*codeanatomy_command(), "build", "--full", "--config", str(spec), "--home", str(home)]
    if not PRODUCT_VARIANTS[variant]:
        command.append("--no-capture")
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, env=_build_env()
    )
    wall = time.perf_counter() - started
    run_ids = [m.group(1) for line in done.stdout.splitlines() if (m := _RUN_LINE.match(line))]
    return BuildRecord(
        variant=variant,
        round_index=round_index,
        command=" ".join(command),
        exit_code=done.returncode,
        wall_seconds=rounded(wall),
        run_id=run_ids[0] if run_ids else None,
        stderr_tail=" ".join(done.stderr.split())[-800:] if done.returncode else None,
    )


# ------------------------------------------------------------------------------- what a build recorded


def _registration_ms(payloads: Iterable[Mapping[str, Any]]) -> float | None:
    """The plan step's input registration time, where some event of the plan records one."""
    found = [float(p[k]) for p in payloads for k in p if k.endswith("registration_ms") and p[k] is not None]
    return sum(found) if found else None


def _plans_from_events(events: Iterable[DiagnosticEvent]) -> dict[str, dict[str, Any]]:
    """Per plan: its phase durations, output rows and uri, and every payload of its events."""
    plans: dict[str, dict[str, Any]] = {}
    for event in events:
        if not event.plan:
            continue
        plan = plans.setdefault(event.plan, {"phases_ms": {}, "payloads": []})
        plan["payloads"].append(event.payload)
        if event.name == DATAFUSION_PLAN_PHASE and event.payload.get("duration_ms") is not None:
            plan["phases_ms"][event.payload["phase"]] = float(event.payload["duration_ms"])
        elif event.name == PLAN_OUTPUT:
            plan["rows"], plan["uri"] = event.payload.get("rows"), event.payload.get("uri")
    return plans


def _step_spans(
    project: ProjectHome, store: DeltaDiagnosticsStore, run_id: str
) -> dict[str, tuple[float, float]]:
    """Each step's start and end in the Dagster run behind ``run_id`` (from the home's instance)."""
    from codeanatomy_assets.bench.orchestration import run_timeline
    from codeanatomy_assets.runner import instance_for

    runs = store.read_runs(run_id)
    dagster_run_id = (runs[-1]["metadata"] if runs else {}).get("dagster_run_id") or run_id
    instance = instance_for(project)
    try:
        return run_timeline(instance, dagster_run_id).steps
    finally:
        instance.dispose()


def read_build(home: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """Per plan of the run: phase durations, their sum, output rows and uri, step ms, registration ms."""
    from codeanatomy_assets.home import ProjectHome

    project = ProjectHome.resolve(home)
    store = project.diagnostics_store()
    plans = _plans_from_events(store.read_events(run_id))
    steps = _step_spans(project, store, run_id)
    for name, plan in plans.items():
        plan["phase_sum_ms"] = sum(plan["phases_ms"].values()) if plan["phases_ms"] else None
        plan["step_ms"] = (steps[name][1] - steps[name][0]) * 1000 if name in steps else None
        plan["registration_ms"] = _registration_ms(plan.pop("payloads"))
    return plans


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOrder:
    """The order a build of the spec runs its plans in, as queries, and where that order came from."""

    queries: tuple[str, ...]
    source: str
    """``probe build RUN`` or, when the probe failed, ``spec order`` and why (never silent)."""

    def to_row(self) -> dict[str, Any]:
        """The JSON record."""
        return asdict(self)


def probe_plan_order(spec: Path, home: Path, queries: Sequence[str]) -> PlanOrder:
    """The order the product's build runs the plans of ``spec`` in, read from one untimed build.

    Dagster's in-process executor runs each plan once its inputs' registrations ended, so the order is
    the dependency structure's, not the spec's. The engines run their queries in the same order: a query's
    time depends on what the process ran before it (memory the allocator already holds).
    """
    from codeanatomy_assets.home import ProjectHome

    build = run_product_build(spec, home, variant=PRODUCT_NO_CAPTURE, round_index=-1)
    if build.exit_code != 0 or not build.run_id:
        return PlanOrder(
            queries=tuple(queries), source=f"spec order: the probe build failed: {build.stderr_tail}"
        )
    project = ProjectHome.resolve(home)
    steps = _step_spans(project, project.diagnostics_store(), build.run_id)
    by_plan = {plan_name(query): query for query in queries}
    started = sorted((span[0], by_plan[key]) for key, span in steps.items() if key in by_plan)
    if len(started) != len(by_plan):
        return PlanOrder(queries=tuple(queries), source="spec order: the probe build ran only some plans")
    return PlanOrder(queries=tuple(query for _, query in started), source=f"probe build {build.run_id}")


def _readable_plans(build: BuildRecord, home: Path) -> dict[str, dict[str, Any]]:
    """:func:`read_build` of the build's run; nothing when it has no run id or cannot be read back."""
    if not build.run_id:
        return {}
    try:
        return read_build(home, build.run_id)
    except Exception:  # noqa: BLE001 - a build that cannot be read back has no figures: each plan's sample says so
        return {}


def _plan_sample(
    plan: Mapping[str, Any] | None, build: BuildRecord, query: str, results_dir: Path | None
) -> dict[str, Any]:
    """The build's sample of ``query``: its phase sum and rows (checked in round 0), or why it is missing."""
    if plan is None or plan.get("phase_sum_ms") is None or plan.get("rows") is None:
        message = f"plan {plan_name(query)} has no output or phases in run {build.run_id}"
        return {"error": failure("BuildFailed", message)}
    sample = {"ms": plan["phase_sum_ms"], "rows": plan["rows"], **plan}
    if results_dir is not None and plan.get("uri"):
        sample["matches_baseline"] = output_matches(plan["uri"], result_path(results_dir, query))
    return sample


def record_build(
    samples: Samples, build: BuildRecord, *, home: Path, queries: Sequence[str], results_dir: Path | None
) -> None:
    """Add the build's sample of every query (compared with the kept ``native`` results when given)."""
    plans = _readable_plans(build, home)
    for query in queries:
        samples.add(
            query, build.variant, _plan_sample(plans.get(plan_name(query)), build, query, results_dir)
        )
