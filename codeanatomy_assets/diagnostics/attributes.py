"""Attribute keys used in diagnostics rows, span attributes and log attributes.

Where an OpenTelemetry semantic convention exists its name is reused.
"""

from __future__ import annotations

from typing import Final

DIAGNOSTIC_SEVERITY: Final = "diagnostic.severity"
DIAGNOSTIC_CATEGORY: Final = "diagnostic.category"
DIAGNOSTIC_NAME: Final = "diagnostic.name"
DIAGNOSTIC_KIND: Final = "diagnostic.kind"
DIAGNOSTIC_CODE: Final = "diagnostic.code"
RUN_ID: Final = "codeanatomy.run_id"
DATASET: Final = "codeanatomy.dataset"
PLAN: Final = "codeanatomy.plan"
ASSET_KEY: Final = "dagster.asset_key"
STEP_KEY: Final = "dagster.step_key"
DAGSTER_RUN_ID: Final = "dagster.run_id"
PLAN_PHASE: Final = "codeanatomy.plan.phase"
PLAN_HASH: Final = "codeanatomy.plan.hash"

# OpenTelemetry semantic conventions.
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
DB_SYSTEM: Final = "db.system.name"
DB_QUERY_TEXT: Final = "db.query.text"
