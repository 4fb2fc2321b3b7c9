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

Plan-time file pruning (``delta_pruned_parquet``): :func:`bind_pruned_tables` takes the optimized plan's
predicates on each table registered in that mode (:func:`pruning_predicates`, the same translation),
asks Delta's log for the candidate files of the table's pinned snapshot and re-registers the table over
exactly those files before the plan is built; :func:`restore_pruned_tables` registers every live file
again afterwards. A table is read whole (its live files) whenever some scan of it carries no translatable
predicate, sits inside a subquery expression, or a view's scan hides there (its table cannot be told).
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

import datafusion.expr as dfx
import pyarrow as pa
from datafusion import SessionContext, SQLOptions
from datafusion.plan import ExecutionPlan, LogicalPlan
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import (
    PinnedSnapshot,
    link_files,
    link_target,
    missing_links,
    open_snapshot,
    register_files,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.metrics import OperatorSnapshot, operator_name_of, read_plan
from codeanatomy_assets.errors import DatasetError

SCAN_UNIT_EVENT: Final = "scan_unit_pruning_v1"
PRUNING_LOST: Final = "pruning_lost"
PRUNING_PARTIAL: Final = "pruning_partial"

_NON_SCAN_LEAVES: Final = frozenset({"PlaceholderRowExec", "EmptyExec"})
_DELTA_SCAN: Final = "DeltaScanExec"
_ANONYMOUS_TABLE: Final = "?table?"
_SUBQUERY_ALIAS: Final = "SubqueryAlias: "
_TABLE_SCAN_RE: Final = re.compile(r"^\s*TableScan: (\S+)", re.MULTILINE)
_ROW_GROUPS: Final = "row_groups_pruned_statistics"
_FILE_RANGES: Final = "files_ranges_pruned_statistics"
_PRUNING_METRICS: Final = frozenset({_ROW_GROUPS, _FILE_RANGES})
_SUMMED_METRICS: Final = frozenset({"files_opened", "bytes_scanned", "metadata_load_time"})
_COMPARISONS: Final = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_PRUNING_RE: Final = re.compile(
    r"^\s*(?P<total>[\d.]+)\s*(?P<tu>[A-Za-z]*)\s*total\s*→\s*(?P<matched>[\d.]+)\s*(?P<mu>[A-Za-z]*)\s*matched"
    r"(?:\s*->\s*[\d.]+\s*[A-Za-z]*\s*fully matched)?\s*$"
)
_INT_RE: Final = re.compile(r"^\s*\d+\s*$")
_COLUMN_REF_RE: Final = re.compile(r"\b([A-Za-z_]\w*)@(\d+)")
_JOIN_ON_RE: Final = re.compile(r"\bon=\[(.*?)\](?:,|$)")
_JOIN_PAIR_RE: Final = re.compile(r"\(([A-Za-z_]\w*)@(\d+), ([A-Za-z_]\w*)@(\d+)\)")
_COLUMN_KEEPING: Final = frozenset(
    {
        "RepartitionExec",
        "CoalesceBatchesExec",
        "CoalescePartitionsExec",
        "CooperativeExec",
        "SortExec",
        "SortPreservingMergeExec",
    }
)
"""Operators whose output columns are their input's: references above them reach the scan below."""
_QUERIES_ONLY: Final = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)


# --------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True, kw_only=True)
class PruningCount:
    """A pruning metric (``4 total → 1 matched``); ``exact`` is False when its text was rounded."""

    total: int
    matched: int
    exact: bool


@functools.lru_cache(maxsize=4096)  # a plan over many files repeats the same few texts thousands of times
def parse_pruning(text: str) -> PruningCount | None:
    """Parse the text of a pruning metric; ``None`` when the text is not one.

    >>> parse_pruning("4 total → 1 matched")
    PruningCount(total=4, matched=1, exact=True)
    >>> parse_pruning("3.00 K total → 1.50 K matched")
    PruningCount(total=3000, matched=1500, exact=False)
    """
    match = _PRUNING_RE.match(text)
    if match is None:
        return None
    scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
    units = (match["tu"].upper(), match["mu"].upper())
    if any(u not in scale for u in units):
        return None
    total = int(Decimal(match["total"]) * scale[units[0]])
    matched = int(Decimal(match["matched"]) * scale[units[1]])
    return PruningCount(total=total, matched=matched, exact=units == ("", ""))


def operator_name(node: ExecutionPlan) -> str:
    """The operator's type name (``HashJoinExec``), looking through DataFusion's FFI wrapper."""
    return operator_name_of(node.display())


# --------------------------------------------------------------------------------- logical predicates


