"""The admin site as an operator's console: the home page's app list grouped by purpose (Live, Jobs,
Configuration, Cluster) instead of Django's flat alphabetical list of apps."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest

# (group, anchor, models as "app_label.ModelName" in the order shown). A model may sit in two groups
# (engine nodes are both live state and cluster membership).
CONSOLE_GROUPS: list[tuple[str, str, list[str]]] = [
    ("Live", "live", ["streams.Stream", "engine.EngineNode", "connections.Connection"]),
    (
        "Jobs",
        "jobs",
        [
            "recording.Record",
            "push.Push",
            "pull.Pull",
            "transcoding.Transcode",
            "transcoding.WcsTranscoder",
            "hls_dump.HlsDump",
            "mixing.Mixer",
            "multi_recorder.MultiRecorder",
            "calls.Call",
            "async_jobs.Job",
        ],
    ),
    (
        "Configuration",
        "configuration",
        [
            "hosting.VirtualHost",
            "hosting.Application",
            "hosting.OutputProfile",
            "access.AclKey",
            "auth.User",
            "auth.Group",
        ],
    ),
    ("Cluster", "cluster", ["engine.EngineNode", "cdn.StreamRoute", "webrtc_relay.WebRtcRelay", "cdn.CdnProfile"]),
]
OTHER_GROUP = ("Other", "other")


class ConsoleAdminSite(admin.AdminSite):
    site_header = "StreamHub administration"
    site_title = "StreamHub"
    index_title = "Live streaming platform"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        """The home page and sidebar: models grouped by purpose; an app's own page keeps Django's list."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        models: dict[str, dict] = {}
        for app in self._build_app_dict(request).values():
            for model in app["models"]:
                models[f"{app['app_label']}.{model['object_name']}"] = {**model, "app_label": app["app_label"]}
        grouped, placed = [], set()
        for name, anchor, keys in CONSOLE_GROUPS:
            entries = [models[key] for key in keys if key in models]
            placed.update(keys)
            if entries:
                grouped.append(self._group(name, anchor, entries))
        # Whatever no group names (a new app) still shows, so nothing registered goes missing.
        rest = sorted((model for key, model in models.items() if key not in placed), key=lambda m: m["name"])
        if rest:
            grouped.append(self._group(*OTHER_GROUP, rest))
        return grouped

    @staticmethod
    def _group(name: str, anchor: str, models: list[dict]) -> dict:
        # Shaped like one of Django's app dicts, so the admin's own templates render it.
        return {
            "name": name,
            "app_label": f"console-{anchor}",
            "app_url": f"#console-{anchor}",
            "has_module_perms": True,
            "models": models,
        }


class ConsoleAdminConfig(AdminConfig):
    """Django's admin app on the console's site (INSTALLED_APPS names this instead of django.contrib.admin)."""

    default_site = "apps.dashboard.site.ConsoleAdminSite"
