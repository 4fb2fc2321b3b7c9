"""The pipeline spec: which datasets a build registers and which SQL plans it derives from them.

The spec is data (TOML). The built-in spec (``builtin/codeanatomy.toml``) is the CodeAnatomy build; a
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

A plan's inputs are the datasets and plans its SQL names (found by identifier tokens outside string
literals and comments); ``inputs = [...]`` states them explicitly instead. Every error names the file and the
key that is wrong.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from importlib import resources
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.errors import ConfigError

EXTRACT_DATASETS: Final = ("source_files", "symbols", "imports", "calls")
BUILTIN_SPEC_NAME: Final = "builtin:codeanatomy"
STDLIB_SOURCE: Final = "stdlib"

# Names become Dagster asset keys, Delta folder names and SQL identifiers: keep them to one safe shape.
_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_SQL_KEYWORDS: Final = frozenset(
    [
        "select",
        "from",
        "where",
        "group",
        "by",
        "order",
        "having",
        "limit",
        "join",
        "on",
        "as",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "union",
        "all",
        "table",
        "with",
        "values",
        "insert",
        "update",
        "delete",
        "create",
        "drop",
        "case",
        "when",
        "then",
        "else",
        "end",
        "distinct",
    ]
)
_TOKEN_RE: Final = re.compile(
    r"""(?P<skip>'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/)|"(?P<quoted>(?:[^"]|"")+)"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL,
)
_TOP_KEYS: Final = frozenset({"extract", "datasets", "plans", "pipeline", "telemetry"})
_EXTRACT_KEYS: Final = frozenset({"source", "workers"})
_DATASET_KEYS: Final = frozenset({"uri", "storage_options", "description"})
_PLAN_KEYS: Final = frozenset({"sql", "sql_file", "description", "inputs"})
_PIPELINE_KEYS: Final = frozenset({"label", "schedule"})
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


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """Datasets and plans of one pipeline, validated and in dependency order."""

    source: str
    label: str = "codeanatomy_build"
    schedule: str = "0 3 * * *"
    extract: ExtractSpec | None = None
    datasets: tuple[DatasetSpec, ...] = ()
    plans: tuple[PlanSpec, ...] = ()

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)

    def plan(self, name: str) -> PlanSpec:
        return next(p for p in self.plans if p.name == name)

    def with_source(self, source: str | None) -> PipelineSpec:
        """The same spec analysing another source tree (``--source``)."""
        if source is None:
            return self
        if self.extract is None:
            raise ConfigError("--source given but the spec has no [extract] section", source=self.source)
        extract = ExtractSpec(source=str(Path(source).expanduser().resolve()), workers=self.extract.workers)
        return _replace(self, extract=extract)


def _replace(spec: PipelineSpec, **changes: Any) -> PipelineSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def load_builtin_spec() -> PipelineSpec:
    """The built-in CodeAnatomy build."""
    builtin = Path(str(resources.files("codeanatomy_assets").joinpath("builtin")))
    text = (builtin / "codeanatomy.toml").read_text("utf-8")
    return parse_spec(text, source=BUILTIN_SPEC_NAME, base_dir=builtin)


def load_spec(path: str | Path | None = None) -> PipelineSpec:
    """Load ``path``, else ``./codeanatomy.toml`` when present, else the built-in spec."""
    if path is None:
        local = Path("codeanatomy.toml")
        if not local.is_file():
            return load_builtin_spec()
        path = local
    path = Path(path)
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
    _check_keys(doc, _TOP_KEYS, source, "")
    pipeline = _table(doc, "pipeline", source)
    _check_keys(pipeline, _PIPELINE_KEYS, source, "pipeline")
    _check_keys(_table(doc, "telemetry", source), _TELEMETRY_KEYS, source, "telemetry")
    extract = _parse_extract(doc, source)
    datasets = [DatasetSpec(name=n) for n in EXTRACT_DATASETS] if extract else []
    for name, body in _table(doc, "datasets", source).items():
        datasets.append(_parse_dataset(name, body, source, extract is not None))
    names = {d.name for d in datasets}
    raw_plans = _table(doc, "plans", source)
    plan_names = set(raw_plans)
    clash = names & plan_names
    if clash:
        raise ConfigError(f"names used by both a dataset and a plan: {sorted(clash)}", source=source)
    plans = [
        _parse_plan(name, body, source, base_dir, (names | plan_names) - {name})
        for name, body in raw_plans.items()
    ]
    if not datasets and not plans:
        raise ConfigError("the spec declares no datasets and no plans", source=source)
    return PipelineSpec(
        source=source,
        label=_opt_str(pipeline, "label", source, "pipeline") or "codeanatomy_build",
        schedule=_opt_str(pipeline, "schedule", source, "pipeline") or "0 3 * * *",
        extract=extract,
        datasets=tuple(datasets),
        plans=_topological(plans, source),
    )


