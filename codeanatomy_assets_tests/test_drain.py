"""Draining a plan: stopped by the cancel scope, its deadline or the result cap, without waiting for it.

A "long" plan here is a join whose output is counted: over a Delta table, so that DataFusion yields
between polls as it does in a build (an in-memory table's single partition may not).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.cancel import Cancelled, CancelScope
from codeanatomy_assets.engine.drain import (
    DrainLimits,
    PlanTimeoutError,
    ResultMemoryError,
    drain_partitions,
    drain_threads,
)
from codeanatomy_assets.engine.memory import plan_memory
from codeanatomy_assets.engine.operators import operator_metrics
from codeanatomy_assets.engine.session import EngineSettings, new_session

LONG_SQL = "select count(*) as n from t a join t b on a.k = b.k"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    ids = pa.array(range(400_000), pa.int64())
    uri = str(tmp_path_factory.mktemp("drain") / "t")
    write_deltalake(uri, pa.table({"id": ids, "k": pc.bit_wise_and(ids, 255)}))
    return uri


def _plan(uri: str, sql: str, settings: EngineSettings | None = None):
    ctx = new_session(settings or EngineSettings(target_partitions=2))
    ctx.register_table("t", DeltaTable(uri))
    return ctx, ctx.sql(sql).execution_plan()


def _wait_for_no_drain_threads(limit_s: float) -> float:
    started = time.monotonic()
    while drain_threads() and time.monotonic() - started < limit_s:
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_plan_drains_every_partition_in_order(table: str) -> None:
    ctx, plan = _plan(table, "select id from t order by id")
    parts = drain_partitions(ctx, plan)
    ids = [i for part in parts for batch in part for i in batch.column(0).to_pylist()]
    assert ids == list(range(400_000))


def test_a_cancel_from_another_thread_stops_a_long_plan_at_once(table: str) -> None:
    ctx, plan = _plan(table, LONG_SQL)
    scope = CancelScope()
    threading.Timer(0.5, scope.request, args=("test",)).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="cancelled by test"):
        drain_partitions(ctx, plan, limits=DrainLimits(scope=scope))
    assert time.monotonic() - started < 1.5
    # The drain threads leave DataFusion at its next signal check (once a second).
    assert _wait_for_no_drain_threads(5.0) < 3.0


def test_a_deadline_stops_a_long_plan(table: str) -> None:
    ctx, plan = _plan(table, LONG_SQL)
    started = time.monotonic()
    with pytest.raises(PlanTimeoutError, match=r"timeout_s \(0.5 s\)"):
        drain_partitions(ctx, plan, limits=DrainLimits(deadline=started + 0.5, timeout_s=0.5))
    assert time.monotonic() - started < 3.0
    assert drain_threads() == []  # a failed plan waits for them: the session's next plan gets its pool back


def test_an_interrupt_in_the_waiting_thread_stops_the_drain(table: str) -> None:
    class Interrupted(BaseException):  # stands for Dagster's DagsterExecutionInterruptedError
        pass

    def raise_interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    ctx, plan = _plan(table, LONG_SQL)
    previous = signal.signal(signal.SIGUSR1, raise_interrupt)
    try:
        threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            drain_partitions(ctx, plan)
        assert time.monotonic() - started < 1.5
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert _wait_for_no_drain_threads(5.0) < 3.0


def test_the_result_cap_fails_the_plan_in_datafusions_words(table: str) -> None:
    ctx, plan = _plan(table, "select * from t")
    with pytest.raises(ResultMemoryError, match="Resources exhausted: the result outgrew its share"):
        drain_partitions(ctx, plan, limits=DrainLimits(result_bytes=1024 * 1024))


def test_a_partition_error_stops_the_others(table: str) -> None:
    settings = EngineSettings(memory_limit=8 * 2**20, target_partitions=2)
    ctx, plan = _plan(table, "select a.id from t a join t b on a.id = b.id", settings)
    with pytest.raises(Exception, match="Resources exhausted"):
        drain_partitions(ctx, plan)
    assert _wait_for_no_drain_threads(5.0) < 3.0


def test_spills_and_operator_memory_are_read_from_the_metrics(table: str, tmp_path: Path) -> None:
    settings = EngineSettings(memory_limit=24 * 2**20, spill_dir=tmp_path, target_partitions=2)
    ctx, plan = _plan(table, "select k, count(distinct id) as n from t group by k", settings)
    drain_partitions(ctx, plan)
    memory = plan_memory(operator_metrics(plan), result_bytes=10)
    assert memory.spill_count > 0 and memory.spilled_bytes > 0 and memory.spilled_rows > 0
    ctx, plan = _plan(table, "select a.id from t a join t b on a.id = b.id")
    drain_partitions(ctx, plan)
    joined = plan_memory(operator_metrics(plan))
    assert joined.peak_operator == "HashJoinExec"
    assert joined.peak_mem_bytes is not None and joined.peak_mem_bytes > 1_000_000
