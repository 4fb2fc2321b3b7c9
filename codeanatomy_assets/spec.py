"""The pipeline spec: which datasets a build registers and which SQL plans it derives from them.

The spec is data: TOML, or the attributes of a ``CodeAnatomyPipeline`` component in a ``defs.yaml``
(``spec_yaml.py``, ``component.py``). The built-in spec (``builtin/defs.yaml``) is the CodeAnatomy build; a
user's ``codeanatomy.toml`` (or ``--config FILE``) replaces it. Example::

    [extract]                       # optional: analyse a Python tree into the four extract datasets
    source = "stdlib"               # "stdlib" (the running interpreter's) or a directory

    [datasets.trips]                # an external Delta table
    uri = "s3://bucket/trips"
    storage_options = { AWS_REGION = "eu-west-1" }

    [plans.busy_days]
    sql = "select day, count(*) as n from trips group by day"
    description = "Trips per day"

    [plans.top_days]
    sql_file = "sql/top_days.sql"   # relative to the spec file
    timeout_s = 600                 # optional: stop the plan (an error) when it runs longer

    [maintenance]                   # optional: treat the pipeline's own outputs (spec_maintenance.py)
    small_file_mb = 8

    [lineage]                       # optional: OpenLineage events (spec_lineage.py)
    transport = "http"
    url = "http://127.0.0.1:5000"

    [engine]                        # optional: DataFusion sessions (engine/session.py)
    memory_limit = "4GB"            # bytes one plan may hold (2GB, 512MiB, 70%); default: half the memory
    target_partitions = 4
    options = { "datafusion.execution.parquet.pushdown_filters" = true }

A plan's inputs are the datasets and plans its SQL names (found by identifier tokens outside string
literals and comments, read as DataFusion reads them: unquoted identifiers fold to lower case, quoted ones
keep their case); ``inputs = [...]`` states them explicitly instead. Dataset and plan names are lower case,
so every declared name can be referenced unquoted. A relative dataset ``uri`` is relative to the spec file,
like ``sql_file``. Every error names the file and the key that is wrong.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codeanatomy_assets.delta.layout import LayoutThresholds
from codeanatomy_assets.engine.session import EngineSettings, parse_size, validate_options
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.spec_lineage import LineageSpec, parse_lineage
from codeanatomy_assets.spec_maintenance import MaintenanceSpec, parse_maintenance
from codeanatomy_assets.spec_names import check_name
from codeanatomy_assets.spec_sql import quoted_near_misses, sql_references

if TYPE_CHECKING:
    from codeanatomy_assets.home import ProjectHome

EXTRACT_DATASETS: Final = ("source_files", "symbols", "imports", "calls")
BUILTIN_SPEC_NAME: Final = "builtin:codeanatomy"
STDLIB_SOURCE: Final = "stdlib"

_URI_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://|file:)")
_TOP_KEYS: Final = frozenset(
    {"extract", "datasets", "plans", "pipeline", "telemetry", "engine", "maintenance", "lineage"}
)
_EXTRACT_KEYS: Final = frozenset({"source", "workers"})
_DATASET_KEYS: Final = frozenset({"uri", "storage_options", "description"})
_PLAN_KEYS: Final = frozenset({"sql", "sql_file", "description", "inputs", "timeout_s"})
_ENGINE_KEYS: Final = frozenset({"memory_limit", "target_partitions", "options"})
_PIPELINE_KEYS: Final = frozenset({"label", "schedule", "baseline"})
_TELEMETRY_KEYS: Final = frozenset(
    {
        "traces_exporter",
        "logs_exporter",
        "endpoint",
        "protocol",
        "headers",
        "service_name",
        "resource_attributes",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractSpec:
    """Analyse a Python source tree into the four extract datasets."""

    source: str = STDLIB_SOURCE
    workers: int | None = None

    def source_path(self) -> Path:
        """The directory to analyse (``stdlib`` is the running interpreter's standard library)."""
        if self.source == STDLIB_SOURCE:
            return Path(sysconfig.get_paths()["stdlib"])
        return Path(self.source).expanduser()


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSpec:
    """A dataset the build registers: an extract output (``uri`` None) or an external Delta table."""

    name: str
    uri: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def external(self) -> bool:
        return self.uri is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSpec:
    """A DataFusion SQL plan whose result is written back as a Delta dataset named like the plan."""

    name: str
    sql: str
    inputs: tuple[str, ...]
    description: str = ""
    timeout_s: float | None = None
    """Seconds the plan may run; past them it is stopped and fails (``None``: no limit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """Datasets and plans of one pipeline, validated and in dependency order."""

    source: str
    label: str = "codeanatomy_build"
    schedule: str = "0 3 * * *"
    baseline: str | None = None
    """A run id every report compares with (``[pipeline] baseline``); else the previous completed run."""
    extract: ExtractSpec | None = None
    datasets: tuple[DatasetSpec, ...] = ()
    plans: tuple[PlanSpec, ...] = ()
    engine: EngineSettings = field(default_factory=EngineSettings)
    """The ``[engine]`` table (no ``spill_dir``: a build spills under its home)."""
    maintenance: MaintenanceSpec | None = None
    """The ``[maintenance]`` table (``spec_maintenance.py``); ``None``: no maintenance job or sensor."""
    lineage: LineageSpec | None = None
    """The ``[lineage]`` table (``spec_lineage.py``); ``None``: OpenLineage only from ``OPENLINEAGE_*``."""

    @property
    def layout_thresholds(self) -> LayoutThresholds:
        """The thresholds of the datasets' layout check: ``[maintenance]``'s, else the defaults."""
        return self.maintenance.thresholds if self.maintenance is not None else LayoutThresholds()

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)

    def location(self, home: ProjectHome, name: str) -> tuple[str, Mapping[str, str]]:
        """Where dataset or plan ``name`` lives, with its storage options (the lake's, unless external)."""
        for dataset in self.datasets:
            if dataset.name == name and dataset.uri is not None:
                return dataset.uri, dataset.storage_options
        return home.dataset_uri(name), home.storage_options

    def plan(self, name: str) -> PlanSpec:
        return next(p for p in self.plans if p.name == name)

    def with_source(self, source: str | None) -> PipelineSpec:
        """The same spec analysing another source tree (``--source``)."""
        if source is None:
            return self
        if self.extract is None:
            raise ConfigError("--source given but the spec has no [extract] section", source=self.source)
        extract = ExtractSpec(source=str(Path(source).expanduser().resolve()), workers=self.extract.workers)
        return replace(self, extract=extract)


# --- loading -----------------------------------------------------------------------------------------


def builtin_defs_yaml() -> Path:
    """The built-in CodeAnatomy build's ``defs.yaml``: a ``CodeAnatomyPipeline`` component instance, the
    defs folder of the project's code location (``[tool.dg.project] defs_module``)."""
    return Path(str(resources.files("codeanatomy_assets").joinpath("builtin"))) / "defs.yaml"


def load_builtin_spec() -> PipelineSpec:
    """The built-in CodeAnatomy build (``builtin/defs.yaml``)."""
    from codeanatomy_assets.spec_yaml import load_yaml_spec

    return load_yaml_spec(builtin_defs_yaml(), source=BUILTIN_SPEC_NAME)


def load_spec(path: str | Path | None = None) -> PipelineSpec:
    """Load ``path``, else ``./codeanatomy.toml`` when present, else the built-in spec. A ``.yaml`` file is
    a ``defs.yaml`` declaring a ``CodeAnatomyPipeline`` component (``spec_yaml.py``)."""
    if path is None:
        local = Path("codeanatomy.toml")
        if not local.is_file():
            return load_builtin_spec()
        path = local
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        from codeanatomy_assets.spec_yaml import load_yaml_spec

        return load_yaml_spec(path, source=str(path))
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=str(path)) from None
    return parse_spec(text, source=str(path), base_dir=path.resolve().parent)


def parse_spec(text: str, *, source: str, base_dir: Path | None) -> PipelineSpec:
    """Parse and validate a spec document; ``source`` names it in errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=source) from None
    return spec_from_document(doc, source=source, base_dir=base_dir)


def spec_from_document(doc: Mapping[str, Any], *, source: str, base_dir: Path | None) -> PipelineSpec:
    """Validate a parsed spec document (the TOML's tables, or a ``defs.yaml``'s attributes turned into
    them by ``spec_yaml.py``): one set of rules and messages for both."""
    pipeline = _check_sections(doc, source)
    extract = _parse_extract(doc, source)
    datasets = _parse_datasets(doc, source, extract is not None, base_dir)
    plans = _parse_plans(doc, source, {d.name for d in datasets}, base_dir)
    if not datasets and not plans:
        raise ConfigError("the spec declares no datasets and no plans", source=source)
    return PipelineSpec(
        source=source,
        label=_opt_str(pipeline, "label", source, "pipeline") or "codeanatomy_build",
        schedule=_opt_str(pipeline, "schedule", source, "pipeline") or "0 3 * * *",
        baseline=_opt_str(pipeline, "baseline", source, "pipeline"),
        extract=extract,
        datasets=tuple(datasets),
        plans=plans,
        engine=_parse_engine(doc, source),
        maintenance=parse_maintenance(doc, source),
        lineage=parse_lineage(doc, source, base_dir),
    )


def _check_sections(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check the top-level keys and the ``[pipeline]`` and ``[telemetry]`` tables; returns ``[pipeline]``."""
    _check_keys(doc, _TOP_KEYS, source, "")
    pipeline = _table(doc, "pipeline", source)
    _check_keys(pipeline, _PIPELINE_KEYS, source, "pipeline")
    _check_keys(_table(doc, "telemetry", source), _TELEMETRY_KEYS, source, "telemetry")
    return pipeline


# --- sections ----------------------------------------------------------------------------------------


def _parse_extract(doc: Mapping[str, Any], source: str) -> ExtractSpec | None:
    if "extract" not in doc:
        return None
    body = _table(doc, "extract", source)
    _check_keys(body, _EXTRACT_KEYS, source, "extract")
    workers = _opt_positive_int(body, "workers", source, "extract")
    return ExtractSpec(source=_opt_str(body, "source", source, "extract") or STDLIB_SOURCE, workers=workers)


def _parse_engine(doc: Mapping[str, Any], source: str) -> EngineSettings:
    body = _table(doc, "engine", source)
    _check_keys(body, _ENGINE_KEYS, source, "engine")
    limit = body.get("memory_limit")
    partitions = _opt_positive_int(body, "target_partitions", source, "engine")
    options = _option_texts(body, source)
    return EngineSettings(
        memory_limit=None if limit is None else parse_size(limit, source=source, key="engine.memory_limit"),
        target_partitions=partitions,
        options=validate_options(options, source=source, key="engine.options"),
    )


def _option_texts(body: Mapping[str, Any], source: str) -> dict[str, str]:
    """``engine.options`` as DataFusion takes them: TOML booleans and numbers as text (``"true"``)."""
    options = body.get("options", {})
    if not isinstance(options, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in options.values()
    ):
        raise ConfigError("must be a table of option values", source=source, key="engine.options")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}


