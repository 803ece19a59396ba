"""Virtual hosts, host names, applications and output profiles, and how each renders as OME JSON."""

from __future__ import annotations

import copy
import fnmatch
import logging
import ssl

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.utils import timezone

from apps.hosting.choices import (
    DEFAULT_DISTRIBUTION,
    NAME_PATTERN,
    ORIGIN_STREAM_NAME_MACRO,
    TASK_ID_PATTERN,
    ApplicationType,
)
from media_engine.names import STREAM_NAME_RULE, is_valid_stream_name

logger = logging.getLogger(__name__)

name_validator = RegexValidator(
    NAME_PATTERN, "Use letters, digits, '_', '-' and '.', starting with a letter, digit or '_' (at most 100)."
)
# Not on model fields (no migration): the API serializers and admin forms use them where ids and names enter.
task_id_validator = RegexValidator(
    TASK_ID_PATTERN, "Use letters, digits, '_', '-' and '.', starting with a letter, digit or '_' (at most 200)."
)


def check_output_stream_name(template: str) -> str:
    """``outputStreamName`` (``${OriginStreamName}`` macro allowed) if it makes a valid stream name;
    ValidationError otherwise (a "../x" would never publish)."""
    # The engine's one stream name rule (media_engine.names), with the origin's name standing in for the macro.
    if not is_valid_stream_name(template.replace(ORIGIN_STREAM_NAME_MACRO, "x")):
        raise ValidationError(f"outputStreamName must make a stream name: {STREAM_NAME_RULE}.")
    return template


class CertificateReloadError(Exception):
    """The TLS certificate files of a virtual host could not be loaded; the old one stays in use."""


class VirtualHost(models.Model):
    name = models.CharField("name", max_length=100, unique=True, validators=[name_validator])
    distribution = models.CharField("distribution", max_length=100, default=DEFAULT_DISTRIBUTION)
    tls_cert_path = models.CharField("TLS certificate path", max_length=500, blank=True)
    tls_key_path = models.CharField("TLS private key path", max_length=500, blank=True)
    tls_chain_cert_path = models.CharField("TLS chain certificate path", max_length=500, blank=True)
    signed_policy = models.JSONField(
        "signed policy", null=True, blank=True, help_text="OME SignedPolicy settings (JSON), or empty."
    )
    admission_webhooks = models.JSONField(
        "admission webhooks", null=True, blank=True, help_text="OME AdmissionWebhooks settings (JSON), or empty."
    )
    origins = models.JSONField("origins", null=True, blank=True, help_text="OME Origins settings (JSON), or empty.")
    origin_map_store = models.JSONField(
        "origin map store", null=True, blank=True, help_text="OME OriginMapStore settings (JSON), or empty."
    )
    certificate_loaded_at = models.DateTimeField(
        "certificate loaded at",
        null=True,
        blank=True,
        editable=False,
        help_text="When the TLS certificate was last (re)loaded successfully.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "virtual host"

    def __str__(self) -> str:
        return self.name

    @property
    def host_names(self) -> list[str]:
        return [host.name for host in self.names.all()]

    def matches_host(self, host: str) -> bool:
        """Whether a request for ``host`` (a host name or IP, port stripped) belongs to this vhost."""
        host = host.lower()
        return any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in self.host_names)

    @property
    def has_tls(self) -> bool:
        return bool(self.tls_cert_path and self.tls_key_path)

    def reload_certificate(self) -> None:
        """Load the TLS files again; on failure keep the old certificate and raise CertificateReloadError."""
        if self.has_tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(self.tls_cert_path, self.tls_key_path)
                if self.tls_chain_cert_path:
                    context.load_verify_locations(self.tls_chain_cert_path)
            except (OSError, ssl.SSLError) as error:
                logger.error("Keeping the old TLS certificate of vhost %s: %s", self.name, error)
                raise CertificateReloadError(f"{self.name}: {error}") from error
        self.certificate_loaded_at = timezone.now()
        self.save(update_fields=["certificate_loaded_at"])

    def set_host_names(self, names: list[str]) -> None:
        self.names.all().delete()
        VirtualHostName.objects.bulk_create(
            VirtualHostName(virtual_host=self, name=name, position=index) for index, name in enumerate(names)
        )

    def to_ome(self) -> dict:
        """The vhost as OME's GET /v1/vhosts/{vhost} shows it."""
        host: dict = {"names": self.host_names}
        if self.has_tls or self.tls_chain_cert_path:
            host["tls"] = {
                "certPath": self.tls_cert_path,
                "chainCertPath": self.tls_chain_cert_path,
                "keyPath": self.tls_key_path,
            }
        data: dict = {"name": self.name, "distribution": self.distribution, "host": host}
        for key, value in (
            ("signedPolicy", self.signed_policy),
            ("admissionWebhooks", self.admission_webhooks),
            ("origins", self.origins),
            ("originMapStore", self.origin_map_store),
        ):
            if value is not None:
                data[key] = copy.deepcopy(value)
        return data


