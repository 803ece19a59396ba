"""URL map of the API server (port 8081): OME v1, WCS v2, admin (with its live dashboard), OpenAPI schemas and
Swagger UIs, Prometheus metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api_wcs_v3.schema import openapi_spec as wcs_v3_openapi_spec
from apps.dashboard.views import dashboard_state
from apps.metrics.views import metrics
from apps.streams.views import play

# WCS clients expect their API's own OpenAPI document (YAML) and UI.
WCS_SCHEMA = SpectacularAPIView.as_view(
    urlconf="apps.api_wcs.schema_urls",
    custom_settings={
        "TITLE": "StreamHub WCS REST API",
        "DESCRIPTION": "Flashphoner Web Call Server REST API v2: POST JSON to /rest-api/<group>/<method>.",
        "VERSION": "2.0.0",
    },
)

urlpatterns = [
    path("v1/", include("apps.api_ome.urls")),
    path("rest-api/openapi_spec", WCS_SCHEMA, name="wcs-schema"),
    path("rest-api/v3/openapi_spec", wcs_v3_openapi_spec, name="wcs-v3-schema"),
    path("rest-api/v3/", include("apps.api_wcs_v3.urls")),
    path("rest-api/", include("apps.api_wcs.urls")),
    path("rest-api-spec/", SpectacularSwaggerView.as_view(url_name="wcs-schema"), name="wcs-swagger-ui"),
    path("rest-api-spec/v3/", SpectacularSwaggerView.as_view(url_name="wcs-v3-schema"), name="wcs-v3-swagger-ui"),
    path("streams/<int:pk>/play/", play, name="stream-play"),
    path("dashboard/state/", dashboard_state, name="dashboard-state"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

# With DEBUG off, unknown URLs and unexpected errors answer in the API's own format (streamhub.errors).
handler404 = "streamhub.errors.page_not_found"
handler500 = "streamhub.errors.server_error"
