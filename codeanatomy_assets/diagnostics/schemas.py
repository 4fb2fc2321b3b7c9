"""One pyarrow schema constant per diagnostics table.

The durable store (:mod:`codeanatomy_assets.diagnostics.store`) keeps three append-only Delta tables:

========================================  =====================================================
table                                     rows
========================================  =====================================================
``diagnostics_events_v1``                 every diagnostic row (:meth:`DiagnosticEvent.to_row`)
``datafusion_runs_v1``                    the run envelope: one row per start and per finish
``datafusion_plan_artifacts_v1``          one row per captured plan (EXPLAIN, Substrait, ...)
========================================  =====================================================

**The append-only rule.** Columns are only ever *appended*, at the end, and always nullable. A column is
never renamed, retyped, reordered or removed: files written by older code stay readable (a missing
column reads as null) and files written by newer code stay readable by older code (an unknown trailing
column is ignored). A change that cannot be expressed as a nullable trailing column is a new table with
the next version suffix (``_v2``). ``codeanatomy_assets_tests/test_store.py`` guards the column order of
each schema against a golden list; update the golden list only by appending.

``schema_version`` in a row is the version of the code that wrote it (``int32``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import pyarrow as pa

from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_ARTIFACTS

DIAGNOSTICS_EVENTS_TABLE: Final = "diagnostics_events_v1"
DATAFUSION_RUNS_TABLE: Final = "datafusion_runs_v1"
DATAFUSION_PLAN_ARTIFACTS_TABLE: Final = DATAFUSION_PLAN_ARTIFACTS
"""Named after the event whose rows it holds."""

RUNS_SCHEMA_VERSION: Final = 1
PLAN_ARTIFACTS_SCHEMA_VERSION: Final = 1

DIAGNOSTICS_EVENTS_V1: Final = pa.schema(
    [
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("event_time_unix_ms", pa.int64(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("asset_key", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("payload", pa.string(), nullable=False),  # JSON object, sorted keys
    ]
)
"""Every diagnostic row: exactly the columns of ``DiagnosticEvent.to_row()``, in that order."""

DATAFUSION_RUNS_V1: Final = pa.schema(
    [
        # Seed 003 columns.
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("start_time_unix_ms", pa.int64(), nullable=False),
        pa.field("end_time_unix_ms", pa.int64()),
        pa.field("status", pa.string(), nullable=False),  # running | completed | failed
        pa.field("duration_ms", pa.int64()),
        pa.field("metadata", pa.string()),  # JSON object, redacted
        # Appended.
        pa.field("schema_version", pa.int32()),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("event_name", pa.string()),  # datafusion_run_started_v1 | datafusion_run_finished_v1
    ]
)
"""The run envelope: a ``started`` row and a ``finished`` row per run (seed 003, plus appended columns)."""

DATAFUSION_PLAN_ARTIFACTS_V1: Final = pa.schema(
    [
        # Seed 003 columns.
        pa.field("event_time_unix_ms", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("plan_hash", pa.string()),
        pa.field("sql", pa.string()),
        pa.field("explain", pa.string()),
        pa.field("explain_analyze", pa.string()),  # per-operator metrics, text or JSON
        pa.field("substrait_b64", pa.string()),
        pa.field("substrait_roundtrip_ok", pa.bool_()),
        pa.field("unparsed_sql", pa.string()),
        pa.field("logical_plan", pa.string()),
        pa.field("optimized_plan", pa.string()),
        pa.field("physical_plan", pa.string()),
        pa.field("graphviz", pa.string()),
        pa.field("partition_count", pa.int64()),
        pa.field("join_operators", pa.string()),  # JSON array
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        # Appended.
        pa.field("plan", pa.string()),  # the plan's name in the pipeline spec
        pa.field("schema_version", pa.int32()),
    ]
)
"""One row per captured plan (seed 003, plus the plan name and the schema version)."""

TABLE_SCHEMAS: Final[Mapping[str, pa.Schema]] = MappingProxyType(
    {
        DIAGNOSTICS_EVENTS_TABLE: DIAGNOSTICS_EVENTS_V1,
        DATAFUSION_RUNS_TABLE: DATAFUSION_RUNS_V1,
        DATAFUSION_PLAN_ARTIFACTS_TABLE: DATAFUSION_PLAN_ARTIFACTS_V1,
    }
)
"""Table name -> schema, for every table of the durable store."""
