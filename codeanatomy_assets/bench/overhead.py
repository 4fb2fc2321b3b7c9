"""The cost of diagnostics: the same build with every capture on versus capture off.

Both variants are :func:`codeanatomy_assets.runner.run_build` of the built-in spec over the same source
tree, in this process, with the in-process executor, each in its own project home (so both stores grow
alike). ``capture=False`` gives every plan :meth:`CompileOptions.off` (no hashes, metrics, scan units,
artifacts, Substrait, graphviz, unparsed SQL, separate optimizer pass); everything else (the step
events, the durable store, log-health reads and read probes at registration) runs in both, as it does
in a real build. After one warm-up build per variant, ``rounds`` rounds run both variants in rotated
order.

What is timed, per build:

- ``plan_and_registration`` (the headline, ``ratio`` = median over rounds of on / off): the
  ``asset <key>`` spans of the dataset-registration and plan assets — the asset bodies, the part of a
  build that capture touches: registration (log health, probes), ``execute_plan``, writing the result
  and flushing the step's diagnostics to the store; ``plans`` and ``datasets`` split it;
- ``plan_and_registration_steps`` (``steps_ratio``): the same assets' Dagster step durations
  (``STEP_START`` to ``STEP_SUCCESS`` in the run's event log), which add Dagster's work inside the step
  (storing metadata, check results and events in the instance's SQLite): I/O-bound, and much noisier on
  a shared machine;
- ``build`` (``build_ratio``): the wall time of the whole ``run_build`` (extraction dominates it and is
  identical in both variants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.harness import median, ratio, rotated, rounded
from codeanatomy_assets.bench.orchestration import default_build_request, timed_build
from codeanatomy_assets.bench.sources import SourceSelection, count_files
from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET
from codeanatomy_assets.runner import BuildRequest

VARIANTS: Final = ("capture_on", "capture_off")
PARTS: Final = (
    "plans",
    "datasets",
    "plan_and_registration",
    "plan_and_registration_steps",
    "extract",
    "report",
    "build",
)
GOAL: Final = 1.05


@dataclass(frozen=True, slots=True, kw_only=True)
class OverheadSettings:
    """The tree and the number of interleaved rounds."""

    source: SourceSelection = field(default_factory=SourceSelection.whole_stdlib)
    rounds: int = 5
    warmup: bool = True
    """One untimed build per variant first (Dagster instance creation, page cache, imports)."""

    @classmethod
    def quick(cls, source: SourceSelection) -> OverheadSettings:
        """A small tree, two rounds."""
        return cls(source=source, rounds=2)

    @classmethod
    def tiny(cls, source: SourceSelection) -> OverheadSettings:
        """For tests."""
        return cls(source=source, rounds=1, warmup=False)


def _one_build(request: BuildRequest) -> dict[str, Any]:
    """One build: the seconds of each part (see the module docstring) and whether it succeeded."""
    build = timed_build(request)
    plans = [p.name for p in request.spec.plans]
    datasets = [d.name for d in request.spec.datasets]
    return {
        "success": build.outcome.success,
        "failed_steps": build.outcome.failed_steps,
        "plans": build.body_seconds(plans),
        "datasets": build.body_seconds(datasets),
        "plan_and_registration": build.body_seconds([*plans, *datasets]),
        "plan_and_registration_steps": build.timeline.step_seconds([*plans, *datasets]),
        "extract": build.timeline.step_seconds([EXTRACT_ASSET]),
        "report": build.timeline.step_seconds([REPORT_ASSET]),
        "build": build.wall_seconds,
    }


def _paired_ratios(runs: dict[str, list[dict[str, Any]]], part: str) -> list[float]:
    pairs = zip(runs["capture_on"], runs["capture_off"], strict=True)
    return [r for on, off in pairs if (r := ratio(on[part], off[part])) is not None]


def _summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {f"{part}_seconds_median": rounded(median(r[part] for r in runs)) for part in PARTS}


def _interleaved_runs(requests: Mapping[str, BuildRequest], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` rounds of one build per variant, in rotated order."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for index in range(rounds):
        for name in rotated(list(VARIANTS), index):
            runs[name].append(_one_build(requests[name]))
    return runs


def _failed_steps(
    warmup: Mapping[str, dict[str, Any]], runs: Mapping[str, list[dict[str, Any]]]
) -> list[str]:
    """``variant: step`` of every step that failed in any build, warm-ups included (sorted, once each)."""
    return sorted(
        {
            f"{name}: {step}"
            for name in VARIANTS
            for run in [*([warmup[name]] if name in warmup else []), *runs[name]]
            for step in run["failed_steps"]
        }
    )


def _ratio_figures(ratios: Mapping[str, list[float]]) -> dict[str, Any]:
    """The median ratio on / off of each part, and every paired ratio."""
    return {
        "ratio": rounded(median(ratios["plan_and_registration"])),
        "plans_ratio": rounded(median(ratios["plans"])),
        "datasets_ratio": rounded(median(ratios["datasets"])),
        "steps_ratio": rounded(median(ratios["plan_and_registration_steps"])),
        "build_ratio": rounded(median(ratios["build"])),
        "paired_ratios": {part: [rounded(r) for r in values] for part, values in ratios.items()},
    }


def measure_overhead(work_dir: Path, settings: OverheadSettings) -> dict[str, Any]:
    """Warm up both variants, then run ``rounds`` interleaved rounds; ratios on / off per part."""
    source = settings.source.materialize(work_dir)
    requests = {
        name: default_build_request(source, work_dir / f"overhead-{name}", capture=name == "capture_on")
        for name in VARIANTS
    }
    warmup = {name: _one_build(request) for name, request in requests.items() if settings.warmup}
    runs = _interleaved_runs(requests, settings.rounds)
    ratios = {part: _paired_ratios(runs, part) for part in PARTS}
    failures = _failed_steps(warmup, runs)
    return {
        "source": settings.source.describe(),
        "files": count_files(source),
        "rounds": settings.rounds,
        "measured": "median over rounds of (capture on / capture off) of the summed asset-body spans "
        "(asset <key>) of the dataset-registration and plan assets of run_build",
        **_ratio_figures(ratios),
        "variants": {name: _summary(runs[name]) for name in VARIANTS},
        "all_builds_succeeded": not failures,
        "failed_steps": failures,
        "goal": GOAL,
        "goal_met": None if failures else median(ratios["plan_and_registration"]) <= GOAL,
    }
