"""The admission point: OME signed URLs, WCS ACL keys and an admission webhook (a real aiohttp
server on loopback), and the per-viewer grants that keep HLS segment requests cheap."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

from aiohttp import web

from media_engine.admission import (
    PLAY,
    PUBLISH,
    AccessRules,
    AdmissionRequest,
    Enables,
    GrantCache,
    SignedPolicy,
    Webhook,
    add_session_to_playlist,
    admit,
    make_policy,
    redact,
    sign_url,
)

NOW = 1_700_000_000.0
SECRET = "aKq#1kj"
RTMP_POLICY = SignedPolicy(SECRET, Enables(frozenset({"rtmp"}), frozenset({"hls"})))
URL = "rtmp://127.0.0.1:1935/app/stream"


def signed(url: str = URL, expire_in: float = 60, **policy) -> str:
    return sign_url(url, SECRET, make_policy(int((NOW + expire_in) * 1000), **policy))


def request(url: str, direction: str = PUBLISH, protocol: str = "rtmp", address: str = "127.0.0.1", stream="stream"):
    return AdmissionRequest(direction, protocol, url, address, 50000, stream)


def decide(rules: AccessRules, req: AdmissionRequest, now: float = NOW):
    return asyncio.run(admit(rules, req, clock=lambda: now))


# --- signed policy -----------------------------------------------------------------------------


def test_a_signed_url_is_admitted():
    decision = decide(AccessRules(signed_policy=RTMP_POLICY), request(signed()))
    assert decision.allowed and decision.expires_at is None


def test_the_signature_is_ome_s_hmac_sha1_of_the_url_before_it():
    url = signed()
    unsigned, signature = url.split("&signature=")
    expected = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha1).digest())
    assert signature == expected.rstrip(b"=").decode()
    policy = unsigned.split("?policy=")[1]
    assert json.loads(base64.urlsafe_b64decode(policy + "==")) == {"url_expire": int((NOW + 60) * 1000)}


def test_unsigned_expired_tampered_and_foreign_urls_are_refused():
    rules = AccessRules(signed_policy=RTMP_POLICY)
    cases = {
        URL: "a signed URL is required",
        signed(expire_in=-1): "the URL has expired",
        signed().replace("/stream?", "/other?"): "the signature does not match",
        sign_url(URL, "another secret", make_policy(int((NOW + 60) * 1000))): "the signature does not match",
        signed(url_activate_ms=int((NOW + 30) * 1000)): "the URL is not active yet",
        signed(allow_ip="10.0.0.0/8"): "the client address is not allowed",
    }
    for url, reason in cases.items():
        decision = decide(rules, request(url))
        assert (decision.allowed, decision.reason) == (False, reason), url
    assert SECRET not in "".join(cases.values())


def test_allow_ip_and_stream_expire():
    rules = AccessRules(signed_policy=RTMP_POLICY)
    decision = decide(rules, request(signed(allow_ip="127.0.0.0/24", stream_expire_ms=int((NOW + 300) * 1000))))
    assert decision.allowed and decision.expires_at == NOW + 300


def test_the_default_port_may_be_left_out_of_what_was_signed():
    rules = AccessRules(signed_policy=RTMP_POLICY)
    url = signed("rtmp://example.com/app/stream")
    as_sent = url.replace("example.com/", "example.com:1935/")  # tcUrl of ffmpeg carries the port
    assert decide(rules, request(as_sent)).allowed


def test_only_the_enabled_protocols_and_directions_are_checked():
    rules = AccessRules(signed_policy=RTMP_POLICY)
    assert rules.checks(PUBLISH, "rtmp", "s") and rules.checks(PLAY, "hls", "s")
    assert not rules.checks(PLAY, "rtmp", "s") and not rules.checks(PUBLISH, "srt", "s")
    assert decide(rules, request(URL, PLAY, "rtmp")).allowed


def test_misconfigured_rules_refuse_everything():
    rules = AccessRules(misconfigured="access control of this application is misconfigured")
    assert rules.checks(PLAY, "hls", "s")
    assert not decide(rules, request(signed())).allowed


# --- ACL keys ------------------------------------------------------------------------------------


def test_a_stream_with_acl_keys_plays_only_with_one_of_them():
    rules = AccessRules(acl={"stream": frozenset({"k1", "k2"})})
    assert rules.checks(PLAY, "hls", "stream") and not rules.checks(PLAY, "hls", "open")
    assert decide(rules, request(f"{URL}?aclAuth=k2", PLAY)).allowed
    refused = decide(rules, request(f"{URL}?aclAuth=nope", PLAY))
    assert not refused.allowed and "k1" not in refused.reason
    assert not decide(rules, request(URL, PLAY)).allowed
    assert decide(rules, request(URL, PUBLISH)).allowed  # keys are for players


# --- admission webhook ---------------------------------------------------------------------------


class ControlServer:
    """A control server on loopback answering with ``answer`` after ``delay`` seconds."""

    def __init__(self, answer: dict | None, delay: float = 0.0, status: int = 200) -> None:
        self.answer, self.delay, self.status = answer, delay, status
        self.requests: list[tuple[dict, str]] = []

    async def handle(self, http_request: web.Request) -> web.Response:
        body = await http_request.read()
        self.requests.append((json.loads(body), http_request.headers.get("X-OME-Signature", "")))
        self.raw = body
        await asyncio.sleep(self.delay)
        return web.json_response(self.answer, status=self.status)

    async def decide(self, req: AdmissionRequest, **hook) -> object:
        app = web.Application()
        app.router.add_post("/admission", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        enables = Enables(frozenset({"rtmp", "srt"}), frozenset({"hls", "llhls"}))
        webhook = Webhook(f"http://127.0.0.1:{port}/admission", enables, **hook)
        try:
            return await admit(AccessRules(webhook=webhook), req, clock=lambda: NOW)
        finally:
            await runner.cleanup()


def test_the_webhook_allows_with_what_ome_sends():
    server = ControlServer({"allowed": True, "lifetime": 60000, "reason": "authorized"})
    decision = asyncio.run(server.decide(request(f"{URL}?token=abc"), secret="hook-secret", timeout=5))
    assert decision.allowed and decision.expires_at == NOW + 60
    body, signature = server.requests[0]
    assert body["client"] == {"address": "127.0.0.1", "port": 50000, "user_agent": ""}
    assert body["request"]["direction"] == "incoming" and body["request"]["protocol"] == "rtmp"
    assert body["request"]["status"] == "opening" and body["request"]["url"] == f"{URL}?token=abc"
    assert body["request"]["time"].endswith("Z")
    expected = base64.urlsafe_b64encode(hmac.new(b"hook-secret", server.raw, hashlib.sha1).digest()).rstrip(b"=")
    assert signature == expected.decode()


def test_the_webhook_denies_and_rewrites():
    denied = asyncio.run(ControlServer({"allowed": False, "reason": "banned"}).decide(request(URL)))
    assert (denied.allowed, denied.reason) == (False, "banned")
    rewrite = ControlServer({"allowed": True, "new_url": "rtmp://127.0.0.1:1935/app/renamed"})
    decision = asyncio.run(rewrite.decide(request(URL)))
    assert decision.allowed and decision.new_target == ("app", "renamed")


def test_a_webhook_that_times_out_or_fails_takes_the_default_action():
    slow = ControlServer({"allowed": True}, delay=1.0)
    refused = asyncio.run(slow.decide(request(URL), timeout=0.2))
    assert (refused.allowed, refused.reason) == (False, "the admission webhook timed out")
    allowed = asyncio.run(
        ControlServer({"allowed": True}, delay=1.0).decide(request(URL), timeout=0.2, allow_on_failure=True)
    )
    assert allowed.allowed
    broken = asyncio.run(ControlServer({"error": "x"}, status=500).decide(request(URL)))
    assert not broken.allowed and "500" in broken.reason


def test_protocols_the_webhook_does_not_enable_are_not_sent():
    server = ControlServer({"allowed": False})
    assert asyncio.run(server.decide(request(URL, PLAY, "rtmp"))).allowed
    assert server.requests == []


# --- HTTP viewer grants --------------------------------------------------------------------------


def test_grants_are_per_client_and_stream_and_expire():
    clock = [NOW]
    cache = GrantCache(idle=10, clock=lambda: clock[0])
    stream = ("default", "app", "s", "hls")
    grant = cache.add(("1.2.3.4", stream, ()), stream, "1.2.3.4", decide(AccessRules(), request(URL)))
    assert cache.lookup(grant.token, stream, "1.2.3.4") is grant
    assert cache.lookup(grant.token, stream, "5.6.7.8") is None
    assert cache.lookup(grant.token, ("default", "app", "other", "hls"), "1.2.3.4") is None
    clock[0] += 11
    assert cache.lookup(grant.token, stream, "1.2.3.4") is None


def test_playlists_carry_the_session_on_every_uri():
    playlist = (
        b'#EXTM3U\n#EXT-X-MAP:URI="init.m4s"\n#EXT-X-PART:DURATION=0.5,URI="part_1_0.m4s"\nseg_1.m4s\n'
        b'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_1_1.m4s"\nchunklist_0.m3u8?x=1\n'
    )
    text = add_session_to_playlist(playlist, "T").decode()
    assert 'URI="init.m4s?session=T"' in text and 'URI="part_1_0.m4s?session=T"' in text
    assert "\nseg_1.m4s?session=T\n" in text and 'URI="part_1_1.m4s?session=T"' in text
    assert "chunklist_0.m3u8?x=1&session=T" in text


def test_redact_hides_credentials_in_urls():
    text = redact(signed() + "&aclAuth=k1")
    assert "policy=***" in text and "signature=***" in text and "aclAuth=***" in text and "k1" not in text
