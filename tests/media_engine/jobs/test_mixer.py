"""The mixer's pure parts: layouts (cells of the grid, one row, one column), pictures fitted into
cells, and the yuv420p compositing and watermark blending the mixer and the WCS transcoder share
(a PNG made by ffmpeg, placed by x/y and by margins, judged pixel by pixel in RGB)."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest

from media_engine.jobs.mixer import MixerSettings, fit, layout_cells
from media_engine.jobs.watermark import Overlay, Placement, Planes, WatermarkSlot


def rgb(planes: Planes, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in planes.to_frame().to_ndarray(format="rgb24")[y, x])


def near(pixel, wanted) -> bool:
    return all(abs(int(a) - b) < 40 for a, b in zip(pixel, wanted, strict=True))


@pytest.fixture
def white_png(tmp_path):
    path = tmp_path / "mark.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=white:size=20x10", "-frames:v", "1", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return str(path)


def test_grid_of_two_is_two_halves_and_of_five_is_three_by_two():
    assert layout_cells("grid", 2, 640, 360) == [(0, 0, 320, 360), (320, 0, 320, 360)]
    cells = layout_cells("grid", 5, 600, 400)
    assert len(cells) == 5 and cells[3] == (0, 200, 200, 200)
    assert layout_cells("vertical", 2, 640, 360) == [(0, 0, 640, 180), (0, 180, 640, 180)]
    assert layout_cells("horizontal", 3, 600, 100) == [(0, 0, 200, 100), (200, 0, 200, 100), (400, 0, 200, 100)]
    assert layout_cells("grid", 0, 640, 360) == []


def test_a_picture_keeps_its_proportions_centred_in_its_cell():
    assert fit((320, 180), (320, 0, 320, 360)) == (320, 90, 320, 180)
    assert fit((100, 100), (0, 0, 320, 180)) == (70, 0, 180, 180)


def test_settings_refuse_unknown_layouts_and_odd_sizes():
    with pytest.raises(ValueError, match="layout"):
        MixerSettings(layout="spiral")
    with pytest.raises(ValueError, match="even"):
        MixerSettings(width=641)


def test_pasted_tiles_and_blank_background_keep_their_colours():
    canvas = Planes.blank(64, 32)
    red = Planes.from_frame(av.VideoFrame.from_ndarray(np.full((16, 16, 3), (255, 0, 0), np.uint8), format="rgb24"))
    canvas.paste(red, 32, 8)
    assert near(rgb(canvas, 40, 16), (255, 0, 0))
    assert near(rgb(canvas, 8, 16), (0, 0, 0))


def test_a_watermark_lands_where_x_y_or_the_margins_put_it(white_png):
    planes = Planes.blank(100, 60, (0, 0, 255))
    Overlay.from_file(white_png, Placement(x=10, y=20)).draw(planes)
    assert near(rgb(planes, 15, 25), (255, 255, 255))
    assert near(rgb(planes, 5, 25), (0, 0, 255)) and near(rgb(planes, 15, 35), (0, 0, 255))

    corner = Planes.blank(100, 60, (0, 0, 255))
    Overlay.from_file(white_png, Placement(margin_right=4, margin_bottom=6)).draw(corner)
    assert near(rgb(corner, 100 - 4 - 10, 60 - 6 - 5), (255, 255, 255))
    assert near(rgb(corner, 99, 59), (0, 0, 255))


def test_the_watermark_slot_changes_the_pictures_once_set(white_png):
    frame = Planes.blank(64, 64, (0, 255, 0)).to_frame()
    slot = WatermarkSlot()
    assert slot(frame) is frame
    slot.set(Overlay.from_file(white_png))
    marked = slot(frame).to_ndarray(format="rgb24")
    assert near(marked[5, 5], (255, 255, 255)) and near(marked[40, 40], (0, 255, 0))


def test_a_picture_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match="not a readable picture"):
        Overlay.from_file(str(path))
