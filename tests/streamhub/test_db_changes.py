"""streamhub/db_changes.py on a real SQLite file: the version moves with every commit by another
connection, not otherwise; a cached computation runs again only then."""

from __future__ import annotations

import os
import sqlite3

import pytest
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper

from streamhub import db_changes


@pytest.fixture
def database(tmp_path, monkeypatch):
    """A SQLite file in WAL mode (as `make run` has it) that db_changes looks at, and a writer on it."""
    path = tmp_path / "watched.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE item (name TEXT)")
    watched = DatabaseWrapper({**connections["default"].settings_dict, "NAME": str(path)})
    monkeypatch.setattr(db_changes, "connection", watched)
    yield path, writer, watched
    writer.close()
    known = db_changes._watchers.pop(str(path), None)
    if known is not None:
        known[2].close()


def test_the_version_moves_with_each_commit_and_only_then(database):
    path, writer, watched = database
    first = db_changes.database_version()
    assert first is not None and db_changes.database_version() == first
    writer.execute("INSERT INTO item VALUES ('a')")
    second = db_changes.database_version()
    assert second != first
    writer.execute("BEGIN")
    writer.execute("INSERT INTO item VALUES ('b')")
    assert db_changes.database_version() == second, "nothing committed yet"
    writer.execute("COMMIT")
    assert db_changes.database_version() not in (first, second)

    watched.in_atomic_block = True  # a transaction's own changes are not seen by the watcher: no version
    assert db_changes.database_version() is None


def test_a_file_put_in_the_databases_place_has_versions_of_its_own(database, tmp_path):
    path, writer, _ = database
    before = db_changes.database_version()
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).close()
    os.replace(other, path)
    assert db_changes.database_version() not in (before, None)


def test_a_cached_computation_runs_again_only_after_a_commit(database):
    _, writer, _ = database
    runs = []

    @db_changes.cached_until_database_changes
    def names() -> list[str]:
        runs.append(1)
        return [row[0] for row in writer.execute("SELECT name FROM item")]

    assert names() == names() == [] and len(runs) == 1
    writer.execute("INSERT INTO item VALUES ('a')")
    assert names() == names() == ["a"] and len(runs) == 2
