"""Compile options: what :func:`~codeanatomy_assets.engine.plan.execute_plan` captures besides timings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileOptions:
    """What a plan run captures besides phase timings (seed 003 ``DataFusionCompileOptions``)."""

    run_id: str
    fingerprints: bool = True
    """Hash each phase's plan text (:mod:`codeanatomy_assets.engine.fingerprint`)."""
    capture_plan_artifacts: bool = True
    """Build and send the ``datafusion_plan_artifacts_v1`` artifact."""
    explain_analyze: bool = True
    """Collect per-operator metrics from the one execution (and their EXPLAIN ANALYZE-like text)."""
    capture_substrait: bool = True
    capture_graphviz: bool = True
    capture_unparsed_sql: bool = True
    scan_units: bool = True
    """Emit a ``scan_unit_pruning_v1`` record per scan (reads metrics and the Delta logs)."""
    plan_artifacts_hook: Callable[[Mapping[str, Any]], None] | None = None
    """Called with the artifact payload after it went to the sink."""

    @classmethod
    def off(cls, run_id: str) -> CompileOptions:
        """Every capture off: the plan does only its real work; phase durations are still recorded."""
        return cls(
            run_id=run_id,
            fingerprints=False,
            capture_plan_artifacts=False,
            explain_analyze=False,
            capture_substrait=False,
            capture_graphviz=False,
            capture_unparsed_sql=False,
            scan_units=False,
        )

    @property
    def runs_optimized_phase(self) -> bool:
        """Whether the separate ``optimized`` phase runs (something needs the optimized plan)."""
        return self.fingerprints or self.capture_plan_artifacts or self.scan_units

    @property
    def collects_metrics(self) -> bool:
        """Whether the executed plan's metrics are read."""
        return self.explain_analyze or self.scan_units

    @property
    def keeps_plan_texts(self) -> bool:
        """Whether each phase's plan text is rendered (for its hash or the artifact)."""
        return self.fingerprints or self.capture_plan_artifacts
