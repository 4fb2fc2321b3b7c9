"""Scan units: what every scan of an executed plan read, and what Delta's log could have skipped.

A *scan unit* is one scan operator of the physical plan that ran (a ``DeltaScanExec`` with its inner
``DataSourceExec``, or a leaf such as a native Parquet ``DataSourceExec``). For each one this module
records, exactly, from the metrics of that one execution (nothing runs twice):

- ``candidate_files``: the distinct files the scan opened: ``filename``-labelled metrics showing loaded
  metadata, considered row groups or scanned bytes. (A file pruned by statistics before opening still
  gets labelled metrics, all zero; ``files_opened`` counts file *ranges*, so neither is a file count.)
- ``total_files``: the live files of the Delta snapshot (``DeltaTable(uri, version=...).file_uris()``).
- ``row_groups_total`` / ``row_groups_matched``: summed from the per-file ``row_groups_pruned_statistics``
  metrics. Their value is ``None`` in the API and their text rounds counts of 1,000 and more
  (``3.00 K``); the per-file entries are small, so the sum is exact unless one entry was rounded, which
  ``row_groups_exact`` reports.
- ``delta_prunable_files``: the files Delta's log statistics would skip for the plan's predicate on the
  table (``DeltaTable.file_uris(file_pruning_predicate=...)``). The predicate is translated from the
  optimized logical plan (the ``Filter`` directly above the ``TableScan`` plus the scan's own filters):
  comparisons of a column with a literal, ``IN``, ``BETWEEN``, ``IS [NOT] NULL``, and ``AND``/``OR`` of
  those. Conjuncts that cannot be translated are listed in ``untranslated_predicates`` and dropped;
  dropping a conjunct only widens the file set, so the count is a lower bound, never an overclaim.

A scan whose predicate lets Delta skip files while the scan skipped none gets severity ``warn`` with
code ``pruning_lost`` (the Delta table provider receives no filters from DataFusion 55).

Plan-time file pruning (``delta_pruned_parquet``) is :mod:`codeanatomy_assets.engine.pruning`; its
:class:`~codeanatomy_assets.engine.pruning.TablePruning` records give each unit its ``files_bound``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from datafusion.plan import ExecutionPlan, LogicalPlan

from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.diagnostics.event_names import SCAN_UNIT_PRUNING
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.live_files import LiveFiles, open_live_files
from codeanatomy_assets.engine.metrics import OperatorSnapshot, read_plan
from codeanatomy_assets.engine.predicates import (
    DeltaPredicate,
    LogicalScan,
    logical_scans,
    translate_predicate,
)
from codeanatomy_assets.engine.pruning import TablePruning
from codeanatomy_assets.engine.scan_attribution import attribute_scans, file_owners
from codeanatomy_assets.engine.scan_metrics import PhysicalScan, merge_union_scans, physical_scans

PRUNING_LOST: Final = "pruning_lost"
PRUNING_PARTIAL: Final = "pruning_partial"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanUnit:
    """One scan of an executed plan: files read against files live, and what Delta could skip."""

    plan: str
    dataset: str | None
    operator: str
    provider_mode: ProviderMode | None
    protocol_compatible: bool | None
    table_version: int | None
    total_files: int | None
    candidate_files: int | None
    pruned_files: int | None
    files_opened: int | None
    scan_filters: tuple[str, ...]
    predicate: str | None
    delta_predicate: str | None
    untranslated_predicates: tuple[str, ...]
    delta_candidate_files: int | None
    delta_prunable_files: int | None
    row_groups_total: int | None
    row_groups_matched: int | None
    row_groups_exact: bool
    file_ranges_total: int | None
    """File ranges DataFusion considered for pruning by statistics (a file split across partitions
    counts once per range); the Delta provider gets no predicate, so it prunes none."""
    file_ranges_matched: int | None
    bytes_scanned: int | None
    output_rows: int | None
    merged_scans: int
    """Physical scans folded into this unit (the per-file scans of a table registered as a union)."""
    attribution: str
    """How the scan was tied to its dataset: ``files`` (the files it read), ``only_scan`` (the only
    unmatched table scan of the plan), or ``unattributed``."""
    errors: tuple[str, ...] = ()
    """Steps that could not be computed, with the reason (never silently missing)."""
    files_bound: int | None = None
    """``delta_pruned_parquet``: the files plan-time pruning bound for this plan (Delta's candidates, or
    every live file when the table was read whole); ``None`` for other modes."""
    dataset_candidates: tuple[str, ...] = ()
    """When ``dataset`` is ``None``: the tables the scan may belong to (in-memory scans name no file)."""

    @property
    def dataset_label(self) -> str:
        """The dataset, or what is known of it: the tables it may be, or why it is none of them."""
        if self.dataset is not None:
            return self.dataset
        if len(self.dataset_candidates) > 1:
            how = "not told apart by files or columns" if self.files_opened is None else "not tied by files"
            return f"one of {', '.join(self.dataset_candidates)} ({how})"
        if self.files_opened is None and self.candidate_files is None:
            return "(in-memory: no registered dataset)"
        return "(files of no registered dataset)"

    @property
    def pruning_lost(self) -> bool:
        """Delta's log statistics would skip files for this predicate, but the scan skipped none."""
        return bool(self.delta_prunable_files) and self.pruned_files == 0

    @property
    def pruning_partial(self) -> bool:
        """The scan skipped some files, fewer than Delta's log statistics would."""
        return (
            self.delta_prunable_files is not None
            and self.pruned_files is not None
            and 0 < self.pruned_files < self.delta_prunable_files
        )

    def to_row(self) -> dict[str, Any]:
        """The ``scan_unit_pruning_v1`` payload."""
        return {
            "dataset": self.dataset,
            "operator": self.operator,
            "provider_mode": self.provider_mode.value if self.provider_mode else None,
            "protocol_compatible": self.protocol_compatible,
            "table_version": self.table_version,
            "total_files": self.total_files,
            "candidate_files": self.candidate_files,
            "pruned_files": self.pruned_files,
            "files_opened": self.files_opened,
            "scan_filters": list(self.scan_filters),
            "predicate": self.predicate,
            "delta_predicate": self.delta_predicate,
            "untranslated_predicates": list(self.untranslated_predicates),
            "delta_candidate_files": self.delta_candidate_files,
            "delta_prunable_files": self.delta_prunable_files,
            "row_groups_total": self.row_groups_total,
            "row_groups_matched": self.row_groups_matched,
            "row_groups_exact": self.row_groups_exact,
            "file_ranges_total": self.file_ranges_total,
            "file_ranges_matched": self.file_ranges_matched,
            "bytes_scanned": self.bytes_scanned,
            "output_rows": self.output_rows,
            "merged_scans": self.merged_scans,
            "attribution": self.attribution,
            "pruning_lost": self.pruning_lost,
            "errors": list(self.errors),
            "files_bound": self.files_bound,
            "dataset_label": self.dataset_label,
            "dataset_candidates": list(self.dataset_candidates),
        }

    def _pruning_message(self) -> str:
        return (
            f"scan of {self.dataset!r} read {self.candidate_files} of {self.total_files} files; "
            f"Delta's log statistics would skip {self.delta_prunable_files} for {self.delta_predicate}"
        )

    def to_event(
        self, *, run_id: str, trace_id: str | None = None, span_id: str | None = None
    ) -> DiagnosticEvent:
        """The diagnostics record of this scan (``warn`` with a code when pruning was lost)."""
        code = PRUNING_LOST if self.pruning_lost else PRUNING_PARTIAL if self.pruning_partial else None
        return DiagnosticEvent(
            name=SCAN_UNIT_PRUNING,
            run_id=run_id,
            severity=Severity.WARN if code else Severity.INFO,
            category=Category.SCAN_PRUNING,
            kind=EventKind.ARTIFACT,
            code=code,
            message=None if code is None else self._pruning_message(),
            dataset=self.dataset,
            plan=self.plan,
            trace_id=trace_id,
            span_id=span_id,
            payload=self.to_row(),
        )


