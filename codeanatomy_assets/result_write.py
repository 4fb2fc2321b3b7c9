"""Writing a plan's result as a Delta table: all of it, or nothing (:func:`write_result`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from typing import Final

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from codeanatomy_assets.delta.storage import is_object_store_uri, local_table_path
from codeanatomy_assets.delta_types import normalize_for_delta


def write_result(
    uri: str,
    table: pa.Table,
    storage_options: Mapping[str, str] | None,
    *,
    commit_metadata: Mapping[str, str] | None = None,
) -> None:
    """Overwrite the Delta table at ``uri`` with ``table`` (normalized for Delta), or leave it as it was.

    ``commit_metadata`` goes into the commit's custom metadata (``DeltaTable.history()`` reads it back):
    the plan's inputs fingerprint (:mod:`codeanatomy_assets.plan_skip`).

    A local folder that a failed (or interrupted) write created is removed; one that existed keeps its
    files: what the failed write added (data files never committed) is removed again. On an object store
    an uncommitted write leaves at most unreferenced data files, which no reader sees. A panic of
    deltalake's Rust code (a ``BaseException``) is raised as a ``RuntimeError`` saying so.
    """
    local = None if is_object_store_uri(uri) else local_table_path(uri)
    before = _folder_entries(local) if local is not None else None
    try:
        write_deltalake(
            uri,
            normalize_for_delta(table),
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=dict(storage_options) if storage_options else None,
            commit_properties=CommitProperties(custom_metadata=dict(commit_metadata or {})),
        )
    except BaseException as exc:
        if local is not None:
            _undo_failed_write(local, before)
        if type(exc).__name__ == "PanicException":  # pyo3's, not an Exception: a step would not catch it
            raise _panic_error(exc, local) from exc
        raise


def _panic_error(panic: BaseException, local: str | None) -> RuntimeError:
    """A panic of deltalake's Rust code as an error a step catches, with its known cause if any."""
    known = ""
    if local is not None and ("[" in local or "]" in local):
        known = " (known: deltalake 1.6.6 cannot write to a local path holding '[' or ']')"
    return RuntimeError(f"deltalake panicked: {panic}{known}")


_COMMIT_RE: Final = re.compile(r"^_delta_log/\d{20}\.json$")


def _folder_entries(path: str) -> set[str] | None:
    """The files and folders under ``path`` (relative, ``/``-separated); ``None`` when it does not exist."""
    if not os.path.lexists(path):
        return None
    entries: set[str] = set()
    for folder, dirs, files in os.walk(path):
        relative = os.path.relpath(folder, path)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        entries.update(prefix + name for name in (*dirs, *files))
    return entries


def _undo_failed_write(path: str, before: set[str] | None) -> None:
    """Remove what a failed write added under ``path`` (the folder, if it is new), unless it committed."""
    after = _folder_entries(path) or set()
    added = after - (before or set())
    if any(_COMMIT_RE.match(entry) for entry in added):
        return  # a version was committed after all: it is the table's, not debris
    if before is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in sorted(added, key=lambda e: e.count("/"), reverse=True):  # deepest first
        full = os.path.join(path, *entry.split("/"))
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(full)
