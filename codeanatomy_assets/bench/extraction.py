"""Extraction throughput against its floor: a bare ``ast.parse`` of the same files on the same pool.

The baseline reads and parses every file and keeps nothing, over the same chunks, process pool, start
method and worker setup as :func:`~codeanatomy_assets.extract.extract_tree`; the extraction is the whole
``extract_tree`` call (walk of the tree, decoding, hashing, analysis, Arrow tables, stats).
``ratio`` is ``bare_parse_seconds / extraction_seconds`` (1.0 would mean the analysis is free; the goal is
>= 0.7). Workers run with the cyclic garbage collector off in both cases (syntax trees hold no cycles);
``bare_parse_gc_seconds`` is the baseline with the collector on, as a naive parse loop runs.

Wall times on a shared machine move with its load, so the runs alternate (bare, extraction, bare, ...)
and the best of each counts; ``cpu_ratio`` compares CPU seconds (workers plus this process), which other
processes on the machine barely move.
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from codeanatomy_assets.extract.analysis import ChunkRequest, parse_only
from codeanatomy_assets.extract.runner import CHUNKS_PER_WORKER, ExtractResult, extract_tree, map_chunks
from codeanatomy_assets.extract.tree import discover

_T = TypeVar("_T")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class _Timing:
    """One run's wall seconds and CPU seconds (workers plus this process)."""

    seconds: float
    cpu: float


def _timed_cpu(work: Callable[[], _T], worker_cpu: Callable[[_T], float]) -> tuple[_Timing, _T]:
    """Run ``work``: its wall time, and its CPU time (``worker_cpu`` of its result plus this process's)."""
    started, own = time.perf_counter(), _own_cpu()
    result = work()
    cpu = worker_cpu(result) + _own_cpu() - own
    return _Timing(time.perf_counter() - started, cpu), result


def _bare_parse(requests: list[ChunkRequest], workers: int, *, collect_garbage: bool) -> tuple[_Timing, int]:
    """Parse every chunk on the pool, keeping nothing: the timing and the number of files parsed."""
    work = functools.partial(parse_only, collect_garbage=collect_garbage)
    timing, results = _timed_cpu(
        lambda: [result for _, result in map_chunks(work, requests, workers=workers)],
        lambda results: sum(seconds for _, seconds in results),
    )
    return timing, sum(parsed for parsed, _ in results)


def _extraction(source: Path, workers: int) -> tuple[_Timing, ExtractResult]:
    """The whole ``extract_tree`` of ``source``: the timing and its result."""
    return _timed_cpu(
        lambda: extract_tree(source, run_id="bench", workers=workers),
        lambda result: result.stats.worker_cpu_seconds,
    )


def _best(timings: Iterable[_Timing]) -> _Timing:
    """The least wall time and the least CPU time of the runs (each on its own)."""
    runs = list(timings)
    return _Timing(min(t.seconds for t in runs), min(t.cpu for t in runs))


def _timing_figures(bare: _Timing, extraction: _Timing, bare_gc_seconds: float) -> dict[str, float]:
    """The best times of both sides and their ratios (wall and CPU)."""
    return {
        "bare_parse_seconds": round(bare.seconds, 3),
        "bare_parse_gc_seconds": round(bare_gc_seconds, 3),
        "extraction_seconds": round(extraction.seconds, 3),
        "ratio": round(bare.seconds / extraction.seconds, 3),
        "bare_parse_cpu_seconds": round(bare.cpu, 3),
        "extraction_cpu_seconds": round(extraction.cpu, 3),
        "cpu_ratio": round(bare.cpu / extraction.cpu, 3),
    }


def measure_extraction(source: Path, workers: int | None = None, *, repeat: int = 3) -> dict[str, Any]:
    """Time bare parsing and the extraction of ``source`` on ``workers`` processes (best of ``repeat``)."""
    count = workers or os.cpu_count() or 1
    tree = discover(Path(source))
    requests = [
        ChunkRequest(root=str(tree.root), files=files)
        for files in tree.chunks(count * CHUNKS_PER_WORKER if count > 1 else 1)
    ]
    _bare_parse(requests, count, collect_garbage=False)  # warm-up: the page cache and the pool's fork server
    bare_runs, gc_runs, extraction_runs = [], [], []
    for _ in range(repeat):
        bare_runs.append(_bare_parse(requests, count, collect_garbage=False))
        extraction_runs.append(_extraction(Path(source), count))
        gc_runs.append(_bare_parse(requests, count, collect_garbage=True)[0])
    bare, extraction = _best(t for t, _ in bare_runs), _best(t for t, _ in extraction_runs)
    stats = extraction_runs[-1][1].stats
    return {
        "source": str(tree.root),
        "workers": count,
        "chunks": len(requests),
        "repeat": repeat,
        "files": len(tree.files),
        "parsed_files": bare_runs[-1][1],
        "failed_files": stats.failed_files,
        "lines": stats.lines,
        "rows": dict(stats.rows),
        **_timing_figures(bare, extraction, min(t.seconds for t in gc_runs)),
    }
