// The in/out bitrate chart (uPlot, served locally) of the live dashboard and of a stream's page.
// bitrateChart(box, {width, height, seconds}) draws into `box` and returns
// {series, add(time, bitsIn, bitsOut), destroy()}; without uPlot it keeps the points and draws nothing.
"use strict";

function bitrateChart(box, options) {
  const seconds = options.seconds || 60;
  const maxPoints = options.maxPoints || 150;
  const series = [[], [], []];

  function clock(time) {
    return new Date(time * 1000).toTimeString().slice(0, 8); // HH:MM:SS, local time
  }

  function uplotOptions() {
    const text = getComputedStyle(document.body).color;
    const axis = { stroke: text, grid: { stroke: "rgba(128,128,128,0.2)" }, ticks: { stroke: "rgba(128,128,128,0.4)" } };
    return {
      width: options.width,
      height: options.height || 120,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        // From the data, not uPlot's guess (a lone first point would stretch the axis over a day):
        // at least the last `seconds`.
        x: {
          time: true,
          range: function (u) {
            const times = u.data[0];
            const last = times.length ? times[times.length - 1] : Date.now() / 1000;
            return [Math.min(times.length ? times[0] : last, last - seconds), last];
          },
        },
        y: { range: function (_u, _min, max) { return [0, Math.max(max * 1.1, 1)]; } },
      },
      axes: [
        Object.assign({ space: 70, size: 30, values: function (_u, splits) { return splits.map(clock); } }, axis),
        Object.assign({ size: 50, space: 25 }, axis),
      ],
      series: [
        {},
        { label: "in kbit/s", stroke: "#2e8b57", width: 2, fill: "rgba(46,139,87,0.12)" },
        { label: "out kbit/s", stroke: "#1f6fbf", width: 2 },
      ],
    };
  }

  const chart = window.uPlot ? new uPlot(uplotOptions(), series, box) : null;
  return {
    series: series,
    // One point: time in seconds, bitrates in bit/s (drawn in kbit/s); the oldest go beyond maxPoints.
    add: function (time, bitsIn, bitsOut) {
      series[0].push(time);
      series[1].push(bitsIn / 1000);
      series[2].push(bitsOut / 1000);
      if (series[0].length > maxPoints) series.forEach(function (values) { values.shift(); });
      if (chart) chart.setData(series);
      return series[0].length;
    },
    destroy: function () {
      if (chart) chart.destroy();
    },
  };
}
