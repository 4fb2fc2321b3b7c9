"""The Celery executor's settings (``codeanatomy build --executor celery``, ``dagster-celery``).

Every step of the build is a Celery task, run by a worker (``celery -A dagster_celery.app worker``, or
``dagster-celery worker start -A dagster_celery.app``) that shares the Dagster instance (Postgres) and
the lake (object storage) with the process that launched the build.

The broker and result backend come from ``--celery-broker`` / ``--celery-backend``, else
``CODEANATOMY_CELERY_BROKER`` / ``CODEANATOMY_CELERY_BACKEND``. They are URLs that may hold credentials
(``redis://:password@host:6379/0``), so they never appear in Dagster's run config (recorded with every
run and shown in the UI): the run config names Celery's own environment variables
(``{"env": "CELERY_BROKER_URL"}``, ``{"env": "CELERY_RESULT_BACKEND"}``), set in the launching process
while the job runs. Every worker resolves the same run config and its Celery app reads the same
variables, so a worker needs those two and nothing else of the broker. The run envelope records the
URLs redacted.

>>> settings = CelerySettings.resolve(broker="redis://:hunter2@127.0.0.1:6379/0", env={})
>>> settings.snapshot()
{'broker': 'redis://***REDACTED***@127.0.0.1:6379/0', 'backend': 'redis://***REDACTED***@127.0.0.1:6379/0'}
>>> settings.run_config()["execution"]["config"]["broker"]
{'env': 'CELERY_BROKER_URL'}
>>> settings
CelerySettings()
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from codeanatomy_assets.diagnostics.redact import redact_url
from codeanatomy_assets.errors import ConfigError

BROKER_ENV: Final = "CODEANATOMY_CELERY_BROKER"
BACKEND_ENV: Final = "CODEANATOMY_CELERY_BACKEND"
CELERY_BROKER_ENV: Final = "CELERY_BROKER_URL"
"""Where Celery apps (the launching process's and every worker's) and the run config read the broker."""
CELERY_BACKEND_ENV: Final = "CELERY_RESULT_BACKEND"
_REDIS_SCHEMES: Final = frozenset({"redis", "rediss"})
_INSTALL_HINT: Final = "pip install 'codeanatomy-assets[celery]' (dagster-celery with Redis support)"


@dataclass(frozen=True, slots=True)
class CelerySettings:
    """The broker and result backend of a Celery build (kept out of ``repr``: they may hold passwords)."""

    broker: str = field(repr=False)
    backend: str = field(repr=False)

    @classmethod
    def resolve(
        cls, *, broker: str | None = None, backend: str | None = None, env: Mapping[str, str] | None = None
    ) -> CelerySettings:
        """The flags' values, else ``CODEANATOMY_CELERY_BROKER`` / ``..._BACKEND``; the backend defaults
        to the broker for Redis (else ``rpc://``). Raises :class:`ConfigError` naming what is missing."""
        env = os.environ if env is None else env
        broker_url = _url(broker or env.get(BROKER_ENV), source=f"--celery-broker / {BROKER_ENV}")
        backend_url = backend or env.get(BACKEND_ENV) or _default_backend(broker_url)
        return cls(broker=broker_url, backend=_url(backend_url, source=f"--celery-backend / {BACKEND_ENV}"))

    def snapshot(self) -> dict[str, str]:
        """What a record may hold: both URLs with their credentials redacted."""
        return {"broker": redact_url(self.broker), "backend": redact_url(self.backend)}

    def run_config(self) -> dict[str, Any]:
        """The ``celery_executor`` config: the URLs by environment variable, never by value."""
        urls = {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": CELERY_BACKEND_ENV}}
        return {"execution": {"config": urls}}

    @contextmanager
    def exported(self) -> Iterator[None]:
        """The URLs in this process's environment (where the run config reads them) while the block runs."""
        saved = {name: os.environ.get(name) for name in (CELERY_BROKER_ENV, CELERY_BACKEND_ENV)}
        os.environ[CELERY_BROKER_ENV], os.environ[CELERY_BACKEND_ENV] = self.broker, self.backend
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def require_dagster_celery() -> None:
    """Raise :class:`ConfigError` when ``dagster-celery`` (or its Redis client) is not installed."""
    for module in ("dagster_celery", "redis"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"the celery executor needs {module}: {_INSTALL_HINT}", source="--executor")


def _url(value: str | None, *, source: str) -> str:
    if not value:
        raise ConfigError("the celery executor needs a broker URL (e.g. redis://host:6379/0)", source=source)
    if "://" not in value or not urlsplit(value).scheme:
        raise ConfigError("not a URL: expected scheme://host..., e.g. redis://host:6379/0", source=source)
    return value


def _default_backend(broker: str) -> str:
    return broker if urlsplit(broker).scheme in _REDIS_SCHEMES else "rpc://"
