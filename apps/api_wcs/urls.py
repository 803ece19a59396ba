"""WCS v2 routes: /rest-api/<group>/<method>, one per method of the WCS table."""

from apps.api_wcs.views import agents, calls, clients, hls, streams, transponders
from apps.api_wcs.views.base import wcs_method

METHODS = [*streams.METHODS, *transponders.METHODS, *agents.METHODS, *hls.METHODS, *clients.METHODS, *calls.METHODS]

urlpatterns = [wcs_method(method) for method in METHODS]
