"""The diagnostics taxonomy: closed vocabularies for severity, category and event kind.

See ``docs/architecture/diagnostics_policy.md`` for what each value means and when to use it.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How much a diagnostic matters. Ordered: ``Severity.ERROR.rank > Severity.WARN.rank``."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Numeric order of the severity (debug=0 .. error=3)."""
        return _SEVERITY_RANK[self]

    @property
    def otel_severity_number(self) -> int:
        """The OpenTelemetry ``SeverityNumber`` of this severity (DEBUG=5, INFO=9, WARN=13, ERROR=17)."""
        return _OTEL_SEVERITY_NUMBER[self]


_SEVERITY_RANK = {Severity.DEBUG: 0, Severity.INFO: 1, Severity.WARN: 2, Severity.ERROR: 3}
_OTEL_SEVERITY_NUMBER = {Severity.DEBUG: 5, Severity.INFO: 9, Severity.WARN: 13, Severity.ERROR: 17}


class Category(StrEnum):
    """What part of the system a diagnostic is about (closed vocabulary)."""

    DATAFUSION_PROVIDER = "datafusion_provider"
    DELTA_PROTOCOL = "delta_protocol"
    DELTA_LOG = "delta_log"
    DELTA_LAYOUT = "delta_layout"
    DELTA_MAINTENANCE = "delta_maintenance"
    PLAN_PHASE = "plan_phase"
    SCAN_PRUNING = "scan_pruning"
    RUN_LIFECYCLE = "run_lifecycle"
    EXTRACT = "extract"
    CLI = "cli"
    TELEMETRY = "telemetry"
    DATASET = "dataset"


class EventKind(StrEnum):
    """``artifact``: a structured record of a thing (a plan, a registration); ``event``: a happening."""

    ARTIFACT = "artifact"
    EVENT = "event"
