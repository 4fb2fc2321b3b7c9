"""OpenLineage datasets of a build: a Delta table named by its URI, with its standard dataset facets.

Names follow OpenLineage's naming of files and object stores: a local path is namespace ``file`` and name
the absolute path; ``s3://bucket/key`` is namespace ``s3://bucket`` and name ``key`` (so are ``gs://``,
``az://``, ``abfss://container@account...``). User info, query and fragment never reach a name or the
datasource facet's URI: no credential leaves the build in a lineage event.

>>> dataset_identity("/data/trips")
DatasetIdentity(namespace='file', name='/data/trips', uri='file:///data/trips')
>>> dataset_identity("s3://key:secret@bucket/lake/trips?sig=x")
DatasetIdentity(namespace='s3://bucket', name='lake/trips', uri='s3://bucket/lake/trips')
>>> dataset_identity("abfss://box@acct.dfs.core.windows.net/t").namespace
'abfss://box@acct.dfs.core.windows.net'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from openlineage.client.facet_v2 import (
    DatasetFacet,
    dataset_version_dataset,
    datasource_dataset,
    schema_dataset,
    storage_dataset,
)

from codeanatomy_assets.lineage.facets import owned

_CONTAINER_SCHEMES: Final = frozenset({"abfs", "abfss", "wasb", "wasbs"})
"""Schemes whose ``container@account`` is a name, not user info."""


@dataclass(frozen=True, slots=True)
class DatasetIdentity:
    """A dataset's OpenLineage namespace and name, and its URI without credentials."""

    namespace: str
    name: str
    uri: str


def dataset_identity(uri: str) -> DatasetIdentity:
    """The OpenLineage identity of the Delta table at ``uri`` (a local path or a URI)."""
    if "://" not in uri and not uri.startswith("file:"):
        path = os.path.abspath(uri)
        return DatasetIdentity("file", path, Path(path).as_uri())
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = parts.netloc
    if "@" in host:
        user, host = host.rsplit("@", 1)
        if scheme in _CONTAINER_SCHEMES and ":" not in user:
            host = f"{user}@{host}"
    if scheme == "file":
        path = unquote(parts.path)
        namespace = "file" if host in {"", "localhost"} else f"file://{host}"
        return DatasetIdentity(
            namespace, path, Path(path).as_uri() if namespace == "file" else f"{namespace}{path}"
        )
    name = parts.path.lstrip("/") or "/"
    return DatasetIdentity(f"{scheme}://{host}", name, f"{scheme}://{host}/{name.lstrip('/')}")


def dataset_facets(
    identity: DatasetIdentity, *, version: int | None, schema: pa.Schema | None
) -> dict[str, DatasetFacet]:
    """The standard facets of a Delta table: data source, storage, version and schema (when known)."""
    facets: dict[str, DatasetFacet] = {
        "dataSource": owned(
            datasource_dataset.DatasourceDatasetFacet(name=identity.namespace, uri=identity.uri)
        ),
        "storage": owned(storage_dataset.StorageDatasetFacet(storageLayer="delta", fileFormat="parquet")),
    }
    if version is not None:
        facets["version"] = owned(
            dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version))
        )
    if schema is not None:
        facets["schema"] = schema_facet(schema)
    return facets


def schema_facet(schema: pa.Schema) -> schema_dataset.SchemaDatasetFacet:
    """The schema facet of an Arrow schema: each column's name, Arrow type and position; a struct's fields
    (also a list's of structs) nested."""
    return owned(schema_dataset.SchemaDatasetFacet(fields=_fields(list(schema))))


def _fields(fields: list[pa.Field]) -> list[schema_dataset.SchemaDatasetFacetFields]:
    return [
        schema_dataset.SchemaDatasetFacetFields(
            name=f.name, type=str(f.type), ordinal_position=i, fields=_fields(_children(f.type))
        )
        for i, f in enumerate(fields, 1)
    ]


def _children(data_type: pa.DataType) -> list[pa.Field]:
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _children(data_type.value_type)
    if pa.types.is_struct(data_type):
        return [data_type.field(i) for i in range(data_type.num_fields)]
    return []
