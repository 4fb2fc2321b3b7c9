"""The key of a build: everything besides data that decides its results and its records.

Two builds with the same key, over tables at the same versions and the same source files, produce the
same outputs and diagnostics (:mod:`codeanatomy_assets.build_stamp` compares them). The key is a sha256
over:

- the spec as loaded: its SQL, datasets, ``[engine]``, ``[lineage]`` and ``[maintenance]`` tables;
- the build's switches: ``--no-capture``, ``--memory-limit``, the lake, the executor;
- the telemetry configuration and the ``OTEL_*`` / ``OPENLINEAGE_*`` environment;
- Python's and the engines' versions, and the sha256 of every module of this package.

Credentials change no result, so they are left out before hashing: storage options and settings whose
names look secret, the credentials of URLs and the values of OTLP headers are replaced by a marker
(:mod:`codeanatomy_assets.diagnostics.redact`). A stamp's key therefore says nothing about a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Final

from codeanatomy_assets.build_request import BuildRequest, Executor
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.redact import redact_headers, redact_mapping, redact_url
from codeanatomy_assets.spec import PipelineSpec

KEY_FORMAT: Final = 1
"""Part of every key: a change of what it covers changes every key (the next build runs)."""
DISTRIBUTIONS: Final = ("codeanatomy-assets", "datafusion", "deltalake", "dagster", "pyarrow")
_ENV_PREFIXES: Final = ("OTEL_", "OPENLINEAGE_")
_PACKAGE: Final = Path(__file__).resolve().parent


def build_key(request: BuildRequest, executor: Executor, telemetry: TelemetryConfig) -> str:
    """The sha256 (hex) of what decides ``request``'s results and records besides data."""
    parts = {
        "format": KEY_FORMAT,
        "spec": repr(_without_credentials(request.spec)),
        "switches": [request.capture, request.memory_limit, request.home.lake, executor.value],
        "telemetry": telemetry.snapshot(),
        "env": _environment(),
        "python": sys.version,
        "versions": [_version(name) for name in DISTRIBUTIONS],
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@cache
def code_digest() -> str:
    """The sha256 of every module of the package: its path and its bytes (once per process)."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(f"{path.relative_to(_PACKAGE)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _without_credentials(spec: PipelineSpec) -> PipelineSpec:
    """The spec with its datasets' secret storage options and its lineage URL's credentials redacted."""
    datasets = tuple(
        dataclasses.replace(d, storage_options=redact_mapping(d.storage_options)) for d in spec.datasets
    )
    lineage = spec.lineage
    if lineage is not None and lineage.url is not None:
        lineage = dataclasses.replace(lineage, url=redact_url(lineage.url))
    return dataclasses.replace(spec, datasets=datasets, lineage=lineage)


def _environment() -> list[tuple[str, object]]:
    """The ``OTEL_*`` and ``OPENLINEAGE_*`` variables, secrets redacted (headers: every value)."""
    found = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    redacted = redact_mapping(found)
    for name, value in found.items():
        if name.endswith("HEADERS"):
            redacted[name] = redact_headers(value)
    return sorted(redacted.items())


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
