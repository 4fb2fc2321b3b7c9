"""Build leases: builds on one home are serialized, and a killed run is found and recorded as failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lease import (
    BuildLockTimeoutError,
    abandoned_runs,
    build_lock,
    clear_marker,
    record_abandoned_runs,
    write_marker,
)

HOLD = """
import sys, time
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lease import build_lock, write_marker
home = ProjectHome.resolve(sys.argv[1])
with build_lock(home):
    write_marker(home, run_id=sys.argv[2], label="held", start_time_unix_ms=1)
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(home: Path, run_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home), run_id], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_build_waits_until_the_first_releases(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path)
    holder = _holder(tmp_path, "r-held")
    try:
        with pytest.raises(BuildLockTimeoutError, match="another build"), build_lock(home, timeout_s=0.5):
            pass
    finally:
        holder.terminate()
        holder.wait()
    with build_lock(home, timeout_s=5) as waited:
        assert waited < 5


def test_sigkilled_run_is_found_recorded_failed_and_its_lock_released(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path)
    holder = _holder(tmp_path, "r-killed")
    assert abandoned_runs(home) == []  # alive: not abandoned
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    (marker,) = abandoned_runs(home)
    assert (marker.run_id, marker.pid) == ("r-killed", holder.pid)
    sink = DiagnosticsCollector()
    record_abandoned_runs(home, sink)
    (row,) = sink.artifacts_snapshot()["datafusion_run_finished_v1"]
    payload = json.loads(row["payload"])
    assert row["severity"] == "error"
    assert payload["status"] == "failed"
    assert "ProcessKilled" in payload["error.type"]
    clear_marker(home, "r-killed")
    assert abandoned_runs(home) == []
    with build_lock(home, timeout_s=2):  # the kernel released the dead holder's lock
        pass


def test_marker_cut_short_is_still_found(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path)
    write_marker(home, run_id="r-live", label="x", start_time_unix_ms=time.time_ns() // 10**6)
    (tmp_path / "runs" / "r-torn.json").write_text('{"run_id": "r-to')
    assert [m.run_id for m in abandoned_runs(home)] == ["r-torn"]


def test_a_killed_run_ends_when_it_was_last_seen_alive(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path)
    holder = _holder(tmp_path, "r-seen")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    marker = tmp_path / "runs" / "r-seen.json"
    os.utime(marker, (1_000.0, 81.0))  # last touched 80 s after its start (1 ms), long before now
    sink = DiagnosticsCollector()
    record_abandoned_runs(home, sink)
    (row,) = sink.artifacts_snapshot()["datafusion_run_finished_v1"]
    payload = json.loads(row["payload"])
    assert payload["end_time_unix_ms"] == 81_000
    assert payload["duration_ms"] == 80_999
