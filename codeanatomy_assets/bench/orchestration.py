"""Orchestration overhead: what Dagster costs per asset, and what share of a real build it takes.

Two measurements:

- **Per asset.** A chain of ``n`` trivial assets (each returns ``None``), run with ``dagster.materialize``
  (in-process executor, ephemeral instance) and with ``execute_job`` and the multiprocess executor
  (a process per step, against a temporary persistent instance: the ephemeral one cannot hand a run to
  step processes). ``per_asset_ms`` is the run's wall time divided by ``n``.
- **Share of a build.** One real default build (:func:`codeanatomy_assets.runner.run_build`: the built-in
  spec over a source tree, diagnostics on, the in-process executor the CLI uses), after one warm-up build
  in the same home. Step durations come from the run's event log (``STEP_START`` to ``STEP_SUCCESS`` /
  ``STEP_FAILURE``); asset-body durations from the ``asset <key>`` spans the steps open (an in-memory
  span exporter). ``share_of_build`` = (wall time of ``run_build`` - sum of step durations) / wall time;
  ``share_outside_asset_bodies`` uses the body spans instead (stricter: it also counts Dagster's work
  inside a step, such as storing materialization metadata and check results). In full mode the same
  build also runs once with ``Executor.MULTIPROCESS`` (``multiprocess_build``: the runner's forkserver
  executor, modules preloaded), the executor a build could choose instead.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dagster as dg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codeanatomy_assets.bench.harness import ratio, rounded
from codeanatomy_assets.bench.sources import SourceSelection, count_files
from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.diagnostics.otel import bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import BuildRequest, Executor, instance_for, run_build
from codeanatomy_assets.spec import load_builtin_spec

TRIVIAL_JOB: Final = "bench_trivial_chain"
QUIET_RUN_CONFIG: Final = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_INSTANCE_YAML: Final = "telemetry:\n  enabled: false\n"
_RUN_START: Final = frozenset({"PIPELINE_START", "RUN_START"})
_RUN_END: Final = frozenset({"PIPELINE_SUCCESS", "PIPELINE_FAILURE", "RUN_SUCCESS", "RUN_FAILURE"})
_STEP_END: Final = frozenset({"STEP_SUCCESS", "STEP_FAILURE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationSettings:
    """Chain lengths per executor and the source tree of the real build."""

    in_process_assets: int = 20
    multiprocess_assets: int = 20
    warmup_build: bool = True
    """Build once, untimed, before the measured build (Dagster instance creation, imports, caches)."""
    multiprocess_build: bool = True
    """Also build once with ``run_build(executor=Executor.MULTIPROCESS)`` (full mode only: about a minute)."""
    build_source: SourceSelection = field(default_factory=SourceSelection.whole_stdlib)

    @classmethod
    def quick(cls, source: SourceSelection) -> OrchestrationSettings:
        """A shorter multiprocess chain and a small tree."""
        return cls(in_process_assets=10, multiprocess_assets=3, build_source=source, multiprocess_build=False)

    @classmethod
    def tiny(cls, source: SourceSelection) -> OrchestrationSettings:
        """For tests."""
        return cls(
            in_process_assets=3,
            multiprocess_assets=1,
            build_source=source,
            warmup_build=False,
            multiprocess_build=False,
        )


# ------------------------------------------------------------------------------------------- the chain


def _trivial_asset(index: int) -> dg.AssetsDefinition:
    deps = [f"trivial_{index - 1}"] if index else []

    @dg.asset(name=f"trivial_{index}", deps=deps, group_name="bench")
    def trivial() -> None:
        return None

    return trivial


def trivial_chain(n: int) -> list[dg.AssetsDefinition]:
    """``n`` assets, each depending on the previous one, each doing nothing."""
    return [_trivial_asset(i) for i in range(n)]


def trivial_chain_job(n: int) -> dg.JobDefinition:
    """The chain as a job on the multiprocess executor (reconstructable: step processes rebuild it)."""
    job = dg.define_asset_job(
        TRIVIAL_JOB, selection=dg.AssetSelection.all(), executor_def=dg.multiprocess_executor
    )
    return dg.Definitions(assets=trivial_chain(n), jobs=[job]).resolve_job_def(TRIVIAL_JOB)


# ----------------------------------------------------------------------------------------- event logs


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTimeline:
    """When a Dagster run started and ended, and each step's start and end (epoch seconds)."""

    run_start: float | None
    run_end: float | None
    steps: dict[str, tuple[float, float]]

    @property
    def steps_seconds(self) -> float:
        """The sum of the step durations."""
        return sum(end - start for start, end in self.steps.values())

    def step_seconds(self, keys: Iterable[str]) -> float:
        """The summed durations of the steps named in ``keys`` (absent ones count zero)."""
        return sum(self.steps[k][1] - self.steps[k][0] for k in keys if k in self.steps)