@dataclass(frozen=True, slots=True, kw_only=True)
class LogicalScan:
    """A ``TableScan`` of the optimized logical plan with the filters that apply to it."""

    table: str
    projection: tuple[str, ...]
    scan_filters: tuple[str, ...]
    """Filters pushed into the scan (``TableScan ... filters=``): what reached the provider."""
    predicate: str | None
    """The ``Filter`` predicates directly above the scan, joined with AND (the plan's predicate)."""
    exprs: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    """The DataFusion expressions of ``scan_filters`` and ``predicate`` (for translation)."""
    in_subquery: bool = False
    """A scan inside a subquery expression (``(<subquery>)``): DataFusion's Python API does not expose
    those plans (``Subquery.input()`` is empty), so it is known from the plan text only, without filters."""
    anonymous: bool = False
    """The scan's own table name is ``?table?`` (a view over DataFrames): ``table`` is the view's alias."""


def logical_scans(plan: LogicalPlan) -> list[LogicalScan]:
    """Every ``TableScan`` in ``plan`` (leftmost first) with its filters."""
    found: list[LogicalScan] = []

    def walk(node: LogicalPlan, filters: list[Any], alias: str | None) -> None:
        variant = variant_of(node)
        if isinstance(variant, dfx.TableScan):
            pushed = list(variant.filters())
            fqn = variant.fqn()
            table = fqn[-1] if fqn and fqn[-1] else variant.table_name()
            found.append(
                LogicalScan(
                    # A view over anonymous scans (``?table?``) is named by its alias.
                    table=alias if table == _ANONYMOUS_TABLE and alias else table,
                    projection=tuple(name for _, name in variant.projection()),
                    scan_filters=tuple(_expr_text(e) for e in pushed),
                    predicate=" AND ".join(_expr_text(e) for e in filters) or None,
                    exprs=(*pushed, *filters),
                    anonymous=table == _ANONYMOUS_TABLE,
                )
            )
            return
        below = [*filters, variant.predicate()] if isinstance(variant, dfx.Filter) else []
        if isinstance(variant, dfx.SubqueryAlias):
            alias = variant.alias()
        for child in node.inputs():
            walk(child, below, alias)

    walk(plan, [], None)
    # Scans inside subquery expressions are printed by display_indent() but not reachable by inputs().
    printed = Counter(printed_scan_names(plan.display_indent()))
    visited = Counter(scan.table for scan in found)
    for table, count in printed.items():
        found.extend(
            LogicalScan(
                table=table,
                projection=(),
                scan_filters=(),
                predicate=None,
                in_subquery=True,
                anonymous=table == _ANONYMOUS_TABLE,
            )
            for _ in range(count - visited[table])
        )
    return found


def printed_scan_names(text: str) -> list[str]:
    r"""The table of every ``TableScan`` line of a plan's ``display_indent()`` text, named as
    :func:`logical_scans` names them: a view's anonymous scan (``?table?``) by its nearest
    ``SubqueryAlias`` ancestor (the view's name), which the text shows for subquery expressions too.

    >>> printed_scan_names("SubqueryAlias: v\n  Filter: x\n    TableScan: ?table? projection=[a]\n"
    ...                    "TableScan: datafusion.public.t")
    ['v', 't']
    """
    names: list[str] = []
    ancestors: list[tuple[int, str]] = []  # (indent, line) of the lines above, innermost last
    for line in text.splitlines():
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        match = _TABLE_SCAN_RE.match(body)
        if match is not None:
            table = match.group(1).rsplit(".", 1)[-1]
            if table == _ANONYMOUS_TABLE:
                aliases = [a for _, a in ancestors if a.startswith(_SUBQUERY_ALIAS)]
                table = aliases[-1].removeprefix(_SUBQUERY_ALIAS) if aliases else table
            names.append(table)
        ancestors.append((indent, body))
    return names


def _expr_text(expr: Any) -> str:
    return str(expr.canonical_name()) if hasattr(expr, "canonical_name") else str(expr)


def _conjuncts(expr: Any) -> list[Any]:
    variant = variant_of(expr)
    if isinstance(variant, dfx.BinaryExpr) and variant.op().upper() == "AND":
        return [*_conjuncts(variant.left()), *_conjuncts(variant.right())]
    return [expr]


def variant_of(expr: Any) -> Any:
    """The variant of an expression or logical plan node, or ``None`` when DataFusion cannot convert it.

    ``tovariant_of()`` raises for some expressions (scalar functions such as ``substring``); such an
    expression is simply not translatable.
    """
    try:
        return expr.to_variant()
    except Exception:  # noqa: BLE001 - DataFusion raises bare Exception/ValueError here; the caller records it as untranslated
        return None


