"""Operators of a plan: its joins (physical and logical) and every operator's metrics from the one run.

The metrics are read from the plan that executed (nothing runs twice) and summed per operator;
:func:`render_explain_analyze` prints them as an ``EXPLAIN ANALYZE``-like text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datafusion.expr as dfx
from datafusion.plan import ExecutionPlan, LogicalPlan

from codeanatomy_assets.engine.metrics import MetricReading, OperatorSnapshot, read_plan
from codeanatomy_assets.engine.predicates import variant_of
from codeanatomy_assets.engine.scan_metrics import operator_name, parse_pruning


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinOperator:
    """A join of the physical plan: operator, type and keys as DataFusion prints them."""

    operator: str
    join_type: str | None
    mode: str | None
    on: tuple[tuple[str, str], ...]
    filter: str | None

    def to_row(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "operator": self.operator,
            "join_type": self.join_type,
            "mode": self.mode,
            "on": [list(pair) for pair in self.on],
            "filter": self.filter,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorMetrics:
    """One operator's metrics from the execution, summed over partitions (and files)."""

    operator: str
    depth: int
    metrics: Mapping[str, Any]
    """Counters and times (ns) summed; pruning metrics as ``NAME.total``/``NAME.matched``; timestamps as
    the earliest start / latest end (ISO); other texts (ratios) as the list of their per-partition texts."""
    inexact: tuple[str, ...] = ()
    """Metrics whose text was rounded by DataFusion (``3.00 K``), so their sums are approximate."""

    def to_row(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "operator": self.operator,
            "depth": self.depth,
            "metrics": dict(self.metrics),
            "inexact": list(self.inexact),
        }


# ------------------------------------------------------------------------------------------- joins


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def operator_fields(display: str) -> dict[str, str]:
    """The ``key=value`` fields of an operator's display text.

    >>> operator_fields("HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@1)]")["on"]
    '[(a@0, b@1)]'
    """
    _, _, rest = display.partition(":")
    fields: dict[str, str] = {}
    last: str | None = None
    for part in _split_top_level(rest):
        key, eq, value = part.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            last = key.strip()
            fields[last] = value.strip()
        elif last is not None:
            fields[last] += ", " + part
    return fields


def _join_keys(on: str) -> tuple[tuple[str, str], ...]:
    inner = on.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    pairs: list[tuple[str, str]] = []
    for pair in _split_top_level(inner):
        body = pair[1:-1] if pair.startswith("(") and pair.endswith(")") else pair
        sides = _split_top_level(body)
        if len(sides) == 2:
            pairs.append((sides[0], sides[1]))
    return tuple(pairs)


def physical_joins(plan: ExecutionPlan) -> tuple[JoinOperator, ...]:
    """Every join operator of a physical plan, top first."""
    joins: list[JoinOperator] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        name = operator_name(node)
        if "Join" in name:
            joins.append(_join_operator(name, operator_fields(node.display())))
        stack.extend(reversed(node.children()))
    return tuple(joins)


def _join_operator(name: str, fields: Mapping[str, str]) -> JoinOperator:
    return JoinOperator(
        operator=name,
        join_type=fields.get("join_type"),
        mode=fields.get("mode"),
        on=_join_keys(fields.get("on", "")),
        filter=fields.get("filter"),
    )


def logical_joins(plan: LogicalPlan) -> list[dict[str, Any]]:
    """Every join of a logical plan with its type, keys (qualified names) and filter."""
    joins: list[dict[str, Any]] = []

    def walk(node: LogicalPlan) -> None:
        variant = variant_of(node)
        if isinstance(variant, dfx.Join):
            joins.append(_logical_join(variant))
        for child in node.inputs():
            walk(child)

    walk(plan)
    return joins


def _logical_join(join: Any) -> dict[str, Any]:
    """Type, keys (qualified names) and filter of a ``datafusion.expr.Join`` variant."""
    condition = join.filter()
    return {
        "join_type": str(join.join_type()),
        "on": [[left.canonical_name(), right.canonical_name()] for left, right in join.on()],
        "filter": condition.canonical_name() if condition is not None else None,
    }


# ----------------------------------------------------------------------------------------- metrics


@dataclass(slots=True)
class _MetricSums:
    """One operator's metrics summed over its partitions (and files)."""

    values: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    inexact: set[str] = field(default_factory=set)

    def add(self, metric: MetricReading) -> None:
        name, value = metric.name, metric.value
        if isinstance(value, dt.datetime):
            self._add_timestamp(name, value.isoformat())
        elif isinstance(value, int):
            self._count(name, value)
        else:  # value None: a count, a pruning or a ratio, only in its text
            self._add_text(name, metric.text or "")

    def _count(self, name: str, count: int) -> None:
        self.values[name] = self.values.get(name, 0) + count

    def _add_timestamp(self, name: str, stamp: str) -> None:
        """The earliest start, the latest end."""
        pick = min if name.startswith("start") else max
        self.values[name] = pick(self.values.get(name, stamp), stamp)

    def _add_text(self, name: str, text: str) -> None:
        if text.isdigit():
            self._count(name, int(text))
            return
        pruning = parse_pruning(text)
        if pruning is None:
            self.texts.setdefault(name, []).append(text)
            return
        self._count(f"{name}.total", pruning.total)
        self._count(f"{name}.matched", pruning.matched)
        if not pruning.exact:
            self.inexact.add(name)

    def result(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The sums (texts last) and the metrics whose sum is approximate."""
        return {**self.values, **self.texts}, tuple(sorted(self.inexact))


def _aggregate_metrics(metrics: Sequence[MetricReading]) -> tuple[dict[str, Any], tuple[str, ...]]:
    sums = _MetricSums()
    for metric in metrics:
        sums.add(metric)
    return sums.result()


def operator_metrics(plan: ExecutionPlan | OperatorSnapshot) -> tuple[OperatorMetrics, ...]:
    """Every operator's metrics of an executed plan, top first, with depths.

    Takes the plan itself or its :func:`~codeanatomy_assets.engine.metrics.read_plan` copy (read once,
    shared with the scan units).
    """
    snapshot = plan if isinstance(plan, OperatorSnapshot) else read_plan(plan)
    found: list[OperatorMetrics] = []
    for node, depth in snapshot.walk():
        if node.metrics is not None:
            values, inexact = _aggregate_metrics(node.metrics)
            found.append(OperatorMetrics(operator=node.display, depth=depth, metrics=values, inexact=inexact))
    return tuple(found)


def _format_metric(name: str, value: Any) -> str:
    if isinstance(value, int) and ("time" in name or name == "elapsed_compute"):
        return f"{name}={value / 1e6:.3f}ms"
    if isinstance(value, list):
        return f"{name}=[{'; '.join(value)}]"
    return f"{name}={value}"


def render_explain_analyze(metrics: Sequence[OperatorMetrics]) -> str:
    """An EXPLAIN ANALYZE-like text of the one execution (timestamps left out)."""
    lines = []
    for op in metrics:
        shown = [
            _format_metric(name, value)
            for name, value in op.metrics.items()
            if name not in {"start_timestamp", "end_timestamp"}
        ]
        lines.append(f"{'  ' * op.depth}{op.operator}, metrics=[{', '.join(shown)}]")
    return "\n".join(lines)
