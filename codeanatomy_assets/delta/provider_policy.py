"""The provider policy: which mode serves a Delta table in DataFusion, and why.

:func:`decide_provider` judges each mode of a :class:`~codeanatomy_assets.delta.registration_records.
RegistrationPolicy` against the table's protocol (:mod:`codeanatomy_assets.delta.protocol`) and, for
``delta_pruned_parquet``, against its snapshot (a local location or an object store registered with the
session, no deletion vector in use:
:func:`~codeanatomy_assets.delta.protocol.snapshot_unsupported`); in policy order it registers and probes
the first compatible mode (:mod:`codeanatomy_assets.delta.provider_probe`) and falls back to the next one
when the probe fails, saying why. It then checks whether a filter reaches the chosen provider's scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import datafusion

from codeanatomy_assets.delta.mode_registration import filter_reaches_scan, open_table, register_object_store
from codeanatomy_assets.delta.protocol import Compatibility, TableProtocol, check_all, snapshot_unsupported
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.provider_probe import ModeTrial, TableTrial
from codeanatomy_assets.delta.pruned import open_snapshot
from codeanatomy_assets.delta.registration_errors import (
    known_cause,
    percent_escape_cause,
    qualified_type,
    redacted_error,
)
from codeanatomy_assets.delta.registration_records import ProbeResult, ProviderDecision, RegistrationPolicy
from codeanatomy_assets.delta.storage import is_object_store_uri

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from codeanatomy_assets.delta.health import LogHealth


# ----------------------------------------------------------------------------------------------------
# Snapshot rules


def _snapshot_blockers(
    mode: ProviderMode,
    uri: str,
    table: DeltaTable,
    storage_options: Mapping[str, str] | None,
    store_registered: bool,
) -> tuple[str, ...]:
    """What the snapshot (not the protocol) puts in ``mode``'s way; nothing when it cannot be opened."""
    if is_object_store_uri(uri) and not store_registered:
        return snapshot_unsupported(mode, no_object_store=True)
    try:
        snapshot = open_snapshot(uri, version=table.version(), storage_options=storage_options)
    except Exception:  # noqa: BLE001 - not a rule: registering the mode fails alike, and that is recorded as its probe
        return ()
    return snapshot_unsupported(
        mode, no_object_store=False, files_with_deletion_vectors=snapshot.files_with_deletion_vectors
    )


def _with_snapshot_rules(
    verdict: Compatibility,
    uri: str,
    table: DeltaTable,
    storage_options: Mapping[str, str] | None,
    store_registered: bool,
) -> Compatibility:
    """``verdict`` after the rules that look at the snapshot, not the protocol (``delta_pruned_parquet``)."""
    if verdict.mode is not ProviderMode.DELTA_PRUNED_PARQUET:
        return verdict
    blocked = _snapshot_blockers(verdict.mode, uri, table, storage_options, store_registered)
    if not blocked:
        return verdict
    return replace(verdict, compatible=False, unsupported=(*verdict.unsupported, *blocked))


# ----------------------------------------------------------------------------------------------------
# The walk


@dataclass(frozen=True, slots=True)
class _OpenFailure:
    """Why deltalake refused to open the table: a probe failure of every compatible mode."""

    error: str
    error_type: str


