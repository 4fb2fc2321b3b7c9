"""What changed since the last run: two runs' report sections compared, change by change.

The current run is compared with the previous completed run of the same pipeline (same label; the
runs' ``metadata.spec`` too when both recorded it), or with a pinned baseline run. A plan the current run
skipped (its SQL and inputs unchanged) is not compared: nothing about it changed. Each change names the
asset it is about, with a severity and a category:

============================  ========  ===================  ==============================================
change                        severity  category             when
============================  ========  ===================  ==============================================
``plan_changed``              info      plan_phase           a phase's plan fingerprint differs
``phase_slower``              warn      plan_phase           a phase took ``phase_ratio`` x as long and at
                                                             least ``phase_floor_ms`` more (noise guard)
``pruning_changed``           warn      scan_pruning         a scan reads a larger share of the table's
                                                             files, or lost its pruning (``pruning_lost``)
``provider_mode_changed``     warn      datafusion_provider  another reader serves a dataset
``protocol_drift``            warn      delta_protocol       reader/writer version or table features differ
``rows_changed``              info      dataset              rows differ by at least ``rows_ratio``
``diagnostic_new``            warn      (the diagnostic's)   a warn/error (name, code, asset) not in before
``diagnostic_gone``           info      (the diagnostic's)   a warn/error of before not in this run
============================  ========  ===================  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity


class ChangeKind(StrEnum):
    """What changed (closed vocabulary; see the module docstring)."""

    PLAN_CHANGED = "plan_changed"
    PHASE_SLOWER = "phase_slower"
    PRUNING_CHANGED = "pruning_changed"
    PROVIDER_MODE_CHANGED = "provider_mode_changed"
    PROTOCOL_DRIFT = "protocol_drift"
    ROWS_CHANGED = "rows_changed"
    DIAGNOSTIC_NEW = "diagnostic_new"
    DIAGNOSTIC_GONE = "diagnostic_gone"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeThresholds:
    """When a difference is a change: the noise guard of phase times and the row-count threshold."""

    phase_ratio: float = 1.5
    phase_floor_ms: float = 100.0
    rows_ratio: float = 0.10


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One change of one asset between the two runs."""

    kind: ChangeKind
    severity: Severity
    category: Category
    asset: str
    message: str
    before: Any = None
    after: Any = None

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row of the report's ``changes`` section."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "category": self.category.value,
            "asset": self.asset,
            "message": self.message,
            "before": self.before,
            "after": self.after,
        }


# ----------------------------------------------------------------------------------------------------
# Which run to compare with


def same_pipeline(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs (store rows) are of the same pipeline: same label, same spec when both say."""
    spec_a, spec_b = (a.get("metadata") or {}).get("spec"), (b.get("metadata") or {}).get("spec")
    return a.get("label") == b.get("label") and (spec_a is None or spec_b is None or spec_a == spec_b)


def previous_run(store: DeltaDiagnosticsStore, run_id: str) -> str | None:
    """The latest completed run of the same pipeline that started before ``run_id``."""
    runs = store.read_runs()
    current = next((r for r in runs if r["run_id"] == run_id), None)
    if current is None:
        return None
    earlier = [
        r
        for r in runs
        if r["run_id"] != run_id
        and r.get("status") == "completed"
        and r["start_time_unix_ms"] < current["start_time_unix_ms"]
        and same_pipeline(r, current)
    ]
    return earlier[-1]["run_id"] if earlier else None


# ----------------------------------------------------------------------------------------------------
# Comparing two runs' sections


def _by(rows: Sequence[Mapping[str, Any]], *keys: str) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    return {tuple(r.get(k) for k in keys): r for r in rows}


def _plan_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: ChangeThresholds
) -> Iterator[Change]:
    old = _by(before["plan_phases"], "plan", "phase")
    for key, row in _by(after["plan_phases"], "plan", "phase").items():
        prior = old.get(key)
        if prior is None:
            continue
        plan, phase = key
        was, now = _shapes(prior, row)
        if was and now and was != now:
            yield Change(
                kind=ChangeKind.PLAN_CHANGED,
                severity=Severity.INFO,
                category=Category.PLAN_PHASE,
                asset=plan,
                message=f"{plan}: the {phase} plan changed",
                before=was,
                after=now,
            )
        yield from _slower(plan, phase, prior.get("duration_ms"), row.get("duration_ms"), limits)


def _shapes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Any, Any]:
    """The two phases' plans without file names; their plan hashes when a run recorded no shape."""
    key = "shape_hash" if before.get("shape_hash") and after.get("shape_hash") else "plan_hash"
    return before.get(key), after.get(key)


def _slower(plan: str, phase: str, was: Any, now: Any, limits: ChangeThresholds) -> Iterator[Change]:
    if not isinstance(was, int | float) or not isinstance(now, int | float):
        return
    if now >= was * limits.phase_ratio and now - was >= limits.phase_floor_ms:
        yield Change(
            kind=ChangeKind.PHASE_SLOWER,
            severity=Severity.WARN,
            category=Category.PLAN_PHASE,
            asset=plan,
            message=f"{plan}: {phase} took {now:.0f} ms, {now / max(was, 1e-9):.1f}x the {was:.0f} ms before",
            before=was,
            after=now,
        )


def _pruning_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[Change]:
    old = _by(before["scan_units"], "plan", "dataset", "predicate")
    for (plan, dataset, _), row in _by(after["scan_units"], "plan", "dataset", "predicate").items():
        prior = old.get((plan, dataset, row.get("predicate")))
        if prior is None:
            continue
        read_now, read_then = row.get("candidate_files"), prior.get("candidate_files")
        more = _read_share(row) > _read_share(prior)
        lost = bool(row.get("pruning_lost")) and not prior.get("pruning_lost")
        if more or lost:
            yield Change(
                kind=ChangeKind.PRUNING_CHANGED,
                severity=Severity.WARN,
                category=Category.SCAN_PRUNING,
                asset=plan,
                message=f"{plan}: the scan of {dataset} reads {read_now} files (before: {read_then})"
                + ("; pruning lost" if lost else ""),
                before=read_then,
                after=read_now,
            )


def _read_share(scan: Mapping[str, Any]) -> float:
    """The share of the table's live files a scan read (0 when not known): growing means pruning less."""
    read, total = scan.get("candidate_files"), scan.get("total_files")
    return read / total if isinstance(read, int) and isinstance(total, int) and total > 0 else 0.0


def _dataset_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: ChangeThresholds
) -> Iterator[Change]:
    yield from _field_changes(
        before, after, "provider_modes", ("provider_mode",), ChangeKind.PROVIDER_MODE_CHANGED
    )
    yield from _field_changes(
        before,
        after,
        "delta_log_health",
        ("min_reader_version", "min_writer_version", "table_features"),
        ChangeKind.PROTOCOL_DRIFT,
    )
    yield from _rows_changes(before, after, limits)


