"""The ``delta_pruned_parquet`` reader: a pinned Delta snapshot's files read by DataFusion's Parquet reader.

The Delta table provider receives no filters across DataFusion's FFI and reads every live file;
reading only the files Delta's log statistics keep, with DataFusion's own Parquet reader, is near native
speed (measured: ``docs/architecture/scan_strategy.md``). This module is that reader, and it keeps Delta's
semantics where the protocol lets the Parquet files be read as they are
(:mod:`codeanatomy_assets.delta.protocol` decides where):

- **one snapshot**: :func:`open_snapshot` opens the table at one version (the version registration
  recorded) and every file set is taken from that snapshot, so planning and scanning never mix versions;
- **the files Delta says**: the live files come from the log (``DeltaTable.file_uris()``), never from
  listing the table's folders, and :meth:`PinnedSnapshot.candidates` asks deltalake's statistics-based
  pruning (``file_uris(file_pruning_predicate=...)``) which of them a predicate can match;
- **exactly those files**: a local file set is exposed to DataFusion as a folder holding one link per file
  (:class:`LinkFarm`: hard links where the filesystem allows, else symbolic links), registered as a
  listing table with ``register_parquet`` / ``read_parquet``: one scan per table, planned in a few
  milliseconds, where a union of per-file reads costs tens (measured at TPC-H SF1). An object store
  (s3/gs/az) has no folder to link into: there each file is a listing of its own URL
  (:func:`object_file_url`, the object's key percent-encoded, so DataFusion decodes it back to exactly
  that key and expands no glob), read through the object store registered with the session, and the
  table is their union;
- **the table's schema**: the listing uses the table's Arrow schema (string and binary columns as
  DataFusion's view types, as the provider exposes them), so a file written before a column was added
  reads that column as nulls;
- **partition values from the log**: partition columns come from the add actions' typed
  ``partitionValues`` (nulls included), as literals next to each group of files with the same values
  (one listing per group, their union a view), never from paths.

Links are named by this module, so nothing in a Delta file name is parsed by DataFusion (a path holding
``*``, ``?`` or ``[`` would otherwise be expanded as a glob and read other files; measured). A hard link
keeps a file readable at the pinned version even if it is deleted later; a symbolic link to a deleted file
would be skipped by DataFusion's listing without an error (measured), so registration checks that every
file exists with its logged size, and plans check their links again (:func:`missing_links`).
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import pyarrow as pa
from datafusion import DataFrame, SessionContext, col, lit
from deltalake import DeltaTable

from codeanatomy_assets.delta.storage import file_key, file_uri_path, file_uri_root, is_object_store_uri

READER_DESCRIPTION: Final = "datafusion ListingTable(parquet) <- delta snapshot files (linked)"
"""``provider_class`` of local tables registered in this mode."""
OBJECT_STORE_READER_DESCRIPTION: Final = (
    "datafusion ListingTable(parquet) <- delta snapshot files (object URLs)"
)
"""``provider_class`` of object-store (s3/gs/az) tables registered in this mode."""

GLOB_CHARACTERS: Final = frozenset("*?[")
"""Characters DataFusion's listing expands as a glob in a path (measured: ``u?v`` also reads ``uav``)."""

FARM_PREFIX: Final = "codeanatomy-delta-files-"
"""Name prefix of the per-process folder of links (``<tmp>/codeanatomy-delta-files-<random>``)."""
_OWNER: Final = ".owner"

