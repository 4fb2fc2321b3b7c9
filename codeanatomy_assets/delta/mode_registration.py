"""One Delta table registered in a ``SessionContext`` in one provider mode, and what the session needs for it.

:func:`register_mode` registers a table as ``delta_pruned_parquet`` (:func:`register_pruned_parquet`),
``delta_table_provider``, ``pyarrow_dataset`` (:func:`build_pyarrow_dataset`) or ``delta_scan_stream``;
:func:`register_object_store` gives the session the object store of an s3/gs/az table, and
:func:`filter_reaches_scan` tells whether a registered table's scan receives filters. Nothing here probes,
decides or records: that is the provider policy's (:mod:`codeanatomy_assets.delta.provider_policy`).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import datafusion
import pyarrow as pa
import pyarrow.fs as pafs
from datafusion import object_store

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.pruned import (
    OBJECT_STORE_READER_DESCRIPTION,
    READER_DESCRIPTION,
    PinnedSnapshot,
    SnapshotFile,
    object_file_url,
    open_snapshot,
    quote_ident,
    register_files,
)
from codeanatomy_assets.delta.storage import is_object_store_uri, local_table_path, open_filesystem

if TYPE_CHECKING:
    from deltalake import DeltaTable

PROVIDER_CLASS_SCAN_STREAM: Final = "datafusion MemTable <- deltalake.DeltaTable.scan"
"""``provider_class`` of tables registered as ``delta_scan_stream``."""

_TRUE_WORDS: Final = frozenset({"1", "true", "yes"})


# ----------------------------------------------------------------------------------------------------
# Opening a table


def open_table(uri: str, storage_options: Mapping[str, str] | None, version: int | None = None) -> DeltaTable:
    """The Delta table at ``uri`` (at ``version``; ``None``: the latest)."""
    from deltalake import DeltaTable

    return DeltaTable(
        uri, version=version, storage_options=dict(storage_options) if storage_options else None
    )


def _pyarrow_filesystem(uri: str) -> Any:
    """A native pyarrow filesystem rooted at a local table (``None``: let deltalake supply its own)."""
    local = local_table_path(uri)
    if local is None:
        return None
    import pyarrow.fs as pafs

    return pafs.SubTreeFileSystem(local, pafs.LocalFileSystem())


def build_pyarrow_dataset(table: DeltaTable, uri: str) -> Any:
    """``DeltaTable.to_pyarrow_dataset`` with a native pyarrow filesystem for local tables."""
    return table.to_pyarrow_dataset(filesystem=_pyarrow_filesystem(uri))


# ----------------------------------------------------------------------------------------------------
# Object stores


class _StoreOptions:
    """Storage options looked up case-insensitively by any of the names a setting goes by."""

    def __init__(self, storage_options: Mapping[str, str] | None) -> None:
        self._options = {k.lower(): v for k, v in (storage_options or {}).items()}

    def first(self, *names: str) -> str | None:
        """The first non-empty value among ``names``."""
        return next((self._options[n.lower()] for n in names if self._options.get(n.lower())), None)


def _s3_store(bucket: str, opt: _StoreOptions) -> Any:
    return object_store.AmazonS3(
        bucket_name=bucket,
        region=opt.first("aws_region", "aws_default_region", "region"),
        access_key_id=opt.first("aws_access_key_id", "access_key_id"),
        secret_access_key=opt.first("aws_secret_access_key", "secret_access_key"),
        session_token=opt.first("aws_session_token", "session_token"),
        endpoint=opt.first("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"),
        allow_http=(opt.first("aws_allow_http", "allow_http") or "").lower() in _TRUE_WORDS,
    )


def _gcs_store(bucket: str, opt: _StoreOptions) -> Any:
    return object_store.GoogleCloud(
        bucket_name=bucket,
        service_account_path=opt.first(
            "google_service_account", "google_service_account_path", "service_account"
        ),
    )


def _azure_store(bucket: str, netloc: str, opt: _StoreOptions) -> Any:
    account = opt.first("azure_storage_account_name", "account_name")
    if account is None and "@" in netloc:
        account = netloc.split("@", 1)[1].split(".", 1)[0]
    return object_store.MicrosoftAzure(
        container_name=bucket,
        account=account,
        access_key=opt.first("azure_storage_account_key", "account_key", "access_key"),
        bearer_token=opt.first("azure_storage_token", "bearer_token"),
        client_id=opt.first("azure_client_id", "client_id"),
        client_secret=opt.first("azure_client_secret", "client_secret"),
        tenant_id=opt.first("azure_tenant_id", "tenant_id"),
    )


def _bucket_store(parts: urllib.parse.SplitResult, bucket: str, options: _StoreOptions) -> Any:
    """The datafusion object store of ``bucket``: S3 (``s3``/``s3a``), Google (``gs``/``gcs``), else Azure."""
    scheme = parts.scheme.lower()
    if scheme in {"s3", "s3a"}:
        return _s3_store(bucket, options)
    if scheme in {"gs", "gcs"}:
        return _gcs_store(bucket, options)
    return _azure_store(bucket, parts.netloc, options)


def register_object_store(
    ctx: datafusion.SessionContext, uri: str, storage_options: Mapping[str, str] | None
) -> bool:
    """Register the object store of an s3/gs/az ``uri`` with ``ctx`` (false for local paths).

    Raises ``ValueError``/``Exception`` from datafusion when the options cannot build a store.
    """
    if not is_object_store_uri(uri):
        return False
    parts = urllib.parse.urlsplit(uri)
    bucket = parts.netloc.split("@", 1)[0]
    store = _bucket_store(parts, bucket, _StoreOptions(storage_options))
    # datafusion keys the store by ``scheme + host``; the host is the URI's netloc, as DataFusion reads
    # it from each file's URL (``s3://bucket/...``; Azure's ``container@account...`` alike).
    ctx.register_object_store(f"{parts.scheme}://", store, parts.netloc)
    return True


# ----------------------------------------------------------------------------------------------------
# Registering a mode


_CHECKED_REMOTE: set[tuple[str, int]] = set()
"""Object-store snapshots whose live files were all found whole at a registration (checked once per
process; each plan checks the files it binds again: :func:`damaged_objects`)."""


def damaged_objects(
    snapshot: PinnedSnapshot, files: Sequence[SnapshotFile], storage_options: Mapping[str, str] | None
) -> list[str]:
    """``files`` of an object-store snapshot that are missing or not the logged size.

    DataFusion's listing of a single object reads a missing one as no file, without an error (measured),
    so registration and every plan check the objects they read: one listing of the table's folder (a
    request per 1,000 objects and folder), and one request per file outside it (an absolute path).
    """
    if not files:
        return []
    filesystem, root = open_filesystem(snapshot.uri, storage_options)
    paths = [_object_path(file.uri) for file in files]
    sizes = _object_sizes(filesystem, root, paths)
    damaged: list[str] = []
    for file, path in zip(files, paths, strict=True):
        size = sizes.get(path)
        if size is None:
            damaged.append(f"{file.uri} (missing)")
        elif file.size is not None and size != file.size:
            damaged.append(f"{file.uri} ({size} bytes, the log says {file.size})")
    return damaged


def _object_sizes(filesystem: Any, root: str, paths: Sequence[str]) -> dict[str, int | None]:
    """The size of each object of ``paths`` that exists: a listing of ``root``, a request per other path."""
    prefix = root.rstrip("/") + "/"
    outside = [path for path in paths if not path.startswith(prefix)]
    sizes: dict[str, int | None] = {info.path: info.size for info in filesystem.get_file_info(outside)}
    if len(outside) < len(paths):
        listing = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        sizes.update({info.path: info.size for info in listing})
    return sizes


def _damaged_snapshot_objects(
    snapshot: PinnedSnapshot, storage_options: Mapping[str, str] | None
) -> list[str]:
    """:func:`damaged_objects` of every live file, once per snapshot and process while none is damaged."""
    if (snapshot.uri, snapshot.version) in _CHECKED_REMOTE:
        return []
    damaged = damaged_objects(snapshot, snapshot.files, storage_options)
    if not damaged:
        _CHECKED_REMOTE.add((snapshot.uri, snapshot.version))
    return damaged


def _object_path(uri: str) -> str:
    """A pyarrow filesystem path (``bucket/key``) of a file URI as ``file_uris()`` spells it."""
    bucket_and_key = urllib.parse.urlsplit(object_file_url(uri))
    return bucket_and_key.netloc.split("@", 1)[0] + urllib.parse.unquote(bucket_and_key.path)


def _damaged_files(snapshot: PinnedSnapshot) -> list[str]:
    """Live files of a local snapshot that are missing or whose size is not the logged one.

    Checked one by one at registration: a probe reads only a few files, and deltalake refuses a file whose
    size differs from its add action, which DataFusion's reader would read as it is.
    """
    damaged: list[str] = []
    for file in snapshot.files:
        # file.uri keeps the table folder percent-encoded (a space as %20): open the decoded path.
        path = file.path or local_table_path(file.uri) or file.uri
        if not os.path.isfile(path):
            damaged.append(f"{path} (missing)")
        elif file.size is not None and os.path.getsize(path) != file.size:
            damaged.append(f"{path} ({os.path.getsize(path)} bytes, the log says {file.size})")
    return damaged


def register_pruned_parquet(
    ctx: datafusion.SessionContext,
    name: str,
    uri: str,
    *,
    version: int | None,
    storage_options: Mapping[str, str] | None = None,
) -> PinnedSnapshot:
    """Register every live file of the snapshot at ``version`` as ``name`` (``delta_pruned_parquet``).

    An object-store table's store is registered with ``ctx`` first (files are read by URL through it).
    Raises ``FileNotFoundError`` when a live file is missing or not the size the log records, deltalake's
    errors when the table cannot be opened at that version.
    """
    snapshot = open_snapshot(uri, version=version, storage_options=storage_options)
    if snapshot.object_store:
        register_object_store(ctx, uri, storage_options)
    if snapshot.object_store:
        damaged = _damaged_snapshot_objects(snapshot, storage_options)
    else:
        damaged = _damaged_files(snapshot)
    if damaged:
        raise FileNotFoundError(
            f"{len(damaged)} live data file(s) of version {snapshot.version} missing or damaged, "
            f"e.g. {damaged[0]}"
        )
    register_files(ctx, name, snapshot)
    return snapshot


def _class_name(value: object) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _register_scan_stream(ctx: datafusion.SessionContext, quoted: str, table: DeltaTable) -> None:
    """deltalake's own scan of ``table`` materialized as one in-memory table."""
    arrow = pa.table(pa.RecordBatchReader.from_stream(table.scan()))
    batches = arrow.to_batches() or [pa.RecordBatch.from_pylist([], schema=arrow.schema)]
    ctx.register_record_batches(quoted, [batches])


