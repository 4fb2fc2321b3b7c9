"""What a plan's lineage events say about its datasets, gathered from the build's own records.

Before a plan runs (and when it failed) only the spec is known: each input's and the output's URI. Once it
ran, its outcome adds each input's Delta version and provider mode, the scans' figures, the result's rows;
the Delta tables add their schemas and the written files; the run's ``delta_log_health_v1`` records (this
step's, else the durable store's) add each input's log health. A figure that cannot be read is left out of
the event and said in :attr:`PlanFacts.problems` (a warn), never a failed step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow as pa
from deltalake import DeltaTable

from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.diagnostics.event_names import DELTA_LOG_HEALTH
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.engine.scan import ScanUnit
from codeanatomy_assets.errors import exception_text
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lineage.datasets import DatasetIdentity, dataset_identity
from codeanatomy_assets.pipeline import PlanOutcome, dataset_uri
from codeanatomy_assets.plan_skip import PlanSkip
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """Rows, bytes and files (each ``None`` when unknown)."""

    rows: int | None = None
    bytes: int | None = None
    files: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFacts:
    name: str
    identity: DatasetIdentity
    version: int | None = None
    schema: pa.Schema | None = None
    registered: RegisteredTable | None = None
    health: DiagnosticEvent | None = None
    read: Figures | None = None
    """What the plan's scans read of it (from the scan units)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputFacts:
    name: str
    identity: DatasetIdentity
    version: int | None = None
    schema: pa.Schema | None = None
    written: Figures | None = None
    """What the plan wrote (``None`` unless it ran and wrote its result)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanFacts:
    inputs: tuple[InputFacts, ...]
    output: OutputFacts
    scan_units: tuple[ScanUnit, ...] = ()
    skipped: PlanSkip | None = None
    problems: tuple[str, ...] = field(default=())
    """Figures that could not be read (left out of the event), one line each."""


def planned(spec: PipelineSpec, home: ProjectHome, name: str) -> PlanFacts:
    """What the spec says: the plan's inputs and output by URI."""
    inputs = tuple(
        InputFacts(name=i, identity=dataset_identity(dataset_uri(spec, home, i)[0]))
        for i in spec.plan(name).inputs
    )
    return PlanFacts(
        inputs=inputs, output=OutputFacts(name=name, identity=dataset_identity(home.dataset_uri(name)))
    )


def completed(
    spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, name: str, outcome: PlanOutcome
) -> PlanFacts:
    """What the plan's outcome, its tables and the run's records say once it ran (or was skipped)."""
    problems: list[str] = []
    reader = _Reader(problems)
    versions = _input_versions(outcome)
    health = reader.attempt("log health", lambda: _health_events(home, step, spec.plan(name).inputs), {})
    read = _read_by_dataset(outcome.execution.scan_units if outcome.execution else ())
    inputs = tuple(
        _input(
            spec,
            home,
            reader,
            i,
            version=versions.get(i),
            registered=outcome.inputs.get(i),
            health=health.get(i),
            read=read.get(i),
        )
        for i in spec.plan(name).inputs
    )
    return PlanFacts(
        inputs=inputs,
        output=_output(home, reader, name, outcome),
        scan_units=outcome.execution.scan_units if outcome.execution else (),
        skipped=outcome.skipped,
        problems=tuple(problems),
    )


@dataclass(slots=True)
class _Reader:
    """Reads one figure at a time; a failure is kept as a problem and gives ``default``."""

    problems: list[str]

    def attempt(self, what: str, read: Callable[[], _T], default: _T) -> _T:
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - a figure left out of the lineage event, said as a warn
            self.problems.append(f"{what}: {exception_text(exc, limit=300)}")
            return default


def _input_versions(outcome: PlanOutcome) -> dict[str, int | None]:
    if outcome.skipped is not None:
        return dict(outcome.skipped.fingerprint.inputs)
    return {name: table.version for name, table in outcome.inputs.items()}


