"""The pipeline spec as a ``defs.yaml``: the attributes of a ``CodeAnatomyPipeline`` Dagster component.

The attributes are the TOML spec's tables in YAML, with the datasets and plans as lists of named tables
(the form of a component's attributes)::

    type: codeanatomy_assets.CodeAnatomyPipeline
    attributes:
      label: trips_pipeline         # the TOML's [pipeline] label, schedule and baseline
      datasets:
        - name: trips
          uri: data/trips           # relative to this file's folder
      plans:
        - name: busy_days
          sql: select day, count(*) as n from trips group by day

:func:`spec_document` turns them into the document the TOML parser reads, and
:func:`codeanatomy_assets.spec.spec_from_document` validates it: the same rules and the same messages, a
dataset or plan named by its ``name`` (``plans.busy_days.timeout_s: must be a positive number ...``).
Standard library and PyYAML only (no Dagster): ``codeanatomy build --config defs.yaml`` reads it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

import yaml

from codeanatomy_assets.errors import ConfigError, clean_error_text
from codeanatomy_assets.spec import PipelineSpec, spec_from_document

COMPONENT_TYPE: Final = "codeanatomy_assets.CodeAnatomyPipeline"
COMPONENT_TYPES: Final = frozenset({COMPONENT_TYPE, "codeanatomy_assets.component.CodeAnatomyPipeline"})
PIPELINE_KEYS: Final = ("label", "schedule", "baseline")
"""Attributes that are the TOML's ``[pipeline]`` table."""
TABLE_KEYS: Final = ("extract", "engine", "maintenance")
"""Attributes that are TOML tables of the same name."""
NAMED_KEYS: Final = ("datasets", "plans")
"""Attributes that are lists of named tables (the TOML's ``[datasets.<name>]`` and ``[plans.<name>]``)."""
COMPONENT_KEYS: Final = ("home", "lake")
"""Attributes of the component only (where its runs keep their files), not part of the spec."""
ATTRIBUTE_KEYS: Final = frozenset((*PIPELINE_KEYS, *TABLE_KEYS, *NAMED_KEYS, *COMPONENT_KEYS))


def spec_from_attributes(
    attributes: Mapping[str, Any], *, source: str, base_dir: Path | None
) -> PipelineSpec:
    """The spec a component's attributes declare; relative paths (``uri``, ``sql_file``) are relative to
    ``base_dir``, the ``defs.yaml``'s folder."""
    return spec_from_document(spec_document(attributes, source), source=source, base_dir=base_dir)


def spec_document(attributes: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The attributes as the TOML spec's document (``None`` values are absent keys).

    >>> spec_document({"label": "p", "plans": [{"name": "n", "sql": "select 1"}]}, "defs.yaml")
    {'pipeline': {'label': 'p'}, 'datasets': {}, 'plans': {'n': {'sql': 'select 1'}}}
    """
    unknown = sorted(set(attributes) - ATTRIBUTE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(ATTRIBUTE_KEYS))
        raise ConfigError(f"unknown key (allowed: {allowed})", source=source, key=unknown[0])
    doc: dict[str, Any] = {}
    pipeline = {k: attributes[k] for k in PIPELINE_KEYS if attributes.get(k) is not None}
    if pipeline:
        doc["pipeline"] = pipeline
    doc.update({k: attributes[k] for k in TABLE_KEYS if attributes.get(k) is not None})
    for key in NAMED_KEYS:
        doc[key] = named_tables(attributes.get(key) or [], source, key)
    return doc


def named_tables(items: Any, source: str, key: str) -> dict[str, Any]:
    """A list of tables, each with a ``name``, as the TOML's tables by name (in the list's order)."""
    if not isinstance(items, list):
        raise ConfigError("must be a list of tables, each with a 'name'", source=source, key=key)
    tables: dict[str, Any] = {}
    for index, raw in enumerate(cast("list[Any]", items)):
        if not isinstance(raw, Mapping):
            raise ConfigError("must be a table", source=source, key=f"{key}[{index}]")
        item = cast("Mapping[str, Any]", raw)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("missing required key 'name' (a string)", source=source, key=f"{key}[{index}]")
        if name in tables:
            raise ConfigError("declared twice", source=source, key=f"{key}.{name}")
        tables[name] = {k: v for k, v in item.items() if k != "name"}
    return tables


def load_yaml_spec(path: Path, *, source: str) -> PipelineSpec:
    """The spec of the one ``CodeAnatomyPipeline`` component a ``defs.yaml`` declares, read as it is
    (``source`` names it in errors)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=source) from None
    attributes = _component_attributes(text, source)
    if _has_template(attributes):
        raise ConfigError(
            "holds a {{ ... }} template, which Dagster renders when it loads the component: load it with "
            "dg or dagster, or write the value out",
            source=source,
            key="attributes",
        )
    return spec_from_attributes(attributes, source=source, base_dir=path.resolve().parent)


def _component_attributes(text: str, source: str) -> Mapping[str, Any]:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {clean_error_text(str(exc))}", source=source) from None
    tables = [cast("Mapping[str, Any]", d) for d in documents if isinstance(d, Mapping)]
    ours = [d for d in tables if d.get("type") in COMPONENT_TYPES]
    if len(ours) != 1:
        raise ConfigError(
            f"declares {len(ours)} {COMPONENT_TYPE} components (type: ...), not one", source=source
        )
    attributes: Any = ours[0].get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ConfigError("must be a table", source=source, key="attributes")
    return cast("Mapping[str, Any]", attributes)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in cast("Mapping[str, Any]", value).values())
    return isinstance(value, list) and any(_has_template(v) for v in cast("list[Any]", value))
