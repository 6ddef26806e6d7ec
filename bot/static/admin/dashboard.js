// Dashboard charts: data comes from the page (#chart-data), Chart.js is served by the service.
(function () {
  "use strict";
  function draw() {
    var data = JSON.parse(document.getElementById("chart-data").textContent);
    var colours = { red: "#d62828", orange: "#f77f00", yellow: "#fcbf49" };
    var common = { responsive: true, animation: false, plugins: { legend: { position: "bottom" } } };
    new Chart(document.getElementById("chart-colour"), {
      type: "doughnut",
      data: { labels: data.colour.labels, datasets: [{ data: data.colour.values,
        backgroundColor: data.colour.keys.map(function (k) { return colours[k] || "#8d99ae"; }) }] },
      options: common
    });
    [["chart-status", data.status, "#2a6f97"], ["chart-level", data.level, "#468faf"]].forEach(function (c) {
      new Chart(document.getElementById(c[0]), {
        type: "bar",
        data: { labels: c[1].labels, datasets: [{ label: "件数", data: c[1].values, backgroundColor: c[2] }] },
        options: Object.assign({}, common, { plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
      });
    });
    new Chart(document.getElementById("chart-trend"), {
      type: "line",
      data: { labels: data.trend.labels, datasets: [
        { label: "办结率 %", data: data.trend.closure, borderColor: "#2a9d8f", spanGaps: true },
        { label: "按时办结率 %", data: data.trend.on_time, borderColor: "#e76f51", spanGaps: true },
        { label: "满意率 %", data: data.trend.satisfaction, borderColor: "#264653", spanGaps: true }
      ] },
      options: Object.assign({}, common, { scales: { y: { min: 0, max: 100 } } })
    });
    document.body.setAttribute("data-charts", "ready");
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
