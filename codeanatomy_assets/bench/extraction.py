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
from pathlib import Path
from typing import Any

from codeanatomy_assets.extract.analysis import ChunkRequest, parse_only
from codeanatomy_assets.extract.runner import CHUNKS_PER_WORKER, ExtractResult, extract_tree, map_chunks
from codeanatomy_assets.extract.tree import discover


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_extraction(source: Path, workers: int | None = None, *, repeat: int = 3) -> dict[str, Any]:
    """Time bare parsing and the extraction of ``source`` on ``workers`` processes (best of ``repeat``)."""
    count = workers or os.cpu_count() or 1
    tree = discover(Path(source))
    requests = [
        ChunkRequest(root=str(tree.root), files=files)
        for files in tree.chunks(count * CHUNKS_PER_WORKER if count > 1 else 1)
    ]

    def bare(collect_garbage: bool) -> tuple[float, float, int]:
        work = functools.partial(parse_only, collect_garbage=collect_garbage)
        started, own = time.perf_counter(), _own_cpu()
        results = [result for _, result in map_chunks(work, requests, workers=count)]
        cpu = sum(seconds for _, seconds in results) + _own_cpu() - own
        return time.perf_counter() - started, cpu, sum(parsed for parsed, _ in results)

    def extraction() -> tuple[float, float, ExtractResult]:
        started, own = time.perf_counter(), _own_cpu()
        result = extract_tree(Path(source), run_id="bench", workers=count)
        cpu = result.stats.worker_cpu_seconds + _own_cpu() - own
        return time.perf_counter() - started, cpu, result

    bare(collect_garbage=False)  # warm-up: the page cache and the pool's fork server
    bare_runs, gc_runs, extraction_runs = [], [], []
    for _ in range(repeat):
        bare_runs.append(bare(collect_garbage=False))
        extraction_runs.append(extraction())
        gc_runs.append(bare(collect_garbage=True))
    bare_seconds, bare_cpu = min(r[0] for r in bare_runs), min(r[1] for r in bare_runs)
    extraction_seconds, extraction_cpu = (
        min(r[0] for r in extraction_runs),
        min(r[1] for r in extraction_runs),
    )
    result = extraction_runs[-1][2]
    return {
        "source": str(tree.root),
        "workers": count,
        "chunks": len(requests),
        "repeat": repeat,
        "files": len(tree.files),
        "parsed_files": bare_runs[-1][2],
        "failed_files": result.stats.failed_files,
        "lines": result.stats.lines,
        "rows": dict(result.stats.rows),
        "bare_parse_seconds": round(bare_seconds, 3),
        "bare_parse_gc_seconds": round(min(r[0] for r in gc_runs), 3),
        "extraction_seconds": round(extraction_seconds, 3),
        "ratio": round(bare_seconds / extraction_seconds, 3),
        "bare_parse_cpu_seconds": round(bare_cpu, 3),
        "extraction_cpu_seconds": round(extraction_cpu, 3),
        "cpu_ratio": round(bare_cpu / extraction_cpu, 3),
    }
