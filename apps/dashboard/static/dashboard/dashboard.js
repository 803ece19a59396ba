// The admin's live dashboard: engine nodes and live streams, drawn from the state the page embeds
// (and fetches again whenever the events socket reconnects), then kept current by /ws/events/?stats=1:
// "started" adds a stream, "ended" removes it, "stats" (one per engine heartbeat) moves its numbers
// and its throughput chart (uPlot, served locally).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const CHART_POINTS = 90; // 3 minutes at the default 2 s heartbeat
  const nodes = new Map(); // nodeId -> {data, row}
  const streams = new Map(); // id -> {data, row, chart}
  let nodeTimeout = 15;
  let refetching = null;
  let lastUnknownRefetch = 0;

  // For operators and tests: how many stats events arrived, and when the socket last (re)connected.
  window.dashboard = { statsEvents: 0, connectedAt: null };

  const nodesBody = document.querySelector("#dashboard-nodes tbody");
  const streamsBody = document.querySelector("#dashboard-streams tbody");
  const statusLabel = document.getElementById("dashboard-status");

  function setStatus(state, text) {
    statusLabel.dataset.state = state;
    statusLabel.textContent = text;
  }

  function bitrate(bitsPerSecond) {
    if (bitsPerSecond >= 1e6) return (bitsPerSecond / 1e6).toFixed(2) + " Mb/s";
    if (bitsPerSecond >= 1e3) return (bitsPerSecond / 1e3).toFixed(0) + " kb/s";
    return bitsPerSecond + " b/s";
  }

  function bytes(count) {
    if (count >= 1e9) return (count / 1e9).toFixed(2) + " GB";
    if (count >= 1e6) return (count / 1e6).toFixed(1) + " MB";
    if (count >= 1e3) return (count / 1e3).toFixed(0) + " kB";
    return count + " B";
  }

  function cell(row, className, text) {
    const td = document.createElement("td");
    td.className = className;
    if (text !== undefined) td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function link(parent, href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    parent.appendChild(a);
    return a;
  }

  function showEmptyNotes() {
    document.getElementById("dashboard-no-nodes").hidden = nodes.size > 0;
    document.getElementById("dashboard-no-streams").hidden = streams.size > 0;
  }

  // -- nodes ---------------------------------------------------------------------------------------

  function addNode(data) {
    const row = document.createElement("tr");
    row.dataset.node = data.nodeId;
    cell(row, "node-id", data.nodeId);
    cell(row, "node-address", data.address);
    cell(row, "node-rtmp", String(data.rtmpPort));
    cell(row, "node-http", String(data.mediaHttpPort));
    cell(row, "node-streams");
    cell(row, "node-heartbeat");
    cell(row, "node-state");
    nodesBody.appendChild(row);
    const node = { data: data, row: row };
    nodes.set(data.nodeId, node);
    drawNode(node);
  }

  function drawNode(node) {
    const ageSeconds = Math.max(0, (Date.now() - Date.parse(node.data.lastHeartbeat)) / 1000);
    const alive = ageSeconds < nodeTimeout;
    node.row.querySelector(".node-streams").textContent = String(node.data.liveStreams);
    node.row.querySelector(".node-heartbeat").textContent = ageSeconds.toFixed(0) + " s ago";
    const state = node.row.querySelector(".node-state");
    state.textContent = alive ? "alive" : "silent";
    node.row.classList.toggle("node-silent", !alive);
  }

  // -- streams -------------------------------------------------------------------------------------

  function playUrl(data) {
    return data.playUrl || config.playUrlTemplate.replace("/0/", "/" + data.id + "/");
  }

  function addStream(data) {
    if (streams.has(data.id)) return streams.get(data.id);
    const row = document.createElement("tr");
    row.id = "stream-" + data.id;
    row.dataset.streamName = data.name;
    row.dataset.stream = data.vhost + "/" + data.app + "/" + data.name;
    const name = cell(row, "stream-name");
    const strong = document.createElement("strong");
    strong.textContent = data.name;
    name.appendChild(strong);
    name.appendChild(document.createElement("br"));
    const where = document.createElement("span");
    where.className = "quiet";
    where.textContent = data.vhost + "/" + data.app + " · " + (data.sourceType || "");
    name.appendChild(where);
    cell(row, "stream-node", data.node || "-");
    cell(row, "viewers");
    cell(row, "bitrate-in");
    cell(row, "bitrate-out");
    cell(row, "traffic");
    const chartCell = cell(row, "throughput-chart");
    const play = cell(row, "play-links");
    link(play, playUrl(data), "HLS").className = "play-hls";
    play.appendChild(document.createTextNode(" · "));
    link(play, playUrl(data) + "?llhls=1", "LL-HLS").className = "play-llhls";
    streamsBody.appendChild(row);

    const stream = { data: data, row: row, chart: bitrateChart(chartCell, { width: 320, height: 120, seconds: 20, maxPoints: CHART_POINTS }) };
    streams.set(data.id, stream);
    drawStream(stream);
    showEmptyNotes();
    return stream;
  }

  function removeStream(id) {
    const stream = streams.get(id);
    if (!stream) return;
    stream.chart.destroy();
    stream.row.remove();
    streams.delete(id);
    showEmptyNotes();
  }

  function drawStream(stream) {
    const data = stream.data;
    const protocols = Object.keys(data.connections || {}).map(function (kind) {
      return kind + " " + data.connections[kind];
    });
    stream.row.querySelector(".viewers").textContent = String(data.viewers) + (protocols.length ? " (" + protocols.join(", ") + ")" : "");
    stream.row.querySelector(".bitrate-in").textContent = bitrate(data.bitrateIn);
    stream.row.querySelector(".bitrate-out").textContent = bitrate(data.bitrateOut);
    stream.row.querySelector(".traffic").textContent = bytes(data.bytesIn) + " / " + bytes(data.bytesOut);
  }

  function addPoint(stream, seconds) {
    const points = stream.chart.add(seconds, stream.data.bitrateIn, stream.data.bitrateOut);
    stream.row.dataset.points = String(points);
  }

  // -- state and events ----------------------------------------------------------------------------

  function applyState(state) {
    nodeTimeout = state.nodeTimeout || nodeTimeout;
    const seenNodes = new Set();
    state.nodes.forEach(function (data) {
      seenNodes.add(data.nodeId);
      if (nodes.has(data.nodeId)) {
        nodes.get(data.nodeId).data = data;
        drawNode(nodes.get(data.nodeId));
      } else {
        addNode(data);
      }
    });
    nodes.forEach(function (node, id) {
      if (!seenNodes.has(id)) { node.row.remove(); nodes.delete(id); }
    });
    const seenStreams = new Set();
    state.streams.forEach(function (data) {
      seenStreams.add(data.id);
      const stream = streams.get(data.id) || addStream(data);
      stream.data = Object.assign(stream.data, data);
      drawStream(stream);
    });
    Array.from(streams.keys()).forEach(function (id) {
      if (!seenStreams.has(id)) removeStream(id);
    });
    showEmptyNotes();
  }

  function refetchState() {
    // At most one request at a time: a burst of unknown streams or nodes asks once.
    if (refetching) return refetching;
    refetching = fetch(config.stateUrl, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("state: HTTP " + response.status);
        return response.json();
      })
      .then(applyState)
      .catch(function (error) { setStatus("error", String(error)); })
      .finally(function () { refetching = null; });
    return refetching;
  }

  function onStats(message) {
    window.dashboard.statsEvents += 1;
    const seconds = Date.parse(message.time) / 1000;
    let unknown = false;
    const node = nodes.get(message.node);
    if (node) {
      node.data.lastHeartbeat = message.time;
      node.data.liveStreams = message.streams.length;
      drawNode(node);
    } else {
      unknown = true;
    }
    message.streams.forEach(function (numbers) {
      const stream = streams.get(numbers.id);
      if (!stream) { unknown = true; return; }
      Object.assign(stream.data, numbers);
      drawStream(stream);
      addPoint(stream, seconds);
    });
    // A node or stream the page does not know yet (say, its "started" came before the socket
    // did): read the state again, but not at every heartbeat if the state cannot explain it.
    if (unknown && Date.now() - lastUnknownRefetch > 10000) {
      lastUnknownRefetch = Date.now();
      refetchState();
    }
  }

  function onMessage(message) {
    if (message.event === "stats") {
      onStats(message);
    } else if (message.event === "started") {
      addStream(Object.assign({ viewers: 0, connections: {}, bitrateIn: 0, bitrateOut: 0, bytesIn: 0, bytesOut: 0 },
        message.stream, { sourceType: message.stream.sourceType }));
    } else if (message.event === "ended") {
      removeStream(message.stream.id);
    }
  }

  function connect(delay) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + config.eventsPath);
    socket.onopen = function () {
      delay = 1000;
      window.dashboard.connectedAt = Date.now();
      setStatus("live", "live");
      refetchState(); // whatever happened while the page loaded or the socket was down
    };
    socket.onmessage = function (event) {
      try {
        onMessage(JSON.parse(event.data));
      } catch (error) {
        console.error("dashboard event", error);
      }
    };
    socket.onclose = function () {
      setStatus("reconnecting", "reconnecting…");
      window.setTimeout(function () { connect(Math.min(delay * 2, 15000)); }, delay);
    };
  }

  applyState(JSON.parse(document.getElementById("dashboard-state").textContent));
  window.setInterval(function () { nodes.forEach(drawNode); }, 1000);
  connect(1000);
})();
