"""``codeanatomy build``: run the whole job in-process against the persistent Dagster instance of the home."""

from __future__ import annotations

import gc
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import Parameter

from codeanatomy_assets.cli.telemetry import TelemetryOptions, resolve_cli_telemetry

if TYPE_CHECKING:
    from codeanatomy_assets.build_request import BuildRequest, Executor
    from codeanatomy_assets.build_stamp import UpToDateCheck
    from codeanatomy_assets.celery_settings import CelerySettings
    from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig


SourceOption = Annotated[Path | None, Parameter(help="Python source tree to analyse (default: the stdlib).")]
ConfigOption = Annotated[Path | None, Parameter(help="Pipeline spec (TOML); replaces the built-in spec.")]
HomeOption = Annotated[
    Path | None, Parameter(help="Project home (default: $CODEANATOMY_HOME or ./.codeanatomy).")
]
LakeOption = Annotated[
    str | None,
    Parameter(
        help="Lake for datasets and the diagnostics store, e.g. s3://bucket/prefix (default: "
        "$CODEANATOMY_LAKE_URI or HOME/lake). Credentials: AWS_* or $CODEANATOMY_LAKE_STORAGE_OPTIONS."
    ),
]
ExecutorOption = Annotated[
    Literal["in_process", "multiprocess", "celery"],
    Parameter(
        help="Run the steps in this process, one process per step (Dagster multiprocess), or as tasks "
        "of Celery workers (dagster-celery; docs/deployment.md)."
    ),
]
CeleryBrokerOption = Annotated[
    str | None,
    Parameter(help="Celery broker URL, e.g. redis://host:6379/0 (default: $CODEANATOMY_CELERY_BROKER)."),
]
CeleryBackendOption = Annotated[
    str | None,
    Parameter(
        help="Celery result backend URL (default: $CODEANATOMY_CELERY_BACKEND, else the Redis broker)."
    ),
]
CaptureOption = Annotated[bool, Parameter(help="Capture plan artifacts, metrics and scan units.")]
FullOption = Annotated[
    bool,
    Parameter(
        help="Re-extract the whole tree and re-run every plan (default: parse only the changed files, "
        "skip plans whose inputs and SQL did not change)."
    ),
]
ForceOption = Annotated[
    bool,
    Parameter(
        help="Launch the run even when nothing changed since the last successful build (default: such a "
        "build prints that it is up to date, and that build's report, without a run)."
    ),
]
MemoryLimitOption = Annotated[
    str | None,
    Parameter(
        help="Memory one plan may hold, e.g. 2GB, 512MiB or 70% (default: the spec's [engine] "
        "memory_limit, else half the machine's memory). DataFusion spills to HOME/spill beyond it."
    ),
]


def build(
    *,
    source: SourceOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
    lake: LakeOption = None,
    executor: ExecutorOption = "in_process",
    capture: CaptureOption = True,
    memory_limit: MemoryLimitOption = None,
    full: FullOption = False,
    force: ForceOption = False,
    celery_broker: CeleryBrokerOption = None,
    celery_backend: CeleryBackendOption = None,
    telemetry: TelemetryOptions | None = None,
) -> int:
    """Run the CodeAnatomy build (or the pipeline of --config) and write run_diagnostics_report.md.

    The last line printed is the path of the report. Exit codes: 0 success, 1 a gate or step failed,
    2 usage error, 130 / 143 cancelled by SIGINT / SIGTERM (one line is printed then, with the report).
    """
    from codeanatomy_assets.build_request import BuildRequest, Executor, celery_settings
    from codeanatomy_assets.errors import ConfigError, SourceTreeError

    try:
        request = BuildRequest.resolve(
            source=source,
            config=config,
            home=home,
            lake=lake,
            capture=capture,
            memory_limit=memory_limit,
            full=full,
        )
        celery = celery_settings(Executor(executor), broker=celery_broker, backend=celery_backend)
    except (ConfigError, SourceTreeError) as exc:
        print(f"codeanatomy build: error: {exc}", file=sys.stderr)
        return 2
    telemetry_config = _telemetry_config(telemetry, config)
    if not (full or force):
        current = _exit_if_up_to_date(request, Executor(executor), telemetry_config)
        if current is not None:
            return current
    return _run(request, Executor(executor), telemetry_config, celery)


