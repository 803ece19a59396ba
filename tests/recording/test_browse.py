"""Recordings to browse in the admin: the files each record wrote with size and duration, served by
range requests (as a browser's video element seeks), downloadable, for staff only, and never a file
outside the media root."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.hosting.models import Application
from apps.recording.models import Record, RecordFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def record():
    app = Application.objects.get(name="app")
    return Record.objects.create(application=app, record_id="rec1", stream_name="cam", state="stopped")


def recorded(record, path, content: bytes = bytes(range(256)) * 40, sequence: int = 0) -> RecordFile:
    path.write_bytes(content)
    return RecordFile.objects.create(
        record=record, sequence=sequence, path=str(path), started_at=timezone.now(), finished_at=timezone.now(),
        bytes=len(content), duration_ms=12_000,
    )  # fmt: skip


def test_the_list_shows_each_file_with_size_duration_and_links(admin_client, media, record):
    file = recorded(record, media / "cam_0.mp4")
    response = admin_client.get(f"/admin/recording/record/files/?record={record.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cam_0.mp4" in html and "10.0\xa0KB" in html and "12 s" in html
    assert f"/admin/recording/record/files/{file.pk}/play/" in html
    assert f"/admin/recording/record/files/{file.pk}/?download=1" in html


def test_a_file_is_served_whole_and_by_ranges(admin_client, media, record):
    content = bytes(range(256)) * 40
    file = recorded(record, media / "cam_0.mp4", content)
    url = f"/admin/recording/record/files/{file.pk}/"

    whole = admin_client.get(url)
    assert whole.status_code == 200
    assert whole["Content-Type"] == "video/mp4" and whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == content

    part = admin_client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(content)}"
    assert b"".join(part.streaming_content) == content[100:200]

    open_ended = admin_client.get(url, HTTP_RANGE="bytes=10000-")
    assert b"".join(open_ended.streaming_content) == content[10000:]
    suffix = admin_client.get(url, HTTP_RANGE="bytes=-5")
    assert b"".join(suffix.streaming_content) == content[-5:]

    beyond = admin_client.get(url, HTTP_RANGE=f"bytes={len(content)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(content)}"

    download = admin_client.get(url + "?download=1")
    assert download["Content-Disposition"].startswith('attachment; filename="cam_0.mp4"')


def test_a_file_outside_the_media_root_is_never_served(admin_client, media, record, tmp_path):
    outside = recorded(record, tmp_path / "secret.mp4")
    assert admin_client.get(f"/admin/recording/record/files/{outside.pk}/").status_code == 404
    assert admin_client.get(f"/admin/recording/record/files/{outside.pk}/play/").status_code == 404


def test_a_ts_recording_plays_through_a_one_segment_playlist(admin_client, media, record):
    file = recorded(record, media / "cam_0.ts")
    playlist = admin_client.get(f"/admin/recording/record/files/{file.pk}/playlist.m3u8")
    assert playlist.status_code == 200
    lines = playlist.content.decode().splitlines()
    assert lines[0] == "#EXTM3U" and "#EXTINF:12.000," in lines and lines[-1] == "#EXT-X-ENDLIST"
    assert f"/admin/recording/record/files/{file.pk}/" in lines
    assert admin_client.get(f"/admin/recording/record/files/{file.pk}/")["Content-Type"] == "video/mp2t"
    player = admin_client.get(f"/admin/recording/record/files/{file.pk}/play/").content.decode()
    assert "hls.min.js" in player


def test_recordings_are_for_staff_only(client, media, record):
    file = recorded(record, media / "cam_0.mp4")
    response = client.get(f"/admin/recording/record/files/{file.pk}/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
