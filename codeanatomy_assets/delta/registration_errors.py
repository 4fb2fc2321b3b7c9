"""How registration words an error: storage secrets redacted, the class qualified, known causes explained.

Every error text that registration records (a probe failure, a fallback reason, a raised
:class:`~codeanatomy_assets.errors.DatasetError`) goes through :func:`redact`, so no storage option value or
URI user info reaches an event or the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.storage import local_table_path
from codeanatomy_assets.errors import exception_text

ERROR_TEXT_LIMIT: Final = 600
"""Characters of an exception's message kept in a recorded error text."""

_PERCENT_ESCAPE_RE: Final = re.compile(r"%[0-9A-Fa-f]{2}")

_SCAN_STRATEGY_DOC: Final = "docs/architecture/scan_strategy.md"


def redact(text: str, storage_options: Mapping[str, str] | None) -> str:
    """``text`` with every storage option value (and URI user info) replaced by ``***``.

    >>> redact("key=sekrit at s3://u:pw@b/t", {"AWS_SECRET_ACCESS_KEY": "sekrit"})
    'key=*** at s3://***@b/t'
    """
    for value in sorted(
        (v for v in (storage_options or {}).values() if v and len(v) >= 3), key=len, reverse=True
    ):
        text = text.replace(value, "***")
    return " ".join(_redact_userinfo(token) for token in text.split(" "))


def _redact_userinfo(token: str) -> str:
    if "://" in token and "@" in token.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = token.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return token


def redacted_error(exc: BaseException, storage_options: Mapping[str, str] | None) -> str:
    """``Type: message`` of ``exc`` (:func:`~codeanatomy_assets.errors.exception_text`), redacted."""
    return redact(exception_text(exc, ERROR_TEXT_LIMIT), storage_options)


def qualified_type(exc: BaseException) -> str:
    """``error.type``: the fully qualified class name, builtins unqualified (diagnostics policy).

    >>> qualified_type(KeyError()), qualified_type(re.error("x"))
    ('KeyError', 're.error')
    """
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def known_cause(mode: ProviderMode, error: str | None) -> str:
    """A measured explanation for a known probe failure, appended to the fallback reason."""
    text = error or ""
    if mode is ProviderMode.DELTA_TABLE_PROVIDER and "No suitable object store found" in text:
        return (
            " (known: deltalake 1.6.6's FFI provider does not use the session's object stores, also after "
            f"register_object_store; see {_SCAN_STRATEGY_DOC}, 'Object stores and the provider')"
        )
    if mode is ProviderMode.DELTA_TABLE_PROVIDER and "CooperativeExec" in text:
        return (
            " (known: the provider cannot scan deletion vectors without a filter; "
            f"see {_SCAN_STRATEGY_DOC}, 'Deletion vectors through the provider')"
        )
    return ""


def percent_escape_cause(uri: str) -> str:
    """Why deltalake cannot open a local folder whose name holds a percent-escape (``a%20b``), if it does.

    deltalake decodes such a sequence in a path (and in a ``file://`` URI once more), so it looks for
    another folder (``a b``). Measured with deltalake 1.6.6: ``%`` alone, spaces, ``?``, ``#`` and glob
    characters are fine.
    """
    local = local_table_path(uri)
    if local is None or not _PERCENT_ESCAPE_RE.search(local):
        return ""
    return (
        " (known: deltalake decodes percent-escapes such as '%20' in a local path and looks for another "
        "folder: rename the folder or a parent so that no '%' is followed by two hex digits)"
    )


__all__ = [
    "ERROR_TEXT_LIMIT",
    "known_cause",
    "percent_escape_cause",
    "qualified_type",
    "redact",
    "redacted_error",
]