def _sql_literal(expr: Any) -> str | None:
    """A literal as Delta (DataFusion SQL) text, or ``None`` for types not translated.

    Left out on purpose, because a wrong guess would skip files that hold matching rows: timestamps
    (Delta's ``timestamp`` is UTC and ``timestamp_ntz`` is not) and floats (file statistics leave NaN out
    while DataFusion orders NaN above every number, so ``x > 5`` matches a NaN that no max reveals).
    """
    if not isinstance(variant_of(expr), dfx.Literal):
        return None
    scalar = expr.python_value()
    value = scalar.as_py() if isinstance(scalar, pa.Scalar) else scalar
    kind = scalar.type if isinstance(scalar, pa.Scalar) else None
    if value is None or kind is None:
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "'" + str(value).replace("'", "''") + "'"
    if pa.types.is_date(kind):
        return f"DATE '{value.isoformat()}'"
    if pa.types.is_boolean(kind):
        return "true" if value else "false"
    if pa.types.is_integer(kind):
        return str(int(value))
    if pa.types.is_decimal(kind):
        return str(Decimal(value))
    return None


def _sql_column(expr: Any) -> str | None:
    variant = variant_of(expr)
    if not isinstance(variant, dfx.Column):
        return None
    return '"' + variant.name().replace('"', '""') + '"'


def _translate(expr: Any) -> str | None:
    """One expression as a Delta file-pruning predicate, or ``None`` when it cannot be translated."""
    variant = variant_of(expr)
    if isinstance(variant, dfx.BinaryExpr):
        op = variant.op().upper()
        if op in {"AND", "OR"}:
            left, right = _translate(variant.left()), _translate(variant.right())
            if left is not None and right is not None:
                return f"({left} {op} {right})"
            # Dropping one side of an AND only widens the file set; an OR needs both sides.
            return (left or right) if op == "AND" else None
        if op in _COMPARISONS:
            column, literal = _sql_column(variant.left()), _sql_literal(variant.right())
            if column is not None and literal is not None:
                return f"{column} {op} {literal}"
            column, literal = _sql_column(variant.right()), _sql_literal(variant.left())
            if column is not None and literal is not None:
                return f"{column} {_COMPARISONS[op]} {literal}"
        return None
    if isinstance(variant, dfx.InList):
        column = _sql_column(variant.expr())
        items = [_sql_literal(e) for e in variant.list()]
        if column is None or not items or any(i is None for i in items):
            return None
        return f"{column} {'NOT IN' if variant.negated() else 'IN'} ({', '.join(items)})"  # type: ignore[arg-type]
    if isinstance(variant, dfx.Between):
        column = _sql_column(variant.expr())
        low, high = _sql_literal(variant.low()), _sql_literal(variant.high())
        if column is None or low is None or high is None:
            return None
        return f"{column} {'NOT BETWEEN' if variant.negated() else 'BETWEEN'} {low} AND {high}"
    if isinstance(variant, (dfx.IsNull, dfx.IsNotNull)):
        column = _sql_column(variant.expr())
        if column is None:
            return None
        return f"{column} {'IS NULL' if isinstance(variant, dfx.IsNull) else 'IS NOT NULL'}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaPredicate:
    """A plan predicate translated for ``DeltaTable.file_uris(file_pruning_predicate=...)``."""

    sql: str | None
    """The translated conjunction, ``None`` when nothing could be translated (or there was no predicate)."""
    untranslated: tuple[str, ...]
    """Conjuncts left out (their DataFusion text)."""


def translate_predicate(exprs: Iterable[Any]) -> DeltaPredicate:
    """Translate the conjunction of ``exprs`` into a Delta file-pruning predicate (see module docstring)."""
    translated: list[str] = []
    untranslated: list[str] = []
    for conjunct in (c for e in exprs for c in _conjuncts(e)):
        text = _translate(conjunct)
        if text is None:
            untranslated.append(_expr_text(conjunct))
        elif text not in translated:
            translated.append(text)
    return DeltaPredicate(sql=" AND ".join(translated) or None, untranslated=tuple(untranslated))


# ------------------------------------------------------------------------------ plan-time file pruning


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
    if any(scan.table == _ANONYMOUS_TABLE for scan in scans):
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


def bind_pruned_tables(
    ctx: SessionContext, sql: str, tables: Mapping[str, RegisteredTable]
) -> tuple[TablePruning, ...]:
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
        return ()
    started = time.perf_counter()
    try:
        plan = _predicate_plan(ctx, sql, tables, own)
    except Exception as exc:  # noqa: BLE001 - the logical phase plans again and records this failure as the plan's
        reason = f"not planned as a query: {type(exc).__name__}: {_first_line(exc)}"
        return tuple(_whole(t, started, reason) for t in own.values())
    predicates = pruning_predicates(plan, own)
    bound: list[TablePruning] = []
    try:
        for name, predicate in predicates.items():
            bound.append(_bind_table(ctx, own[name], predicate, started))
    except BaseException:  # tables bound before the failure are registered whole again, then it propagates
        restore_pruned_tables(ctx, bound, tables)
        raise
    return tuple(bound)


