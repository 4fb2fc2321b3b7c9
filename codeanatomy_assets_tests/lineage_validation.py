"""Received OpenLineage events checked against the openlineage-python client's models.

:func:`validate_event` rebuilds an event's JSON with the client's attrs classes (event, run, job, datasets
and every facet, by its key; the package's custom facets with their own classes): the classes' validators
check the run ids (UUIDs), the event time and the URLs; every field must be one the class declares, of the
type it declares, every ``_schemaURL`` the one the class names; and the rebuilt event serializes back to
exactly the JSON received (nothing lost, nothing added). Any deviation raises ``AssertionError``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    datasource_dataset,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    storage_dataset,
    tags_run,
)
from openlineage.client.serde import Serde

from codeanatomy_assets.lineage import facets as custom

RUN_FACETS: dict[str, type] = {
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "parent": parent_run.ParentRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "tags": tags_run.TagsRunFacet,
    custom.SCAN_PRUNING: custom.ScanPruningRunFacet,
    custom.PLAN_SKIPPED: custom.PlanSkippedRunFacet,
}
JOB_FACETS: dict[str, type] = {"jobType": job_type_job.JobTypeJobFacet, "sql": sql_job.SQLJobFacet}
DATASET_FACETS: dict[str, type] = {
    "dataSource": datasource_dataset.DatasourceDatasetFacet,
    "schema": schema_dataset.SchemaDatasetFacet,
    "storage": storage_dataset.StorageDatasetFacet,
    "version": dataset_version_dataset.DatasetVersionDatasetFacet,
    custom.DELTA_LOG_HEALTH: custom.DeltaLogHealthDatasetFacet,
}
INPUT_FACETS: dict[str, type] = {
    "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
    custom.PROVIDER_MODE: custom.ProviderModeInputDatasetFacet,
}
OUTPUT_FACETS: dict[str, type] = {
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
}

# (class, field) -> the class of the field's value (of each item, for a list), or a facet map for a dict.
_NESTED: dict[tuple[type, str], type | dict[str, type]] = {
    (RunEvent, "run"): Run,
    (RunEvent, "job"): Job,
    (RunEvent, "inputs"): InputDataset,
    (RunEvent, "outputs"): OutputDataset,
    (Run, "facets"): RUN_FACETS,
    (Job, "facets"): JOB_FACETS,
    (InputDataset, "facets"): DATASET_FACETS,
    (InputDataset, "inputFacets"): INPUT_FACETS,
    (OutputDataset, "facets"): DATASET_FACETS,
    (OutputDataset, "outputFacets"): OUTPUT_FACETS,
    (parent_run.ParentRunFacet, "run"): parent_run.Run,
    (parent_run.ParentRunFacet, "job"): parent_run.Job,
    (parent_run.ParentRunFacet, "root"): parent_run.Root,
    (parent_run.Root, "run"): parent_run.RootRun,
    (parent_run.Root, "job"): parent_run.RootJob,
    (schema_dataset.SchemaDatasetFacet, "fields"): schema_dataset.SchemaDatasetFacetFields,
    (schema_dataset.SchemaDatasetFacetFields, "fields"): schema_dataset.SchemaDatasetFacetFields,
    (tags_run.TagsRunFacet, "tags"): tags_run.TagsRunFacetFields,
    (custom.ScanPruningRunFacet, "scans"): custom.ScanPruning,
}


def validate_event(data: dict[str, Any]) -> RunEvent:
    """The run event ``data`` rebuilt with the client's classes (``AssertionError`` where it deviates)."""
    event = _build(RunEvent, data, "event")
    assert isinstance(event, RunEvent)
    assert Serde.to_dict(event) == data, "the event does not serialize back to the JSON received"
    return event


def _build(cls: type, data: Any, where: str) -> Any:
    assert isinstance(data, dict), f"{where}: {cls.__name__} must be an object, not {type(data).__name__}"
    fields = {f.name: f for f in attr.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in {"_schemaURL", "schemaURL"}:
            expected = cls._get_schema()
            assert value == expected, f"{where}.{key}: {value} is not {expected}"
            continue
        assert key in fields, f"{where}: {cls.__name__} has no field {key!r}"
        kwargs[fields[key].alias] = _convert(cls, key, value, f"{where}.{key}")
    built = cls(**kwargs)
    _check_types(built, where)
    return built


def _convert(cls: type, key: str, value: Any, where: str) -> Any:
    target = _NESTED.get((cls, key))
    if key == "eventType":
        return RunState(value)
    if target is None or value is None:
        return value
    if isinstance(target, dict):
        assert isinstance(value, dict), f"{where}: facets must be an object"
        unknown = sorted(set(value) - set(target))
        assert not unknown, f"{where}: facets of no known class: {unknown}"
        return {name: _build(target[name], facet, f"{where}.{name}") for name, facet in value.items()}
    if isinstance(value, list):
        return [_build(target, item, f"{where}[{i}]") for i, item in enumerate(value)]
    return _build(target, value, where)


def _check_types(built: Any, where: str) -> None:
    cls = type(built)
    attr.resolve_types(cls)
    for field in attr.fields(cls):
        value = getattr(built, field.name)
        assert _matches(value, field.type), f"{where}.{field.name}: {value!r} is not a {field.type}"


def _matches(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and _matches(v, args[1]) for k, v in value.items()
        )
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return origin is typing.ClassVar or annotation is Any
