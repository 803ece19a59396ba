"""Multiple streams recorders without media: uri rules, members, file names that never leave the
media folder nor overwrite an earlier recording, and the member streams the media job reads."""

from __future__ import annotations

import pytest

from apps.engine.models import EngineNode
from apps.hosting.models import Application
from apps.jobs.choices import JobState
from apps.multi_recorder.models import MultiRecorder
from apps.multi_recorder.services import (
    InvalidUri,
    MemberConflict,
    NotAMember,
    RecorderConflict,
    add_stream,
    create_multi_recorder,
    file_path,
    live_members,
    member_source_url,
    next_sequence,
    recorder_name,
    remove_stream,
    stop_multi_recorder,
)
from apps.streams.models import Stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def app() -> Application:
    return Application.objects.get(virtual_host__name="default", name="app")


@pytest.fixture
def node() -> EngineNode:
    return EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)


def live(app: Application, name: str, node: EngineNode | None) -> Stream:
    return Stream.objects.create(application=app, name=name, source_type="Rtmp", node=node)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.mark.parametrize("uri", ["multi-recorder://test-record", "multi-recorder://a.b_c-1", "multi-recorder://X"])
def test_it_takes_a_safe_name(uri):
    assert recorder_name(uri) == uri.split("://")[1]


@pytest.mark.parametrize(
    "uri",
    ["test-record", "multi-recorder://", "multi-recorder://../etc", "multi-recorder://a/b", "rtmp://x",
     "multi-recorder://.hidden", "multi-recorder://a b", "multi-recorder://" + "x" * 129, "multi-recorder:/x"],
)  # fmt: skip
def test_it_refuses_a_malformed_or_unsafe_uri(app, uri):
    with pytest.raises(InvalidUri):
        create_multi_recorder(app, uri)
    assert not MultiRecorder.objects.exists()


def test_files_go_under_the_media_folder(media_root):
    assert file_path("multi-recorder://test-record", 0) == (
        media_root.resolve() / "multi-recorder" / "multi-recorder___test-record.mp4"
    )
    assert file_path("multi-recorder://test-record", 2).name == "multi-recorder___test-record-2.mp4"


def test_a_recorder_started_again_continues_the_numbering(media_root):
    uri = "multi-recorder://again"
    assert next_sequence(uri) == 0
    folder = media_root / "multi-recorder"
    folder.mkdir(parents=True)
    (folder / "multi-recorder___again.mp4").write_bytes(b"x")
    (folder / "multi-recorder___again-3.mp4").write_bytes(b"x")
    (folder / "multi-recorder___again-other-9.mp4").write_bytes(b"x")  # another recorder's name
    assert next_sequence(uri) == 4


def test_one_active_recorder_per_uri(app):
    recorder = create_multi_recorder(app, "multi-recorder://one")
    assert (recorder.state, recorder.stream_name, recorder.members) == (JobState.READY, "one", [])
    with pytest.raises(RecorderConflict):
        create_multi_recorder(app, "multi-recorder://one")
    stop_multi_recorder(recorder)
    recorder.refresh_from_db()
    assert recorder.state == JobState.STOPPED  # not running yet: stopped at once
    assert create_multi_recorder(app, "multi-recorder://one").pk != recorder.pk


def test_members_are_added_once_and_removed(app, node):
    recorder = create_multi_recorder(app, "multi-recorder://members")
    first, second = live(app, "first", node), live(app, "second", node)
    add_stream(recorder, first)
    add_stream(recorder, second)
    with pytest.raises(MemberConflict):
        add_stream(recorder, first)
    recorder.refresh_from_db()
    assert recorder.members == [str(first.media_session_id), str(second.media_session_id)]
    remove_stream(recorder, str(first.media_session_id))
    with pytest.raises(NotAMember):
        remove_stream(recorder, str(first.media_session_id))
    recorder.refresh_from_db()
    assert recorder.members == [str(second.media_session_id)]


def test_the_job_reads_the_members_that_are_live_on_a_node(app, node):
    recorder = create_multi_recorder(app, "multi-recorder://job")
    first, ended, nodeless = live(app, "first", node), live(app, "ended", node), live(app, "nodeless", None)
    for stream in (ended, first, nodeless):
        add_stream(recorder, stream)
    ended.end()
    assert live_members(recorder.pk) == [str(first.media_session_id)]
    url = member_source_url(app, str(first.media_session_id))
    assert url.startswith(f"rtmp://{node.address}:1935/app/first")
