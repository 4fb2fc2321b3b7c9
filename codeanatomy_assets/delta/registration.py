"""The provider policy, registration into a ``SessionContext``, and read probes.

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

A mode that would return wrong data is never registered: ``pyarrow_dataset`` is refused for column mapping and
deletion vectors by the static rules, whatever its probe says.

Process safety (measured with datafusion 55 / deltalake 1.6.6 / pyarrow 26): a DataFusion query over a pyarrow
dataset that stops early (LIMIT) or fails can abort (exit 134) or hang the interpreter at exit. The
``pyarrow_dataset`` probe therefore runs in a child process; a session that keeps such a dataset registered
should read it without LIMIT or drop the ``SessionContext`` before exit. Provider and scan-stream reads exit
cleanly.

The child runs :mod:`codeanatomy_assets.delta.probe` (``python -m``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import datafusion
import pyarrow as pa

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.delta.protocol import (
    READ_MODES,
    Compatibility,
    TableProtocol,
    check_all,
    snapshot_unsupported,
)
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import (
    READER_DESCRIPTION,
    PinnedSnapshot,
    open_snapshot,
    quote_ident,
    register_files,
)
from codeanatomy_assets.delta.registration_events import build_events
from codeanatomy_assets.delta.storage import is_object_store_uri, local_table_path
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import DatasetError, ProtocolIncompatibleError, clean_error_text

if TYPE_CHECKING:
    from deltalake import DeltaTable

_PROBE_MODULE: Final = "codeanatomy_assets.delta.probe"
"""The isolated ``pyarrow_dataset`` probe, run as ``python -m`` in a child process."""

_PROVIDER_CLASS_SCAN_STREAM: Final = "datafusion MemTable <- deltalake.DeltaTable.scan"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationPolicy:
    """Which modes registration may use, in order, and how it probes them."""

    modes: tuple[ProviderMode, ...] = READ_MODES
    """Tried in order; the first is the default (an info event), any other a fallback (a warn event)."""
    allow_fallback: bool = True
    """When false only ``modes[0]`` is tried."""
    probe_rows: int = 5
    isolate_dataset_probe: bool = True
    """Run the ``pyarrow_dataset`` probe in a child process (see the module docstring)."""
    probe_timeout_s: float = 120.0
    materialize_scan_stream: bool = True
    """Register ``delta_scan_stream`` tables (false: decide and probe only, as the doctor does)."""


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
    """The outcome of the provider policy for one table (what :func:`decide_provider` returns)."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """What :func:`register_dataset` did."""

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


# ----------------------------------------------------------------------------------------------------
# Small helpers


def redact(text: str, storage_options: Mapping[str, str] | None) -> str:
    """``text`` with every storage option value (and URI user info) replaced by ``***``.

    >>> redact("key=sekrit at s3://u:pw@b/t", {"AWS_SECRET_ACCESS_KEY": "sekrit"})
    'key=*** at s3://***@b/t'
    """
    for value in sorted(
        (v for v in (storage_options or {}).values() if v and len(v) >= 3), key=len, reverse=True
    ):
        text = text.replace(value, "***")
    return " ".join(_redact_userinfo(token) for token in text.split(" "))


def _redact_userinfo(token: str) -> str:
    if "://" in token and "@" in token.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = token.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return token


def _error_text(exc: BaseException, storage_options: Mapping[str, str] | None) -> str:
    text = clean_error_text(str(exc))
    return redact(f"{type(exc).__name__}: {text[:600]}", storage_options)


def _qualified_type(exc: BaseException) -> str:
    """``error.type``: the fully qualified class name, builtins unqualified (diagnostics policy)."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _known_cause(mode: ProviderMode, error: str | None) -> str:
    """A measured explanation for a known probe failure, appended to the fallback reason."""
    text = error or ""
    if mode is ProviderMode.DELTA_TABLE_PROVIDER and "No suitable object store found" in text:
        return (
            " (known: deltalake 1.6.6's FFI provider does not use the session's object stores, also after "
            "register_object_store; see docs/architecture/scan_strategy.md, 'Object stores and the provider')"
        )
    if mode is ProviderMode.DELTA_TABLE_PROVIDER and "CooperativeExec" in text:
        return (
            " (known: the provider cannot scan deletion vectors without a filter; "
            "see docs/architecture/scan_strategy.md, 'Deletion vectors through the provider')"
        )
    return ""


