"""OpenAPI pieces of the WCS API: its optional HTTP Basic authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class WcsBasicScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api_wcs.authentication.WcsBasicAuthentication"
    name = "wcsBasic"
    # Optional: WCS answers without credentials unless STREAMHUB_WCS_REST_AUTH is on.
    optional = True

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Django user credentials; required only when STREAMHUB_WCS_REST_AUTH is on.",
        }
