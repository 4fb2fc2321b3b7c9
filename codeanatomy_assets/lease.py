"""Build leases: the lock that serializes builds on one home, and the markers of runs in progress.

Two builds on the same home would overwrite the same Delta datasets at once; Delta's commit protocol keeps
each table consistent, but the loser of a conflicting overwrite fails and a plan could read one build's
``symbols`` with the other's ``calls``. So a build takes ``<home>/build.lock`` (an advisory ``flock``; the
kernel releases it when the process dies, even by SIGKILL) and a second build waits for it.

A run in progress leaves ``<home>/runs/<run_id>.json`` (pid, host, start). A run whose process was killed
cannot record its own end; the next build finds its marker, sees the process is gone and records the run
as failed (``error.type`` ``ProcessKilled``), so the store never keeps a run "running" forever. The
running build touches its marker every second (:func:`touch_marker`), so the killed run's recorded
end is when it was last seen alive, not when the next build found it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from codeanatomy_assets.cancel import Cancelled
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink
from codeanatomy_assets.errors import CodeAnatomyError
from codeanatomy_assets.home import ProjectHome, write_text_atomically

LOCK_FILE: Final = "build.lock"
MARKERS: Final = "runs"
POLL_SECONDS: Final = 0.2


class BuildLockTimeoutError(CodeAnatomyError, TimeoutError):
    """Another build holds the home's lock for longer than the caller would wait."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMarker:
    """A run in progress, as its marker file records it."""

    run_id: str
    pid: int
    host: str
    start_time_unix_ms: int
    label: str
    last_seen_unix_ms: int | None = None
    """When the run's process last touched its marker (the file's modification time)."""

    def process_alive(self) -> bool:
        """Whether the run's process still exists (only decidable on the same host: else assume alive)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return not _zombie(self.pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but not been reaped (a container without an init leaves such)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@contextlib.contextmanager
def build_lock(
    home: ProjectHome, *, timeout_s: float = 3600.0, cancelled: Callable[[], bool] | None = None
) -> Generator[float, None, None]:
    """Hold the home's build lock; yields the seconds spent waiting for it.

    ``cancelled`` is asked while waiting: when it answers true, :class:`~codeanatomy_assets.cancel.Cancelled`
    is raised (a build interrupted while it waits for another stops at once).
    """
    home.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(home.root / LOCK_FILE, "a+") as handle:
        while not _try_lock(handle.fileno()):
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled while waiting for the build lock")
            if time.monotonic() - started > timeout_s:
                raise BuildLockTimeoutError(
                    f"{home.root}: another build has held the home's lock for over {timeout_s:.0f} s"
                )
            time.sleep(POLL_SECONDS)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if no other process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_marker(home: ProjectHome, *, run_id: str, label: str, start_time_unix_ms: int) -> Path:
    """Record that ``run_id`` is in progress in this process."""
    folder = home.root / MARKERS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.json"
    marker = {
        "run_id": run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start_time_unix_ms": start_time_unix_ms,
        "label": label,
    }
    return write_text_atomically(path, json.dumps(marker))


def touch_marker(home: ProjectHome, run_id: str) -> None:
    """The run is alive now (its marker's modification time is its last sign of life)."""
    with contextlib.suppress(FileNotFoundError):  # cleared already: the run's end is recorded
        os.utime(home.root / MARKERS / f"{run_id}.json")


def clear_marker(home: ProjectHome, run_id: str) -> None:
    """The run ended (its end is recorded): forget its marker."""
    (home.root / MARKERS / f"{run_id}.json").unlink(missing_ok=True)


def abandoned_runs(home: ProjectHome) -> list[RunMarker]:
    """Runs whose marker is left but whose process is gone (killed, or the machine restarted)."""
    folder = home.root / MARKERS
    if not folder.is_dir():
        return []
    found: list[RunMarker] = []
    for path in sorted(folder.glob("*.json")):
        try:
            seen = path.stat().st_mtime_ns // 10**6
            marker = RunMarker(**json.loads(path.read_text(encoding="utf-8")), last_seen_unix_ms=seen)
        except (OSError, ValueError, TypeError):
            # A marker cut short by the kill itself: the run id is still in its name.
            marker = RunMarker(
                run_id=path.stem, pid=-1, host=socket.gethostname(), start_time_unix_ms=0, label="unknown"
            )
        if marker.pid < 0 or not marker.process_alive():
            found.append(marker)
    return found


class ProcessKilled(Exception):  # noqa: N818 - the name is the error.type users read in the report
    """The run's process ended without recording the run's end (SIGKILL, OOM killer, power loss)."""


def record_abandoned_runs(home: ProjectHome, sink: DiagnosticsSink) -> list[RunMarker]:
    """Record every abandoned run as failed (``error.type`` ProcessKilled) and clear its marker."""
    from codeanatomy_assets.diagnostics.runs import DataFusionRun, finish_run

    abandoned = abandoned_runs(home)
    for marker in abandoned:
        run = DataFusionRun(
            run_id=marker.run_id, label=marker.label, start_time_unix_ms=marker.start_time_unix_ms
        )
        error = ProcessKilled(
            f"process {marker.pid} on {marker.host} ended before the run finished; "
            "found by the next build on this home (its end is when it was last seen alive)"
        )
        finish_run(run, sink=sink, error=error, end_time_unix_ms=marker.last_seen_unix_ms)
    return abandoned
