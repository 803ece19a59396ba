"""OME v1 applications of a virtual host: list, create, get, patch (merge), delete."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped, names_envelope
from apps.api_ome.views.base import OmeAPIView
from apps.hosting.ome_config import ApplicationConfigSerializer
from apps.hosting.services import NameChangeRefused, create_application, patched_application_config, update_application

APP_TAG = ["OME v1: applications"]


class ApplicationPatchSerializer(serializers.Serializer):
    """What PATCH accepts: any of these, merged into the stored configuration."""

    type = serializers.CharField(required=False)
    providers = serializers.DictField(required=False)
    publishers = serializers.DictField(required=False)


class ApplicationListView(OmeAPIView):
    @extend_schema(
        tags=APP_TAG,
        summary="Get application list",
        operation_id="omeGetApplicationList",
        responses={200: names_envelope("AppNames", "applications"), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str):
        return ok(list(self.get_vhost(vhost).applications.values_list("name", flat=True)))

    @extend_schema(
        tags=APP_TAG,
        summary="Create applications",
        operation_id="omeCreateApplications",
        request=ApplicationConfigSerializer(many=True),
        responses={
            200: enveloped("AppCreated", ApplicationConfigSerializer(), many=True),
            207: enveloped("AppCreatedMixed", ApplicationConfigSerializer(), many=True),
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
            409: enveloped("AppConflict", ApplicationConfigSerializer(), many=True),
        },
    )
    def post(self, request, vhost: str):
        virtual_host = self.get_vhost(vhost)
        return self.create_each(
            ApplicationConfigSerializer,
            lambda config: create_application(virtual_host, config),
            lambda app: app.to_ome(),
        )


class ApplicationDetailView(OmeAPIView):
    @extend_schema(
        tags=APP_TAG,
        summary="Get application information",
        operation_id="omeGetApplicationInformation",
        responses={200: enveloped("App", ApplicationConfigSerializer()), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str, app: str):
        return ok(self.get_application(vhost, app).to_ome())

    @extend_schema(
        tags=APP_TAG,
        summary="Patch application information",
        operation_id="omePatchApplicationInformation",
        description="Merges the body into the stored configuration; `name` and `outputProfiles` cannot change.",
        request=ApplicationPatchSerializer,
        responses={
            200: enveloped("AppPatched", ApplicationConfigSerializer()),
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
        },
    )
    def patch(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        changes = self.body_object()
        try:
            merged = patched_application_config(application, changes)
        except NameChangeRefused as refused:
            raise OmeError(400, f"Cannot change [{refused.field_name}] using this API") from refused
        config = self.validated(ApplicationConfigSerializer, merged)
        return ok(update_application(application, config).to_ome())

    @extend_schema(exclude=True)
    def put(self, request, vhost: str, app: str):
        """Older OME versions modify applications with PUT; same semantics as PATCH."""
        return self.patch(request, vhost, app)

    @extend_schema(
        tags=APP_TAG,
        summary="Delete application",
        operation_id="omeDeleteApplication",
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def delete(self, request, vhost: str, app: str):
        with transaction.atomic():
            self.get_application(vhost, app).delete()
        return ok()
