"""What a user reads when things go wrong (issue 14, "Messages"), from the user's side: ``codeanatomy build``
and ``codeanatomy doctor`` in a subprocess over real Delta tables, with ``RUST_BACKTRACE`` set.

- a failed build names each failed step with its root cause in one line (the SQL parser's message, "not a
  Delta table: no _delta_log at ..."), with no stack trace on the terminal (they stay in Dagster's logs);
- the report names the failed checks, and no gate fails because a table was unreadable and said so;
- a filter on a partition column shows in scan pruning and counts as Delta-prunable;
- every scan row names its dataset, or says which it may be (two in-memory tables);
- no message carries Rust backtrace frames, and no user-facing text cites internal notes;
- ``doctor`` usage errors exit 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import datafusion
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.registration import register_dataset
from codeanatomy_assets.delta.registration_records import RegistrationPolicy
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.plan import execute_plan
from codeanatomy_assets.report.gates import evaluate_gates
from codeanatomy_assets_tests.conftest import CORPUS, REPO_ROOT

CLI = Path(sys.executable).with_name("codeanatomy")
FRAME = re.compile(r"(?m)^\s*\d+: \S|<unknown>|start_thread|backtrace:", re.IGNORECASE)
DV_TABLE = "table-with-dv-small"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUST_BACKTRACE": "1", "RUST_LIB_BACKTRACE": "1"}
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _corrupt_table(path: Path) -> None:
    """A Delta table whose latest commit is not JSON: deltalake refuses it with a kernel error, which
    carries backtrace frames when RUST_BACKTRACE is set (measured with deltalake 1.6.6)."""
    write_deltalake(str(path), pa.table({"x": [1, 2]}))
    write_deltalake(str(path), pa.table({"x": [3]}), mode="append")
    (path / "_delta_log" / "00000000000000000001.json").write_text("{garbage\n")


@dataclass
class Build:
    root: Path
    home: Path
    proc: subprocess.CompletedProcess[str]
    run_id: str
    events: list[DiagnosticEvent]
    report: str
    with_dv: bool


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    root = tmp_path_factory.mktemp("messages")
    write_deltalake(
        str(root / "parted"), pa.table({"p": ["a", "a", "b", "b"], "x": [1, 2, 3, 4]}), partition_by=["p"]
    )
    (root / "bare").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), root / "bare" / "part-0.parquet")
    _corrupt_table(root / "corrupt")
    spec = (
        f'[datasets.missing]\nuri = "{root / "no_such_table"}"\n'
        f'[datasets.bare]\nuri = "{root / "bare"}"\n'
        f'[datasets.corrupt]\nuri = "{root / "corrupt"}"\n'
        f'[datasets.parted]\nuri = "{root / "parted"}"\n'
        '[plans.p_syntax]\nsql = "selec x fromm parted"\n'
        "[plans.p_part]\nsql = \"select x from parted where p = 'a'\"\n"
    )
    with_dv = (CORPUS / DV_TABLE).is_dir()
    if with_dv:  # read in place: both datasets are the same table, served in memory (deletion vectors)
        spec += (
            f'[datasets.dv_a]\nuri = "{CORPUS / DV_TABLE}"\n[datasets.dv_b]\nuri = "{CORPUS / DV_TABLE}"\n'
            '[plans.p_dvjoin]\nsql = "select a.value from dv_a a join dv_b b on a.value = b.value"\n'
        )
    (root / "spec.toml").write_text(spec)
    home = root / "home"
    proc = _cli("build", "--config", str(root / "spec.toml"), "--home", str(home), cwd=root)
    match = re.match(r"run (\S+): ", proc.stdout)
    assert match, proc.stdout + proc.stderr
    run_id = match.group(1)
    events = DeltaDiagnosticsStore(home / "lake" / "_diagnostics").read_events(run_id)
    report = (home / "reports" / run_id / "run_diagnostics_report.md").read_text()
    return Build(root, home, proc, run_id, events, report, with_dv)


def test_each_failed_step_is_one_line_with_its_root_cause(build: Build) -> None:
    assert build.proc.returncode == 1
    steps = [line.strip() for line in build.proc.stdout.splitlines() if "failed step:" in line]
    no_log = "not a Delta table: no _delta_log at"
    assert (
        f"failed step: missing: {no_log} {build.root / 'no_such_table'} (check delta_protocol_compatible)"
        in steps
    )
    assert f"failed step: bare: {no_log} {build.root / 'bare'} (check delta_protocol_compatible)" in steps
    assert (
        "failed step: p_syntax: SQL syntax error (phase logical): "
        "Expected: an SQL statement, found: selec at Line: 1, Column: 1" in steps
    )
    (corrupt,) = [s for s in steps if s.startswith("failed step: corrupt: ")]
    assert "Json error" in corrupt  # deltalake's own reason, without its backtrace
    assert "protocol_unknown" not in build.proc.stdout
    # Stack traces stay in Dagster's logs: none on the terminal, and every failed step's is in the instance.
    assert "Traceback" not in build.proc.stderr and "Stack Trace" not in build.proc.stderr
    assert "Stack Trace" not in build.proc.stdout
    instance = dg.DagsterInstance.from_config(str(build.home / "dagster"))
    failures = [
        e.dagster_event
        for e in instance.all_logs(build.run_id)
        if e.dagster_event is not None and e.dagster_event.is_step_failure
    ]
    assert {f.step_key for f in failures} == {"missing", "bare", "corrupt", "p_syntax"}
    assert all(f.step_failure_data.error.stack or f.step_failure_data.error.cause for f in failures)


def test_report_names_failed_checks_and_gates_pass(build: Build) -> None:
    failed = next(line for line in build.report.splitlines() if line.startswith("**Failed:**"))
    for step in ("missing", "bare", "corrupt", "p_syntax"):
        assert f"step {step}: " in failed
    assert "(check delta_protocol_compatible)" in failed
    checks = next(line for line in build.report.splitlines() if line.startswith("**Failed checks:**"))
    assert "`missing:delta_protocol_compatible (ERROR)`" in checks
    assert "`bare:delta_protocol_compatible (ERROR)`" in checks
    # The unreadable tables are errors of their own, not undiagnosed fallbacks: every gate passes.
    assert "**NO**" not in build.report
    assert "failed gate" not in build.proc.stdout
    assert "| fallbacks_diagnosed_as_warn | yes |" in build.report
    mode = next(e for e in build.events if e.name == "dataset_provider_mode_v1" and e.dataset == "bare")
    assert mode.payload["fallback_reason"] == f"not a Delta table: no _delta_log at {build.root / 'bare'}"


def test_partition_predicate_shows_in_scan_pruning(build: Build) -> None:
    (unit,) = [e for e in build.events if e.name == "scan_unit_pruning_v1" and e.plan == "p_part"]
    payload = unit.payload
    assert payload["dataset"] == "parted"
    assert payload["predicate"] and "p" in payload["predicate"]
    assert payload["delta_predicate"] == "\"p\" = 'a'"
    assert (payload["total_files"], payload["candidate_files"]) == (2, 1)
    assert (payload["pruned_files"], payload["delta_prunable_files"]) == (1, 1)
    row = next(line for line in build.report.splitlines() if line.startswith("| p_part | parted |"))
    assert "| 2 | 1 | 1 | 1 |" in row and "Utf8View" in row


def test_every_scan_row_names_its_dataset(build: Build) -> None:
    if not build.with_dv:
        pytest.skip(f"delta corpus table {DV_TABLE} not found at {CORPUS}")
    units = [e for e in build.events if e.name == "scan_unit_pruning_v1" and e.plan == "p_dvjoin"]
    assert len(units) == 2
    # Two in-memory tables of one schema: no file and no column tells their scans apart.
    for unit in units:
        assert unit.payload["dataset"] is None
        assert unit.payload["dataset_label"] == "one of dv_a, dv_b (not told apart by files or columns)"
    section = build.report.split("## Scan pruning", 1)[1].split("Datasets by pruning ratio", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| p_")]
    assert rows and all(cells[2].strip() for cells in rows)
    assert any("one of dv_a, dv_b" in cells[2] for cells in rows)


def test_no_backtrace_frames_in_messages(build: Build) -> None:
    texts = [build.proc.stdout, build.report]
    texts += [e.message or "" for e in build.events]
    texts += [json.dumps(e.payload) for e in build.events]
    assert [t[:300] for t in texts if FRAME.search(t)] == []
    corrupt = [e.message or "" for e in build.events if e.dataset == "corrupt"]
    assert any("Json error" in m for m in corrupt)


def test_gates_excuse_only_what_a_diagnosed_unreadable_table_explains() -> None:
    """Its plans did not run and it is no fallback: no gate fails for it, as long as it is an error."""

    def gates(severity: str) -> dict[str, bool]:
        reason = "not a Delta table: no _delta_log at /x"
        mode = {
            "dataset": "missing",
            "provider_mode": "none",
            "fallback_reason": reason,
            "severity": severity,
        }
        data = {"provider_modes": [mode], "delta_log_health": [{"dataset": "missing"}], "plan_phases": []}
        return {g.name: g.passed for g in evaluate_gates({**data, "_events": []})}

    assert all(gates("error").values())
    undiagnosed = gates("info")
    assert not undiagnosed["fallbacks_diagnosed_as_warn"]
    assert not undiagnosed["report_sections_present"]


def test_in_memory_scans_are_told_apart_by_their_columns(tmp_path: Path) -> None:
    """Two tables served in memory with different columns: each scan is tied to its own table."""
    write_deltalake(str(tmp_path / "l"), pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}))
    write_deltalake(str(tmp_path / "r"), pa.table({"id": [1, 2], "w": [10, 20]}))
    ctx, sink = datafusion.SessionContext(), DiagnosticsCollector()
    policy = RegistrationPolicy(modes=(ProviderMode.DELTA_SCAN_STREAM,))
    tables = {
        name: register_dataset(
            ctx, name=name, uri=str(tmp_path / name), run_id="r", sink=sink, policy=policy
        ).registered
        for name in ("l", "r")
    }
    execution = execute_plan(
        ctx,
        name="joined",
        sql="select l.v, r.w from l join r on l.id = r.id where r.w > 5",
        options=CompileOptions(run_id="r"),
        sink=sink,
        tables=tables,
    )
    assert sorted((u.dataset, u.attribution) for u in execution.scan_units) == [
        ("l", "columns"),
        ("r", "columns"),
    ]


def test_doctor_usage_errors_exit_2(tmp_path: Path) -> None:
    for uri in ("", "   "):
        proc = _cli("doctor", uri, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout
        assert proc.stderr.strip().splitlines() == [
            "codeanatomy doctor: the table URI is empty; pass a path or URI, e.g. ./data/trips"
        ]
        assert proc.stdout == ""


def test_doctor_names_the_root_cause_without_frames(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "bare" / "part-0.parquet")
    proc = _cli("doctor", str(tmp_path / "bare"), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    messages = [d["message"] for d in json.loads(proc.stdout)["diagnostics"]]
    cause = f"not a Delta table: no _delta_log at {tmp_path / 'bare'}"
    assert cause in messages
    assert f"bare: no provider mode could read the table ({cause})" in messages
    assert not any("protocol_unknown" in m for m in messages)
    _corrupt_table(tmp_path / "corrupt")
    proc = _cli("doctor", str(tmp_path / "corrupt"), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Json error" in proc.stdout
    assert not FRAME.search(proc.stdout), proc.stdout[:2000]


def test_no_internal_references_in_user_facing_text() -> None:
    """Event messages, fallback reasons, docstrings, CLI output and the docs link to the docs, never to
    internal notes."""
    files = [
        *(REPO_ROOT / "codeanatomy_assets").rglob("*.py"),
        *(REPO_ROOT / "codeanatomy_assets").rglob("*.sql"),
        *(REPO_ROOT / "codeanatomy_assets").rglob("*.toml"),
        *(REPO_ROOT / "docs").rglob("*.md"),
        REPO_ROOT / "README.md",
    ]
    cited = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"FACTS(\s*#|\.md)", line)
    ]
    assert cited == []
