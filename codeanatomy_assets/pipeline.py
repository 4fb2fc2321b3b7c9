"""The steps of a build as plain functions: extract, register a dataset, run a plan.

The Dagster assets in :mod:`codeanatomy_assets.defs` call these and only translate the outcomes into
metadata and check results; the CLI and the tests can call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.delta.log import is_object_store_uri
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.registration import Registration, redact, register_dataset, register_for_plan
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.engine.plan import CompileOptions, PlanExecution, execute_plan
from codeanatomy_assets.errors import DatasetError, PlanError
from codeanatomy_assets.extract import ExtractResult, extract_tree, write_datasets
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

PROVIDER_MODE_EVENT = "dataset_provider_mode_v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOutcome:
    result: ExtractResult
    uris: Mapping[str, str]
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetOutcome:
    registration: Registration
    uri: str
    row_count: int | None
    schema: pa.Schema | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOutcome:
    execution: PlanExecution
    uri: str
    version: int
    inputs: Mapping[str, RegisteredTable] = field(default_factory=dict)
    write_ms: float = 0.0


def dataset_uri(spec: PipelineSpec, home: ProjectHome, name: str) -> tuple[str, Mapping[str, str]]:
    """Where dataset or plan ``name`` lives, with its storage options (the lake's, unless external)."""
    for dataset in spec.datasets:
        if dataset.name == name and dataset.uri is not None:
            return dataset.uri, dataset.storage_options
    return home.dataset_uri(name), home.storage_options


def run_extract(
    spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, *, progress: bool
) -> ExtractOutcome:
    """Analyse the spec's source tree and write the four extract datasets (one atomic commit each)."""
    assert spec.extract is not None, "run_extract needs a spec with [extract]"
    started = time.perf_counter()
    result = extract_tree(
        spec.extract.source_path(),
        run_id=step.run_id,
        sink=step.sink,
        workers=spec.extract.workers,
        progress=progress,
    )
    uris = write_datasets(result, home.lake, storage_options=home.storage_options)
    return ExtractOutcome(result=result, uris=uris, seconds=time.perf_counter() - started)


def run_dataset(spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, name: str) -> DatasetOutcome:
    """Register one dataset with probes: provider mode, log health and protocol compatibility.

    Raises :class:`ProtocolIncompatibleError` when no provider reads the table correctly (after recording
    why).
    """
    uri, options = dataset_uri(spec, home, name)
    ctx = SessionContext()
    registration = register_dataset(
        ctx, name=name, uri=uri, storage_options=options, run_id=step.run_id, sink=step.sink, probe=True
    )
    row_count, schema = _count_and_schema(ctx, name)
    step.emit(
        name="dataset_summary_v1",
        severity=Severity.INFO,
        category=Category.DATASET,
        dataset=name,
        payload={
            "rows": row_count,
            **_live_files(uri, options),
            "version": registration.registered.version,
            "uri": uri,
            "provider_mode": registration.registered.provider_mode.value,
        },
    )
    return DatasetOutcome(registration=registration, uri=uri, row_count=row_count, schema=schema)


def run_plan(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    options: CompileOptions | None = None,
) -> PlanOutcome:
    """Register the plan's inputs, run its SQL once with phase telemetry, write the result as Delta."""
    plan = spec.plan(name)
    options = options or CompileOptions(run_id=step.run_id)
    ctx = SessionContext()
    inputs = register_inputs(ctx, spec, home, step, plan.inputs)
    execution = execute_plan(
        ctx, name=name, sql=plan.sql, options=options, sink=step.sink, tables=inputs, tracer=step.tracer
    )
    uri, storage = home.dataset_uri(name), dict(home.storage_options) or None
    started = time.perf_counter()
    try:
        write_deltalake(
            uri,
            normalize_for_delta(execution.table),
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=storage,
        )
        version = DeltaTable(uri, storage_options=storage).version()
    except Exception as exc:
        error = redact(f"writing the result to {uri} failed: {exc}", storage)
        step.emit(
            name="datafusion_plan_phase_v1",
            severity=Severity.ERROR,
            category=Category.PLAN_PHASE,
            plan=name,
            code="write_failed",
            message=f"plan {name!r}: {error}",
            payload={"phase": "write", "error.type": type(exc).__name__},
        )
        raise PlanError(error, plan=name, phase="write") from exc
    write_ms = (time.perf_counter() - started) * 1000
    step.emit(
        name="plan_output_v1",
        severity=Severity.INFO,
        category=Category.PLAN_PHASE,
        plan=name,
        payload={
            "rows": execution.table.num_rows,
            **_live_files(uri, storage or {}),
            "version": version,
            "uri": uri,
            "write_ms": round(write_ms, 3),
        },
    )
    return PlanOutcome(execution=execution, uri=uri, version=version, inputs=inputs, write_ms=write_ms)


def register_inputs(
    ctx: SessionContext,
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    names: tuple[str, ...],
) -> dict[str, RegisteredTable]:
    """Register each input by the provider mode its dataset asset chose in this run.

    The choice is read back from the durable store (the dataset step may have run in another process);
    an input without a recorded choice (a plan output, or a plan materialized alone) is registered anew,
    which records its own provider-mode diagnostics. Such an input on an object store is probed: the Delta
    table provider registers there but cannot read (FACTS #8), so only a probe makes the policy fall back.
    """
    decided = recorded_provider_modes(home, step.run_id)
    tables: dict[str, RegisteredTable] = {}
    for input_name in names:
        uri, options = dataset_uri(spec, home, input_name)
        known = decided.get(input_name)
        if known is not None and known.provider_mode is not ProviderMode.NONE:
            known = replace(known, uri=uri, storage_options=dict(options))
            register_for_plan(ctx, known)
            tables[input_name] = known
            continue
        registration = register_dataset(
            ctx,
            name=input_name,
            uri=uri,
            storage_options=options,
            run_id=step.run_id,
            sink=step.sink,
            probe=is_object_store_uri(uri),
        )
        tables[input_name] = registration.registered
    return tables


def recorded_provider_modes(home: ProjectHome, run_id: str) -> dict[str, RegisteredTable]:
    """The provider modes chosen by dataset steps of ``run_id``, from the store (latest per dataset)."""
    store = home.diagnostics_store()
    chosen: dict[str, RegisteredTable] = {}
    for event in store.read_events(run_id, names=[PROVIDER_MODE_EVENT]):
        payload = event.payload
        if event.dataset is None or not payload.get("provider_mode"):
            continue
        chosen[event.dataset] = RegisteredTable(
            dataset=event.dataset,
            uri=str(payload.get("uri", "")),
            provider_mode=ProviderMode(payload["provider_mode"]),
            provider_class=str(payload.get("provider_class", "")),
            protocol_compatible=bool(payload.get("protocol_compatible", True)),
            version=payload.get("version"),
            fallback_reason=payload.get("fallback_reason"),
        )
    return chosen


def _live_files(uri: str, options: Mapping[str, str]) -> dict[str, object]:
    """``{"files": n}``, or ``{"files": None, "files_error": ...}``: a failed count is said, not hidden."""
    try:
        return {"files": len(DeltaTable(uri, storage_options=dict(options) or None).file_uris())}
    except Exception as exc:  # recorded in the event's payload; registration diagnoses the log itself
        return {"files": None, "files_error": f"{type(exc).__name__}: {exc}"}


def _count_and_schema(ctx: SessionContext, name: str) -> tuple[int | None, pa.Schema | None]:
    try:
        df = ctx.table(name)
        schema = df.schema()
        count = ctx.sql(f'SELECT count(*) AS n FROM "{name}"').to_pydict()["n"][0]
    except Exception as exc:  # the registration already recorded whether reads work
        raise DatasetError(f"registered but not readable: {exc}", dataset=name) from exc
    return int(count), schema


def normalize_for_delta(table: pa.Table) -> pa.Table:
    """Cast Arrow types Delta cannot store (view types, unsigned ints) to ones it can."""
    fields = [pa.field(f.name, _delta_type(f.type), f.nullable) for f in table.schema]
    target = pa.schema(fields)
    return table if target == table.schema else table.cast(target)


def _delta_type(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(dtype) or pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_binary_view(dtype) or pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_unsigned_integer(dtype):
        return pa.int64()
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(_delta_type(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _delta_type(f.type), f.nullable) for f in dtype])
    return dtype
