"""The typed rows of the diagnostics store's tables, and the tables a recorded row goes to.

- every row goes to ``diagnostics_events_v1``;
- ``datafusion_run_started_v1`` / ``datafusion_run_finished_v1`` rows also go, typed, to
  ``datafusion_runs_v1`` (fields from the payload, see :mod:`~codeanatomy_assets.diagnostics.runs`);
- ``datafusion_plan_artifacts_v1`` rows also go, typed, to ``datafusion_plan_artifacts_v1``.

A row that is not a valid ``DiagnosticEvent`` row, or whose payload does not fit its table's column types,
is a ``ValueError`` naming the row and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import pyarrow as pa

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import (
    DATAFUSION_PLAN_ARTIFACTS,
    DATAFUSION_RUN_FINISHED,
    DATAFUSION_RUN_STARTED,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import (
    ERROR_MESSAGE_KEY,
    RunStatus,
)
from codeanatomy_assets.diagnostics.schemas import (
    DATAFUSION_PLAN_ARTIFACTS_TABLE,
    DATAFUSION_RUNS_TABLE,
    DIAGNOSTICS_EVENTS_TABLE,
    PLAN_ARTIFACTS_SCHEMA_VERSION,
    RUNS_SCHEMA_VERSION,
    TABLE_SCHEMAS,
)

RUN_EVENTS: Final = frozenset({DATAFUSION_RUN_STARTED, DATAFUSION_RUN_FINISHED})
"""Rows of these names are routed to ``datafusion_runs_v1``."""

INT_RANGE: Final = range(-(2**63), 2**63)
"""The values an ``int64`` column holds."""


def routed_rows(name: str, row: Mapping[str, object]) -> list[tuple[str, dict[str, object]]]:
    """Validate one recorded row and return ``(table, row)`` for every table it goes to."""
    event = _event_of(name, row)
    routed = [(DIAGNOSTICS_EVENTS_TABLE, event.to_row())]
    if name in RUN_EVENTS:
        routed.append((DATAFUSION_RUNS_TABLE, run_row(event)))
    elif name == DATAFUSION_PLAN_ARTIFACTS:
        routed.append((DATAFUSION_PLAN_ARTIFACTS_TABLE, plan_artifact_row(event)))
    return routed


def _event_of(name: str, row: Mapping[str, object]) -> DiagnosticEvent:
    """The event of a row recorded under ``name`` (``ValueError`` when it is not one)."""
    if not isinstance(row, Mapping):
        raise ValueError(f"diagnostics row for {name!r} must be a mapping, got {type(row).__name__}")
    try:
        event = DiagnosticEvent.from_row(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid diagnostics row for {name!r}: {exc!r}") from exc
    if event.name != name:
        raise ValueError(f"row named {event.name!r} recorded under {name!r}")
    if event.event_time_unix_ms not in INT_RANGE:
        raise ValueError(f"row {name!r}: event_time_unix_ms out of range: {event.event_time_unix_ms}")
    return event


def run_row(event: DiagnosticEvent) -> dict[str, object]:
    """The ``datafusion_runs_v1`` row of a run started/finished event (``ValueError`` on a bad payload)."""
    payload = event.payload
    label = _row_label(event)
    status = payload.get("status")
    if status not in {s.value for s in RunStatus}:
        raise ValueError(f"{label}: payload status {status!r} is not one of running, completed, failed")
    metadata = payload.get("metadata")
    values = {
        **payload,
        "run_id": event.run_id,
        "metadata": None if metadata is None else _json_text(metadata),
        "schema_version": RUNS_SCHEMA_VERSION,
        "error_type": _error_type(payload),
        "error_message": payload.get(ERROR_MESSAGE_KEY),
        "trace_id": event.trace_id,
        "event_name": event.name,
    }
    return _typed_row(TABLE_SCHEMAS[DATAFUSION_RUNS_TABLE], values, row=label)


def plan_artifact_row(event: DiagnosticEvent) -> dict[str, object]:
    """The ``datafusion_plan_artifacts_v1`` row of a plan artifact event (fields from the payload)."""
    payload = event.payload
    values = {
        **payload,
        "event_time_unix_ms": payload.get("event_time_unix_ms", event.event_time_unix_ms),
        "run_id": event.run_id,
        "plan": event.plan if event.plan is not None else payload.get("plan"),
        "error_type": _error_type(payload),
        "schema_version": PLAN_ARTIFACTS_SCHEMA_VERSION,
    }
    return _typed_row(TABLE_SCHEMAS[DATAFUSION_PLAN_ARTIFACTS_TABLE], values, row=_row_label(event))


def _row_label(event: DiagnosticEvent) -> str:
    return f"row {event.name} (event {event.event_id})"


def _error_type(payload: Mapping[str, object]) -> object:
    """The payload's ``error_type``, else its ``error.type``."""
    return payload.get("error_type", payload.get(attr.ERROR_TYPE))


def _json_text(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _typed_row(schema: pa.Schema, values: Mapping[str, object], *, row: str) -> dict[str, object]:
    return {field.name: _coerce(field, values.get(field.name), row=row) for field in schema}


def _coerce(field: pa.Field, value: object, *, row: str) -> object:
    """``value`` converted to the column type of ``field``; ``ValueError`` naming the row and column."""
    if value is None:
        if not field.nullable:
            raise ValueError(f"{row}: payload field {field.name!r} is required")
        return None
    kind = field.type
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else _json_text(value)
    if pa.types.is_boolean(kind):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{row}: payload field {field.name!r} must be a boolean, got {value!r}")
    if pa.types.is_integer(kind):
        return _coerce_int(field, value, row=row)
    raise ValueError(f"{row}: column {field.name!r} has unsupported type {kind}")  # schema bug, not data


def _coerce_int(field: pa.Field, value: object, *, row: str) -> int:
    """``value`` as an ``int64`` (from an int, a float or a numeral); ``ValueError`` otherwise."""
    not_integer = f"{row}: payload field {field.name!r} must be an integer, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(not_integer)
    try:
        number = int(value)
    except ValueError:
        raise ValueError(not_integer) from None
    if number not in INT_RANGE:
        raise ValueError(f"{row}: payload field {field.name!r} is out of range: {number}")
    return number
