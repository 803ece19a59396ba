"""WebRTC for the engine node: WHIP ingest, WHEP play and WHIP/WHEP relays to other nodes (aiortc).

`service.WebRtcService` owns the sessions and adds the signalling routes to the media HTTP server;
`whip` turns received RTP frames into the registry's packets, `whep` sends a live stream's packets
to a browser, `relay` pulls from another node's WHEP URL or pushes to its WHIP URL.
"""
