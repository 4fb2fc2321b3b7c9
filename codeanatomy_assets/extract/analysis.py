"""The analysis of Python source files: bytes in, column values of the four extract datasets out.

This module is what the worker processes run, so it imports only the standard library: a worker
starts fast and sends back plain column lists (see :class:`ChunkColumns`), never per-row dicts.

What is recorded, per file:

``source_files``
    one row per file, whatever happened to it (a file is never dropped). ``parse_status`` is a
    :class:`ParseStatus`; ``error`` is ``"line N: message"`` where the failure has a line.
``symbols``
    every ``class``, ``def`` and ``async def``, with its PEP 3155 qualified name (``C.m``,
    ``f.<locals>.g``). ``kind`` is ``class``, ``function``, ``async_function``, ``method`` or
    ``async_method`` (a method is a ``def`` directly in a class body). ``decorators`` holds the dotted
    name of each decorator, without call arguments (``@functools.lru_cache(8)`` -> ``functools.lru_cache``;
    ``<complex>`` when it is not a dotted name). ``arg_count`` counts every parameter, ``self``,
    ``*args`` and ``**kwargs`` included; it is null for classes.
    ``complexity`` is McCabe-like: 1 + the decision points in the symbol's own body (nested ``def`` and
    ``class`` bodies count for themselves; lambdas and comprehensions count for the symbol they are in).
    A decision point is an ``if``/``elif``, ``for``, ``async for``, ``while``, ``except`` clause, ``case``,
    conditional expression, comprehension ``for`` and each of its ``if``s, and each extra operand of
    ``and``/``or``.
``imports``
    one row per imported name: ``import a.b as c`` -> (``a.b``, null); ``from a import b, c`` ->
    (``a``, ``b``) and (``a``, ``c``); ``from a import *`` -> (``a``, ``*``). Relative imports are
    resolved against the file's package (``from ..x import y`` in ``p.q.m`` -> ``p.x``); one that climbs
    above the tree keeps its dots (``..x``). ``level`` is the number of leading dots.
``calls``
    one row per call expression. ``callee`` is the dotted text of what is called (``os.path.join``,
    ``self.foo``, ``print``) or ``<complex>`` (``f()()``, ``d[k]()``, ``super().m()``).
    ``enclosing_symbol`` is the qualname of the innermost ``def``/``class`` whose body holds the call, or
    ``<module>``. Decorators, default values, annotations and base classes run in the enclosing scope,
    so calls there belong to the enclosing symbol, as Python evaluates them.
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import gc
import hashlib
import io
import os
import stat
import time
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from codeanatomy_assets.extract.syntax import collect


class ParseStatus(StrEnum):
    """What happened to one source file (``source_files.parse_status``)."""

    OK = "ok"
    SYNTAX_ERROR = "syntax_error"
    """The text does not parse (``SyntaxError``, ``IndentationError``)."""
    DECODE_ERROR = "decode_error"
    """The bytes do not decode: a bad PEP 263 coding cookie, or bytes invalid in the declared encoding."""
    READ_ERROR = "read_error"
    """The file cannot be read: permission denied, dangling symlink, not a regular file, vanished."""
    TOO_LARGE = "too_large"
    """The file is larger than the size limit; it is not read."""
    RECURSION_ERROR = "recursion_error"
    """The parser hit the recursion limit (extreme nesting such as ``1+1+...+1`` a hundred thousand times)."""
    MEMORY_ERROR = "memory_error"
    """The parser ran out of memory or of its own stack (also extreme nesting, e.g. ``----...--1``)."""
    BINARY = "binary"
    """The file holds NUL bytes: it is not Python source."""
    SYMLINK_LOOP = "symlink_loop"
    """The path is a symbolic link that loops (``ELOOP``)."""
    ANALYSIS_ERROR = "analysis_error"
    """The file parsed but this module failed on it (a bug here: the message names the exception)."""
    WORKER_DIED = "worker_died"
    """The worker process died on this file (a crash in the parser, or killed for using too much memory)."""


# A dense 3 MB module takes about 1.2 GB and 5 s to parse (measured: 500,000 lines of `x = 1`); the largest
# file of the standard library is 0.75 MB. Bigger files are recorded as too_large, not parsed.
DEFAULT_MAX_FILE_BYTES: Final = 2 * 1024 * 1024

SOURCE_FILE_COLUMNS: Final = (
    "path", "module", "package", "bytes", "lines", "content_hash", "parse_status", "error",
)  # fmt: skip
SYMBOL_COLUMNS: Final = (
    "module", "package", "qualname", "name", "kind", "lineno", "end_lineno", "decorators", "arg_count",
    "complexity",
)  # fmt: skip
IMPORT_COLUMNS: Final = ("module", "package", "imported_module", "imported_name", "lineno", "level")
CALL_COLUMNS: Final = ("module", "package", "enclosing_symbol", "callee", "lineno")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """One file to analyse, named relative to the tree root (POSIX separators)."""

    path: str
    module: str
    package: str
    is_package: bool
    """True for ``__init__.py``: relative imports resolve against the module itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRequest:
    """The work one worker task does: a few files of one tree."""

    root: str
    files: tuple[SourceFile, ...]
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


