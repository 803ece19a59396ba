"""Whether the rows a hot read-only answer is made of have changed, so that the answer is computed once
per change instead of once per request (`cached_until_changed`: OME GET /v1/vhosts, WCS
/stream/find_all, issue #19), on SQLite and PostgreSQL alike.

Each watched table (``WATCHED``) has a change counter, a row of the ``streamhub_db_changes`` table,
bumped by triggers of the database itself on every INSERT and DELETE of the table's rows and on every
UPDATE that changes a column other than the ones its heartbeats keep writing (traffic counters,
liveness times: no cached answer may show those). A trigger bumps the counter in the writer's own
transaction, so whoever commits (the API, an engine node, a Celery worker, ``manage.py shell``, a
QuerySet.update()) moves it exactly when its rows become visible. Counters only grow; with the
database's random ``epoch`` row (a new database has a new one; a copy of a database, e.g. from a
template, shares it), the sum of an answer's counters is its version: an answer computed at a version at
least as high as the one a request reads is fresh.

The triggers are dropped before every ``migrate`` (pre_migrate: a migration may drop or rename a column
they name, which both databases refuse while they exist) and made again after it (post_migrate), from
the models as they are then, with every counter bumped once (what was written meanwhile counts). Inside a transaction
(whose own uncommitted changes could be cached and then rolled back: every test run in a transaction,
in particular) and before they exist there is no version, and every call computes.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

T = TypeVar("T")

TABLE = "streamhub_db_changes"
EPOCH = "epoch"  # the counter row naming this database (random), not a table
TRIGGER_PREFIX = "streamhub_changes_"
POSTGRESQL_TRIGGERS = ("rows", "update", "truncate")  # (names per table)
SQLITE_TRIGGERS = ("insert", "delete", "update")  # (names per database: after the table's)

# Model label -> the fields its heartbeats write, which no cached answer shows: an UPDATE of only these is
# no change. Every other field of the model is watched.
WATCHED: dict[str, tuple[str, ...]] = {
    "hosting.VirtualHost": (),
    "hosting.Application": (),
    # Every engine heartbeat (apps/engine/runner.py) and every stream's counters (record_counters).
    "engine.EngineNode": ("last_heartbeat", "load_streams", "load_viewers"),
    "streams.Stream": (
        "total_bytes_in",
        "total_bytes_out",
        "last_recv_time",
        "last_sent_time",
        "connections",
        "total_connections",
        "max_total_connections",
        "max_total_connection_time",
        "last_throughput_in",
        "last_throughput_out",
        "max_throughput_in",
        "max_throughput_out",
        "hls_viewers",
        "updated_at",
    ),
    # A recording's lease (every 2 s) and its growing file.
    "recording.Record": (
        "heartbeat_at",
        "record_bytes",
        "record_time_ms",
        "total_record_bytes",
        "total_record_time_ms",
    ),
    "recording.RecordFile": ("bytes", "duration_ms"),
}

Version = tuple[int, int]  # (the database's epoch, the sum of the watched tables' counters)


def _table(label: str) -> str:
    return apps.get_model(label)._meta.db_table


def _watched_columns(label: str) -> list[str]:
    model = apps.get_model(label)
    ignored = set(WATCHED[label])
    unknown = ignored - {field.name for field in model._meta.concrete_fields}
    assert not unknown, f"db_changes.WATCHED[{label!r}] names fields {label} does not have: {sorted(unknown)}"
    return [field.column for field in model._meta.concrete_fields if field.name not in ignored]


def install(using: str = "default") -> None:
    """Create the counters and (again) the triggers of every watched table, as the models are now."""
    db = connections[using]
    quote = db.ops.quote_name
    statements = [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (name varchar(100) PRIMARY KEY, version bigint NOT NULL)",
        f"INSERT INTO {TABLE} (name, version) VALUES ('{EPOCH}', {secrets.randbits(62)}) ON CONFLICT (name) DO NOTHING",
    ]
    if db.vendor == "postgresql":
        statements.append(
            "CREATE OR REPLACE FUNCTION streamhub_db_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"UPDATE {TABLE} SET version = version + 1 WHERE name = TG_TABLE_NAME; RETURN NULL; END $$"
        )
    existing = set(db.introspection.table_names())
    for label in WATCHED:
        table = _table(label)
        statements.append(f"INSERT INTO {TABLE} (name, version) VALUES ('{table}', 0) ON CONFLICT (name) DO NOTHING")
        if table not in existing:
            continue  # a partial migrate (`migrate hosting`, `migrate recording zero`): triggers at the next one
        columns = _watched_columns(label)
        if db.vendor == "postgresql":
            changed = " OR ".join(f"OLD.{quote(c)} IS DISTINCT FROM NEW.{quote(c)}" for c in columns)
            run = "EXECUTE FUNCTION streamhub_db_change()"
            triggers = {
                "rows": f"AFTER INSERT OR DELETE ON {quote(table)} FOR EACH ROW {run}",
                "update": f"AFTER UPDATE ON {quote(table)} FOR EACH ROW WHEN ({changed}) {run}",
                "truncate": f"AFTER TRUNCATE ON {quote(table)} FOR EACH STATEMENT {run}",
            }
            for name, definition in triggers.items():
                statements += [
                    f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{name} ON {quote(table)}",
                    f"CREATE TRIGGER {TRIGGER_PREFIX}{name} {definition}",
                ]
        elif db.vendor == "sqlite":
            changed = " OR ".join(f"OLD.{quote(c)} IS NOT NEW.{quote(c)}" for c in columns)
            bump = f"BEGIN UPDATE {TABLE} SET version = version + 1 WHERE name = '{table}'; END"
            triggers = {
                "insert": f"AFTER INSERT ON {quote(table)} {bump}",
                "delete": f"AFTER DELETE ON {quote(table)} {bump}",
                "update": f"AFTER UPDATE ON {quote(table)} WHEN {changed} {bump}",
            }
            for name, definition in triggers.items():
                trigger = f"{TRIGGER_PREFIX}{table}_{name}"  # (SQLite's trigger names are per database)
                statements += [f"DROP TRIGGER IF EXISTS {trigger}", f"CREATE TRIGGER {trigger} {definition}"]
        else:
            return  # no counters: every call computes
    # Whatever was written while the triggers were away (during the migration) counts as a change.
    statements.append(f"UPDATE {TABLE} SET version = version + 1 WHERE name <> '{EPOCH}'")
    with db.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def uninstall(using: str = "default") -> None:
    """Drop the triggers (a migration may then drop or rename the columns they name); ``install`` makes
    them again."""
    db = connections[using]
    quote = db.ops.quote_name
    existing = set(db.introspection.table_names())
    statements = []
    for label in WATCHED:
        table = _table(label)
        if table not in existing:
            continue
        if db.vendor == "postgresql":
            statements += [
                f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{name} ON {quote(table)}" for name in POSTGRESQL_TRIGGERS
            ]
        elif db.vendor == "sqlite":
            statements += [f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{table}_{name}" for name in SQLITE_TRIGGERS]
    with db.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def uninstall_before_migrate(sender, using: str = "default", **kwargs) -> None:
    """pre_migrate receiver (connected once, by apps.streams)."""
    uninstall(using)


def install_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate receiver (connected once, by apps.streams)."""
    install(using)


