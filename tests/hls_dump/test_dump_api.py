"""OME :startHlsDump / :stopHlsDump without media: the spec's bodies, validation, paths under the media root, 404/409."""

import pytest
from django.core.exceptions import ValidationError

from apps.engine.models import EngineNode
from apps.hls_dump.models import HlsDump
from apps.hosting.models import Application
from apps.streams import services

pytestmark = pytest.mark.django_db
STREAM = "/v1/vhosts/default/apps/app/streams/stream"

# The spec's request bodies, as printed: their paths are outside our media root.
SPEC_START = {
    "outputStreamName": "stream",
    "id": "unique_dump_id",
    "outputPath": "/tmp/",
    "playlist": ["llhls.m3u8", "abr.m3u8"],
    "infoFile": "/home/abc/xxx/unique_info_file_name.info",
    "userData": "access_key_id='AKIAXFOT7EWH3ZA4XXXX'",
}
SPEC_STOP = {"outputStreamName": "stream", "id": "dump_id"}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def live():
    node = EngineNode.objects.create(node_id="node-a", hostname="a", rtmp_port=1935, media_http_port=3333)
    return services.stream_started(Application.objects.get(name="app"), "stream", node, "Rtmp", "127.0.0.1:5000")


def start_body(media_root, **changes):
    return {**SPEC_START, "outputPath": "dumps/stream", "infoFile": f"{media_root}/dumps/stream.info", **changes}


def test_the_spec_example_is_refused_for_its_paths_outside_the_media_root(ome, live):
    response = ome.post(f"{STREAM}:startHlsDump", SPEC_START)
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": "[HTTP] outputPath: /tmp/: outside the media root; "
        "infoFile: /home/abc/xxx/unique_info_file_name.info: outside the media root (400)",
    }
    assert not HlsDump.objects.exists()


def test_the_spec_example_works_where_the_operator_allows_its_folders(ome, live, settings):
    settings.EXTRA_OUTPUT_ROOTS = ["/tmp", "/home/abc/xxx"]
    response = ome.post(f"{STREAM}:startHlsDump", SPEC_START)
    assert response.json() == {"statusCode": 200, "message": "OK"}
    dump = HlsDump.objects.get()
    assert (dump.output_path, dump.info_file) == ("/tmp", "/home/abc/xxx/unique_info_file_name.info")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outputPath": "/etc/cron.d"}, "[HTTP] outputPath: /etc/cron.d: outside the media root or the allowed "
         "output roots (400)"),
        ({"outputPath": "/tmp/../etc"}, "[HTTP] outputPath: /tmp/../etc: '..' is not allowed (400)"),
        ({"infoFile": "/tmpfoo/x.info"}, "[HTTP] infoFile: /tmpfoo/x.info: outside the media root or the allowed "
         "output roots (400)"),
    ],
)  # fmt: skip
def test_paths_outside_the_allowed_output_roots_stay_refused(ome, live, media_root, settings, changes, message):
    settings.EXTRA_OUTPUT_ROOTS = ["/tmp"]
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, **changes))
    assert (response.status_code, response.json()["message"]) == (400, message)
    assert not HlsDump.objects.exists()


def test_it_starts_a_dump_of_a_live_stream(ome, live, media_root):
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root))
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK"}
    dump = HlsDump.objects.get()
    assert (dump.dump_id, dump.stream_name, dump.state) == ("unique_dump_id", "stream", "ready")
    assert dump.output_path == str(media_root / "dumps" / "stream")
    assert dump.info_file == str(media_root / "dumps" / "stream.info")
    assert dump.playlists == ["llhls.m3u8", "abr.m3u8"] and dump.user_data == SPEC_START["userData"]


def test_only_the_required_fields(ome, live):
    body = {"outputStreamName": "stream", "id": "d", "outputPath": "dumps/d"}
    assert ome.post(f"{STREAM}:startHlsDump", body).status_code == 200
    dump = HlsDump.objects.get()
    assert dump.playlists == [] and dump.info_file == "" and dump.user_data == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outputPath": "../escape"}, "[HTTP] outputPath: ../escape: '..' is not allowed (400)"),
        ({"outputPath": "file:///tmp/x"}, "[HTTP] outputPath: file:///tmp/x: URLs such as file:// are not paths (400)"),
        ({"outputPath": "/etc/cron.d"}, "[HTTP] outputPath: /etc/cron.d: outside the media root (400)"),
        (
            {"outputPath": "."},
            "[HTTP] outputPath: .: the media root itself; a dump needs a folder of its own (400)",
        ),  # fmt: skip
        ({"outputPath": "dumps/.."}, "[HTTP] outputPath: dumps/..: '..' is not allowed (400)"),
        ({"outputPath": "./"}, None),
        ({"infoFile": "a/../../x.info"}, "[HTTP] infoFile: a/../../x.info: '..' is not allowed (400)"),
        ({"infoFile": "/home/abc/x.info"}, "[HTTP] infoFile: /home/abc/x.info: outside the media root (400)"),
        (
            {"playlist": ["../llhls.m3u8"]},
            "[HTTP] playlist.0: A playlist is a file name ending in .m3u8, e.g. llhls.m3u8. (400)",
        ),  # fmt: skip
        ({"playlist": "llhls.m3u8"}, None),
        ({"id": None}, "[HTTP] id: This field may not be null. (400)"),
    ],
)
def test_bad_bodies_are_400(ome, live, media_root, changes, message):
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, **changes))
    assert response.status_code == 400
    if message:
        assert response.json()["message"] == message
    assert not HlsDump.objects.exists()


