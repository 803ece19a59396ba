"""OME v1 virtual hosts: list, create, get, delete, and TLS certificate reloads."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped, names_envelope
from apps.api_ome.views.base import OmeAPIView
from apps.engine.commands import send_certificate_reload
from apps.hosting.models import CertificateReloadError, VirtualHost
from apps.hosting.ome_config import VirtualHostConfigSerializer
from apps.hosting.services import create_virtual_host, virtual_host_names

VHOST_TAG = ["OME v1: virtual hosts"]


class VirtualHostListView(OmeAPIView):
    @extend_schema(
        tags=VHOST_TAG,
        summary="Get virtual host list",
        operation_id="omeGetVirtualHostList",
        responses={200: names_envelope("VhostNames", "virtual hosts"), 401: ERROR_ENVELOPE},
    )
    def get(self, request):
        return ok(list(virtual_host_names()))

    @extend_schema(
        tags=VHOST_TAG,
        summary="Create virtual hosts",
        operation_id="omeCreateVirtualHosts",
        request=VirtualHostConfigSerializer(many=True),
        responses={
            200: enveloped("VhostCreated", VirtualHostConfigSerializer(), many=True),
            207: enveloped("VhostCreatedMixed", VirtualHostConfigSerializer(), many=True),
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            409: enveloped("VhostConflict", VirtualHostConfigSerializer(), many=True),
        },
    )
    def post(self, request):
        def create(config: dict):
            config.pop("apps", None)  # applications are created through their own API
            vhost = create_virtual_host(config)
            send_certificate_reload(vhost.name)  # its host names (and certificate) on the HTTPS ports
            return vhost

        return self.create_each(VirtualHostConfigSerializer, create, lambda vhost: vhost.to_ome())


class VirtualHostDetailView(OmeAPIView):
    @extend_schema(
        tags=VHOST_TAG,
        summary="Get virtual host information",
        operation_id="omeGetVirtualHostInformation",
        responses={200: enveloped("Vhost", VirtualHostConfigSerializer()), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str):
        return ok(self.get_vhost(vhost).to_ome())

    @extend_schema(
        tags=VHOST_TAG,
        summary="Delete virtual host",
        operation_id="omeDeleteVirtualHost",
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def delete(self, request, vhost: str):
        self.get_vhost(vhost).delete()
        send_certificate_reload(vhost)  # the HTTPS ports forget its names and certificate
        return ok()


def _reload(vhosts, which: str) -> Response:
    failed = []
    for vhost in vhosts:
        try:
            vhost.reload_certificate()
        except CertificateReloadError:
            failed.append(vhost.name)
    # The HTTPS ports load the files themselves; one that fails there too keeps its old certificate.
    send_certificate_reload(which)
    if failed:
        # The reason goes to the server log (the model logs it), as OME documents.
        raise OmeError(500, "Internal Server Error")
    return ok()


class VirtualHostReloadCertificateView(OmeAPIView):
    @extend_schema(
        tags=VHOST_TAG,
        summary="Reload the TLS certificate of a virtual host",
        operation_id="omeReloadTheTlsCertificateOfAVirtualHost",
        request=None,
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE, 500: ERROR_ENVELOPE},
    )
    def post(self, request, vhost: str):
        return _reload([self.get_vhost(vhost)], vhost)


class ReloadAllCertificatesView(OmeAPIView):
    @extend_schema(
        tags=VHOST_TAG,
        summary="Reload the TLS certificates of all virtual hosts",
        operation_id="omeReloadTheTlsCertificatesOfAllVirtualHosts",
        request=None,
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 500: ERROR_ENVELOPE},
    )
    def post(self, request):
        return _reload(VirtualHost.objects.all(), "*")
