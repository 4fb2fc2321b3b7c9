"""Registering a Delta table in a ``SessionContext`` by the provider policy, and again for each plan.

:func:`register_dataset` decides how a Delta table is served to DataFusion and records why:

1. read the log directly (:func:`codeanatomy_assets.delta.log.read_log_health`);
2. judge each provider mode against the protocol (:mod:`codeanatomy_assets.delta.protocol`), and
   ``delta_pruned_parquet`` also against the snapshot (local location, no deletion vector in use:
   :func:`~codeanatomy_assets.delta.protocol.snapshot_unsupported`);
3. in policy order (``delta_pruned_parquet``, ``delta_table_provider``, ``pyarrow_dataset``, then
   ``delta_scan_stream``) register the first compatible mode and run a read probe that reads data (an
   unfiltered projection with LIMIT: ``count(*)`` is answered from file statistics; ``delta_pruned_parquet``
   first checks that every live file exists); on failure fall back to the next mode, say why;
4. check whether a filter reaches the chosen provider's scan (``TableScan: ... full_filters=``);
   ``delta_pruned_parquet`` gets filters by construction: each plan asks Delta's log for its files
   (:func:`codeanatomy_assets.engine.pruning.bind_pruned_tables`);
5. emit ``delta_log_health_v1``, ``delta_log_finding_v1`` (one per finding), ``dataset_provider_probe_v1``
   (one per probe), ``delta_protocol_compatibility_v1`` and ``dataset_provider_mode_v1`` (built by
   :mod:`codeanatomy_assets.delta.registration_events`).

Steps 2 to 4 are the provider policy (:mod:`codeanatomy_assets.delta.provider_policy`), its probes
:mod:`codeanatomy_assets.delta.provider_probe` (the ``pyarrow_dataset`` one in a child process), the
registration of one mode :mod:`codeanatomy_assets.delta.mode_registration`, and the records it returns
:mod:`codeanatomy_assets.delta.registration_records`.

A mode that would return wrong data is never registered: ``pyarrow_dataset`` is refused for column mapping and
deletion vectors by the static rules, whatever its probe says.
"""

from __future__ import annotations

from collections.abc import Mapping

import datafusion

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.delta.mode_registration import (
    open_table,
    register_mode,
    register_object_store,
    register_pruned_parquet,
)
from codeanatomy_assets.delta.protocol import READ_MODES, Compatibility, check_compatibility
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.provider_policy import decide_provider
from codeanatomy_assets.delta.registration_errors import redact, redacted_error
from codeanatomy_assets.delta.registration_events import build_events
from codeanatomy_assets.delta.registration_records import ProviderDecision, Registration, RegistrationPolicy
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import DatasetError, ProtocolIncompatibleError

# ----------------------------------------------------------------------------------------------------
# Registration with the policy


def register_dataset(
    ctx: datafusion.SessionContext,
    *,
    name: str,
    uri: str,
    storage_options: Mapping[str, str] | None = None,
    run_id: str,
    sink: DiagnosticsSink,
    probe: bool = True,
    policy: RegistrationPolicy | None = None,
) -> Registration:
    """Register the Delta table at ``uri`` as ``name`` in ``ctx`` with the provider policy.

    Emits the events listed in the module docstring to ``sink`` and returns the :class:`Registration`.
    Raises :class:`~codeanatomy_assets.errors.ProtocolIncompatibleError` when no mode supports the protocol,
    and :class:`~codeanatomy_assets.errors.DatasetError` when supported modes all fail their probes (a damaged
    table); the events are emitted before raising.
    """
    policy = policy or RegistrationPolicy()
    health = read_log_health(uri, storage_options)
    decision = decide_provider(
        ctx, name=name, uri=uri, health=health, storage_options=storage_options, probe=probe, policy=policy
    )
    events = build_events(run_id=run_id, dataset=name, health=health, decision=decision)
    emit(sink, *events)
    if decision.mode is ProviderMode.NONE:
        raise _unreadable_error(decision, health, policy, redact(uri, storage_options))
    return Registration(
        registered=decision.to_registered(storage_options),
        health=health,
        compatibility=decision.compatibility,
        events=events,
        probes=decision.probes,
        filter_pushdown=decision.filter_pushdown,
    )


def _unreadable_error(
    decision: ProviderDecision, health: LogHealth, policy: RegistrationPolicy, redacted_uri: str
) -> DatasetError:
    """The error of a table no mode reads: the log's reason, the protocol, or the failed probes."""
    name = decision.dataset
    if health.unreadable_reason is not None:  # no protocol at all: the log's reason is the root cause
        return DatasetError(health.unreadable_reason, dataset=name, uri=redacted_uri)
    # Refused by rules (protocol or snapshot), not by failed probes: the protocol is the reason.
    verdicts = [decision.compatibility.get(m) or check_compatibility(None, m) for m in policy.modes]
    if all(c.unsupported for c in verdicts):
        return _protocol_error(verdicts, name, redacted_uri)
    return DatasetError(
        f"{_log_damage(health)}no provider mode could read the table: {decision.fallback_reason}",
        dataset=name,
        uri=redacted_uri,
    )


def _protocol_error(verdicts: list[Compatibility], name: str, redacted_uri: str) -> ProtocolIncompatibleError:
    """The error of a table whose protocol (or snapshot) every mode's rules refuse."""
    unsupported = tuple(sorted({u for c in verdicts for u in c.unsupported}))
    return ProtocolIncompatibleError(
        f"no provider mode supports the table's protocol (unsupported: {', '.join(unsupported)})",
        dataset=name,
        uri=redacted_uri,
        unsupported=unsupported,
    )


def _log_damage(health: LogHealth) -> str:
    """The Delta log's first error (and how many there are) as a prefix of a message; empty without errors."""
    log_errors = [f.message for f in health.findings if f.severity is Severity.ERROR]
    return f"Delta log: {log_errors[0]} ({len(log_errors)} error(s)); " if log_errors else ""


# ----------------------------------------------------------------------------------------------------
# Re-registration for plans


def register_for_plan(ctx: datafusion.SessionContext, table: RegisteredTable) -> None:
    """Re-register a dataset in ``ctx`` by its decided mode, at its recorded version; no probe, no event.

    Raises :class:`~codeanatomy_assets.errors.DatasetError` when the mode cannot serve a table.
    """
    if table.provider_mode not in READ_MODES:
        raise DatasetError(
            f"provider mode {table.provider_mode.value} cannot be registered",
            dataset=table.dataset,
            uri=table.uri,
        )
    options = dict(table.storage_options) or None
    try:
        _reregister(ctx, table, options)
    except DatasetError:
        raise
    except Exception as exc:  # re-raised with the dataset's context
        raise DatasetError(
            f"re-registration as {table.provider_mode.value} failed: {redacted_error(exc, options)}",
            dataset=table.dataset,
            uri=redact(table.uri, options),
        ) from exc


def _reregister(
    ctx: datafusion.SessionContext, table: RegisteredTable, options: Mapping[str, str] | None
) -> None:
    if table.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET and table.version is not None:
        # The pinned snapshot is loaded once per process: opening the table again (a log replay per
        # input per plan) is not needed to read its files.
        register_pruned_parquet(ctx, table.dataset, table.uri, version=table.version, storage_options=options)
        return
    register_object_store(ctx, table.uri, options)
    delta_table = open_table(table.uri, options, version=table.version)
    register_mode(
        ctx,
        table.dataset,
        table.provider_mode,
        delta_table,
        table.uri,
        materialize=True,
        storage_options=options,
    )


__all__ = ["register_dataset", "register_for_plan"]
