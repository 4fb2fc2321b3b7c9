"""The producer of a build's OpenLineage events and its custom facets (keys prefixed ``codeanatomy_``).

Each custom facet subclasses the client's facet classes, so it carries ``_producer`` and ``_schemaURL``
like the standard ones; ``docs/openlineage/facets.json`` holds their JSON Schemas:

``codeanatomy_providerMode`` (input facet of each input of a plan run)
    Which reader served the input in DataFusion, and why when it was a fallback.
``codeanatomy_deltaLogHealth`` (dataset facet of each input whose log the run read)
    The summary of the input's Delta log health: versions, checkpoint lag, protocol, features, findings.
``codeanatomy_scanPruning`` (run facet of a plan run with diagnostics captured)
    Each scan of the plan: files live, read, pruned, and skippable by Delta's statistics.
``codeanatomy_planSkipped`` (run facet of a plan not run again)
    Why: its SQL and its inputs' Delta versions are those its output was computed from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, TypeVar

import attr
from openlineage.client.facet_v2 import BaseFacet, DatasetFacet, InputDatasetFacet, RunFacet
from openlineage.client.utils import RedactMixin

from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.engine.scan import ScanUnit
from codeanatomy_assets.plan_skip import PlanSkip

PROJECT_URL: Final = "https://github.com/codeanatomy/codeanatomy-assets"
"""Where the producer and the custom facets' schemas are named from."""
PROVIDER_MODE: Final = "codeanatomy_providerMode"
DELTA_LOG_HEALTH: Final = "codeanatomy_deltaLogHealth"
SCAN_PRUNING: Final = "codeanatomy_scanPruning"
PLAN_SKIPPED: Final = "codeanatomy_planSkipped"

_F = TypeVar("_F", bound=BaseFacet)


@cache
def package_version() -> str:
    """This package's version (the OpenLineage adapter version of its events)."""
    try:
        return version("codeanatomy-assets")
    except PackageNotFoundError:
        return "0+unknown"


def producer() -> str:
    """The ``producer`` of every event and facet the build emits."""
    return f"{PROJECT_URL}/tree/v{package_version()}"


def schema_url(definition: str) -> str:
    """The ``_schemaURL`` of a custom facet: its definition in ``docs/openlineage/facets.json``."""
    return f"{PROJECT_URL}/blob/v{package_version()}/docs/openlineage/facets.json#/$defs/{definition}"


def owned(facet: _F) -> _F:
    """``facet`` with this package as its ``_producer`` (the client's default names the client)."""
    facet._producer = producer()
    return facet


@attr.define
class ProviderModeInputDatasetFacet(InputDatasetFacet):
    """How the plan read the input: the provider mode chosen, and why when it was a fallback."""

    mode: str
    providerClass: str | None = attr.field(default=None)  # noqa: N815
    protocolCompatible: bool | None = attr.field(default=None)  # noqa: N815
    fallbackReason: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ProviderModeInputDatasetFacet")


@attr.define
class DeltaLogHealthDatasetFacet(DatasetFacet):
    """The input's Delta log as the run's registration read it (``delta_log_health_v1``)."""

    severity: str
    latestVersion: int | None = attr.field(default=None)  # noqa: N815
    lastCheckpointVersion: int | None = attr.field(default=None)  # noqa: N815
    commitsSinceCheckpoint: int | None = attr.field(default=None)  # noqa: N815
    minReaderVersion: int | None = attr.field(default=None)  # noqa: N815
    minWriterVersion: int | None = attr.field(default=None)  # noqa: N815
    tableFeatures: list[str] = attr.field(factory=list)  # noqa: N815
    protocolCompatible: bool | None = attr.field(default=None)  # noqa: N815
    findings: list[str] = attr.field(factory=list)
    """The codes of the log's findings (``delta_log_finding_v1``)."""

    @staticmethod
    def _get_schema() -> str:
        return schema_url("DeltaLogHealthDatasetFacet")


