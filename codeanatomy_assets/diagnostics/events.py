"""The diagnostics record: one frozen dataclass, one serializer.

Every diagnostic that this project produces is a :class:`DiagnosticEvent`. It cannot be built without a
severity and a category from the closed vocabularies in :mod:`codeanatomy_assets.diagnostics.taxonomy`,
and its name carries a version suffix (``dataset_provider_mode_v1``).

>>> from codeanatomy_assets.diagnostics.event_names import EXTRACT_FILE_FAILED
>>> ev = DiagnosticEvent(
...     name=EXTRACT_FILE_FAILED, run_id="r1", severity=Severity.WARN,
...     category=Category.EXTRACT, payload={"path": "a.py"}, event_time_unix_ms=0)
>>> DiagnosticEvent.from_row(ev.to_row()) == ev
True
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

EVENT_SCHEMA_VERSION: Final = 1
_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]*_v[0-9]+$")


def now_unix_ms() -> int:
    """Wall-clock time in unix milliseconds."""
    return time.time_ns() // 1_000_000


def _json_default(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def dumps_payload(payload: Mapping[str, object]) -> str:
    """Serialize a payload deterministically (sorted keys, no NaN surprises)."""
    return json.dumps(payload, sort_keys=True, default=_json_default, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticEvent:
    """One diagnostics record (an event or an artifact)."""

    name: str
    run_id: str
    severity: Severity
    category: Category
    payload: Mapping[str, Any] = field(default_factory=dict)
    kind: EventKind = EventKind.EVENT
    event_time_unix_ms: int = field(default_factory=now_unix_ms)
    code: str | None = None
    message: str | None = None
    dataset: str | None = None
    plan: str | None = None
    asset_key: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"diagnostic name {self.name!r} must be snake_case with a version suffix (_v1)")
        # Coerce strings to the closed vocabularies; anything else is a ValueError naming the field.
        for attr, enum in (("severity", Severity), ("category", Category), ("kind", EventKind)):
            value = getattr(self, attr)
            if value is None:
                raise ValueError(f"diagnostic {self.name!r}: {attr} is required")
            try:
                object.__setattr__(self, attr, enum(value))
            except ValueError:
                allowed = ", ".join(m.value for m in enum)
                raise ValueError(
                    f"diagnostic {self.name!r}: {attr} {value!r} is not one of: {allowed}"
                ) from None
        if not self.run_id:
            raise ValueError(f"diagnostic {self.name!r}: run_id is required")

    def to_row(self) -> dict[str, Any]:
        """The one serializer: a flat row matching ``DIAGNOSTICS_EVENTS_V1``."""
        return {
            "schema_version": EVENT_SCHEMA_VERSION,
            "event_id": self.event_id,
            "name": self.name,
            "run_id": self.run_id,
            "event_time_unix_ms": self.event_time_unix_ms,
            "severity": self.severity.value,
            "category": self.category.value,
            "kind": self.kind.value,
            "code": self.code,
            "message": self.message,
            "dataset": self.dataset,
            "plan": self.plan,
            "asset_key": self.asset_key,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "payload": dumps_payload(self.payload),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DiagnosticEvent:
        """Inverse of :meth:`to_row`; raises ``ValueError`` on a row without severity or category."""
        payload = row.get("payload")
        return cls(
            name=row["name"],
            run_id=row["run_id"],
            severity=row.get("severity"),  # type: ignore[arg-type]
            category=row.get("category"),  # type: ignore[arg-type]
            kind=row.get("kind") or EventKind.EVENT,
            payload=json.loads(payload) if isinstance(payload, str) else dict(payload or {}),
            event_time_unix_ms=int(row["event_time_unix_ms"]),
            code=row.get("code"),
            message=row.get("message"),
            dataset=row.get("dataset"),
            plan=row.get("plan"),
            asset_key=row.get("asset_key"),
            trace_id=row.get("trace_id"),
            span_id=row.get("span_id"),
            event_id=row.get("event_id") or uuid.uuid4().hex,
        )
