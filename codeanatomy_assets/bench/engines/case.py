"""The engines case: its settings, the interleaved rounds (engines pass and product builds), the figures.

See :mod:`codeanatomy_assets.bench.engines` for what is timed and checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.engines.ablation import measure_ablation
from codeanatomy_assets.bench.engines.child import RoundJob, TpchQuery, run_child
from codeanatomy_assets.bench.engines.names import (
    NATIVE,
    NATIVE_WARM,
    PEERS,
    PRODUCT,
    PRODUCT_VARIANTS,
    JobKind,
    query_tables,
)
from codeanatomy_assets.bench.engines.native_sources import NativeSource, native_sources
from codeanatomy_assets.bench.engines.product import (
    BuildRecord,
    PlanOrder,
    probe_plan_order,
    record_build,
    run_product_build,
    write_spec,
)
from codeanatomy_assets.bench.engines.table import (
    Samples,
    capture_over_no_capture,
    result_problems,
    summarize,
)
from codeanatomy_assets.bench.harness import (
    error_record,
    failure,
    git_commit,
    load_average,
    machine_info,
    round_order,
    uncommitted_files,
)
from codeanatomy_assets.bench.tpch import TpchSettings, load_query

GOAL_PRODUCT_GEOMEAN: Final = 1.10
GOAL_PRODUCT_MAX: Final = 1.5
GOAL_CAPTURE: Final = 1.05


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings(TpchSettings):
    """The data and queries (:class:`TpchSettings`), rounds, peers, and whether the product builds and the
    ablation run."""

    rounds: int = 6
    peers: tuple[str, ...] = PEERS
    product: bool = True
    ablation: bool = True

    @classmethod
    def quick(cls, cache_dir: Path) -> EngineSettings:
        """Scale 0.1 (12 files per table, the provider-modes data), 3 rounds, no ablation."""
        return cls(scale=0.1, files_per_table=12, rounds=3, ablation=False, cache_dir=str(cache_dir))

    @classmethod
    def tiny(cls, cache_dir: Path) -> EngineSettings:
        """For tests: scale 0.01, two queries, one round, the ablation on (its shape is tested)."""
        return cls(scale=0.01, files_per_table=3, rounds=1, queries=("q1", "q6"), cache_dir=str(cache_dir))

    @property
    def engines(self) -> list[str]:
        """The engines run in child processes: ``native`` (first: round 0 checks the others against its
        results), ``native_warm`` and the peers."""
        return [NATIVE, NATIVE_WARM, *self.peers]

    @property
    def product_variants(self) -> list[str]:
        """The product builds of every round (none when the product is off)."""
        return list(PRODUCT_VARIANTS) if self.product else []


# ------------------------------------------------------------------------------------------- set-up


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setup:
    """What every round reads: the data, the native folders, the queries, the spec, the kept results."""

    folder: Path
    uris: dict[str, str]
    generated: bool
    sources: dict[str, NativeSource]
    queries: dict[str, TpchQuery]
    """In the order the product's build runs its plans (:attr:`order`), which every engine follows."""
    order: PlanOrder
    spec: Path
    results: Path


def _set_up(settings: EngineSettings, work_dir: Path) -> _Setup:
    """The data (generated on first use), a work folder, native sources, the spec, the results folder."""
    uris, generated = settings.cached_data()
    folder = Path(tempfile.mkdtemp(prefix="engines-", dir=work_dir))
    sources = native_sources(uris, folder / "links")
    spec = write_spec(folder / "spec", uris, settings.queries)
    order = probe_plan_order(spec, folder / "probe-home", settings.queries)
    sqls = {query: load_query(query) for query in order.queries}
    queries = {query: TpchQuery(sql=sql, tables=query_tables(sql)) for query, sql in sqls.items()}
    results = folder / "native_results"
    results.mkdir()
    return _Setup(
        folder=folder,
        uris=uris,
        generated=generated,
        sources=sources,
        queries=queries,
        order=order,
        spec=spec,
        results=results,
    )


# ------------------------------------------------------------------------------------------- rounds


@dataclass(slots=True, kw_only=True)
class _Rounds:
    """What the rounds gathered: samples, product builds, failed steps, engines failing their warm-up."""

    samples: Samples = field(default_factory=Samples)
    builds: list[BuildRecord] = field(default_factory=list)
    round_errors: list[dict[str, Any]] = field(default_factory=list)
    warmup_errors: dict[str, Any] = field(default_factory=dict)


