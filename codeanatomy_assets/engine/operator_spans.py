"""Operator-level spans: where a plan's execute phase spent its time, one span per physical operator.

After a plan ran, its operators' metrics (:func:`~codeanatomy_assets.engine.operators.operator_metrics`,
summed over partitions) become child spans of the ``datafusion.plan.execute`` span, nested as the operators
are (a scan is the child of the filter above it). Each span is named ``datafusion.operator.<Operator>``,
runs from the operator's ``start_timestamp`` to its ``end_timestamp`` (the execute span's bounds when
DataFusion recorded none) and carries:

- ``datafusion.operator.name``, ``.depth`` and ``.display`` (the operator's one-line plan text, cut);
- ``datafusion.operator.elapsed_compute_ms`` (CPU time summed over partitions; it can exceed the span's
  wall time on several cores) and ``.output_rows``;
- every other numeric metric as ``datafusion.metric.<name>`` (spills, bytes, pruning ``.total``/``.matched``).

The spans are made after the execution, with explicit start and end times: a trace viewer shows them
inside the execute span, and nothing is timed twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from codeanatomy_assets.engine.metrics import operator_name_of
from codeanatomy_assets.engine.operators import OperatorMetrics

DISPLAY_LIMIT: Final = 300
_SPECIAL: Final = frozenset({"start_timestamp", "end_timestamp", "elapsed_compute", "output_rows"})


def _ns(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1e9)
    except ValueError:
        return None


def _bounds(metrics: Mapping[str, Any], window: tuple[int, int]) -> tuple[int, int]:
    """The operator's start and end (ns), kept inside the execute span's ``window``."""
    start = _ns(metrics.get("start_timestamp")) or window[0]
    end = _ns(metrics.get("end_timestamp")) or window[1]
    start = min(max(start, window[0]), window[1])
    return start, max(min(end, window[1]), start)


def operator_attributes(operator: OperatorMetrics) -> dict[str, Any]:
    """The span attributes of one operator."""
    metrics = operator.metrics
    attributes: dict[str, Any] = {
        "datafusion.operator.name": operator_name_of(operator.operator),
        "datafusion.operator.depth": operator.depth,
        "datafusion.operator.display": operator.operator[:DISPLAY_LIMIT],
    }
    if isinstance(elapsed := metrics.get("elapsed_compute"), int):
        attributes["datafusion.operator.elapsed_compute_ms"] = elapsed / 1e6
    if isinstance(rows := metrics.get("output_rows"), int):
        attributes["datafusion.operator.output_rows"] = rows
    for name, value in metrics.items():
        if name not in _SPECIAL and isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"datafusion.metric.{name}"] = value
    return attributes


def _window(execute: Span) -> tuple[int, int] | None:
    """The execute span's start and end (ns), read from the SDK span; ``None`` when not recorded."""
    start, end = getattr(execute, "start_time", None), getattr(execute, "end_time", None)
    return (start, end) if isinstance(start, int) and isinstance(end, int) else None


def emit_operator_spans(tracer: Tracer, execute: Span, operators: Sequence[OperatorMetrics]) -> int:
    """One span per operator under ``execute`` (ended), nested by depth; returns how many were made."""
    window = _window(execute)
    if window is None or not execute.get_span_context().is_valid:
        return 0
    parents: list[tuple[int, Span]] = []
    for operator in operators:
        while parents and parents[-1][0] >= operator.depth:
            parents.pop()
        parent = parents[-1][1] if parents else execute
        start, end = _bounds(operator.metrics, window)
        span = tracer.start_span(
            f"datafusion.operator.{operator_name_of(operator.operator)}",
            context=trace.set_span_in_context(parent),
            start_time=start,
            attributes=operator_attributes(operator),
        )
        span.end(end_time=end)
        parents.append((operator.depth, span))
    return len(operators)


def top_operators(operators: Sequence[OperatorMetrics], count: int = 3) -> list[dict[str, Any]]:
    """The ``count`` operators with the most compute time: name, elapsed compute (ms), output rows."""
    timed = [o for o in operators if isinstance(o.metrics.get("elapsed_compute"), int)]
    ranked = sorted(timed, key=lambda o: -o.metrics["elapsed_compute"])[:count]
    return [
        {
            "operator": operator_name_of(o.operator),
            "elapsed_compute_ms": round(o.metrics["elapsed_compute"] / 1e6, 3),
            "output_rows": o.metrics.get("output_rows"),
        }
        for o in ranked
    ]