def _parse_extract(doc: Mapping[str, Any], source: str) -> ExtractSpec | None:
    if "extract" not in doc:
        return None
    body = _table(doc, "extract", source)
    _check_keys(body, _EXTRACT_KEYS, source, "extract")
    workers = body.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ConfigError("must be a positive integer", source=source, key="extract.workers")
    return ExtractSpec(source=_opt_str(body, "source", source, "extract") or STDLIB_SOURCE, workers=workers)


def _parse_dataset(name: str, body: Any, source: str, has_extract: bool) -> DatasetSpec:
    key = f"datasets.{name}"
    _check_name(name, source, key)
    if has_extract and name in EXTRACT_DATASETS:
        raise ConfigError("is written by [extract]; choose another name", source=source, key=key)
    if not isinstance(body, Mapping):
        raise ConfigError("must be a table", source=source, key=key)
    _check_keys(body, _DATASET_KEYS, source, key)
    uri = _opt_str(body, "uri", source, key)
    if not uri:
        raise ConfigError("missing required key 'uri'", source=source, key=key)
    options = body.get("storage_options", {})
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in options.items()
    ):
        raise ConfigError("must be a table of string values", source=source, key=f"{key}.storage_options")
    return DatasetSpec(
        name=name,
        uri=uri,
        storage_options=dict(options),
        description=_opt_str(body, "description", source, key) or "",
    )


def _parse_plan(name: str, body: Any, source: str, base_dir: Path | None, known: set[str]) -> PlanSpec:
    key = f"plans.{name}"
    _check_name(name, source, key)
    if not isinstance(body, Mapping):
        raise ConfigError("must be a table", source=source, key=key)
    _check_keys(body, _PLAN_KEYS, source, key)
    sql = _opt_str(body, "sql", source, key)
    sql_file = _opt_str(body, "sql_file", source, key)
    if (sql is None) == (sql_file is None):
        raise ConfigError("needs exactly one of 'sql' or 'sql_file'", source=source, key=key)
    if sql_file is not None:
        sql = _read_sql_file(sql_file, base_dir, source, key)
    assert sql is not None
    if not sql.strip():
        raise ConfigError("SQL is empty", source=source, key=key)
    inputs_raw = body.get("inputs")
    if inputs_raw is None:
        inputs = sql_references(sql, known)
    else:
        if not isinstance(inputs_raw, list) or not all(isinstance(i, str) for i in inputs_raw):
            raise ConfigError("must be a list of dataset or plan names", source=source, key=f"{key}.inputs")
        unknown = sorted(set(inputs_raw) - known)
        if unknown:
            raise ConfigError(f"unknown inputs {unknown}", source=source, key=f"{key}.inputs")
        inputs = tuple(sorted(set(inputs_raw)))
    if not inputs:
        raise ConfigError(
            f"the SQL names no declared dataset or plan (known: {sorted(known)})", source=source, key=key
        )
    return PlanSpec(
        name=name, sql=sql, inputs=inputs, description=_opt_str(body, "description", source, key) or ""
    )


def sql_references(sql: str, known: set[str]) -> tuple[str, ...]:
    """Names from ``known`` that appear as identifiers in ``sql`` (string literals and comments skipped).

    >>> known = {"calls", "symbols", "imports"}
    >>> sql_references("select * from calls c join symbols s on s.x = 'imports'", known)
    ('calls', 'symbols')
    """
    found: set[str] = set()
    for match in _TOKEN_RE.finditer(sql):
        word = match.group("word") or match.group("quoted")
        if word and word in known:
            found.add(word)
    return tuple(sorted(found))


def _read_sql_file(sql_file: str, base_dir: Path | None, source: str, key: str) -> str:
    if base_dir is None:
        path = Path(sql_file)
    else:
        path = Path(sql_file) if Path(sql_file).is_absolute() else base_dir / sql_file
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


def _check_name(name: str, source: str, key: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(
            "names must start with a letter and hold only letters, digits and '_' (at most 63): "
            "they become Dagster asset keys, Delta folder names and SQL identifiers",
            source=source,
            key=key,
        )
    if name.lower() in _SQL_KEYWORDS:
        raise ConfigError("is an SQL keyword; choose another name", source=source, key=key)


def _check_keys(body: Mapping[str, Any], allowed: frozenset[str], source: str, where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key (allowed: {', '.join(sorted(allowed))})", source=source, key=prefix + unknown[0]
        )


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


def python_version_tag() -> str:
    """The interpreter whose stdlib the default build analyses (for labels and the README)."""
    return f"{sys.implementation.name}{sys.version_info.major}.{sys.version_info.minor}"