def run_timeline(instance: dg.DagsterInstance, run_id: str) -> RunTimeline:
    """The timeline of run ``run_id`` from the instance's event log."""
    starts: dict[str, float] = {}
    steps: dict[str, tuple[float, float]] = {}
    run_start = run_end = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in _RUN_START:
            run_start = record.timestamp
        elif kind in _RUN_END:
            run_end = record.timestamp
        elif kind == "STEP_START" and record.step_key:
            starts[record.step_key] = record.timestamp
        elif kind in _STEP_END and record.step_key in starts:
            steps[record.step_key] = (starts[record.step_key], record.timestamp)
    return RunTimeline(run_start=run_start, run_end=run_end, steps=steps)


def _chain_figures(n: int, wall: float, timeline: RunTimeline, success: bool) -> dict[str, Any]:
    return {
        "assets": n,
        "success": success,
        "wall_seconds": rounded(wall),
        "per_asset_ms": rounded(wall / n * 1000, 1),
        "steps_seconds": rounded(timeline.steps_seconds),
        "outside_steps_seconds": rounded(wall - timeline.steps_seconds),
    }


# ---------------------------------------------------------------------------------------- executors


def measure_in_process(n: int) -> dict[str, Any]:
    """The chain with ``dagster.materialize`` (in-process executor) on an ephemeral instance."""
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = dg.materialize(
        trivial_chain(n), instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False
    )
    wall = time.perf_counter() - started
    return _chain_figures(n, wall, run_timeline(instance, result.run_id), result.success)


def measure_multiprocess(n: int, work_dir: Path) -> dict[str, Any]:
    """The chain on the multiprocess executor against a temporary persistent instance."""
    with tempfile.TemporaryDirectory(prefix="dagster-mp-", dir=work_dir) as home:
        (Path(home) / "dagster.yaml").write_text(_INSTANCE_YAML, encoding="utf-8")
        instance = dg.DagsterInstance.from_config(home)
        job = dg.build_reconstructable_job(__name__, trivial_chain_job.__name__, reconstructable_args=(n,))
        started = time.perf_counter()
        with dg.execute_job(job, instance=instance, run_config=QUIET_RUN_CONFIG) as result:
            wall = time.perf_counter() - started
            figures = _chain_figures(n, wall, run_timeline(instance, result.run_id), result.success)
        instance.dispose()
    return figures


# ------------------------------------------------------------------------------------- a real build


def default_build_request(source: Path, home: Path, *, capture: bool = True) -> BuildRequest:
    """A full build of the built-in spec over ``source`` (never a ``codeanatomy.toml`` of the working
    directory). Full: the cases build the same home again and again, and an incremental rebuild would
    parse nothing and skip every plan (the ``incremental`` case measures those)."""
    spec = load_builtin_spec().with_source(str(source))
    return BuildRequest(spec=spec, home=ProjectHome.resolve(home), capture=capture, full=True)


def _asset_body_seconds(exporter: InMemorySpanExporter) -> dict[str, float]:
    bodies: dict[str, float] = {}
    for span in exporter.get_finished_spans():
        if span.name.startswith("asset ") and span.start_time and span.end_time:
            key = span.name.removeprefix("asset ")
            bodies[key] = bodies.get(key, 0.0) + (span.end_time - span.start_time) / 1e9
    return bodies


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedBuild:
    """One ``run_build`` as it ran: its outcome, wall time, Dagster timeline and asset-body spans."""

    outcome: BuildOutcome
    wall_seconds: float
    started_at: float
    """Epoch seconds, comparable with the event log's timestamps."""
    ended_at: float
    timeline: RunTimeline
    bodies: dict[str, float]
    """Seconds inside each asset's ``asset <key>`` span."""

    def body_seconds(self, keys: Iterable[str]) -> float:
        """The summed body seconds of the assets named in ``keys``."""
        return sum(self.bodies.get(k, 0.0) for k in keys)


def timed_build(request: BuildRequest, executor: Executor = Executor.IN_PROCESS) -> TimedBuild:
    """Run one build with an in-memory span exporter (asset-body spans) and read its timeline.

    With the multiprocess executor the asset spans end in the step processes: ``bodies`` stays empty.
    """
    exporter = InMemorySpanExporter()
    telemetry = bootstrap_telemetry(TelemetryConfig.resolve({}), span_exporter=exporter)
    started_at, started = time.time(), time.perf_counter()
    outcome = run_build(request, run_id=str(uuid.uuid4()), telemetry=telemetry, executor=executor)
    wall, ended_at = time.perf_counter() - started, time.time()
    return TimedBuild(
        outcome=outcome,
        wall_seconds=wall,
        started_at=started_at,
        ended_at=ended_at,
        timeline=run_timeline(instance_for(request.home), outcome.dagster_run_id or outcome.run_id),
        bodies=_asset_body_seconds(exporter),
    )


