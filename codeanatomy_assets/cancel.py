"""Cancelling a build: one process-wide scope that signals, the Dagster UI and plan code share.

A build is cancelled by SIGINT (Ctrl-C), SIGTERM, or Terminate in the Dagster UI. Whatever the source,
:data:`CANCEL` records why; long-running work (a plan draining its partitions,
:mod:`codeanatomy_assets.engine.drain`) polls it and raises :class:`Cancelled`.

Dagster replaces the Python handlers of SIGINT and SIGTERM while it executes a job (its interrupts
become ``DagsterExecutionInterruptedError`` inside a step) and maps SIGTERM onto SIGINT's handler, so a
handler of ours would neither run nor know which signal came. :func:`watch_signals` therefore learns of
signals through :func:`signal.set_wakeup_fd`, which CPython feeds for every signal that has a Python
handler, whoever installed it: a watcher thread reads the signal numbers, records the first in
:data:`CANCEL` and calls back (the runner marks the Dagster run as canceling). The same thread polls
an optional ``poll`` callback for a cancellation requested elsewhere (the UI), and then interrupts this
process with SIGINT so that Dagster unwinds the job at its own checkpoints.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group: to the helper processes Dagster
starts too (``tail`` and ``watch_orphans.py`` mirroring step output, each printing a ``KeyboardInterrupt``
traceback) and to extraction's worker processes. So while watching, the main thread blocks SIGINT
(:func:`signal.pthread_sigmask`): every process it starts inherits the blocked signal and ignores Ctrl-C
(the build stops them itself), while this process still gets it through the watcher thread, which
leaves it unblocked, and CPython still runs the Python handler on the main thread. Two details keep
that true: multiprocessing's resource tracker unblocks SIGINT in the thread that first starts it (so it
is started before blocking), and a step process of the multiprocess executor, which Dagster stops by
sending itself SIGINT, unblocks it again (:func:`release_inherited_block`).

>>> scope = CancelScope()
>>> scope.request("SIGINT", signum=2)
True
>>> scope.request("SIGTERM", signum=15)  # the first reason stays
False
>>> scope.reason, scope.signum
('SIGINT', 2)
"""

from __future__ import annotations

import contextlib
import multiprocessing.resource_tracker
import os
import select
import signal
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

CANCEL_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
POLL_SECONDS: Final = 0.5
"""How often the watcher asks ``poll`` whether the run was cancelled elsewhere."""


class Cancelled(KeyboardInterrupt):
    """Work stopped because the build was cancelled.

    A ``KeyboardInterrupt`` on purpose: no ``except Exception`` swallows it, and Dagster records the step
    as interrupted and the run as canceled rather than as a failure to report.
    """


