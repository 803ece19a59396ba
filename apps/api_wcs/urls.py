"""WCS v2 routes: /rest-api/<group>/<method>, one per method of the WCS table."""

from apps.api_wcs.views import (
    access_list,
    agents,
    calls,
    cdn,
    clients,
    hls,
    rooms,
    streams,
    transponders,
    webrtc_pull,
)
from apps.api_wcs.views import mixer as wcs_mixer
from apps.api_wcs.views import multiple_recorder as wcs_multiple_recorder
from apps.api_wcs.views import transcoder as wcs_transcoder
from apps.api_wcs.views.base import wcs_method

METHODS = [
    *streams.METHODS,
    *transponders.METHODS,
    *agents.METHODS,
    *hls.METHODS,
    *clients.METHODS,
    *calls.METHODS,
    *access_list.METHODS,
    *cdn.METHODS,
    *rooms.METHODS,
    *webrtc_pull.METHODS,
    *wcs_transcoder.METHODS,
    *wcs_mixer.METHODS,
    *wcs_multiple_recorder.METHODS,
]

urlpatterns = [wcs_method(method) for method in METHODS]