@functools.cache
def _select(vendor: str, count: int) -> str:
    """One row (count, epoch, sum of the counters): a row fewer is a hop fewer between the driver and the
    interpreter (each gives the GIL away, which a busy process hands back only after its switch interval)."""
    marker = "?" if vendor == "sqlite" else "%s"
    return (
        f"SELECT COUNT(*), MAX(CASE WHEN name = '{EPOCH}' THEN version END), "
        f"SUM(CASE WHEN name = '{EPOCH}' THEN 0 ELSE version END) "
        f"FROM {TABLE} WHERE name IN ({', '.join([marker] * count)})"
    )


def version_of(tables: Iterable[str]) -> Version | None:
    """The current version of ``tables`` (db_table names) as this thread's connection sees it; None when
    there is none (see the module's docstring)."""
    db = connections[DEFAULT_DB_ALIAS]  # (once: each use of django.db.connection looks it up again)
    if db.in_atomic_block:
        return None
    names = [EPOCH, *tables]
    sql = _select(db.vendor, len(names))
    try:
        # On the driver's own cursor: Django's wrappers cost a cached answer more than the query (this is
        # every request of it). Errors still become Django's (and mark the connection for its health check).
        with db.wrap_database_errors:
            if db.connection is None:
                db.ensure_connection()
            cursor = db.connection.cursor()
            try:
                cursor.execute(sql, names)
                found, epoch, total = cursor.fetchone()
            finally:
                cursor.close()
    except DatabaseError:  # not installed (yet), or a broken connection: compute (with Django's checks)
        return None
    if found != len(names):
        return None
    return int(epoch), int(total)


def cached_until_changed(*labels: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """``compute()`` once per change of the watched models ``labels`` (the rows it reads) in this process:
    callers share its result (so must not change it). The version is read before computing, so a commit
    during the computation only makes the next call compute again. One computation at a time: requests
    arriving meanwhile wait for it and take its answer instead of all computing the same thing."""
    unknown = [label for label in labels if label not in WATCHED]
    assert not unknown, f"not watched (add them to streamhub.db_changes.WATCHED): {unknown}"

    def decorate(compute: Callable[[], T]) -> Callable[[], T]:
        lock = threading.Lock()
        last: list[tuple[Version, T]] = []  # [(version, result)], replaced whole (request threads share it)
        tables: list[str] = []

        def fresh(version: Version) -> list[T]:
            known = last[:]
            if known and known[0][0][0] == version[0] and known[0][0][1] >= version[1]:
                return [known[0][1]]
            return []

        @functools.wraps(compute)
        def cached() -> T:
            if not tables:
                tables[:] = [_table(label) for label in labels]
            version = version_of(tables)
            if version is None:
                return compute()
            hit = fresh(version)
            if hit:
                return hit[0]
            with lock:
                hit = fresh(version)  # computed by the request this one waited for
                if hit:
                    return hit[0]
                result = compute()
                known = last[:]
                if not known or known[0][0][0] != version[0] or known[0][0][1] < version[1]:
                    last[:] = [(version, result)]
                return result

        return cached

    return decorate