_PERCENT_ESCAPE_RE: Final = re.compile(r"%[0-9A-Fa-f]{2}")


def _percent_escape_cause(uri: str) -> str:
    """Why deltalake cannot open a local folder whose name holds a percent-escape (``a%20b``), if it does.

    deltalake decodes such a sequence in a path (and in a ``file://`` URI once more), so it looks for
    another folder (``a b``). Measured with deltalake 1.6.6: ``%`` alone, spaces, ``?``, ``#`` and glob
    characters are fine.
    """
    local = local_table_path(uri)
    if local is None or not _PERCENT_ESCAPE_RE.search(local):
        return ""
    return (
        " (known: deltalake decodes percent-escapes such as '%20' in a local path and looks for another "
        "folder: rename the folder or a parent so that no '%' is followed by two hex digits)"
    )


def _open_table(
    uri: str, storage_options: Mapping[str, str] | None, version: int | None = None
) -> DeltaTable:
    from deltalake import DeltaTable

    return DeltaTable(
        uri, version=version, storage_options=dict(storage_options) if storage_options else None
    )


def _pyarrow_filesystem(uri: str) -> Any:
    """A native pyarrow filesystem rooted at a local table (``None``: let deltalake supply its own)."""
    local = local_table_path(uri)
    if local is None:
        return None
    import pyarrow.fs as pafs

    return pafs.SubTreeFileSystem(local, pafs.LocalFileSystem())


def build_pyarrow_dataset(table: DeltaTable, uri: str) -> Any:
    """``DeltaTable.to_pyarrow_dataset`` with a native pyarrow filesystem for local tables."""
    return table.to_pyarrow_dataset(filesystem=_pyarrow_filesystem(uri))


def register_object_store(
    ctx: datafusion.SessionContext, uri: str, storage_options: Mapping[str, str] | None
) -> bool:
    """Register the object store of an s3/gs/az ``uri`` with ``ctx`` (false for local paths).

    Raises ``ValueError``/``Exception`` from datafusion when the options cannot build a store.
    """
    if not is_object_store_uri(uri):
        return False
    from datafusion import object_store

    options = {k.lower(): v for k, v in (storage_options or {}).items()}
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    bucket = parts.netloc.split("@", 1)[0]

    def opt(*names: str) -> str | None:
        return next((options[n.lower()] for n in names if options.get(n.lower())), None)

    store: Any
    if scheme in {"s3", "s3a"}:
        store = object_store.AmazonS3(
            bucket_name=bucket,
            region=opt("aws_region", "aws_default_region", "region"),
            access_key_id=opt("aws_access_key_id", "access_key_id"),
            secret_access_key=opt("aws_secret_access_key", "secret_access_key"),
            session_token=opt("aws_session_token", "session_token"),
            endpoint=opt("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"),
            allow_http=(opt("aws_allow_http", "allow_http") or "").lower() in {"1", "true", "yes"},
        )
    elif scheme in {"gs", "gcs"}:
        store = object_store.GoogleCloud(
            bucket_name=bucket,
            service_account_path=opt(
                "google_service_account", "google_service_account_path", "service_account"
            ),
        )
    else:
        account = opt("azure_storage_account_name", "account_name")
        if account is None and "@" in parts.netloc:
            account = parts.netloc.split("@", 1)[1].split(".", 1)[0]
        store = object_store.MicrosoftAzure(
            container_name=bucket,
            account=account,
            access_key=opt("azure_storage_account_key", "account_key", "access_key"),
            bearer_token=opt("azure_storage_token", "bearer_token"),
            client_id=opt("azure_client_id", "client_id"),
            client_secret=opt("azure_client_secret", "client_secret"),
            tenant_id=opt("azure_tenant_id", "tenant_id"),
        )
    ctx.register_object_store(f"{parts.scheme}://{bucket}", store, None)
    return True


def _first_column(ctx: datafusion.SessionContext, quoted: str) -> str | None:
    names = ctx.table(quoted).schema().names
    return names[0] if names else None