@attr.define
class ScanPruning(RedactMixin):
    """One scan of a plan run (a scan unit): files live, read, pruned, and skippable."""

    operator: str
    dataset: str | None = attr.field(default=None)
    providerMode: str | None = attr.field(default=None)  # noqa: N815
    filesTotal: int | None = attr.field(default=None)  # noqa: N815
    filesRead: int | None = attr.field(default=None)  # noqa: N815
    filesPruned: int | None = attr.field(default=None)  # noqa: N815
    filesSkippable: int | None = attr.field(default=None)  # noqa: N815
    bytesScanned: int | None = attr.field(default=None)  # noqa: N815
    pruningLost: bool = attr.field(default=False)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ScanPruning")


@attr.define
class ScanPruningRunFacet(RunFacet):
    """The scans of a plan run, and the files read and skippable over all of them."""

    scans: list[ScanPruning] = attr.field(factory=list)
    filesRead: int | None = attr.field(default=None)  # noqa: N815
    filesSkippable: int | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ScanPruningRunFacet")


@attr.define
class PlanSkippedRunFacet(RunFacet):
    """A plan not run again: its output holds the result of its SQL over its inputs' versions."""

    skipped: bool
    reason: str
    outputVersion: int  # noqa: N815
    previousRunId: str | None = attr.field(default=None)  # noqa: N815
    inputVersions: dict[str, int] = attr.field(factory=dict)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("PlanSkippedRunFacet")


def provider_mode_facet(registered: RegisteredTable) -> ProviderModeInputDatasetFacet:
    """The provider mode an input was registered with."""
    return owned(
        ProviderModeInputDatasetFacet(
            mode=registered.provider_mode.value,
            providerClass=registered.provider_class or None,
            protocolCompatible=registered.protocol_compatible,
            fallbackReason=registered.fallback_reason,
        )
    )


def log_health_facet(payload: Mapping[str, Any], severity: str) -> DeltaLogHealthDatasetFacet:
    """The summary of a ``delta_log_health_v1`` payload."""
    findings = [str(f.get("code")) for f in payload.get("findings") or () if isinstance(f, Mapping)]
    return owned(
        DeltaLogHealthDatasetFacet(
            severity=severity,
            latestVersion=_int(payload.get("latest_version")),
            lastCheckpointVersion=_int(payload.get("last_checkpoint_version")),
            commitsSinceCheckpoint=_int(payload.get("commits_since_checkpoint")),
            minReaderVersion=_int(payload.get("min_reader_version")),
            minWriterVersion=_int(payload.get("min_writer_version")),
            tableFeatures=[str(f) for f in payload.get("table_features") or ()],
            protocolCompatible=payload.get("protocol_compatible"),
            findings=findings,
        )
    )


def scan_pruning_facet(units: Sequence[ScanUnit]) -> ScanPruningRunFacet:
    """The scan units of a plan run, and their totals (``None`` where a unit's count is unknown)."""
    scans = [
        ScanPruning(
            operator=u.operator,
            dataset=u.dataset,
            providerMode=u.provider_mode.value if u.provider_mode else None,
            filesTotal=u.total_files,
            filesRead=u.candidate_files,
            filesPruned=u.pruned_files,
            filesSkippable=u.delta_prunable_files,
            bytesScanned=u.bytes_scanned,
            pruningLost=u.pruning_lost,
        )
        for u in units
    ]
    return owned(
        ScanPruningRunFacet(
            scans=scans,
            filesRead=_total(s.filesRead for s in scans),
            filesSkippable=_total(s.filesSkippable for s in scans),
        )
    )


def plan_skipped_facet(skip: PlanSkip) -> PlanSkippedRunFacet:
    inputs = {name: v for name, v in skip.fingerprint.inputs.items() if isinstance(v, int)}
    return owned(
        PlanSkippedRunFacet(
            skipped=True,
            reason=skip.reason,
            outputVersion=skip.output_version,
            previousRunId=skip.previous_run_id,
            inputVersions=inputs,
        )
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _total(values: Any) -> int | None:
    known = list(values)
    return None if any(v is None for v in known) else sum(known)
