"""The DataFusion engine layer: bounded sessions, plan phases and artifacts, fingerprints, scan units."""

from __future__ import annotations

from codeanatomy_assets.engine.artifacts import CAPTURE_ERROR_TYPE, CaptureStatus
from codeanatomy_assets.engine.fingerprint import FINGERPRINT_VERSION, normalize_plan_text, plan_fingerprint
from codeanatomy_assets.engine.operators import JoinOperator, OperatorMetrics, render_explain_analyze
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.phases import PhaseRecord, PlanPhase
from codeanatomy_assets.engine.plan import PlanExecution, execute_plan
from codeanatomy_assets.engine.predicates import DeltaPredicate, translate_predicate
from codeanatomy_assets.engine.pruning import TablePruning
from codeanatomy_assets.engine.scan import ScanUnit, collect_scan_units
from codeanatomy_assets.engine.session import DEFAULT_OPTIONS, EngineSettings, new_session, parse_size
from codeanatomy_assets.report.tables import render_scan_units_markdown

__all__ = [
    "CAPTURE_ERROR_TYPE",
    "DEFAULT_OPTIONS",
    "FINGERPRINT_VERSION",
    "CaptureStatus",
    "CompileOptions",
    "DeltaPredicate",
    "EngineSettings",
    "JoinOperator",
    "OperatorMetrics",
    "PhaseRecord",
    "PlanExecution",
    "PlanPhase",
    "ScanUnit",
    "TablePruning",
    "collect_scan_units",
    "execute_plan",
    "new_session",
    "normalize_plan_text",
    "parse_size",
    "plan_fingerprint",
    "render_explain_analyze",
    "render_scan_units_markdown",
    "translate_predicate",
]