def filter_reaches_scan(ctx: datafusion.SessionContext, name: str) -> bool | None:
    """Whether ``WHERE <first column> IS NOT NULL`` is pushed into the table scan of ``name``.

    Reads the optimized logical plan: ``TableScan: t ... full_filters=[...]`` or ``partial_filters=[...]``
    means the provider receives the filter; a ``Filter`` node above a bare ``TableScan`` means it does not.
    ``None`` when the table has no column.
    """
    quoted = quote_ident(name)
    column = _first_column(ctx, quoted)
    if column is None:
        return None
    plan = ctx.sql(f"SELECT * FROM {quoted} WHERE {quote_ident(column)} IS NOT NULL").optimized_logical_plan()
    scans = [
        line.strip() for line in plan.display_indent().splitlines() if line.strip().startswith("TableScan:")
    ]
    return any("full_filters=" in line or "partial_filters=" in line for line in scans)


# ----------------------------------------------------------------------------------------------------
# Probes


def _probe_sql(ctx: datafusion.SessionContext, name: str, rows: int) -> int:
    # An unfiltered projection with LIMIT reads data; count(*) would be answered from statistics.
    return ctx.sql(f"SELECT * FROM {quote_ident(name)} LIMIT {int(rows)}").to_arrow_table().num_rows


def _probe_scan_stream(table: DeltaTable) -> int:
    reader = pa.RecordBatchReader.from_stream(table.scan())
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        return 0
    return batch.num_rows


