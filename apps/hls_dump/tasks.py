"""The HLS dump media job: follows the stream's LL-HLS output on its engine node's media HTTP port and
writes it to the dump folder (`media_engine.jobs.hls_dump.HlsDumper`)."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

from apps.hls_dump.models import HlsDump
from apps.jobs.runner import run_stream_job
from media_engine.jobs.events import MediaEvent
from media_engine.jobs.hls_dump import HlsDumper


def host_header(dump: HlsDump) -> dict[str, str]:
    """The media port finds the virtual host by Host header: name one of the vhost's own host names."""
    names = [name for name in dump.application.virtual_host.host_names if "*" not in name]
    return {"Host": names[0]} if names else {}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def dump_stream(self, dump_pk: int) -> str:
    def media(dump: HlsDump, stream, should_stop) -> None:
        base_url, job_query = stream.node.media_http_url(
            dump.application.name, dump.stream_name, vhost=dump.application.virtual_host.name
        )
        dumper = HlsDumper(
            base_url,
            Path(dump.output_path),
            should_stop=should_stop,
            playlists=dump.playlists,
            info_file=Path(dump.info_file) if dump.info_file else None,
            user_data=dump.user_data,
            stream_path=dump.stream_path,
            headers=host_header(dump),
            on_progress=dump.record_progress,
        )
        dumper.session.params.update(job_query)  # the job token on every request (a protected application)
        outcome = dumper.run()
        if outcome == MediaEvent.COMPLETED:
            HlsDump.objects.get(pk=dump.pk).complete()

    return run_stream_job(HlsDump, dump_pk, media, self.request.id or "")
