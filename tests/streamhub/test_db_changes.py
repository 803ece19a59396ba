"""streamhub/db_changes.py on the test database (SQLite or PostgreSQL), with real commits: a watched
table's version moves with every commit that changes what a cached answer shows, by any connection,
and not with a heartbeat's counters; a cached computation runs again only then, once for all the
requests waiting for it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_migrate, pre_migrate
from django.utils import timezone

from apps.engine.models import EngineNode
from apps.hosting.models import Application, VirtualHost
from apps.recording.models import RecordFile
from apps.streams.models import Stream
from apps.streams.services import CounterSnapshot, record_counters
from streamhub import db_changes

pytestmark = pytest.mark.django_db(transaction=True)

TRACKS = [{"kind": "video", "codec": "H264", "width": 640, "height": 360, "bitrate": 800_000}]


def stream_version():
    return db_changes.version_of(["streams_stream"])


def in_other_connection(work) -> None:
    """``work()`` committed by another database connection (another thread's), as another process would."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def an_application() -> Application:
    """(A transactional test's flush takes the migrated default application with it.)"""
    vhost, _ = VirtualHost.objects.get_or_create(name="default")
    return Application.objects.get_or_create(virtual_host=vhost, name="app")[0]


@pytest.fixture
def live_stream() -> Stream:
    node = EngineNode.objects.create(node_id="n1.0", address="127.0.0.1", rtmp_port=1935, media_http_port=3333)
    application = an_application()
    return Stream.objects.create(
        application=application, node=node, name="cam", source_type="Rtmp", input_tracks=TRACKS
    )


def snapshot(stream: Stream, total_bytes_in: int, tracks: list[dict]) -> CounterSnapshot:
    now = time.time()
    return CounterSnapshot(
        stream_id=stream.pk,
        total_bytes_in=total_bytes_in,
        total_bytes_out=total_bytes_in * 2,
        last_recv_time=now,
        last_sent_time=now,
        connections={"rtmp": 1},
        total_connections=1,
        max_total_connections=1,
        max_total_connection_time=now,
        throughput_in=total_bytes_in * 8,
        throughput_out=0,
        input_tracks=tracks,
        hls_viewers=[],
    )


def test_the_version_moves_with_each_commit_of_a_watched_row_and_only_then(live_stream):
    first = stream_version()
    assert first is not None and stream_version() == first
    in_other_connection(lambda: Stream.objects.filter(pk=live_stream.pk).update(name="cam2"))
    second = stream_version()
    assert second[1] > first[1], "a QuerySet.update() by another connection counts"
    in_other_connection(lambda: VirtualHost.objects.create(name="other"))
    assert stream_version() == second, "another table's change is not the streams'"

    with transaction.atomic():  # uncommitted changes could be rolled back: no version, nothing cached
        Stream.objects.filter(pk=live_stream.pk).update(name="cam3")
        assert stream_version() is None
    Stream.objects.filter(pk=live_stream.pk).delete()
    assert stream_version()[1] > second[1]


def test_a_heartbeat_moves_no_version_unless_the_tracks_change(live_stream):
    record_counters([snapshot(live_stream, 1000, TRACKS)])
    before = stream_version()
    nodes = db_changes.version_of(["engine_enginenode"])
    # What the engine writes every 2 s: counters and liveness only.
    record_counters([snapshot(live_stream, 2000, TRACKS)])
    EngineNode.objects.filter(pk=live_stream.node_id).update(
        last_heartbeat=timezone.now() + timedelta(seconds=2), load_streams=1, load_viewers=3
    )
    assert Stream.objects.get(pk=live_stream.pk).total_bytes_in == 2000
    assert stream_version() == before
    assert db_changes.version_of(["engine_enginenode"]) == nodes

    record_counters([snapshot(live_stream, 3000, [{**TRACKS[0], "bitrate": 900_000}])])
    assert stream_version()[1] > before[1], "find_all shows the bitrate"
    EngineNode.objects.filter(pk=live_stream.node_id).update(rtmp_port=1936)
    assert db_changes.version_of(["engine_enginenode"])[1] > nodes[1]


def test_a_cached_computation_runs_again_only_after_a_change_it_reads(live_stream):
    runs = []

    @db_changes.cached_until_changed("streams.Stream")
    def names() -> list[str]:
        runs.append(1)
        return sorted(Stream.objects.values_list("name", flat=True))

    assert names() == names() == ["cam"] and len(runs) == 1
    record_counters([snapshot(live_stream, 5000, TRACKS)])
    in_other_connection(lambda: VirtualHost.objects.create(name="other"))
    assert names() == ["cam"] and len(runs) == 1
    in_other_connection(lambda: Stream.objects.filter(pk=live_stream.pk).update(name="cam2"))
    assert names() == names() == ["cam2"] and len(runs) == 2


def test_requests_arriving_during_a_computation_take_its_answer(live_stream):
    started, release, runs, answers = threading.Event(), threading.Event(), [], []

    @db_changes.cached_until_changed("streams.Stream")
    def slow() -> list[str]:
        runs.append(1)
        started.set()
        release.wait(10)
        return list(Stream.objects.values_list("name", flat=True))

    def request() -> None:
        try:
            answers.append(slow())
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.3)  # the others read the version and wait for the one computing
    release.set()
    for thread in threads:
        thread.join(10)
    assert answers == [["cam"]] * 8 and len(runs) == 1


