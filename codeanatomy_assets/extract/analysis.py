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
import operator
import os
import stat
import time
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


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


COMPLEX_CALLEE: Final = "<complex>"
MODULE_SCOPE: Final = "<module>"
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
    parsed = 0
    try:
        for source in request.files:
            try:
                with open(os.path.join(request.root, source.path), "rb") as handle:
                    ast.parse(handle.read())
            except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
                continue  # counted by the return value: parsed files only
            parsed += 1
    finally:
        if not was_enabled:
            gc.disable()
    return parsed, time.process_time() - started


def analyse_file(
    full_path: str, source: SourceFile, out: ChunkColumns, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> ParseStatus:
    """Append the rows of one file to ``out`` and return its status (one ``source_files`` row, always)."""
    outcome = _read_and_parse(full_path, max_file_bytes)
    if outcome.tree is not None:
        marks = _marks(out)
        try:
            _collect(outcome.tree, source, out)
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
    try:
        info = os.stat(full_path)
    except OSError as exc:
        return _os_failure(exc)
    if not stat.S_ISREG(info.st_mode):
        return _Outcome(status=ParseStatus.READ_ERROR, error="not a regular file")
    if info.st_size > max_file_bytes:
        error = f"{info.st_size} bytes is over the limit of {max_file_bytes} bytes"
        return _Outcome(status=ParseStatus.TOO_LARGE, error=error, size=info.st_size)
    try:
        with open(full_path, "rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except OSError as exc:
        return _os_failure(exc)
    if len(data) > max_file_bytes:  # grew after the stat
        error = f"over the limit of {max_file_bytes} bytes"
        return _Outcome(status=ParseStatus.TOO_LARGE, error=error, size=len(data))
    size = len(data)
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    digest = hashlib.sha256(data).hexdigest()
    known = {"size": size, "lines": lines, "content_hash": digest}
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        error = f"line {line}: NUL byte (not Python source)"
        return _Outcome(status=ParseStatus.BINARY, error=error, **known)
    failure = _decode_failure(data)
    if failure is not None:
        return _Outcome(status=failure.status, error=failure.error, **known)
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


# --- the tree walk -----------------------------------------------------------------------------------
#
# One iterative pre-order walk over the whole tree (no recursion: deep trees cannot overflow it). It
# touches most nodes of the file, so it is written for speed: one table lookup per node gives what to do
# with it and an attrgetter for the fields that can hold child nodes (identifiers, contexts and operators
# are never visited), and scopes change by a marker on the stack instead of a (node, scope) pair per node.


class _Exit:
    """The stack marker after a body: the scope on top of the scope stack ends here."""


_EXIT: Final = _Exit()

# Node codes (small ints, compared with `is`). Codes from _GENERIC on walk their children generically.
_LEAF, _CALL, _FUNC, _ASYNC_FUNC, _CLASS, _IMPORT, _IMPORT_FROM, _EXIT_CODE = range(8)
_GENERIC, _DECISION, _COMPREHENSION, _BOOL_OP = range(8, 12)
_CODES: Final[dict[type, int]] = {
    ast.Call: _CALL,
    ast.FunctionDef: _FUNC,
    ast.AsyncFunctionDef: _ASYNC_FUNC,
    ast.ClassDef: _CLASS,
    ast.Import: _IMPORT,
    ast.ImportFrom: _IMPORT_FROM,
    ast.If: _DECISION,
    ast.For: _DECISION,
    ast.AsyncFor: _DECISION,
    ast.While: _DECISION,
    ast.IfExp: _DECISION,
    ast.ExceptHandler: _DECISION,
    ast.match_case: _DECISION,
    ast.comprehension: _COMPREHENSION,
    ast.BoolOp: _BOOL_OP,
}
# Fields that never hold child nodes worth visiting (identifiers, constants, contexts, operators).
_SKIPPED_FIELDS: Final = frozenset(
    {"ctx", "id", "attr", "arg", "module", "level", "type_comment", "kind", "is_async", "conversion",
     "asname", "name", "names", "op", "ops", "tag", "n", "s", "kwd_attrs", "rest", "value_is_constant"}
)  # fmt: skip
_LEAF_CLASSES: Final = (
    ast.Name,
    ast.Constant,
    ast.expr_context,
    ast.operator,
    ast.boolop,
    ast.unaryop,
    ast.cmpop,
    ast.alias,
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Global,
    ast.Nonlocal,
)
_Plan = tuple[int, int, "Callable[[Any], Any] | None"]


def _plans() -> dict[type, _Plan]:
    """(code, number of child fields, getter of the child fields) for every node class, leaves included."""
    plans: dict[type, _Plan] = dict.fromkeys(
        (type(None), str, bytes, int, float, complex, bool, type(...)), (_LEAF, 0, None)
    )
    plans[_Exit] = (_EXIT_CODE, 0, None)
    for cls in vars(ast).values():
        if not (isinstance(cls, type) and issubclass(cls, ast.AST)):
            continue
        fields = tuple(f for f in reversed(cls._fields) if f not in _SKIPPED_FIELDS)  # last first: a stack
        code = _CODES.get(cls, _GENERIC)
        if issubclass(cls, _LEAF_CLASSES) or (code is _GENERIC and not fields):
            plans[cls] = (_LEAF, 0, None)
        else:
            plans[cls] = (code, len(fields), operator.attrgetter(*fields) if fields else None)
    return plans


_PLANS: Final = _plans()
_LEAF_TYPES: Final = frozenset(cls for cls, plan in _PLANS.items() if plan[0] is _LEAF)


def dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.append(node.id)
    parts.reverse()
    return ".".join(parts)


def resolve_import(module: str, is_package: bool, target: str | None, level: int) -> str:
    """The absolute module a ``from`` import names; relative ones resolve against the file's package.

    >>> resolve_import("shop.cart", False, "models", 1)
    'shop.models'
    >>> resolve_import("shop", True, None, 1)
    'shop'
    >>> resolve_import("top", False, "x", 2)
    '..x'
    """
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    keep = len(base) - (level - 1)
    if keep <= 0 or not module:
        return "." * level + (target or "")
    parts = base[:keep]
    if target:
        parts.append(target)
    return ".".join(parts)


class _Scope:
    """A symbol being walked: where its qualname children hang, and its decision count."""

    __slots__ = ("complexity", "is_class", "prefix", "qualname", "slot")

    def __init__(self, qualname: str, prefix: str, is_class: bool, slot: int) -> None:
        self.qualname = qualname
        self.prefix = prefix
        self.is_class = is_class
        self.slot = slot  # index in the symbols columns, -1 for the module
        self.complexity = 1


def _collect(tree: ast.Module, source: SourceFile, out: ChunkColumns) -> None:
    module, package = source.module, source.package
    symbols, imports, calls = out.symbols, out.imports, out.calls
    sym_first = len(symbols["qualname"])
    call_enclosing, call_callee, call_lineno = calls["enclosing_symbol"], calls["callee"], calls["lineno"]
    call_count = 0
    plans, leaves = _PLANS, _LEAF_TYPES
    name_type, attribute_type = ast.Name, ast.Attribute
    scopes: list[_Scope] = []
    scope = _Scope(MODULE_SCOPE, "", False, -1)
    stack: list[object] = list(reversed(tree.body))
    pop, push, push_all = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        code, arity, children = plans[type(node)]
        if code is _LEAF:
            continue
        if code >= _GENERIC:
            if code is not _GENERIC:
                if code is _DECISION:
                    scope.complexity += 1
                elif code is _COMPREHENSION:
                    scope.complexity += 1 + len(node.ifs)  # type: ignore[attr-defined]
                else:  # _BOOL_OP
                    scope.complexity += len(node.values) - 1  # type: ignore[attr-defined]
            if arity == 1:
                value = children(node)  # type: ignore[misc]
                if type(value) is list:
                    push_all(reversed(value))
                elif type(value) not in leaves:
                    push(value)
            else:
                for value in children(node):  # type: ignore[misc]
                    if type(value) is list:
                        push_all(reversed(value))
                    elif type(value) not in leaves:
                        push(value)
        elif code is _CALL:
            func = node.func  # type: ignore[attr-defined]
            kind = type(func)
            if kind is name_type:  # the two commonest shapes inline: f() and a.f()
                callee = func.id
            elif kind is attribute_type and type(func.value) is name_type:
                callee = func.value.id + "." + func.attr
            else:
                callee = dotted_name(func)
            call_enclosing.append(scope.qualname)
            call_callee.append(callee or COMPLEX_CALLEE)
            call_lineno.append(node.lineno)  # type: ignore[attr-defined]
            call_count += 1
            keywords = node.keywords  # type: ignore[attr-defined]
            if keywords:
                push_all([kw.value for kw in reversed(keywords)])
            push_all(reversed(node.args))  # type: ignore[attr-defined]
            if callee is None:
                push(func)
        elif code is _EXIT_CODE:
            symbols["complexity"][scope.slot] = scope.complexity
            scope = scopes.pop()
        elif code is _IMPORT:
            for alias in node.names:  # type: ignore[attr-defined]
                _append(imports, (module, package, alias.name, None, node.lineno, 0))  # type: ignore[attr-defined]
        elif code is _IMPORT_FROM:
            level = node.level or 0  # type: ignore[attr-defined]
            target = resolve_import(module, source.is_package, node.module, level)  # type: ignore[attr-defined]
            for alias in node.names:  # type: ignore[attr-defined]
                _append(imports, (module, package, target, alias.name, node.lineno, level))  # type: ignore[attr-defined]
        else:  # a def or a class
            scopes.append(scope)
            scope = _enter(node, code, scope, symbols=symbols, push=push)  # type: ignore[arg-type]
    calls["module"].extend([module] * call_count)
    calls["package"].extend([package] * call_count)
    sym_count = len(symbols["qualname"]) - sym_first
    symbols["module"].extend([module] * sym_count)
    symbols["package"].extend([package] * sym_count)


def _enter(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
    code: int,
    scope: _Scope,
    *,
    symbols: dict[str, list[object]],
    push: Callable[[object], None],
) -> _Scope:
    """Record a definition, queue its parts, and return the scope its body is walked in."""
    qualname = scope.prefix + node.name
    args = None
    if code is _CLASS:
        kind, arg_count = "class", None
    else:
        args = node.args  # type: ignore[union-attr]
        arg_count = (
            len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            + (args.vararg is not None) + (args.kwarg is not None)
        )  # fmt: skip
        kind = "function" if code is _FUNC else "async_function"
        if scope.is_class:
            kind = "method" if code is _FUNC else "async_method"
    decorators = []
    for deco in node.decorator_list:
        target = deco.func if type(deco) is ast.Call else deco
        decorators.append(dotted_name(target) or COMPLEX_CALLEE)
    slot = len(symbols["qualname"])
    symbols["qualname"].append(qualname)
    symbols["name"].append(node.name)
    symbols["kind"].append(kind)
    symbols["lineno"].append(node.lineno)
    symbols["end_lineno"].append(node.end_lineno)
    symbols["decorators"].append(decorators)
    symbols["arg_count"].append(arg_count)
    symbols["complexity"].append(1)
    # Evaluated in the enclosing scope (popped after the body's _EXIT): decorators, defaults, bases.
    outer: list[ast.AST] = list(node.decorator_list)
    if code is _CLASS:
        outer.extend(node.bases)  # type: ignore[union-attr]
        outer.extend(node.keywords)  # type: ignore[union-attr]
    elif args is not None:  # a function: the parts of its signature that are expressions, not every parameter
        outer.extend(args.defaults)
        outer.extend(default for default in args.kw_defaults if default is not None)
        for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
            if arg is not None and arg.annotation is not None:
                outer.append(arg.annotation)
        if node.returns is not None:  # type: ignore[union-attr]
            outer.append(node.returns)  # type: ignore[union-attr]
    for part in reversed(outer):
        push(part)
    push(_EXIT)
    for stmt in reversed(node.body):
        push(stmt)
    is_class = code is _CLASS
    return _Scope(qualname, qualname + ("." if is_class else ".<locals>."), is_class, slot)


def _append(columns: dict[str, list[object]], row: tuple[object, ...]) -> None:
    """Append one row to columns whose names are in the row's order."""
    for column, value in zip(columns.values(), row, strict=True):
        column.append(value)
