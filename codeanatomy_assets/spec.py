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
    timeout_s = 600                 # optional: stop the plan (an error) when it runs longer

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

import functools
import os
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

from codeanatomy_assets.engine.session import EngineSettings, parse_size, validate_options
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
# SQL tokens as DataFusion's parser reads them: string literals, comments and numbers (skipped), delimited
# identifiers ("x" and `x`: case kept), words (unquoted identifiers and keywords: folded to lower case), and
# the punctuation that delimits scopes and qualified names.
_TOKEN_RE: Final = re.compile(
    r"(?P<skip>'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|[0-9][A-Za-z0-9_.]*)"
    r'|"(?P<quoted>(?:[^"]|"")+)"'
    r"|`(?P<backquoted>(?:[^`]|``)+)`"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)"
    r"|(?P<punct>[().,;])",
    re.DOTALL,
)
_URI_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://|file:)")
_TOP_KEYS: Final = frozenset({"extract", "datasets", "plans", "pipeline", "telemetry", "engine"})
_EXTRACT_KEYS: Final = frozenset({"source", "workers"})
_DATASET_KEYS: Final = frozenset({"uri", "storage_options", "description"})
_PLAN_KEYS: Final = frozenset({"sql", "sql_file", "description", "inputs", "timeout_s"})
_ENGINE_KEYS: Final = frozenset({"memory_limit", "target_partitions", "options"})
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
    timeout_s: float | None = None
    """Seconds the plan may run; past them it is stopped and fails (``None``: no limit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """Datasets and plans of one pipeline, validated and in dependency order."""

    source: str
    label: str = "codeanatomy_build"
    schedule: str = "0 3 * * *"
    extract: ExtractSpec | None = None
    datasets: tuple[DatasetSpec, ...] = ()
    plans: tuple[PlanSpec, ...] = ()
    engine: EngineSettings = field(default_factory=EngineSettings)
    """The ``[engine]`` table (no ``spill_dir``: a build spills under its home)."""

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
        datasets.append(_parse_dataset(name, body, source, extract is not None, base_dir))
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
        engine=_parse_engine(doc, source),
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


def _parse_engine(doc: Mapping[str, Any], source: str) -> EngineSettings:
    body = _table(doc, "engine", source)
    _check_keys(body, _ENGINE_KEYS, source, "engine")
    limit = body.get("memory_limit")
    partitions = body.get("target_partitions")
    if partitions is not None and (
        not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1
    ):
        raise ConfigError("must be a positive integer", source=source, key="engine.target_partitions")
    options = body.get("options", {})
    if not isinstance(options, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in options.values()
    ):
        raise ConfigError("must be a table of option values", source=source, key="engine.options")
    # TOML has booleans and numbers; DataFusion takes text ("true", not "True").
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    return EngineSettings(
        memory_limit=None if limit is None else parse_size(limit, source=source, key="engine.memory_limit"),
        target_partitions=partitions,
        options=validate_options(text, source=source, key="engine.options"),
    )


def _parse_dataset(
    name: str, body: Any, source: str, has_extract: bool, base_dir: Path | None
) -> DatasetSpec:
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
        uri=resolve_dataset_uri(uri, base_dir),
        storage_options=dict(options),
        description=_opt_str(body, "description", source, key) or "",
    )


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
        misses = quoted_near_misses(sql, known)
        hint = ""
        if misses:
            hint = f"; quoted identifiers keep their case ({', '.join(misses)}): write them unquoted"
        raise ConfigError(
            f"the SQL names no declared dataset or plan (known: {sorted(known)}){hint}",
            source=source,
            key=key,
        )
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


def sql_references(sql: str, known: set[str]) -> tuple[str, ...]:
    """Names from ``known`` that ``sql`` reads as tables, as DataFusion resolves identifiers.

    Unquoted identifiers fold to lower case, quoted ones (``"x"``, ```x```) keep their case; string
    literals and comments are skipped; a schema-qualified name (``datafusion.public.x``) counts by its last
    part. A name is not counted where it cannot be a table: after ``AS`` (an alias), before ``(`` (a
    function), or where a CTE of that name shadows it (a CTE's own body still reads the table, unless it is
    ``RECURSIVE``; a qualified name is never a CTE). Other appearances (a column named like a dataset) are
    counted: a plan may get an input it does not need, never miss one.

    >>> known = {"calls", "symbols", "imports"}
    >>> sql_references("select * from CALLS c join symbols s on s.x = 'imports'", known)
    ('calls', 'symbols')
    >>> sql_references('with calls as (select * from "Symbols") select * from calls', known)
    ()
    """
    tokens = _sql_tokens(sql)
    shadowed = _cte_scopes(tokens)
    found: set[str] = set()
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.value not in known or index in shadowed.definitions:
            continue
        before = tokens[index - 1] if index else None
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if before is not None and before.is_word("as"):
            continue  # an alias (of a table, a column or a CTE), or a type in CAST(... AS x)
        if after is not None and after.value == "(" and after.kind == "punct" and not token.quoted:
            continue  # a function call
        qualified = before is not None and before.kind == "punct" and before.value == "."
        if not qualified and shadowed.covers(token.value, index):
            continue
        found.add(token.value)
    return tuple(sorted(found))


def quoted_near_misses(sql: str, known: set[str]) -> tuple[str, ...]:
    """Quoted identifiers of ``sql`` that name a known name only when folded (``"COVID"`` for ``covid``).

    >>> quoted_near_misses('select * from "Calls"', {"calls"})
    ('"Calls"',)
    """
    misses = {
        f'"{t.value}"'
        for t in _sql_tokens(sql)
        if t.kind == "ident" and t.quoted and t.value not in known and t.value.lower() in known
    }
    return tuple(sorted(misses))


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident" or "punct"
    value: str  # identifiers folded as DataFusion folds them
    quoted: bool = False

    def is_word(self, word: str) -> bool:
        return self.kind == "ident" and not self.quoted and self.value == word


def _sql_tokens(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN_RE.finditer(sql):
        if match.group("word"):
            tokens.append(_Token("ident", match.group("word").lower()))
        elif match.group("quoted"):
            tokens.append(_Token("ident", match.group("quoted").replace('""', '"'), quoted=True))
        elif match.group("backquoted"):
            tokens.append(_Token("ident", match.group("backquoted").replace("``", "`"), quoted=True))
        elif match.group("punct"):
            tokens.append(_Token("punct", match.group("punct")))
    return tokens


@dataclass(slots=True)
class _CteScopes:
    """Where CTE names shadow tables: ``(name, first, end)`` token ranges, and the defining tokens."""

    scopes: list[tuple[str, int, int]] = field(default_factory=list)
    definitions: set[int] = field(default_factory=set)

    def covers(self, name: str, index: int) -> bool:
        return any(n == name and first <= index < end for n, first, end in self.scopes)


def _cte_scopes(tokens: list[_Token]) -> _CteScopes:
    """The scopes of the CTEs of every ``WITH`` (nested ones included); unparsable ones are ignored."""
    partner: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.value == "(":
            stack.append(index)
        elif token.kind == "punct" and token.value == ")" and stack:
            partner[stack.pop()] = index
    result = _CteScopes()
    for index, token in enumerate(tokens):
        if token.is_word("with"):
            _parse_with(tokens, index, partner, result)
    return result


def _parse_with(tokens: list[_Token], start: int, partner: dict[int, int], result: _CteScopes) -> None:
    end = _statement_end(tokens, start)
    at = start + 1
    recursive = at < len(tokens) and tokens[at].is_word("recursive")
    at += int(recursive)
    ctes: list[tuple[str, int, int, int]] = []  # name, defining token, body start, body end
    while at < len(tokens) and tokens[at].kind == "ident":
        name_at = at
        at += 1
        if at < len(tokens) and tokens[at].value == "(" and at in partner:  # a column list
            at = partner[at] + 1
        if not (at < len(tokens) and tokens[at].is_word("as")):
            return
        at += 1
        while at < len(tokens) and (tokens[at].is_word("not") or tokens[at].is_word("materialized")):
            at += 1
        if not (at < len(tokens) and tokens[at].value == "(" and at in partner):
            return
        ctes.append((tokens[name_at].value, name_at, at, partner[at]))
        at = partner[at] + 1
        if not (at < len(tokens) and tokens[at].kind == "punct" and tokens[at].value == ","):
            break
        at += 1
    for name, name_at, body_start, body_end in ctes:
        result.definitions.add(name_at)
        result.scopes.append((name, body_start if recursive else body_end + 1, end))


def _statement_end(tokens: list[_Token], start: int) -> int:
    """Where the (sub)query holding the token at ``start`` ends: its closing ``)``, its ``;``, or the end."""
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind != "punct":
            continue
        if token.value == "(":
            depth += 1
        elif token.value == ")":
            depth -= 1
            if depth < 0:
                return index
        elif token.value == ";" and depth == 0:
            return index
    return len(tokens)


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


def _check_name(name: str, source: str, key: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(
            "names must start with a letter and hold only letters, digits and '_' (at most 63): "
            "they become Dagster asset keys, Delta folder names and SQL identifiers",
            source=source,
            key=key,
        )
    if name != name.lower():
        raise ConfigError(
            f"names must be lower case: unquoted SQL identifiers fold to lower case; use {name.lower()}",
            source=source,
            key=key,
        )
    if name.lower() in _SQL_KEYWORDS:
        raise ConfigError("is an SQL keyword; choose another name", source=source, key=key)
    unplannable = _unreferenceable(name)
    if unplannable is not None:
        raise ConfigError(
            f"is read as an SQL keyword where a table name goes ({unplannable!r} does not plan); "
            "choose another name",
            source=source,
            key=key,
        )


# Where a table name goes in a query: DataFusion's parser takes some keywords there but not others (measured:
# `user`, `true`, `struct` are refused as qualifiers, `table`, `unnest`, `lateral` everywhere).
_NAME_PROBES: Final = (
    "SELECT * FROM {n}",
    "SELECT {n}.x FROM {n}",
    'SELECT * FROM {n} JOIN "other table" ON {n}.x = "other table".x',
    'SELECT * FROM "other table" JOIN {n} ON "other table".x = {n}.x',
)


@functools.lru_cache(maxsize=1024)
def _unreferenceable(name: str) -> str | None:
    """The first probe query that does not plan with ``name`` as an unquoted table name (``None``: all do)."""
    import datafusion
    import pyarrow as pa

    ctx = datafusion.SessionContext()
    for table in (name, "other table"):  # no declared name holds a space
        ctx.register_record_batches(f'"{table}"', [pa.table({"x": [1]}).to_batches()])
    for probe in _NAME_PROBES:
        query = probe.format(n=name)
        try:
            ctx.sql(query).logical_plan()
        except Exception:  # noqa: BLE001 - parse or plan error: the name cannot be referenced this way
            return query
    return None


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