def collect_scan_units(
    *,
    plan_name: str,
    executed: ExecutionPlan | OperatorSnapshot,
    optimized: LogicalPlan,
    tables: Mapping[str, RegisteredTable],
    pruning: Iterable[TablePruning] = (),
    stand_in_plan: LogicalPlan | None = None,
) -> list[ScanUnit]:
    """Scan units of a plan that has run once (its metrics are read, nothing is re-executed).

    ``pruning`` is what :func:`bind_pruned_tables` did for this plan (``files_bound``); ``stand_in_plan``,
    the plan's query planned over stand-ins there, lets predicates on partition columns be seen
    (:func:`_partition_predicates`).
    """
    scans = logical_scans(optimized)
    by_table: dict[str, list[LogicalScan]] = {}
    for scan in scans:
        by_table.setdefault(scan.table, []).append(scan)
    snapshots = {name: open_live_files(tables[name]) for name in by_table if name in tables}
    if stand_in_plan is not None:
        by_table.update(_partition_predicates(stand_in_plan, by_table, snapshots))
    physical = physical_scans(executed if isinstance(executed, OperatorSnapshot) else read_plan(executed))
    remaining = Counter(scan.table for scan in scans)
    attributed = attribute_scans(physical, file_owners(snapshots), remaining, by_table)
    plan = _PlanTables(
        plan_name=plan_name,
        tables=tables,
        snapshots=snapshots,
        by_table=by_table,
        bound={p.dataset: p.files for p in pruning},
        untied=tuple(sorted(name for name, count in remaining.items() if count > 0)),
    )
    return [plan.unit(scan, name, how) for scan, name, how in merge_union_scans(attributed)]