def _parse_datasets(
    doc: Mapping[str, Any], source: str, has_extract: bool, base_dir: Path | None
) -> list[DatasetSpec]:
    """The extract outputs (with ``[extract]``) and the declared external datasets."""
    datasets = [DatasetSpec(name=n) for n in EXTRACT_DATASETS] if has_extract else []
    for name, body in _table(doc, "datasets", source).items():
        datasets.append(_parse_dataset(name, body, source, has_extract, base_dir))
    return datasets


def _parse_dataset(
    name: str, body: Any, source: str, has_extract: bool, base_dir: Path | None
) -> DatasetSpec:
    key = f"datasets.{name}"
    check_name(name, source, key)
    if has_extract and name in EXTRACT_DATASETS:
        raise ConfigError("is written by [extract]; choose another name", source=source, key=key)
    _check_table(body, _DATASET_KEYS, source, key)
    uri = _opt_str(body, "uri", source, key)
    if not uri:
        raise ConfigError("missing required key 'uri'", source=source, key=key)
    return DatasetSpec(
        name=name,
        uri=resolve_dataset_uri(uri, base_dir),
        storage_options=_storage_options(body, source, key),
        description=_opt_str(body, "description", source, key) or "",
    )


def _storage_options(body: Mapping[str, Any], source: str, key: str) -> dict[str, str]:
    options = body.get("storage_options", {})
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in options.items()
    ):
        raise ConfigError("must be a table of string values", source=source, key=f"{key}.storage_options")
    return dict(options)


