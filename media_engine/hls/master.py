"""Master playlists of output profiles' ABR playlists, on OME's paths.

An output profile's playlist (``fileName`` and its renditions) is served for its output stream as
``/{app}/{stream}/ts:{fileName}.m3u8`` (HLS: variants are the renditions' TS playlists) and
``/{app}/{stream}/{fileName}.m3u8`` (LL-HLS: the renditions' chunklists). Which streams make the
playlist, and their configured bandwidth, comes from a `PlaylistLookup` (the control plane: the
profiles are in the database); their resolution and codecs come from the live streams themselves
(the H.264 SPS and AAC configuration the engine parsed).

A master playlist lists only variants that play: a player loads the master and at once one of its
variants, so a variant whose playlist would still answer 404 (no segment yet) must not be listed.
A request waits (as long as a variant playlist request would) for the first segment of every live
rendition (asking for it starts the packaging of a rendition nobody watched yet); a rendition that
is not live, or has no segment by then, is left out; a playlist with no variant to list answers 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from media_engine.control import ApplicationConfig
from media_engine.hls.llhls import LlHlsPackager
from media_engine.hls.packager import StreamPackager
from media_engine.hls.segmenter import HlsPackager
from media_engine.registry import LiveStream, StreamKey, StreamRegistry

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
HLS_VARIANT_PLAYLIST = "playlist.m3u8"  # the alias of ts:playlist.m3u8: no colon in a relative URI


@dataclass(frozen=True)
class PlaylistVariant:
    """One rendition of a playlist: the stream it plays from, its configured bits per second (None: measure)."""

    stream: str
    bandwidth: int | None = None


# (vhost, app, output stream, fileName) -> the playlist's variants, or None if there is no such playlist.
PlaylistLookup = Callable[[str, str, str, str], Awaitable[list[PlaylistVariant] | None]]


@dataclass(frozen=True)
class VariantStream:
    """One EXT-X-STREAM-INF line and its URI."""

    uri: str
    bandwidth: int
    width: int = 0
    height: int = 0
    codecs: tuple[str, ...] = ()
    framerate: float = 0.0


def render_master_playlist(variants: list[VariantStream]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [f"BANDWIDTH={max(1, variant.bandwidth)}"]
        if variant.width and variant.height:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        if variant.framerate > 0:
            attributes.append(f"FRAME-RATE={variant.framerate:.3f}")
        if variant.codecs:
            attributes.append('CODECS="' + ",".join(variant.codecs) + '"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), variant.uri]
    return ("\n".join(lines) + "\n").encode()


def describe_variant(stream: LiveStream, uri: str, bandwidth: int | None) -> VariantStream | None:
    """The variant line of a live rendition, or None while its codecs are not known yet."""
    tracks = stream.tracks()
    if not tracks or any(not track.codec_string for track in tracks):
        return None
    video = next((track for track in tracks if track.kind == "video"), None)
    measured = sum(track.bitrate for track in tracks)
    return VariantStream(
        uri=uri,
        bandwidth=bandwidth or measured,
        width=video.width if video else 0,
        height=video.height if video else 0,
        codecs=tuple(track.codec_string for track in tracks),
    )


# Waited beyond one segment duration for the first segments of the renditions (as the media HTTP
# server waits for a variant playlist's first segment).
FIRST_SEGMENT_GRACE = 1.0


class MasterPlaylists:
    """The routes of profile playlists on a `MediaHttpServer` (added with `add_routes`).

    ``hls`` and ``llhls`` are the node's packagers: a variant is listed once its playlist exists.
    """

    def __init__(
        self,
        registry: StreamRegistry,
        lookup: PlaylistLookup,
        llhls: LlHlsPackager | None = None,
        hls: HlsPackager | None = None,
    ) -> None:
        self.registry = registry
        self.lookup = lookup
        self.llhls = llhls
        self.hls = hls

    def add_routes(self, server) -> None:
        self.server = server
        # After the built-in routes: ts:playlist.m3u8, llhls.m3u8 and chunklists keep their meaning.
        server.add_route("GET", r"/{app}/{stream}/ts:{file:[^/:]+}.m3u8", self.handle_hls, name="profile_hls_master")
        if self.llhls is not None:
            server.add_route(
                "GET", r"/{app}/{stream}/{file:[^/:]+}.m3u8", self.handle_llhls, name="profile_llhls_master"
            )

    async def handle_hls(self, request: web.Request) -> web.StreamResponse:
        def playlist(key: StreamKey) -> str | None:
            if self.hls is None:  # no packager to ask: every live rendition is taken to play
                return HLS_VARIANT_PLAYLIST
            segmenter = self.hls.get(key)
            return HLS_VARIANT_PLAYLIST if segmenter is not None and segmenter.playlist() else None

        return await self._answer(request, playlist, self.hls, lambda config: config.hls_segment_duration)

    async def handle_llhls(self, request: web.Request) -> web.StreamResponse:
        def chunklist(key: StreamKey) -> str | None:
            segmenter = self.llhls.get(key) if self.llhls is not None else None
            return segmenter.chunklist_name if segmenter is not None and segmenter.playlist() else None

        return await self._answer(request, chunklist, self.llhls, lambda config: config.llhls_segment_duration)

    async def _answer(
        self,
        request: web.Request,
        variant_file: Callable[[StreamKey], str | None],
        packager: StreamPackager | None,
        segment_duration: Callable[[ApplicationConfig], float],
    ) -> web.StreamResponse:
        target = await self.server.resolve_stream(request)
        if target is None:
            raise web.HTTPNotFound(text="playlist not found\n")
        variants = await self.lookup(target.key.vhost, target.key.app, target.key.name, request.match_info["file"])
        keys = [StreamKey(target.key.vhost, target.key.app, variant.stream) for variant in variants or []]
        live = [key for key in keys if (stream := self.registry.get(key)) is not None and stream.ready]
        waiting = [key for key in live if variant_file(key) is None]
        if waiting and packager is not None:
            timeout = segment_duration(target.config) + FIRST_SEGMENT_GRACE
            await asyncio.gather(*(packager.wait_ready(key, timeout) for key in waiting))
        lines = []
        for variant, key in zip(variants or [], keys, strict=True):
            stream = self.registry.get(key)
            file = variant_file(key) if stream is not None and stream.ready else None
            line = describe_variant(stream, f"../{variant.stream}/{file}", variant.bandwidth) if file else None
            if line is not None:
                lines.append(line)
        if not lines:
            raise web.HTTPNotFound(text="playlist not found\n")
        body = render_master_playlist(lines)
        if target.stream is not None:
            self.server.count_sent(request, target.stream, len(body))
        return web.Response(body=body, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache, no-store"})
