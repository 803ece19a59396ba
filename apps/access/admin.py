"""Admin for stream ACL keys, and the "Make signed URLs" action of applications."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from apps.access.choices import Direction
from apps.access.models import AclKey
from apps.access.services import SignedUrlSpec, check_allow_ip, signed_stream_urls


@admin.register(AclKey)
class AclKeyAdmin(admin.ModelAdmin):
    list_display = ["stream_name", "application", "created_at"]
    list_filter = ["application__virtual_host", "application"]
    search_fields = ["stream_name", "application__name"]
    list_select_related = ["application__virtual_host"]
    fields = ["application", "stream_name", "key", "created_at"]
    readonly_fields = ["created_at"]


class SignedUrlForm(forms.Form):
    stream_name = forms.CharField(max_length=255)
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.PLAY)
    expires_in = forms.IntegerField(
        label="valid for (seconds)", min_value=1, max_value=366 * 86400, initial=3600, help_text="OME's url_expire."
    )
    stream_expires_in = forms.IntegerField(
        label="session limit (seconds)",
        min_value=1,
        required=False,
        help_text="OME's stream_expire: a session ends then. Empty: no limit.",
    )
    allow_ip = forms.CharField(
        label="allowed addresses", required=False, help_text="An IP address or CIDR range (OME's allow_ip). Empty: any."
    )
    host = forms.CharField(required=False, help_text="Host name in the URLs. Empty: the engine node address.")

    def clean_allow_ip(self):
        value = self.cleaned_data["allow_ip"].strip()
        if not value:
            return ""
        try:
            return check_allow_ip(value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


@admin.action(description="Make signed URLs for a stream of the selected application")
def make_signed_urls(modeladmin, request, queryset):
    """An intermediate page: pick a stream, expiry and address range, get its signed URLs."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one application.", messages.ERROR)
        return None
    application = queryset.select_related("virtual_host").get()
    form = SignedUrlForm(request.POST if "make_signed_urls" in request.POST else None)
    urls = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        spec = SignedUrlSpec(data["expires_in"], data["allow_ip"], data["stream_expires_in"])
        try:
            urls = signed_stream_urls(application, data["stream_name"], data["direction"], spec, data["host"].strip())
        except ValueError as error:
            form.add_error(None, str(error))
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Signed URLs of {application}",
        "opts": modeladmin.model._meta,
        "application": application,
        "form": form,
        "urls": urls,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/access/signed_urls.html", context)
