"""WCS /cdn/stream/access_list/*: the keys a player must show (``aclAuth=KEY``) to play a stream,
on the access service. The engine refuses RTMP, HLS and LL-HLS plays of the stream without one."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from apps.access.services import AclNotFound, acl_keys, add_acl_keys, clear_acl, remove_acl_keys
from apps.api_wcs.errors import WcsError
from apps.api_wcs.views.base import Method, wcs_application
from apps.streams.models import Stream

MAX_KEYS = 1000


STRING_LIST = {"type": "array", "items": {"type": "string"}}


@extend_schema_field({"oneOf": [STRING_LIST, {"type": "string", "example": "key1,key2"}]})
class KeysField(serializers.Field):
    """A list of keys, or one comma-separated string of them."""

    default_error_messages = {"invalid": "keys must be a list of non-empty strings (or one comma-separated string)"}

    def to_internal_value(self, data):
        items = data.split(",") if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.fail("invalid")
        keys = [item.strip() for item in items if item.strip()]
        if not keys or len(keys) > MAX_KEYS or any(len(key) > 255 for key in keys):
            self.fail("invalid")
        return keys

    def to_representation(self, value):
        return value


class StreamAcl(serializers.Serializer):
    name = serializers.CharField(max_length=255, help_text="The stream name.")


class StreamAclKeys(StreamAcl):
    keys = KeysField(help_text='The keys, e.g. ["key1", "key2"].')


def _live_stream_name(name: str) -> str:
    application = wcs_application()
    if not Stream.objects.live().filter(application=application, name=name).exists():
        raise WcsError(404, "Stream not found")
    return name


def add(data: dict) -> None:
    add_acl_keys(wcs_application(), _live_stream_name(data["name"]), data["keys"])


def remove(data: dict) -> None:
    application = wcs_application()
    if not acl_keys(application, data["name"]):
        raise WcsError(404, "ACL not found")
    try:
        remove_acl_keys(application, _live_stream_name(data["name"]), data["keys"])
    except AclNotFound:
        raise WcsError(404, "ACL not found") from None


def delete(data: dict) -> None:
    clear_acl(wcs_application(), _live_stream_name(data["name"]))


def print_keys(data: dict) -> list[str]:
    keys = acl_keys(wcs_application(), data["name"])
    if not keys:
        raise WcsError(404, "ACL not found")
    return keys


BAD = (400, "Bad request")
KEY_LIST = OpenApiResponse(response=STRING_LIST, description="The stream's ACL keys.")
METHODS = [
    Method("cdn/stream/access_list", "add", add, StreamAclKeys, None, "Add keys to stream ACL",
           (BAD, (404, "Stream not found"))),
    Method("cdn/stream/access_list", "remove", remove, StreamAclKeys, None, "Remove keys from stream ACL",
           (BAD, (404, "ACL not found/Stream not found"))),
    Method("cdn/stream/access_list", "delete", delete, StreamAcl, None, "Clean stream ACL",
           (BAD, (404, "Stream not found"))),
    Method("cdn/stream/access_list", "print", print_keys, StreamAcl, KEY_LIST,
           "Show stream ACL", (BAD, (404, "ACL not found"))),
]  # fmt: skip