def _columns(names: tuple[str, ...]) -> dict[str, list[object]]:
    return {name: [] for name in names}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkColumns:
    """Column lists of the four datasets for a chunk of files (what a worker sends back)."""

    source_files: dict[str, list[object]] = field(default_factory=lambda: _columns(SOURCE_FILE_COLUMNS))
    symbols: dict[str, list[object]] = field(default_factory=lambda: _columns(SYMBOL_COLUMNS))
    imports: dict[str, list[object]] = field(default_factory=lambda: _columns(IMPORT_COLUMNS))
    calls: dict[str, list[object]] = field(default_factory=lambda: _columns(CALL_COLUMNS))
    cpu_seconds: float = 0.0
    """CPU time the worker spent on the chunk (``time.process_time``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    """How reading and parsing one file ended."""

    status: ParseStatus
    error: str | None = None
    size: int | None = None
    lines: int | None = None
    content_hash: str | None = None
    tree: ast.Module | None = None


def analyse_chunk(request: ChunkRequest) -> ChunkColumns:
    """Analyse every file of ``request`` (the worker entry point); never raises for a bad file."""
    started = time.process_time()
    out = ChunkColumns()
    for source in request.files:
        analyse_file(os.path.join(request.root, source.path), source, out, request.max_file_bytes)
    return dataclasses.replace(out, cpu_seconds=time.process_time() - started)


def parse_only(request: ChunkRequest, *, collect_garbage: bool = False) -> tuple[int, float]:
    """The benchmark baseline of a chunk: read and ``ast.parse`` each file, nothing else.

    ``collect_garbage`` turns the cyclic collector on for the chunk, as a plain parse loop would run.
    Returns how many files parsed and the CPU seconds spent.
    """
    started = time.process_time()
    was_enabled = gc.isenabled()
    if collect_garbage:
        gc.enable()
    try:
        parsed = sum(_parses(os.path.join(request.root, source.path)) for source in request.files)
    finally:
        if not was_enabled:
            gc.disable()
    return parsed, time.process_time() - started


def _parses(path: str) -> bool:
    """Whether the file at ``path`` reads and parses (the benchmark baseline: nothing else is done)."""
    try:
        with open(path, "rb") as handle:
            ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def analyse_file(
    full_path: str, source: SourceFile, out: ChunkColumns, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> ParseStatus:
    """Append the rows of one file to ``out`` and return its status (one ``source_files`` row, always)."""
    outcome = _read_and_parse(full_path, max_file_bytes)
    if outcome.tree is not None:
        marks = _marks(out)
        try:
            collect(outcome.tree, source, out)
        except Exception as exc:  # noqa: BLE001 - a bug of this module must not lose the file: it becomes its status
            _truncate(out, marks)
            outcome = _Outcome(
                status=ParseStatus.ANALYSIS_ERROR,
                error=f"{type(exc).__name__}: {exc}",
                size=outcome.size,
                lines=outcome.lines,
                content_hash=outcome.content_hash,
            )
    _add_file(out, source, outcome)
    return outcome.status


def worker_died(request: ChunkRequest, error: str) -> ChunkColumns:
    """The rows of files whose worker process died: a ``worker_died`` row each, nothing else."""
    out = ChunkColumns()
    for source in request.files:
        _add_file(out, source, _Outcome(status=ParseStatus.WORKER_DIED, error=error))
    return out


def merge_chunks(parts: Iterable[ChunkColumns]) -> ChunkColumns:
    """One chunk's columns from the columns of its parts, in order."""
    out = ChunkColumns()
    cpu_seconds = 0.0
    for part in parts:
        for name in _DATASETS:
            mine = getattr(out, name)
            for column, values in getattr(part, name).items():
                mine[column].extend(values)
        cpu_seconds += part.cpu_seconds
    return dataclasses.replace(out, cpu_seconds=cpu_seconds)


_DATASETS: Final = ("source_files", "symbols", "imports", "calls")
_ROW_DATASETS: Final = ("symbols", "imports", "calls")


def _marks(out: ChunkColumns) -> dict[str, int]:
    return {name: len(getattr(out, name)["lineno"]) for name in _ROW_DATASETS}


def _truncate(out: ChunkColumns, marks: dict[str, int]) -> None:
    """Drop the rows a failed file had already added (every column back to the same length)."""
    for name, length in marks.items():
        for values in getattr(out, name).values():
            del values[length:]


