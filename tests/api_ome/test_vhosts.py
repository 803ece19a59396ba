"""OME v1 virtual hosts: the spec's examples, conflicts, bad bodies and certificate reloads."""

import copy

import pytest

from apps.hosting.models import VirtualHost
from tests.api_ome.spec_examples import CREATE_VHOSTS_REQUEST

pytestmark = pytest.mark.django_db


def test_it_lists_vhosts(ome):
    response = ome.get("/v1/vhosts")
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "OK", "response": ["default"]}


def test_it_creates_vhosts_from_the_spec_example(ome):
    response = ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST)
    assert response.status_code == 200
    body = response.json()
    assert [item["statusCode"] for item in body] == [200, 200]
    assert [item["message"] for item in body] == ["OK", "OK"]
    for requested, created in zip(CREATE_VHOSTS_REQUEST, body, strict=True):
        for key, value in requested.items():
            assert created["response"][key] == value
    assert ome.get("/v1/vhosts").json()["response"] == ["default", "vhost", "vhost2"]
    stored = VirtualHost.objects.get(name="vhost")
    assert stored.host_names == ["ome-dev.airensoft.com", "prod.airensoft.com"]
    assert stored.tls_key_path == "/etc/pki/airensoft.com/_airensoft_com.key"


def test_it_gets_a_vhost(ome):
    ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST)
    response = ome.get("/v1/vhosts/vhost")
    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 200 and body["message"] == "OK"
    assert body["response"] == {"distribution": "ovenServer", **CREATE_VHOSTS_REQUEST[0]}


def test_the_default_vhost_matches_every_host(ome):
    body = ome.get("/v1/vhosts/default").json()
    assert body["response"] == {"name": "default", "distribution": "ovenServer", "host": {"names": ["*"]}}


def test_it_answers_404_for_an_unknown_vhost(ome):
    response = ome.get("/v1/vhosts/default1")
    assert response.status_code == 404
    assert response.json() == {"message": "[HTTP] Could not find the virtual host: [default1] (404)", "statusCode": 404}


def test_it_answers_409_for_a_duplicate_and_207_for_a_mix(ome):
    ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST[1:])
    response = ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST)
    assert response.status_code == 207
    created, conflict = response.json()
    assert created["statusCode"] == 200 and created["response"]["name"] == "vhost"
    assert conflict == {"statusCode": 409, "message": "Conflict", "response": CREATE_VHOSTS_REQUEST[1]}

    response = ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST[:1])
    assert response.status_code == 409
    assert response.json()[0]["statusCode"] == 409


def test_it_refuses_a_body_that_is_not_an_array(ome):
    response = ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST[0])
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": "[HTTP] Request body must be an array (400)"}
    assert not VirtualHost.objects.filter(name="vhost").exists()


def test_it_refuses_malformed_json(ome):
    response = ome.post("/v1/vhosts", "[{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["message"].startswith("[HTTP] Invalid request body: JSON parse error")
    assert VirtualHost.objects.count() == 1


def test_it_reads_json_whatever_the_content_type(ome):
    # `curl -d` sends application/x-www-form-urlencoded; OME reads the body as JSON anyway.
    response = ome.post("/v1/vhosts", '[{"name": "curl", "host": {"names": ["*.curl"]}}]', content_type="text/plain")
    assert response.status_code == 200
    assert VirtualHost.objects.get(name="curl").host_names == ["*.curl"]


def test_it_refuses_items_missing_required_fields(ome):
    items = [{"name": "nohost"}, {"host": {"names": ["a"]}}, {"name": "ok", "host": {"names": ["ok.example"]}}]
    response = ome.post("/v1/vhosts", items)
    assert response.status_code == 207
    missing_host, missing_name, created = response.json()
    assert missing_host == {"statusCode": 400, "message": "[HTTP] host: This field is required. (400)"}
    assert missing_name == {"statusCode": 400, "message": "[HTTP] name: This field is required. (400)"}
    assert created["statusCode"] == 200
    assert sorted(VirtualHost.objects.values_list("name", flat=True)) == ["default", "ok"]


def test_it_refuses_names_that_cannot_be_in_a_url(ome):
    response = ome.post("/v1/vhosts", [{"name": "../etc", "host": {"names": ["x"]}}])
    assert response.status_code == 400
    assert not VirtualHost.objects.filter(name="../etc").exists()


def test_it_deletes_a_vhost_with_its_apps(ome):
    ome.post("/v1/vhosts", CREATE_VHOSTS_REQUEST)
    ome.post("/v1/vhosts/vhost/apps", [{"name": "live", "type": "live"}])
    response = ome.delete("/v1/vhosts/vhost")
    assert response.status_code == 200
    assert response.json() == {"message": "OK", "statusCode": 200}
    assert ome.get("/v1/vhosts/vhost").status_code == 404
    assert ome.delete("/v1/vhosts/vhost").json() == {
        "message": "[HTTP] Could not find the virtual host: [vhost] (404)",
        "statusCode": 404,
    }


def test_reload_certificate_without_tls_is_ok(ome):
    response = ome.post("/v1/vhosts/default:reloadCertificate")
    assert response.status_code == 200
    assert response.json() == {"message": "OK", "statusCode": 200}
    assert VirtualHost.objects.get(name="default").certificate_loaded_at is not None


def test_reload_certificate_keeps_the_old_one_on_failure(ome):
    vhost = copy.deepcopy(CREATE_VHOSTS_REQUEST[1])  # its certificate files do not exist here
    ome.post("/v1/vhosts", [vhost])
    response = ome.post("/v1/vhosts/vhost2:reloadCertificate")
    assert response.status_code == 500
    assert response.json() == {"message": "[HTTP] Internal Server Error (500)", "statusCode": 500}
    assert VirtualHost.objects.get(name="vhost2").certificate_loaded_at is None
    assert ome.post("/v1/vhosts:reloadAllCertificates").status_code == 500


def test_reload_certificate_loads_real_files(ome, tmp_path):
    cert, key = make_self_signed_certificate(tmp_path)
    ome.post(
        "/v1/vhosts", [{"name": "tls", "host": {"names": ["tls.example"], "tls": {"certPath": cert, "keyPath": key}}}]
    )
    assert ome.post("/v1/vhosts/tls:reloadCertificate").status_code == 200
    assert ome.post("/v1/vhosts:reloadAllCertificates").json() == {"message": "OK", "statusCode": 200}
    assert ome.post("/v1/vhosts/nope:reloadCertificate").status_code == 404


def make_self_signed_certificate(folder):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)
