"""How the cost of reading one run from the diagnostics store grows with the number of runs stored.

For each size, a fresh store is filled the way builds fill it (one run envelope, ``events_per_run``
events, one flush per run), then one run in the middle is read ``repeats`` times:

- ``cold``: a new :class:`DeltaDiagnosticsStore` per read, as ``codeanatomy report`` starts (loads the
  Delta log from its last checkpoint, lists the pruned files, reads them);
- ``warm``: the same store instance (the log is already loaded; only new commits are applied).

Pruning is what should keep the read flat: ``files_read`` is the number of files the read opened, out
of ``files_total``; ``read_all_runs_cold_ms`` (one sample) is what a read without pruning would cost.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codeanatomy_assets.bench.harness import timed
from codeanatomy_assets.diagnostics.event_names import BENCH_EVENT
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import tracked_run
from codeanatomy_assets.diagnostics.schemas import DIAGNOSTICS_EVENTS_TABLE
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity


def _fill(store: DeltaDiagnosticsStore, runs: int, events_per_run: int) -> list[str]:
    run_ids: list[str] = []
    for n in range(runs):
        with tracked_run(label=f"bench-{n}", sink=store) as run:
            emit(
                store,
                *[
                    DiagnosticEvent(
                        name=BENCH_EVENT,
                        run_id=run.run_id,
                        severity=Severity.INFO,
                        category=Category.EXTRACT,
                        payload={"i": i, "path": f"pkg/module_{i}.py"},
                    )
                    for i in range(events_per_run)
                ],
            )
        store.flush()
        run_ids.append(run.run_id)
    return run_ids


def _median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _seconds_each(work: Callable[[], object], repeats: int) -> list[float]:
    """The wall seconds of ``repeats`` calls of ``work``."""
    samples: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return samples


def _log_files(store: DeltaDiagnosticsStore) -> dict[str, int]:
    """The events table's log: JSON commits and checkpoints."""
    log = Path(store.table_uri(DIAGNOSTICS_EVENTS_TABLE)) / "_delta_log"
    return {
        "log_json_files": len(list(log.glob("*.json"))),
        "log_checkpoints": len(list(log.glob("*.checkpoint.parquet"))),
    }


def _measure_one(root: Path, runs: int, events_per_run: int, repeats: int) -> dict[str, Any]:
    store_root = tempfile.mkdtemp(prefix=f"runs_{runs}_", dir=root)
    fill_seconds, run_ids = timed(lambda: _fill(DeltaDiagnosticsStore(store_root), runs, events_per_run))
    target = run_ids[len(run_ids) // 2]
    cold = _seconds_each(lambda: DeltaDiagnosticsStore(store_root).read_events(target), repeats)
    warm_store = DeltaDiagnosticsStore(store_root)
    events = warm_store.read_events(target)  # untimed: warms the store
    warm = _seconds_each(lambda: warm_store.read_events(target), repeats)
    latest = _seconds_each(lambda: DeltaDiagnosticsStore(store_root).latest_run_id(), repeats)
    read_all_seconds, every_event = timed(lambda: DeltaDiagnosticsStore(store_root).read_events())
    return {
        "runs": runs,
        "target_run_id": target,
        "events_read": len(events),
        "fill_seconds": round(fill_seconds, 2),
        "files_total": len(warm_store.candidate_files(DIAGNOSTICS_EVENTS_TABLE)),
        "files_read": len(warm_store.candidate_files(DIAGNOSTICS_EVENTS_TABLE, target)),
        **_log_files(warm_store),
        "read_one_run_cold_ms_median": _median_ms(cold),
        "read_one_run_warm_ms_median": _median_ms(warm),
        "latest_run_id_cold_ms_median": _median_ms(latest),
        "read_all_runs_cold_ms": round(read_all_seconds * 1000, 2),
        "events_total": len(every_event),
        "store": store_root,
    }


def measure_store_scaling(
    root: str | os.PathLike[str],
    runs: Sequence[int] = (1, 100, 1000),
    events_per_run: int = 50,
    repeats: int = 3,
) -> dict[str, Any]:
    """Fill one fresh store per size in ``runs`` under ``root`` and time reads of one run (medians, ms).

    Returns ``{"events_per_run", "repeats", "results": [one dict per size]}``; each store is left in
    place under ``root`` (its path is in the result, with the run read, ``target_run_id``) for inspection.
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    return {
        "events_per_run": events_per_run,
        "repeats": repeats,
        "results": [_measure_one(base, count, events_per_run, repeats) for count in runs],
    }
