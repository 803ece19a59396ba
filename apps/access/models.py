"""Stream access lists (WCS's /cdn/stream/access_list): the keys a player must show to play a stream."""

from __future__ import annotations

from django.db import models


class AclKeyQuerySet(models.QuerySet):
    def of_stream(self, application, stream_name: str) -> AclKeyQuerySet:
        return self.filter(application=application, stream_name=stream_name)


class AclKey(models.Model):
    """One key of a stream's access list; a play of the stream needs ``aclAuth=<one of its keys>``."""

    application = models.ForeignKey("hosting.Application", on_delete=models.CASCADE, related_name="acl_keys")
    stream_name = models.CharField("stream name", max_length=255)
    key = models.CharField("key", max_length=255, help_text="What a player passes as aclAuth=...")
    created_at = models.DateTimeField("created", auto_now_add=True)

    objects = AclKeyQuerySet.as_manager()

    class Meta:
        ordering = ["application_id", "stream_name", "id"]
        verbose_name = "stream ACL key"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "stream_name", "key"], name="%(app_label)s_%(class)s_unique_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application}/{self.stream_name}"
