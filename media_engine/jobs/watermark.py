"""Pictures laid over video (WCS watermarks, mixer backgrounds), on YUV 4:2:0 planes with numpy.

* `Placement`: where a watermark goes (WCS's ``x``, ``y`` and margins), `Placement.position`.
* `Overlay`: a PNG (with its alpha) read once with PyAV and kept as Y/U/V/alpha planes,
  `Overlay.draw` blends it into planes at a position.
* `Planes`: a yuv420p picture as three numpy arrays, to and from `av.VideoFrame`.
* `WatermarkSlot`: the current watermark of a running job, swapped from another thread and applied
  to each encoded picture (``slot(frame) -> frame``).

Positions: a watermark is ``marginRight`` from the right edge when that is given (and ``x`` is
not), else at ``x + marginLeft`` from the left; vertically the same with ``y``, ``marginTop`` and
``marginBottom``. Missing values are 0, so the default is the top-left corner. It is clipped to the
picture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import av
import numpy as np

__all__ = ["Overlay", "Placement", "Planes", "WatermarkSlot", "load_picture"]


@dataclass(frozen=True)
class Placement:
    x: int | None = None
    y: int | None = None
    margin_top: int | None = None
    margin_left: int | None = None
    margin_bottom: int | None = None
    margin_right: int | None = None

    def position(self, frame_size: tuple[int, int], mark_size: tuple[int, int]) -> tuple[int, int]:
        """The (left, top) of a ``mark_size`` picture in a ``frame_size`` frame, even (chroma-aligned)."""
        (frame_w, frame_h), (mark_w, mark_h) = frame_size, mark_size
        if self.margin_right is not None and self.x is None:
            left = frame_w - mark_w - self.margin_right
        else:
            left = (self.x or 0) + (self.margin_left or 0)
        if self.margin_bottom is not None and self.y is None:
            top = frame_h - mark_h - self.margin_bottom
        else:
            top = (self.y or 0) + (self.margin_top or 0)
        return max(0, left) & ~1, max(0, top) & ~1


@dataclass
class Planes:
    """A yuv420p picture: ``y`` (h, w), ``u`` and ``v`` (h/2, w/2), uint8; width and height even."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.y.shape[1], self.y.shape[0]

    @classmethod
    def blank(cls, width: int, height: int, rgb: tuple[int, int, int] = (0, 0, 0)) -> Planes:
        y, u, v = rgb_to_yuv(np.array([[rgb]], np.float32))
        return cls(
            np.full((height, width), y[0, 0], np.uint8),
            np.full((height // 2, width // 2), u[0, 0], np.uint8),
            np.full((height // 2, width // 2), v[0, 0], np.uint8),
        )

    @classmethod
    def from_frame(cls, frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> Planes:
        """``frame`` scaled to ``width`` x ``height`` (even; default: its own size)."""
        width = (width or frame.width) & ~1
        height = (height or frame.height) & ~1
        packed = frame.reformat(width, height, "yuv420p").to_ndarray()
        quarter = height // 4 if height % 4 == 0 else None
        if quarter is not None:
            u = packed[height : height + quarter].reshape(height // 2, width // 2)
            v = packed[height + quarter :].reshape(height // 2, width // 2)
        else:  # rows of U/V are not whole rows of the packed array: go by element counts
            rest = packed[height:].reshape(-1)
            half = (height // 2) * (width // 2)
            u, v = rest[:half].reshape(height // 2, width // 2), rest[half:].reshape(height // 2, width // 2)
        return cls(packed[:height].copy(), u.copy(), v.copy())

    def to_frame(self) -> av.VideoFrame:
        width, height = self.size
        packed = np.concatenate([self.y.reshape(-1), self.u.reshape(-1), self.v.reshape(-1)])
        return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")

    def paste(self, other: Planes, left: int, top: int) -> None:
        """``other`` copied in at (left, top), both even; clipped to this picture."""
        width, height = self.size
        w, h = min(other.size[0], width - left), min(other.size[1], height - top)
        if w <= 0 or h <= 0:
            return
        self.y[top : top + h, left : left + w] = other.y[:h, :w]
        self.u[top // 2 : (top + h) // 2, left // 2 : (left + w) // 2] = other.u[: h // 2, : w // 2]
        self.v[top // 2 : (top + h) // 2, left // 2 : (left + w) // 2] = other.v[: h // 2, : w // 2]


def rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range (what libx264 and players assume for yuv420p without colour tags)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return y, u, v


def load_picture(path: str) -> av.VideoFrame:
    """The first picture of an image file (PNG, JPEG...) decoded by PyAV; ValueError if unreadable."""
    try:
        with av.open(path) as container:
            return next(container.decode(video=0))
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise ValueError(f"{path} is not a readable picture ({error or 'no picture'})") from None


class Overlay:
    """An RGBA picture ready to blend into yuv420p planes."""

    def __init__(self, rgba: np.ndarray, placement: Placement | None = None) -> None:
        height, width = rgba.shape[0] & ~1, rgba.shape[1] & ~1
        if width == 0 or height == 0:
            raise ValueError("the watermark is smaller than 2x2 pixels")
        rgba = rgba[:height, :width].astype(np.float32)
        y, u, v = rgb_to_yuv(rgba[..., :3])
        alpha = rgba[..., 3] / 255.0
        self.placement = placement or Placement()
        self.width, self.height = width, height
        self.y, self.alpha = y, alpha
        # Chroma at half resolution: the average of each 2x2 block (alpha-weighted colours).
        self.alpha_c = _half(alpha)
        weight = np.maximum(self.alpha_c, 1e-6)
        self.u, self.v = _half(u * alpha) / weight, _half(v * alpha) / weight

    @classmethod
    def from_file(cls, path: str, placement: Placement | None = None) -> Overlay:
        return cls(load_picture(path).to_ndarray(format="rgba"), placement)

    def draw(self, planes: Planes, left: int | None = None, top: int | None = None) -> None:
        """Blend into ``planes`` at (left, top), by default where the placement says."""
        if left is None or top is None:
            left, top = self.placement.position(planes.size, (self.width, self.height))
        width, height = planes.size
        w, h = min(self.width, width - left) & ~1, min(self.height, height - top) & ~1
        if w <= 0 or h <= 0:
            return
        _blend(planes.y[top : top + h, left : left + w], self.y[:h, :w], self.alpha[:h, :w])
        cl, ct, cw, ch = left // 2, top // 2, w // 2, h // 2
        _blend(planes.u[ct : ct + ch, cl : cl + cw], self.u[:ch, :cw], self.alpha_c[:ch, :cw])
        _blend(planes.v[ct : ct + ch, cl : cl + cw], self.v[:ch, :cw], self.alpha_c[:ch, :cw])


def _half(plane: np.ndarray) -> np.ndarray:
    return (plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]) / 4


def _blend(target: np.ndarray, source: np.ndarray, alpha: np.ndarray) -> None:
    mixed = target * (1.0 - alpha) + source * alpha
    target[...] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


class WatermarkSlot:
    """The watermark a running encode puts on every picture; `set` swaps it from any thread."""

    def __init__(self, overlay: Overlay | None = None) -> None:
        self._overlay = overlay
        self._lock = threading.Lock()

    def set(self, overlay: Overlay | None) -> None:
        with self._lock:
            self._overlay = overlay

    @property
    def overlay(self) -> Overlay | None:
        with self._lock:
            return self._overlay

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        overlay = self.overlay
        if overlay is None:
            return frame
        planes = Planes.from_frame(frame)
        overlay.draw(planes)
        return planes.to_frame()
