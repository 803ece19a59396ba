"""Live streams: one row per publish session, its tracks and traffic counters, and its events."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class StreamsConfig(AppConfig):
    name = "apps.streams"
    verbose_name = "Live streams"

    def ready(self) -> None:
        from streamhub import db_changes

        # The change counters of the cached answers (streams, their nodes, applications, records): made
        # again after every migrate, which may have remade a table (and so dropped its triggers).
        post_migrate.connect(db_changes.install_after_migrate, sender=self, dispatch_uid="streamhub.db_changes")
