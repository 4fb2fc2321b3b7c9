"""The run diagnostics report: golden markdown and JSON, gates that can fail, deterministic order.

Golden files live in ``golden/``; regenerate them with ``CODEANATOMY_UPDATE_GOLDEN=1 pytest -k report``
after a deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import DataFusionRun, RunStatus
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.report.gates import evaluate_gates
from codeanatomy_assets.report.run_report import build_report, to_json
from codeanatomy_assets.report.sections import collect_report

GOLDEN = Path(__file__).parent / "golden"
RUN = "11111111-2222-4333-8444-555555555555"
T0 = 1_795_000_000_000


def _event(name: str, severity: Severity, category: Category, offset: int, **fields: Any) -> DiagnosticEvent:
    return DiagnosticEvent(
        name=name,
        run_id=RUN,
        severity=severity,
        category=category,
        event_time_unix_ms=T0 + offset,
        event_id=f"{offset:08d}",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        **fields,
    )


def _run_rows() -> list[DiagnosticEvent]:
    started = DataFusionRun(
        run_id=RUN,
        label="codeanatomy_build",
        start_time_unix_ms=T0,
        metadata={"trace_id": "0af7651916cd43dd8448eb211c80319c"},
    )
    finished = DataFusionRun(
        run_id=RUN,
        label="codeanatomy_build",
        start_time_unix_ms=T0,
        end_time_unix_ms=T0 + 4321,
        status=RunStatus.COMPLETED,
        metadata={
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "engine": {"memory_limit": "2147483648 (2.0 GiB)", "spill_dir": "/home/spill"},
        },
    )
    return [
        _event(
            "datafusion_run_started_v1",
            Severity.INFO,
            Category.RUN_LIFECYCLE,
            0,
            kind=EventKind.ARTIFACT,
            payload=started.to_row(),
        ),
        _event(
            "datafusion_run_finished_v1",
            Severity.INFO,
            Category.RUN_LIFECYCLE,
            4321,
            kind=EventKind.ARTIFACT,
            payload=finished.to_row(),
        ),
    ]


def _facts(*, fallback_severity: Severity = Severity.WARN) -> list[DiagnosticEvent]:
    events = _run_rows()
    events.append(
        _event(
            "telemetry_config_v1",
            Severity.INFO,
            Category.TELEMETRY,
            1,
            kind=EventKind.ARTIFACT,
            payload={
                "traces_exporters": {"value": "otlp", "source": "env"},
                "traces_headers": {"value": "authorization=***REDACTED***", "source": "env"},
            },
        )
    )
    for i, (dataset, mode, reason, severity) in enumerate(
        [
            ("symbols", "delta_table_provider", None, Severity.INFO),
            (
                "dv_table",
                "delta_scan_stream",
                "probe failed: DeltaScanExec rejects node CooperativeExec",
                fallback_severity,
            ),
        ]
    ):
        events.append(
            _event(
                "dataset_provider_mode_v1",
                severity,
                Category.DATAFUSION_PROVIDER,
                10 + i,
                kind=EventKind.ARTIFACT,
                dataset=dataset,
                message=f"{dataset} served by {mode}",
                payload={
                    "provider_mode": mode,
                    "provider_class": "deltalake.table.DeltaTable",
                    "fallback_reason": reason,
                    "filter_pushdown": False,
                    "probe_ok": True,
                },
            )
        )
        events.append(
            _event(
                "delta_log_health_v1",
                Severity.INFO,
                Category.DELTA_LOG,
                20 + i,
                kind=EventKind.ARTIFACT,
                dataset=dataset,
                payload={
                    "latest_version": 12 + i,
                    "last_checkpoint_version": 10,
                    "commits_since_checkpoint": 2 + i,
                    "min_reader_version": 3,
                    "min_writer_version": 7,
                    "table_features": ["deletionVectors"] * i,
                    "protocol_compatible": True,
                },
            )
        )
    events.append(
        _event(
            "delta_protocol_compatibility_v1",
            Severity.ERROR,
            Category.DELTA_PROTOCOL,
            30,
            dataset="features_table",
            message="features_table: unsupported reader feature blahabl",
            payload={
                "mode": "delta_table_provider",
                "provider_mode": "none",
                "protocol_compatible": False,
                "unsupported": ["blahabl"],
            },
        )
    )
    events.append(
        _event(
            "dataset_summary_v1",
            Severity.INFO,
            Category.DATASET,
            35,
            dataset="symbols",
            payload={"rows": 72000, "files": 8, "version": 0, "uri": "/lake/symbols"},
        )
    )
    for j, (phase, ms) in enumerate(
        [("logical", 1.5), ("optimized", 2.25), ("physical", 9.0), ("execute", 40.0)]
    ):
        events.append(
            _event(
                "datafusion_plan_phase_v1",
                Severity.INFO,
                Category.PLAN_PHASE,
                40 + j,
                plan="call_edges",
                span_id=f"{j:016x}",
                payload={
                    "phase": phase,
                    "duration_ms": ms,
                    "plan_hash": f"hash-{phase}",
                    "span_id": f"{j:016x}",
                    "trace_id": "0af7651916cd43dd8448eb211c80319c",
                },
            )
        )
    events.append(
        _event(
            "plan_output_v1",
            Severity.INFO,
            Category.PLAN_PHASE,
            50,
            plan="call_edges",
            payload={
                "rows": 1000,
                "files": 1,
                "version": 3,
                "write_ms": 12.5,
                "peak_mem_bytes": 10067865,
                "spill_count": 2,
                "spilled_bytes": 65536,
                "result_bytes": 24000,
            },
        )
    )
    events.append(
        _event(
            "scan_unit_pruning_v1",
            Severity.WARN,
            Category.SCAN_PRUNING,
            60,
            plan="call_edges",
            dataset="symbols",
            code="pruning_lost",
            message="call_edges: symbols read 8 of 8 files; Delta could skip 6",
            payload={
                "provider_mode": "delta_table_provider",
                "total_files": 8,
                "candidate_files": 8,
                "pruned_files": 0,
                "delta_prunable_files": 6,
                "filters": [],
            },
        )
    )
    events += _rebuild_events()
    events.append(
        _event(
            "extract_file_failed_v1",
            Severity.WARN,
            Category.EXTRACT,
            70,
            message="broken.py: line 4: invalid syntax",
            code="syntax_error",
        )
    )
    return events


def _rebuild_events() -> list[DiagnosticEvent]:
    """An incremental extraction (one file added, one changed, one deleted) and a plan it did not touch."""
    return [
        _event(
            "extract_rebuild_v1",
            Severity.INFO,
            Category.EXTRACT,
            5,
            kind=EventKind.ARTIFACT,
            code="incremental",
            payload={
                "mode": "incremental",
                "reason": "3 file(s) differ from source_files",
                "added": 1,
                "changed": 1,
                "deleted": 1,
                "unchanged": 41,
                "modules": 3,
                "added_paths": ["pkg/new.py"],
                "changed_paths": ["pkg/core.py"],
                "deleted_paths": ["pkg/old.py"],
                "tables_rewritten": ["source_files", "symbols", "calls"],
                "files_parsed": 2,
                "seconds": 0.25,
            },
        ),
        _event(
            "plan_skipped_v1",
            Severity.INFO,
            Category.PLAN_PHASE,
            55,
            plan="package_hotspots",
            code="inputs_unchanged",
            payload={
                "reason": "its SQL and input versions (module_metrics@2) are those its output (version 2) "
                "was computed from",
                "sql_hash": "5" * 64,
                "inputs": {"module_metrics": 2},
                "output_version": 2,
                "previous_run_id": "00000000-0000-4000-8000-000000000001",
            },
        ),
    ]


def _store(tmp_path: Path, events: list[DiagnosticEvent]) -> DeltaDiagnosticsStore:
    store = DeltaDiagnosticsStore(tmp_path / "_diagnostics")
    emit(store, *events)
    store.flush()
    return store


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CODEANATOMY_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_markdown_and_json_match_golden_files(tmp_path: Path) -> None:
    data, markdown, gates = build_report(_store(tmp_path, _facts()), RUN)
    _check_golden("report.md", markdown)
    _check_golden(
        "report.json", json.dumps(to_json(data, gates), indent=2, sort_keys=True, default=str) + "\n"
    )


def test_json_has_one_key_per_section(tmp_path: Path) -> None:
    data, _, gates = build_report(_store(tmp_path, _facts()), RUN)
    assert set(to_json(data, gates)) == {
        "run",
        "changes",
        "rebuild",
        "provider_modes",
        "delta_log_health",
        "datasets",
        "plan_phases",
        "plans",
        "scan_units",
        "diagnostics_by_category",
        "telemetry_config",
        "gates",
    }


def test_order_does_not_depend_on_write_order(tmp_path: Path) -> None:
    events = _facts()
    first = build_report(_store(tmp_path / "a", events), RUN)[1]
    second = build_report(_store(tmp_path / "b", list(reversed(events))), RUN)[1]
    assert first == second


def test_gates_fail_when_a_fallback_is_not_a_warning(tmp_path: Path) -> None:
    data = collect_report(_store(tmp_path, _facts(fallback_severity=Severity.INFO)), RUN)
    gates = {g.name: g for g in evaluate_gates(data)}
    assert not gates["fallbacks_diagnosed_as_warn"].passed
    assert "dv_table" in gates["fallbacks_diagnosed_as_warn"].explanation
    assert gates["protocol_incompatibilities_are_errors"].passed


def test_gates_fail_on_missing_sections_and_untyped_cli_errors(tmp_path: Path) -> None:
    events = [
        *_run_rows(),
        _event(
            "cli_parse_error_v1",
            Severity.ERROR,
            Category.CLI,
            5,
            message="Unknown option: --x",
            payload={"error.type": "UnknownOptionError"},
        ),
    ]
    gates = {g.name: g for g in evaluate_gates(collect_report(_store(tmp_path, events), RUN))}
    assert not gates["report_sections_present"].passed
    assert "provider_modes" in gates["report_sections_present"].explanation
    assert not gates["cli_errors_carry_telemetry_context"].passed


def test_rebuild_section_reads_the_extraction_and_the_skipped_plans(tmp_path: Path) -> None:
    data, markdown, _ = build_report(_store(tmp_path, _facts()), RUN)
    rebuild = data["rebuild"]
    assert (rebuild["mode"], rebuild["extract"]["tables_rewritten"]) == (
        "incremental",
        ["source_files", "symbols", "calls"],
    )
    assert [r["plan"] for r in rebuild["plans_run"]] == ["call_edges"]
    assert [(r["plan"], r["since_run"]) for r in rebuild["plans_skipped"]] == [
        ("package_hotspots", "00000000-0000-4000-8000-000000000001")
    ]
    assert "## Rebuild" in markdown and "Files deleted: `pkg/old.py`" in markdown


def test_a_run_whose_plans_were_all_skipped_passes_the_sections_gate(tmp_path: Path) -> None:
    """No plan phase is recorded when every plan was skipped: the gate says why instead of failing."""
    events = [e for e in _facts() if e.name not in ("datafusion_plan_phase_v1", "plan_output_v1")]
    gates = {g.name: g for g in evaluate_gates(collect_report(_store(tmp_path, events), RUN))}
    assert gates["report_sections_present"].passed
    assert "1 plan(s) skipped" in gates["report_sections_present"].explanation
    without_skips = [e for e in events if e.name != "plan_skipped_v1"]
    gates = {g.name: g for g in evaluate_gates(collect_report(_store(tmp_path / "b", without_skips), RUN))}
    assert not gates["report_sections_present"].passed


def test_without_extraction_the_mode_is_the_build_request(tmp_path: Path) -> None:
    events = [e for e in _facts() if e.name != "extract_rebuild_v1"]
    rebuild = collect_report(_store(tmp_path, events), RUN)["rebuild"]
    assert (rebuild["mode"], rebuild["extract"]) == (None, None)  # this run's envelope has no "rebuild"
    _, markdown, _ = build_report(_store(tmp_path / "b", events), RUN)
    assert "**not recorded**" in markdown and "No extraction in this run." in markdown


def test_incompatibility_recorded_below_error_fails_its_gate(tmp_path: Path) -> None:
    events = [e for e in _facts() if e.name != "delta_protocol_compatibility_v1"]
    events.append(
        _event(
            "delta_protocol_compatibility_v1",
            Severity.WARN,
            Category.DELTA_PROTOCOL,
            31,
            dataset="features_table",
            payload={"provider_mode": "none", "protocol_compatible": False},
        )
    )
    gates = {g.name: g for g in evaluate_gates(collect_report(_store(tmp_path, events), RUN))}
    assert not gates["protocol_incompatibilities_are_errors"].passed


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_report_command_renders_latest_and_named_runs(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from codeanatomy_assets.cli.report import report

    home = tmp_path / "home"
    _store(home / "lake", _facts())
    assert report(format=fmt, home=home) == 0
    latest = capsys.readouterr().out
    assert report(run_id=RUN, format=fmt, home=home) == 0
    assert capsys.readouterr().out == latest
    if fmt == "json":
        assert json.loads(latest)["run"]["run_id"] == RUN
    assert report(run_id="no-such-run", home=home) == 2
