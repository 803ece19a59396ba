"""The admin: access settings of an application are checked, ACL keys are listed, and the
"Make signed URLs" action shows signed URLs of a stream."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from apps.access.models import AclKey
from apps.hosting.models import Application

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-operator-1")
    client.force_login(user)
    return client


def change_form(app: Application, **fields) -> dict:
    data = {
        "virtual_host": app.virtual_host_id,
        "name": app.name,
        "type": app.type,
        "providers": json.dumps(app.providers),
        "publishers": json.dumps(app.publishers),
        "signed_policy": "",
        "admission_webhooks": "",
        "output_profiles-TOTAL_FORMS": "0",
        "output_profiles-INITIAL_FORMS": "0",
    }
    data.update(fields)
    return data


def test_it_saves_and_checks_access_settings(operator):
    app = Application.objects.get(name="app")
    url = f"/admin/hosting/application/{app.pk}/change/"
    bad = change_form(app, signed_policy=json.dumps({"enables": {"providers": "rtmp"}}))
    response = operator.post(url, bad)
    assert (
        response.status_code == 200 and "signedPolicy.secretKey must be a non-empty string" in response.content.decode()
    )
    good = change_form(app, signed_policy=json.dumps({"secretKey": "adm-secret", "enables": {"providers": "rtmp"}}))
    assert operator.post(url, good).status_code == 302
    app.refresh_from_db()
    assert app.signed_policy["secretKey"] == "adm-secret"


def test_the_action_makes_signed_urls(operator, settings):
    settings.ENGINE_HTTP_PORT, settings.STREAMHUB_MEDIA_URL = 3333, ""
    app = Application.objects.get(name="app")
    app.signed_policy = {"secretKey": "adm-secret", "enables": {"publishers": "hls"}}
    app.save()
    changelist = "/admin/hosting/application/"
    response = operator.post(changelist, {"action": "make_signed_urls", "_selected_action": [app.pk]})
    assert response.status_code == 200 and "Make signed URLs" in response.content.decode()
    form = {
        "action": "make_signed_urls",
        "_selected_action": [app.pk],
        "make_signed_urls": "1",
        "stream_name": "cam",
        "direction": "play",
        "expires_in": "600",
        "allow_ip": "192.0.2.0/24",
        "host": "media.example.com",
    }
    page = operator.post(changelist, form).content.decode()
    assert "http://media.example.com:3333/app/cam/ts:playlist.m3u8?policy=" in page and "signature=" in page
    assert "adm-secret" not in page
    bad = operator.post(changelist, {**form, "allow_ip": "not-an-ip"}).content.decode()
    assert "is not an IP address or CIDR range" in bad and "signature=" not in bad


def test_acl_keys_are_listed(operator):
    AclKey.objects.create(application=Application.objects.get(name="app"), stream_name="cam", key="k1")
    response = operator.get("/admin/access/aclkey/")
    assert response.status_code == 200 and "cam" in response.content.decode()
