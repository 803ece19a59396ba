// A live stream's page in the admin: the player (HLS and LL-HLS with hls.js, WebRTC over WHEP with the
// browser's own RTCPeerConnection), and tracks, viewers, bitrate chart, jobs and events refreshed from
// the page's state URL every two seconds. window.streamPage exposes what tests and operators inspect.
(function () {
  "use strict";
  const root = document.querySelector(".stream-console");
  const sources = JSON.parse(document.getElementById("player-sources").textContent);
  const video = document.getElementById("player");
  const status = document.getElementById("player-status");
  const select = document.getElementById("player-protocol");
  const page = (window.streamPage = { protocol: null, errors: [], polls: 0, points: 0 });
  let hls = null;
  let pc = null;

  function report(text) { status.textContent = text; }

  function stopPlayer() {
    if (hls) { hls.destroy(); hls = null; }
    if (pc) { pc.close(); pc = null; }
    video.removeAttribute("src");
    video.srcObject = null;
  }

  function waitForGathering(connection) {
    if (connection.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      connection.addEventListener("icegatheringstatechange", function () {
        if (connection.iceGatheringState === "complete") resolve();
      });
      setTimeout(resolve, 2000); // send what we have; the server's candidates suffice on a LAN
    });
  }

  async function playWhep(url) {
    const connection = (pc = new RTCPeerConnection());
    connection.addTransceiver("video", { direction: "recvonly" });
    connection.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    connection.addEventListener("track", function (event) {
      media.addTrack(event.track);
      video.srcObject = media;
    });
    await connection.setLocalDescription(await connection.createOffer());
    await waitForGathering(connection);
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: connection.localDescription.sdp,
    });
    const answer = await response.text();
    if (response.status !== 201) throw new Error("WHEP " + response.status + ": " + answer.trim());
    if (pc !== connection) return; // switched to another protocol meanwhile
    await connection.setRemoteDescription({ type: "answer", sdp: answer });
  }

  function play(protocol) {
    stopPlayer();
    page.protocol = protocol;
    const url = sources[protocol];
    document.getElementById("player-source").textContent = url;
    report("loading " + protocol + "…");
    if (protocol === "whep") {
      playWhep(url).catch(function (error) { page.errors.push(String(error)); report("error: " + error.message); });
    } else if (window.Hls && Hls.isSupported()) {
      const lowLatency = protocol === "llhls";
      hls = new Hls(lowLatency ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 } : { liveSyncDurationCount: 2 });
      hls.on(Hls.Events.ERROR, function (_event, data) {
        page.errors.push(data.details);
        if (data.fatal) report("error: " + data.details);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, function () { video.play().catch(function () {}); });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      video.src = url;
    }
    video.play().catch(function () {});
  }

  video.addEventListener("timeupdate", function () {
    report((page.protocol || "").toUpperCase() + " playing " + video.videoWidth + "x" + video.videoHeight +
      " at " + video.currentTime.toFixed(1) + " s");
  });
  select.addEventListener("change", function () { play(select.value); });
  const wanted = new URLSearchParams(location.search).get("play");
  if (wanted && sources[wanted]) select.value = wanted;

  // -- the numbers -------------------------------------------------------------------------------

  function bits(value) {
    if (value >= 1e6) return (value / 1e6).toFixed(2) + " Mb/s";
    if (value >= 1e3) return (value / 1e3).toFixed(0) + " kb/s";
    return value + " b/s";
  }

  function fill(tbody, rows) {
    tbody.replaceChildren();
    for (const cells of rows) {
      const row = document.createElement("tr");
      for (const value of cells) {
        const cell = document.createElement("td");
        if (value instanceof Node) cell.appendChild(value); else cell.textContent = value;
        row.appendChild(cell);
      }
      tbody.appendChild(row);
    }
  }

  function link(href, text) {
    const anchor = document.createElement("a");
    anchor.href = href;
    anchor.textContent = text;
    return anchor;
  }

  function trackDetails(track) {
    if (track.kind === "video") return track.width + "x" + track.height + (track.framerate ? " @ " + track.framerate.toFixed(1) + " fps" : "");
    return (track.samplerate ? track.samplerate + " Hz" : "") + (track.channels ? ", " + track.channels + " ch" : "");
  }

  const chartBox = document.getElementById("bitrate-chart");
  const chart = bitrateChart(chartBox, { width: Math.min(chartBox.clientWidth || 600, 640), height: 160, seconds: 60 });

  function draw(state) {
    document.getElementById("stream-state").textContent = state.state;
    fill(document.querySelector("#stream-tracks tbody"), state.tracks.map(function (track) {
      return [track.id, track.kind, track.codec, trackDetails(track), bits(track.bitrate || 0)];
    }));
    const viewers = Object.entries(state.connections);
    fill(document.querySelector("#stream-viewers tbody"),
      viewers.length ? viewers.concat([["total", state.viewers]]) : [["none", 0]]);
    document.querySelectorAll("#stream-viewers tbody tr").forEach(function (row) {
      row.dataset.protocol = row.firstChild.textContent;
    });
    fill(document.querySelector("#stream-jobs tbody"), state.jobs.map(function (job) {
      const files = job.files ? link(job.files, "recordings") : "";
      return [job.kind, link(job.url, job.id), job.state + (job.error ? " (" + job.error + ")" : ""), files];
    }));
    document.querySelectorAll("#stream-jobs tbody tr").forEach(function (row, index) {
      row.dataset.job = state.jobs[index].kind + ":" + state.jobs[index].id;
      row.dataset.state = state.jobs[index].state;
    });
    const events = document.getElementById("stream-events");
    events.replaceChildren();
    for (const event of state.events) {
      const item = document.createElement("li");
      item.textContent = new Date(event.at).toLocaleTimeString() + " " + event.text;
      events.appendChild(item);
    }
    document.getElementById("bitrate-in").textContent = bits(state.throughputIn);
    document.getElementById("bitrate-out").textContent = bits(state.throughputOut);
    if (state.live) {
      page.points = chart.add(Date.now() / 1000, state.throughputIn, state.throughputOut);
      chartBox.dataset.points = String(page.points);
    }
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.stateUrl, { credentials: "same-origin" });
      if (response.ok) { draw(await response.json()); page.polls += 1; }
    } catch (error) {
      page.errors.push(String(error));
    }
  }

  draw(JSON.parse(document.getElementById("stream-initial-state").textContent));
  setInterval(poll, 2000);
  play(select.value);
})();
