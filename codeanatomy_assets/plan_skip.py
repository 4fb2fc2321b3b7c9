"""Whether a plan needs to run: the fingerprint of its inputs, recorded with each result and compared.

Each result a plan writes carries, in its Delta commit's custom metadata, the fingerprint of what it was
computed from: the sha256 of the plan's SQL and the Delta version of each input table
(:func:`InputsFingerprint.commit_metadata`). Before a plan runs again (unless the build is full), the
fingerprint of its inputs' current versions is compared with the one its output's latest write recorded
(:func:`find_skip`); when they are equal the plan is skipped, and the step says so (``plan_skipped_v1``).
Reading versions and the output's history opens each table's log only: no data file is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from deltalake import DeltaTable

from codeanatomy_assets.spec import PlanSpec

FINGERPRINT_KEY: Final = "codeanatomy.inputs_fingerprint"
"""The commit metadata key of the fingerprint a result was computed from."""
SQL_HASH_KEY: Final = "codeanatomy.sql_hash"
INPUTS_KEY: Final = "codeanatomy.inputs"
"""The inputs' Delta versions a result was computed from, as JSON ``{name: version}``."""
RUN_ID_KEY: Final = "codeanatomy.run_id"
FINGERPRINT_FORMAT: Final = 1
"""Part of every fingerprint: a change of what it covers changes every fingerprint (each plan runs once)."""
DATA_PRESERVING: Final = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
"""Commits that leave a table's rows as they were: the fingerprint of the write before them still holds."""
HISTORY_DEPTH: Final = 10
"""How many of the output's latest commits are read to find its latest write."""

Locate = Callable[[str], tuple[str, Mapping[str, str]]]
"""Where a table lives: its URI and storage options (``pipeline.dataset_uri`` bound to a spec and home)."""


def sql_hash(sql: str) -> str:
    """The sha256 of a plan's SQL text (hex)."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def code_version(sql: str) -> str:
    """A plan asset's Dagster code version: a short sha of its SQL."""
    return sql_hash(sql)[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class InputsFingerprint:
    """What a plan's result is computed from: its SQL's hash and each input's Delta version."""

    sql_hash: str
    inputs: Mapping[str, int | None]
    """Each input table's Delta version (``None``: unknown, a fingerprint that never matches)."""

    @classmethod
    def of(cls, sql: str, inputs: Mapping[str, int | None]) -> InputsFingerprint:
        return cls(sql_hash=sql_hash(sql), inputs=dict(sorted(inputs.items())))

    @property
    def digest(self) -> str:
        """The sha256 over the format, the SQL's hash and the sorted ``name=version`` pairs."""
        text = json.dumps([FINGERPRINT_FORMAT, self.sql_hash, sorted(self.inputs.items())])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def complete(self) -> bool:
        """Whether every input's version is known (only then can it be equal to a recorded one)."""
        return all(version is not None for version in self.inputs.values())

    def commit_metadata(self, run_id: str) -> dict[str, str]:
        """The custom metadata of the commit that writes a result computed from these inputs."""
        return {
            FINGERPRINT_KEY: self.digest,
            SQL_HASH_KEY: self.sql_hash,
            INPUTS_KEY: json.dumps(dict(self.inputs), sort_keys=True),
            RUN_ID_KEY: run_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSkip:
    """A plan not run again: its output was computed from the SQL and input versions it has now."""

    fingerprint: InputsFingerprint
    output_version: int
    """The output table's current Delta version (its data version in Dagster)."""
    previous_run_id: str | None
    """The run whose write recorded the fingerprint (``codeanatomy.run_id``), when recorded."""

    @property
    def reason(self) -> str:
        """Why it was skipped, naming each input's version (``name@version``)."""
        inputs = ", ".join(f"{name}@{version}" for name, version in self.fingerprint.inputs.items())
        return (
            f"its SQL and input versions ({inputs or 'no inputs'}) are those "
            f"its output (version {self.output_version}) was computed from"
        )

    def payload(self) -> dict[str, Any]:
        """The payload of ``plan_skipped_v1``."""
        return {
            "reason": self.reason,
            "sql_hash": self.fingerprint.sql_hash,
            "inputs": dict(self.fingerprint.inputs),
            "output_version": self.output_version,
            "previous_run_id": self.previous_run_id,
        }


def current_fingerprint(plan: PlanSpec, locate: Locate) -> InputsFingerprint:
    """The fingerprint of ``plan`` over its inputs' current Delta versions (an unreadable one: ``None``)."""
    return InputsFingerprint.of(plan.sql, {name: delta_version(*locate(name)) for name in plan.inputs})


def find_skip(plan: PlanSpec, locate: Locate) -> PlanSkip | None:
    """The skip of ``plan`` when its output's latest write recorded the fingerprint its inputs have now;
    ``None`` when it must run (no output, no fingerprint recorded, inputs or SQL changed, unreadable)."""
    current = current_fingerprint(plan, locate)
    if not current.complete:
        return None
    recorded = _latest_write(*locate(plan.name))
    if recorded is None or recorded[1].get(FINGERPRINT_KEY) != current.digest:
        return None
    output_version, metadata = recorded
    run_id = metadata.get(RUN_ID_KEY)
    return PlanSkip(
        fingerprint=current, output_version=output_version, previous_run_id=str(run_id) if run_id else None
    )


def delta_version(uri: str, options: Mapping[str, str]) -> int | None:
    """The Delta table's current version; ``None`` when it cannot be read (a plan then runs, a build is
    not up to date)."""
    try:
        return DeltaTable(uri, storage_options=dict(options) or None).version()
    except Exception:  # noqa: BLE001 - not readable here: the plan runs, and its registration says why
        return None


def _latest_write(uri: str, options: Mapping[str, str]) -> tuple[int, Mapping[str, Any]] | None:
    """The table's current version and the commit info of its latest write (past commits that keep its
    rows, such as OPTIMIZE); ``None`` when there is no table or no such write among its latest commits."""
    try:
        table = DeltaTable(uri, storage_options=dict(options) or None)
        history = table.history(HISTORY_DEPTH)
    except Exception:  # noqa: BLE001 - no output yet (or unreadable): the plan runs and writes it
        return None
    for commit in history:  # newest first
        if commit.get("operation") not in DATA_PRESERVING:
            return table.version(), commit
    return None
