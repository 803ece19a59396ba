"""OME :startPush / :stopPush / :pushes without media: the spec's three bodies, validation, 404/409."""

import pytest

from apps.push.models import Push

pytestmark = pytest.mark.django_db
APP = "/v1/vhosts/default/apps/app"

# The spec's SRT, RTMP and MPEG-TS request bodies, with concrete hosts.
SRT = {"id": "srt", "stream": {"name": "stream", "variantNames": []}, "protocol": "srt",
       "url": "srt://127.0.0.1:9999?mode=caller&latency=120000&timeout=500000", "streamKey": ""}  # fmt: skip
RTMP = {"id": "rtmp", "stream": {"name": "stream", "variantNames": ["h264_fhd", "aac"]}, "protocol": "rtmp",
        "url": "rtmp://127.0.0.1:1935/app_name", "streamKey": "stream_name"}  # fmt: skip
MPEGTS = {"id": "ts", "stream": {"name": "stream", "variantNames": []}, "protocol": "mpegts",
          "url": "udp://127.0.0.1:5000", "streamKey": ""}  # fmt: skip


@pytest.mark.parametrize("body", [SRT, RTMP, MPEGTS], ids=["srt", "rtmp", "mpegts"])
def test_a_push_for_a_stream_not_live_is_reserved(ome, body):
    response = ome.post(f"{APP}:startPush", body)
    assert response.status_code == 200
    push = response.json()["response"]
    assert push["id"] == body["id"] and push["state"] == "ready"
    assert (push["vhost"], push["app"], push["protocol"], push["url"]) == (
        "default",
        "app",
        body["protocol"],
        body["url"],
    )
    assert push["stream"] == {"name": "stream", "trackIds": [], "variantNames": body["stream"]["variantNames"]}
    assert push["streamKey"] == body["streamKey"]
    for field in ("sentBytes", "sentTime", "sequence", "totalsentBytes", "totalsentTime"):
        assert push[field] == 0
    assert {"createdTime", "startTime", "finishTime"} <= set(push)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"protocol": "hls"}, "protocol"),
        ({"protocol": "rtmp", "url": "http://example.com/app"}, "url"),
        ({"protocol": "mpegts", "url": "rtmp://127.0.0.1/app"}, "url"),
        ({"protocol": "srt", "url": "srt://"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
    ],
)
def test_unknown_protocols_and_bad_urls_are_400(ome, changes, field):
    response = ome.post(f"{APP}:startPush", {**RTMP, **changes})
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"[HTTP] {field}")
    assert not Push.objects.exists()


@pytest.mark.parametrize("key", [None, ""], ids=["missing", "empty"])
def test_an_rtmp_push_without_a_stream_key_is_400(ome, key):
    body = {name: value for name, value in RTMP.items() if name != "streamKey"}
    if key is not None:
        body["streamKey"] = key
    response = ome.post(f"{APP}:startPush", body)
    assert response.status_code == 400
    assert response.json()["message"] == "[HTTP] streamKey: This field is required for rtmp. (400)"
    assert not Push.objects.exists()


@pytest.mark.parametrize("body", [SRT, MPEGTS], ids=["srt", "mpegts"])
def test_srt_and_mpegts_pushes_need_no_stream_key(ome, body):
    without = {name: value for name, value in body.items() if name != "streamKey"}
    assert ome.post(f"{APP}:startPush", without).status_code == 200


def test_duplicates_stop_and_list(ome):
    ome.post(f"{APP}:startPush", RTMP)
    duplicate = ome.post(f"{APP}:startPush", RTMP)
    assert duplicate.status_code == 409
    assert duplicate.json()["message"] == "[HTTP] Duplicate ID already exists: [rtmp] (409)"
    ome.post(f"{APP}:startPush", MPEGTS)
    assert [p["id"] for p in ome.post(f"{APP}:pushes").json()["response"]] == ["rtmp", "ts"]
    assert ome.post(f"{APP}:stopPush", {"id": "rtmp"}).json() == {"statusCode": 200, "message": "OK"}
    assert ome.post(f"{APP}:pushes", {"id": "rtmp"}).json()["response"][0]["state"] == "stopped"
    missing = ome.post(f"{APP}:stopPush", {"id": "nope"})
    assert missing.status_code == 404
    assert missing.json()["message"] == "[HTTP] Could not find the push: [default/app/nope] (404)"


def test_unknown_app_is_404(ome):
    response = ome.post("/v1/vhosts/vhost/apps/app1:startPush", RTMP)
    assert response.status_code == 404
    assert response.json()["message"] == "[HTTP] Could not find the virtual host: [vhost] (404)"
