"""The base of every OME v1 view: access token, JSON in and out, the envelope, resource lookups."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import renderers, serializers
from rest_framework.views import APIView

from apps.api_ome.authentication import HasOmeAccessToken, OmeAccessTokenAuthentication
from apps.api_ome.envelope import MultipleStatus, OmeError, envelope, error_envelope, ome_exception_handler
from apps.hosting.models import Application, OutputProfile, VirtualHost
from apps.hosting.ome_config import describe_errors
from apps.hosting.services import AlreadyExists
from apps.security.parsers import DepthLimitedJSONParser


class AnyContentTypeJsonParser(DepthLimitedJSONParser):
    """OME reads the body as JSON whatever Content-Type says (``curl -d`` sends form encoding)."""

    media_type = "*/*"


class OmeAPIView(APIView):
    authentication_classes = [OmeAccessTokenAuthentication]
    permission_classes = [HasOmeAccessToken]
    renderer_classes = [renderers.JSONRenderer]
    parser_classes = [DepthLimitedJSONParser, AnyContentTypeJsonParser]

    def get_exception_handler(self):
        return ome_exception_handler

    # --- lookups with OME's 404 texts -------------------------------------------------------

    def get_vhost(self, vhost: str) -> VirtualHost:
        found = VirtualHost.objects.filter(name=vhost).first()
        if found is None:
            raise OmeError(404, f"Could not find the virtual host: [{vhost}]")
        return found

    def get_application(self, vhost: str, app: str) -> Application:
        found = Application.objects.select_related("virtual_host").filter(virtual_host__name=vhost, name=app).first()
        if found is None:
            self.get_vhost(vhost)
            raise OmeError(404, f"Could not find the application: [{vhost}/{app}]")
        return found

    def get_output_profile(self, vhost: str, app: str, profile: str) -> OutputProfile:
        application = self.get_application(vhost, app)
        found = application.output_profiles.filter(name=profile).first()
        if found is None:
            raise OmeError(404, f"Could not find the output profile: [{vhost}/{app}/{profile}]")
        return found

    # --- request bodies -----------------------------------------------------------------------

    def body_array(self) -> list:
        if not isinstance(self.request.data, list):
            raise OmeError(400, "Request body must be an array")
        return self.request.data

    def body_object(self) -> dict:
        if not isinstance(self.request.data, dict):
            raise OmeError(400, "Request body must be an object")
        return self.request.data

    def validated(self, serializer_class: type[serializers.Serializer], data) -> dict:
        serializer = serializer_class(data=data)
        if not serializer.is_valid():
            raise OmeError(400, describe_errors(serializer.errors))
        return serializer.validated_data

    def create_each(
        self,
        serializer_class: type[serializers.Serializer],
        create: Callable[[dict], object],
        render: Callable[[object], dict],
    ):
        """OME's batch create: one envelope per item, each item created (or not) on its own."""
        result = MultipleStatus()
        for item in self.body_array():
            if not isinstance(item, dict):
                result.add(error_envelope(400, "Each item must be a JSON object"))
                continue
            serializer = serializer_class(data=item)
            if not serializer.is_valid():
                result.add(error_envelope(400, describe_errors(serializer.errors)))
                continue
            try:
                created = create(serializer.validated_data)
            except AlreadyExists:
                # The spec's 207 example answers a duplicate with "Conflict" and the item.
                result.add(envelope(409, item))
                continue
            result.add(envelope(200, render(created)))
        return result.response()


class NotFoundView(OmeAPIView):
    """Any /v1 path that names no API: OME's answer after the access token check."""

    schema = None

    def _not_found(self, request, *args, **kwargs):
        raise OmeError(404, "Controller not found")

    get = post = put = patch = delete = _not_found
