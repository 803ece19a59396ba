"""No parsing of POST form bodies by Twisted inside Daphne, except multipart ones.

Twisted's ``Request.requestReceived`` parses the Content-Type of every POST with a body through the
``email`` package (an ``EmailMessage`` and its header registry), to fill ``request.args`` from form
bodies: 10 % of an API process's samples (py-spy) for WCS's POST /rest-api/... with a JSON body.
Daphne never reads ``request.args``: it hands the raw body to the application. Only a multipart
body has an effect there (a malformed one is answered 400 by Twisted), so ``install()``, called by
`streamhub.asgi`, lets Twisted parse only a Content-Type that names multipart.
"""

from __future__ import annotations


class MultipartOnly:
    """``Request._parsePOSTFormSubmission`` (set by Twisted's ``Request.__init__``, read by its
    ``requestReceived``): as set, but false unless the request's Content-Type may be multipart."""

    def __set__(self, request, value: bool) -> None:
        request.__dict__["_streamhub_parse_forms"] = value

    def __get__(self, request, owner=None):
        if request is None:
            return self
        content_type = request.requestHeaders.getRawHeaders(b"content-type")
        multipart = bool(content_type) and b"multipart" in content_type[0].lower()
        return multipart and request.__dict__.get("_streamhub_parse_forms", True)


def install() -> bool:
    """Let Daphne's requests parse only multipart bodies; False where Daphne is not installed."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return False
    WebRequest._parsePOSTFormSubmission = MultipartOnly()
    return True
