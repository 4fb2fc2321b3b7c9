"""Plan-time file pruning for ``delta_pruned_parquet`` tables: bind the files Delta keeps, then restore.

:func:`bind_pruned_tables` takes the optimized plan's predicates on each table registered in that mode
(:func:`pruning_predicates`, translated by :mod:`codeanatomy_assets.engine.predicates`), asks Delta's log
for the candidate files of the table's pinned snapshot and re-registers the table over exactly those
files before the plan is built; :func:`restore_pruned_tables` registers every live file again
afterwards. A table is read whole (its live files) whenever some scan of it carries no translatable
predicate, sits inside a subquery expression, or a view's scan hides there (its table cannot be told).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
from datafusion import SessionContext, SQLOptions
from datafusion.plan import LogicalPlan
from deltalake.exceptions import DeltaError

from codeanatomy_assets.delta.mode_registration import damaged_objects
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import (
    PinnedSnapshot,
    SnapshotFile,
    link_files,
    missing_links,
    open_snapshot,
    quote_ident,
    register_files,
)
from codeanatomy_assets.engine.predicates import (
    ANONYMOUS_TABLE,
    LogicalScan,
    logical_scans,
    translate_predicate,
)
from codeanatomy_assets.errors import DatasetError

QUERIES_ONLY: Final = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
"""Plan queries only: ``ctx.sql`` runs DDL and statements at once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TablePredicate:
    """The Delta file-pruning predicate that holds for every scan of one table in a plan."""

    table: str
    sql: str | None
    """``None``: the table is read whole; ``reason`` says why."""
    reason: str | None = None


def pruning_predicates(plan: LogicalPlan, tables: Iterable[str]) -> dict[str, TablePredicate]:
    """For each of ``tables`` that the optimized ``plan`` scans: a predicate every row it reads satisfies.

    Several scans of one table: the OR of their translated predicates (untranslated conjuncts dropped,
    which only widens the file set). The table is read whole (``sql`` ``None``) when one of its scans has
    no translatable predicate or sits inside a subquery expression (found in the plan text, named as
    :func:`printed_scan_names` names them), and every table is when a view's scan has no name.
    """
    scans = logical_scans(plan)
    veto = _anonymous_veto(scans)
    predicates: dict[str, TablePredicate] = {}
    for name in tables:
        own = [scan for scan in scans if scan.table == name]
        if own:
            predicates[name] = (
                TablePredicate(table=name, sql=None, reason=veto) if veto else _table_predicate(name, own)
            )
    return predicates


def _anonymous_veto(scans: Sequence[LogicalScan]) -> str | None:
    if any(scan.table == ANONYMOUS_TABLE for scan in scans):
        return "a view's scan without a name (no SubqueryAlias above it): its table cannot be told"
    return None


def _table_predicate(name: str, scans: Sequence[LogicalScan]) -> TablePredicate:
    if any(scan.in_subquery for scan in scans):
        return TablePredicate(table=name, sql=None, reason="a scan sits inside a subquery expression")
    parts = [translate_predicate(scan.exprs) for scan in scans]
    if any(part.sql is None for part in parts):
        return TablePredicate(table=name, sql=None, reason="a scan has no predicate Delta can prune with")
    texts = list(dict.fromkeys(part.sql for part in parts if part.sql))
    sql = texts[0] if len(texts) == 1 else " OR ".join(f"({text})" for text in texts)
    return TablePredicate(table=name, sql=sql)


@dataclass(frozen=True, slots=True, kw_only=True)
class TablePruning:
    """What plan-time file pruning did for one ``delta_pruned_parquet`` table of a plan."""

    dataset: str
    version: int | None
    """The snapshot read (the version pinned at registration)."""
    predicate: str | None
    """The Delta file-pruning predicate asked (``None``: the table was read whole)."""
    live_files: int | None
    files: int | None
    """Files bound for the plan: Delta's candidates (the plan's scans read at most these)."""
    rebound: bool
    """Re-registered over ``files`` for this plan (and over every live file again afterwards)."""
    ms: float
    """Since binding started (the planning pass that reads the predicates included)."""
    reason: str | None = None
    """Why every live file was bound, when ``predicate`` is ``None`` or pruning failed."""

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "dataset": self.dataset,
            "version": self.version,
            "predicate": self.predicate,
            "live_files": self.live_files,
            "files": self.files,
            "rebound": self.rebound,
            "ms": round(self.ms, 3),
            "reason": self.reason,
        }


