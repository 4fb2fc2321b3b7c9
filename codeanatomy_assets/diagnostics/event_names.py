"""The name of every diagnostic event the package emits or reads: the one place an event name is defined.

Emitters and readers (the engine, registration, the report, the Dagster assets, the doctor) import their
names from here, so a name is spelled once and a reader cannot drift from its emitter. Each constant is
the event name in capitals without its version suffix. This module imports nothing but ``typing``: reading
a report or parsing the CLI never loads DataFusion for a name.

``docs/architecture/diagnostics_policy.md`` (Event catalogue) documents each event: kind, category,
severity, payload and emitter.
"""

from __future__ import annotations

from typing import Final

# Run lifecycle: the envelope around every run (also routed to the store's ``datafusion_runs_v1``).
DATAFUSION_RUN_STARTED: Final = "datafusion_run_started_v1"
DATAFUSION_RUN_FINISHED: Final = "datafusion_run_finished_v1"
BUILD_UP_TO_DATE: Final = "build_up_to_date_v1"
"""``codeanatomy build`` found nothing changed since the last successful build and launched no run."""

# Telemetry: the OpenTelemetry configuration of a run, sinks or exporters that failed, lineage not sent.
TELEMETRY_CONFIG: Final = "telemetry_config_v1"
TELEMETRY_SINK_FAILED: Final = "telemetry_sink_failed_v1"
TELEMETRY_EXPORT_FAILED: Final = "telemetry_export_failed_v1"
OPENLINEAGE_EMIT_FAILED: Final = "openlineage_emit_failed_v1"
"""An OpenLineage event (or a facet of one) the build could not send; the build goes on without it."""

# Plan phases: each phase of a plan, its artifact (also routed to the store's table of the same name), its
# output, and the ways a plan stops early.
DATAFUSION_PLAN_PHASE: Final = "datafusion_plan_phase_v1"
DATAFUSION_PLAN_ARTIFACTS: Final = "datafusion_plan_artifacts_v1"
PLAN_ARTIFACTS_HOOK_FAILED: Final = "plan_artifacts_hook_failed_v1"
PLAN_OUTPUT: Final = "plan_output_v1"
PLAN_SKIPPED: Final = "plan_skipped_v1"
"""A plan not run again: its SQL and the versions of its inputs equal those its output was written from."""
PLAN_LIMIT_EXCEEDED: Final = "plan_limit_exceeded_v1"
PLAN_CANCELLED: Final = "plan_cancelled_v1"

# Scan pruning: the files each scan of a plan read, and could have skipped.
SCAN_UNIT_PRUNING: Final = "scan_unit_pruning_v1"
SCAN_UNIT_ANALYSIS_FAILED: Final = "scan_unit_analysis_failed_v1"

# Dataset registration: the Delta log, the protocol, the provider probes and the mode chosen.
DELTA_LOG_HEALTH: Final = "delta_log_health_v1"
DELTA_LOG_FINDING: Final = "delta_log_finding_v1"
DELTA_PROTOCOL_COMPATIBILITY: Final = "delta_protocol_compatibility_v1"
DATASET_PROVIDER_PROBE: Final = "dataset_provider_probe_v1"
DATASET_PROVIDER_MODE: Final = "dataset_provider_mode_v1"
DATASET_SUMMARY: Final = "dataset_summary_v1"

# Delta layout and maintenance: a table's file layout, its findings, and the treatments planned or applied.
DELTA_LAYOUT: Final = "delta_layout_v1"
DELTA_LAYOUT_FINDING: Final = "delta_layout_finding_v1"
DELTA_MAINTENANCE: Final = "delta_maintenance_v1"

# Extraction: the source tree analysed into datasets.
EXTRACT_FILE_FAILED: Final = "extract_file_failed_v1"
EXTRACT_DIR_UNREADABLE: Final = "extract_dir_unreadable_v1"
EXTRACT_COMPLETED: Final = "extract_completed_v1"
EXTRACT_REBUILD: Final = "extract_rebuild_v1"
"""Full or incremental, why, and (incremental) the files added, changed, deleted and the tables rewritten."""

# CLI: a command line that did not parse, and the doctor failing itself.
CLI_PARSE_ERROR: Final = "cli_parse_error_v1"
DOCTOR_INTERNAL_ERROR: Final = "doctor_internal_error_v1"

# Benchmarks: synthetic rows that fill a store for ``codeanatomy bench`` (never written by a build).
BENCH_EVENT: Final = "bench_event_v1"