def _probe_dataset_isolated(
    uri: str, storage_options: Mapping[str, str] | None, rows: int, timeout_s: float
) -> tuple[int | None, str | None, str | None]:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    request = json.dumps({"uri": uri, "storage_options": dict(storage_options or {}), "rows": rows})
    try:
        done = subprocess.run(
            [sys.executable, "-m", _PROBE_MODULE],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "TimeoutExpired", f"isolated probe did not finish within {timeout_s:.0f} s"
    for line in done.stdout.splitlines():
        if line.startswith("PROBE_RESULT "):
            result = json.loads(line.removeprefix("PROBE_RESULT "))
            if result.get("ok"):
                return int(result["rows"]), None, None
            error = redact(
                clean_error_text(f"{result.get('error_type')}: {result.get('error')}", 600), storage_options
            )
            return None, str(result.get("error_type")), error
    tail = redact(clean_error_text(done.stderr)[-400:], storage_options)
    return None, "ProbeProcessError", f"isolated probe exited with code {done.returncode}: {tail}"


# ----------------------------------------------------------------------------------------------------
# The policy


@dataclass(slots=True)
class _Attempts:
    """Mutable bookkeeping while walking the policy (internal)."""

    probes: list[ProbeResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    compatibility: dict[ProviderMode, Compatibility] = field(default_factory=dict)


def _damaged_files(snapshot: PinnedSnapshot) -> list[str]:
    """Live files of a local snapshot that are missing or whose size is not the logged one.

    Checked one by one at registration: a probe reads only a few files, and deltalake refuses a file whose
    size differs from its add action, which DataFusion's reader would read as it is.
    """
    damaged: list[str] = []
    for file in snapshot.files:
        # file.uri keeps the table folder percent-encoded (a space as %20): open the decoded path.
        path = file.path or local_table_path(file.uri) or file.uri
        if not os.path.isfile(path):
            damaged.append(f"{path} (missing)")
        elif file.size is not None and os.path.getsize(path) != file.size:
            damaged.append(f"{path} ({os.path.getsize(path)} bytes, the log says {file.size})")
    return damaged


def register_pruned_parquet(
    ctx: datafusion.SessionContext,
    name: str,
    uri: str,
    *,
    version: int | None,
    storage_options: Mapping[str, str] | None = None,
) -> PinnedSnapshot:
    """Register every live file of the snapshot at ``version`` as ``name`` (``delta_pruned_parquet``).

    Raises ``FileNotFoundError`` when a live file is missing or not the size the log records, deltalake's
    errors when the table cannot be opened at that version.
    """
    snapshot = open_snapshot(uri, version=version, storage_options=storage_options)
    damaged = _damaged_files(snapshot)
    if damaged:
        raise FileNotFoundError(
            f"{len(damaged)} live data file(s) of version {snapshot.version} missing or damaged, "
            f"e.g. {damaged[0]}"
        )
    register_files(ctx, name, snapshot)
    return snapshot


def _register_mode(
    ctx: datafusion.SessionContext,
    name: str,
    mode: ProviderMode,
    table: DeltaTable,
    uri: str,
    *,
    materialize: bool,
    storage_options: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """Register ``table`` under ``name`` in ``mode``; returns (provider class, FFI capsule present)."""
    quoted = quote_ident(name)
    if ctx.table_exist(quoted):
        ctx.deregister_table(quoted)
    if mode is ProviderMode.DELTA_PRUNED_PARQUET:
        register_pruned_parquet(ctx, name, uri, version=table.version(), storage_options=storage_options)
        return READER_DESCRIPTION, False
    if mode is ProviderMode.DELTA_TABLE_PROVIDER:
        ctx.register_table(quoted, table)
        cls = type(table)
        return f"{cls.__module__}.{cls.__qualname__}", hasattr(table, "__datafusion_table_provider__")
    if mode is ProviderMode.PYARROW_DATASET:
        dataset = build_pyarrow_dataset(table, uri)
        ctx.register_dataset(quoted, dataset)
        cls = type(dataset)
        return f"{cls.__module__}.{cls.__qualname__}", False
    if mode is ProviderMode.DELTA_SCAN_STREAM:
        if materialize:
            arrow = pa.table(pa.RecordBatchReader.from_stream(table.scan()))
            batches = arrow.to_batches() or [pa.RecordBatch.from_pylist([], schema=arrow.schema)]
            ctx.register_record_batches(quoted, [batches])
        return _PROVIDER_CLASS_SCAN_STREAM, False
    raise ValueError(f"mode {mode.value} cannot be registered")


def _with_snapshot_rules(
    verdict: Compatibility, uri: str, table: DeltaTable, storage_options: Mapping[str, str] | None
) -> Compatibility:
    """``verdict`` after the rules that look at the snapshot, not the protocol (``delta_pruned_parquet``)."""
    mode = verdict.mode
    if mode is not ProviderMode.DELTA_PRUNED_PARQUET:
        return verdict
    if is_object_store_uri(uri):
        blocked = snapshot_unsupported(mode, object_store=True)
    else:
        try:
            snapshot = open_snapshot(uri, version=table.version(), storage_options=storage_options)
        except Exception:  # noqa: BLE001 - not a rule: registering the mode fails alike, and that is recorded as its probe
            return verdict
        blocked = snapshot_unsupported(
            mode,
            object_store=False,
            files_with_deletion_vectors=snapshot.files_with_deletion_vectors,
        )
    if not blocked:
        return verdict
    return replace(verdict, compatible=False, unsupported=(*verdict.unsupported, *blocked))


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
    modes = policy.modes if policy.allow_fallback else policy.modes[:1]
    static = check_all(TableProtocol.from_health(health), policy.modes)
    attempts = _Attempts(compatibility=dict(static))
    object_store_registered = False
    if is_object_store_uri(uri):
        try:
            object_store_registered = register_object_store(ctx, uri, storage_options)
        except Exception as exc:  # noqa: BLE001 - recorded as a reason; the provider probe will show the consequence
            attempts.reasons.append(f"object store not registered: {_error_text(exc, storage_options)}")
    table: DeltaTable | None = None
    open_error: str | None = None
    open_error_type: str | None = None
    try:
        table = _open_table(uri, storage_options)
    except Exception as exc:  # noqa: BLE001 - deltalake refusing the table is a probe failure of every mode
        open_error = f"deltalake could not open the table: {_error_text(exc, storage_options)}"
        open_error += _percent_escape_cause(uri)
        open_error_type = _qualified_type(exc)

    chosen: ProviderMode = ProviderMode.NONE
    provider_class: str | None = None
    ffi = False
    for mode in modes:
        verdict = static[mode]
        if verdict.compatible and table is not None:
            verdict = _with_snapshot_rules(verdict, uri, table, storage_options)
            attempts.compatibility[mode] = verdict
        if not verdict.compatible:
            attempts.reasons.append(f"{mode.value} unsupported: {', '.join(verdict.unsupported)}")
            continue
        if table is None:
            assert open_error is not None  # set whenever the table did not open
            attempts.probes.append(
                ProbeResult(mode=mode, ok=False, ms=0.0, error=open_error, error_type=open_error_type)
            )
            attempts.compatibility[mode] = verdict.with_probe_error(open_error)
            if open_error not in attempts.reasons:  # the same for every mode: said once
                attempts.reasons.append(open_error)
            continue
        result, cls, has_ffi = _try_mode(
            ctx,
            name=name,
            uri=uri,
            mode=mode,
            table=table,
            storage_options=storage_options,
            probe=probe,
            policy=policy,
        )
        if result is not None:
            attempts.probes.append(result)
        if result is None or result.ok:
            chosen, provider_class, ffi = mode, cls, has_ffi
            break
        attempts.compatibility[mode] = verdict.with_probe_error(result.error)
        attempts.reasons.append(
            f"{mode.value} probe failed: {result.error}{_known_cause(mode, result.error)}"
        )

    scan_pushdown: bool | None = None
    registered_here = chosen is not ProviderMode.NONE and not (
        chosen is ProviderMode.DELTA_SCAN_STREAM and not policy.materialize_scan_stream
    )
    if registered_here:
        try:
            scan_pushdown = filter_reaches_scan(ctx, name)
        except Exception as exc:  # noqa: BLE001 - a planning failure here is reported, the registration stands
            attempts.reasons.append(f"filter pushdown check failed: {_error_text(exc, storage_options)}")
    # delta_pruned_parquet receives every plan's filters by construction: each plan reads only the
    # files Delta's log statistics keep for them (engine.pruning.bind_pruned_tables).
    filter_pushdown = True if chosen is ProviderMode.DELTA_PRUNED_PARQUET else scan_pushdown
    version = None
    if table is not None:
        version = table.version()
    elif health.latest_version is not None:
        version = health.latest_version
    default = modes[0] if modes else ProviderMode.NONE
    if chosen is ProviderMode.NONE and health.unreadable_reason is not None:
        attempts.reasons = [health.unreadable_reason]  # no protocol: every mode said protocol_unknown
    fallback_reason = (
        "; ".join(attempts.reasons) if (chosen is not default or chosen is ProviderMode.NONE) else None
    )
    return ProviderDecision(
        dataset=name,
        uri=uri,
        mode=chosen,
        provider_class=provider_class,
        ffi_capsule_present=ffi,
        object_store_registered=object_store_registered,
        fallback_reason=fallback_reason or None,
        filter_pushdown=filter_pushdown,
        probes=tuple(attempts.probes),
        compatibility=attempts.compatibility,
        version=version,
        default_mode=default,
        probed=probe,
        scan_filter_pushdown=scan_pushdown,
    )


def _try_mode(
    ctx: datafusion.SessionContext,
    *,
    name: str,
    uri: str,
    mode: ProviderMode,
    table: DeltaTable,
    storage_options: Mapping[str, str] | None,
    probe: bool,
    policy: RegistrationPolicy,
) -> tuple[ProbeResult | None, str | None, bool]:
    """Register (and probe) one mode; a failed mode is deregistered again."""
    quoted = quote_ident(name)
    started = time.perf_counter()
    rows: int | None = None
    isolated = False
    try:
        if probe and mode is ProviderMode.PYARROW_DATASET and policy.isolate_dataset_probe:
            isolated = True
            rows, error_type, error = _probe_dataset_isolated(
                uri, storage_options, policy.probe_rows, policy.probe_timeout_s
            )
            if error is not None:
                ms = (time.perf_counter() - started) * 1000
                return (
                    ProbeResult(
                        mode=mode, ok=False, ms=ms, error=error, error_type=error_type, isolated=True
                    ),
                    None,
                    False,
                )
        if probe and mode is ProviderMode.DELTA_SCAN_STREAM:
            rows = _probe_scan_stream(table)
        cls, ffi = _register_mode(
            ctx,
            name,
            mode,
            table,
            uri,
            materialize=policy.materialize_scan_stream,
            storage_options=storage_options,
        )
        if probe and mode in (ProviderMode.DELTA_TABLE_PROVIDER, ProviderMode.DELTA_PRUNED_PARQUET):
            rows = _probe_sql(ctx, name, policy.probe_rows)
        if probe and mode is ProviderMode.PYARROW_DATASET and not policy.isolate_dataset_probe:
            rows = _probe_sql(ctx, name, policy.probe_rows)
    except Exception as exc:  # noqa: BLE001 - the probe failing is the point of probing: recorded, then fall back
        if ctx.table_exist(quoted):
            ctx.deregister_table(quoted)
        ms = (time.perf_counter() - started) * 1000
        return (
            ProbeResult(
                mode=mode,
                ok=False,
                ms=ms,
                error=_error_text(exc, storage_options),
                error_type=_qualified_type(exc),
                isolated=isolated,
            ),
            None,
            False,
        )
    if not probe:
        return None, cls, ffi
    ms = (time.perf_counter() - started) * 1000
    return ProbeResult(mode=mode, ok=True, ms=ms, rows=rows, isolated=isolated), cls, ffi


# ----------------------------------------------------------------------------------------------------
# Public entry points


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
        if health.unreadable_reason is not None:  # no protocol at all: the log's reason is the root cause
            raise DatasetError(health.unreadable_reason, dataset=name, uri=redact(uri, storage_options))
        # Refused by rules (protocol or snapshot), not by failed probes: the protocol is the reason.
        verdicts = [decision.compatibility.get(m) or check_all(None, (m,))[m] for m in policy.modes]
        if all(c.unsupported for c in verdicts):
            unsupported = tuple(sorted({u for c in verdicts for u in c.unsupported}))
            raise ProtocolIncompatibleError(
                f"no provider mode supports the table's protocol (unsupported: {', '.join(unsupported)})",
                dataset=name,
                uri=redact(uri, storage_options),
                unsupported=unsupported,
            )
        log_errors = [f.message for f in health.findings if f.severity is Severity.ERROR]
        damage = f"Delta log: {log_errors[0]} ({len(log_errors)} error(s)); " if log_errors else ""
        raise DatasetError(
            f"{damage}no provider mode could read the table: {decision.fallback_reason}",
            dataset=name,
            uri=redact(uri, storage_options),
        )
    registered = decision_to_registered(decision, storage_options)
    return Registration(
        registered=registered,
        health=health,
        compatibility=decision.compatibility,
        events=events,
        probes=decision.probes,
        filter_pushdown=decision.filter_pushdown,
    )


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
        if table.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET and table.version is not None:
            # The pinned snapshot is loaded once per process: opening the table again (a log replay per
            # input per plan) is not needed to read its files.
            register_pruned_parquet(
                ctx, table.dataset, table.uri, version=table.version, storage_options=options
            )
            return
        register_object_store(ctx, table.uri, options)
        delta_table = _open_table(table.uri, options, version=table.version)
        _register_mode(
            ctx,
            table.dataset,
            table.provider_mode,
            delta_table,
            table.uri,
            materialize=True,
            storage_options=options,
        )
    except DatasetError:
        raise
    except Exception as exc:  # re-raised with the dataset's context
        raise DatasetError(
            f"re-registration as {table.provider_mode.value} failed: {_error_text(exc, options)}",
            dataset=table.dataset,
            uri=redact(table.uri, options),
        ) from exc


def decision_to_registered(
    decision: ProviderDecision, storage_options: Mapping[str, str] | None
) -> RegisteredTable:
    """The :class:`RegisteredTable` a decision stands for."""
    return RegisteredTable(
        dataset=decision.dataset,
        uri=decision.uri,
        provider_mode=decision.mode,
        provider_class=decision.provider_class or "",
        protocol_compatible=decision.protocol_compatible,
        version=decision.version,
        storage_options=dict(storage_options or {}),
        fallback_reason=decision.fallback_reason,
    )


__all__ = [
    "ProbeResult",
    "ProviderDecision",
    "Registration",
    "RegistrationPolicy",
    "build_pyarrow_dataset",
    "decide_provider",
    "decision_to_registered",
    "filter_reaches_scan",
    "quote_ident",
    "redact",
    "register_dataset",
    "register_for_plan",
    "register_object_store",
    "register_pruned_parquet",
]
