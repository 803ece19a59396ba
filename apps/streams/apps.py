"""Live streams: one row per publish session, its tracks and traffic counters, and its events."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


class StreamsConfig(AppConfig):
    name = "apps.streams"
    verbose_name = "Live streams"

    def ready(self) -> None:
        from streamhub import db_changes

        # The change counters' triggers of the cached answers (streams, their nodes, applications, records):
        # away while migrations change the tables they name, made again from the models after.
        pre_migrate.connect(db_changes.uninstall_before_migrate, sender=self, dispatch_uid="streamhub.db_changes")
        post_migrate.connect(db_changes.install_after_migrate, sender=self, dispatch_uid="streamhub.db_changes")
