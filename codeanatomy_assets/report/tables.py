"""Markdown tables: of report rows (:func:`markdown_table`) and of a plan's scan units.

The assets' Dagster metadata uses them too (failed files, scan units).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codeanatomy_assets.engine.scan import ScanUnit

_SCAN_UNITS_HEADER = (
    "| plan | dataset | provider | live files | read | skipped | Delta could skip | row groups read |"
    " bytes scanned | predicate | status |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|\n"
)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` (cells escaped, lists joined, floats to 3 places)."""
    if not rows:
        return "_none recorded_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, *body])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:.3f}"
    elif isinstance(value, (dict,)):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_scan_units_markdown(units: Sequence[ScanUnit]) -> str:
    """A markdown table of scan units, one row per scan, for reports and Dagster metadata."""
    return _SCAN_UNITS_HEADER + "".join(_scan_unit_line(unit) for unit in units)


def _scan_unit_line(unit: ScanUnit) -> str:
    cells = (
        unit.plan,
        unit.dataset_label,
        unit.provider_mode.value if unit.provider_mode else None,
        unit.total_files,
        unit.candidate_files,
        unit.pruned_files,
        unit.delta_prunable_files,
        _row_groups(unit),
        unit.bytes_scanned,
        unit.delta_predicate or unit.predicate,
        _scan_status(unit),
    )
    return "| " + " | ".join(_scan_cell(v) for v in cells) + " |\n"


def _scan_status(unit: ScanUnit) -> str:
    """Whether the scan lost pruning, pruned only partly, or is ok; then its errors."""
    from codeanatomy_assets.engine.scan import PRUNING_LOST, PRUNING_PARTIAL  # loads DataFusion: on use

    status = PRUNING_LOST if unit.pruning_lost else PRUNING_PARTIAL if unit.pruning_partial else "ok"
    if unit.errors:
        status += " (" + "; ".join(unit.errors) + ")"
    return status


def _row_groups(unit: ScanUnit) -> str | None:
    """``matched/total`` row groups (``≈`` when estimated), ``None`` when not measured."""
    if unit.row_groups_total is None:
        return None
    return f"{unit.row_groups_matched}/{unit.row_groups_total}" + ("" if unit.row_groups_exact else " ≈")


def _scan_cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")