def _rows_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: ChangeThresholds
) -> Iterator[Change]:
    old = _by(before["datasets"], "dataset")
    for (dataset,), row in _by(after["datasets"], "dataset").items():
        was, now = (old.get((dataset,)) or {}).get("rows"), row.get("rows")
        if (
            isinstance(was, int)
            and isinstance(now, int)
            and abs(now - was) >= max(1, limits.rows_ratio * was)
        ):
            yield Change(
                kind=ChangeKind.ROWS_CHANGED,
                severity=Severity.INFO,
                category=Category.DATASET,
                asset=dataset,
                message=f"{dataset}: {now} rows (before: {was})",
                before=was,
                after=now,
            )


_FIELD_CATEGORY = {
    ChangeKind.PROVIDER_MODE_CHANGED: Category.DATAFUSION_PROVIDER,
    ChangeKind.PROTOCOL_DRIFT: Category.DELTA_PROTOCOL,
}


def _field_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], section: str, fields: Sequence[str], kind: ChangeKind
) -> Iterator[Change]:
    old = _by(before[section], "dataset")
    for (dataset,), row in _by(after[section], "dataset").items():
        prior = old.get((dataset,))
        if prior is None:
            continue
        was, now = {f: prior.get(f) for f in fields}, {f: row.get(f) for f in fields}
        if was != now:
            differing = ", ".join(f"{f} {was[f]} -> {now[f]}" for f in fields if was[f] != now[f])
            yield Change(
                kind=kind,
                severity=Severity.WARN,
                category=_FIELD_CATEGORY[kind],
                asset=dataset,
                message=f"{dataset}: {differing}",
                before=was,
                after=now,
            )


def _diagnostic_keys(events: Sequence[DiagnosticEvent]) -> dict[tuple[str, ...], DiagnosticEvent]:
    keys: dict[tuple[str, ...], DiagnosticEvent] = {}
    for e in events:
        if e.severity in (Severity.WARN, Severity.ERROR):
            keys.setdefault((e.name, e.category.value, e.code or "", e.dataset or "", e.plan or ""), e)
    return keys


def _diagnostic_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[Change]:
    old, new = _diagnostic_keys(before["_events"]), _diagnostic_keys(after["_events"])
    for key in sorted(set(new) - set(old)):
        event = new[key]
        yield _diagnostic_change(ChangeKind.DIAGNOSTIC_NEW, Severity.WARN, event, "new")
    for key in sorted(set(old) - set(new)):
        event = old[key]
        yield _diagnostic_change(ChangeKind.DIAGNOSTIC_GONE, Severity.INFO, event, "gone")


def _diagnostic_change(kind: ChangeKind, severity: Severity, event: DiagnosticEvent, word: str) -> Change:
    asset = event.plan or event.dataset or event.asset_key or "run"
    return Change(
        kind=kind,
        severity=severity,
        category=event.category,
        asset=asset,
        message=f"{word} {event.severity.value}: {event.code or event.name}: {event.message or ''}".strip(),
        after=event.code if word == "new" else None,
        before=event.code if word == "gone" else None,
    )


def compare_runs(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: ChangeThresholds | None = None
) -> list[Change]:
    """Every change from ``before`` to ``after`` (two
    :func:`~codeanatomy_assets.report.sections.collect_report` results), warnings first."""
    limits = limits or ChangeThresholds()
    changes = [
        *_plan_changes(before, after, limits),
        *_pruning_changes(before, after),
        *_dataset_changes(before, after, limits),
        *_diagnostic_changes(before, after),
    ]
    return sorted(changes, key=lambda c: (-c.severity.rank, c.asset, c.kind.value))


def changes_section(
    store: DeltaDiagnosticsStore,
    current: Mapping[str, Any],
    *,
    baseline: str | None = None,
    limits: ChangeThresholds | None = None,
) -> dict[str, Any]:
    """The report's ``changes`` section: which run ``current`` was compared with, and every change."""
    from codeanatomy_assets.report.sections import collect_report

    run_id = current["run"]["run_id"]
    compared = baseline if baseline is not None else previous_run(store, run_id)
    if compared is None or compared == run_id:
        return {"compared_with": None, "baseline": baseline is not None, "changes": []}
    changes = compare_runs(collect_report(store, compared), current, limits)
    return {
        "compared_with": compared,
        "baseline": baseline is not None,
        "changes": [c.to_row() for c in changes],
    }
