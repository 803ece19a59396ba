"""OME v1 output profiles of an application: list, create, get, replace (PUT), delete."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from apps.api_ome.envelope import OmeError, ok
from apps.api_ome.schema import ERROR_ENVELOPE, OK_ENVELOPE, enveloped, names_envelope
from apps.api_ome.views.base import OmeAPIView
from apps.hosting.ome_config import OutputProfileConfigSerializer
from apps.hosting.services import NameChangeRefused, create_output_profile, replace_output_profile

PROFILE_TAG = ["OME v1: output profiles"]


class OutputProfileListView(OmeAPIView):
    @extend_schema(
        tags=PROFILE_TAG,
        summary="Get output profile list",
        operation_id="omeGetOutputProfileList",
        responses={200: names_envelope("ProfileNames", "output profiles"), 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def get(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        return ok(list(application.output_profiles.values_list("name", flat=True)))

    @extend_schema(
        tags=PROFILE_TAG,
        summary="Create output profiles",
        operation_id="omeCreateOutputProfiles",
        request=OutputProfileConfigSerializer(many=True),
        responses={
            200: enveloped("ProfileCreated", OutputProfileConfigSerializer(), many=True),
            207: enveloped("ProfileCreatedMixed", OutputProfileConfigSerializer(), many=True),
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
            409: enveloped("ProfileConflict", OutputProfileConfigSerializer(), many=True),
        },
    )
    def post(self, request, vhost: str, app: str):
        application = self.get_application(vhost, app)
        return self.create_each(
            OutputProfileConfigSerializer,
            lambda config: create_output_profile(application, config),
            lambda profile: profile.to_ome(),
        )


class OutputProfileDetailView(OmeAPIView):
    @extend_schema(
        tags=PROFILE_TAG,
        summary="Get output profile information",
        operation_id="omeGetOutputProfileInformation",
        responses={
            200: enveloped("Profile", OutputProfileConfigSerializer()),
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
        },
    )
    def get(self, request, vhost: str, app: str, profile: str):
        return ok(self.get_output_profile(vhost, app, profile).to_ome())

    @extend_schema(
        tags=PROFILE_TAG,
        summary="Update output profile",
        operation_id="omeUpdateOutputProfile",
        description="Replaces the profile's settings with the body; the name cannot change.",
        request=OutputProfileConfigSerializer,
        responses={
            200: enveloped("ProfileUpdated", OutputProfileConfigSerializer()),
            400: ERROR_ENVELOPE,
            401: ERROR_ENVELOPE,
            404: ERROR_ENVELOPE,
        },
    )
    def put(self, request, vhost: str, app: str, profile: str):
        stored = self.get_output_profile(vhost, app, profile)
        body = {"name": stored.name, **self.body_object()}
        if body["name"] != stored.name:
            raise OmeError(400, "Cannot change [name] using this API")
        config = self.validated(OutputProfileConfigSerializer, body)
        try:
            return ok(replace_output_profile(stored, config).to_ome())
        except NameChangeRefused as refused:
            raise OmeError(400, f"Cannot change [{refused.field_name}] using this API") from refused

    @extend_schema(
        tags=PROFILE_TAG,
        summary="Delete output profile",
        operation_id="omeDeleteOutputProfile",
        responses={200: OK_ENVELOPE, 401: ERROR_ENVELOPE, 404: ERROR_ENVELOPE},
    )
    def delete(self, request, vhost: str, app: str, profile: str):
        self.get_output_profile(vhost, app, profile).delete()
        return ok()
