"""A build's extraction: the whole tree (full), or only what changed since the lake's tables (incremental).

:func:`rebuild_extract` decides (:func:`~codeanatomy_assets.extract.incremental.plan_rebuild`), parses, writes
and records one ``extract_rebuild_v1`` event saying which it did and why, with the files added, changed and
deleted and the tables rewritten. An incremental rebuild with no change parses nothing and writes nothing.

Its :class:`RebuildOutcome` describes the whole tree either way: ``summary.source_files`` is the tree's
table as the lake now holds it and ``summary.stats`` counts the whole tree (rows per table read from the
Delta logs); ``parsed`` holds only the rows parsed in this run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from codeanatomy_assets.diagnostics.event_names import EXTRACT_REBUILD
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.extract.incremental import (
    EXTRACTOR,
    EXTRACTOR_KEY,
    SOURCE_KEY,
    RebuildPlan,
    plan_rebuild,
    subtree,
)
from codeanatomy_assets.extract.layout import extract_uris, replace_modules, write_datasets
from codeanatomy_assets.extract.runner import ExtractResult, extract_events, extract_files, tree_stats
from codeanatomy_assets.extract.tables import DATASET_NAMES
from codeanatomy_assets.extract.tree import SourceTree, discover


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildOutcome:
    """What the extraction did: full or incremental and why, the rows parsed, the whole tree's summary."""

    plan: RebuildPlan
    parsed: ExtractResult
    summary: ExtractResult
    uris: Mapping[str, str]
    tables_rewritten: tuple[str, ...]
    seconds: float

    def to_row(self) -> dict[str, Any]:
        """The ``extract_rebuild_v1`` payload."""
        changes = self.plan.changes.to_row() if self.plan.changes is not None else {}
        return {
            "mode": self.plan.mode,
            "reason": self.plan.reason,
            **changes,
            "tables_rewritten": list(self.tables_rewritten),
            "files_parsed": self.parsed.stats.files,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractTarget:
    """Where the extract tables go and how extraction runs."""

    lake: str
    storage_options: Mapping[str, str]
    workers: int | None = None
    progress: bool = False


def rebuild_extract(
    source: Path, target: ExtractTarget, *, run_id: str, sink: DiagnosticsSink | None, full: bool
) -> RebuildOutcome:
    """Bring the extract tables under ``target.lake`` up to the tree at ``source``."""
    started = time.perf_counter()
    tree = discover(Path(source).expanduser())
    uris = extract_uris(target.lake)
    plan = plan_rebuild(tree, uris, target.storage_options, full=full)
    if plan.incremental and plan.changes is not None:
        parsed, summary, rewritten = _incremental(tree, plan, uris, target, run_id)
    else:
        parsed = extract_files(tree, run_id=run_id, workers=target.workers, progress=target.progress)
        write_datasets(parsed, target.lake, storage_options=target.storage_options)
        summary, rewritten = parsed, DATASET_NAMES
    outcome = RebuildOutcome(
        plan=plan,
        parsed=parsed,
        summary=summary,
        uris=uris,
        tables_rewritten=tuple(rewritten),
        seconds=time.perf_counter() - started,
    )
    if sink is not None:
        emit(sink, *extract_events(summary, tree), rebuild_event(outcome, run_id))
    return outcome


def _incremental(
    tree: SourceTree, plan: RebuildPlan, uris: Mapping[str, str], target: ExtractTarget, run_id: str
) -> tuple[ExtractResult, ExtractResult, list[str]]:
    """Parse the affected modules' files and replace their rows, one commit per table that changes."""
    assert plan.changes is not None
    modules = plan.changes.modules
    parsed = extract_files(
        subtree(tree, modules), run_id=run_id, workers=target.workers, progress=target.progress
    )
    metadata = {"codeanatomy.run_id": run_id, SOURCE_KEY: str(tree.root), EXTRACTOR_KEY: EXTRACTOR}
    rewritten = [
        name
        for name in DATASET_NAMES
        if modules
        and replace_modules(
            parsed.tables[name],
            uris[name],
            modules,
            metadata=metadata,
            storage_options=target.storage_options,
        )
    ]
    return parsed, _summary(tree, parsed, uris, target.storage_options), rewritten


def _summary(
    tree: SourceTree, parsed: ExtractResult, uris: Mapping[str, str], storage_options: Mapping[str, str]
) -> ExtractResult:
    """The whole tree as the lake holds it: its ``source_files`` and its rows per table."""
    options = dict(storage_options) or None
    tables = {name: DeltaTable(uri, storage_options=options) for name, uri in uris.items()}
    files = tables["source_files"].to_pyarrow_table()
    rows = {name: _row_count(table) for name, table in tables.items()}
    stats = tree_stats(
        tree,
        files,
        rows,
        workers=parsed.stats.workers,
        chunks=parsed.stats.chunks,
        seconds=parsed.stats.seconds,
        cpu_seconds=parsed.stats.worker_cpu_seconds,
    )
    return replace(
        parsed, source_files=files.sort_by([("package", "ascending"), ("module", "ascending")]), stats=stats
    )


def _row_count(table: DeltaTable) -> int:
    actions = pa.table(table.get_add_actions(flatten=True))
    return int(sum(n or 0 for n in actions.column("num_records").to_pylist()))


def rebuild_event(outcome: RebuildOutcome, run_id: str) -> DiagnosticEvent:
    """The ``extract_rebuild_v1`` artifact: full or incremental, why, and what changed."""
    plan = outcome.plan
    return DiagnosticEvent(
        name=EXTRACT_REBUILD,
        run_id=run_id,
        severity=Severity.INFO,
        category=Category.EXTRACT,
        kind=EventKind.ARTIFACT,
        code=plan.mode,
        message=f"{plan.mode} extraction ({plan.reason}); {outcome.parsed.stats.files} file(s) parsed, "
        f"{len(outcome.tables_rewritten)} table(s) rewritten",
        payload=outcome.to_row(),
    )
