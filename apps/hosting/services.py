"""Service functions that change the hosting configuration: the OME API, the admin's import and
the management commands all go through these, each change in one transaction.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from apps.hosting.models import Application, OutputProfile, VirtualHost
from media_engine.tls import VhostTls
from streamhub.db_changes import cached_until_changed


@cached_until_changed("hosting.VirtualHost")
def virtual_host_names() -> list[str]:
    """Every virtual host's name (OME GET /v1/vhosts, a hot path: issue #19), read again only once a
    virtual host has changed; callers must not change the list."""
    return list(VirtualHost.objects.values_list("name", flat=True))


def find_virtual_host(host: str) -> VirtualHost | None:
    """The vhost a request for ``host`` belongs to: an exact host name wins over a pattern, a longer
    pattern over a shorter one (so ``*.example.com`` beats ``*``)."""
    host = host.lower().split(":")[0] if host.count(":") == 1 else host.lower()
    best: tuple[int, int, VirtualHost] | None = None
    for vhost in VirtualHost.objects.prefetch_related("names"):
        for pattern in vhost.host_names:
            if not fnmatch.fnmatchcase(host, pattern.lower()):
                continue
            rank = (0 if "*" in pattern or "?" in pattern else 1, len(pattern))
            if best is None or rank > best[:2]:
                best = (*rank, vhost)
    return best[2] if best else None


def tls_entries() -> list[VhostTls]:
    """Every vhost's host names and TLS files, as the HTTPS ports (engine, API proxy) take them."""
    return [
        VhostTls(
            vhost.name, tuple(vhost.host_names), vhost.tls_cert_path, vhost.tls_key_path, vhost.tls_chain_cert_path
        )
        for vhost in VirtualHost.objects.prefetch_related("names")
    ]


class AlreadyExists(Exception):
    """An object with that name already exists where a new one was asked for."""


class NameChangeRefused(Exception):
    """A modification tried to change a field that cannot change (e.g. an application's name)."""

    def __init__(self, field_name: str) -> None:
        super().__init__(field_name)
        self.field_name = field_name


# Fields of an application that PATCH may not change (OME refuses them too).
IMMUTABLE_APPLICATION_FIELDS = ("name", "outputProfiles")


def _apply_vhost_config(vhost: VirtualHost, config: dict) -> None:
    tls = config["host"].get("tls", {})
    vhost.tls_cert_path = tls.get("certPath", "")
    vhost.tls_key_path = tls.get("keyPath", "")
    vhost.tls_chain_cert_path = tls.get("chainCertPath", "")
    if "distribution" in config:
        vhost.distribution = config["distribution"]
    vhost.signed_policy = config.get("signedPolicy")
    vhost.admission_webhooks = config.get("admissionWebhooks")
    vhost.origins = config.get("origins")
    vhost.origin_map_store = config.get("originMapStore")


@transaction.atomic
def create_virtual_host(config: dict) -> VirtualHost:
    """Create a vhost (and, from an export file, its apps) from validated OME JSON."""
    if VirtualHost.objects.filter(name=config["name"]).exists():
        raise AlreadyExists(config["name"])
    vhost = VirtualHost(name=config["name"])
    _apply_vhost_config(vhost, config)
    try:
        vhost.save()
    except IntegrityError as error:  # a concurrent request created it first
        raise AlreadyExists(config["name"]) from error
    vhost.set_host_names(config["host"]["names"])
    for app_config in config.get("apps", []):
        create_application(vhost, app_config)
    return vhost


@transaction.atomic
def create_application(vhost: VirtualHost, config: dict) -> Application:
    """Create an application with its output profiles from validated OME JSON; all or nothing."""
    if vhost.applications.filter(name=config["name"]).exists():
        raise AlreadyExists(f"{vhost.name}/{config['name']}")
    application = Application(virtual_host=vhost, name=config["name"], type=config["type"])
    application.providers = copy.deepcopy(config["providers"])
    application.publishers = copy.deepcopy(config["publishers"])
    try:
        application.save()
    except IntegrityError as error:
        raise AlreadyExists(f"{vhost.name}/{config['name']}") from error
    application.replace_output_profiles(config["outputProfiles"]["outputProfile"])
    return application


def merge_config(stored: dict, changes: dict) -> dict:
    """OME's PATCH merge: objects merge key by key, every other value replaces the stored one."""
    merged = copy.deepcopy(stored)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def patched_application_config(application: Application, changes: dict) -> dict:
    """The application's OME JSON with ``changes`` merged in; refuses name/outputProfiles changes."""
    for key in changes:
        if key.lower() in {name.lower() for name in IMMUTABLE_APPLICATION_FIELDS}:
            raise NameChangeRefused(key)
    stored = application.to_ome()
    stored.pop("dynamic", None)
    return merge_config(stored, changes)


@transaction.atomic
def update_application(application: Application, config: dict) -> Application:
    """Store a validated, merged configuration (type, providers, publishers) of an application."""
    application = Application.objects.select_for_update().get(pk=application.pk)
    application.type = config["type"]
    application.providers = copy.deepcopy(config["providers"])
    application.publishers = copy.deepcopy(config["publishers"])
    application.save()
    return application


@transaction.atomic
def create_output_profile(application: Application, config: dict) -> OutputProfile:
    if application.output_profiles.filter(name=config["name"]).exists():
        raise AlreadyExists(f"{application.path}/{config['name']}")
    last = application.output_profiles.order_by("-position").first()
    profile = OutputProfile.from_ome(application, config, position=(last.position + 1) if last else 0)
    try:
        profile.save()
    except IntegrityError as error:
        raise AlreadyExists(f"{application.path}/{config['name']}") from error
    return profile


@transaction.atomic
def replace_output_profile(profile: OutputProfile, config: dict) -> OutputProfile:
    """PUT: the profile's settings become ``config``; its name cannot change."""
    if config["name"] != profile.name:
        raise NameChangeRefused("name")
    replacement = OutputProfile.from_ome(profile.application, config, position=profile.position)
    replacement.pk = profile.pk
    replacement.save()
    return replacement


def export_config() -> dict:
    """Every vhost with its applications and output profiles, as OME JSON (import_config reads it back)."""
    vhosts = []
    for vhost in VirtualHost.objects.prefetch_related("names", "applications__output_profiles"):
        data = vhost.to_ome()
        data["apps"] = [app.to_ome() for app in vhost.applications.all()]
        for app in data["apps"]:
            app.pop("dynamic", None)
        vhosts.append(data)
    return {"vhosts": vhosts}


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


@transaction.atomic
def import_config(vhost_configs: list[dict]) -> ImportReport:
    """Create or update vhosts, apps and profiles from validated configs; all or nothing."""
    report = ImportReport()
    for config in vhost_configs:
        vhost = VirtualHost.objects.filter(name=config["name"]).first()
        if vhost is None:
            create_virtual_host({**config, "apps": []})
            vhost = VirtualHost.objects.get(name=config["name"])
            report.created.append(f"vhost {vhost.name}")
        else:
            _apply_vhost_config(vhost, config)
            vhost.save()
            vhost.set_host_names(config["host"]["names"])
            report.updated.append(f"vhost {vhost.name}")
        for app_config in config.get("apps", []):
            application = vhost.applications.filter(name=app_config["name"]).first()
            if application is None:
                create_application(vhost, app_config)
                report.created.append(f"app {vhost.name}/{app_config['name']}")
            else:
                update_application(application, app_config)
                application.replace_output_profiles(app_config["outputProfiles"]["outputProfile"])
                report.updated.append(f"app {application.path}")
    return report
