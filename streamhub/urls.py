"""URL map of the API server (port 8081): OME v1, admin, OpenAPI schema and Swagger UI."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.streams.views import play

admin.site.site_header = "StreamHub administration"
admin.site.site_title = "StreamHub"
admin.site.index_title = "Live streaming platform"

urlpatterns = [
    path("v1/", include("apps.api_ome.urls")),
    path("streams/<int:pk>/play/", play, name="stream-play"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