def register_mode(
    ctx: datafusion.SessionContext,
    name: str,
    mode: ProviderMode,
    table: DeltaTable,
    uri: str,
    *,
    materialize: bool,
    storage_options: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """Register ``table`` under ``name`` in ``mode``; returns (provider class, FFI capsule present).

    With ``materialize`` false a ``delta_scan_stream`` table is not registered (only described).
    """
    quoted = quote_ident(name)
    if ctx.table_exist(quoted):
        ctx.deregister_table(quoted)
    if mode is ProviderMode.DELTA_PRUNED_PARQUET:
        snapshot = register_pruned_parquet(
            ctx, name, uri, version=table.version(), storage_options=storage_options
        )
        return (OBJECT_STORE_READER_DESCRIPTION if snapshot.object_store else READER_DESCRIPTION), False
    if mode is ProviderMode.DELTA_TABLE_PROVIDER:
        ctx.register_table(quoted, table)
        return _class_name(table), hasattr(table, "__datafusion_table_provider__")
    if mode is ProviderMode.PYARROW_DATASET:
        dataset = build_pyarrow_dataset(table, uri)
        ctx.register_dataset(quoted, dataset)
        return _class_name(dataset), False
    if mode is ProviderMode.DELTA_SCAN_STREAM:
        if materialize:
            _register_scan_stream(ctx, quoted, table)
        return PROVIDER_CLASS_SCAN_STREAM, False
    raise ValueError(f"mode {mode.value} cannot be registered")


# ----------------------------------------------------------------------------------------------------
# Filter pushdown


def _first_column(ctx: datafusion.SessionContext, quoted: str) -> str | None:
    names = ctx.table(quoted).schema().names
    return names[0] if names else None


def filter_reaches_scan(ctx: datafusion.SessionContext, name: str) -> bool | None:
    """Whether ``WHERE <first column> IS NOT NULL`` is pushed into the table scan of ``name``.

    Reads the optimized logical plan: ``TableScan: t ... full_filters=[...]`` or ``partial_filters=[...]``
    means the provider receives the filter; a ``Filter`` node above a bare ``TableScan`` means it does not.
    ``None`` when the table has no column.
    """
    quoted = quote_ident(name)
    column = _first_column(ctx, quoted)
    if column is None:
        return None
    plan = ctx.sql(f"SELECT * FROM {quoted} WHERE {quote_ident(column)} IS NOT NULL").optimized_logical_plan()
    scans = [
        line.strip() for line in plan.display_indent().splitlines() if line.strip().startswith("TableScan:")
    ]
    return any("full_filters=" in line or "partial_filters=" in line for line in scans)


__all__ = [
    "PROVIDER_CLASS_SCAN_STREAM",
    "build_pyarrow_dataset",
    "damaged_objects",
    "filter_reaches_scan",
    "open_table",
    "register_mode",
    "register_object_store",
    "register_pruned_parquet",
]
