"""Where a build's OpenLineage events go: the standard ``OPENLINEAGE_*`` environment, else the spec's
``[lineage]`` table, else nowhere.

Resolved at run time in every process that emits (the build's, and each step process of the multiprocess
executor), from that process's environment and the spec:

1. ``OPENLINEAGE_DISABLED=true``: nothing is emitted.
2. A transport the client configures itself: ``OPENLINEAGE_URL`` (with ``OPENLINEAGE_ENDPOINT`` and
   ``OPENLINEAGE_API_KEY``), ``OPENLINEAGE__TRANSPORT__*``, ``OPENLINEAGE_CONFIG``, or an ``openlineage.yml``
   where the client looks for one (the working directory, ``~/.openlineage``).
3. The spec's ``[lineage]`` table with a transport (HTTP with ``OPENLINEAGE_API_KEY`` as its API key, when
   set; a file with the events appended as JSON lines).
4. Nothing is emitted.

The jobs' namespace: ``OPENLINEAGE_NAMESPACE``, else ``[lineage] namespace``, else ``codeanatomy``.

>>> LineageConfig.resolve(None, {}) is None
True
>>> LineageConfig.resolve(LineageSpec(transport="file", path="/tmp/ol.jsonl"), {}).target
'file /tmp/ol.jsonl'
>>> LineageConfig.resolve(None, {"OPENLINEAGE_URL": "http://u:pw@host:5000"}).target
'http ***REDACTED***@host:5000 (OPENLINEAGE_URL)'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codeanatomy_assets.diagnostics.redact import redact_url
from codeanatomy_assets.spec_lineage import LineageSpec

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient

DEFAULT_NAMESPACE: Final = "codeanatomy"
API_KEY_VARIABLE: Final = "OPENLINEAGE_API_KEY"
_DYNAMIC_PREFIX: Final = "OPENLINEAGE__"


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageConfig:
    """A resolved lineage configuration: where the events go and the jobs' namespace."""

    source: str
    """``environment`` (the client reads the ``OPENLINEAGE_*`` settings itself) or ``spec``."""
    namespace: str
    target: str
    """Where the events go, safe to record (no credentials)."""
    client_config: Mapping[str, Any] | None = field(default=None, repr=False)
    """The client's ``config`` (``spec``; may hold the API key); ``None``: the client reads the
    environment."""
    key: str = field(default="", repr=False)
    """A digest of everything the client is built from (the process keeps one client per key)."""

    @classmethod
    def resolve(cls, spec: LineageSpec | None, environ: Mapping[str, str]) -> LineageConfig | None:
        """The configuration of ``environ`` and the spec's ``[lineage]`` table; ``None``: emit nothing."""
        if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
            return None
        namespace = (
            environ.get("OPENLINEAGE_NAMESPACE") or (spec.namespace if spec else None) or DEFAULT_NAMESPACE
        )
        target = _environment_target(environ)
        if target is not None:
            return cls(source="environment", namespace=namespace, target=target, key=_digest(environ, None))
        if spec is None or spec.transport is None:
            return None
        client_config = {"transport": _spec_transport(spec, environ.get(API_KEY_VARIABLE))}
        return cls(
            source="spec",
            namespace=namespace,
            target=_spec_target(spec),
            client_config=client_config,
            key=_digest(environ, client_config),
        )


def new_client(config: LineageConfig) -> OpenLineageClient:
    """A client of ``config``. The client copies ``OPENLINEAGE_URL`` (and the API key) into variables of
    its own when it is built; they are removed again, so that nothing of one build leaks into the next
    or into the environment of step processes."""
    from openlineage.client import OpenLineageClient  # imported by builds that emit lineage only

    transport = (config.client_config or {}).get("transport", {})
    if transport.get("type") == "file":
        Path(transport["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)
    with _environment_kept():
        if config.client_config is None:
            return OpenLineageClient()
        return OpenLineageClient(config=dict(config.client_config))


@contextmanager
def _environment_kept() -> Iterator[None]:
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in [n for n in os.environ if n.startswith("OPENLINEAGE") and before.get(n) != os.environ[n]]:
            if name in before:
                os.environ[name] = before[name]
            else:
                del os.environ[name]


def _environment_target(environ: Mapping[str, str]) -> str | None:
    """Where the environment sends the events (``None``: it configures no transport)."""
    transport_type = environ.get(f"{_DYNAMIC_PREFIX}TRANSPORT__TYPE")
    if transport_type:
        return f"{transport_type} ({_DYNAMIC_PREFIX}TRANSPORT__*)"
    config_file = _config_file(environ)
    if config_file is not None:
        return f"config file {config_file}"
    url = environ.get("OPENLINEAGE_URL")
    if url:
        return f"http {redact_url(url).split('://', 1)[-1]} (OPENLINEAGE_URL)"
    return None


def _config_file(environ: Mapping[str, str]) -> str | None:
    """The ``openlineage.yml`` the client reads, where it looks for one (as the client does)."""
    candidates = (
        environ.get("OPENLINEAGE_CONFIG"),
        os.path.join(os.getcwd(), "openlineage.yml"),
        os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml"),
    )
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.R_OK)), None)


def _spec_transport(spec: LineageSpec, api_key: str | None) -> dict[str, Any]:
    """The client's transport configuration of the spec's ``[lineage]`` table."""
    if spec.transport == "file":
        return {"type": "file", "log_file_path": spec.path, "append": True}
    transport: dict[str, Any] = {"type": "http", "url": spec.url}
    if spec.endpoint is not None:
        transport["endpoint"] = spec.endpoint
    if spec.timeout_s is not None:
        transport["timeout"] = spec.timeout_s
    if api_key:
        transport["auth"] = {"type": "api_key", "apiKey": api_key}
    return transport


def _spec_target(spec: LineageSpec) -> str:
    if spec.transport == "file":
        return f"file {spec.path}"
    return f"http {spec.url}" + (f" ({spec.endpoint})" if spec.endpoint else "")


def _digest(environ: Mapping[str, str], client_config: Mapping[str, Any] | None) -> str:
    """A digest of the ``OPENLINEAGE*`` variables and the client configuration (never the values
    themselves: the key stays in memory only, but nothing secret is kept twice)."""
    pairs = sorted((k, v) for k, v in environ.items() if k.startswith("OPENLINEAGE"))
    return hashlib.sha256(repr((pairs, client_config)).encode()).hexdigest()