@dataclass(slots=True, kw_only=True)
class _PolicyWalk:
    """One walk of the policy over one table, with its bookkeeping (internal, mutable)."""

    ctx: datafusion.SessionContext
    name: str
    uri: str
    health: LogHealth
    storage_options: Mapping[str, str] | None
    probe: bool
    policy: RegistrationPolicy
    static: dict[ProviderMode, Compatibility]
    """The protocol verdict on every mode of the policy."""
    compatibility: dict[ProviderMode, Compatibility] = field(default_factory=dict)
    probes: list[ProbeResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    open_failure: _OpenFailure | None = None
    store_registered: bool = False
    """The table's object store was registered with the session (object stores only)."""

    def __post_init__(self) -> None:
        self.compatibility = dict(self.static)

    def decide(self) -> ProviderDecision:
        """Register the store, open the table, choose a mode, check its filter pushdown."""
        object_store_registered = self.store_registered = self._register_object_store()
        table = self._open_table()
        chosen, trial = self._choose(table)
        scan_pushdown = self._scan_pushdown() if self.policy.registers(chosen) else None
        version = table.version() if table is not None else self.health.latest_version
        return self._decision(chosen, trial, version, object_store_registered, scan_pushdown)

    def _register_object_store(self) -> bool:
        """Give the session the table's object store; a failure is a reason, not an error."""
        if not is_object_store_uri(self.uri):
            return False
        try:
            return register_object_store(self.ctx, self.uri, self.storage_options)
        except Exception as exc:  # noqa: BLE001 - recorded as a reason; the provider probe will show the consequence
            self.reasons.append(f"object store not registered: {redacted_error(exc, self.storage_options)}")
            return False

    def _open_table(self) -> DeltaTable | None:
        """The table at its latest version (``None``: deltalake refused it, :attr:`open_failure` says why)."""
        try:
            return open_table(self.uri, self.storage_options)
        except Exception as exc:  # noqa: BLE001 - deltalake refusing the table is a probe failure of every mode
            error = f"deltalake could not open the table: {redacted_error(exc, self.storage_options)}"
            self.open_failure = _OpenFailure(error + percent_escape_cause(self.uri), qualified_type(exc))
            return None

    def _choose(self, table: DeltaTable | None) -> tuple[ProviderMode, ModeTrial]:
        """The first mode that serves the table, in policy order (``none``, an empty trial: none does)."""
        trial = None if table is None else self._trial(table)
        for mode in self.policy.tried_modes:
            verdict = self._judge(mode, table)
            if not verdict.compatible:
                self.reasons.append(f"{mode.value} unsupported: {', '.join(verdict.unsupported)}")
            elif trial is None:
                self._refuse_unopened(mode, verdict)
            else:
                outcome = trial.run(mode)
                if self._accept(mode, verdict, outcome):
                    return mode, outcome
        return ProviderMode.NONE, ModeTrial()

    def _trial(self, table: DeltaTable) -> TableTrial:
        return TableTrial(
            ctx=self.ctx,
            name=self.name,
            uri=self.uri,
            table=table,
            storage_options=self.storage_options,
            probe=self.probe,
            policy=self.policy,
        )

    def _judge(self, mode: ProviderMode, table: DeltaTable | None) -> Compatibility:
        """The verdict on ``mode``: its protocol rules, then (once the table opened) its snapshot rules."""
        verdict = self.static[mode]
        if verdict.compatible and table is not None:
            verdict = _with_snapshot_rules(
                verdict, self.uri, table, self.storage_options, self.store_registered
            )
            self.compatibility[mode] = verdict
        return verdict

    def _refuse_unopened(self, mode: ProviderMode, verdict: Compatibility) -> None:
        """Record the open failure as ``mode``'s failed probe (its reason said once for every mode)."""
        failure = self.open_failure
        assert failure is not None  # set whenever the table did not open
        self.probes.append(
            ProbeResult(mode=mode, ok=False, ms=0.0, error=failure.error, error_type=failure.error_type)
        )
        self.compatibility[mode] = verdict.with_probe_error(failure.error)
        if failure.error not in self.reasons:
            self.reasons.append(failure.error)

    def _accept(self, mode: ProviderMode, verdict: Compatibility, outcome: ModeTrial) -> bool:
        """Record the trial of ``mode``; true when the mode serves the table."""
        probe = outcome.probe
        if probe is not None:
            self.probes.append(probe)
        if probe is None or probe.ok:
            return True
        self.compatibility[mode] = verdict.with_probe_error(probe.error)
        self.reasons.append(f"{mode.value} probe failed: {probe.error}{known_cause(mode, probe.error)}")
        return False

    def _scan_pushdown(self) -> bool | None:
        """Whether a filter reaches the registered table's scan (``None``: not known)."""
        try:
            return filter_reaches_scan(self.ctx, self.name)
        except Exception as exc:  # noqa: BLE001 - a planning failure here is reported, the registration stands
            self.reasons.append(f"filter pushdown check failed: {redacted_error(exc, self.storage_options)}")
            return None

    def _fallback_reason(self, chosen: ProviderMode, default: ProviderMode) -> str | None:
        """Why the policy's first mode was not chosen (``None`` when it was)."""
        if chosen is ProviderMode.NONE and self.health.unreadable_reason is not None:
            self.reasons = [self.health.unreadable_reason]  # no protocol: every mode said protocol_unknown
        if chosen is default and chosen is not ProviderMode.NONE:
            return None
        return "; ".join(self.reasons) or None

    def _decision(
        self,
        chosen: ProviderMode,
        trial: ModeTrial,
        version: int | None,
        object_store_registered: bool,
        scan_pushdown: bool | None,
    ) -> ProviderDecision:
        tried = self.policy.tried_modes
        default = tried[0] if tried else ProviderMode.NONE
        return ProviderDecision(
            dataset=self.name,
            uri=self.uri,
            mode=chosen,
            provider_class=trial.provider_class,
            ffi_capsule_present=trial.ffi_capsule_present,
            object_store_registered=object_store_registered,
            fallback_reason=self._fallback_reason(chosen, default),
            # delta_pruned_parquet receives every plan's filters by construction: each plan reads only the
            # files Delta's log statistics keep for them (engine.pruning.bind_pruned_tables).
            filter_pushdown=True if chosen is ProviderMode.DELTA_PRUNED_PARQUET else scan_pushdown,
            probes=tuple(self.probes),
            compatibility=self.compatibility,
            version=version,
            default_mode=default,
            probed=self.probe,
            scan_filter_pushdown=scan_pushdown,
        )


# ----------------------------------------------------------------------------------------------------
# The policy


def decide_provider(
    ctx: datafusion.SessionContext,
    *,
    name: str,
    uri: str,
    health: LogHealth,
    storage_options: Mapping[str, str] | None = None,
    probe: bool = True,
    policy: RegistrationPolicy | None = None,
) -> ProviderDecision:
    """Walk the policy: register, probe, fall back. Never raises; ``mode=none`` when nothing reads the table.

    With ``policy.materialize_scan_stream`` false, ``delta_scan_stream`` is probed but not registered.
    """
    policy = policy or RegistrationPolicy()
    static = check_all(TableProtocol.from_health(health), policy.modes)
    walk = _PolicyWalk(
        ctx=ctx,
        name=name,
        uri=uri,
        health=health,
        storage_options=storage_options,
        probe=probe,
        policy=policy,
        static=static,
    )
    return walk.decide()


__all__ = ["decide_provider"]
