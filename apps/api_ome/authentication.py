"""OME's API credentials: ``Authorization: Basic base64(AccessToken)`` against settings.OME_ACCESS_TOKEN."""

from __future__ import annotations

import base64
import binascii
import hmac

from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from apps.api_ome.envelope import OME_REALM


class OmeApiClient:
    """The caller of the OME API once it has shown the access token."""

    is_authenticated = True


class OmeAccessTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        # OME's texts for each way a header can be wrong (api_server's access token check).
        parts = header.split()
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid authorization header")
        scheme, credentials = parts
        if scheme.upper() != "BASIC":
            raise exceptions.AuthenticationFailed(f"Not supported credential type: {scheme}")
        try:
            token = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise exceptions.AuthenticationFailed("Invalid credential format") from error
        expected = settings.OME_ACCESS_TOKEN
        # `curl -u TOKEN:` sends base64("TOKEN:"): an empty password after the token is accepted too.
        if token.endswith(":") and ":" not in expected:
            token = token[:-1]
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise exceptions.AuthenticationFailed("Invalid credential")
        return OmeApiClient(), token

    def authenticate_header(self, request) -> str:
        return OME_REALM


class HasOmeAccessToken(permissions.BasePermission):
    """Only callers that showed the access token (a missing header becomes OME's 401)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, OmeApiClient)