class VirtualHostName(models.Model):
    """One host name (or pattern such as ``*`` or ``*.example.com``) that selects a virtual host."""

    virtual_host = models.ForeignKey(VirtualHost, on_delete=models.CASCADE, related_name="names")
    name = models.CharField("host name", max_length=255, help_text="A host name, IP address or pattern such as *.")
    position = models.PositiveIntegerField("position", default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "host name"
        constraints = [
            models.UniqueConstraint(fields=["virtual_host", "name"], name="%(app_label)s_%(class)s_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    virtual_host = models.ForeignKey(VirtualHost, on_delete=models.CASCADE, related_name="applications")
    name = models.CharField("name", max_length=100, validators=[name_validator])
    type = models.CharField("type", max_length=20, choices=ApplicationType.choices, default=ApplicationType.LIVE)
    providers = models.JSONField("providers", default=dict, blank=True, help_text="OME providers (JSON object).")
    publishers = models.JSONField("publishers", default=dict, blank=True, help_text="OME publishers (JSON object).")
    # Access control in OME's vhost shapes; empty: the virtual host's settings apply (apps.access).
    signed_policy = models.JSONField(
        "signed policy",
        null=True,
        blank=True,
        help_text="OME SignedPolicy settings (JSON) for this application; empty: the virtual host's.",
    )
    admission_webhooks = models.JSONField(
        "admission webhooks",
        null=True,
        blank=True,
        help_text="OME AdmissionWebhooks settings (JSON) for this application; empty: the virtual host's.",
    )
    dynamic = models.BooleanField(
        "dynamic", default=False, editable=False, help_text="Created on the fly by an origin, not by configuration."
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["virtual_host_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["virtual_host", "name"], name="%(app_label)s_%(class)s_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.virtual_host.name}/{self.name}"

    @property
    def path(self) -> str:
        """``vhost/app``, as OME's error messages name an application."""
        return f"{self.virtual_host.name}/{self.name}"

    def to_ome(self) -> dict:
        """The application as OME's GET /v1/vhosts/{vhost}/apps/{app} shows it."""
        return {
            "dynamic": self.dynamic,
            "name": self.name,
            "type": self.type,
            "outputProfiles": {"outputProfile": [profile.to_ome() for profile in self.output_profiles.all()]},
            "providers": copy.deepcopy(self.providers),
            "publishers": copy.deepcopy(self.publishers),
        }

    @transaction.atomic
    def replace_output_profiles(self, profiles: list[dict]) -> None:
        self.output_profiles.all().delete()
        for position, profile in enumerate(profiles):
            OutputProfile.from_ome(self, profile, position=position).save()


class OutputProfile(models.Model):
    """A named set of encodes applied to every stream of an application (OME's OutputProfile)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="output_profiles")
    name = models.CharField("name", max_length=100, validators=[name_validator])
    output_stream_name = models.CharField(
        "output stream name", max_length=200, help_text="Name of the output stream; ${OriginStreamName} is replaced."
    )
    encodes = models.JSONField(
        "encodes", default=dict, help_text='{"videos": [...], "audios": [...], "images": [...]} as in OME.'
    )
    playlists = models.JSONField("playlists", default=list, blank=True, help_text="OME ABR playlists (JSON list).")
    position = models.PositiveIntegerField("position", default=0)

    class Meta:
        ordering = ["application_id", "position", "id"]
        verbose_name = "output profile"
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="%(app_label)s_%(class)s_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        return f"{self.application.path}/{self.name}"

    def output_stream_name_for(self, origin_stream_name: str) -> str:
        return self.output_stream_name.replace("${OriginStreamName}", origin_stream_name)

    @classmethod
    def from_ome(cls, application: Application, data: dict, position: int = 0) -> OutputProfile:
        return cls(
            application=application,
            name=data["name"],
            output_stream_name=data["outputStreamName"],
            encodes=copy.deepcopy(data["encodes"]),
            playlists=copy.deepcopy(data.get("playlists", [])),
            position=position,
        )

    def to_ome(self) -> dict:
        data = {
            "name": self.name,
            "outputStreamName": self.output_stream_name,
            "encodes": copy.deepcopy(self.encodes),
        }
        if self.playlists:
            data["playlists"] = copy.deepcopy(self.playlists)
        return data
