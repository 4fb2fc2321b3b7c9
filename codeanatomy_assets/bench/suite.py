"""``codeanatomy bench``: every case, one JSON document, and the goals checked against it.

The document::

    {"commit": <git sha of HEAD or null>, "machine": {...}, "quick": bool, "settings": {...},
     "overhead": {...}, "provider_modes": {...}, "log_health": {...}, "orchestration": {...},
     "extraction": {...}, "report_scaling": {...}, "engines": {...}, "goals": {...}, "seconds": float}

A case that fails keeps its key, with ``error`` (``error.type``, message) in place of its figures; the
other cases still run. Quick mode runs the same cases on smaller inputs with fewer repetitions.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.case_names import CASES
from codeanatomy_assets.bench.engines.case import (
    GOAL_CAPTURE,
    GOAL_PRODUCT_GEOMEAN,
    GOAL_PRODUCT_MAX,
    EngineSettings,
    measure_engines,
)
from codeanatomy_assets.bench.engines.names import ENGINES
from codeanatomy_assets.bench.extraction_case import ExtractionSettings, measure_extraction_case
from codeanatomy_assets.bench.harness import (
    DEFAULT_CACHE_DIR,
    git_commit,
    load_average,
    machine_info,
    run_case,
)
from codeanatomy_assets.bench.incremental import (
    GOAL_NO_CHANGE,
    GOAL_ONE_FILE,
    IncrementalSettings,
    measure_incremental,
)
from codeanatomy_assets.bench.log_health import LogHealthSettings, measure_log_health
from codeanatomy_assets.bench.orchestration import OrchestrationSettings, measure_orchestration
from codeanatomy_assets.bench.overhead import OverheadSettings, measure_overhead
from codeanatomy_assets.bench.provider_modes import (
    BASELINE,
    MODES,
    ProviderModeSettings,
    measure_provider_modes_isolated,
)
from codeanatomy_assets.bench.report_scaling import ReportScalingSettings, measure_report_scaling
from codeanatomy_assets.bench.sources import MEDIUM_PACKAGES, QUICK_PACKAGES, TINY_PACKAGES, SourceSelection


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchSettings:
    """The settings of every case."""

    quick: bool
    cache_dir: Path
    overhead: OverheadSettings
    provider_modes: ProviderModeSettings
    log_health: LogHealthSettings
    orchestration: OrchestrationSettings
    extraction: ExtractionSettings
    report_scaling: ReportScalingSettings
    engines: EngineSettings
    incremental: IncrementalSettings

    @classmethod
    def full(cls, cache_dir: Path = DEFAULT_CACHE_DIR) -> BenchSettings:
        """Whole stdlib builds, TPC-H scale 1, 10 to 10,000 commits, 1 to 1,000 runs."""
        cache = cache_dir.expanduser()
        return cls(
            quick=False,
            cache_dir=cache,
            overhead=OverheadSettings(),
            provider_modes=ProviderModeSettings(cache_dir=str(cache)),
            log_health=LogHealthSettings(),
            orchestration=OrchestrationSettings(),
            extraction=ExtractionSettings(),
            report_scaling=ReportScalingSettings(),
            engines=EngineSettings(cache_dir=str(cache)),
            incremental=IncrementalSettings(),
        )

    @classmethod
    def quick_mode(cls, cache_dir: Path = DEFAULT_CACHE_DIR) -> BenchSettings:
        """The same cases in 3-4 minutes on 2 cores: small trees, scale 0.1, fewer repetitions."""
        cache = cache_dir.expanduser()
        small = SourceSelection.subset(QUICK_PACKAGES)
        return cls(
            quick=True,
            cache_dir=cache,
            overhead=OverheadSettings.quick(small),
            provider_modes=ProviderModeSettings.quick(cache),
            log_health=LogHealthSettings.quick(),
            orchestration=OrchestrationSettings.quick(small),
            extraction=ExtractionSettings.quick(SourceSelection.subset(MEDIUM_PACKAGES)),
            report_scaling=ReportScalingSettings.quick(),
            engines=EngineSettings.quick(cache),
            incremental=IncrementalSettings.quick(),
        )

    @classmethod
    def tiny(cls, cache_dir: Path) -> BenchSettings:
        """Seconds, not minutes: for tests of the harness (the figures mean little)."""
        tiny = SourceSelection.subset(TINY_PACKAGES)
        return cls(
            quick=True,
            cache_dir=cache_dir,
            overhead=OverheadSettings.tiny(tiny),
            provider_modes=ProviderModeSettings.tiny(cache_dir),
            log_health=LogHealthSettings.tiny(),
            orchestration=OrchestrationSettings.tiny(tiny),
            extraction=ExtractionSettings(source=tiny, workers=1, repeat=1),
            report_scaling=ReportScalingSettings.tiny(),
            engines=EngineSettings.tiny(cache_dir),
            incremental=IncrementalSettings(source=tiny, rounds=1),
        )

    def to_row(self) -> dict[str, Any]:
        """JSON-ready settings (recorded in the document; paths as text)."""
        return json.loads(json.dumps(asdict(self), default=str))


def _runners(settings: BenchSettings, work_dir: Path) -> dict[str, Callable[[], Mapping[str, Any]]]:
    return {
        "overhead": lambda: measure_overhead(work_dir, settings.overhead),
        "provider_modes": lambda: measure_provider_modes_isolated(settings.provider_modes, work_dir),
        "log_health": lambda: measure_log_health(work_dir, settings.log_health),
        "orchestration": lambda: measure_orchestration(work_dir, settings.orchestration),
        "extraction": lambda: measure_extraction_case(work_dir, settings.extraction),
        "report_scaling": lambda: measure_report_scaling(work_dir, settings.report_scaling),
        "engines": lambda: measure_engines(settings.engines, work_dir),
        "incremental": lambda: measure_incremental(work_dir, settings.incremental),
    }


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_cases(
    settings: BenchSettings, cases: Sequence[str], folder: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Each case's JSON object (its figures, or its error), in order, with progress lines around each."""
    runners = _runners(settings, folder)
    bodies: dict[str, Any] = {}
    for name in cases:
        progress(f"bench: {name} ...")
        outcome = run_case(name, runners[name])
        bodies[name] = outcome.to_row()
        status = "failed: " + outcome.error["message"][:200] if outcome.error else "ok"
        progress(f"bench: {name} {status} ({outcome.seconds:.1f} s)")
    return bodies