def measure_build_share(request: BuildRequest, executor: Executor = Executor.IN_PROCESS) -> dict[str, Any]:
    """One build of ``request``: wall time, step and asset-body time, and the shares outside them."""
    build = timed_build(request, executor)
    timeline, wall = build.timeline, build.wall_seconds
    steps = timeline.steps_seconds
    body_total = sum(build.bodies.values())
    job = (timeline.run_end - timeline.run_start) if timeline.run_start and timeline.run_end else None
    return {
        "success": build.outcome.success,
        "failed_steps": build.outcome.failed_steps,
        "wall_seconds": rounded(wall),
        "steps": len(timeline.steps),
        "steps_seconds": rounded(steps),
        "asset_bodies_seconds": rounded(body_total),
        "job_seconds": rounded(job),
        "before_job_seconds": rounded(timeline.run_start - build.started_at) if timeline.run_start else None,
        "between_steps_seconds": rounded(job - steps) if job is not None else None,
        "after_job_seconds": rounded(build.ended_at - timeline.run_end) if timeline.run_end else None,
        "step_seconds": {k: rounded(e - s) for k, (s, e) in sorted(timeline.steps.items())},
        "asset_body_seconds": {k: rounded(v) for k, v in sorted(build.bodies.items())},
        "share_of_build": rounded(ratio(wall - steps, wall), 4),
        "share_outside_asset_bodies": rounded(ratio(wall - body_total, wall), 4) if build.bodies else None,
    }


# ------------------------------------------------------------------------------------------- the case


def _executor_verdict(
    in_process: dict[str, Any],
    multiprocess: dict[str, Any],
    build: dict[str, Any],
    multiprocess_build: dict[str, Any] | None,
) -> str:
    steps = build.get("steps") or 0
    projected = (multiprocess["per_asset_ms"] - in_process["per_asset_ms"]) * steps / 1000
    verdict = (
        f"codeanatomy build uses the in-process executor by default (runner.run_build, "
        f"Executor.IN_PROCESS: job.execute_in_process). Trivial chain: {in_process['per_asset_ms']:.0f} ms "
        f"per asset in-process vs {multiprocess['per_asset_ms']:.0f} ms with Dagster's default "
        f"multiprocess executor (a spawned process per step); at that rate the build's {steps} steps would "
        f"add about {projected:.0f} s to a {build['wall_seconds']:.1f} s build."
    )
    if multiprocess_build is not None:
        verdict += (
            f" Measured on the real build: {multiprocess_build['wall_seconds']:.1f} s with "
            f"Executor.MULTIPROCESS (forkserver, preloaded) vs {build['wall_seconds']:.1f} s in-process."
        )
    return verdict + (
        " Its only gain, running independent steps side by side, is small on 2 cores where extraction "
        "already uses every core."
    )


def _build_figures(
    build: dict[str, Any], warmup: dict[str, Any] | None, multiprocess_build: dict[str, Any] | None
) -> dict[str, Any]:
    """The measured build, a summary of its warm-up, and the multiprocess build against it."""
    return {
        "build_warmup": {k: warmup[k] for k in ("success", "wall_seconds", "share_of_build")}
        if warmup
        else None,
        "build": build,
        "multiprocess_build": multiprocess_build,
        "multiprocess_build_over_in_process": rounded(
            ratio(multiprocess_build["wall_seconds"], build["wall_seconds"]), 2
        )
        if multiprocess_build
        else None,
        "share_of_build": build["share_of_build"],
    }


def measure_orchestration(work_dir: Path, settings: OrchestrationSettings) -> dict[str, Any]:
    """Both executors on the trivial chain, then the share of a real build outside its steps."""
    in_process = measure_in_process(settings.in_process_assets)
    multiprocess = measure_multiprocess(settings.multiprocess_assets, work_dir)
    source = settings.build_source.materialize(work_dir)
    request = default_build_request(source, work_dir / "orchestration-home")
    warmup = measure_build_share(request) if settings.warmup_build else None
    build = measure_build_share(request)
    multiprocess_build = (
        measure_build_share(request, Executor.MULTIPROCESS) if settings.multiprocess_build else None
    )
    return {
        "trivial_chain": {"in_process": in_process, "multiprocess": multiprocess},
        "multiprocess_over_in_process_per_asset": rounded(
            ratio(multiprocess["per_asset_ms"], in_process["per_asset_ms"]), 1
        ),
        "build_source": settings.build_source.describe(),
        "build_files": count_files(source),
        **_build_figures(build, warmup, multiprocess_build),
        "executor": "in_process",
        "executor_verdict": _executor_verdict(in_process, multiprocess, build, multiprocess_build),
    }
