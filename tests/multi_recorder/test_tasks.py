"""The glue of the media job (no media): file names never overwrite another recorder's file."""

import pytest

from apps.hosting.models import Application
from apps.multi_recorder.services import create_multi_recorder
from apps.multi_recorder.tasks import MultiRecordJob

pytestmark = pytest.mark.django_db


def test_a_part_never_takes_the_name_of_an_existing_file(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    app = Application.objects.get(name="app")
    job = MultiRecordJob(create_multi_recorder(app, "multi-recorder://room"))
    first = job.path_for(0)
    assert first == tmp_path.resolve() / "multi-recorder" / "multi-recorder___room.mp4"
    first.parent.mkdir()
    first.write_bytes(b"part 0")
    (first.parent / "multi-recorder___room-1.mp4").write_bytes(b"recorder room-1, part 0")  # running meanwhile
    assert job.path_for(1).name == "multi-recorder___room-2.mp4"
    assert job.path_for(2).name == "multi-recorder___room-3.mp4"
