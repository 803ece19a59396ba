"""The vhosts' certificate table of the HTTPS ports: which vhost a TLS name belongs to, and what a
reload keeps (a failed or unrequested reload keeps the certificate in use)."""

from __future__ import annotations

import ssl

import pytest

from media_engine.tls import REFUSAL, CertificateTable, VhostTls
from tests.tools.certificates import CertificateAuthority


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority(tmp_path)


def entry(ca, vhost: str, names: tuple[str, ...], host: str | None = None) -> VhostTls:
    if host is None:
        return VhostTls(vhost, names)
    cert, key = ca.issue(host)
    return VhostTls(vhost, names, str(cert), str(key))


def test_an_exact_name_wins_over_a_pattern_and_a_longer_pattern_over_a_shorter(ca):
    table = CertificateTable()
    table.load(
        [entry(ca, "default", ("*",)), entry(ca, "wild", ("*.example.com",), "w.example.com"),
         entry(ca, "exact", ("live.example.com",), "live.example.com")],
        reload="*",
    )  # fmt: skip
    assert table.vhost_for("live.example.com") == "exact"
    assert table.vhost_for("other.example.com") == "wild"
    assert table.vhost_for("elsewhere.org") == "default"


def test_a_name_of_a_vhost_without_tls_gets_no_certificate_not_anothers(ca):
    table = CertificateTable()
    table.load([entry(ca, "a", ("*",), "a.test"), entry(ca, "plain", ("plain.test",))], reload="*")
    assert table.context_for("plain.test") is None
    assert table.context_for("a.test") is not None
    assert table.context_for(None) is None


def test_the_sni_callback_refuses_an_unknown_name(ca):
    table = CertificateTable()
    table.load([entry(ca, "a", ("a.test",), "a.test")], reload="*")
    assert table._select(None, "b.test", table.server_context()) == REFUSAL


def test_a_reload_of_one_vhost_leaves_the_others_as_they_were_loaded(ca):
    table = CertificateTable()
    entries = [entry(ca, "a", ("a.test",), "a.test"), entry(ca, "b", ("b.test",), "b.test")]
    table.load(entries, reload="*")
    before_a, before_b = table.context_for("a.test"), table.context_for("b.test")
    table.load(entries, reload="a")
    assert table.context_for("a.test") is not before_a
    assert table.context_for("b.test") is before_b


def test_a_failed_reload_keeps_the_certificate_in_use(ca, tmp_path):
    table = CertificateTable()
    good = entry(ca, "a", ("a.test",), "a.test")
    table.load([good], reload="*")
    in_use = table.context_for("a.test")
    (tmp_path / "a.test.crt").write_text("not a certificate")
    assert table.load([good], reload="a") == ["a"]
    assert table.context_for("a.test") is in_use


def test_no_certificate_means_nothing_to_serve(ca):
    table = CertificateTable()
    table.load([entry(ca, "plain", ("*",))], reload="*")
    assert not table.has_certificates
    assert isinstance(table.server_context(), ssl.SSLContext)


def test_a_certificate_with_a_chain_file_loads(ca, tmp_path):
    cert, key = ca.issue("a.test")
    table = CertificateTable()
    assert table.load([VhostTls("a", ("a.test",), str(cert), str(key), str(ca.pem))], reload="*") == []
    assert table.context_for("a.test") is not None
