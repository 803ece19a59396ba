"""Optional HTTP Basic authentication of the WCS API against Django users (WCS's
``disable_rest_auth=false``): off unless ``WCS_REST_AUTH`` is on; then every method needs it."""

from __future__ import annotations

from django.conf import settings
from rest_framework import authentication, permissions


class WcsBasicAuthentication(authentication.BasicAuthentication):
    www_authenticate_realm = "WCS REST API"

    def authenticate(self, request):
        # With authentication off, WCS ignores credentials (a stale header must not cause a 401).
        if not settings.WCS_REST_AUTH:
            return None
        return super().authenticate(request)


class WcsAuthRequired(permissions.BasePermission):
    message = "Authentication required"

    def has_permission(self, request, view) -> bool:
        if not settings.WCS_REST_AUTH:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_active)
