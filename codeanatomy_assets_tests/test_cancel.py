"""Cancelling a build from the user's side: Ctrl-C, SIGTERM, Terminate in the Dagster UI, timeout_s.

Each test runs ``codeanatomy build`` in a subprocess (its own process group, as a terminal's foreground
job) over a real Delta table of 1.1M rows written here, with a plan that joins it with itself on a
low-cardinality key (about 19 billion joined rows: minutes). The promise (docs/reliability.md):
the build stops within 5 s, prints one line, exits 130 / 143, the run is ``cancelled`` in the store with
its true duration and CANCELED in Dagster, and no output of the stopped plan is committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable

from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore

LONG_SQL = "select count(*) as n, sum(a.id + b.id) as s from big a join big b on a.cases % 64 = b.cases % 64"
SHORT_SQL = "select count(*) as n, sum(id) as s from big"
QUICK_SQL = "select county, count(*) as n from big group by county"
EXIT_WITHIN_S = 5.0


def _spec(folder: Path, big: str, *, long_sql: str, timeout_s: float | None = None) -> Path:
    timeout = f"timeout_s = {timeout_s}\n" if timeout_s is not None else ""
    spec = folder / "codeanatomy.toml"
    spec.write_text(
        f'[datasets.big]\nuri = "{big}"\n\n[plans.quick]\nsql = "{QUICK_SQL}"\n\n'
        f'[plans.long_join]\nsql = "{long_sql}"\n{timeout}',
        encoding="utf-8",
    )
    return spec


def _signal_states(pid: int) -> str:
    """The signal masks of this process and of ``pid`` (from ``/proc``), for a failure's message."""
    found = []
    for who in ("self", str(pid)):
        try:
            lines = Path(f"/proc/{who}/status").read_text("utf-8").splitlines()
        except OSError as exc:
            found.append(f"{who}: {exc}")
            continue
        masks = [line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt", "Threads"))]
        found.append(f"{who}: {' '.join(masks)}")
    return "; ".join(found)


def _build(spec: Path, home: Path) -> subprocess.Popen[str]:
    """The CLI build as a terminal's foreground job: its own process group, SIGINT at its default.

    A suite started as a background job ignores SIGINT, and an ignored signal stays ignored across exec;
    a caught one is reset to its default. So SIGINT is caught here while the child starts.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codeanatomy_assets.cli.app",
                "build",
                "--config",
                str(spec),
                "--home",
                str(home),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, signalled as a terminal signals its foreground job
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home / "dagster"))


def _first_build(spec: Path, home: Path) -> dict[str, tuple[int, int]]:
    """A completed build (the long plan still short); the versions and row counts it left."""
    proc = _build(spec, home)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return _tables(home)


def _tables(home: Path) -> dict[str, tuple[int, int]]:
    """Version and row count of each plan output that exists."""
    found = {}
    for name in ("quick", "long_join"):
        uri = home / "lake" / name
        if uri.is_dir():
            table = DeltaTable(str(uri))
            ctx = SessionContext()
            ctx.register_table("t", table)
            found[name] = (table.version(), ctx.sql("select count(*) as n from t").to_pydict()["n"][0])
    return found


def _wait_until_running(proc: subprocess.Popen[str], home: Path, step: str, *, for_s: float) -> str:
    """The run id once Dagster shows ``step`` started ``for_s`` seconds ago (polled, not slept)."""
    instance = _instance(home)
    known = {r.run_id for r in instance.get_runs()}
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"step {step} never started"
        runs = [r for r in _instance(home).get_runs(limit=3) if r.run_id not in known]
        if runs:
            stats = instance.get_run_step_stats(runs[0].run_id, step_keys=[step])
            if (
                stats
                and stats[0].start_time
                and not stats[0].end_time
                and time.time() - stats[0].start_time >= for_s
            ):
                return runs[0].run_id
        time.sleep(0.05)


def _store(home: Path) -> DeltaDiagnosticsStore:
    return DeltaDiagnosticsStore(home / "lake" / "_diagnostics")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_plan_stops_the_build_within_5_s(
    big: str, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    home = tmp_path / "home"
    before = _first_build(_spec(tmp_path, big, long_sql=SHORT_SQL), home)
    proc = _build(_spec(tmp_path, big, long_sql=LONG_SQL), home)
    started = time.monotonic()
    run_id = _wait_until_running(proc, home, "long_join", for_s=1.5)
    signalled = time.monotonic()
    os.killpg(proc.pid, signum)  # the whole group, as Ctrl-C does: Dagster's helper processes too
    out, err = proc.communicate(timeout=60)
    ended = time.monotonic()

    assert proc.returncode == code, out + err
    assert ended - signalled < EXIT_WITHIN_S
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, out + err
    assert lines[0].startswith(f"run {run_id}: cancelled by {signum.name} after ")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err

    (run,) = _store(home).read_runs(run_id)
    assert run["status"] == "cancelled"
    assert run["metadata"]["cancelled_by"] == signum.name
    # Its true duration: from its start to its end, not to whenever it was next looked at.
    assert (signalled - started) * 1000 - 2000 < run["duration_ms"] < (ended - started) * 1000
    events = _store(home).read_events(run_id)
    stopped = [e for e in events if e.name == "plan_cancelled_v1"]
    assert [e.plan for e in stopped] == ["long_join"]
    assert stopped[0].payload["reason"] == signum.name and stopped[0].payload["seconds"] >= 1.0
    # It was stopped while executing: every phase before "execute" had been recorded.
    phases = {
        e.payload["phase"] for e in events if e.name == "datafusion_plan_phase_v1" and e.plan == "long_join"
    }
    assert phases == {"logical", "optimized", "physical"}

    assert _instance(home).get_run_by_id(run_id).status is dg.DagsterRunStatus.CANCELED
    after = _tables(home)
    assert after["long_join"] == before["long_join"]  # nothing of the stopped plan was committed
    assert not list((home / "runs").glob("*.json"))  # the run's marker is gone (the lock: the process)


def test_terminate_in_the_dagster_ui_stops_the_build(big: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _first_build(_spec(tmp_path, big, long_sql=SHORT_SQL), home)
    proc = _build(_spec(tmp_path, big, long_sql=LONG_SQL), home)
    run_id = _wait_until_running(proc, home, "long_join", for_s=1.0)
    asked = time.monotonic()
    # What the UI's Terminate does for a run it did not launch: mark it CANCELING (no process to signal).
    assert _instance(home).run_launcher.terminate(run_id) is False
    out, err = proc.communicate(timeout=60)

    assert time.monotonic() - asked < EXIT_WITHIN_S
    assert proc.returncode == 1, out + err
    assert f"run {run_id}: cancelled by the Dagster UI after " in out
    assert _instance(home).get_run_by_id(run_id).status is dg.DagsterRunStatus.CANCELED
    (run,) = _store(home).read_runs(run_id)
    assert run["status"] == "cancelled" and run["metadata"]["cancelled_by"] == "the Dagster UI"


def test_a_plan_past_its_timeout_fails_alone_and_writes_nothing(big: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _build(_spec(tmp_path, big, long_sql=LONG_SQL, timeout_s=2), home)
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - started

    assert proc.returncode == 1, out + err
    assert "failed step: long_join" in out
    assert "ran longer than its timeout_s (2 s)" in out
    assert took < 30  # the join alone takes longer than the whole build
    store = _store(home)
    run_id = store.latest_run_id()
    (limit,) = [e for e in store.read_events(run_id) if e.name == "plan_limit_exceeded_v1"]
    assert limit.plan == "long_join" and limit.code == "timeout" and limit.severity.value == "error"
    assert limit.message == (
        "plan long_join ran longer than its timeout_s (2 s) and was stopped; raise [plans.long_join] timeout_s"
    )
    assert set(_tables(home)) == {"quick"}  # the other plan ran; the stopped one wrote nothing
    (run,) = store.read_runs(run_id)
    assert run["status"] == "failed"


@pytest.mark.parametrize("after_s", [0.0, 0.5, 1.0, 2.0])
def test_ctrl_c_at_any_moment_of_a_build_is_one_line_and_130(
    big: str, tmp_path: Path, after_s: float
) -> None:
    """Whether it lands in the imports, the spec, the lock, the run's start or the job: one line, 130."""
    proc = _build(_spec(tmp_path, big, long_sql=LONG_SQL), tmp_path / "home")
    time.sleep(after_s)  # the moment under test, not a synchronization
    states = _signal_states(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    if proc.returncode == -signal.SIGINT:  # died by it (a shell sees 130): before Python handles signals,
        assert lines in ([], ["codeanatomy: interrupted"])  # or when a blocked SIGINT is let through at exit
        return
    assert proc.returncode == 130, f"{out}{err}[signal state when signalled: {states}]"
    assert len(lines) == 1, out + err
    assert lines[0] == "codeanatomy: interrupted" or " cancelled by SIGINT after " in lines[0]
