// The statistics page's charts (Chart.js, vendored): the data comes from the JSON
// endpoint named by #charts[data-src]; no inline script or style (the CSP forbids them).
"use strict";
(function () {
  var COLORS = ["#2f6fb0", "#d9822b", "#3a9e5f", "#b94a48", "#7a5ea8", "#8c6d46",
                "#c7569a", "#6c757d", "#2a9fb0", "#a8a132"];
  var charts = [];

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: config.type !== "bar" || config.data.datasets.length > 1 } }
    }, config.options || {});
    charts.push(new window.Chart(canvas, config));
  }

  function render(data, status) {
    var trend = data.trend;
    draw("chart-trend", {
      type: "line",
      data: {
        labels: trend.labels,
        datasets: Object.keys(trend.values).map(function (key, i) {
          return { label: data.labels[key], data: trend.values[key], spanGaps: true,
                   borderColor: COLORS[i % COLORS.length],
                   backgroundColor: COLORS[i % COLORS.length] };
        })
      },
      options: { scales: { y: { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } } }
    });
    Object.keys(data.grids.values).forEach(function (key, i) {
      var hours = key === "average_handling_hours";
      draw("chart-grid-" + key, {
        type: "bar",
        data: { labels: data.grids.labels,
                datasets: [{ label: data.labels[key], data: data.grids.values[key],
                             backgroundColor: COLORS[i % COLORS.length] }] },
        options: { scales: { y: hours ? { min: 0 } : { min: 0, max: 100 } } }
      });
    });
    var appraisal = data.appraisal;
    draw("chart-appraisal", {
      type: "bar",
      data: {
        labels: appraisal.labels,
        datasets: [
          { label: status.getAttribute("data-handled"), data: appraisal.handled,
            backgroundColor: appraisal.handled.map(function (n) {
              return n >= appraisal.target ? "#3a9e5f" : "#d9822b"; }) },
          { type: "line", label: status.getAttribute("data-target"), pointRadius: 0,
            data: appraisal.labels.map(function () { return appraisal.target; }),
            borderColor: "#b94a48", borderDash: [6, 4] }
        ]
      },
      options: { scales: { y: { min: 0, suggestedMax: appraisal.target + 2 } } }
    });
    [["chart-categories", data.categories], ["chart-channels", data.channels]].forEach(
      function (pair) {
        draw(pair[0], {
          type: "bar",
          data: { labels: pair[1].labels,
                  datasets: [{ label: status.getAttribute("data-cases"), data: pair[1].values,
                               backgroundColor: COLORS }] },
          options: { indexAxis: "y", scales: { x: { min: 0, ticks: { precision: 0 } } } }
        });
      });
    status.textContent = "";
    document.body.setAttribute("data-charts", "drawn");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var printButton = document.getElementById("print-page");
    if (printButton) printButton.addEventListener("click", function () { window.print(); });
    var box = document.getElementById("charts");
    var status = document.getElementById("chart-status");
    if (!box || !status || !window.Chart) return;
    window.Chart.defaults.font.family =
      '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif';
    status.textContent = status.getAttribute("data-loading");
    fetch(box.getAttribute("data-src"), { credentials: "same-origin",
                                          headers: { "Accept": "application/json" } })
      .then(function (answer) {
        if (!answer.ok) throw new Error(String(answer.status));
        return answer.json();
      })
      .then(function (data) { render(data, status); })
      .catch(function () { status.textContent = status.getAttribute("data-failed"); });
    // Paper is narrower than the screen: let each chart fit it, then the screen again.
    window.addEventListener("beforeprint", function () {
      charts.forEach(function (chart) { chart.resize(); });
    });
    window.addEventListener("afterprint", function () {
      charts.forEach(function (chart) { chart.resize(); });
    });
  });
})();
