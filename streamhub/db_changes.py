"""Whether the database has changed: a version that moves with every commit to it, by any process or
connection, so that a hot read-only answer is computed once per change instead of once per request
(`cached_until_database_changes`: WCS /stream/find_all, issue #19).

SQLite only (`make run`'s database): its ``PRAGMA data_version``, read on a connection of this module's
own that never writes, changes whenever any other connection has committed (about 10 microseconds a
read). Elsewhere (PostgreSQL, SQLite in memory) and inside a transaction (whose own uncommitted
changes the watching connection cannot see: every test run in a transaction, in particular) there is
no version, and every call computes.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from django.db import connection

T = TypeVar("T")

_lock = threading.Lock()  # one watching connection per database file, shared by the request threads
# path -> (the file's inode, the watcher's serial number, its connection): a new watcher's data_version
# starts over, its serial number tells its versions from those of the one before.
_watchers: dict[str, tuple[int, int, sqlite3.Connection]] = {}
_serials = itertools.count()


def database_version() -> tuple[str, int, int] | None:
    """A value that differs from every earlier one once a change has been committed to the database
    (None: this database or this moment cannot tell; see the module's docstring)."""
    if connection.vendor != "sqlite" or connection.in_atomic_block or connection.is_in_memory_db():
        return None
    name = str(connection.settings_dict["NAME"])
    with _lock:
        try:
            inode = os.stat(name).st_ino  # a file put in the database's place gets a watcher of its own
            known = _watchers.get(name)
            if known is None or known[0] != inode:
                if known is not None:
                    known[2].close()
                watcher = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
                known = _watchers[name] = (inode, next(_serials), watcher)
            return name, known[1], known[2].execute("PRAGMA data_version").fetchone()[0]
        except (OSError, sqlite3.Error):  # a locked or missing file: compute, as without a version
            broken = _watchers.pop(name, None)
            if broken is not None:
                broken[2].close()
            return None


def cached_until_database_changes(compute: Callable[[], T]) -> Callable[[], T]:
    """``compute()`` once per database change in this process: callers share its result (so must not
    change it). The version is read before computing, so a commit during the computation only makes
    the next call compute again."""
    last: list[tuple[object, T]] = []  # [(version, result)], replaced whole (request threads share it)

    @wraps(compute)
    def cached() -> T:
        version = database_version()
        if version is not None and last and last[0][0] == version:
            return last[0][1]
        result = compute()
        if version is not None:
            last[:] = [(version, result)]
        return result

    return cached
