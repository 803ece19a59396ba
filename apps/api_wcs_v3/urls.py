"""WCS v3 routes under /rest-api/v3/: every v2 method of ``METHODS`` (methods the lead adds appear
here too), /jobs/find, and /jobs/<id> (where a 202 points)."""

from django.urls import path

from apps.api_wcs.urls import METHODS
from apps.api_wcs_v3.views import job_detail, jobs_find, method_view

urlpatterns = [
    path("jobs/find", jobs_find, name="wcs-v3-jobs-find"),
    path("jobs/<uuid:job_id>", job_detail, name="wcs-v3-job"),
    *[path(method.route, method_view(method), name="wcs-v3-" + method.route.replace("/", "-")) for method in METHODS],
]