def run_benchmark(
    settings: BenchSettings,
    *,
    cases: Sequence[str] = CASES,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = _stderr,
) -> dict[str, Any]:
    """Run ``cases`` in order under a temporary work directory (removed afterwards); the document."""
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise ValueError(f"unknown benchmark case(s) {unknown}; expected some of {list(CASES)}")
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="codeanatomy-bench-", dir=work_dir))
    document: dict[str, Any] = {
        "commit": git_commit(),
        "machine": machine_info(),
        "quick": settings.quick,
        "settings": settings.to_row(),
    }
    try:
        document.update(_run_cases(settings, cases, folder, progress))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    document["machine"]["load_average_at_end"] = load_average()
    document["goals"] = evaluate_goals(document)
    document["seconds"] = round(time.perf_counter() - started, 1)
    return document


# ------------------------------------------------------------------------------------------- goals


def _goal(target: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met}


def _get(document: Mapping[str, Any], case: str, key: str) -> Any:
    body = document.get(case)
    return body.get(key) if isinstance(body, Mapping) else None


def _at_most(measured: float | None, limit: float) -> bool | None:
    return None if measured is None else measured <= limit


def _build_goals(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The goals of the build itself: capture overhead, orchestration share, extraction, log and report."""
    share = _get(document, "orchestration", "share_of_build")
    parse = _get(document, "extraction", "ratio_to_parse")
    log_growth = (_get(document, "log_health", "growth_largest_over_smallest") or {}).get(
        "log_health_checkpoint"
    )
    return {
        "overhead": _goal(
            "<= 1.05x (plan and registration asset bodies, on/off)",
            _get(document, "overhead", "ratio"),
            _get(document, "overhead", "goal_met"),
        ),
        "orchestration": _goal("< 10% of build wall time", share, None if share is None else share < 0.10),
        "extraction": _goal(">= 0.7x bare parse", parse, None if parse is None else parse >= 0.7),
        "log_health": _goal(
            "flat in total history (checkpointed: largest/smallest <= 1.5)",
            log_growth,
            _get(document, "log_health", "flat_in_history"),
        ),
        "report": _goal(
            "flat in total history (largest/smallest store <= 1.5)",
            _get(document, "report_scaling", "report_growth_largest_over_smallest"),
            _get(document, "report_scaling", "flat_in_history"),
        ),
    }


def _incremental_goals(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Incremental rebuilds against full ones (one file changed; nothing changed)."""
    one_file = _get(document, "incremental", "one_file_over_full")
    no_change = _get(document, "incremental", "no_change_over_full")
    return {
        "incremental_one_file": _goal(
            f"<= {GOAL_ONE_FILE}x a full build (one file changed)",
            one_file,
            _at_most(one_file, GOAL_ONE_FILE),
        ),
        "incremental_no_change": _goal(
            f"<= {GOAL_NO_CHANGE}x a full build (nothing changed)",
            no_change,
            _at_most(no_change, GOAL_NO_CHANGE),
        ),
    }


def _engine_goals(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The goals of the engines case: the product against native, the capture cost, equal results."""
    product = _get(document, "engines", "product_geomean_ratio_to_native")
    product_max = _get(document, "engines", "product_max_ratio_to_native")
    capture = _get(document, "engines", "capture_over_no_capture")
    return {
        "engines_product_build": _goal(
            f"<= {GOAL_PRODUCT_GEOMEAN}x native geomean (sum of plan phases, full capture), "
            f"no query > {GOAL_PRODUCT_MAX}x",
            {"geomean": product, "max": product_max},
            None
            if product is None or product_max is None
            else product <= GOAL_PRODUCT_GEOMEAN and product_max <= GOAL_PRODUCT_MAX,
        ),
        "engines_capture_cost": _goal(
            f"<= {GOAL_CAPTURE}x (capture on / --no-capture, geomean of plan phase sums)",
            capture,
            _at_most(capture, GOAL_CAPTURE),
        ),
        "engines_results": _goal(
            "every engine's row counts and row multisets (and the product's Delta outputs) equal native",
            _get(document, "engines", "result_problems"),
            _get(document, "engines", "results_equal_native"),
        ),
    }


def evaluate_goals(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal of the benchmark issue: the measured value and whether it is met (None: not measured)."""
    return {**_build_goals(document), **_incremental_goals(document), **_engine_goals(document)}


# ---------------------------------------------------------------------------------------- headline


def _provider_mode_lines(document: Mapping[str, Any]) -> list[str]:
    modes = document.get("provider_modes") or {}
    lines = []
    for mode in (m for m in MODES if m != BASELINE):
        entry = modes.get(mode)
        if isinstance(entry, Mapping):
            figure = entry.get("geomean_ratio_to_baseline")
            lines.append(f"provider_modes.{mode}.geomean_ratio_to_{BASELINE} = {figure}")
    return lines


def _engine_lines(document: Mapping[str, Any]) -> list[str]:
    summaries = (document.get("engines") or {}).get("engines") or {}
    lines = []
    for engine in ENGINES:
        entry = summaries.get(engine)
        if not isinstance(entry, Mapping):
            continue
        lines.append(
            f"engines.{engine}.geomean_ratio_to_native = {entry.get('geomean_ratio_to_native')}"
            f"  (total {entry.get('total_ms')} ms, failed {len(entry.get('queries_failed') or [])})"
        )
        if "step_geomean_ratio_to_native" in entry:
            lines.append(
                f"engines.{engine}.step_geomean_ratio_to_native = {entry['step_geomean_ratio_to_native']}"
                f"  (plan step wall time, step total {entry.get('step_total_ms')} ms)"
            )
    return lines


def _failure_lines(document: Mapping[str, Any]) -> list[str]:
    bodies = ((name, document.get(name)) for name in CASES)
    return [
        f"{name}: FAILED {body['error'].get('error.type')}: {body['error'].get('message')[:160]}"
        for name, body in bodies
        if isinstance(body, Mapping) and "error" in body
    ]


_VERDICTS: Final = {True: "met", False: "NOT met", None: "not measured"}


def _goal_lines(document: Mapping[str, Any]) -> list[str]:
    return [
        f"goal {name}: {goal['target']}: measured {goal['measured']} -> {_VERDICTS[goal['met']]}"
        for name, goal in (document.get("goals") or {}).items()
    ]


def headline(document: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal: the headline figure of every case and the goals."""
    return [
        f"commit {document.get('commit')}  quick={document.get('quick')}  {document.get('seconds')} s",
        *_provider_mode_lines(document),
        *_engine_lines(document),
        *_failure_lines(document),
        *_goal_lines(document),
    ]