def _input(
    spec: PipelineSpec,
    home: ProjectHome,
    reader: _Reader,
    name: str,
    *,
    version: int | None,
    registered: RegisteredTable | None,
    health: DiagnosticEvent | None,
    read: Figures | None,
) -> InputFacts:
    uri, options = dataset_uri(spec, home, name)
    schema = reader.attempt(f"schema of {name}", lambda: _delta_schema(uri, version, options), None)
    return InputFacts(
        name=name,
        identity=dataset_identity(uri),
        version=version,
        schema=schema,
        registered=registered,
        health=health,
        read=read,
    )


def _output(home: ProjectHome, reader: _Reader, name: str, outcome: PlanOutcome) -> OutputFacts:
    options = home.storage_options
    execution = outcome.execution
    if execution is None:  # skipped: the output is the table it already was
        schema = reader.attempt(
            f"schema of {name}", lambda: _delta_schema(outcome.uri, outcome.version, options), None
        )
        written = None
    else:
        schema = execution.table.schema
        files = reader.attempt(
            f"files of {name}", lambda: _written_files(outcome.uri, outcome.version, options), None
        )
        written = Figures(
            rows=execution.table.num_rows,
            bytes=files[1] if files else None,
            files=files[0] if files else None,
        )
    return OutputFacts(
        name=name,
        identity=dataset_identity(outcome.uri),
        version=outcome.version,
        schema=schema,
        written=written,
    )


def _delta_schema(uri: str, version: int | None, options: Mapping[str, str]) -> pa.Schema:
    table = DeltaTable(uri, version=version, storage_options=dict(options) or None)
    # deltalake gives an arro3 schema; pyarrow takes it through the Arrow PyCapsule interface.
    return pa.schema(table.schema().to_arrow())  # pyright: ignore[reportArgumentType]


def _written_files(uri: str, version: int, options: Mapping[str, str]) -> tuple[int, int]:
    """The live files of the output's version (its result: a plan overwrites its output) and their bytes."""
    table = DeltaTable(uri, version=version, storage_options=dict(options) or None)
    sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist()
    return len(sizes), sum(int(s or 0) for s in sizes)


def _health_events(
    home: ProjectHome, step: StepDiagnostics, names: Sequence[str]
) -> dict[str, DiagnosticEvent]:
    """The latest ``delta_log_health_v1`` of each input in this run: this step's (an input registered
    anew here), else the store's (its dataset step's, in this process or another)."""
    found = _latest_health(e for e in step.collector.all_events() if e.name == DELTA_LOG_HEALTH)
    if not all(n in found for n in names):
        stored = home.diagnostics_store().read_events(step.run_id, names=[DELTA_LOG_HEALTH])
        found = {**_latest_health(stored), **found}
    return {n: found[n] for n in names if n in found}


def _latest_health(events: Iterable[DiagnosticEvent]) -> dict[str, DiagnosticEvent]:
    latest: dict[str, DiagnosticEvent] = {}
    for event in sorted(events, key=lambda e: e.event_time_unix_ms):
        if event.dataset is not None:
            latest[event.dataset] = event
    return latest


def _read_by_dataset(units: Sequence[ScanUnit]) -> dict[str, Figures]:
    """What the scans read of each dataset, summed over its scans (``None`` where one scan's is unknown)."""
    by_dataset: dict[str, list[ScanUnit]] = defaultdict(list)
    for unit in units:
        if unit.dataset is not None:
            by_dataset[unit.dataset].append(unit)
    return {
        name: Figures(
            rows=_sum(u.output_rows for u in scans),
            bytes=_sum(u.bytes_scanned for u in scans),
            files=_sum(u.candidate_files for u in scans),
        )
        for name, scans in by_dataset.items()
    }


def _sum(values: Iterable[int | None]) -> int | None:
    known = list(values)
    return None if any(v is None for v in known) else sum(v for v in known if v is not None)
