"""What a successful build leaves behind, and whether another build would change anything.

A build that ends with exit code 0 writes ``<home>/last_build.json`` (:class:`BuildStamp`): its run id and
report, its key (:mod:`codeanatomy_assets.build_key`: everything besides data that decides its results,
credentials left out), and the Delta version of every dataset and plan output as the build left it. A
build that starts removes the stamp; only a build that ends well writes a new one.

``codeanatomy build`` (without ``--full`` or ``--force``) asks :func:`find_up_to_date` first. The build is
up to date when the key is the same, every table is at its stamped version, every plan would be skipped
(its output was computed from its inputs' current versions: :func:`~codeanatomy_assets.plan_skip.find_skip`),
and the source tree's files have the content ``source_files`` recorded (the comparison an incremental
extraction makes, :func:`~codeanatomy_assets.extract.incremental.plan_rebuild`). A build would then parse
nothing and skip every plan, so none is launched: the command says so, records ``build_up_to_date_v1`` in
the diagnostics store, and prints the stamped run's report. Anything else, including an error while
checking, is a reason to build (:attr:`UpToDateCheck.reason`).

What such a check does not redo: the dataset steps' log and layout diagnostics (the tables' logs are
unchanged, but a finding that depends on the clock, such as vacuum debt past the retention, is only
re-evaluated by a build or by ``codeanatomy doctor``), and no Dagster run is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Final

from codeanatomy_assets.build_request import BuildRequest
from codeanatomy_assets.diagnostics.event_names import BUILD_UP_TO_DATE
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.extract.incremental import plan_rebuild
from codeanatomy_assets.extract.layout import extract_uris
from codeanatomy_assets.extract.tree import discover
from codeanatomy_assets.home import ProjectHome, write_text_atomically
from codeanatomy_assets.plan_skip import delta_version, find_skip
from codeanatomy_assets.spec import PipelineSpec

STAMP_FILE: Final = "last_build.json"
STAMP_FORMAT: Final = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildStamp:
    """A build that ended with exit code 0, and the state it left (``<home>/last_build.json``)."""

    run_id: str
    label: str
    finished_unix_ms: int
    report_path: str
    key: str
    """The build's key (:func:`codeanatomy_assets.build_key.build_key`), taken before its job ran."""
    tables: Mapping[str, int]
    """The Delta version of every dataset and plan output when the build ended."""

    def to_row(self) -> dict[str, object]:
        """The stamp as the JSON of ``last_build.json``."""
        return {"format": STAMP_FORMAT, **asdict(self), "tables": dict(self.tables)}


@dataclass(frozen=True, slots=True, kw_only=True)
class UpToDateCheck:
    """Whether a build would change nothing, and if not, why it runs."""

    stamp: BuildStamp | None
    reason: str | None
    """Why the build runs (``None``: up to date with :attr:`stamp`)."""
    seconds: float

    @property
    def up_to_date(self) -> bool:
        """Whether a build would change nothing (then :attr:`stamp` is the build that stands)."""
        return self.reason is None and self.stamp is not None


def table_versions(request: BuildRequest) -> dict[str, int | None]:
    """The current Delta version of every dataset and plan output of the build (``None``: unreadable)."""
    spec = request.spec
    names = [d.name for d in spec.datasets] + [p.name for p in spec.plans]
    return {name: delta_version(*spec.location(request.home, name)) for name in names}


def read_stamp(home: ProjectHome) -> BuildStamp | None:
    """The stamp of the home's last successful build (``None``: none, or unreadable)."""
    try:
        row = json.loads((home.root / STAMP_FILE).read_text(encoding="utf-8"))
        if row.pop("format", None) != STAMP_FORMAT:
            return None
        return BuildStamp(**row)
    except (OSError, ValueError, TypeError):
        return None


def write_stamp(home: ProjectHome, stamp: BuildStamp) -> None:
    """Replace the home's stamp atomically."""
    write_text_atomically(home.root / STAMP_FILE, json.dumps(stamp.to_row(), indent=2, sort_keys=True))


def clear_stamp(home: ProjectHome) -> None:
    """Forget the last build's stamp (a build is starting: until it ends well, nothing is up to date)."""
    (home.root / STAMP_FILE).unlink(missing_ok=True)


