"""One DataFusion session per process and engine settings, lent to one build step at a time.

A build runs many steps over the same Delta tables. A ``SessionContext`` holds its runtime's caches:
Parquet footers (``datafusion.runtime.metadata_cache_limit``), listings and file statistics. A fresh
session per step reads every footer again during physical planning, which cost a plan step more than
its whole query on small TPC-H queries (``docs/benchmarks.md``). The caches are safe to share across
steps: the files a build reads never change under the same name (Delta data files are written once;
``delta_pruned_parquet`` reads folders of links named by their content), and the metadata cache checks
each file's size and modification time.

So a step borrows the process's session for its settings (:func:`step_session`); what the step
registered is deregistered when it returns the session, so no table leaks into the next step. A step
that finds the session already lent (a second thread) gets a fresh one: correct, only colder. A step
that fails takes its session with it: the next step gets a new one.

>>> from datafusion import SessionContext
>>> pool = SessionPool()
>>> with pool.lend("k", SessionContext) as ctx:
...     ctx.register_view("t", ctx.sql("select 1 as x"))
>>> with pool.lend("k", SessionContext) as again:
...     again is ctx, again.table_exist("t")
(True, False)
>>> try:
...     with pool.lend("k", SessionContext) as failing:
...         raise ValueError("a failed step")
... except ValueError:
...     pass
>>> with pool.lend("k", SessionContext) as fresh:
...     fresh is ctx
False
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Hashable
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from datafusion import SessionContext

from codeanatomy_assets.delta.pruned import quote_ident

_CATALOG: Final = "datafusion"
_SCHEMA: Final = "public"


class SessionPool:
    """Sessions by key (the engine settings), each lent to one borrower at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[Hashable, SessionContext] = {}
        self._lent: set[Hashable] = set()

    @contextmanager
    def lend(
        self, key: Hashable, factory: Callable[[], SessionContext]
    ) -> Generator[SessionContext, None, None]:
        """The session for ``key`` (made by ``factory`` on first use), cleaned when it comes back."""
        ctx = self._borrow(key, factory)
        if ctx is None:
            yield factory()  # lent already (another thread): a session of its own
            return
        before = _table_names(ctx)
        failed = False
        try:
            yield ctx
        except BaseException:
            # Not lent again: after a failure (a plan stopped by its timeout, whose streams end only at
            # DataFusion's next yield; a memory error) what the session still holds is not known.
            failed = True
            raise
        finally:
            self._give_back(key, ctx, before, failed=failed)

    def _borrow(self, key: Hashable, factory: Callable[[], SessionContext]) -> SessionContext | None:
        """The pooled session for ``key``, marked lent (``None`` when it is lent already)."""
        with self._lock:
            if key in self._lent:
                return None
            if key not in self._sessions:
                self._sessions[key] = factory()
            self._lent.add(key)
            return self._sessions[key]

    def _give_back(self, key: Hashable, ctx: SessionContext, before: set[str], *, failed: bool) -> None:
        """Deregister the tables the borrower added; a failed step's session is dropped, not lent again."""
        try:
            for name in _table_names(ctx) - before:
                ctx.deregister_table(quote_ident(name))
        except BaseException:
            failed = True  # a session that could not be cleaned is not lent again either
            raise
        finally:
            with self._lock:
                if failed:
                    self._sessions.pop(key, None)
                self._lent.discard(key)


def _table_names(ctx: SessionContext) -> set[str]:
    return set(ctx.catalog(_CATALOG).schema(_SCHEMA).names())


SESSIONS: Final = SessionPool()
"""The process's sessions."""


def step_session(
    key: Hashable, factory: Callable[[], SessionContext]
) -> AbstractContextManager[SessionContext]:
    """Borrow the process's session for ``key`` for one step (a context manager)."""
    return SESSIONS.lend(key, factory)


__all__ = ["SESSIONS", "SessionPool", "step_session"]
