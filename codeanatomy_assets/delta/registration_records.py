"""The records of registration: the policy it follows, its probes, its decision and its outcome.

:class:`RegistrationPolicy` says which provider modes may be tried and how; :class:`ProbeResult` is one read
probe of one mode; :class:`ProviderDecision` is what the provider policy
(:func:`codeanatomy_assets.delta.provider_policy.decide_provider`) chose and why; :class:`Registration` is
what :func:`codeanatomy_assets.delta.registration.register_dataset` did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codeanatomy_assets.delta.protocol import READ_MODES, Compatibility
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable

if TYPE_CHECKING:
    from codeanatomy_assets.delta.health import LogHealth
    from codeanatomy_assets.diagnostics.events import DiagnosticEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationPolicy:
    """Which modes registration may use, in order, and how it probes them."""

    modes: tuple[ProviderMode, ...] = READ_MODES
    """Tried in order; the first is the default (an info event), any other a fallback (a warn event)."""
    allow_fallback: bool = True
    """When false only ``modes[0]`` is tried."""
    probe_rows: int = 5
    isolate_dataset_probe: bool = True
    """Run the ``pyarrow_dataset`` probe in a child process (see ``delta/provider_probe.py``)."""
    probe_timeout_s: float = 120.0
    materialize_scan_stream: bool = True
    """Register ``delta_scan_stream`` tables (false: decide and probe only, as the doctor does)."""

    @property
    def tried_modes(self) -> tuple[ProviderMode, ...]:
        """The modes walked: all of :attr:`modes`, or only the first without fallback."""
        return self.modes if self.allow_fallback else self.modes[:1]

    def registers(self, mode: ProviderMode) -> bool:
        """Whether choosing ``mode`` leaves a table registered in the session."""
        if mode is ProviderMode.NONE:
            return False
        return mode is not ProviderMode.DELTA_SCAN_STREAM or self.materialize_scan_stream


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """One read probe of one mode."""

    mode: ProviderMode
    ok: bool
    ms: float
    rows: int | None = None
    error: str | None = None
    error_type: str | None = None
    isolated: bool = False

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "mode": self.mode.value,
            "ok": self.ok,
            "ms": round(self.ms, 3),
            "rows": self.rows,
            "error": self.error,
            "error_type": self.error_type,
            "isolated": self.isolated,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderDecision:
    """The outcome of the provider policy for one table (what ``decide_provider`` returns)."""

    dataset: str
    uri: str
    mode: ProviderMode
    provider_class: str | None
    ffi_capsule_present: bool
    object_store_registered: bool
    fallback_reason: str | None
    filter_pushdown: bool | None
    probes: tuple[ProbeResult, ...]
    compatibility: Mapping[ProviderMode, Compatibility]
    version: int | None
    default_mode: ProviderMode
    probed: bool
    scan_filter_pushdown: bool | None = None
    """Whether a filter reaches the registered table's scan (the optimized plan's ``TableScan``)."""

    @property
    def delta_file_pruning(self) -> bool:
        """Whether each plan reads only the files Delta's log statistics keep (``delta_pruned_parquet``)."""
        return self.mode is ProviderMode.DELTA_PRUNED_PARQUET

    @property
    def chosen_probe(self) -> ProbeResult | None:
        """The probe of the chosen mode, if it ran."""
        return next((p for p in reversed(self.probes) if p.mode is self.mode), None)

    @property
    def protocol_compatible(self) -> bool:
        """Whether the chosen mode reads the table's protocol (false when no mode does)."""
        verdict = self.compatibility.get(self.mode)
        return bool(verdict and verdict.compatible)

    def to_registered(self, storage_options: Mapping[str, str] | None) -> RegisteredTable:
        """The :class:`RegisteredTable` this decision stands for."""
        return RegisteredTable(
            dataset=self.dataset,
            uri=self.uri,
            provider_mode=self.mode,
            provider_class=self.provider_class or "",
            protocol_compatible=self.protocol_compatible,
            version=self.version,
            storage_options=dict(storage_options or {}),
            fallback_reason=self.fallback_reason,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """What ``register_dataset`` did."""

    registered: RegisteredTable
    health: LogHealth
    compatibility: Mapping[ProviderMode, Compatibility]
    events: tuple[DiagnosticEvent, ...]
    probes: tuple[ProbeResult, ...] = ()
    filter_pushdown: bool | None = None

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "dataset": self.registered.dataset,
            "uri": self.registered.uri,
            "provider_mode": self.registered.provider_mode.value,
            "provider_class": self.registered.provider_class,
            "protocol_compatible": self.registered.protocol_compatible,
            "version": self.registered.version,
            "fallback_reason": self.registered.fallback_reason,
            "filter_pushdown": self.filter_pushdown,
            "compatibility": {m.value: c.to_row() for m, c in self.compatibility.items()},
            "probes": [p.to_row() for p in self.probes],
        }


__all__ = ["ProbeResult", "ProviderDecision", "Registration", "RegistrationPolicy"]