_DELETION_VECTORS: Final = "deletionVectors"
_PARTITION_PREFIX: Final = "partition."


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotFile:
    """One live data file of a snapshot with its typed partition values (in partition column order)."""

    uri: str
    """As ``DeltaTable.file_uris()`` spells it: for a local table the table's folder percent-encoded (a space
    as ``%20``, ``?``, ``#`` and ``%`` escaped) followed by the file's path inside it as it is on disk; not a
    path to open (see :attr:`path`)."""
    size: int | None = None
    """Bytes, as the add action records them."""
    partition_values: tuple[Any, ...] = ()
    path: str | None = None
    """The local file to open, decoded from the log (``None`` on an object store)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedSnapshot:
    """One version of one Delta table: its live files, partition values and the schema DataFusion sees."""

    uri: str
    version: int
    schema: pa.Schema
    """The table's columns in table order, string and binary as view types."""
    partition_columns: tuple[str, ...]
    files: tuple[SnapshotFile, ...]
    files_with_deletion_vectors: int
    """Live files carrying a deletion vector (reading them as they are would return deleted rows)."""
    table: DeltaTable = field(compare=False, repr=False)
    _candidates: dict[str, tuple[SnapshotFile, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def object_store(self) -> bool:
        """The table lives in an object store (s3/gs/az): files are read by URL, never linked."""
        return is_object_store_uri(self.uri)

    @property
    def registered_as_view(self) -> bool:
        """Registered as a view (partitioned, or per-file listings of an object store), not one listing."""
        return bool(self.partition_columns) or self.object_store

    @property
    def file_schema(self) -> pa.Schema:
        """The columns stored in the data files (the table's, without partition columns)."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_columns])

    def candidates(self, predicate: str | None) -> tuple[SnapshotFile, ...]:
        """The live files Delta's log statistics keep for ``predicate`` (all of them for ``None``).

        Raises deltalake's ``DeltaError`` (or ``ValueError``) when deltalake cannot evaluate the predicate.
        Cached per predicate: a snapshot never changes.
        """
        if predicate is None:
            return self.files
        if predicate not in self._candidates:
            kept = {file_key(uri) for uri in self.table.file_uris(file_pruning_predicate=predicate)}
            self._candidates[predicate] = tuple(f for f in self.files if file_key(f.uri) in kept)
        return self._candidates[predicate]


def to_view_types(schema: pa.Schema) -> pa.Schema:
    """Top-level ``string``/``binary`` columns as ``string_view``/``binary_view`` (what DataFusion reads).

    >>> to_view_types(pa.schema([("s", pa.string()), ("n", pa.int64())])).types
    [DataType(string_view), DataType(int64)]
    """
    views = {
        pa.string(): pa.string_view(),
        pa.large_string(): pa.string_view(),
        pa.binary(): pa.binary_view(),
    }
    return pa.schema(
        [f.with_type(views.get(f.type, f.type)) for f in schema],
        # pyarrow-stubs types `metadata` as an invariant dict of bytes | str; a schema's own is bytes.
        metadata=schema.metadata,  # pyright: ignore[reportArgumentType]
    )


def _add_actions(
    table: DeltaTable, partition_columns: Sequence[str]
) -> dict[str, tuple[int, tuple[Any, ...], str | None]]:
    """``{file key: (size, typed partition values, local path)}`` from the add actions.

    Typed partition values come from the ``partition.<col>`` columns. The key is spelled as
    ``file_uris()`` spells a file (the table's URI path, still percent-encoded, then the action's path
    decoded once); the local path is the table's folder decoded, then the action's path decoded once.
    """
    adds = pa.table(table.get_add_actions(flatten=True))
    root = file_key(table.table_uri).rstrip("/")
    local_root = file_uri_root(table.table_uri)
    # Both are required fields of an add action (never null).
    paths = cast("list[str]", adds.column("path").to_pylist())
    sizes = cast("list[int]", adds.column("size_bytes").to_pylist())
    columns = [adds.column(_PARTITION_PREFIX + name).to_pylist() for name in partition_columns]
    actions: dict[str, tuple[int, tuple[Any, ...], str | None]] = {}
    for index, path in enumerate(paths):
        key, local = _action_location(path, root, local_root)
        actions[key] = (sizes[index], tuple(column[index] for column in columns), local)
    return actions


def _action_location(path: str, root: str, local_root: str | None) -> tuple[str, str | None]:
    """An add action's file key (spelled as ``file_uris()`` does) and local path (``None``: object store)."""
    decoded = urllib.parse.unquote(path)  # the log holds paths URL-encoded; file_uris() decoded
    if "://" in decoded or decoded.startswith("/"):  # an absolute path
        return file_key(decoded), (decoded if decoded.startswith("/") else file_uri_root(path))
    return f"{root}/{decoded}", (None if local_root is None else f"{local_root}/{decoded}")


def _files_with_deletion_vectors(table: DeltaTable) -> int:
    if _DELETION_VECTORS not in (table.protocol().reader_features or ()):
        return 0  # without the feature no add action may carry a deletion vector
    return pa.table(table.deletion_vectors()).num_rows


def _snapshot_files(table: DeltaTable, partition_columns: Sequence[str]) -> tuple[SnapshotFile, ...]:
    """The live files of ``table`` with what their add actions record (``ValueError`` when one has none)."""
    uris = tuple(table.file_uris())
    actions = _add_actions(table, partition_columns)
    unmatched = [u for u in uris if file_key(u) not in actions]
    if unmatched:
        raise ValueError(f"no add action matches {len(unmatched)} live file(s), e.g. {unmatched[0]}")
    return tuple(
        SnapshotFile(uri=u, size=size, partition_values=values, path=local)
        for u in uris
        for size, values, local in (actions[file_key(u)],)
    )


def _load_snapshot(uri: str, version: int, options: tuple[tuple[str, str], ...]) -> PinnedSnapshot:
    table = DeltaTable(uri, version=version, storage_options=dict(options) or None)
    partition_columns = tuple(table.metadata().partition_columns)
    files = _snapshot_files(table, partition_columns)
    return PinnedSnapshot(
        uri=uri,
        version=table.version(),
        # pyarrow-stubs lacks the Arrow PyCapsule overload (a deltalake Schema exports __arrow_c_schema__).
        schema=to_view_types(pa.schema(table.schema())),  # pyright: ignore[reportArgumentType]
        partition_columns=partition_columns,
        files=files,
        files_with_deletion_vectors=_files_with_deletion_vectors(table),
        table=table,
    )


@functools.lru_cache(maxsize=256)
def _pinned(uri: str, version: int, options: tuple[tuple[str, str], ...]) -> PinnedSnapshot:
    return _load_snapshot(uri, version, options)


def open_snapshot(
    uri: str, *, version: int | None, storage_options: Mapping[str, str] | None = None
) -> PinnedSnapshot:
    """The snapshot of the table at ``uri`` at ``version`` (``None``: the latest, pinned to its version).

    A given version is loaded once per process (it never changes). Raises deltalake's ``DeltaError`` when
    the table cannot be opened, ``ValueError`` when the log lacks a file's partition values.
    """
    options = tuple(sorted((storage_options or {}).items()))
    if version is None:
        version = DeltaTable(uri, storage_options=dict(options) or None).version()
    return _pinned(uri, version, options)


# ------------------------------------------------------------------------------------------- links


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFolder:
    """A folder holding one link per file of a file set (``000000.parquet``, ...), never changed."""

    path: str
    links: tuple[tuple[str, str], ...]
    """``(link path, file uri)`` per file, in file order."""
    hard: bool
    """All links are hard links (a file deleted later stays readable through them)."""


class LinkFarm:
    """The process's folders of links, one per distinct file set, named by what they hold.

    Content-addressed (table, version, files), so a folder is built once and never modified: DataFusion
    may cache a folder's listing. Removed when the process exits; the farm of a process that ended
    without cleaning up (``os._exit``) is removed by the next farm that starts, once the lock its process
    held on ``.owner`` is free (an advisory lock, released by the kernel when the process ends).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: str | None = None
        self._owner: Any = None
        self._folders: dict[str, LinkFolder] = {}
        self._targets: dict[str, str] = {}

    @property
    def root(self) -> str | None:
        """The farm's folder (``None`` until a file set was linked)."""
        return self._root

    def _ensure_root(self) -> str:
        if self._root is None:
            _remove_orphan_farms()
            root = tempfile.mkdtemp(prefix=FARM_PREFIX)
            if GLOB_CHARACTERS & set(root):
                raise ValueError(f"temporary folder {root!r} holds glob characters DataFusion would expand")
            self._owner = open(os.path.join(root, _OWNER), "w")  # noqa: SIM115 - held for the process's life
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            atexit.register(_remove_farm, root)
            self._root = root
        return self._root

    def folder(self, snapshot: PinnedSnapshot, files: Sequence[SnapshotFile]) -> LinkFolder:
        """The folder of links to ``files`` of ``snapshot`` (built on first use)."""
        material = "\n".join([snapshot.uri, str(snapshot.version), *(f.uri for f in files)])
        key = hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]
        with self._lock:
            if key not in self._folders:
                self._folders[key] = self._build(os.path.join(self._ensure_root(), key), files)
            return self._folders[key]

    def _build(self, path: str, files: Sequence[SnapshotFile]) -> LinkFolder:
        staging = path + ".building"
        if os.path.isdir(staging):  # left by a build that failed earlier in this process
            shutil.rmtree(staging)
        os.makedirs(staging)
        links: list[tuple[str, str]] = []
        hard = True
        for index, file in enumerate(files):
            link = os.path.join(path, f"{index:06d}.parquet")
            target = file.path or file_uri_path(file.uri)
            hard = _link(target, os.path.join(staging, f"{index:06d}.parquet")) and hard
            links.append((link, file.uri))
        os.rename(staging, path)
        for link, uri in links:  # as given and resolved: DataFusion may print either spelling
            self._targets[file_key(link)] = uri
            self._targets[file_key(os.path.join(os.path.realpath(path), os.path.basename(link)))] = uri
        return LinkFolder(path=path, links=tuple(links), hard=hard)

    def target(self, path: str) -> str | None:
        """The file a link of this farm stands for (``None`` for any other path)."""
        return self._targets.get(file_key(path))


def _link(target: str, link: str) -> bool:
    """Link ``link`` to the local file ``target``; a hard link when possible (true), else a symbolic one."""
    try:
        os.link(target, link)
    except OSError:  # another filesystem, or a file this user may not hard-link: a symbolic link then
        os.symlink(target, link)
        return False
    return True


def _remove_farm(root: str) -> None:
    # At interpreter exit there is no sink to report to; a leftover folder is removed by the next farm.
    shutil.rmtree(root, ignore_errors=True)


def _remove_orphan_farms() -> None:
    """Remove the farms whose process is gone (it ended without running its exit handlers)."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        owner = os.path.join(base, name, _OWNER)
        if name.startswith(FARM_PREFIX) and os.path.isfile(owner) and _unowned(owner):
            _remove_farm(os.path.join(base, name))


def _unowned(owner: str) -> bool:
    """Whether no process holds the lock on ``owner`` (its farm's process ended)."""
    try:
        with open(owner) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live process (BlockingIOError), or not ours to open: leave it
        return False
    return True


FARM: Final = LinkFarm()
"""The process's link farm."""


def object_file_url(uri: str) -> str:
    """The URL DataFusion reads an object-store file at: ``file_uris()``'s spelling is the object's key
    as it is, so the key is percent-encoded (DataFusion decodes a URL's path once; measured with a space,
    ``%`` and ``?`` in partition folders), and a URL's path is never expanded as a glob.

    >>> object_file_url("s3://bkt/t/p=a%20b/x*.parquet")
    's3://bkt/t/p%3Da%2520b/x%2A.parquet'
    """
    scheme, rest = uri.split("://", 1)
    netloc, _, key = rest.partition("/")
    return f"{scheme}://{netloc}/{urllib.parse.quote(key, safe='/')}"


def link_target(path: str) -> str | None:
    """The Delta file a path DataFusion reports (a link of :data:`FARM`) stands for, else ``None``."""
    return FARM.target(path)


def missing_links(folders: Sequence[LinkFolder]) -> list[str]:
    """Files no longer readable through their links (a symbolic link to a deleted file, a removed link).

    DataFusion's listing skips such a link without an error, so a plan checks before it reads.
    """
    return [uri for folder in folders for link, uri in folder.links if not os.path.exists(link)]


# ----------------------------------------------------------------------------------------- frames


def quote_ident(name: str) -> str:
    """A SQL identifier for ``name`` (double quotes, embedded quotes doubled).

    >>> quote_ident('my "odd".name')
    '"my ""odd"".name"'
    """
    return '"' + name.replace('"', '""') + '"'


def _groups(
    snapshot: PinnedSnapshot, files: Sequence[SnapshotFile]
) -> dict[tuple[Any, ...], list[SnapshotFile]]:
    """Files grouped by their partition values, in first-seen order (one group without partitions)."""
    groups: dict[tuple[Any, ...], list[SnapshotFile]] = {}
    for file in files:
        groups.setdefault(file.partition_values, []).append(file)
    return groups


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    union = frames[0]
    for frame in frames[1:]:
        union = union.union(frame)
    return union


def _group_source(ctx: SessionContext, snapshot: PinnedSnapshot, group: Sequence[SnapshotFile]) -> DataFrame:
    """The rows of one group's files: its folder of links, or (object store) a listing per file URL."""
    if not snapshot.object_store:
        return ctx.read_parquet(FARM.folder(snapshot, group).path, schema=snapshot.file_schema)
    # file_extension "": a single-file listing keeps only files ending with it (Delta names vary).
    return _union(
        [
            ctx.read_parquet(object_file_url(f.uri), schema=snapshot.file_schema, file_extension="")
            for f in group
        ]
    )


def _read_group(
    ctx: SessionContext, snapshot: PinnedSnapshot, values: tuple[Any, ...], group: Sequence[SnapshotFile]
) -> DataFrame:
    """One group's files with the partition columns as typed literals, in table order."""
    frame = _group_source(ctx, snapshot, group)
    literals = dict(zip(snapshot.partition_columns, values, strict=True))
    return frame.select(
        *(
            lit(pa.scalar(literals[f.name], type=f.type)).alias(f.name)
            if f.name in literals
            else col(quote_ident(f.name))
            for f in snapshot.schema
        )
    )


def link_files(snapshot: PinnedSnapshot, files: Sequence[SnapshotFile]) -> tuple[LinkFolder, ...]:
    """The link folders of ``files`` (one per partition group; none for an object store)."""
    if snapshot.object_store:
        return ()
    return tuple(FARM.folder(snapshot, group) for group in _groups(snapshot, files).values())


def build_frame(ctx: SessionContext, snapshot: PinnedSnapshot, files: Sequence[SnapshotFile]) -> DataFrame:
    """The rows of ``files`` of a partitioned, object-store or empty ``snapshot``: one listing per partition
    group (per file on an object store), unioned."""
    if not files:
        return ctx.from_arrow(snapshot.schema.empty_table())
    groups = _groups(snapshot, files)
    return _union([_read_group(ctx, snapshot, values, group) for values, group in groups.items()])


def register_files(
    ctx: SessionContext, name: str, snapshot: PinnedSnapshot, files: Sequence[SnapshotFile] | None = None
) -> tuple[LinkFolder, ...]:
    """Register ``files`` of ``snapshot`` (default: every live file) as ``name``, replacing it.

    An unpartitioned local table is one listing table named ``name``; a partitioned, object-store (the
    session must have its object store) or empty one a view. Returns the link folders read (none for an
    object store).
    """
    chosen = snapshot.files if files is None else files
    quoted = quote_ident(name)
    folders = link_files(snapshot, chosen)
    if ctx.table_exist(quoted):
        ctx.deregister_table(quoted)
    if chosen and not snapshot.registered_as_view:
        ctx.register_parquet(quoted, folders[0].path, schema=snapshot.file_schema)
    else:
        ctx.register_view(quoted, build_frame(ctx, snapshot, chosen))
    return folders


__all__ = [
    "FARM",
    "FARM_PREFIX",
    "GLOB_CHARACTERS",
    "OBJECT_STORE_READER_DESCRIPTION",
    "READER_DESCRIPTION",
    "LinkFarm",
    "LinkFolder",
    "PinnedSnapshot",
    "SnapshotFile",
    "build_frame",
    "link_files",
    "link_target",
    "missing_links",
    "object_file_url",
    "open_snapshot",
    "register_files",
    "to_view_types",
]