def stamp_build(
    request: BuildRequest,
    key: str,
    *,
    run_id: str,
    report_path: Path | str,
    finished_unix_ms: int,
    versions: Mapping[str, int | None],
) -> BuildStamp | None:
    """Write the stamp of a build that ended well with the table ``versions`` it left (read under its
    lock: :func:`table_versions`); ``None`` (no stamp) when one of them could not be read."""
    tables = {name: version for name, version in versions.items() if version is not None}
    if len(tables) != len(versions):
        return None
    stamp = BuildStamp(
        run_id=run_id,
        label=request.spec.label,
        finished_unix_ms=finished_unix_ms,
        report_path=str(report_path),
        key=key,
        tables=tables,
    )
    write_stamp(request.home, stamp)
    return stamp


def find_up_to_date(request: BuildRequest, key: str) -> UpToDateCheck:
    """Whether ``request`` would change nothing since the home's last successful build."""
    started = time.perf_counter()
    stamp = read_stamp(request.home)
    try:
        reason = _why_build(request, key, stamp)
    except Exception as exc:  # noqa: BLE001 - a check that fails is a reason to build, and says why
        reason = f"the up-to-date check failed: {type(exc).__name__}: {exc}"
    return UpToDateCheck(stamp=stamp, reason=reason, seconds=time.perf_counter() - started)


def _why_build(request: BuildRequest, key: str, stamp: BuildStamp | None) -> str | None:
    """Why ``request`` must run (``None``: it would change nothing since ``stamp``)."""
    if request.full:
        return "a full rebuild was asked for (--full)"
    if stamp is None:
        return f"no successful build recorded in {request.home.root / STAMP_FILE}"
    if not Path(stamp.report_path).is_file():
        return f"the last build's report {stamp.report_path} is gone"
    if stamp.key != key:
        return "the spec, the switches, the telemetry configuration or the code changed since the last build"
    for name, version in table_versions(request).items():
        if stamp.tables.get(name) != version:
            return f"table {name} is at version {version}, the last build left {stamp.tables.get(name)}"
    return _why_plan_runs(request) or _why_extract(request)


def _why_plan_runs(request: BuildRequest) -> str | None:
    """Why a plan would run: its output was not computed from its inputs' current versions (an input
    written to while the last build ran, after the plan read it). ``None``: every plan would be skipped."""
    locate = partial(PipelineSpec.location, request.spec, request.home)
    for plan in request.spec.plans:
        if find_skip(plan, locate) is None:
            return f"plan {plan.name} was not computed from its inputs' current versions"
    return None


def _why_extract(request: BuildRequest) -> str | None:
    """Why the extraction has work to do (``None``: every file has the content ``source_files`` holds)."""
    extract = request.spec.extract
    if extract is None:
        return None
    uris = extract_uris(request.home.lake)
    plan = plan_rebuild(discover(extract.source_path()), uris, request.home.storage_options, full=False)
    if not plan.incremental or plan.changes is None:
        return f"the extraction is full: {plan.reason}"
    return None if plan.changes.empty else f"the source tree changed: {plan.reason}"


def record_up_to_date(home: ProjectHome, check: UpToDateCheck, *, run_id: str) -> None:
    """Record in the diagnostics store that a build found itself up to date (``build_up_to_date_v1``,
    under ``run_id``, this command's own id: no run envelope, no Dagster run)."""
    stamp = check.stamp
    if stamp is None:
        raise ValueError("only a check that found the build up to date is recorded")
    event = DiagnosticEvent(
        name=BUILD_UP_TO_DATE,
        run_id=run_id,
        severity=Severity.INFO,
        category=Category.RUN_LIFECYCLE,
        code="up_to_date",
        message=f"nothing changed since run {stamp.run_id}: no run launched",
        payload={
            "stamped_run_id": stamp.run_id,
            "label": stamp.label,
            "report_path": stamp.report_path,
            "tables": dict(stamp.tables),
            "seconds": round(check.seconds, 3),
        },
    )
    with home.diagnostics_store() as store:
        emit(store, event)
