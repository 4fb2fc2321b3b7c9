"""Predicate translation: the optimized logical plan's scans, and their filters as Delta predicates.

:func:`logical_scans` finds every ``TableScan`` of an optimized logical plan with the filters that apply
to it (the ``Filter`` directly above it plus the scan's own filters). :func:`translate_predicate` turns
them into a Delta file-pruning predicate (``DeltaTable.file_uris(file_pruning_predicate=...)``):
comparisons of a column with a literal, ``IN``, ``BETWEEN``, ``IS [NOT] NULL``, and ``AND``/``OR`` of
those. Conjuncts that cannot be translated are listed as untranslated and dropped; dropping a conjunct
only widens the file set, so what Delta keeps is a superset, never an overclaim.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import datafusion.expr as dfx
import pyarrow as pa
from datafusion.plan import LogicalPlan

ANONYMOUS_TABLE: Final = "?table?"
"""The table name DataFusion gives a scan of a view over DataFrames."""
_SUBQUERY_ALIAS: Final = "SubqueryAlias: "
_TABLE_SCAN_RE: Final = re.compile(r"^\s*TableScan: (\S+)", re.MULTILINE)
_COMPARISONS: Final = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


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
            found.append(_logical_scan(variant, filters, alias))
            return
        below = [*filters, variant.predicate()] if isinstance(variant, dfx.Filter) else []
        if isinstance(variant, dfx.SubqueryAlias):
            alias = variant.alias()
        for child in node.inputs():
            walk(child, below, alias)

    walk(plan, [], None)
    return found + _subquery_scans(plan, found)


def _logical_scan(scan: Any, filters: Sequence[Any], alias: str | None) -> LogicalScan:
    """A ``TableScan`` variant below the ``Filter`` predicates ``filters`` (and ``SubqueryAlias`` alias)."""
    pushed = list(scan.filters())
    fqn = scan.fqn()
    table = fqn[-1] if fqn and fqn[-1] else scan.table_name()
    return LogicalScan(
        # A view over anonymous scans (``?table?``) is named by its alias.
        table=alias if table == ANONYMOUS_TABLE and alias else table,
        projection=tuple(name for _, name in scan.projection()),
        scan_filters=tuple(_expr_text(e) for e in pushed),
        predicate=" AND ".join(_expr_text(e) for e in filters) or None,
        exprs=(*pushed, *filters),
        anonymous=table == ANONYMOUS_TABLE,
    )


def _subquery_scans(plan: LogicalPlan, visited_scans: Sequence[LogicalScan]) -> list[LogicalScan]:
    """Scans inside subquery expressions: printed by ``display_indent()``, not reachable by ``inputs()``."""
    printed = Counter(printed_scan_names(plan.display_indent()))
    visited = Counter(scan.table for scan in visited_scans)
    return [
        LogicalScan(
            table=table,
            projection=(),
            scan_filters=(),
            predicate=None,
            in_subquery=True,
            anonymous=table == ANONYMOUS_TABLE,
        )
        for table, count in printed.items()
        for _ in range(count - visited[table])
    ]


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
            if table == ANONYMOUS_TABLE:
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
    if not isinstance(scalar, pa.Scalar):
        return None
    value = scalar.as_py()
    return None if value is None else _typed_literal(value, scalar.type)


def _typed_literal(value: Any, kind: pa.DataType) -> str | None:
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
        return _translate_binary(variant)
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


def _translate_binary(variant: Any) -> str | None:
    """A ``BinaryExpr``: ``AND``/``OR`` of translatable sides, or a column compared with a literal."""
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