def resolve_dataset_uri(uri: str, base_dir: Path | None) -> str:
    """A dataset ``uri`` as the build opens it: a URI with a scheme as given, a path with ``~`` expanded and,
    when relative, resolved against ``base_dir`` (the spec file's folder; ``None``: the working directory).

    >>> resolve_dataset_uri("data/trips", Path("/cfg"))
    '/cfg/data/trips'
    >>> resolve_dataset_uri("s3://bucket/trips", Path("/cfg"))
    's3://bucket/trips'
    """
    if _URI_SCHEME_RE.match(uri):
        return uri
    path = os.path.expanduser(uri)
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base_dir, path))
    return path


# --- plans -------------------------------------------------------------------------------------------


def _parse_plans(
    doc: Mapping[str, Any], source: str, dataset_names: set[str], base_dir: Path | None
) -> tuple[PlanSpec, ...]:
    """The ``[plans]`` in dependency order (inputs first)."""
    raw_plans = _table(doc, "plans", source)
    plan_names = set(raw_plans)
    clash = dataset_names & plan_names
    if clash:
        raise ConfigError(f"names used by both a dataset and a plan: {sorted(clash)}", source=source)
    plans = [
        _parse_plan(name, body, source, base_dir, (dataset_names | plan_names) - {name})
        for name, body in raw_plans.items()
    ]
    return _topological(plans, source)


