"""The admin home as an operator's console: models grouped by purpose, in order, with the live
dashboard still on top; an app's own page keeps Django's list. Its history settings are checked at start."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def operator(db):
    return User.objects.create_user("operator", password="operator-password-1", is_staff=True, is_superuser=True)


def groups(html: str) -> dict[str, list[str]]:
    """Group caption -> the model names listed under it, from the home page's app list."""
    main = html.split('id="content-main"', 1)[1]
    found = {}
    for caption, body in re.findall(r"<caption>\s*<a [^>]*>([^<]+)</a>\s*</caption>(.*?)</table>", main, re.S):
        found[caption.strip()] = [
            name.strip() for name in re.findall(r'<th scope="row"[^>]*>\s*<a [^>]*>([^<]+)</a>', body)
        ]
    return found


def test_the_home_page_groups_models_by_purpose(client, operator):
    client.force_login(operator)
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="live-dashboard"' in html  # the live dashboard stays above the groups
    found = groups(html)
    assert list(found) == ["Live", "Jobs", "Configuration", "Cluster"]
    assert found["Live"] == ["Streams", "Engine nodes", "Connections"]
    assert found["Jobs"][:3] == ["Records", "Pushes", "Pulls"]
    assert found["Jobs"] == [
        "Records", "Pushes", "Pulls", "Transcodes", "WCS transcoders", "HLS dumps", "Mixers",
        "Multiple streams recorders", "SIP calls", "Jobs",
    ]  # fmt: skip
    assert found["Configuration"] == [
        "Virtual hosts", "Applications", "Output profiles", "Stream ACL keys", "Users", "Groups"
    ]  # fmt: skip
    assert found["Cluster"] == ["Engine nodes", "CDN routes", "WebRTC relays", "CDN transcoding profiles"]


def test_an_app_page_keeps_djangos_own_list(client, operator):
    client.force_login(operator)
    response = client.get("/admin/recording/")
    assert response.status_code == 200
    assert "Records" in response.content.decode()


@pytest.mark.parametrize("env", [{"STREAMHUB_JOB_HISTORY_DAYS": "-1"}, {"STREAMHUB_JOB_PRUNE_INTERVAL": "0"}])
def test_a_nonsensical_job_history_setting_refuses_to_start(env):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "STREAMHUB_JOB_HISTORY_DAYS must be >= 0 and STREAMHUB_JOB_PRUNE_INTERVAL > 0." in result.stderr