# ------------------------------------------------------------------------------------------- predicates


def _partition_predicates(
    stand_in_plan: LogicalPlan,
    by_table: Mapping[str, Sequence[LogicalScan]],
    snapshots: Mapping[str, LiveFiles],
) -> dict[str, list[LogicalScan]]:
    """The scans of partitioned ``delta_pruned_parquet`` tables with their predicates on partition columns.

    Such a table is a view whose partition columns are literals (one listing per partition), so the
    optimizer folds a predicate on them into ``true`` or ``false`` and drops the excluded partitions before
    any scan sees it. Planned over stand-ins (empty in-memory tables of the same schemas, which plan-time
    pruning did), the same query keeps that predicate as a ``Filter`` above the table's scan: each scan
    gets the stand-in's predicate (its own scan filters stay).
    """
    views = _partitioned_views(by_table, snapshots)
    if not views:
        return {}
    planned = logical_scans(stand_in_plan)
    found: dict[str, list[LogicalScan]] = {}
    for name in views:
        stand_in = [s for s in planned if s.table == name]
        if stand_in:
            found[name] = _with_stand_in_predicates(by_table[name], stand_in)
    return found


def _partitioned_views(
    by_table: Mapping[str, Sequence[LogicalScan]], snapshots: Mapping[str, LiveFiles]
) -> list[str]:
    """The partitioned or object-store ``delta_pruned_parquet`` tables (views) the plan scans anonymously."""
    return [
        name
        for name, found in by_table.items()
        if any(s.anonymous for s in found)
        and (snapshot := snapshots.get(name)) is not None
        and snapshot.pinned is not None
        and snapshot.pinned.registered_as_view
    ]


