"""The record info file: an XML list of the files a record wrote, updated as each one closes."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from apps.jobs.timestamps import ome_time
from apps.recording.models import Record


def write_info_file(record: Record, path: Path) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    root = ET.Element("files")
    for recorded in record.files.all():
        item = ET.SubElement(root, "file")
        values = {
            "transactionId": record.record_id,
            "id": record.record_id,
            "vhost": record.application.virtual_host.name,
            "app": record.application.name,
            "stream": record.stream_name,
            "filePath": recorded.path,
            "recordBytes": recorded.bytes,
            "recordTime": recorded.duration_ms,
            "sequence": recorded.sequence,
            "interval": record.interval_ms or "",
            "schedule": record.schedule,
            "segmentationRule": record.segmentation_rule,
            "metadata": record.metadata,
            "createdTime": ome_time(record.created_at),
            "startTime": ome_time(recorded.started_at),
            "finishTime": ome_time(recorded.finished_at) or "",
        }
        for tag, value in values.items():
            ET.SubElement(item, tag).text = str(value)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    os.replace(temporary, path)