def pruned_tables(tables: Mapping[str, RegisteredTable]) -> dict[str, RegisteredTable]:
    """The tables served by ``delta_pruned_parquet`` (those plan-time pruning binds)."""
    return {n: t for n, t in tables.items() if t.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET}


@dataclass(frozen=True, slots=True)
class PrunedBinding:
    """What :func:`bind_pruned_tables` did for one plan."""

    tables: tuple[TablePruning, ...] = ()
    stand_in_plan: LogicalPlan | None = None
    """The query planned over stand-ins, when a partitioned table needed it (:func:`_predicate_plan`);
    the scan units read the predicates on partition columns from it."""


def bind_pruned_tables(ctx: SessionContext, sql: str, tables: Mapping[str, RegisteredTable]) -> PrunedBinding:
    """Re-register each ``delta_pruned_parquet`` table ``sql`` scans over the files Delta's log keeps.

    Plans ``sql`` once (parse and optimize) to read its predicates, asks each table's pinned snapshot for
    its candidate files and registers exactly those; a table whose predicate keeps every file is left as
    registered. A pruning failure leaves the table whole (every live file) and says why. Raises
    :class:`~codeanatomy_assets.errors.DatasetError` when a file the plan would read is no longer there
    (DataFusion's listing would skip it silently). Call :func:`restore_pruned_tables` when the plan is
    done.
    """
    own = pruned_tables(tables)
    if not own:
        return PrunedBinding()
    started = time.perf_counter()
    try:
        plan, stand_in_plan = _predicate_plan(ctx, sql, tables, own)
    except Exception as exc:  # noqa: BLE001 - the logical phase plans again and records this failure as the plan's
        reason = f"not planned as a query: {type(exc).__name__}: {_first_line(exc)}"
        return PrunedBinding(tuple(_whole(t, started, reason) for t in own.values()))
    return PrunedBinding(_bind_tables(ctx, pruning_predicates(plan, own), tables, started), stand_in_plan)


def _bind_tables(
    ctx: SessionContext,
    predicates: Mapping[str, TablePredicate],
    tables: Mapping[str, RegisteredTable],
    started: float,
) -> tuple[TablePruning, ...]:
    """Bind each table to the files its predicate keeps; all or none (a failure restores those bound)."""
    bound: list[TablePruning] = []
    try:
        for name, predicate in predicates.items():
            bound.append(_bind_table(ctx, tables[name], predicate, started))
    except BaseException:  # tables bound before the failure are registered whole again, then it propagates
        restore_pruned_tables(ctx, bound, tables)
        raise
    return tuple(bound)


def _predicate_plan(
    ctx: SessionContext, sql: str, tables: Mapping[str, RegisteredTable], own: Mapping[str, RegisteredTable]
) -> tuple[LogicalPlan, LogicalPlan | None]:
    """The optimized plan of ``sql`` whose scans carry each table's predicates, and whether it is the
    plan over stand-ins (then it is returned twice; else the second is ``None``).

    A partitioned ``delta_pruned_parquet`` table is a view whose partition columns are literals (one
    listing per partition): the optimizer folds a predicate on them away and its scans have no name (an
    object-store table is a view of per-file listings, whose scans have no name either). Then
    the query is planned over stand-ins (empty in-memory tables with the same names and schemas), where the
    predicate stays a ``Filter`` above the table's named scan, so Delta can prune partitions too.
    Queries only: ``ctx.sql`` runs DDL and statements at once, and the logical phase runs them.
    """
    if not any(_registered_as_view(table) for table in own.values()):
        return ctx.sql_with_options(sql, QUERIES_ONLY).optimized_logical_plan(), None
    stand_in_plan = plan_over_stand_ins(sql, {name: ctx.table(quote_ident(name)).schema() for name in tables})
    return stand_in_plan, stand_in_plan


