"""The outbound-URL policy (SSRF guard): what it refuses by default, what the allow-list opens, and
the API refusing pulls, pushes, relays and webhooks towards refused addresses with nothing stored."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from aiohttp import web

from apps.access.services import check_admission_webhooks
from apps.calls.models import Call
from apps.pull.models import Pull
from apps.push.models import Push
from apps.webrtc_relay.models import WebRtcRelay
from media_engine.admission import PLAY, AdmissionRequest, Webhook, call_webhook
from media_engine.jobs.pull import Puller, PullFailed
from media_engine.jobs.push import Pusher
from media_engine.outbound import HostUnresolved, OutboundPolicy, OutboundRefused

APP = "/v1/vhosts/default/apps/app"
WCS = "/rest-api"


@pytest.fixture
def strict(settings):
    """The default policy: no allow-list."""
    settings.OUTBOUND_ALLOW = []


# -- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://127.0.0.1:6379/", "loopback"),
        ("rtmp://10.1.2.3/live/x", "private"),
        ("rtsp://192.168.0.160:553/app/stream", "private"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("udp://239.1.1.1:5000", "multicast"),
        ("http://0.0.0.0:8081/", "unspecified"),
        ("http://100.64.0.1/", "non-public"),
        ("http://localhost:6379/", "loopback"),  # a name is judged by what it resolves to
    ],
)
def test_non_public_destinations_are_refused_by_default(url, kind):
    with pytest.raises(OutboundRefused, match=f"is a {kind} address"):
        OutboundPolicy().check_url(url)


def test_public_addresses_pass():
    assert OutboundPolicy().check_url("rtmp://8.8.8.8/live/x") == ["8.8.8.8"]
    assert OutboundPolicy().check_url("http://[2001:4860:4860::8888]/") == ["2001:4860:4860::8888"]


def test_the_allow_list_opens_networks_addresses_and_names():
    policy = OutboundPolicy.from_allow_list(["10.0.0.0/8", "127.0.0.0/8", "::1", "nginx.internal", ".cluster.local"])
    assert policy.check_url("rtmp://10.9.8.7/live/x") == ["10.9.8.7"]
    assert "127.0.0.1" in policy.check_url("http://localhost/")
    assert policy.check_url("http://nginx.internal/") == []  # trusted by name, not even resolved
    assert policy.check_url("http://a.b.cluster.local/") == []
    with pytest.raises(OutboundRefused):
        policy.check_url("http://169.254.169.254/")
    with pytest.raises(OutboundRefused):
        policy.check_url("http://192.168.1.1/")


def test_garbage_in_the_allow_list_is_refused():
    with pytest.raises(ValueError, match="neither a CIDR"):
        OutboundPolicy.from_allow_list(["http://x/"])


def test_a_name_that_does_not_resolve_is_not_refused_but_cannot_be_connected():
    with pytest.raises(HostUnresolved):
        OutboundPolicy().check_url("rtmp://no-such-host.invalid/live/x")
    OutboundPolicy().check_url_for_api("rtmp://no-such-host.invalid/live/x")  # the worker checks again


# -- the API refuses, nothing is stored --------------------------------------------------------------


@pytest.mark.django_db
def test_wcs_webrtc_pull_from_cloud_metadata_is_refused(wcs, strict):
    body = {"uri": "http://169.254.169.254/latest/meta-data", "localStreamName": "x"}
    response = wcs.post(f"{WCS}/pull/pull", body)
    assert response.status_code == 400
    assert "169.254.169.254 is a link-local address" in response.json()["message"]
    assert not WebRtcRelay.objects.exists()


@pytest.mark.django_db
def test_wcs_webrtc_push_to_redis_on_loopback_is_refused(wcs, strict):
    response = wcs.post(f"{WCS}/pull/push", {"uri": "http://127.0.0.1:6379/", "localStreamName": "x"})
    assert response.status_code == 400
    assert "127.0.0.1 is a loopback address" in response.json()["message"]
    assert not WebRtcRelay.objects.exists()


@pytest.mark.django_db
def test_wcs_transponder_to_link_local_is_refused(wcs, strict):
    response = wcs.post(f"{WCS}/push/startup", {"streamName": "x", "rtmpUrl": "rtmp://169.254.169.254/live/x"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Bad request: 169.254.169.254 is a link-local address")
    assert not Push.objects.exists()


@pytest.mark.django_db
def test_wcs_rtmp_agent_from_a_private_address_is_refused(wcs, strict):
    response = wcs.post(f"{WCS}/pull/rtmp/pull", {"uri": "rtmp://10.0.0.5/live/cam"})
    assert response.status_code == 400
    assert "10.0.0.5 is a private address" in response.json()["message"]
    assert not Pull.objects.exists()


@pytest.mark.django_db
def test_ome_pull_of_a_name_resolving_to_loopback_is_refused(ome, strict):
    response = ome.post(f"{APP}/streams", {"name": "cam", "urls": ["http://localhost:6379/"]})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and "localhost (127.0.0.1) is a loopback address" in body["message"]
    assert not Pull.objects.exists()


@pytest.mark.django_db
def test_ome_start_push_to_a_private_address_is_refused(ome, strict):
    body = {
        "id": "p1",
        "stream": {"name": "cam"},
        "protocol": "rtmp",
        "url": "rtmp://192.168.1.10/live",
        "streamKey": "k",
    }
    response = ome.post(f"{APP}:startPush", body)
    assert response.status_code == 400
    assert "192.168.1.10 is a private address" in response.json()["message"]
    assert not Push.objects.exists()


@pytest.mark.django_db
def test_the_allow_list_lets_the_operator_s_own_hosts_in(ome, settings):
    settings.OUTBOUND_ALLOW = ["192.168.1.0/24"]
    body = {
        "id": "p1",
        "stream": {"name": "cam"},
        "protocol": "rtmp",
        "url": "rtmp://192.168.1.10/live",
        "streamKey": "k",
    }
    assert ome.post(f"{APP}:startPush", body).status_code == 200
    assert Push.objects.filter(push_id="p1").exists()


def test_an_admission_webhook_on_a_refused_address_is_a_bad_setting(strict):
    with pytest.raises(ValueError, match="controlServerUrl: 169.254.169.254 is a link-local address"):
        check_admission_webhooks({"controlServerUrl": "http://169.254.169.254/hook"})


# -- the workers and the engine refuse too (rows made before the policy changed) --------------------


class _Listener:
    """A TCP port that counts the connections made to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener():
    server = _Listener()
    yield server
    server.close()


