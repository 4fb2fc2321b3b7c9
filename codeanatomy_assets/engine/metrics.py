"""The metrics of an executed physical plan, read across DataFusion's FFI once.

After a plan ran, every operator holds its metrics (``ExecutionPlan.metrics()``). Reading them is an FFI
call per operator, per metric and per field (``name``, ``value``, ``labels()``, the text of metrics whose
``value`` is ``None``), and a plan over a few dozen files holds thousands of per-file metrics. Both the
operator metrics of the plan artifact and the scan units need them, so :func:`read_plan` copies the whole
executed plan once into plain frozen records (:class:`OperatorSnapshot`), and both read those.

>>> from datafusion import SessionContext
>>> ctx = SessionContext()
>>> df = ctx.sql("select 1 as x")
>>> plan = df.execution_plan()
>>> _ = ctx.execute(plan, 0).next()
>>> read_plan(plan).name
'ProjectionExec'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from datafusion.plan import ExecutionPlan, Metric

_INT_RE: Final = re.compile(r"^\s*\d+\s*$")
_FFI_WRAPPER: Final = "FFI_ExecutionPlan"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricReading:
    """One metric as it was after the execution."""

    name: str
    value: int | dt.datetime | None
    """As the API gives it: counts and times as ``int``, timestamps as ``datetime``, else ``None``."""
    text: str | None
    """The metric's display text when ``value`` is ``None`` (pruning counts, ratios, some counts)."""
    labels: Mapping[str, str]

    @classmethod
    def read(cls, metric: Metric, *, labelled: Collection[str] | None = None) -> MetricReading:
        """Copy one metric (each field crosses the FFI once); its labels only if its name is in
        ``labelled`` (``None``: always)."""
        value = metric.value
        name = metric.name
        return cls(
            name=name,
            value=value,
            text=repr(metric) if value is None else None,
            labels=metric.labels() if labelled is None or name in labelled else {},
        )

    @property
    def exact_int(self) -> int | None:
        """The exact integer value: ``value``, or the text when that is a plain integer.

        >>> MetricReading(name="n", value=None, text="12", labels={}).exact_int
        12
        """
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            return self.value
        if self.value is None and self.text is not None and _INT_RE.match(self.text):
            return int(self.text)
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorSnapshot:
    """One operator of an executed plan with its metrics, and the operators below it."""

    display: str
    metrics: tuple[MetricReading, ...] | None
    """``None`` when the operator keeps no metrics."""
    output_rows: int | None
    children: tuple[OperatorSnapshot, ...]

    @property
    def name(self) -> str:
        """The operator's type name (``HashJoinExec``), looking through DataFusion's FFI wrapper."""
        return operator_name_of(self.display)

    def walk(self, depth: int = 0) -> Iterator[tuple[OperatorSnapshot, int]]:
        """This operator and every one below it, top first (depth-first, children in order)."""
        yield self, depth
        for child in self.children:
            yield from child.walk(depth + 1)

    def subtree_metrics(self) -> list[MetricReading]:
        """Every metric of this operator and of the operators below it."""
        return [metric for node, _ in self.walk() for metric in node.metrics or ()]


def operator_name_of(display: str) -> str:
    """The operator type from a display text.

    >>> operator_name_of("FFI_ExecutionPlan: DeltaScanExec, x=1")
    'DeltaScanExec'
    >>> operator_name_of("FilterExec: a@0 > 1")
    'FilterExec'
    """
    head, _, rest = display.partition(":")
    if head.strip() == _FFI_WRAPPER:
        return rest.split(",", 1)[0].strip()
    return head.strip()


def read_plan(plan: ExecutionPlan, *, labelled: Collection[str] | None = None) -> OperatorSnapshot:
    """Copy an executed plan and all its metrics into plain records.

    ``labelled``: the metric names whose labels are read (``None``: every metric's, the default;
    :data:`~codeanatomy_assets.engine.scan_metrics.FILE_METRICS` is what the operator metrics and the
    scan units need).
    """
    metrics_set = plan.metrics()
    readings = (
        None
        if metrics_set is None
        else tuple(MetricReading.read(m, labelled=labelled) for m in metrics_set.metrics())
    )
    return OperatorSnapshot(
        display=plan.display(),
        metrics=readings,
        output_rows=metrics_set.output_rows if metrics_set is not None else None,
        children=tuple(read_plan(child, labelled=labelled) for child in plan.children()),
    )


__all__ = ["MetricReading", "OperatorSnapshot", "operator_name_of", "read_plan"]
