"""The tables an SQL text reads: identifier tokens found and folded as DataFusion's parser reads them.

The spec derives a plan's inputs from them (:func:`sql_references`) and explains a plan that names none
(:func:`quoted_near_misses`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

# SQL tokens as DataFusion's parser reads them: string literals, comments and numbers (skipped), delimited
# identifiers ("x" and `x`: case kept), words (unquoted identifiers and keywords: folded to lower case), and
# the punctuation that delimits scopes and qualified names.
_TOKEN_RE: Final = re.compile(
    r"(?P<skip>'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|[0-9][A-Za-z0-9_.]*)"
    r'|"(?P<quoted>(?:[^"]|"")+)"'
    r"|`(?P<backquoted>(?:[^`]|``)+)`"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)"
    r"|(?P<punct>[().,;])",
    re.DOTALL,
)


class TokenKind(StrEnum):
    """What an SQL token is (literals and comments are not tokens here: they are skipped)."""

    IDENT = "ident"
    PUNCT = "punct"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    value: str  # identifiers folded as DataFusion folds them
    quoted: bool = False

    def is_word(self, word: str) -> bool:
        return self.kind is TokenKind.IDENT and not self.quoted and self.value == word

    def is_punct(self, mark: str) -> bool:
        return self.kind is TokenKind.PUNCT and self.value == mark


def sql_references(sql: str, known: set[str]) -> tuple[str, ...]:
    """Names from ``known`` that ``sql`` reads as tables, as DataFusion resolves identifiers.

    Unquoted identifiers fold to lower case, quoted ones (``"x"``, ```x```) keep their case; string
    literals and comments are skipped; a schema-qualified name (``datafusion.public.x``) counts by its last
    part. A name is not counted where it cannot be a table: after ``AS`` (an alias), before ``(`` (a
    function), or where a CTE of that name shadows it (a CTE's own body still reads the table, unless it is
    ``RECURSIVE``; a qualified name is never a CTE). Other appearances (a column named like a dataset) are
    counted: a plan may get an input it does not need, never miss one.

    >>> known = {"calls", "symbols", "imports"}
    >>> sql_references("select * from CALLS c join symbols s on s.x = 'imports'", known)
    ('calls', 'symbols')
    >>> sql_references('with calls as (select * from "Symbols") select * from calls', known)
    ()
    """
    tokens = _sql_tokens(sql)
    shadowed = _cte_scopes(tokens)
    found = {
        token.value
        for index, token in enumerate(tokens)
        if token.kind is TokenKind.IDENT and token.value in known and _reads_table(tokens, index, shadowed)
    }
    return tuple(sorted(found))


def _reads_table(tokens: list[_Token], index: int, shadowed: _CteScopes) -> bool:
    """Whether the identifier at ``index`` can name a table there (see :func:`sql_references`)."""
    if index in shadowed.definitions:
        return False
    token = tokens[index]
    before = tokens[index - 1] if index else None
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    if before is not None and before.is_word("as"):
        return False  # an alias (of a table, a column or a CTE), or a type in CAST(... AS x)
    if after is not None and after.is_punct("(") and not token.quoted:
        return False  # a function call
    qualified = before is not None and before.is_punct(".")
    return qualified or not shadowed.covers(token.value, index)


def quoted_near_misses(sql: str, known: set[str]) -> tuple[str, ...]:
    """Quoted identifiers of ``sql`` that name a known name only when folded (``"COVID"`` for ``covid``).

    >>> quoted_near_misses('select * from "Calls"', {"calls"})
    ('"Calls"',)
    """
    misses = {
        f'"{t.value}"'
        for t in _sql_tokens(sql)
        if t.kind is TokenKind.IDENT and t.quoted and t.value not in known and t.value.lower() in known
    }
    return tuple(sorted(misses))


def _sql_tokens(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN_RE.finditer(sql):
        if match.group("word"):
            tokens.append(_Token(TokenKind.IDENT, match.group("word").lower()))
        elif match.group("quoted"):
            tokens.append(_Token(TokenKind.IDENT, match.group("quoted").replace('""', '"'), quoted=True))
        elif match.group("backquoted"):
            tokens.append(_Token(TokenKind.IDENT, match.group("backquoted").replace("``", "`"), quoted=True))
        elif match.group("punct"):
            tokens.append(_Token(TokenKind.PUNCT, match.group("punct")))
    return tokens


# --- CTE scopes --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _CteScopes:
    """Where CTE names shadow tables: ``(name, first, end)`` token ranges, and the defining tokens."""

    scopes: list[tuple[str, int, int]] = field(default_factory=list)
    definitions: set[int] = field(default_factory=set)

    def covers(self, name: str, index: int) -> bool:
        return any(n == name and first <= index < end for n, first, end in self.scopes)


@dataclass(frozen=True, slots=True)
class _Cte:
    """One ``name AS (body)`` of a ``WITH``, by token positions."""

    name: str
    defined_at: int
    body_start: int
    body_end: int


def _cte_scopes(tokens: list[_Token]) -> _CteScopes:
    """The scopes of the CTEs of every ``WITH`` (nested ones included); unparsable ones are ignored."""
    partner = _matching_parens(tokens)
    result = _CteScopes()
    for index, token in enumerate(tokens):
        if token.is_word("with"):
            _parse_with(tokens, index, partner, result)
    return result


def _matching_parens(tokens: list[_Token]) -> dict[int, int]:
    """The index of the ``)`` closing each ``(``, by the index of the ``(`` (unbalanced ones left out)."""
    partner: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(tokens):
        if token.is_punct("("):
            stack.append(index)
        elif token.is_punct(")") and stack:
            partner[stack.pop()] = index
    return partner


def _parse_with(tokens: list[_Token], start: int, partner: dict[int, int], result: _CteScopes) -> None:
    """Add the CTEs of the ``WITH`` at ``start`` to ``result`` (none when one of them does not parse)."""
    recursive = start + 1 < len(tokens) and tokens[start + 1].is_word("recursive")
    ctes = _cte_list(tokens, start + 1 + int(recursive), partner)
    if ctes is None:
        return
    end = _statement_end(tokens, start)
    for cte in ctes:
        result.definitions.add(cte.defined_at)
        result.scopes.append((cte.name, cte.body_start if recursive else cte.body_end + 1, end))


def _cte_list(tokens: list[_Token], at: int, partner: dict[int, int]) -> list[_Cte] | None:
    """The comma-separated CTEs starting at ``at``; ``None`` when one of them does not parse."""
    ctes: list[_Cte] = []
    while at < len(tokens) and tokens[at].kind is TokenKind.IDENT:
        cte = _cte_at(tokens, at, partner)
        if cte is None:
            return None
        ctes.append(cte)
        at = cte.body_end + 1
        if not (at < len(tokens) and tokens[at].is_punct(",")):
            break
        at += 1
    return ctes


def _cte_at(tokens: list[_Token], name_at: int, partner: dict[int, int]) -> _Cte | None:
    """The CTE ``name [(columns)] AS [NOT] [MATERIALIZED] (body)`` at ``name_at``, else ``None``."""
    at = name_at + 1
    if at < len(tokens) and tokens[at].value == "(" and at in partner:  # a column list
        at = partner[at] + 1
    if not (at < len(tokens) and tokens[at].is_word("as")):
        return None
    at += 1
    while at < len(tokens) and (tokens[at].is_word("not") or tokens[at].is_word("materialized")):
        at += 1
    if not (at < len(tokens) and tokens[at].value == "(" and at in partner):
        return None
    return _Cte(tokens[name_at].value, name_at, at, partner[at])


def _statement_end(tokens: list[_Token], start: int) -> int:
    """Where the (sub)query holding the token at ``start`` ends: its closing ``)``, its ``;``, or the end."""
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind is not TokenKind.PUNCT:
            continue
        if token.value == "(":
            depth += 1
        elif token.value == ")":
            depth -= 1
            if depth < 0:
                return index
        elif token.value == ";" and depth == 0:
            return index
    return len(tokens)