def _with_stand_in_predicates(
    real: Sequence[LogicalScan], stand_in: Sequence[LogicalScan]
) -> list[LogicalScan]:
    """The real scans of a table with the predicates of its scans over stand-ins."""
    if len(stand_in) == len(real):
        return [replace(r, predicate=s.predicate, exprs=s.exprs) for r, s in zip(real, stand_in, strict=True)]
    # partitions dropped whole scans: every stand-in predicate, as for a self-join
    filters = tuple(dict.fromkeys(f for r in real for f in r.scan_filters))
    return [replace(s, scan_filters=filters) for s in stand_in]


@dataclass(frozen=True, slots=True)
class _UnitPredicate:
    """The predicate of a physical scan: translated for Delta, as DataFusion prints it, or why unknown."""

    delta: DeltaPredicate | None = None
    text: str | None = None
    ambiguity: str | None = None

    def fields(self) -> dict[str, Any]:
        """The :class:`ScanUnit` fields of the predicate."""
        return {
            "predicate": self.text,
            "delta_predicate": self.delta.sql if self.delta else None,
            "untranslated_predicates": self.delta.untranslated if self.delta else (),
        }


def _unit_predicate(logical: Sequence[LogicalScan]) -> _UnitPredicate:
    """The predicate for a physical scan of a table read by ``logical`` scans.

    One logical scan, or several with the same predicate: that predicate. Several with different
    predicates (a self-join, a CTE read twice): the physical scans cannot be told apart, so the OR of
    them, which holds for each; when one of them has no predicate the answer is unknown (ambiguity set).
    """
    if not logical:
        return _UnitPredicate()
    texts = [s.predicate or None for s in logical]
    parts = [translate_predicate(s.exprs) for s in logical]
    if len(set(texts)) == 1 and len({p.sql for p in parts}) == 1:
        return _UnitPredicate(parts[0], texts[0])
    ambiguity = _ambiguity(logical)
    if ambiguity is not None:
        return _UnitPredicate(ambiguity=ambiguity)
    text = " OR ".join(dict.fromkeys(f"({t})" for t in texts if t))
    untranslated = tuple(dict.fromkeys(u for p in parts for u in p.untranslated))
    sql = " OR ".join(dict.fromkeys(f"({p.sql})" for p in parts)) if all(p.sql for p in parts) else None
    return _UnitPredicate(DeltaPredicate(sql=sql, untranslated=untranslated), text)


def _ambiguity(logical: Sequence[LogicalScan]) -> str | None:
    """Why scans of one table with different predicates leave the predicate unknown (``None``: they don't)."""
    table = logical[0].table
    if any(s.in_subquery for s in logical):
        return (
            f"a scan of {table!r} sits inside a subquery expression, whose plan DataFusion's "
            "Python API does not expose: its predicate, and Delta's skippable files, are unknown"
        )
    if any(not s.exprs for s in logical):
        return (
            f"{len(logical)} scans of {table!r} with different predicates, one without any, "
            "cannot be told apart: Delta's skippable files unknown"
        )
    return None


# ------------------------------------------------------------------------------------------- the units


@dataclass(frozen=True, slots=True, kw_only=True)
class _PlanTables:
    """What the scan units of one plan share: its tables, their live files and logical scans."""

    plan_name: str
    tables: Mapping[str, RegisteredTable]
    snapshots: Mapping[str, LiveFiles]
    by_table: Mapping[str, Sequence[LogicalScan]]
    bound: Mapping[str, int | None]
    """Files plan-time pruning bound, per ``delta_pruned_parquet`` table."""
    untied: tuple[str, ...]
    """Tables with logical scans no physical scan was tied to."""

    def unit(self, scan: PhysicalScan, name: str | None, attribution: str) -> ScanUnit:
        """The unit of physical ``scan``, tied to table ``name`` (``None``: to none) by ``attribution``."""
        registered = self.tables.get(name) if name else None
        snapshot = self.snapshots.get(name) if name else None
        possible = self.untied if name is None else ()
        logical = self.by_table.get(name or "", [])
        errors = _tie_errors(name, registered, snapshot, possible)
        total = len(snapshot.files) if snapshot is not None and snapshot.files is not None else None
        predicate = _unit_predicate(logical)
        if predicate.ambiguity:
            errors.append(predicate.ambiguity)
        delta_candidates, prunable = _delta_files(predicate, snapshot, total, errors)
        return ScanUnit(
            plan=self.plan_name,
            operator=scan.operator,
            **_table_fields(name, registered, snapshot, total),
            **_read_fields(scan, total),
            scan_filters=tuple(dict.fromkeys(f for s in logical for f in s.scan_filters)),
            **predicate.fields(),
            delta_candidate_files=delta_candidates,
            delta_prunable_files=prunable,
            attribution=attribution,
            errors=tuple(errors),
            files_bound=self.bound.get(name or ""),
            dataset_candidates=possible if len(possible) > 1 else (),
        )


