"""Multiple streams recorders: create (validated uri), add and remove member streams, stop; the
file names; and the member streams' sources for the media job."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.hosting.models import Application
from apps.jobs import services as jobs
from apps.jobs.choices import ACTIVE_STATES
from apps.jobs.paths import confine
from apps.multi_recorder.choices import FOLDER, NAME_PATTERN, URI_SCHEME
from apps.multi_recorder.models import MultiRecorder
from apps.streams.models import Stream


class InvalidUri(ValueError):
    """Not ``multi-recorder://NAME`` with a NAME that is safe as a file name."""


class RecorderConflict(Exception):
    """An active recorder with this uri exists."""


class MemberConflict(Exception):
    """The stream is a member of the recorder already."""


class NotAMember(Exception):
    """The media session id is not a member of the recorder."""


def multi_record_task():
    from apps.multi_recorder.tasks import record_multiple_streams

    return record_multiple_streams


def recorder_name(uri: str) -> str:
    """The NAME of ``multi-recorder://NAME``; InvalidUri if it is not one."""
    scheme, separator, name = uri.partition("://")
    if scheme != URI_SCHEME or not separator:
        raise InvalidUri(f"{uri!r} is not {URI_SCHEME}://NAME")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidUri(f"{uri!r}: the name may hold letters, digits, '-', '_' and '.' (not first), up to 128")
    return name


def file_path(uri: str, sequence: int) -> Path:
    """Part 0 is ``<media root>/multi-recorder/multi-recorder___NAME.mp4``, part N ``...NAME-N.mp4``."""
    stem = uri.replace("://", "___")
    return confine(f"{FOLDER}/{stem}{f'-{sequence}' if sequence else ''}.mp4")


def next_sequence(uri: str) -> int:
    """The first part number after every file of this uri in the folder: a recorder started again
    (a new one with the same uri, or after its worker died) never overwrites a recording."""
    folder = file_path(uri, 0).parent
    stem = re.escape(uri.replace("://", "___"))
    pattern = re.compile(rf"{stem}(?:-(\d+))?\.mp4")
    taken = [int(m.group(1) or 0) for p in folder.glob("*.mp4") if (m := pattern.fullmatch(p.name))]
    return max(taken) + 1 if taken else 0


def active_recorders(application: Application) -> QuerySet[MultiRecorder]:
    return MultiRecorder.objects.filter(application=application, state__in=ACTIVE_STATES).select_related(
        "application__virtual_host"
    )


def create_multi_recorder(application: Application, uri: str) -> MultiRecorder:
    """A recorder without members, its media job queued at once (it waits for members)."""
    name = recorder_name(uri)
    with transaction.atomic():
        if active_recorders(application).filter(uri=uri).exists():
            raise RecorderConflict(uri)
        try:
            recorder = MultiRecorder.objects.create(application=application, stream_name=name, uri=uri)
        except IntegrityError as error:
            raise RecorderConflict(uri) from error
        jobs.dispatch_if_live(recorder, multi_record_task())
    return recorder


def add_stream(recorder: MultiRecorder, stream: Stream) -> MultiRecorder:
    """Add a live stream; its media job starts the next file with it within a second or so."""
    media_session_id = str(stream.media_session_id)
    with transaction.atomic():
        # Locked: two adds at once must not both read the old list and lose one of the members.
        recorder = MultiRecorder.objects.select_for_update().get(pk=recorder.pk)
        if media_session_id in recorder.members:
            raise MemberConflict(media_session_id)
        recorder.add_member(media_session_id)
    return recorder


def remove_stream(recorder: MultiRecorder, media_session_id: str) -> MultiRecorder:
    with transaction.atomic():
        recorder = MultiRecorder.objects.select_for_update().get(pk=recorder.pk)
        if media_session_id not in recorder.members:
            raise NotAMember(media_session_id)
        recorder.remove_member(media_session_id)
    return recorder


def stop_multi_recorder(recorder: MultiRecorder) -> MultiRecorder:
    with transaction.atomic():
        recorder = MultiRecorder.objects.select_for_update().get(pk=recorder.pk)
        recorder.request_stop()
    return recorder


def live_stream_by_session(application: Application, media_session_id: str) -> Stream | None:
    try:
        session = uuid.UUID(media_session_id)
    except ValueError:
        return None
    return Stream.objects.live().filter(application=application, media_session_id=session).first()


def _sessions(members: list[str]) -> list[uuid.UUID]:
    sessions = []
    for member in members:
        try:
            sessions.append(uuid.UUID(member))
        except ValueError:
            continue
    return sessions


def live_members(recorder_pk: int) -> list[str]:
    """The members (media session ids) whose stream is live on an engine node, in member order."""
    row = MultiRecorder.objects.filter(pk=recorder_pk).values("members", "application_id").first()
    if row is None or not row["members"]:
        return []
    live = {
        str(session)
        for session in Stream.objects.live()
        .filter(application_id=row["application_id"], media_session_id__in=_sessions(row["members"]))
        .filter(node__isnull=False)
        .values_list("media_session_id", flat=True)
    }
    return [member for member in row["members"] if member in live]


def member_source_url(application: Application, media_session_id: str) -> str:
    """Where the media job plays a member: the RTMP URL of its stream on its engine node."""
    stream = (
        Stream.objects.live()
        .select_related("node")
        .get(application=application, media_session_id=uuid.UUID(media_session_id), node__isnull=False)
    )
    return stream.node.rtmp_url(application.name, stream.name)
