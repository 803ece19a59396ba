"""Operator commands: exportconfig / importconfig (all or nothing), createvhost, apitoken."""

import json

import pytest
from django.core.management import CommandError, call_command

from apps.hosting.models import Application, OutputProfile, VirtualHost

pytestmark = pytest.mark.django_db


def export(capsys) -> dict:
    capsys.readouterr()  # drop what earlier commands printed
    call_command("exportconfig")
    return json.loads(capsys.readouterr().out)


def test_export_then_import_round_trips(capsys, tmp_path):
    call_command("createvhost", "studio", "--host-name", "studio.example", "--host-name", "*.studio.example")
    exported = export(capsys)
    assert [vhost["name"] for vhost in exported["vhosts"]] == ["default", "studio"]
    assert exported["vhosts"][0]["apps"][0]["outputProfiles"]["outputProfile"][0]["name"] == "bypass_stream"

    path = tmp_path / "streamhub.json"
    path.write_text(json.dumps(exported))
    VirtualHost.objects.all().delete()
    call_command("importconfig", str(path))
    output = capsys.readouterr().out
    assert "created vhost default" in output and "created app default/app" in output
    assert "Imported: 3 created, 0 updated." in output
    assert export(capsys) == exported


def test_import_updates_existing_objects(capsys, tmp_path):
    exported = export(capsys)
    exported["vhosts"][0]["apps"][0]["providers"] = {"rtmp": {}}
    exported["vhosts"][0]["apps"][0]["outputProfiles"]["outputProfile"][0]["name"] = "renamed"
    path = tmp_path / "streamhub.json"
    path.write_text(json.dumps(exported))
    call_command("importconfig", str(path))
    assert "updated app default/app" in capsys.readouterr().out
    app = Application.objects.get(name="app")
    assert app.providers == {"rtmp": {}}
    assert list(app.output_profiles.values_list("name", flat=True)) == ["renamed"]


def test_import_is_all_or_nothing(capsys, tmp_path):
    config = {
        "vhosts": [
            {"name": "good", "host": {"names": ["good.example"]}, "apps": [{"name": "a", "type": "live"}]},
            {"name": "bad", "host": {"names": ["bad.example"]}, "apps": [{"name": "b", "type": "vod"}]},
        ]
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(config))
    with pytest.raises(CommandError, match=r"nothing imported: vhosts\[1\].apps\[0\].type"):
        call_command("importconfig", str(path))
    assert list(VirtualHost.objects.values_list("name", flat=True)) == ["default"]
    assert OutputProfile.objects.count() == 1


def test_import_reports_unreadable_files(tmp_path):
    path = tmp_path / "notjson.json"
    path.write_text("{oops")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("importconfig", str(path))


def test_createvhost_refuses_duplicates_and_bad_names():
    with pytest.raises(CommandError, match=r"already exists: \[default\]"):
        call_command("createvhost", "default", "--host-name", "*")
    with pytest.raises(CommandError, match="name"):
        call_command("createvhost", "bad/name", "--host-name", "x")


def test_createvhost_stores_tls_paths():
    call_command("createvhost", "secure", "--host-name", "s.example", "--cert", "/c.crt", "--key", "/c.key")
    vhost = VirtualHost.objects.get(name="secure")
    assert (vhost.tls_cert_path, vhost.tls_key_path, vhost.host_names) == ("/c.crt", "/c.key", ["s.example"])


def test_apitoken_prints_the_authorization_value(capsys, settings):
    settings.OME_ACCESS_TOKEN = "ome-access-token"
    call_command("apitoken")
    assert capsys.readouterr().out.strip() == "Basic b21lLWFjY2Vzcy10b2tlbg=="
