"""The project home: where the lake, the diagnostics store and the Dagster instance live.

Resolved at run time (never at import): ``--home`` flag, else ``CODEANATOMY_HOME``, else ``./.codeanatomy``.

Layout::

    <home>/
      lake/                     Delta datasets written by the build (one folder per dataset/plan)
      lake/_diagnostics/        the durable diagnostics store (append-only Delta tables)
      dagster/                  DAGSTER_HOME of the persistent Dagster instance (dagster.yaml, runs)
      reports/<run_id>/run_diagnostics_report.md
      spill/<pid>/              where DataFusion spills when a plan outgrows its memory pool

The lake may live elsewhere, on an object store too: ``--lake URI``, else ``CODEANATOMY_LAKE_URI``
(``s3://bucket/prefix``, ``gs://...``, ``az://...`` or a local directory). The datasets and the
diagnostics store then live under that URI (``<lake>/<name>``, ``<lake>/_diagnostics``); ``dagster/`` and
``reports/`` stay under the home. Storage options of an object-store lake are read from the environment
of the process that opens it, never from configuration that Dagster records: the standard ``AWS_*``
variables (for ``s3://``), overridden key by key by ``CODEANATOMY_LAKE_STORAGE_OPTIONS`` (a JSON object).

>>> home = ProjectHome.resolve("/srv/ca", env={"CODEANATOMY_LAKE_URI": "s3://b/lake/",
...                                            "AWS_SECRET_ACCESS_KEY": "hidden"})
>>> home.lake, home.diagnostics, home.dataset_uri("calls")
('s3://b/lake', 's3://b/lake/_diagnostics', 's3://b/lake/calls')
>>> home
ProjectHome(root=PosixPath('/srv/ca'), lake_uri='s3://b/lake')
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from codeanatomy_assets.delta.storage import is_object_store_uri
from codeanatomy_assets.errors import ConfigError

if TYPE_CHECKING:
    from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore

HOME_ENV: Final = "CODEANATOMY_HOME"
LAKE_ENV: Final = "CODEANATOMY_LAKE_URI"
LAKE_OPTIONS_ENV: Final = "CODEANATOMY_LAKE_STORAGE_OPTIONS"
DEFAULT_HOME: Final = ".codeanatomy"
DIAGNOSTICS_FOLDER: Final = "_diagnostics"

AWS_OPTION_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
)
"""The standard variables taken as storage options of an ``s3://`` lake."""


def lake_storage_options(uri: str, env: Mapping[str, str]) -> dict[str, str]:
    """The storage options of the lake at ``uri`` from ``env`` (empty for a local lake).

    Raises :class:`ConfigError` when ``CODEANATOMY_LAKE_STORAGE_OPTIONS`` is not a JSON object of
    strings; the message never quotes the value (it holds secrets).

    >>> lake_storage_options("s3://b", {"AWS_REGION": "eu-west-1",
    ...                                 "CODEANATOMY_LAKE_STORAGE_OPTIONS": '{"AWS_REGION": "us-east-1"}'})
    {'AWS_REGION': 'us-east-1'}
    """
    if not is_object_store_uri(uri):
        return {}
    options = {}
    if uri.partition("://")[0].lower() in {"s3", "s3a"}:
        options = {name: env[name] for name in AWS_OPTION_VARIABLES if env.get(name)}
    return options | _json_options(env.get(LAKE_OPTIONS_ENV))


def _json_options(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno})", source=LAKE_OPTIONS_ENV
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError("must be a JSON object of string values", source=LAKE_OPTIONS_ENV)
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class ProjectHome:
    """Paths under one project home, and where its lake is.

    ``storage_options`` are kept out of ``repr`` and comparisons: they may hold credentials.
    """

    root: Path
    lake_uri: str | None = None
    """An object-store URI or an absolute local directory; ``None`` means ``<root>/lake``."""
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def resolve(
        cls,
        home: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        lake: str | None = None,
    ) -> ProjectHome:
        """The home from the arguments, else the environment (``CODEANATOMY_HOME``, ``..._LAKE_URI``)."""
        env = os.environ if env is None else env
        chosen = home or env.get(HOME_ENV) or DEFAULT_HOME
        lake_text = lake or env.get(LAKE_ENV) or None
        if lake_text is None:
            lake_uri = None
        elif is_object_store_uri(lake_text):
            lake_uri = lake_text.rstrip("/")
        else:
            lake_uri = str(Path(lake_text.removeprefix("file://")).expanduser().resolve())
        options = lake_storage_options(lake_uri or "", env)
        return cls(Path(chosen).expanduser().resolve(), lake_uri=lake_uri, storage_options=options)

    @property
    def remote_lake(self) -> bool:
        """Whether the lake is on an object store."""
        return self.lake_uri is not None and is_object_store_uri(self.lake_uri)

    @property
    def lake(self) -> str:
        """Where the datasets live (a local directory or an object-store URI)."""
        return self.lake_uri or str(self.root / "lake")

    @property
    def diagnostics(self) -> str:
        """Where the diagnostics store lives."""
        return self.dataset_uri(DIAGNOSTICS_FOLDER)

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def dataset_uri(self, name: str) -> str:
        """Where the build writes dataset or plan ``name`` (names are validated by the spec)."""
        return f"{self.lake}/{name}" if self.remote_lake else str(Path(self.lake) / name)

    def diagnostics_store(self) -> DeltaDiagnosticsStore:
        """The durable diagnostics store of this home, opened with the lake's storage options."""
        from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore

        return DeltaDiagnosticsStore(self.diagnostics, storage_options=self.storage_options or None)

    def ensure(self) -> ProjectHome:
        """Create the local folders (an object-store lake needs none)."""
        local = [self.dagster_home, self.reports]
        if not self.remote_lake:
            local += [Path(self.lake), Path(self.diagnostics)]
        for path in local:
            path.mkdir(parents=True, exist_ok=True)
        return self


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename: a reader sees the old
    file or the new one, never half of one (reports, run markers, the build stamp)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path
