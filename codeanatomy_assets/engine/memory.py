"""A plan's memory, from its operators' metrics: the largest reservation, and what was spilled.

DataFusion-python 55 does not expose the memory pool's own peak. Operators that hold memory report it as
a gauge (``build_mem_used`` of joins, ``peak_mem_used`` where an operator has one), as rounded text in
binary units (``9.6 MB``); spills are counters (``spill_count``, ``spilled_bytes``, ``spilled_rows``).
So ``peak_mem_bytes`` is the largest single operator's reservation summed over its partitions: a lower
bound of the pool's peak (operators overlap in time), approximate to DataFusion's rounding.

>>> from codeanatomy_assets.engine.operators import OperatorMetrics
>>> join = OperatorMetrics(operator="HashJoinExec", depth=0, metrics={"build_mem_used": ["9.6 MB", "1.5 KB"]})
>>> sort = OperatorMetrics(operator="SortExec", depth=1, metrics={"spill_count": 3, "spilled_bytes": 4096})
>>> plan_memory([join, sort]).to_row()["peak_mem_bytes"]
10067865
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from codeanatomy_assets.engine.operators import OperatorMetrics

GAUGES: Final = ("peak_mem_used", "build_mem_used", "mem_used")
SPILL_COUNTERS: Final = ("spill_count", "spilled_bytes", "spilled_rows")
_SIZE_TEXT: Final = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>B|KB|MB|GB|TB)\s*$")
_UNIT: Final = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanMemory:
    """What a plan's operators held and spilled (see the module docstring for what the peak means)."""

    peak_mem_bytes: int | None
    peak_operator: str | None
    spill_count: int
    spilled_bytes: int
    spilled_rows: int
    result_bytes: int | None = None
    """The collected result's size (what is held until it is written)."""

    def to_row(self) -> dict[str, Any]:
        """JSON-ready form (event payloads, artifacts)."""
        return {
            "peak_mem_bytes": self.peak_mem_bytes,
            "peak_operator": self.peak_operator,
            "spill_count": self.spill_count,
            "spilled_bytes": self.spilled_bytes,
            "spilled_rows": self.spilled_rows,
            "result_bytes": self.result_bytes,
        }


def plan_memory(metrics: Iterable[OperatorMetrics], *, result_bytes: int | None = None) -> PlanMemory:
    """The memory figures of an executed plan's operator metrics."""
    peak: int | None = None
    peak_operator: str | None = None
    spills: dict[str, int] = dict.fromkeys(SPILL_COUNTERS, 0)
    for op in metrics:
        held = _gauge_bytes(op.metrics)
        if held is not None and (peak is None or held > peak):
            peak, peak_operator = held, op.operator.split(":")[0].strip()
        _add_spills(spills, op.metrics)
    return PlanMemory(
        peak_mem_bytes=peak,
        peak_operator=peak_operator,
        spill_count=spills["spill_count"],
        spilled_bytes=spills["spilled_bytes"],
        spilled_rows=spills["spilled_rows"],
        result_bytes=result_bytes,
    )


def _add_spills(spills: dict[str, int], metrics: Mapping[str, Any]) -> None:
    for name in SPILL_COUNTERS:
        value = metrics.get(name)
        if isinstance(value, int):
            spills[name] += value


def _gauge_bytes(metrics: Mapping[str, Any]) -> int | None:
    """An operator's largest gauge, summed over its partitions (ints, or texts such as ``9.6 MB``)."""
    found: list[int] = []
    for name in GAUGES:
        value = metrics.get(name)
        if isinstance(value, int):
            found.append(value)
        elif isinstance(value, list):
            sizes = [size for text in value if (size := _size(str(text))) is not None]
            if sizes:
                found.append(sum(sizes))
    return max(found) if found else None


def _size(text: str) -> int | None:
    match = _SIZE_TEXT.match(text)
    return int(float(match["number"]) * _UNIT[match["unit"]]) if match else None
