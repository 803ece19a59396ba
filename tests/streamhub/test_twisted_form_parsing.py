"""Daphne's requests: Twisted parses only multipart POST bodies (streamhub/twisted_form_parsing.py)."""

from __future__ import annotations

import pytest
from daphne.http_protocol import WebRequest
from twisted.web.http_headers import Headers

from streamhub import twisted_form_parsing


@pytest.fixture(autouse=True)
def installed():
    twisted_form_parsing.install()


def request_with(content_type: bytes | None, parse_forms: bool = True) -> WebRequest:
    request = WebRequest.__new__(WebRequest)  # (a real one needs a connection; only the headers count)
    request.requestHeaders = Headers({b"Content-Type": [content_type]} if content_type else {})
    request._parsePOSTFormSubmission = parse_forms  # as Twisted's Request.__init__ sets it
    return request


@pytest.mark.parametrize(
    "content_type", [b"application/json", b"application/x-www-form-urlencoded", b"text/plain", None]
)
def test_other_bodies_are_not_parsed(content_type):
    assert request_with(content_type)._parsePOSTFormSubmission is False


@pytest.mark.parametrize("content_type", [b"multipart/form-data; boundary=x", b"Multipart/Form-Data ; boundary=x"])
def test_multipart_bodies_are_parsed_as_twisted_does(content_type):
    assert request_with(content_type)._parsePOSTFormSubmission is True
    assert request_with(content_type, parse_forms=False)._parsePOSTFormSubmission is False
