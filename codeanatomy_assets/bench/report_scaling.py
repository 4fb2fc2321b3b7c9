"""The time to render one run's report versus the number of runs in the diagnostics store.

Stores of 1, 100 and 1,000 runs are filled by
:func:`~codeanatomy_assets.bench.store_scaling.measure_store_scaling` (one run envelope and
``events_per_run`` events per run, one flush per run, as builds fill it; it also times the store's own
reads). Then :func:`~codeanatomy_assets.report.build_report` renders the run in the middle of each store
``repeats`` times, each time from a new :class:`DeltaDiagnosticsStore` as ``codeanatomy report`` does
(cold: the Delta logs are loaded from their last checkpoint). A report whose cost stays flat as runs
accumulate reads only its own run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.harness import median, ratio, rounded, timed
from codeanatomy_assets.bench.store_scaling import measure_store_scaling
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.report.run_report import build_report

FLAT_LIMIT: Final = 1.5
"""Report time at the largest store at most this times the smallest counts as flat."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportScalingSettings:
    """Store sizes (runs) and repetitions."""

    runs: tuple[int, ...] = (1, 100, 1_000)
    events_per_run: int = 50
    repeats: int = 5

    @classmethod
    def quick(cls) -> ReportScalingSettings:
        """1 and 100 runs."""
        return cls(runs=(1, 100), repeats=3)

    @classmethod
    def tiny(cls) -> ReportScalingSettings:
        """For tests."""
        return cls(runs=(1, 3), events_per_run=5, repeats=1)


def _report_ms(store_root: str, run_id: str, repeats: int) -> tuple[float, int]:
    samples = []
    events = 0
    for _ in range(repeats):
        seconds, (data, _markdown, _gates) = timed(
            lambda: build_report(DeltaDiagnosticsStore(store_root), run_id)
        )
        samples.append(seconds)
        events = len(data["_events"])
    return median(samples) * 1000, events


def measure_report_scaling(work_dir: Path, settings: ReportScalingSettings) -> dict[str, Any]:
    """Fill one store per size under ``work_dir``; time the store reads and the report of one run."""
    scaling = measure_store_scaling(
        work_dir / "stores",
        runs=settings.runs,
        events_per_run=settings.events_per_run,
        repeats=settings.repeats,
    )
    rows = []
    for row in scaling["results"]:
        report_ms, events = _report_ms(row["store"], row["target_run_id"], settings.repeats)
        rows.append({**row, "report_ms_median": rounded(report_ms), "report_events": events})
    growth = rounded(ratio(rows[-1]["report_ms_median"], rows[0]["report_ms_median"]), 2) if rows else None
    return {
        "runs": list(settings.runs),
        "events_per_run": settings.events_per_run,
        "repeats": settings.repeats,
        "results": [{k: v for k, v in row.items() if k != "store"} for row in rows],
        "report_growth_largest_over_smallest": growth,
        "flat_in_history": None if growth is None else growth <= FLAT_LIMIT,
    }
