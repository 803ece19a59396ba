"""Admin for virtual hosts (host names, TLS), applications and their output profiles."""

from django import forms
from django.contrib import admin, messages
from rest_framework import serializers

from apps.access.admin import make_signed_urls
from apps.access.services import check_admission_webhooks, check_signed_policy
from apps.hosting.models import (
    Application,
    CertificateReloadError,
    OutputProfile,
    VirtualHost,
    VirtualHostName,
    check_output_stream_name,
)
from apps.hosting.ome_config import (
    PROVIDER_SETTINGS,
    PUBLISHER_SETTINGS,
    EncodesSerializer,
    PlaylistSerializer,
    check_modules,
    default_output_profile,
    describe_errors,
)


class VirtualHostNameInline(admin.TabularInline):
    model = VirtualHostName
    extra = 1
    fields = ["name", "position"]


class ApplicationInline(admin.TabularInline):
    model = Application
    extra = 0
    fields = ["name", "type"]
    show_change_link = True


@admin.register(VirtualHost)
class VirtualHostAdmin(admin.ModelAdmin):
    list_display = ["name", "host_name_list", "has_tls", "application_count", "certificate_loaded_at"]
    search_fields = ["name", "names__name"]
    inlines = [VirtualHostNameInline, ApplicationInline]
    readonly_fields = ["certificate_loaded_at", "created_at", "updated_at"]
    actions = ["reload_certificates"]
    fieldsets = [
        (None, {"fields": ["name", "distribution"]}),
        ("TLS", {"fields": ["tls_cert_path", "tls_key_path", "tls_chain_cert_path", "certificate_loaded_at"]}),
        (
            "Access control and origins (OME JSON)",
            {"fields": ["signed_policy", "admission_webhooks", "origins", "origin_map_store"], "classes": ["collapse"]},
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="host names")
    def host_name_list(self, vhost: VirtualHost) -> str:
        return ", ".join(vhost.host_names)

    @admin.display(description="TLS", boolean=True)
    def has_tls(self, vhost: VirtualHost) -> bool:
        return vhost.has_tls

    @admin.display(description="applications")
    def application_count(self, vhost: VirtualHost) -> int:
        return vhost.applications.count()

    @admin.action(description="Reload TLS certificates of the selected virtual hosts")
    def reload_certificates(self, request, queryset):
        for vhost in queryset:
            try:
                vhost.reload_certificate()
            except CertificateReloadError as error:
                self.message_user(request, f"Kept the old certificate of {vhost}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Reloaded the certificate of {vhost}.", messages.SUCCESS)


class JsonObjectFormMixin:
    """Checks JSON fields that must hold an object of objects (providers, publishers)."""

    def _clean_object(self, field_name: str):
        value = self.cleaned_data.get(field_name)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Enter a JSON object, e.g. {"rtmp": {}}.')
        return value


class ApplicationForm(JsonObjectFormMixin, forms.ModelForm):
    class Meta:
        model = Application
        fields = ["virtual_host", "name", "type", "providers", "publishers", "signed_policy", "admission_webhooks"]

    def _clean_access(self, field_name: str, check):
        value = self.cleaned_data.get(field_name)
        if value in (None, "", {}):
            return None
        try:
            check(value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return value

    def clean_signed_policy(self):
        return self._clean_access("signed_policy", check_signed_policy)

    def clean_admission_webhooks(self):
        return self._clean_access("admission_webhooks", check_admission_webhooks)

    def _clean_modules(self, field_name: str, known):
        # The same OME types and ranges as the API and import (apps.hosting.ome_config).
        try:
            return check_modules(field_name, self._clean_object(field_name), known)
        except serializers.ValidationError as error:
            raise forms.ValidationError(describe_errors(error.detail)) from None

    def clean_providers(self):
        return self._clean_modules("providers", PROVIDER_SETTINGS)

    def clean_publishers(self):
        return self._clean_modules("publishers", PUBLISHER_SETTINGS)


class OutputProfileForm(forms.ModelForm):
    class Meta:
        model = OutputProfile
        fields = ["application", "name", "output_stream_name", "encodes", "playlists", "position"]

    def clean_output_stream_name(self):
        return check_output_stream_name(self.cleaned_data.get("output_stream_name") or "")

    def clean_encodes(self):
        serializer = EncodesSerializer(data=self.cleaned_data.get("encodes"))
        if not serializer.is_valid():
            raise forms.ValidationError(describe_errors(serializer.errors))
        return serializer.data

    def clean_playlists(self):
        serializer = PlaylistSerializer(data=self.cleaned_data.get("playlists") or [], many=True)
        if not serializer.is_valid():
            raise forms.ValidationError(describe_errors(serializer.errors))
        return serializer.data


class OutputProfileInline(admin.StackedInline):
    model = OutputProfile
    form = OutputProfileForm
    extra = 0
    fields = ["name", "output_stream_name", "encodes", "playlists", "position"]


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    form = ApplicationForm
    list_display = ["name", "virtual_host", "type", "profile_names", "updated_at"]
    list_filter = ["virtual_host", "type"]
    search_fields = ["name", "virtual_host__name", "output_profiles__name"]
    list_select_related = ["virtual_host"]
    inlines = [OutputProfileInline]
    readonly_fields = ["dynamic", "created_at", "updated_at"]
    actions = [make_signed_urls]
    fieldsets = [
        (None, {"fields": ["virtual_host", "name", "type", "providers", "publishers", "dynamic"]}),
        ("Access control (OME JSON; empty: the virtual host's)", {"fields": ["signed_policy", "admission_webhooks"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # As in the API: an application created without output profiles gets OME's default one.
        if not change and not form.instance.output_profiles.exists():
            form.instance.replace_output_profiles([default_output_profile()])

    @admin.display(description="output profiles")
    def profile_names(self, application: Application) -> str:
        return ", ".join(profile.name for profile in application.output_profiles.all())


@admin.register(OutputProfile)
class OutputProfileAdmin(admin.ModelAdmin):
    form = OutputProfileForm
    list_display = ["name", "application", "output_stream_name"]
    list_filter = ["application__virtual_host", "application"]
    search_fields = ["name", "output_stream_name", "application__name"]
    list_select_related = ["application__virtual_host"]
