"""OpenAPI pieces of the OME dialect: the security scheme and envelope serializers for drf-spectacular."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


class OmeAccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api_ome.authentication.OmeAccessTokenAuthentication"
    name = "omeAccessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Basic base64(AccessToken)`, e.g. `Basic b21lLWFjY2Vzcy10b2tlbg==` for `ome-access-token`.",
        }


def enveloped(name: str, response=None, many: bool = False):
    """An OME envelope whose ``response`` holds ``response`` (a serializer instance or field)."""
    fields = {
        "statusCode": serializers.IntegerField(help_text="Same as the HTTP status code."),
        "message": serializers.CharField(help_text="A human-readable description of the status."),
    }
    if response is not None:
        fields["response"] = response
    return inline_serializer(name=name, fields=fields, many=many)


ERROR_ENVELOPE = enveloped("OmeError")
OK_ENVELOPE = enveloped("OmeOk")


def names_envelope(name: str, what: str):
    return enveloped(name, serializers.ListField(child=serializers.CharField(), help_text=f"Names of the {what}."))
