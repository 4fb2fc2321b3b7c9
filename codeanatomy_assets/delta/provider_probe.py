"""Read probes: one provider mode registered and read a little, to see whether it serves the table.

A probe reads data: an unfiltered projection with LIMIT (``count(*)`` would be answered from file
statistics); ``delta_scan_stream`` reads the first batch of deltalake's scan. :meth:`TableTrial.run`
registers one mode and probes it; a mode whose probe fails is deregistered again.

Process safety (measured with datafusion 55 / deltalake 1.6.6 / pyarrow 26): a DataFusion query over a pyarrow
dataset that stops early (LIMIT) or fails can abort (exit 134) or hang the interpreter at exit. The
``pyarrow_dataset`` probe therefore runs in a child process, :mod:`codeanatomy_assets.delta.probe` run as
``python -m`` (:func:`probe_dataset_isolated`); a session that keeps such a dataset registered should read it
without LIMIT or drop the ``SessionContext`` before exit. Provider and scan-stream reads exit cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import datafusion
import pyarrow as pa

from codeanatomy_assets.delta.mode_registration import register_mode
from codeanatomy_assets.delta.probe import PROBE_RESULT_PREFIX
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.pruned import quote_ident
from codeanatomy_assets.delta.registration_errors import (
    ERROR_TEXT_LIMIT,
    qualified_type,
    redact,
    redacted_error,
)
from codeanatomy_assets.delta.registration_records import ProbeResult, RegistrationPolicy
from codeanatomy_assets.errors import clean_error_text

if TYPE_CHECKING:
    from deltalake import DeltaTable

PROBE_MODULE: Final = "codeanatomy_assets.delta.probe"
"""The isolated ``pyarrow_dataset`` probe, run as ``python -m`` in a child process."""

_SQL_PROBED: Final = frozenset({ProviderMode.DELTA_TABLE_PROVIDER, ProviderMode.DELTA_PRUNED_PARQUET})
"""Modes probed with SQL in this process once registered (``pyarrow_dataset`` too when not isolated)."""


# ----------------------------------------------------------------------------------------------------
# The probes


def probe_sql(ctx: datafusion.SessionContext, name: str, rows: int) -> int:
    """Rows read by ``SELECT * FROM name LIMIT rows``."""
    # An unfiltered projection with LIMIT reads data; count(*) would be answered from statistics.
    return ctx.sql(f"SELECT * FROM {quote_ident(name)} LIMIT {int(rows)}").to_arrow_table().num_rows


def probe_scan_stream(table: DeltaTable) -> int:
    """Rows of the first batch of deltalake's own scan of ``table``."""
    reader = pa.RecordBatchReader.from_stream(table.scan())
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        return 0
    return batch.num_rows


@dataclass(frozen=True, slots=True)
class IsolatedAnswer:
    """What the isolated probe answered: rows read, or the error's type and (redacted) text."""

    rows: int | None = None
    error_type: str | None = None
    error: str | None = None


def _child_env() -> dict[str, str]:
    """This environment with the package's root first on ``PYTHONPATH`` (the child imports the same code)."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _read_answer(
    done: subprocess.CompletedProcess[str], storage_options: Mapping[str, str] | None
) -> IsolatedAnswer:
    """The child's ``PROBE_RESULT`` line, or the way it exited without one."""
    for line in done.stdout.splitlines():
        if line.startswith(PROBE_RESULT_PREFIX):
            result = json.loads(line.removeprefix(PROBE_RESULT_PREFIX))
            if result.get("ok"):
                return IsolatedAnswer(rows=int(result["rows"]))
            text = clean_error_text(f"{result.get('error_type')}: {result.get('error')}", ERROR_TEXT_LIMIT)
            return IsolatedAnswer(
                error_type=str(result.get("error_type")), error=redact(text, storage_options)
            )
    tail = redact(clean_error_text(done.stderr)[-400:], storage_options)
    return IsolatedAnswer(
        error_type="ProbeProcessError", error=f"isolated probe exited with code {done.returncode}: {tail}"
    )