def test_the_media_root_given_as_an_absolute_path_is_refused_too(ome, live, media_root):
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, outputPath=f"{media_root}/"))
    assert response.status_code == 400
    assert "a dump needs a folder of its own" in response.json()["message"]
    assert not HlsDump.objects.exists()
    assert list(media_root.iterdir()) == []  # nothing written into the root


@pytest.mark.parametrize("field", ["outputStreamName", "id", "outputPath"])
def test_required_fields(ome, live, media_root, field):
    body = start_body(media_root)
    del body[field]
    response = ome.post(f"{STREAM}:startHlsDump", body)
    assert response.status_code == 400
    assert response.json()["message"] == f"[HTTP] {field}: This field is required. (400)"


def test_an_existing_info_file_is_refused(ome, live, media_root):
    (media_root / "taken.info").write_text("<HLSDumpInfo/>")
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, infoFile="taken.info"))
    assert response.status_code == 400
    assert response.json()["message"] == "[HTTP] infoFile: taken.info: a file of that name already exists (400)"


def test_a_duplicate_active_id_is_409(ome, live, media_root):
    assert ome.post(f"{STREAM}:startHlsDump", start_body(media_root)).status_code == 200
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, infoFile="other.info"))
    assert response.status_code == 409
    assert response.json()["message"] == "[HTTP] Duplicate ID already exists: [unique_dump_id] (409)"


def test_a_stream_that_is_not_live_is_404(ome, media_root):
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root))
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "message": "[HTTP] Could not find the stream: [default/#default#app/stream] (404)",
    }
    other = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, outputStreamName="stream_720p"))
    assert other.status_code == 404


def test_an_unknown_output_stream_is_404(ome, live, media_root):
    response = ome.post(f"{STREAM}:startHlsDump", start_body(media_root, outputStreamName="stream_720p"))
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the stream: [default/#default#app/stream_720p] (404)"


def test_stop_by_id_and_by_stream(ome, live, media_root):
    ome.post(f"{STREAM}:startHlsDump", start_body(media_root, id="dump_id", infoFile="a.info"))
    ome.post(f"{STREAM}:startHlsDump", start_body(media_root, id="other", infoFile="b.info"))

    response = ome.post(f"{STREAM}:stopHlsDump", SPEC_STOP)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK"}
    assert HlsDump.objects.get(dump_id="dump_id").state == "stopped"
    assert HlsDump.objects.get(dump_id="other").state == "ready"

    # Without an id, every dump of the stream ends.
    assert ome.post(f"{STREAM}:stopHlsDump", {"outputStreamName": "stream"}).status_code == 200
    assert set(HlsDump.objects.values_list("state", flat=True)) == {"stopped"}


def test_stop_of_an_unknown_dump_is_404(ome):
    response = ome.post(f"{STREAM}:stopHlsDump", SPEC_STOP)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the dump: [default/app/dump_id] (404)"
    assert ome.post(f"{STREAM}:stopHlsDump", {"id": "dump_id"}).json()["message"] == (
        "[HTTP] outputStreamName: This field is required. (400)"
    )


def test_an_unknown_app_is_404(ome, media_root):
    response = ome.post("/v1/vhosts/default/apps/app1/streams/stream:stopHlsDump", SPEC_STOP)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the application: [default/app1] (404)"


def test_the_admin_refuses_the_media_root_as_a_dump_folder(media_root):
    dump = HlsDump(output_path=str(media_root))
    with pytest.raises(ValidationError) as refused:
        dump.clean()
    assert "a dump needs a folder of its own" in str(refused.value.message_dict["output_path"])
    HlsDump(output_path=str(media_root / "dumps" / "d")).clean()  # a folder below it is fine
