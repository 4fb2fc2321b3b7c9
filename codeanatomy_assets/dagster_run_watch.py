"""The Dagster side of cancelling a build: Terminate in the UI, and the run's status in the instance."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import dagster as dg

from codeanatomy_assets.cancel import CANCEL, CancelScope
from codeanatomy_assets.defs.resources import RUN_ID_TAG
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lease import touch_marker

HEARTBEAT_S: Final = 1.0
"""How often a running build touches its marker (the end recorded for it if it is killed)."""
UI_CANCELLER: Final = "the Dagster UI"


@dataclass(slots=True, kw_only=True)
class DagsterRunWatch:
    """Watches a build's Dagster run for a cancellation, and records one there.

    Terminate on a run that ``codeanatomy build`` executes marks it CANCELING (the default run launcher
    has no process of its own to stop); :meth:`cancel_requested` sees that. On a signal,
    :meth:`mark_canceling` marks the run CANCELING at once, so that Dagster ends it as CANCELED when the
    interrupt unwinds the job; :meth:`settle_cancelled` makes sure it did (the job may have finished
    first).
    """

    run_id: str
    home: ProjectHome
    instance: dg.DagsterInstance | None = None
    touched: float = 0.0

    def poll(self) -> str | None:
        """Who cancelled the run elsewhere, if anyone; touches the run's marker each second."""
        if time.monotonic() - self.touched >= HEARTBEAT_S:
            touch_marker(self.home, self.run_id)
            self.touched = time.monotonic()
        return self.cancel_requested()

    def _run(self) -> dg.DagsterRun | None:
        if self.instance is None:
            return None
        run = self.instance.get_run_by_id(self.run_id)
        if run is None:  # the multiprocess executor's run carries our run id as a tag
            found = self.instance.get_runs(filters=dg.RunsFilter(tags={RUN_ID_TAG: self.run_id}), limit=1)
            run = found[0] if found else None
        return run

    def cancel_requested(self) -> str | None:
        run = self._run()
        canceling = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)
        return UI_CANCELLER if run is not None and run.status in canceling else None

    def mark_canceling(self) -> None:
        run = self._run()
        if self.instance is None or run is None or run.is_finished:
            return
        if run.status is not dg.DagsterRunStatus.CANCELING:
            self.instance.report_run_canceling(run, message=f"codeanatomy build: {CANCEL.reason}")

    def settle_cancelled(self, cancel: CancelScope) -> None:
        run = self._run()
        if self.instance is not None and run is not None and run.status is not dg.DagsterRunStatus.CANCELED:
            self.instance.report_run_canceled(run, message=f"codeanatomy build cancelled by {cancel.reason}")