def test_a_push_job_to_a_refused_target_ends_in_error_without_connecting(strict, listener):
    states = []
    pusher = Pusher(
        "rtmp://127.0.0.1:1/app/source",
        "rtmp",
        f"rtmp://127.0.0.1:{listener.port}/live",
        on_state=lambda state, error: states.append((state, error)),
        sleep=lambda seconds: None,
    )
    with pytest.raises(OutboundRefused):
        pusher.run()
    assert states and states[-1][0] == "error" and "loopback address" in states[-1][1]
    assert listener.accepted == 0


def test_a_pull_job_from_a_refused_source_fails_without_connecting(strict, listener):
    states = []
    puller = Puller(
        [f"rtmp://127.0.0.1:{listener.port}/live/x"],
        "rtmp://127.0.0.1:1/app/x",
        on_state=lambda state, error: states.append((state, error)),
    )
    with pytest.raises(PullFailed, match="loopback address"):
        puller.run()
    assert listener.accepted == 0


def test_the_engine_does_not_call_a_webhook_on_a_refused_address(strict):
    calls = []

    async def scenario() -> tuple:
        async def hook(request):
            calls.append(request.path)
            return web.json_response({"allowed": True})

        server = web.Application()
        server.router.add_post("/hook", hook)
        runner = web.AppRunner(server)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        request = AdmissionRequest(PLAY, "hls", "http://127.0.0.1/app/cam", "1.2.3.4", 0, "cam")
        try:
            by_address = await call_webhook(request, Webhook(f"http://127.0.0.1:{port}/hook"), 0)
            by_name = await call_webhook(request, Webhook(f"http://localhost:{port}/hook"), 0)
        finally:
            await runner.cleanup()
        return by_address, by_name

    by_address, by_name = asyncio.run(scenario())
    assert not by_address.allowed and not by_name.allowed  # the default action: deny
    assert calls == []


def test_the_engine_calls_an_allowed_webhook(settings):
    settings.OUTBOUND_ALLOW = ["127.0.0.1", "::1"]

    async def scenario():
        async def hook(request):
            return web.json_response({"allowed": True})

        server = web.Application()
        server.router.add_post("/hook", hook)
        runner = web.AppRunner(server)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        request = AdmissionRequest(PLAY, "hls", "http://127.0.0.1/app/cam", "1.2.3.4", 0, "cam")
        try:
            return await call_webhook(request, Webhook(f"http://localhost:{port}/hook"), 0)
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()).allowed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, text",
    [
        ({"sipDomain": "169.254.169.254"}, "169.254.169.254 is a link-local address"),
        ({"sipOutboundProxy": "10.0.0.9"}, "10.0.0.9 is a private address"),
        ({"rtmpUrl": "rtmp://127.0.0.1:6379/live"}, "127.0.0.1 is a loopback address"),
    ],
)
def test_wcs_sip_calls_to_refused_addresses_are_refused(wcs, strict, changes, text):
    call = {"callId": "c1", "callee": "100", "sipDomain": "pbx.example.com", "sipPort": 5060, **changes}
    response = wcs.post(f"{WCS}/call/startup", call)
    assert response.status_code == 400
    assert text in response.json()["message"]
    assert not Call.objects.exists()
