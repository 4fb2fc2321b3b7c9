"""Extraction of a whole tree: the files split in chunks over a process pool, then four Arrow tables.

>>> result = extract_tree(Path("codeanatomy_assets_tests/fixtures/sample_tree"), run_id="r1", workers=1)
>>> result.stats.files, result.stats.failed_files
(11, 2)

Workers get runs of consecutive files of similar total size (``CHUNKS_PER_WORKER`` per worker, so a big
file does not leave one core idle at the end) and send back plain column lists. The pool uses the
``forkserver`` start method where the platform has it: a fork of a process running threads (a Dagster
step, a DataFusion runtime) can deadlock; the fork server starts once per process with the worker code
preloaded, so a pool costs little more than with ``fork``. As with ``spawn``, workers re-import the main
module, so a script that calls :func:`extract_tree` with more than one worker needs the
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from codeanatomy_assets.diagnostics.event_names import (
    EXTRACT_COMPLETED,
    EXTRACT_DIR_UNREADABLE,
    EXTRACT_FILE_FAILED,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.extract.analysis import (
    DEFAULT_MAX_FILE_BYTES,
    ChunkColumns,
    ChunkRequest,
    ParseStatus,
    analyse_chunk,
    merge_chunks,
    worker_died,
)
from codeanatomy_assets.extract.tables import DATASET_NAMES, assemble, chunk_batches
from codeanatomy_assets.extract.tree import DEFAULT_EXCLUDED_DIRS, SourceTree, discover

CHUNKS_PER_WORKER: Final = 16
POOL_MIN_BYTES: Final = 1024 * 1024
"""Unless ``workers`` is given, less source than this is parsed in this process: starting the pool's workers
(about a second in a Dagster step) costs more than parsing it (an incremental rebuild of a few files)."""
# Imported once by the fork server, so each worker starts with the (stdlib-only) worker code loaded.
# Python 3.11 ignores "__main__" here (it never passes the main path), so each worker still re-imports
# the main module, as with "spawn": cheap for pytest or the CLI, about a second for a Dagster process.
_WORKER_MODULES: Final = ["codeanatomy_assets.extract.analysis"]

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractStats:
    """Counts and time of one extraction."""

    files: int
    ok_files: int
    failed_files: int
    lines: int
    """Lines of every file that could be read (parsed or not)."""
    bytes: int
    seconds: float
    """Wall time of the whole extraction: the walk, the pool, the tables."""
    worker_cpu_seconds: float
    """CPU time the workers spent (close to ``workers * seconds`` when no core sat idle)."""
    workers: int
    chunks: int
    rows: Mapping[str, int] = field(default_factory=dict)
    failures_by_status: Mapping[str, int] = field(default_factory=dict)
    unreadable_dirs: int = 0

    def to_row(self) -> dict[str, Any]:
        """The ``extract_completed_v1`` payload (and asset metadata)."""
        return {
            "files": self.files,
            "ok_files": self.ok_files,
            "failed_files": self.failed_files,
            "lines": self.lines,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "worker_cpu_seconds": round(self.worker_cpu_seconds, 3),
            "workers": self.workers,
            "chunks": self.chunks,
            "rows": dict(self.rows),
            "failures_by_status": dict(self.failures_by_status),
            "unreadable_dirs": self.unreadable_dirs,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractResult:
    """The four datasets of one tree (rows ordered by package, module, then position in the file)."""

    run_id: str
    source: str
    """The absolute root the paths of ``source_files`` are relative to."""
    source_files: pa.Table
    symbols: pa.Table
    imports: pa.Table
    calls: pa.Table
    stats: ExtractStats

    @property
    def tables(self) -> dict[str, pa.Table]:
        """The four tables by dataset name (``source_files``, ``symbols``, ``imports``, ``calls``)."""
        return {name: getattr(self, name) for name in DATASET_NAMES}


def extract_tree(
    source: Path,
    *,
    run_id: str,
    sink: DiagnosticsSink | None = None,
    workers: int | None = None,
    progress: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    exclude_dirs: frozenset[str] = DEFAULT_EXCLUDED_DIRS,
) -> ExtractResult:
    """Analyse every ``.py`` file under ``source`` into the four extract tables.

    ``workers`` processes (default ``os.cpu_count()``; 1 runs in this process) share the files. A file that
    cannot be read, decoded or parsed keeps its ``source_files`` row with its status and error, and emits
    ``extract_file_failed_v1`` (warn) on ``sink``; the run ends with one ``extract_completed_v1`` artifact.
    ``progress`` shows a progress bar on stderr. Raises :class:`~codeanatomy_assets.errors.SourceTreeError`
    when ``source`` is missing, not a directory, unreadable or holds no ``.py`` file.
    """
    tree = discover(Path(source).expanduser(), exclude_dirs=exclude_dirs)
    result = extract_files(
        tree, run_id=run_id, workers=workers, progress=progress, max_file_bytes=max_file_bytes
    )
    if sink is not None:
        emit(sink, *extract_events(result, tree))
    return result


def extract_files(
    tree: SourceTree,
    *,
    run_id: str,
    workers: int | None = None,
    progress: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> ExtractResult:
    """Analyse the files of ``tree`` (all of a discovered tree, or a part of it) into the four tables."""
    started = time.perf_counter()
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise ValueError(f"workers must be at least 1, got {count}")
    if workers is None and sum(tree.sizes) < POOL_MIN_BYTES:
        count = 1
    requests = [
        ChunkRequest(root=str(tree.root), files=files, max_file_bytes=max_file_bytes)
        for files in tree.chunks(count * CHUNKS_PER_WORKER if count > 1 else 1)
    ]
    tables, cpu_seconds = (
        _analyse_tree(requests, workers=count, progress=progress) if requests else (assemble([]), 0.0)
    )
    rows = {name: table.num_rows for name, table in tables.items()}
    stats = tree_stats(
        tree,
        tables["source_files"],
        rows,
        workers=count,
        chunks=len(requests),
        seconds=time.perf_counter() - started,
        cpu_seconds=cpu_seconds,
    )
    return ExtractResult(run_id=run_id, source=str(tree.root), stats=stats, **tables)


def extract_events(result: ExtractResult, tree: SourceTree) -> list[DiagnosticEvent]:
    """The events of an extraction: one warn per failed file and unreadable folder, then the summary."""
    return [
        *_file_failed_events(result),
        *_dir_unreadable_events(result.run_id, tree),
        _completed_event(result),
    ]


def _analyse_tree(
    requests: list[ChunkRequest], *, workers: int, progress: bool
) -> tuple[dict[str, pa.Table], float]:
    """The four tables of the chunks, and the CPU seconds the workers spent on them."""
    batches: list[dict[str, pa.RecordBatch]] = [{} for _ in requests]
    cpu_seconds = 0.0
    files = sum(len(request.files) for request in requests)
    bar = tqdm(total=files, unit="file", desc="extract", file=sys.stderr, disable=not progress)
    with (
        bar,
        _gc_paused(),  # the results are large and acyclic: collecting while they arrive only costs time
    ):
        for index, columns in analyse_chunks(requests, workers=workers):
            batches[index] = chunk_batches(columns)
            cpu_seconds += columns.cpu_seconds
            bar.update(len(requests[index].files))
        return assemble(batches), cpu_seconds


def analyse_chunks(
    requests: list[ChunkRequest],
    *,
    workers: int,
    work: Callable[[ChunkRequest], ChunkColumns] = analyse_chunk,
) -> Iterator[tuple[int, ChunkColumns]]:
    """``(index, columns)`` of every chunk, in completion order; a worker that dies loses no file.

    When a worker process dies (a parser crash, the kernel's out-of-memory killer) the pool breaks and
    every unfinished chunk fails with it. Those chunks are then run again one file at a time on a
    one-worker pool, so the file that kills its worker again is the one in flight: it gets a
    ``worker_died`` row and the pool is replaced for the next file.
    """
    done: set[int] = set()
    try:
        for index, columns in map_chunks(work, requests, workers=workers):
            done.add(index)
            yield index, columns
    except BrokenProcessPool:
        pending = {index: request for index, request in enumerate(requests) if index not in done}
        yield from _one_file_at_a_time(work, pending)


def _one_file_at_a_time(
    work: Callable[[ChunkRequest], ChunkColumns], pending: Mapping[int, ChunkRequest]
) -> Iterator[tuple[int, ChunkColumns]]:
    solo = _SoloPool(work)
    try:
        for index, request in pending.items():
            parts = [solo.run(dataclasses.replace(request, files=(source,))) for source in request.files]
            yield index, merge_chunks(parts)
    finally:
        solo.close()


class _SoloPool:
    """A one-worker pool that runs one file at a time and is replaced when a file kills its worker."""

    def __init__(self, work: Callable[[ChunkRequest], ChunkColumns]) -> None:
        self._work = work
        self._pool: ProcessPoolExecutor | None = None

    def run(self, single: ChunkRequest) -> ChunkColumns:
        """The columns of a one-file request; a ``worker_died`` row when the file killed its worker."""
        if self._pool is None:
            self._pool = _pool(1)
        try:
            return self._pool.submit(self._work, single).result()
        except BrokenProcessPool as exc:  # this file killed its worker: recorded as its status
            self.close()
            return worker_died(single, f"the worker process died on this file ({exc})")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def map_chunks(work: Callable[[_T], _R], requests: list[_T], *, workers: int) -> Iterator[tuple[int, _R]]:
    """``(index, work(request))`` in completion order, over a process pool unless ``workers`` is 1.

    Each worker runs with the cyclic garbage collector off: syntax trees hold no reference cycles, and
    the collector re-walking the live tree of a big file costs about 40% of the parse time.
    """
    if workers == 1 or len(requests) == 1:
        for index, request in enumerate(requests):
            with _gc_paused():
                result = work(request)
            yield index, result
        return
    with _pool(min(workers, len(requests))) as pool:
        futures = {pool.submit(work, request): index for index, request in enumerate(requests)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:  # an interrupt, a consumer that stops early, a broken pool: drop the queue
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=gc.disable)


def _pool_context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_WORKER_MODULES)
        return context
    return multiprocessing.get_context("spawn")


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def tree_stats(
    tree: SourceTree,
    files: pa.Table,
    rows: Mapping[str, int],
    *,
    workers: int,
    chunks: int,
    seconds: float,
    cpu_seconds: float,
) -> ExtractStats:
    """The counts of an extraction: ``files`` is the tree's ``source_files``, ``rows`` each table's rows."""
    statuses = Counter(cast("list[str]", files.column("parse_status").to_pylist()))  # never null
    ok = statuses.pop(ParseStatus.OK.value, 0)
    return ExtractStats(
        files=files.num_rows,
        ok_files=ok,
        failed_files=files.num_rows - ok,
        lines=int(_sum(files.column("lines"))),
        bytes=int(_sum(files.column("bytes"))),
        seconds=seconds,
        worker_cpu_seconds=cpu_seconds,
        workers=workers,
        chunks=chunks,
        rows=dict(rows),
        failures_by_status=dict(sorted(statuses.items())),
        unreadable_dirs=len(tree.unreadable_dirs),
    )


def _sum(column: pa.ChunkedArray) -> int:
    total = pc.sum(column).as_py()
    return int(total or 0)


def _file_failed_events(result: ExtractResult) -> list[DiagnosticEvent]:
    """One ``extract_file_failed_v1`` warn per file that did not parse."""
    files = result.source_files
    failed = files.filter(pc.not_equal(files.column("parse_status"), pa.scalar(ParseStatus.OK.value)))
    return [
        DiagnosticEvent(
            name=EXTRACT_FILE_FAILED,
            run_id=result.run_id,
            severity=Severity.WARN,
            category=Category.EXTRACT,
            code=row["parse_status"],
            message=f"{row['path']}: {row['error']}",
            dataset="source_files",
            payload={
                "path": row["path"],
                "module": row["module"],
                "status": row["parse_status"],
                "error": row["error"],
            },
        )
        for row in failed.select(["path", "module", "parse_status", "error"]).to_pylist()
    ]


def _dir_unreadable_events(run_id: str, tree: SourceTree) -> list[DiagnosticEvent]:
    """One ``extract_dir_unreadable_v1`` warn per directory that could not be listed."""
    return [
        DiagnosticEvent(
            name=EXTRACT_DIR_UNREADABLE,
            run_id=run_id,
            severity=Severity.WARN,
            category=Category.EXTRACT,
            code=ParseStatus.READ_ERROR.value,
            message=f"{unreadable.path}/: {unreadable.error}",
            payload={"path": unreadable.path, "error": unreadable.error},
        )
        for unreadable in tree.unreadable_dirs
    ]


def _completed_event(result: ExtractResult) -> DiagnosticEvent:
    """The ``extract_completed_v1`` artifact: the counts and time of the extraction."""
    stats = result.stats
    return DiagnosticEvent(
        name=EXTRACT_COMPLETED,
        run_id=result.run_id,
        severity=Severity.INFO,
        category=Category.EXTRACT,
        kind=EventKind.ARTIFACT,
        message=f"{stats.files} files ({stats.failed_files} failed) in {stats.seconds:.2f} s",
        payload={"source": result.source, "run_id": result.run_id, **stats.to_row()},
    )