def _predicate_plan(
    ctx: SessionContext, sql: str, tables: Mapping[str, RegisteredTable], own: Mapping[str, RegisteredTable]
) -> LogicalPlan:
    """The optimized plan of ``sql`` whose scans carry each table's predicates.

    A partitioned ``delta_pruned_parquet`` table is a view whose partition columns are literals (one
    listing per partition): the optimizer folds a predicate on them away and its scans have no name. Then
    the query is planned over stand-ins (empty in-memory tables with the same names and schemas), where the
    predicate stays a ``Filter`` above the table's named scan, so Delta can prune partitions too.
    Queries only: ``ctx.sql`` runs DDL and statements at once, and the logical phase runs them.
    """
    if not any(_partitioned(table) for table in own.values()):
        return ctx.sql_with_options(sql, _QUERIES_ONLY).optimized_logical_plan()
    stand_ins = SessionContext()
    for name in tables:
        quoted = '"' + name.replace('"', '""') + '"'
        schema = ctx.table(quoted).schema()
        empty = pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
        stand_ins.register_record_batches(quoted, [[empty]])
    return stand_ins.sql_with_options(sql, _QUERIES_ONLY).optimized_logical_plan()


def _partitioned(table: RegisteredTable) -> bool:
    if table.version is None:
        return False  # bound whole at the snapshot pinned now (see _bind_table)
    try:
        snapshot = open_snapshot(table.uri, version=table.version, storage_options=table.storage_options)
    except (DeltaError, OSError, ValueError):
        return False  # binding fails alike and says why
    return bool(snapshot.partition_columns)


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
    missing = missing_links(link_files(snapshot, files))
    if missing:
        raise DatasetError(
            f"{len(missing)} live data file(s) of version {snapshot.version} are gone, e.g. {missing[0]}",
            dataset=table.dataset,
            uri=table.uri,
        )
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
            quoted = '"' + table.dataset.replace('"', '""') + '"'
            if ctx.table_exist(quoted):
                ctx.deregister_table(quoted)
            raise


