// The operator page: WHIP publish of the camera and WHEP play, with plain browser APIs.
"use strict";

const streamhub = (() => {
  const sessions = {};

  async function iceServers() {
    const response = await fetch("/webrtc/config");
    return (await response.json()).iceServers;
  }

  function streamPath() {
    const app = encodeURIComponent(document.getElementById("app").value.trim());
    const stream = encodeURIComponent(document.getElementById("stream").value.trim());
    return `/${app}/${stream}`;
  }

  function waitForGathering(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000); // send what we have; the server's candidates suffice on a LAN
    });
  }

  async function negotiate(pc, direction) {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc);
    const response = await fetch(`${streamPath()}?direction=${direction}`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`${direction.toUpperCase()} ${response.status}: ${text.trim()}`);
    await pc.setRemoteDescription({ type: "answer", sdp: text });
    return new URL(response.headers.get("Location"), location.href).href;
  }

  async function stop(direction) {
    const session = sessions[direction];
    if (!session) return;
    delete sessions[direction];
    session.pc.close();
    if (session.media) session.media.getTracks().forEach((track) => track.stop());
    await fetch(session.location, { method: "DELETE" }).catch(() => {});
  }

  // options.videoCodec ("VP8", "H264"): offer only that video codec (the engine turns VP8 into H.264).
  async function publish(options = {}) {
    await stop("whip");
    const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    document.getElementById("preview").srcObject = media;
    const pc = new RTCPeerConnection({ iceServers: await iceServers() });
    for (const track of media.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly" });
      if (track.kind === "video" && options.videoCodec) {
        const wanted = "video/" + options.videoCodec.toUpperCase();
        const codecs = RTCRtpSender.getCapabilities("video").codecs.filter((codec) => codec.mimeType.toUpperCase() === wanted.toUpperCase());
        if (!codecs.length) throw new Error("this browser cannot send " + options.videoCodec);
        transceiver.setCodecPreferences(codecs);
      }
    }
    const session = { pc, media, location: null };
    sessions.whip = session;
    session.location = await negotiate(pc, "whip");
    return session.location;
  }

  async function play() {
    await stop("whep");
    const pc = new RTCPeerConnection({ iceServers: await iceServers() });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const player = document.getElementById("player");
    const remote = new MediaStream();
    pc.addEventListener("track", (event) => {
      remote.addTrack(event.track);
      player.srcObject = remote;
    });
    const session = { pc, location: null };
    sessions.whep = session;
    session.location = await negotiate(pc, "whep");
    return session.location;
  }

  // What the player decoded so far, from getStats: {framesDecoded, width, height, audioSamples, state}.
  async function stats() {
    const session = sessions.whep;
    const result = { framesDecoded: 0, width: 0, height: 0, audioSamples: 0, state: session ? session.pc.connectionState : "none" };
    if (!session) return result;
    (await session.pc.getStats()).forEach((report) => {
      if (report.type !== "inbound-rtp") return;
      if (report.kind === "video") {
        result.framesDecoded = report.framesDecoded || 0;
        result.width = report.frameWidth || 0;
        result.height = report.frameHeight || 0;
      } else if (report.kind === "audio") {
        result.audioSamples = report.totalSamplesReceived || 0;
      }
    });
    return result;
  }

  function show(message) {
    document.getElementById("status").textContent = message;
  }

  function wire(id, action) {
    document.getElementById(id).addEventListener("click", async () => {
      try { await action(); } catch (error) { show(String(error)); }
    });
  }

  wire("publish", async () => {
    await publish();
    document.getElementById("stop-publish").disabled = false;
    show(`publishing ${streamPath()}`);
  });
  wire("stop-publish", async () => {
    await stop("whip");
    document.getElementById("stop-publish").disabled = true;
  });
  wire("play", async () => {
    await play();
    document.getElementById("stop-play").disabled = false;
  });
  wire("stop-play", async () => {
    await stop("whep");
    document.getElementById("stop-play").disabled = true;
  });
  setInterval(async () => {
    if (!sessions.whep) return;
    const s = await stats();
    show(`${s.state}: ${s.framesDecoded} frames decoded (${s.width}x${s.height}), ${s.audioSamples} audio samples`);
  }, 1000);

  return { publish, play, stop, stats, sessions };
})();
window.streamhub = streamhub;
