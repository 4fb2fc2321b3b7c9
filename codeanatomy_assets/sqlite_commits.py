"""Cheaper commits for the project home's SQLite Dagster instance while a build runs.

Dagster's SQLite storages open a new connection for every event they store (``NullPool``) and close it
again, in WAL mode. Each close of the last connection to a database checkpoints the WAL into the
database and deletes it, with two ``fsync``s, and each commit ``fsync``s the WAL once more
(``synchronous=FULL``): a build of 10 steps stores about 135 events over about 550 connections, and on a
busy disk one commit took 2 to 24 ms (docs/benchmarks.md).

:func:`quiet_sqlite_commits` changes two things for the SQLite files under the instance's folder, through
SQLAlchemy's public ``connect`` event (no Dagster internals):

- every new connection to a database in WAL mode gets ``PRAGMA synchronous=NORMAL``, SQLite's recommended
  setting for WAL: a commit no longer waits for the disk; a power loss can lose the last commits, never
  the database's consistency. A database being created (each run's event log is a new file) is put in
  WAL mode before Dagster creates its tables, rather than after;
- one idle "keeper" connection per database stays open until the build ends, so the connections Dagster
  closes are never the last one and do not checkpoint; SQLite's automatic checkpoint (every 1,000 pages)
  still runs, and closing the keepers at the end checkpoints once per database.

The keepers never hold a transaction open, so other processes (``dagster dev`` on the same home, step
processes of the multiprocess executor) read and write as before.

>>> import tempfile, sqlalchemy as sa
>>> folder = tempfile.mkdtemp()
>>> engine = sa.create_engine(f"sqlite:///{folder}/x.db", poolclass=sa.pool.NullPool)
>>> def pragma(sql):
...     with engine.begin() as conn:
...         return conn.execute(sa.text(sql)).scalar()
>>> pragma("PRAGMA journal_mode=WAL"), pragma("PRAGMA synchronous")  # FULL
('wal', 2)
>>> with quiet_sqlite_commits(folder):
...     pragma("PRAGMA synchronous"), os.path.exists(f"{folder}/x.db-wal")  # NORMAL, WAL kept
(1, True)
>>> os.path.exists(f"{folder}/x.db-wal")  # checkpointed when the keeper closed
False
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _Keepers:
    """One idle connection per database file under ``folder``, opened on first use."""

    def __init__(self, folder: str) -> None:
        self._folder = os.path.join(os.path.realpath(folder), "")
        self._lock = threading.Lock()
        self._open: dict[str, sqlite3.Connection] = {}
        self._in_wal: set[str] = set()
        self._paths: dict[str, bool] = {}

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        try:
            path = _main_file(dbapi_connection)
            if not path or not self._inside(path):
                return
            in_wal = dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            if not in_wal and dbapi_connection.execute("PRAGMA page_count").fetchone()[0] == 0:
                # A database being created (a run's event log): Dagster turns WAL on after creating its
                # tables; on first, the 20-odd CREATE statements commit without fsync too.
                in_wal = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            if in_wal:
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            self._keep(path, in_wal=in_wal)
        except sqlite3.Error:  # never fail Dagster's connection over an optimisation
            return

    def _inside(self, path: str) -> bool:
        inside = self._paths.get(path)
        if inside is None:  # realpath stats every component: once per file, not per connection
            inside = self._paths[path] = os.path.realpath(path).startswith(self._folder)
        return inside

    def _keep(self, path: str, *, in_wal: bool) -> None:
        with self._lock:
            if path in self._in_wal:
                return
            keeper = self._open.get(path)
            if keeper is None:
                keeper = sqlite3.connect(path, check_same_thread=False, timeout=30)
                self._open[path] = keeper
            if in_wal:
                # Reading once in WAL mode attaches the keeper to the WAL index; it holds no lock after.
                keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()
                self._in_wal.add(path)

    def close(self) -> None:
        with self._lock:
            for keeper in self._open.values():
                with contextlib.suppress(sqlite3.Error):
                    keeper.close()
            self._open.clear()
            self._in_wal.clear()


def _main_file(connection: sqlite3.Connection) -> str:
    for _seq, name, file in connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or ""
    return ""


@contextlib.contextmanager
def quiet_sqlite_commits(folder: str | os.PathLike[str]) -> Iterator[None]:
    """While inside, SQLite databases under ``folder`` commit without ``fsync`` and do not checkpoint on
    every close (see the module docstring); everything is restored on exit."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    keepers = _Keepers(str(Path(folder)))
    event.listen(Engine, "connect", keepers.on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", keepers.on_connect)
        keepers.close()