def plan_over_stand_ins(sql: str, schemas: Mapping[str, pa.Schema]) -> LogicalPlan:
    """The optimized plan of the query ``sql`` over stand-ins: empty in-memory tables with these names and
    schemas (a partitioned table's predicates on its partition columns stay visible there)."""
    stand_ins = SessionContext()
    for name, schema in schemas.items():
        empty = pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
        stand_ins.register_record_batches(quote_ident(name), [[empty]])
    return stand_ins.sql_with_options(sql, QUERIES_ONLY).optimized_logical_plan()


def _registered_as_view(table: RegisteredTable) -> bool:
    """A partitioned or object-store table: a view whose scans have no name (so stand-ins are planned)."""
    if table.version is None:
        return False  # bound whole at the snapshot pinned now (see _bind_table)
    try:
        snapshot = open_snapshot(table.uri, version=table.version, storage_options=table.storage_options)
    except (DeltaError, OSError, ValueError):
        return False  # binding fails alike and says why
    return snapshot.registered_as_view


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _whole(table: RegisteredTable, started: float, reason: str) -> TablePruning:
    return TablePruning(
        dataset=table.dataset,
        version=table.version,
        predicate=None,
        live_files=None,
        files=None,
        rebound=False,
        ms=(time.perf_counter() - started) * 1000,
        reason=reason,
    )


def _bind_table(
    ctx: SessionContext, table: RegisteredTable, predicate: TablePredicate, started: float
) -> TablePruning:
    try:
        snapshot = open_snapshot(table.uri, version=table.version, storage_options=table.storage_options)
        files = snapshot.candidates(predicate.sql)
    except (DeltaError, OSError, ValueError) as exc:  # the table stays whole: correct, only slower
        return _whole(table, started, f"Delta file pruning failed: {type(exc).__name__}: {_first_line(exc)}")
    # A table registered without a version is bound at the snapshot pinned now, whatever it prunes.
    rebound = len(files) < len(snapshot.files) or table.version is None
    _check_links(table, snapshot, files)
    if rebound:
        register_files(ctx, table.dataset, snapshot, files)
    return TablePruning(
        dataset=table.dataset,
        version=snapshot.version,
        predicate=predicate.sql,
        live_files=len(snapshot.files),
        files=len(files),
        rebound=rebound,
        ms=(time.perf_counter() - started) * 1000,
        reason=predicate.reason,
    )


def _check_links(table: RegisteredTable, snapshot: PinnedSnapshot, files: Sequence[SnapshotFile]) -> None:
    """Link ``files`` (local) or look each object up (object store); :class:`DatasetError` when one is gone
    (DataFusion's listing would skip it silently, a dangling link and a missing object alike)."""
    if snapshot.object_store:
        missing = damaged_objects(snapshot, files, table.storage_options)
    else:
        missing = missing_links(link_files(snapshot, files))
    if missing:
        raise DatasetError(
            f"{len(missing)} live data file(s) of version {snapshot.version} are gone, e.g. {missing[0]}",
            dataset=table.dataset,
            uri=table.uri,
        )


def restore_pruned_tables(
    ctx: SessionContext, pruning: Iterable[TablePruning], tables: Mapping[str, RegisteredTable]
) -> None:
    """Register every live file again for each table :func:`bind_pruned_tables` re-registered.

    A table that cannot be restored is deregistered (a later query fails instead of reading a subset),
    then the error is raised.
    """
    for bound in pruning:
        if not bound.rebound:
            continue
        table = tables[bound.dataset]
        try:
            snapshot = open_snapshot(table.uri, version=table.version, storage_options=table.storage_options)
            register_files(ctx, table.dataset, snapshot)
        except Exception:
            quoted = quote_ident(table.dataset)
            if ctx.table_exist(quoted):
                ctx.deregister_table(quoted)
            raise
