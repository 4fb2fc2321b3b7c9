"""The syntax walk: the symbols, imports and calls of one parsed file, appended to a chunk's columns.

Standard library only, like :mod:`~codeanatomy_assets.extract.analysis` (the worker processes run it);
what each dataset records is described there.

One iterative pre-order walk over the whole tree (no recursion: deep trees cannot overflow it). It
touches most nodes of the file, so it is written for speed: one table lookup per node gives what to do
with it and an attrgetter for the fields that can hold child nodes (identifiers, contexts and operators
are never visited), and scopes change by a marker on the stack instead of a (node, scope) pair per node.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from codeanatomy_assets.extract.analysis import ChunkColumns, SourceFile

COMPLEX_CALLEE: Final = "<complex>"
MODULE_SCOPE: Final = "<module>"


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


def collect(tree: ast.Module, source: SourceFile, out: ChunkColumns) -> None:
    """Append the symbols, imports and calls of one parsed file to ``out``."""
    symbols, calls = out.symbols, out.calls
    sym_first, call_first = len(symbols["qualname"]), len(calls["lineno"])
    _walk(tree, source, out)
    for columns, first in ((symbols, sym_first), (calls, call_first)):
        count = len(columns["lineno"]) - first
        columns["module"].extend([source.module] * count)
        columns["package"].extend([source.package] * count)


def _walk(tree: ast.Module, source: SourceFile, out: ChunkColumns) -> None:
    """The one pre-order walk (see above): symbol and import rows whole, call rows without their module."""
    symbols, calls = out.symbols, out.calls
    call_enclosing, call_callee, call_lineno = calls["enclosing_symbol"], calls["callee"], calls["lineno"]
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
                scope.complexity += _decisions(node, code)
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
            keywords = node.keywords  # type: ignore[attr-defined]
            if keywords:
                push_all([kw.value for kw in reversed(keywords)])
            push_all(reversed(node.args))  # type: ignore[attr-defined]
            if callee is None:
                push(func)
        elif code is _EXIT_CODE:
            symbols["complexity"][scope.slot] = scope.complexity
            scope = scopes.pop()
        elif code is _IMPORT or code is _IMPORT_FROM:
            _add_imports(node, source, out.imports)  # type: ignore[arg-type]
        else:  # a def or a class
            scopes.append(scope)
            scope = _enter(node, code, scope, symbols=symbols, push=push)  # type: ignore[arg-type]


def _decisions(node: Any, code: int) -> int:
    """The decision points a decision, comprehension or boolean operator node adds to its symbol."""
    if code is _DECISION:
        return 1
    if code is _COMPREHENSION:
        return 1 + len(node.ifs)
    return len(node.values) - 1  # _BOOL_OP


def _add_imports(
    node: ast.Import | ast.ImportFrom, source: SourceFile, imports: dict[str, list[object]]
) -> None:
    """One ``imports`` row per name the statement imports."""
    module, package = source.module, source.package
    if type(node) is ast.Import:
        for alias in node.names:
            _append(imports, (module, package, alias.name, None, node.lineno, 0))
        return
    level = node.level or 0  # type: ignore[union-attr]
    target = resolve_import(module, source.is_package, node.module, level)  # type: ignore[union-attr]
    for alias in node.names:
        _append(imports, (module, package, target, alias.name, node.lineno, level))


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
    kind, arg_count = _symbol_kind(node, code, scope)
    slot = len(symbols["qualname"])
    symbols["qualname"].append(qualname)
    symbols["name"].append(node.name)
    symbols["kind"].append(kind)
    symbols["lineno"].append(node.lineno)
    symbols["end_lineno"].append(node.end_lineno)
    symbols["decorators"].append(
        [dotted_name(_decorated(deco)) or COMPLEX_CALLEE for deco in node.decorator_list]
    )
    symbols["arg_count"].append(arg_count)
    symbols["complexity"].append(1)
    # Evaluated in the enclosing scope (popped after the body's _EXIT): decorators, defaults, bases.
    for part in reversed(_outer_parts(node)):
        push(part)
    push(_EXIT)
    for stmt in reversed(node.body):
        push(stmt)
    is_class = code is _CLASS
    return _Scope(qualname, qualname + ("." if is_class else ".<locals>."), is_class, slot)


def _symbol_kind(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, code: int, scope: _Scope
) -> tuple[str, int | None]:
    """The ``kind`` and ``arg_count`` of a definition (``arg_count`` is null for a class)."""
    if type(node) is ast.ClassDef:
        return "class", None
    args = node.args  # type: ignore[union-attr]
    arg_count = (
        len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
        + (args.vararg is not None) + (args.kwarg is not None)
    )  # fmt: skip
    if scope.is_class:
        return ("method" if code is _FUNC else "async_method"), arg_count
    return ("function" if code is _FUNC else "async_function"), arg_count


def _decorated(decorator: ast.expr) -> ast.expr:
    """What a decorator names: the called expression of ``@f(...)``, else the decorator itself."""
    return decorator.func if type(decorator) is ast.Call else decorator


def _outer_parts(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[ast.AST]:
    """The parts of a definition evaluated in the enclosing scope: decorators, then bases and keywords of
    a class, or the defaults and annotations of a function (its signature's expressions, not every
    parameter)."""
    outer: list[ast.AST] = list(node.decorator_list)
    if type(node) is ast.ClassDef:
        outer.extend(node.bases)
        outer.extend(node.keywords)
        return outer
    args = node.args  # type: ignore[union-attr]
    outer.extend(args.defaults)
    outer.extend(default for default in args.kw_defaults if default is not None)
    for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
        if arg is not None and arg.annotation is not None:
            outer.append(arg.annotation)
    if node.returns is not None:  # type: ignore[union-attr]
        outer.append(node.returns)  # type: ignore[union-attr]
    return outer


def _append(columns: dict[str, list[object]], row: tuple[object, ...]) -> None:
    """Append one row to columns whose names are in the row's order."""
    for column, value in zip(columns.values(), row, strict=True):
        column.append(value)