def _table_fields(
    name: str | None, registered: RegisteredTable | None, snapshot: LiveFiles | None, total: int | None
) -> dict[str, Any]:
    """The :class:`ScanUnit` fields its table gives: dataset, provider, version, live files."""
    table = snapshot.table if snapshot is not None else None
    return {
        "dataset": registered.dataset if registered else name,
        "provider_mode": registered.provider_mode if registered else None,
        "protocol_compatible": registered.protocol_compatible if registered else None,
        "table_version": table.version() if table is not None else None,
        "total_files": total,
    }


def _tie_errors(
    name: str | None,
    registered: RegisteredTable | None,
    snapshot: LiveFiles | None,
    possible: tuple[str, ...],
) -> list[str]:
    """What is wrong with the scan's table: not tied to one, not registered, or its live files unreadable."""
    errors: list[str] = []
    if name is None:
        errors.append(
            "scan could not be tied to a registered table (it read no file of one, and its columns fit "
            + (f"{len(possible)} tables)" if possible else "none)")
        )
    elif registered is None:
        errors.append(f"table {name!r} is not in the registered tables passed to the plan")
    if snapshot is not None and snapshot.error:
        errors.append(snapshot.error)
    return errors


def _delta_files(
    predicate: _UnitPredicate, snapshot: LiveFiles | None, total: int | None, errors: list[str]
) -> tuple[int | None, int | None]:
    """``(delta_candidate_files, delta_prunable_files)`` for the scan's predicate; why not, in ``errors``."""
    delta = predicate.delta
    if delta is not None and delta.sql and snapshot is not None:
        candidates, error = snapshot.delta_candidates(delta.sql)
        if error:
            errors.append(error)
            return candidates, None
        prunable = total - candidates if total is not None and candidates is not None else None
        return candidates, prunable
    if delta is not None and predicate.text and not delta.sql:
        errors.append(
            "predicate could not be translated for Delta file pruning: " + "; ".join(delta.untranslated)
        )
    elif not predicate.text and not predicate.ambiguity and total is not None:
        return total, 0  # no predicate: nothing to skip
    return None, None


def _read_fields(scan: PhysicalScan, total: int | None) -> dict[str, Any]:
    """The :class:`ScanUnit` fields the scan's own metrics give: files, row groups, ranges, bytes, rows."""
    candidates = len(scan.opened) if scan.filenames or scan.files_opened is not None else None
    return {
        "candidate_files": candidates,
        "pruned_files": total - candidates if total is not None and candidates is not None else None,
        "files_opened": scan.files_opened,
        "row_groups_total": scan.row_groups.total if scan.row_groups else None,
        "row_groups_matched": scan.row_groups.matched if scan.row_groups else None,
        "row_groups_exact": scan.row_groups.exact if scan.row_groups else True,
        "file_ranges_total": scan.file_ranges.total if scan.file_ranges else None,
        "file_ranges_matched": scan.file_ranges.matched if scan.file_ranges else None,
        "bytes_scanned": scan.bytes_scanned,
        "output_rows": scan.output_rows,
        "merged_scans": scan.merged,
    }