def test_a_new_database_has_versions_of_its_own(live_stream):
    runs = []

    @db_changes.cached_until_changed("streams.Stream")
    def count() -> int:
        runs.append(1)
        return Stream.objects.count()

    assert count() == count() == 1 and len(runs) == 1
    with connection.cursor() as cursor:  # another database whose counters happen to be as high
        cursor.execute(f"UPDATE {db_changes.TABLE} SET version = version + 1 WHERE name = %s", [db_changes.EPOCH])
    assert count() == 1 and len(runs) == 2


def test_migrate_puts_back_the_triggers_a_remade_table_lost():
    """A migration that remakes a SQLite table drops its triggers: post_migrate makes them again."""
    table = "streams_stream"
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {db_changes.TRIGGER_PREFIX}{table}_update")
        else:
            cursor.execute(f"DROP TRIGGER {db_changes.TRIGGER_PREFIX}update ON {table}")
    stream = Stream.objects.create(application=an_application(), name="cam", source_type="Rtmp")
    before = stream_version()
    Stream.objects.filter(pk=stream.pk).update(name="lost")
    assert stream_version() == before, "no trigger, no version change (the test's premise)"

    from django.apps import apps

    post_migrate.send(sender=apps.get_app_config("streams"), app_config=apps.get_app_config("streams"), using="default")
    Stream.objects.filter(pk=stream.pk).update(name="found")
    assert stream_version()[1] > before[1]


def test_a_migrate_that_leaves_a_watched_table_missing_still_works(monkeypatch):
    """`migrate recording zero` (say): the other tables get their triggers, the missing one none."""
    real_table = db_changes._table
    monkeypatch.setattr(
        db_changes, "_table", lambda label: "gone" if label == "recording.Record" else real_table(label)
    )
    db_changes.install()
    monkeypatch.undo()
    stream = Stream.objects.create(application=an_application(), name="cam", source_type="Rtmp")
    before = stream_version()
    Stream.objects.filter(pk=stream.pk).update(name="moved")
    assert stream_version()[1] > before[1]
    db_changes.install()


def test_a_migration_may_drop_and_add_a_watched_column():
    """Both databases refuse to drop a column a trigger names: migrate drops the triggers first, makes
    them again after, and counts what happened meanwhile as a change."""
    from django.apps import apps

    streams = apps.get_app_config("streams")
    before = db_changes.version_of(["recording_recordfile"])
    pre_migrate.send(sender=streams, app_config=streams, using="default")
    writer = RecordFile._meta.get_field("writer")
    with connection.schema_editor() as editor:  # what `migrate recording zero` does on the way
        editor.remove_field(RecordFile, writer)
        editor.add_field(RecordFile, writer)
    post_migrate.send(sender=streams, app_config=streams, using="default")
    after = db_changes.version_of(["recording_recordfile"])
    assert after[1] > before[1]
    stream = Stream.objects.create(application=an_application(), name="cam", source_type="Rtmp")
    moved = stream_version()
    Stream.objects.filter(pk=stream.pk).update(name="moved")
    assert stream_version()[1] > moved[1], "the triggers are back"


def test_only_watched_models_can_be_cached():
    with pytest.raises(AssertionError, match="not watched"):
        db_changes.cached_until_changed("push.Push")