@dataclass(slots=True, eq=False)  # compared by identity: it is shared state
class CancelScope:
    """Whether, and why, the work of this process should stop (thread-safe, first reason wins)."""

    _event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    reason: str | None = None
    """``SIGINT``, ``SIGTERM``, or who else cancelled (``the Dagster UI``)."""
    signum: int | None = None

    def request(self, reason: str, *, signum: int | None = None) -> bool:
        """Ask the work to stop; returns whether this was the first request."""
        with self._lock:
            if self._event.is_set():
                return False
            self.reason, self.signum = reason, signum
            self._event.set()
            return True

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Whether cancellation is requested within ``timeout`` seconds."""
        return self._event.wait(timeout)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled(f"cancelled by {self.reason}")

    def reset(self) -> None:
        """Forget a past cancellation (a new build starts)."""
        with self._lock:
            self._event.clear()
            self.reason = self.signum = None


CANCEL: Final = CancelScope()
"""The scope of this process. Signals are per process, so there is exactly one."""

_BLOCKING_PIDS: set[int] = set()
"""Processes whose main thread blocks SIGINT on purpose (inside :func:`watch_signals`)."""


def release_inherited_block() -> None:
    """Unblock SIGINT in a process that inherited the block from a watching build (a step process).

    Dagster stops a step process by sending it SIGINT: blocked, it would never arrive.
    """
    if os.getpid() in _BLOCKING_PIDS or threading.current_thread() is not threading.main_thread():
        return
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def watch_signals(
    *,
    on_cancel: Callable[[], None] | None = None,
    poll: Callable[[], str | None] | None = None,
    scope: CancelScope = CANCEL,
) -> Generator[CancelScope, None, None]:
    """Turn SIGINT/SIGTERM (and ``poll``'s answer) into a cancellation of ``scope`` while inside.

    Outside a Dagster job our own handlers only record the signal (the caller, and the build lock's
    wait, check the scope). ``on_cancel`` runs once, on the watcher thread, after the first request. Off
    the main thread (no signals there) only ``poll`` is watched. Handlers and wakeup fd are restored on exit.
    """
    scope.reset()
    watcher = _Watcher.start(scope, on_cancel, poll)  # before SIGINT is blocked: its thread must receive it
    main = threading.current_thread() is threading.main_thread()
    try:
        with _signals_to(watcher.writer) if main else contextlib.nullcontext():
            yield scope
    finally:
        watcher.close()


@dataclass(slots=True, eq=False)
class _Watcher:
    """The watcher thread, and the socket pair it reads signal numbers from (the wakeup fd's)."""

    reader: socket.socket
    writer: socket.socket
    stop: threading.Event
    thread: threading.Thread

    @classmethod
    def start(
        cls,
        scope: CancelScope,
        on_cancel: Callable[[], None] | None,
        poll: Callable[[], str | None] | None,
    ) -> _Watcher:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        stop = threading.Event()
        thread = threading.Thread(
            target=_watch,
            args=(reader, stop, scope, on_cancel, poll),
            name="codeanatomy-cancel-watcher",
            daemon=True,
        )
        thread.start()
        return cls(reader=reader, writer=writer, stop=stop, thread=thread)

    def close(self) -> None:
        """Stop the thread (woken now, not at its next poll: up to 0.5 s) and close the sockets."""
        self.stop.set()
        with contextlib.suppress(OSError):
            self.writer.send(b"\0")  # not a signal number: only ends the select
        self.thread.join(timeout=2 * POLL_SECONDS)
        self.reader.close()
        self.writer.close()


@contextlib.contextmanager
def _signals_to(writer: socket.socket) -> Generator[None, None, None]:
    """On the main thread: our handlers, the wakeup fd on ``writer``, SIGINT blocked; restored on exit."""
    # A signal ignored from the start stays ignored (a background job of a script, nohup-like use).
    previous_handlers = {
        s: handler for s in CANCEL_SIGNALS if (handler := signal.getsignal(s)) is not signal.SIG_IGN
    }
    # The wakeup fd first: a signal that lands while our handlers go in is still written to the watcher.
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous_mask: set[int | signal.Signals] | None = None
    try:
        for signum in previous_handlers:
            signal.signal(signum, _record_only)
        multiprocessing.resource_tracker.ensure_running()  # started later, it would unblock SIGINT
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        _BLOCKING_PIDS.add(os.getpid())
        yield
    finally:
        _BLOCKING_PIDS.discard(os.getpid())
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def _record_only(signum: int, frame: FrameType | None) -> None:
    """Our handler outside Dagster's: the watcher records the signal (it reads the wakeup fd)."""
    del signum, frame


def _watch(
    reader: socket.socket,
    stop: threading.Event,
    scope: CancelScope,
    on_cancel: Callable[[], None] | None,
    poll: Callable[[], str | None] | None,
) -> None:
    announced = False
    while not stop.is_set():
        ready, _, _ = select.select([reader], [], [], POLL_SECONDS)
        if ready:
            _read_signals(reader, scope)
        elif poll is not None and not scope.is_set():
            _poll_elsewhere(poll, scope)
        if scope.is_set() and not announced:
            announced = True
            if on_cancel is not None:
                _safe_call(on_cancel)


def _read_signals(reader: socket.socket, scope: CancelScope) -> None:
    """Request cancellation for the first cancelling signal the wakeup fd wrote."""
    with contextlib.suppress(BlockingIOError, OSError):
        for signum in reader.recv(64):
            if signum in CANCEL_SIGNALS:
                scope.request(signal.Signals(signum).name, signum=signum)


def _poll_elsewhere(poll: Callable[[], str | None], scope: CancelScope) -> None:
    """Ask ``poll`` whether the run was cancelled elsewhere; if so, interrupt this process."""
    reason = _safe_poll(poll)
    if reason is not None and scope.request(reason):
        # Dagster unwinds a job only on an interrupt: deliver one to this process's main thread.
        os.kill(os.getpid(), signal.SIGINT)


def _safe_poll(poll: Callable[[], str | None]) -> str | None:
    try:
        return poll()
    except Exception:  # noqa: BLE001 - a failing status read (storage busy) is retried at the next poll
        return None


def _safe_call(callback: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # best effort: the runner checks the outcome again afterwards
        callback()
