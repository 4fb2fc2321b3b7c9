"""Redaction of secrets before anything is recorded (events, run metadata, telemetry snapshots).

A redacted value is replaced by :data:`REDACTED`, so a reader can tell that a value existed and was
hidden (as opposed to missing). Redaction errs on the side of hiding: a key that merely *looks* secret
is redacted.

>>> redact_mapping({"AWS_SECRET_ACCESS_KEY": "abc", "region": "eu-west-1"})
{'AWS_SECRET_ACCESS_KEY': '***REDACTED***', 'region': 'eu-west-1'}
>>> redact_url("https://user:pw@example.com/p?sig=abc&x=1")
'https://***REDACTED***@example.com/p?sig=***REDACTED***&x=1'
>>> redact_headers("Authorization=Bearer%20abc,x-tenant=acme")
'Authorization=***REDACTED***,x-tenant=***REDACTED***'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED: Final = "***REDACTED***"
"""The marker that replaces a secret value."""

_SECRET_WORDS: Final = (
    "key",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "authorization",
    "session",
    "signature",
    "cookie",
    "connection_string",
)
"""Substrings that make a key secret (matched on the lower-cased key)."""

_SECRET_SEGMENTS: Final = frozenset({"sas", "sig", "auth", "pwd"})
"""Whole key segments (split on non-alphanumerics) that make a key secret; too short for substrings."""

_NOT_SECRET_KEYS: Final = frozenset(
    {
        "asset_key",
        "step_key",
        "partition_key",
        "partition_keys",
        "primary_key",
        "sort_key",
        "cluster_key",
        "clustering_key",
        "zorder_key",
    }
)
"""Identifiers of this domain that contain ``key`` but hold no secret (compared on the last key segment)."""

_SEGMENT_SPLIT: Final = re.compile(r"[^a-z0-9]+")
_URL_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_secret_key(key: str) -> bool:
    """Whether a configuration key, header name or query parameter looks like it names a secret.

    >>> [is_secret_key(k) for k in ("AWS_ACCESS_KEY_ID", "sas", "dagster.asset_key", "region")]
    [True, True, False, False]
    """
    lowered = key.lower().replace("-", "_")
    last = lowered.rsplit(".", 1)[-1]
    if last in _NOT_SECRET_KEYS:
        return False
    if any(word in lowered for word in _SECRET_WORDS):
        return True
    return any(segment in _SECRET_SEGMENTS for segment in _SEGMENT_SPLIT.split(lowered))


def redact_value(value: object) -> object:
    """Redact inside a value: mappings recursively, sequences per item, URLs by :func:`redact_url`."""
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    if isinstance(value, str) and _URL_RE.match(value):
        return redact_url(value)
    return value


def redact_mapping(mapping: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``mapping`` with the values of secret-looking keys replaced by :data:`REDACTED`.

    Nested mappings and lists are redacted recursively and URL values lose their credentials.
    ``None`` stays ``None``: there is nothing to hide.
    """
    return {
        key: (REDACTED if value is not None and is_secret_key(str(key)) else redact_value(value))
        for key, value in mapping.items()
    }


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of secret-looking query parameters redacted.

    The rest of the URL is kept byte for byte (no re-encoding).
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(_redact_query_item(item) for item in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_query_item(item: str) -> str:
    name, sep, value = item.partition("=")
    if sep and value and is_secret_key(unquote_plus(name)):
        return f"{name}={REDACTED}"
    return item


def redact_headers(header_string: str) -> str:
    """Redact every value of an ``OTEL_EXPORTER_OTLP_HEADERS`` string (``name=value,name2=value2``).

    Header names are kept (they say *which* credential is configured); values are all redacted, since
    OTLP headers exist almost only to carry credentials. A malformed entry is redacted whole.
    """
    entries = []
    for entry in header_string.split(","):
        if not entry.strip():
            continue
        name, sep, _ = entry.partition("=")
        entries.append(f"{name.strip()}={REDACTED}" if sep else REDACTED)
    return ",".join(entries)
