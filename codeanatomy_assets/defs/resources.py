"""The one Dagster resource: where the project home is and how steps record diagnostics.

Its fields are recorded by Dagster (run config, job snapshot): they hold paths and switches, never
credentials. The storage options of an object-store lake are read from each step process's environment
(:meth:`codeanatomy_assets.home.ProjectHome.resolve`).
"""

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import dagster as dg

from codeanatomy_assets.cancel import release_inherited_block
from codeanatomy_assets.diagnostics.otel import Telemetry, bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.session import SPILL_FOLDER, EngineSettings
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.step import StepDiagnostics, step_diagnostics

RUN_ID_TAG: Final = "codeanatomy/run_id"
"""A run tag naming the diagnostics run id when it differs from the Dagster run id (``execute_job`` picks
its own run id; the build's run envelope was opened before). Without it the Dagster run id is used."""


class CodeAnatomyResource(dg.ConfigurableResource):
    """Project home and diagnostics switches, resolved when a step runs (never at import)."""

    home: str = ""
    """Project home; empty means ``CODEANATOMY_HOME`` or ``./.codeanatomy``."""
    lake: str = ""
    """Lake URI (datasets, diagnostics store); empty means ``CODEANATOMY_LAKE_URI`` or ``<home>/lake``."""
    capture_diagnostics: bool = True
    """Capture plan artifacts, metrics and scan units (off: a build does only its real work)."""
    progress: bool = False
    """Show a progress bar while extracting (the CLI turns it on in a terminal)."""
    memory_limit: int = 0
    """Bytes one plan may hold (``--memory-limit``); 0 means the spec's ``[engine]``, else the default."""
    html_in_step: bool = True
    """Render the HTML report in the report step (off when the CLI renders it after the run, with the final
    report: once per build)."""
    full_rebuild: bool = False
    """Re-extract the whole tree and re-run every plan (``--full``); else only what changed."""

    def project_home(self) -> ProjectHome:
        return ProjectHome.resolve(self.home or None, lake=self.lake or None).ensure()

    def engine_settings(self, spec_engine: EngineSettings) -> EngineSettings:
        """The spec's ``[engine]`` with this build's memory limit over it, spilling under the home."""
        return dataclasses.replace(
            spec_engine,
            memory_limit=self.memory_limit or spec_engine.memory_limit,
            spill_dir=self.project_home().root / SPILL_FOLDER,
        )

    def compile_options(self, run_id: str) -> CompileOptions:
        return CompileOptions(run_id=run_id) if self.capture_diagnostics else CompileOptions.off(run_id)

    @contextmanager
    def step(self, context: dg.AssetExecutionContext) -> Iterator[StepDiagnostics]:
        """The diagnostics of the running asset step (span, sinks, flush at the end)."""
        release_inherited_block()  # a step process must stay interruptible by Dagster (cancel.py)
        asset_key = context.asset_key.to_user_string()
        with step_diagnostics(
            home=self.project_home(),
            run_id=diagnostics_run_id(context.run),
            asset_key=asset_key,
            step_key=context.get_step_execution_context().step.key,
            telemetry=process_telemetry(),
        ) as step:
            yield step
        process_telemetry().force_flush()


def diagnostics_run_id(run: dg.DagsterRun) -> str:
    """The run id the steps of ``run`` record diagnostics under (see :data:`RUN_ID_TAG`)."""
    return run.tags.get(RUN_ID_TAG) or run.run_id


_PROCESS_TELEMETRY: list[Telemetry] = []


def process_telemetry() -> Telemetry:
    """One set of telemetry providers per step process, configured from the ``OTEL_*`` environment.

    The CLI and tests install theirs first with :func:`use_telemetry` (e.g. in-memory exporters).
    """
    if not _PROCESS_TELEMETRY:
        _PROCESS_TELEMETRY.append(bootstrap_telemetry(TelemetryConfig.resolve(dict(os.environ))))
    return _PROCESS_TELEMETRY[0]


def use_telemetry(telemetry: Telemetry | None) -> None:
    """Make ``telemetry`` the providers of this process's steps (None: back to the environment's)."""
    _PROCESS_TELEMETRY.clear()
    if telemetry is not None:
        _PROCESS_TELEMETRY.append(telemetry)