def _engine_step(setup: _Setup, index: int, engine: str, rounds: _Rounds) -> None:
    """``engine`` over every query in a child process of its own (round ``index``); a crash is a round
    error."""
    job = RoundJob.over(
        setup.sources,
        kind=JobKind.ENGINE,
        round_index=index,
        runner=engine,
        queries=setup.queries,
        results_dir=str(setup.results),
    )
    try:
        result = run_child(job, setup.folder)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        rounds.round_errors.append({"round": index, "step": engine, **error_record(exc)})
        return
    rounds.warmup_errors.update(result["warmup_errors"])
    rounds.samples.add_round(result)


def _build_step(settings: EngineSettings, setup: _Setup, index: int, variant: str, rounds: _Rounds) -> None:
    """One product build of round ``index``; round 0 checks its outputs against ``native``'s results."""
    home = setup.folder / f"home-{variant}"
    build = run_product_build(setup.spec, home, variant=variant, round_index=index)
    rounds.builds.append(build)
    results_dir = setup.results if index == 0 else None
    record_build(rounds.samples, build, home=home, queries=settings.queries, results_dir=results_dir)


def _run_rounds(settings: EngineSettings, setup: _Setup) -> _Rounds:
    """``rounds`` rounds of every engine and product build, each in a process of its own, in
    :func:`~codeanatomy_assets.bench.harness.round_order` (``native`` first in round 0)."""
    rounds = _Rounds()
    steps = [*settings.engines, *settings.product_variants]
    for index in range(settings.rounds):
        for step in round_order(steps, index):
            os.sync()  # untimed: the previous step's writes reach the disk before this step starts
            if step in PRODUCT_VARIANTS:
                _build_step(settings, setup, index, step, rounds)
            else:
                _engine_step(setup, index, step, rounds)
    return rounds


# ------------------------------------------------------------------------------------------ figures


@dataclass(frozen=True, slots=True)
class _StartState:
    """The machine and checkout when the case started."""

    load_average: list[float] | None
    commit: str | None
    uncommitted: list[str] | None


def _provenance(settings: EngineSettings, setup: _Setup, start: _StartState) -> dict[str, Any]:
    """What the figures were measured on: settings, data, commit, machine, native sources, spec."""
    return {
        "scale": settings.scale,
        "files_per_table": settings.files_per_table,
        "rounds": settings.rounds,
        "queries_run": list(settings.queries),
        "query_order": setup.order.to_row(),
        "data": str(Path(setup.uris["lineitem"]).parent),
        "data_generated_now": setup.generated,
        "commit": start.commit,
        "commit_at_end": git_commit(),
        "uncommitted_files_at_start": start.uncommitted,
        "machine": machine_info(),
        "load_average_at_start": start.load_average,
        "native_sources": {name: s.to_row() for name, s in setup.sources.items()},
        "spec": setup.spec.read_text("utf-8"),
    }


def _results(rounds: _Rounds, summary: dict[str, Any], ablation: dict[str, Any] | None) -> dict[str, Any]:
    """The figures: builds, failures, the summary, the product's headline ratios, the result check."""
    problems = result_problems(summary, rounds.builds, ablation)
    product = summary["engines"].get(PRODUCT) or {}
    return {
        "builds": [build.to_row() for build in rounds.builds],
        "round_errors": rounds.round_errors,
        "warmup_errors": rounds.warmup_errors,
        **summary,
        "product_geomean_ratio_to_native": product.get("geomean_ratio_to_native"),
        "product_max_ratio_to_native": (product.get("max_ratio_to_native") or {}).get("ratio"),
        "capture_over_no_capture": capture_over_no_capture(summary["per_query"]),
        "results_equal_native": not problems,
        "result_problems": problems,
        "ablation": ablation,
        "load_average_at_end": load_average(),
    }


def _case_error(figures: dict[str, Any]) -> dict[str, str] | None:
    """The case's error when a result is wrong or a round step failed (``None``: neither)."""
    messages = figures["result_problems"] + [
        f"round {e['round']} {e['step']}: {e['message']}" for e in figures["round_errors"]
    ]
    return failure("EnginesResultError", "; ".join(messages)[:1000]) if messages else None


def measure_engines(settings: EngineSettings, work_dir: Path) -> dict[str, Any]:
    """The whole case: data, native sources, ``rounds`` interleaved rounds, the ablation, the summary."""
    start = _StartState(load_average(), git_commit(), uncommitted_files())
    setup = _set_up(settings, work_dir)
    rounds = _run_rounds(settings, setup)
    summary = summarize(
        rounds.samples.by_query,
        [*settings.engines, *settings.product_variants],
        rounds.builds,
    )
    ablation = (
        measure_ablation(settings.rounds, setup.queries, setup.sources, setup.folder)
        if settings.ablation
        else None
    )
    figures = {**_provenance(settings, setup, start), **_results(rounds, summary, ablation)}
    shutil.rmtree(setup.folder, ignore_errors=True)
    error = _case_error(figures)
    if error is not None:
        figures["error"] = error
    return figures
