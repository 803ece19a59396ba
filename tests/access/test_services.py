"""The engine's access rules of an application (its own settings, else its vhost's; fail closed),
checks of OME's settings, and the signed URLs the services make."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.access.services import (
    MISCONFIGURED,
    SignedUrlSpec,
    access_rules,
    add_acl_keys,
    check_admission_webhooks,
    check_signed_policy,
    sign,
)
from apps.hosting.models import Application
from media_engine.admission import PLAY, PUBLISH, AdmissionRequest, admit

pytestmark = pytest.mark.django_db

POLICY = {"secretKey": "s3cret", "enables": {"providers": "rtmp,srt", "publishers": "hls,llhls"}}
HOOKS = {"controlServerUrl": "http://127.0.0.1:9/admission", "enables": {"providers": "rtmp"}, "timeout": 1500}


@pytest.fixture
def app() -> Application:
    return Application.objects.select_related("virtual_host").get(name="app")


def test_an_application_without_settings_is_open(app):
    rules = access_rules(app)
    assert not rules.checks(PUBLISH, "rtmp", "s") and not rules.checks(PLAY, "hls", "s")


def test_the_application_s_settings_win_over_the_vhost_s(app):
    app.virtual_host.signed_policy = {**POLICY, "secretKey": "vhost-secret"}
    app.virtual_host.save()
    assert access_rules(app).signed_policy.secret == "vhost-secret"
    app.signed_policy = POLICY
    app.admission_webhooks = HOOKS
    app.save()
    rules = access_rules(app)
    assert rules.signed_policy.secret == "s3cret" and rules.signed_policy.enables.covers(PUBLISH, "srt")
    assert rules.webhook.url == HOOKS["controlServerUrl"] and rules.webhook.timeout == 1.5
    assert not rules.webhook.allow_on_failure  # STREAMHUB_ACCESS_WEBHOOK_DEFAULT: deny
    assert "s3cret" not in repr(rules)


def test_the_default_webhook_action_comes_from_settings(app, settings):
    settings.ACCESS_WEBHOOK_DEFAULT_ACTION = "allow"
    app.admission_webhooks = HOOKS
    app.save()
    assert access_rules(app).webhook.allow_on_failure


def test_broken_settings_refuse_everyone(app):
    app.signed_policy = {"enables": {"providers": "rtmp"}}  # no secretKey
    app.save()
    rules = access_rules(app)
    assert rules.misconfigured == MISCONFIGURED and rules.checks(PLAY, "hls", "any")


def test_acl_keys_reach_the_rules(app):
    add_acl_keys(app, "cam", ["k1", "k2"])
    assert access_rules(app).acl == {"cam": frozenset({"k1", "k2"})}


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "secretKey"),
        ({"secretKey": "x", "enables": {"providers": "rtmp,ftp"}}, "unknown ftp"),
        ({"secretKey": "x", "policyQueryKeyName": "p", "signatureQueryKeyName": "p"}, "must differ"),
        ([], "JSON object"),
    ],
)
def test_bad_signed_policies_are_explained(config, message):
    with pytest.raises(ValueError, match=message):
        check_signed_policy(config)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"controlServerUrl": "ftp://x"}, "http"),
        ({"controlServerUrl": "http://x", "timeout": 0}, "timeout"),
        ({"controlServerUrl": "http://x", "defaultAction": "maybe"}, "defaultAction"),
    ],
)
def test_bad_webhook_settings_are_explained(config, message):
    with pytest.raises(ValueError, match=message):
        check_admission_webhooks(config)


def test_a_signed_url_passes_the_engine_s_check(app):
    app.signed_policy = {**POLICY, "policyQueryKeyName": "p", "signatureQueryKeyName": "sig"}
    app.save()
    url = sign(app, "http://127.0.0.1:3333/app/cam/ts:playlist.m3u8", SignedUrlSpec(60, "127.0.0.1"))
    assert "?p=" in url and "&sig=" in url
    request = AdmissionRequest(PLAY, "hls", url, "127.0.0.1", 0, "cam")
    assert asyncio.run(admit(access_rules(app), request)).allowed
    elsewhere = AdmissionRequest(PLAY, "hls", url, "127.0.0.2", 0, "cam")
    assert asyncio.run(admit(access_rules(app), elsewhere)).reason == "the client address is not allowed"
    expired = sign(app, "http://127.0.0.1:3333/app/cam/ts:playlist.m3u8", SignedUrlSpec(60), now=time.time() - 120)
    assert not asyncio.run(
        admit(access_rules(app), AdmissionRequest(PLAY, "hls", expired, "1.1.1.1", 0, "cam"))
    ).allowed


def test_signing_needs_a_signed_policy(app):
    with pytest.raises(ValueError, match="has no signedPolicy"):
        sign(app, "rtmp://127.0.0.1/app/cam", SignedUrlSpec(60))
    app.signed_policy = POLICY
    with pytest.raises(ValueError, match="not an IP address"):
        sign(app, "rtmp://127.0.0.1/app/cam", SignedUrlSpec(60, "nonsense"))
