"""The URL map the WCS OpenAPI document is generated from: the WCS routes only, at their real paths."""

from django.urls import include, path

urlpatterns = [path("rest-api/", include("apps.api_wcs.urls"))]
