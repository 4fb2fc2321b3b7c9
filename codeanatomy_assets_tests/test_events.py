"""The event record, its row and Arrow round trip, the in-process sinks and the fanout failure policy."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeanatomy_assets import diagnostics
from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.event_names import TELEMETRY_SINK_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.schemas import DIAGNOSTICS_EVENTS_V1
from codeanatomy_assets.diagnostics.sinks import (
    DiagnosticsCollector,
    DiagnosticsSink,
    FanoutSink,
    emit,
    fanout_with_failure_events,
)
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity

# --- strategies ---------------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # Arrow strings are valid UTF-8
_json_scalar = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text
)
_json = st.recursive(
    _json_scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

events = st.builds(
    DiagnosticEvent,
    name=st.from_regex(r"\A[a-z][a-z0-9_]{0,24}_v[0-9]{1,3}\Z"),
    run_id=_text.filter(bool),
    severity=st.sampled_from(Severity),
    category=st.sampled_from(Category),
    kind=st.sampled_from(EventKind),
    payload=st.dictionaries(_text, _json, max_size=5),
    event_time_unix_ms=_int64,
    code=st.none() | _text,
    message=st.none() | _text,
    dataset=st.none() | _text,
    plan=st.none() | _text,
    asset_key=st.none() | _text,
    trace_id=st.none() | st.from_regex(r"\A[0-9a-f]{32}\Z"),
    span_id=st.none() | st.from_regex(r"\A[0-9a-f]{16}\Z"),
    event_id=st.uuids().map(lambda u: u.hex),
)


# --- the record ---------------------------------------------------------------------------------------


def test_row_columns_are_the_events_schema_in_order() -> None:
    row = DiagnosticEvent(name="x_v1", run_id="r", severity="info", category="cli").to_row()
    assert list(row) == DIAGNOSTICS_EVENTS_V1.names


@given(events)
@settings(max_examples=150, deadline=None)
def test_event_row_arrow_round_trip(event: DiagnosticEvent) -> None:
    table = pa.Table.from_pylist([event.to_row()], schema=DIAGNOSTICS_EVENTS_V1)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (row,) = pq.read_table(io.BytesIO(buffer.getvalue())).to_pylist()
    assert DiagnosticEvent.from_row(row) == event


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"name": "NoVersion"}, "version suffix"),
        ({"severity": "fatal"}, "severity 'fatal' is not one of"),
        ({"category": None}, "category is required"),
        ({"run_id": ""}, "run_id is required"),
    ],
)
def test_invalid_events_raise_value_error(fields: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"name": "x_v1", "run_id": "r", "severity": "info", "category": "cli"}
    with pytest.raises(ValueError, match=match):
        DiagnosticEvent(**{**base, **fields})  # type: ignore[arg-type]


# --- sinks --------------------------------------------------------------------------------------------


def _event(name: str = "x_v1", kind: EventKind = EventKind.EVENT) -> DiagnosticEvent:
    return DiagnosticEvent(name=name, run_id="r1", severity=Severity.INFO, category=Category.CLI, kind=kind)


def test_emit_groups_events_by_name_and_sends_artifacts_one_by_one() -> None:
    calls: list[tuple[str, str, int]] = []

    class Recorder:
        def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
            calls.append(("events", name, len(rows)))

        def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
            calls.append(("artifact", name, 1))

    sink = Recorder()
    assert isinstance(sink, DiagnosticsSink)
    emit(sink, _event("a_v1"), _event("b_v1"), _event("a_v1"), _event("p_v1", EventKind.ARTIFACT))
    assert sorted(calls) == [("artifact", "p_v1", 1), ("events", "a_v1", 2), ("events", "b_v1", 1)]


def test_collector_snapshots_and_parses_back() -> None:
    sink = DiagnosticsCollector()
    first, second = _event("a_v1"), _event("p_v1", EventKind.ARTIFACT)
    emit(sink, first, second)
    assert set(sink.events_snapshot()) == {"a_v1"}
    assert set(sink.artifacts_snapshot()) == {"p_v1"}
    assert sorted(sink.all_events(), key=lambda e: e.name) == [first, second]


class _Broken:
    def __init__(self, message: str = "disk full") -> None:
        self.message = message

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        raise OSError(self.message)

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        raise OSError(self.message)


def test_fanout_failing_sink_does_not_stop_the_others() -> None:
    before, after = DiagnosticsCollector(), DiagnosticsCollector()
    seen: list[BaseException] = []
    fanout = FanoutSink([before, _Broken(), after], on_error=lambda sink, exc: seen.append(exc))
    emit(fanout, _event("a_v1"), _event("p_v1", EventKind.ARTIFACT))
    for sink in (before, after):
        assert len(sink.all_rows()) == 2
    assert len(fanout.failures) == 2
    assert [str(exc) for exc in seen] == ["disk full", "disk full"]


def test_failing_sink_becomes_a_telemetry_warn_event_on_the_others() -> None:
    good = DiagnosticsCollector()
    fanout = fanout_with_failure_events([_Broken("store offline"), good, _Broken("otel down")], run_id="r1")
    emit(fanout, _event("a_v1"))
    failures = [e for e in good.all_events() if e.name == TELEMETRY_SINK_FAILED]
    assert len(failures) == 2
    for event in failures:
        assert event.severity is Severity.WARN
        assert event.category is Category.TELEMETRY
        assert event.run_id == "r1"
        assert event.payload["sink"] == "_Broken"
        assert event.payload[attr.ERROR_TYPE] == "OSError"
    assert {e.payload[attr.EXCEPTION_MESSAGE] for e in failures} == {"store offline", "otel down"}
    # The original event still reached the working sink, and the broken sinks' refusal to take the
    # failure report of each other is listed, not reported again (no loop).
    assert [e.name for e in good.all_events()].count("a_v1") == 1
    assert len(fanout.failures) == 4


# --- the package surface ------------------------------------------------------------------------------


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's ``__all__`` order (RUF022): CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_names_are_sorted_and_resolve() -> None:
    assert diagnostics.__all__ == sorted(diagnostics.__all__, key=_isort_key)
    assert len(set(diagnostics.__all__)) == len(diagnostics.__all__)
    for name in diagnostics.__all__:
        assert getattr(diagnostics, name) is not None
    with pytest.raises(AttributeError):
        diagnostics.no_such_name  # noqa: B018