def _run(
    request: BuildRequest,
    executor: Executor,
    telemetry_config: TelemetryConfig,
    celery: CelerySettings | None,
) -> int:
    """Launch the build's Dagster run; print its failures and report; its exit code."""
    gc.disable()  # the imports below create ~130k objects that live until exit: no collections meanwhile
    from codeanatomy_assets.runner import run_build

    gc.freeze()  # ... and none later: the build's full collections skip them
    gc.enable()
    outcome = run_build(
        request,
        run_id=str(uuid.uuid4()),
        progress=sys.stderr.isatty(),
        telemetry_config=telemetry_config,
        executor=executor,
        celery=celery,
    )
    for line in outcome.summary_lines():
        print(line)
    if outcome.cancelled_by is not None:
        return _exit_cancelled(outcome.exit_code)
    print(outcome.report_path)
    return outcome.exit_code


def _exit_if_up_to_date(
    request: BuildRequest, executor: Executor, telemetry_config: TelemetryConfig
) -> int | None:
    """Exit code 0 when nothing changed since the home's last successful build (one line, the event
    ``build_up_to_date_v1`` in the store, and that build's report printed last); ``None``: build (and
    why is said on stderr when it is a terminal, like the build's progress)."""
    from codeanatomy_assets.build_key import build_key
    from codeanatomy_assets.build_stamp import find_up_to_date, read_stamp
    from codeanatomy_assets.lease import BuildLockTimeoutError, build_lock

    if read_stamp(request.home) is None:  # no build ended well here yet: build (and create nothing now)
        return None
    try:
        with build_lock(request.home):  # a build in progress on this home is waited for
            check = find_up_to_date(request, build_key(request, executor, telemetry_config))
            if check.stamp is None or not check.up_to_date:
                if sys.stderr.isatty():  # with the build's progress; scripts get one line on a cancel
                    print(f"codeanatomy build: building: {check.reason}", file=sys.stderr)
                return None
            _record_up_to_date(request, check)
    except KeyboardInterrupt:
        print("codeanatomy build: cancelled by SIGINT while checking for changes", file=sys.stderr)
        return 130
    except BuildLockTimeoutError as exc:
        print(f"codeanatomy build: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"up to date: nothing changed since run {check.stamp.run_id} (source files, tables, spec, "
        f"switches, code; checked in {check.seconds:.2f} s); --force runs the build anyway, --full "
        "rebuilds everything"
    )
    print(check.stamp.report_path)
    return 0


def _record_up_to_date(request: BuildRequest, check: UpToDateCheck) -> None:
    """Record the check in the diagnostics store; a store that cannot take it is a warning (the build is
    up to date all the same)."""
    from codeanatomy_assets.build_stamp import record_up_to_date

    try:
        record_up_to_date(request.home, check, run_id=str(uuid.uuid4()))
    except Exception as exc:  # noqa: BLE001 - reported, and the answer stands
        print(f"codeanatomy build: warning: build_up_to_date_v1 not recorded: {exc}", file=sys.stderr)


def _telemetry_config(telemetry: TelemetryOptions | None, config: Path | None) -> TelemetryConfig:
    """The build's telemetry configuration (flags > environment > config file); a problem reading it is
    a warning, not an error."""
    flags = (telemetry or TelemetryOptions()).as_flags()
    resolved, problem = resolve_cli_telemetry(flags, dict(os.environ), config)
    if problem:
        print(f"codeanatomy build: warning: telemetry configuration: {problem}", file=sys.stderr)
    return resolved


def _exit_cancelled(code: int) -> int:
    """End a cancelled build now if a plan's drain thread is still inside DataFusion.

    Such a thread stops at the engine's next signal check (engine/drain.py); one that does not within
    a second must not meet interpreter shutdown, which would wait on, or tear down under, native code.
    Everything is recorded and flushed by now, so the process ends without finalization.
    """
    from codeanatomy_assets.engine.drain import drain_threads

    stragglers = drain_threads()
    for thread in stragglers:
        thread.join(timeout=1.0)
    if any(t.is_alive() for t in stragglers):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
