"""Draining a physical plan's partitions so that the plan can be stopped: cancelled, timed out, capped.

DataFusion-python 55 waits for a stream's next batch with the GIL released and checks for signals once a
second, only on the main thread, and only while the engine yields (``wait_for_future`` in
apache/datafusion-python ``crates/util/src/lib.rs``). So the calling thread must not drain: each
partition is drained on a daemon thread, and the caller waits in short slices, checking the process's
:data:`~codeanatomy_assets.cancel.CANCEL` scope and the plan's deadline; an interrupt raised there by a
signal handler (Dagster's) arrives at once.

When the wait ends early (cancel, timeout, the result cap, an interrupt, a partition's error), the other
drain threads are stopped: each gets ``SystemExit`` as an asynchronous exception
(``PyThreadState_SetAsyncExc``). A thread between batches sees it at once; a thread waiting inside
DataFusion sees it at the engine's next signal check (the no-op Python statement it runs each second),
which drops the pending ``next()`` and then the stream, and with it DataFusion's tasks. ``SystemExit``
because threading ignores it silently should it ever escape. The caller never waits for that: the threads
are daemons, so a cancelled build exits without them.

The collected result is capped (``result_bytes``): it lives in memory until it is written, and
DataFusion's memory pool does not see it. Its size is that of its distinct buffers (:func:`buffer_bytes`):
batches of string views share their data buffers, which ``nbytes`` would count once per batch.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
from datafusion import SessionContext
from datafusion.plan import ExecutionPlan

from codeanatomy_assets.cancel import CANCEL, CancelScope
from codeanatomy_assets.engine.session import format_size

WAIT_SLICE_S: Final = 0.1
"""How often the waiting thread checks the cancel scope and the deadline."""
THREAD_PREFIX: Final = "datafusion-partition"
STOP_GRACE_S: Final = 2.0
"""How long a plan that failed (timeout, result cap, an error) waits for its drain threads to leave, so that
the next plan of the step's session finds its memory pool free; an interrupt does not wait."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainLimits:
    """What stops a plan's execution besides its own end."""

    deadline: float | None = None
    """``time.monotonic()`` after which the plan is stopped (from the plan's ``timeout_s``)."""
    timeout_s: float | None = None
    """The plan's ``timeout_s`` (for the message)."""
    result_bytes: int | None = None
    """The most the collected result may hold."""
    scope: CancelScope = CANCEL


class PlanTimeoutError(TimeoutError):
    """The plan ran past its deadline and was stopped."""


class ResultMemoryError(MemoryError):
    """The collected result outgrew its share of the memory limit (worded like DataFusion's error)."""


def drain_partitions(
    ctx: SessionContext, plan: ExecutionPlan, *, limits: DrainLimits | None = None
) -> list[list[pa.RecordBatch]]:
    """Every partition of ``plan``'s batches, in partition order; stoppable as the module says."""
    drain = _Drain(ctx=ctx, plan=plan, limits=limits or DrainLimits())
    return drain.run()


class _Drain:
    """The threads draining one plan and what they collected."""

    def __init__(self, *, ctx: SessionContext, plan: ExecutionPlan, limits: DrainLimits) -> None:
        self.ctx, self.plan, self.limits = ctx, plan, limits
        count = plan.partition_count
        self.parts: list[list[pa.RecordBatch]] = [[] for _ in range(count)]
        self.next_partition = itertools.count()
        self.count = count
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.running: set[int] = set()
        """Idents of threads that may still be inside a stream (only these get the async exception)."""
        self.errors: list[BaseException] = []
        self.held = 0
        self.seen: set[int] = set()
        """Addresses of the buffers already counted in ``held``."""
        self.threads = self._workers()
        self.alive = len(self.threads)

    def _workers(self) -> list[threading.Thread]:
        """One draining thread per partition, at most one per core."""
        workers = max(1, min(self.count, os.cpu_count() or 1))
        return [
            threading.Thread(target=self._work, name=f"{THREAD_PREFIX}-{i}", daemon=True)
            for i in range(workers)
        ]

    def run(self) -> list[list[pa.RecordBatch]]:
        if self.count == 0:
            return []
        try:
            for thread in self.threads:
                thread.start()
            self._wait()
        except Exception:
            self._stop()
            self._join(STOP_GRACE_S)
            raise
        except BaseException:
            self._stop()
            raise
        return self.parts

    def _join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _wait(self) -> None:
        limits = self.limits
        while not self.finished.wait(_slice(limits.deadline)):
            limits.scope.check()
            if limits.deadline is not None and time.monotonic() >= limits.deadline:
                raise PlanTimeoutError(
                    f"ran longer than its timeout_s ({limits.timeout_s:g} s) and was stopped"
                )
        limits.scope.check()
        if self.errors:
            raise self.errors[0]

    def _work(self) -> None:
        ident = threading.get_ident()
        try:
            with self.lock:
                self.running.add(ident)
            try:
                self._drain_partitions()
            except SystemExit:
                pass  # told to stop
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
                self.errors.append(exc)
                self.finished.set()
            finally:
                with self.lock:
                    self.running.discard(ident)
                    self.alive -= 1
                    if self.alive == 0:
                        self.finished.set()
        except SystemExit:
            pass  # a stop sent just before this thread left the set above

    def _drain_partitions(self) -> None:
        for partition in iter(self._take_partition, None):
            for batch in self.ctx.execute(self.plan, partition):
                if self.stopping.is_set():
                    return
                table = batch.to_pyarrow()
                self._hold(table)
                self.parts[partition].append(table)

    def _take_partition(self) -> int | None:
        if self.stopping.is_set() or self.errors:
            return None
        partition = next(self.next_partition)
        return partition if partition < self.count else None

    def _hold(self, batch: pa.RecordBatch) -> None:
        cap = self.limits.result_bytes
        with self.lock:
            self.held += _new_buffer_bytes(batch, self.seen)
            held = self.held
        if cap is not None and held > cap:
            raise ResultMemoryError(
                f"Resources exhausted: the result outgrew its share of the memory limit "
                f"({format_size(held)} held, {format_size(cap)} allowed) before it could be written"
            )

    def _stop(self) -> None:
        """Stop every drain thread still inside a stream (see the module docstring)."""
        self.stopping.set()
        with self.lock:
            for ident in self.running:
                _raise_in_thread(ident, SystemExit)


def buffer_bytes(batches: Iterable[pa.RecordBatch]) -> int:
    """Bytes of the distinct buffers of ``batches`` (a buffer shared by several batches counts once).

    >>> views = pa.array(["a fairly long string value"] * 4, type=pa.string_view())
    >>> batch = pa.record_batch([views], names=["s"])
    >>> buffer_bytes([batch.slice(0, 2), batch.slice(2, 2)]) == buffer_bytes([batch])
    True
    """
    seen: set[int] = set()
    return sum(_new_buffer_bytes(batch, seen) for batch in batches)


def _new_buffer_bytes(batch: pa.RecordBatch, seen: set[int]) -> int:
    added = 0
    for column in batch.columns:
        for buffer in column.buffers():
            if buffer is not None and buffer.address not in seen:
                seen.add(buffer.address)
                added += buffer.size
    return added


def drain_threads() -> list[threading.Thread]:
    """The drain threads of this process that are still alive (stopped ones leave within a second)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return WAIT_SLICE_S
    return max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic()))


def _raise_in_thread(ident: int, error: type[BaseException]) -> None:
    """Raise ``error`` in thread ``ident`` the next time it runs Python code (CPython's C API)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(error))
