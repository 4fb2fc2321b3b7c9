"""The DataFusion engine layer: plan phases and artifacts, plan fingerprints, scan units."""

from __future__ import annotations

from codeanatomy_assets.engine.fingerprint import FINGERPRINT_VERSION, normalize_plan_text, plan_fingerprint
from codeanatomy_assets.engine.plan import (
    CAPTURE_ERROR_TYPE,
    PLAN_PHASE_EVENT,
    CaptureStatus,
    CompileOptions,
    JoinOperator,
    OperatorMetrics,
    PhaseRecord,
    PlanExecution,
    PlanPhase,
    execute_plan,
    render_explain_analyze,
)
from codeanatomy_assets.engine.scan import (
    SCAN_UNIT_EVENT,
    DeltaPredicate,
    ScanUnit,
    TablePruning,
    collect_scan_units,
    render_scan_units_markdown,
    translate_predicate,
)

__all__ = [
    "CAPTURE_ERROR_TYPE",
    "FINGERPRINT_VERSION",
    "PLAN_PHASE_EVENT",
    "SCAN_UNIT_EVENT",
    "CaptureStatus",
    "CompileOptions",
    "DeltaPredicate",
    "JoinOperator",
    "OperatorMetrics",
    "PhaseRecord",
    "PlanExecution",
    "PlanPhase",
    "ScanUnit",
    "TablePruning",
    "collect_scan_units",
    "execute_plan",
    "normalize_plan_text",
    "plan_fingerprint",
    "render_explain_analyze",
    "render_scan_units_markdown",
    "translate_predicate",
]