def _parse_plan(name: str, body: Any, source: str, base_dir: Path | None, known: set[str]) -> PlanSpec:
    key = f"plans.{name}"
    check_name(name, source, key)
    _check_table(body, _PLAN_KEYS, source, key)
    sql = _plan_sql(body, source, key, base_dir)
    inputs = _plan_inputs(body, sql, known, source, key)
    timeout = body.get("timeout_s")
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < float("inf")
    ):
        raise ConfigError("must be a positive number of seconds", source=source, key=f"{key}.timeout_s")
    return PlanSpec(
        name=name,
        sql=sql,
        inputs=inputs,
        description=_opt_str(body, "description", source, key) or "",
        timeout_s=None if timeout is None else float(timeout),
    )


def _plan_sql(body: Mapping[str, Any], source: str, key: str, base_dir: Path | None) -> str:
    """The plan's SQL: its ``sql``, or the text of its ``sql_file`` (exactly one of them, not empty)."""
    sql = _opt_str(body, "sql", source, key)
    sql_file = _opt_str(body, "sql_file", source, key)
    if (sql is None) == (sql_file is None):
        raise ConfigError("needs exactly one of 'sql' or 'sql_file'", source=source, key=key)
    if sql_file is not None:
        sql = _read_sql_file(sql_file, base_dir, source, key)
    assert sql is not None
    if not sql.strip():
        raise ConfigError("SQL is empty", source=source, key=key)
    return sql


def _plan_inputs(
    body: Mapping[str, Any], sql: str, known: set[str], source: str, key: str
) -> tuple[str, ...]:
    """The plan's ``inputs``, else the known names its SQL reads; at least one."""
    inputs_raw = body.get("inputs")
    if inputs_raw is None:
        inputs = sql_references(sql, known)
    else:
        inputs = _declared_inputs(inputs_raw, known, source, f"{key}.inputs")
    if not inputs:
        misses = quoted_near_misses(sql, known)
        hint = f"; quoted identifiers keep their case ({', '.join(misses)}): write them unquoted"
        raise ConfigError(
            f"the SQL names no declared dataset or plan (known: {sorted(known)}){hint if misses else ''}",
            source=source,
            key=key,
        )
    return inputs


def _declared_inputs(inputs_raw: Any, known: set[str], source: str, key: str) -> tuple[str, ...]:
    """An explicit ``inputs = [...]``: known names, sorted and without repeats."""
    if not isinstance(inputs_raw, list) or not all(isinstance(i, str) for i in inputs_raw):
        raise ConfigError("must be a list of dataset or plan names", source=source, key=key)
    unknown = sorted(set(inputs_raw) - known)
    if unknown:
        raise ConfigError(f"unknown inputs {unknown}", source=source, key=key)
    return tuple(sorted(set(inputs_raw)))


def _read_sql_file(sql_file: str, base_dir: Path | None, source: str, key: str) -> str:
    if base_dir is None:
        path = Path(sql_file)
    else:
        path = Path(sql_file).expanduser()
        path = path if path.is_absolute() else base_dir / path
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sql_file {str(path)!r}: {exc}", source=source, key=key) from None


def _topological(plans: list[PlanSpec], source: str) -> tuple[PlanSpec, ...]:
    by_name = {p.name: p for p in plans}
    graph = {p.name: {i for i in p.inputs if i in by_name} for p in plans}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ConfigError(f"plans depend on each other in a cycle: {exc.args[1]}", source=source) from None
    return tuple(by_name[n] for n in order)


# --- TOML values -------------------------------------------------------------------------------------


def _check_keys(body: Mapping[str, Any], allowed: frozenset[str], source: str, where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key (allowed: {', '.join(sorted(allowed))})", source=source, key=prefix + unknown[0]
        )


def _check_table(body: Any, allowed: frozenset[str], source: str, key: str) -> None:
    """``body`` is a table holding only ``allowed`` keys."""
    if not isinstance(body, Mapping):
        raise ConfigError("must be a table", source=source, key=key)
    _check_keys(body, allowed, source, key)


def _table(doc: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError("must be a table", source=source, key=key)
    return dict(value)


def _opt_str(body: Mapping[str, Any], key: str, source: str, where: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"must be a string, not {type(value).__name__}", source=source, key=f"{where}.{key}"
        )
    return value


def _opt_positive_int(body: Mapping[str, Any], key: str, source: str, where: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError("must be a positive integer", source=source, key=f"{where}.{key}")
    return value


def python_version_tag() -> str:
    """The interpreter whose stdlib the default build analyses (for labels and the README)."""
    return f"{sys.implementation.name}{sys.version_info.major}.{sys.version_info.minor}"
