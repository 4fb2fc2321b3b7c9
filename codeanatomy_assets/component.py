"""The ``CodeAnatomyPipeline`` Dagster component: a pipeline declared in a ``defs.yaml``.

::

    type: codeanatomy_assets.CodeAnatomyPipeline
    attributes:
      datasets:
        - name: trips
          uri: s3://bucket/trips
          storage_options: { AWS_REGION: eu-west-1 }
      plans:
        - name: busy_days
          sql: select day, count(*) as n from trips group by day

The attributes are the spec's (``spec_yaml.py``), validated by the spec's own parser with its messages;
the component builds what a ``codeanatomy.toml`` builds (:func:`build_definitions`): the assets, their
checks, the ``codeanatomy_build`` job, its schedule and sensors. The built-in CodeAnatomy build is an
instance (``builtin/defs.yaml``). ``dg scaffold defs codeanatomy_assets.CodeAnatomyPipeline <path>`` writes
a starter ``defs.yaml`` (:class:`PipelineScaffolder`). One pipeline per code location: the job, schedule and
sensor names are fixed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from pydantic import Field

from codeanatomy_assets.defs.definitions import build_definitions
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import BUILTIN_SPEC_NAME, PipelineSpec, builtin_defs_yaml
from codeanatomy_assets.spec_yaml import spec_from_attributes

STARTER_ATTRIBUTES: dict[str, Any] = {
    "label": "my_pipeline",
    "datasets": [{"name": "trips", "uri": "data/trips", "description": "A Delta table (path or URI)"}],
    "plans": [
        {
            "name": "busy_days",
            "sql": "select day, count(*) as n from trips group by day",
            "description": "Trips per day",
        }
    ],
}
"""What ``dg scaffold defs`` writes: one dataset (a path relative to the ``defs.yaml``) and one plan."""


def _no_tables() -> list[dict[str, Any]]:
    return []


class PipelineScaffolder(dg.Scaffolder[Any]):
    """Writes a ``defs.yaml`` declaring one dataset and one plan, to be edited."""

    def scaffold(self, request: dg.ScaffoldRequest[Any]) -> None:
        scaffold_component(request, STARTER_ATTRIBUTES)


@dg.scaffold_with(PipelineScaffolder)
class CodeAnatomyPipeline(dg.Component, dg.Model, dg.Resolvable):
    """A CodeAnatomy pipeline: Delta datasets and the DataFusion SQL plans derived from them, each an asset
    with its checks, built by the codeanatomy_build job (validated like a codeanatomy.toml)."""

    label: str | None = Field(default=None, description="The pipeline's name (default codeanatomy_build)")
    schedule: str | None = Field(default=None, description="Cron of the rebuild schedule (default 0 3 * * *)")
    baseline: str | None = Field(default=None, description="A run id every report compares with")
    extract: dict[str, Any] | None = Field(
        default=None,
        description="Analyse a Python tree into source_files, symbols, imports and calls: "
        "source (stdlib or a directory), workers",
        examples=[{"source": "stdlib"}],
    )
    datasets: list[dict[str, Any]] = Field(
        default_factory=_no_tables,
        description="External Delta tables: name, uri (a path relative to this file, or s3://, gs://, "
        "az://), storage_options, description",
        examples=[
            [{"name": "trips", "uri": "s3://bucket/trips", "storage_options": {"AWS_REGION": "eu-west-1"}}]
        ],
    )
    plans: list[dict[str, Any]] = Field(
        default_factory=_no_tables,
        description="SQL plans, each written as a Delta dataset of its name: name, sql or sql_file (relative "
        "to this file), description, inputs, timeout_s",
        examples=[[{"name": "busy_days", "sql": "select day, count(*) as n from trips group by day"}]],
    )
    engine: dict[str, Any] | None = Field(
        default=None, description="DataFusion sessions: memory_limit, target_partitions, options"
    )
    maintenance: dict[str, Any] | None = Field(
        default=None, description="Layout thresholds of the outputs, and the maintenance job and sensor"
    )
    home: str = Field(default="", description="Project home (default CODEANATOMY_HOME, else ./.codeanatomy)")
    lake: str = Field(default="", description="Lake URI (default CODEANATOMY_LAKE_URI, else <home>/lake)")

    def spec(self, folder: Path) -> PipelineSpec:
        """The spec these attributes declare, for a ``defs.yaml`` in ``folder``; ``CODEANATOMY_SOURCE``
        overrides the tree a pipeline with ``extract`` analyses (as for the code location's TOML)."""
        defs_yaml = folder / "defs.yaml"
        builtin = defs_yaml.resolve() == builtin_defs_yaml().resolve()
        source = BUILTIN_SPEC_NAME if builtin else str(defs_yaml)
        spec = spec_from_attributes(self.model_dump(exclude_none=True), source=source, base_dir=folder)
        if spec.extract is None:
            return spec
        return spec.with_source(os.environ.get("CODEANATOMY_SOURCE") or None)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        home = self.home or os.environ.get("CODEANATOMY_HOME", "")
        return build_definitions(self.spec(context.path), CodeAnatomyResource(home=home, lake=self.lake))