def _add_file(out: ChunkColumns, source: SourceFile, outcome: _Outcome) -> None:
    row = out.source_files
    row["path"].append(source.path)
    row["module"].append(source.module)
    row["package"].append(source.package)
    row["bytes"].append(outcome.size)
    row["lines"].append(outcome.lines)
    row["content_hash"].append(outcome.content_hash)
    row["parse_status"].append(outcome.status.value)
    row["error"].append(outcome.error)


def _read_and_parse(full_path: str, max_file_bytes: int) -> _Outcome:
    data = _read_bytes(full_path, max_file_bytes)
    if isinstance(data, _Outcome):
        return data
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    known = {"size": len(data), "lines": lines, "content_hash": hashlib.sha256(data).hexdigest()}
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        return _Outcome(
            status=ParseStatus.BINARY, error=f"line {line}: NUL byte (not Python source)", **known
        )
    failure = _decode_failure(data)
    if failure is not None:
        return _Outcome(status=failure.status, error=failure.error, **known)
    return _parse(data, known)


def _read_bytes(full_path: str, max_file_bytes: int) -> bytes | _Outcome:
    """The bytes of a regular file within the size limit, else the outcome that says why not."""
    try:
        info = os.stat(full_path)
    except OSError as exc:
        return _os_failure(exc)
    if not stat.S_ISREG(info.st_mode):
        return _Outcome(status=ParseStatus.READ_ERROR, error="not a regular file")
    if info.st_size > max_file_bytes:
        error = f"{info.st_size} bytes is over the limit of {max_file_bytes} bytes"
        return _Outcome(
            status=ParseStatus.TOO_LARGE, error=error, size=info.st_size, content_hash=_stream_hash(full_path)
        )
    try:
        with open(full_path, "rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except OSError as exc:
        return _os_failure(exc)
    if len(data) > max_file_bytes:  # grew after the stat
        error = f"over the limit of {max_file_bytes} bytes"
        return _Outcome(
            status=ParseStatus.TOO_LARGE, error=error, size=len(data), content_hash=_stream_hash(full_path)
        )
    return data


def _stream_hash(full_path: str) -> str | None:
    """sha256 of a file too large to parse, read in blocks (an incremental rebuild then sees it unchanged)."""
    try:
        with open(full_path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _parse(data: bytes, known: dict[str, Any]) -> _Outcome:
    """Parse decodable source bytes; ``known`` holds the size, line count and hash of the outcome."""
    try:
        tree = ast.parse(data)  # the bytes: the parser decodes them as just checked, faster than from str
    except SyntaxError as exc:  # IndentationError and TabError included
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return _Outcome(status=ParseStatus.SYNTAX_ERROR, error=f"{where}{exc.msg}", **known)
    except RecursionError as exc:
        return _Outcome(status=ParseStatus.RECURSION_ERROR, error=f"RecursionError: {exc}", **known)
    except MemoryError as exc:
        error = f"MemoryError: {exc or 'parser out of memory (extreme nesting?)'}"
        return _Outcome(status=ParseStatus.MEMORY_ERROR, error=error, **known)
    except ValueError as exc:  # e.g. surrogates the parser refuses
        return _Outcome(status=ParseStatus.SYNTAX_ERROR, error=f"ValueError: {exc}", **known)
    return _Outcome(status=ParseStatus.OK, tree=tree, **known)


def _os_failure(exc: OSError) -> _Outcome:
    if exc.errno == errno.ELOOP:
        return _Outcome(status=ParseStatus.SYMLINK_LOOP, error=f"symbolic link loop: {exc.strerror}")
    return _Outcome(status=ParseStatus.READ_ERROR, error=f"{type(exc).__name__}: {exc.strerror or exc}")


def _decode_failure(data: bytes) -> _Outcome | None:
    """Why ``data`` does not decode as Python decodes source (PEP 263: BOM, coding cookie, else UTF-8)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # bad cookie, unknown encoding, BOM contradicting the cookie
        return _Outcome(status=ParseStatus.DECODE_ERROR, error=f"line {_declaration_line(data)}: {exc}")
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _Outcome(status=ParseStatus.DECODE_ERROR, error=f"line {line}: {exc}")
    except LookupError as exc:
        return _Outcome(status=ParseStatus.DECODE_ERROR, error=f"unknown encoding: {exc}")
    return None


def _declaration_line(data: bytes) -> int:
    """The line (1 or 2) that PEP 263 detection failed on: the coding cookie, else the undecodable one."""
    head = data.split(b"\n", 2)[:2]
    for number, line in enumerate(head, start=1):
        if tokenize.cookie_re.match(line.decode("latin-1")):
            return number
    for number, line in enumerate(head, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1
