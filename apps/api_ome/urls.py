"""OME v1 routes: OME's `/resource-group/resource[:action]` paths."""

from django.urls import re_path

from apps.api_ome.views.applications import ApplicationDetailView, ApplicationListView
from apps.api_ome.views.base import NotFoundView
from apps.api_ome.views.events import SendEventView
from apps.api_ome.views.hls_dumps import StartHlsDumpView, StopHlsDumpView
from apps.api_ome.views.jobs import (
    PushesView,
    RecordsView,
    StartPushView,
    StartRecordView,
    StopPushView,
    StopRecordView,
)
from apps.api_ome.views.output_profiles import OutputProfileDetailView, OutputProfileListView
from apps.api_ome.views.stats import ApplicationStatsView, StreamStatsView, VirtualHostStatsView
from apps.api_ome.views.streams import StreamDetailView, StreamListView
from apps.api_ome.views.vhosts import (
    ReloadAllCertificatesView,
    VirtualHostDetailView,
    VirtualHostListView,
    VirtualHostReloadCertificateView,
)

NAME = r"[^/:]+"
VHOST = rf"vhosts/(?P<vhost>{NAME})"
APP = rf"{VHOST}/apps/(?P<app>{NAME})"

urlpatterns = [
    re_path(r"^vhosts$", VirtualHostListView.as_view(), name="ome-vhosts"),
    re_path(r"^vhosts:reloadAllCertificates$", ReloadAllCertificatesView.as_view(), name="ome-reload-all-certificates"),
    re_path(rf"^{VHOST}$", VirtualHostDetailView.as_view(), name="ome-vhost"),
    re_path(rf"^{VHOST}:reloadCertificate$", VirtualHostReloadCertificateView.as_view(), name="ome-reload-certificate"),
    re_path(rf"^{VHOST}/apps$", ApplicationListView.as_view(), name="ome-apps"),
    re_path(rf"^{APP}$", ApplicationDetailView.as_view(), name="ome-app"),
    re_path(rf"^{APP}/outputProfiles$", OutputProfileListView.as_view(), name="ome-output-profiles"),
    re_path(
        rf"^{APP}/outputProfiles/(?P<profile>{NAME})$", OutputProfileDetailView.as_view(), name="ome-output-profile"
    ),
    re_path(rf"^{APP}:startRecord$", StartRecordView.as_view(), name="ome-start-record"),
    re_path(rf"^{APP}:stopRecord$", StopRecordView.as_view(), name="ome-stop-record"),
    re_path(rf"^{APP}:records$", RecordsView.as_view(), name="ome-records"),
    re_path(rf"^{APP}:startPush$", StartPushView.as_view(), name="ome-start-push"),
    re_path(rf"^{APP}:stopPush$", StopPushView.as_view(), name="ome-stop-push"),
    re_path(rf"^{APP}:pushes$", PushesView.as_view(), name="ome-pushes"),
    re_path(rf"^{APP}/streams$", StreamListView.as_view(), name="ome-streams"),
    re_path(rf"^{APP}/streams/(?P<stream>{NAME})$", StreamDetailView.as_view(), name="ome-stream"),
    re_path(rf"^stats/current/{VHOST}$", VirtualHostStatsView.as_view(), name="ome-vhost-stats"),
    re_path(rf"^stats/current/{APP}$", ApplicationStatsView.as_view(), name="ome-app-stats"),
    re_path(rf"^stats/current/{APP}/streams/(?P<stream>{NAME})$", StreamStatsView.as_view(), name="ome-stream-stats"),
    re_path(rf"^{APP}/streams/(?P<stream>{NAME}):sendEvent$", SendEventView.as_view(), name="ome-send-event"),
    re_path(rf"^{APP}/streams/(?P<stream>{NAME}):startHlsDump$", StartHlsDumpView.as_view(), name="ome-start-hls-dump"),
    re_path(rf"^{APP}/streams/(?P<stream>{NAME}):stopHlsDump$", StopHlsDumpView.as_view(), name="ome-stop-hls-dump"),
    re_path(r"^.*$", NotFoundView.as_view(), name="ome-not-found"),
]
