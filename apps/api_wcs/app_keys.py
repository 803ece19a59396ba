"""WCS application keys (``appKey``): WCS names its applications by key (``defaultApp`` is the one its
Web SDK uses); StreamHub maps each key to one of its applications (``WCS_APP_KEYS``, "key" ->
"vhost/app"). A stream reports the first key mapped to its application; a filter by key matches the
streams of the application the key maps to."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from apps.api_wcs.errors import WcsError
from apps.hosting.models import Application


def split_path(path: str) -> tuple[str, str]:
    vhost, _, app = path.strip().partition("/")
    return vhost, app


def mapped_paths() -> dict[str, str]:
    """appKey -> "vhost/app", in the setting's order."""
    return {key.strip(): path.strip() for key, path in settings.WCS_APP_KEYS.items() if key.strip()}


def app_key_of(application: Application) -> str:
    """The key a stream of ``application`` reports: the first one mapped to it, else the application's name."""
    path = f"{application.virtual_host.name}/{application.name}"
    return next((key for key, mapped in mapped_paths().items() if mapped == path), application.name)


def key_matches(application: Application, key: str) -> bool:
    """Whether ``key`` names ``application`` (a key mapped to it)."""
    mapped = mapped_paths().get(key)
    return mapped is not None and mapped == f"{application.virtual_host.name}/{application.name}"


def wcs_applications_filter() -> Q:
    """The applications whose streams WCS's /stream/* methods see: WCS_APPLICATION and every mapped one."""
    paths = {settings.WCS_APPLICATION, *mapped_paths().values()}
    query = Q(pk__in=[])
    for path in paths:
        vhost, app = split_path(path)
        query |= Q(virtual_host__name=vhost, name=app)
    return query


def wcs_application_ids() -> list[int]:
    ids = list(Application.objects.filter(wcs_applications_filter()).values_list("pk", flat=True))
    if not ids:
        raise WcsError(500, f"Internal error: the WCS application {settings.WCS_APPLICATION} does not exist")
    return ids
