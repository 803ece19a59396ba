"""Internal job tokens: a platform media job gets past signed policy, ACL keys and the admission
webhook with ``shjob=``; a forged, foreign or expired token gets nowhere, and no URL shows it."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from media_engine import internal_auth
from media_engine.admission import (
    PLAY,
    PUBLISH,
    AccessRules,
    AdmissionRequest,
    Enables,
    SignedPolicy,
    Webhook,
    admit,
    redact,
)
from media_engine.internal_auth import check_job_token, make_job_token, redact_text, redact_url, with_job_token

NOW = 1_700_000_000.0
JOB_SECRET = "job-secret-shared-by-engine-and-workers"
BOTH = Enables(frozenset({"rtmp", "srt"}), frozenset({"rtmp", "hls", "llhls"}))
PROTECTED = AccessRules(
    signed_policy=SignedPolicy("policy-secret", BOTH),
    acl={"stream": frozenset({"acl-key"})},
    job_secret=JOB_SECRET,
)
URL = "rtmp://127.0.0.1:1935/app/stream"


def token(direction: str = internal_auth.PLAY, *, secret=JOB_SECRET, vhost="default", app="app", stream="stream", **kw):
    return make_job_token(secret, vhost, app, stream, direction, now=kw.pop("now", NOW), **kw)


def request(
    url: str, direction: str = PLAY, protocol: str = "rtmp", stream: str = "stream", vhost="default", app="app"
):
    return AdmissionRequest(direction, protocol, url, "127.0.0.1", 50000, stream, vhost=vhost, app=app)


def decide(rules: AccessRules, req: AdmissionRequest, now: float = NOW):
    return asyncio.run(admit(rules, req, clock=lambda: now))


def test_a_job_token_plays_and_publishes_a_protected_stream():
    play = decide(PROTECTED, request(with_job_token(URL, token())))
    publish = decide(PROTECTED, request(with_job_token(URL, token(internal_auth.PUBLISH)), PUBLISH))
    hls = decide(PROTECTED, request(with_job_token(URL, token()), PLAY, "hls"))
    assert (play.allowed, publish.allowed, hls.allowed) == (True, True, True)
    assert play.expires_at is None  # a connected job is not cut when its token expires


def test_without_a_token_the_same_request_is_refused():
    decision = decide(PROTECTED, request(URL))
    assert (decision.allowed, decision.reason) == (False, "a signed URL is required")


def test_forged_foreign_and_expired_tokens_are_refused():
    cases = {
        "the job token is not valid": [
            token(secret="another-installation"),
            token(stream="other"),
            token(app="other"),
            token(vhost="other"),
            token(internal_auth.PUBLISH),  # a publish token does not play
            token() + "x",
            "v1.9999999999.AAAA",
            "garbage",
            "",
        ],
        "the job token has expired": [token(ttl=60, now=NOW - 61)],
    }
    for reason, tokens in cases.items():
        for bad in tokens:
            decision = decide(PROTECTED, request(with_job_token(URL, bad)))
            assert (decision.allowed, decision.reason) == (False, reason), bad
            assert not bad or bad not in decision.reason  # a reason never repeats the token


def test_a_token_is_refused_where_the_engine_has_no_job_secret():
    rules = AccessRules(signed_policy=SignedPolicy("policy-secret", BOTH))
    decision = decide(rules, request(with_job_token(URL, token())))
    assert (decision.allowed, decision.reason) == (False, "the engine has no internal job secret")


def test_a_token_is_checked_before_a_misconfigured_application_and_acl_keys():
    rules = AccessRules(acl={"stream": frozenset({"k"})}, misconfigured="broken", job_secret=JOB_SECRET)
    assert decide(rules, request(with_job_token(URL, token()))).allowed
    assert not decide(rules, request(URL)).allowed


def test_the_token_expires_after_its_ttl():
    fresh = token(ttl=30)
    assert check_job_token(JOB_SECRET, fresh, "default", "app", "stream", "play", now=NOW + 29).valid
    late = check_job_token(JOB_SECRET, fresh, "default", "app", "stream", "play", now=NOW + 30)
    assert (late.valid, late.reason) == (False, "the job token has expired")


class ControlServer:
    """An admission webhook on loopback that refuses everything and remembers what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    async def handle(self, http_request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await http_request.read()))
        return web.json_response({"allowed": False, "reason": "nobody"})

    async def decide(self, url: str) -> object:
        app = web.Application()
        app.router.add_post("/admission", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        rules = AccessRules(webhook=Webhook(f"http://127.0.0.1:{port}/admission", BOTH), job_secret=JOB_SECRET)
        try:
            return await admit(rules, request(url), clock=lambda: NOW)
        finally:
            await runner.cleanup()


def test_a_job_is_let_in_without_asking_the_webhook_and_a_bad_token_is_never_sent_to_it():
    server = ControlServer()
    assert asyncio.run(server.decide(with_job_token(URL, token()))).allowed
    forged = asyncio.run(server.decide(with_job_token(URL, token(secret="forged"))))
    assert (forged.allowed, forged.reason) == (False, "the job token is not valid")
    assert server.bodies == []
    refused = asyncio.run(server.decide(URL))  # the webhook does run for everyone else
    assert (refused.allowed, len(server.bodies)) == (False, 1)


def test_urls_in_logs_and_errors_hide_the_token_and_other_credentials():
    secret_token = token()
    url = with_job_token(f"{URL}?aclAuth=k1&policy=p&signature=s&keep=1", secret_token)
    assert redact_url(url) == f"{URL}?aclAuth=***&policy=***&signature=***&keep=1&shjob=***"
    assert secret_token not in redact(url)
    message = f"{url}: Operation not permitted"
    assert redact_text(message) == f"{redact_url(url)}: Operation not permitted"
    error = f"Max retries exceeded with url: /app/s/llhls.m3u8?shjob={secret_token} (Caused by ...)"
    assert redact_text(error) == "Max retries exceeded with url: /app/s/llhls.m3u8?shjob=*** (Caused by ...)"
    assert redact_url(URL) == URL


def test_the_derived_secret_is_stable_and_not_the_key_itself():
    derived = internal_auth.derive_secret("django-secret")
    assert derived == internal_auth.derive_secret("django-secret")
    assert derived != internal_auth.derive_secret("other") and "django-secret" not in derived
