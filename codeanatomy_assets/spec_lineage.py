"""The spec's optional ``[lineage]`` table: where a build sends its OpenLineage events.

Example::

    [lineage]
    transport = "http"                  # POST each event to an OpenLineage endpoint (Marquez, DataHub, ...)
    url = "http://127.0.0.1:5000"
    endpoint = "api/v1/lineage"         # optional (the client's default)
    timeout_s = 5                       # optional (the client's default: 5)
    namespace = "analytics"             # optional: the jobs' namespace (default "codeanatomy")

    [lineage]
    transport = "file"                  # or append each event as one JSON line to a file
    path = "lineage/events.jsonl"       # relative to the spec file

No credentials here: an HTTP endpoint's API key comes from ``OPENLINEAGE_API_KEY``. The standard
``OPENLINEAGE_*`` variables, when they configure a transport, take precedence over this table
(:mod:`codeanatomy_assets.lineage.config`); without either nothing is emitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from codeanatomy_assets.errors import ConfigError

TRANSPORTS: Final = ("http", "file")
KEYS: Final = frozenset({"transport", "url", "endpoint", "timeout_s", "path", "namespace"})
_HTTP_ONLY: Final = ("url", "endpoint", "timeout_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageSpec:
    """Where the events go (``transport`` ``None``: only the namespace is set here) and the namespace."""

    transport: str | None = None
    url: str | None = None
    endpoint: str | None = None
    timeout_s: float | None = None
    path: str | None = None
    """The file transport's file, absolute (resolved against the spec file's folder)."""
    namespace: str | None = None


def parse_lineage(doc: Mapping[str, Any], source: str, base_dir: Path | None) -> LineageSpec | None:
    """The ``[lineage]`` table of a spec document (``None`` when absent)."""
    if "lineage" not in doc:
        return None
    body = doc["lineage"]
    if not isinstance(body, Mapping):
        raise ConfigError("must be a table", source=source, key="lineage")
    unknown = sorted(set(body) - KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key (allowed: {', '.join(sorted(KEYS))})", source=source, key=_key(unknown[0])
        )
    texts = {k: _text(body, k, source) for k in ("transport", "url", "endpoint", "path", "namespace")}
    transport = texts["transport"]
    _check_transport(transport, texts, body, source)
    path = texts["path"]
    return LineageSpec(
        transport=transport,
        url=texts["url"],
        endpoint=texts["endpoint"],
        timeout_s=_timeout(body, source),
        path=_resolve_path(path, base_dir) if path is not None else None,
        namespace=texts["namespace"],
    )


def _key(name: str) -> str:
    return f"lineage.{name}"


def _text(body: Mapping[str, Any], key: str, source: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError("must be a non-empty string", source=source, key=_key(key))
    return value


def _check_transport(
    transport: str | None, texts: Mapping[str, str | None], body: Mapping[str, Any], source: str
) -> None:
    """The keys a transport needs are there, and no key of the other transport."""
    if transport is not None and transport not in TRANSPORTS:
        raise ConfigError(f"must be one of {', '.join(TRANSPORTS)}", source=source, key=_key("transport"))
    needed = {"http": "url", "file": "path"}.get(transport or "")
    if needed is not None and texts[needed] is None:
        raise ConfigError(f"missing required key {needed!r}", source=source, key=_key("transport"))
    applies = {"http": _HTTP_ONLY, "file": ("path",)}.get(transport or "", ())
    for key in (*_HTTP_ONLY, "path"):
        if body.get(key) is not None and key not in applies:
            why = f"transport = {transport!r}" if transport else "no transport"
            raise ConfigError(f"does not apply with {why}", source=source, key=_key(key))
    url = texts["url"]
    if url is not None:
        _check_url(url, source)


def _check_url(url: str, source: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError("must be an http:// or https:// URL", source=source, key=_key("url"))
    if "@" in parts.netloc or parts.query:
        raise ConfigError(
            "must hold no credentials (set OPENLINEAGE_API_KEY for an API key)",
            source=source,
            key=_key("url"),
        )


def _timeout(body: Mapping[str, Any], source: str) -> float | None:
    value = body.get("timeout_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError("must be a positive number of seconds", source=source, key=_key("timeout_s"))
    return float(value)


def _resolve_path(path: str, base_dir: Path | None) -> str:
    resolved = Path(path).expanduser()
    if base_dir is not None and not resolved.is_absolute():
        resolved = base_dir / resolved
    return str(resolved)