def probe_dataset_isolated(
    uri: str, storage_options: Mapping[str, str] | None, rows: int, timeout_s: float
) -> IsolatedAnswer:
    """The ``pyarrow_dataset`` probe of the table at ``uri``, run in a child process."""
    request = json.dumps({"uri": uri, "storage_options": dict(storage_options or {}), "rows": rows})
    try:
        done = subprocess.run(
            [sys.executable, "-m", PROBE_MODULE],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return IsolatedAnswer(
            error_type="TimeoutExpired", error=f"isolated probe did not finish within {timeout_s:.0f} s"
        )
    return _read_answer(done, storage_options)


# ----------------------------------------------------------------------------------------------------
# Trying a mode


@dataclass(frozen=True, slots=True)
class ModeTrial:
    """One mode tried: its probe (``None`` when not probed) and, when registered, what serves the table."""

    probe: ProbeResult | None = None
    provider_class: str | None = None
    ffi_capsule_present: bool = False

    @property
    def ok(self) -> bool:
        """Whether the mode serves the table (registered, and its probe, if any, read data)."""
        return self.probe is None or self.probe.ok


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _failed(
    mode: ProviderMode, started: float, error: str, error_type: str | None, *, isolated: bool
) -> ProbeResult:
    """A failed probe of ``mode`` that started at ``started`` (``time.perf_counter``)."""
    return ProbeResult(
        mode=mode, ok=False, ms=_elapsed_ms(started), error=error, error_type=error_type, isolated=isolated
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TableTrial:
    """One opened table tried in the modes of a policy: where it is registered and how it is probed."""

    ctx: datafusion.SessionContext
    name: str
    uri: str
    table: DeltaTable
    storage_options: Mapping[str, str] | None
    probe: bool
    policy: RegistrationPolicy

    def run(self, mode: ProviderMode) -> ModeTrial:
        """Register (and probe) ``mode``; a failed mode is deregistered again."""
        started = time.perf_counter()
        isolated = self.probe and mode is ProviderMode.PYARROW_DATASET and self.policy.isolate_dataset_probe
        try:
            answer = self._probe_isolated() if isolated else IsolatedAnswer()
            if answer.error is not None:
                return ModeTrial(probe=_failed(mode, started, answer.error, answer.error_type, isolated=True))
            cls, ffi, rows = self._register_and_probe(mode, answer.rows)
        except Exception as exc:  # noqa: BLE001 - the probe failing is the point of probing: recorded, then fall back
            self._deregister()
            error = redacted_error(exc, self.storage_options)
            return ModeTrial(probe=_failed(mode, started, error, qualified_type(exc), isolated=isolated))
        if not self.probe:
            return ModeTrial(provider_class=cls, ffi_capsule_present=ffi)
        ok = ProbeResult(mode=mode, ok=True, ms=_elapsed_ms(started), rows=rows, isolated=isolated)
        return ModeTrial(probe=ok, provider_class=cls, ffi_capsule_present=ffi)

    def _probe_isolated(self) -> IsolatedAnswer:
        policy = self.policy
        return probe_dataset_isolated(
            self.uri, self.storage_options, policy.probe_rows, policy.probe_timeout_s
        )

    def _register_and_probe(self, mode: ProviderMode, rows: int | None) -> tuple[str, bool, int | None]:
        """Register ``mode`` and probe it where the probe runs in this process: (class, FFI, rows read)."""
        if self.probe and mode is ProviderMode.DELTA_SCAN_STREAM:
            rows = probe_scan_stream(self.table)
        cls, ffi = register_mode(
            self.ctx,
            self.name,
            mode,
            self.table,
            self.uri,
            materialize=self.policy.materialize_scan_stream,
            storage_options=self.storage_options,
        )
        if self.probe and self._probes_with_sql(mode):
            rows = probe_sql(self.ctx, self.name, self.policy.probe_rows)
        return cls, ffi, rows

    def _probes_with_sql(self, mode: ProviderMode) -> bool:
        if mode is ProviderMode.PYARROW_DATASET:
            return not self.policy.isolate_dataset_probe
        return mode in _SQL_PROBED

    def _deregister(self) -> None:
        quoted = quote_ident(self.name)
        if self.ctx.table_exist(quoted):
            self.ctx.deregister_table(quoted)


__all__ = [
    "PROBE_MODULE",
    "IsolatedAnswer",
    "ModeTrial",
    "TableTrial",
    "probe_dataset_isolated",
    "probe_scan_stream",
    "probe_sql",
]
