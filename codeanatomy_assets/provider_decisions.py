"""The provider modes the dataset steps of a run decided, for its plan steps to register their inputs by.

A plan step in the same process asks this process's memory; one in another process (the multiprocess
executor) reads the decisions back from the durable store (``dataset_provider_mode_v1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.diagnostics.event_names import DATASET_PROVIDER_MODE
from codeanatomy_assets.home import ProjectHome

_DECIDED: dict[str, dict[str, RegisteredTable]] = {}
"""The provider modes dataset steps of this process decided, for the latest run only."""


def remember_decision(run_id: str, registered: RegisteredTable) -> None:
    """Keep a dataset step's decision in this process, so its plans need not read it back from the store."""
    if run_id not in _DECIDED:
        _DECIDED.clear()  # one run at a time per process: the decisions of earlier runs are never asked
        _DECIDED[run_id] = {}
    _DECIDED[run_id][registered.dataset] = registered


def decided_provider_modes(
    home: ProjectHome, run_id: str, names: tuple[str, ...]
) -> dict[str, RegisteredTable]:
    """The decisions of ``run_id``'s dataset steps for ``names``: from this process when its steps decided
    all of them (the in-process executor), else read back from the store (a step in another process)."""
    known = _DECIDED.get(run_id, {})
    if all(name in known for name in names):
        return {name: known[name] for name in names}
    return recorded_provider_modes(home, run_id)


def recorded_provider_modes(home: ProjectHome, run_id: str) -> dict[str, RegisteredTable]:
    """The provider modes chosen by dataset steps of ``run_id``, from the store (latest per dataset)."""
    store = home.diagnostics_store()
    chosen: dict[str, RegisteredTable] = {}
    for event in store.read_events(run_id, names=[DATASET_PROVIDER_MODE]):
        payload = event.payload
        if event.dataset is None or not payload.get("provider_mode"):
            continue
        chosen[event.dataset] = _recorded_table(event.dataset, payload)
    return chosen


def _recorded_table(dataset: str, payload: Mapping[str, Any]) -> RegisteredTable:
    """The registration a ``dataset_provider_mode_v1`` payload records."""
    return RegisteredTable(
        dataset=dataset,
        uri=str(payload.get("uri", "")),
        provider_mode=ProviderMode(payload["provider_mode"]),
        provider_class=str(payload.get("provider_class", "")),
        protocol_compatible=bool(payload.get("protocol_compatible", True)),
        version=payload.get("version"),
        fallback_reason=payload.get("fallback_reason"),
    )
