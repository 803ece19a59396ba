"""Admin of WCS CDN transcoding profiles (validated as the API validates them) and of the routes edges
report (read-only: the edges write them)."""

from django import forms
from django.contrib import admin

from apps.cdn.models import CdnProfile, StreamRoute
from apps.cdn.services import ProfileError, check_profile


class CdnProfileForm(forms.ModelForm):
    class Meta:
        model = CdnProfile
        fields = ["name", "audio", "video"]

    def clean(self):
        cleaned = super().clean()
        profile = {part: cleaned.get(part) for part in ("audio", "video") if cleaned.get(part)}
        try:
            check_profile(cleaned.get("name"), profile)
        except ProfileError as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned


@admin.register(CdnProfile)
class CdnProfileAdmin(admin.ModelAdmin):
    form = CdnProfileForm
    list_display = ["name", "audio", "video", "updated_at"]
    search_fields = ["name"]


@admin.register(StreamRoute)
class StreamRouteAdmin(admin.ModelAdmin):
    list_display = ["name", "origin", "edge", "started_at", "viewers", "bytes_in", "state", "updated_at"]
    list_filter = ["edge", "origin"]
    search_fields = ["name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