# ------------------------------------------------------------------------------------------ scan units


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

    def to_payload(self) -> dict[str, Any]:
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

    def to_event(
        self, *, run_id: str, trace_id: str | None = None, span_id: str | None = None
    ) -> DiagnosticEvent:
        """The diagnostics record of this scan (``warn`` with a code when pruning was lost)."""
        code = PRUNING_LOST if self.pruning_lost else PRUNING_PARTIAL if self.pruning_partial else None
        message = None
        if code is not None:
            message = (
                f"scan of {self.dataset!r} read {self.candidate_files} of {self.total_files} files; "
                f"Delta's log statistics would skip {self.delta_prunable_files} for {self.delta_predicate}"
            )
        return DiagnosticEvent(
            name=SCAN_UNIT_EVENT,
            run_id=run_id,
            severity=Severity.WARN if code else Severity.INFO,
            category=Category.SCAN_PRUNING,
            kind=EventKind.ARTIFACT,
            code=code,
            message=message,
            dataset=self.dataset,
            plan=self.plan,
            trace_id=trace_id,
            span_id=span_id,
            payload=self.to_payload(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _PhysicalScan:
    operator: str
    filenames: frozenset[str]
    opened: frozenset[str]
    files_opened: int | None
    bytes_scanned: int | None
    row_groups: PruningCount | None
    file_ranges: PruningCount | None
    output_rows: int | None
    union: int | None = None
    merged: int = 1
    columns: frozenset[tuple[str, int]] = frozenset()
    """``(name, index)`` of its output columns, as the operators above it reference them (``id@0``)."""


@dataclass(slots=True)
class _Snapshot:
    """The live files of one registered table (pinned versions are loaded once per process)."""

    table: DeltaTable | None
    files: tuple[str, ...] | None
    error: str | None
    prunable: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)
    pinned: PinnedSnapshot | None = None
    """The snapshot ``delta_pruned_parquet`` registration loaded: its candidates per predicate are cached,
    so a predicate plan-time pruning already asked is not evaluated again."""


def _physical_scans(plan: OperatorSnapshot) -> list[_PhysicalScan]:
    """Every scan of the physical plan, leftmost first.

    Scans reached from a ``UnionExec`` through single-input operators carry that union's number, so that
    the per-file scans of a table registered as a union of files (:func:`~codeanatomy_assets.bench.tpch.
    native_parquet_register`) can be counted as one scan of that table.
    """
    found: list[_PhysicalScan] = []
    unions = iter(range(1, 1 << 30))

    def walk(node: OperatorSnapshot, union: int | None, columns: frozenset[tuple[str, int]]) -> None:
        name = node.name
        children = node.children
        if name == _DELTA_SCAN or (not children and name not in _NON_SCAN_LEAVES):
            found.append(replace(_summarize_scan(node, name), union=union, columns=columns))
            return
        if name == "UnionExec":
            union = next(unions)
        elif len(children) != 1:
            union = None
        for index, child in enumerate(children):
            walk(child, union, _child_columns(node, index, columns))

    walk(plan, None, frozenset())
    return found


def _child_columns(
    node: OperatorSnapshot, index: int, columns: frozenset[tuple[str, int]]
) -> frozenset[tuple[str, int]]:
    """The ``name@index`` references to child ``index``'s output that ``node`` (and, through operators that
    keep their input's columns, the operators above it) shows: a join's keys, a filter's predicate, ..."""
    name, text = node.name, node.display
    if name.endswith("JoinExec"):
        on = _JOIN_ON_RE.search(text)
        pairs = _JOIN_PAIR_RE.findall(on.group(1)) if on else []
        return frozenset((col, int(i)) for col, i in (pair[2 * index : 2 * index + 2] for pair in pairs))
    if len(node.children) != 1:
        return columns if name == "UnionExec" else frozenset()
    own = frozenset((col, int(i)) for col, i in _COLUMN_REF_RE.findall(text))
    keeps = name in _COLUMN_KEEPING or (name == "FilterExec" and "projection=" not in text)
    return own | columns if keeps else own


def _merge_union_scans(
    attributed: list[tuple[_PhysicalScan, str | None, str]],
) -> list[tuple[_PhysicalScan, str | None, str]]:
    """Fold the scans of one table under one union into a single scan (their counts summed)."""
    merged: list[tuple[_PhysicalScan, str | None, str]] = []
    index: dict[tuple[int, str], int] = {}
    for scan, name, how in attributed:
        key = (scan.union, name) if scan.union is not None and name is not None else None
        if key is None or key not in index:
            if key is not None:
                index[key] = len(merged)
            merged.append((scan, name, how))
            continue
        first, _, first_how = merged[index[key]]
        merged[index[key]] = (_combine(first, scan), name, first_how)
    return merged


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _add_pruning(a: PruningCount | None, b: PruningCount | None) -> PruningCount | None:
    if a is None or b is None:
        return a or b
    return PruningCount(total=a.total + b.total, matched=a.matched + b.matched, exact=a.exact and b.exact)


def _combine(a: _PhysicalScan, b: _PhysicalScan) -> _PhysicalScan:
    return replace(
        a,
        filenames=a.filenames | b.filenames,
        opened=a.opened | b.opened,
        files_opened=_add(a.files_opened, b.files_opened),
        bytes_scanned=_add(a.bytes_scanned, b.bytes_scanned),
        row_groups=_add_pruning(a.row_groups, b.row_groups),
        file_ranges=_add_pruning(a.file_ranges, b.file_ranges),
        output_rows=_add(a.output_rows, b.output_rows),
        merged=a.merged + b.merged,
    )


def _summarize_scan(node: OperatorSnapshot, name: str) -> _PhysicalScan:
    """The exact counts of one scan from its metrics (and those of the operators inside it)."""
    metrics = node.subtree_metrics()
    labelled: set[str] = set()
    opened: set[str] = set()
    sums: Counter[str] = Counter()
    pruning: dict[str, list[PruningCount | None]] = {}
    for metric in metrics:
        filename = metric.labels.get("filename")
        if filename:
            labelled.add(filename)
        if metric.name in _PRUNING_METRICS:
            count = parse_pruning(metric.text or "")
            pruning.setdefault(metric.name, []).append(count)
            if filename and count is not None and count.total > 0 and metric.name == _ROW_GROUPS:
                opened.add(filename)
        elif metric.name in _SUMMED_METRICS and (value := metric.exact_int) is not None:
            sums[metric.name] += value
            # A file whose metadata was loaded or whose bytes were read was opened; a file pruned by its
            # statistics before opening still gets labelled metrics, all zero.
            if filename and value > 0 and metric.name in {"bytes_scanned", "metadata_load_time"}:
                opened.add(filename)
    return _PhysicalScan(
        operator=name,
        filenames=frozenset(labelled),
        opened=frozenset(opened),
        files_opened=sums.get("files_opened"),
        bytes_scanned=sums.get("bytes_scanned"),
        row_groups=_sum_pruning(pruning.get(_ROW_GROUPS)),
        file_ranges=_sum_pruning(pruning.get(_FILE_RANGES)),
        output_rows=node.output_rows,
    )


def _sum_pruning(counts: list[PruningCount | None] | None) -> PruningCount | None:
    if not counts:
        return None
    parsed = [c for c in counts if c is not None]
    return PruningCount(
        total=sum(c.total for c in parsed),
        matched=sum(c.matched for c in parsed),
        exact=len(parsed) == len(counts) and all(c.exact for c in parsed),
    )


def _path_key(uri: str) -> str:
    """A file location as DataFusion prints it: no scheme (and no bucket for object stores), no leading /."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        uri = uri.split("://", 1)[1].split("/", 1)[-1]
    return uri.lstrip("/")


def _open_snapshot(registered: RegisteredTable) -> _Snapshot:
    options = tuple(sorted(registered.storage_options.items()))
    if registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET and registered.version is not None:
        try:
            pinned = open_snapshot(
                registered.uri, version=registered.version, storage_options=registered.storage_options
            )
        except (DeltaError, OSError, ValueError):
            pass  # opened below as for any mode, which records the error
        else:
            files = tuple(f.uri for f in pinned.files)
            return _Snapshot(table=pinned.table, files=files, error=None, pinned=pinned)
    try:
        if registered.version is None:  # "latest" may move: open it every time
            table, files = _load_snapshot(registered.uri, None, options)
        else:
            table, files = _pinned_snapshot(registered.uri, registered.version, options)
    except (DeltaError, OSError, ValueError) as exc:  # not a Delta table, or unreadable: say so in the unit
        return _Snapshot(table=None, files=None, error=f"live files unavailable: {type(exc).__name__}: {exc}")
    return _Snapshot(table=table, files=files, error=None)


def _load_snapshot(
    uri: str, version: int | None, options: tuple[tuple[str, str], ...]
) -> tuple[DeltaTable, tuple[str, ...]]:
    table = DeltaTable(uri, version=version, storage_options=dict(options) or None)
    return table, tuple(table.file_uris())


@functools.lru_cache(maxsize=256)
def _pinned_snapshot(
    uri: str, version: int, options: tuple[tuple[str, str], ...]
) -> tuple[DeltaTable, tuple[str, ...]]:
    """A table version never changes, so its snapshot is loaded once per process."""
    return _load_snapshot(uri, version, options)


def _delta_candidates(snapshot: _Snapshot, predicate: str) -> tuple[int | None, str | None]:
    if predicate not in snapshot.prunable:
        if snapshot.table is None:
            snapshot.prunable[predicate] = (None, snapshot.error)
        else:
            try:
                kept = (
                    snapshot.pinned.candidates(predicate)
                    if snapshot.pinned is not None
                    else snapshot.table.file_uris(file_pruning_predicate=predicate)
                )
                snapshot.prunable[predicate] = (len(kept), None)
            except (DeltaError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                snapshot.prunable[predicate] = (
                    None,
                    f"file_pruning_predicate failed: {type(exc).__name__}: {first}",
                )
    return snapshot.prunable[predicate]


def collect_scan_units(
    *,
    plan_name: str,
    executed: ExecutionPlan | OperatorSnapshot,
    optimized: LogicalPlan,
    tables: Mapping[str, RegisteredTable],
    pruning: Iterable[TablePruning] = (),
    sql: str | None = None,
) -> list[ScanUnit]:
    """Scan units of a plan that has run once (its metrics are read, nothing is re-executed).

    ``pruning`` is what :func:`bind_pruned_tables` did for this plan (``files_bound``). ``sql``, the plan's
    query, lets predicates on partition columns be seen (:func:`_partition_predicates`).
    """
    bound = {p.dataset: p.files for p in pruning}
    scans = logical_scans(optimized)
    by_table: dict[str, list[LogicalScan]] = {}
    for scan in scans:
        by_table.setdefault(scan.table, []).append(scan)
    snapshots = {name: _open_snapshot(tables[name]) for name in by_table if name in tables}
    if sql is not None:
        by_table.update(_partition_predicates(sql, by_table, tables, snapshots))
    owner: dict[str, str] = {}
    for name, snapshot in snapshots.items():
        for uri in snapshot.files or ():
            owner[_path_key(uri)] = name

    physical = _physical_scans(executed if isinstance(executed, OperatorSnapshot) else read_plan(executed))
    attributed: list[tuple[_PhysicalScan, str | None, str]] = []
    remaining = Counter(scan.table for scan in scans)
    for scan in physical:
        names = {owner.get(_path_key(link_target(f) or f)) for f in scan.filenames}
        name = names.pop() if len(names) == 1 else None
        if name is not None:
            remaining[name] -= 1
        attributed.append((scan, name, "files" if name else "unattributed"))
    left = [name for name, count in remaining.items() if count > 0]
    unmatched = [i for i, (_, name, _) in enumerate(attributed) if name is None]
    if len(left) == 1 and len(unmatched) <= remaining[left[0]]:
        for i in unmatched:
            attributed[i] = (attributed[i][0], left[0], "only_scan")
    else:
        _attribute_by_columns(attributed, remaining, by_table)
    untied = tuple(sorted(name for name, count in remaining.items() if count > 0))
    return [
        _scan_unit(
            plan_name=plan_name,
            scan=scan,
            name=name,
            attribution=how,
            logical=by_table.get(name or "", []),
            tables=tables,
            snapshots=snapshots,
            files_bound=bound.get(name or ""),
            possible=untied if name is None else (),
        )
        for scan, name, how in _merge_union_scans(attributed)
    ]


def _attribute_by_columns(
    attributed: list[tuple[_PhysicalScan, str | None, str]],
    remaining: Counter[str],
    by_table: Mapping[str, Sequence[LogicalScan]],
) -> None:
    """Tie scans that read no file of a table (in-memory tables) by their columns: a scan whose column
    references (``id@0``, :func:`_child_columns`) fit the projection of only one table still unmatched is
    that table's. Repeated while it ties one more; ``remaining`` is updated."""
    progress = True
    while progress:
        progress = False
        for i, (scan, name, _) in enumerate(attributed):
            if name is not None or not scan.columns:
                continue
            fits = [
                table
                for table, count in remaining.items()
                if count > 0
                and any(_columns_fit(scan.columns, s.projection) for s in by_table.get(table, ()))
            ]
            if len(fits) == 1:
                attributed[i] = (scan, fits[0], "columns")
                remaining[fits[0]] -= 1
                progress = True


def _columns_fit(columns: Iterable[tuple[str, int]], projection: Sequence[str]) -> bool:
    return all(index < len(projection) and projection[index] == column for column, index in columns)


def _partition_predicates(
    sql: str,
    by_table: Mapping[str, Sequence[LogicalScan]],
    tables: Mapping[str, RegisteredTable],
    snapshots: Mapping[str, _Snapshot],
) -> dict[str, list[LogicalScan]]:
    """The scans of partitioned ``delta_pruned_parquet`` tables with their predicates on partition columns.

    Such a table is a view whose partition columns are literals (one listing per partition), so the
    optimizer folds a predicate on them into ``true`` or ``false`` and drops the excluded partitions before
    any scan sees it. Planned again over stand-ins (empty in-memory tables of the same schemas), the same
    query keeps that predicate as a ``Filter`` above the table's scan: each scan gets the stand-in's
    predicate (its own scan filters stay). A query the stand-ins cannot plan leaves the scans as they are.
    """
    views = [
        name
        for name, found in by_table.items()
        if any(s.anonymous for s in found)
        and (snapshot := snapshots.get(name)) is not None
        and snapshot.pinned is not None
        and snapshot.pinned.partition_columns
    ]
    if not views:
        return {}
    ctx = SessionContext()
    try:
        for name, registered in tables.items():
            snapshot = snapshots.get(name) or _open_snapshot(registered)
            schema = _table_schema(snapshot)
            empty = pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
            ctx.register_record_batches(name, [[empty]])
        planned = logical_scans(ctx.sql_with_options(sql, _QUERIES_ONLY).optimized_logical_plan())
    except Exception:  # noqa: BLE001 - DataFusion raises bare Exception: the partition predicates stay unknown, as before
        return {}
    found: dict[str, list[LogicalScan]] = {}
    for name in views:
        real = list(by_table[name])
        stand_in = [s for s in planned if s.table == name]
        if len(stand_in) == len(real):
            found[name] = [
                replace(r, predicate=s.predicate, exprs=s.exprs) for r, s in zip(real, stand_in, strict=True)
            ]
        elif stand_in:  # partitions dropped whole scans: every stand-in predicate, as for a self-join
            filters = tuple(dict.fromkeys(f for r in real for f in r.scan_filters))
            found[name] = [replace(s, scan_filters=filters) for s in stand_in]
    return found


def _table_schema(snapshot: _Snapshot) -> pa.Schema:
    if snapshot.pinned is not None:
        return snapshot.pinned.schema
    if snapshot.table is None:
        raise ValueError(snapshot.error or "table not readable")
    # pyarrow-stubs lacks the Arrow PyCapsule overload (a deltalake Schema exports __arrow_c_schema__).
    return pa.schema(snapshot.table.schema())  # pyright: ignore[reportArgumentType]


def _unit_predicate(logical: Sequence[LogicalScan]) -> tuple[DeltaPredicate | None, str | None, str | None]:
    """The predicate for a physical scan of a table read by ``logical`` scans: (translated, text, ambiguity).

    One logical scan, or several with the same predicate: that predicate. Several with different
    predicates (a self-join, a CTE read twice): the physical scans cannot be told apart, so the OR of
    them, which holds for each; when one of them has no predicate the answer is unknown (ambiguity set).
    """
    if not logical:
        return None, None, None
    texts = [s.predicate or None for s in logical]
    parts = [translate_predicate(s.exprs) for s in logical]
    if len(set(texts)) == 1 and len({p.sql for p in parts}) == 1:
        return parts[0], texts[0], None
    if any(s.in_subquery for s in logical):
        return (
            None,
            None,
            (
                f"a scan of {logical[0].table!r} sits inside a subquery expression, whose plan DataFusion's "
                "Python API does not expose: its predicate, and Delta's skippable files, are unknown"
            ),
        )
    if any(not s.exprs for s in logical):
        return (
            None,
            None,
            (
                f"{len(logical)} scans of {logical[0].table!r} with different predicates, one without any, "
                "cannot be told apart: Delta's skippable files unknown"
            ),
        )
    text = " OR ".join(dict.fromkeys(f"({t})" for t in texts if t))
    untranslated = tuple(dict.fromkeys(u for p in parts for u in p.untranslated))
    if all(p.sql for p in parts):
        sql = " OR ".join(dict.fromkeys(f"({p.sql})" for p in parts))
        return DeltaPredicate(sql=sql, untranslated=untranslated), text, None
    return DeltaPredicate(sql=None, untranslated=untranslated), text, None


def _scan_unit(
    *,
    plan_name: str,
    scan: _PhysicalScan,
    name: str | None,
    attribution: str,
    logical: Sequence[LogicalScan],
    tables: Mapping[str, RegisteredTable],
    snapshots: Mapping[str, _Snapshot],
    files_bound: int | None = None,
    possible: tuple[str, ...] = (),
) -> ScanUnit:
    errors: list[str] = []
    registered = tables.get(name) if name else None
    snapshot = snapshots.get(name) if name else None
    if name is None:
        errors.append(
            "scan could not be tied to a registered table (it read no file of one, and its columns fit "
            + (f"{len(possible)} tables)" if possible else "none)")
        )
    elif registered is None:
        errors.append(f"table {name!r} is not in the registered tables passed to the plan")
    if snapshot is not None and snapshot.error:
        errors.append(snapshot.error)
    total = len(snapshot.files) if snapshot is not None and snapshot.files is not None else None
    candidates = len(scan.opened) if scan.filenames or scan.files_opened is not None else None

    scan_filters = tuple(dict.fromkeys(f for s in logical for f in s.scan_filters))
    predicate, predicate_text, ambiguity = _unit_predicate(logical)
    if ambiguity:
        errors.append(ambiguity)
    delta_candidates: int | None = None
    prunable: int | None = None
    if predicate is not None and predicate.sql and snapshot is not None:
        delta_candidates, error = _delta_candidates(snapshot, predicate.sql)
        if error:
            errors.append(error)
        elif total is not None and delta_candidates is not None:
            prunable = total - delta_candidates
    elif predicate is not None and predicate_text and not predicate.sql:
        errors.append(
            "predicate could not be translated for Delta file pruning: " + "; ".join(predicate.untranslated)
        )
    elif not predicate_text and not ambiguity and total is not None:
        prunable, delta_candidates = 0, total  # no predicate: nothing to skip
    return ScanUnit(
        plan=plan_name,
        dataset=registered.dataset if registered else name,
        operator=scan.operator,
        provider_mode=registered.provider_mode if registered else None,
        protocol_compatible=registered.protocol_compatible if registered else None,
        table_version=snapshot.table.version()
        if snapshot is not None and snapshot.table is not None
        else None,
        total_files=total,
        candidate_files=candidates,
        pruned_files=total - candidates if total is not None and candidates is not None else None,
        files_opened=scan.files_opened,
        scan_filters=scan_filters,
        predicate=predicate_text,
        delta_predicate=predicate.sql if predicate else None,
        untranslated_predicates=predicate.untranslated if predicate else (),
        delta_candidate_files=delta_candidates,
        delta_prunable_files=prunable,
        row_groups_total=scan.row_groups.total if scan.row_groups else None,
        row_groups_matched=scan.row_groups.matched if scan.row_groups else None,
        row_groups_exact=scan.row_groups.exact if scan.row_groups else True,
        file_ranges_total=scan.file_ranges.total if scan.file_ranges else None,
        file_ranges_matched=scan.file_ranges.matched if scan.file_ranges else None,
        bytes_scanned=scan.bytes_scanned,
        output_rows=scan.output_rows,
        merged_scans=scan.merged,
        attribution=attribution,
        errors=tuple(errors),
        files_bound=files_bound,
        dataset_candidates=possible if len(possible) > 1 else (),
    )


# -------------------------------------------------------------------------------------------- rendering


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_scan_units_markdown(units: Sequence[ScanUnit]) -> str:
    """A markdown table of scan units, one row per scan, for reports and Dagster metadata."""
    header = (
        "| plan | dataset | provider | live files | read | skipped | Delta could skip | row groups read |"
        " bytes scanned | predicate | status |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|\n"
    )
    rows = []
    for unit in units:
        status = PRUNING_LOST if unit.pruning_lost else PRUNING_PARTIAL if unit.pruning_partial else "ok"
        if unit.errors:
            status += " (" + "; ".join(unit.errors) + ")"
        groups = None
        if unit.row_groups_total is not None:
            groups = f"{unit.row_groups_matched}/{unit.row_groups_total}" + (
                "" if unit.row_groups_exact else " ≈"
            )
        rows.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    unit.plan,
                    unit.dataset_label,
                    unit.provider_mode.value if unit.provider_mode else None,
                    unit.total_files,
                    unit.candidate_files,
                    unit.pruned_files,
                    unit.delta_prunable_files,
                    groups,
                    unit.bytes_scanned,
                    unit.delta_predicate or unit.predicate,
                    status,
                )
            )
            + " |\n"
        )
    return header + "".join(rows)
