"""The files a Delta snapshot points at: live data files and deletion vectors, located and checked.

An add action's path is URI-encoded and relative to the table root (or, rarely, an absolute URI). A deletion
vector descriptor is inline (``i``), an absolute path (``p``) or a UUID (``u``) from which the file name is
derived (PROTOCOL.md, "Deletion Vector Descriptor Schema"). :func:`check_files` reports missing files as
findings on the :class:`~codeanatomy_assets.delta.health.HealthBuilder`.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

import pyarrow.fs as pafs

from codeanatomy_assets.delta.health import HealthBuilder, LogFindingCode
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_text

DEFAULT_DATA_FILE_CHECK_LIMIT: Final = 10_000
"""How many live data files are checked for existence at most (a local ``stat`` each)."""
OBJECT_STORE_DATA_FILE_CHECK_LIMIT: Final = 1_000
"""The cap for object stores, where each check is a request."""
_EXAMPLES: Final = 5
"""How many missing files a finding names."""
_Z85: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_UUID_CHARS: Final = 20
"""The Z85-encoded UUID at the end of a ``u`` descriptor's ``pathOrInlineDv``."""


class DeletionVectorStorage(StrEnum):
    """The ``storageType`` of a deletion vector descriptor."""

    UUID = "u"
    """A file ``deletion_vector_<uuid>.bin`` under an optional prefix, relative to the table root."""
    PATH = "p"
    """An absolute path."""
    INLINE = "i"
    """The bitmap itself, no file."""


# ----------------------------------------------------------------------------------------------------
# Locations


def files_exist(fs: pafs.FileSystem, paths: list[str]) -> list[bool]:
    """Whether each of ``paths`` exists in ``fs`` (one batched lookup)."""
    if not paths:
        return []
    return [info.type != pafs.FileType.NotFound for info in fs.get_file_info(paths)]


def _file_location(root: str, path: str) -> str | None:
    """Where an add action's URI-encoded path lives in the table's filesystem (``None``: elsewhere)."""
    if "://" in path:
        split = urllib.parse.urlsplit(path)
        if split.scheme == "file":
            return urllib.parse.unquote(split.path)
        return None
    return f"{root}/{urllib.parse.unquote(path)}"


def _z85_decode(text: str) -> bytes:
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for char in text[i : i + 5]:
            value = value * 85 + _Z85.index(char)
        out += value.to_bytes(4, "big")
    return bytes(out)


def deletion_vector_location(root: str, dv: Mapping[str, Any]) -> str | None:
    """The file holding an on-disk deletion vector (``None`` for inline ones or undecodable descriptors).

    >>> deletion_vector_location("/t", {"storageType": "u", "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA"})
    '/t/deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin'
    """
    storage = dv.get("storageType")
    value = dv.get("pathOrInlineDv")
    if not isinstance(value, str):
        return None
    if storage == DeletionVectorStorage.PATH:
        return _file_location(root, value)
    if storage == DeletionVectorStorage.UUID:
        return _uuid_location(root, value)
    return None


def _uuid_location(root: str, value: str) -> str | None:
    """The file of a ``u`` descriptor: ``<prefix>/deletion_vector_<uuid>.bin`` (``None`` if undecodable)."""
    if len(value) < _UUID_CHARS:
        return None
    try:
        dv_uuid = uuid.UUID(bytes=_z85_decode(value[-_UUID_CHARS:]))
    except ValueError:
        return None
    prefix = value[:-_UUID_CHARS]
    name = f"deletion_vector_{dv_uuid}.bin"
    return f"{root}/{prefix}/{name}" if prefix else f"{root}/{name}"


# ----------------------------------------------------------------------------------------------------
# Existence checks


def check_files(
    builder: HealthBuilder, fs: pafs.FileSystem, root: str, live: Mapping[tuple[str, str], object], limit: int
) -> None:
    """Check that the live data files (``live`` keyed by path and deletion vector id, valued by the
    descriptor) and their deletion vector files exist, at most ``limit`` of each."""
    paths = sorted({path for path, _ in live})
    builder.values["live_files"] = len(paths)
    if _check_data_files(builder, fs, _checkable(builder, root, paths, limit)):
        _check_deletion_vectors(builder, fs, _deletion_vector_locations(root, live.values(), limit))


def _checkable(builder: HealthBuilder, root: str, paths: list[str], limit: int) -> list[tuple[str, str]]:
    """The live files to check and their locations: those in the table's filesystem, ``limit`` at most."""
    located = [(p, _file_location(root, p)) for p in paths]
    checkable = [(p, loc) for p, loc in located if loc is not None]
    if len(checkable) < len(located):
        builder.find(
            LogFindingCode.DATA_FILES_NOT_CHECKED,
            Severity.INFO,
            f"{len(located) - len(checkable)} data file(s) outside the table's filesystem were not checked",
        )
    if len(checkable) > limit:
        builder.find(
            LogFindingCode.DATA_FILE_CHECK_TRUNCATED,
            Severity.INFO,
            f"checked {limit} of {len(checkable)} live data files for existence",
            limit=limit,
            live_files=len(checkable),
        )
    return checkable[:limit]


def _check_data_files(builder: HealthBuilder, fs: pafs.FileSystem, checkable: list[tuple[str, str]]) -> bool:
    """Report the missing data files; ``False`` when the existence check itself failed."""
    try:
        exists = files_exist(fs, [loc for _, loc in checkable])
    except Exception as exc:  # noqa: BLE001 - the existence check itself failing is reported, not raised
        builder.find_exception(
            LogFindingCode.DATA_FILES_NOT_CHECKED, Severity.INFO, "data files could not be checked", exc
        )
        return False
    missing = [p for (p, _), ok in zip(checkable, exists, strict=True) if not ok]
    _report_missing_data_files(builder, len(checkable), missing)
    return True


def _report_missing_data_files(builder: HealthBuilder, checked: int, missing: list[str]) -> None:
    builder.values.update(
        data_files_checked=checked,
        data_files_missing=len(missing),
        missing_data_file_examples=tuple(missing[:_EXAMPLES]),
    )
    if missing:
        builder.find(
            LogFindingCode.MISSING_DATA_FILES,
            Severity.ERROR,
            f"{len(missing)} of {checked} checked live data file(s) are missing, e.g. {missing[0]}",
            missing=len(missing),
            checked=checked,
            examples=missing[:_EXAMPLES],
        )


def _deletion_vector_locations(root: str, descriptors: Iterable[object], limit: int) -> list[str]:
    """The distinct deletion vector files of the live files, sorted, ``limit`` at most."""
    locations = {
        loc
        for dv in descriptors
        if isinstance(dv, dict) and (loc := deletion_vector_location(root, dv)) is not None
    }
    return sorted(locations)[:limit]


def _check_deletion_vectors(builder: HealthBuilder, fs: pafs.FileSystem, locations: list[str]) -> None:
    try:
        exists = files_exist(fs, locations)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        builder.find(
            LogFindingCode.DATA_FILES_NOT_CHECKED,
            Severity.INFO,
            f"deletion vector files could not be checked: {exception_text(exc)}",
        )
        return
    missing = [os.path.basename(loc) for loc, ok in zip(locations, exists, strict=True) if not ok]
    builder.values["deletion_vector_files_missing"] = len(missing)
    if missing:
        builder.find(
            LogFindingCode.MISSING_DELETION_VECTOR_FILES,
            Severity.ERROR,
            f"{len(missing)} deletion vector file(s) are missing, e.g. {missing[0]}",
            missing=len(missing),
            examples=missing[:_EXAMPLES],
        )
